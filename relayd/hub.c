/*
 * hub.c: the parent process.  It accepts clients, has the spawner fork a
 * worker for each (spawn.c), connected to it by a non-blocking socket
 * pair; it owns the users table, the Fernet key and the session table,
 * checks LOGIN proofs, and relays broadcasts, mailbox pushes and key
 * rotations between workers.
 *
 * The hub never blocks on a worker: a record for a worker is only queued
 * (struct buf, HUB_QUEUE_MAX bytes) and EPOLLOUT is asked for only while
 * the queue is not empty.  A worker whose queue passes the bound is slow:
 * it is sent SIGTERM and dropped from the table, and no one else waits.
 * Workers parse hostile input, so the hub believes nothing a worker says
 * that does not parse exactly (record.c checks bounds and trailing bytes):
 * such a worker is logged and ended.
 *
 * The event loop is epoll: an idle client costs nothing per event.  Its
 * timeout is the nearest deadline.  Signals arrive on a signalfd.
 * Workers' structures are freed only after the batch of events that may
 * still point at them.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/tree.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "relayd.h"

#define HUB_EVENTS	64
#define HUB_WRITE_AT	3584	/* queued bytes written before the batch ends */
#define HUB_ACCEPT_MAX	32	/* connections taken per listener event */
#define HUB_PAUSE_MS	1000	/* accept pause when out of descriptors */

enum hub_ev_kind {
	EV_LISTEN,
	EV_SIGNAL,
	EV_WORKER,	/* records from a worker, or room to it */
	EV_CONTROL,	/* the control socket (control.c) */
	EV_SPAWN	/* exits the spawner reports (spawn.c) */
};

struct hub_ev {
	enum hub_ev_kind	 kind;
	void			*p;
};

struct hub_user;

struct hub_worker {
	pid_t			 pid;
	int			 fd;		/* the socket to the worker */
	struct buf		 in;
	struct buf		 out;
	struct hub_ev		 ev;
	int			 want_out;
	int			 flush_pending;
	int			 ending;	/* told BYE: records ignored */
	int			 dead;		/* socket closed, not reaped */
	int			 reaped;
	uint64_t		 kill_at;	/* SIGKILL if still alive */
	char			 peer[PEER_MAX];
	char			 user[USER_MAX + 1];
	struct hub_user		*u;		/* non-NULL: logged in */
	uint64_t		 frames_in;
	uint64_t		 frames_out;
	uint64_t		 last_active;
	uint64_t		 frames_invalid;
	uint64_t		 since;		/* wall clock at connect */
	char			 src[PEER_MAX];	/* address; IPv6: its /64 */
	uint64_t		 login_at;	/* a held H_LOGIN goes then */
	uint32_t		 login_ok;	/* and says this */
	int			 held;
	TAILQ_ENTRY(hub_worker)	 held_entry;	/* by login_at */
	RB_ENTRY(hub_worker)	 pid_entry;
	TAILQ_ENTRY(hub_worker)	 live_entry;	/* every attached worker */
	TAILQ_ENTRY(hub_worker)	 login_entry;	/* logged in, for fan-out */
	TAILQ_ENTRY(hub_worker)	 user_entry;	/* one user's sessions */
	TAILQ_ENTRY(hub_worker)	 dead_entry;	/* dying, then zombies */
	TAILQ_ENTRY(hub_worker)	 flush_entry;	/* queued this batch */
};

TAILQ_HEAD(hub_worker_list, hub_worker);

/* A user with at least one session; the tree gives WHO in byte order. */
struct hub_user {
	RB_ENTRY(hub_user)	 entry;
	char			 name[USER_MAX + 1];
	struct hub_worker_list	 sessions;
};

static int	hub_pid_cmp(struct hub_worker *, struct hub_worker *);
static int	hub_user_cmp(struct hub_user *, struct hub_user *);
RB_HEAD(hub_pids, hub_worker);
RB_HEAD(hub_users, hub_user);
RB_PROTOTYPE(hub_pids, hub_worker, pid_entry, hub_pid_cmp);
RB_PROTOTYPE(hub_users, hub_user, entry, hub_user_cmp);
RB_GENERATE(hub_pids, hub_worker, pid_entry, hub_pid_cmp)
RB_GENERATE(hub_users, hub_user, entry, hub_user_cmp)

static struct hub {
	int			 epfd;
	int			 sigfd;
	struct hub_ev		 ev_sig;
	struct hub_ev		 ev_ctl;
	struct hub_ev		 ev_spawn;
	struct hub_listener	*ls;
	struct hub_ev		*ev_ls;
	int			 nls;
	int			 listening;
	uint64_t		 accept_resume;	/* 0: not paused */
	struct userdb		*users;
	char			 head[HEAD_LEN + 1];
	unsigned char		 key[FERNET_KEY_LEN];
	int			 stopping;
	uint64_t		 stop_at;
	struct hub_pids		 pids;
	struct hub_users	 usertree;
	struct hub_worker_list	 live;
	struct hub_worker_list	 logged;
	struct hub_worker_list	 dying;		/* ordered by kill_at */
	struct hub_worker_list	 zombies;	/* free after this batch */
	struct hub_worker_list	 flushq;	/* write after this batch */
	struct hub_worker_list	 held;		/* LOGIN under penalty */
	size_t			 nlive;
	struct hub_stats	 st;
	struct buf		 scratch;
} hub;

static void	 hub_worker_detach(struct hub_worker *);
static void	 hub_end_session(struct hub_worker *, const char *);
static void	 hub_login_unhold(struct hub_worker *);
static void	 hub_worker_kill(struct hub_worker *, const char *);
static void	 hub_worker_input(struct hub_worker *);

