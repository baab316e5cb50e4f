/*
 * session.c: the protocol as a client speaks it, and the event loop.  It
 * sends HELLO and LOGIN, keeps the queue of commands awaiting their reply
 * (replies come in order, so the queue says what each reply answers),
 * turns replies and pushes into events for the front end, shows each MSG
 * and RECEIPT once (de-duplicated by ID) and ACKs it only after the front
 * end has shown it, follows KEY rotations, and decides the exit status.
 */
#include <sys/types.h>
#include <sys/tree.h>
#include <sys/queue.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay.h"

/*
 * libbsd's tree.h marks its static helpers __unused but leaves the macro
 * undefined (it clashes with a glibc struct member name elsewhere).
 */
#ifndef __unused
#define __unused	__attribute__((__unused__))
#endif

enum session_state {
	S_HELLO,	/* HELLO sent, waiting with a deadline */
	S_LOGIN,	/* LOGIN sent */
	S_READY,	/* logged in: input flows */
	S_DRAIN,	/* quitting: waiting for every reply */
	S_EXIT,		/* EXIT sent */
	S_DONE
};

enum pending_kind {
	P_HELLO,
	P_LOGIN,
	P_USER,		/* a command the user gave: its reply is shown */
	P_ACK,		/* our own ACK after showing an item: silent */
	P_EXIT,
	P_LOCAL		/* refused before sending: shown in its turn */
};

/* Consecutive ACKs share one entry, so a big READ needs few entries. */
struct pending {
	enum pending_kind	 kind;
	char			 verb[VERB_MAX + 1];
	const char		*why;		/* P_LOCAL */
	unsigned int		 n;
};

struct seen {
	RB_ENTRY(seen)		 entry;
	TAILQ_ENTRY(seen)	 order;
	char			 id[ID_MAX + 1];
};
RB_HEAD(seen_tree, seen);
TAILQ_HEAD(seen_list, seen);

struct session {
	struct conn		*conn;
	struct options		*opts;
	const struct frontend	*fe;
	enum session_state	 state;
	struct pending		 pend[PENDING_MAX];
	size_t			 pfirst, pcount;
	struct seen_tree	 seen;
	struct seen_list	 seenorder;
	size_t			 nseen;
	struct timespec		 deadline;	/* 0: none */
	int			 status;
	int			 refused;
	int			 invalid;
	char			 msg[512];	/* why it ended */
};

static volatile sig_atomic_t	 session_sigquit;
static volatile sig_atomic_t	 session_sigwinch;

static int
seen_cmp(struct seen *a, struct seen *b)
{
	return strcmp(a->id, b->id);
}
RB_GENERATE_STATIC(seen_tree, seen, entry, seen_cmp)

struct session *
session_new(struct conn *c, struct options *o)
{
	struct session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conn = c;
	s->opts = o;
	RB_INIT(&s->seen);
	TAILQ_INIT(&s->seenorder);
	return s;
}

void
session_free(struct session *s)
{
	struct seen	*e;

	if (s == NULL)
		return;
	while ((e = TAILQ_FIRST(&s->seenorder)) != NULL) {
		TAILQ_REMOVE(&s->seenorder, e, order);
		free(e);
	}
	free(s);
}

int
session_refused(const struct session *s)
{
	return s->refused;
}

int
session_ready(const struct session *s)
{
	return s->state == S_READY;
}

static int
session_emit(struct session *s, struct event *ev)
{
	if (s->fe == NULL || s->fe->event == NULL)
		return -1;
	return s->fe->event(s->fe->arg, ev);
}

void
session_warnx(struct session *s, const char *fmt, ...)
{
	struct event	 ev;
	char		 text[512];
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_NOTICE;
	ev.text = text;
	ev.textlen = strlen(text);
	session_emit(s, &ev);
}

/* End the session with status and a reason for stderr. */
static void
session_end(struct session *s, int status, const char *fmt, ...)
    __attribute__((__format__(printf, 3, 4)));

static void
session_end(struct session *s, int status, const char *fmt, ...)
{
	va_list	 ap;

	if (s->state == S_DONE)
		return;
	s->state = S_DONE;
	s->status = status;
	s->msg[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		(void)vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
		va_end(ap);
	}
}

static void
session_deadline(struct session *s, int seconds)
{
	if (clock_gettime(CLOCK_MONOTONIC, &s->deadline) == -1)
		s->deadline.tv_sec = 0;
	s->deadline.tv_sec += seconds;
}

