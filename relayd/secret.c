/*
 * secret.c: the secret code, its HEAD, and LOGIN proofs (relay(7)).
 * HEAD is the MD5 of the code's ASCII digits as 32 lowercase hex
 * characters; a PROOF is the lowercase hex HMAC-SHA256 keyed with the 32
 * ASCII characters of a password's MD5 hex, over the ASCII NONCE.  Both
 * are compared in constant time, since either is what an attacker would
 * like to guess a byte at a time.  Digests come from libcrypto EVP.
 */
#include <sys/types.h>

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "proto.h"

static int	 secret_md5(const void *, size_t, char *);
static void	 secret_hex(const unsigned char *, size_t, char *);
static int	 secret_is_hex(const char *, size_t);

static void
secret_hex(const unsigned char *p, size_t n, char *out)
{
	static const char	 digits[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/* Is s[0..n) lowercase hex?  Without branches on the characters. */
static int
secret_is_hex(const char *s, size_t n)
{
	unsigned int	 bad = 0, c, digit, letter;
	size_t		 i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		/* Each is 1 when c is in its range, by the borrow bit. */
		digit = ((c - '0') | ('9' - c)) >> 31 ^ 1;
		letter = ((c - 'a') | ('f' - c)) >> 31 ^ 1;
		bad |= (digit | letter) ^ 1;
	}
	return bad == 0;
}

static int
secret_md5(const void *p, size_t n, char *out)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;

	if (EVP_Digest(p, n, md, &mdlen, EVP_md5(), NULL) != 1 ||
	    mdlen != MD5_HEX_LEN / 2) {
		out[0] = '\0';
		return -1;
	}
	secret_hex(md, mdlen, out);
	explicit_bzero(md, sizeof(md));
	return 0;
}

/*
 * md5_hex: the MD5 of p[0..n) as 32 lowercase hex characters and a NUL.
 * Should libcrypto fail, out is the empty string, which matches no HEAD
 * or users-file hash, so a caller fails closed.
 */
void
md5_hex(const void *p, size_t n, char *out)
{
	(void)secret_md5(p, n, out);
}

/*
 * secret_head: the HEAD of a secret code, into out[33].  Returns 0, or -1
 * with *errstr set if code is not 4 to 18 ASCII digits.
 */
int
secret_head(const char *code, char *out, const char **errstr)
{
	size_t	 i, n;

	n = strnlen(code, SECRET_MAX + 1);
	for (i = 0; i < n; i++)
		if (code[i] < '0' || code[i] > '9')
			break;
	if (n < SECRET_MIN || n > SECRET_MAX || i != n) {
		if (errstr != NULL)
			*errstr = "secret code must be 4 to 18 digits";
		return -1;
	}
	if (secret_md5(code, n, out) == -1) {
		if (errstr != NULL)
			*errstr = "MD5 failed";
		return -1;
	}
	return 0;
}

/* 1 if the first HEAD_LEN bytes of a and b are equal, in constant time. */
int
secret_head_equal(const char *a, const char *b)
{
	return CRYPTO_memcmp(a, b, HEAD_LEN) == 0;
}

/*
 * login_proof: the PROOF for the password hash md5hex (32 lowercase hex
 * characters) and the NUL-terminated nonce, into out[65].  Returns 0, or
 * -1 if md5hex is malformed or libcrypto fails.
 */
int
login_proof(const char *md5hex, const char *nonce, char *out)
{
	unsigned char	 mac[EVP_MAX_MD_SIZE];
	size_t		 maclen;

	out[0] = '\0';
	if (strnlen(md5hex, MD5_HEX_LEN + 1) != MD5_HEX_LEN ||
	    !secret_is_hex(md5hex, MD5_HEX_LEN))
		return -1;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, md5hex,
	    MD5_HEX_LEN, (const unsigned char *)nonce, strlen(nonce), mac,
	    sizeof(mac), &maclen) == NULL || maclen != PROOF_LEN / 2) {
		explicit_bzero(mac, sizeof(mac));
		return -1;
	}
	secret_hex(mac, maclen, out);
	explicit_bzero(mac, sizeof(mac));
	return 0;
}

/*
 * login_proof_check: 1 if proof[0..prooflen) is the right PROOF for
 * md5hex and nonce, else 0.  A proof that is not exactly 64 lowercase hex
 * characters is wrong; the comparison itself takes constant time.
 */
int
login_proof_check(const char *md5hex, const char *nonce, const char *proof,
    size_t prooflen)
{
	char	 want[PROOF_LEN + 1];
	int	 ok;

	if (prooflen != PROOF_LEN || !secret_is_hex(proof, prooflen))
		return 0;
	if (login_proof(md5hex, nonce, want) == -1)
		return 0;
	ok = CRYPTO_memcmp(want, proof, PROOF_LEN) == 0;
	explicit_bzero(want, sizeof(want));
	return ok;
}
