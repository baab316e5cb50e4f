/*
 * parser.c: relayctl's command table.  One line per command gives its
 * name, its options and argument count, the pattern shown in usage, the
 * CTL_* request it sends, the shape of the reply (text, or rows of known
 * columns), and the handler that adds the command's fields to the request.
 * The handlers check names locally so that a typo never reaches relayd,
 * and read passwords: only their MD5 leaves this process, and the
 * plaintext is wiped as soon as it is hashed.
 */
#include <sys/types.h>

#include <errno.h>
#include <readpassphrase.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relayctl.h"

static int	parser_none(const struct ctl_cmd *, const struct ctl_args *,
		    struct rec_writer *);
static int	parser_password(const struct ctl_cmd *,
		    const struct ctl_args *, struct rec_writer *);
static int	parser_deluser(const struct ctl_cmd *,
		    const struct ctl_args *, struct rec_writer *);
static int	parser_kick(const struct ctl_cmd *, const struct ctl_args *,
		    struct rec_writer *);

static const struct ctl_column parser_users_cols[] = {
	{ "NAME",	0 },
};
static const struct ctl_column parser_sessions_cols[] = {
	{ "PID",	COL_NUMBER },
	{ "USER",	0 },
	{ "ADDRESS",	0 },
	{ "PORT",	COL_NUMBER },
	{ "SINCE",	COL_TIME },
	{ "IDLE",	COL_NUMBER },
	{ "IN",		COL_NUMBER },
	{ "OUT",	COL_NUMBER },
};
static const struct ctl_column parser_stats_cols[] = {
	{ "NAME",	0 },
	{ "VALUE",	COL_RIGHT },
};

/* The reply of a command: OK with a text, or rows of these columns. */
#define TEXT		NULL, 0
#define ROWS(n)		parser_##n##_cols, nitems(parser_##n##_cols)

static const struct ctl_cmd parser_cmds[] = {
/*	  name        opts args  pattern       request       reply  handler */
	{ "adduser",  "p", 1, 1, "[-p] name",  CTL_ADDUSER,  TEXT,
	    parser_password },
	{ "passwd",   "p", 1, 1, "[-p] name",  CTL_PASSWD,   TEXT,
	    parser_password },
	{ "deluser",  "r", 1, 1, "[-r] name",  CTL_DELUSER,  TEXT,
	    parser_deluser },
	{ "users",    "",  0, 0, "",           CTL_USERS,    ROWS(users),
	    parser_none },
	{ "key",      "",  0, 0, "",           CTL_KEY,      TEXT,
	    parser_none },
	{ "rotate",   "",  0, 0, "",           CTL_ROTATE,   TEXT,
	    parser_none },
	{ "sessions", "",  0, 0, "",           CTL_SESSIONS, ROWS(sessions),
	    parser_none },
	{ "kick",     "",  1, 1, "user | pid", CTL_KICK,     TEXT,
	    parser_kick },
	{ "stats",    "",  0, 0, "",           CTL_STATS,    ROWS(stats),
	    parser_none },
};

const struct ctl_cmd *
parser_lookup(const char *name)
{
	size_t	 i;

	/* Whole names only: a prefix such as "d" must never mean deluser. */
	for (i = 0; i < nitems(parser_cmds); i++)
		if (strcmp(parser_cmds[i].name, name) == 0)
			return &parser_cmds[i];
	return NULL;
}

/*
 * Parse a command's own options and count its arguments; argv[0] is the
 * command name.  Returns 0, or -1 on a usage error, said on stderr (the
 * caller adds the command's usage).
 */
int
parser_args(const struct ctl_cmd *cmd, int argc, char **argv,
    struct ctl_args *args)
{
	char	 optstr[32];
	int	 ch;

	memset(args, 0, sizeof(*args));
	/*
	 * '+' stops glibc from taking options after the arguments; ':'
	 * keeps getopt quiet, as the caller prints the command's usage.
	 */
	if ((size_t)snprintf(optstr, sizeof(optstr), "+:%s", cmd->options) >=
	    sizeof(optstr))
		return -1;
	optreset = 1;
	optind = 1;
	while ((ch = getopt(argc, argv, optstr)) != -1) {
		if (ch < 'a' || ch > 'z' || strchr(cmd->options, ch) == NULL) {
			ch = ch == '?' || ch == ':' ? optopt : ch;
			if (ch > ' ' && ch < 0x7f)
				relayctl_warnx("%s: unknown option -%c",
				    cmd->name, ch);
			else
				relayctl_warnx("%s: unknown option",
				    cmd->name);
			return -1;
		}
		args->opts |= CTL_OPT(ch);
	}
	args->argc = argc - optind;
	args->argv = argv + optind;
	if (args->argc < cmd->argmin) {
		relayctl_warnx("%s: missing argument", cmd->name);
		return -1;
	}
	if (args->argc > cmd->argmax) {
		relayctl_warnx("%s: too many arguments", cmd->name);
		return -1;
	}
	return 0;
}

void
parser_cmd_usage(FILE *fp, const struct ctl_cmd *cmd)
{
	fprintf(fp, "usage: relayctl [-H] [-s socket] [-t seconds] %s%s%s\n",
	    cmd->name, cmd->pattern[0] != '\0' ? " " : "", cmd->pattern);
}

void
parser_usage(FILE *fp)
{
	size_t	 i;

	fprintf(fp, "usage: relayctl [-H] [-s socket] [-t seconds] "
	    "command [argument ...]\n");
	fprintf(fp, "commands:\n");
	for (i = 0; i < nitems(parser_cmds); i++)
		fprintf(fp, "\t%s%s%s\n", parser_cmds[i].name,
		    parser_cmds[i].pattern[0] != '\0' ? " " : "",
		    parser_cmds[i].pattern);
}

