/*
 * test_fernet.c: fernet.c against the Fernet spec's vectors (read from
 * $RELAY_FERNET_SPEC, default ../shared/fernet-spec, never copied here)
 * and against hostile tokens: every truncation, every flipped bit, every
 * character swapped, bad base64, padding games, forged tokens with a good
 * HMAC around bad plaintext, tight and huge buffers, and the clock rules.
 * Tokens are taken apart and forged with this file's own base64 and raw
 * EVP calls, so a bug in fernet.c's codec cannot hide behind itself.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "proto.h"

#define SPEC_DEFAULT	"../shared/fernet-spec"
#define TEXT_MAX	1024

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* A fixed key for the tests that need no vector. */
static const char test_key[] = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
static const uint64_t T0 = 499162800;	/* 1985-10-26T08:20:00Z */

/*
 * The test's own codec: a plain URL-safe base64 encoder, and a decoder
 * for text known to be canonical (it is only given our own tokens).
 */
static size_t
t_b64enc(const unsigned char *in, size_t n, char *out)
{
	size_t	 i, o = 0;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static size_t
t_b64dec(const char *in, size_t n, unsigned char *out)
{
	size_t	 i, o = 0;
	uint32_t v;
	int	 k, bits;

	for (i = 0, v = 0, bits = 0; i < n && in[i] != '='; i++) {
		for (k = 0; k < 64; k++)
			if (b64url[k] == in[i])
				break;
		assert_true(k < 64);
		v = v << 6 | (uint32_t)k;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = v >> bits;
		}
	}
	return o;
}

/*
 * A tiny JSON reader, enough for the spec files: an array of objects
 * whose values are strings, integers, or arrays of integers.
 */
struct vec {
	char	 desc[TEXT_MAX];
	char	 token[TEXT_MAX];
	char	 now[64];
	char	 src[TEXT_MAX];
	char	 secret[TEXT_MAX];
	int	 iv[16];
	int	 niv;
	long long ttl;
	int	 has_ttl;
};

struct json {
	const char	*p;
	const char	*end;
};

static void
j_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' ||
	    *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static int
j_lit(struct json *j, char c)
{
	j_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return 1;
	}
	return 0;
}

static int
j_string(struct json *j, char *out, size_t cap)
{
	size_t	 o = 0;
	char	 c;

	if (!j_lit(j, '"'))
		return -1;
	while (j->p < j->end && *j->p != '"') {
		c = *j->p++;
		if (c == '\\') {
			if (j->p >= j->end)
				return -1;
			c = *j->p++;
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case '"': case '\\': case '/':
				break;
			default:
				return -1;	/* \uXXXX is not in the spec */
			}
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	if (!j_lit(j, '"'))
		return -1;
	out[o] = '\0';
	return 0;
}

static int
j_int(struct json *j, long long *v)
{
	char	*ep;

	j_ws(j);
	errno = 0;
	*v = strtoll(j->p, &ep, 10);
	if (ep == j->p || errno != 0 || ep > j->end)
		return -1;
	j->p = ep;
	return 0;
}

static int
j_object(struct json *j, struct vec *v)
{
	char		 key[64], scratch[TEXT_MAX];
	long long	 n;

	memset(v, 0, sizeof(*v));
	if (!j_lit(j, '{'))
		return -1;
	if (j_lit(j, '}'))
		return 0;
	do {
		char	*dst = scratch;
		size_t	 cap = sizeof(scratch);

		if (j_string(j, key, sizeof(key)) == -1 || !j_lit(j, ':'))
			return -1;
		if (strcmp(key, "desc") == 0)
			dst = v->desc, cap = sizeof(v->desc);
		else if (strcmp(key, "token") == 0)
			dst = v->token, cap = sizeof(v->token);
		else if (strcmp(key, "now") == 0)
			dst = v->now, cap = sizeof(v->now);
		else if (strcmp(key, "src") == 0)
			dst = v->src, cap = sizeof(v->src);
		else if (strcmp(key, "secret") == 0)
			dst = v->secret, cap = sizeof(v->secret);
		j_ws(j);
		if (j->p < j->end && *j->p == '"') {
			if (j_string(j, dst, cap) == -1)
				return -1;
		} else if (j_lit(j, '[')) {
			if (j_lit(j, ']'))
				continue;
			do {
				if (j_int(j, &n) == -1 || v->niv >= 16)
					return -1;
				if (strcmp(key, "iv") == 0)
					v->iv[v->niv++] = (int)n;
			} while (j_lit(j, ','));
			if (!j_lit(j, ']'))
				return -1;
		} else {
			if (j_int(j, &n) == -1)
				return -1;
			if (strcmp(key, "ttl_sec") == 0) {
				v->ttl = n;
				v->has_ttl = 1;
			}
		}
	} while (j_lit(j, ','));
	return j_lit(j, '}') ? 0 : -1;
}

static const char *
spec_dir(void)
{
	const char	*d = getenv("RELAY_FERNET_SPEC");

	return d != NULL && *d != '\0' ? d : SPEC_DEFAULT;
}

/*
 * Reads DIR/name into a new array of *n vectors; skips the test when the
 * directory is missing, fails it when a file is missing or malformed.
 */
static struct vec *
spec_load(const char *name, size_t *n)
{
	char		 path[4096], *text;
	struct json	 j;
	struct vec	*v = NULL, *nv;
	FILE		*fp;
	long		 len;

	if (access(spec_dir(), F_OK) == -1) {
		print_message("skipped: no fernet-spec at %s\n", spec_dir());
		skip();
	}
	snprintf(path, sizeof(path), "%s/%s", spec_dir(), name);
	fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	assert_true(len >= 0 && len < 1 << 20);
	rewind(fp);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	text[len] = '\0';
	j.p = text;
	j.end = text + len;
	*n = 0;
	if (!j_lit(&j, '['))
		fail_msg("%s: not a JSON array", path);
	if (!j_lit(&j, ']')) {
		do {
			nv = realloc(v, (*n + 1) * sizeof(*v));
			assert_non_null(nv);
			v = nv;
			if (j_object(&j, &v[*n]) == -1)
				fail_msg("%s: bad JSON near offset %td", path,
				    j.p - text);
			(*n)++;
		} while (j_lit(&j, ','));
		if (!j_lit(&j, ']'))
			fail_msg("%s: bad JSON near offset %td", path,
			    j.p - text);
	}
	free(text);
	assert_true(*n > 0);
	return v;
}

/* RFC 3339 time with a numeric offset (or Z), as in the spec files. */
static uint64_t
rfc3339(const char *s)
{
	struct tm	 tm;
	int		 y, mo, d, h, mi, sec, oh = 0, om = 0, n = 0;
	char		 sign = 'Z';
	time_t		 t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi,
	    &sec, &n) != 6)
		fail_msg("bad time %s", s);
	if (s[n] != 'Z' && sscanf(s + n, "%c%2d:%2d", &sign, &oh, &om) != 3)
		fail_msg("bad time offset %s", s);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (sign == '+')
		t -= oh * 3600 + om * 60;
	else if (sign == '-')
		t += oh * 3600 + om * 60;
	return (uint64_t)t;
}

