/*
 * fernet.c: Fernet tokens (spec version 0x80) on libcrypto EVP, and the
 * process's source of random bytes.  It owns the key's text form (44
 * characters of canonical URL-safe base64), one struct fernet per key with
 * contexts keyed once and reused for every token, the strict base64 codec
 * the tokens use, and random_bytes() with its small per-thread pool.
 *
 * A token is base64url(0x80 | time (8, big-endian) | IV (16) |
 * AES-128-CBC(PKCS#7(plaintext)) | HMAC-SHA256 of all before it (32)).
 * The first half of the 32-byte key signs, the second half encrypts.
 *
 * Decryption checks, in this order, each with its own error: canonical
 * base64, length, version byte, the HMAC (in constant time, before any
 * byte is decrypted), the timestamp, then the padding.  Only a token that
 * passes the HMAC can reach the timestamp and padding checks, so those
 * answers tell nothing to whoever lacks the key.
 */
#include <sys/types.h>
#include <sys/random.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "proto.h"

#define FERNET_VERSION	0x80
#define TS_LEN		8
#define IV_LEN		16
#define BLOCK_LEN	16
#define MAC_LEN		32
#define HALF_KEY_LEN	(FERNET_KEY_LEN / 2)
#define HDR_LEN		(1 + TS_LEN + IV_LEN)		/* 25 */
#define RAW_MIN		(HDR_LEN + BLOCK_LEN + MAC_LEN)	/* 73 */
#define CT_ENOUGH(raw)	((raw) >= RAW_MIN && \
			    ((raw) - FERNET_OVERHEAD) % BLOCK_LEN == 0)
#define EVP_CHUNK	(1 << 30)	/* EVP lengths are int */

#if FERNET_OVERHEAD != HDR_LEN + MAC_LEN
#error "FERNET_OVERHEAD does not match the token layout"
#endif

/*
 * Reuse is the point of this struct: the HMAC context is keyed once and
 * only re-initialised per token, and each cipher context keeps its AES
 * key schedule while only the IV changes.  The key itself is not kept
 * anywhere else; freeing the contexts wipes their copies of it.
 */
struct fernet {
	EVP_MAC		*mac;
	EVP_MAC_CTX	*hmac;
	EVP_CIPHER	*aes;
	EVP_CIPHER_CTX	*enc;		/* PKCS#7 padding by libcrypto */
	EVP_CIPHER_CTX	*dec;		/* no padding: checked here */
};

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of each URL-safe base64 character; 0xff for anything else. */
static const unsigned char b64_value[256] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b,
	0x3c, 0x3d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
	0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0x3f,
	0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
	0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30,
	0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

static int	 b64_check(const char *, size_t, size_t *);
static void	 b64_group(const char *, unsigned char *);
static void	 b64_span(const char *, size_t, size_t, unsigned char *);
static void	 b64_encode(const unsigned char *, size_t, char *);
static int	 b64_ct_value(int);
static char	 b64_ct_char(int);
static int	 fernet_update(EVP_CIPHER_CTX *, unsigned char *,
		    const unsigned char *, size_t);
static int	 fernet_unpad(const unsigned char *, size_t *);
static int	 fernet_new_hmac(struct fernet *, const unsigned char *);
static int	 fernet_new_aes(struct fernet *);
static int	 random_fill(void *, size_t);
static void	 random_pool_wipe(void);
static void	 random_pool_setup(void);

/*
 * b64_check: is s[0..n) canonical padded URL-safe base64?  That is: a
 * multiple of 4 characters, all from the URL-safe alphabet but for one or
 * two '=' at the very end, and zero bits where padding leaves some unused
 * (so every byte string has exactly one accepted text).  On success sets
 * *rawlen to the decoded length.
 */
static int
b64_check(const char *s, size_t n, size_t *rawlen)
{
	unsigned char	 acc = 0, last;
	size_t		 i, pad = 0;

	if (n % 4 != 0)
		return -1;
	if (n == 0) {
		*rawlen = 0;
		return 0;
	}
	if (s[n - 1] == '=') {
		pad = 1;
		if (s[n - 2] == '=')
			pad = 2;
	}
	for (i = 0; i < n - pad; i++)
		acc |= b64_value[(unsigned char)s[i]];
	if (acc & 0x80)
		return -1;
	last = b64_value[(unsigned char)s[n - pad - 1]];
	if ((pad == 1 && (last & 0x03) != 0) ||
	    (pad == 2 && (last & 0x0f) != 0))
		return -1;
	*rawlen = n / 4 * 3 - pad;
	return 0;
}

