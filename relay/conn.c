/*
 * conn.c: the client's end of one connection.  It owns the socket, the
 * Fernet key, the HEAD and both SEQ counters.  Outgoing commands are
 * encrypted and queued in a bounded buffer; incoming lines are decrypted
 * and checked in the order relay(7) gives (token, TTL, HEAD, SEQ), and a
 * frame that fails a check is dropped without using up a SEQ.  Nothing
 * here prints; errors are returned.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "relay.h"

#define PLAIN_MAX	(BODY_MAX_DEFAULT + 256)	/* one plaintext */
#define IV_LEN		16

struct conn {
	int		 fd;
	struct fernet	*f;
	char		 head[HEAD_LEN + 1];
	uint64_t	 seq_out;	/* last SEQ sent */
	uint64_t	 seq_in;	/* last SEQ accepted */
	struct frame_in	 in;
	struct buf	 out;
	char		*plain;		/* outgoing plaintext */
	char		*token;		/* outgoing token */
	size_t		 tokensize;
	unsigned char	*dec;		/* incoming plaintext */
	size_t		 decsize;
};

static char	conn_errbuf[512];

static int
conn_connect_one(const struct addrinfo *ai, int timeout, int *err)
{
	struct pollfd	 pfd;
	socklen_t	 len;
	int		 fd, rc, soerr;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*err = errno;
		close(fd);
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do
		rc = poll(&pfd, 1, timeout * 1000);
	while (rc == -1 && errno == EINTR);
	if (rc <= 0) {
		*err = rc == 0 ? ETIMEDOUT : errno;
		close(fd);
		return -1;
	}
	len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		*err = soerr;
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Connect to host and port, trying every address within timeout seconds
 * each.  Returns NULL and a reason in *errstr on failure.
 */
struct conn *
conn_open(const char *host, const char *port, int timeout,
    const char **errstr)
{
	struct addrinfo	 hints, *res, *ai;
	struct conn	*c;
	int		 fd = -1, gerr, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((gerr = getaddrinfo(host, port, &hints, &res)) != 0) {
		(void)snprintf(conn_errbuf, sizeof(conn_errbuf), "%s: %s",
		    host, gai_strerror(gerr));
		*errstr = conn_errbuf;
		return NULL;
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = conn_connect_one(ai, timeout, &err);
	freeaddrinfo(res);
	if (fd == -1) {
		(void)snprintf(conn_errbuf, sizeof(conn_errbuf),
		    "cannot connect to %s port %s: %s", host, port,
		    strerror(err));
		*errstr = conn_errbuf;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	c->fd = fd;
	c->tokensize = fernet_token_len(PLAIN_MAX) + 1;
	c->decsize = fernet_plain_max(FRAME_MAX_DEFAULT) + 1;
	if ((c->plain = malloc(PLAIN_MAX)) == NULL ||
	    (c->token = malloc(c->tokensize)) == NULL ||
	    (c->dec = malloc(c->decsize)) == NULL) {
		conn_free(c);
		fd = -1;
		goto nomem;
	}
	frame_in_init(&c->in, FRAME_MAX_DEFAULT);
	buf_init(&c->out, OUT_MAX);
	return c;
nomem:
	if (fd != -1)
		close(fd);
	*errstr = "out of memory";
	return NULL;
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	if (c->f != NULL)
		fernet_free(c->f);
	if (c->plain != NULL) {
		frame_in_free(&c->in);
		buf_free(&c->out);
		explicit_bzero(c->plain, PLAIN_MAX);
	}
	if (c->dec != NULL)
		explicit_bzero(c->dec, c->decsize);
	free(c->plain);
	free(c->token);
	free(c->dec);
	explicit_bzero(c->head, sizeof(c->head));
	free(c);
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

/* Use the key b64 (44 characters) for every later frame, both ways. */
int
conn_setkey(struct conn *c, const char *b64)
{
	unsigned char	 raw[FERNET_KEY_LEN];
	struct fernet	*f;

	if (fernet_key_parse(b64, strlen(b64), raw) != 0)
		return -1;
	f = fernet_new(raw);
	explicit_bzero(raw, sizeof(raw));
	if (f == NULL)
		return -1;
	if (c->f != NULL)
		fernet_free(c->f);
	c->f = f;
	return 0;
}

int
conn_sethead(struct conn *c, const char *secret)
{
	const char	*errstr;

	if (secret_head(secret, c->head, &errstr) != 0)
		return -1;
	return 0;
}

/* Encrypt and queue one plaintext of n bytes in c->plain. */
static int
conn_queue(struct conn *c, size_t n)
{
	unsigned char	 iv[IV_LEN];
	size_t		 toklen;
	int		 rc;

	random_bytes(iv, sizeof(iv));
	rc = fernet_encrypt(c->f, c->plain, n, (uint64_t)time(NULL), iv,
	    c->token, c->tokensize, &toklen);
	explicit_bzero(c->plain, n);
	if (rc != 0) {
		errno = EINVAL;
		return -1;
	}
	if (frame_out_add(&c->out, c->token, toklen) == -1) {
		errno = ENOBUFS;
		return -1;
	}
	c->seq_out++;
	return 0;
}

/*
 * Queue the command built from fmt; HEAD and SEQ are added here.  Returns
 * -1 if it does not fit (the caller checked the body's size) or the
 * output queue is full.
 */
int
conn_send(struct conn *c, const char *fmt, ...)
{
	va_list	 ap;
	int	 n, m;

	n = snprintf(c->plain, PLAIN_MAX, "%s %llu ", c->head,
	    (unsigned long long)(c->seq_out + 1));
	if (n < 0 || n >= PLAIN_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	va_start(ap, fmt);
	m = vsnprintf(c->plain + n, PLAIN_MAX - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0 || m >= PLAIN_MAX - n) {
		errno = EMSGSIZE;
		return -1;
	}
	return conn_queue(c, (size_t)n + (size_t)m);
}

/* Queue "VERB BODY" where BODY is n arbitrary bytes but NUL. */
int
conn_sendbody(struct conn *c, const char *prefix, const char *body,
    size_t n)
{
	int	 len;

	len = snprintf(c->plain, PLAIN_MAX, "%s %llu %s ", c->head,
	    (unsigned long long)(c->seq_out + 1), prefix);
	if (len < 0 || (size_t)len + n >= PLAIN_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(c->plain + len, body, n);
	return conn_queue(c, (size_t)len + n);
}

int
conn_want_write(const struct conn *c)
{
	return buf_len(&c->out) > 0;
}

size_t
conn_queued(const struct conn *c)
{
	return buf_len(&c->out);
}

/* Write what is queued.  -1 on a real error; 0 otherwise. */
int
conn_flush(struct conn *c)
{
	if (buf_len(&c->out) == 0)
		return 0;
	if (buf_write(&c->out, c->fd) == -1 && errno != EAGAIN &&
	    errno != EWOULDBLOCK && errno != EINTR)
		return -1;
	return 0;
}

/* Read what the socket has.  1: read or nothing yet, 0: EOF, -1: error. */
ssize_t
conn_read(struct conn *c)
{
	ssize_t	 n;

	n = frame_in_read(&c->in, c->fd);
	if (n == -1) {
		/* ENOBUFS: a full buffer; conn_next() makes room. */
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR || errno == ENOBUFS)
			return 1;
		return -1;
	}
	return n == 0 ? 0 : 1;
}

/*
 * The next valid frame: *rest points at its plaintext after "HEAD SEQ "
 * (terminated; valid until the next call) and *len is its length.  Returns
 * 1, 0 when no complete frame is buffered, or -2 for each frame dropped
 * as invalid (the caller may count them).
 */
int
conn_next(struct conn *c, char **rest, size_t *len)
{
	struct proto_msg	 m;
	const char		*line;
	size_t			 n, plen;
	int			 rc;

	for (;;) {
		rc = frame_in_next(&c->in, &line, &n);
		if (rc == FRAME_NONE)
			return 0;
		if (rc == FRAME_OVERSIZED)
			return -2;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		if (c->f == NULL)
			return -2;
		rc = fernet_decrypt(c->f, line, n, (uint64_t)time(NULL),
		    TTL_DEFAULT, c->dec, c->decsize - 1, &plen);
		if (rc != 0)
			return -2;
		c->dec[plen] = '\0';
		if (memchr(c->dec, '\0', plen) != NULL ||
		    proto_split((char *)c->dec, plen, &m) != 0 ||
		    CRYPTO_memcmp(m.head, c->head, HEAD_LEN) != 0 ||
		    m.seq != c->seq_in + 1)
			return -2;
		c->seq_in++;
		*rest = (char *)c->dec + (m.rest - (const char *)c->dec);
		*len = m.restlen;
		return 1;
	}
}
