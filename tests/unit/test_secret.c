/*
 * test_secret.c: secret.c.  HEADs of good codes and refusals of bad
 * ones, md5_hex against RFC 1321, LOGIN proofs against values computed
 * independently (Python's hmac), and proof checks that refuse every
 * near miss: each character changed, upper case, wrong lengths.
 */
#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

static const struct {
	const char	*code;
	const char	*head;
} good_codes[] = {
	{ "5678", "674f3c2c1a8a6f90461e8a66fb5550ba" },
	{ "0000", "4a7d1ed414474e4033ac29ccb8653d9b" },
	{ "1234", "81dc9bdb52d04dc20036dbd8313ed055" },
	{ "123456", "e10adc3949ba59abbe56e057f20f883e" },
	{ "000000000000000000", "3ea032bf79e8c116b05f4698d5a8e044" },
	{ "999999999999999999", "c220732ec07b22455c4761dcc7f924f9" },
};

static const char *bad_codes[] = {
	"", "1", "12", "123", "1234567890123456789",
	"12345678901234567890123456789012345678901234567890",
	"12a4", " 1234", "1234 ", "1234\n", "-1234", "+1234", "12.4",
	"0x1234", "1e10", "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94",
	"\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4", "1234\xff", "abcd", "12/4",
	"12:4",
};

static const struct {
	const char	*md5hex;
	const char	*nonce;
	const char	*proof;
} proofs[] = {
	{ "5ebe2294ecd0e0f08eab7690d2a6ee69",
	  "9f1c0e3a5b7d4e2f8a6c1b0d3e5f7a9c",
	  "097d9931e68563ddc259015e267523397758b88ab96da9c766abbe5f54cba59b" },
	{ "2ab96390c7dbe3439de74d0c9b0b1767",
	  "00000000000000000000000000000000",
	  "660ef7e2b4ee4bd1e372e7171488c9b77fb4036c0b3c02fe8babe73d3f27eae4" },
	{ "12841e4ba5e37d2fbfc78458c6714ade",
	  "ffffffffffffffffffffffffffffffff",
	  "a4327eb255a9db1d5968e2af7b5c660d41c4438ffb406f9b4b1fd802eb68e0bd" },
	{ "9dd4e461268c8034f5c8564e155c67a6", "",
	  "3a69ae662063fe1dfd4a99568dda406b06d8df7dd1552dced39397630a7a78a1" },
};

static void
test_head_good(void **state)
{
	char		 head[HEAD_LEN + 1];
	const char	*errstr;
	size_t		 i;

	for (i = 0; i < sizeof(good_codes) / sizeof(good_codes[0]); i++) {
		errstr = NULL;
		memset(head, 'x', sizeof(head));
		assert_int_equal(secret_head(good_codes[i].code, head,
		    &errstr), 0);
		assert_null(errstr);
		assert_string_equal(head, good_codes[i].head);
		assert_true(secret_head_equal(head, good_codes[i].head));
	}
}

static void
test_head_bad(void **state)
{
	char		 head[HEAD_LEN + 1];
	const char	*errstr;
	size_t		 i;

	for (i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
		errstr = NULL;
		if (secret_head(bad_codes[i], head, &errstr) != -1)
			fail_msg("code \"%s\" accepted", bad_codes[i]);
		assert_non_null(errstr);
		assert_string_equal(errstr,
		    "secret code must be 4 to 18 digits");
	}
	/* A NULL errstr is allowed. */
	assert_int_equal(secret_head("12", head, NULL), -1);
	assert_int_equal(secret_head("5678", head, NULL), 0);
}

static void
test_head_equal(void **state)
{
	const char	*h = "674f3c2c1a8a6f90461e8a66fb5550ba";
	char		 other[HEAD_LEN + 1];
	int		 i;

	assert_true(secret_head_equal(h, h));
	for (i = 0; i < HEAD_LEN; i++) {
		memcpy(other, h, sizeof(other));
		other[i] ^= 1;
		assert_false(secret_head_equal(h, other));
	}
	/* Only the first HEAD_LEN bytes count. */
	memcpy(other, h, sizeof(other));
	assert_true(secret_head_equal("674f3c2c1a8a6f90461e8a66fb5550baXX",
	    other));
}

