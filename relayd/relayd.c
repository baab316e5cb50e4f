/*
 * relayd.c: the daemon's entry point.  It reads the command line, sets up
 * the state directory, the secret code, the Fernet key and the users
 * file, opens the listening sockets, prints what a foreground operator
 * needs, daemonises otherwise, and hands over to the hub (hub.c).  It
 * also owns what outlives start-up: the users file's path (for SIGHUP)
 * and the key file (rewritten when the key rotates).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <libutil.h>
#include <limits.h>
#include <netdb.h>
#include <paths.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "relayd.h"

#define RELAYD_SECRET_ENV	"RELAYD_SECRET"
#define RELAYD_SECRET_DIGITS	6	/* a secret made up at first start */
#define RELAYD_BACKLOG		128

struct relayd_limits relayd_limits = {
	.ttl = TTL_DEFAULT,
	.login_grace = LOGIN_GRACE_DEFAULT,
	.rotate_grace = ROTATE_GRACE_DEFAULT,
	.invalid_max = INVALID_MAX_DEFAULT,
	.frame_max = FRAME_MAX_DEFAULT,
	.body_max = BODY_MAX_DEFAULT,
	.mailbox_max = MAILBOX_MAX_DEFAULT,
	.slow_max = SLOW_MAX_DEFAULT,
	.idle_timeout = 0,
	.max_clients = 1000,
	.max_clients_per_source = 16,
	.penalty_grace = 3,
	.penalty_min = 1000,
	.penalty_max = 60 * 1000,
	.penalty_user_max = 10 * 1000,
	.frame_rate = 500,
	.frame_burst = 5000,
};
int		 relayd_debug;

static int	 relayd_title_pad;	/* see relayd_title() */
static char	*relayd_statedir;
static char	*relayd_usersfile;
static char	*relayd_keyfile;	/* where a rotated key is saved */
static int	 relayd_key_fixed;	/* -k: the operator's file */

/*
 * The configuration in force (relayd.h), what the command line said (it
 * overrides the file, at start and at every reload), the file, and the
 * limits as compiled in (what a reload starts from).
 */
struct relayd_conf relayd_conf;
static struct relayd_conf relayd_flags;
static char	*relayd_conffile;
static int	 relayd_conffile_given;	/* -c: a missing file is an error */
static struct relayd_limits relayd_limits_default;
static int	 relayd_pidfile_given;	/* written with -d too */
static struct pidfh *relayd_pidfh;
static int	 relayd_ready_fd = -1;	/* to the parent, once detached */

/* Every -o name is also a relayd.conf keyword (parse.c). */
const struct relayd_option relayd_options[] = {
	{ "ttl",		&relayd_limits.ttl,		1, 86400 * 365 },
	{ "login_grace",	&relayd_limits.login_grace,	1, 86400 },
	{ "rotate_grace",	&relayd_limits.rotate_grace,	0, 86400 },
	{ "invalid_max",	&relayd_limits.invalid_max,	1, 1000000 },
	{ "frame_max",		&relayd_limits.frame_max,	256,
	    16 * 1024 * 1024 },
	{ "body_max",		&relayd_limits.body_max,	1,
	    8 * 1024 * 1024 },
	{ "mailbox_max",	&relayd_limits.mailbox_max,	1, 100000000 },
	{ "slow_max",		&relayd_limits.slow_max,	1024,
	    1024 * 1024 * 1024 },
	{ "idle_timeout",	&relayd_limits.idle_timeout,	0, 86400 * 365 },
	{ "max_clients",	&relayd_limits.max_clients,	1, 1000000 },
	{ "max_clients_per_source", &relayd_limits.max_clients_per_source,
	    1, 1000000 },
	{ "penalty_grace",	&relayd_limits.penalty_grace,	0, 1000000 },
	{ "penalty_min",	&relayd_limits.penalty_min,	1, 86400000 },
	{ "penalty_max",	&relayd_limits.penalty_max,	0, 86400000 },
	{ "penalty_user_max",	&relayd_limits.penalty_user_max, 0, 86400000 },
	{ "frame_rate",		&relayd_limits.frame_rate,	1, 100000000 },
	{ "frame_burst",	&relayd_limits.frame_burst,	1, 100000000 },
};
const size_t relayd_noptions = sizeof(relayd_options) /
    sizeof(relayd_options[0]);

static char	*relayd_abspath(const char *);

static __dead void
usage(void)
{
	fprintf(stderr, "usage: relayd [-dnv] [-c config] [-k keyfile] "
	    "[-l address] [-o name=value]\n"
	    "              [-p port] [-s statedir] [-S secretfile] "
	    "[-u usersfile]\n");
	exit(1);
}

