/*
 * control.c: the control socket that relayctl(8) talks to.  It owns the
 * socket file (made with mode 0600 under a tight umask, refused when
 * another daemon answers on it, replaced when stale, removed at exit if
 * it is still ours), the connections to it, the check of every peer's
 * credentials, and the commands: users, key, sessions, kick, stats.
 *
 * It lives in the hub, single-threaded, so its changes are serialized
 * with everything else the hub does.  Its descriptors sit in an epoll set
 * of their own, which the hub's loop watches as one descriptor: the hub
 * calls control_dispatch() when it is readable and control_timers() at
 * control_next().  Nothing here blocks on a peer: a connection reads one
 * request (a record of at most REC_MAX bytes), queues the whole reply in
 * a bounded buffer, writes it as the peer takes it, and closes.  Each
 * connection has a deadline, and at most CONTROL_CONN_MAX are open.
 *
 * The users file changes on a copy of the table: the copy is written
 * (userdb_save: temporary file, fsync, rename, directory fsync) and only
 * then replaces the table in use, so a failed write changes nothing.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relayd.h"

#define CONTROL_CONN_MAX	64	/* connections open at once */
#define CONTROL_TIMEOUT_MS	10000	/* from accept to the reply's end */
#define CONTROL_PAUSE_MS	1000	/* accept pause when out of fds */
#define CONTROL_OUT_MAX		(16 * 1024 * 1024)	/* reply bytes */
#define CONTROL_ACCEPT_MAX	16	/* connections taken per event */
#define CONTROL_EVENTS		16
#define CONTROL_BACKLOG		16
#define CONTROL_DELUSER_BYE	"account removed"

struct control_conn {
	TAILQ_ENTRY(control_conn) entry;	/* in accept (= deadline) order */
	int			 fd;
	uid_t			 uid;
	int			 refused;	/* not root nor our uid */
	int			 replying;	/* the reply is queued */
	uint64_t		 deadline;
	struct buf		 in;
	struct buf		 out;
	int			 overflow;	/* the reply did not fit */
};

TAILQ_HEAD(control_conns, control_conn);

static struct control {
	int			 epfd;
	int			 fd;		/* the listening socket */
	int			 accepting;	/* fd is in epfd */
	uint64_t		 accept_resume;	/* 0: not paused */
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t			 dev;		/* of the socket file we made */
	ino_t			 ino;
	struct control_conns	 conns;
	size_t			 nconns;
} control = { .epfd = -1, .fd = -1 };

struct control_cmd {
	uint32_t	 type;
	const char	*name;		/* for the log */
	void		(*fn)(struct control_conn *, struct rec_reader *);
};

static void	control_adduser(struct control_conn *, struct rec_reader *);
static void	control_passwd(struct control_conn *, struct rec_reader *);
static void	control_deluser(struct control_conn *, struct rec_reader *);
static void	control_users(struct control_conn *, struct rec_reader *);
static void	control_key(struct control_conn *, struct rec_reader *);
static void	control_rotate(struct control_conn *, struct rec_reader *);
static void	control_sessions(struct control_conn *, struct rec_reader *);
static void	control_kick(struct control_conn *, struct rec_reader *);
static void	control_stats(struct control_conn *, struct rec_reader *);

static const struct control_cmd control_cmds[] = {
	{ CTL_ADDUSER,	"adduser",	control_adduser },
	{ CTL_PASSWD,	"passwd",	control_passwd },
	{ CTL_DELUSER,	"deluser",	control_deluser },
	{ CTL_USERS,	"users",	control_users },
	{ CTL_KEY,	"key",		control_key },
	{ CTL_ROTATE,	"rotate",	control_rotate },
	{ CTL_SESSIONS,	"sessions",	control_sessions },
	{ CTL_KICK,	"kick",		control_kick },
	{ CTL_STATS,	"stats",	control_stats },
};

static void
control_epoll(int op, int fd, uint32_t events, void *p)
{
	struct epoll_event	 e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.ptr = p;
	if (epoll_ctl(control.epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &e) ==
	    -1)
		fatal("control: epoll_ctl");
}

static void
control_accept_toggle(int on)
{
	if (control.fd == -1 || control.accepting == on)
		return;
	control_epoll(on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, control.fd,
	    EPOLLIN, NULL);
	control.accepting = on;
}

/*
 * 1 when a daemon accepts connections on path, 0 when nothing does (the
 * file is stale or absent); fatal when it cannot tell.
 */
