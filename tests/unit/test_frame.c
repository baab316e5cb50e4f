/*
 * test_frame.c: line framing.  Every case of the table is run whole, cut
 * at every position (and at every pair of positions for short inputs),
 * byte by byte, and through a pipe with frame_in_read(); each way must
 * give the same frames.  Limits are tested at and around the limit with a
 * small one and with FRAME_MAX_DEFAULT (65535, 65536, 65537 bytes with the
 * terminator).
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

#define MAXEV	16

struct ev {
	int		 kind;
	const char	*s;
	size_t		 len;
};
#define L(x)	{ FRAME_LINE, (x), sizeof(x) - 1 }
#define OVER	{ FRAME_OVERSIZED, NULL, 0 }

struct fcase {
	const char	*name;
	size_t		 max;
	const char	*in;
	size_t		 inlen;
	struct ev	 ev[MAXEV];
};
#define IN(x)	(x), sizeof(x) - 1

static const struct fcase cases[] = {
	{ "one line", 8, IN("abc\n"), { L("abc") } },
	{ "crlf", 8, IN("abc\r\n"), { L("abc") } },
	{ "two lines", 8, IN("ab\ncd\r\n"), { L("ab"), L("cd") } },
	{ "empty lines", 8, IN("\n\n\r\nabc\n\r\n\n"), { L("abc") } },
	{ "only crlf", 8, IN("\r\n\r\n"), { { 0 } } },
	{ "lone cr inside", 8, IN("a\rb\n"), { L("a\rb") } },
	{ "lone cr line", 8, IN("\r\r\n"), { L("\r") } },
	{ "two crs", 8, IN("abc\r\r\n"), { L("abc\r") } },
	{ "cr no lf", 8, IN("abc\r"), { { 0 } } },
	{ "unterminated", 8, IN("abcdefg"), { { 0 } } },
	{ "nul bytes", 8, IN("a\0b\n\0\n"), { L("a\0b"), L("\0") } },
	{ "at limit", 8, IN("1234567\n"), { L("1234567") } },
	{ "at limit crlf", 8, IN("123456\r\n"), { L("123456") } },
	{ "below limit", 8, IN("123456\n"), { L("123456") } },
	{ "limit + 1", 8, IN("12345678\nok\n"), { OVER, L("ok") } },
	{ "limit + 1 crlf", 8, IN("1234567\r\nok\n"), { OVER, L("ok") } },
	{ "limit + 2", 8, IN("123456789\nok\n"), { OVER, L("ok") } },
	{ "full, no lf", 8, IN("12345678"), { OVER } },
	{ "long, no lf", 8, IN("123456789012345678901234567"), { OVER } },
	{ "long, then lines", 8, IN("a\n1234567890123456789\r\nb\n"),
	    { L("a"), OVER, L("b") } },
	{ "two long lines", 8, IN("123456789\n1234567890123\nc\n"),
	    { OVER, OVER, L("c") } },
	{ "long then empty", 8, IN("123456789012\n\r\n\nc\n"),
	    { OVER, L("c") } },
	{ "long then long no lf", 8, IN("x\n123456789\n987654321"),
	    { L("x"), OVER, OVER } },
	{ "tiny limit", 2, IN("a\nbc\nd\n"), { L("a"), OVER, L("d") } },
	{ "clamped limit", 0, IN("a\n\nbb\n"), { L("a"), OVER } },
	{ "empty", 8, IN(""), { { 0 } } },
};

struct got {
	int		 kind[64];
	char		*s[64];
	size_t		 len[64];
	size_t		 n;
};

static void
got_free(struct got *g)
{
	size_t	 i;

	for (i = 0; i < g->n; i++)
		free(g->s[i]);
	g->n = 0;
}

/* Takes every frame available; checks what a frame may never be. */
static void
drain(struct frame_in *fi, struct got *g)
{
	const char	*line;
	size_t		 len;
	int		 r;

	while ((r = frame_in_next(fi, &line, &len)) != FRAME_NONE) {
		assert_true(g->n < 64);
		g->kind[g->n] = r;
		g->s[g->n] = NULL;
		g->len[g->n] = 0;
		if (r == FRAME_LINE) {
			assert_true(len > 0);
			assert_true(len + 1 <= fi->fi_max);
			assert_null(memchr(line, '\n', len));
			g->s[g->n] = malloc(len);
			assert_non_null(g->s[g->n]);
			memcpy(g->s[g->n], line, len);
			g->len[g->n] = len;
		} else {
			assert_int_equal(r, FRAME_OVERSIZED);
			assert_int_equal(buf_len(&fi->fi_buf), 0);
		}
		g->n++;
	}
	assert_true(buf_len(&fi->fi_buf) < fi->fi_max);
	assert_int_equal(fi->fi_scan, buf_len(&fi->fi_buf));
}

