/*
 * parse.c: relayd.conf(5), the configuration file, and the command line
 * flags that set the same things.  A line is a keyword and one value,
 * separated by spaces or tabs; `#' starts a comment.  Every limit and
 * timeout that -o takes is also a keyword, read from relayd_options[]
 * (relayd.c), so the two never disagree.  The parser is strict: an
 * unknown keyword, a bad value, a keyword given twice or a line too long
 * is an error, reported as "FILE:LINE: reason", and parsing goes on so
 * that every error of a file is reported at once.  Nothing here touches
 * the running daemon: the caller decides what to apply.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "relayd.h"

#define PARSE_LINE_MAX		1024
#define PARSE_USER_MAX		32	/* useradd's limit */
#define PARSE_PER_LAUNCH	"per-launch"

enum parse_type {
	P_PATH,		/* an absolute path, into a char * field */
	P_KEY,		/* P_PATH, or "per-launch" */
	P_LISTEN,
	P_PORT,
	P_USER,
	P_LOGLEVEL,
	P_FACILITY
};

static const struct parse_keyword {
	const char	*name;
	enum parse_type	 type;
	size_t		 off;		/* of the char * field, P_PATH */
} parse_keywords[] = {
	{ "control",	  P_PATH, offsetof(struct relayd_conf, control_path) },
	{ "key_file",	  P_KEY, offsetof(struct relayd_conf, keyfile) },
	{ "listen",	  P_LISTEN, 0 },
	{ "log_facility", P_FACILITY, 0 },
	{ "log_level",	  P_LOGLEVEL, 0 },
	{ "pidfile",	  P_PATH, offsetof(struct relayd_conf, pidfile) },
	{ "port",	  P_PORT, offsetof(struct relayd_conf, port) },
	{ "secret_file",  P_PATH, offsetof(struct relayd_conf, secretfile) },
	{ "state_dir",	  P_PATH, offsetof(struct relayd_conf, statedir) },
	{ "user",	  P_USER, offsetof(struct relayd_conf, user) },
	{ "users_file",	  P_PATH, offsetof(struct relayd_conf, usersfile) },
};
#define PARSE_NKEYWORDS	(sizeof(parse_keywords) / sizeof(parse_keywords[0]))

static const struct parse_facility {
	const char	*name;
	int		 value;
} parse_facilities[] = {
	{ "auth",	LOG_AUTH },
	{ "authpriv",	LOG_AUTHPRIV },
	{ "daemon",	LOG_DAEMON },
	{ "local0",	LOG_LOCAL0 },
	{ "local1",	LOG_LOCAL1 },
	{ "local2",	LOG_LOCAL2 },
	{ "local3",	LOG_LOCAL3 },
	{ "local4",	LOG_LOCAL4 },
	{ "local5",	LOG_LOCAL5 },
	{ "local6",	LOG_LOCAL6 },
	{ "local7",	LOG_LOCAL7 },
	{ "user",	LOG_USER },
};

static const char *const parse_levels[] = { "info", "debug" };

void
parse_init(struct relayd_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->verbose = -1;
	conf->facility = -1;
}

static char **
parse_field(struct relayd_conf *conf, size_t off)
{
	return (char **)((char *)conf + off);
}

void
parse_free(struct relayd_conf *conf)
{
	size_t	 i;
	int	 j;

	for (i = 0; i < PARSE_NKEYWORDS; i++)
		if (parse_keywords[i].type == P_PATH ||
		    parse_keywords[i].type == P_KEY ||
		    parse_keywords[i].type == P_PORT ||
		    parse_keywords[i].type == P_USER)
			free(*parse_field(conf, parse_keywords[i].off));
	for (j = 0; j < conf->nlisten; j++)
		free(conf->listen[j]);
	parse_init(conf);
}