static struct fernet *
new_from_text(const char *text)
{
	unsigned char	 key[FERNET_KEY_LEN];
	struct fernet	*f;

	assert_int_equal(fernet_key_parse(text, strlen(text), key), 0);
	f = fernet_new(key);
	assert_non_null(f);
	explicit_bzero(key, sizeof(key));
	return f;
}

static void
test_spec_generate(void **state)
{
	struct vec	*v;
	struct fernet	*f;
	unsigned char	 iv[16];
	char		 tok[TEXT_MAX];
	size_t		 n, i, k, len;

	v = spec_load("generate.json", &n);
	for (i = 0; i < n; i++) {
		assert_int_equal(v[i].niv, 16);
		for (k = 0; k < 16; k++)
			iv[k] = (unsigned char)v[i].iv[k];
		f = new_from_text(v[i].secret);
		assert_int_equal(fernet_encrypt(f, v[i].src,
		    strlen(v[i].src), rfc3339(v[i].now), iv, tok,
		    sizeof(tok), &len), FERNET_OK);
		assert_int_equal(len, strlen(v[i].token));
		assert_int_equal(len, fernet_token_len(strlen(v[i].src)));
		assert_memory_equal(tok, v[i].token, len);
		fernet_free(f);
	}
	free(v);
}

static void
test_spec_verify(void **state)
{
	struct vec	*v;
	struct fernet	*f;
	unsigned char	 pt[TEXT_MAX];
	size_t		 n, i, len;

	v = spec_load("verify.json", &n);
	for (i = 0; i < n; i++) {
		assert_true(v[i].has_ttl);
		f = new_from_text(v[i].secret);
		assert_int_equal(fernet_decrypt(f, v[i].token,
		    strlen(v[i].token), rfc3339(v[i].now),
		    (uint64_t)v[i].ttl, pt, sizeof(pt), &len), FERNET_OK);
		assert_int_equal(len, strlen(v[i].src));
		assert_memory_equal(pt, v[i].src, len);
		/* The bound is enough, and so is the exact size. */
		assert_true(fernet_plain_max(strlen(v[i].token)) >= len);
		assert_int_equal(fernet_decrypt(f, v[i].token,
		    strlen(v[i].token), rfc3339(v[i].now),
		    (uint64_t)v[i].ttl, pt, len, &len), FERNET_OK);
		fernet_free(f);
	}
	free(v);
}

/* What each invalid vector must give, by its description. */
static const struct {
	const char	*desc;
	int		 want;
} invalid_want[] = {
	{ "incorrect mac", FERNET_EMAC },
	{ "too short", FERNET_ESHORT },
	{ "invalid base64", FERNET_EBASE64 },
	{ "payload size not multiple of block size", FERNET_EPADDING },
	{ "payload padding error", FERNET_EPADDING },
	{ "far-future TS (unacceptable clock skew)", FERNET_EFUTURE },
	{ "expired TTL", FERNET_EEXPIRED },
	{ "incorrect IV (causes padding error)", FERNET_EPADDING },
};