static void
feed_all(struct frame_in *fi, const char *p, size_t n, struct got *g)
{
	int	 r;

	while (n > 0) {
		r = frame_in_feed(fi, p, n);
		assert_true(r > 0);
		assert_true((size_t)r <= n);
		p += r;
		n -= (size_t)r;
		if (fi->fi_skipping)
			assert_int_equal(buf_len(&fi->fi_buf), 0);
		drain(fi, g);
	}
	drain(fi, g);
}

static void
check(const char *name, const struct ev *ev, struct got *g)
{
	size_t	 i, n;

	for (n = 0; n < MAXEV && ev[n].kind != 0; n++)
		;
	if (g->n != n)
		fail_msg("%s: %zu frames, expected %zu", name, g->n, n);
	for (i = 0; i < n; i++) {
		if (g->kind[i] != ev[i].kind)
			fail_msg("%s: frame %zu kind %d, expected %d", name, i,
			    g->kind[i], ev[i].kind);
		if (ev[i].kind == FRAME_LINE && (g->len[i] != ev[i].len ||
		    memcmp(g->s[i], ev[i].s, ev[i].len) != 0))
			fail_msg("%s: frame %zu differs", name, i);
	}
	got_free(g);
}

/* Feeds in the chunks that the sorted cut positions make. */
static void
run_cuts(size_t max, const char *in, size_t len, const size_t *cuts,
    size_t ncuts, struct got *g)
{
	struct frame_in	 fi;
	size_t		 i, from = 0, to;

	frame_in_init(&fi, max);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		if (to > len)
			to = len;
		if (to < from)
			continue;
		feed_all(&fi, in + from, to - from, g);
		from = to;
	}
	frame_in_free(&fi);
}

static void
run_bytes(size_t max, const char *in, size_t len, struct got *g)
{
	struct frame_in	 fi;
	size_t		 i;

	frame_in_init(&fi, max);
	for (i = 0; i < len; i++) {
		feed_all(&fi, in + i, 1, g);
		/* Each byte is searched once: fi_scan keeps up. */
		assert_int_equal(fi.fi_scan, buf_len(&fi.fi_buf));
	}
	frame_in_free(&fi);
}

/* Through a pipe, in writes of `chunk` bytes, with frame_in_read(). */
static void
run_pipe(size_t max, const char *in, size_t len, size_t chunk,
    struct got *g)
{
	struct frame_in	 fi;
	size_t		 off = 0, n;
	ssize_t		 r;
	int		 fds[2];

	assert_int_equal(pipe(fds), 0);
	assert_int_not_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), -1);
	frame_in_init(&fi, max);
	errno = 0;
	assert_int_equal(frame_in_read(&fi, fds[0]), -1);
	assert_int_equal(errno, EAGAIN);
	while (off < len) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(write(fds[1], in + off, n), (ssize_t)n);
		off += n;
		while ((r = frame_in_read(&fi, fds[0])) > 0) {
			/* Inside a long line, nothing read is kept. */
			if (fi.fi_skipping)
				assert_int_equal(buf_len(&fi.fi_buf), 0);
			drain(&fi, g);
		}
		assert_int_equal(r, -1);
		assert_int_equal(errno, EAGAIN);
	}
	close(fds[1]);
	while ((r = frame_in_read(&fi, fds[0])) > 0)
		drain(&fi, g);
	assert_int_equal(r, 0);
	drain(&fi, g);
	close(fds[0]);
	frame_in_free(&fi);
}

