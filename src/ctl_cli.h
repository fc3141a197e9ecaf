/* SPDX-License-Identifier: MIT */
/* tunlab show [--json], tunlab policy show|load FILE [--pid N], tunlab handover|down [--pid N]: the control socket's command line. */
#ifndef TUNLAB_CTL_CLI_H
#define TUNLAB_CTL_CLI_H

#include <stdbool.h>

/* argv[1] is "show", "policy" or "handover"; dir is where the sockets are (OWNER_RUN_DIR). The exit status. */
int ctl_cli_main(int argc, char *argv[], const char *dir);

/*
 * For tunlab cleanup: removes this network namespace's sockets that nobody
 * listens on (an instance killed with -9). Returns how many.
 */
int ctl_prune(const char *dir);

#endif
