/*
 * relay.h: the terminal client's own structures and prototypes.  The
 * client is layered: conn.c owns the socket, the frames, the key and both
 * SEQ counters; session.c owns the protocol (HELLO, LOGIN, pending replies,
 * pushes, de-duplication, ACKs, KEY) and the event loop; ui.c (a terminal)
 * and script.c (anything else) are the two front ends that turn events
 * into output and input lines into commands.
 */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto.h"

/* Exit statuses, documented in relay(1). */
#define EXIT_OK		0
#define EXIT_LOCAL	1	/* usage or local error */
#define EXIT_CONNECT	2	/* cannot connect */
#define EXIT_NOANSWER	3	/* no answer to HELLO: key or secret */
#define EXIT_LOGIN	4	/* login refused */
#define EXIT_BYE	5	/* the server said BYE */
#define EXIT_LOST	6	/* connection lost */
#define EXIT_REFUSED	7	/* a command got ERR (scripts) */

#define TIMEOUT_DEFAULT	5	/* seconds to wait for HELLO's answer */
#define PASSWORD_MAX	1024
#define LINE_MAX_IN	(BODY_MAX_DEFAULT + 128)	/* one input line */
#define PENDING_MAX	1024	/* commands awaiting a reply */
#define OUT_MAX		(2 * 1024 * 1024)	/* queued frame bytes */
#define SEEN_MAX	65536	/* IDs remembered for de-duplication */

/* Everything the user chose, from options, environment and config. */
struct options {
	const char	*host;
	const char	*port;
	char		 user[USER_MAX + 1];
	char		 key[FERNET_KEY_B64LEN + 1];
	char		 secret[SECRET_MAX + 1];
	char		 password_md5[MD5_HEX_LEN + 1];
	int		 timeout;	/* seconds */
	char		**oneshot;	/* command words, or NULL */
	int		 noneshot;
};

/* config.c */
int	 config_load(struct options *, const char *, const char *,
	    const char *, const char *);
void	 config_wipe(struct options *);

/* What the session tells its front end about. */
enum event_type {
	EV_SAY,		/* from, time, body */
	EV_MSG,		/* id, from, time, body */
	EV_RECEIPT,	/* id, msgid, reader, time */
	EV_OK,		/* verb, text (the fields after the verb) */
	EV_ERR,		/* verb, text */
	EV_WHO,		/* text: the user names, space separated */
	EV_PONG,	/* text: the token */
	EV_LOGIN,	/* count */
	EV_BYE,		/* text */
	EV_NOTICE	/* text: a local message for the user */
};

struct event {
	enum event_type	 type;
	const char	*verb;
	const char	*id;
	const char	*from;	/* sender, or the reader of a receipt */
	const char	*msgid;
	time_t		 time;
	const char	*text;	/* body or free text, not terminated */
	size_t		 textlen;
	uint64_t	 count;
};

struct session;

/* A front end: input source and event sink.  */
struct frontend {
	int	 infd;		/* -1: no input */
	void	*arg;
	/* The session is logged in; input may start. */
	void	(*ready)(void *, struct session *);
	/* infd is readable, or buffered() said so.  -1: end of input. */
	int	(*input)(void *, struct session *);
	int	(*buffered)(void *);
	/* Show an event; -1 if it could not be shown (then no ACK). */
	int	(*event)(void *, const struct event *);
	void	(*winch)(void *);
};

/* conn.c */
struct conn;
struct conn *conn_open(const char *, const char *, int, const char **);
void	 conn_free(struct conn *);
int	 conn_fd(const struct conn *);
int	 conn_setkey(struct conn *, const char *);
int	 conn_sethead(struct conn *, const char *);
int	 conn_send(struct conn *, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
int	 conn_sendbody(struct conn *, const char *, const char *, size_t);
int	 conn_want_write(const struct conn *);
size_t	 conn_queued(const struct conn *);
int	 conn_flush(struct conn *);
ssize_t	 conn_read(struct conn *);
int	 conn_next(struct conn *, char **, size_t *);

/* session.c */
struct session *session_new(struct conn *, struct options *);
void	 session_free(struct session *);
int	 session_run(struct session *, const struct frontend *);
int	 session_command(struct session *, const char *, size_t);
int	 session_can_send(const struct session *);
void	 session_quit(struct session *);
void	 session_warnx(struct session *, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
int	 session_refused(const struct session *);
int	 session_ready(const struct session *);
const char *session_reason(const struct session *);

/* ui.c */
int	 ui_run(struct session *);

/* script.c */
int	 script_run(struct session *, char **, int);

/* vis.c */
enum vis_mode {
	VIS_TERM,	/* for a terminal: ^[ ^A ^? \xNN, LF as a new line */
	VIS_SCRIPT	/* one line: \\ and \xNN for every unsafe byte */
};
size_t	 vis_string(char *, size_t, const char *, size_t, enum vis_mode);
size_t	 vis_size(size_t);
int	 vis_time(char *, size_t, time_t, time_t);

#endif /* RELAY_RELAY_H */
