/*
 * proto.c: the plaintext codec of protocol v1, "HEAD SP SEQ SP VERB [SP
 * ARGS]" (relay(7)).  It cuts and checks shapes and formats replies; it
 * knows nothing of sessions.  Decisions the protocol leaves to us:
 *
 * - proto_split() checks only what the validity checks need: a 32-byte
 *   HEAD (its content is the caller's, compared in constant time) and a
 *   SEQ of 1 to 19 digits, no leading zero, no zero (SEQs start at 1).
 *   A wrong shape there is an invalid frame.  "HEAD SEQ" alone, or with a
 *   trailing SP, splits with an empty rest, so that a frame that passed
 *   every check gets ERR NONE malformed from proto_verb() rather than
 *   silence.
 * - proto_verb() checks the whole plaintext is UTF-8, since a plaintext
 *   that is not gets ERR NONE malformed, like a bad verb.  NUL is UTF-8:
 *   it can only sit in ARGS (anywhere else the shape is already wrong),
 *   and there the field validators refuse it, so it gets "bad arguments"
 *   of that VERB.  A "VERB " with nothing after the SP has empty ARGS
 *   (args set, argslen 0), which every command refuses as bad arguments.
 * - utf8_valid() is strict UTF-8 (no overlong forms, no surrogates,
 *   nothing past U+10FFFF) and accepts U+0000: NUL is refused by the
 *   validators, every one of which does refuse it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static int	 proto_ok_plain(const char *, size_t);
static int	 proto_idchar(unsigned char);

/*
 * Cuts "HEAD SP SEQ [SP REST]".  Returns 0, or -1 when the shape is wrong
 * (an invalid frame).
 */
int
proto_split(const char *p, size_t len, struct proto_msg *m)
{
	uint64_t	 seq = 0;
	size_t		 i, digits;
	unsigned int	 d;

	memset(m, 0, sizeof(*m));
	if (len < HEAD_LEN + 1 || p[HEAD_LEN] != ' ')
		return -1;
	for (i = HEAD_LEN + 1, digits = 0; i < len; i++, digits++) {
		if (p[i] < '0' || p[i] > '9')
			break;
		if (digits == SEQ_DIGITS_MAX)
			return -1;
		d = (unsigned int)(p[i] - '0');
		if (seq > (UINT64_MAX - d) / 10)
			return -1;
		seq = seq * 10 + d;
	}
	if (digits == 0 || p[HEAD_LEN + 1] == '0')
		return -1;
	if (i < len) {
		if (p[i] != ' ')
			return -1;
		i++;
	}
	m->head = p;
	m->seq = seq;
	m->rest = p + i;
	m->restlen = len - i;
	return 0;
}

/* UTF-8 without NUL. */
static int
proto_ok_plain(const char *p, size_t len)
{
	return memchr(p, '\0', len) == NULL && utf8_valid(p, len);
}

/*
 * Takes the VERB off the rest: 1 to VERB_MAX upper-case letters, then the
 * end or SP and non-empty ARGS.  Returns 0, or -1 when the plaintext is
 * malformed (ERR NONE malformed), not UTF-8 included.
 */
int
proto_verb(struct proto_msg *m)
{
	size_t	 i;

	m->verb[0] = '\0';
	m->args = NULL;
	m->argslen = 0;
	if (m->head == NULL || m->rest == NULL)
		return -1;
	/* No UTF-8 sequence can span an SP: the pieces are the whole. */
	if (!utf8_valid(m->head, HEAD_LEN) || !utf8_valid(m->rest, m->restlen))
		return -1;
	for (i = 0; i < m->restlen; i++) {
		if (m->rest[i] < 'A' || m->rest[i] > 'Z')
			break;
		if (i == VERB_MAX)
			return -1;
	}
	if (i == 0)
		return -1;
	if (i < m->restlen) {
		/* "VERB SP" with nothing after it: empty ARGS, for the
		 * command to refuse as bad arguments, not malformed. */
		if (m->rest[i] != ' ')
			return -1;
		m->args = m->rest + i + 1;
		m->argslen = m->restlen - i - 1;
	}
	memcpy(m->verb, m->rest, i);
	m->verb[i] = '\0';
	return 0;
}

/*
 * Takes the next field off *p: the bytes up to the next SP or the end.
 * Fields are separated by exactly one SP, so an empty field (a leading,
 * doubled or trailing SP, or nothing left) gives -1.
 */
