/*
 * worker.c: one client session, in its own process.  It reads frames from
 * the client, checks each one in the order relay(7) gives (token under
 * the current key, or the previous one during a rotation's grace; age;
 * HEAD; SEQ), runs the command, and writes replies and pushes as frames.
 * It owns its user's mailbox I/O (spool.c); everything that involves
 * other sessions or the users table is a record to the hub (relayd.h).
 *
 * Replies go out in command order.  A command that needs the hub (LOGIN,
 * COMPOSE, ACK of a MSG, WHO) or that produces many frames (READ) holds
 * back the commands after it, while the worker goes on reading frames
 * into a bounded queue (so an oversized line is still seen) and
 * delivering pushes.  Pending output past slow_max ends the session.
 *
 * Every deadline is on the monotonic clock, in milliseconds; the wall
 * clock is used only for TIME fields and Fernet timestamps.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relayd.h"

#define WORKER_ITEM_SLACK	512	/* push bytes beyond a BODY */
#define WORKER_STATS_WAKE_MS	1000	/* a quiet session's counts wait */
#define WORKER_STACK_TRIM	(64 * 1024)	/* idle: stack given back */

/*
 * How a session's process ends.  The fuzz target (tests/fuzz) builds this
 * file with its own, which goes back to the fuzzer instead of exiting.
 */
#ifdef WORKER_EXIT
__dead void	 WORKER_EXIT(int);
#else
#define WORKER_EXIT	_exit
#endif

enum worker_wait {
	WAIT_NONE,
	WAIT_LOGIN,	/* H_LOGIN */
	WAIT_COMPOSE,	/* H_LOOKUP of the recipient */
	WAIT_ACK,	/* H_LOOKUP of the receipt's recipient */
	WAIT_WHO,	/* H_WHO */
	WAIT_READ	/* items go out as the output drains */
};

struct worker {
	int			 s;
	int			 hin;
	int			 hout;
	const char		*peer;
	char			 head[HEAD_LEN + 1];
	const struct relayd_limits *lim;

	struct fernet		*f;
	struct fernet		*fprev;	/* old key, during rotation grace */
	uint64_t		 prev_until;

	struct frame_in		 fin;
	struct buf		 lines;	/* whole frames not yet handled */
	struct buf		 out;	/* frames to the client */
	struct buf		 hq;	/* records to the hub */
	struct buf		 hbuf;	/* records from the hub */
	struct buf		 plain;	/* the command being run */
	struct buf		 fmt;	/* a plaintext being sent */
	struct buf		 item;	/* a mailbox item */
	char			*tok;
	size_t			 toksz;

	uint64_t		 seq_in;	/* next expected */
	uint64_t		 seq_out;
	int			 invalid_run;
	int			 login_fails;
	char			 nonce[NONCE_LEN + 1];	/* "": none */
	char			 user[USER_MAX + 1];
	int			 logged_in;

	enum worker_wait	 wait;
	char			 arg_user[USER_MAX + 1];
	char			 arg_id[ID_MAX + 1];
	const char		*body;	/* in plain */
	size_t			 bodylen;
	struct spool_list	 rl;
	size_t			 ri;
	size_t			 rcount;

	int			 oversized;
	int			 flooded;	/* past the frame rate */
	int			 client_eof;
	int			 hub_gone;
	int			 closing;
	int			 shut;
	uint64_t		 close_at;
	uint64_t		 login_at;
	uint64_t		 idle_at;	/* 0: none */

	uint64_t		 frames_in;
	uint64_t		 frames_out;
	uint64_t		 invalid_total;
	uint64_t		 last_active;
	uint64_t		 stats_at;

	double			 tokens;	/* frame-rate bucket */
	uint64_t		 tokens_at;	/* mono ms of the last refill */
	int			 stats_dirty;
	int			 trimmed;	/* heap given back while idle */
};

static volatile sig_atomic_t worker_sigterm;

static void	 worker_bye(struct worker *, const char *);
static void	 worker_stats(struct worker *, uint64_t);

static void
worker_on_sigterm(int sig)
{
	worker_sigterm = 1;
}

static int	 worker_seal(struct worker *);

/* Formats, encrypts and queues one frame to the client. */
static int
worker_vsend(struct worker *w, const char *fmt, va_list ap)
{
	buf_reset(&w->fmt);
	if (proto_vformat(&w->fmt, w->head, w->seq_out, fmt, ap) == -1) {
		log_warnx("%s: reply does not fit", w->peer);
		return -1;
	}
	return worker_seal(w);
}

/* Wipes and frees the token buffer; worker_seal() makes it again. */
static void
worker_tok_free(struct worker *w)
{
	if (w->tok == NULL)
		return;
	explicit_bzero(w->tok, w->toksz);
	free(w->tok);
	w->tok = NULL;
	w->toksz = 0;
}

/* Encrypts the plaintext in w->fmt and queues it as the next frame. */
static int
worker_seal(struct worker *w)
{
	size_t		 need, toklen;
	char		*nt;
	int		 rc;

	need = fernet_token_len(buf_len(&w->fmt)) + 1;
	if (need > w->toksz) {
		if ((nt = realloc(w->tok, need)) == NULL) {
			log_warn("%s: realloc", w->peer);
			return -1;
		}
		w->tok = nt;
		w->toksz = need;
	}
	rc = fernet_encrypt(w->f, buf_data(&w->fmt), buf_len(&w->fmt),
	    wall_sec(), NULL, w->tok, w->toksz, &toklen);
	if (rc != FERNET_OK) {
		log_warnx("%s: encrypt: %s", w->peer, fernet_strerror(rc));
		return -1;
	}
	if (frame_out_add(&w->out, w->tok, toklen) == -1) {
		log_warnx("%s: output full", w->peer);
		return -1;
	}
	w->seq_out++;
	w->frames_out++;
	w->stats_dirty = 1;
	return 0;
}

static int
worker_send(struct worker *w, const char *fmt, ...)
    __attribute__((__format__(printf, 2, 3)));

