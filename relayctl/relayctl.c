/*
 * relayctl.c: the administration tool's life.  It parses the global
 * options, finds the control socket, builds one CTL_* request with the
 * command table's handler (parser.c), sends it on a fresh connection and
 * reads the reply under one deadline, then prints it: aligned columns
 * with a header for people, tab-separated rows for scripts.
 *
 * relayd is trusted to answer, not to answer well: every reply record is
 * checked against the contract in proto.h, and every byte it sends is
 * made printable before it reaches a terminal.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relayctl.h"

#define RELAYCTL_ROWS_MAX	1000000	/* a sanity bound on one reply */
#define RELAYCTL_NUMBER_MAX	20	/* digits of a uint64_t */

/* One reply, checked, with every string already made printable. */
struct relayctl_reply {
	uint32_t	 type;		/* CTL_OK, CTL_FAIL or CTL_END */
	char		*text;		/* OK text or FAIL reason */
	char		**cells;	/* nrows * ncols */
	size_t		 nrows;
	size_t		 cap;		/* rows allocated */
};

/* One connection to relayd, with the deadline of the whole exchange. */
struct relayctl_conn {
	const char	*path;
	char		*vpath;		/* path made printable */
	int		 fd;
	int		 timeout;	/* seconds; 0 waits for ever */
	struct timespec	 deadline;	/* CLOCK_MONOTONIC */
};

static __dead void	relayctl_usage(void);
static const char	*relayctl_socket(const char *);
static int		 relayctl_remaining(const struct relayctl_conn *);
static int		 relayctl_connect(struct relayctl_conn *);
static int		 relayctl_wait(struct relayctl_conn *, short);
static int		 relayctl_send(struct relayctl_conn *, struct buf *);
static int		 relayctl_bad(const char *, ...)
			    __attribute__((__format__(printf, 1, 2)));
static char		*relayctl_cell(const struct ctl_column *, const char *,
			    size_t, int);
static int		 relayctl_record(const struct ctl_cmd *, uint32_t,
			    struct rec_reader *, struct relayctl_reply *, int);
static int		 relayctl_receive(struct relayctl_conn *,
			    const struct ctl_cmd *, struct relayctl_reply *,
			    int);
static int		 relayctl_print_rows(const struct ctl_cmd *,
			    const struct relayctl_reply *, int);
static void		 relayctl_reply_free(const struct ctl_cmd *,
			    struct relayctl_reply *);

void
relayctl_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	fputs("relayctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/*
 * Returns a printable copy of len bytes: printable ASCII stays, a
 * backslash doubles, tab, newline and carriage return become \t \n \r,
 * and any other byte \xHH.  The result holds no tab, so it is safe in a
 * tab-separated row too.  NULL when out of memory.
 */
char *
relayctl_vis(const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 c;
	char			*out, *p;
	size_t			 i;

	if (len > (SIZE_MAX - 1) / 4 || (out = malloc(len * 4 + 1)) == NULL)
		return NULL;
	for (p = out, i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '\\') {
			*p++ = '\\';
			*p++ = '\\';
		} else if (c >= 0x20 && c < 0x7f)
			*p++ = c;
		else if (c == '\t' || c == '\n' || c == '\r') {
			*p++ = '\\';
			*p++ = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
		} else {
			*p++ = '\\';
			*p++ = 'x';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0xf];
		}
	}
	*p = '\0';
	return out;
}

static __dead void
relayctl_usage(void)
{
	parser_usage(stderr);
	exit(RELAYCTL_EXIT_FAIL);
}

/*
 * The socket when -s is not given: $RELAYCTL_SOCKET if set, else where
 * relayd puts it by default for this user: /run as root, else in the
 * default state directory ($XDG_STATE_HOME/relayd, ~/.local/state/relayd).
 */
