/*
 * relay-bench: a load generator for relayd.  One process, one epoll loop,
 * non-blocking sockets, speaking protocol v1 through the project's own
 * library (fernet, secret, frame, proto codec, buf).  Modes:
 *
 *   broadcast  N logged-in clients, S of them sending SAY, either as fast
 *              as a bounded window of unanswered SAYs allows or at a fixed
 *              offered rate; deliveries/s, latency, loss and order.
 *   logins     connect, HELLO, LOGIN, EXIT in a loop from C slots.
 *   idle       N logged-in idle clients; relayd's memory and idle CPU.
 *   compose    N senders doing durable COMPOSE, one at a time each.
 *
 * Bodies of SAY carry "SENDNS SENDER SEQ " (CLOCK_MONOTONIC nanoseconds,
 * sender index, per-sender sequence from 1) padded to the asked size, so
 * each receiver can measure latency and check per-sender order and loss.
 * Latencies go into a log-linear histogram (1/64 relative precision), so
 * recording a sample allocates nothing.
 *
 * relayd's CPU is read from /proc (utime+stime of the hub, of its live
 * children, and of its reaped children) over the measured interval, and
 * relay-bench reports its own CPU from getrusage(2) so that a run where
 * the generator, not relayd, is the limit shows as such.  The last line
 * of every run is "RESULT key=value ...", for run-bench.sh.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define OUT_MAX		(4 * 1024 * 1024)	/* pending bytes per client */
#define PLAIN_MAX	(FRAME_MAX_DEFAULT)
#define EVENTS_MAX	512
#define BODY_MIN	40	/* room for "SENDNS SENDER SEQ " */
#define DRAIN_NS	(10 * 1000000000ULL)	/* in-flight deadline */
#define HIST_SUB_BITS	6
#define HIST_SUB	(1 << HIST_SUB_BITS)
#define HIST_SIZE	(HIST_SUB * 60)
#define ERRORS_SHOWN	5

enum mode { M_BROADCAST, M_LOGINS, M_IDLE, M_COMPOSE };

enum state {
	ST_FREE = 0,
	ST_CONNECTING,
	ST_HELLO,	/* HELLO sent */
	ST_LOGIN,	/* LOGIN sent */
	ST_READY,	/* logged in */
	ST_EXIT		/* EXIT sent */
};

struct conn {
	int		 fd;
	enum state	 state;
	unsigned int	 user;		/* PREFIX<user> */
	int		 sender;	/* index among senders, or -1 */
	int		 want_out;
	int		 dirty;
	struct conn	*dnext;		/* dirty list */
	uint64_t	 seq_out;
	uint64_t	 seq_in;
	struct buf	 out;
	struct frame_in	 in;
	uint64_t	 t_start;	/* connect or request, ns */
	uint64_t	 sent;		/* SAY or COMPOSE sent */
	uint64_t	 acked;		/* OK SAY or OK COMPOSE */
	uint64_t	 next_ns;	/* rate mode: next send */
	uint32_t	*last;		/* per sender: last seq seen */
};

struct hist {
	uint64_t	 n[HIST_SIZE];
	uint64_t	 count;
	uint64_t	 max;
};

struct cpu_sample {
	uint64_t	 hub;		/* hub utime+stime+cutime+cstime */
	uint64_t	 kids;		/* live children utime+stime */
	uint64_t	 wall;
	uint64_t	 self;		/* our own user+sys, ns */
};

static struct {
	enum mode	 mode;
	const char	*host;
	const char	*port;
	const char	*keyfile;
	const char	*secretfile;
	const char	*prefix;
	const char	*password;
	const char	*cpus;
	const char	*selfcpus;
	pid_t		 hubpid;
	unsigned int	 n;
	unsigned int	 s;
	unsigned int	 bytes;
	unsigned int	 window;
	unsigned int	 conc;
	double		 dur;
	double		 rate;
	int		 quiet;

	struct addrinfo	*ai;
	struct fernet	*f;
	char		 head[HEAD_LEN + 1];
	char		 md5[MD5_HEX_LEN + 1];
	int		 epfd;
	struct conn	*conns;
	unsigned int	 nconns;
	struct conn	*dirty;
	uint64_t	 now;		/* ns, refreshed per loop */
	uint64_t	 wall;		/* seconds, for tokens */
	int		 sending;
	uint64_t	 t1;		/* end of the measured interval */

	/* counters */
	unsigned int	 ready;
	unsigned int	 inflight;	/* connecting or logging in */
	unsigned int	 opened;
	uint64_t	 fails;		/* connections lost or refused */
	uint64_t	 errs;		/* ERR replies */
	uint64_t	 byes;
	uint64_t	 invalid;	/* frames that failed our checks */
	uint64_t	 delivered;	/* new in-order-or-not deliveries */
	uint64_t	 delivered_in;	/* of those, inside the interval */
	uint64_t	 ooo;		/* out of order or duplicate */
	uint64_t	 pushes;	/* MSG, RECEIPT */
	uint64_t	 completed;	/* logins or composes done */
	uint64_t	 completed_in;
	uint64_t	 stalls;	/* rate mode: window full at a slot */
	uint64_t	*from;		/* per sender: deliveries seen */
	unsigned int	 errs_shown;
	struct hist	 lat;
	struct hist	 login_lat;
	unsigned char	 plain[PLAIN_MAX + 1];
	char		 body[BODY_MAX_DEFAULT + 1];
} b;

static uint64_t	 mono_ns(void);
static void	 hist_add(struct hist *, uint64_t);
static double	 hist_q(const struct hist *, double);
static size_t	 hist_index(uint64_t);
static uint64_t	 hist_value(size_t);
static void	 usage(void) __dead;
static char	*read_line(const char *);
static void	 setup_crypto(void);
static void	 raise_nofile(unsigned int);
static int	 parse_cpus(const char *, cpu_set_t *);
static void	 pin_tasks(pid_t, const cpu_set_t *);
static void	 pin_relayd(void);
static size_t	 children(pid_t, pid_t **);
static size_t	 workers(pid_t, pid_t **, pid_t *);
static int	 proc_stat(pid_t, uint64_t *, uint64_t *);
static void	 cpu_sample(struct cpu_sample *);
static double	 cpu_pct(const struct cpu_sample *, const struct cpu_sample *,
		    int);
static double	 cpu_secs(const struct cpu_sample *,
		    const struct cpu_sample *);