static void
test_spec_invalid(void **state)
{
	struct vec	*v;
	struct fernet	*f;
	unsigned char	 pt[TEXT_MAX];
	size_t		 n, i, k, len;
	int		 rc;

	v = spec_load("invalid.json", &n);
	for (i = 0; i < n; i++) {
		f = new_from_text(v[i].secret);
		len = 12345;
		rc = fernet_decrypt(f, v[i].token, strlen(v[i].token),
		    rfc3339(v[i].now), (uint64_t)v[i].ttl, pt, sizeof(pt),
		    &len);
		if (rc == FERNET_OK)
			fail_msg("invalid vector \"%s\" accepted", v[i].desc);
		assert_int_equal(len, 12345);
		for (k = 0; k < sizeof(invalid_want) /
		    sizeof(invalid_want[0]); k++)
			if (strcmp(v[i].desc, invalid_want[k].desc) == 0 &&
			    rc != invalid_want[k].want)
				fail_msg("\"%s\": got %s, want %s", v[i].desc,
				    fernet_strerror(rc),
				    fernet_strerror(invalid_want[k].want));
		fernet_free(f);
	}
	free(v);
}

static void
test_key_roundtrip(void **state)
{
	unsigned char	 key[FERNET_KEY_LEN], back[FERNET_KEY_LEN];
	char		 text[FERNET_KEY_B64LEN + 1], ref[64];
	int		 i, b;

	for (i = 0; i < 2000; i++) {
		/* Random keys, then every byte value in every position. */
		if (i < 1000)
			random_bytes(key, sizeof(key));
		else
			for (b = 0; b < FERNET_KEY_LEN; b++)
				key[b] = (unsigned char)(i * 7 + b * 31);
		fernet_key_format(key, text);
		assert_int_equal(strlen(text), FERNET_KEY_B64LEN);
		t_b64enc(key, sizeof(key), ref);
		assert_string_equal(text, ref);
		assert_int_equal(fernet_key_parse(text, FERNET_KEY_B64LEN,
		    back), 0);
		assert_memory_equal(key, back, sizeof(key));
	}
	memset(key, 0, sizeof(key));
	fernet_key_format(key, text);
	assert_string_equal(text,
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	memset(key, 0xff, sizeof(key));
	fernet_key_format(key, text);
	assert_string_equal(text,
	    "__________________________________________8=");
}

static void
test_key_hostile(void **state)
{
	static const struct {
		const char	*text;
		size_t		 len;	/* 0: strlen */
	} bad[] = {
		{ "", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4==", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n", 0 },
		{ " cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", 0 },
		{ "cw/0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", 0 },
		{ "cw_0x689RpI+jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e5=", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e7=", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e==", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4A", 0 },
		{ "cw_0x689RpI-jtRR7oE8h=eQsKImvJapLeSbXpwF4e4=", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4.", 0 },
		{ "cw_0x689RpI-jtRR7oE8h\0eQsKImvJapLeSbXpwF4e4=", 44 },
		{ "cw_0x689RpI-jtRR7oE8h\xc3\xa9QsKImvJapLeSbXpwF4e4=", 0 },
		{ "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", 43 },
	};
	unsigned char	 key[FERNET_KEY_LEN];
	char		 text[FERNET_KEY_B64LEN + 1];
	size_t		 i, len;
	int		 c, p;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = bad[i].len != 0 ? bad[i].len : strlen(bad[i].text);
		memset(key, 0xa5, sizeof(key));
		if (fernet_key_parse(bad[i].text, len, key) != -1)
			fail_msg("key %zu \"%s\" accepted", i, bad[i].text);
	}
	/*
	 * Every byte value in every position: the parse must agree with the
	 * alphabet (the last but one character takes only 16 of them).
	 */
	for (p = 0; p < FERNET_KEY_B64LEN; p++) {
		for (c = 0; c < 256; c++) {
			int	 want;

			memcpy(text, test_key, sizeof(text));
			text[p] = (char)c;
			if (p == 43)
				want = c == '=' ? 0 : -1;
			else if (c == 0 || strchr(b64url, c) == NULL)
				want = -1;
			else if (p == 42)
				want = ((strchr(b64url, c) - b64url) & 3) == 0 ?
				    0 : -1;
			else
				want = 0;
			if (fernet_key_parse(text, FERNET_KEY_B64LEN, key) !=
			    want)
				fail_msg("key with %#x at %d: want %d", c, p,
				    want);
		}
	}
}

static void
test_key_generate(void **state)
{
	unsigned char	 a[FERNET_KEY_LEN], b[FERNET_KEY_LEN];
	unsigned char	 zero[FERNET_KEY_LEN] = { 0 };

	assert_int_equal(fernet_key_generate(a), 0);
	assert_int_equal(fernet_key_generate(b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
}

static void
test_roundtrip_sizes(void **state)
{
	struct fernet	*f;
	unsigned char	*pt, *back;
	char		*tok;
	size_t		 n, len, plen, cap = 70000;
	static const size_t big[] = { 1000, 4095, 4096, 4097, 32768, 65535,
	    65536, 65537 };
	size_t		 i;

	f = new_from_text(test_key);
	pt = malloc(cap);
	back = malloc(cap);
	tok = malloc(fernet_token_len(cap));
	assert_non_null(pt);
	assert_non_null(back);
	assert_non_null(tok);
	random_bytes(pt, cap);
	for (i = 0; i < 600 + sizeof(big) / sizeof(big[0]); i++) {
		n = i < 600 ? i : big[i - 600];
		assert_int_equal(fernet_encrypt(f, pt, n, T0, NULL, tok,
		    fernet_token_len(n), &len), FERNET_OK);
		assert_int_equal(len, fernet_token_len(n));
		assert_true(fernet_plain_max(len) >= n);
		assert_true(fernet_plain_max(len) < n + 16);
		/* An exact output buffer is enough. */
		assert_int_equal(fernet_decrypt(f, tok, len, T0, 60, back, n,
		    &plen), FERNET_OK);
		assert_int_equal(plen, n);
		assert_memory_equal(pt, back, n);
	}
	free(tok);
	free(back);
	free(pt);
	fernet_free(f);
}

static void
test_lengths(void **state)
{
	size_t	 n, raw;

	for (n = 0; n < 5000; n++) {
		raw = 1 + 8 + 16 + (n / 16 + 1) * 16 + 32;
		assert_int_equal(fernet_token_len(n), (raw + 2) / 3 * 4);
		assert_int_equal(fernet_token_len(n) % 4, 0);
	}
	for (n = 0; n < 100; n++)
		assert_int_equal(fernet_plain_max(n), 0);
	assert_int_equal(fernet_plain_max(fernet_token_len(0)), 15);
	assert_int_equal(fernet_token_len(SIZE_MAX), SIZE_MAX);
	assert_int_equal(fernet_token_len(SIZE_MAX / 2 + 1), SIZE_MAX);
	assert_true(fernet_token_len(SIZE_MAX / 2) > SIZE_MAX / 2);
	assert_true(fernet_token_len(SIZE_MAX / 2) < SIZE_MAX);
	assert_true(fernet_plain_max(SIZE_MAX) < SIZE_MAX / 4 * 3);
}

/* Encrypts a short message under the test key at T0. */
static size_t
make_token(struct fernet *f, const char *msg, char *tok, size_t cap)
{
	size_t	 len;

	assert_int_equal(fernet_encrypt(f, msg, strlen(msg), T0, NULL, tok,
	    cap, &len), FERNET_OK);
	tok[len] = '\0';
	return len;
}

static void
test_truncated(void **state)
{
	struct fernet	*f;
	unsigned char	 raw[256], out[256];
	char		 tok[512], tok2[512];
	size_t		 len, rawlen, n, plen, tlen;
	int		 rc;

	f = new_from_text(test_key);
	len = make_token(f, "attack at dawn, bring snacks: 40 bytes!!", tok,
	    sizeof(tok));
	/* Every prefix of the text. */
	for (n = 0; n < len; n++) {
		rc = fernet_decrypt(f, tok, n, T0, 60, out, sizeof(out),
		    &plen);
		if (rc == FERNET_OK)
			fail_msg("prefix of %zu characters accepted", n);
	}
	/* Every prefix of the bytes, canonically re-encoded. */
	rawlen = t_b64dec(tok, len, raw);
	assert_int_equal(rawlen, 1 + 8 + 16 + 48 + 32);
	for (n = 0; n < rawlen; n++) {
		tlen = t_b64enc(raw, n, tok2);
		rc = fernet_decrypt(f, tok2, tlen, T0, 60, out, sizeof(out),
		    &plen);
		if (n < 57)
			assert_int_equal(rc, FERNET_ESHORT);
		else if (n == 57 || (n - 57) % 16 != 0)
			assert_int_equal(rc, FERNET_EPADDING);
		else
			assert_int_equal(rc, FERNET_EMAC);
	}
	fernet_free(f);
}

static void
test_bitflips(void **state)
{
	struct fernet	*f;
	unsigned char	 raw[256], out[256];
	char		 tok[512], tok2[512];
	size_t		 len, rawlen, i, plen, tlen;
	int		 bit, rc;

	f = new_from_text(test_key);
	len = make_token(f, "attack at dawn", tok, sizeof(tok));
	rawlen = t_b64dec(tok, len, raw);
	for (i = 0; i < rawlen; i++) {
		for (bit = 0; bit < 8; bit++) {
			raw[i] ^= 1 << bit;
			tlen = t_b64enc(raw, rawlen, tok2);
			assert_int_equal(tlen, len);
			rc = fernet_decrypt(f, tok2, tlen, T0, 60, out,
			    sizeof(out), &plen);
			assert_int_equal(rc, i == 0 ? FERNET_EVERSION :
			    FERNET_EMAC);
			raw[i] ^= 1 << bit;
		}
	}
	fernet_free(f);
}

/* Every character replaced by every other character of the alphabet. */
static void
test_char_swaps(void **state)
{
	struct fernet	*f;
	unsigned char	 out[256];
	char		 tok[512];
	size_t		 len, i, plen;
	int		 k, rc;
	char		 orig;

	f = new_from_text(test_key);
	len = make_token(f, "attack at dawn", tok, sizeof(tok));
	for (i = 0; i < len; i++) {
		orig = tok[i];
		for (k = 0; k < 64; k++) {
			if (b64url[k] == orig)
				continue;
			tok[i] = b64url[k];
			rc = fernet_decrypt(f, tok, len, T0, 60, out,
			    sizeof(out), &plen);
			tok[i] = orig;
			/* A '=' made data changes the length. */
			if (rc != FERNET_EMAC && rc != FERNET_EBASE64 &&
			    rc != FERNET_EVERSION && (rc != FERNET_EPADDING ||
			    tok[i] != '='))
				fail_msg("%c at %zu: %s", b64url[k], i,
				    fernet_strerror(rc));
		}
		tok[i] = orig;
	}
	fernet_free(f);
}

static void
test_bad_base64(void **state)
{
	static const char bad[] = { '+', '/', '=', ' ', '\n', '\r', '\t',
	    '\0', '.', '*', '%', '"', '\\', (char)0x80, (char)0xc3,
	    (char)0xff, 0x7f, 0x01 };
	struct fernet	*f;
	unsigned char	 out[256];
	char		 tok[512];
	size_t		 len, i, k, plen, pad;
	char		 orig;

	f = new_from_text(test_key);
	len = make_token(f, "attack at dawn", tok, sizeof(tok));
	pad = tok[len - 1] == '=' ? (tok[len - 2] == '=' ? 2 : 1) : 0;
	for (i = 0; i < len - pad; i++) {
		orig = tok[i];
		for (k = 0; k < sizeof(bad); k++) {
			tok[i] = bad[k];
			assert_int_equal(fernet_decrypt(f, tok, len, T0, 60,
			    out, sizeof(out), &plen), FERNET_EBASE64);
		}
		tok[i] = orig;
	}
	fernet_free(f);
}

/*
 * Padding games on tokens of each padding class: stripped, doubled,
 * moved, replaced, and non-zero bits where the padding leaves them unused.
 * Plaintexts of 0, 1 and 2 mod 3 groups give 2, 1 and no '='.
 */
static void
test_padding_games(void **state)
{
	struct fernet	*f;
	unsigned char	 out[256];
	char		 tok[512], t2[520];
	size_t		 len, plen, n, pad;
	int		 k, seen[3] = { 0, 0, 0 };
	const char	*p;

	f = new_from_text(test_key);
	for (n = 0; n < 48; n += 16) {
		char	 msg[64];

		memset(msg, 'm', n);
		msg[n] = '\0';
		len = make_token(f, msg, tok, sizeof(tok));
		pad = tok[len - 1] == '=' ? (tok[len - 2] == '=' ? 2 : 1) : 0;
		seen[pad] = 1;
		assert_int_equal(fernet_decrypt(f, tok, len, T0, 0, out,
		    sizeof(out), &plen), FERNET_OK);
		/* Stripped padding, one '=' more, and "====" more. */
		assert_int_equal(fernet_decrypt(f, tok, len - pad, T0, 0, out,
		    sizeof(out), &plen), pad == 0 ? FERNET_OK :
		    FERNET_EBASE64);
		memcpy(t2, tok, len);
		memcpy(t2 + len, "====", 4);
		assert_int_equal(fernet_decrypt(f, t2, len + 1, T0, 0, out,
		    sizeof(out), &plen), FERNET_EBASE64);
		assert_int_equal(fernet_decrypt(f, t2, len + 4, T0, 0, out,
		    sizeof(out), &plen), FERNET_EBASE64);
		/* '=' in front, and in the middle. */
		t2[0] = '=';
		memcpy(t2 + 1, tok, len);
		assert_int_equal(fernet_decrypt(f, t2, len + 1, T0, 0, out,
		    sizeof(out), &plen), FERNET_EBASE64);
		memcpy(t2, tok, len);
		t2[len / 2] = '=';
		assert_int_equal(fernet_decrypt(f, t2, len, T0, 0, out,
		    sizeof(out), &plen), FERNET_EBASE64);
		if (pad == 0)
			continue;
		/*
		 * The last '=' turned into data: valid base64 of a bad length
		 * after one '=', a '=' inside the text after two.
		 */
		memcpy(t2, tok, len);
		t2[len - 1] = 'A';
		assert_int_equal(fernet_decrypt(f, t2, len, T0, 0, out,
		    sizeof(out), &plen), pad == 1 ? FERNET_EPADDING :
		    FERNET_EBASE64);
		/* Unused bits set. */
		for (k = 1; k < (pad == 1 ? 4 : 16); k++) {
			memcpy(t2, tok, len);
			p = strchr(b64url, t2[len - pad - 1]);
			assert_non_null(p);
			t2[len - pad - 1] = b64url[(p - b64url) ^ k];
			assert_int_equal(fernet_decrypt(f, t2, len, T0, 0, out,
			    sizeof(out), &plen), FERNET_EBASE64);
		}
	}
	assert_true(seen[0] && seen[1] && seen[2]);
	fernet_free(f);
}

/* Raw tokens with a correct HMAC around chosen ciphertext. */
static size_t
forge(const char *keytext, uint8_t version, uint64_t ts,
    const unsigned char *pt, size_t ptlen, int pkcs7, char *tok)
{
	unsigned char	 key[32], raw[512], iv[16];
	EVP_CIPHER_CTX	*ctx;
	size_t		 maclen, rawlen;
	int		 i, outl, fin;

	assert_int_equal(fernet_key_parse(keytext, strlen(keytext), key), 0);
	memset(iv, 0x42, sizeof(iv));
	raw[0] = version;
	for (i = 0; i < 8; i++)
		raw[1 + i] = ts >> (56 - 8 * i);
	memcpy(raw + 9, iv, 16);
	ctx = EVP_CIPHER_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_EncryptInit_ex2(ctx, EVP_aes_128_cbc(), key + 16,
	    iv, NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_set_padding(ctx, pkcs7), 1);
	outl = 0;
	if (ptlen > 0)
		assert_int_equal(EVP_EncryptUpdate(ctx, raw + 25, &outl, pt,
		    (int)ptlen), 1);
	assert_int_equal(EVP_EncryptFinal_ex(ctx, raw + 25 + outl, &fin), 1);
	EVP_CIPHER_CTX_free(ctx);
	rawlen = 25 + (size_t)outl + (size_t)fin;
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, 16,
	    raw, rawlen, raw + rawlen, 32, &maclen));
	return t_b64enc(raw, rawlen + 32, tok);
}

static void
test_forged(void **state)
{
	static const struct {
		const char	*name;
		size_t		 ptlen;		/* raw, unpadded */
		unsigned char	 last;		/* last byte of pt */
		unsigned char	 other;		/* the byte before it */
		int		 want;
	} cases[] = {
		{ "pad 0", 16, 0, 0, FERNET_EPADDING },
		{ "pad 17", 16, 17, 17, FERNET_EPADDING },
		{ "pad 255", 16, 255, 255, FERNET_EPADDING },
		{ "pad 2 but 1 before", 16, 2, 1, FERNET_EPADDING },
		{ "pad 16 short", 32, 16, 15, FERNET_EPADDING },
		{ "pad 1", 16, 1, 'x', FERNET_OK },
		{ "pad 2", 16, 2, 2, FERNET_OK },
		{ "no ciphertext", 0, 0, 0, FERNET_EPADDING },
	};
	struct fernet	*f;
	unsigned char	 pt[64], out[128];
	char		 tok[512];
	size_t		 i, len, plen;

	f = new_from_text(test_key);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(pt, 'p', sizeof(pt));
		if (cases[i].ptlen > 0) {
			pt[cases[i].ptlen - 1] = cases[i].last;
			pt[cases[i].ptlen - 2] = cases[i].other;
			if (strcmp(cases[i].name, "pad 16 short") == 0) {
				memset(pt + 16, 16, 16);
				pt[20] = 15;
			}
		}
		len = forge(test_key, 0x80, T0, pt, cases[i].ptlen, 0, tok);
		memset(out, 0xee, sizeof(out));
		if (fernet_decrypt(f, tok, len, T0, 60, out, sizeof(out),
		    &plen) != cases[i].want)
			fail_msg("%s: want %s", cases[i].name,
			    fernet_strerror(cases[i].want));
		if (cases[i].want != FERNET_OK) {
			/* No plaintext is left behind. */
			assert_null(memchr(out, 'p', sizeof(out)));
		} else
			assert_int_equal(plen, 16 - cases[i].last);
	}
	/* Whole blocks but not a whole number of them, with a good HMAC. */
	len = forge(test_key, 0x80, T0, pt, 16, 1, tok);
	{
		unsigned char	 raw[512];
		size_t		 rawlen = t_b64dec(tok, len, raw), maclen;
		unsigned char	 key[32];

		assert_int_equal(fernet_key_parse(test_key, 44, key), 0);
		rawlen -= 32 + 5;	/* cut 5 bytes of ciphertext */
		assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL,
		    key, 16, raw, rawlen, raw + rawlen, 32, &maclen));
		len = t_b64enc(raw, rawlen + 32, tok);
		assert_int_equal(fernet_decrypt(f, tok, len, T0, 60, out,
		    sizeof(out), &plen), FERNET_EPADDING);
	}
	/* Another version byte with a good HMAC. */
	len = forge(test_key, 0x81, T0, pt, 5, 1, tok);
	assert_int_equal(fernet_decrypt(f, tok, len, T0, 60, out,
	    sizeof(out), &plen), FERNET_EVERSION);
	/* The forger agrees with fernet.c on a good token. */
	memcpy(pt, "hello", 5);
	len = forge(test_key, 0x80, T0, pt, 5, 1, tok);
	assert_int_equal(fernet_decrypt(f, tok, len, T0, 60, out,
	    sizeof(out), &plen), FERNET_OK);
	assert_int_equal(plen, 5);
	assert_memory_equal(out, "hello", 5);
	fernet_free(f);
}

