/*
 * fuzz_worker.c: libFuzzer target for a client session as relayd runs it:
 * worker.c itself (framing, Fernet, the checks of relay(7) in their
 * order, the dispatch and every command), with spool.c on a scratch
 * mailbox tree.  The harness is both of the worker's peers: the client on
 * a socketpair and the hub on two pipes, answering the worker's requests
 * as hub.c does.  It drives the session with worker_turn(), and owns the
 * clock (mono_ms(), wall_sec()) so that timers and token ages are
 * reachable and runs repeat.
 *
 * The input is a program of operations (enum fz_op): raw bytes; frames
 * with the right HEAD and the next SEQ around fuzzer bytes or a canned
 * command; HELLO and a LOGIN with the right proof for the nonce the
 * worker gave; tokens that are tampered with, expired, or carry no HEAD;
 * the hub's SAY, PUSH, KEY and BYE; a client that stops reading; EOF;
 * time passing.
 *
 * Invariants, each a CHECK: every frame the worker sends decrypts under
 * the key it must use (the new key from its KEY push on), carries the
 * HEAD and the next SEQ, is UTF-8 and has a reply verb; nothing follows
 * BYE; every record to the hub parses, and none but LOGIN comes before a
 * login succeeded; once the client has sent EOF the session ends within
 * a bounded number of turns; it ends with status 0; and worker_end()
 * frees everything it had (LeakSanitizer, at the fuzzer's exit).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relayd.h"
#include "fuzz.h"

#define FZ_KEY		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define FZ_SECRET	"5678"
#define FZ_USER		"alice"
#define FZ_OTHER	"bob"
#define FZ_PASSWORD	"alice-pw"
#define FZ_WALL		1700000000ULL	/* the clock at each run's start */
#define FZ_KEYS		4		/* the first key and 3 rotations */
#define FZ_OP_TURNS	64		/* turns per operation, at most */
#define FZ_END_TURNS	256		/* after EOF, the session must end */
#define FZ_SWEEP	256		/* runs between emptying the spool */

void	 fuzz_worker_exit(int) __dead;

enum fz_op {
	OP_RAW,		/* n, n bytes as they are */
	OP_FRAME,	/* n, a frame "HEAD SEQ " + n bytes */
	OP_CANNED,	/* i, a frame with command i of fz_canned */
	OP_HELLO,
	OP_LOGIN,	/* the right proof for the last nonce */
	OP_ACK,		/* ACK of the last ID the worker named */
	OP_BARE,	/* n, a token of n bytes with no HEAD or SEQ */
	OP_STALE,	/* i, a PING token too old (i even) or from the future */
	OP_TAMPER,	/* i, a PING token with byte i changed */
	OP_HUB_SAY,	/* n, the hub relays a SAY of n bytes from bob */
	OP_HUB_PUSH,	/* n, the hub delivers a push of n bytes */
	OP_HUB_KEY,	/* 32 bytes, the hub rotates to that key */
	OP_HUB_BYE,	/* n, the hub ends the session with a reason */
	OP_STALL,	/* n, the client reads nothing for n turns */
	OP_TIME,	/* n, n seconds pass */
	OP_EOF,		/* the client shuts down its side */
	OP_COUNT
};

static const char *const fz_canned[] = {
	"SAY hello", "COMPOSE alice hi me", "COMPOSE bob hi",
	"COMPOSE carol hi", "READ", "WHO", "PING abc", "EXIT", "HELLO",
	"LOGIN alice", "ACK 1", "SAY", "READ x", "WHO x", "EXIT x", "PING"
};

static const char *const fz_verbs[] = {
	"OK", "ERR", "HELLO", "PONG", "SAY", "MSG", "RECEIPT", "BYE", "KEY"
};

