/*
 * spawn.c: the spawner, a small process that forks the workers.
 *
 * The hub forks it at start-up, before it loads the users table or the
 * key or takes a connection, so it stays small.  Forked from the hub, a
 * worker paid for every page the hub went on writing: each was a
 * copy-on-write fault (in the hub or the worker), and each stayed in the
 * worker as private memory for as long as it lived; and every fork
 * copied the hub's descriptor table, which grows with every client.  The
 * spawner writes next to nothing between forks, so a worker shares its
 * pages for good, and its table holds three descriptors.
 *
 * For each connection the hub sends, on a SOCK_SEQPACKET socket, the
 * client socket and the worker's end of its socket pair with the hub
 * (twice: the worker reads from one descriptor, writes to the other;
 * SCM_RIGHTS) with
 * the peer's name, the HEAD, the current key and the limits, and waits
 * for the pid: spawn_worker().  The spawner reaps its workers and
 * reports each exit status on a second socket, which the hub reads in its
 * event loop: spawn_reaped().  It holds no secret between two requests,
 * and reads nothing from a client.  When the hub goes, the sockets close
 * and the spawner exits.  If the spawner goes first, no session could
 * start again: the hub stops (and, a child subreaper, it is the parent
 * its workers are given to meanwhile).
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "relayd.h"

#define SPAWN_WAIT_MS	10000	/* for the pid of a new worker */
#define SPAWN_QUEUE_MAX	(16 * 1024 * 1024)	/* exit reports unread */
#define SPAWN_REQ_FD	3	/* the spawner's descriptors */
#define SPAWN_EXIT_FD	4

/* Hub -> spawner, with the three descriptors. */
struct spawn_req {
	char			 peer[PEER_MAX];
	char			 head[HEAD_LEN + 1];
	unsigned char		 key[FERNET_KEY_LEN];
	struct relayd_limits	 limits;
};

/* Spawner -> hub: a new worker's pid (or -1 and errno), or an exit. */
struct spawn_msg {
	pid_t			 pid;
	int			 value;	/* errno, or the wait(2) status */
};

static struct {
	pid_t			 pid;
	int			 req;	/* requests and pids */
	int			 exits;	/* exit reports */
} spawn = { -1, -1, -1 };

static volatile sig_atomic_t spawn_sigchld;

static __dead void spawn_main(void);

/*
 * In the hub, at start-up: forks the spawner, after sandbox_init() (the
 * filter and the user it inherits) and before anything secret or big.
 */
void
spawn_init(void)
{
	int	 req[2], exits[2];

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		fatal("prctl(PR_SET_CHILD_SUBREAPER)");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, req) == -1 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
	    exits) == -1)
		fatal("socketpair");
	switch ((spawn.pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		if (dup2(req[1], SPAWN_REQ_FD) == -1 ||
		    dup2(exits[1], SPAWN_EXIT_FD) == -1)
			fatal("dup2");
		closefrom(SPAWN_EXIT_FD + 1);
		spawn_main();
	}
	close(req[1]);
	close(exits[1]);
	spawn.req = req[0];
	spawn.exits = exits[0];
}

pid_t
spawn_pid(void)
{
	return spawn.pid;
}

int
spawn_fd(void)
{
	return spawn.exits;
}

/*
 * Has the spawner fork a worker for the connection s, with the worker's
 * descriptors for records from and to the hub.  Returns its pid, or -1 with errno when the fork
 * failed.  It waits for the fork (most of a millisecond), so the pid is
 * in the hub's table before its exit can be reported.  A spawner that
 * does not answer is fatal: no session could start again.
 */
pid_t
spawn_worker(int s, int hub_in, int hub_out, const char *peer,
    const char *head, const unsigned char *key)
{
	struct spawn_req	 rq;
	struct spawn_msg	 m;
	struct msghdr		 msg;
	struct iovec		 iov;
	struct cmsghdr		*cmsg;
	struct pollfd		 pfd;
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(3 * sizeof(int))];
	}			 cm;
	int			 fds[3] = { s, hub_in, hub_out };
	ssize_t			 n;

	memset(&rq, 0, sizeof(rq));
	strlcpy(rq.peer, peer, sizeof(rq.peer));
	strlcpy(rq.head, head, sizeof(rq.head));
	memcpy(rq.key, key, sizeof(rq.key));
	rq.limits = relayd_limits;
	memset(&msg, 0, sizeof(msg));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = &rq;
	iov.iov_len = sizeof(rq);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
	do
		n = sendmsg(spawn.req, &msg, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	explicit_bzero(&rq, sizeof(rq));
	if (n != (ssize_t)sizeof(rq))
		fatal("spawner: request");

	pfd.fd = spawn.req;
	pfd.events = POLLIN;
	do
		n = poll(&pfd, 1, SPAWN_WAIT_MS);
	while (n == -1 && errno == EINTR);
	if (n == 0)
		fatalx("spawner: no answer in %d ms", SPAWN_WAIT_MS);
	if (n == -1 || (n = recv(spawn.req, &m, sizeof(m), 0)) == -1)
		fatal("spawner");
	if (n != (ssize_t)sizeof(m))
		fatalx("the spawner died");
	if (m.pid == -1) {
		errno = m.value;
		return -1;
	}
	return m.pid;
}