static int
parser_none(const struct ctl_cmd *cmd, const struct ctl_args *args,
    struct rec_writer *w)
{
	return 0;
}

/* Checks a user name against the USER rule of relay(7) and says why not. */
static int
parser_user(const char *name)
{
	char	*v;

	if (proto_valid_user(name, strlen(name)))
		return 0;
	if ((v = relayctl_vis(name, strlen(name))) == NULL) {
		relayctl_warnx("bad user name");
		return -1;
	}
	relayctl_warnx("bad user name: %s", v);
	free(v);
	return -1;
}

/*
 * Reads one line from standard input, byte by byte so that nothing past
 * the line is consumed and no copy is left in a stdio buffer.  The
 * newline is not part of the password.  Returns its length, or -1.
 */
static ssize_t
parser_read_stdin(char *pw, size_t size)
{
	size_t	 len = 0;
	ssize_t	 n;
	char	 c;

	for (;;) {
		n = read(STDIN_FILENO, &c, 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			relayctl_warnx("standard input: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			if (len == 0) {
				relayctl_warnx("no password on standard "
				    "input");
				return -1;
			}
			break;
		}
		if (c == '\n')
			break;
		if (len == RELAYCTL_PASSWORD_MAX || len + 1 >= size) {
			explicit_bzero(&c, sizeof(c));
			relayctl_warnx("password too long (limit %d bytes)",
			    RELAYCTL_PASSWORD_MAX);
			return -1;
		}
		pw[len++] = c;
	}
	explicit_bzero(&c, sizeof(c));
	pw[len] = '\0';
	return len;
}

/* Asks twice on the terminal, without echo.  Returns the length, or -1. */
static ssize_t
parser_read_tty(const char *name, char *pw, size_t size)
{
	char	 prompt[64 + USER_MAX], again[RELAYCTL_PASSWORD_MAX + 2];
	size_t	 len;
	int	 same;

	(void)snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
	if (readpassphrase(prompt, pw, size, RPP_REQUIRE_TTY) == NULL) {
		relayctl_warnx("cannot read the password: %s (-p reads it "
		    "from standard input)", errno == ENOTTY || errno == ENXIO ?
		    "no terminal" : strerror(errno));
		return -1;
	}
	if (readpassphrase("Retype password: ", again, sizeof(again),
	    RPP_REQUIRE_TTY) == NULL) {
		relayctl_warnx("cannot read the password: %s",
		    strerror(errno));
		explicit_bzero(again, sizeof(again));
		return -1;
	}
	same = strcmp(pw, again) == 0;
	explicit_bzero(again, sizeof(again));
	if (!same) {
		relayctl_warnx("passwords do not match");
		return -1;
	}
	len = strlen(pw);
	/* readpassphrase() truncates silently: a full buffer is refused. */
	if (len > RELAYCTL_PASSWORD_MAX || len + 1 >= size) {
		relayctl_warnx("password too long (limit %d bytes)",
		    RELAYCTL_PASSWORD_MAX);
		return -1;
	}
	return len;
}

/*
 * adduser and passwd: str name, str md5hex.  The MD5 is that of the
 * password's UTF-8 bytes (relay(7)), so input that is not UTF-8 would
 * make a hash no client could ever match, and is refused.
 */
static int
parser_password(const struct ctl_cmd *cmd, const struct ctl_args *args,
    struct rec_writer *w)
{
	const char	*name = args->argv[0];
	char		 pw[RELAYCTL_PASSWORD_MAX + 2];
	char		 hex[MD5_HEX_LEN + 1];
	ssize_t		 len;
	int		 rv = -1;

	if (parser_user(name) == -1)
		return -1;
	if (args->opts & CTL_OPT('p'))
		len = parser_read_stdin(pw, sizeof(pw));
	else
		len = parser_read_tty(name, pw, sizeof(pw));
	if (len == -1)
		goto out;
	if (len == 0) {
		relayctl_warnx("empty password refused");
		goto out;
	}
	if (memchr(pw, '\0', len) != NULL) {
		relayctl_warnx("password contains a NUL byte");
		goto out;
	}
	if (!utf8_valid(pw, len)) {
		relayctl_warnx("password is not valid UTF-8");
		goto out;
	}
	md5_hex(pw, len, hex);
	rec_put_str(w, name, strlen(name));
	rec_put_str(w, hex, MD5_HEX_LEN);
	rv = 0;
 out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(hex, sizeof(hex));
	return rv;
}

/* deluser: str name, u32 remove mailbox. */
static int
parser_deluser(const struct ctl_cmd *cmd, const struct ctl_args *args,
    struct rec_writer *w)
{
	const char	*name = args->argv[0];

	if (parser_user(name) == -1)
		return -1;
	rec_put_str(w, name, strlen(name));
	rec_put_u32(w, (args->opts & CTL_OPT('r')) ? 1 : 0);
	return 0;
}

/*
 * kick: str user or pid.  A PID is all digits, which the USER rule also
 * allows; relayd takes a digits-only argument as a PID.
 */
static int
parser_kick(const struct ctl_cmd *cmd, const struct ctl_args *args,
    struct rec_writer *w)
{
	const char	*arg = args->argv[0];

	if (parser_user(arg) == -1)
		return -1;
	rec_put_str(w, arg, strlen(arg));
	return 0;
}