/* Four checked characters to three bytes ('=' decodes to junk bits). */
static void
b64_group(const char *s, unsigned char *d)
{
	uint32_t	 v;

	v = (uint32_t)(b64_value[(unsigned char)s[0]] & 0x3f) << 18 |
	    (uint32_t)(b64_value[(unsigned char)s[1]] & 0x3f) << 12 |
	    (uint32_t)(b64_value[(unsigned char)s[2]] & 0x3f) << 6 |
	    (uint32_t)(b64_value[(unsigned char)s[3]] & 0x3f);
	d[0] = v >> 16;
	d[1] = v >> 8;
	d[2] = v;
}

/*
 * b64_span: decode bytes off..off+len of text already passed by
 * b64_check(), straight from the text, so that no copy of the whole token
 * is needed.  The bytes must lie within the decoded length.
 */
static void
b64_span(const char *s, size_t off, size_t len, unsigned char *dst)
{
	unsigned char	 g[3];
	size_t		 skip, n;

	s += off / 3 * 4;
	skip = off % 3;
	if (skip != 0 && len > 0) {
		b64_group(s, g);
		s += 4;
		n = 3 - skip;
		if (n > len)
			n = len;
		memcpy(dst, g + skip, n);
		dst += n;
		len -= n;
	}
	for (; len >= 3; len -= 3, s += 4, dst += 3)
		b64_group(s, dst);
	if (len > 0) {
		b64_group(s, g);
		memcpy(dst, g, len);
	}
}

/*
 * b64_encode: padded URL-safe base64 of in[0..n) into out.  The input may
 * sit inside the output buffer, as long as it ends where the text ends
 * (fernet_encrypt() builds the raw token at the tail of its output): the
 * text of group k, written after the group is read, ends at 4k + 4, and
 * the next unread byte is at toklen - n + 3k + 3, which is never before
 * it because toklen - n >= the number of groups.
 */
static void
b64_encode(const unsigned char *in, size_t n, char *out)
{
	uint32_t	 v;

	for (; n >= 3; n -= 3, in += 3, out += 4) {
		v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
		out[0] = b64_alphabet[v >> 18];
		out[1] = b64_alphabet[(v >> 12) & 0x3f];
		out[2] = b64_alphabet[(v >> 6) & 0x3f];
		out[3] = b64_alphabet[v & 0x3f];
	}
	if (n == 0)
		return;
	v = (uint32_t)in[0] << 16;
	if (n == 2)
		v |= (uint32_t)in[1] << 8;
	out[0] = b64_alphabet[v >> 18];
	out[1] = b64_alphabet[(v >> 12) & 0x3f];
	out[2] = n == 2 ? b64_alphabet[(v >> 6) & 0x3f] : '=';
	out[3] = '=';
}

/*
 * The key's characters are decoded and encoded with arithmetic instead of
 * table look-ups, so that the time taken does not depend on the key's
 * bytes through the cache.  (in_range is -1 when lo <= c <= hi, else 0.)
 */
#define in_range(c, lo, hi)	((((lo) - 1 - (c)) & ((c) - ((hi) + 1))) >> 8)

static int
b64_ct_value(int c)
{
	int	 v = -1;

	v += in_range(c, 'A', 'Z') & (c - 'A' + 1);
	v += in_range(c, 'a', 'z') & (c - 'a' + 27);
	v += in_range(c, '0', '9') & (c - '0' + 53);
	v += in_range(c, '-', '-') & 63;
	v += in_range(c, '_', '_') & 64;
	return v;		/* -1 if c is not in the alphabet */
}

