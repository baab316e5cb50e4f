/*
 * proto.h: what relayd, relayctl and relay share.  The limits and defaults
 * of protocol v1 (relay(7)), and the interfaces of the pure modules that are
 * compiled once into build/librelay.a: log, buf, fernet, secret, frame,
 * proto (the plaintext codec) and record (hub and control records).
 *
 * Pure modules never log and never exit: they return -1 (or an error code)
 * and, where useful, set an errstr the caller can log.
 *
 * Bump RELAY_RECORD_VERSION whenever a record type or layout changes.
 */
#ifndef RELAY_PROTO_H
#define RELAY_PROTO_H

#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_PROTO_NAME	"relay/1"
#define RELAY_RECORD_VERSION	2

#define RELAY_PORT		65432
#define RELAY_PORT_STR		"65432"
#define FRAME_MAX_DEFAULT	65536	/* bytes in a line, LF included */
#define BODY_MAX_DEFAULT	32768	/* bytes in a BODY field */
#define TTL_DEFAULT		120	/* seconds a token stays valid */
#define FUTURE_SKEW		60	/* seconds a token may come early */
#define INVALID_MAX_DEFAULT	3	/* invalid frames in a row, then BYE */
#define LOGIN_FAIL_MAX		3	/* failed LOGINs on one connection */
#define LOGIN_GRACE_DEFAULT	30	/* seconds from connect to LOGIN */
#define ROTATE_GRACE_DEFAULT	60	/* seconds old-key frames pass */
#define MAILBOX_MAX_DEFAULT	10000	/* items per mailbox */
#define SLOW_MAX_DEFAULT	(1024 * 1024)	/* pending output bytes */

#define HEAD_LEN		32	/* hex MD5 of the secret code */
#define SECRET_MIN		4	/* digits */
#define SECRET_MAX		18
#define NONCE_LEN		32	/* hex characters */
#define PROOF_LEN		64	/* hex HMAC-SHA256 */
#define MD5_HEX_LEN		32
#define USER_MAX		32
#define ID_MAX			64
#define TOKEN_MAX		64
#define VERB_MAX		16
#define SEQ_DIGITS_MAX		19	/* a SEQ fits in uint64_t */

#ifndef __dead
#define __dead __attribute__((__noreturn__))
#endif

