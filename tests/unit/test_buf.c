/*
 * test_buf.c: the bounded buffer.  Limits (ENOBUFS, nothing added),
 * overflowing sizes, lazy allocation and release of emptied buffers,
 * compaction checked against a plain model, read(2) and write(2) through
 * pipes including full, empty and partial cases.  The memory policy tests
 * look at PRIVATE_cap on purpose: that policy is what they test.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

static void
make_pipe(int fds[2], int nonblock)
{
	assert_int_equal(pipe(fds), 0);
	if (nonblock) {
		assert_int_not_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), -1);
		assert_int_not_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), -1);
	}
}

static void
test_lazy(void **state)
{
	struct buf	 b;

	buf_init(&b, 100);
	assert_null(b.PRIVATE_data);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_max(&b), 100);
	assert_non_null(buf_data(&b));	/* safe for memcmp(.., 0) */
	assert_int_equal(buf_add(&b, "", 0), 0);
	assert_null(b.PRIVATE_data);
	buf_drain(&b, 10);
	buf_truncate(&b, 0);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
	buf_free(&b);		/* twice is harmless */
	assert_int_equal(buf_add(&b, "x", 1), 0);	/* usable after */
	assert_int_equal(buf_max(&b), 100);
	buf_free(&b);
}

static const struct limit_case {
	size_t	 max;
	size_t	 first;
	size_t	 second;
	int	 ok;
} limit_cases[] = {
	{ 10, 5, 5, 1 },
	{ 10, 5, 6, 0 },
	{ 10, 10, 1, 0 },
	{ 10, 0, 10, 1 },
	{ 10, 0, 11, 0 },
	{ 0, 0, 1, 0 },
	{ 65536, 65535, 1, 1 },
	{ 65536, 65535, 2, 0 },
	{ 10, 3, SIZE_MAX, 0 },
	{ 10, 3, SIZE_MAX - 2, 0 },
};

static void
test_add_limits(void **state)
{
	const struct limit_case	*c;
	struct buf		 b;
	unsigned char		*src;
	size_t			 i, n;

	src = malloc(70000);
	assert_non_null(src);
	for (i = 0; i < 70000; i++)
		src[i] = (unsigned char)(i * 7);
	for (i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
		c = &limit_cases[i];
		buf_init(&b, c->max);
		assert_int_equal(buf_add(&b, src, c->first), 0);
		n = c->second > 70000 ? 1 : c->second;
		errno = 0;
		if (c->ok)
			assert_int_equal(buf_add(&b, src + c->first, n), 0);
		else {
			/* The real size, SIZE_MAX cases included. */
			assert_int_equal(buf_add(&b, src, c->second > 70000 ?
			    c->second : n), -1);
			assert_int_equal(errno, ENOBUFS);
			assert_int_equal(buf_len(&b), c->first);
			errno = 0;
			assert_null(buf_reserve(&b, c->second));
			assert_int_equal(errno, ENOBUFS);
		}
		assert_true(buf_len(&b) <= c->max);
		assert_true(b.PRIVATE_cap <= c->max);
		if (buf_len(&b) > 0)
			assert_memory_equal(buf_data(&b), src, buf_len(&b));
		buf_free(&b);
	}
	free(src);
}

/* Random adds and drains against a plain array: compaction keeps bytes. */
static void
test_model(void **state)
{
	struct buf	 b;
	unsigned char	 model[3000], chunk[700];
	size_t		 mlen = 0, n, i, max = 3000;
	uint32_t	 x = 12345;
	int		 step, r;

	buf_init(&b, max);
	for (step = 0; step < 20000; step++) {
		x = x * 1103515245 + 12345;
		n = (x >> 8) % sizeof(chunk);
		if ((x >> 4) & 1) {
			for (i = 0; i < n; i++)
				chunk[i] = (unsigned char)(x + i * 31 + step);
			r = buf_add(&b, chunk, n);
			if (mlen + n <= max) {
				assert_int_equal(r, 0);
				memcpy(model + mlen, chunk, n);
				mlen += n;
			} else
				assert_int_equal(r, -1);
		} else {
			buf_drain(&b, n);
			if (n > mlen)
				n = mlen;
			memmove(model, model + n, mlen - n);
			mlen -= n;
		}
		assert_int_equal(buf_len(&b), mlen);
		assert_true(b.PRIVATE_cap <= max);
		if (mlen > 0)
			assert_memory_equal(buf_data(&b), model, mlen);
	}
	buf_free(&b);
}

