/*
 * test_proto.c: the plaintext codec.  Tables of plaintexts for the split
 * (the validity checks' view: HEAD, SEQ) and for the verb (malformed
 * plaintexts, UTF-8 and NUL included), fields, the validators, strict
 * UTF-8, and proto_format() at the buffer's limit.
 */
#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

#define H	"674f3c2c1a8a6f90461e8a66fb5550ba"
#define S(x)	(x), sizeof(x) - 1

static const struct split_case {
	const char	*in;
	size_t		 len;
	int		 ok;
	uint64_t	 seq;
	const char	*rest;
} split_cases[] = {
	{ S(H " 1 HELLO relay/1"), 1, 1, "HELLO relay/1" },
	{ S(H " 42 READ"), 1, 42, "READ" },
	{ S(H " 9999999999999999999 X"), 1, 9999999999999999999ULL, "X" },
	{ S(H " 1"), 1, 1, "" },		/* ERR NONE malformed later */
	{ S(H " 1 "), 1, 1, "" },
	{ S(H " 1  X"), 1, 1, " X" },		/* proto_verb refuses */
	{ S(H " 12 \xff"), 1, 12, "\xff" },	/* proto_verb refuses */
	{ S(H " 01 X"), 0, 0, NULL },
	{ S(H " 00 X"), 0, 0, NULL },
	{ S(H " 0 X"), 0, 0, NULL },
	{ S(H " 10000000000000000000 X"), 0, 0, NULL },	/* 20 digits */
	{ S(H " 18446744073709551615 X"), 0, 0, NULL },
	{ S(H " 18446744073709551616 X"), 0, 0, NULL },
	{ S(H " 99999999999999999999999 X"), 0, 0, NULL },
	{ S(H "  1 X"), 0, 0, NULL },
	{ S(H " 1a X"), 0, 0, NULL },
	{ S(H " -1 X"), 0, 0, NULL },
	{ S(H " +1 X"), 0, 0, NULL },
	{ S(H " 1\tX"), 0, 0, NULL },
	{ S(H " 1\0X"), 0, 0, NULL },
	{ S(H " X"), 0, 0, NULL },
	{ S(H " "), 0, 0, NULL },
	{ S(H), 0, 0, NULL },
	{ S(H "1 1 X"), 0, 0, NULL },		/* 33-byte head */
	{ S("674f3c2c1a8a6f90461e8a66fb5550b 1 X"), 0, 0, NULL },
	{ S(""), 0, 0, NULL },
};

static void
test_split(void **state)
{
	const struct split_case	*c;
	struct proto_msg	 m;
	size_t			 i;

	for (i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		c = &split_cases[i];
		if (proto_split(c->in, c->len, &m) != (c->ok ? 0 : -1))
			fail_msg("split case %zu: %s", i, c->in);
		if (!c->ok)
			continue;
		assert_ptr_equal(m.head, c->in);
		assert_true(m.seq == c->seq);
		assert_int_equal(m.restlen, strlen(c->rest));
		assert_memory_equal(m.rest, c->rest, m.restlen);
		assert_ptr_equal(m.rest + m.restlen, c->in + c->len);
	}
}