static int
pending_push(struct session *s, enum pending_kind kind, const char *verb)
{
	struct pending	*p;

	if (s->pcount > 0) {
		p = &s->pend[(s->pfirst + s->pcount - 1) % PENDING_MAX];
		if (kind == P_ACK && p->kind == P_ACK && p->n < UINT_MAX) {
			p->n++;
			return 0;
		}
	}
	if (s->pcount == PENDING_MAX)
		return -1;
	p = &s->pend[(s->pfirst + s->pcount) % PENDING_MAX];
	p->kind = kind;
	p->why = NULL;
	p->n = 1;
	(void)strlcpy(p->verb, verb, sizeof(p->verb));
	s->pcount++;
	return 0;
}

/* What the reply in hand answers; -1 if nothing was asked. */
static int
pending_pop(struct session *s, struct pending *out)
{
	struct pending	*p;

	if (s->pcount == 0)
		return -1;
	p = &s->pend[s->pfirst];
	*out = *p;
	if (--p->n == 0) {
		s->pfirst = (s->pfirst + 1) % PENDING_MAX;
		s->pcount--;
	}
	return 0;
}

/* Show the local refusals that have come to the front of the queue. */
static void
session_flush_local(struct session *s)
{
	struct pending	 p;
	struct event	 ev;

	while (s->pcount > 0 && s->pend[s->pfirst].kind == P_LOCAL) {
		(void)pending_pop(s, &p);
		memset(&ev, 0, sizeof(ev));
		ev.type = EV_ERR;
		ev.verb = p.verb;
		ev.text = p.why != NULL ? p.why : "refused";
		ev.textlen = strlen(ev.text);
		(void)session_emit(s, &ev);
	}
}

/* Room for one more user command, with slack for our own ACKs. */
int
session_can_send(const struct session *s)
{
	return s->state == S_READY && s->pcount < PENDING_MAX - 8 &&
	    conn_queued(s->conn) < OUT_MAX / 2;
}

static int
session_send_exit(struct session *s)
{
	if (conn_send(s->conn, "EXIT") == -1 ||
	    pending_push(s, P_EXIT, "EXIT") == -1) {
		session_end(s, EXIT_LOCAL, "cannot send EXIT: %s",
		    strerror(errno));
		return -1;
	}
	s->state = S_EXIT;
	session_deadline(s, s->opts->timeout);
	return 0;
}

/*
 * Stop taking input; once every reply is in, say EXIT.  Before login
 * there is nothing to wait for.
 */
void
session_quit(struct session *s)
{
	if (s->state == S_DONE || s->state == S_DRAIN || s->state == S_EXIT)
		return;
	if (s->state != S_READY) {
		session_end(s, EXIT_LOCAL, "interrupted");
		return;
	}
	s->state = S_DRAIN;
	session_deadline(s, s->opts->timeout * 2);
	if (s->pcount == 0)
		(void)session_send_exit(s);
}

static int
session_seen(struct session *s, const char *id)
{
	struct seen	 key, *e;

	if (strlcpy(key.id, id, sizeof(key.id)) >= sizeof(key.id))
		return 0;
	if (RB_FIND(seen_tree, &s->seen, &key) != NULL)
		return 1;
	if (s->nseen == SEEN_MAX) {
		e = TAILQ_FIRST(&s->seenorder);
		TAILQ_REMOVE(&s->seenorder, e, order);
		RB_REMOVE(seen_tree, &s->seen, e);
		s->nseen--;
	} else if ((e = malloc(sizeof(*e))) == NULL)
		return 0;	/* show it again rather than lose it */
	memcpy(e->id, key.id, sizeof(e->id));
	RB_INSERT(seen_tree, &s->seen, e);
	TAILQ_INSERT_TAIL(&s->seenorder, e, order);
	s->nseen++;
	return 0;
}

/*
 * Cut args into n fields at single spaces; the last takes the rest (a
 * BODY may hold spaces).  Fields are terminated in place.
 */
static int
session_fields(char *args, char **f, int n)
{
	int	 i;
	char	*sp;

	for (i = 0; i < n; i++) {
		if (args == NULL || *args == '\0')
			return -1;
		f[i] = args;
		if (i == n - 1)
			break;
		if ((sp = strchr(args, ' ')) == NULL)
			return -1;
		*sp = '\0';
		args = sp + 1;
	}
	return 0;
}

static int
session_time(const char *s, time_t *t)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(s, 0, LLONG_MAX, &errstr);
	if (errstr != NULL)
		return -1;
	*t = (time_t)v;
	return 0;
}