static int	 smaps(pid_t, long *, long *, long *);
static void	 conn_open(struct conn *, unsigned int);
static void	 conn_close(struct conn *, int);
static void	 conn_send(struct conn *, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static void	 conn_dirty(struct conn *);
static void	 conn_flush(struct conn *);
static void	 conn_input(struct conn *);
static void	 conn_connected(struct conn *);
static void	 conn_frame(struct conn *, const char *, size_t);
static void	 conn_ok(struct conn *, const char *, size_t);
static void	 on_say(struct conn *, const char *, size_t);
static void	 send_say(struct conn *);
static void	 send_compose(struct conn *);
static void	 loop_once(int);
static void	 flush_dirty(void);
static void	 login_all(unsigned int);
static void	 sender_fill(struct conn *);
static uint64_t	 sender_unanswered(const struct conn *);
static void	 rate_tick(void);
static void	 run_broadcast(void);
static void	 run_logins(void);
static void	 run_idle(void);
static void	 run_compose(void);
static void	 print_cpu(const struct cpu_sample *, const struct cpu_sample *,
		    uint64_t, const char *);

static uint64_t
mono_ns(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		err(1, "clock_gettime");
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Log-linear buckets: exact below 2*HIST_SUB, then HIST_SUB buckets per
 * power of two.
 */
static size_t
hist_index(uint64_t v)
{
	int	 shift;

	if (v < 2 * HIST_SUB)
		return (size_t)v;
	shift = 63 - __builtin_clzll(v) - HIST_SUB_BITS;
	return (size_t)(shift + 1) * HIST_SUB + (size_t)(v >> shift) -
	    HIST_SUB;
}

/* The middle of bucket i. */
static uint64_t
hist_value(size_t i)
{
	unsigned int	 shift;
	uint64_t	 mant;

	if (i < 2 * HIST_SUB)
		return i;
	shift = (unsigned int)(i / HIST_SUB) - 1;
	mant = i % HIST_SUB + HIST_SUB;
	return (mant << shift) + ((1ULL << shift) >> 1);
}

static void
hist_add(struct hist *h, uint64_t v)
{
	h->n[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* Quantile q in microseconds. */
static double
hist_q(const struct hist *h, double q)
{
	uint64_t	 want, seen = 0;
	size_t		 i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(q * (double)h->count);
	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_SIZE; i++) {
		seen += h->n[i];
		if (seen >= want) {
			uint64_t v = hist_value(i);

			return (double)(v > h->max ? h->max : v) / 1000.0;
		}
	}
	return (double)h->max / 1000.0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: relay-bench broadcast -n N -s S [-b BYTES] [-d SECONDS] "
	    "[--rate R] [--window W]\n"
	    "       relay-bench logins [-d SECONDS] [-c CONCURRENCY] [-n USERS]\n"
	    "       relay-bench idle -n N [-d SECONDS]\n"
	    "       relay-bench compose -n N [-d SECONDS]\n"
	    "common: [-h HOST] [-p PORT] -K KEYFILE -S SECRETFILE [-U PREFIX] "
	    "[-W PASSWORD]\n"
	    "        [-c LOGIN_CONCURRENCY] [--pid HUBPID] [--cpu LIST] "
	    "[--self-cpu LIST] [-q]\n");
	exit(2);
}

/* The first line of a file, without its line ending. */
static char *
read_line(const char *path)
{
	FILE	*fp;
	char	*line = NULL;
	size_t	 sz = 0;
	ssize_t	 n;

	if ((fp = fopen(path, "r")) == NULL)
		err(1, "%s", path);
	if ((n = getline(&line, &sz, fp)) == -1)
		errx(1, "%s: empty", path);
	fclose(fp);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void
setup_crypto(void)
{
	unsigned char	 key[FERNET_KEY_LEN];
	const char	*errstr;
	char		*s;

	s = read_line(b.keyfile);
	if (fernet_key_parse(s, strlen(s), key) == -1)
		errx(1, "%s: not a Fernet key", b.keyfile);
	if ((b.f = fernet_new(key)) == NULL)
		errx(1, "fernet_new failed");
	explicit_bzero(key, sizeof(key));
	free(s);
	s = read_line(b.secretfile);
	if (secret_head(s, b.head, &errstr) == -1)
		errx(1, "%s: %s", b.secretfile, errstr);
	free(s);
	md5_hex(b.password, strlen(b.password), b.md5);
}

static void
raise_nofile(unsigned int want)
{
	struct rlimit	 rl;
	rlim_t		 need = (rlim_t)want + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(1, "getrlimit");
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need)
		rl.rlim_max = need;	/* works as root */
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur < need)
			warnx("RLIMIT_NOFILE is %llu, %llu wanted",
			    (unsigned long long)rl.rlim_cur,
			    (unsigned long long)need);
	}
}

/* "0", "0-3", "0,2-3". */
static int
parse_cpus(const char *s, cpu_set_t *set)
{
	char		*end;
	unsigned long	 lo, hi;

	CPU_ZERO(set);
	while (*s != '\0') {
		if (!isdigit((unsigned char)*s))
			return -1;
		lo = hi = strtoul(s, &end, 10);
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return -1;
			hi = strtoul(end + 1, &end, 10);
		}
		if (hi < lo || hi >= CPU_SETSIZE)
			return -1;
		for (; lo <= hi; lo++)
			CPU_SET(lo, set);
		if (*end == ',')
			end++;
		else if (*end != '\0')
			return -1;
		s = end;
	}
	return CPU_COUNT(set) > 0 ? 0 : -1;
}

static void
pin_tasks(pid_t pid, const cpu_set_t *set)
{
	char		 path[64];
	DIR		*d;
	struct dirent	*de;
	pid_t		 tid;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if ((tid = (pid_t)atol(de->d_name)) <= 0)
			continue;
		if (sched_setaffinity(tid, sizeof(*set), set) == -1 &&
		    errno != ESRCH)
			warn("sched_setaffinity %ld", (long)tid);
	}
	closedir(d);
}

/* Every task of the hub and of its children; children forked later
 * inherit the hub's mask. */
static void
pin_relayd(void)
{
	cpu_set_t	 set;
	pid_t		*kids, sp;
	size_t		 i, n;

	if (b.cpus == NULL)
		return;
	if (b.hubpid == 0)
		errx(1, "--cpu needs --pid");
	if (parse_cpus(b.cpus, &set) == -1)
		errx(1, "bad CPU list: %s", b.cpus);
	pin_tasks(b.hubpid, &set);
	n = workers(b.hubpid, &kids, &sp);
	if (sp != 0)
		pin_tasks(sp, &set);
	for (i = 0; i < n; i++)
		pin_tasks(kids[i], &set);
	free(kids);
}