/* Everything a run changes, static so that it survives the longjmp. */
static struct {
	jmp_buf		 jb;
	int		 status;
	struct worker	*w;
	int		 cs;		/* the client's end of the socketpair */
	int		 hw;		/* the hub's end of the pipe to the worker */
	int		 hr;		/* the hub's end of the pipe from it */
	struct buf	 to_client;	/* bytes the client has yet to send */
	struct buf	 to_hub;	/* records the hub has yet to send */
	struct buf	 from_hub;
	struct frame_in	 from_client;
	struct fernet	*keys[FZ_KEYS];
	char		 b64[FZ_KEYS][FERNET_KEY_B64LEN + 1];
	int		 nkeys;
	int		 ck;		/* the key the client sends under */
	int		 wk;		/* the key the worker must send under */
	uint64_t	 seq_out;	/* the SEQ of the client's next frame */
	uint64_t	 seq_in;	/* the SEQ the worker's next frame has */
	char		 nonce[NONCE_LEN + 1];
	char		 last_id[ID_MAX + 1];
	int		 logged_in;	/* the hub said yes to a LOGIN */
	int		 bye;		/* the worker said BYE */
	int		 eof;		/* the client has shut down */
	int		 stall;
	uint64_t	 mono;		/* the clock, milliseconds */
	uint64_t	 wall;		/* seconds */
} fz;

static struct relayd_limits	 fz_lim;
static struct fernet		*fz_first;
static char			 fz_head[HEAD_LEN + 1];
static char			 fz_md5[MD5_HEX_LEN + 1];
static char			 fz_dir[] = "/dev/shm/fuzz_worker.XXXXXX";
static unsigned long		 fz_runs;

/* relayd.c's, which the target does not link: the harness's clock. */
uint64_t
mono_ms(void)
{
	return fz.mono;
}

uint64_t
wall_sec(void)
{
	return fz.wall;
}

void
relayd_title(const char *fmt, ...)
{
}

__dead void
fuzz_worker_exit(int status)
{
	longjmp(fz.jb, 1 + (status != 0));
}

static void
fz_cleanup(void)
{
	const char	*errstr;
	char		 spool[sizeof(fz_dir) + 8];

	if (spool_init(fz_dir, &errstr) == 0) {
		(void)spool_remove_user(FZ_USER);
		(void)spool_remove_user(FZ_OTHER);
		spool_free();
	}
	(void)snprintf(spool, sizeof(spool), "%s/spool", fz_dir);
	(void)rmdir(spool);
	(void)rmdir(fz_dir);
}

static void
fz_init(void)
{
	unsigned char	 key[FERNET_KEY_LEN];
	const char	*errstr;

	/* tmpfs: the spool's fsync(2) costs nothing there. */
	if (mkdtemp(fz_dir) == NULL) {
		strlcpy(fz_dir, "/tmp/fuzz_worker.XXXXXX", sizeof(fz_dir));
		CHECK(mkdtemp(fz_dir) != NULL);
	}
	CHECK(atexit(fz_cleanup) == 0);
	CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
	CHECK(fernet_key_parse(FZ_KEY, strlen(FZ_KEY), key) == 0);
	CHECK((fz_first = fernet_new(key)) != NULL);
	CHECK(secret_head(FZ_SECRET, fz_head, &errstr) == 0);
	md5_hex(FZ_PASSWORD, strlen(FZ_PASSWORD), fz_md5);
	/* Small limits, so that every one of them is in reach. */
	fz_lim.ttl = TTL_DEFAULT;
	fz_lim.login_grace = LOGIN_GRACE_DEFAULT;
	fz_lim.invalid_max = INVALID_MAX_DEFAULT;
	fz_lim.frame_max = 1024;
	fz_lim.body_max = 200;
	fz_lim.mailbox_max = 8;
	fz_lim.slow_max = 4096;
	fz_lim.frame_rate = 100;
	fz_lim.frame_burst = 48;
	log_init(1, 0);
}

/* Bytes the client sends; none once it has shut down. */
static void
fz_send(const void *p, size_t len)
{
	if (!fz.eof)
		CHECK(buf_add(&fz.to_client, p, len) == 0);
}

/* A token of plain under the client's key, made at time t. */
static void
fz_token(const void *plain, size_t len, uint64_t t)
{
	char	 tok[2048];
	size_t	 toklen;

	CHECK(fernet_encrypt(fz.keys[fz.ck], plain, len, t, NULL, tok,
	    sizeof(tok), &toklen) == FERNET_OK);
	fz_send(tok, toklen);
	fz_send("\n", 1);
}

/* "HEAD SEQ " and the command; the SEQ counts only if used is set. */
static void
fz_command(const void *cmd, size_t len, uint64_t t, int used)
{
	char	 plain[512];
	int	 n;

	n = snprintf(plain, sizeof(plain), "%s %llu ", fz_head,
	    (unsigned long long)fz.seq_out);
	CHECK(n > 0 && (size_t)n + len <= sizeof(plain));
	memcpy(plain + n, cmd, len);
	fz_token(plain, n + len, t);
	if (used)
		fz.seq_out++;
}