static void
session_hello(struct session *s, char *args)
{
	char	*f[2];
	char	 proof[PROOF_LEN + 1];

	if (session_fields(args, f, 2) == -1 ||
	    strcmp(f[0], RELAY_PROTO_NAME) != 0 ||
	    !proto_valid_nonce(f[1], strlen(f[1]))) {
		session_end(s, EXIT_LOGIN, "the server speaks another "
		    "protocol");
		return;
	}
	if (login_proof(s->opts->password_md5, f[1], proof) != 0) {
		session_end(s, EXIT_LOCAL, "cannot compute the login proof");
		return;
	}
	if (conn_send(s->conn, "LOGIN %s %s", s->opts->user, proof) == -1 ||
	    pending_push(s, P_LOGIN, "LOGIN") == -1) {
		explicit_bzero(proof, sizeof(proof));
		session_end(s, EXIT_LOCAL, "cannot send LOGIN");
		return;
	}
	explicit_bzero(proof, sizeof(proof));
	s->state = S_LOGIN;
	session_deadline(s, s->opts->timeout);
}

/* OK and ERR: the final reply to the oldest command. */
static void
session_reply(struct session *s, int ok, char *args)
{
	struct pending	 p;
	struct event	 ev;
	char		*verb = args, *rest = NULL, *sp;
	const char	*errstr;

	if ((sp = strchr(args, ' ')) != NULL) {
		*sp = '\0';
		rest = sp + 1;
	}
	if (pending_pop(s, &p) == -1) {
		session_warnx(s, "unexpected reply %s %s", ok ? "OK" : "ERR",
		    verb);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = ok ? EV_OK : EV_ERR;
	ev.verb = verb;
	ev.text = rest != NULL ? rest : "";
	ev.textlen = strlen(ev.text);
	switch (p.kind) {
	case P_HELLO:
		session_end(s, EXIT_LOGIN, "the server refused HELLO: %s",
		    ev.text);
		return;
	case P_LOGIN:
		if (!ok) {
			session_end(s, EXIT_LOGIN, "login refused: %s",
			    ev.text);
			return;
		}
		explicit_bzero(s->opts->password_md5,
		    sizeof(s->opts->password_md5));
		ev.type = EV_LOGIN;
		ev.count = (uint64_t)strtonum(ev.text, 0, LLONG_MAX, &errstr);
		s->state = S_READY;
		s->deadline.tv_sec = 0;
		session_emit(s, &ev);
		if (s->fe->ready != NULL)
			s->fe->ready(s->fe->arg, s);
		return;
	case P_ACK:
		return;		/* another session may have ACKed it first */
	case P_EXIT:
		session_end(s, EXIT_OK, NULL);
		return;
	case P_USER:
	case P_LOCAL:		/* flushed before any reply is read */
		break;
	}
	if (!ok)
		s->refused++;
	if (ok && strcmp(verb, "WHO") == 0) {
		ev.type = EV_WHO;
		/* Skip the count: the names follow it. */
		if (rest != NULL && (sp = strchr(rest, ' ')) != NULL)
			ev.text = sp + 1;
		else
			ev.text = "";
		ev.textlen = strlen(ev.text);
	}
	session_emit(s, &ev);
}

/* MSG and RECEIPT: show once, then ACK. */
static void
session_item(struct session *s, int msg, char *args, size_t len)
{
	struct event	 ev;
	char		*f[4];
	const char	*id;

	memset(&ev, 0, sizeof(ev));
	if (s->state != S_READY && s->state != S_DRAIN)
		return;		/* it stays in the mailbox for next time */
	if (msg) {
		if (session_fields(args, f, 4) == -1 ||
		    session_time(f[2], &ev.time) == -1)
			goto bad;
		ev.type = EV_MSG;
		ev.id = f[0];
		ev.from = f[1];
		ev.text = f[3];
		ev.textlen = len - (size_t)(f[3] - args);
	} else {
		if (session_fields(args, f, 4) == -1 ||
		    session_time(f[3], &ev.time) == -1)
			goto bad;
		ev.type = EV_RECEIPT;
		ev.id = f[0];
		ev.msgid = f[1];
		ev.from = f[2];
	}
	id = ev.id;
	if (!proto_valid_id(id, strlen(id)))
		goto bad;
	if (session_seen(s, id))
		return;
	if (session_emit(s, &ev) == -1)
		return;		/* not shown: it stays in the mailbox */
	if (conn_send(s->conn, "ACK %s", id) == -1 ||
	    pending_push(s, P_ACK, "ACK") == -1)
		session_warnx(s, "cannot acknowledge %s now", id);
	return;
bad:
	session_warnx(s, "malformed %s from the server", msg ? "MSG" :
	    "RECEIPT");
}

static void
session_frame(struct session *s, char *rest, size_t len)
{
	struct event	 ev;
	struct pending	 p;
	char		*verb = rest, *args = NULL, *sp, *f[3];
	size_t		 alen = 0;

	if ((sp = strchr(rest, ' ')) != NULL) {
		*sp = '\0';
		args = sp + 1;
		alen = len - (size_t)(args - rest);
	}
	memset(&ev, 0, sizeof(ev));
	if (strcmp(verb, "BYE") == 0) {
		ev.type = EV_BYE;
		ev.text = args != NULL ? args : "";
		ev.textlen = args != NULL ? alen : 0;
		session_emit(s, &ev);
		session_end(s, EXIT_BYE, "the server closed the connection");
		return;
	}
	if (s->state == S_HELLO) {
		/* Only the HELLO reply (or a BYE) can come now. */
		if (strcmp(verb, "HELLO") == 0 && pending_pop(s, &p) == 0)
			session_hello(s, args);
		else if (strcmp(verb, "ERR") == 0 && args != NULL)
			session_reply(s, 0, args);
		return;
	}
	if ((strcmp(verb, "OK") == 0 || strcmp(verb, "ERR") == 0) &&
	    args != NULL)
		session_reply(s, verb[0] == 'O', args);
	else if (strcmp(verb, "SAY") == 0) {
		if (session_fields(args, f, 3) == -1 ||
		    session_time(f[1], &ev.time) == -1) {
			session_warnx(s, "malformed SAY from the server");
			return;
		}
		ev.type = EV_SAY;
		ev.from = f[0];
		ev.text = f[2];
		ev.textlen = alen - (size_t)(f[2] - args);
		session_emit(s, &ev);
	} else if (strcmp(verb, "MSG") == 0 && args != NULL)
		session_item(s, 1, args, alen);
	else if (strcmp(verb, "RECEIPT") == 0 && args != NULL)
		session_item(s, 0, args, alen);
	else if (strcmp(verb, "KEY") == 0 && args != NULL) {
		if (conn_setkey(s->conn, args) == -1)
			session_warnx(s, "the server sent a bad new key");
	} else if (strcmp(verb, "PONG") == 0) {
		if (pending_pop(s, &p) == 0 && p.kind == P_USER) {
			ev.type = EV_PONG;
			ev.verb = "PING";
			ev.text = args != NULL ? args : "";
			ev.textlen = strlen(ev.text);
			session_emit(s, &ev);
		}
	} else
		session_warnx(s, "unknown %.16s from the server", verb);
	session_flush_local(s);
	if (s->state == S_DRAIN && s->pcount == 0)
		(void)session_send_exit(s);
}

static void
session_sig(int sig)
{
	if (sig == SIGWINCH)
		session_sigwinch = 1;
	else
		session_sigquit++;
}

static int
session_signals(sigset_t *old)
{
	struct sigaction	 sa;
	sigset_t		 set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = session_sig;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &set, old) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGWINCH, &sa, NULL) == -1)
		return -1;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		return -1;
	return 0;
}