static char
b64_ct_char(int v)
{
	int	 c = 'A' + v;

	/* The ranges are disjoint: each adds its offset from 'A' + v. */
	c += in_range(v, 26, 51) & ('a' - 26 - 'A');
	c += in_range(v, 52, 61) & ('0' - 52 - 'A');
	c += in_range(v, 62, 62) & ('-' - 62 - 'A');
	c += in_range(v, 63, 63) & ('_' - 63 - 'A');
	return c;
}

/*
 * fernet_key_parse: s[0..len) must be exactly 44 characters of canonical
 * URL-safe base64 ending in one '=' (no line ending, no spaces).  Returns
 * 0 and the 32 raw bytes in key, or -1.
 */
int
fernet_key_parse(const char *s, size_t len, unsigned char *key)
{
	unsigned char	 raw[33];
	uint32_t	 v;
	int		 bad = 0, c, i, j, x;

	if (len != FERNET_KEY_B64LEN || s[len - 1] != '=')
		return -1;
	for (i = 0, j = 0; i < 44; i += 4, j += 3) {
		v = 0;
		for (c = 0; c < 4; c++) {
			x = i + c == 43 ? 0 :
			    b64_ct_value((unsigned char)s[i + c]);
			bad |= x & ~0x3f;	/* non-zero only for -1 */
			v = v << 6 | (uint32_t)(x & 0x3f);
		}
		raw[j] = v >> 16;
		raw[j + 1] = v >> 8;
		raw[j + 2] = v;		/* raw[32] is the '=' group's junk */
	}
	/* 32 bytes use 256 of the 258 bits in 43 characters. */
	bad |= b64_ct_value((unsigned char)s[42]) & 0x03;
	if (bad != 0) {
		explicit_bzero(raw, sizeof(raw));
		return -1;
	}
	memcpy(key, raw, FERNET_KEY_LEN);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* fernet_key_format: the key's 44 characters and a NUL into out[45]. */
void
fernet_key_format(const unsigned char *key, char *out)
{
	uint32_t	 v;
	int		 i, j;

	for (i = 0, j = 0; i < FERNET_KEY_LEN; i += 3, j += 4) {
		v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8;
		if (i + 2 < FERNET_KEY_LEN)
			v |= key[i + 2];
		out[j] = b64_ct_char(v >> 18);
		out[j + 1] = b64_ct_char((v >> 12) & 0x3f);
		out[j + 2] = b64_ct_char((v >> 6) & 0x3f);
		out[j + 3] = b64_ct_char(v & 0x3f);
	}
	out[43] = '=';
	out[44] = '\0';
}

/* A new key straight from the kernel's CSPRNG (not the pool): 0 or -1. */
int
fernet_key_generate(unsigned char *key)
{
	return random_fill(key, FERNET_KEY_LEN);
}

/*
 * What fernet_init() fetched: the algorithms, and an HMAC context with
 * its digest set and keyed with zeros, which fernet_new() duplicates and
 * re-keys so that it never asks libcrypto to look up a name.
 */
static struct {
	EVP_MAC		*mac;
	EVP_MAC_CTX	*hmac;
	EVP_CIPHER	*aes;
	struct fernet	*spare;	/* whole, under a zero key */
} fernet_pre;

/*
 * fernet_init: fetches the algorithms once, for every later fernet_new()
 * of this process and of the processes it forks, and tells libcrypto not
 * to clean up at exit(3).  For a daemon that forks a process per client:
 * a fetch fills libcrypto's tables of algorithms (millions of
 * instructions, and pages of heap that each child would copy), and the
 * cleanup frees them all again (and so touches every page); a child that
 * ends with exit(3) does neither.  It must come before any other libcrypto
 * call, or the exit handler is already in.  Not thread-safe: call it
 * once, early.  Returns 0, or -1 if libcrypto fails.
 */
int
fernet_init(void)
{
	OSSL_PARAM	 params[2];
	unsigned char	 zero[FERNET_KEY_LEN];
	char		 digest[] = "SHA256";

	if (fernet_pre.aes != NULL)
		return 0;
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) != 1)
		return -1;
	memset(zero, 0, sizeof(zero));
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((fernet_pre.mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (fernet_pre.hmac = EVP_MAC_CTX_new(fernet_pre.mac)) == NULL ||
	    EVP_MAC_init(fernet_pre.hmac, zero, HALF_KEY_LEN, params) != 1 ||
	    (fernet_pre.aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC",
	    NULL)) == NULL ||
	    (fernet_pre.spare = fernet_new(zero)) == NULL) {
		fernet_fini();
		return -1;
	}
	return 0;
}