uint64_t
mono_ms(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
wall_sec(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		fatal("clock_gettime");
	return ts.tv_sec < 0 ? 0 : (uint64_t)ts.tv_sec;
}

/*
 * Sets the process title.  It is padded to the length of the original
 * command line: a shorter title makes libbsd mark the old end with a
 * '.', which ps(1) then shows.
 */
void
relayd_title(const char *fmt, ...)
{
	char	 t[128];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(t, sizeof(t), fmt, ap);
	va_end(ap);
	setproctitle("%-*s", relayd_title_pad, t);
}

static void
relayd_set_option(const char *arg)
{
	const char	*eq, *why;

	if ((eq = strchr(arg, '=')) == NULL)
		fatalx("-o %s: expected name=value", arg);
	if (parse_limit(&relayd_flags, arg, eq - arg, eq + 1, &why) != -1)
		return;
	if (strcmp(why, "unknown keyword") == 0)
		fatalx("-o %s: unknown name (%s)", arg, parse_option_names());
	fatalx("-o %s: %s", arg, why);
}

/* A flag that sets what a relayd.conf keyword sets. */
static void
relayd_set_flag(int ch, const char *keyword, const char *value)
{
	const char	*why;
	char		*abs = NULL;

	/* Paths are kept absolute: the daemon moves to /. */
	if (strcmp(keyword, "listen") != 0 && strcmp(keyword, "port") != 0)
		value = abs = relayd_abspath(value);
	if (parse_keyword(&relayd_flags, keyword, value, &why) == -1)
		fatalx("-%c %s: %s", ch, value, why);
	free(abs);
}

static void
relayd_check_limits(void)
{
	char	 why[256];

	if (parse_check_limits(&relayd_limits, why, sizeof(why)) != NULL)
		fatalx("%s", why);
}

/* mkdir -p, each new directory 0700. */
static void
relayd_mkdirs(const char *path)
{
	char	 tmp[PATH_MAX], *p;

	if (strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
		fatalx("%s: path too long", path);
	for (p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) == -1 && errno != EEXIST)
			fatal("mkdir %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", tmp);
}

/* Paths are kept absolute: daemon(3) moves to /. */
static char *
relayd_abspath(const char *path)
{
	char	 cwd[PATH_MAX], *p;

	if (path[0] == '/')
		p = strdup(path);
	else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			fatal("getcwd");
		if (asprintf(&p, "%s/%s", cwd, path) == -1)
			p = NULL;
	}
	if (p == NULL)
		fatal("%s", path);
	return p;
}

static char *
relayd_default_statedir(void)
{
	const char	*xdg, *home;
	struct passwd	*pw;
	char		*dir;

	if (geteuid() == 0)
		dir = strdup(RELAYD_USER_DIR);
	else if ((xdg = getenv("XDG_STATE_HOME")) != NULL && xdg[0] == '/') {
		if (asprintf(&dir, "%s/relayd", xdg) == -1)
			dir = NULL;
	} else {
		if ((home = getenv("HOME")) == NULL || home[0] != '/') {
			if ((pw = getpwuid(geteuid())) == NULL)
				fatalx("cannot find a home directory; use -s");
			home = pw->pw_dir;
		}
		if (asprintf(&dir, "%s/.local/state/relayd", home) == -1)
			dir = NULL;
	}
	if (dir == NULL)
		fatal("state directory");
	return dir;
}

