/*
 * relayd.h: the daemon's own types and prototypes.  The hub (the parent)
 * and its workers (one per client) share the records below; the limits
 * every part of the daemon reads live in struct relayd_limits.  Functions
 * are grouped by the file that defines them.
 */
#ifndef RELAYD_H
#define RELAYD_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>

#include "proto.h"

#define RELAYD_USER_DIR		"/var/lib/relayd"
#define HUB_QUEUE_MAX		(4 * 1024 * 1024)  /* bytes queued to a worker */
#define HUB_KILL_GRACE_MS	5000	/* SIGTERM, then SIGKILL after this */
#define HUB_STOP_GRACE_MS	5000	/* shutdown waits this for workers */
#define WORKER_HUBQ_MAX		(4 * 1024 * 1024)  /* bytes queued to the hub */
#define WORKER_LINES_MAX	(256 * 1024)	/* frames read ahead */
#define WORKER_DRAIN_MS		1000	/* after BYE: flush, then wait EOF */
#define WORKER_STATS_MS		250	/* W_STATS at most this often */
#define LISTEN_MAX		16	/* -l addresses */
#define PEER_MAX		64	/* "[addr]:port" */
#define PENALTY_TABLE_MAX	4096	/* sources and users remembered */
#define PENALTY_FORGET_MS	(3600 * 1000)	/* after the last penalty */
#define WORKER_SNDBUF		(128 * 1024)	/* SO_SNDBUF, SO_RCVBUF */
#define HUB_SOCKBUF		(32 * 1024)	/* SO_SNDBUF, hub <-> worker */

/*
 * Hub records.  Worker -> hub requests and hub -> worker messages, encoded
 * with record.c.  Replies (H_LOGIN, H_LOOKUP, H_WHO) come in the order of
 * the requests; a worker has at most one request outstanding.
 */
enum relayd_rec {
	W_LOGIN = 1,	/* str user, str nonce, str proof */
	W_SAY,		/* u64 time, str body */
	W_LOOKUP,	/* str user */
	W_DELIVER,	/* str user, str push */
	W_WHO,		/* (empty) */
	W_STATS,	/* u64 frames_in, u64 frames_out, u64 last_active,
			   u64 frames_invalid */
	W_BADHEAD,	/* (empty): a frame under the key, wrong HEAD */

	H_LOGIN = 100,	/* u32 ok */
	H_LOOKUP,	/* u32 exists */
	H_WHO,		/* u32 n, str user... */
	H_SAY,		/* str from, u64 time, str body */
	H_PUSH,		/* str push */
	H_KEY,		/* str newkey (44 base64 characters) */
	H_BYE		/* str reason */
};

/* Limits and timeouts, set by -o name=value. Seconds unless noted. */
struct relayd_limits {
	long long	 ttl;
	long long	 login_grace;
	long long	 rotate_grace;
	long long	 invalid_max;
	long long	 frame_max;	/* bytes */
	long long	 body_max;	/* bytes */
	long long	 mailbox_max;	/* items */
	long long	 slow_max;	/* bytes */
	long long	 idle_timeout;	/* 0: none */
	long long	 max_clients;	/* connections in all */
	long long	 max_clients_per_source; /* per address (IPv6: /64) */
	long long	 penalty_grace;	/* failures free of penalty */
	long long	 penalty_min;	/* first penalty, ms; doubles */
	long long	 penalty_max;	/* ms, per source; 0: off */
	long long	 penalty_user_max; /* ms, per user name; 0: off */
	long long	 frame_rate;	/* frames per second, sustained */
	long long	 frame_burst;	/* frames at once */
};

/* What the hub hands a worker at fork. */
struct worker_params {
	int		 sock;		/* client */
	int		 hub_in;	/* records from the hub */
	int		 hub_out;	/* records to the hub */
	const char	*peer;
	const char	*head;		/* HEAD_LEN hex, terminated */
	unsigned char	*key;		/* FERNET_KEY_LEN bytes, wiped */
	const struct relayd_limits *limits;
};