static const struct verb_case {
	const char	*rest;
	size_t		 len;
	int		 ok;
	const char	*verb;
	const char	*args;		/* NULL: none */
	size_t		 argslen;
} verb_cases[] = {
	{ S("HELLO relay/1"), 1, "HELLO", S("relay/1") },
	{ S("READ"), 1, "READ", NULL, 0 },
	{ S("A"), 1, "A", NULL, 0 },
	{ S("ABCDEFGHIJKLMNOP"), 1, "ABCDEFGHIJKLMNOP", NULL, 0 },
	{ S("ABCDEFGHIJKLMNOP x"), 1, "ABCDEFGHIJKLMNOP", S("x") },
	{ S("SAY  two spaces"), 1, "SAY", S(" two spaces") },
	{ S("SAY line\nline"), 1, "SAY", S("line\nline") },
	{ S("SAY caf\xc3\xa9 \xf0\x9f\x98\x80"), 1, "SAY",
	    S("caf\xc3\xa9 \xf0\x9f\x98\x80") },
	{ S("NOSUCHVERB x"), 1, "NOSUCHVERB", S("x") },
	{ S("ABCDEFGHIJKLMNOPQ"), 0, NULL, NULL, 0 },	/* 17 letters */
	{ S("ABCDEFGHIJKLMNOPQ x"), 0, NULL, NULL, 0 },
	/* "VERB SP" and nothing: a VERB with empty ARGS (bad arguments). */
	{ S("READ "), 1, "READ", S("") },
	{ S("SAY "), 1, "SAY", S("") },
	{ S("hello relay/1"), 0, NULL, NULL, 0 },
	{ S("Hello"), 0, NULL, NULL, 0 },
	{ S("HELLo"), 0, NULL, NULL, 0 },
	{ S("SAY\tx"), 0, NULL, NULL, 0 },
	{ S("SAY1"), 0, NULL, NULL, 0 },
	{ S("1SAY"), 0, NULL, NULL, 0 },
	{ S(" SAY x"), 0, NULL, NULL, 0 },
	{ S("\xc3\x89T\xc3\x89"), 0, NULL, NULL, 0 },
	{ S(""), 0, NULL, NULL, 0 },
	/* NUL is UTF-8: the BODY validator refuses it (bad arguments). */
	{ S("SAY a\0b"), 1, "SAY", S("a\0b") },
	{ S("SAY \0"), 1, "SAY", S("\0") },
	{ S("SAY\0"), 0, NULL, NULL, 0 },
	{ S("\0SAY"), 0, NULL, NULL, 0 },
	{ S("SAY \xc0\xaf"), 0, NULL, NULL, 0 },	/* overlong '/' */
	{ S("SAY \xe0\x80\xaf"), 0, NULL, NULL, 0 },
	{ S("SAY \xed\xa0\x80"), 0, NULL, NULL, 0 },	/* surrogate */
	{ S("SAY \xf4\x90\x80\x80"), 0, NULL, NULL, 0 },	/* > U+10FFFF */
	{ S("SAY \xe2\x82"), 0, NULL, NULL, 0 },	/* truncated */
	{ S("SAY \xff"), 0, NULL, NULL, 0 },
};

static void
test_verb(void **state)
{
	const struct verb_case	*c;
	struct proto_msg	 m;
	char			 plain[256];
	size_t			 i, n;

	for (i = 0; i < sizeof(verb_cases) / sizeof(verb_cases[0]); i++) {
		c = &verb_cases[i];
		memcpy(plain, H " 7 ", 35);
		memcpy(plain + 35, c->rest, c->len);
		n = 35 + c->len;
		assert_int_equal(proto_split(plain, n, &m), 0);
		assert_int_equal(m.seq, 7);
		if (proto_verb(&m) != (c->ok ? 0 : -1))
			fail_msg("verb case %zu: %s", i, c->rest);
		if (!c->ok)
			continue;
		assert_string_equal(m.verb, c->verb);
		if (c->args == NULL) {
			assert_null(m.args);
			assert_int_equal(m.argslen, 0);
		} else {
			assert_non_null(m.args);
			assert_int_equal(m.argslen, c->argslen);
			assert_memory_equal(m.args, c->args, c->argslen);
		}
	}

	/* A HEAD that is not UTF-8 makes the plaintext malformed too. */
	memcpy(plain, H " 1 READ", 39);
	plain[5] = (char)0xc3;
	assert_int_equal(proto_split(plain, 39, &m), 0);
	assert_int_equal(proto_verb(&m), -1);
	assert_int_equal(proto_split(S(H " 1 SAY \xc3"), &m), 0);
	assert_int_equal(proto_verb(&m), -1);

	/* A NUL in ARGS passes the verb and fails the field's validator. */
	assert_int_equal(proto_split(S(H " 1 SAY a\0"), &m), 0);
	assert_int_equal(proto_verb(&m), 0);
	assert_int_equal(m.argslen, 2);
	assert_int_equal(proto_valid_body(m.args, m.argslen, 100), 0);

	/* "HEAD SEQ" alone: split, then malformed. */
	assert_int_equal(proto_split(H " 3", 34, &m), 0);
	assert_int_equal(proto_verb(&m), -1);
	assert_string_equal(m.verb, "");
}