/*
 * The children of pid: from /proc/PID/task/TID/children where the kernel
 * has it, else by scanning every /proc/PID/stat for the parent field.
 */
static size_t
children(pid_t pid, pid_t **out)
{
	char		 path[64], line[512], *p;
	DIR		*d;
	struct dirent	*de;
	FILE		*fp;
	pid_t		*v = NULL;
	size_t		 n = 0, cap = 0;
	long		 x, ppid;
	int		 direct = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children",
	    (long)pid, (long)pid);
	if ((fp = fopen(path, "r")) != NULL) {
		direct = 1;
		while (fscanf(fp, "%ld", &x) == 1) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				if ((v = reallocarray(v, cap, sizeof(*v))) ==
				    NULL)
					err(1, NULL);
			}
			v[n++] = (pid_t)x;
		}
		fclose(fp);
	}
	if (!direct) {
		if ((d = opendir("/proc")) == NULL)
			err(1, "/proc");
		while ((de = readdir(d)) != NULL) {
			if ((x = atol(de->d_name)) <= 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/stat", x);
			if ((fp = fopen(path, "r")) == NULL)
				continue;
			p = fgets(line, sizeof(line), fp);
			fclose(fp);
			if (p == NULL || (p = strrchr(line, ')')) == NULL ||
			    sscanf(p + 1, " %*c %ld", &ppid) != 1 ||
			    ppid != (long)pid)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				if ((v = reallocarray(v, cap, sizeof(*v))) ==
				    NULL)
					err(1, NULL);
			}
			v[n++] = (pid_t)x;
		}
		closedir(d);
	}
	*out = v;
	return n;
}

/* 1 if pid is relayd's spawner (its spawn.c), by its title. */
static int
is_spawner(pid_t pid)
{
	char	 path[64], buf[32];
	FILE	*fp;
	size_t	 n;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	return n >= 15 && memcmp(buf, "relayd: spawner", 15) == 0;
}

/*
 * relayd's workers: the children of its spawner, and any other child of
 * the hub (a worker whose spawner died).  *spawner: its pid, or 0.
 */
static size_t
workers(pid_t hub, pid_t **out, pid_t *spawner)
{
	pid_t	*kids, *sub = NULL;
	size_t	 nk, ns = 0, i, n = 0;

	*spawner = 0;
	nk = children(hub, &kids);
	for (i = 0; i < nk; i++) {
		if (*spawner == 0 && is_spawner(kids[i]))
			*spawner = kids[i];
		else
			kids[n++] = kids[i];
	}
	if (*spawner != 0)
		ns = children(*spawner, &sub);
	if (ns > 0) {
		if ((kids = reallocarray(kids, n + ns, sizeof(*kids))) == NULL)
			err(1, NULL);
		memcpy(kids + n, sub, ns * sizeof(*sub));
		n += ns;
	}
	free(sub);
	*out = kids;
	return n;
}

/*
 * Nanoseconds: *own from /proc/PID/schedstat (the scheduler's exact run
 * time: utime and stime are whole clock ticks, and a worker that runs a
 * few ms in all would count 0), *reaped = cutime+cstime of the children
 * it has waited for, in ticks converted.
 */
static int
proc_stat(pid_t pid, uint64_t *own, uint64_t *reaped)
{
	char			 path[64], line[1024], *p;
	FILE			*fp;
	unsigned long long	 ut, st, run;
	long long		 cut, cst;
	long			 hz = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%ld/schedstat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	p = fgets(line, sizeof(line), fp);
	fclose(fp);
	if (p == NULL || sscanf(line, "%llu", &run) != 1)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	p = fgets(line, sizeof(line), fp);
	fclose(fp);
	if (p == NULL || (p = strrchr(line, ')')) == NULL)
		return -1;
	/* After ")": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime cutime cstime. */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu %lld %lld", &ut, &st, &cut, &cst) != 4)
		return -1;
	*own = run;
	if (reaped != NULL)
		*reaped = (uint64_t)(cut + cst) * (1000000000ULL / hz);
	return 0;
}

static void
cpu_sample(struct cpu_sample *cs)
{
	struct rusage	 ru;
	uint64_t	 own, reaped;
	pid_t		*kids, sp;
	size_t		 i, n;

	memset(cs, 0, sizeof(*cs));
	if (b.hubpid != 0 && proc_stat(b.hubpid, &own, &reaped) == 0) {
		cs->hub = own + reaped;
		n = workers(b.hubpid, &kids, &sp);
		/* The spawner, and the workers it has reaped. */
		if (sp != 0 && proc_stat(sp, &own, &reaped) == 0)
			cs->kids += own + reaped;
		for (i = 0; i < n; i++)
			if (proc_stat(kids[i], &own, NULL) == 0)
				cs->kids += own;
		free(kids);
	}
	if (getrusage(RUSAGE_SELF, &ru) == -1)
		err(1, "getrusage");
	cs->self = ((uint64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	    1000000000ULL + ((uint64_t)ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec) * 1000ULL;
	cs->wall = mono_ns();
}

/* Seconds of relayd CPU (hub and workers) between two samples. */
static double
cpu_secs(const struct cpu_sample *a, const struct cpu_sample *z)
{

	return (double)((int64_t)(z->hub + z->kids) -
	    (int64_t)(a->hub + a->kids)) / 1e9;
}

/* Percent of one core: relayd (self 0) or relay-bench (self 1). */
static double
cpu_pct(const struct cpu_sample *a, const struct cpu_sample *z, int self)
{
	double	 wall = (double)(z->wall - a->wall) / 1e9;

	if (wall <= 0)
		return 0;
	if (self)
		return 100.0 * (double)(z->self - a->self) / 1e9 / wall;
	return 100.0 * cpu_secs(a, z) / wall;
}

/* kB from /proc/PID/smaps_rollup. */
static int
smaps(pid_t pid, long *rss, long *pss, long *uss)
{
	char	 path[64], line[256];
	FILE	*fp;
	long	 v;

	*rss = *pss = *uss = 0;
	snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "Rss: %ld", &v) == 1)
			*rss = v;
		else if (sscanf(line, "Pss: %ld", &v) == 1)
			*pss = v;
		else if (sscanf(line, "Private_Clean: %ld", &v) == 1 ||
		    sscanf(line, "Private_Dirty: %ld", &v) == 1)
			*uss += v;
	}
	fclose(fp);
	return 0;
}

