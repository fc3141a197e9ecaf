/* SPDX-License-Identifier: MIT */
/* Logging for the program: the only place tunlab writes diagnostics. */
#ifndef TUNLAB_LOG_H
#define TUNLAB_LOG_H

#include <stdbool.h>

#include "../tunnel/tunnel.h"

void log_init(const char *role, bool debug);
void log_msg(enum tunnel_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