static int
hub_pid_cmp(struct hub_worker *a, struct hub_worker *b)
{
	return a->pid < b->pid ? -1 : a->pid > b->pid;
}

static int
hub_user_cmp(struct hub_user *a, struct hub_user *b)
{
	return strcmp(a->name, b->name);
}

/*
 * Takes ownership of the listeners, the users table, the secret's HEAD
 * and a copy of the key.
 */
void
hub_init(struct hub_listener *ls, int nls, struct userdb *users,
    const char *head, const unsigned char *key)
{
	memset(&hub, 0, sizeof(hub));
	hub.epfd = hub.sigfd = -1;
	hub.ls = ls;
	hub.nls = nls;
	hub.users = users;
	strlcpy(hub.head, head, sizeof(hub.head));
	memcpy(hub.key, key, sizeof(hub.key));
	RB_INIT(&hub.pids);
	RB_INIT(&hub.usertree);
	TAILQ_INIT(&hub.live);
	TAILQ_INIT(&hub.logged);
	TAILQ_INIT(&hub.dying);
	TAILQ_INIT(&hub.zombies);
	TAILQ_INIT(&hub.flushq);
	TAILQ_INIT(&hub.held);
	buf_init(&hub.scratch, REC_HDR_LEN + REC_MAX);
	hub.st.started = mono_ms();
}

/* A new users table (after SIGHUP); sessions of removed users go on. */
void
hub_set_users(struct userdb *users)
{
	userdb_free(hub.users);
	hub.users = users;
}

static void
hub_epoll(int op, int fd, uint32_t events, struct hub_ev *ev)
{
	struct epoll_event	 e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.ptr = ev;
	if (epoll_ctl(hub.epfd, op, fd, &e) == -1)
		fatal("epoll_ctl");
}