/* Frees what fernet_init() fetched, and libcrypto's own state. */
void
fernet_fini(void)
{
	fernet_free(fernet_pre.spare);
	EVP_CIPHER_free(fernet_pre.aes);
	EVP_MAC_CTX_free(fernet_pre.hmac);
	EVP_MAC_free(fernet_pre.mac);
	memset(&fernet_pre, 0, sizeof(fernet_pre));
	OPENSSL_cleanup();
}

/* The HMAC half of fernet_new(): from the template if there is one. */
static int
fernet_new_hmac(struct fernet *f, const unsigned char *key)
{
	OSSL_PARAM	 params[2];
	char		 digest[] = "SHA256";

	if (fernet_pre.hmac != NULL) {
		if (EVP_MAC_up_ref(fernet_pre.mac) != 1)
			return -1;
		f->mac = fernet_pre.mac;
		if ((f->hmac = EVP_MAC_CTX_dup(fernet_pre.hmac)) == NULL ||
		    EVP_MAC_init(f->hmac, key, HALF_KEY_LEN, NULL) != 1)
			return -1;
		return 0;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((f->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (f->hmac = EVP_MAC_CTX_new(f->mac)) == NULL ||
	    EVP_MAC_init(f->hmac, key, HALF_KEY_LEN, params) != 1)
		return -1;
	return 0;
}

/* The AES half of fernet_new(). */
static int
fernet_new_aes(struct fernet *f)
{
	if (fernet_pre.aes != NULL) {
		if (EVP_CIPHER_up_ref(fernet_pre.aes) != 1)
			return -1;
		f->aes = fernet_pre.aes;
		return 0;
	}
	if ((f->aes = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL)) == NULL)
		return -1;
	return 0;
}

/*
 * The first fernet_new() of a process forked after fernet_init() takes
 * the spare and only re-keys it.  Building contexts takes references to
 * the algorithms (counts in libcrypto's shared objects): in a child of a
 * fork, each such write copies a page, which the worker then keeps for
 * its whole life.  The spare's references were taken before the fork.
 */
static struct fernet *
fernet_take_spare(const unsigned char *key)
{
	struct fernet	*f = fernet_pre.spare;

	fernet_pre.spare = NULL;
	if (EVP_MAC_init(f->hmac, key, HALF_KEY_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex2(f->enc, NULL, key + HALF_KEY_LEN, NULL,
	    NULL) != 1 ||
	    EVP_DecryptInit_ex2(f->dec, NULL, key + HALF_KEY_LEN, NULL,
	    NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(f->dec, 0) != 1) {
		fernet_free(f);
		return NULL;
	}
	return f;
}

struct fernet *
fernet_new(const unsigned char *key)
{
	struct fernet	*f;

	if (fernet_pre.spare != NULL)
		return fernet_take_spare(key);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if (fernet_new_hmac(f, key) == -1 ||
	    fernet_new_aes(f) == -1 ||
	    (f->enc = EVP_CIPHER_CTX_new()) == NULL ||
	    (f->dec = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex2(f->enc, f->aes, key + HALF_KEY_LEN, NULL,
	    NULL) != 1 ||
	    EVP_DecryptInit_ex2(f->dec, f->aes, key + HALF_KEY_LEN, NULL,
	    NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(f->dec, 0) != 1) {
		fernet_free(f);
		return NULL;
	}
	return f;
}

/* Frees the contexts, which wipe their key material; NULL is a no-op. */
void
fernet_free(struct fernet *f)
{
	if (f == NULL)
		return;
	EVP_CIPHER_CTX_free(f->dec);
	EVP_CIPHER_CTX_free(f->enc);
	EVP_CIPHER_free(f->aes);
	EVP_MAC_CTX_free(f->hmac);
	EVP_MAC_free(f->mac);
	explicit_bzero(f, sizeof(*f));
	free(f);
}

/*
 * fernet_token_len: the exact token length for n plaintext bytes, or
 * SIZE_MAX if that does not fit in a size_t (no buffer is that large, so
 * a size check against it fails, as it should).
 */
size_t
fernet_token_len(size_t n)
{
	size_t	 raw;

	if (n > SIZE_MAX / 2)
		return SIZE_MAX;
	raw = FERNET_OVERHEAD + (n / BLOCK_LEN + 1) * BLOCK_LEN;
	return (raw + 2) / 3 * 4;
}

/*
 * fernet_plain_max: the most plaintext a token of n characters can carry;
 * an output buffer of this size is always enough for fernet_decrypt().
 */
size_t
fernet_plain_max(size_t n)
{
	size_t	 raw = n / 4 * 3;

	if (raw < RAW_MIN)
		return 0;
	return (raw - FERNET_OVERHEAD) / BLOCK_LEN * BLOCK_LEN - 1;
}

/* EVP_CipherUpdate over a size_t length, which must be whole blocks. */
static int
fernet_update(EVP_CIPHER_CTX *ctx, unsigned char *out,
    const unsigned char *in, size_t len)
{
	size_t	 chunk;
	int	 outl;

	while (len > 0) {
		chunk = len > EVP_CHUNK ? EVP_CHUNK : len;
		if (EVP_CipherUpdate(ctx, out, &outl, in, (int)chunk) != 1 ||
		    (size_t)outl != chunk)
			return -1;
		out += chunk;
		in += chunk;
		len -= chunk;
	}
	return 0;
}

/*
 * fernet_encrypt: the token for pt[0..ptlen) stamped with time now, into
 * out[0..outlen), as fernet_token_len(ptlen) base64 characters; neither
 * a NUL nor a line ending is added.  iv is 16 bytes, or NULL for fresh
 * random ones (a fixed IV is for test vectors only).  pt must not overlap
 * out.  Returns FERNET_OK and *toklen, FERNET_ESPACE, or FERNET_ECRYPTO.
 */
int
fernet_encrypt(struct fernet *f, const void *pt, size_t ptlen, uint64_t now,
    const unsigned char *iv, char *out, size_t outlen, size_t *toklen)
{
	unsigned char	*raw, *ct;
	size_t		 len, maclen, padded, rawlen, head;
	int		 outl, i;

	len = fernet_token_len(ptlen);
	if (len == SIZE_MAX || len > outlen)
		return FERNET_ESPACE;
	padded = (ptlen / BLOCK_LEN + 1) * BLOCK_LEN;
	rawlen = FERNET_OVERHEAD + padded;

	/* Build the raw token at the tail, then encode it forwards. */
	raw = (unsigned char *)out + (len - rawlen);
	raw[0] = FERNET_VERSION;
	for (i = 0; i < TS_LEN; i++)
		raw[1 + i] = now >> (8 * (TS_LEN - 1 - i));
	if (iv != NULL)
		memcpy(raw + 1 + TS_LEN, iv, IV_LEN);
	else
		random_bytes(raw + 1 + TS_LEN, IV_LEN);

	ct = raw + HDR_LEN;
	head = ptlen / BLOCK_LEN * BLOCK_LEN;
	if (EVP_CipherInit_ex2(f->enc, NULL, NULL, raw + 1 + TS_LEN, 1,
	    NULL) != 1 ||
	    fernet_update(f->enc, ct, pt, head) == -1)
		return FERNET_ECRYPTO;
	outl = 0;
	if (ptlen > head && EVP_CipherUpdate(f->enc, ct + head, &outl,
	    (const unsigned char *)pt + head, (int)(ptlen - head)) != 1)
		return FERNET_ECRYPTO;
	if (outl != 0 ||
	    EVP_CipherFinal_ex(f->enc, ct + head, &outl) != 1 ||
	    outl != BLOCK_LEN)
		return FERNET_ECRYPTO;

	maclen = MAC_LEN;
	if (EVP_MAC_init(f->hmac, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(f->hmac, raw, HDR_LEN + padded) != 1 ||
	    EVP_MAC_final(f->hmac, ct + padded, &maclen, MAC_LEN) != 1 ||
	    maclen != MAC_LEN)
		return FERNET_ECRYPTO;

	b64_encode(raw, rawlen, out);
	*toklen = len;
	return FERNET_OK;
}

/*
 * fernet_unpad: check the PKCS#7 padding of the last plaintext block in
 * constant time and set *keep to the bytes of it that are data.
 */
static int
fernet_unpad(const unsigned char *last, size_t *keep)
{
	unsigned int	 p = last[BLOCK_LEN - 1], bad, inpad;
	int		 i;

	bad = (p - 1) & ~(unsigned int)(BLOCK_LEN - 1);	/* p not 1..16 */
	for (i = 0; i < BLOCK_LEN; i++) {
		/* inpad is all ones for the last p bytes, else 0. */
		inpad = ~(unsigned int)((i - (BLOCK_LEN - (int)p)) >> 8);
		bad |= inpad & (last[i] ^ p);
	}
	if (bad != 0)
		return -1;
	*keep = BLOCK_LEN - p;
	return 0;
}

/*
 * fernet_decrypt: checks the token tok[0..toklen) (no line ending) and
 * writes its plaintext to out[0..outlen) and its length to *ptlen.
 * now is the current time; ttl the most seconds a token may be old (age
 * exactly ttl passes), or 0 for no age check.  A token more than
 * FUTURE_SKEW seconds ahead of now always fails.
 *
 * An out of fernet_plain_max(toklen) bytes is always enough.  A smaller
 * one gets FERNET_ESPACE: before the HMAC check when the ciphertext alone
 * shows it cannot fit, else once the padding is known.  On any failure,
 * out holds no plaintext.
 */
int
fernet_decrypt(struct fernet *f, const char *tok, size_t toklen,
    uint64_t now, uint64_t ttl, unsigned char *out, size_t outlen,
    size_t *ptlen)
{
	unsigned char	 hdr[HDR_LEN], last[BLOCK_LEN], plast[BLOCK_LEN];
	unsigned char	 mac[MAC_LEN], want[MAC_LEN];
	uint64_t	 ts;
	size_t		 rawlen, body, keep, maclen;
	int		 i, rc;

	if (b64_check(tok, toklen, &rawlen) == -1)
		return FERNET_EBASE64;
	if (rawlen < FERNET_OVERHEAD)
		return FERNET_ESHORT;
	b64_span(tok, 0, HDR_LEN, hdr);
	if (hdr[0] != FERNET_VERSION)
		return FERNET_EVERSION;
	if (!CT_ENOUGH(rawlen))		/* no block, or a partial one */
		return FERNET_EPADDING;
	body = rawlen - FERNET_OVERHEAD - BLOCK_LEN;	/* all but the last */
	if (outlen < body)
		return FERNET_ESPACE;

	/* The ciphertext lands in out and is decrypted there in place. */
	b64_span(tok, HDR_LEN, body, out);
	b64_span(tok, HDR_LEN + body, BLOCK_LEN, last);
	b64_span(tok, rawlen - MAC_LEN, MAC_LEN, mac);

	maclen = sizeof(want);
	if (EVP_MAC_init(f->hmac, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(f->hmac, hdr, HDR_LEN) != 1 ||
	    EVP_MAC_update(f->hmac, out, body) != 1 ||
	    EVP_MAC_update(f->hmac, last, BLOCK_LEN) != 1 ||
	    EVP_MAC_final(f->hmac, want, &maclen, sizeof(want)) != 1 ||
	    maclen != MAC_LEN)
		return FERNET_ECRYPTO;
	if (CRYPTO_memcmp(want, mac, MAC_LEN) != 0)
		return FERNET_EMAC;

	ts = 0;
	for (i = 0; i < TS_LEN; i++)
		ts = ts << 8 | hdr[1 + i];
	if (ttl != 0 && now > ts && now - ts > ttl)
		return FERNET_EEXPIRED;
	if (ts > now && ts - now > FUTURE_SKEW)
		return FERNET_EFUTURE;

	rc = FERNET_OK;
	if (EVP_CipherInit_ex2(f->dec, NULL, NULL, hdr + 1 + TS_LEN, 0,
	    NULL) != 1 ||
	    fernet_update(f->dec, out, out, body) == -1 ||
	    fernet_update(f->dec, plast, last, BLOCK_LEN) == -1)
		rc = FERNET_ECRYPTO;
	else if (fernet_unpad(plast, &keep) == -1)
		rc = FERNET_EPADDING;
	else if (keep > outlen - body)
		rc = FERNET_ESPACE;
	if (rc != FERNET_OK) {
		explicit_bzero(out, body);
		explicit_bzero(plast, sizeof(plast));
		return rc;
	}
	if (keep > 0)
		memcpy(out + body, plast, keep);
	explicit_bzero(plast, sizeof(plast));
	*ptlen = body + keep;
	return FERNET_OK;
}

const char *
fernet_strerror(int e)
{
	switch (e) {
	case FERNET_OK:
		return "ok";
	case FERNET_EBASE64:
		return "not canonical URL-safe base64";
	case FERNET_ESHORT:
		return "token too short";
	case FERNET_EVERSION:
		return "unknown token version";
	case FERNET_EMAC:
		return "HMAC does not verify";
	case FERNET_EPADDING:
		return "bad ciphertext length or padding";
	case FERNET_EEXPIRED:
		return "token expired";
	case FERNET_EFUTURE:
		return "token from the future";
	case FERNET_ESPACE:
		return "output buffer too small";
	case FERNET_EKEY:
		return "not a valid Fernet key";
	case FERNET_ECRYPTO:
		return "libcrypto failure";
	default:
		return "unknown Fernet error";
	}
}

/*
 * Random bytes.  Every frame needs a fresh IV, and a getrandom(2) call
 * per 16 bytes costs more than the rest of a small frame's encryption
 * (see `make bench-crypto`), so small requests are served from a pool of
 * RANDOM_POOL bytes per thread, refilled by one getrandom(2).  Bytes are
 * wiped from the pool as they are handed out.  A forked child must never
 * hand out its parent's bytes again: a pthread_atfork() child handler
 * empties the pool (it runs in the child's only thread, the one that
 * forked, whose pool is the only one left).  If the handler cannot be
 * registered the pool is not used at all.
 */
#define RANDOM_POOL	512
#define RANDOM_POOLED	64	/* larger requests bypass the pool */

static _Thread_local unsigned char random_pool[RANDOM_POOL];
static _Thread_local size_t random_left;	/* at the front of the pool */
static pthread_once_t random_once = PTHREAD_ONCE_INIT;
static int	 random_pool_ok;

/* getrandom(2) until n bytes are in: 0, or -1 if the kernel fails us. */
static int
random_fill(void *p, size_t n)
{
	unsigned char	*b = p;
	ssize_t		 r;

	while (n > 0) {
		r = getrandom(b, n, 0);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * Bytes are wiped as they are handed out, so an empty pool is all zero
 * already: left alone, since in a child of fork(2) a write copies the
 * page, and relayd forks a worker per client.
 */
static void
random_pool_wipe(void)
{
	if (random_left == 0)
		return;
	explicit_bzero(random_pool, sizeof(random_pool));
	random_left = 0;
}

static void
random_pool_setup(void)
{
	random_pool_ok = pthread_atfork(NULL, NULL, random_pool_wipe) == 0;
}

/*
 * random_bytes: n bytes from the kernel's CSPRNG, directly or through the
 * pool.  It never fails: should the kernel refuse (it does not, once its
 * generator is seeded, which getrandom(2) waits for), it aborts rather
 * than return predictable bytes.
 */
void
random_bytes(void *p, size_t n)
{
	int	 saved = errno;

	if (n == 0)
		return;
	pthread_once(&random_once, random_pool_setup);
	if (!random_pool_ok || n > RANDOM_POOLED) {
		if (random_fill(p, n) == -1)
			abort();
		errno = saved;
		return;
	}
	if (random_left < n) {
		if (random_fill(random_pool, sizeof(random_pool)) == -1)
			abort();
		random_left = sizeof(random_pool);
	}
	random_left -= n;
	memcpy(p, random_pool + random_left, n);
	explicit_bzero(random_pool + random_left, n);
	errno = saved;
}