static void
test_growth_and_release(void **state)
{
	struct buf	 b;
	unsigned char	*mem;
	char		 big[10000];

	memset(big, 'z', sizeof(big));

	/* Doubling stops at max. */
	buf_init(&b, 1000);
	assert_int_equal(buf_add(&b, big, 600), 0);
	assert_int_equal(b.PRIVATE_cap, 1000);
	buf_free(&b);
	assert_null(b.PRIVATE_data);

	/* A small buffer keeps its memory when it empties... */
	buf_init(&b, 1024 * 1024);
	assert_int_equal(buf_add(&b, big, 100), 0);
	buf_drain(&b, 100);
	assert_non_null(b.PRIVATE_data);
	assert_int_equal(buf_len(&b), 0);

	/* ...a large one gives it back, buf_reset() keeps it. */
	assert_int_equal(buf_add(&b, big, sizeof(big)), 0);
	assert_true(b.PRIVATE_cap >= sizeof(big));
	buf_drain(&b, 5000);
	assert_non_null(b.PRIVATE_data);
	buf_drain(&b, 5000);
	assert_null(b.PRIVATE_data);
	assert_int_equal(b.PRIVATE_cap, 0);
	assert_int_equal(buf_add(&b, big, sizeof(big)), 0);
	buf_reset(&b);
	assert_non_null(b.PRIVATE_data);
	assert_int_equal(buf_len(&b), 0);

	/* Compaction, not growth, when drained room suffices. */
	buf_free(&b);
	buf_init(&b, 1000);
	assert_int_equal(buf_add(&b, big, 1000), 0);
	mem = b.PRIVATE_data;
	buf_drain(&b, 999);
	assert_int_equal(buf_add(&b, big, 999), 0);
	assert_int_equal(buf_len(&b), 1000);
	assert_ptr_equal(b.PRIVATE_data, mem);
	assert_ptr_equal(buf_data(&b), mem);
	buf_free(&b);
}

static void
test_truncate_patch(void **state)
{
	struct buf	 b;

	buf_init(&b, 64);
	assert_int_equal(buf_add(&b, "xxhello world", 13), 0);
	buf_drain(&b, 2);	/* offsets are relative to buf_data() */
	assert_int_equal(buf_patch(&b, 6, "WORLD", 5), 0);
	assert_memory_equal(buf_data(&b), "hello WORLD", 11);
	assert_int_equal(buf_patch(&b, 0, "", 0), 0);
	assert_int_equal(buf_patch(&b, 11, "", 0), 0);
	errno = 0;
	assert_int_equal(buf_patch(&b, 7, "WORLD", 5), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(buf_patch(&b, 12, "", 0), -1);
	assert_int_equal(buf_patch(&b, SIZE_MAX, "ab", 2), -1);
	assert_int_equal(buf_patch(&b, 2, "ab", SIZE_MAX), -1);
	assert_memory_equal(buf_data(&b), "hello WORLD", 11);

	buf_truncate(&b, 50);
	assert_int_equal(buf_len(&b), 11);
	buf_truncate(&b, 5);
	assert_int_equal(buf_len(&b), 5);
	assert_int_equal(buf_add(&b, "!", 1), 0);
	assert_memory_equal(buf_data(&b), "hello!", 6);
	buf_truncate(&b, 0);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
}

static void
test_reserve_commit(void **state)
{
	struct buf	 b;
	char		*p;

	buf_init(&b, 8);
	p = buf_reserve(&b, 8);
	assert_non_null(p);
	memcpy(p, "abc", 3);
	buf_commit(&b, 3);
	assert_int_equal(buf_len(&b), 3);
	assert_null(buf_reserve(&b, 6));
	assert_non_null(buf_reserve(&b, 5));
	assert_non_null(buf_reserve(&b, 0));
	assert_memory_equal(buf_data(&b), "abc", 3);
	buf_free(&b);
}

static void
test_addf(void **state)
{
	struct buf	 b;
	char		*big;

	buf_init(&b, 12);
	assert_int_equal(buf_addf(&b, "%s=%d", "ab", 42), 0);
	assert_int_equal(buf_len(&b), 5);
	/* Ends exactly at max: no room for vsnprintf's NUL. */
	assert_int_equal(buf_addf(&b, "%07d", 1234567), 0);
	assert_int_equal(buf_len(&b), 12);
	assert_memory_equal(buf_data(&b), "ab=421234567", 12);
	errno = 0;
	assert_int_equal(buf_addf(&b, "%s", "x"), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_addf(&b, "%s", ""), 0);
	buf_drain(&b, 2);
	assert_int_equal(buf_addf(&b, "%s", "xyz"), -1);
	assert_int_equal(buf_len(&b), 10);
	buf_free(&b);

	/* A body-sized text does not go through a small stack buffer. */
	big = malloc(40001);
	assert_non_null(big);
	memset(big, 'q', 40000);
	big[40000] = '\0';
	buf_init(&b, 40002);
	assert_int_equal(buf_addf(&b, "<%s>", big), 0);
	assert_int_equal(buf_len(&b), 40002);
	assert_int_equal(buf_data(&b)[0], '<');
	assert_int_equal(buf_data(&b)[40001], '>');
	assert_int_equal(buf_addf(&b, "%s", ""), 0);
	buf_free(&b);
	free(big);
}

static void
test_read(void **state)
{
	struct buf	 b;
	int		 fds[2];
	char		 msg[100];

	memset(msg, 'm', sizeof(msg));
	make_pipe(fds, 1);
	buf_init(&b, 10);

	errno = 0;
	assert_int_equal(buf_read(&b, fds[0]), -1);
	assert_int_equal(errno, EAGAIN);
	assert_null(b.PRIVATE_data);

	assert_int_equal(write(fds[1], msg, sizeof(msg)), sizeof(msg));
	assert_int_equal(buf_read(&b, fds[0]), 10);	/* up to max */
	assert_int_equal(buf_len(&b), 10);
	errno = 0;
	assert_int_equal(buf_read(&b, fds[0]), -1);
	assert_int_equal(errno, ENOBUFS);
	buf_drain(&b, 4);
	assert_int_equal(buf_read(&b, fds[0]), 4);
	assert_int_equal(buf_len(&b), 10);

	close(fds[1]);
	buf_reset(&b);
	while (buf_read(&b, fds[0]) > 0)
		buf_reset(&b);
	assert_int_equal(buf_read(&b, fds[0]), 0);	/* EOF */
	close(fds[0]);
	assert_int_equal(buf_read(&b, fds[0]), -1);
	assert_int_equal(errno, EBADF);
	buf_free(&b);
}

static void
test_write(void **state)
{
	struct buf	 b;
	int		 fds[2];
	char		 out[20000], in[20000];
	ssize_t		 n;
	size_t		 i;

	for (i = 0; i < sizeof(out); i++)
		out[i] = (char)i;
	make_pipe(fds, 1);
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_write(&b, fds[1]), 0);	/* nothing pending */

	assert_int_equal(buf_add(&b, "hello", 5), 0);
	assert_int_equal(buf_write(&b, fds[1]), 5);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(read(fds[0], in, sizeof(in)), 5);
	assert_memory_equal(in, "hello", 5);

	/* A short pipe takes part of it: the rest stays, in order. */
	assert_int_equal(fcntl(fds[1], F_SETPIPE_SZ, 4096), 4096);
	assert_int_equal(buf_add(&b, out, sizeof(out)), 0);
	n = buf_write(&b, fds[1]);
	assert_true(n > 0 && n < (ssize_t)sizeof(out));
	assert_int_equal(buf_len(&b), sizeof(out) - (size_t)n);
	assert_memory_equal(buf_data(&b), out + n, buf_len(&b));
	errno = 0;
	assert_int_equal(buf_write(&b, fds[1]), -1);	/* pipe full */
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(buf_len(&b), sizeof(out) - (size_t)n);

	close(fds[0]);
	close(fds[1]);
	buf_free(&b);
}