/*
 * The next exit the spawner reported: 1 with *pid and *status set, 0
 * when there is none.  The spawner never leaves before the hub closes
 * its sockets (spawn_stop()): if it does, that is fatal.
 */
int
spawn_reaped(pid_t *pid, int *status)
{
	struct spawn_msg	 m;
	ssize_t			 n;

	n = recv(spawn.exits, &m, sizeof(m), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == -1)
		fatal("spawner");
	if (n != (ssize_t)sizeof(m))
		fatalx("the spawner died");
	*pid = m.pid;
	*status = m.value;
	return 1;
}

/* At the hub's end: the spawner reads EOF and exits; it is reaped. */
void
spawn_stop(void)
{
	int	 status;

	if (spawn.pid == -1)
		return;
	close(spawn.req);
	close(spawn.exits);
	spawn.req = spawn.exits = -1;
	while (waitpid(spawn.pid, &status, 0) == -1 && errno == EINTR)
		;
	spawn.pid = -1;
}

/* ---- in the spawner ---- */

static void
spawn_on_sigchld(int sig)
{
	spawn_sigchld = 1;
}

/* Moves fd above the three a worker's descriptors go to. */
static int
spawn_fd_high(int fd)
{
	int	 nfd;

	if (fd > 5)
		return fd;
	if ((nfd = fcntl(fd, F_DUPFD, 6)) == -1)
		_exit(1);
	return nfd;
}

/*
 * Workers run SCHED_BATCH: a worker woken by a record does not preempt
 * the hub, which then writes a whole fan-out (one write per worker) before
 * any worker runs, and each worker finds every record queued meanwhile in
 * one read.  Without it, on a busy core, each write could switch to its
 * worker at once, and a broadcast to N workers costs N switches per
 * message.  Failure only costs speed.
 */
static void
spawn_child_sched(void)
{
	struct sched_param	 sp;

	memset(&sp, 0, sizeof(sp));
	(void)sched_setscheduler(0, SCHED_BATCH, &sp);
}

/* In a new worker: its descriptors at 3, 4 and 5, then the session. */
static __dead void
spawn_child(int fds[3], struct spawn_req *rq)
{
	struct worker_params	 wp;
	int			 s, i, o;

	closelog();
	s = spawn_fd_high(fds[0]);
	i = spawn_fd_high(fds[1]);
	o = spawn_fd_high(fds[2]);
	if (dup2(s, 3) == -1 || dup2(i, 4) == -1 || dup2(o, 5) == -1)
		_exit(1);
	closefrom(6);
	spawn_child_sched();
	log_init(relayd_debug, relayd_conf.facility);
	/* Bounds what the kernel holds for a client that floods or stalls. */
	o = WORKER_SNDBUF;
	if (setsockopt(3, SOL_SOCKET, SO_SNDBUF, &o, sizeof(o)) == -1 ||
	    setsockopt(3, SOL_SOCKET, SO_RCVBUF, &o, sizeof(o)) == -1)
		log_warn("%s: socket buffers", rq->peer);
	o = HUB_SOCKBUF;
	if (setsockopt(5, SOL_SOCKET, SO_SNDBUF, &o, sizeof(o)) == -1)
		log_warn("%s: socket buffers", rq->peer);
	sandbox_worker();

	memset(&wp, 0, sizeof(wp));
	wp.sock = 3;
	wp.hub_in = 4;
	wp.hub_out = 5;
	wp.peer = rq->peer;
	wp.head = rq->head;
	wp.key = rq->key;
	wp.limits = &rq->limits;
	worker_main(&wp);
}

