/*
 * vis.c: making text from the network safe to show.  Nothing a peer sends
 * reaches the terminal raw: C0 controls, DEL, C1 controls, invalid UTF-8
 * and the Unicode line and bidirectional controls are turned into visible
 * text.  VIS_TERM is for people (^[ for ESC, ^A, ^?, \xNN); VIS_SCRIPT is
 * for programs and is reversible: every unsafe byte becomes \xNN and a
 * backslash becomes \\, so an event is always one line.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "relay.h"

/* Bytes of output one byte of input can take at most ("\xNN"). */
#define VIS_PER_BYTE	4

size_t
vis_size(size_t n)
{
	return n * VIS_PER_BYTE + 1;
}

/*
 * Length of the valid UTF-8 sequence at s (n bytes left) and its code
 * point, or 0 if it is not one: overlong forms, surrogates and values past
 * U+10FFFF are invalid.
 */
static size_t
vis_utf8(const unsigned char *s, size_t n, unsigned int *cp)
{
	size_t		 len, i;
	unsigned int	 c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		c = s[0] & 0x1f;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		c = s[0] & 0x0f;
		min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		c = s[0] & 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Code points that must not reach a terminal as they are. */
static int
vis_unsafe(unsigned int cp)
{
	if (cp < 0x20 || cp == 0x7f)
		return 1;
	if (cp >= 0x80 && cp <= 0x9f)		/* C1 controls */
		return 1;
	if (cp == 0x2028 || cp == 0x2029)	/* line, paragraph sep. */
		return 1;
	if ((cp >= 0x202a && cp <= 0x202e) ||	/* bidi embeddings */
	    (cp >= 0x2066 && cp <= 0x2069))	/* bidi isolates */
		return 1;
	return 0;
}

/*
 * Write the visible form of in (n bytes) into out (size bytes, at least
 * vis_size(n) to hold all of it) and terminate it.  Returns the length
 * written; output that does not fit is cut at a whole escape.
 */
size_t
vis_string(char *out, size_t size, const char *in, size_t n,
    enum vis_mode mode)
{
	const unsigned char	*s = (const unsigned char *)in;
	size_t			 o = 0, i = 0, len, k;
	unsigned int		 cp;
	char			 tmp[VIS_PER_BYTE * 4 + 1];
	size_t			 tl;

	if (size == 0)
		return 0;
	while (i < n) {
		len = vis_utf8(s + i, n - i, &cp);
		tl = 0;
		if (len == 0) {
			/* Invalid UTF-8: one byte, escaped. */
			tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x",
			    s[i]);
			len = 1;
		} else if (!vis_unsafe(cp)) {
			if (mode == VIS_SCRIPT && cp == '\\') {
				tmp[tl++] = '\\';
				tmp[tl++] = '\\';
			} else {
				memcpy(tmp, s + i, len);
				tl = len;
			}
		} else if (mode == VIS_TERM && cp == '\n') {
			/* A new line, indented under the message. */
			memcpy(tmp, "\n  ", 3);
			tl = 3;
		} else if (mode == VIS_TERM && cp < 0x20) {
			tmp[tl++] = '^';
			tmp[tl++] = (char)(cp + 0x40);
		} else if (mode == VIS_TERM && cp == 0x7f) {
			tmp[tl++] = '^';
			tmp[tl++] = '?';
		} else {
			for (k = 0; k < len; k++)
				tl += (size_t)snprintf(tmp + tl,
				    sizeof(tmp) - tl, "\\x%02x", s[i + k]);
		}
		if (o + tl >= size)
			break;
		memcpy(out + o, tmp, tl);
		o += tl;
		i += len;
	}
	out[o] = '\0';
	return o;
}

/*
 * A server TIME for people: "14:02" today, "2024-11-26 14:02" on other
 * days, in local time.
 */
int
vis_time(char *out, size_t size, time_t t, time_t now)
{
	struct tm	 tm, tn;

	if (localtime_r(&t, &tm) == NULL || localtime_r(&now, &tn) == NULL)
		return -1;
	if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday) {
		if (strftime(out, size, "%H:%M", &tm) == 0)
			return -1;
	} else if (strftime(out, size, "%Y-%m-%d %H:%M", &tm) == 0)
		return -1;
	return 0;
}