static int
worker_send(struct worker *w, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = worker_vsend(w, fmt, ap);
	va_end(ap);
	return rc;
}

/* A reply to a command: failure to queue it ends the session. */
static void
worker_reply(struct worker *w, const char *fmt, ...)
    __attribute__((__format__(printf, 2, 3)));

static void
worker_reply(struct worker *w, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = worker_vsend(w, fmt, ap);
	va_end(ap);
	if (rc == -1)
		worker_end(w, 1);
}

/* A push: past slow_max of pending output the client is too slow. */
static void
worker_push(struct worker *w, const char *fmt, ...)
    __attribute__((__format__(printf, 2, 3)));

static void
worker_push(struct worker *w, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	if (w->closing)
		return;
	va_start(ap, fmt);
	rc = worker_vsend(w, fmt, ap);
	va_end(ap);
	if (rc == -1 || buf_len(&w->out) > (size_t)w->lim->slow_max) {
		log_warnx("%s: %zu bytes pending, too slow", w->peer,
		    buf_len(&w->out));
		worker_bye(w, "too slow");
	}
}

/* Writes v in decimal to end of a buffer; returns where it starts. */
static char *
worker_u64(char *end, uint64_t v)
{
	do {
		*--end = '0' + v % 10;
		v /= 10;
	} while (v != 0);
	return end;
}

/*
 * The pushes the hub relays, built with memcpy instead of vsnprintf (two
 * passes over every body): "HEAD SEQ " and then the pieces.  They are
 * the hot path of a broadcast, one per delivery.
 */
static void
worker_push_parts(struct worker *w, const char *a, size_t alen,
    const char *b, size_t blen, const char *c, size_t clen)
{
	char	 num[24], *p;
	int	 rc = -1;

	if (w->closing)
		return;
	p = worker_u64(num + sizeof(num), w->seq_out);
	*--p = ' ';
	buf_reset(&w->fmt);
	if (buf_add(&w->fmt, w->head, HEAD_LEN) == 0 &&
	    buf_add(&w->fmt, p, num + sizeof(num) - p) == 0 &&
	    buf_add(&w->fmt, " ", 1) == 0 &&
	    buf_add(&w->fmt, a, alen) == 0 &&
	    buf_add(&w->fmt, b, blen) == 0 &&
	    buf_add(&w->fmt, c, clen) == 0)
		rc = worker_seal(w);
	else
		log_warnx("%s: push does not fit", w->peer);
	if (rc == -1 || buf_len(&w->out) > (size_t)w->lim->slow_max) {
		log_warnx("%s: %zu bytes pending, too slow", w->peer,
		    buf_len(&w->out));
		worker_bye(w, "too slow");
	}
}

/* H_SAY: "SAY FROM TIME BODY". */
static void
worker_push_say(struct worker *w, const char *from, size_t fromlen,
    uint64_t t, const char *body, size_t bodylen)
{
	char	 mid[4 + USER_MAX + 1 + 20 + 1], num[20], *p;
	size_t	 n;

	if (fromlen > USER_MAX)
		return;
	memcpy(mid, "SAY ", 4);
	memcpy(mid + 4, from, fromlen);
	n = 4 + fromlen;
	mid[n++] = ' ';
	p = worker_u64(num + sizeof(num), t);
	memcpy(mid + n, p, num + sizeof(num) - p);
	n += num + sizeof(num) - p;
	mid[n++] = ' ';
	worker_push_parts(w, mid, n, body, bodylen, "", 0);
}

/*
 * Says BYE and starts closing: no more commands or records; the output
 * is flushed, the write side shut down, and the input drained for a short
 * while so the BYE is not lost to a reset.
 */
static void
worker_close(struct worker *w)
{
	if (w->closing)
		return;
	w->closing = 1;
	w->close_at = mono_ms() + WORKER_DRAIN_MS;
	/* The hub's totals get this session's last counts. */
	w->stats_at = 0;
	worker_stats(w, 0);
}

static void
worker_bye(struct worker *w, const char *reason)
{
	if (w->closing)
		return;
	log_info("%s: BYE %s", w->peer, reason);
	if (worker_send(w, "BYE %s", reason) == -1)
		log_debug("%s: BYE not queued", w->peer);
	worker_close(w);
}

/* Queues a record to the hub; the hub always reads, so full is fatal. */
static void
worker_hub_finish(struct worker *w, struct rec_writer *rw)
{
	if (rec_finish(rw) == -1) {
		log_warnx("%s: queue to the hub full", w->peer);
		worker_end(w, 1);
	}
}

static void
worker_hub_str(struct rec_writer *rw, const char *s)
{
	rec_put_str(rw, s, strlen(s));
}

/* A wrong HEAD under the right key: someone guessing the secret code. */
static void
worker_hub_badhead(struct worker *w)
{
	struct rec_writer	 rw;

	if (w->hub_gone)
		return;
	rec_begin(&rw, &w->hq, W_BADHEAD);
	worker_hub_finish(w, &rw);
}

static void
worker_hub_lookup(struct worker *w, const char *user, enum worker_wait wait)
{
	struct rec_writer	 rw;

	w->wait = wait;
	rec_begin(&rw, &w->hq, W_LOOKUP);
	worker_hub_str(&rw, user);
	worker_hub_finish(w, &rw);
}

static void
worker_hub_deliver(struct worker *w, const char *user, const char *push,
    size_t len)
{
	struct rec_writer	 rw;

	rec_begin(&rw, &w->hq, W_DELIVER);
	worker_hub_str(&rw, user);
	rec_put_str(&rw, push, len);
	worker_hub_finish(w, &rw);
}

/* Splits off the next SP-separated field of (*p, *len). */
static int
worker_field(const char **p, size_t *len, char *dst, size_t dstsz)
{
	const char	*f;
	size_t		 flen;

	if (proto_field(p, len, &f, &flen) == -1 || flen >= dstsz)
		return -1;
	memcpy(dst, f, flen);
	dst[flen] = '\0';
	return 0;
}