/* True when the n bytes at p are all zero. */
static int
zeroed(const unsigned char *p, size_t n)
{
	while (n-- > 0)
		if (*p++ != 0)
			return 0;
	return 1;
}

/*
 * Consumed or cut-off bytes are wiped at once: a worker forked from the
 * hub must not find other sessions' traffic in what its buffers held.
 * The test looks behind the API at the memory itself.
 */
static void
test_wipe_consumed(void **state)
{
	struct buf		 b;
	const unsigned char	*mem;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_add(&b, "0123456789abcdef", 16), 0);
	mem = b.PRIVATE_data;
	buf_drain(&b, 4);
	assert_true(zeroed(mem, 4));
	assert_memory_equal(buf_data(&b), "456789abcdef", 12);
	buf_truncate(&b, 6);
	assert_true(zeroed(mem + 10, 6));
	assert_memory_equal(buf_data(&b), "456789", 6);
	/*
	 * A move to the front leaves no copy behind: the 32 live bytes sat
	 * at 4..36 and move to 0..32, so 32..36 must be wiped.
	 */
	assert_int_equal(buf_add(&b, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26), 0);
	assert_non_null(buf_reserve(&b, 64 - 32));
	if (b.PRIVATE_data == mem)
		assert_true(zeroed(mem + 32, 4));
	mem = b.PRIVATE_data;
	buf_drain(&b, buf_len(&b));
	assert_int_equal(buf_len(&b), 0);
	if (b.PRIVATE_data == mem)
		assert_true(zeroed(mem, 32));
	assert_int_equal(buf_add(&b, "xyz", 3), 0);
	mem = b.PRIVATE_data;
	buf_reset(&b);
	assert_true(zeroed(mem, 3));
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy),
		cmocka_unit_test(test_add_limits),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_growth_and_release),
		cmocka_unit_test(test_truncate_patch),
		cmocka_unit_test(test_reserve_commit),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_write),
		cmocka_unit_test(test_wipe_consumed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
