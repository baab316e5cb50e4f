/*
 * relay.c: the client's main: options and operands, credentials, the
 * connection, the choice of front end (a terminal, a script or a one-shot
 * command) and the exit status.  relay(1) documents all of it.
 *
 * The operands are HOST [PORT] [COMMAND [ARG...]].  A PORT is all digits
 * and a COMMAND never is, so the second operand is a port exactly when it
 * is a number.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay.h"

static __dead void
usage(void)
{
	fprintf(stderr,
	    "usage: relay [-K keyfile] [-P passwordfile] [-S secretfile] "
	    "[-t timeout]\n"
	    "             [-u user] host [port] [say text | msg user text | "
	    "read | who]\n");
	exit(EXIT_LOCAL);
}

static int
relay_numeric(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Check a one-shot command's words; exits on a usage error. */
static void
relay_oneshot(char **w, int n)
{
	if (strcmp(w[0], "say") == 0 && n >= 2)
		return;
	if (strcmp(w[0], "msg") == 0 && n >= 3) {
		if (!proto_valid_user(w[1], strlen(w[1]))) {
			fprintf(stderr, "relay: %s: not a valid user name\n",
			    w[1]);
			exit(EXIT_LOCAL);
		}
		return;
	}
	if ((strcmp(w[0], "read") == 0 || strcmp(w[0], "who") == 0) &&
	    n == 1)
		return;
	if (strcmp(w[0], "say") != 0 && strcmp(w[0], "msg") != 0 &&
	    strcmp(w[0], "read") != 0 && strcmp(w[0], "who") != 0)
		fprintf(stderr, "relay: %s: unknown command\n", w[0]);
	usage();
}

int
main(int argc, char *argv[])
{
	struct options	 o;
	struct conn	*c;
	struct session	*s;
	const char	*keyfile = NULL, *secretfile = NULL;
	const char	*passfile = NULL, *user = NULL, *errstr;
	const char	*reason;
	int		 ch, rc;

	(void)setlocale(LC_CTYPE, "");
	memset(&o, 0, sizeof(o));
	o.timeout = TIMEOUT_DEFAULT;
	o.port = RELAY_PORT_STR;

	/* "+": options end at the first operand, so text may hold "-". */
	while ((ch = getopt(argc, argv, "+hK:P:S:t:u:")) != -1) {
		switch (ch) {
		case 'K':
			keyfile = optarg;
			break;
		case 'P':
			passfile = optarg;
			break;
		case 'S':
			secretfile = optarg;
			break;
		case 't':
			o.timeout = (int)strtonum(optarg, 1, 3600, &errstr);
			if (errstr != NULL) {
				fprintf(stderr, "relay: timeout %s: %s\n",
				    optarg, errstr);
				exit(EXIT_LOCAL);
			}
			break;
		case 'u':
			user = optarg;
			break;
		case 'h':
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	o.host = argv[0];
	argc--;
	argv++;
	if (argc > 0 && relay_numeric(argv[0])) {
		(void)strtonum(argv[0], 1, 65535, &errstr);
		if (errstr != NULL) {
			fprintf(stderr, "relay: port %s: %s\n", argv[0],
			    errstr);
			exit(EXIT_LOCAL);
		}
		o.port = argv[0];
		argc--;
		argv++;
	}
	if (argc > 0) {
		relay_oneshot(argv, argc);
		o.oneshot = argv;
		o.noneshot = argc;
	}

	if (config_load(&o, keyfile, secretfile, passfile, user) == -1) {
		config_wipe(&o);
		exit(EXIT_LOCAL);
	}
	if ((c = conn_open(o.host, o.port, o.timeout, &errstr)) == NULL) {
		config_wipe(&o);
		fprintf(stderr, "relay: %s\n", errstr);
		exit(EXIT_CONNECT);
	}
	if (conn_setkey(c, o.key) == -1 || conn_sethead(c, o.secret) == -1) {
		config_wipe(&o);
		conn_free(c);
		fprintf(stderr, "relay: bad key or secret code\n");
		exit(EXIT_LOCAL);
	}
	/* The connection holds what it needs; drop our copies. */
	explicit_bzero(o.key, sizeof(o.key));
	explicit_bzero(o.secret, sizeof(o.secret));
	if ((s = session_new(c, &o)) == NULL) {
		config_wipe(&o);
		conn_free(c);
		fprintf(stderr, "relay: out of memory\n");
		exit(EXIT_LOCAL);
	}

	if (o.oneshot != NULL)
		rc = script_run(s, o.oneshot, o.noneshot);
	else if (isatty(STDIN_FILENO))
		rc = ui_run(s);
	else
		rc = script_run(s, NULL, 0);

	if ((reason = session_reason(s)) != NULL)
		fprintf(stderr, "relay: %s\n", reason);
	config_wipe(&o);
	session_free(s);
	conn_free(c);
	if (fflush(stdout) == EOF && rc == EXIT_OK)
		rc = EXIT_LOCAL;
	return rc;
}