static void
test_clock(void **state)
{
	static const struct {
		uint64_t	 ts;
		uint64_t	 now;
		uint64_t	 ttl;
		int		 want;
	} cases[] = {
		{ 1000, 1000, 120, FERNET_OK },
		{ 1000, 1120, 120, FERNET_OK },		/* age == ttl */
		{ 1000, 1121, 120, FERNET_EEXPIRED },
		{ 1000, 1000000, 120, FERNET_EEXPIRED },
		{ 1000, 1000000, 0, FERNET_OK },	/* no TTL */
		{ 1060, 1000, 120, FERNET_OK },		/* 60 s ahead */
		{ 1061, 1000, 120, FERNET_EFUTURE },
		{ 1061, 1000, 0, FERNET_EFUTURE },
		{ 0, 0, 1, FERNET_OK },
		{ 0, UINT64_MAX, 0, FERNET_OK },
		{ 0, UINT64_MAX, UINT64_MAX, FERNET_OK },
		{ 0, UINT64_MAX, UINT64_MAX - 1, FERNET_EEXPIRED },
		{ UINT64_MAX, UINT64_MAX, 1, FERNET_OK },
		{ UINT64_MAX, 0, 1, FERNET_EFUTURE },
		{ UINT64_MAX, UINT64_MAX - 60, 1, FERNET_OK },
		{ UINT64_MAX, UINT64_MAX - 61, 1, FERNET_EFUTURE },
		{ 60, 0, 0, FERNET_OK },
	};
	struct fernet	*f;
	unsigned char	 out[64];
	char		 tok[256];
	size_t		 i, len, plen;

	f = new_from_text(test_key);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(fernet_encrypt(f, "tick", 4, cases[i].ts,
		    NULL, tok, sizeof(tok), &len), FERNET_OK);
		if (fernet_decrypt(f, tok, len, cases[i].now, cases[i].ttl,
		    out, sizeof(out), &plen) != cases[i].want)
			fail_msg("case %zu: want %s", i,
			    fernet_strerror(cases[i].want));
	}
	fernet_free(f);
}

