/*
 * hook.c: a seam in the worker's command dispatch.  relayd links this
 * object, which does nothing; the fault-test build of the daemon
 * (tests/hook/) links another in its place, whose commands make a worker
 * misbehave the way a compromised one would.  No test code is compiled
 * into relayd itself.
 */
#include "relayd.h"

/*
 * Called with each command's VERB and the worker's pipe to the hub before
 * the command runs.  1: the hook took the command; 0: run it as usual.
 */
int
hook_command(const char *verb, int hub_fd)
{
	return 0;
}
