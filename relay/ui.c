/*
 * ui.c: the interactive front end, on libedit.  The editor runs in
 * unbuffered mode: each time the terminal is readable el_gets() takes one
 * key and returns the line so far, so the session's event loop never
 * blocks in the editor.  An event is printed above the input: the rows the
 * prompt and the half-typed line take are erased, the event is written,
 * and EL_REFRESH draws the prompt and the line again with the cursor where
 * it was.  Everything from the network goes through vis_string() first.
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <histedit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "relay.h"

#define UI_HISTORY	500
#define UI_TEXT_MAX	(BODY_MAX_DEFAULT * 4 + 512)
#define CTRL_D		0x04

struct ui {
	EditLine	*el;
	History		*hist;
	HistEvent	 he;
	struct session	*s;
	int		 active;	/* the editor owns the input line */
	char		 prompt[USER_MAX + 4];
	char		*text;		/* one formatted event */
	char		*vis;		/* a field made visible */
};

static struct ui	*ui_current;

static char *
ui_prompt(EditLine *el)
{
	return ui_current != NULL ? ui_current->prompt : "> ";
}

static int
ui_columns(void)
{
	struct winsize	 ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == -1 || ws.ws_col == 0)
		return 80;
	return ws.ws_col;
}

/* Display width of n wide characters, as libedit draws them. */
static size_t
ui_width(const wchar_t *w, size_t n)
{
	size_t	 i, width = 0;
	int	 cw;

	for (i = 0; i < n; i++) {
		cw = wcwidth(w[i]);
		width += cw < 0 ? 2 : (size_t)cw;	/* shown as ^X */
	}
	return width;
}

/* Erase the prompt and the input from the screen; the cursor ends at the
 * start of the prompt's first row. */
static void
ui_erase(struct ui *ui)
{
	const LineInfoW	*li;
	size_t		 width, cols;

	li = el_wline(ui->el);
	width = strlen(ui->prompt);
	if (li != NULL)
		width += ui_width(li->buffer, (size_t)(li->cursor -
		    li->buffer));
	cols = (size_t)ui_columns();
	if (width / cols > 0)
		printf("\033[%zuA", width / cols);
	fputs("\r\033[J", stdout);
}

/* Print text (LF-separated lines) above the input line. */
static void
ui_print(struct ui *ui, const char *text)
{
	const char	*p;

	if (ui->active)
		ui_erase(ui);
	for (p = text; *p != '\0'; p++) {
		if (*p == '\n')
			fputs("\r\n", stdout);
		else
			fputc(*p, stdout);
	}
	fputs(ui->active ? "\r\n" : "\n", stdout);
	fflush(stdout);
	if (ui->active)
		el_set(ui->el, EL_REFRESH);
}

static const char *
ui_vis(struct ui *ui, const char *s, size_t n)
{
	if (vis_size(n) > UI_TEXT_MAX)
		n = (UI_TEXT_MAX - 1) / 4;
	(void)vis_string(ui->vis, UI_TEXT_MAX, s, n, VIS_TERM);
	return ui->vis;
}

static int
ui_event(void *arg, const struct event *ev)
{
	struct ui	*ui = arg;
	char		 tm[32], from[USER_MAX * 4 + 1], id[ID_MAX * 4 + 1];
	char		 msgid[ID_MAX * 4 + 1], verb[VERB_MAX * 4 + 1];
	const char	*t;
	time_t		 now = time(NULL);

	if (vis_time(tm, sizeof(tm), ev->time, now) == -1)
		(void)strlcpy(tm, "?", sizeof(tm));
	from[0] = id[0] = msgid[0] = '\0';
	if (ev->from != NULL)
		(void)vis_string(from, sizeof(from), ev->from,
		    strlen(ev->from), VIS_TERM);
	if (ev->id != NULL)
		(void)vis_string(id, sizeof(id), ev->id, strlen(ev->id),
		    VIS_TERM);
	if (ev->msgid != NULL)
		(void)vis_string(msgid, sizeof(msgid), ev->msgid,
		    strlen(ev->msgid), VIS_TERM);
	t = ev->text != NULL ? ui_vis(ui, ev->text, ev->textlen) : "";

	switch (ev->type) {
	case EV_SAY:
		(void)snprintf(ui->text, UI_TEXT_MAX, "[%s] <%s> %s", tm,
		    from, t);
		break;
	case EV_MSG:
		(void)snprintf(ui->text, UI_TEXT_MAX, "[%s] *%s* %s", tm,
		    from, t);
		break;
	case EV_RECEIPT:
		(void)snprintf(ui->text, UI_TEXT_MAX, "-- %s read your "
		    "message (%s) at %s", from, msgid, tm);
		break;
	case EV_OK:
		if (strcmp(ev->verb, "COMPOSE") == 0)
			(void)snprintf(ui->text, UI_TEXT_MAX, "-- message "
			    "stored (%s)", t);
		else if (strcmp(ev->verb, "READ") == 0)
			(void)snprintf(ui->text, UI_TEXT_MAX, "-- end of "
			    "mailbox");
		else
			return 0;
		break;
	case EV_ERR:
		(void)vis_string(verb, sizeof(verb), ev->verb,
		    strlen(ev->verb), VIS_TERM);
		if (strcmp(ev->verb, "NONE") == 0)
			(void)snprintf(ui->text, UI_TEXT_MAX, "-- %s", t);
		else
			(void)snprintf(ui->text, UI_TEXT_MAX, "-- %s failed: "
			    "%s", verb, t);
		break;
	case EV_WHO:
		(void)snprintf(ui->text, UI_TEXT_MAX, "-- logged in: %s", t);
		break;
	case EV_PONG:
		(void)snprintf(ui->text, UI_TEXT_MAX, "-- pong %s", t);
		break;
	case EV_LOGIN:
		(void)snprintf(ui->text, UI_TEXT_MAX, "-- logged in; %llu "
		    "item%s in your mailbox%s; /help for help",
		    (unsigned long long)ev->count, ev->count == 1 ? "" : "s",
		    ev->count > 0 ? " (/read)" : "");
		break;
	case EV_BYE:
		(void)snprintf(ui->text, UI_TEXT_MAX, "-- the server says "
		    "goodbye: %s", t);
		break;
	case EV_NOTICE:
		(void)snprintf(ui->text, UI_TEXT_MAX, "-- %.*s",
		    (int)ev->textlen, ev->text);
		break;
	}
	ui_print(ui, ui->text);
	return ferror(stdout) ? -1 : 0;
}

