/* SPDX-License-Identifier: MIT */
/* `tunlab server` and `tunlab client`: a frontend wired to the tunnel. */
#ifndef TUNLAB_DAEMON_H
#define TUNLAB_DAEMON_H

#include "../base/frontend.h"
#include "options.h"

/* Runs until SIGINT/SIGTERM (SIGHUP reloads); returns the process exit status. */
int daemon_run(const struct options *opts, const struct frontend_ops *ops);

#endif