static void
fz_commandf(const char *fmt, ...) __attribute__((__format__(printf, 1, 2)));

static void
fz_commandf(const char *fmt, ...)
{
	char	 cmd[256];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	CHECK(n > 0 && (size_t)n < sizeof(cmd));
	fz_command(cmd, n, fz.wall, 1);
}

static void
fz_record(struct rec_writer *rw)
{
	CHECK(rec_finish(rw) == 0);
}

/*
 * What the hub relays: a SAY's body, a MSG push or a BYE's reason, in
 * printable ASCII.  Each is as the hub sends it: the body was checked by
 * the sender's worker, the push was built by one.
 */
static void
fz_hub_text(uint32_t type, const uint8_t *p, size_t len)
{
	struct rec_writer	 rw;
	char			 text[300];
	int			 n = 0;
	size_t			 i;

	if (type == H_PUSH)
		n = snprintf(text, sizeof(text), "MSG 1-%zu %s %llu ", len,
		    FZ_OTHER, (unsigned long long)fz.wall);
	for (i = 0; i < len && n < (int)sizeof(text); i++)
		text[n++] = ' ' + p[i] % 95;
	if (type != H_BYE && !proto_valid_body(text + n - i, i,
	    fz_lim.body_max))
		return;
	if (n == 0)
		text[n++] = '?';
	rec_begin(&rw, &fz.to_hub, type);
	if (type == H_SAY) {
		rec_put_str(&rw, FZ_OTHER, strlen(FZ_OTHER));
		rec_put_u64(&rw, fz.wall);
	}
	rec_put_str(&rw, text, n);
	fz_record(&rw);
}

static void
fz_hub_key(const uint8_t *p, size_t len)
{
	struct rec_writer	 rw;
	unsigned char		 key[FERNET_KEY_LEN];

	if (fz.nkeys == FZ_KEYS)
		return;
	memset(key, 0x5a, sizeof(key));
	memcpy(key, p, len < sizeof(key) ? len : sizeof(key));
	CHECK((fz.keys[fz.nkeys] = fernet_new(key)) != NULL);
	fernet_key_format(key, fz.b64[fz.nkeys]);
	rec_begin(&rw, &fz.to_hub, H_KEY);
	rec_put_str(&rw, fz.b64[fz.nkeys], FERNET_KEY_B64LEN);
	fz_record(&rw);
	fz.nkeys++;
}

/* What the worker's frame says, against what the session has done. */
static void
fz_reply(const struct proto_msg *m)
{
	const char	*p = m->args, *f;
	size_t		 len = m->argslen, flen;
	int		 i;

	if (strcmp(m->verb, "BYE") == 0)
		fz.bye = 1;
	else if (strcmp(m->verb, "HELLO") == 0) {
		/* "HELLO relay/1 NONCE" */
		CHECK(p != NULL && proto_field(&p, &len, &f, &flen) == 0);
		CHECK(len == NONCE_LEN && proto_valid_nonce(p, len));
		memcpy(fz.nonce, p, len);
		fz.nonce[len] = '\0';
	} else if (strcmp(m->verb, "KEY") == 0) {
		CHECK(p != NULL && len == FERNET_KEY_B64LEN);
		for (i = 1; i < fz.nkeys; i++)
			if (memcmp(fz.b64[i], p, len) == 0)
				break;
		CHECK(i < fz.nkeys);
		fz.wk = fz.ck = i;	/* the client follows the push */
	} else if (strcmp(m->verb, "MSG") == 0 ||
	    strcmp(m->verb, "RECEIPT") == 0 ||
	    (strcmp(m->verb, "OK") == 0 && len > 8 &&
	    memcmp(p, "COMPOSE ", 8) == 0)) {
		if (strcmp(m->verb, "OK") == 0) {
			p += 8;
			len -= 8;
		}
		CHECK(p != NULL && proto_field(&p, &len, &f, &flen) == 0);
		CHECK(proto_valid_id(f, flen));
		memcpy(fz.last_id, f, flen);
		fz.last_id[flen] = '\0';
	}
}

