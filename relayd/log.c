/*
 * log.c: logging for all three programs, in the manner of OpenBSD daemons.
 * log_init() picks stderr (debug, or a tool) or syslog; every message
 * carries the process name set by log_procname(); errno is preserved.
 * log_limited() is for messages a remote peer can cause: it passes at most
 * LOG_BURST of them per second and then counts what it dropped, so a flood
 * cannot fill a disk.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "proto.h"

#define LOG_BURST	20	/* log_limited() messages per second */

static int	 log_debug_mode = 1;
static int	 log_verbose;
static const char *log_name = "relay";
static time_t	 limit_second;
static unsigned int limit_count;
static unsigned long limit_dropped;

static void	 vlog(int, const char *, va_list)
		    __attribute__((__format__(printf, 2, 0)));
static void	 logit(int, const char *, ...)
		    __attribute__((__format__(printf, 2, 3)));

void
log_init(int debug, int facility)
{
	log_debug_mode = debug;
	if (!debug)
		openlog(log_name, LOG_PID | LOG_NDELAY, facility);
	tzset();
}

void
log_procname(const char *name)
{
	log_name = name;
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

int
log_getverbose(void)
{
	return log_verbose;
}

static void
vlog(int pri, const char *fmt, va_list ap)
{
	int	 saved_errno = errno;

	if (log_debug_mode) {
		fprintf(stderr, "%s: ", log_name);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		fflush(stderr);
	} else
		vsyslog(pri, fmt, ap);
	errno = saved_errno;
}

static void
logit(int pri, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

/* Appends strerror(errno) to fmt, as warn(3) does. */
static void
vlog_errno(int pri, const char *fmt, va_list ap)
{
	char	 msg[1024];
	int	 saved_errno = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	logit(pri, "%s: %s", msg, strerror(saved_errno));
	errno = saved_errno;
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
log_limited(const char *fmt, ...)
{
	va_list	 ap;
	time_t	 now = time(NULL);

	if (now != limit_second) {
		if (limit_dropped > 0)
			logit(LOG_NOTICE, "%lu messages suppressed",
			    limit_dropped);
		limit_second = now;
		limit_count = 0;
		limit_dropped = 0;
	}
	if (limit_count >= LOG_BURST) {
		limit_dropped++;
		return;
	}
	limit_count++;
	va_start(ap, fmt);
	vlog(LOG_NOTICE, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
