/* SPDX-License-Identifier: MIT */
/* The iproute2 side of the TUN backend (internal to tunbackend/). */
#ifndef TUNLAB_TUN_IP_H
#define TUNLAB_TUN_IP_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/frontend.h"

/*
 * `ip -batch -` lines that tag dev, set its MTU, bring it up, add the
 * address and route every cfg->routes prefix to it. *teardown gets the
 * lines that delete exactly the routes added. Both malloc'd; -ENOMEM.
 */
int tun_ip_lines(const char *dev, const struct frontend_config *cfg, char **setup,
		  char **teardown);

/* Removes links and proto-77 routes of tunlab processes that are gone. */
int tun_ip_cleanup(bool verbose, char *err, size_t err_len);

#endif