/*
 * One -o name, and the same name as a relayd.conf keyword: parse.c reads
 * this table (defined in relayd.c) for both, so a new limit is added in
 * one place.  value points into relayd_limits.
 */
struct relayd_option {
	const char	*name;
	long long	*value;
	long long	 min;
	long long	 max;
};

/*
 * The configuration: relayd.conf(5), then the command line over it.  A
 * NULL path or -1 number is "not set": relayd.c fills in the defaults
 * (control_path: /run/relayd.sock as root, else STATEDIR/relayd.sock;
 * user: RELAYD_USER) before the hub starts, so that control.c and the
 * privilege drop read every field set.  On SIGHUP the fields that cannot
 * change while running keep their values, so pointers to them stay good.
 */
#define RELAYD_CONF_ROOT	"/etc/relayd.conf"
#define RELAYD_PIDFILE_ROOT	"/run/relayd.pid"
#define RELAYD_CONTROL_ROOT	"/run/" CTL_SOCKET_NAME
#define RELAYD_USER		"_relayd"
#define RELAYD_OPTIONS_MAX	64	/* bits of limits_set */
struct relayd_conf {
	char		*listen[LISTEN_MAX];
	int		 nlisten;	/* 0: 127.0.0.1 and ::1 */
	char		*port;
	char		*statedir;
	char		*secretfile;
	char		*keyfile;	/* NULL: a new key at each launch */
	int		 key_per_launch; /* said so explicitly */
	char		*usersfile;
	char		*control_path;
	char		*pidfile;
	char		*user;		/* unprivileged user of the workers */
	int		 verbose;	/* log level */
	int		 facility;	/* syslog(3) LOG_* */
	struct relayd_limits limits;
	uint64_t	 limits_set;	/* bit i: relayd_options[i] given */
};

struct userdb;

/* relayd.c */
extern struct relayd_limits	relayd_limits;
extern struct relayd_conf	relayd_conf;
extern const struct relayd_option relayd_options[];
extern const size_t		relayd_noptions;
extern int			relayd_debug;
int		 relayd_reload(void);
uint64_t	 mono_ms(void);
uint64_t	 wall_sec(void);
int		 relayd_key_save(const unsigned char *);
int		 relayd_users_reload(void);
const char	*relayd_users_path(void);
void		 relayd_devnull(void);
void		 relayd_title(const char *, ...)
		    __attribute__((__format__(printf, 1, 2)));

/* parse.c */
void		 parse_init(struct relayd_conf *);
void		 parse_free(struct relayd_conf *);
int		 parse_file(const char *, struct relayd_conf *, int);
int		 parse_keyword(struct relayd_conf *, const char *,
		    const char *, const char **);
int		 parse_limit(struct relayd_conf *, const char *, size_t,
		    const char *, const char **);
void		 parse_merge(struct relayd_conf *, const struct relayd_conf *);
const char	*parse_check_limits(const struct relayd_limits *, char *,
		    size_t);
const char	*parse_facility_name(int);
const char	*parse_option_names(void);

/* hub.c */
enum hub_accept_result {		/* hub_accept4(), besides a descriptor */
	ACCEPT_DONE = -1,
	ACCEPT_RETRY = -2,
	ACCEPT_PAUSE = -3
};
int		 hub_accept4(int, struct sockaddr *, socklen_t *,
		    const char *);
struct hub_session {
	pid_t		 pid;
	const char	*peer;
	const char	*user;		/* NULL: not logged in */
	uint64_t	 frames_in;	/* as of the worker's last W_STATS */
	uint64_t	 frames_out;
	uint64_t	 last_active;	/* wall clock seconds; 0: none yet */
	uint64_t	 since;		/* wall clock seconds at connect */
};
/* The hub's counters, for relayctl stats. */
struct hub_stats {
	uint64_t	 started;	/* mono_ms() at hub_init() */
	uint64_t	 clients;	/* connections now */
	uint64_t	 clients_peak;
	uint64_t	 clients_total;
	uint64_t	 logins_ok;
	uint64_t	 logins_failed;
	uint64_t	 frames_relayed;	/* SAY and mailbox pushes handed on */
	uint64_t	 frames_invalid;	/* as workers last reported */
	uint64_t	 mailbox_stored;
};
struct hub_listener {
	int		 fd;
	char		 addr[PEER_MAX];
	int		 port;
};
void		 hub_init(struct hub_listener *, int, struct userdb *,
		    const char *, const unsigned char *);
