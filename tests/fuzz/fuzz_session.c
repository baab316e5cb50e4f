/*
 * fuzz_session.c: libFuzzer target for a whole client session as the
 * worker sees it, from the library alone: framing, Fernet, the validity
 * checks of relay(7) in their order (HEAD, then SEQ), the verb, and each
 * command's argument parsing with proto_field() and the validators.
 *
 * Input: the client's byte stream, fed in chunks of a size the first byte
 * picks.  The key and the clock are fixed (the Fernet spec's test key at
 * its test time), the secret code is "5678", and HELLO hands out a fixed
 * nonce, so seed tokens (tests/fuzz/corpus/fuzz_session) decrypt, pass
 * the checks and can log in as alice with password "alice-pw".  The
 * session model keeps the state the worker keeps (next SEQ, logged in,
 * nonce, invalid frames in a row, failed logins) and ends the session
 * where the worker would.  Every reply is formatted with proto_format()
 * and must parse back to the same SEQ and verb.  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "fuzz.h"

#define FUZZ_KEY	"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define FUZZ_NOW	499162801ULL	/* 1985-10-26T08:20:01Z */
#define FUZZ_SECRET	"5678"
#define FUZZ_NONCE	"00112233445566778899aabbccddeeff"
#define FUZZ_USER	"alice"
#define FUZZ_PASSWORD	"alice-pw"

struct session {
	uint64_t	 seq_in;	/* the SEQ the next frame must carry */
	uint64_t	 seq_out;
	int		 logged_in;
	int		 closed;
	int		 invalid_run;
	int		 login_fails;
	char		 nonce[NONCE_LEN + 1];	/* "" when none */
	struct buf	 out;
};

static struct fernet	*fuzz_fernet;
static char		 fuzz_head[HEAD_LEN + 1];
static char		 fuzz_md5[MD5_HEX_LEN + 1];
static unsigned char	 fuzz_plain[FRAME_MAX_DEFAULT];

static void
fuzz_init(void)
{
	unsigned char	 key[FERNET_KEY_LEN];
	const char	*errstr;

	CHECK(fernet_key_parse(FUZZ_KEY, strlen(FUZZ_KEY), key) == 0);
	CHECK((fuzz_fernet = fernet_new(key)) != NULL);
	CHECK(secret_head(FUZZ_SECRET, fuzz_head, &errstr) == 0);
	md5_hex(FUZZ_PASSWORD, strlen(FUZZ_PASSWORD), fuzz_md5);
}

/* A reply or push: formatted as the worker would, then parsed back. */
static void
fuzz_reply(struct session *s, const char *verb, const char *fmt, ...)
    __attribute__((__format__(printf, 3, 4)));

static void
fuzz_reply(struct session *s, const char *verb, const char *fmt, ...)
{
	struct proto_msg	 m;
	va_list			 ap;
	int			 rc;

	buf_reset(&s->out);
	va_start(ap, fmt);
	rc = proto_vformat(&s->out, fuzz_head, s->seq_out, fmt, ap);
	va_end(ap);
	CHECK(rc == 0);
	CHECK(proto_split((const char *)buf_data(&s->out), buf_len(&s->out),
	    &m) == 0);
	CHECK(m.seq == s->seq_out);
	CHECK(secret_head_equal(m.head, fuzz_head));
	CHECK(proto_verb(&m) == 0);
	CHECK(strcmp(m.verb, verb) == 0);
	s->seq_out++;
}

static void
fuzz_invalid(struct session *s)
{
	if (++s->invalid_run >= INVALID_MAX_DEFAULT)
		s->closed = 1;		/* BYE too many invalid frames */
}

/* One field into dst, as the worker's worker_field(). */
static int
fuzz_field(const char **p, size_t *len, char *dst, size_t dstsz)
{
	const char	*f;
	size_t		 flen, before = *len;

	if (proto_field(p, len, &f, &flen) == -1)
		return -1;
	CHECK(flen > 0 && flen <= before && *len < before);
	CHECK(memchr(f, ' ', flen) == NULL);
	if (flen >= dstsz)
		return -1;
	memcpy(dst, f, flen);
	dst[flen] = '\0';
	return 0;
}

static int
fuzz_body_ok(const char *body, size_t len)
{
	if (body == NULL || len == 0 || len > BODY_MAX_DEFAULT)
		return 0;
	return proto_valid_body(body, len, BODY_MAX_DEFAULT);
}