static void
ui_ready(void *arg, struct session *s)
{
	struct ui	*ui = arg;

	ui->s = s;
	el_set(ui->el, EL_UNBUFFERED, 1);	/* raw mode, prompt drawn */
	ui->active = 1;
}

/* One key from the terminal; a whole line goes to the session. */
static int
ui_input(void *arg, struct session *s)
{
	struct ui	*ui = arg;
	const char	*line;
	char		*copy;
	int		 n, avail = 0;
	size_t		 len;

	/* Readable but empty, or no longer a terminal: hung up. */
	if (ioctl(STDIN_FILENO, FIONREAD, &avail) == -1 || avail == 0)
		return -1;
	line = el_gets(ui->el, &n);
	if (n == -1 && errno != EINTR && errno != EAGAIN)
		return -1;		/* a read error ends input too */
	if (line == NULL || n <= 0)
		return 0;
	len = (size_t)n;
	if (len == 1 && line[0] == CTRL_D) {
		ui_erase(ui);		/* no "^D" left on the screen */
		fflush(stdout);
		el_set(ui->el, EL_UNBUFFERED, 0);
		ui->active = 0;
		return -1;
	}
	if (line[len - 1] != '\n')
		return 0;		/* still typing */
	if ((copy = strndup(line, len - 1)) == NULL)
		return 0;
	el_set(ui->el, EL_UNBUFFERED, 0);	/* the line is done */
	ui->active = 0;
	if (copy[0] != '\0')
		(void)history(ui->hist, &ui->he, H_ENTER, copy);
	(void)session_command(s, copy, strlen(copy));
	explicit_bzero(copy, strlen(copy));
	free(copy);
	if (session_ready(s)) {
		el_set(ui->el, EL_UNBUFFERED, 1);	/* a new prompt */
		ui->active = 1;
	}
	return 0;
}

static void
ui_winch(void *arg)
{
	struct ui	*ui = arg;

	el_resize(ui->el);
	if (ui->active)
		el_set(ui->el, EL_REFRESH);
}

/* Run the session on the terminal; returns the exit status. */
int
ui_run(struct session *s)
{
	struct ui	 ui;
	struct frontend	 fe;
	int		 rc;

	memset(&ui, 0, sizeof(ui));
	ui.s = s;
	if ((ui.text = malloc(UI_TEXT_MAX)) == NULL ||
	    (ui.vis = malloc(UI_TEXT_MAX)) == NULL) {
		free(ui.text);
		fprintf(stderr, "relay: out of memory\n");
		return EXIT_LOCAL;
	}
	/* ui.text and ui.vis are freed at the end, not lost here. */
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
	(void)strlcpy(ui.prompt, "> ", sizeof(ui.prompt));
	if ((ui.el = el_init("relay", stdin, stdout, stderr)) == NULL ||
	    (ui.hist = history_init()) == NULL) {
		fprintf(stderr, "relay: cannot set up line editing\n");
		if (ui.el != NULL)
			el_end(ui.el);
		free(ui.text);
		free(ui.vis);
		return EXIT_LOCAL;
	}
	ui_current = &ui;
	(void)history(ui.hist, &ui.he, H_SETSIZE, UI_HISTORY);
	(void)history(ui.hist, &ui.he, H_SETUNIQUE, 1);
	el_set(ui.el, EL_EDITOR, "emacs");
	el_set(ui.el, EL_PROMPT, ui_prompt);
	el_set(ui.el, EL_HIST, history, ui.hist);
	el_set(ui.el, EL_SIGNAL, 0);
	(void)el_source(ui.el, NULL);	/* ~/.editrc, if any */

	memset(&fe, 0, sizeof(fe));
	fe.infd = STDIN_FILENO;
	fe.arg = &ui;
	fe.ready = ui_ready;
	fe.input = ui_input;
	fe.event = ui_event;
	fe.winch = ui_winch;
	rc = session_run(s, &fe);

	if (ui.active) {
		ui_erase(&ui);
		fflush(stdout);
		el_set(ui.el, EL_UNBUFFERED, 0);
	}
	ui_current = NULL;
	el_end(ui.el);
	history_end(ui.hist);
	free(ui.text);
	free(ui.vis);
	return rc;
}