/* Tries to write a worker's queue; asks for EPOLLOUT only if bytes remain. */
static void
hub_worker_flush(struct hub_worker *w)
{
	ssize_t	 n;
	int	 want;

	while (buf_len(&w->out) > 0) {
		if ((n = buf_write(&w->out, w->fd)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (errno != EPIPE)
				log_warn("%s: socket to worker %ld", w->peer,
				    (long)w->pid);
			hub_worker_input(w);
			hub_worker_detach(w);
			return;
		}
	}
	want = buf_len(&w->out) > 0;
	if (want != w->want_out) {
		hub_epoll(EPOLL_CTL_MOD, w->fd,
		    EPOLLIN | (want ? EPOLLOUT : 0), &w->ev);
		w->want_out = want;
	}
}

/*
 * Queues bytes (whole records) for a worker; past the bound, ends it.
 * The write waits for the end of the event batch, so that a burst of
 * broadcasts costs one write per worker, not one per record; but a queue
 * that reaches HUB_WRITE_AT bytes in the batch is written then, once per
 * HUB_WRITE_AT bytes.  Its buffer so stays under BUF_KEEP (buf.c): not
 * grown by copying, nor wiped and freed when it empties, at every batch
 * (a third of the hub's time at N=100 S=10).  The worker still reads
 * the whole batch at once: SCHED_BATCH, it does not run before the hub
 * yields.
 */
static void
hub_queue(struct hub_worker *w, const void *p, size_t len)
{
	size_t	 before;

	if (w->dead)
		return;
	before = buf_len(&w->out);
	if (buf_add(&w->out, p, len) == -1) {
		hub_worker_kill(w, "queue full, too slow");
		return;
	}
	if (!w->want_out && !w->flush_pending) {
		w->flush_pending = 1;
		TAILQ_INSERT_TAIL(&hub.flushq, w, flush_entry);
	}
	if (w->want_out || before >= HUB_WRITE_AT ||
	    buf_len(&w->out) < HUB_WRITE_AT)
		return;
	/* A full socket or a gone worker: hub_worker_flush() sees it again. */
	(void)buf_write(&w->out, w->fd);
}

static void
hub_flush_queued(void)
{
	struct hub_worker	*w;

	while ((w = TAILQ_FIRST(&hub.flushq)) != NULL) {
		TAILQ_REMOVE(&hub.flushq, w, flush_entry);
		w->flush_pending = 0;
		hub_worker_flush(w);
	}
}

/* Queues the record in hub.scratch to w. */
static void
hub_queue_scratch(struct hub_worker *w)
{
	hub_queue(w, buf_data(&hub.scratch), buf_len(&hub.scratch));
}

static void
hub_rec_str(struct rec_writer *rw, const char *s)
{
	rec_put_str(rw, s, strlen(s));
}

static void
hub_send_u32(struct hub_worker *w, uint32_t type, uint32_t v)
{
	struct rec_writer	 rw;

	buf_reset(&hub.scratch);
	rec_begin(&rw, &hub.scratch, type);
	rec_put_u32(&rw, v);
	if (rec_finish(&rw) == -1)
		fatalx("hub: record too large");
	hub_queue_scratch(w);
}

static void
hub_send_str(struct hub_worker *w, uint32_t type, const char *s)
{
	struct rec_writer	 rw;

	buf_reset(&hub.scratch);
	rec_begin(&rw, &hub.scratch, type);
	hub_rec_str(&rw, s);
	if (rec_finish(&rw) == -1)
		fatalx("hub: record too large");
	hub_queue_scratch(w);
}

static void
hub_login(struct hub_worker *w, const char *user)
{
	struct hub_user	 key, *u;

	strlcpy(key.name, user, sizeof(key.name));
	if ((u = RB_FIND(hub_users, &hub.usertree, &key)) == NULL) {
		if ((u = calloc(1, sizeof(*u))) == NULL)
			fatal("calloc");
		strlcpy(u->name, user, sizeof(u->name));
		TAILQ_INIT(&u->sessions);
		RB_INSERT(hub_users, &hub.usertree, u);
	}
	TAILQ_INSERT_TAIL(&u->sessions, w, user_entry);
	TAILQ_INSERT_TAIL(&hub.logged, w, login_entry);
	strlcpy(w->user, user, sizeof(w->user));
	w->u = u;
	log_info("login %s from %s", w->user, w->peer);
}

static void
hub_logout(struct hub_worker *w)
{
	struct hub_user	*u = w->u;

	if (u == NULL)
		return;
	TAILQ_REMOVE(&u->sessions, w, user_entry);
	TAILQ_REMOVE(&hub.logged, w, login_entry);
	if (TAILQ_EMPTY(&u->sessions)) {
		RB_REMOVE(hub_users, &hub.usertree, u);
		free(u);
	}
	w->u = NULL;
}

/*
 * Closes the socket to a worker and takes it out of every table but the
 * pid tree, where it stays until reaped (and gets SIGKILL if it outlives
 * HUB_KILL_GRACE_MS).
 */
static void
hub_worker_detach(struct hub_worker *w)
{
	if (w->dead)
		return;
	hub_login_unhold(w);
	if (w->u != NULL) {
		log_info("logout %s from %s", w->user, w->peer);
		hub_logout(w);
	} else
		log_info("connection from %s closed", w->peer);
	close(w->fd);
	w->fd = -1;
	buf_free(&w->in);
	buf_free(&w->out);
	TAILQ_REMOVE(&hub.live, w, live_entry);
	if (w->flush_pending) {
		TAILQ_REMOVE(&hub.flushq, w, flush_entry);
		w->flush_pending = 0;
	}
	hub.nlive--;
	w->dead = 1;
	if (w->reaped)
		TAILQ_INSERT_TAIL(&hub.zombies, w, dead_entry);
	else {
		w->kill_at = mono_ms() + HUB_KILL_GRACE_MS;
		TAILQ_INSERT_TAIL(&hub.dying, w, dead_entry);
	}
}

static void
hub_worker_kill(struct hub_worker *w, const char *why)
{
	if (w->dead)
		return;
	log_warnx("%s: worker %ld: %s; ending it", w->peer, (long)w->pid, why);
	if (kill(w->pid, SIGTERM) == -1 && errno != ESRCH)
		log_warn("kill %ld", (long)w->pid);
	hub_worker_detach(w);
}

/*
 * Getters for worker records: any failure means the worker is lying or
 * broken.
 */
static int
hub_get_user(struct rec_reader *rr, char *user)
{
	const char	*s;
	size_t		 len;

	if (rec_get_str(rr, &s, &len) == -1 || !proto_valid_user(s, len))
		return -1;
	memcpy(user, s, len);
	user[len] = '\0';
	return 0;
}

/*
 * Failed-login penalties (penalty.c), per source address and per user
 * name (only names that exist, so that made-up ones cannot crowd the
 * table).  Returns when the LOGIN may be answered: now, or when the
 * longer of the two penalties ends.  A LOGIN that would wait past the
 * login grace is refused at once, without looking at its proof: BYE.
 */
static uint64_t
hub_penalty(struct hub_worker *w, const char *user, int exists)
{
	char		 key[PEER_MAX + USER_MAX + 8];
	uint64_t	 now = mono_ms(), at = now, t;

	snprintf(key, sizeof(key), "src:%s", w->src);
	if ((t = penalty_until(key, now)) > at)
		at = t;
	if (exists) {
		snprintf(key, sizeof(key), "user:%s", user);
		if ((t = penalty_until(key, now)) > at)
			at = t;
	}
	if (at - now > (uint64_t)relayd_limits.login_grace * 1000) {
		log_limited("%s: LOGIN for %s refused: penalty for %llu s "
		    "more", w->peer, user,
		    (unsigned long long)(at - now + 999) / 1000);
		hub_end_session(w, "too many failed logins");
		return 0;
	}
	return at;
}

static void
hub_penalty_fail(struct hub_worker *w, const char *user, int exists,
    uint64_t at)
{
	char		 key[PEER_MAX + USER_MAX + 8];
	uint64_t	 until;

	snprintf(key, sizeof(key), "src:%s", w->src);
	if (penalty_fail(key, at, relayd_limits.penalty_grace,
	    relayd_limits.penalty_min, relayd_limits.penalty_max,
	    &until) == -1)
		log_warn("penalty");
	else if (until != 0)
		log_limited("%s: failed logins: %s penalised for %llu ms",
		    w->peer, w->src, (unsigned long long)(until - at));
	if (!exists)
		return;
	snprintf(key, sizeof(key), "user:%s", user);
	if (penalty_fail(key, at, relayd_limits.penalty_grace,
	    relayd_limits.penalty_min, relayd_limits.penalty_user_max,
	    &until) == -1)
		log_warn("penalty");
}

/* Sends the H_LOGIN decided for w, and logs it in if it succeeded. */
static void
hub_login_answer(struct hub_worker *w)
{
	if (w->dead || w->ending)
		return;
	if (w->login_ok)
		hub_login(w, w->user);
	hub_send_u32(w, H_LOGIN, w->login_ok);
}

/* Holds w's H_LOGIN until at; the list stays sorted by time. */
static void
hub_login_hold(struct hub_worker *w, uint64_t at)
{
	struct hub_worker	*o;

	w->login_at = at;
	w->held = 1;
	TAILQ_FOREACH_REVERSE(o, &hub.held, hub_worker_list, held_entry)
		if (o->login_at <= at)
			break;
	if (o == NULL)
		TAILQ_INSERT_HEAD(&hub.held, w, held_entry);
	else
		TAILQ_INSERT_AFTER(&hub.held, o, w, held_entry);
}

static void
hub_login_unhold(struct hub_worker *w)
{
	if (!w->held)
		return;
	TAILQ_REMOVE(&hub.held, w, held_entry);
	w->held = 0;
}

/* A frame with a wrong HEAD under the key: a guess at the secret code. */
static void
hub_do_badhead(struct hub_worker *w, struct rec_reader *rr)
{
	if (rec_end(rr) == -1) {
		hub_worker_kill(w, "bad BADHEAD record");
		return;
	}
	log_limited("%s: frame with a wrong HEAD under the key", w->peer);
	hub_penalty_fail(w, "", 0, mono_ms());
}

static void
hub_do_login(struct hub_worker *w, struct rec_reader *rr)
{
	/* A hash of nothing: failing checks cost what succeeding ones do. */
	static const char dummy[MD5_HEX_LEN + 1] =
	    "d41d8cd98f00b204e9800998ecf8427e";
	char		 user[USER_MAX + 1], nonce[NONCE_LEN + 1];
	const char	*s, *proof, *md5;
	size_t		 len, prooflen;
	uint64_t	 at;
	int		 ok;

	if (w->u != NULL || w->held || hub_get_user(rr, user) == -1 ||
	    rec_get_str(rr, &s, &len) == -1 || !proto_valid_nonce(s, len) ||
	    rec_get_str(rr, &proof, &prooflen) == -1 ||
	    prooflen > 2 * PROOF_LEN || rec_end(rr) == -1) {
		hub_worker_kill(w, "bad LOGIN record");
		return;
	}
	memcpy(nonce, s, len);
	nonce[len] = '\0';
	md5 = userdb_lookup(hub.users, user, strlen(user));
	if ((at = hub_penalty(w, user, md5 != NULL)) == 0)
		return;		/* refused */
	ok = login_proof_check(md5 == NULL ? dummy : md5, nonce, proof,
	    prooflen) == 1 && md5 != NULL;
	if (ok)
		hub.st.logins_ok++;
	else {
		hub.st.logins_failed++;
		log_limited("failed login for %s from %s", user, w->peer);
		hub_penalty_fail(w, user, md5 != NULL, at);
	}
	strlcpy(w->user, user, sizeof(w->user));
	w->login_ok = ok;
	if (at > mono_ms())
		hub_login_hold(w, at);
	else
		hub_login_answer(w);
}

static void
hub_do_say(struct hub_worker *w, struct rec_reader *rr)
{
	struct hub_worker	*o, *next;
	struct rec_writer	 rw;
	const char		*body;
	size_t			 len;
	uint64_t		 t;

	if (w->u == NULL || rec_get_u64(rr, &t) == -1 ||
	    rec_get_str(rr, &body, &len) == -1 || len == 0 ||
	    len > (size_t)relayd_limits.body_max || rec_end(rr) == -1) {
		hub_worker_kill(w, "bad SAY record");
		return;
	}
	buf_reset(&hub.scratch);
	rec_begin(&rw, &hub.scratch, H_SAY);
	hub_rec_str(&rw, w->user);
	rec_put_u64(&rw, t);
	rec_put_str(&rw, body, len);
	if (rec_finish(&rw) == -1)
		fatalx("hub: record too large");
	TAILQ_FOREACH_SAFE(o, &hub.logged, login_entry, next)
		if (o != w) {
			hub_queue_scratch(o);
			hub.st.frames_relayed++;
		}
}

static void
hub_do_lookup(struct hub_worker *w, struct rec_reader *rr)
{
	char	 user[USER_MAX + 1];

	if (w->u == NULL || hub_get_user(rr, user) == -1 ||
	    rec_end(rr) == -1) {
		hub_worker_kill(w, "bad LOOKUP record");
		return;
	}
	hub_send_u32(w, H_LOOKUP,
	    userdb_lookup(hub.users, user, strlen(user)) != NULL);
}

/*
 * Field n (0-based) of a push.  The hub checks the author a push names is
 * the sending worker's user, so a worker cannot speak for anyone else.
 */
static int
hub_push_field(const char *p, size_t len, int n, const char **f, size_t *flen)
{
	const char	*end = p + len, *sp;

	for (;;) {
		sp = memchr(p, ' ', end - p);
		if (n == 0) {
			*f = p;
			*flen = (sp == NULL ? end : sp) - p;
			return 0;
		}
		if (sp == NULL)
			return -1;
		p = sp + 1;
		n--;
	}
}

static int
hub_push_valid(struct hub_worker *w, const char *p, size_t len)
{
	const char	*f;
	size_t		 flen;
	int		 author;

	if (len > (size_t)relayd_limits.body_max + 256 ||
	    memchr(p, '\0', len) != NULL)
		return 0;
	if (len > 4 && memcmp(p, "MSG ", 4) == 0)
		author = 2;
	else if (len > 8 && memcmp(p, "RECEIPT ", 8) == 0)
		author = 3;
	else
		return 0;
	if (hub_push_field(p, len, author, &f, &flen) == -1)
		return 0;
	return flen == strlen(w->user) && memcmp(f, w->user, flen) == 0;
}

static void
hub_do_deliver(struct hub_worker *w, struct rec_reader *rr)
{
	struct hub_user		 key, *u;
	struct hub_worker	*o, *next;
	struct rec_writer	 rw;
	const char		*push;
	size_t			 len;

	if (w->u == NULL || hub_get_user(rr, key.name) == -1 ||
	    rec_get_str(rr, &push, &len) == -1 || rec_end(rr) == -1 ||
	    !hub_push_valid(w, push, len)) {
		hub_worker_kill(w, "bad DELIVER record");
		return;
	}
	hub.st.mailbox_stored++;	/* a worker delivers what it stored */
	if ((u = RB_FIND(hub_users, &hub.usertree, &key)) == NULL)
		return;
	buf_reset(&hub.scratch);
	rec_begin(&rw, &hub.scratch, H_PUSH);
	rec_put_str(&rw, push, len);
	if (rec_finish(&rw) == -1)
		fatalx("hub: record too large");
	TAILQ_FOREACH_SAFE(o, &u->sessions, user_entry, next) {
		hub_queue_scratch(o);
		hub.st.frames_relayed++;
	}
}

static void
hub_do_who(struct hub_worker *w, struct rec_reader *rr)
{
	struct hub_user		*u;
	struct rec_writer	 rw;
	uint32_t		 n = 0;

	if (w->u == NULL || rec_end(rr) == -1) {
		hub_worker_kill(w, "bad WHO record");
		return;
	}
	RB_FOREACH(u, hub_users, &hub.usertree)
		n++;
	buf_reset(&hub.scratch);
	rec_begin(&rw, &hub.scratch, H_WHO);
	rec_put_u32(&rw, n);
	RB_FOREACH(u, hub_users, &hub.usertree)
		hub_rec_str(&rw, u->name);
	if (rec_finish(&rw) == -1) {
		log_warnx("%s: WHO list too long for a record", w->peer);
		buf_reset(&hub.scratch);
		rec_begin(&rw, &hub.scratch, H_WHO);
		rec_put_u32(&rw, 1);
		hub_rec_str(&rw, w->user);
		if (rec_finish(&rw) == -1)
			fatalx("hub: record too large");
	}
	hub_queue_scratch(w);
}

static void
hub_do_stats(struct hub_worker *w, struct rec_reader *rr)
{
	uint64_t	 invalid;

	if (rec_get_u64(rr, &w->frames_in) == -1 ||
	    rec_get_u64(rr, &w->frames_out) == -1 ||
	    rec_get_u64(rr, &w->last_active) == -1 ||
	    rec_get_u64(rr, &invalid) == -1 || rec_end(rr) == -1 ||
	    invalid < w->frames_invalid) {
		hub_worker_kill(w, "bad STATS record");
		return;
	}
	/* The total outlives the worker: it grows by what is new. */
	hub.st.frames_invalid += invalid - w->frames_invalid;
	w->frames_invalid = invalid;
}

/* Acts on every whole record in w's input. */
static void
hub_worker_records(struct hub_worker *w)
{
	struct rec_reader	 rr;
	uint32_t		 type;
	size_t			 used;
	int			 rc;

	while (!w->dead) {
		if ((rc = rec_next(&w->in, &type, &rr, &used)) == 0)
			return;
		if (rc == -1) {
			hub_worker_kill(w, "bad record header");
			return;
		}
		if (w->ending) {
			/* Sent before it read its BYE; it wants no answer. */
			buf_drain(&w->in, used);
			continue;
		}
		switch (type) {
		case W_LOGIN:
			hub_do_login(w, &rr);
			break;
		case W_SAY:
			hub_do_say(w, &rr);
			break;
		case W_LOOKUP:
			hub_do_lookup(w, &rr);
			break;
		case W_DELIVER:
			hub_do_deliver(w, &rr);
			break;
		case W_WHO:
			hub_do_who(w, &rr);
			break;
		case W_STATS:
			hub_do_stats(w, &rr);
			break;
		case W_BADHEAD:
			hub_do_badhead(w, &rr);
			break;
		default:
			hub_worker_kill(w, "unknown record type");
			return;
		}
		if (!w->dead)
			buf_drain(&w->in, used);
	}
}

/*
 * Reads what a worker sent and acts on it.  Returns at EAGAIN; at EOF
 * (the worker has gone) detaches it after the last record.
 */
static void
hub_worker_input(struct hub_worker *w)
{
	ssize_t	 n;

	while (!w->dead) {
		if ((n = buf_read(&w->in, w->fd)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			if (errno == ENOBUFS) {
				hub_worker_kill(w, "record too large");
				return;
			}
			log_warn("%s: socket from worker %ld", w->peer,
			    (long)w->pid);
			hub_worker_detach(w);
			return;
		}
		if (n == 0) {
			hub_worker_records(w);
			hub_worker_detach(w);
			return;
		}
		hub_worker_records(w);
	}
}

static void
hub_peer(const struct sockaddr *sa, socklen_t salen, char *peer)
{
	char	 host[INET6_ADDRSTRLEN], serv[8];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		strlcpy(peer, "unknown", PEER_MAX);
		return;
	}
	/* sa is what accept4(2) filled in; the analyzer does not know. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	if (sa->sa_family == AF_INET6)
		snprintf(peer, PEER_MAX, "[%s]:%s", host, serv);
	else
		snprintf(peer, PEER_MAX, "%s:%s", host, serv);
}

/*
 * The source a connection is counted and penalised under: its address,
 * or for IPv6 its /64, the block one subscriber usually holds.
 */
static void
hub_source(const struct sockaddr *sa, socklen_t salen, char *src)
{
	struct sockaddr_in6	 sin6;
	char			 host[INET6_ADDRSTRLEN];

	/* sa is what accept4(2) filled in; the analyzer does not know. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	if (sa->sa_family == AF_INET6 && salen >= sizeof(sin6)) {
		memcpy(&sin6, sa, sizeof(sin6));
		if (!IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			memset(&sin6.sin6_addr.s6_addr[8], 0, 8);
			sin6.sin6_port = 0;
			sin6.sin6_scope_id = 0;
			if (getnameinfo((struct sockaddr *)&sin6, sizeof(sin6),
			    host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
				strlcpy(host, "unknown", sizeof(host));
			snprintf(src, PEER_MAX, "%s/64", host);
			return;
		}
	}
	if (getnameinfo(sa, salen, host, sizeof(host), NULL, 0,
	    NI_NUMERICHOST) != 0)
		strlcpy(host, "unknown", sizeof(host));
	strlcpy(src, host, PEER_MAX);
}

/*
 * max_clients and max_clients_per_source: past them a connection is
 * closed at once, before any fork.  The count per source walks the live
 * sessions, at most max_clients of them, at each accept.  A source under
 * a failed-login penalty (penalty.c) is refused as well.
 */
static int
hub_over_limits(struct hub_worker *w)
{
	struct hub_worker	*o;
	char			 key[PEER_MAX + 8];
	long long		 n = 0;

	if ((long long)hub.nlive >= relayd_limits.max_clients) {
		log_limited("%s: refused: %zu connections (max_clients)",
		    w->peer, hub.nlive);
		return 1;
	}
	TAILQ_FOREACH(o, &hub.live, live_entry)
		if (strcmp(o->src, w->src) == 0)
			n++;
	if (n >= relayd_limits.max_clients_per_source) {
		log_limited("%s: refused: %lld connections from %s "
		    "(max_clients_per_source)", w->peer, n, w->src);
		return 1;
	}
	snprintf(key, sizeof(key), "src:%s", w->src);
	if (penalty_until(key, mono_ms()) != 0) {
		log_limited("%s: refused: %s is under a penalty",
		    w->peer, w->src);
		return 1;
	}
	return 0;
}

static void
hub_spawn(int s, const struct sockaddr *sa, socklen_t salen)
{
	struct hub_worker	*w;
	int			 sv[2], bufsz = HUB_SOCKBUF;
	pid_t			 pid;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warn("calloc");
		close(s);
		return;
	}
	hub_peer(sa, salen, w->peer);
	hub_source(sa, salen, w->src);
	if (hub_over_limits(w)) {
		free(w);
		close(s);
		return;
	}
	/* One descriptor per worker in the hub, for 10,000 of them. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1) {
		log_warn("socketpair");
		free(w);
		close(s);
		return;
	}
	/* As much in the kernel as a pipe, not 208 KiB; the worker's end
	 * is bounded by the worker itself (spawn.c). */
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsz,
	    sizeof(bufsz)) == -1)
		log_warn("%s: socket buffers", w->peer);
	/* The worker's end twice: it reads from one, writes to the other. */
	pid = spawn_worker(s, sv[1], sv[1], w->peer, hub.head, hub.key);
	close(s);
	close(sv[1]);
	if (pid == -1) {
		log_limited("fork: %s; %s refused", strerror(errno), w->peer);
		close(sv[0]);
		free(w);
		return;
	}
	w->pid = pid;
	w->fd = sv[0];
	buf_init(&w->in, REC_HDR_LEN + REC_MAX);
	buf_init(&w->out, HUB_QUEUE_MAX);
	w->ev.kind = EV_WORKER;
	w->ev.p = w;
	RB_INSERT(hub_pids, &hub.pids, w);
	TAILQ_INSERT_TAIL(&hub.live, w, live_entry);
	hub.nlive++;
	w->since = wall_sec();
	hub.st.clients_total++;
	if (hub.nlive > hub.st.clients_peak)
		hub.st.clients_peak = hub.nlive;
	hub_epoll(EPOLL_CTL_ADD, w->fd, EPOLLIN, &w->ev);
	log_info("connection from %s (worker %ld)", w->peer, (long)pid);
}

