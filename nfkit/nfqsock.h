/* SPDX-License-Identifier: MIT */
/* One netfilter queue socket over libmnl: bind, configure, wait for the kernel's acks. */
#ifndef TUNLAB_NFQSOCK_H
#define TUNLAB_NFQSOCK_H

#include <stdint.h>

struct mnl_socket;

struct nfqsock_config {
	uint32_t copy_range; /* bytes of each packet copied to us (NFQNL_COPY_PACKET) */
	uint32_t maxlen;     /* packets that may wait for a verdict */
	uint32_t flags;      /* NFQA_CFG_F_* wanted */
	uint32_t flags_mask; /* NFQA_CFG_F_* set or cleared by flags */
	int rcvbuf;          /* socket receive buffer, bytes */
};

/*
 * A non-blocking socket bound to queue num: 0, -EPERM or -EBUSY (the
 * number is taken), -EINVAL (the kernel refused the configuration), or
 * another -errno.
 */
int nfqsock_open(struct mnl_socket **out, uint16_t num, const struct nfqsock_config *c);

#endif