static void
test_space(void **state)
{
	struct fernet	*f;
	unsigned char	 pt[100], out[128];
	char		 tok[512];
	size_t		 n, len, plen, cap;
	int		 rc;

	f = new_from_text(test_key);
	memset(pt, 'P', sizeof(pt));
	for (n = 0; n <= 40; n++) {
		/* Encrypt: one byte short fails, and writes nothing. */
		memset(tok, '#', sizeof(tok));
		assert_int_equal(fernet_encrypt(f, pt, n, T0, NULL, tok,
		    fernet_token_len(n) - 1, &len), FERNET_ESPACE);
		assert_int_equal(tok[0], '#');
		assert_int_equal(fernet_encrypt(f, pt, n, T0, NULL, tok,
		    fernet_token_len(n), &len), FERNET_OK);
		/* Decrypt: every buffer size from 0 to n - 1 fails. */
		for (cap = 0; cap < n; cap++) {
			memset(out, 0, sizeof(out));
			rc = fernet_decrypt(f, tok, len, T0, 60, out, cap,
			    &plen);
			assert_int_equal(rc, FERNET_ESPACE);
			assert_null(memchr(out, 'P', sizeof(out)));
		}
		assert_int_equal(fernet_decrypt(f, tok, len, T0, 60, out, n,
		    &plen), FERNET_OK);
		assert_int_equal(plen, n);
	}
	/* A huge plaintext length is refused before anything is read. */
	assert_int_equal(fernet_encrypt(f, pt, SIZE_MAX, T0, NULL, tok,
	    sizeof(tok), &len), FERNET_ESPACE);
	assert_int_equal(fernet_encrypt(f, pt, SIZE_MAX / 4, T0, NULL, tok,
	    sizeof(tok), &len), FERNET_ESPACE);
	fernet_free(f);
}