static void
conn_open(struct conn *c, unsigned int user)
{
	struct epoll_event	 ev;
	int			 one = 1;

	memset(&c->out, 0, sizeof(c->out));
	c->user = user;
	c->seq_out = c->seq_in = 0;
	c->want_out = 0;
	c->state = ST_CONNECTING;
	c->t_start = mono_ns();
	buf_init(&c->out, OUT_MAX);
	frame_in_init(&c->in, FRAME_MAX_DEFAULT);
	if ((c->fd = socket(b.ai->ai_family, b.ai->ai_socktype | SOCK_NONBLOCK
	    | SOCK_CLOEXEC, b.ai->ai_protocol)) == -1)
		err(1, "socket");
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1)
		err(1, "TCP_NODELAY");
	b.inflight++;
	b.opened++;
	memset(&ev, 0, sizeof(ev));
	ev.data.ptr = c;
	if (connect(c->fd, b.ai->ai_addr, b.ai->ai_addrlen) == 0) {
		ev.events = EPOLLIN;
		if (epoll_ctl(b.epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
			err(1, "epoll_ctl");
		conn_connected(c);
		return;
	}
	if (errno != EINPROGRESS)
		err(1, "connect");
	ev.events = EPOLLOUT;
	c->want_out = 1;
	if (epoll_ctl(b.epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
}

static void
conn_connected(struct conn *c)
{
	c->state = ST_HELLO;
	conn_send(c, "HELLO %s", RELAY_PROTO_NAME);
}

/* failed: counted as a lost connection. */
static void
conn_close(struct conn *c, int failed)
{
	if (c->state == ST_FREE)
		return;
	if (c->state == ST_READY)
		b.ready--;
	else if (c->state != ST_EXIT)
		b.inflight--;
	if (failed)
		b.fails++;
	close(c->fd);
	c->fd = -1;
	c->state = ST_FREE;
	buf_free(&c->out);
	frame_in_free(&c->in);
}

/* Formats, encrypts and queues one frame; sent by flush_dirty(). */
static void
conn_send(struct conn *c, const char *fmt, ...)
{
	va_list		 ap;
	int		 r, hl;
	size_t		 len, toklen;
	char		*p;
	char		 pt[BODY_MAX_DEFAULT + 256];

	hl = snprintf(pt, sizeof(pt), "%s %" PRIu64 " ", b.head,
	    ++c->seq_out);
	va_start(ap, fmt);
	r = vsnprintf(pt + hl, sizeof(pt) - (size_t)hl, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(pt) - (size_t)hl)
		errx(1, "frame too long");
	len = (size_t)hl + (size_t)r;
	toklen = fernet_token_len(len);
	if ((p = buf_reserve(&c->out, toklen + 1)) == NULL)
		errx(1, "client %u: output queue full", c->user);
	if ((r = fernet_encrypt(b.f, pt, len, b.wall, NULL, p, toklen + 1,
	    &toklen)) != FERNET_OK)
		errx(1, "encrypt: %s", fernet_strerror(r));
	p[toklen] = '\n';
	buf_commit(&c->out, toklen + 1);
	conn_dirty(c);
}

static void
conn_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dnext = b.dirty;
	b.dirty = c;
}

/* One write of everything queued; EPOLLOUT only while bytes remain. */
static void
conn_flush(struct conn *c)
{
	struct epoll_event	 ev;
	ssize_t			 n;
	int			 want;

	if (c->state == ST_FREE || c->state == ST_CONNECTING)
		return;
	while (buf_len(&c->out) > 0) {
		if ((n = buf_write(&c->out, c->fd)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (!b.quiet)
				warn("client %u: write", c->user);
			conn_close(c, 1);
			return;
		}
	}
	want = buf_len(&c->out) > 0;
	if (want != c->want_out) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
		ev.data.ptr = c;
		if (epoll_ctl(b.epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
			err(1, "epoll_ctl");
		c->want_out = want;
	}
}

static void
flush_dirty(void)
{
	struct conn	*c;

	while ((c = b.dirty) != NULL) {
		b.dirty = c->dnext;
		c->dirty = 0;
		conn_flush(c);
	}
}

static void
conn_input(struct conn *c)
{
	const char	*line;
	size_t		 len;
	ssize_t		 n;
	int		 r;

	n = frame_in_read(&c->in, c->fd);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		if (c->state != ST_EXIT) {
			if (!b.quiet && b.fails < ERRORS_SHOWN)
				warnx("client %u: connection closed by relayd"
				    " (state %d)", c->user, c->state);
			conn_close(c, 1);
		} else
			conn_close(c, 0);
		return;
	}
	while (c->state != ST_FREE &&
	    (r = frame_in_next(&c->in, &line, &len)) != FRAME_NONE) {
		if (r == FRAME_OVERSIZED) {
			b.invalid++;
			continue;
		}
		conn_frame(c, line, len);
	}
}

static void
conn_frame(struct conn *c, const char *line, size_t len)
{
	struct proto_msg	 m;
	size_t			 plen, n;
	const char		*a;
	int			 r;
	char			 proof[PROOF_LEN + 1], nonce[NONCE_LEN + 1];

	if ((r = fernet_decrypt(b.f, line, len, b.wall, TTL_DEFAULT, b.plain,
	    PLAIN_MAX, &plen)) != FERNET_OK) {
		b.invalid++;
		if (!b.quiet && b.invalid <= ERRORS_SHOWN)
			warnx("client %u: bad token: %s", c->user,
			    fernet_strerror(r));
		return;
	}
	b.plain[plen] = '\0';
	if (proto_split((char *)b.plain, plen, &m) == -1 ||
	    memcmp(m.head, b.head, HEAD_LEN) != 0 ||
	    m.seq != c->seq_in + 1 || proto_verb(&m) == -1) {
		b.invalid++;
		if (!b.quiet && b.invalid <= ERRORS_SHOWN)
			warnx("client %u: invalid frame", c->user);
		return;
	}
	c->seq_in = m.seq;
	a = m.args;
	n = m.argslen;
	switch (m.verb[0]) {
	case 'S':
		if (strcmp(m.verb, "SAY") == 0) {
			on_say(c, a, n);
			return;
		}
		break;
	case 'O':
		if (strcmp(m.verb, "OK") == 0) {
			conn_ok(c, a, n);
			return;
		}
		break;
	case 'H':
		if (strcmp(m.verb, "HELLO") == 0 && c->state == ST_HELLO &&
		    n >= NONCE_LEN) {
			memcpy(nonce, a + n - NONCE_LEN, NONCE_LEN);
			nonce[NONCE_LEN] = '\0';
			if (login_proof(b.md5, nonce, proof) == -1)
				errx(1, "login_proof failed");
			c->state = ST_LOGIN;
			conn_send(c, "LOGIN %s%u %s", b.prefix, c->user, proof);
			return;
		}
		break;
	case 'M':
	case 'R':
		if (strcmp(m.verb, "MSG") == 0 ||
		    strcmp(m.verb, "RECEIPT") == 0) {
			b.pushes++;
			return;
		}
		break;
	case 'E':
		if (strcmp(m.verb, "ERR") == 0) {
			b.errs++;
			if (!b.quiet && b.errs_shown++ < ERRORS_SHOWN)
				warnx("client %u: ERR %.*s", c->user, (int)n,
				    a);
			if (c->state == ST_LOGIN)
				conn_close(c, 1);
			else if (c->sender >= 0 && c->sent > c->acked) {
				/* A refused SAY or COMPOSE: the run fails. */
				c->acked++;
				if (b.mode == M_BROADCAST && b.rate == 0)
					sender_fill(c);
				else if (b.mode == M_COMPOSE)
					send_compose(c);
			}
			return;
		}
		break;
	case 'B':
		if (strcmp(m.verb, "BYE") == 0) {
			b.byes++;
			if (!b.quiet)
				warnx("client %u: BYE %.*s", c->user, (int)n,
				    a);
			conn_close(c, 1);
			return;
		}
		break;
	}
	b.invalid++;
	if (!b.quiet && b.invalid <= ERRORS_SHOWN)
		warnx("client %u: unexpected %s", c->user, m.verb);
}

static void
conn_ok(struct conn *c, const char *a, size_t n)
{
	uint64_t	 now;

	if (n >= 3 && memcmp(a, "SAY", 3) == 0) {
		c->acked++;
		if (b.sending && b.rate == 0)
			sender_fill(c);
	} else if (n >= 5 && memcmp(a, "LOGIN", 5) == 0) {
		now = mono_ns();
		b.inflight--;
		b.ready++;
		c->state = ST_READY;
		hist_add(&b.login_lat, now - c->t_start);
		if (b.mode == M_LOGINS) {
			c->state = ST_EXIT;
			b.ready--;
			conn_send(c, "EXIT");
		}
	} else if (n >= 7 && memcmp(a, "COMPOSE", 7) == 0) {
		now = mono_ns();
		c->acked++;
		hist_add(&b.lat, now - c->t_start);
		b.completed++;
		if (now < b.t1)
			b.completed_in++;
		send_compose(c);
	} else if (n >= 4 && memcmp(a, "EXIT", 4) == 0) {
		now = mono_ns();
		hist_add(&b.lat, now - c->t_start);
		b.completed++;
		if (now < b.t1)
			b.completed_in++;
		conn_close(c, 0);
		if (b.sending)
			conn_open(c, (unsigned int)(b.opened % b.n));
	}
}

/* "FROM TIME SENDNS SENDER SEQ xxx..." */
static void
on_say(struct conn *c, const char *a, size_t n)
{
	const char		*p, *end = a + n;
	char			*q;
	unsigned long long	 t, seq;
	unsigned long		 s;
	uint32_t		*last;

	if (a == NULL || (p = memchr(a, ' ', n)) == NULL ||
	    (p = memchr(p + 1, ' ', (size_t)(end - p - 1))) == NULL)
		goto bad;
	p++;
	t = strtoull(p, &q, 10);
	if (*q != ' ')
		goto bad;
	s = strtoul(q + 1, &q, 10);
	if (*q != ' ' || s >= b.s)
		goto bad;
	seq = strtoull(q + 1, &q, 10);
	if (*q != ' ' || seq == 0)
		goto bad;
	last = &c->last[s];
	if (seq != (unsigned long long)*last + 1)
		b.ooo++;
	if (seq <= *last)
		return;		/* duplicate or late: not a delivery */
	*last = (uint32_t)seq;
	b.delivered++;
	b.from[s]++;
	if (b.sending && b.rate == 0)
		sender_fill(&b.conns[s]);
	if (b.now < b.t1)
		b.delivered_in++;
	hist_add(&b.lat, b.now > t ? b.now - t : 0);
	return;
 bad:
	b.invalid++;
	if (!b.quiet && b.invalid <= ERRORS_SHOWN)
		warnx("client %u: SAY not from relay-bench", c->user);
}

static void
send_say(struct conn *c)
{
	uint64_t	 t = mono_ns();
	int		 k;

	c->sent++;
	k = snprintf(b.body, sizeof(b.body), "%" PRIu64 " %d %" PRIu64 " ",
	    t, c->sender, c->sent);
	if (k < 0 || (unsigned int)k > b.bytes)
		errx(1, "body too small");
	memset(b.body + k, 'x', b.bytes - (unsigned int)k);
	b.body[b.bytes] = '\0';
	conn_send(c, "SAY %s", b.body);
}

static void
send_compose(struct conn *c)
{
	if (!b.sending || c->state != ST_READY)
		return;
	c->t_start = mono_ns();
	c->sent++;
	memset(b.body, 'x', b.bytes);
	b.body[b.bytes] = '\0';
	conn_send(c, "COMPOSE %s%u %s", b.prefix, (c->user + 1) % b.n,
	    b.body);
}

/*
 * A SAY is answered once its OK came back and every other client has it:
 * OK alone comes before the fan-out, and would let queues grow without
 * bound.
 */
static uint64_t
sender_unanswered(const struct conn *c)
{
	uint64_t	 done = b.from[c->sender] / (b.n - 1);

	return c->sent - (c->acked < done ? c->acked : done);
}

static void
sender_fill(struct conn *c)
{
	while (b.sending && c->state == ST_READY &&
	    sender_unanswered(c) < b.window)
		send_say(c);
}

/* Fixed offered rate: each sender owes a SAY every S/rate seconds. */
static void
rate_tick(void)
{
	uint64_t	 step = (uint64_t)(1e9 * b.s / b.rate);
	unsigned int	 i;
	struct conn	*c;

	for (i = 0; i < b.s; i++) {
		c = &b.conns[i];
		while (c->next_ns <= b.now && c->state == ST_READY) {
			if (sender_unanswered(c) < b.window)
				send_say(c);
			else
				b.stalls++;
			c->next_ns += step;
		}
	}
}

static void
loop_once(int timeout_ms)
{
	struct epoll_event	 ev[EVENTS_MAX];
	struct conn		*c;
	socklen_t		 sl;
	int			 i, n, e;

	flush_dirty();
	if ((n = epoll_wait(b.epfd, ev, EVENTS_MAX, timeout_ms)) == -1) {
		if (errno == EINTR)
			return;
		err(1, "epoll_wait");
	}
	b.now = mono_ns();
	b.wall = (uint64_t)time(NULL);
	for (i = 0; i < n; i++) {
		c = ev[i].data.ptr;
		if (c->state == ST_FREE)
			continue;
		if (c->state == ST_CONNECTING) {
			e = 0;
			sl = sizeof(e);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e,
			    &sl) == -1 || e != 0) {
				if (!b.quiet && b.fails < ERRORS_SHOWN)
					warnx("connect: %s", strerror(e));
				conn_close(c, 1);
				continue;
			}
			conn_connected(c);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_input(c);
		if (c->state != ST_FREE && (ev[i].events & EPOLLOUT))
			conn_dirty(c);
	}
}

/* Opens and logs in conns[0..n), at most b.conc logging in at a time. */
static void
login_all(unsigned int n)
{
	uint64_t	 t0 = mono_ns(), deadline;
	unsigned int	 next = 0;

	deadline = t0 + 60000000000ULL + (uint64_t)n * 200000000ULL;
	b.wall = (uint64_t)time(NULL);
	while (b.ready < n) {
		while (next < n && b.inflight < b.conc) {
			conn_open(&b.conns[next], next);
			next++;
		}
		if (b.inflight == 0 && next == n)
			break;		/* some failed */
		loop_once(100);
		if (mono_ns() > deadline)
			break;
	}
	if (b.ready < n)
		errx(1, "only %u of %u clients logged in (%llu lost; see "
		    "relayd's limits and log)", b.ready, n,
		    (unsigned long long)b.fails);
	if (!b.quiet)
		fprintf(stderr, "relay-bench: %u clients logged in in %.2f s "
		    "(%.0f/s, login p99 %.1f ms)\n", n,
		    (double)(mono_ns() - t0) / 1e9,
		    n / ((double)(mono_ns() - t0) / 1e9),
		    hist_q(&b.login_lat, 0.99) / 1000);
}

static void
print_cpu(const struct cpu_sample *a, const struct cpu_sample *z,
    uint64_t ops, const char *what)
{
	double	 rd = cpu_pct(a, z, 0), me = cpu_pct(a, z, 1);

	if (b.hubpid != 0)
		printf("  relayd CPU     %.1f%% of a core (hub and workers)",
		    rd);
	else
		printf("  relayd CPU     unknown (no --pid)");
	if (b.hubpid != 0 && ops > 0)
		printf(", %.2f us per %s", cpu_secs(a, z) * 1e6 / (double)ops,
		    what);
	printf("\n  bench CPU      %.1f%% of a core%s\n", me,
	    me > 85 ? "  ** relay-bench may be the bottleneck **" : "");
}

static void
run_broadcast(void)
{
	struct cpu_sample	 a, z;
	uint64_t		 t0, deadline, expected, sent = 0, acked = 0;
	unsigned int		 i;
	double			 secs;

	if (b.s == 0 || b.s > b.n || b.n < 2)
		errx(1, "need 1 <= S <= N and N >= 2");
	if ((b.from = calloc(b.s, sizeof(*b.from))) == NULL)
		err(1, NULL);
	for (i = 0; i < b.n; i++) {
		b.conns[i].sender = i < b.s ? (int)i : -1;
		if ((b.conns[i].last = calloc(b.s, sizeof(uint32_t))) == NULL)
			err(1, NULL);
	}
	login_all(b.n);
	pin_relayd();		/* again: the workers forked since */
	cpu_sample(&a);
	t0 = b.now = a.wall;
	b.t1 = t0 + (uint64_t)(b.dur * 1e9);
	b.sending = 1;
	for (i = 0; i < b.s; i++) {
		if (b.rate > 0)
			b.conns[i].next_ns = t0 + (uint64_t)(1e9 * i / b.rate);
		else
			sender_fill(&b.conns[i]);
	}
	while (b.now < b.t1) {
		if (b.rate > 0)
			rate_tick();
		loop_once(b.rate > 0 ? 1 : 100);
	}
	cpu_sample(&z);
	b.sending = 0;
	/* Let what is in flight arrive, with a deadline. */
	deadline = mono_ns() + DRAIN_NS;
	for (;;) {
		sent = acked = 0;
		for (i = 0; i < b.s; i++) {
			sent += b.conns[i].sent;
			acked += b.conns[i].acked;
		}
		expected = acked * (b.n - 1);
		if ((acked == sent && b.delivered >= expected) ||
		    mono_ns() > deadline || b.ready < b.n)
			break;
		loop_once(10);
	}
	secs = (double)(z.wall - a.wall) / 1e9;
	printf("broadcast N=%u S=%u body=%u %s for %.1f s\n", b.n, b.s,
	    b.bytes, b.rate > 0 ? "fixed rate" : "saturation", secs);
	if (b.rate > 0)
		printf("  offered        %.0f SAY/s (window %u, %llu slots "
		    "missed on a full window)\n", b.rate, b.window,
		    (unsigned long long)b.stalls);
	else
		printf("  window         %u SAYs per sender\n", b.window);
	printf("  sends          %.0f /s (%llu SAY, %llu OK)\n",
	    (double)sent / secs, (unsigned long long)sent,
	    (unsigned long long)acked);
	printf("  deliveries     %.0f /s\n", (double)b.delivered_in / secs);
	printf("  latency us     p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n",
	    hist_q(&b.lat, 0.5), hist_q(&b.lat, 0.9), hist_q(&b.lat, 0.99),
	    (double)b.lat.max / 1000);
	printf("  lost           %lld  out-of-order %llu  unanswered %llu  "
	    "errors %llu  BYE %llu  lost connections %llu\n",
	    (long long)(expected - b.delivered),
	    (unsigned long long)b.ooo, (unsigned long long)(sent - acked),
	    (unsigned long long)b.errs, (unsigned long long)b.byes,
	    (unsigned long long)b.fails);
	print_cpu(&a, &z, b.delivered_in, "delivery");
	printf("RESULT mode=broadcast n=%u s=%u b=%u rate=%.0f deliv_s=%.0f "
	    "sends_s=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f "
	    "lost=%lld ooo=%llu relayd_cpu=%.0f us_per_deliv=%.2f "
	    "bench_cpu=%.0f\n", b.n, b.s, b.bytes, b.rate,
	    (double)b.delivered_in / secs, (double)sent / secs,
	    hist_q(&b.lat, 0.5), hist_q(&b.lat, 0.9), hist_q(&b.lat, 0.99),
	    (double)b.lat.max / 1000, (long long)(expected - b.delivered),
	    (unsigned long long)b.ooo, cpu_pct(&a, &z, 0),
	    b.delivered_in ? cpu_secs(&a, &z) * 1e6 / b.delivered_in : 0,
	    cpu_pct(&a, &z, 1));
	if (expected != b.delivered || b.ooo != 0 || sent != acked ||
	    b.errs != 0)
		exit(3);
}

static void
run_logins(void)
{
	struct cpu_sample	 a, z;
	uint64_t		 deadline;
	unsigned int		 i;
	double			 secs;

	pin_relayd();
	cpu_sample(&a);
	b.now = a.wall;
	b.t1 = a.wall + (uint64_t)(b.dur * 1e9);
	b.wall = (uint64_t)time(NULL);
	b.sending = 1;
	for (i = 0; i < b.conc; i++)
		conn_open(&b.conns[i], (unsigned int)(b.opened % b.n));
	while (b.now < b.t1) {
		loop_once(100);
		for (i = 0; i < b.conc; i++)	/* refill failed slots */
			if (b.conns[i].state == ST_FREE)
				conn_open(&b.conns[i],
				    (unsigned int)(b.opened % b.n));
	}
	cpu_sample(&z);
	b.sending = 0;
	deadline = mono_ns() + DRAIN_NS;
	while (b.inflight > 0 && mono_ns() < deadline)
		loop_once(10);
	for (i = 0; i < b.conc; i++)
		conn_close(&b.conns[i], 0);
	secs = (double)(z.wall - a.wall) / 1e9;
	printf("logins concurrency=%u for %.1f s\n", b.conc, secs);
	printf("  sessions       %.0f /s (connect, HELLO, LOGIN, EXIT; %llu "
	    "lost)\n", (double)b.completed_in / secs,
	    (unsigned long long)b.fails);
	printf("  session us     p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n",
	    hist_q(&b.lat, 0.5), hist_q(&b.lat, 0.9), hist_q(&b.lat, 0.99),
	    (double)b.lat.max / 1000);
	printf("  to OK LOGIN us p50 %.0f  p99 %.0f\n",
	    hist_q(&b.login_lat, 0.5), hist_q(&b.login_lat, 0.99));
	print_cpu(&a, &z, b.completed_in, "session");
	printf("RESULT mode=logins c=%u conn_s=%.0f p50_us=%.0f p99_us=%.0f "
	    "max_us=%.0f lost=%llu relayd_cpu=%.0f us_per_conn=%.0f "
	    "bench_cpu=%.0f\n", b.conc, (double)b.completed_in / secs,
	    hist_q(&b.lat, 0.5), hist_q(&b.lat, 0.99),
	    (double)b.lat.max / 1000, (unsigned long long)b.fails,
	    cpu_pct(&a, &z, 0), b.completed_in ?
	    cpu_secs(&a, &z) * 1e6 / b.completed_in : 0,
	    cpu_pct(&a, &z, 1));
}

static void
run_idle(void)
{
	struct cpu_sample	 a, z;
	pid_t			*kids, sp;
	size_t			 i, nk;
	long			 rss, pss, uss, hrss = 0, hpss = 0, huss = 0;
	long			 tpss = 0, tuss = 0, maxuss = 0, maxpss = 0;
	long			 trss = 0;
	uint64_t		 hub0, hub1, r;
	double			 secs;

	if (b.hubpid == 0)
		errx(1, "idle needs --pid");
	login_all(b.n);
	pin_relayd();
	/* Settle, then measure the hub alone while every client idles. */
	b.t1 = mono_ns() + 1000000000ULL;
	while (mono_ns() < b.t1)
		loop_once(100);
	cpu_sample(&a);
	if (proc_stat(b.hubpid, &hub0, &r) == -1)
		errx(1, "relayd %ld is gone", (long)b.hubpid);
	b.t1 = a.wall + (uint64_t)(b.dur * 1e9);
	while (mono_ns() < b.t1)
		loop_once(100);
	if (proc_stat(b.hubpid, &hub1, &r) == -1)
		errx(1, "relayd %ld is gone", (long)b.hubpid);
	cpu_sample(&z);
	secs = (double)(z.wall - a.wall) / 1e9;
	smaps(b.hubpid, &hrss, &hpss, &huss);
	nk = workers(b.hubpid, &kids, &sp);
	for (i = 0; i < nk; i++) {
		if (smaps(kids[i], &rss, &pss, &uss) == -1)
			continue;
		trss += rss;
		tpss += pss;
		tuss += uss;
		if (uss > maxuss)
			maxuss = uss;
		if (pss > maxpss)
			maxpss = pss;
	}
	free(kids);
	printf("idle N=%u for %.1f s (%zu worker processes)\n", b.n, secs,
	    nk);
	printf("  relayd total   PSS %.1f MiB (hub %ld KiB, workers %.1f "
	    "MiB), RSS sum %.1f MiB\n", (tpss + hpss) / 1024.0, hpss,
	    tpss / 1024.0, (trss + hrss) / 1024.0);
	printf("  per worker     USS %.1f KiB (max %ld), PSS %.1f KiB (max "
	    "%ld)\n", nk ? (double)tuss / nk : 0, maxuss,
	    nk ? (double)tpss / nk : 0, maxpss);
	printf("  hub            USS %ld KiB, PSS %ld KiB, CPU %.2f%% idle\n",
	    huss, hpss, 100.0 * (double)(hub1 - hub0) /
	    1e9 / secs);
	print_cpu(&a, &z, 0, "");
	printf("RESULT mode=idle n=%u workers=%zu total_pss_kib=%ld "
	    "worker_uss_kib=%.1f worker_uss_max_kib=%ld worker_pss_kib=%.1f "
	    "hub_pss_kib=%ld hub_cpu=%.2f relayd_cpu=%.2f bench_cpu=%.1f\n",
	    b.n, nk, tpss + hpss, nk ? (double)tuss / nk : 0, maxuss,
	    nk ? (double)tpss / nk : 0, hpss,
	    100.0 * (double)(hub1 - hub0) / 1e9 / secs,
	    cpu_pct(&a, &z, 0), cpu_pct(&a, &z, 1));
}

static void
run_compose(void)
{
	struct cpu_sample	 a, z;
	uint64_t		 deadline, sent = 0, acked = 0;
	unsigned int		 i;
	double			 secs;

	for (i = 0; i < b.n; i++)
		b.conns[i].sender = (int)i;
	login_all(b.n);
	pin_relayd();
	cpu_sample(&a);
	b.now = a.wall;
	b.t1 = a.wall + (uint64_t)(b.dur * 1e9);
	b.sending = 1;
	for (i = 0; i < b.n; i++)
		send_compose(&b.conns[i]);
	while (b.now < b.t1)
		loop_once(100);
	cpu_sample(&z);
	b.sending = 0;
	deadline = mono_ns() + DRAIN_NS;
	for (;;) {
		sent = acked = 0;
		for (i = 0; i < b.n; i++) {
			sent += b.conns[i].sent;
			acked += b.conns[i].acked;
		}
		if (sent == acked || mono_ns() > deadline)
			break;
		loop_once(10);
	}
	secs = (double)(z.wall - a.wall) / 1e9;
	printf("compose N=%u body=%u for %.1f s (window 1)\n", b.n, b.bytes,
	    secs);
	printf("  COMPOSE        %.0f /s (%llu OK, %llu ERR, %llu pushes "
	    "received)\n", (double)b.completed_in / secs,
	    (unsigned long long)acked, (unsigned long long)b.errs,
	    (unsigned long long)b.pushes);
	printf("  latency us     p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n",
	    hist_q(&b.lat, 0.5), hist_q(&b.lat, 0.9), hist_q(&b.lat, 0.99),
	    (double)b.lat.max / 1000);
	print_cpu(&a, &z, b.completed_in, "COMPOSE");
	printf("RESULT mode=compose n=%u compose_s=%.0f p50_us=%.0f "
	    "p99_us=%.0f max_us=%.0f errors=%llu relayd_cpu=%.0f "
	    "bench_cpu=%.0f\n", b.n, (double)b.completed_in / secs,
	    hist_q(&b.lat, 0.5), hist_q(&b.lat, 0.99),
	    (double)b.lat.max / 1000, (unsigned long long)b.errs,
	    cpu_pct(&a, &z, 0), cpu_pct(&a, &z, 1));
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "rate",	required_argument,	NULL,	'r' },
		{ "window",	required_argument,	NULL,	'w' },
		{ "pid",	required_argument,	NULL,	'P' },
		{ "cpu",	required_argument,	NULL,	'C' },
		{ "self-cpu",	required_argument,	NULL,	'Z' },
		{ NULL,		0,			NULL,	0 }
	};
	struct addrinfo	 hints;
	cpu_set_t	 set;
	const char	*errstr, *m;
	int		 ch, r;
	unsigned int	 total;

	if (argc < 2)
		usage();
	m = argv[1];
	if (strcmp(m, "broadcast") == 0)
		b.mode = M_BROADCAST;
	else if (strcmp(m, "logins") == 0)
		b.mode = M_LOGINS;
	else if (strcmp(m, "idle") == 0)
		b.mode = M_IDLE;
	else if (strcmp(m, "compose") == 0)
		b.mode = M_COMPOSE;
	else
		usage();
	argc--;
	argv++;

	b.host = "127.0.0.1";
	b.port = RELAY_PORT_STR;
	b.prefix = "bench";
	b.password = "bench";
	b.n = 10;
	b.s = 1;
	b.bytes = 64;
	b.window = 32;
	b.dur = b.mode == M_IDLE ? 3 : 5;
	b.conc = 0;
	while ((ch = getopt_long(argc, argv, "b:c:d:h:K:n:p:qs:S:U:W:",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			b.bytes = strtonum(optarg, BODY_MIN, BODY_MAX_DEFAULT,
			    &errstr);
			if (errstr != NULL)
				errx(1, "-b %s: %s", optarg, errstr);
			break;
		case 'c':
			b.conc = strtonum(optarg, 1, 100000, &errstr);
			if (errstr != NULL)
				errx(1, "-c %s: %s", optarg, errstr);
			break;
		case 'd':
			b.dur = strtod(optarg, NULL);
			if (b.dur <= 0 || b.dur > 86400)
				errx(1, "-d %s: bad duration", optarg);
			break;
		case 'h':
			b.host = optarg;
			break;
		case 'K':
			b.keyfile = optarg;
			break;
		case 'n':
			b.n = strtonum(optarg, 1, 1000000, &errstr);
			if (errstr != NULL)
				errx(1, "-n %s: %s", optarg, errstr);
			break;
		case 'p':
			b.port = optarg;
			break;
		case 'q':
			b.quiet = 1;
			break;
		case 's':
			b.s = strtonum(optarg, 1, 1000000, &errstr);
			if (errstr != NULL)
				errx(1, "-s %s: %s", optarg, errstr);
			break;
		case 'S':
			b.secretfile = optarg;
			break;
		case 'U':
			b.prefix = optarg;
			break;
		case 'W':
			b.password = optarg;
			break;
		case 'r':
			b.rate = strtod(optarg, NULL);
			if (b.rate <= 0)
				errx(1, "--rate %s: bad rate", optarg);
			break;
		case 'w':
			b.window = strtonum(optarg, 1, 1000000, &errstr);
			if (errstr != NULL)
				errx(1, "--window %s: %s", optarg, errstr);
			break;
		case 'P':
			b.hubpid = strtonum(optarg, 1, INT_MAX, &errstr);
			if (errstr != NULL)
				errx(1, "--pid %s: %s", optarg, errstr);
			break;
		case 'C':
			b.cpus = optarg;
			break;
		case 'Z':
			b.selfcpus = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || b.keyfile == NULL || b.secretfile == NULL)
		usage();
	if (b.conc == 0)
		b.conc = b.mode == M_LOGINS ? 16 : 64;

	if (b.selfcpus != NULL) {
		if (parse_cpus(b.selfcpus, &set) == -1)
			errx(1, "bad CPU list: %s", b.selfcpus);
		if (sched_setaffinity(0, sizeof(set), &set) == -1)
			err(1, "sched_setaffinity");
	}
	pin_relayd();
	setup_crypto();
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(b.host, b.port, &hints, &b.ai)) != 0)
		errx(1, "%s port %s: %s", b.host, b.port, gai_strerror(r));
	total = b.mode == M_LOGINS ? b.conc : b.n;
	raise_nofile(total);
	if ((b.conns = calloc(total, sizeof(*b.conns))) == NULL)
		err(1, NULL);
	b.nconns = total;
	if ((b.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");

	switch (b.mode) {
	case M_BROADCAST:
		run_broadcast();
		break;
	case M_LOGINS:
		run_logins();
		break;
	case M_IDLE:
		run_idle();
		break;
	case M_COMPOSE:
		run_compose();
		break;
	}
	return 0;
}
