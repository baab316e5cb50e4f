/*
 * fernet-tool: fernet.c from the command line, for the interoperability
 * tests and for people poking at the protocol by hand.  One message per
 * run on stdin/stdout, or, in the -lines modes, one message per line so
 * that one process handles thousands (messages are then standard padded
 * base64 on their line, as Python's base64.b64encode() writes them).
 * Each kind of failure has its own exit status, listed in usage().
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"

#define MSG_MAX		(1024 * 1024)	/* plaintext bytes per message */

#define EXIT_IO		1	/* read, write or memory failure */
#define EXIT_USAGE	2
#define EXIT_KEY	3
#define EXIT_INPUT	4	/* too large, or a malformed input line */
#define EXIT_FERNET	10	/* plus -error: 11 to 20 */

enum mode {
	M_ENCRYPT,
	M_DECRYPT,
	M_ENCRYPT_LINES,
	M_DECRYPT_LINES
};

struct opts {
	enum mode	 mode;
	const char	*key;
	uint64_t	 now;
	uint64_t	 ttl;
	unsigned char	 iv[16];
	int		 has_iv;
};

static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static signed char b64std_value[256];

static __dead void usage(void);
static __dead void die(int, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static int	 fail(int, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));
static void	 parse_args(int, char *[], struct opts *);
static uint64_t	 parse_u64(const char *, const char *);
static int	 hex_nibble(int);
static void	 b64std_init(void);
static size_t	 b64std_encode(const unsigned char *, size_t, char *);
static int	 b64std_decode(const char *, size_t, unsigned char *,
		    size_t *);
static int	 fernet_exit(int);
static int	 read_all(unsigned char *, size_t, size_t *);
static int	 write_all(const void *, size_t);
static int	 one(struct fernet *, const struct opts *);
static int	 lines(struct fernet *, const struct opts *);

static __dead void
usage(void)
{
	fprintf(stderr,
	    "usage: fernet-tool genkey\n"
	    "       fernet-tool encrypt KEY [--now UNIX] [--iv HEX32]\n"
	    "       fernet-tool decrypt KEY [--ttl SECONDS] [--now UNIX]\n"
	    "       fernet-tool encrypt-lines KEY [--now UNIX] [--iv HEX32]\n"
	    "       fernet-tool decrypt-lines KEY [--ttl SECONDS] [--now UNIX]\n"
	    "\n"
	    "encrypt reads the message (binary, at most %d bytes) on stdin\n"
	    "and writes the token and a newline; decrypt reads a token (one\n"
	    "trailing LF or CR LF is ignored) and writes the message.  The\n"
	    "-lines modes read one item per line: encrypt-lines a message in\n"
	    "standard base64 (an empty line is an empty message), writing a\n"
	    "token line; decrypt-lines a token, writing the message in base64,\n"
	    "or \"! STATUS REASON\" when the token fails (STATUS as below).\n"
	    "--now defaults to the current time; --ttl 0 (the default) checks\n"
	    "no age, but a token over 60 s in the future always fails.\n"
	    "\n"
	    "exit: 0 ok, 1 I/O error, 2 usage, 3 bad key, 4 input too large or\n"
	    "malformed line, 11 bad base64, 12 too short, 13 bad version,\n"
	    "14 bad HMAC, 15 bad length or padding, 16 expired, 17 from the\n"
	    "future, 18 no space, 20 libcrypto failure.\n", MSG_MAX);
	exit(EXIT_USAGE);
}

