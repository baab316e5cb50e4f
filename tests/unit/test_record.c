/*
 * test_record.c: hub and control records.  Round trips, every truncation
 * of a record, lying length fields (header and strings), REC_MAX and
 * REC_MAX + 1, trailing bytes, NUL in strings, and the writer's sticky
 * error that leaves the buffer as it was.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

#define BIG	(REC_HDR_LEN + REC_MAX + 64)

/* Appends a raw header: type and an announced payload length. */
static void
raw_hdr(struct buf *b, uint32_t type, uint32_t len)
{
	uint32_t	 h[2] = { type, len };

	assert_int_equal(buf_add(b, h, sizeof(h)), 0);
}

static void
raw_u32(struct buf *b, uint32_t v)
{
	assert_int_equal(buf_add(b, &v, sizeof(v)), 0);
}

static void
test_roundtrip(void **state)
{
	struct rec_writer	 w;
	struct rec_reader	 r;
	struct buf		 b;
	const char		*s;
	uint32_t		 type, u32;
	uint64_t		 u64;
	size_t			 len, consumed;

	buf_init(&b, BIG);
	rec_begin(&w, &b, 7);
	rec_put_str(&w, "alice", 5);
	rec_put_u64(&w, UINT64_MAX - 1);
	rec_put_str(&w, "", 0);
	rec_put_str(&w, NULL, 0);
	rec_put_u32(&w, 0xdeadbeef);
	rec_put_str(&w, "line\nwith \xc3\xa9", 12);
	assert_int_equal(rec_finish(&w), 0);
	/* An empty record behind it. */
	rec_begin(&w, &b, 8);
	assert_int_equal(rec_finish(&w), 0);

	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(type, 7);
	assert_int_equal(consumed, REC_HDR_LEN + 9 + 8 + 4 + 4 + 4 + 16);
	assert_int_equal(rec_get_str(&r, &s, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(s, "alice", 5);
	assert_int_equal(rec_end(&r), -1);
	assert_int_equal(rec_get_u64(&r, &u64), 0);
	assert_true(u64 == UINT64_MAX - 1);
	assert_int_equal(rec_get_str(&r, &s, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(rec_get_str(&r, &s, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(rec_get_u32(&r, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(rec_get_str(&r, &s, &len), 0);
	assert_int_equal(len, 12);
	assert_memory_equal(s, "line\nwith \xc3\xa9", 12);
	assert_int_equal(rec_end(&r), 0);
	assert_int_equal(rec_get_u32(&r, &u32), -1);	/* nothing left */
	buf_drain(&b, consumed);

	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(type, 8);
	assert_int_equal(consumed, REC_HDR_LEN);
	assert_int_equal(r.left, 0);
	assert_int_equal(rec_end(&r), 0);
	assert_int_equal(rec_get_str(&r, &s, &len), -1);
	buf_drain(&b, consumed);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 0);
	buf_free(&b);
}

/* Every prefix of a record is "more bytes needed", never a record. */
static void
test_truncated(void **state)
{
	struct rec_writer	 w;
	struct rec_reader	 r;
	struct buf		 whole, part;
	uint32_t		 type;
	size_t			 i, total, consumed;

	buf_init(&whole, BIG);
	rec_begin(&w, &whole, 3);
	rec_put_str(&w, "bob", 3);
	rec_put_u64(&w, 1732590000);
	rec_put_str(&w, "hello there", 11);
	assert_int_equal(rec_finish(&w), 0);
	total = buf_len(&whole);

	for (i = 0; i < total; i++) {
		buf_init(&part, BIG);
		assert_int_equal(buf_add(&part, buf_data(&whole), i), 0);
		assert_int_equal(rec_next(&part, &type, &r, &consumed), 0);
		buf_free(&part);
	}
	assert_int_equal(rec_next(&whole, &type, &r, &consumed), 1);
	assert_int_equal(consumed, total);
	buf_free(&whole);
}

static void
test_lying_lengths(void **state)
{
	struct rec_reader	 r;
	struct buf		 b;
	const char		*s;
	uint32_t		 type, u32;
	uint64_t		 u64;
	size_t			 len, consumed;

	buf_init(&b, BIG);

	/* A header that announces more than REC_MAX: broken peer. */
	raw_hdr(&b, 1, REC_MAX + 1);
	errno = 0;
	assert_int_equal(rec_next(&b, &type, &r, &consumed), -1);
	assert_int_equal(errno, EMSGSIZE);
	buf_reset(&b);
	raw_hdr(&b, 1, UINT32_MAX);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), -1);
	buf_reset(&b);

	/* Exactly REC_MAX is allowed; it waits for its bytes. */
	raw_hdr(&b, 1, REC_MAX);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 0);
	assert_non_null(buf_reserve(&b, REC_MAX));
	buf_commit(&b, REC_MAX - 1);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 0);
	buf_commit(&b, 1);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(consumed, REC_HDR_LEN + REC_MAX);
	buf_free(&b);

	/* A record larger than the input buffer can ever hold. */
	buf_init(&b, 100);
	raw_hdr(&b, 1, 93);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), -1);
	buf_reset(&b);
	raw_hdr(&b, 1, 92);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 0);
	buf_free(&b);

	/* A string that claims more than the payload holds. */
	buf_init(&b, BIG);
	raw_hdr(&b, 2, 4 + 3);
	raw_u32(&b, 4);
	assert_int_equal(buf_add(&b, "abc", 3), 0);
	assert_int_equal(buf_add(&b, "ZZZZ", 4), 0);	/* next record */
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(rec_get_str(&r, &s, &len), -1);
	assert_int_equal(r.left, 7);		/* reader unchanged */
	buf_reset(&b);
	raw_hdr(&b, 2, 4);
	raw_u32(&b, UINT32_MAX);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(rec_get_str(&r, &s, &len), -1);
	buf_reset(&b);
	raw_hdr(&b, 2, 3);			/* not even a length */
	assert_int_equal(buf_add(&b, "abc", 3), 0);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(rec_get_str(&r, &s, &len), -1);
	assert_int_equal(rec_get_u32(&r, &u32), -1);
	assert_int_equal(r.left, 3);
	buf_reset(&b);

	/* Short numbers, and trailing bytes. */
	raw_hdr(&b, 2, 7);
	assert_int_equal(buf_add(&b, "1234567", 7), 0);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(rec_get_u64(&r, &u64), -1);
	assert_int_equal(rec_get_u32(&r, &u32), 0);
	assert_int_equal(rec_get_u32(&r, &u32), -1);
	assert_int_equal(rec_end(&r), -1);
	buf_reset(&b);

	/* A NUL inside a string. */
	raw_hdr(&b, 2, 4 + 3);
	raw_u32(&b, 3);
	assert_int_equal(buf_add(&b, "a\0b", 3), 0);
	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	errno = 0;
	assert_int_equal(rec_get_str(&r, &s, &len), -1);
	assert_int_equal(errno, EBADMSG);
	buf_free(&b);
}