static const char *
relayctl_socket(const char *opt)
{
	static char	 path[PATH_MAX];
	const char	*env, *home;
	struct passwd	*pw;
	int		 n;

	if (opt != NULL)
		return opt;
	if ((env = getenv(RELAYCTL_SOCKET_ENV)) != NULL && *env != '\0')
		return env;
	if (geteuid() == 0)
		return RELAYCTL_SOCKET_ROOT;
	if ((env = getenv("XDG_STATE_HOME")) != NULL && *env != '\0')
		n = snprintf(path, sizeof(path), "%s/relayd/%s", env,
		    CTL_SOCKET_NAME);
	else {
		if ((home = getenv("HOME")) == NULL || *home == '\0') {
			if ((pw = getpwuid(geteuid())) == NULL) {
				relayctl_warnx("no home directory: use -s");
				return NULL;
			}
			home = pw->pw_dir;
		}
		n = snprintf(path, sizeof(path), "%s/.local/state/relayd/%s",
		    home, CTL_SOCKET_NAME);
	}
	if (n < 0 || (size_t)n >= sizeof(path)) {
		relayctl_warnx("default socket path too long: use -s");
		return NULL;
	}
	return path;
}

/* Milliseconds left before the deadline: -1 for none, 0 when past. */
static int
relayctl_remaining(const struct relayctl_conn *c)
{
	struct timespec	 now;
	long long	 ms;

	if (c->timeout == 0)
		return -1;
	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return 0;
	ms = (long long)(c->deadline.tv_sec - now.tv_sec) * 1000 +
	    (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * Connects, waiting at most until the deadline: a blocking connect(2)
 * on a Unix socket waits while relayd's backlog is full, and
 * SO_SNDTIMEO bounds that wait.  Returns 0, or -1 once reported.
 */
static int
relayctl_connect(struct relayctl_conn *c)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv;
	int			 ms, flags;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, c->path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		relayctl_warnx("cannot reach relayd at %s: %s", c->vpath,
		    strerror(ENAMETOOLONG));
		return -1;
	}
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		relayctl_warnx("socket: %s", strerror(errno));
		return -1;
	}
	if ((ms = relayctl_remaining(c)) > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		if (setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
		    sizeof(tv)) == -1) {
			relayctl_warnx("setsockopt: %s", strerror(errno));
			return -1;
		}
	}
	while (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EISCONN)
			break;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			relayctl_warnx("cannot reach relayd at %s: no answer "
			    "within %d s", c->vpath, c->timeout);
		else
			relayctl_warnx("cannot reach relayd at %s: %s",
			    c->vpath, strerror(errno));
		return -1;
	}
	if ((flags = fcntl(c->fd, F_GETFL)) == -1 ||
	    fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		relayctl_warnx("fcntl: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Waits for events on the socket until the deadline: 0, or -1 reported. */
static int
relayctl_wait(struct relayctl_conn *c, short events)
{
	struct pollfd	 pfd;
	int		 ms, n;

	for (;;) {
		if ((ms = relayctl_remaining(c)) == 0)
			break;
		pfd.fd = c->fd;
		pfd.events = events;
		pfd.revents = 0;
		if ((n = poll(&pfd, 1, ms)) == -1) {
			if (errno == EINTR)
				continue;
			relayctl_warnx("poll: %s", strerror(errno));
			return -1;
		}
		if (n > 0)
			return 0;
	}
	relayctl_warnx("relayd at %s gave no reply within %d s", c->vpath,
	    c->timeout);
	return -1;
}

static int
relayctl_send(struct relayctl_conn *c, struct buf *req)
{
	while (buf_len(req) > 0) {
		if (relayctl_wait(c, POLLOUT) == -1)
			return -1;
		if (buf_write(req, c->fd) == -1 && errno != EAGAIN &&
		    errno != EWOULDBLOCK && errno != EINTR) {
			relayctl_warnx("cannot reach relayd at %s: %s",
			    c->vpath, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Reports a reply that breaks the contract; always returns -1. */
static int
relayctl_bad(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	fputs("relayctl: bad reply from relayd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

/*
 * One cell of a row, checked against its column and made ready to
 * print: a time becomes local time for people.  NULL if it breaks the
 * contract (reported) or memory runs out.
 */
static char *
relayctl_cell(const struct ctl_column *col, const char *s, size_t len,
    int hflag)
{
	char		 num[RELAYCTL_NUMBER_MAX + 1], out[64];
	const char	*errstr;
	struct tm	 tm;
	time_t		 t;
	size_t		 i;
	char		*v;

	if (col->flags & (COL_NUMBER | COL_TIME)) {
		if (len == 0 || len > RELAYCTL_NUMBER_MAX)
			goto bad;
		for (i = 0; i < len; i++)
			if (s[i] < '0' || s[i] > '9')
				goto bad;
		memcpy(num, s, len);
		num[len] = '\0';
	}
	if ((col->flags & COL_TIME) && !hflag) {
		t = strtonum(num, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		if (localtime_r(&t, &tm) == NULL ||
		    strftime(out, sizeof(out), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			goto bad;
		return strdup(out);
	}
	if ((v = relayctl_vis(s, len)) == NULL)
		relayctl_warnx("out of memory");
	return v;
 bad:
	relayctl_bad("bad %s field", col->name);
	return NULL;
}

/*
 * Checks one reply record and adds it to the reply.  Returns 1 when it
 * ends the reply, 0 when more must follow, -1 on a broken contract
 * (reported).
 */
static int
relayctl_record(const struct ctl_cmd *cmd, uint32_t type,
    struct rec_reader *r, struct relayctl_reply *reply, int hflag)
{
	const char	*s;
	char		**cells;
	size_t		 len, i;
	uint32_t	 n;

	switch (type) {
	case CTL_OK:
		if (cmd->cols != NULL)
			return relayctl_bad("OK to a listing");
		/* FALLTHROUGH */
	case CTL_FAIL:
		if (rec_get_str(r, &s, &len) == -1 || rec_end(r) == -1)
			return relayctl_bad("malformed %s record",
			    type == CTL_OK ? "OK" : "FAIL");
		if ((reply->text = relayctl_vis(s, len)) == NULL) {
			relayctl_warnx("out of memory");
			return -1;
		}
		reply->type = type;
		return 1;
	case CTL_END:
		if (cmd->cols == NULL)
			return relayctl_bad("END without a listing");
		if (rec_end(r) == -1)
			return relayctl_bad("malformed END record");
		reply->type = type;
		return 1;
	case CTL_ROW:
		if (cmd->cols == NULL)
			return relayctl_bad("row without a listing");
		if (rec_get_u32(r, &n) == -1 || n != cmd->ncols)
			return relayctl_bad("row of the wrong width");
		if (reply->nrows == RELAYCTL_ROWS_MAX)
			return relayctl_bad("more than %d rows",
			    RELAYCTL_ROWS_MAX);
		if (reply->nrows == reply->cap) {
			len = reply->cap == 0 ? 64 : reply->cap * 2;
			if ((cells = reallocarray(reply->cells, len,
			    cmd->ncols * sizeof(*cells))) == NULL) {
				relayctl_warnx("out of memory");
				return -1;
			}
			reply->cells = cells;
			reply->cap = len;
		}
		cells = reply->cells + reply->nrows * cmd->ncols;
		for (i = 0; i < cmd->ncols; i++)
			cells[i] = NULL;
		reply->nrows++;		/* so that the cells get freed */
		for (i = 0; i < cmd->ncols; i++) {
			if (rec_get_str(r, &s, &len) == -1)
				return relayctl_bad("malformed row");
			if ((cells[i] = relayctl_cell(&cmd->cols[i], s, len,
			    hflag)) == NULL)
				return -1;
		}
		if (rec_end(r) == -1)
			return relayctl_bad("malformed row");
		return 0;
	default:
		return relayctl_bad("unknown record type %u", type);
	}
}

/*
 * Reads reply records until one ends the reply.  Nothing may follow it in
 * what has arrived; waiting for relayd to close the connection as well
 * would only delay the answer.  Returns 0, -1 on a bad reply or a read
 * error, -2 when the deadline passed (both reported).
 */
static int
relayctl_receive(struct relayctl_conn *c, const struct ctl_cmd *cmd,
    struct relayctl_reply *reply, int hflag)
{
	struct buf		 in;
	struct rec_reader	 r;
	uint32_t		 type;
	size_t			 reclen;
	ssize_t			 n;
	int			 rv = -1, done = 0;

	buf_init(&in, REC_HDR_LEN + REC_MAX);
	while (!done) {
		switch (rec_next(&in, &type, &r, &reclen)) {
		case -1:
			relayctl_bad("record longer than %d bytes", REC_MAX);
			goto out;
		case 0:
			break;
		default:
			done = relayctl_record(cmd, type, &r, reply, hflag);
			if (done == -1)
				goto out;
			buf_drain(&in, reclen);
			continue;
		}
		if (relayctl_wait(c, POLLIN) == -1) {
			rv = -2;
			goto out;
		}
		if ((n = buf_read(&in, c->fd)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				continue;
			if (errno == ECONNRESET) {
				relayctl_bad("connection reset");
				goto out;
			}
			relayctl_warnx("read from %s: %s", c->vpath,
			    strerror(errno));
			goto out;
		}
		if (n == 0) {
			relayctl_bad("%s", buf_len(&in) == 0 && reply->nrows ==
			    0 ? "connection closed without a reply" :
			    "connection closed inside the reply");
			goto out;
		}
	}
	if (buf_len(&in) != 0) {
		relayctl_bad("trailing bytes after the reply");
		goto out;
	}
	rv = 0;
 out:
	buf_free(&in);
	return rv;
}

/* Prints the rows; returns -1 if out of memory (reported). */
static int
relayctl_print_rows(const struct ctl_cmd *cmd,
    const struct relayctl_reply *reply, int hflag)
{
	const char	*cell;
	size_t		*width, i, j, len;
	int		 last;

	if (hflag) {
		for (i = 0; i < reply->nrows; i++)
			for (j = 0; j < cmd->ncols; j++)
				printf("%s%c", reply->cells[i * cmd->ncols +
				    j], j + 1 == cmd->ncols ? '\n' : '\t');
		return 0;
	}
	if ((width = calloc(cmd->ncols, sizeof(*width))) == NULL) {
		relayctl_warnx("out of memory");
		return -1;
	}
	for (j = 0; j < cmd->ncols; j++) {
		width[j] = strlen(cmd->cols[j].name);
		for (i = 0; i < reply->nrows; i++) {
			len = strlen(reply->cells[i * cmd->ncols + j]);
			if (len > width[j])
				width[j] = len;
		}
	}
	/* Row 0 is the header. */
	for (i = 0; i <= reply->nrows; i++) {
		for (j = 0; j < cmd->ncols; j++) {
			cell = i == 0 ? cmd->cols[j].name :
			    reply->cells[(i - 1) * cmd->ncols + j];
			last = j + 1 == cmd->ncols;
			if (cmd->cols[j].flags & (COL_RIGHT | COL_NUMBER))
				printf("%*s", (int)width[j], cell);
			else if (last)
				printf("%s", cell);	/* no trailing blanks */
			else
				printf("%-*s", (int)width[j], cell);
			fputs(last ? "\n" : "  ", stdout);
		}
	}
	free(width);
	return 0;
}

static void
relayctl_reply_free(const struct ctl_cmd *cmd, struct relayctl_reply *reply)
{
	size_t	 i;

	for (i = 0; i < reply->nrows * cmd->ncols; i++)
		free(reply->cells[i]);
	free(reply->cells);
	free(reply->text);
	memset(reply, 0, sizeof(*reply));
}

int
main(int argc, char *argv[])
{
	const struct ctl_cmd	*cmd;
	const char		*sopt = NULL, *errstr;
	struct relayctl_conn	 c;
	struct relayctl_reply	 reply;
	struct ctl_args		 args;
	struct rec_writer	 w;
	struct buf		 req;
	int			 ch, hflag = 0, rv, status;
	char			*v;

	memset(&c, 0, sizeof(c));
	memset(&reply, 0, sizeof(reply));
	c.fd = -1;
	c.timeout = RELAYCTL_TIMEOUT_DEFAULT;

	/* "+": glibc must stop at the command, whose options are its own. */
	while ((ch = getopt(argc, argv, "+Hs:t:")) != -1) {
		switch (ch) {
		case 'H':
			hflag = 1;
			break;
		case 's':
			sopt = optarg;
			break;
		case 't':
			c.timeout = strtonum(optarg, 0, RELAYCTL_TIMEOUT_MAX,
			    &errstr);
			if (errstr != NULL) {
				relayctl_warnx("timeout is %s: %s", errstr,
				    optarg);
				relayctl_usage();
			}
			break;
		default:
			relayctl_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		relayctl_usage();
	if ((cmd = parser_lookup(argv[0])) == NULL) {
		if ((v = relayctl_vis(argv[0], strlen(argv[0]))) != NULL)
			relayctl_warnx("unknown command: %s", v);
		free(v);
		relayctl_usage();
	}
	if (parser_args(cmd, argc, argv, &args) == -1) {
		parser_cmd_usage(stderr, cmd);
		return RELAYCTL_EXIT_FAIL;
	}
	if ((c.path = relayctl_socket(sopt)) == NULL)
		return RELAYCTL_EXIT_FAIL;
	if ((c.vpath = relayctl_vis(c.path, strlen(c.path))) == NULL) {
		relayctl_warnx("out of memory");
		return RELAYCTL_EXIT_FAIL;
	}

	/* relayd going away mid-request is an error to report, not a kill. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		relayctl_warnx("signal: %s", strerror(errno));
		free(c.vpath);
		return RELAYCTL_EXIT_FAIL;
	}

	/*
	 * The request is built first: a password is asked before the clock
	 * of the exchange starts, and only its MD5 is kept, in req, which
	 * buf_free() wipes.
	 */
	buf_init(&req, REC_HDR_LEN + REC_MAX);
	rec_begin(&w, &req, cmd->type);
	rec_put_u32(&w, CTL_VERSION);
	if (cmd->build(cmd, &args, &w) == -1) {
		buf_free(&req);
		free(c.vpath);
		return RELAYCTL_EXIT_FAIL;
	}
	if (rec_finish(&w) == -1) {
		relayctl_warnx("request too large");
		buf_free(&req);
		free(c.vpath);
		return RELAYCTL_EXIT_FAIL;
	}

	if (clock_gettime(CLOCK_MONOTONIC, &c.deadline) == -1) {
		relayctl_warnx("clock_gettime: %s", strerror(errno));
		buf_free(&req);
		free(c.vpath);
		return RELAYCTL_EXIT_FAIL;
	}
	c.deadline.tv_sec += c.timeout;

	status = RELAYCTL_EXIT_UNREACHABLE;
	if (relayctl_connect(&c) == -1 || relayctl_send(&c, &req) == -1) {
		buf_free(&req);
		goto done;
	}
	buf_free(&req);
	rv = relayctl_receive(&c, cmd, &reply, hflag);
	if (rv == -2)
		goto done;
	status = RELAYCTL_EXIT_FAIL;
	if (rv == -1)
		goto done;

	if (reply.type == CTL_FAIL) {
		relayctl_warnx("%s", reply.text[0] != '\0' ? reply.text :
		    "request refused");
		goto done;
	}
	if (reply.type == CTL_OK) {
		if (reply.text[0] != '\0')
			printf("%s\n", reply.text);
	} else if (relayctl_print_rows(cmd, &reply, hflag) == -1)
		goto done;
	if (fflush(stdout) == EOF || ferror(stdout)) {
		relayctl_warnx("standard output: %s", strerror(errno));
		goto done;
	}
	status = RELAYCTL_EXIT_OK;
 done:
	if (c.fd != -1)
		close(c.fd);
	relayctl_reply_free(cmd, &reply);
	free(c.vpath);
	return status;
}