static void
test_table(void **state)
{
	const struct fcase	*c;
	struct got		 g = { .n = 0 };
	size_t			 i, a, b, cuts[2];
	char			 name[128];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		run_cuts(c->max, c->in, c->inlen, NULL, 0, &g);
		check(c->name, c->ev, &g);
		run_bytes(c->max, c->in, c->inlen, &g);
		snprintf(name, sizeof(name), "%s (bytes)", c->name);
		check(name, c->ev, &g);
		run_pipe(c->max, c->in, c->inlen, 3, &g);
		snprintf(name, sizeof(name), "%s (pipe)", c->name);
		check(name, c->ev, &g);
		for (a = 0; a <= c->inlen; a++) {
			for (b = a; b <= c->inlen; b++) {
				cuts[0] = a;
				cuts[1] = b;
				run_cuts(c->max, c->in, c->inlen, cuts, 2, &g);
				snprintf(name, sizeof(name), "%s (cut %zu %zu)",
				    c->name, a, b);
				check(name, c->ev, &g);
			}
		}
	}
}

/* FRAME_MAX_DEFAULT: lines of 65535, 65536, 65537 bytes and around. */
static void
test_default_limit(void **state)
{
	static const struct {
		size_t		 content;
		const char	*term;
		int		 fits;
	} lim[] = {
		{ 65534, "\n", 1 },
		{ 65535, "\n", 1 },	/* 65536 with LF */
		{ 65536, "\n", 0 },	/* 65537 */
		{ 65533, "\r\n", 1 },
		{ 65534, "\r\n", 1 },	/* 65536 with CR LF */
		{ 65535, "\r\n", 0 },	/* 65537: the CR counts */
		{ 65537, "\n", 0 },
		{ 200000, "\n", 0 },
	};
	struct got	 g = { .n = 0 };
	struct ev	 ev[3];
	char		*in, name[64];
	size_t		 i, j, len, tl, cuts[1];

	for (i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		tl = strlen(lim[i].term);
		len = lim[i].content + tl + 5;
		in = malloc(len);
		assert_non_null(in);
		memset(in, 'x', lim[i].content);
		memcpy(in + lim[i].content, lim[i].term, tl);
		memcpy(in + lim[i].content + tl, "next\n", 5);
		memset(ev, 0, sizeof(ev));
		if (lim[i].fits) {
			ev[0].kind = FRAME_LINE;
			ev[0].s = in;
			ev[0].len = lim[i].content;
		} else
			ev[0].kind = FRAME_OVERSIZED;
		ev[1].kind = FRAME_LINE;
		ev[1].s = "next";
		ev[1].len = 4;

		snprintf(name, sizeof(name), "%zu+%zu", lim[i].content, tl);
		run_cuts(FRAME_MAX_DEFAULT, in, len, NULL, 0, &g);
		check(name, ev, &g);
		run_bytes(FRAME_MAX_DEFAULT, in, len, &g);
		check(name, ev, &g);
		run_pipe(FRAME_MAX_DEFAULT, in, len, 1000, &g);
		check(name, ev, &g);
		/* Cuts around the limit and the terminator. */
		for (j = 0; j < 12; j++) {
			static const size_t at[] = { 1, 4095, 4096, 65534,
			    65535, 65536, 65537, 65538 };

			if (j < 8)
				cuts[0] = at[j];
			else
				cuts[0] = lim[i].content + j - 9;
			run_cuts(FRAME_MAX_DEFAULT, in, len, cuts, 1, &g);
			check(name, ev, &g);
		}
		free(in);
	}
}