int
proto_field(const char **p, size_t *len, const char **field, size_t *flen)
{
	const char	*sp;
	size_t		 n;

	if (*len == 0)
		return -1;
	if ((sp = memchr(*p, ' ', *len)) == NULL) {
		*field = *p;
		*flen = *len;
		*p += *len;
		*len = 0;
		return 0;
	}
	n = (size_t)(sp - *p);
	if (n == 0 || n + 1 == *len)
		return -1;
	*field = *p;
	*flen = n;
	*p += n + 1;
	*len -= n + 1;
	return 0;
}

/* USER: [a-z0-9_][a-z0-9_.-]{0,31} */
int
proto_valid_user(const char *p, size_t len)
{
	size_t		 i;
	unsigned char	 c;

	if (len == 0 || len > USER_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_')
			continue;
		if (i > 0 && (c == '.' || c == '-'))
			continue;
		return 0;
	}
	return 1;
}

static int
proto_idchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* ID: [A-Za-z0-9._-]{1,64} */
int
proto_valid_id(const char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || len > ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!proto_idchar((unsigned char)p[i]))
			return 0;
	return 1;
}

/* TOKEN (of PING): the same alphabet and length as an ID. */
int
proto_valid_token(const char *p, size_t len)
{
	if (len > TOKEN_MAX)
		return 0;
	return proto_valid_id(p, len);
}

/* BODY: 1 to max bytes of UTF-8 without NUL; LF is allowed. */
int
proto_valid_body(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return 0;
	return proto_ok_plain(p, len);
}

/* NONCE: exactly NONCE_LEN lowercase hex digits. */
int
proto_valid_nonce(const char *p, size_t len)
{
	size_t	 i;

	if (len != NONCE_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

/*
 * Strict UTF-8 after Unicode's table of well-formed byte sequences: the
 * second byte's range rules out overlong forms (E0, F0), surrogates (ED)
 * and code points past U+10FFFF (F4); C0, C1 and F5-FF never appear.
 */
int
utf8_valid(const void *v, size_t len)
{
	const unsigned char	*p = v;
	size_t			 i = 0, k, n;
	unsigned char		 c, lo, hi;

	while (i < len) {
		c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		if (len - i - 1 < n)
			return 0;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return 0;
		i += n + 1;
	}
	return 1;
}

int
proto_format(struct buf *b, const char *head, uint64_t seq,
    const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = proto_vformat(b, head, seq, fmt, ap);
	va_end(ap);
	return r;
}

/*
 * Appends "HEAD SEQ " and the formatted text, or nothing.  The text is
 * formatted straight into the buffer (bodies reach BODY_MAX_DEFAULT
 * bytes), with room for vsnprintf's NUL after it; when only the NUL does
 * not fit under the buffer's max, it goes through a scratch block.
 */
int
proto_vformat(struct buf *b, const char *head, uint64_t seq, const char *fmt,
    va_list ap)
{
	char	 pre[HEAD_LEN + 1 + 20 + 2];
	char	*p, *tmp;
	va_list	 aq;
	size_t	 old, plen, n;
	int	 r, save;

	if (strnlen(head, HEAD_LEN) != HEAD_LEN) {
		errno = EINVAL;
		return -1;
	}
	r = snprintf(pre, sizeof(pre), "%.*s %" PRIu64 " ", HEAD_LEN, head,
	    seq);
	if (r < 0 || (size_t)r >= sizeof(pre)) {
		errno = EINVAL;
		return -1;
	}
	plen = (size_t)r;

	va_copy(aq, ap);
	r = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (r < 0) {
		errno = EINVAL;
		return -1;
	}
	n = (size_t)r;

	old = buf_len(b);
	if (n > buf_max(b) || plen > buf_max(b) - n ||
	    old > buf_max(b) - n - plen) {
		errno = ENOBUFS;
		return -1;
	}
	if (old + plen + n < buf_max(b)) {
		if ((p = buf_reserve(b, plen + n + 1)) == NULL)
			return -1;
		memcpy(p, pre, plen);
		va_copy(aq, ap);
		r = vsnprintf(p + plen, n + 1, fmt, aq);
		va_end(aq);
		if (r < 0 || (size_t)r != n) {
			errno = EINVAL;
			return -1;
		}
		buf_commit(b, plen + n);
		return 0;
	}

	if ((tmp = malloc(n + 1)) == NULL)
		return -1;
	va_copy(aq, ap);
	r = vsnprintf(tmp, n + 1, fmt, aq);
	va_end(aq);
	if (r < 0 || (size_t)r != n) {
		errno = EINVAL;
		r = -1;
	} else if (buf_add(b, pre, plen) == -1 || buf_add(b, tmp, n) == -1) {
		save = errno;
		buf_truncate(b, old);
		errno = save;
		r = -1;
	} else
		r = 0;
	explicit_bzero(tmp, n + 1);
	free(tmp);
	return r;
}