static void
hub_listen_toggle(int on)
{
	int	 i;

	if (hub.listening == on)
		return;
	for (i = 0; i < hub.nls; i++) {
		if (hub.ls[i].fd == -1)
			continue;
		if (on)
			hub_epoll(EPOLL_CTL_ADD, hub.ls[i].fd, EPOLLIN,
			    &hub.ev_ls[i]);
		else if (epoll_ctl(hub.epfd, EPOLL_CTL_DEL, hub.ls[i].fd,
		    NULL) == -1)
			fatal("epoll_ctl");
	}
	hub.listening = on;
}

/*
 * One accept4(2), non-blocking and close-on-exec, for the client and the
 * control listeners alike.  Returns the new descriptor, ACCEPT_RETRY when
 * the loop may go on (interrupted, aborted), ACCEPT_PAUSE when out of
 * descriptors or memory (the caller stops accepting for a while: the
 * listener would only wake it again), or ACCEPT_DONE (nothing pending, or
 * an error already logged).
 */
int
hub_accept4(int lfd, struct sockaddr *sa, socklen_t *len, const char *what)
{
	int	 s;

	if ((s = accept4(lfd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1)
		return s;
	switch (errno) {
	case EINTR:
	case ECONNABORTED:
		return ACCEPT_RETRY;
	case EAGAIN:
		return ACCEPT_DONE;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		log_limited("%s: %s; pausing", what, strerror(errno));
		return ACCEPT_PAUSE;
	default:
		log_warn("%s", what);
		return ACCEPT_DONE;
	}
}

static void
hub_accept(struct hub_listener *l)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 s, n;

	for (n = 0; n < HUB_ACCEPT_MAX && !hub.stopping; n++) {
		len = sizeof(ss);
		s = hub_accept4(l->fd, (struct sockaddr *)&ss, &len,
		    "accept");
		if (s == ACCEPT_RETRY)
			continue;
		if (s == ACCEPT_PAUSE) {
			hub_listen_toggle(0);
			hub.accept_resume = mono_ms() + HUB_PAUSE_MS;
		}
		if (s < 0)
			return;
		hub_spawn(s, (struct sockaddr *)&ss, len);
	}
}

/* A worker has exited, with status as wait(2) gives it. */
static void
hub_reaped(pid_t pid, int status)
{
	struct hub_worker	 key, *w;

	key.pid = pid;
	if ((w = RB_FIND(hub_pids, &hub.pids, &key)) == NULL)
		return;
	if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM &&
	    WTERMSIG(status) != SIGKILL)
		log_warnx("%s: worker %ld died of signal %d", w->peer,
		    (long)pid, WTERMSIG(status));
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		log_debug("%s: worker %ld exited %d", w->peer,
		    (long)pid, WEXITSTATUS(status));
	RB_REMOVE(hub_pids, &hub.pids, w);
	w->reaped = 1;
	if (!w->dead) {
		/* Its last records may still be in the socket. */
		hub_worker_input(w);
		hub_worker_detach(w);
	} else {
		TAILQ_REMOVE(&hub.dying, w, dead_entry);
		TAILQ_INSERT_TAIL(&hub.zombies, w, dead_entry);
	}
}