/* A megabyte each way, then one token under the wrong key. */
static void
test_big_and_wrong_key(void **state)
{
	struct fernet	*f, *g;
	unsigned char	*pt, *back, key[FERNET_KEY_LEN];
	char		*tok;
	size_t		 n = 1 << 20, len, plen;

	f = new_from_text(test_key);
	assert_int_equal(fernet_key_generate(key), 0);
	g = fernet_new(key);
	assert_non_null(g);
	pt = malloc(n);
	back = malloc(n);
	tok = malloc(fernet_token_len(n));
	assert_non_null(pt);
	assert_non_null(back);
	assert_non_null(tok);
	random_bytes(pt, n);
	assert_int_equal(fernet_encrypt(f, pt, n, T0, NULL, tok,
	    fernet_token_len(n), &len), FERNET_OK);
	assert_int_equal(fernet_decrypt(f, tok, len, T0, 0, back,
	    fernet_plain_max(len), &plen), FERNET_OK);
	assert_int_equal(plen, n);
	assert_memory_equal(pt, back, n);
	assert_int_equal(fernet_decrypt(g, tok, len, T0, 0, back,
	    fernet_plain_max(len), &plen), FERNET_EMAC);
	free(tok);
	free(back);
	free(pt);
	fernet_free(g);
	fernet_free(f);
}