/* One frame from the worker. */
static void
fz_frame(const char *line, size_t len)
{
	static unsigned char	 plain[FRAME_MAX_DEFAULT];
	struct proto_msg	 m;
	size_t			 plen, i;

	CHECK(!fz.bye);
	/* No age check: the client may have stalled while time passed. */
	CHECK(fernet_decrypt(fz.keys[fz.wk], line, len, fz.wall, 0,
	    plain, sizeof(plain), &plen) == FERNET_OK);
	CHECK(utf8_valid(plain, plen));
	CHECK(proto_split((const char *)plain, plen, &m) == 0);
	CHECK(secret_head_equal(m.head, fz_head));
	CHECK(m.seq == fz.seq_in);
	fz.seq_in++;
	CHECK(proto_verb(&m) == 0);
	for (i = 0; i < sizeof(fz_verbs) / sizeof(fz_verbs[0]); i++)
		if (strcmp(m.verb, fz_verbs[i]) == 0)
			break;
	CHECK(i < sizeof(fz_verbs) / sizeof(fz_verbs[0]));
	fz_reply(&m);
}

/* Reads what the worker sent the client; 1 if there was any. */
static int
fz_client_read(void)
{
	const char	*line;
	size_t		 len;
	ssize_t		 n;
	int		 rc, any = 0;

	if (fz.stall > 0) {
		fz.stall--;
		return 0;
	}
	while ((n = frame_in_read(&fz.from_client, fz.cs)) > 0) {
		any = 1;
		while ((rc = frame_in_next(&fz.from_client, &line, &len)) ==
		    FRAME_LINE)
			fz_frame(line, len);
		CHECK(rc == FRAME_NONE);
	}
	/* A reset: the worker closed with bytes of ours unread. */
	CHECK(n == 0 || errno == EAGAIN || errno == ECONNRESET);
	return any;
}

static void
fz_user(struct rec_reader *rr, char *user)
{
	const char	*s;
	size_t		 len;

	CHECK(rec_get_str(rr, &s, &len) == 0 && proto_valid_user(s, len));
	memcpy(user, s, len);
	user[len] = '\0';
}

/* One request from the worker, answered as hub.c would. */
static void
fz_request(uint32_t type, struct rec_reader *rr)
{
	struct rec_writer	 rw;
	char			 user[USER_MAX + 1], nonce[NONCE_LEN + 1];
	const char		*s;
	size_t			 len;
	uint64_t		 u;
	int			 ok, i;

	CHECK(type == W_LOGIN || type == W_STATS || type == W_BADHEAD ||
	    fz.logged_in);
	switch (type) {
	case W_LOGIN:
		fz_user(rr, user);
		CHECK(rec_get_str(rr, &s, &len) == 0 && len == NONCE_LEN);
		memcpy(nonce, s, len);
		nonce[len] = '\0';
		CHECK(rec_get_str(rr, &s, &len) == 0 && rec_end(rr) == 0);
		ok = strcmp(user, FZ_USER) == 0 &&
		    login_proof_check(fz_md5, nonce, s, len) == 1;
		fz.logged_in = ok;
		rec_begin(&rw, &fz.to_hub, H_LOGIN);
		rec_put_u32(&rw, ok);
		break;
	case W_LOOKUP:
		fz_user(rr, user);
		CHECK(rec_end(rr) == 0);
		rec_begin(&rw, &fz.to_hub, H_LOOKUP);
		rec_put_u32(&rw, strcmp(user, FZ_USER) == 0 ||
		    strcmp(user, FZ_OTHER) == 0);
		break;
	case W_WHO:
		CHECK(rec_end(rr) == 0);
		rec_begin(&rw, &fz.to_hub, H_WHO);
		rec_put_u32(&rw, 2);
		rec_put_str(&rw, FZ_USER, strlen(FZ_USER));
		rec_put_str(&rw, FZ_OTHER, strlen(FZ_OTHER));
		break;
	case W_SAY:
		CHECK(rec_get_u64(rr, &u) == 0 && u == fz.wall);
		CHECK(rec_get_str(rr, &s, &len) == 0 && rec_end(rr) == 0);
		CHECK(proto_valid_body(s, len, fz_lim.body_max));
		return;		/* the hub relays it to the others */
	case W_DELIVER:
		fz_user(rr, user);
		CHECK(rec_get_str(rr, &s, &len) == 0 && rec_end(rr) == 0);
		CHECK(utf8_valid(s, len));
		if (strcmp(user, FZ_USER) != 0)
			return;
		/* To the recipient's sessions, this one among them. */
		rec_begin(&rw, &fz.to_hub, H_PUSH);
		rec_put_str(&rw, s, len);
		break;
	case W_STATS:
		for (i = 0; i < 4; i++)
			CHECK(rec_get_u64(rr, &u) == 0);
		CHECK(rec_end(rr) == 0);
		return;
	case W_BADHEAD:
		CHECK(rec_end(rr) == 0);
		return;
	default:
		CHECK(!"a record type the hub does not know");
	}
	fz_record(&rw);
}

