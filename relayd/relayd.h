/*
 * relayd.h: the daemon's own types and prototypes.  The hub (the parent)
 * and its workers (one per client) share the records below; the limits
 * every part of the daemon reads live in struct relayd_limits.  Functions
 * are grouped by the file that defines them.
 */
#ifndef RELAYD_H
#define RELAYD_H

#include <sys/types.h>

#include <stdint.h>

#include "proto.h"

#define RELAYD_USER_DIR		"/var/lib/relayd"
#define HUB_QUEUE_MAX		(4 * 1024 * 1024)  /* bytes queued to a worker */
#define HUB_KILL_GRACE_MS	5000	/* SIGTERM, then SIGKILL after this */
#define HUB_STOP_GRACE_MS	5000	/* shutdown waits this for workers */
#define WORKER_HUBQ_MAX		(4 * 1024 * 1024)  /* bytes queued to the hub */
#define WORKER_LINES_MAX	(256 * 1024)	/* frames read ahead */
#define WORKER_DRAIN_MS		1000	/* after BYE: flush, then wait EOF */
#define WORKER_STATS_MS		10000	/* W_STATS at most this often */
#define LISTEN_MAX		16	/* -l addresses */
#define PEER_MAX		64	/* "[addr]:port" */

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
	W_STATS,	/* u64 frames_in, u64 frames_out, u64 last_active */

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

struct userdb;

/* relayd.c */
extern struct relayd_limits	relayd_limits;
extern int			relayd_debug;
uint64_t	 mono_ms(void);
uint64_t	 wall_sec(void);
int		 relayd_key_save(const unsigned char *);
int		 relayd_users_reload(void);
const char	*relayd_users_path(void);
void		 relayd_title(const char *, ...)
		    __attribute__((__format__(printf, 1, 2)));

/* hub.c */
struct hub_session {
	pid_t		 pid;
	const char	*peer;
	const char	*user;		/* NULL: not logged in */
	uint64_t	 frames_in;	/* as of the worker's last W_STATS */
	uint64_t	 frames_out;
	uint64_t	 last_active;	/* wall clock seconds */
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
void		 hub_child_cleanup(void);
void		 hub_signals_block(void);
struct userdb	*hub_userdb(void);
int		 hub_kick_user(const char *, const char *);
int		 hub_kick_pid(pid_t, const char *);
void		 hub_sessions(void (*)(void *, const struct hub_session *),
		    void *);

/* worker.c */
__dead void	 worker_main(const struct worker_params *);

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

/* spool.c */
struct spool_list {
	char		**ids;
	size_t		  n;
};
int		 spool_init(const char *, const char **);
void		 spool_free(void);
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

#endif /* RELAYD_H */