static void
test_field(void **state)
{
	static const struct {
		const char	*in;
		const char	*fields[4];	/* then -1 */
	} fc[] = {
		{ "a b c", { "a", "b", "c" } },
		{ "alice 3b9a", { "alice", "3b9a" } },
		{ "abc", { "abc" } },
		{ "a  b", { "a" } },
		{ " a", { NULL } },
		{ "a ", { NULL } },
		{ "a b ", { "a" } },
		{ "", { NULL } },
		{ " ", { NULL } },
	};
	const char	*p, *f;
	size_t		 i, j, len, flen;

	for (i = 0; i < sizeof(fc) / sizeof(fc[0]); i++) {
		p = fc[i].in;
		len = strlen(p);
		for (j = 0; j < 4 && fc[i].fields[j] != NULL; j++) {
			if (proto_field(&p, &len, &f, &flen) != 0)
				fail_msg("field case %zu/%zu", i, j);
			assert_int_equal(flen, strlen(fc[i].fields[j]));
			assert_memory_equal(f, fc[i].fields[j], flen);
		}
		if (proto_field(&p, &len, &f, &flen) != -1)
			fail_msg("field case %zu: expected the end", i);
	}

	/* The last field may be taken whole as a BODY with spaces. */
	p = "bob hi  there ";
	len = strlen(p);
	assert_int_equal(proto_field(&p, &len, &f, &flen), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(p, "hi  there ", 10);
}

static char *
rep(char c, size_t n)
{
	static char	 s[70000];

	assert_true(n < sizeof(s));
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
test_validators(void **state)
{
	static const struct {
		const char	*s;
		int		 user, id;
	} vc[] = {
		{ "a", 1, 1 },
		{ "_", 1, 1 },
		{ "0", 1, 1 },
		{ "a.b-c_d9", 1, 1 },
		{ ".a", 0, 1 },
		{ "-a", 0, 1 },
		{ "A", 0, 1 },
		{ "alice.Smith", 0, 1 },
		{ "1732590000.4411.1", 1, 1 },
		{ "a b", 0, 0 },
		{ "a/b", 0, 0 },
		{ "a:b", 0, 0 },
		{ "caf\xc3\xa9", 0, 0 },
		{ "", 0, 0 },
	};
	size_t	 i, len;

	for (i = 0; i < sizeof(vc) / sizeof(vc[0]); i++) {
		len = strlen(vc[i].s);
		if (proto_valid_user(vc[i].s, len) != vc[i].user)
			fail_msg("user '%s'", vc[i].s);
		if (proto_valid_id(vc[i].s, len) != vc[i].id)
			fail_msg("id '%s'", vc[i].s);
		if (proto_valid_token(vc[i].s, len) != vc[i].id)
			fail_msg("token '%s'", vc[i].s);
	}
	assert_int_equal(proto_valid_user("a\0", 2), 0);
	assert_int_equal(proto_valid_id("a\0", 2), 0);
	assert_int_equal(proto_valid_user(rep('u', 32), 32), 1);
	assert_int_equal(proto_valid_user(rep('u', 33), 33), 0);
	assert_int_equal(proto_valid_id(rep('I', 64), 64), 1);
	assert_int_equal(proto_valid_id(rep('I', 65), 65), 0);
	assert_int_equal(proto_valid_token(rep('t', 64), 64), 1);
	assert_int_equal(proto_valid_token(rep('t', 65), 65), 0);

	assert_int_equal(proto_valid_body("x", 1, 1), 1);
	assert_int_equal(proto_valid_body("xy", 2, 1), 0);
	assert_int_equal(proto_valid_body("", 0, 10), 0);
	assert_int_equal(proto_valid_body("a\nb c", 5, 10), 1);
	assert_int_equal(proto_valid_body(" ", 1, 10), 1);
	assert_int_equal(proto_valid_body("a\0b", 3, 10), 0);
	assert_int_equal(proto_valid_body("\xc0\x80", 2, 10), 0);
	assert_int_equal(proto_valid_body("\xed\xbf\xbf", 3, 10), 0);
	assert_int_equal(proto_valid_body(rep('b', BODY_MAX_DEFAULT),
	    BODY_MAX_DEFAULT, BODY_MAX_DEFAULT), 1);
	assert_int_equal(proto_valid_body(rep('b', BODY_MAX_DEFAULT + 1),
	    BODY_MAX_DEFAULT + 1, BODY_MAX_DEFAULT), 0);

	assert_int_equal(proto_valid_nonce(S(
	    "9f1c0e3a5b7d4e2f8a6c1b0d3e5f7a9c")), 1);
	assert_int_equal(proto_valid_nonce(S(
	    "9F1C0E3A5B7D4E2F8A6C1B0D3E5F7A9C")), 0);
	assert_int_equal(proto_valid_nonce(S(
	    "9f1c0e3a5b7d4e2f8a6c1b0d3e5f7a9")), 0);
	assert_int_equal(proto_valid_nonce(S(
	    "9f1c0e3a5b7d4e2f8a6c1b0d3e5f7a9c0")), 0);
	assert_int_equal(proto_valid_nonce(S(
	    "9f1c0e3a5b7d4e2f8a6c1b0d3e5f7a9g")), 0);
	assert_int_equal(proto_valid_nonce(S(
	    "9f1c0e3a5b7d4e2f8a6c1b0d3e5f7a9 ")), 0);
	assert_int_equal(proto_valid_nonce("", 0), 0);
}

static void
test_utf8(void **state)
{
	static const struct {
		const char	*s;
		size_t		 len;
		int		 ok;
	} uc[] = {
		{ S(""), 1 },
		{ S("plain ascii\n"), 1 },
		{ S("\0"), 1 },			/* NUL is UTF-8; callers refuse */
		{ S("\x7f"), 1 },
		{ S("\xc2\x80"), 1 },		/* U+0080 */
		{ S("\xdf\xbf"), 1 },		/* U+07FF */
		{ S("\xe0\xa0\x80"), 1 },	/* U+0800 */
		{ S("\xed\x9f\xbf"), 1 },	/* U+D7FF */
		{ S("\xee\x80\x80"), 1 },	/* U+E000 */
		{ S("\xef\xbf\xbf"), 1 },	/* U+FFFF */
		{ S("\xf0\x90\x80\x80"), 1 },	/* U+10000 */
		{ S("\xf4\x8f\xbf\xbf"), 1 },	/* U+10FFFF */
		{ S("\x80"), 0 },		/* lone continuation */
		{ S("\xbf"), 0 },
		{ S("\xc0\x80"), 0 },		/* overlong NUL */
		{ S("\xc1\xbf"), 0 },		/* overlong */
		{ S("\xe0\x80\x80"), 0 },
		{ S("\xe0\x9f\xbf"), 0 },
		{ S("\xf0\x80\x80\x80"), 0 },
		{ S("\xf0\x8f\xbf\xbf"), 0 },
		{ S("\xed\xa0\x80"), 0 },	/* U+D800 */
		{ S("\xed\xbf\xbf"), 0 },	/* U+DFFF */
		{ S("\xf4\x90\x80\x80"), 0 },	/* U+110000 */
		{ S("\xf5\x80\x80\x80"), 0 },
		{ S("\xf8\x88\x80\x80\x80"), 0 },
		{ S("\xfe"), 0 },
		{ S("\xff"), 0 },
		{ S("\xc2"), 0 },		/* truncated */
		{ S("\xe2\x82"), 0 },
		{ S("\xf0\x9f\x98"), 0 },
		{ S("\xc2\x41"), 0 },		/* bad continuation */
		{ S("\xe2\x82\x41"), 0 },
		{ S("\xf0\x9f\x98\xc0"), 0 },
		{ S("ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80ok"), 1 },
		{ S("ok\xc3\xa9\xe2\x82"), 0 },
	};
	size_t	 i;

	for (i = 0; i < sizeof(uc) / sizeof(uc[0]); i++)
		if (utf8_valid(uc[i].s, uc[i].len) != uc[i].ok)
			fail_msg("utf8 case %zu", i);
}

static void
test_format(void **state)
{
	struct buf	 b;
	char		*body, want[128];
	size_t		 n, total;

	buf_init(&b, 1024);
	assert_int_equal(buf_add(&b, "keep", 4), 0);
	assert_int_equal(proto_format(&b, H, 6, "OK %s", "SAY"), 0);
	assert_int_equal(buf_len(&b), 4 + 32 + 3 + 6);
	assert_memory_equal(buf_data(&b), "keep" H " 6 OK SAY", 45);
	buf_reset(&b);
	assert_int_equal(proto_format(&b, H, UINT64_MAX, "PONG"), 0);
	n = (size_t)snprintf(want, sizeof(want), H " %" PRIu64 " PONG",
	    UINT64_MAX);
	assert_int_equal(buf_len(&b), n);
	assert_memory_equal(buf_data(&b), want, n);
	buf_reset(&b);
	errno = 0;
	assert_int_equal(proto_format(&b, "short\0", 1, "X"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);

	/*
	 * A full-size body ending exactly at max (no room for vsnprintf's
	 * NUL: the scratch path), then one byte over.
	 */
	body = malloc(BODY_MAX_DEFAULT + 1);
	assert_non_null(body);
	memset(body, 'w', BODY_MAX_DEFAULT);
	body[BODY_MAX_DEFAULT] = '\0';
	total = 32 + 3 + 4 + BODY_MAX_DEFAULT;	/* "H 1 SAY BODY" */
	buf_init(&b, total);
	assert_int_equal(proto_format(&b, H, 1, "SAY %s", body), 0);
	assert_int_equal(buf_len(&b), total);
	assert_memory_equal(buf_data(&b), H " 1 SAY www", 42);
	assert_int_equal(buf_data(&b)[total - 1], 'w');
	buf_drain(&b, 1);
	errno = 0;
	assert_int_equal(proto_format(&b, H, 1, "SAY %s", body), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(&b), total - 1);
	buf_reset(&b);
	/* One byte short of max: straight into the buffer. */
	assert_int_equal(proto_format(&b, H, 1, "SAY %.*s",
	    BODY_MAX_DEFAULT - 1, body), 0);
	assert_int_equal(proto_format(&b, H, 1, "%s", ""), -1);
	assert_int_equal(buf_len(&b), total - 1);
	buf_reset(&b);
	assert_int_equal(proto_format(&b, H, 9, "SAY %.*s",
	    BODY_MAX_DEFAULT, body), 0);
	assert_int_equal(buf_len(&b), total);
	buf_reset(&b);
	assert_int_equal(proto_format(&b, H, 10, "SAY %.*s",
	    BODY_MAX_DEFAULT, body), -1);	/* SEQ 10: one byte more */
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_verb),
		cmocka_unit_test(test_field),
		cmocka_unit_test(test_validators),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
