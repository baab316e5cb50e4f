/*
 * fuzz_record.c: libFuzzer target for records as the hub reads them from
 * a worker that may be compromised.  The input is the byte stream, fed in
 * chunks; each whole record is read with a sequence of getters that its
 * type picks (2 bits per field: u32, u64, str, stop).  A record read to
 * its end is written again with rec_put_*() and must come out byte for
 * byte the same.  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "fuzz.h"

static void
fuzz_one(uint32_t type, struct rec_reader *r, const unsigned char *rec,
    size_t reclen)
{
	struct rec_writer	 w;
	struct buf		 out;
	const unsigned char	*end = r->p + r->left;
	const char		*s;
	uint64_t		 u64;
	uint32_t		 u32, t = type;
	size_t			 len;
	int			 i, ok = 1;

	buf_init(&out, REC_HDR_LEN + REC_MAX);
	rec_begin(&w, &out, type);
	for (i = 0; i < 16 && ok; i++, t >>= 2) {
		switch (t & 3) {
		case 0:
			if ((ok = rec_get_u32(r, &u32) == 0))
				rec_put_u32(&w, u32);
			break;
		case 1:
			if ((ok = rec_get_u64(r, &u64) == 0))
				rec_put_u64(&w, u64);
			break;
		case 2:
			if ((ok = rec_get_str(r, &s, &len) == 0)) {
				CHECK((const unsigned char *)s + len <= end);
				CHECK(memchr(s, '\0', len) == NULL);
				rec_put_str(&w, s, len);
			}
			break;
		default:
			i = 16;
			break;
		}
		CHECK(r->p + r->left == end);
	}
	if (ok && rec_end(r) == 0) {
		CHECK(rec_finish(&w) == 0);
		CHECK(buf_len(&out) == reclen);
		CHECK(memcmp(buf_data(&out), rec, reclen) == 0);
	} else {
		/* Nothing checked failed the writer: it must finish too. */
		CHECK(rec_finish(&w) == 0);
	}
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec_reader	 r;
	struct buf		 in;
	uint32_t		 type, x;
	size_t			 pos = 0, chunk, consumed;
	int			 rc;

	if (size < 1)
		return 0;
	x = data[0] * 2654435761U + 1;
	data++;
	size--;
	buf_init(&in, REC_HDR_LEN + REC_MAX);
	for (;;) {
		while ((rc = rec_next(&in, &type, &r, &consumed)) == 1) {
			CHECK(consumed == REC_HDR_LEN + r.left);
			CHECK(consumed <= buf_len(&in));
			fuzz_one(type, &r, buf_data(&in), consumed);
			buf_drain(&in, consumed);
		}
		if (rc == -1 || pos == size)
			break;
		x = x * 1103515245 + 12345;
		chunk = 1 + (x >> 16) % 64;
		if (chunk > size - pos)
			chunk = size - pos;
		CHECK(buf_add(&in, data + pos, chunk) == 0);
		pos += chunk;
	}
	buf_free(&in);
	return 0;
}