/* Reads one request: 1, with rq and fds filled in; 0 at EOF. */
static int
spawn_recv(struct spawn_req *rq, int fds[3])
{
	struct msghdr		 msg;
	struct iovec		 iov;
	struct cmsghdr		*cmsg;
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(3 * sizeof(int))];
	}			 cm;
	ssize_t			 n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = rq;
	iov.iov_len = sizeof(*rq);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	if ((n = recvmsg(SPAWN_REQ_FD, &msg, MSG_CMSG_CLOEXEC)) == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return -1;
		fatal("spawner: recvmsg");
	}
	if (n == 0)
		return 0;
	/* Only the hub is at the other end: anything else is a bug. */
	cmsg = CMSG_FIRSTHDR(&msg);
	if (n != (ssize_t)sizeof(*rq) || (msg.msg_flags & MSG_CTRUNC) ||
	    cmsg == NULL || cmsg->cmsg_level != SOL_SOCKET ||
	    cmsg->cmsg_type != SCM_RIGHTS ||
	    cmsg->cmsg_len != CMSG_LEN(3 * sizeof(int)))
		fatalx("spawner: malformed request");
	memcpy(fds, CMSG_DATA(cmsg), 3 * sizeof(int));
	rq->peer[sizeof(rq->peer) - 1] = '\0';
	rq->head[sizeof(rq->head) - 1] = '\0';
	return 1;
}

/* A pid for the hub, which is waiting for it. */
static void
spawn_reply(pid_t pid, int value)
{
	struct spawn_msg	 m;
	ssize_t			 n;

	memset(&m, 0, sizeof(m));
	m.pid = pid;
	m.value = value;
	do
		n = send(SPAWN_REQ_FD, &m, sizeof(m), MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof(m))
		_exit(0);	/* the hub is gone */
}

/*
 * Exit reports wait in a queue for room on their socket: the hub reads
 * them in its event loop, but not while it waits for a pid.
 */
static void
spawn_report(struct buf *q, pid_t pid, int status)
{
	struct spawn_msg	 m;

	memset(&m, 0, sizeof(m));
	m.pid = pid;
	m.value = status;
	if (buf_add(q, &m, sizeof(m)) == -1)
		fatalx("spawner: the hub reads no exits");
}

static void
spawn_flush(struct buf *q)
{
	ssize_t	 n;

	while (buf_len(q) > 0) {
		n = send(SPAWN_EXIT_FD, buf_data(q), sizeof(struct spawn_msg),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n != (ssize_t)sizeof(struct spawn_msg))
			_exit(0);	/* the hub is gone */
		buf_drain(q, n);
	}
}

static void
spawn_fork(struct spawn_req *rq, int fds[3])
{
	pid_t	 pid;
	int	 i;

	if ((pid = fork()) == 0)
		spawn_child(fds, rq);
	explicit_bzero(rq->key, sizeof(rq->key));
	for (i = 0; i < 3; i++)
		close(fds[i]);
	spawn_reply(pid, pid == -1 ? errno : 0);
}

/*
 * The spawner's loop.  It takes none of the signals that end the hub: it
 * ends when the hub has closed its sockets, after the last worker's exit.
 * SIGTERM stays blocked, so that a worker starts with it blocked too, and
 * one sent early waits for worker_main()'s handler (fork(2) clears
 * pending signals; SIGINT and SIGHUP are ignored in workers as here).
 */
static __dead void
spawn_main(void)
{
	struct spawn_req	 rq;
	struct sigaction	 sa;
	struct pollfd		 pfd[2];
	struct buf		 q;
	sigset_t		 block, waitmask;
	pid_t			 pid;
	int			 fds[3], status, rc;

	relayd_title("spawner");
	/* Detached, the hub lets go of the terminal later: this does now. */
	if (!relayd_debug)
		relayd_devnull();
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1)
		fatal("sigaction");
	sa.sa_handler = spawn_on_sigchld;
	if (sigaction(SIGCHLD, &sa, NULL) == -1)
		fatal("sigaction");
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	if (sigprocmask(SIG_SETMASK, &block, NULL) == -1)
		fatal("sigprocmask");
	sigemptyset(&waitmask);
	sigaddset(&waitmask, SIGTERM);

	buf_init(&q, SPAWN_QUEUE_MAX);
	pfd[0].fd = SPAWN_REQ_FD;
	pfd[0].events = POLLIN;
	pfd[1].fd = SPAWN_EXIT_FD;
	for (;;) {
		pfd[1].events = buf_len(&q) > 0 ? POLLOUT : 0;
		pfd[0].revents = pfd[1].revents = 0;
		if (ppoll(pfd, 2, NULL, &waitmask) == -1 && errno != EINTR)
			fatal("spawner: ppoll");
		if (spawn_sigchld) {
			spawn_sigchld = 0;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
				spawn_report(&q, pid, status);
		}
		spawn_flush(&q);
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if ((rc = spawn_recv(&rq, fds)) == 0)
			_exit(0);	/* the hub has closed: done */
		if (rc == 1)
			spawn_fork(&rq, fds);
		explicit_bzero(&rq, sizeof(rq));
	}
}