/* The exits the spawner (spawn.c) reported: the workers are its children. */
static void
hub_spawn_reports(void)
{
	pid_t	 pid;
	int	 status;

	while (spawn_reaped(&pid, &status) == 1)
		hub_reaped(pid, status);
}

/*
 * SIGCHLD: the hub's own children are the spawner, whose end stops the
 * hub, and any worker the spawner left behind (the hub is its subreaper).
 */
static void
hub_reap(void)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == spawn_pid())
			fatalx("the spawner died");
		hub_reaped(pid, status);
	}
	if (pid == -1 && errno != ECHILD)
		log_warn("waitpid");
}

static void
hub_stop(void)
{
	struct hub_worker	*w, *next;
	int			 i;

	if (hub.stopping)
		return;
	log_info("shutting down");
	hub.stopping = 1;
	hub.stop_at = mono_ms() + HUB_STOP_GRACE_MS;
	hub_listen_toggle(0);
	for (i = 0; i < hub.nls; i++) {
		if (hub.ls[i].fd != -1)
			close(hub.ls[i].fd);
		hub.ls[i].fd = -1;
	}
	TAILQ_FOREACH_SAFE(w, &hub.live, live_entry, next)
		hub_send_str(w, H_BYE, "shutting down");
}

static void
hub_signal(void)
{
	struct signalfd_siginfo	 si;
	ssize_t			 n;

	for (;;) {
		n = read(hub.sigfd, &si, sizeof(si));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			fatal("signalfd");
		}
		if (n != sizeof(si))
			fatalx("signalfd: short read");
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			hub_stop();
			break;
		case SIGHUP:
			if (relayd_reload() == 0)
				log_info("reloaded");
			break;
		case SIGCHLD:
			hub_reap();
			break;
		}
	}
}