/* Contexts are reused: interleave keys, sizes and directions. */
static void
test_reuse(void **state)
{
	struct fernet	*f[2];
	unsigned char	 key[FERNET_KEY_LEN], pt[300], out[300];
	char		 tok[2][600];
	size_t		 len[2], plen, n;
	int		 i, k;

	for (k = 0; k < 2; k++) {
		assert_int_equal(fernet_key_generate(key), 0);
		f[k] = fernet_new(key);
		assert_non_null(f[k]);
	}
	random_bytes(pt, sizeof(pt));
	for (i = 0; i < 3000; i++) {
		n = (size_t)(i * 37) % sizeof(pt);
		k = i & 1;
		assert_int_equal(fernet_encrypt(f[k], pt, n, T0 + i, NULL,
		    tok[k], sizeof(tok[k]), &len[k]), FERNET_OK);
		assert_int_equal(fernet_decrypt(f[k ^ 1], tok[k], len[k],
		    T0 + i, 60, out, sizeof(out), &plen), FERNET_EMAC);
		if (i % 3 == 0) {	/* a failure between successes */
			char	 c = tok[k][30];

			tok[k][30] = c == 'A' ? 'B' : 'A';
			assert_int_equal(fernet_decrypt(f[k], tok[k], len[k],
			    T0 + i, 60, out, sizeof(out), &plen),
			    FERNET_EMAC);
			tok[k][30] = c;
		}
		assert_int_equal(fernet_decrypt(f[k], tok[k], len[k], T0 + i,
		    60, out, sizeof(out), &plen), FERNET_OK);
		assert_int_equal(plen, n);
		assert_memory_equal(out, pt, n);
	}
	fernet_free(f[0]);
	fernet_free(f[1]);
	fernet_free(NULL);
}

