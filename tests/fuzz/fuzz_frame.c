/*
 * fuzz_frame.c: libFuzzer target for what a client's bytes go through
 * first: framing, Fernet, the plaintext codec.
 *
 * Input: byte 0 picks the frame limit (FRAME_MAX_DEFAULT, or a small one
 * so that oversized lines are common), byte 1 seeds the chunk sizes, the
 * rest is the stream.  The stream is fed in those chunks and the frames
 * must equal those of a plain model that splits the whole stream at once.
 * Each frame goes to fernet_decrypt() under a fixed key (the Fernet spec's
 * test key, at its test time, so a seed token decrypts) and, decrypted or
 * not, through proto_split(), proto_verb(), proto_field() and the
 * validators; a well-formed message must survive proto_format() and a
 * second parse unchanged.  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "fuzz.h"

#define FUZZ_KEY	"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define FUZZ_NOW	499162801ULL	/* 1985-10-26T08:20:01Z */
#define FUZZ_HEAD	"674f3c2c1a8a6f90461e8a66fb5550ba"

static struct fernet	*fuzz_fernet;
static unsigned char	 fuzz_plain[FRAME_MAX_DEFAULT];

static void
fuzz_fields(const char *p, size_t len)
{
	const char	*f;
	size_t		 flen, left = len;

	while (proto_field(&p, &left, &f, &flen) == 0) {
		CHECK(flen > 0 && memchr(f, ' ', flen) == NULL);
		CHECK(left < len);
		if (memchr(f, '\0', flen) != NULL)
			CHECK(!proto_valid_user(f, flen) &&
			    !proto_valid_id(f, flen) &&
			    !proto_valid_token(f, flen) &&
			    !proto_valid_nonce(f, flen));
		else {
			(void)proto_valid_user(f, flen);
			(void)proto_valid_id(f, flen);
			(void)proto_valid_token(f, flen);
			(void)proto_valid_nonce(f, flen);
		}
	}
}

static void
fuzz_parse(const char *p, size_t len)
{
	struct proto_msg	 m, m2;
	struct buf		 out;
	size_t			 vlen;

	if (proto_split(p, len, &m) == -1)
		return;
	CHECK(m.head == p && m.seq > 0);
	CHECK(m.rest >= p + HEAD_LEN + 2 && m.rest + m.restlen == p + len);
	if (proto_verb(&m) == -1)
		return;
	vlen = strlen(m.verb);
	CHECK(vlen >= 1 && vlen <= VERB_MAX);
	CHECK(utf8_valid(p, len));
	if (m.args != NULL) {
		/* "VERB " alone gives empty ARGS, which no BODY accepts. */
		CHECK(m.args == m.rest + vlen + 1);
		CHECK(m.args + m.argslen == p + len);
		fuzz_fields(m.args, m.argslen);
		CHECK(proto_valid_body(m.args, m.argslen, len) ==
		    (m.argslen > 0 && memchr(m.args, '\0', m.argslen) == NULL));
	} else
		CHECK(m.argslen == 0 && vlen == m.restlen);

	/* Format it again and parse that: the same message comes back. */
	if (m.args != NULL && memchr(m.args, '\0', m.argslen) != NULL)
		return;		/* "%.*s" would stop at the NUL */
	buf_init(&out, len + 64);
	if (m.args != NULL)
		CHECK(proto_format(&out, FUZZ_HEAD, m.seq, "%s %.*s", m.verb,
		    (int)m.argslen, m.args) == 0);
	else
		CHECK(proto_format(&out, FUZZ_HEAD, m.seq, "%s", m.verb) == 0);
	CHECK(proto_split((const char *)buf_data(&out), buf_len(&out),
	    &m2) == 0);
	CHECK(proto_verb(&m2) == 0);
	CHECK(m2.seq == m.seq && strcmp(m2.verb, m.verb) == 0);
	CHECK(m2.argslen == m.argslen);
	CHECK(m.argslen == 0 || memcmp(m2.args, m.args, m.argslen) == 0);
	buf_free(&out);
}

static void
fuzz_frame(const char *line, size_t len)
{
	size_t	 plen;
	int	 rc;

	fuzz_parse(line, len);
	rc = fernet_decrypt(fuzz_fernet, line, len, FUZZ_NOW, TTL_DEFAULT,
	    fuzz_plain, sizeof(fuzz_plain), &plen);
	CHECK(fernet_strerror(rc) != NULL);
	if (rc != FERNET_OK)
		return;
	CHECK(plen <= len && plen <= sizeof(fuzz_plain));
	fuzz_parse((const char *)fuzz_plain, plen);
}

/*
 * The model: the next frame of the whole stream from *pos.  Returns
 * FRAME_NONE at the end.
 */
static int
model_next(const char *s, size_t n, size_t max, size_t *pos, size_t *off,
    size_t *len)
{
	const char	*lf;
	size_t		 i;

	while (*pos < n) {
		if ((lf = memchr(s + *pos, '\n', n - *pos)) == NULL) {
			i = n - *pos;
			*pos = n;
			return i >= max ? FRAME_OVERSIZED : FRAME_NONE;
		}
		i = (size_t)(lf - s);
		*off = *pos;
		*len = i - *pos;
		*pos = i + 1;
		if (*len + 1 > max)
			return FRAME_OVERSIZED;
		if (*len > 0 && s[*off + *len - 1] == '\r')
			(*len)--;
		if (*len > 0)
			return FRAME_LINE;
	}
	return FRAME_NONE;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_in	 fi;
	unsigned char	 key[FERNET_KEY_LEN];
	const char	*s, *line;
	size_t		 n, max, pos = 0, mpos = 0, moff = 0, mlen = 0;
	size_t		 chunk, len;
	uint32_t	 x;
	int		 r, mr;

	if (fuzz_fernet == NULL) {
		CHECK(fernet_key_parse(FUZZ_KEY, strlen(FUZZ_KEY), key) == 0);
		CHECK((fuzz_fernet = fernet_new(key)) != NULL);
	}
	if (size < 2)
		return 0;
	max = data[0] < 0x80 ? FRAME_MAX_DEFAULT : 2 + (data[0] & 0x7f) * 4;
	x = data[1] * 2654435761U + 1;
	s = (const char *)data + 2;
	n = size - 2;

	frame_in_init(&fi, max);
	for (;;) {
		while ((r = frame_in_next(&fi, &line, &len)) != FRAME_NONE) {
			mr = model_next(s, n, max, &mpos, &moff, &mlen);
			CHECK(r == mr);
			if (r == FRAME_LINE) {
				CHECK(len == mlen &&
				    memcmp(line, s + moff, len) == 0);
				fuzz_frame(line, len);
			}
		}
		CHECK(buf_len(&fi.fi_buf) < max);
		CHECK(fi.fi_scan == buf_len(&fi.fi_buf));
		if (pos == n)
			break;
		x = x * 1103515245 + 12345;
		chunk = (x >> 16) % 8 == 0 ? n : 1 + (x >> 16) % 300;
		if (chunk > n - pos)
			chunk = n - pos;
		r = frame_in_feed(&fi, s + pos, chunk);
		CHECK(r > 0 && (size_t)r <= chunk);
		pos += (size_t)r;
	}
	/* Whatever is left in the stream is an unfinished short line. */
	CHECK(model_next(s, n, max, &mpos, &moff, &mlen) == FRAME_NONE);
	frame_in_free(&fi);
	return 0;
}
