/*
 * relayctl.h: the administration tool's own declarations.  relayctl.c owns
 * the program's life: global options, the control socket, one request and
 * its reply, and the output.  parser.c owns the command table: each
 * command's name, argument pattern, reply shape, and the handler that puts
 * the command's fields into the request.  The wire contract itself (CTL_*)
 * lives in proto.h, shared with relayd's control.c.
 */
#ifndef RELAYCTL_H
#define RELAYCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto.h"

#ifndef nitems
#define nitems(_a)	(sizeof((_a)) / sizeof((_a)[0]))
#endif

/* Exit statuses, as relayctl(8) documents them. */
#define RELAYCTL_EXIT_OK		0
#define RELAYCTL_EXIT_FAIL		1	/* refused, usage, bad reply */
#define RELAYCTL_EXIT_UNREACHABLE	2	/* no daemon, or no reply */

#define RELAYCTL_TIMEOUT_DEFAULT	10	/* seconds for the exchange */
#define RELAYCTL_TIMEOUT_MAX		3600
#define RELAYCTL_SOCKET_ROOT		"/run/" CTL_SOCKET_NAME
#define RELAYCTL_SOCKET_ENV		"RELAYCTL_SOCKET"
#define RELAYCTL_PASSWORD_MAX		1024	/* bytes, newline excluded */

/* How a column of a CTL_ROW reply is checked and shown. */
#define COL_RIGHT	0x01	/* right-aligned for people */
#define COL_NUMBER	0x02	/* decimal digits only (implies COL_RIGHT) */
#define COL_TIME	0x04	/* Unix seconds; local time for people */

struct ctl_column {
	const char	*name;		/* header, for people */
	int		 flags;
};

/* A command's arguments once its own options are parsed. */
struct ctl_args {
	unsigned int	 opts;		/* CTL_OPT(c) for each option seen */
	int		 argc;		/* positional arguments */
	char		**argv;
};
#define CTL_OPT(c)	(1U << ((c) - 'a'))	/* options are a-z */

struct ctl_cmd;
typedef int (*ctl_build)(const struct ctl_cmd *, const struct ctl_args *,
    struct rec_writer *);

/*
 * One line of the command table.  A command whose cols is NULL expects
 * CTL_OK {text} (printed if not empty); otherwise CTL_ROW records of
 * exactly ncols strings ended by CTL_END.  CTL_FAIL may answer either.
 * build() adds the command's fields after CTL_VERSION; it returns 0, or
 * -1 after saying why on stderr.
 */
struct ctl_cmd {
	const char		*name;
	const char		*options;	/* getopt(3) string, a-z only */
	int			 argmin;
	int			 argmax;
	const char		*pattern;	/* for the usage message */
	uint32_t		 type;		/* CTL_* request */
	const struct ctl_column	*cols;
	size_t			 ncols;
	ctl_build		 build;
};

/* parser.c */
const struct ctl_cmd *parser_lookup(const char *);
int	 parser_args(const struct ctl_cmd *, int, char **, struct ctl_args *);
void	 parser_usage(FILE *);
void	 parser_cmd_usage(FILE *, const struct ctl_cmd *);

/* relayctl.c */
void	 relayctl_warnx(const char *, ...)
	    __attribute__((__format__(printf, 1, 2)));
char	*relayctl_vis(const char *, size_t);

#endif /* RELAYCTL_H */