/* A token inside a longer buffer: only tok[0..toklen) is read. */
static void
test_not_terminated(void **state)
{
	struct fernet	*f;
	unsigned char	 out[64];
	char		 tok[256];
	size_t		 len, plen;

	f = new_from_text(test_key);
	len = make_token(f, "edge", tok, sizeof(tok));
	memcpy(tok + len, "\nXYZ", 4);
	assert_int_equal(fernet_decrypt(f, tok, len, T0, 60, out,
	    sizeof(out), &plen), FERNET_OK);
	assert_int_equal(fernet_decrypt(f, tok, len + 1, T0, 60, out,
	    sizeof(out), &plen), FERNET_EBASE64);
	fernet_free(f);
}

static void
test_strerror(void **state)
{
	int		 e, k;
	const char	*s[12];

	for (e = 0; e >= FERNET_ECRYPTO; e--) {
		s[-e] = fernet_strerror(e);
		assert_non_null(s[-e]);
		assert_true(strlen(s[-e]) > 0 && strlen(s[-e]) < 60);
		for (k = 0; k < -e; k++)
			assert_string_not_equal(s[k], s[-e]);
	}
	assert_string_equal(fernet_strerror(-11), "unknown Fernet error");
	assert_string_equal(fernet_strerror(1), "unknown Fernet error");
}

/*
 * random_bytes: no two draws repeat, and a forked child never hands out
 * the bytes left in its parent's pool.
 */
static void
test_random(void **state)
{
	unsigned char	 a[32], b[32], big[4096], zero[4096] = { 0 };
	int		 fds[2], status;
	pid_t		 pid;

	random_bytes(a, 0);
	random_bytes(a, sizeof(a));
	random_bytes(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	random_bytes(big, sizeof(big));
	assert_memory_not_equal(big, zero, sizeof(big));

	random_bytes(a, 1);		/* the pool now holds bytes */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		random_bytes(b, sizeof(b));
		_exit(write(fds[1], b, sizeof(b)) == sizeof(b) ? 0 : 1);
	}
	random_bytes(a, sizeof(a));
	assert_int_equal(read(fds[0], b, sizeof(b)), sizeof(b));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(b, zero, sizeof(b));
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_generate),
		cmocka_unit_test(test_spec_verify),
		cmocka_unit_test(test_spec_invalid),
		cmocka_unit_test(test_key_roundtrip),
		cmocka_unit_test(test_key_hostile),
		cmocka_unit_test(test_key_generate),
		cmocka_unit_test(test_roundtrip_sizes),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bitflips),
		cmocka_unit_test(test_char_swaps),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_padding_games),
		cmocka_unit_test(test_forged),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_space),
		cmocka_unit_test(test_big_and_wrong_key),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_not_terminated),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests_name("fernet", tests, NULL, NULL);
}