/*
 * Sends the new key to every worker and uses it for new connections.
 * Workers of logged-in sessions send KEY under the old key and accept it
 * for rotate_grace seconds more; the others say BYE.  The key is saved
 * (relayd_key_save) so a restart keeps it.
 */
void
hub_rotate_key(const unsigned char *key)
{
	struct hub_worker	*w, *next;
	char			 b64[FERNET_KEY_B64LEN + 1];

	memcpy(hub.key, key, sizeof(hub.key));
	(void)relayd_key_save(key);	/* it logs why it did not */
	fernet_key_format(key, b64);
	TAILQ_FOREACH_SAFE(w, &hub.live, live_entry, next)
		hub_send_str(w, H_KEY, b64);
	explicit_bzero(b64, sizeof(b64));
	hub_flush_queued();
	log_info("key rotated");
}

/*
 * Tells a worker BYE and forgets its login at once, so that WHO and
 * pushes leave it out while it says goodbye.
 */
static void
hub_end_session(struct hub_worker *w, const char *reason)
{
	if (w->dead || w->ending)
		return;
	hub_send_str(w, H_BYE, reason);
	if (w->u != NULL) {
		log_info("logout %s from %s (%s)", w->user, w->peer, reason);
		hub_logout(w);
	}
	w->ending = 1;
}