/* Checks a BODY; replies ERR and returns -1 if it is no good. */
static int
worker_check_body(struct worker *w, const char *verb, const char *body,
    size_t len)
{
	if (body == NULL || len == 0) {
		worker_reply(w, "ERR %s bad arguments", verb);
		return -1;
	}
	if (len > (size_t)w->lim->body_max) {
		worker_reply(w, "ERR %s too long", verb);
		return -1;
	}
	if (!proto_valid_body(body, len, w->lim->body_max)) {
		worker_reply(w, "ERR %s bad arguments", verb);
		return -1;
	}
	return 0;
}

static void
worker_hello(struct worker *w, struct proto_msg *m)
{
	unsigned char	 r[NONCE_LEN / 2];
	size_t		 i;

	if (w->logged_in) {
		worker_reply(w, "ERR HELLO already logged in");
		return;
	}
	if (m->args == NULL || m->argslen == 0 ||
	    memchr(m->args, ' ', m->argslen) != NULL) {
		worker_reply(w, "ERR HELLO bad arguments");
		return;
	}
	if (m->argslen != strlen(RELAY_PROTO_NAME) ||
	    memcmp(m->args, RELAY_PROTO_NAME, m->argslen) != 0) {
		worker_reply(w, "ERR HELLO unsupported version");
		return;
	}
	random_bytes(r, sizeof(r));
	for (i = 0; i < sizeof(r); i++)
		snprintf(w->nonce + 2 * i, 3, "%02x", r[i]);
	worker_reply(w, "HELLO %s %s", RELAY_PROTO_NAME, w->nonce);
}

static void
worker_login_failed(struct worker *w)
{
	worker_reply(w, "ERR LOGIN login failed");
	if (++w->login_fails >= LOGIN_FAIL_MAX)
		worker_bye(w, "too many failed logins");
}