/* The one-line reason on stderr; returns status for the caller. */
static int
fail(int status, const char *fmt, ...)
{
	va_list	 ap;

	fputs("fernet-tool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* For failures before anything is allocated. */
static __dead void
die(int status, const char *fmt, ...)
{
	va_list	 ap;

	fputs("fernet-tool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static uint64_t
parse_u64(const char *what, const char *s)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(s, 0, LLONG_MAX, &errstr);
	if (errstr != NULL)
		die(EXIT_USAGE, "%s %s: %s", what, s, errstr);
	return (uint64_t)v;
}

static int
hex_nibble(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
parse_args(int argc, char *argv[], struct opts *o)
{
	int	 i, k, hi, lo, decrypting;

	memset(o, 0, sizeof(*o));
	o->now = (uint64_t)time(NULL);
	if (strcmp(argv[1], "encrypt") == 0)
		o->mode = M_ENCRYPT;
	else if (strcmp(argv[1], "decrypt") == 0)
		o->mode = M_DECRYPT;
	else if (strcmp(argv[1], "encrypt-lines") == 0)
		o->mode = M_ENCRYPT_LINES;
	else if (strcmp(argv[1], "decrypt-lines") == 0)
		o->mode = M_DECRYPT_LINES;
	else
		usage();
	decrypting = o->mode == M_DECRYPT || o->mode == M_DECRYPT_LINES;
	for (i = 2; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (o->key != NULL)
				usage();
			o->key = argv[i];
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--now") == 0)
			o->now = parse_u64("--now", argv[++i]);
		else if (strcmp(argv[i], "--ttl") == 0 && decrypting)
			o->ttl = parse_u64("--ttl", argv[++i]);
		else if (strcmp(argv[i], "--iv") == 0 && !decrypting) {
			i++;
			if (strlen(argv[i]) != 32)
				die(EXIT_USAGE, "--iv: want 32 hex digits");
			for (k = 0; k < 16; k++) {
				hi = hex_nibble(argv[i][2 * k]);
				lo = hex_nibble(argv[i][2 * k + 1]);
				if (hi == -1 || lo == -1)
					die(EXIT_USAGE,
					    "--iv: want 32 hex digits");
				o->iv[k] = (unsigned char)(hi << 4 | lo);
			}
			o->has_iv = 1;
		} else
			usage();
	}
	if (o->key == NULL)
		usage();
}

static void
b64std_init(void)
{
	int	 i;

	memset(b64std_value, -1, sizeof(b64std_value));
	for (i = 0; i < 64; i++)
		b64std_value[(unsigned char)b64std[i]] = (signed char)i;
}

static size_t
b64std_encode(const unsigned char *in, size_t n, char *out)
{
	size_t	 i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64std[v >> 18];
		out[o++] = b64std[(v >> 12) & 63];
		out[o++] = b64std[(v >> 6) & 63];
		out[o++] = b64std[v & 63];
	}
	if (n - i > 0) {
		v = (uint32_t)in[i] << 16;
		if (n - i == 2)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64std[v >> 18];
		out[o++] = b64std[(v >> 12) & 63];
		out[o++] = n - i == 2 ? b64std[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

/* Standard padded base64; *outlen is the decoded length. */
static int
b64std_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	size_t		 i, o = 0, pad = 0;
	uint32_t	 v;
	int		 k, c;

	if (n % 4 != 0)
		return -1;
	if (n > 0 && s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n; i += 4) {
		v = 0;
		for (k = 0; k < 4; k++) {
			if (i + k >= n - pad)
				c = 0;
			else if ((c = b64std_value[(unsigned char)s[i + k]]) ==
			    -1)
				return -1;
			v = v << 6 | (uint32_t)c;
		}
		out[o++] = v >> 16;
		out[o++] = v >> 8;
		out[o++] = v;
	}
	*outlen = o - pad;
	return 0;
}

static int
fernet_exit(int e)
{
	return EXIT_FERNET - e;
}

/* All of stdin into buf[cap + 1]; a length of cap + 1 means "more". */
static int
read_all(unsigned char *buf, size_t cap, size_t *len)
{
	size_t	 n;

	*len = 0;
	while (*len <= cap) {
		n = fread(buf + *len, 1, cap + 1 - *len, stdin);
		*len += n;
		if (n == 0)
			break;
	}
	if (ferror(stdin))
		return fail(EXIT_IO, "stdin: %s", strerror(errno));
	return 0;
}

static int
write_all(const void *p, size_t n)
{
	if (n > 0 && fwrite(p, 1, n, stdout) != n)
		return fail(EXIT_IO, "stdout: %s", strerror(errno));
	return 0;
}

static int
one(struct fernet *f, const struct opts *o)
{
	unsigned char	*in, *out = NULL;
	size_t		 cap, len, outcap, outlen;
	int		 rc, status;

	cap = o->mode == M_ENCRYPT ? MSG_MAX : fernet_token_len(MSG_MAX) + 2;
	if ((in = malloc(cap + 1)) == NULL)
		return fail(EXIT_IO, "out of memory");
	if ((status = read_all(in, cap, &len)) != 0)
		goto done;
	if (len > cap) {
		status = fail(EXIT_INPUT, "input larger than %zu bytes", cap);
		goto done;
	}
	outcap = o->mode == M_ENCRYPT ? fernet_token_len(len) :
	    fernet_plain_max(len);
	if ((out = malloc(outcap + 1)) == NULL) {
		status = fail(EXIT_IO, "out of memory");
		goto done;
	}
	if (o->mode == M_ENCRYPT) {
		rc = fernet_encrypt(f, in, len, o->now, o->has_iv ? o->iv :
		    NULL, (char *)out, outcap, &outlen);
		if (rc == FERNET_OK)
			out[outlen++] = '\n';
	} else {
		if (len > 0 && in[len - 1] == '\n')
			len--;
		if (len > 0 && in[len - 1] == '\r')
			len--;
		rc = fernet_decrypt(f, (char *)in, len, o->now, o->ttl, out,
		    outcap, &outlen);
	}
	if (rc != FERNET_OK)
		status = fail(fernet_exit(rc), "%s", fernet_strerror(rc));
	else
		status = write_all(out, outlen);
 done:
	free(out);
	free(in);
	return status;
}

/*
 * The batch modes.  A failed token is reported on its own line and the
 * run goes on; a line that is not valid input ends the run.
 */
static int
lines(struct fernet *f, const struct opts *o)
{
	char		*line = NULL, *txt;
	unsigned char	*msg;
	size_t		 linecap = 0, max, len, msglen, toklen, lineno = 0;
	ssize_t		 n;
	int		 rc, status = 0, enc = o->mode == M_ENCRYPT_LINES;

	b64std_init();
	max = enc ? (MSG_MAX + 2) / 3 * 4 : fernet_token_len(MSG_MAX);
	msg = malloc(MSG_MAX + 3);
	txt = malloc(fernet_token_len(MSG_MAX) + 1);
	if (msg == NULL || txt == NULL) {
		status = fail(EXIT_IO, "out of memory");
		goto done;
	}
	while (status == 0 && (n = getline(&line, &linecap, stdin)) != -1) {
		lineno++;
		len = (size_t)n;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > max) {
			status = fail(EXIT_INPUT, "line %zu: longer than %zu",
			    lineno, max);
			break;
		}
		if (enc) {
			if (b64std_decode(line, len, msg, &msglen) == -1 ||
			    msglen > MSG_MAX) {
				status = fail(EXIT_INPUT, "line %zu: not base64 "
				    "of at most %d bytes", lineno, MSG_MAX);
				break;
			}
			rc = fernet_encrypt(f, msg, msglen, o->now,
			    o->has_iv ? o->iv : NULL, txt,
			    fernet_token_len(MSG_MAX), &toklen);
			if (rc != FERNET_OK) {
				status = fail(fernet_exit(rc), "line %zu: %s",
				    lineno, fernet_strerror(rc));
				break;
			}
			txt[toklen++] = '\n';
			status = write_all(txt, toklen);
			continue;
		}
		rc = fernet_decrypt(f, line, len, o->now, o->ttl, msg,
		    MSG_MAX, &msglen);
		if (rc != FERNET_OK) {
			if (printf("! %d %s\n", fernet_exit(rc),
			    fernet_strerror(rc)) < 0)
				status = fail(EXIT_IO, "stdout: %s",
				    strerror(errno));
			continue;
		}
		toklen = b64std_encode(msg, msglen, txt);
		txt[toklen++] = '\n';
		status = write_all(txt, toklen);
	}
	if (status == 0 && ferror(stdin))
		status = fail(EXIT_IO, "stdin: %s", strerror(errno));
 done:
	free(txt);
	free(msg);
	free(line);
	return status;
}

int
main(int argc, char *argv[])
{
	unsigned char	 key[FERNET_KEY_LEN];
	char		 text[FERNET_KEY_B64LEN + 1];
	struct opts	 o;
	struct fernet	*f;
	int		 rc;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "genkey") == 0) {
		if (argc != 2)
			usage();
		if (fernet_key_generate(key) == -1)
			die(EXIT_IO, "getrandom: %s", strerror(errno));
		fernet_key_format(key, text);
		explicit_bzero(key, sizeof(key));
		printf("%s\n", text);
		explicit_bzero(text, sizeof(text));
	} else {
		parse_args(argc, argv, &o);
		if (fernet_key_parse(o.key, strlen(o.key), key) == -1)
			die(EXIT_KEY, "%s", fernet_strerror(FERNET_EKEY));
		if ((f = fernet_new(key)) == NULL)
			die(EXIT_IO, "%s", fernet_strerror(FERNET_ECRYPTO));
		explicit_bzero(key, sizeof(key));
		if (o.mode == M_ENCRYPT || o.mode == M_DECRYPT)
			rc = one(f, &o);
		else
			rc = lines(f, &o);
		fernet_free(f);
		if (rc != 0)
			return rc;
	}
	if (fflush(stdout) == EOF || ferror(stdout))
		return fail(EXIT_IO, "stdout: %s", strerror(errno));
	return 0;
}