static int
parse_set_string(struct relayd_conf *conf, size_t off, const char *value,
    const char **why)
{
	char	**f = parse_field(conf, off), *p;

	if ((p = strdup(value)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	free(*f);
	*f = p;
	return 0;
}

static int
parse_user_ok(const char *s)
{
	size_t	 i;

	if (s[0] == '\0' || s[0] == '-' || strlen(s) > PARSE_USER_MAX)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '.' && s[i] != '-')
			return 0;
	return 1;
}

static int
parse_value(struct relayd_conf *conf, const struct parse_keyword *kw,
    const char *value, const char **why)
{
	size_t	 i;
	int	 j;

	switch (kw->type) {
	case P_KEY:
		if (strcmp(value, PARSE_PER_LAUNCH) == 0) {
			free(conf->keyfile);
			conf->keyfile = NULL;
			conf->key_per_launch = 1;
			return 0;
		}
		/* FALLTHROUGH */
	case P_PATH:
		if (value[0] != '/') {
			*why = kw->type == P_KEY ? "not an absolute path nor "
			    PARSE_PER_LAUNCH : "not an absolute path";
			return -1;
		}
		if (strlen(value) >= PATH_MAX) {
			*why = "path too long";
			return -1;
		}
		if (kw->type == P_KEY)
			conf->key_per_launch = 0;
		return parse_set_string(conf, kw->off, value, why);
	case P_LISTEN:
		if (strlen(value) >= NI_MAXHOST) {
			*why = "address too long";
			return -1;
		}
		for (j = 0; j < conf->nlisten; j++)
			if (strcmp(conf->listen[j], value) == 0) {
				*why = "address given twice";
				return -1;
			}
		if (conf->nlisten == LISTEN_MAX) {
			*why = "too many addresses (at most 16)";
			return -1;
		}
		if ((conf->listen[conf->nlisten] = strdup(value)) == NULL) {
			*why = "out of memory";
			return -1;
		}
		conf->nlisten++;
		return 0;
	case P_PORT:
		(void)strtonum(value, 0, 65535, why);
		if (*why != NULL) {
			*why = "not a port number (0 to 65535)";
			return -1;
		}
		return parse_set_string(conf, kw->off, value, why);
	case P_USER:
		if (!parse_user_ok(value)) {
			*why = "not a user name";
			return -1;
		}
		return parse_set_string(conf, kw->off, value, why);
	case P_LOGLEVEL:
		for (i = 0; i < sizeof(parse_levels) / sizeof(*parse_levels);
		    i++)
			if (strcmp(value, parse_levels[i]) == 0) {
				conf->verbose = i;
				return 0;
			}
		*why = "not a log level (info, debug)";
		return -1;
	case P_FACILITY:
		for (i = 0; i < sizeof(parse_facilities) /
		    sizeof(*parse_facilities); i++)
			if (strcmp(value, parse_facilities[i].name) == 0) {
				conf->facility = parse_facilities[i].value;
				return 0;
			}
		*why = "not a syslog facility (auth, authpriv, daemon, user, "
		    "local0 to local7)";
		return -1;
	}
	*why = "unknown keyword";
	return -1;
}

/*
 * A limit: name (nlen bytes, not terminated) from relayd_options[].
 * Returns the option's index, or -1 with why set.  Ranges go in the
 * message, so it must outlive the call: a static buffer.
 */
int
parse_limit(struct relayd_conf *conf, const char *name, size_t nlen,
    const char *value, const char **why)
{
	static char	 msg[128];
	const struct relayd_option *o;
	const char	*errstr;
	long long	 v;
	size_t		 i, off;

	for (i = 0; i < relayd_noptions; i++) {
		o = &relayd_options[i];
		if (strlen(o->name) != nlen ||
		    strncmp(o->name, name, nlen) != 0)
			continue;
		v = strtonum(value, o->min, o->max, &errstr);
		if (errstr != NULL) {
			(void)snprintf(msg, sizeof(msg), "value is %s (%lld to "
			    "%lld)", errstr, o->min, o->max);
			*why = msg;
			return -1;
		}
		/* The field o->value points to in relayd_limits, in conf. */
		off = (char *)o->value - (char *)&relayd_limits;
		*(long long *)((char *)&conf->limits + off) = v;
		conf->limits_set |= (uint64_t)1 << i;
		return i;
	}
	*why = "unknown keyword";
	return -1;
}

/*
 * Sets one keyword (a limit or not) of conf from a value, as the file or
 * a flag gives it.  Returns 0, or -1 with why set.
 */
int
parse_keyword(struct relayd_conf *conf, const char *name, const char *value,
    const char **why)
{
	size_t	 i;

	*why = NULL;
	for (i = 0; i < PARSE_NKEYWORDS; i++)
		if (strcmp(parse_keywords[i].name, name) == 0)
			return parse_value(conf, &parse_keywords[i], value,
			    why);
	return parse_limit(conf, name, strlen(name), value, why) == -1 ?
	    -1 : 0;
}

/* The index of a keyword for duplicate checks: limits after the others. */
static int
parse_index(const char *name)
{
	size_t	 i;

	for (i = 0; i < PARSE_NKEYWORDS; i++)
		if (strcmp(parse_keywords[i].name, name) == 0)
			return i;
	for (i = 0; i < relayd_noptions; i++)
		if (strcmp(relayd_options[i].name, name) == 0)
			return PARSE_NKEYWORDS + i;
	return -1;
}

/*
 * Splits a line into keyword and value.  Returns 0 with *kw NULL for a
 * blank or comment line, 0 with both set, or -1 with why set.
 */
static int
parse_split(char *line, char **kw, char **value, const char **why)
{
	char	*p = line, *rest;

	*kw = *value = NULL;
	p += strspn(p, " \t");
	if (*p == '\0' || *p == '#')
		return 0;
	*kw = p;
	p += strcspn(p, " \t");
	if (*p == '\0') {
		*why = "value missing";
		return -1;
	}
	*p++ = '\0';
	p += strspn(p, " \t");
	if (*p == '\0' || *p == '#') {
		*why = "value missing";
		return -1;
	}
	*value = p;
	p += strcspn(p, " \t");
	if (*p != '\0') {
		*p++ = '\0';
		rest = p + strspn(p, " \t");
		if (*rest != '\0' && *rest != '#') {
			*why = "one value expected (values cannot contain "
			    "spaces)";
			return -1;
		}
	}
	return 0;
}

/*
 * Reads path into conf (which parse_init() prepared).  Each error is
 * logged as "FILE:LINE: reason"; the count of errors is returned, 0 for
 * a good file.  A missing file is no error when missing_ok is set.
 */
int
parse_file(const char *path, struct relayd_conf *conf, int missing_ok)
{
	FILE		*fp;
	char		*line = NULL, *kw, *value;
	size_t		 linecap = 0;
	ssize_t		 len;
	unsigned long	 lineno = 0;
	unsigned long	*seen;
	const char	*why;
	int		 errors = 0, idx;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && missing_ok)
			return 0;
		log_warnx("%s: %s", path, strerror(errno));
		return 1;
	}
	if ((seen = calloc(PARSE_NKEYWORDS + relayd_noptions,
	    sizeof(*seen))) == NULL)
		fatal("calloc");
	while ((len = getline(&line, &linecap, fp)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		why = NULL;
		kw = value = NULL;
		if (len > PARSE_LINE_MAX)
			why = "line too long";
		else if (strlen(line) != (size_t)len)
			why = "NUL byte in line";
		else if (parse_split(line, &kw, &value, &why) == 0 &&
		    kw != NULL) {
			if ((idx = parse_index(kw)) == -1) {
				log_warnx("%s:%lu: unknown keyword \"%s\"",
				    path, lineno, kw);
				errors++;
				continue;
			}
			if (seen[idx] != 0 && strcmp(kw, "listen") != 0) {
				log_warnx("%s:%lu: %s given twice (first on "
				    "line %lu)", path, lineno, kw, seen[idx]);
				errors++;
				continue;
			}
			seen[idx] = lineno;
			(void)parse_keyword(conf, kw, value, &why);
			if (why != NULL) {
				log_warnx("%s:%lu: %s %s: %s", path, lineno,
				    kw, value, why);
				errors++;
			}
			continue;
		}
		if (why != NULL && kw != NULL)
			log_warnx("%s:%lu: %s: %s", path, lineno, kw, why);
		else if (why != NULL)
			log_warnx("%s:%lu: %s", path, lineno, why);
		if (why != NULL)
			errors++;
	}
	if (ferror(fp)) {
		log_warnx("%s: %s", path, strerror(errno));
		errors++;
	}
	free(seen);
	free(line);
	fclose(fp);
	return errors;
}

