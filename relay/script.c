/*
 * script.c: the front end for programs.  When stdin is not a terminal each
 * input line is one command in the interactive syntax, and each event is
 * one output line in the format relay(1) documents: a lower-case word,
 * then fields separated by one space, every field from the network escaped
 * by vis_string(VIS_SCRIPT) so that a line is always one event.  The
 * one-shot forms (say, msg, read, who on the command line) are the same
 * with a single command and no input.  Local notices go to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

#define SCRIPT_FIELD_MAX	(BODY_MAX_DEFAULT * 4 + 1)

struct script {
	struct session	*s;
	char		*in;		/* input not yet taken as lines */
	size_t		 inlen;
	int		 eof;
	int		 skipping;	/* inside an over-long line */
	char		*vis;
	char		**words;	/* one-shot command, or NULL */
	int		 nwords;
};

/* Print one field made safe: one line, reversible escapes. */
static void
script_field(struct script *sc, const char *s, size_t n)
{
	if (vis_size(n) > SCRIPT_FIELD_MAX)
		n = (SCRIPT_FIELD_MAX - 1) / 4;
	(void)vis_string(sc->vis, SCRIPT_FIELD_MAX, s, n, VIS_SCRIPT);
	fputs(sc->vis, stdout);
}

static void
script_sfield(struct script *sc, const char *s)
{
	fputc(' ', stdout);
	script_field(sc, s, strlen(s));
}

static int
script_event(void *arg, const struct event *ev)
{
	struct script	*sc = arg;

	switch (ev->type) {
	case EV_SAY:
		fputs("say", stdout);
		script_sfield(sc, ev->from);
		printf(" %lld ", (long long)ev->time);
		script_field(sc, ev->text, ev->textlen);
		break;
	case EV_MSG:
		fputs("msg", stdout);
		script_sfield(sc, ev->id);
		script_sfield(sc, ev->from);
		printf(" %lld ", (long long)ev->time);
		script_field(sc, ev->text, ev->textlen);
		break;
	case EV_RECEIPT:
		fputs("receipt", stdout);
		script_sfield(sc, ev->id);
		script_sfield(sc, ev->msgid);
		script_sfield(sc, ev->from);
		printf(" %lld", (long long)ev->time);
		break;
	case EV_OK:
	case EV_ERR:
		fputs(ev->type == EV_OK ? "ok" : "err", stdout);
		script_sfield(sc, ev->verb);
		if (ev->textlen > 0) {
			fputc(' ', stdout);
			script_field(sc, ev->text, ev->textlen);
		}
		break;
	case EV_WHO:
	case EV_PONG:
		fputs(ev->type == EV_WHO ? "who" : "pong", stdout);
		if (ev->textlen > 0) {
			fputc(' ', stdout);
			script_field(sc, ev->text, ev->textlen);
		}
		break;
	case EV_LOGIN:
		printf("ok LOGIN %llu", (unsigned long long)ev->count);
		break;
	case EV_BYE:
		fputs("bye ", stdout);
		script_field(sc, ev->text, ev->textlen);
		break;
	case EV_NOTICE:
		fprintf(stderr, "relay: %.*s\n", (int)ev->textlen, ev->text);
		return 0;
	}
	fputc('\n', stdout);
	/* Shown means written: only then may the item be ACKed. */
	if (fflush(stdout) == EOF || ferror(stdout))
		return -1;
	return 0;
}

/* The one-shot command, as a line of the interactive syntax. */
static void
script_oneshot(struct script *sc, struct session *s)
{
	char	*line;
	size_t	 len = 0, i;
	int	 first;

	if ((line = malloc(LINE_MAX_IN)) == NULL) {
		session_warnx(s, "out of memory");
		session_quit(s);
		return;
	}
	line[0] = '\0';
	i = 1;
	if (strcmp(sc->words[0], "say") == 0) {
		/* Text that starts with / is said, not taken as a command. */
		if (sc->words[1][0] == '/')
			len = strlcpy(line, "/", LINE_MAX_IN);
	} else if (strcmp(sc->words[0], "msg") == 0)
		len = strlcpy(line, "/msg", LINE_MAX_IN);
	else {
		len = strlcpy(line, "/", LINE_MAX_IN);
		len = strlcat(line, sc->words[0], LINE_MAX_IN);
	}
	first = len == 0 || line[len - 1] == '/';
	for (; (int)i < sc->nwords && len < LINE_MAX_IN; i++) {
		if (!first)
			len = strlcat(line, " ", LINE_MAX_IN);
		first = 0;
		len = strlcat(line, sc->words[i], LINE_MAX_IN);
	}
	if (len >= LINE_MAX_IN)
		session_warnx(s, "command too long");
	else
		(void)session_command(s, line, len);
	free(line);
	session_quit(s);
}