static int
worker_valid_proof(const char *p, size_t len)
{
	size_t	 i;

	if (len != PROOF_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static void
worker_login(struct worker *w, struct proto_msg *m)
{
	struct rec_writer	 rw;
	char			 nonce[NONCE_LEN + 1];
	char			 proof[PROOF_LEN + 1];
	const char		*p = m->args;
	size_t			 len = m->argslen;

	if (w->logged_in) {
		worker_reply(w, "ERR LOGIN already logged in");
		return;
	}
	/* Every LOGIN uses up the nonce, whatever becomes of it. */
	memcpy(nonce, w->nonce, sizeof(nonce));
	w->nonce[0] = '\0';
	if (nonce[0] == '\0' ||
	    worker_field(&p, &len, w->arg_user, sizeof(w->arg_user)) == -1 ||
	    worker_field(&p, &len, proof, sizeof(proof)) == -1 ||
	    len != 0 ||
	    !proto_valid_user(w->arg_user, strlen(w->arg_user)) ||
	    !worker_valid_proof(proof, strlen(proof))) {
		log_limited("%s: failed login (malformed, or no HELLO)",
		    w->peer);
		worker_login_failed(w);
		return;
	}
	rec_begin(&rw, &w->hq, W_LOGIN);
	worker_hub_str(&rw, w->arg_user);
	worker_hub_str(&rw, nonce);
	worker_hub_str(&rw, proof);
	worker_hub_finish(w, &rw);
	w->wait = WAIT_LOGIN;
}

static void
worker_login_done(struct worker *w, uint32_t ok)
{
	size_t	 count;

	w->wait = WAIT_NONE;
	if (!ok) {
		worker_login_failed(w);
		return;
	}
	w->logged_in = 1;
	strlcpy(w->user, w->arg_user, sizeof(w->user));
	relayd_title("%s %s", w->user, w->peer);
	if (spool_count(w->user, &count) == -1) {
		log_warn("%s: mailbox of %s", w->peer, w->user);
		count = 0;
	}
	worker_reply(w, "OK LOGIN %zu", count);
}

static void
worker_say(struct worker *w, struct proto_msg *m)
{
	struct rec_writer	 rw;

	if (worker_check_body(w, "SAY", m->args, m->argslen) == -1)
		return;
	rec_begin(&rw, &w->hq, W_SAY);
	rec_put_u64(&rw, wall_sec());
	rec_put_str(&rw, m->args, m->argslen);
	worker_hub_finish(w, &rw);
	worker_reply(w, "OK SAY");
}

static void
worker_compose(struct worker *w, struct proto_msg *m)
{
	const char	*p = m->args, *f;
	size_t		 len = m->argslen, flen;

	if (p == NULL || proto_field(&p, &len, &f, &flen) == -1 ||
	    len == 0) {
		worker_reply(w, "ERR COMPOSE bad arguments");
		return;
	}
	if (worker_check_body(w, "COMPOSE", p, len) == -1)
		return;
	if (!proto_valid_user(f, flen)) {
		worker_reply(w, "ERR COMPOSE unknown user");
		return;
	}
	memcpy(w->arg_user, f, flen);
	w->arg_user[flen] = '\0';
	w->body = p;
	w->bodylen = len;
	worker_hub_lookup(w, w->arg_user, WAIT_COMPOSE);
}

static void
worker_compose_done(struct worker *w, uint32_t exists)
{
	const char	*errstr;
	char		 id[ID_MAX + 1];
	size_t		 hlen;

	w->wait = WAIT_NONE;
	if (!exists) {
		worker_reply(w, "ERR COMPOSE unknown user");
		return;
	}
	buf_reset(&w->item);
	if (buf_addf(&w->item, "MSG %s %" PRIu64 " ", w->user,
	    wall_sec()) == -1 || buf_add(&w->item, w->body, w->bodylen) == -1) {
		worker_reply(w, "ERR COMPOSE storage error");
		return;
	}
	if (spool_store(w->arg_user, (const char *)buf_data(&w->item),
	    buf_len(&w->item), w->lim->mailbox_max, id, &errstr) == -1) {
		worker_reply(w, "ERR COMPOSE %s", errstr);
		return;
	}
	/* The push is the item with its ID after the type word. */
	hlen = strlen("MSG ");
	buf_reset(&w->fmt);
	if (buf_addf(&w->fmt, "MSG %s ", id) == -1 ||
	    buf_add(&w->fmt, buf_data(&w->item) + hlen,
	    buf_len(&w->item) - hlen) == -1)
		log_warnx("%s: push of %s does not fit", w->peer, id);
	else
		worker_hub_deliver(w, w->arg_user,
		    (const char *)buf_data(&w->fmt), buf_len(&w->fmt));
	worker_reply(w, "OK COMPOSE %s", id);
}

/* Sends the next READ items while the output has room, then OK READ. */
static void
worker_read_more(struct worker *w)
{
	const char	*p, *sp;
	size_t		 len;
	const char	*id;

	while (w->ri < w->rl.n && !w->closing &&
	    buf_len(&w->out) < (size_t)w->lim->slow_max / 2) {
		id = w->rl.ids[w->ri++];
		if (spool_read(w->user, id, 0, &w->item,
		    w->lim->body_max + WORKER_ITEM_SLACK) == -1) {
			if (errno != ENOENT)
				log_warn("%s: mailbox item %s/%s", w->peer,
				    w->user, id);
			continue;
		}
		p = (const char *)buf_data(&w->item);
		len = buf_len(&w->item);
		if ((sp = memchr(p, ' ', len)) == NULL ||
		    !((sp - p == 3 && memcmp(p, "MSG", 3) == 0) ||
		    (sp - p == 7 && memcmp(p, "RECEIPT", 7) == 0)) ||
		    memchr(p, '\0', len) != NULL) {
			log_warnx("%s: mailbox item %s/%s is corrupt; skipped",
			    w->peer, w->user, id);
			continue;
		}
		worker_reply(w, "%.*s %s %.*s", (int)(sp - p), p, id,
		    (int)(len - (sp - p) - 1), sp + 1);
		w->rcount++;
	}
	if (w->ri < w->rl.n)
		return;
	spool_list_free(&w->rl);
	w->wait = WAIT_NONE;
	worker_reply(w, "OK READ %zu", w->rcount);
}

static void
worker_read(struct worker *w, struct proto_msg *m)
{
	if (m->args != NULL) {
		worker_reply(w, "ERR READ bad arguments");
		return;
	}
	if (spool_list(w->user, &w->rl) == -1) {
		log_warn("%s: mailbox of %s", w->peer, w->user);
		worker_reply(w, "ERR READ storage error");
		return;
	}
	w->ri = 0;
	w->rcount = 0;
	w->wait = WAIT_READ;
	worker_read_more(w);
}

/* The last step of an ACK: the claimed item goes for good. */
static void
worker_ack_finish(struct worker *w)
{
	w->wait = WAIT_NONE;
	if (spool_finish(w->user, w->arg_id) == -1) {
		log_warn("%s: mailbox item %s/%s", w->peer, w->user,
		    w->arg_id);
		worker_reply(w, "ERR ACK storage error");
		return;
	}
	worker_reply(w, "OK ACK %s", w->arg_id);
}

static void
worker_ack_fail(struct worker *w)
{
	w->wait = WAIT_NONE;
	if (spool_unclaim(w->user, w->arg_id) == -1)
		log_warn("%s: mailbox item %s/%s", w->peer, w->user,
		    w->arg_id);
	worker_reply(w, "ERR ACK storage error");
}

static void
worker_ack(struct worker *w, struct proto_msg *m)
{
	const char	*p, *f;
	size_t		 len, flen;

	if (m->args == NULL || memchr(m->args, ' ', m->argslen) != NULL ||
	    !proto_valid_id(m->args, m->argslen)) {
		worker_reply(w, "ERR ACK bad arguments");
		return;
	}
	memcpy(w->arg_id, m->args, m->argslen);
	w->arg_id[m->argslen] = '\0';
	if (!spool_valid_id(w->arg_id, m->argslen)) {
		worker_reply(w, "ERR ACK no such item");
		return;
	}
	if (spool_claim(w->user, w->arg_id) == -1) {
		if (errno == ENOENT)
			worker_reply(w, "ERR ACK no such item");
		else {
			log_warn("%s: mailbox item %s/%s", w->peer, w->user,
			    w->arg_id);
			worker_reply(w, "ERR ACK storage error");
		}
		return;
	}
	if (spool_read(w->user, w->arg_id, 1, &w->item,
	    w->lim->body_max + WORKER_ITEM_SLACK) == -1) {
		log_warn("%s: mailbox item %s/%s", w->peer, w->user,
		    w->arg_id);
		worker_ack_fail(w);
		return;
	}
	/* "MSG FROM TIME BODY": a receipt goes to FROM if FROM exists. */
	p = (const char *)buf_data(&w->item);
	len = buf_len(&w->item);
	if (len > 4 && memcmp(p, "MSG ", 4) == 0) {
		p += 4;
		len -= 4;
		if (proto_field(&p, &len, &f, &flen) == 0 &&
		    proto_valid_user(f, flen)) {
			memcpy(w->arg_user, f, flen);
			w->arg_user[flen] = '\0';
			worker_hub_lookup(w, w->arg_user, WAIT_ACK);
			return;
		}
		log_warnx("%s: mailbox item %s/%s names no sender", w->peer,
		    w->user, w->arg_id);
	}
	worker_ack_finish(w);
}

static void
worker_ack_done(struct worker *w, uint32_t exists)
{
	const char	*errstr;
	char		 id[ID_MAX + 1];
	uint64_t	 now = wall_sec();

	if (exists) {
		buf_reset(&w->item);
		if (buf_addf(&w->item, "RECEIPT %s %s %" PRIu64, w->arg_id,
		    w->user, now) == -1 ||
		    spool_store(w->arg_user, (const char *)buf_data(&w->item),
		    buf_len(&w->item), 0, id, &errstr) == -1) {
			worker_ack_fail(w);
			return;
		}
		buf_reset(&w->item);
		if (buf_addf(&w->item, "RECEIPT %s %s %s %" PRIu64, id,
		    w->arg_id, w->user, now) == -1)
			log_warnx("%s: receipt push does not fit", w->peer);
		else
			worker_hub_deliver(w, w->arg_user,
			    (const char *)buf_data(&w->item),
			    buf_len(&w->item));
	}
	worker_ack_finish(w);
}

static void
worker_who(struct worker *w, struct proto_msg *m)
{
	struct rec_writer	 rw;

	if (m->args != NULL) {
		worker_reply(w, "ERR WHO bad arguments");
		return;
	}
	rec_begin(&rw, &w->hq, W_WHO);
	worker_hub_finish(w, &rw);
	w->wait = WAIT_WHO;
}

static void
worker_ping(struct worker *w, struct proto_msg *m)
{
	if (m->args == NULL)
		worker_reply(w, "PONG");
	else if (proto_valid_token(m->args, m->argslen))
		worker_reply(w, "PONG %.*s", (int)m->argslen, m->args);
	else
		worker_reply(w, "ERR PING bad arguments");
}

static void
worker_exit_cmd(struct worker *w, struct proto_msg *m)
{
	if (m->args != NULL) {
		worker_reply(w, "ERR EXIT bad arguments");
		return;
	}
	worker_reply(w, "OK EXIT");
	log_debug("%s: EXIT", w->peer);
	worker_close(w);
}

static const struct worker_cmd {
	const char	*verb;
	int		 login;		/* needs a logged-in session */
	void		(*fn)(struct worker *, struct proto_msg *);
} worker_cmds[] = {
	{ "HELLO",	0, worker_hello },
	{ "LOGIN",	0, worker_login },
	{ "PING",	0, worker_ping },
	{ "EXIT",	0, worker_exit_cmd },
	{ "SAY",	1, worker_say },
	{ "COMPOSE",	1, worker_compose },
	{ "READ",	1, worker_read },
	{ "ACK",	1, worker_ack },
	{ "WHO",	1, worker_who },
};

/* A frame that failed a validity check: silence, and count it. */
static void
worker_invalid(struct worker *w, const char *why)
{
	w->invalid_run++;
	w->invalid_total++;
	w->stats_dirty = 1;
	log_limited("%s: invalid frame dropped: %s", w->peer, why);
	if (w->invalid_run >= w->lim->invalid_max)
		worker_bye(w, "too many invalid frames");
}

/* Checks one frame in the order of relay(7), then runs its command. */
static void
worker_frame(struct worker *w, const char *line, size_t len)
{
	struct proto_msg	 m;
	unsigned char		*p;
	size_t			 cap, plen;
	uint64_t		 now = wall_sec();
	size_t			 i;
	int			 rc;

	buf_reset(&w->plain);
	cap = fernet_plain_max(len);
	if ((p = buf_reserve(&w->plain, cap + 1)) == NULL) {
		worker_invalid(w, "frame too large");
		return;
	}
	rc = fernet_decrypt(w->f, line, len, now, w->lim->ttl, p, cap, &plen);
	if (rc == FERNET_EMAC && w->fprev != NULL)
		rc = fernet_decrypt(w->fprev, line, len, now, w->lim->ttl, p,
		    cap, &plen);
	if (rc != FERNET_OK) {
		worker_invalid(w, fernet_strerror(rc));
		return;
	}
	buf_commit(&w->plain, plen);
	if (proto_split((const char *)p, plen, &m) == -1) {
		worker_invalid(w, "no HEAD and SEQ");
		return;
	}
	if (!secret_head_equal(m.head, w->head)) {
		/* Only a key holder gets here: tell the hub, which penalises. */
		worker_hub_badhead(w);
		worker_invalid(w, "wrong HEAD");
		return;
	}
	if (m.seq != w->seq_in) {
		worker_invalid(w, "unexpected SEQ");
		return;
	}
	w->seq_in++;
	w->invalid_run = 0;
	w->frames_in++;
	w->stats_dirty = 1;
	w->last_active = wall_sec();
	if (w->lim->idle_timeout > 0)
		w->idle_at = mono_ms() + w->lim->idle_timeout * 1000;

	if (!utf8_valid(p, plen) || proto_verb(&m) == -1) {
		worker_reply(w, "ERR NONE malformed");
		return;
	}
	if (hook_command(m.verb, w->hout) == 1)
		return;
	for (i = 0; i < sizeof(worker_cmds) / sizeof(worker_cmds[0]); i++) {
		if (strcmp(m.verb, worker_cmds[i].verb) != 0)
			continue;
		if (worker_cmds[i].login && !w->logged_in)
			worker_reply(w, "ERR %s not logged in", m.verb);
		else
			worker_cmds[i].fn(w, &m);
		return;
	}
	worker_reply(w, "ERR %s unknown command", m.verb);
}

/*
 * Runs queued frames while no command is outstanding and the output is
 * not backed up (pipelined replies wait in the client's socket instead).
 */
static void
worker_commands(struct worker *w)
{
	const unsigned char	*p, *nl;
	size_t			 len;

	if (w->wait == WAIT_READ)
		worker_read_more(w);
	while (!w->closing && w->wait == WAIT_NONE &&
	    buf_len(&w->out) < (size_t)w->lim->slow_max / 2) {
		if ((len = buf_len(&w->lines)) == 0) {
			if (w->oversized)
				worker_bye(w, "frame too long");
			else if (w->flooded)
				worker_bye(w, "too many frames");
			else if (w->client_eof)
				worker_close(w);
			return;
		}
		p = buf_data(&w->lines);
		if ((nl = memchr(p, '\n', len)) == NULL)
			fatalx("worker: frame queue corrupt");
		worker_frame(w, (const char *)p, nl - p);
		buf_drain(&w->lines, nl - p + 1);
	}
}

/*
 * The frame-rate limit: a token bucket of frame_burst frames that fills
 * at frame_rate a second.  Every line counts, valid or not.  A client
 * that empties it has gone on flooding past a burst: it gets BYE.
 */
static int
worker_rate_ok(struct worker *w)
{
	uint64_t	 now = mono_ms();

	w->tokens += (double)(now - w->tokens_at) * w->lim->frame_rate / 1000;
	w->tokens_at = now;
	if (w->tokens > (double)w->lim->frame_burst)
		w->tokens = (double)w->lim->frame_burst;
	if (w->tokens < 1)
		return 0;
	w->tokens -= 1;
	return 1;
}

/* 1 while the session takes more frames from the client. */
static int
worker_wants_input(struct worker *w)
{
	return !w->closing && !w->oversized && !w->flooded &&
	    !w->client_eof && buf_len(&w->lines) < WORKER_LINES_MAX;
}

/* Reads from the client and moves whole frames to the queue. */
static void
worker_client_input(struct worker *w)
{
	const char	*line;
	size_t		 len;
	ssize_t		 n;
	int		 rc;

	if ((n = frame_in_read(&w->fin, w->s)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_debug("%s: read: %s", w->peer, strerror(errno));
		worker_end(w, 0);
	}
	if (n == 0)
		w->client_eof = 1;
	while ((rc = frame_in_next(&w->fin, &line, &len)) != FRAME_NONE) {
		if (rc == FRAME_OVERSIZED) {
			log_limited("%s: frame over %lld bytes", w->peer,
			    w->lim->frame_max);
			w->oversized = 1;
			break;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			continue;
		if (!worker_rate_ok(w)) {
			log_limited("%s: over %lld frames a second", w->peer,
			    w->lim->frame_rate);
			w->flooded = 1;
			break;
		}
		if (buf_add(&w->lines, line, len) == -1 ||
		    buf_add(&w->lines, "\n", 1) == -1)
			fatalx("worker: frame queue overflow");
	}
}

static void
worker_rotate(struct worker *w, const char *b64, size_t len)
{
	unsigned char	 key[FERNET_KEY_LEN];
	struct fernet	*nf;

	if (fernet_key_parse(b64, len, key) == -1 ||
	    (nf = fernet_new(key)) == NULL) {
		explicit_bzero(key, sizeof(key));
		log_warnx("%s: bad key from the hub", w->peer);
		worker_end(w, 1);
	}
	explicit_bzero(key, sizeof(key));
	if (!w->logged_in) {
		fernet_free(nf);
		worker_bye(w, "key rotated");
		return;
	}
	/* KEY goes out under the old key; every later frame under the new. */
	worker_push(w, "KEY %.*s", (int)len, b64);
	fernet_free(w->fprev);
	w->fprev = NULL;
	if (w->lim->rotate_grace > 0) {
		w->fprev = w->f;
		w->prev_until = mono_ms() + w->lim->rotate_grace * 1000;
	} else
		fernet_free(w->f);
	w->f = nf;
}

/* Acts on one record from the hub. */
static void
worker_record(struct worker *w, uint32_t type, struct rec_reader *rr)
{
	const char	*a, *b;
	size_t		 alen, blen;
	uint32_t	 v;
	uint64_t	 t;

	switch (type) {
	case H_LOGIN:
	case H_LOOKUP:
		if (rec_get_u32(rr, &v) == -1 || rec_end(rr) == -1)
			break;
		if (type == H_LOGIN && w->wait == WAIT_LOGIN)
			worker_login_done(w, v);
		else if (type == H_LOOKUP && w->wait == WAIT_COMPOSE)
			worker_compose_done(w, v);
		else if (type == H_LOOKUP && w->wait == WAIT_ACK)
			worker_ack_done(w, v);
		else
			break;
		return;
	case H_WHO:
		if (w->wait != WAIT_WHO || rec_get_u32(rr, &v) == -1)
			break;
		buf_reset(&w->item);
		if (buf_addf(&w->item, "OK WHO %u", v) == -1)
			break;
		for (; v > 0; v--) {
			if (rec_get_str(rr, &a, &alen) == -1 ||
			    buf_add(&w->item, " ", 1) == -1 ||
			    buf_add(&w->item, a, alen) == -1)
				break;
		}
		if (v > 0 || rec_end(rr) == -1)
			break;
		w->wait = WAIT_NONE;
		worker_reply(w, "%.*s", (int)buf_len(&w->item),
		    (const char *)buf_data(&w->item));
		return;
	case H_SAY:
		if (rec_get_str(rr, &a, &alen) == -1 ||
		    rec_get_u64(rr, &t) == -1 ||
		    rec_get_str(rr, &b, &blen) == -1 || rec_end(rr) == -1)
			break;
		if (w->logged_in)
			worker_push_say(w, a, alen, t, b, blen);
		return;
	case H_PUSH:
		if (rec_get_str(rr, &a, &alen) == -1 || rec_end(rr) == -1)
			break;
		if (w->logged_in)
			worker_push_parts(w, a, alen, "", 0, "", 0);
		return;
	case H_KEY:
		if (rec_get_str(rr, &a, &alen) == -1 || rec_end(rr) == -1)
			break;
		worker_rotate(w, a, alen);
		return;
	case H_BYE:
		if (rec_get_str(rr, &a, &alen) == -1 || rec_end(rr) == -1)
			break;
		buf_reset(&w->item);
		if (buf_add(&w->item, a, alen) == -1 ||
		    buf_add(&w->item, "", 1) == -1)
			break;
		worker_bye(w, (const char *)buf_data(&w->item));
		return;
	}
	log_warnx("%s: unexpected record %u from the hub", w->peer, type);
	worker_end(w, 1);
}

static void
worker_hub_input(struct worker *w)
{
	struct rec_reader	 rr;
	uint32_t		 type;
	size_t			 used;
	ssize_t			 n;
	int			 rc;

	if ((n = buf_read(&w->hbuf, w->hin)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_warn("%s: socket from the hub", w->peer);
		n = 0;
	}
	if (n == 0) {
		w->hub_gone = 1;
		worker_bye(w, "shutting down");
		return;
	}
	if (w->closing) {
		/* Read and dropped, so the hub's queue to us never backs up. */
		buf_reset(&w->hbuf);
		return;
	}
	while (!w->closing) {
		if ((rc = rec_next(&w->hbuf, &type, &rr, &used)) == 0)
			break;
		if (rc == -1) {
			log_warnx("%s: bad record from the hub", w->peer);
			worker_end(w, 1);
		}
		worker_record(w, type, &rr);
		buf_drain(&w->hbuf, used);
	}
}

static void
worker_flush(struct worker *w)
{
	ssize_t	 n;

	while (buf_len(&w->out) > 0) {
		if ((n = buf_write(&w->out, w->s)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			log_debug("%s: write: %s", w->peer, strerror(errno));
			worker_end(w, 0);
		}
	}
	while (buf_len(&w->hq) > 0 && !w->hub_gone) {
		if ((n = buf_write(&w->hq, w->hout)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			w->hub_gone = 1;
			worker_bye(w, "shutting down");
		}
	}
}

static void
worker_stats(struct worker *w, uint64_t now)
{
	struct rec_writer	 rw;

	if (!w->stats_dirty || now < w->stats_at || w->hub_gone)
		return;
	rec_begin(&rw, &w->hq, W_STATS);
	rec_put_u64(&rw, w->frames_in);
	rec_put_u64(&rw, w->frames_out);
	rec_put_u64(&rw, w->last_active);
	rec_put_u64(&rw, w->invalid_total);
	worker_hub_finish(w, &rw);
	w->stats_dirty = 0;
	w->stats_at = now + WORKER_STATS_MS;
}

static void
worker_timers(struct worker *w)
{
	uint64_t	 now = mono_ms();

	if (w->fprev != NULL && now >= w->prev_until) {
		fernet_free(w->fprev);
		w->fprev = NULL;
	}
	if (w->closing)
		return;
	if (worker_sigterm)
		worker_bye(w, "too slow");
	else if (!w->logged_in && now >= w->login_at)
		worker_bye(w, "login timeout");
	else if (w->idle_at != 0 && now >= w->idle_at)
		worker_bye(w, "idle timeout");
	else
		worker_stats(w, now);
}

static int
worker_timeout(struct worker *w)
{
	uint64_t	 now = mono_ms(), next = UINT64_MAX;

	if (w->closing)
		next = w->close_at;
	else {
		if (!w->logged_in)
			next = w->login_at;
		if (w->idle_at != 0 && w->idle_at < next)
			next = w->idle_at;
		/*
		 * Counts ride on a wakeup that comes anyway (a record, a
		 * frame) once stats_at has passed; only a session that has
		 * gone quiet wakes for them, WORKER_STATS_WAKE_MS later.  A
		 * wakeup of its own is what a worker costs most under load.
		 */
		if (w->stats_dirty &&
		    w->stats_at + WORKER_STATS_WAKE_MS < next)
			next = w->stats_at + WORKER_STATS_WAKE_MS;
	}
	if (w->fprev != NULL && w->prev_until < next)
		next = w->prev_until;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (next - now > 60000 ? 60000 :
	    (int)(next - now));
}

/* While closing: 1 when the session can end. */
static int
worker_closed(struct worker *w)
{
	if (mono_ms() >= w->close_at)
		return 1;
	if (buf_len(&w->hq) == 0 && !w->hub_gone) {
		/* The hub forgets the session now, not after the drain. */
		close(w->hin);
		close(w->hout);
		w->hin = w->hout = -1;
		w->hub_gone = 1;
	}
	if (buf_len(&w->out) > 0 || !w->hub_gone)
		return 0;
	if (!w->shut) {
		if (shutdown(w->s, SHUT_WR) == -1)
			return 1;
		w->shut = 1;
	}
	return w->client_eof;
}

/*
 * The client socket is readable: frames while the session takes them;
 * while closing, drained, so that closing sends FIN, not RST.
 */
static void
worker_client_ready(struct worker *w)
{
	char	 sink[4096];
	ssize_t	 n;

	if (w->closing) {
		n = read(w->s, sink, sizeof(sink));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			w->client_eof = 1;
	} else if (worker_wants_input(w))
		worker_client_input(w);
}

/*
 * One turn of the session: the input that is ready (WORKER_READY_*), then
 * timers, the queued commands and the output.  1: the session is over.
 */
int
worker_turn(struct worker *w, int ready)
{
	if (ready & WORKER_READY_CLIENT)
		worker_client_ready(w);
	if ((ready & WORKER_READY_HUB) && !w->hub_gone)
		worker_hub_input(w);
	worker_timers(w);
	if (!w->closing)
		worker_commands(w);
	worker_flush(w);
	return w->closing && worker_closed(w);
}

/*
 * The stack below this frame, down to WORKER_STACK_TRIM under it: what
 * the login went through (the mailbox paths, libcrypto) goes back to the
 * kernel, and comes back zero-filled when it is used again.  One page is
 * left below the frame for the red zone and the calls still to come.  The
 * range may run past the bottom of the stack mapping: madvise(2) then
 * says ENOMEM, having done the rest.
 */
static void
worker_shrink_stack(void)
{
	uintptr_t	 pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t	 here = (uintptr_t)__builtin_frame_address(0);
	uintptr_t	 end = (here & ~(pg - 1)) - pg;

	(void)madvise((void *)(end - WORKER_STACK_TRIM), WORKER_STACK_TRIM,
	    MADV_DONTNEED);
}

/*
 * A session with no timer left and no command outstanding is idle, maybe
 * for hours, and idle sessions are the ones there are thousands of: its
 * buffers go (the scratch ones wiped whatever they hold, the queues if
 * empty), and the heap pages malloc(3) then has free go back to the
 * kernel.  Many were the hub's, copied when malloc touched them.
 */
static void
worker_shrink(struct worker *w)
{
	struct buf	*queues[] = { &w->lines, &w->out, &w->hq, &w->hbuf };
	size_t		 i;

	for (i = 0; i < sizeof(queues) / sizeof(queues[0]); i++)
		if (buf_len(queues[i]) == 0)
			buf_free(queues[i]);
	if (buf_len(&w->fin.fi_buf) == 0 && !w->fin.fi_skipping)
		frame_in_free(&w->fin);
	buf_free(&w->plain);
	buf_free(&w->fmt);
	buf_free(&w->item);
	worker_tok_free(w);
	(void)malloc_trim(0);
	worker_shrink_stack();
	w->trimmed = 1;
}

/* Waits for the next event; returns what is ready for worker_turn(). */
static int
worker_poll(struct worker *w)
{
	struct pollfd	 pfd[3];
	struct timespec	 ts, *tsp = NULL;
	sigset_t	 none;
	int		 timeout, ready = 0;

	memset(pfd, 0, sizeof(pfd));
	pfd[0].fd = w->s;
	if (w->closing) {
		if (w->shut && !w->client_eof)
			pfd[0].events |= POLLIN;
	} else if (worker_wants_input(w))
		pfd[0].events |= POLLIN;
	if (buf_len(&w->out) > 0)
		pfd[0].events |= POLLOUT;
	if (pfd[0].events == 0)
		pfd[0].fd = -1;		/* or a hang-up would spin the loop */
	pfd[1].fd = w->hub_gone ? -1 : w->hin;
	pfd[1].events = POLLIN;
	pfd[2].fd = w->hub_gone || buf_len(&w->hq) == 0 ? -1 : w->hout;
	pfd[2].events = POLLOUT;

	if ((timeout = worker_timeout(w)) >= 0) {
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = (timeout % 1000) * 1000000L;
		tsp = &ts;
		w->trimmed = 0;
	} else if (!w->trimmed && w->wait == WAIT_NONE && !w->closing)
		worker_shrink(w);
	sigemptyset(&none);
	if (ppoll(pfd, 3, tsp, &none) == -1) {
		if (errno == EINTR)
			return 0;
		fatal("ppoll");
	}
	if (worker_sigterm)
		return 0;	/* the hub ended us: say so before anything */
	if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
		ready |= WORKER_READY_CLIENT;
	if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
		ready |= WORKER_READY_HUB;
	return ready;
}

/*
 * Frees and wipes the session (keys, plaintext buffers), then exits
 * through _exit(2): exit(3) would run every library's exit handlers,
 * which only free memory the kernel is about to take back, and in a
 * process forked from the hub each page they touch is a copy-on-write
 * fault.  valgrind still checks for leaks at _exit.
 */
__dead void
worker_end(struct worker *w, int status)
{
	/* An ACK cut short gives its item back to the mailbox. */
	if (w->wait == WAIT_ACK && spool_unclaim(w->user, w->arg_id) == -1)
		log_warn("%s: mailbox item %s/%s", w->peer, w->user,
		    w->arg_id);
	close(w->s);
	if (w->hin != -1)
		close(w->hin);
	if (w->hout != -1)
		close(w->hout);
	fernet_free(w->f);
	fernet_free(w->fprev);
	frame_in_free(&w->fin);
	buf_free(&w->lines);
	buf_free(&w->out);
	buf_free(&w->hq);
	buf_free(&w->hbuf);
	buf_free(&w->plain);
	buf_free(&w->fmt);
	buf_free(&w->item);
	worker_tok_free(w);
	spool_list_free(&w->rl);
	spool_free();
	explicit_bzero(w, sizeof(*w));
	free(w);
	WORKER_EXIT(status);
}

/* A new session on the hub's descriptors; wp->key is wiped. */
struct worker *
worker_new(const struct worker_params *wp)
{
	struct worker		*w;
	const struct relayd_limits *lim = wp->limits;
	uint64_t		 now = mono_ms();

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("%s: calloc", wp->peer);
	w->s = wp->sock;
	w->hin = wp->hub_in;
	w->hout = wp->hub_out;
	w->peer = wp->peer;
	w->lim = lim;
	strlcpy(w->head, wp->head, sizeof(w->head));
	w->f = fernet_new(wp->key);
	explicit_bzero(wp->key, FERNET_KEY_LEN);
	if (w->f == NULL)
		fatalx("%s: cannot set up the key", w->peer);

	frame_in_init(&w->fin, lim->frame_max);
	buf_init(&w->lines, WORKER_LINES_MAX + lim->frame_max);
	buf_init(&w->out, lim->slow_max + 4 * lim->frame_max);
	buf_init(&w->hq, WORKER_HUBQ_MAX);
	buf_init(&w->hbuf, REC_HDR_LEN + REC_MAX);
	buf_init(&w->plain, fernet_plain_max(lim->frame_max) + 1);
	buf_init(&w->fmt, REC_MAX);
	buf_init(&w->item, REC_MAX);
	w->seq_in = 1;
	w->seq_out = 1;
	w->login_at = now + lim->login_grace * 1000;
	if (lim->idle_timeout > 0)
		w->idle_at = now + lim->idle_timeout * 1000;
	w->stats_at = now + WORKER_STATS_MS;
	w->tokens = (double)lim->frame_burst;
	w->tokens_at = now;
	return w;
}

__dead void
worker_main(const struct worker_params *wp)
{
	struct worker		*w;
	struct sigaction	 sa;
	sigset_t		 term;
	int			 ready = 0;

	w = worker_new(wp);
	relayd_title("%s", w->peer);

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = worker_on_sigterm;
	if (sigaction(SIGTERM, &sa, NULL) == -1)
		fatal("sigaction");
	/* SIGTERM only reaches us inside ppoll(); SIGCHLD is not ours. */
	sa.sa_handler = SIG_DFL;
	if (sigaction(SIGCHLD, &sa, NULL) == -1)
		fatal("sigaction");
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (sigprocmask(SIG_SETMASK, &term, NULL) == -1)
		fatal("sigprocmask");

	while (!worker_turn(w, ready))
		ready = worker_poll(w);
	worker_end(w, 0);
}