/* The users table, for the control socket (adduser, deluser, users). */
struct userdb *
hub_userdb(void)
{
	return hub.users;
}

/*
 * Ends every session of user with BYE reason.  Returns how many there
 * were.  The workers say BYE and go; the table forgets them when they do.
 */
int
hub_kick_user(const char *user, const char *reason)
{
	struct hub_user		 key, *u;
	struct hub_worker	*w, *next;
	int			 n = 0;

	if (strlcpy(key.name, user, sizeof(key.name)) >= sizeof(key.name) ||
	    (u = RB_FIND(hub_users, &hub.usertree, &key)) == NULL)
		return 0;
	TAILQ_FOREACH_SAFE(w, &u->sessions, user_entry, next) {
		hub_end_session(w, reason);
		n++;
	}
	hub_flush_queued();
	return n;
}

/* Ends the session of worker pid with BYE reason.  -1: no such session. */
int
hub_kick_pid(pid_t pid, const char *reason)
{
	struct hub_worker	 key, *w;

	key.pid = pid;
	if ((w = RB_FIND(hub_pids, &hub.pids, &key)) == NULL || w->dead)
		return -1;
	hub_end_session(w, reason);
	hub_flush_queued();
	return 0;
}

/* Calls cb for every live session, oldest first. */
void
hub_sessions(void (*cb)(void *, const struct hub_session *), void *arg)
{
	struct hub_worker	*w;
	struct hub_session	 s;

	TAILQ_FOREACH(w, &hub.live, live_entry) {
		s.pid = w->pid;
		s.peer = w->peer;
		s.user = w->u != NULL ? w->user : NULL;
		s.frames_in = w->frames_in;
		s.frames_out = w->frames_out;
		s.last_active = w->last_active;
		s.since = w->since;
		cb(arg, &s);
	}
}

/* The counters, for relayctl stats. */
void
hub_get_stats(struct hub_stats *st)
{
	*st = hub.st;
	st->clients = hub.nlive;
}