static void
script_ready(void *arg, struct session *s)
{
	struct script	*sc = arg;

	sc->s = s;
	if (sc->words != NULL)
		script_oneshot(sc, s);
}

static int
script_buffered(void *arg)
{
	struct script	*sc = arg;

	return (sc->inlen > 0 && memchr(sc->in, '\n', sc->inlen) != NULL) ||
	    (sc->eof && !sc->skipping);
}

/* Take the complete lines in hand, as many as the session has room for. */
static void
script_lines(struct script *sc, struct session *s)
{
	char	*nl;
	size_t	 n;

	while (session_can_send(s) && sc->inlen > 0 &&
	    (nl = memchr(sc->in, '\n', sc->inlen)) != NULL) {
		n = (size_t)(nl - sc->in);
		if (sc->skipping)
			sc->skipping = 0;
		else
			(void)session_command(s, sc->in, n);
		memmove(sc->in, nl + 1, sc->inlen - n - 1);
		sc->inlen -= n + 1;
	}
}

static int
script_input(void *arg, struct session *s)
{
	struct script	*sc = arg;
	ssize_t		 n;

	if (!sc->eof && (sc->inlen == 0 ||
	    memchr(sc->in, '\n', sc->inlen) == NULL)) {
		n = read(STDIN_FILENO, sc->in + sc->inlen,
		    LINE_MAX_IN - sc->inlen);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (n == -1) {
			session_warnx(s, "stdin: %s", strerror(errno));
			sc->eof = 1;
		} else if (n == 0)
			sc->eof = 1;
		else
			sc->inlen += (size_t)n;
	}
	script_lines(sc, s);
	if (sc->inlen == LINE_MAX_IN) {
		/* No LF in a full buffer: refuse the line, not truncate. */
		session_warnx(s, "input line longer than %d bytes ignored",
		    LINE_MAX_IN);
		sc->inlen = 0;
		sc->skipping = 1;
	}
	if (!sc->eof)
		return 0;
	if (sc->inlen > 0 && memchr(sc->in, '\n', sc->inlen) == NULL) {
		/* The last line had no LF: it is a line all the same. */
		if (!session_can_send(s))
			return 0;
		if (!sc->skipping)
			(void)session_command(s, sc->in, sc->inlen);
		sc->inlen = 0;
	}
	if (sc->inlen > 0)
		return 0;
	sc->skipping = 0;
	return -1;
}

/*
 * Run the session for a program: words is a one-shot command (nwords
 * words) or NULL to read commands from stdin.  Returns the exit status.
 */
int
script_run(struct session *s, char **words, int nwords)
{
	struct script	 sc;
	struct frontend	 fe;
	int		 rc;

	memset(&sc, 0, sizeof(sc));
	sc.words = words;
	sc.nwords = nwords;
	if ((sc.vis = malloc(SCRIPT_FIELD_MAX)) == NULL ||
	    (words == NULL && (sc.in = malloc(LINE_MAX_IN)) == NULL)) {
		free(sc.vis);
		fprintf(stderr, "relay: out of memory\n");
		return EXIT_LOCAL;
	}
	memset(&fe, 0, sizeof(fe));
	fe.infd = words == NULL ? STDIN_FILENO : -1;
	fe.arg = &sc;
	fe.ready = script_ready;
	fe.input = script_input;
	fe.buffered = words == NULL ? script_buffered : NULL;
	fe.event = script_event;
	rc = session_run(s, &fe);
	if (rc == EXIT_OK && session_refused(s))
		rc = EXIT_REFUSED;
	free(sc.vis);
	if (sc.in != NULL) {
		explicit_bzero(sc.in, LINE_MAX_IN);
		free(sc.in);
	}
	return rc;
}