static void
test_writer_errors(void **state)
{
	struct rec_writer	 w;
	struct rec_reader	 r;
	struct buf		 b;
	char			*big;
	uint32_t		 type;
	size_t			 consumed, before;

	big = malloc(REC_MAX + 1);
	assert_non_null(big);
	memset(big, 's', REC_MAX + 1);
	buf_init(&b, BIG);

	/* A string filling REC_MAX exactly, then one byte over. */
	rec_begin(&w, &b, 1);
	rec_put_str(&w, big, REC_MAX - 4);
	assert_int_equal(rec_finish(&w), 0);
	assert_int_equal(buf_len(&b), REC_HDR_LEN + REC_MAX);
	before = buf_len(&b);
	buf_drain(&b, before);

	rec_begin(&w, &b, 1);
	rec_put_str(&w, big, REC_MAX - 3);
	rec_put_u32(&w, 1);		/* sticky: ignored */
	errno = 0;
	assert_int_equal(rec_finish(&w), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(buf_len(&b), 0);

	rec_begin(&w, &b, 1);
	rec_put_str(&w, big, REC_MAX + 1);
	assert_int_equal(rec_finish(&w), -1);
	rec_begin(&w, &b, 1);
	rec_put_str(&w, big, SIZE_MAX);
	assert_int_equal(rec_finish(&w), -1);
	assert_int_equal(buf_len(&b), 0);

	/* A NUL in a string is refused, earlier records stay whole. */
	rec_begin(&w, &b, 5);
	rec_put_u32(&w, 42);
	assert_int_equal(rec_finish(&w), 0);
	before = buf_len(&b);
	rec_begin(&w, &b, 6);
	rec_put_u64(&w, 1);
	rec_put_str(&w, "a\0b", 3);
	errno = 0;
	assert_int_equal(rec_finish(&w), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(buf_len(&b), before);
	buf_free(&b);

	/* The buffer's own max: the record is removed, not cut. */
	buf_init(&b, 40);
	rec_begin(&w, &b, 5);
	rec_put_u32(&w, 42);
	assert_int_equal(rec_finish(&w), 0);
	before = buf_len(&b);
	rec_begin(&w, &b, 9);
	rec_put_u64(&w, 7);
	rec_put_str(&w, "0123456789012345", 16);
	rec_put_u64(&w, 8);
	errno = 0;
	assert_int_equal(rec_finish(&w), -1);
	assert_int_equal(errno, ENOBUFS);
	assert_int_equal(buf_len(&b), before);
	/* Not even room for a header. */
	assert_int_equal(buf_add(&b, big, 40 - before - 4), 0);
	before = buf_len(&b);
	rec_begin(&w, &b, 9);
	rec_put_u32(&w, 1);
	assert_int_equal(rec_finish(&w), -1);
	assert_int_equal(buf_len(&b), before);

	assert_int_equal(rec_next(&b, &type, &r, &consumed), 1);
	assert_int_equal(type, 5);
	assert_int_equal(consumed, REC_HDR_LEN + 4);
	buf_free(&b);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_lying_lengths),
		cmocka_unit_test(test_writer_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
