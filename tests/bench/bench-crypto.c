/*
 * bench-crypto: how long fernet.c takes to encrypt and decrypt a 100-byte
 * message, and what the random-byte pool saves over one getrandom(2) per
 * IV.  Prints "name microseconds-per-op" lines for bench-crypto.py, which
 * adds Python's numbers and the table.  Each figure is the best of
 * several rounds, so that a busy machine disturbs it less.
 */
#include <sys/types.h>
#include <sys/random.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"

#define MSG_LEN		100
#define ROUNDS		7
#define ROUND_NS	100000000LL	/* aim for 0.1 s per round */

struct ctx {
	struct fernet	*f;
	unsigned char	 msg[MSG_LEN];
	char		 tok[512];
	size_t		 toklen;
	unsigned char	 iv[16];
	uint64_t	 now;
};

typedef void	 bench_fn(struct ctx *);

static int64_t	 now_ns(void);
static double	 bench(const char *, bench_fn *, struct ctx *);
static void	 do_encrypt(struct ctx *);
static void	 do_encrypt_fixed_iv(struct ctx *);
static void	 do_decrypt(struct ctx *);
static void	 do_pool16(struct ctx *);
static void	 do_getrandom16(struct ctx *);

static int64_t
now_ns(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
		perror("clock_gettime");
		exit(1);
	}
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
do_encrypt(struct ctx *c)
{
	if (fernet_encrypt(c->f, c->msg, MSG_LEN, c->now, NULL, c->tok,
	    sizeof(c->tok), &c->toklen) != FERNET_OK)
		abort();
}

static void
do_encrypt_fixed_iv(struct ctx *c)
{
	if (fernet_encrypt(c->f, c->msg, MSG_LEN, c->now, c->iv, c->tok,
	    sizeof(c->tok), &c->toklen) != FERNET_OK)
		abort();
}

static void
do_decrypt(struct ctx *c)
{
	unsigned char	 out[MSG_LEN + 16];
	size_t		 len;

	if (fernet_decrypt(c->f, c->tok, c->toklen, c->now, TTL_DEFAULT, out,
	    sizeof(out), &len) != FERNET_OK || len != MSG_LEN)
		abort();
}

static void
do_pool16(struct ctx *c)
{
	random_bytes(c->iv, sizeof(c->iv));
}

static void
do_getrandom16(struct ctx *c)
{
	if (getrandom(c->iv, sizeof(c->iv), 0) != sizeof(c->iv))
		abort();
}

/* Microseconds per call of fn: the best of ROUNDS timed rounds. */
static double
bench(const char *name, bench_fn *fn, struct ctx *c)
{
	int64_t		 t0, dt;
	long		 n = 1000, i;
	double		 best = 1e30, us;
	int		 r;

	/* Warm up, and size a round to about ROUND_NS. */
	for (;;) {
		t0 = now_ns();
		for (i = 0; i < n; i++)
			fn(c);
		dt = now_ns() - t0;
		if (dt >= ROUND_NS / 4)
			break;
		n *= 4;
	}
	n = (long)((double)n * ROUND_NS / (double)(dt > 0 ? dt : 1)) + 1;
	for (r = 0; r < ROUNDS; r++) {
		t0 = now_ns();
		for (i = 0; i < n; i++)
			fn(c);
		us = (double)(now_ns() - t0) / 1000.0 / (double)n;
		if (us < best)
			best = us;
	}
	printf("%s %.4f\n", name, best);
	fflush(stdout);
	return best;
}

int
main(void)
{
	unsigned char	 key[FERNET_KEY_LEN];
	struct ctx	 c;

	memset(&c, 0, sizeof(c));
	if (fernet_key_generate(key) == -1 || (c.f = fernet_new(key)) == NULL) {
		fprintf(stderr, "bench-crypto: no key\n");
		return 1;
	}
	explicit_bzero(key, sizeof(key));
	memset(c.msg, 'm', sizeof(c.msg));
	c.now = (uint64_t)time(NULL);
	random_bytes(c.iv, sizeof(c.iv));

	bench("encrypt", do_encrypt, &c);
	bench("decrypt", do_decrypt, &c);
	bench("encrypt_fixed_iv", do_encrypt_fixed_iv, &c);
	bench("random16_pool", do_pool16, &c);
	bench("random16_getrandom", do_getrandom16, &c);
	fernet_free(c.f);
	return 0;
}
