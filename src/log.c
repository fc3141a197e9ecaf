// SPDX-License-Identifier: MIT
/* One line per event on stderr: time, role, level, message. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_role = "tunlab";
static bool log_debug;

void log_init(const char *role, bool debug)
{
	log_role = role;
	log_debug = debug;
}

void log_msg(enum tunnel_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	struct timespec ts;
	va_list ap;

	if (level == TUNNEL_LOG_DEBUG && !log_debug)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "%lld.%03ld tunlab %s[%d] %s: ", (long long)ts.tv_sec,
		ts.tv_nsec / 1000000, log_role, (int)getpid(), names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