/* log.c */
void	 log_init(int debug, int facility);
void	 log_procname(const char *);
void	 log_setverbose(int);
int	 log_getverbose(void);
void	 log_warn(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
void	 log_warnx(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
void	 log_info(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
void	 log_debug(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
void	 log_limited(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
__dead void fatal(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
__dead void fatalx(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));

/*
 * buf.c: one bounded byte buffer.  Only buf.c touches the fields.  Bytes
 * are appended at the end and consumed from the front; the buffer never
 * grows past its max, and buf_add() fails with ENOBUFS instead.
 */
struct buf {
	unsigned char	*PRIVATE_data;
	size_t		 PRIVATE_start;	/* first unconsumed byte */
	size_t		 PRIVATE_end;	/* one past the last byte */
	size_t		 PRIVATE_cap;	/* bytes allocated */
	size_t		 PRIVATE_max;	/* hard limit on buf_len() */
};
void	 buf_init(struct buf *, size_t max);
void	 buf_free(struct buf *);		/* wipes and frees */
void	 buf_reset(struct buf *);		/* empties, keeps memory */
size_t	 buf_len(const struct buf *);
size_t	 buf_max(const struct buf *);
const unsigned char *buf_data(const struct buf *);
int	 buf_add(struct buf *, const void *, size_t);
int	 buf_addf(struct buf *, const char *, ...)
	    __attribute__((__format__(printf, 2, 3)));
void	*buf_reserve(struct buf *, size_t);	/* room for n more bytes */
void	 buf_commit(struct buf *, size_t);	/* n reserved bytes used */
void	 buf_drain(struct buf *, size_t);
void	 buf_truncate(struct buf *, size_t);	/* keep the first n bytes */
int	 buf_patch(struct buf *, size_t, const void *, size_t);
ssize_t	 buf_read(struct buf *, int fd);	/* one read(2) up to max */
ssize_t	 buf_write(struct buf *, int fd);	/* one write(2), drains */

/*
 * fernet.c: Fernet tokens (version 0x80) on libcrypto EVP.  A struct fernet
 * holds one key and reusable cipher contexts; fernet_free() wipes it.
 * fernet_key_parse() takes exactly 44 characters of canonical URL-safe
 * base64 (no line ending) and returns 0 or -1; fernet_key_generate()
 * returns 0 or -1.  fernet_encrypt(f, pt, ptlen, now, iv or NULL, out,
 * outlen, &toklen) writes fernet_token_len(ptlen) characters and no NUL
 * or LF (iv: 16 bytes for test vectors; NULL draws a fresh one).
 * fernet_decrypt(f, tok, toklen, now, ttl, out, outlen, &ptlen) checks
 * base64, length, version, HMAC, then the clock (age exactly ttl passes,
 * ttl 0 checks no age, more than FUTURE_SKEW ahead always fails), then
 * padding; out of fernet_plain_max(toklen) bytes is always enough, and
 * on failure out holds no plaintext.  Both return FERNET_OK or an error.
 * fernet_init() (optional; 0 or -1) fetches the algorithms once for
 * every later fernet_new(), in this process and its children, and turns
 * off libcrypto's exit(3) cleanup; fernet_fini() does that cleanup.
 */
#define FERNET_KEY_LEN		32	/* raw bytes */
#define FERNET_KEY_B64LEN	44	/* URL-safe base64 */
#define FERNET_OVERHEAD		57	/* version, time, IV, HMAC */

enum fernet_error {
	FERNET_OK = 0,
	FERNET_EBASE64 = -1,	/* not canonical URL-safe base64 */
	FERNET_ESHORT = -2,	/* too short to be a token */
	FERNET_EVERSION = -3,	/* first byte is not 0x80 */
	FERNET_EMAC = -4,	/* HMAC does not verify */
	FERNET_EPADDING = -5,	/* bad length or PKCS#7 padding */
	FERNET_EEXPIRED = -6,	/* older than the TTL */
	FERNET_EFUTURE = -7,	/* more than FUTURE_SKEW ahead */
	FERNET_ESPACE = -8,	/* output buffer too small */
	FERNET_EKEY = -9,	/* not a valid key */
	FERNET_ECRYPTO = -10	/* libcrypto failed */
};

struct fernet;
int	 fernet_key_parse(const char *, size_t, unsigned char *);
void	 fernet_key_format(const unsigned char *, char *);  /* 45 bytes */
int	 fernet_key_generate(unsigned char *);
int	 fernet_init(void);		/* once, before any fork */
void	 fernet_fini(void);
struct fernet *fernet_new(const unsigned char *);
void	 fernet_free(struct fernet *);
size_t	 fernet_token_len(size_t);	/* token length for n plaintext */
size_t	 fernet_plain_max(size_t);	/* plaintext bound for n token */
int	 fernet_encrypt(struct fernet *, const void *, size_t, uint64_t,
	    const unsigned char *, char *, size_t, size_t *);
int	 fernet_decrypt(struct fernet *, const char *, size_t, uint64_t,
	    uint64_t, unsigned char *, size_t, size_t *);
const char *fernet_strerror(int);
void	 random_bytes(void *, size_t);	/* OS CSPRNG; never fails */

/*
 * secret.c: the secret code, its MD5 HEAD, and LOGIN proofs.  secret_head()
 * returns 0, or -1 and an errstr when the code is not 4 to 18 digits;
 * login_proof() returns 0, or -1 when the hash is not 32 lowercase hex;
 * secret_head_equal() and login_proof_check() return 1 on a match, else 0,
 * comparing in constant time.
 */
int	 secret_head(const char *, char *, const char **);  /* 33 bytes */
int	 secret_head_equal(const char *, const char *);
void	 md5_hex(const void *, size_t, char *);		/* 33 bytes */
int	 login_proof(const char *, const char *, char *);	/* 65 bytes */
int	 login_proof_check(const char *, const char *, const char *, size_t);

/*
 * frame.c: LF-terminated lines from a non-blocking socket.  An over-long
 * line is reported once as FRAME_OVERSIZED and its bytes are discarded as
 * they arrive, never buffered.
 */
enum frame_status {
	FRAME_NONE = 0,		/* need more bytes */
	FRAME_LINE = 1,		/* *line, *len hold one frame */
	FRAME_OVERSIZED = -1	/* a line passed the limit */
};
struct frame_in {
	struct buf	 fi_buf;
	size_t		 fi_max;	/* limit, terminator included */
	size_t		 fi_scan;	/* bytes already searched for LF */
	int		 fi_skipping;	/* inside an oversized line */
};
void	 frame_in_init(struct frame_in *, size_t);
void	 frame_in_free(struct frame_in *);
int	 frame_in_feed(struct frame_in *, const void *, size_t);
ssize_t	 frame_in_read(struct frame_in *, int);
int	 frame_in_next(struct frame_in *, const char **, size_t *);
int	 frame_out_add(struct buf *, const char *, size_t);

/*
 * proto.c: the plaintext of a frame, HEAD SP SEQ SP VERB [SP ARGS].
 * proto_split() only cuts a plaintext into head, SEQ and the rest, for the
 * validity checks; proto_verb() then takes the verb for dispatch.
 */
struct proto_msg {
	const char	*head;		/* HEAD_LEN bytes, not terminated */
	uint64_t	 seq;
	const char	*rest;		/* after "HEAD SEQ ", may be empty */
	size_t		 restlen;
	char		 verb[VERB_MAX + 1];
	const char	*args;		/* after "VERB ", or NULL */
	size_t		 argslen;
};
int	 proto_split(const char *, size_t, struct proto_msg *);
int	 proto_verb(struct proto_msg *);
int	 proto_field(const char **, size_t *, const char **, size_t *);
int	 proto_valid_user(const char *, size_t);
int	 proto_valid_id(const char *, size_t);
int	 proto_valid_token(const char *, size_t);
int	 proto_valid_body(const char *, size_t, size_t);
int	 proto_valid_nonce(const char *, size_t);
int	 utf8_valid(const void *, size_t);
int	 proto_format(struct buf *, const char *, uint64_t, const char *,
	    ...) __attribute__((__format__(printf, 4, 5)));
int	 proto_vformat(struct buf *, const char *, uint64_t, const char *,
	    va_list) __attribute__((__format__(printf, 4, 0)));

/*
 * record.c: length-prefixed typed records between the hub and its workers
 * and on the control socket.  Header: type and payload length, 32 bits
 * each, host order (both ends are one build on one host).  Getters check
 * the bytes left before every read; rec_end() rejects trailing bytes.
 */
#define REC_HDR_LEN	8
#define REC_MAX		(128 * 1024)	/* payload bytes */

struct rec_writer {
	struct buf	*b;
	size_t		 hdr;		/* offset of the header in b */
	int		 err;		/* sticky: a put failed */
};
struct rec_reader {
	const unsigned char	*p;
	size_t			 left;
};
void	 rec_begin(struct rec_writer *, struct buf *, uint32_t);
void	 rec_put_u32(struct rec_writer *, uint32_t);
void	 rec_put_u64(struct rec_writer *, uint64_t);
void	 rec_put_str(struct rec_writer *, const char *, size_t);
int	 rec_finish(struct rec_writer *);	/* -1: nothing was added */
int	 rec_next(struct buf *, uint32_t *, struct rec_reader *, size_t *);
int	 rec_get_u32(struct rec_reader *, uint32_t *);
int	 rec_get_u64(struct rec_reader *, uint64_t *);
int	 rec_get_str(struct rec_reader *, const char **, size_t *);
int	 rec_end(const struct rec_reader *);

/*
 * The control socket (relayd's control.c, relayctl).  A request is one
 * record whose type is a CTL_* command and whose payload starts with
 * u32 CTL_VERSION, then the command's fields.  The reply is CTL_OK
 * {str text}, CTL_FAIL {str reason}, or CTL_ROW records {u32 n, str...}
 * ended by CTL_END {}.  Bump CTL_VERSION when any of this changes.
 */
#define CTL_VERSION		1
#define CTL_SOCKET_NAME		"relayd.sock"

enum ctl_type {
	CTL_ADDUSER = 1,	/* str name, str md5hex */
	CTL_PASSWD,		/* str name, str md5hex */
	CTL_DELUSER,		/* str name, u32 remove mailbox */
	CTL_USERS,		/* rows: name */
	CTL_KEY,		/* ok: key */
	CTL_ROTATE,		/* ok: new key */
	CTL_SESSIONS,		/* rows: pid user addr port since idle in out */
	CTL_KICK,		/* str user or pid; ok: sessions ended */
	CTL_STATS,		/* rows: name value */
	CTL_OK = 100,
	CTL_FAIL,
	CTL_ROW,
	CTL_END
};

#endif /* RELAY_PROTO_H */
