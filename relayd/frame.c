/*
 * frame.c: LF-terminated lines (frames) out of a byte stream, and frames
 * into an output buffer.  Only framing lives here: what a line holds is
 * checked by the caller (a Fernet token, decoded by fernet.c).
 *
 * A line may end in CR LF; the CR is dropped.  Empty lines are skipped.
 * The limit counts every byte of a line, its CR and LF included, and is
 * also the input buffer's max: a line that fills the buffer without an LF
 * can only be too long.  Such a line is reported once as FRAME_OVERSIZED;
 * its bytes already buffered are dropped and the rest, up to and including
 * its LF, is discarded as it arrives, never kept.  Framing then carries on
 * with the next line.
 *
 * fi_scan counts the bytes at the front of the buffer already searched
 * for an LF, so a line trickling in byte by byte is searched once, in
 * linear time.  Between a FRAME_LINE and the next call the line stays in
 * the buffer (the caller holds a pointer into it): fi_scan then covers it
 * and its LF, which is the only time the searched bytes end in an LF.
 * Each entry point first drops such a line.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "proto.h"

#define FRAME_MIN	2	/* one byte and its LF */

static void	 frame_in_settle(struct frame_in *);
static void	 frame_in_skip(struct frame_in *);

void
frame_in_init(struct frame_in *fi, size_t max)
{
	if (max < FRAME_MIN)
		max = FRAME_MIN;
	buf_init(&fi->fi_buf, max);
	fi->fi_max = max;
	fi->fi_scan = 0;
	fi->fi_skipping = 0;
}

void
frame_in_free(struct frame_in *fi)
{
	buf_free(&fi->fi_buf);
	fi->fi_scan = 0;
	fi->fi_skipping = 0;
}

/* Drops the line handed out by the last frame_in_next(), if any. */
static void
frame_in_settle(struct frame_in *fi)
{
	const unsigned char	*p;

	p = buf_data(&fi->fi_buf);
	if (fi->fi_scan > 0 && p[fi->fi_scan - 1] == '\n') {
		buf_drain(&fi->fi_buf, fi->fi_scan);
		fi->fi_scan = 0;
	}
}

/*
 * Inside an oversized line, discards buffered bytes up to and including
 * the LF that ends it.
 */
static void
frame_in_skip(struct frame_in *fi)
{
	const unsigned char	*p, *lf;
	size_t			 len;

	if (!fi->fi_skipping)
		return;
	p = buf_data(&fi->fi_buf);
	len = buf_len(&fi->fi_buf);
	if ((lf = memchr(p, '\n', len)) == NULL) {
		buf_drain(&fi->fi_buf, len);
		return;
	}
	buf_drain(&fi->fi_buf, (size_t)(lf - p) + 1);
	fi->fi_skipping = 0;
}

/*
 * Takes bytes as if read(2) had returned them, at most as many as the
 * buffer has room for; bytes of an oversized line are discarded without
 * being copied and count as taken.  Returns the number of bytes taken
 * (at most INT_MAX; fewer than n when the buffer fills up: call
 * frame_in_next() until FRAME_NONE, then feed the rest), or -1 with ENOBUFS
 * when the buffer is full (frame_in_next() must run first) or ENOMEM.
 */
int
frame_in_feed(struct frame_in *fi, const void *data, size_t n)
{
	const unsigned char	*p = data, *lf;
	size_t			 taken = 0, room;

	frame_in_settle(fi);
	if (n > INT_MAX)
		n = INT_MAX;
	if (n == 0)
		return 0;
	if (fi->fi_skipping) {
		frame_in_skip(fi);	/* nothing should be buffered */
		if ((lf = memchr(p, '\n', n)) == NULL)
			return (int)n;
		taken = (size_t)(lf - p) + 1;
		fi->fi_skipping = 0;
	}
	if (taken == n)
		return (int)taken;
	room = buf_max(&fi->fi_buf) - buf_len(&fi->fi_buf);
	if (room == 0) {
		if (taken > 0)
			return (int)taken;
		errno = ENOBUFS;
		return -1;
	}
	if (room > n - taken)
		room = n - taken;
	if (buf_add(&fi->fi_buf, p + taken, room) == -1) {
		if (taken > 0)
			return (int)taken;
		return -1;
	}
	return (int)(taken + room);
}

/*
 * One read(2) into the buffer.  Returns the bytes read, 0 at end of file,
 * or -1 with errno (EAGAIN and the like from read(2); ENOBUFS when the
 * buffer is full and frame_in_next() must run first).
 */
ssize_t
frame_in_read(struct frame_in *fi, int fd)
{
	ssize_t	 n;

	frame_in_settle(fi);
	n = buf_read(&fi->fi_buf, fd);
	if (n > 0)
		frame_in_skip(fi);
	return n;
}

/*
 * Returns FRAME_LINE with *line and *len set to the next line, without its
 * CR LF; *line stays valid until the next call on fi.  FRAME_NONE: more
 * bytes are needed.  FRAME_OVERSIZED: a line passed the limit (once per
 * such line).
 */
int
frame_in_next(struct frame_in *fi, const char **line, size_t *len)
{
	const unsigned char	*p, *lf;
	size_t			 have, n;

	frame_in_settle(fi);
	frame_in_skip(fi);
	for (;;) {
		p = buf_data(&fi->fi_buf);
		have = buf_len(&fi->fi_buf);
		if (fi->fi_scan > have)
			fi->fi_scan = have;
		lf = memchr(p + fi->fi_scan, '\n', have - fi->fi_scan);
		if (lf == NULL) {
			fi->fi_scan = have;
			if (have < fi->fi_max)
				return FRAME_NONE;
			/* The buffer is full and holds no LF. */
			buf_drain(&fi->fi_buf, have);
			fi->fi_scan = 0;
			fi->fi_skipping = 1;
			return FRAME_OVERSIZED;
		}
		fi->fi_scan = (size_t)(lf - p) + 1;
		n = fi->fi_scan - 1;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0) {
			frame_in_settle(fi);
			continue;
		}
		*line = (const char *)p;
		*len = n;
		return FRAME_LINE;
	}
}

/* Appends tok and its LF, or nothing.  tok must be one non-empty line. */
int
frame_out_add(struct buf *b, const char *tok, size_t len)
{
	unsigned char	*p;

	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (len >= buf_max(b)) {
		errno = ENOBUFS;
		return -1;
	}
	if (memchr(tok, '\n', len) != NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((p = buf_reserve(b, len + 1)) == NULL)
		return -1;
	memcpy(p, tok, len);
	p[len] = '\n';
	buf_commit(b, len + 1);
	return 0;
}