/* An oversized line is never buffered, and reported once. */
static void
test_oversized_not_buffered(void **state)
{
	struct frame_in	 fi;
	char		 chunk[1000];
	const char	*line;
	size_t		 len, i, off, over = 0;
	int		 r, n;

	memset(chunk, 'y', sizeof(chunk));
	frame_in_init(&fi, FRAME_MAX_DEFAULT);
	for (i = 0; i < 1000; i++) {	/* a 1 MB line */
		for (off = 0; off < sizeof(chunk); off += (size_t)n) {
			n = frame_in_feed(&fi, chunk + off, sizeof(chunk) - off);
			assert_true(n > 0);
			while ((r = frame_in_next(&fi, &line, &len)) !=
			    FRAME_NONE) {
				assert_int_equal(r, FRAME_OVERSIZED);
				over++;
			}
		}
		if (i >= 66)
			assert_int_equal(buf_len(&fi.fi_buf), 0);
		assert_true(buf_len(&fi.fi_buf) < FRAME_MAX_DEFAULT);
	}
	assert_int_equal(over, 1);
	/* Its end, then the next line in the same chunk. */
	assert_int_equal(frame_in_feed(&fi, "yy\r\nok\n", 7), 7);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_LINE);
	assert_int_equal(len, 2);
	assert_memory_equal(line, "ok", 2);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_NONE);
	/* The memory of the long line went back when it was dropped. */
	assert_true(fi.fi_buf.PRIVATE_cap <= 4096);
	frame_in_free(&fi);
}

/* Feeding a full buffer without taking its frames fails, then works. */
static void
test_feed_full(void **state)
{
	struct frame_in	 fi;
	const char	*line, *first;
	size_t		 len;

	frame_in_init(&fi, 8);
	assert_int_equal(frame_in_feed(&fi, "abc\ndefghijk\n", 13), 8);
	errno = 0;
	assert_int_equal(frame_in_feed(&fi, "x\n", 2), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_LINE);
	assert_int_equal(len, 3);
	first = line;
	assert_memory_equal(first, "abc", 3);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_NONE);
	/* Fills the buffer without an LF: too long, whatever follows. */
	assert_int_equal(frame_in_feed(&fi, "hijk\nx\n", 7), 4);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_OVERSIZED);
	assert_int_equal(frame_in_feed(&fi, "\nx\n", 3), 3);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_LINE);
	assert_int_equal(len, 1);
	assert_memory_equal(line, "x", 1);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_NONE);
	assert_int_equal(frame_in_feed(&fi, "", 0), 0);
	frame_in_free(&fi);
}

/* A line stays intact until the next call, whatever it frees. */
static void
test_line_lifetime(void **state)
{
	struct frame_in	 fi;
	char		*big;
	const char	*line;
	size_t		 len;

	big = malloc(60001);
	assert_non_null(big);
	memset(big, 'b', 60000);
	big[60000] = '\n';
	frame_in_init(&fi, FRAME_MAX_DEFAULT);
	assert_int_equal(frame_in_feed(&fi, big, 60001), 60001);
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_LINE);
	assert_int_equal(len, 60000);
	assert_memory_equal(line, big, 60000);
	/* Taken at the next call, and a large buffer is then given back. */
	assert_int_equal(frame_in_next(&fi, &line, &len), FRAME_NONE);
	assert_int_equal(buf_len(&fi.fi_buf), 0);
	assert_null(fi.fi_buf.PRIVATE_data);
	frame_in_free(&fi);
	free(big);
}

static void
test_out_add(void **state)
{
	struct buf	 b;

	buf_init(&b, 10);
	assert_int_equal(frame_out_add(&b, "abcd", 4), 0);
	assert_int_equal(frame_out_add(&b, "efgh", 4), 0);
	assert_int_equal(buf_len(&b), 10);
	assert_memory_equal(buf_data(&b), "abcd\nefgh\n", 10);
	errno = 0;
	assert_int_equal(frame_out_add(&b, "i", 1), -1);
	assert_int_equal(errno, ENOBUFS);
	buf_drain(&b, 5);
	/* 5 bytes free: a 5-byte token needs 6, nothing is added. */
	assert_int_equal(frame_out_add(&b, "ijklm", 5), -1);
	assert_int_equal(buf_len(&b), 5);
	assert_int_equal(frame_out_add(&b, "ijkl", 4), 0);
	assert_memory_equal(buf_data(&b), "efgh\nijkl\n", 10);
	buf_reset(&b);
	errno = 0;
	assert_int_equal(frame_out_add(&b, "a\nb", 3), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(frame_out_add(&b, "", 0), -1);
	assert_int_equal(frame_out_add(&b, "x", SIZE_MAX), -1);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_default_limit),
		cmocka_unit_test(test_oversized_not_buffered),
		cmocka_unit_test(test_feed_full),
		cmocka_unit_test(test_line_lifetime),
		cmocka_unit_test(test_out_add),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
