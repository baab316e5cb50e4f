/*
 * buf.c: one bounded byte buffer, the only code that touches struct buf's
 * fields.  Bytes are appended at the end and consumed from the front.
 *
 * Memory policy, chosen for a daemon with one process per client:
 * - Nothing is allocated until the first byte is added (a read(2) that
 *   brings nothing leaves an unused buffer so), and a buffer that is never
 *   used costs nothing.
 * - Growth doubles, from BUF_INITIAL, and never passes the buffer's max:
 *   appending past max fails with ENOBUFS and adds nothing.
 * - Consumed bytes at the front are reclaimed by moving the live bytes to
 *   the front when the tail is short of room, before growing.
 * - A buffer that empties (buf_drain(), buf_write()) while holding more
 *   than BUF_KEEP bytes is wiped and freed, so a burst does not pin memory
 *   in an idle worker or behind a hub queue that has caught up.  A small
 *   buffer keeps its memory: steady traffic of short frames then allocates
 *   nothing.  buf_reset() keeps the memory whatever its size.
 * - Memory is wiped before it goes back to the allocator (growth and
 *   free), as buffers carry plaintext between the hub and its workers.
 * - Bytes are wiped as soon as they are consumed or cut off (drain,
 *   truncate, reset, the room left behind by a move), so a worker forked
 *   from the hub finds no other session's traffic in the memory it
 *   inherits, and no buffer keeps plaintext it no longer holds.
 *
 * Every size computation is checked for overflow before it is used.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

#define BUF_INITIAL	512		/* first allocation, if max allows */
#define BUF_KEEP	4096		/* an emptied buffer keeps this much */
#define BUF_READ_MIN	4096		/* room asked for before a read(2) */

static int	 buf_room(struct buf *, size_t);
static void	 buf_release(struct buf *);

void
buf_init(struct buf *b, size_t max)
{
	b->PRIVATE_data = NULL;
	b->PRIVATE_start = 0;
	b->PRIVATE_end = 0;
	b->PRIVATE_cap = 0;
	b->PRIVATE_max = max;
}

/* Wipes and frees the memory; the buffer stays usable, empty, same max. */
static void
buf_release(struct buf *b)
{
	if (b->PRIVATE_data != NULL) {
		explicit_bzero(b->PRIVATE_data, b->PRIVATE_cap);
		free(b->PRIVATE_data);
	}
	b->PRIVATE_data = NULL;
	b->PRIVATE_start = 0;
	b->PRIVATE_end = 0;
	b->PRIVATE_cap = 0;
}

void
buf_free(struct buf *b)
{
	buf_release(b);
}

void
buf_reset(struct buf *b)
{
	if (b->PRIVATE_data != NULL)
		explicit_bzero(b->PRIVATE_data, b->PRIVATE_end);
	b->PRIVATE_start = 0;
	b->PRIVATE_end = 0;
}

size_t
buf_len(const struct buf *b)
{
	return b->PRIVATE_end - b->PRIVATE_start;
}

size_t
buf_max(const struct buf *b)
{
	return b->PRIVATE_max;
}

/*
 * Never NULL, so that callers may hand an empty buffer's data to memcpy()
 * or memcmp() with a length of zero.
 */
const unsigned char *
buf_data(const struct buf *b)
{
	static const unsigned char empty[1];

	if (b->PRIVATE_data == NULL)
		return empty;
	return b->PRIVATE_data + b->PRIVATE_start;
}

/*
 * Makes room for n more bytes after the end: first by moving the live
 * bytes to the front, then by doubling the allocation up to max.  Fails
 * with ENOBUFS (past max) or ENOMEM and then changes nothing.
 */