static int
fuzz_hex(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static void
fuzz_login(struct session *s, const struct proto_msg *m)
{
	char		 user[USER_MAX + 2], proof[PROOF_LEN + 1];
	char		 nonce[NONCE_LEN + 1];
	const char	*p = m->args;
	size_t		 len = m->argslen;

	if (s->logged_in) {
		fuzz_reply(s, "ERR", "ERR LOGIN already logged in");
		return;
	}
	memcpy(nonce, s->nonce, sizeof(nonce));
	s->nonce[0] = '\0';
	if (nonce[0] == '\0' || p == NULL ||
	    fuzz_field(&p, &len, user, sizeof(user)) == -1 ||
	    fuzz_field(&p, &len, proof, sizeof(proof)) == -1 || len != 0 ||
	    !proto_valid_user(user, strlen(user)) ||
	    strlen(proof) != PROOF_LEN || !fuzz_hex(proof, PROOF_LEN) ||
	    strcmp(user, FUZZ_USER) != 0 ||
	    !login_proof_check(fuzz_md5, nonce, proof, strlen(proof))) {
		fuzz_reply(s, "ERR", "ERR LOGIN login failed");
		if (++s->login_fails >= LOGIN_FAIL_MAX)
			s->closed = 1;
		return;
	}
	s->logged_in = 1;
	fuzz_reply(s, "OK", "OK LOGIN %d", 0);
}

static void
fuzz_command(struct session *s, const struct proto_msg *m)
{
	const char	*p, *f;
	size_t		 len, flen;
	char		 id[ID_MAX + 1];

	if (strcmp(m->verb, "HELLO") == 0) {
		if (s->logged_in)
			fuzz_reply(s, "ERR", "ERR HELLO already logged in");
		else if (m->args == NULL || m->argslen == 0 ||
		    memchr(m->args, ' ', m->argslen) != NULL)
			fuzz_reply(s, "ERR", "ERR HELLO bad arguments");
		else if (m->argslen != strlen(RELAY_PROTO_NAME) ||
		    memcmp(m->args, RELAY_PROTO_NAME, m->argslen) != 0)
			fuzz_reply(s, "ERR", "ERR HELLO unsupported version");
		else {
			strlcpy(s->nonce, FUZZ_NONCE, sizeof(s->nonce));
			CHECK(proto_valid_nonce(s->nonce, strlen(s->nonce)));
			fuzz_reply(s, "HELLO", "HELLO %s %s",
			    RELAY_PROTO_NAME, s->nonce);
		}
	} else if (strcmp(m->verb, "LOGIN") == 0)
		fuzz_login(s, m);
	else if (strcmp(m->verb, "PING") == 0) {
		if (m->args == NULL)
			fuzz_reply(s, "PONG", "PONG");
		else if (proto_valid_token(m->args, m->argslen)) {
			CHECK(m->argslen <= TOKEN_MAX);
			fuzz_reply(s, "PONG", "PONG %.*s", (int)m->argslen,
			    m->args);
		} else
			fuzz_reply(s, "ERR", "ERR PING bad arguments");
	} else if (strcmp(m->verb, "EXIT") == 0) {
		if (m->args != NULL)
			fuzz_reply(s, "ERR", "ERR EXIT bad arguments");
		else {
			fuzz_reply(s, "OK", "OK EXIT");
			s->closed = 1;
		}
	} else if (strcmp(m->verb, "SAY") == 0 ||
	    strcmp(m->verb, "COMPOSE") == 0 || strcmp(m->verb, "READ") == 0 ||
	    strcmp(m->verb, "ACK") == 0 || strcmp(m->verb, "WHO") == 0) {
		if (!s->logged_in)
			fuzz_reply(s, "ERR", "ERR %s not logged in", m->verb);
		else if (strcmp(m->verb, "SAY") == 0) {
			if (fuzz_body_ok(m->args, m->argslen)) {
				/* The push the others get carries it whole. */
				fuzz_reply(s, "SAY", "SAY %s %llu %.*s",
				    FUZZ_USER, (unsigned long long)FUZZ_NOW,
				    (int)m->argslen, m->args);
				fuzz_reply(s, "OK", "OK SAY");
			} else
				fuzz_reply(s, "ERR", "ERR SAY bad arguments");
		} else if (strcmp(m->verb, "COMPOSE") == 0) {
			p = m->args;
			len = m->argslen;
			if (p == NULL || proto_field(&p, &len, &f, &flen) ==
			    -1 || len == 0 || !fuzz_body_ok(p, len))
				fuzz_reply(s, "ERR", "ERR COMPOSE bad "
				    "arguments");
			else if (!proto_valid_user(f, flen))
				fuzz_reply(s, "ERR", "ERR COMPOSE unknown "
				    "user");
			else {
				CHECK(flen <= USER_MAX);
				fuzz_reply(s, "MSG", "MSG 1.000000001.1 %s "
				    "%llu %.*s", FUZZ_USER,
				    (unsigned long long)FUZZ_NOW, (int)len, p);
				fuzz_reply(s, "OK", "OK COMPOSE "
				    "1.000000001.1");
			}
		} else if (strcmp(m->verb, "ACK") == 0) {
			if (m->args == NULL ||
			    memchr(m->args, ' ', m->argslen) != NULL ||
			    !proto_valid_id(m->args, m->argslen))
				fuzz_reply(s, "ERR", "ERR ACK bad arguments");
			else {
				CHECK(m->argslen <= ID_MAX);
				memcpy(id, m->args, m->argslen);
				id[m->argslen] = '\0';
				fuzz_reply(s, "ERR", "ERR ACK no such item");
			}
		} else if (m->args != NULL)
			fuzz_reply(s, "ERR", "ERR %s bad arguments", m->verb);
		else if (strcmp(m->verb, "READ") == 0)
			fuzz_reply(s, "OK", "OK READ 0");
		else
			fuzz_reply(s, "OK", "OK WHO %s", FUZZ_USER);
	} else
		fuzz_reply(s, "ERR", "ERR %s unknown command", m->verb);
}

/* One frame, checked in the order of relay(7), as worker_frame(). */
static void
fuzz_frame(struct session *s, const char *line, size_t len)
{
	struct proto_msg	 m;
	size_t			 plen, cap;
	int			 rc;

	cap = fernet_plain_max(len);
	CHECK(cap <= sizeof(fuzz_plain));
	rc = fernet_decrypt(fuzz_fernet, line, len, FUZZ_NOW, TTL_DEFAULT,
	    fuzz_plain, cap, &plen);
	CHECK(fernet_strerror(rc) != NULL);
	if (rc != FERNET_OK) {
		fuzz_invalid(s);
		return;
	}
	CHECK(plen <= cap);
	if (proto_split((const char *)fuzz_plain, plen, &m) == -1) {
		fuzz_invalid(s);
		return;
	}
	CHECK(m.seq > 0);
	if (!secret_head_equal(m.head, fuzz_head)) {
		CHECK(memcmp(m.head, fuzz_head, HEAD_LEN) != 0);
		fuzz_invalid(s);
		return;
	}
	CHECK(memcmp(m.head, fuzz_head, HEAD_LEN) == 0);
	if (m.seq != s->seq_in) {
		fuzz_invalid(s);
		return;
	}
	s->seq_in++;
	s->invalid_run = 0;
	if (!utf8_valid(fuzz_plain, plen) || proto_verb(&m) == -1) {
		fuzz_reply(s, "ERR", "ERR NONE malformed");
		return;
	}
	CHECK(strlen(m.verb) >= 1 && strlen(m.verb) <= VERB_MAX);
	CHECK(m.args == NULL || m.args + m.argslen == (const char *)
	    fuzz_plain + plen);
	fuzz_command(s, &m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session	 s;
	struct frame_in	 fi;
	const char	*line;
	size_t		 pos = 0, chunk, len;
	int		 r;

	if (fuzz_fernet == NULL)
		fuzz_init();
	if (size < 1)
		return 0;
	chunk = data[0] == 0 ? size : data[0];
	data++;
	size--;

	memset(&s, 0, sizeof(s));
	s.seq_in = s.seq_out = 1;
	buf_init(&s.out, FRAME_MAX_DEFAULT);
	frame_in_init(&fi, FRAME_MAX_DEFAULT);
	while (!s.closed) {
		while (!s.closed &&
		    (r = frame_in_next(&fi, &line, &len)) != FRAME_NONE) {
			if (r == FRAME_OVERSIZED) {
				s.closed = 1;	/* BYE frame too long */
				break;
			}
			CHECK(r == FRAME_LINE && memchr(line, '\n', len) ==
			    NULL);
			if (len > 0 && line[len - 1] == '\r')
				len--;
			if (len == 0)
				continue;
			fuzz_frame(&s, line, len);
		}
		if (s.closed || pos == size)
			break;
		r = frame_in_feed(&fi, data + pos,
		    chunk < size - pos ? chunk : size - pos);
		CHECK(r > 0);
		pos += (size_t)r;
	}
	frame_in_free(&fi);
	buf_free(&s.out);
	return 0;
}