/* A copy of the current key, for relayctl key; the caller wipes it. */
void
hub_key(unsigned char *key)
{
	memcpy(key, hub.key, sizeof(hub.key));
}

static int
hub_timeout(void)
{
	uint64_t	 now = mono_ms(), next = UINT64_MAX;
	struct hub_worker *w;

	if ((w = TAILQ_FIRST(&hub.dying)) != NULL)
		next = w->kill_at;
	if (hub.accept_resume != 0 && hub.accept_resume < next)
		next = hub.accept_resume;
	if ((w = TAILQ_FIRST(&hub.held)) != NULL && w->login_at < next)
		next = w->login_at;
	if (control_next() < next)
		next = control_next();
	if (hub.stopping && hub.stop_at < next)
		next = hub.stop_at;
	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return next - now > 60000 ? 60000 : (int)(next - now);
}

static void
hub_timers(void)
{
	struct hub_worker	*w;
	uint64_t		 now = mono_ms();

	while ((w = TAILQ_FIRST(&hub.held)) != NULL && w->login_at <= now) {
		hub_login_unhold(w);
		hub_login_answer(w);
	}
	hub_flush_queued();
	while ((w = TAILQ_FIRST(&hub.dying)) != NULL && w->kill_at <= now) {
		/* Leaves the list when reaped; check again later. */
		log_warnx("%s: worker %ld did not end; killing it", w->peer,
		    (long)w->pid);
		kill(w->pid, SIGKILL);
		TAILQ_REMOVE(&hub.dying, w, dead_entry);
		w->kill_at = now + HUB_KILL_GRACE_MS;
		TAILQ_INSERT_TAIL(&hub.dying, w, dead_entry);
	}
	if (hub.accept_resume != 0 && hub.accept_resume <= now &&
	    !hub.stopping) {
		hub.accept_resume = 0;
		hub_listen_toggle(1);
	}
	control_timers(now);
	if (hub.stopping && hub.stop_at <= now) {
		log_warnx("workers still running after %d ms; killing them",
		    HUB_STOP_GRACE_MS);
		RB_FOREACH(w, hub_pids, &hub.pids)
			kill(w->pid, SIGKILL);
		hub.stop_at = now + HUB_KILL_GRACE_MS;
	}
}

static void
hub_free_zombies(void)
{
	struct hub_worker	*w;

	while ((w = TAILQ_FIRST(&hub.zombies)) != NULL) {
		TAILQ_REMOVE(&hub.zombies, w, dead_entry);
		free(w);
	}
}

static void
hub_dispatch(struct epoll_event *e)
{
	struct hub_ev		*ev = e->data.ptr;
	struct hub_worker	*w;

	switch (ev->kind) {
	case EV_LISTEN:
		hub_accept(ev->p);
		break;
	case EV_SIGNAL:
		hub_signal();
		break;
	case EV_CONTROL:
		control_dispatch();
		break;
	case EV_SPAWN:
		hub_spawn_reports();
		break;
	case EV_WORKER:
		/* EOF (the worker has gone) comes with EPOLLIN or EPOLLHUP. */
		w = ev->p;
		if (!w->dead && (e->events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			hub_worker_input(w);
		if (!w->dead && (e->events & EPOLLOUT))
			hub_worker_flush(w);
		break;
	}
}

static void
hub_sigset(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGCHLD);
}

/*
 * Blocks the signals the hub reads from its signalfd.  Called early, so
 * that one sent while the daemon starts is not lost (or fatal).
 */
void
hub_signals_block(void)
{
	sigset_t	 mask;

	hub_sigset(&mask);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
		fatal("sigprocmask");
}

/* Runs until SIGTERM or SIGINT and every worker has ended.  Returns 0. */
int
hub_run(void)
{
	struct epoll_event	 evs[HUB_EVENTS];
	sigset_t		 mask;
	int			 i, n;

	relayd_title("hub");
	hub_signals_block();
	hub_sigset(&mask);
	if ((hub.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1)
		fatal("signalfd");
	if ((hub.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	hub.ev_sig.kind = EV_SIGNAL;
	hub_epoll(EPOLL_CTL_ADD, hub.sigfd, EPOLLIN, &hub.ev_sig);
	if ((hub.ev_ls = calloc(hub.nls, sizeof(*hub.ev_ls))) == NULL)
		fatal("calloc");
	for (i = 0; i < hub.nls; i++) {
		hub.ev_ls[i].kind = EV_LISTEN;
		hub.ev_ls[i].p = &hub.ls[i];
	}
	hub_listen_toggle(1);
	if (control_fd() != -1) {
		hub.ev_ctl.kind = EV_CONTROL;
		hub_epoll(EPOLL_CTL_ADD, control_fd(), EPOLLIN, &hub.ev_ctl);
	}
	hub.ev_spawn.kind = EV_SPAWN;
	hub_epoll(EPOLL_CTL_ADD, spawn_fd(), EPOLLIN, &hub.ev_spawn);

	while (!hub.stopping || !RB_EMPTY(&hub.pids) ||
	    !TAILQ_EMPTY(&hub.live)) {
		n = epoll_wait(hub.epfd, evs, HUB_EVENTS, hub_timeout());
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (i = 0; i < n; i++)
			hub_dispatch(&evs[i]);
		hub_flush_queued();
		hub_timers();
		hub_free_zombies();
	}
	log_info("exiting");
	spawn_stop();
	close(hub.epfd);
	close(hub.sigfd);
	free(hub.ev_ls);
	hub.ev_ls = NULL;
	free(hub.ls);
	hub.ls = NULL;
	userdb_free(hub.users);
	hub.users = NULL;
	explicit_bzero(hub.key, sizeof(hub.key));
	buf_free(&hub.scratch);
	return 0;
}