static void
test_md5_hex(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} rfc1321[] = {
		{ "", "d41d8cd98f00b204e9800998ecf8427e" },
		{ "a", "0cc175b9c0f1b6a831c399e269772661" },
		{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
		{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
		{ "abcdefghijklmnopqrstuvwxyz",
		  "c3fcd3d76192e4007dfb496cca67e13b" },
		{ "1234567890123456789012345678901234567890123456789012345678"
		  "9012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a" },
	};
	char	 out[MD5_HEX_LEN + 1];
	size_t	 i;

	for (i = 0; i < sizeof(rfc1321) / sizeof(rfc1321[0]); i++) {
		md5_hex(rfc1321[i].in, strlen(rfc1321[i].in), out);
		assert_string_equal(out, rfc1321[i].out);
	}
	/* Binary input: the NUL is hashed, not a terminator. */
	md5_hex("a\0b", 3, out);
	assert_string_not_equal(out, "0cc175b9c0f1b6a831c399e269772661");
	assert_int_equal(strlen(out), MD5_HEX_LEN);
}

static void
test_proof_vectors(void **state)
{
	char	 out[PROOF_LEN + 1];
	size_t	 i;

	for (i = 0; i < sizeof(proofs) / sizeof(proofs[0]); i++) {
		assert_int_equal(login_proof(proofs[i].md5hex, proofs[i].nonce,
		    out), 0);
		assert_string_equal(out, proofs[i].proof);
		assert_int_equal(login_proof_check(proofs[i].md5hex,
		    proofs[i].nonce, proofs[i].proof, PROOF_LEN), 1);
	}
}

static void
test_proof_bad_md5(void **state)
{
	static const char *bad[] = {
		"", "5ebe2294ecd0e0f08eab7690d2a6ee6",
		"5ebe2294ecd0e0f08eab7690d2a6ee699",
		"5EBE2294ECD0E0F08EAB7690D2A6EE69",
		"5ebe2294ecd0e0f08eab7690d2a6ee6g",
		"5ebe2294ecd0e0f08eab7690d2a6ee6 ",
		"5ebe2294ecd0e0f08eab7690d2a6ee6\n",
	};
	char	 out[PROOF_LEN + 1];
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(login_proof(bad[i], proofs[0].nonce, out), -1);
		assert_string_equal(out, "");
		assert_int_equal(login_proof_check(bad[i], proofs[0].nonce,
		    proofs[0].proof, PROOF_LEN), 0);
	}
}

static void
test_proof_near_misses(void **state)
{
	const char	*m = proofs[0].md5hex, *n = proofs[0].nonce;
	char		 p[PROOF_LEN + 2];
	int		 i, k;
	static const char	 hex[] = "0123456789abcdef";

	/* Every character changed to every other hex digit. */
	for (i = 0; i < PROOF_LEN; i++) {
		for (k = 0; k < 16; k++) {
			memcpy(p, proofs[0].proof, PROOF_LEN + 1);
			if (p[i] == hex[k])
				continue;
			p[i] = hex[k];
			assert_int_equal(login_proof_check(m, n, p, PROOF_LEN),
			    0);
		}
	}
	/* Upper case, any non-hex character, and every wrong length. */
	memcpy(p, proofs[0].proof, PROOF_LEN + 1);
	for (i = 0; i < PROOF_LEN; i++)
		if (p[i] >= 'a' && p[i] <= 'f')
			p[i] -= 'a' - 'A';
	assert_int_equal(login_proof_check(m, n, p, PROOF_LEN), 0);
	for (k = 0; k < 256; k++) {
		if (strchr(hex, k) != NULL && k != 0)
			continue;
		memcpy(p, proofs[0].proof, PROOF_LEN + 1);
		p[17] = (char)k;
		assert_int_equal(login_proof_check(m, n, p, PROOF_LEN), 0);
	}
	memcpy(p, proofs[0].proof, PROOF_LEN + 1);
	p[PROOF_LEN] = '0';
	p[PROOF_LEN + 1] = '\0';
	for (i = 0; i <= PROOF_LEN + 1; i++)
		if (i != PROOF_LEN)
			assert_int_equal(login_proof_check(m, n, p,
			    (size_t)i), 0);
	assert_int_equal(login_proof_check(m, n, p, PROOF_LEN), 1);
	assert_int_equal(login_proof_check(m, n, p, SIZE_MAX), 0);
	/* Another nonce or another hash. */
	assert_int_equal(login_proof_check(m, proofs[1].nonce,
	    proofs[0].proof, PROOF_LEN), 0);
	assert_int_equal(login_proof_check(proofs[1].md5hex, n,
	    proofs[0].proof, PROOF_LEN), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_good),
		cmocka_unit_test(test_head_bad),
		cmocka_unit_test(test_head_equal),
		cmocka_unit_test(test_md5_hex),
		cmocka_unit_test(test_proof_vectors),
		cmocka_unit_test(test_proof_bad_md5),
		cmocka_unit_test(test_proof_near_misses),
	};

	return cmocka_run_group_tests_name("secret", tests, NULL, NULL);
}