static int
buf_room(struct buf *b, size_t n)
{
	size_t		 len, need, cap;
	unsigned char	*p;

	len = buf_len(b);
	if (n > b->PRIVATE_max || len > b->PRIVATE_max - n) {
		errno = ENOBUFS;
		return -1;
	}
	need = len + n;
	if (b->PRIVATE_cap - b->PRIVATE_end >= n)
		return 0;
	if (b->PRIVATE_cap >= need) {
		/* Data is NULL only while cap and len are 0: not here. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		memmove(b->PRIVATE_data, b->PRIVATE_data + b->PRIVATE_start,
		    len);
		explicit_bzero(b->PRIVATE_data + len, b->PRIVATE_end - len);
		b->PRIVATE_start = 0;
		b->PRIVATE_end = len;
		return 0;
	}

	cap = b->PRIVATE_cap != 0 ? b->PRIVATE_cap : BUF_INITIAL;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	if (cap > b->PRIVATE_max)
		cap = b->PRIVATE_max;

	/* Not realloc(): the old block must be wiped before it is freed. */
	if ((p = malloc(cap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (len > 0)
		/* Data is NULL only while cap and len are 0: not here. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		memcpy(p, b->PRIVATE_data + b->PRIVATE_start, len);
	buf_release(b);
	b->PRIVATE_data = p;
	b->PRIVATE_cap = cap;
	b->PRIVATE_end = len;
	return 0;
}

void *
buf_reserve(struct buf *b, size_t n)
{
	if (buf_room(b, n) == -1)
		return NULL;
	if (b->PRIVATE_data == NULL) {
		/* n == 0 on a buffer never used: room for nothing. */
		static unsigned char none[1];

		return none;
	}
	return b->PRIVATE_data + b->PRIVATE_end;
}

/* Commits n bytes written after a successful buf_reserve(b, n' >= n). */
void
buf_commit(struct buf *b, size_t n)
{
	if (n > b->PRIVATE_cap - b->PRIVATE_end)
		n = b->PRIVATE_cap - b->PRIVATE_end;
	b->PRIVATE_end += n;
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_room(b, n) == -1)
		return -1;
	memcpy(b->PRIVATE_data + b->PRIVATE_end, p, n);
	b->PRIVATE_end += n;
	return 0;
}

/*
 * The text goes straight into the buffer, with room for vsnprintf's NUL
 * after it.  When the text fits only without that NUL (it ends exactly at
 * max), it is formatted in a scratch block first.
 */
int
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*tmp;
	void	*p;
	size_t	 n;
	int	 r;

	va_start(ap, fmt);
	r = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (r < 0) {
		errno = EINVAL;
		return -1;
	}
	n = (size_t)r;
	if (n > buf_max(b) || buf_len(b) > buf_max(b) - n) {
		errno = ENOBUFS;
		return -1;
	}
	if (buf_len(b) + n < buf_max(b)) {
		if ((p = buf_reserve(b, n + 1)) == NULL)
			return -1;
		va_start(ap, fmt);
		r = vsnprintf(p, n + 1, fmt, ap);
		va_end(ap);
		if (r < 0 || (size_t)r != n) {
			errno = EINVAL;
			return -1;
		}
		buf_commit(b, n);
		return 0;
	}

	if ((tmp = malloc(n + 1)) == NULL)
		return -1;
	va_start(ap, fmt);
	r = vsnprintf(tmp, n + 1, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r != n) {
		explicit_bzero(tmp, n + 1);
		free(tmp);
		errno = EINVAL;
		return -1;
	}
	r = buf_add(b, tmp, n);
	explicit_bzero(tmp, n + 1);
	free(tmp);
	return r;
}

void
buf_drain(struct buf *b, size_t n)
{
	if (n >= buf_len(b)) {
		if (b->PRIVATE_cap > BUF_KEEP)
			buf_release(b);
		else
			buf_reset(b);
		return;
	}
	explicit_bzero(b->PRIVATE_data + b->PRIVATE_start, n);
	b->PRIVATE_start += n;
}

/* Keeps the first n bytes; n past the end changes nothing. */
void
buf_truncate(struct buf *b, size_t n)
{
	if (n < buf_len(b)) {
		explicit_bzero(b->PRIVATE_data + b->PRIVATE_start + n,
		    buf_len(b) - n);
		b->PRIVATE_end = b->PRIVATE_start + n;
	}
}

/* Overwrites n bytes at offset off, which must lie inside the data. */
int
buf_patch(struct buf *b, size_t off, const void *p, size_t n)
{
	if (off > buf_len(b) || n > buf_len(b) - off) {
		errno = ERANGE;
		return -1;
	}
	if (n > 0)
		memcpy(b->PRIVATE_data + b->PRIVATE_start + off, p, n);
	return 0;
}

/*
 * One read(2) into the free space, never past max.  Returns what read(2)
 * returned; a full buffer gives -1 with ENOBUFS without reading.
 */
ssize_t
buf_read(struct buf *b, int fd)
{
	size_t	 want, room;
	ssize_t	 n;
	int	 fresh, save;

	if (buf_len(b) >= b->PRIVATE_max) {
		errno = ENOBUFS;
		return -1;
	}
	want = b->PRIVATE_max - buf_len(b);
	if (want > BUF_READ_MIN)
		want = BUF_READ_MIN;
	fresh = b->PRIVATE_data == NULL;
	if (buf_room(b, want) == -1)
		return -1;
	/* Whatever room the allocation has, up to max. */
	room = b->PRIVATE_cap - b->PRIVATE_end;
	if (room > b->PRIVATE_max - buf_len(b))
		room = b->PRIVATE_max - buf_len(b);
	if (room > SSIZE_MAX)
		room = SSIZE_MAX;
	n = read(fd, b->PRIVATE_data + b->PRIVATE_end, room);
	if (n > 0)
		b->PRIVATE_end += (size_t)n;
	else if (fresh) {
		/* Nothing came: stay as small as before the call. */
		save = errno;
		buf_release(b);
		errno = save;
	}
	return n;
}

/* One write(2) of every pending byte; what was written is drained. */
ssize_t
buf_write(struct buf *b, int fd)
{
	size_t	 len;
	ssize_t	 n;

	if ((len = buf_len(b)) == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	n = write(fd, buf_data(b), len);
	if (n > 0)
		buf_drain(b, (size_t)n);
	return n;
}