static void
relayd_setup_statedir(void)
{
	struct stat	 st;

	relayd_mkdirs(relayd_statedir);
	if (stat(relayd_statedir, &st) == -1)
		fatal("%s", relayd_statedir);
	if (!S_ISDIR(st.st_mode))
		fatalx("%s: not a directory", relayd_statedir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fatalx("%s: writable by group or others (chmod 700)",
		    relayd_statedir);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warnx("%s: accessible by group or others; 0700 is advised",
		    relayd_statedir);
}

static char *
relayd_path(const char *name)
{
	char	*p;

	if (asprintf(&p, "%s/%s", relayd_statedir, name) == -1)
		fatal("asprintf");
	return p;
}

/*
 * Writes data to path atomically with mode 0600: a temporary file beside
 * it, fsync, rename, fsync of the directory.
 */
static int
relayd_write_file(const char *path, const char *data, size_t len)
{
	char	 tmp[PATH_MAX], dir[PATH_MAX], *slash;
	ssize_t	 n;
	size_t	 off = 0;
	int	 fd, dfd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
	    (long)getpid()) >= sizeof(tmp) ||
	    strlcpy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	while (off < len) {
		if ((n = write(fd, data + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	if ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	} else
		strlcpy(dir, ".", sizeof(dir));
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
 fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

/*
 * Reads the first line of a small file into buf (terminator removed).
 * The file holds a secret: a warning if group or others may read it.
 */
static int
relayd_read_line(const char *path, char *buf, size_t len)
{
	struct stat	 st;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd;
	char		*nl;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		log_warnx("%s: readable by group or others (chmod 600)", path);
	while (got < len - 1) {
		if ((n = read(fd, buf + got, len - 1 - got)) == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			explicit_bzero(buf, len);
			return -1;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	else if (got == len - 1) {
		explicit_bzero(buf, len);
		errno = EFBIG;
		return -1;
	}
	if ((nl = strchr(buf, '\r')) != NULL)
		*nl = '\0';
	return 0;
}

/*
 * The secret code: -S file, else $RELAYD_SECRET (then removed from the
 * environment and wiped, so ps e and /proc/PID/environ do not show it),
 * else STATEDIR/secret, made up with 6 random digits if missing.
 */
static void
relayd_secret(const char *file, char **envp, char *code, size_t len)
{
	char		*v, **e, *path = NULL, digits[RELAYD_SECRET_DIGITS + 2];
	uint32_t	 r;
	size_t		 elen = strlen(RELAYD_SECRET_ENV);
	int		 i;

	if (file != NULL) {
		if (relayd_read_line(file, code, len) == -1)
			fatal("%s", file);
		return;
	}
	if ((v = getenv(RELAYD_SECRET_ENV)) != NULL) {
		if (strlcpy(code, v, len) >= len)
			fatalx("%s: too long", RELAYD_SECRET_ENV);
		explicit_bzero(v, strlen(v));
		if (unsetenv(RELAYD_SECRET_ENV) == -1)
			fatal("unsetenv");
		for (e = envp; e != NULL && *e != NULL; e++)
			if (strncmp(*e, RELAYD_SECRET_ENV, elen) == 0 &&
			    (*e)[elen] == '=')
				explicit_bzero(*e + elen + 1,
				    strlen(*e + elen + 1));
		return;
	}
	path = relayd_path("secret");
	if (relayd_read_line(path, code, len) == 0) {
		free(path);
		return;
	}
	if (errno != ENOENT)
		fatal("%s", path);
	for (i = 0; i < RELAYD_SECRET_DIGITS; i++) {
		/* Rejection sampling: no digit is likelier than another. */
		do {
			random_bytes(&r, sizeof(r));
		} while (r >= UINT32_MAX - UINT32_MAX % 10);
		digits[i] = '0' + r % 10;
	}
	digits[i++] = '\n';
	digits[i] = '\0';
	if (relayd_write_file(path, digits, strlen(digits)) == -1)
		fatal("%s", path);
	digits[RELAYD_SECRET_DIGITS] = '\0';
	strlcpy(code, digits, len);
	explicit_bzero(digits, sizeof(digits));
	log_info("made a new secret code in %s", path);
	free(path);
}

static void
relayd_key(const char *file, unsigned char *key)
{
	char	 line[FERNET_KEY_B64LEN + 8];

	if (file != NULL) {
		if (relayd_read_line(file, line, sizeof(line)) == -1)
			fatal("%s", file);
		if (fernet_key_parse(line, strlen(line), key) == -1)
			fatalx("%s: not a Fernet key (44 characters of "
			    "URL-safe base64)", file);
		explicit_bzero(line, sizeof(line));
		if ((relayd_keyfile = strdup(file)) == NULL)
			fatal("strdup");
		relayd_key_fixed = 1;
		return;
	}
	if (fernet_key_generate(key) == -1)
		fatalx("cannot make a key");
	relayd_keyfile = relayd_path("key");
	if (relayd_key_save(key) == -1)
		fatalx("cannot save the key");
}

/*
 * Saves a key to the key file (after a rotation).  A key given with -k is
 * the operator's file and is left alone: a restart goes back to it.
 */
int
relayd_key_save(const unsigned char *key)
{
	char	 b64[FERNET_KEY_B64LEN + 2];
	int	 rc;

	if (relayd_key_fixed) {
		log_warnx("%s: given with -k, not rewritten", relayd_keyfile);
		return -1;
	}
	fernet_key_format(key, b64);
	b64[FERNET_KEY_B64LEN] = '\n';
	b64[FERNET_KEY_B64LEN + 1] = '\0';
	rc = relayd_write_file(relayd_keyfile, b64, FERNET_KEY_B64LEN + 1);
	if (rc == -1)
		log_warn("%s", relayd_keyfile);
	explicit_bzero(b64, sizeof(b64));
	return rc;
}

static struct userdb *
relayd_users_load(void)
{
	struct userdb	*db;
	char		 err[PATH_MAX + 128];
	int		 fd;

	if ((fd = open(relayd_usersfile, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600)) != -1) {
		log_info("%s: created, empty", relayd_usersfile);
		close(fd);
	} else if (errno != EEXIST)
		fatal("%s", relayd_usersfile);
	if (userdb_load(relayd_usersfile, &db, err, sizeof(err)) == -1)
		fatalx("%s", err);
	return db;
}

const char *
relayd_users_path(void)
{
	return relayd_usersfile;
}

/* SIGHUP: a new table, or the old one kept and the reason logged. */
int
relayd_users_reload(void)
{
	struct userdb	*db;
	char		 err[PATH_MAX + 128];

	if (userdb_load(relayd_usersfile, &db, err, sizeof(err)) == -1) {
		log_warnx("%s; keeping the users loaded before", err);
		return -1;
	}
	hub_set_users(db);
	log_info("%s: %zu users", relayd_usersfile, userdb_count(db));
	return 0;
}

/* $XDG_CONFIG_HOME/relayd/relayd.conf, else ~/.config/...; as root /etc. */
static char *
relayd_default_conffile(void)
{
	const char	*xdg, *home;
	struct passwd	*pw;
	char		*path;

	if (geteuid() == 0)
		path = strdup(RELAYD_CONF_ROOT);
	else if ((xdg = getenv("XDG_CONFIG_HOME")) != NULL && xdg[0] == '/') {
		if (asprintf(&path, "%s/relayd/relayd.conf", xdg) == -1)
			path = NULL;
	} else {
		if ((home = getenv("HOME")) == NULL || home[0] != '/') {
			if ((pw = getpwuid(geteuid())) == NULL)
				fatalx("cannot find a home directory; use -c");
			home = pw->pw_dir;
		}
		if (asprintf(&path, "%s/.config/relayd/relayd.conf", home) ==
		    -1)
			path = NULL;
	}
	if (path == NULL)
		fatal("configuration file");
	return path;
}

static char *
relayd_join(const char *dir, const char *name)
{
	char	*p;

	if (asprintf(&p, "%s/%s", dir, name) == -1)
		fatal("asprintf");
	return p;
}

/* What is not set gets its default (relayd.conf(5)). */
static void
relayd_conf_defaults(struct relayd_conf *c)
{
	/* /run only for the default state directory: others get their own. */
	int	 defstate = c->statedir == NULL;

	if (c->statedir == NULL)
		c->statedir = relayd_default_statedir();
	if (c->usersfile == NULL)
		c->usersfile = relayd_join(c->statedir, "users");
	if (c->control_path == NULL)
		c->control_path = geteuid() == 0 && defstate ?
		    strdup(RELAYD_CONTROL_ROOT) :
		    relayd_join(c->statedir, CTL_SOCKET_NAME);
	if (c->pidfile == NULL)
		c->pidfile = geteuid() == 0 && defstate ?
		    strdup(RELAYD_PIDFILE_ROOT) :
		    relayd_join(c->statedir, "relayd.pid");
	if (c->port == NULL)
		c->port = strdup(RELAY_PORT_STR);
	if (c->user == NULL)
		c->user = strdup(RELAYD_USER);
	if (c->control_path == NULL || c->pidfile == NULL ||
	    c->port == NULL || c->user == NULL)
		fatal("strdup");
	if (c->verbose < 0)
		c->verbose = 0;
	if (c->facility < 0)
		c->facility = LOG_DAEMON;
}

/*
 * Reads the configuration file, puts the command line over it and fills
 * in the defaults.  Returns the number of errors, each logged.
 */
static int
relayd_conf_load(struct relayd_conf *c, int *pidfile_given)
{
	struct relayd_conf	 file;
	char			 why[256];
	int			 errors;

	parse_init(&file);
	errors = parse_file(relayd_conffile, &file, !relayd_conffile_given);
	parse_init(c);
	c->limits = relayd_limits_default;
	parse_merge(c, &file);
	parse_free(&file);
	parse_merge(c, &relayd_flags);
	if (pidfile_given != NULL)
		*pidfile_given = c->pidfile != NULL;
	relayd_conf_defaults(c);
	if (parse_check_limits(&c->limits, why, sizeof(why)) != NULL) {
		log_warnx("%s", why);
		errors++;
	}
	return errors;
}

/*
 * relayd -n: everything start-up would check, with no side effect: no
 * directory, key, secret or users file is created or rewritten, and no
 * socket is bound.  Each problem is logged; returns how many.
 */
static int
relayd_check(const struct relayd_conf *c)
{
	struct addrinfo	 hints, *res;
	struct userdb	*db;
	struct stat	 st;
	unsigned char	 key[FERNET_KEY_LEN];
	char		 line[SECRET_MAX + FERNET_KEY_B64LEN + 8];
	char		 head[HEAD_LEN + 1], err[PATH_MAX + 128], *path;
	const char	*errstr, *v;
	int		 errors = 0, i, gai;

	if (stat(c->statedir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			log_warnx("%s: not a directory", c->statedir);
			errors++;
		} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			log_warnx("%s: writable by group or others (chmod 700)",
			    c->statedir);
			errors++;
		}
	} else if (errno != ENOENT) {
		log_warn("%s", c->statedir);
		errors++;
	}

	path = c->secretfile != NULL ? strdup(c->secretfile) :
	    relayd_join(c->statedir, "secret");
	if (path == NULL)
		fatal("strdup");
	if (c->secretfile == NULL && (v = getenv(RELAYD_SECRET_ENV)) != NULL) {
		if (secret_head(v, head, &errstr) == -1) {
			log_warnx("%s: secret code: %s", RELAYD_SECRET_ENV,
			    errstr);
			errors++;
		}
	} else if (relayd_read_line(path, line, sizeof(line)) == -1) {
		/* A missing STATEDIR/secret is made at start. */
		if (c->secretfile != NULL || errno != ENOENT) {
			log_warn("%s", path);
			errors++;
		}
	} else if (secret_head(line, head, &errstr) == -1) {
		log_warnx("%s: secret code: %s", path, errstr);
		errors++;
	}
	free(path);

	if (c->keyfile != NULL) {
		if (relayd_read_line(c->keyfile, line, sizeof(line)) == -1) {
			log_warn("%s", c->keyfile);
			errors++;
		} else if (fernet_key_parse(line, strlen(line), key) == -1) {
			log_warnx("%s: not a Fernet key (44 characters of "
			    "URL-safe base64)", c->keyfile);
			errors++;
		}
	}
	explicit_bzero(line, sizeof(line));
	explicit_bzero(key, sizeof(key));
	explicit_bzero(head, sizeof(head));

	/* A missing users file is made, empty, at start. */
	if (access(c->usersfile, F_OK) == 0) {
		if (userdb_load(c->usersfile, &db, err, sizeof(err)) == -1) {
			log_warnx("%s", err);
			errors++;
		} else
			userdb_free(db);
	} else if (errno != ENOENT) {
		log_warn("%s", c->usersfile);
		errors++;
	}

	/* As root, sessions run as that user (sandbox.c). */
	if (geteuid() == 0 && getpwnam(c->user) == NULL) {
		log_warnx("user %s does not exist (useradd --system %s)",
		    c->user, c->user);
		errors++;
	}

	for (i = 0; i < c->nlisten; i++) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if ((gai = getaddrinfo(c->listen[i], c->port, &hints,
		    &res)) != 0) {
			log_warnx("listen %s: %s", c->listen[i],
			    gai_strerror(gai));
			errors++;
		} else
			freeaddrinfo(res);
	}
	return errors;
}

/*
 * Takes the pid file before anything is written to the state directory,
 * so that a second relayd says who holds it and changes nothing.
 */
static void
relayd_pidfile_open(void)
{
	pid_t	 other = -1;

	if ((relayd_pidfh = pidfile_open(relayd_conf.pidfile, 0644,
	    &other)) != NULL)
		return;
	if (errno == EEXIST)
		fatalx("%s: another relayd is running (pid %ld)",
		    relayd_conf.pidfile, (long)other);
	fatal("%s", relayd_conf.pidfile);
}

/*
 * Detaches: the parent waits until the child says it is ready (pid file
 * written, listening), then exits 0, so that a service manager sees the
 * pid file as soon as the first process is gone.  If the child dies
 * first, it has said why on stderr, and the parent exits 1.
 */
static void
relayd_daemonize(void)
{
	pid_t	 pid;
	ssize_t	 n;
	int	 p[2], status;
	char	 c;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe2");
	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		close(p[1]);
		do {
			n = read(p[0], &c, 1);
		} while (n == -1 && errno == EINTR);
		if (n == 1)
			_exit(0);
		(void)waitpid(pid, &status, 0);
		if (relayd_pidfh != NULL)
			pidfile_remove(relayd_pidfh);
		_exit(1);
	}
	close(p[0]);
	if (setsid() == -1)
		fatal("setsid");
	relayd_ready_fd = p[1];
}

/* Lets go of the terminal: stdin, stdout and stderr on /dev/null. */
void
relayd_devnull(void)
{
	int	 fd;

	if ((fd = open(_PATH_DEVNULL, O_RDWR | O_CLOEXEC)) == -1)
		fatal("%s", _PATH_DEVNULL);
	if (dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1)
		fatal("dup2");
	if (fd > STDERR_FILENO)
		close(fd);
}

/* The detached child is ready: syslog from now on, and let go of stdio. */
static void
relayd_ready(void)
{
	if (chdir("/") == -1)
		fatal("chdir /");
	relayd_devnull();
	log_init(0, relayd_conf.facility);
	if (write(relayd_ready_fd, "", 1) != 1)
		log_warn("telling the parent");
	close(relayd_ready_fd);
	relayd_ready_fd = -1;
}

static int
relayd_str_differ(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* A reloaded value that only a restart applies: say so, keep the old. */
static void
relayd_keep(const char *what)
{
	log_warnx("cannot change %s while running; restart to apply", what);
}

/*
 * SIGHUP: the configuration file, then the users file.  A file with any
 * error changes nothing.  Limits apply to connections made from now on
 * (a worker keeps those it started with), except frame_max and body_max:
 * every session relays the others' messages, so they must all agree on
 * sizes.  Addresses, directories, files and the user need a restart.
 */
int
relayd_reload(void)
{
	struct relayd_conf	 c;
	const struct relayd_option *o;
	size_t			 i, off;
	long long		 v;
	int			 errors, j, rc = 0, same;

	errors = relayd_conf_load(&c, NULL);
	if (errors > 0) {
		log_warnx("%s: %d error%s; configuration not reloaded, the "
		    "running one is kept", relayd_conffile, errors,
		    errors == 1 ? "" : "s");
		parse_free(&c);
		rc = -1;
		goto users;
	}
	same = c.nlisten == relayd_conf.nlisten;
	for (j = 0; same && j < c.nlisten; j++)
		same = strcmp(c.listen[j], relayd_conf.listen[j]) == 0;
	if (!same)
		relayd_keep("listen");
	if (relayd_str_differ(c.port, relayd_conf.port))
		relayd_keep("port");
	if (relayd_str_differ(c.statedir, relayd_conf.statedir))
		relayd_keep("state_dir");
	if (relayd_str_differ(c.control_path, relayd_conf.control_path))
		relayd_keep("control");
	if (relayd_str_differ(c.user, relayd_conf.user))
		relayd_keep("user");
	if (relayd_str_differ(c.pidfile, relayd_conf.pidfile))
		relayd_keep("pidfile");
	if (relayd_str_differ(c.secretfile, relayd_conf.secretfile))
		relayd_keep("secret_file");
	if (relayd_str_differ(c.keyfile, relayd_conf.keyfile))
		relayd_keep("key_file");
	for (i = 0; i < relayd_noptions; i++) {
		o = &relayd_options[i];
		off = (char *)o->value - (char *)&relayd_limits;
		v = *(long long *)((char *)&c.limits + off);
		if (v == *o->value)
			continue;
		if (strcmp(o->name, "frame_max") == 0 ||
		    strcmp(o->name, "body_max") == 0) {
			relayd_keep(o->name);
			continue;
		}
		log_info("%s %lld (was %lld), for new connections", o->name,
		    v, *o->value);
		*o->value = v;
	}
	relayd_conf.limits = relayd_limits;
	relayd_conf.verbose = c.verbose;
	log_setverbose(c.verbose);
	if (c.facility != relayd_conf.facility) {
		relayd_conf.facility = c.facility;
		if (!relayd_debug) {
			closelog();
			log_init(0, c.facility);
		}
	}
	if (relayd_str_differ(c.usersfile, relayd_conf.usersfile)) {
		log_info("users file now %s", c.usersfile);
		free(relayd_conf.usersfile);
		relayd_conf.usersfile = c.usersfile;
		c.usersfile = NULL;
		free(relayd_usersfile);
		if ((relayd_usersfile = strdup(relayd_conf.usersfile)) == NULL)
			fatal("strdup");
	}
	parse_free(&c);
	log_info("%s: configuration reloaded", relayd_conffile);
 users:
	if (relayd_users_reload() == -1)
		rc = -1;
	return rc;
}

/*
 * Opens the listeners.  With -p 0 the kernel's port for the first socket
 * is used for the others, so every address has the same port.  The
 * default ::1 may be missing (no IPv6): then it is skipped.
 */
static int
relayd_listen(char **addrs, int naddrs, int defaults, const char *port,
    struct hub_listener **lsp)
{
	struct hub_listener	*ls;
	struct addrinfo		 hints, *res, *ai;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 host[NI_MAXHOST], serv[NI_MAXSERV];
	char			 portbuf[16];
	int			 i, n = 0, fd, on = 1, gai;

	if ((ls = calloc(LISTEN_MAX * 4, sizeof(*ls))) == NULL)
		fatal("calloc");
	strlcpy(portbuf, port, sizeof(portbuf));
	for (i = 0; i < naddrs; i++) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if ((gai = getaddrinfo(addrs[i], portbuf, &hints, &res)) != 0)
			fatalx("%s: %s", addrs[i], gai_strerror(gai));
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (n == LISTEN_MAX * 4)
				fatalx("too many listening sockets");
			fd = socket(ai->ai_family, ai->ai_socktype |
			    SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd == -1) {
				if (defaults && (errno == EAFNOSUPPORT ||
				    errno == EPROTONOSUPPORT)) {
					log_info("%s: %s; skipped", addrs[i],
					    strerror(errno));
					continue;
				}
				fatal("socket %s", addrs[i]);
			}
			if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
			    sizeof(on)) == -1)
				fatal("setsockopt");
			if (ai->ai_family == AF_INET6 && setsockopt(fd,
			    IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
				fatal("setsockopt");
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
				if (defaults && errno == EADDRNOTAVAIL) {
					log_info("%s: %s; skipped", addrs[i],
					    strerror(errno));
					close(fd);
					continue;
				}
				if (errno == EADDRINUSE)
					fatalx(ai->ai_family == AF_INET6 ?
					    "cannot listen on [%s]:%s: address "
					    "in use (is another relayd running?)" :
					    "cannot listen on %s:%s: address in "
					    "use (is another relayd running?)",
					    addrs[i], portbuf);
				fatal("bind %s port %s", addrs[i], portbuf);
			}
			if (listen(fd, RELAYD_BACKLOG) == -1)
				fatal("listen %s", addrs[i]);
			sslen = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &sslen) ==
			    -1 || getnameinfo((struct sockaddr *)&ss, sslen,
			    host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
				fatalx("%s: cannot name the socket", addrs[i]);
			ls[n].fd = fd;
			strlcpy(ls[n].addr, host, sizeof(ls[n].addr));
			/* serv is getnameinfo(3)'s NI_NUMERICSERV digits. */
			/* NOLINTNEXTLINE(cert-err34-c) */
			ls[n].port = atoi(serv);
			if (strcmp(portbuf, "0") == 0)
				strlcpy(portbuf, serv, sizeof(portbuf));
			n++;
		}
		freeaddrinfo(res);
	}
	if (n == 0)
		fatalx("no address to listen on");
	*lsp = ls;
	return n;
}

int
main(int argc, char *argv[], char *envp[])
{
	struct hub_listener	*ls;
	struct userdb		*users;
	unsigned char		 key[FERNET_KEY_LEN];
	char			 b64[FERNET_KEY_B64LEN + 1];
	char			 code[SECRET_MAX + 8], head[HEAD_LEN + 1];
	char			*defaddrs[2];
	const char		*errstr;
	int			 ch, nls, checkonly = 0, verbose = 0, errors;
	int			 i;

	setproctitle_init(argc, argv, envp);
	for (i = 0; i < argc; i++)
		relayd_title_pad += strlen(argv[i]) + 1;
	relayd_title_pad -= strlen(getprogname()) + 2;
	if (relayd_title_pad < 0 || relayd_title_pad > 4096)
		relayd_title_pad = 0;
	log_procname("relayd");
	log_init(1, LOG_DAEMON);
	relayd_limits_default = relayd_limits;
	if (relayd_noptions > RELAYD_OPTIONS_MAX)
		fatalx("too many options");
	parse_init(&relayd_flags);

	while ((ch = getopt(argc, argv, "c:dk:l:no:p:s:S:u:v")) != -1) {
		switch (ch) {
		case 'c':
			free(relayd_conffile);
			relayd_conffile = relayd_abspath(optarg);
			relayd_conffile_given = 1;
			break;
		case 'd':
			relayd_debug = 1;
			break;
		case 'k':
			relayd_set_flag(ch, "key_file", optarg);
			break;
		case 'l':
			relayd_set_flag(ch, "listen", optarg);
			break;
		case 'n':
			checkonly = 1;
			break;
		case 'o':
			relayd_set_option(optarg);
			break;
		case 'p':
			relayd_set_flag(ch, "port", optarg);
			break;
		case 's':
			relayd_set_flag(ch, "state_dir", optarg);
			break;
		case 'S':
			relayd_set_flag(ch, "secret_file", optarg);
			break;
		case 'u':
			relayd_set_flag(ch, "users_file", optarg);
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (verbose > 0)
		relayd_flags.verbose = verbose;
	if (relayd_conffile == NULL)
		relayd_conffile = relayd_default_conffile();

	errors = relayd_conf_load(&relayd_conf, &relayd_pidfile_given);
	if (checkonly) {
		errors += relayd_check(&relayd_conf);
		if (errors > 0) {
			fprintf(stderr, "%s: %d error%s\n", relayd_conffile,
			    errors, errors == 1 ? "" : "s");
			exit(1);
		}
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}
	if (errors > 0)
		fatalx("%s: %d error%s", relayd_conffile, errors,
		    errors == 1 ? "" : "s");
	relayd_limits = relayd_conf.limits;
	log_setverbose(relayd_conf.verbose);
	relayd_check_limits();
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal");
	/* Held from here, so a signal sent once we listen waits for the hub. */
	hub_signals_block();
	umask(077);

	if ((relayd_statedir = strdup(relayd_conf.statedir)) == NULL ||
	    (relayd_usersfile = strdup(relayd_conf.usersfile)) == NULL)
		fatal("strdup");
	relayd_setup_statedir();
	/* First: a second daemon on this state directory stops here. */
	control_init(relayd_conf.control_path);
	if (!relayd_debug || relayd_pidfile_given)
		relayd_pidfile_open();
	/*
	 * Detach before anything is loaded: the users table lives in pages
	 * a fork wipes (userdb.c).  Until relayd_ready(), errors still go to
	 * the terminal and the first process exits 1.
	 */
	if (!relayd_debug)
		relayd_daemonize();

	/* Before any other libcrypto call: see fernet_init(). */
	if (fernet_init() == -1)
		fatalx("libcrypto: cannot fetch AES-128-CBC and HMAC");
	if (spool_init(relayd_statedir, &errstr) == -1)
		fatalx("%s/spool: %s", relayd_statedir, errstr);
	if (spool_sweep() == -1)
		fatal("%s/spool", relayd_statedir);
	sandbox_init(relayd_conf.user, spool_dir());
	/* The workers' parent: small, and without the secrets below. */
	spawn_init();
	relayd_secret(relayd_conf.secretfile, envp, code, sizeof(code));
	if (secret_head(code, head, &errstr) == -1)
		fatalx("secret code: %s", errstr);
	relayd_key(relayd_conf.keyfile, key);
	users = relayd_users_load();

	if (relayd_conf.nlisten == 0) {
		defaddrs[0] = "127.0.0.1";
		defaddrs[1] = "::1";
		nls = relayd_listen(defaddrs, 2, 1, relayd_conf.port, &ls);
	} else
		nls = relayd_listen(relayd_conf.listen, relayd_conf.nlisten, 0,
		    relayd_conf.port, &ls);

	if (relayd_debug) {
		if (relayd_pidfh != NULL && pidfile_write(relayd_pidfh) == -1)
			fatal("%s", relayd_conf.pidfile);
		fernet_key_format(key, b64);
		fprintf(stderr, "relayd: key %s\n", b64);
		fprintf(stderr, "relayd: secret %s\n", code);
		for (i = 0; i < nls; i++)
			fprintf(stderr, "relayd: listening on %s port %d\n",
			    ls[i].addr, ls[i].port);
		if (userdb_count(users) == 0)
			fprintf(stderr, "relayd: %s has no users yet: add "
			    "one with: relayctl -s %s adduser NAME\n",
			    relayd_usersfile, relayd_conf.control_path);
		fflush(stderr);
		explicit_bzero(b64, sizeof(b64));
	} else {
		if (pidfile_write(relayd_pidfh) == -1)
			fatal("%s", relayd_conf.pidfile);
		for (i = 0; i < nls; i++)
			log_info("listening on %s port %d", ls[i].addr,
			    ls[i].port);
		relayd_ready();
	}
	explicit_bzero(code, sizeof(code));
	log_info("started, %zu users", userdb_count(users));

	hub_init(ls, nls, users, head, key);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(head, sizeof(head));
	hub_run();
	control_cleanup();
	if (relayd_pidfh != NULL)
		pidfile_remove(relayd_pidfh);
	spool_free();
	free(relayd_statedir);
	free(relayd_usersfile);
	free(relayd_keyfile);
	parse_free(&relayd_conf);
	parse_free(&relayd_flags);
	free(relayd_conffile);
	fernet_fini();
	return 0;
}
