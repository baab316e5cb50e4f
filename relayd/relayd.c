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

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
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
};
int		 relayd_debug;

static int	 relayd_title_pad;	/* see relayd_title() */
static char	*relayd_statedir;
static char	*relayd_usersfile;
static char	*relayd_keyfile;	/* where a rotated key is saved */
static int	 relayd_key_fixed;	/* -k: the operator's file */

static const struct relayd_option {
	const char	*name;
	long long	*value;
	long long	 min;
	long long	 max;
} relayd_options[] = {
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
};

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
	const struct relayd_option	*o;
	const char			*eq, *errstr;
	long long			 v;
	size_t				 i, nlen;

	if ((eq = strchr(arg, '=')) == NULL)
		fatalx("-o %s: expected name=value", arg);
	nlen = eq - arg;
	for (i = 0; i < sizeof(relayd_options) / sizeof(*o); i++) {
		o = &relayd_options[i];
		if (strlen(o->name) != nlen || strncmp(o->name, arg, nlen) != 0)
			continue;
		v = strtonum(eq + 1, o->min, o->max, &errstr);
		if (errstr != NULL)
			fatalx("-o %s: value is %s (%lld to %lld)", arg, errstr,
			    o->min, o->max);
		*o->value = v;
		return;
	}
	fatalx("-o %s: unknown name (ttl, login_grace, rotate_grace, "
	    "invalid_max, frame_max, body_max, mailbox_max, slow_max, "
	    "idle_timeout)", arg);
}

/* Every push must fit in a frame: the largest is a MSG with a full BODY. */
static void
relayd_check_limits(void)
{
	size_t	 push = HEAD_LEN + 1 + SEQ_DIGITS_MAX + 1 + 4 + ID_MAX + 1 +
	    USER_MAX + 1 + 20 + 1 + (size_t)relayd_limits.body_max;

	if (push + 256 > REC_MAX)
		fatalx("body_max %lld: at most %d", relayd_limits.body_max,
		    REC_MAX - 256 - (int)(push - relayd_limits.body_max));
	if (fernet_token_len(push) + 2 > (size_t)relayd_limits.frame_max)
		fatalx("body_max %lld does not fit in frame_max %lld (a body "
		    "of up to %lld bytes would need %zu)",
		    relayd_limits.body_max, relayd_limits.frame_max,
		    relayd_limits.body_max, fernet_token_len(push) + 2);
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
	char			*addrs[LISTEN_MAX], *defaddrs[2];
	const char		*keyfile = NULL, *secretfile = NULL;
	const char		*port = RELAY_PORT_STR, *errstr;
	int			 ch, naddrs = 0, nls, checkonly = 0, verbose = 0;
	int			 i;

	setproctitle_init(argc, argv, envp);
	for (i = 0; i < argc; i++)
		relayd_title_pad += strlen(argv[i]) + 1;
	relayd_title_pad -= strlen(getprogname()) + 2;
	if (relayd_title_pad < 0 || relayd_title_pad > 4096)
		relayd_title_pad = 0;
	log_procname("relayd");
	log_init(1, LOG_DAEMON);

	while ((ch = getopt(argc, argv, "c:dk:l:no:p:s:S:u:v")) != -1) {
		switch (ch) {
		case 'c':
			fatalx("-c %s: configuration files are not supported "
			    "yet; use -o", optarg);
		case 'd':
			relayd_debug = 1;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'l':
			if (naddrs == LISTEN_MAX)
				fatalx("-l: at most %d addresses", LISTEN_MAX);
			addrs[naddrs++] = optarg;
			break;
		case 'n':
			checkonly = 1;
			break;
		case 'o':
			relayd_set_option(optarg);
			break;
		case 'p':
			(void)strtonum(optarg, 0, 65535, &errstr);
			if (errstr != NULL)
				fatalx("-p %s: port is %s", optarg, errstr);
			port = optarg;
			break;
		case 's':
			free(relayd_statedir);
			relayd_statedir = relayd_abspath(optarg);
			break;
		case 'S':
			secretfile = optarg;
			break;
		case 'u':
			free(relayd_usersfile);
			relayd_usersfile = relayd_abspath(optarg);
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
	log_setverbose(verbose);
	relayd_check_limits();
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal");
	/* Held from here, so a signal sent once we listen waits for the hub. */
	hub_signals_block();
	umask(077);

	if (relayd_statedir == NULL)
		relayd_statedir = relayd_default_statedir();
	else if (relayd_statedir[0] != '/')
		fatalx("%s: state directory must be absolute", relayd_statedir);
	relayd_setup_statedir();
	if (relayd_usersfile == NULL)
		relayd_usersfile = relayd_path("users");

	relayd_secret(secretfile, envp, code, sizeof(code));
	if (secret_head(code, head, &errstr) == -1)
		fatalx("secret code: %s", errstr);
	relayd_key(keyfile, key);
	users = relayd_users_load();
	if (spool_init(relayd_statedir, &errstr) == -1)
		fatalx("%s/spool: %s", relayd_statedir, errstr);
	if (spool_sweep() == -1)
		fatal("%s/spool", relayd_statedir);

	if (checkonly) {
		fprintf(stderr, "configuration OK\n");
		explicit_bzero(code, sizeof(code));
		explicit_bzero(key, sizeof(key));
		userdb_free(users);
		exit(0);
	}

	if (naddrs == 0) {
		defaddrs[0] = "127.0.0.1";
		defaddrs[1] = "::1";
		nls = relayd_listen(defaddrs, 2, 1, port, &ls);
	} else
		nls = relayd_listen(addrs, naddrs, 0, port, &ls);

	if (relayd_debug) {
		fernet_key_format(key, b64);
		fprintf(stderr, "relayd: key %s\n", b64);
		fprintf(stderr, "relayd: secret %s\n", code);
		for (i = 0; i < nls; i++)
			fprintf(stderr, "relayd: listening on %s port %d\n",
			    ls[i].addr, ls[i].port);
		if (userdb_count(users) == 0)
			fprintf(stderr, "relayd: %s has no users yet: add a "
			    "line NAME:MD5HEX (printf %%s PASSWORD | md5sum), "
			    "then kill -HUP %ld\n", relayd_usersfile,
			    (long)getpid());
		fflush(stderr);
		explicit_bzero(b64, sizeof(b64));
	} else {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(0, LOG_DAEMON);
	}
	explicit_bzero(code, sizeof(code));
	log_info("started, %zu users", userdb_count(users));

	hub_init(ls, nls, users, head, key);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(head, sizeof(head));
	hub_run();
	spool_free();
	free(relayd_statedir);
	free(relayd_usersfile);
	free(relayd_keyfile);
	return 0;
}