/* Reads the worker's requests and answers them; 1 if there were any. */
static int
fz_hub_read(void)
{
	struct rec_reader	 rr;
	uint32_t		 type;
	size_t			 used;
	ssize_t			 n;
	int			 rc, any = 0;

	while ((n = buf_read(&fz.from_hub, fz.hr)) > 0) {
		any = 1;
		while ((rc = rec_next(&fz.from_hub, &type, &rr, &used)) == 1) {
			fz_request(type, &rr);
			buf_drain(&fz.from_hub, used);
		}
		CHECK(rc == 0);
	}
	/* The worker closes its pipes when it is done with the hub. */
	CHECK(n == 0 || errno == EAGAIN);
	return any;
}

/* Writes what is pending to the worker; 1 if anything went. */
static int
fz_write(struct buf *b, int fd)
{
	ssize_t	 n;

	if (buf_len(b) == 0)
		return 0;
	if ((n = buf_write(b, fd)) == -1) {
		/* Full, or the worker is gone from that side already. */
		CHECK(errno == EAGAIN || errno == EPIPE);
		if (errno == EPIPE)
			buf_reset(b);
		return 0;
	}
	return n > 0;
}

/* One turn of the worker and of both its peers; 1 if anything moved. */
static int
fz_turn(void)
{
	int	 moved;

	moved = fz_write(&fz.to_client, fz.cs);
	moved |= fz_write(&fz.to_hub, fz.hw);
	if (worker_turn(fz.w, WORKER_READY_CLIENT | WORKER_READY_HUB)) {
		(void)fz_client_read();
		worker_end(fz.w, 0);
	}
	moved |= fz_client_read();
	moved |= fz_hub_read();
	return moved;
}

static void
fz_turns(int max)
{
	while (max-- > 0 && (fz_turn() || fz.stall > 0))
		;
}

static void
fz_eof(void)
{
	if (fz.eof)
		return;
	fz.stall = 0;
	fz_turns(FZ_OP_TURNS);
	CHECK(shutdown(fz.cs, SHUT_WR) == 0);
	buf_reset(&fz.to_client);
	fz.eof = 1;
}

/* The operation at p; returns the bytes it used. */
static size_t
fz_op(const uint8_t *p, size_t len)
{
	size_t		 n = len > 1 ? p[1] : 0;	/* a count or an index */
	size_t		 have = len > 2 ? len - 2 : 0;	/* bytes after it */
	unsigned char	 c;
	char		 tok[512];

	switch (p[0] % OP_COUNT) {
	case OP_RAW:
		n = n < have ? n : have;
		fz_send(p + 2, n);
		return 2 + n;
	case OP_FRAME:
		n = n < have ? n : have;
		fz_command(p + 2, n, fz.wall, 1);
		return 2 + n;
	case OP_CANNED:
		fz_commandf("%s",
		    fz_canned[n % (sizeof(fz_canned) / sizeof(fz_canned[0]))]);
		return 2;
	case OP_HELLO:
		fz_commandf("HELLO %s", RELAY_PROTO_NAME);
		return 1;
	case OP_LOGIN:
		CHECK(login_proof(fz_md5, fz.nonce[0] != '\0' ? fz.nonce :
		    "00112233445566778899aabbccddeeff", tok) == 0);
		fz_commandf("LOGIN %s %s", FZ_USER, tok);
		return 1;
	case OP_ACK:
		fz_commandf("ACK %s", fz.last_id[0] != '\0' ? fz.last_id : "0");
		return 1;
	case OP_BARE:
		n = n < have ? n : have;
		fz_token(p + 2, n, fz.wall);
		return 2 + n;
	case OP_STALE:
		fz_command("PING", 4, n % 2 == 0 ? fz.wall - TTL_DEFAULT - 1 :
		    fz.wall + FUTURE_SKEW + 1, 0);
		return 2;
	case OP_TAMPER:
		CHECK(fernet_encrypt(fz.keys[fz.ck], "PING", 4, fz.wall, NULL,
		    tok, sizeof(tok), &n) == FERNET_OK);
		c = len > 1 ? p[1] : 0;
		tok[c % n] ^= 1 + (c >> 5);
		if (tok[c % n] == '\n')
			tok[c % n] = 'A';
		fz_send(tok, n);
		fz_send("\n", 1);
		return 2;
	case OP_HUB_SAY:
	case OP_HUB_PUSH:
	case OP_HUB_BYE:
		n = n < have ? n : have;
		fz_hub_text(p[0] % OP_COUNT == OP_HUB_SAY ? H_SAY :
		    p[0] % OP_COUNT == OP_HUB_PUSH ? H_PUSH : H_BYE, p + 2, n);
		return 2 + n;
	case OP_HUB_KEY:
		n = len - 1 < FERNET_KEY_LEN ? len - 1 : FERNET_KEY_LEN;
		fz_hub_key(p + 1, n);
		return 1 + n;
	case OP_STALL:
		fz.stall = n % 32;
		return 2;
	case OP_TIME:
		fz.mono += n * 1000;
		fz.wall += n;
		return 2;
	case OP_EOF:
		fz_eof();
		return 1;
	}
	return 1;
}

