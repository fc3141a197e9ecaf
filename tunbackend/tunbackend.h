/* SPDX-License-Identifier: MIT */
/* The virtual-NIC approach: a TUN device the remote prefixes are routed to. */
#ifndef TUNLAB_TUNBACKEND_H
#define TUNLAB_TUNBACKEND_H

#include "../base/frontend.h"

enum {
	/*
	 * tunlab's routes carry protocol 77 so cleanup and a student's
	 * `ip route show proto 77` find them. 77 is unassigned in
	 * /etc/iproute2/rt_protos (kernel 2, static 4, ... babel 42, openr 99).
	 */
	TUNB_RT_PROTO = 77,
	/* Inner MTU when the caller passes 0: room for TLS/TCP/IP over a 1500 underlay. */
	TUNB_MTU_DEFAULT = 1420,
};

/* ifalias of every device tunlab creates: "tunlab:pid=1234" names the owner. */
#define TUNB_ALIAS_PREFIX "tunlab:pid="

extern const struct frontend_ops tunbackend_frontend;

#endif
