/*
 * hook_faults.c: the hook object of build/tests/relayd-hook, the daemon
 * the fault tests (tests/regress/test_07_faults.py) run.  It takes the
 * place of relayd/hook.c and gives a worker verbs no client has, to act
 * as a compromised worker would:
 *   ZZEXEC     execve(2) of /bin/sh: the sandbox must kill the worker;
 *   ZZGARBAGE  a record of a type that does not exist, on the pipe to
 *              the hub, which must end that worker, log it, and go on;
 *   ZZBIGREC   a record header announcing more than a record may hold;
 *   ZZBADLOGIN a W_LOGIN record whose fields do not parse.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "relayd.h"

extern char	**environ;

/* The pipe may be full or gone: the worker goes on either way. */
static int
hook_write(int fd, const void *p, size_t len)
{
	if (write(fd, p, len) == -1)
		return 1;
	return 1;
}

int
hook_command(const char *verb, int hub_fd)
{
	char		*argv[] = { "sh", "-c", "echo escaped", NULL };
	uint32_t	 rec[3];

	if (strcmp(verb, "ZZEXEC") == 0) {
		execve("/bin/sh", argv, environ);
		_exit(99);	/* the sandbox let it through and it failed */
	}
	/* A record is {u32 type, u32 length} in host order, then bytes. */
	if (strcmp(verb, "ZZGARBAGE") == 0) {
		rec[0] = 4242;
		rec[1] = 4;
		memcpy(&rec[2], "junk", 4);
		return hook_write(hub_fd, rec, sizeof(rec));
	}
	if (strcmp(verb, "ZZBIGREC") == 0) {
		rec[0] = W_SAY;
		rec[1] = 0x7fffffff;
		return hook_write(hub_fd, rec, 2 * sizeof(rec[0]));
	}
	if (strcmp(verb, "ZZBADLOGIN") == 0) {
		rec[0] = W_LOGIN;
		rec[1] = 4;
		memcpy(&rec[2], "\xff\xff\xff\xff", 4);
		return hook_write(hub_fd, rec, sizeof(rec));
	}
	return 0;
}