int		 hub_run(void);
void		 hub_set_users(struct userdb *);
void		 hub_rotate_key(const unsigned char *);
void		 hub_signals_block(void);
struct userdb	*hub_userdb(void);
int		 hub_kick_user(const char *, const char *);
int		 hub_kick_pid(pid_t, const char *);
void		 hub_sessions(void (*)(void *, const struct hub_session *),
		    void *);
void		 hub_get_stats(struct hub_stats *);
void		 hub_key(unsigned char *);

/* spawn.c: the small process that forks the workers */
void		 spawn_init(void);
pid_t		 spawn_pid(void);
int		 spawn_fd(void);
pid_t		 spawn_worker(int, int, int, const char *, const char *,
		    const unsigned char *);
int		 spawn_reaped(pid_t *, int *);
void		 spawn_stop(void);

/*
 * worker.c.  worker_main() is the session's process; the rest is the
 * session without its event loop, which the fuzz target drives.
 */
#define WORKER_READY_CLIENT	0x1	/* the client socket is readable */
#define WORKER_READY_HUB	0x2	/* the socket from the hub is */
struct worker;
__dead void	 worker_main(const struct worker_params *);
struct worker	*worker_new(const struct worker_params *);
int		 worker_turn(struct worker *, int);
__dead void	 worker_end(struct worker *, int);

/* hook.c: a seam for the test build, which links its own object here */
int		 hook_command(const char *, int);

/* sandbox.c */
void		 sandbox_init(const char *, const char *);
void		 sandbox_worker(void);

/* penalty.c */
uint64_t	 penalty_until(const char *, uint64_t);
int		 penalty_fail(const char *, uint64_t, uint32_t, uint64_t,
		    uint64_t, uint64_t *);
void		 penalty_free(void);

/* userdb.c */
struct userdb	*userdb_new(void);
int		 userdb_load(const char *, struct userdb **, char *, size_t);
void		 userdb_free(struct userdb *);
const char	*userdb_lookup(const struct userdb *, const char *, size_t);
size_t		 userdb_count(const struct userdb *);
int		 userdb_add(struct userdb *, const char *, const char *);
int		 userdb_remove(struct userdb *, const char *);
int		 userdb_save(const struct userdb *, const char *, char *,
		    size_t);
int		 userdb_check_mode(const char *, char *, size_t);
struct userdb	*userdb_dup(const struct userdb *);
const char	*userdb_name(const struct userdb *, size_t);

/* spool.c */
struct spool_list {
	char		**ids;
	size_t		  n;
};
int		 spool_init(const char *, const char **);
void		 spool_free(void);
const char	*spool_dir(void);
int		 spool_chrooted(void);
int		 spool_sweep(void);
int		 spool_store(const char *, const char *, size_t, size_t,
		    char *, const char **);
int		 spool_count(const char *, size_t *);
int		 spool_list(const char *, struct spool_list *);
void		 spool_list_free(struct spool_list *);
int		 spool_read(const char *, const char *, int, struct buf *,
		    size_t);
int		 spool_claim(const char *, const char *);
int		 spool_unclaim(const char *, const char *);
int		 spool_finish(const char *, const char *);
int		 spool_valid_id(const char *, size_t);
int		 spool_remove_user(const char *);

/* control.c */
void		 control_init(const char *);
int		 control_fd(void);
void		 control_dispatch(void);
uint64_t	 control_next(void);
void		 control_timers(uint64_t);
void		 control_cleanup(void);

#endif /* RELAYD_H */
