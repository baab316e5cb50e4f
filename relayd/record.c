/*
 * record.c: typed, length-prefixed records between the hub and its
 * workers and on the control socket.  A record is a header (u32 type, u32
 * payload length, host order) and a payload of u32, u64 and strings (u32
 * length then the bytes, no terminator), at most REC_MAX bytes.
 *
 * Writing: rec_begin(), rec_put_*(), rec_finish().  A failed put is
 * sticky and rec_finish() then removes the partial record, so a buffer
 * only ever holds whole records.  No bytes may be drained from the buffer
 * between rec_begin() and rec_finish().
 *
 * Reading: the peer may be a compromised worker, so every getter checks
 * the bytes left before it reads, nothing is read in place as a wider
 * type (memcpy, no alignment assumed), and rec_end() refuses trailing
 * bytes.  Strings never hold NUL (no protocol string may: bodies, names
 * and reasons are NUL-free), so both ends refuse one; this keeps a string
 * safe to print with "%.*s".
 */
#include <errno.h>
#include <string.h>

#include "proto.h"

static void	 rec_put(struct rec_writer *, const void *, size_t);

void
rec_begin(struct rec_writer *w, struct buf *b, uint32_t type)
{
	uint32_t	 hdr[2];

	w->b = b;
	w->hdr = buf_len(b);
	w->err = 0;
	hdr[0] = type;
	hdr[1] = 0;		/* set by rec_finish() */
	if (buf_add(b, hdr, sizeof(hdr)) == -1)
		w->err = errno != 0 ? errno : ENOBUFS;
}

/* Appends payload bytes unless a put already failed or REC_MAX is hit. */
static void
rec_put(struct rec_writer *w, const void *p, size_t n)
{
	size_t	 used;

	if (w->err != 0)
		return;
	used = buf_len(w->b) - w->hdr - REC_HDR_LEN;
	if (n > REC_MAX || used > REC_MAX - n) {
		w->err = EMSGSIZE;
		return;
	}
	if (buf_add(w->b, p, n) == -1)
		w->err = errno != 0 ? errno : ENOBUFS;
}

void
rec_put_u32(struct rec_writer *w, uint32_t v)
{
	rec_put(w, &v, sizeof(v));
}

void
rec_put_u64(struct rec_writer *w, uint64_t v)
{
	rec_put(w, &v, sizeof(v));
}

void
rec_put_str(struct rec_writer *w, const char *s, size_t len)
{
	uint32_t	 n;

	if (w->err != 0)
		return;
	if (len > REC_MAX) {
		w->err = EMSGSIZE;
		return;
	}
	if (len > 0 && memchr(s, '\0', len) != NULL) {
		w->err = EINVAL;
		return;
	}
	n = (uint32_t)len;
	rec_put(w, &n, sizeof(n));
	if (len > 0)
		rec_put(w, s, len);
}

/*
 * Sets the payload length in the header.  Returns 0, or -1 with errno
 * from the first failed put, the partial record removed.
 */
int
rec_finish(struct rec_writer *w)
{
	uint32_t	 len;

	if (w->err == 0) {
		len = (uint32_t)(buf_len(w->b) - w->hdr - REC_HDR_LEN);
		if (buf_patch(w->b, w->hdr + sizeof(uint32_t), &len,
		    sizeof(len)) == 0)
			return 0;
		w->err = errno;
	}
	buf_truncate(w->b, w->hdr);
	errno = w->err;
	return -1;
}

/*
 * Looks at the front of in.  Returns 1 with the type and a reader over
 * the payload when a whole record is there (the caller then drains
 * *consumed bytes, after it is done with the reader), 0 when more bytes
 * are needed, or -1 with EMSGSIZE when the header announces more than
 * REC_MAX or more than in can ever hold: the peer is broken.
 */
int
rec_next(struct buf *in, uint32_t *type, struct rec_reader *r,
    size_t *consumed)
{
	const unsigned char	*p;
	uint32_t		 hdr[2];
	size_t			 total;

	if (buf_len(in) < REC_HDR_LEN)
		return 0;
	p = buf_data(in);
	memcpy(hdr, p, sizeof(hdr));
	if (hdr[1] > REC_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	total = REC_HDR_LEN + (size_t)hdr[1];
	if (total > buf_max(in)) {
		errno = EMSGSIZE;
		return -1;
	}
	if (buf_len(in) < total)
		return 0;
	*type = hdr[0];
	r->p = p + REC_HDR_LEN;
	r->left = hdr[1];
	*consumed = total;
	return 1;
}

int
rec_get_u32(struct rec_reader *r, uint32_t *v)
{
	if (r->left < sizeof(*v)) {
		errno = EBADMSG;
		return -1;
	}
	memcpy(v, r->p, sizeof(*v));
	r->p += sizeof(*v);
	r->left -= sizeof(*v);
	return 0;
}

int
rec_get_u64(struct rec_reader *r, uint64_t *v)
{
	if (r->left < sizeof(*v)) {
		errno = EBADMSG;
		return -1;
	}
	memcpy(v, r->p, sizeof(*v));
	r->p += sizeof(*v);
	r->left -= sizeof(*v);
	return 0;
}

/*
 * *s points into the record, not terminated.  A string that runs past the
 * payload or holds a NUL gives -1; the reader is then left unchanged.
 */
int
rec_get_str(struct rec_reader *r, const char **s, size_t *len)
{
	uint32_t	 n;

	if (r->left < sizeof(n)) {
		errno = EBADMSG;
		return -1;
	}
	memcpy(&n, r->p, sizeof(n));
	if (n > r->left - sizeof(n)) {
		errno = EBADMSG;
		return -1;
	}
	if (memchr(r->p + sizeof(n), '\0', n) != NULL) {
		errno = EBADMSG;
		return -1;
	}
	*s = (const char *)(r->p + sizeof(n));
	*len = n;
	r->p += sizeof(n) + n;
	r->left -= sizeof(n) + n;
	return 0;
}

/* 0 when the whole payload was read, -1 if bytes are left over. */
int
rec_end(const struct rec_reader *r)
{
	if (r->left != 0) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}