static void
fz_start(void)
{
	struct worker_params	 wp;
	unsigned char		 key[FERNET_KEY_LEN];
	const char		*errstr;
	int			 sv[2], tw[2], th[2];

	memset(&fz, 0, sizeof(fz));
	fz.mono = 1000000;
	fz.wall = FZ_WALL;
	fz.keys[0] = fz_first;
	strlcpy(fz.b64[0], FZ_KEY, sizeof(fz.b64[0]));
	fz.nkeys = 1;
	fz.seq_out = fz.seq_in = 1;
	buf_init(&fz.to_client, 1 << 20);
	buf_init(&fz.to_hub, 1 << 20);
	buf_init(&fz.from_hub, REC_HDR_LEN + REC_MAX);
	frame_in_init(&fz.from_client, FRAME_MAX_DEFAULT);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	CHECK(pipe2(tw, O_NONBLOCK) == 0 && pipe2(th, O_NONBLOCK) == 0);
	CHECK(spool_init(fz_dir, &errstr) == 0);
	if (++fz_runs % FZ_SWEEP == 0) {
		CHECK(spool_remove_user(FZ_USER) == 0);
		CHECK(spool_remove_user(FZ_OTHER) == 0);
	}
	fz.cs = sv[0];
	fz.hw = tw[1];
	fz.hr = th[0];
	CHECK(fernet_key_parse(FZ_KEY, strlen(FZ_KEY), key) == 0);
	memset(&wp, 0, sizeof(wp));
	wp.sock = sv[1];
	wp.hub_in = tw[0];
	wp.hub_out = th[1];
	wp.peer = "fuzz";
	wp.head = fz_head;
	wp.key = key;
	wp.limits = &fz_lim;
	fz.w = worker_new(&wp);
}

/* After worker_end(): what the harness itself holds. */
static void
fz_finish(void)
{
	int	 i;

	close(fz.cs);
	close(fz.hw);
	close(fz.hr);
	buf_free(&fz.to_client);
	buf_free(&fz.to_hub);
	buf_free(&fz.from_hub);
	frame_in_free(&fz.from_client);
	for (i = 1; i < fz.nkeys; i++)
		fernet_free(fz.keys[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 i;

	if (fz_first == NULL)
		fz_init();
	if (size > 0 && data[0] & 0x80)
		fz_lim.rotate_grace = ROTATE_GRACE_DEFAULT;
	else
		fz_lim.rotate_grace = 0;
	fz_start();
	if ((fz.status = setjmp(fz.jb)) != 0) {
		/* worker_end() freed the session and came back here. */
		CHECK(fz.status == 1);
		fz_finish();
		return 0;
	}
	for (i = 1; i < size; ) {
		i += fz_op(data + i, size - i);
		fz_turns(FZ_OP_TURNS);
	}
	fz_eof();
	for (i = 0; i < FZ_END_TURNS; i++)
		(void)fz_turn();
	CHECK(!"the session did not end after EOF");
	return 0;
}