/* What src sets replaces what dst has: the command line over the file. */
void
parse_merge(struct relayd_conf *dst, const struct relayd_conf *src)
{
	const struct relayd_option *o;
	const char	*why;
	size_t		 i, off;
	int		 j;

	for (i = 0; i < PARSE_NKEYWORDS; i++) {
		if (parse_keywords[i].type == P_LISTEN ||
		    parse_keywords[i].type == P_LOGLEVEL ||
		    parse_keywords[i].type == P_FACILITY)
			continue;
		if (*parse_field((struct relayd_conf *)src,
		    parse_keywords[i].off) != NULL &&
		    parse_set_string(dst, parse_keywords[i].off,
		    *parse_field((struct relayd_conf *)src,
		    parse_keywords[i].off), &why) == -1)
			fatalx("%s", why);
	}
	if (src->keyfile != NULL)
		dst->key_per_launch = 0;
	if (src->key_per_launch) {
		free(dst->keyfile);
		dst->keyfile = NULL;
		dst->key_per_launch = 1;
	}
	if (src->nlisten > 0) {
		for (j = 0; j < dst->nlisten; j++)
			free(dst->listen[j]);
		dst->nlisten = 0;
		for (j = 0; j < src->nlisten; j++)
			if ((dst->listen[dst->nlisten++] =
			    strdup(src->listen[j])) == NULL)
				fatal("strdup");
	}
	if (src->verbose >= 0)
		dst->verbose = src->verbose;
	if (src->facility >= 0)
		dst->facility = src->facility;
	for (i = 0; i < relayd_noptions; i++) {
		if ((src->limits_set & ((uint64_t)1 << i)) == 0)
			continue;
		o = &relayd_options[i];
		off = (char *)o->value - (char *)&relayd_limits;
		*(long long *)((char *)&dst->limits + off) =
		    *(const long long *)((const char *)&src->limits + off);
		dst->limits_set |= (uint64_t)1 << i;
	}
}