/* Milliseconds to the deadline, -1 for none, 0 when it passed. */
static int
session_timeout(const struct session *s)
{
	struct timespec	 now;
	long long	 ms;

	if (s->deadline.tv_sec == 0)
		return -1;
	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return 0;
	ms = (long long)(s->deadline.tv_sec - now.tv_sec) * 1000 +
	    (s->deadline.tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void
session_expired(struct session *s)
{
	switch (s->state) {
	case S_HELLO:
		session_end(s, EXIT_NOANSWER, "no answer: the key or the "
		    "secret code is probably wrong");
		break;
	case S_LOGIN:
		session_end(s, EXIT_LOST, "no answer to LOGIN");
		break;
	case S_DRAIN:
	case S_EXIT:
		session_end(s, EXIT_LOST, "no answer from the server while "
		    "quitting");
		break;
	default:
		s->deadline.tv_sec = 0;
		break;
	}
}

static void
session_readable(struct session *s)
{
	char	*rest;
	size_t	 len;
	ssize_t	 n;
	int	 rc;

	n = conn_read(s->conn);
	/* Handle every complete frame, even those before an EOF. */
	while (s->state != S_DONE && (rc = conn_next(s->conn, &rest,
	    &len)) != 0) {
		if (rc == -2) {
			if (++s->invalid <= 3)
				session_warnx(s, "dropped an invalid frame "
				    "from the server");
			continue;
		}
		s->invalid = 0;
		session_frame(s, rest, len);
	}
	if (s->state == S_DONE)
		return;
	if (n == 0) {
		if (s->state == S_EXIT)
			session_end(s, EXIT_OK, NULL);
		else if (s->state == S_HELLO)
			session_end(s, EXIT_NOANSWER, "no answer: the key or "
			    "the secret code is probably wrong (the server "
			    "closed the connection)");
		else
			session_end(s, EXIT_LOST, "connection lost");
	} else if (n == -1)
		session_end(s, EXIT_LOST, "connection lost: %s",
		    strerror(errno));
}

/*
 * Run the session with front end fe until it ends; returns the exit
 * status, and the reason is printed to stderr by the caller through
 * session_reason().
 */
int
session_run(struct session *s, const struct frontend *fe)
{
	struct pollfd	 pfd[2];
	sigset_t	 old;
	nfds_t		 n;
	int		 rc, tmo;
	int		 ineof = 0;

	s->fe = fe;
	if (session_signals(&old) == -1) {
		session_end(s, EXIT_LOCAL, "signals: %s", strerror(errno));
		return s->status;
	}
	if (conn_send(s->conn, "HELLO %s", RELAY_PROTO_NAME) == -1 ||
	    pending_push(s, P_HELLO, "HELLO") == -1) {
		session_end(s, EXIT_LOCAL, "cannot send HELLO");
		return s->status;
	}
	s->state = S_HELLO;
	session_deadline(s, s->opts->timeout);
	while (s->state != S_DONE) {
		pfd[0].fd = conn_fd(s->conn);
		pfd[0].events = POLLIN;
		if (conn_want_write(s->conn))
			pfd[0].events |= POLLOUT;
		pfd[0].revents = 0;
		n = 1;
		if (!ineof && fe->buffered != NULL && fe->buffered(fe->arg) &&
		    session_can_send(s)) {
			if (fe->input(fe->arg, s) == -1) {
				ineof = 1;
				session_quit(s);
			}
			continue;
		}
		if (fe->infd != -1 && !ineof && session_can_send(s)) {
			pfd[1].fd = fe->infd;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			n = 2;
		}
		tmo = session_timeout(s);
		if (tmo == 0) {
			session_expired(s);
			continue;
		}
		{
			struct timespec	 ts, *tsp = NULL;

			if (tmo > 0) {
				ts.tv_sec = tmo / 1000;
				ts.tv_nsec = (long)(tmo % 1000) * 1000000;
				tsp = &ts;
			}
			rc = ppoll(pfd, n, tsp, &old);
		}
		if (rc == -1 && errno != EINTR) {
			session_end(s, EXIT_LOCAL, "poll: %s",
			    strerror(errno));
			break;
		}
		if (session_sigwinch) {
			session_sigwinch = 0;
			if (fe->winch != NULL)
				fe->winch(fe->arg);
		}
		if (session_sigquit) {
			/* A second signal while quitting ends it at once. */
			session_sigquit = 0;
			if (s->state != S_READY)
				session_end(s, EXIT_LOCAL, "interrupted");
			else
				session_quit(s);
		}
		if (rc <= 0)
			continue;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			session_readable(s);
		if (s->state != S_DONE && (pfd[0].revents & POLLOUT) &&
		    conn_flush(s->conn) == -1)
			session_end(s, EXIT_LOST, "connection lost: %s",
			    strerror(errno));
		if (s->state != S_DONE && n == 2 &&
		    (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (fe->input(fe->arg, s) == -1) {
				ineof = 1;
				session_quit(s);
			}
		}
		/* Send what input queued without waiting for a poll. */
		if (s->state != S_DONE && conn_want_write(s->conn) &&
		    conn_flush(s->conn) == -1)
			session_end(s, EXIT_LOST, "connection lost: %s",
			    strerror(errno));
	}
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	return s->status;
}

const char *
session_reason(const struct session *s)
{
	return s->msg[0] != '\0' ? s->msg : NULL;
}

/* Body checks done before anything is sent. */
static void	 session_local_err(struct session *, const char *,
		    const char *);

static int
session_body(struct session *s, const char *verb, const char *body,
    size_t n)
{
	const char	*why = NULL;

	if (n == 0)
		why = "empty message";
	else if (n > BODY_MAX_DEFAULT)
		why = "too long";
	else if (memchr(body, '\0', n) != NULL)
		why = "contains a NUL byte";
	else if (!utf8_valid(body, n))
		why = "not UTF-8";
	if (why == NULL)
		return 0;
	session_local_err(s, verb, why);
	return -1;
}

static void
session_local_err(struct session *s, const char *verb, const char *why)
{
	struct pending	*p;

	s->refused++;
	if (pending_push(s, P_LOCAL, verb) == 0) {
		p = &s->pend[(s->pfirst + s->pcount - 1) % PENDING_MAX];
		p->why = why;
	}
	session_flush_local(s);
}

static int
session_sent(struct session *s, int rc, const char *verb)
{
	if (rc == -1 || pending_push(s, P_USER, verb) == -1) {
		session_local_err(s, verb, "cannot send now");
		return -1;
	}
	return 0;
}

static const char *session_help[] = {
	"TEXT             say TEXT to everyone logged in",
	"/msg USER TEXT   leave TEXT in USER's mailbox",
	"/read            show the messages and receipts waiting for you",
	"/who             list who is logged in",
	"/ping [TOKEN]    check that the server answers",
	"/help            this list",
	"/quit            leave (also Control-D on an empty line)",
	"//TEXT           say /TEXT",
	NULL
};

/*
 * One line of user input (n bytes, no LF) in the command syntax of
 * relay(1).  Returns 0, or -1 if it could not be sent.
 */
int
session_command(struct session *s, const char *line, size_t n)
{
	const char	*p, *arg, *sp;
	size_t		 cmdlen, arglen, ulen, i;
	char		 user[USER_MAX + 1];
	char		 prefix[USER_MAX + 16];

	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (n == 0 || s->state != S_READY)
		return 0;
	if (line[0] != '/' || (n > 1 && line[1] == '/')) {
		p = line[0] == '/' ? line + 1 : line;
		if (session_body(s, "SAY", p, n - (size_t)(p - line)) == -1)
			return -1;
		return session_sent(s, conn_sendbody(s->conn, "SAY", p,
		    n - (size_t)(p - line)), "SAY");
	}
	/* "/cmd args": the command word ends at the first space. */
	sp = memchr(line, ' ', n);
	cmdlen = sp != NULL ? (size_t)(sp - line) : n;
	arg = sp != NULL ? sp + 1 : line + n;
	arglen = n - (size_t)(arg - line);
#define IS(w)	(cmdlen == sizeof(w) - 1 && memcmp(line, w, cmdlen) == 0)
	if (IS("/msg")) {
		sp = memchr(arg, ' ', arglen);
		if (sp == NULL || sp == arg || (size_t)(sp - arg) >= sizeof(user)) {
			session_local_err(s, "COMPOSE", "usage: /msg USER TEXT");
			return -1;
		}
		ulen = (size_t)(sp - arg);
		memcpy(user, arg, ulen);
		user[ulen] = '\0';
		if (!proto_valid_user(user, ulen)) {
			session_local_err(s, "COMPOSE", "not a valid user name");
			return -1;
		}
		p = sp + 1;
		if (session_body(s, "COMPOSE", p, arglen - ulen - 1) == -1)
			return -1;
		(void)snprintf(prefix, sizeof(prefix), "COMPOSE %s", user);
		return session_sent(s, conn_sendbody(s->conn, prefix, p,
		    arglen - ulen - 1), "COMPOSE");
	} else if (IS("/read") && arglen == 0)
		return session_sent(s, conn_send(s->conn, "READ"), "READ");
	else if (IS("/who") && arglen == 0)
		return session_sent(s, conn_send(s->conn, "WHO"), "WHO");
	else if (IS("/ping")) {
		if (arglen == 0)
			return session_sent(s, conn_send(s->conn, "PING"),
			    "PING");
		if (!proto_valid_token(arg, arglen)) {
			session_local_err(s, "PING", "bad token");
			return -1;
		}
		return session_sent(s, conn_send(s->conn, "PING %.*s",
		    (int)arglen, arg), "PING");
	} else if (IS("/quit") && arglen == 0) {
		session_quit(s);
		return 0;
	} else if (IS("/help")) {
		for (i = 0; session_help[i] != NULL; i++)
			session_warnx(s, "%s", session_help[i]);
		return 0;
	}
#undef IS
	session_local_err(s, "NONE", "unknown command (try /help)");
	return -1;
}