static int
control_answers(const struct sockaddr_un *sun)
{
	int	 fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("control: socket");
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0)
		return 1;
	if (errno == ECONNREFUSED || errno == ENOENT)
		return 0;
	fatal("control: %s", sun->sun_path);
}

/*
 * Makes the control socket at path, before the daemon does anything to
 * its state directory: a second daemon on the same directory stops here.
 * A file left by a daemon that is gone is replaced; anything that is not
 * a socket is left alone and refused.
 */
void
control_init(const char *path)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;

	TAILQ_INIT(&control.conns);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		fatalx("control socket %s: path too long (at most %zu bytes)",
		    path, sizeof(sun.sun_path) - 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			fatalx("control socket %s: exists and is not a socket",
			    path);
		if (control_answers(&sun))
			fatalx("control socket %s: another relayd is running",
			    path);
		if (unlink(path) == -1 && errno != ENOENT)
			fatal("control socket %s: cannot remove the stale one",
			    path);
		log_info("control socket %s: removed a stale one", path);
	} else if (errno != ENOENT)
		fatal("control socket %s", path);

	if ((control.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("control: socket");
	/* The file is born 0600: no moment when others may connect. */
	old = umask(0177);
	if (bind(control.fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("control socket %s: bind", path);
	umask(old);
	if (lstat(path, &st) == -1)
		fatal("control socket %s", path);
	control.dev = st.st_dev;
	control.ino = st.st_ino;
	strlcpy(control.path, path, sizeof(control.path));
	if (listen(control.fd, CONTROL_BACKLOG) == -1)
		fatal("control socket %s: listen", path);
	if ((control.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("control: epoll_create1");
	control_accept_toggle(1);
	log_debug("control socket %s", path);
}

/* The descriptor the hub watches for control events; -1 if none. */
int
control_fd(void)
{
	return control.epfd;
}

static void
control_close(struct control_conn *c)
{
	TAILQ_REMOVE(&control.conns, c, entry);
	control.nconns--;
	if (epoll_ctl(control.epfd, EPOLL_CTL_DEL, c->fd, NULL) == -1)
		log_warn("control: epoll_ctl");
	close(c->fd);
	buf_free(&c->in);	/* wiped: a request may hold a hash */
	buf_free(&c->out);	/* or a reply the key */
	free(c);
	if (control.accept_resume == 0 && !control.accepting &&
	    control.nconns < CONTROL_CONN_MAX)
		control_accept_toggle(1);
}

/* Reply records.  A record that does not fit marks the reply overflowed. */
static void
control_rec_done(struct control_conn *c, struct rec_writer *rw)
{
	if (rec_finish(rw) == -1)
		c->overflow = 1;
}

static void
control_reply_text(struct control_conn *c, uint32_t type, const char *fmt,
    va_list ap)
{
	struct rec_writer	 rw;
	char			 text[512];
	int			 n;

	n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		text[0] = '\0';
	rec_begin(&rw, &c->out, type);
	rec_put_str(&rw, text, strlen(text));
	control_rec_done(c, &rw);
	explicit_bzero(text, sizeof(text));
}

static void
control_ok(struct control_conn *, const char *, ...)
    __attribute__((__format__(printf, 2, 3)));
static void
control_fail(struct control_conn *, const char *, ...)
    __attribute__((__format__(printf, 2, 3)));

static void
control_ok(struct control_conn *c, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	control_reply_text(c, CTL_OK, fmt, ap);
	va_end(ap);
}

static void
control_fail(struct control_conn *c, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	control_reply_text(c, CTL_FAIL, fmt, ap);
	va_end(ap);
}

static void
control_row(struct control_conn *c, const char **cells, uint32_t n)
{
	struct rec_writer	 rw;
	uint32_t		 i;

	if (c->overflow)
		return;
	rec_begin(&rw, &c->out, CTL_ROW);
	rec_put_u32(&rw, n);
	for (i = 0; i < n; i++)
		rec_put_str(&rw, cells[i], strlen(cells[i]));
	control_rec_done(c, &rw);
}

static void
control_end(struct control_conn *c)
{
	struct rec_writer	 rw;

	rec_begin(&rw, &c->out, CTL_END);
	control_rec_done(c, &rw);
}

/* Request fields; each refuses what does not parse, with the reason. */
static int
control_get_user(struct control_conn *c, struct rec_reader *rr, char *name)
{
	const char	*s;
	size_t		 len;

	if (rec_get_str(rr, &s, &len) == -1) {
		control_fail(c, "malformed request");
		return -1;
	}
	if (!proto_valid_user(s, len)) {
		control_fail(c, "bad user name");
		return -1;
	}
	memcpy(name, s, len);
	name[len] = '\0';
	return 0;
}

static int
control_get_md5(struct control_conn *c, struct rec_reader *rr, char *md5)
{
	const char	*s;
	size_t		 len, i;

	if (rec_get_str(rr, &s, &len) == -1) {
		control_fail(c, "malformed request");
		return -1;
	}
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			break;
	if (len != MD5_HEX_LEN || i != len) {
		control_fail(c, "bad password hash (need 32 lowercase hex "
		    "digits)");
		return -1;
	}
	memcpy(md5, s, len);
	md5[len] = '\0';
	return 0;
}

static int
control_get_end(struct control_conn *c, struct rec_reader *rr)
{
	if (rec_end(rr) == -1) {
		control_fail(c, "malformed request (trailing bytes)");
		return -1;
	}
	return 0;
}

/*
 * Writes db to the users file and, once it is there, makes it the table
 * in use (new logins see it at once).  Takes db either way.  Returns 0,
 * or -1 after the FAIL reply.
 */
static int
control_users_commit(struct control_conn *c, struct userdb *db)
{
	char	 err[PATH_MAX + 128];

	if (userdb_save(db, relayd_users_path(), err, sizeof(err)) == -1) {
		log_warnx("control: %s; users file unchanged", err);
		control_fail(c, "cannot write the users file: %s", err);
		userdb_free(db);
		return -1;
	}
	hub_set_users(db);
	return 0;
}

/* A copy of the table in use, or NULL after the FAIL reply. */
static struct userdb *
control_users_copy(struct control_conn *c)
{
	struct userdb	*db;

	if ((db = userdb_dup(hub_userdb())) == NULL) {
		log_warn("control: users table");
		control_fail(c, "out of memory");
	}
	return db;
}

/* adduser and passwd: str name, str md5hex. */
static void
control_setpw(struct control_conn *c, struct rec_reader *rr, int add)
{
	struct userdb	*db;
	char		 name[USER_MAX + 1], md5[MD5_HEX_LEN + 1];
	int		 exists;

	if (control_get_user(c, rr, name) == -1 ||
	    control_get_md5(c, rr, md5) == -1 || control_get_end(c, rr) == -1)
		goto out;
	exists = userdb_lookup(hub_userdb(), name, strlen(name)) != NULL;
	if (add && exists) {
		control_fail(c, "user %s already exists", name);
		goto out;
	}
	if (!add && !exists) {
		control_fail(c, "no user %s", name);
		goto out;
	}
	if ((db = control_users_copy(c)) == NULL)
		goto out;
	if (userdb_add(db, name, md5) == -1) {
		log_warn("control: %s %s", add ? "adduser" : "passwd", name);
		control_fail(c, "%s", strerror(errno));
		userdb_free(db);
		goto out;
	}
	if (control_users_commit(c, db) == -1)
		goto out;
	log_info("control: %s %s (uid %lu)", add ? "added user" :
	    "new password for", name, (unsigned long)c->uid);
	control_ok(c, "%s", "");
 out:
	explicit_bzero(md5, sizeof(md5));
}

static void
control_adduser(struct control_conn *c, struct rec_reader *rr)
{
	control_setpw(c, rr, 1);
}

static void
control_passwd(struct control_conn *c, struct rec_reader *rr)
{
	control_setpw(c, rr, 0);
}

/*
 * deluser: str name, u32 remove mailbox.  The file first, then the
 * sessions, then the mailbox: once the user is out of the table no new
 * login or COMPOSE can reach it.
 */
static void
control_deluser(struct control_conn *c, struct rec_reader *rr)
{
	struct userdb	*db;
	char		 name[USER_MAX + 1];
	uint32_t	 rm;
	int		 n;

	if (control_get_user(c, rr, name) == -1)
		return;
	if (rec_get_u32(rr, &rm) == -1 || rm > 1) {
		control_fail(c, "malformed request");
		return;
	}
	if (control_get_end(c, rr) == -1)
		return;
	if (userdb_lookup(hub_userdb(), name, strlen(name)) == NULL) {
		control_fail(c, "no user %s", name);
		return;
	}
	if ((db = control_users_copy(c)) == NULL)
		return;
	if (userdb_remove(db, name) == -1) {
		control_fail(c, "no user %s", name);
		userdb_free(db);
		return;
	}
	if (control_users_commit(c, db) == -1)
		return;
	n = hub_kick_user(name, CONTROL_DELUSER_BYE);
	log_info("control: removed user %s, %d session%s ended (uid %lu)",
	    name, n, n == 1 ? "" : "s", (unsigned long)c->uid);
	if (rm && spool_remove_user(name) == -1) {
		log_warn("control: mailbox of %s", name);
		control_fail(c, "user %s removed, but not its mailbox: %s",
		    name, strerror(errno));
		return;
	}
	if (rm)
		log_info("control: removed the mailbox of %s", name);
	control_ok(c, "%s", "");
}

static void
control_users(struct control_conn *c, struct rec_reader *rr)
{
	const struct userdb	*db = hub_userdb();
	const char		*name;
	size_t			 i;

	if (control_get_end(c, rr) == -1)
		return;
	for (i = 0; (name = userdb_name(db, i)) != NULL; i++)
		control_row(c, &name, 1);
	control_end(c);
}

static void
control_key(struct control_conn *c, struct rec_reader *rr)
{
	unsigned char	 key[FERNET_KEY_LEN];
	char		 b64[FERNET_KEY_B64LEN + 1];

	if (control_get_end(c, rr) == -1)
		return;
	hub_key(key);
	fernet_key_format(key, b64);
	control_ok(c, "%s", b64);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(b64, sizeof(b64));
}

static void
control_rotate(struct control_conn *c, struct rec_reader *rr)
{
	unsigned char	 key[FERNET_KEY_LEN];
	char		 b64[FERNET_KEY_B64LEN + 1];

	if (control_get_end(c, rr) == -1)
		return;
	if (fernet_key_generate(key) == -1) {
		log_warnx("control: rotate: cannot make a key");
		control_fail(c, "cannot make a key");
		return;
	}
	hub_rotate_key(key);
	fernet_key_format(key, b64);
	control_ok(c, "%s", b64);
	log_info("control: key rotated (uid %lu)", (unsigned long)c->uid);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(b64, sizeof(b64));
}

/* Splits a peer "addr:port" or "[addr]:port" into its two fields. */
static void
control_peer_split(const char *peer, char *addr, size_t addrlen, char *port,
    size_t portlen)
{
	const char	*colon;
	size_t		 n;

	if ((colon = strrchr(peer, ':')) == NULL ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    colon[1] == '\0') {
		strlcpy(addr, peer, addrlen);
		strlcpy(port, "0", portlen);
		return;
	}
	n = colon - peer;
	if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
		peer++;
		n -= 2;
	}
	if (n >= addrlen)
		n = addrlen - 1;
	memcpy(addr, peer, n);
	addr[n] = '\0';
	strlcpy(port, colon + 1, portlen);
}

static void
control_session_row(void *arg, const struct hub_session *s)
{
	struct control_conn	*c = arg;
	char			 pid[24], addr[PEER_MAX], port[8], since[24];
	char			 idle[24], in[24], out[24];
	const char		*cells[8];
	uint64_t		 now = wall_sec(), last;

	last = s->last_active > s->since ? s->last_active : s->since;
	snprintf(pid, sizeof(pid), "%ld", (long)s->pid);
	control_peer_split(s->peer, addr, sizeof(addr), port, sizeof(port));
	snprintf(since, sizeof(since), "%" PRIu64, s->since);
	snprintf(idle, sizeof(idle), "%" PRIu64, now > last ? now - last : 0);
	snprintf(in, sizeof(in), "%" PRIu64, s->frames_in);
	snprintf(out, sizeof(out), "%" PRIu64, s->frames_out);
	cells[0] = pid;
	cells[1] = s->user != NULL ? s->user : "-";
	cells[2] = addr;
	cells[3] = port;
	cells[4] = since;
	cells[5] = idle;
	cells[6] = in;
	cells[7] = out;
	control_row(c, cells, 8);
}

static void
control_sessions(struct control_conn *c, struct rec_reader *rr)
{
	if (control_get_end(c, rr) == -1)
		return;
	hub_sessions(control_session_row, c);
	control_end(c);
}

/* kick: str user or pid.  Digits only is a pid (relayctl(8)). */
static void
control_kick(struct control_conn *c, struct rec_reader *rr)
{
	char		 arg[USER_MAX + 1];
	const char	*errstr;
	long long	 pid;
	int		 n;

	if (control_get_user(c, rr, arg) == -1 ||
	    control_get_end(c, rr) == -1)
		return;
	if (strspn(arg, "0123456789") == strlen(arg)) {
		pid = strtonum(arg, 1, INT_MAX, &errstr);
		n = errstr == NULL && hub_kick_pid((pid_t)pid, "kicked") == 0;
		if (n == 0) {
			control_fail(c, "no session with pid %s", arg);
			return;
		}
	} else if ((n = hub_kick_user(arg, "kicked")) == 0) {
		control_fail(c, "no session of %s", arg);
		return;
	}
	log_info("control: kick %s: %d session%s ended (uid %lu)", arg, n,
	    n == 1 ? "" : "s", (unsigned long)c->uid);
	control_ok(c, "%d session%s ended", n, n == 1 ? "" : "s");
}

static void
control_stat_row(struct control_conn *c, const char *name, uint64_t v)
{
	char		 num[24];
	const char	*cells[2];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	cells[0] = name;
	cells[1] = num;
	control_row(c, cells, 2);
}

static void
control_stats(struct control_conn *c, struct rec_reader *rr)
{
	struct hub_stats	 st;

	if (control_get_end(c, rr) == -1)
		return;
	hub_get_stats(&st);
	control_stat_row(c, "uptime", (mono_ms() - st.started) / 1000);
	control_stat_row(c, "clients", st.clients);
	control_stat_row(c, "clients_peak", st.clients_peak);
	control_stat_row(c, "clients_total", st.clients_total);
	control_stat_row(c, "logins_ok", st.logins_ok);
	control_stat_row(c, "logins_failed", st.logins_failed);
	control_stat_row(c, "frames_relayed", st.frames_relayed);
	control_stat_row(c, "frames_invalid", st.frames_invalid);
	control_stat_row(c, "mailbox_stored", st.mailbox_stored);
	control_end(c);
}

/* Writes what the peer takes of the reply; closes once all of it went. */
static void
control_write(struct control_conn *c)
{
	while (buf_len(&c->out) > 0) {
		if (buf_write(&c->out, c->fd) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			log_debug("control: write: %s", strerror(errno));
			break;
		}
	}
	control_close(c);
}

/* Queues the reply to the request in c->in (one whole record). */
static void
control_request(struct control_conn *c, uint32_t type, struct rec_reader *rr,
    size_t used)
{
	const struct control_cmd	*cmd = NULL;
	uint32_t			 version;
	size_t				 i;

	for (i = 0; i < sizeof(control_cmds) / sizeof(control_cmds[0]); i++)
		if (control_cmds[i].type == type)
			cmd = &control_cmds[i];
	if (c->refused)
		control_fail(c, "permission denied");
	else if (buf_len(&c->in) != used)
		control_fail(c, "one request per connection");
	else if (rec_get_u32(rr, &version) == -1)
		control_fail(c, "malformed request");
	else if (version != CTL_VERSION)
		control_fail(c, "control version %u, relayd speaks %d",
		    version, CTL_VERSION);
	else if (cmd == NULL)
		control_fail(c, "unknown command %u", type);
	else {
		log_debug("control: %s (uid %lu)", cmd->name,
		    (unsigned long)c->uid);
		cmd->fn(c, rr);
	}
	if (c->overflow) {
		buf_free(&c->out);
		c->overflow = 0;
		log_warnx("control: reply to %s over %d bytes",
		    cmd != NULL ? cmd->name : "request", CONTROL_OUT_MAX);
		control_fail(c, "reply too large");
	}
}

/* Reads the request; once it is whole (or broken), queues the reply. */
static void
control_read(struct control_conn *c)
{
	struct rec_reader	 rr;
	uint32_t		 type;
	size_t			 used;
	ssize_t			 n;
	int			 rc, eof = 0;

	for (;;) {
		if ((n = buf_read(&c->in, c->fd)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS)
				break;
			log_debug("control: read: %s", strerror(errno));
			control_close(c);
			return;
		}
		if (n == 0) {
			eof = 1;
			break;
		}
	}
	if ((rc = rec_next(&c->in, &type, &rr, &used)) == -1) {
		log_limited("control: uid %lu: request over %d bytes",
		    (unsigned long)c->uid, REC_MAX);
		control_fail(c, "request too large (at most %d bytes)",
		    REC_MAX);
	} else if (rc == 1)
		control_request(c, type, &rr, used);
	else if (eof) {
		if (buf_len(&c->in) > 0)
			log_limited("control: uid %lu: request cut short",
			    (unsigned long)c->uid);
		control_close(c);
		return;
	} else
		return;
	/* One request per connection: what follows it is not read. */
	buf_free(&c->in);
	c->replying = 1;
	control_epoll(EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);
	control_write(c);
}

/*
 * Takes new connections.  Every peer is checked at once: root and the
 * daemon's own user are served, anyone else is logged and, after its
 * request has been read (so that it sees the answer rather than a
 * broken pipe), told "permission denied".
 */
static void
control_accept(void)
{
	struct control_conn	*c;
	uid_t			 uid;
	gid_t			 gid;
	int			 fd, n;

	for (n = 0; n < CONTROL_ACCEPT_MAX; n++) {
		if (control.nconns >= CONTROL_CONN_MAX) {
			control_accept_toggle(0);
			return;
		}
		fd = hub_accept4(control.fd, NULL, NULL, "control: accept");
		if (fd == ACCEPT_RETRY)
			continue;
		if (fd == ACCEPT_PAUSE) {
			control_accept_toggle(0);
			control.accept_resume = mono_ms() + CONTROL_PAUSE_MS;
		}
		if (fd < 0)
			return;
		if (getpeereid(fd, &uid, &gid) == -1) {
			log_warn("control: getpeereid");
			close(fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			log_warn("control: calloc");
			close(fd);
			continue;
		}
		c->fd = fd;
		c->uid = uid;
		c->refused = uid != 0 && uid != geteuid();
		if (c->refused)
			log_limited("control: connection from uid %lu gid %lu "
			    "refused: only root and uid %lu are served",
			    (unsigned long)uid, (unsigned long)gid,
			    (unsigned long)geteuid());
		c->deadline = mono_ms() + CONTROL_TIMEOUT_MS;
		buf_init(&c->in, REC_HDR_LEN + REC_MAX);
		buf_init(&c->out, CONTROL_OUT_MAX);
		TAILQ_INSERT_TAIL(&control.conns, c, entry);
		control.nconns++;
		control_epoll(EPOLL_CTL_ADD, fd, EPOLLIN, c);
	}
}

/* The hub saw control.epfd readable: handle what is ready. */
void
control_dispatch(void)
{
	struct epoll_event	 evs[CONTROL_EVENTS];
	struct control_conn	*c;
	int			 i, n;

	if ((n = epoll_wait(control.epfd, evs, CONTROL_EVENTS, 0)) == -1) {
		if (errno != EINTR)
			fatal("control: epoll_wait");
		return;
	}
	/* A connection is only ever closed by its own event here. */
	for (i = 0; i < n; i++) {
		if ((c = evs[i].data.ptr) == NULL) {
			control_accept();
			continue;
		}
		if (c->replying)
			control_write(c);
		else
			control_read(c);
	}
}

/* The nearest control deadline (mono_ms), or UINT64_MAX. */
uint64_t
control_next(void)
{
	struct control_conn	*c;
	uint64_t		 next = UINT64_MAX;

	if ((c = TAILQ_FIRST(&control.conns)) != NULL)
		next = c->deadline;
	if (control.accept_resume != 0 && control.accept_resume < next)
		next = control.accept_resume;
	return next;
}

/* Ends connections past their deadline; resumes a paused accept. */
void
control_timers(uint64_t now)
{
	struct control_conn	*c;

	while ((c = TAILQ_FIRST(&control.conns)) != NULL &&
	    c->deadline <= now) {
		log_limited("control: uid %lu: no %s within %d ms; closed",
		    (unsigned long)c->uid, c->replying ? "reply taken" :
		    "whole request", CONTROL_TIMEOUT_MS);
		control_close(c);
	}
	if (control.accept_resume != 0 && control.accept_resume <= now) {
		control.accept_resume = 0;
		if (control.nconns < CONTROL_CONN_MAX)
			control_accept_toggle(1);
	}
}

/*
 * At exit: closes everything and removes the socket file, unless it is
 * no longer the one this daemon made (another daemon's, after ours was
 * removed by hand).
 */
void
control_cleanup(void)
{
	struct control_conn	*c;
	struct stat		 st;

	while ((c = TAILQ_FIRST(&control.conns)) != NULL)
		control_close(c);
	if (control.fd != -1)
		close(control.fd);
	if (control.epfd != -1)
		close(control.epfd);
	control.fd = control.epfd = -1;
	if (control.path[0] != '\0' && lstat(control.path, &st) == 0 &&
	    st.st_dev == control.dev && st.st_ino == control.ino &&
	    unlink(control.path) == -1)
		log_warn("control socket %s", control.path);
	control.path[0] = '\0';
}