/*
 * Limits that depend on each other.  Every push must fit in a frame: the
 * largest is a MSG with a full BODY.  Returns NULL, or the reason in buf.
 */
const char *
parse_check_limits(const struct relayd_limits *l, char *buf, size_t len)
{
	size_t	 push = HEAD_LEN + 1 + SEQ_DIGITS_MAX + 1 + 4 + ID_MAX + 1 +
	    USER_MAX + 1 + 20 + 1 + (size_t)l->body_max;

	if (push + 256 > REC_MAX) {
		(void)snprintf(buf, len, "body_max %lld: at most %d",
		    l->body_max,
		    REC_MAX - 256 - (int)(push - l->body_max));
		return buf;
	}
	if (fernet_token_len(push) + 2 > (size_t)l->frame_max) {
		(void)snprintf(buf, len, "body_max %lld does not fit in "
		    "frame_max %lld (a body of up to %lld bytes would need "
		    "%zu)", l->body_max, l->frame_max, l->body_max,
		    fernet_token_len(push) + 2);
		return buf;
	}
	return NULL;
}

const char *
parse_facility_name(int facility)
{
	size_t	 i;

	for (i = 0; i < sizeof(parse_facilities) / sizeof(*parse_facilities);
	    i++)
		if (parse_facilities[i].value == facility)
			return parse_facilities[i].name;
	return "?";
}

/* "ttl, login_grace, ...": for messages. */
const char *
parse_option_names(void)
{
	static char	 names[1024];
	size_t		 i;

	names[0] = '\0';
	for (i = 0; i < relayd_noptions; i++) {
		if (i > 0)
			(void)strlcat(names, ", ", sizeof(names));
		(void)strlcat(names, relayd_options[i].name, sizeof(names));
	}
	return names;
}
