/* SPDX-License-Identifier: MIT */
/* Injecting IP packets into the local stack with raw sockets, one sendmmsg per family per batch. */
#ifndef TUNLAB_RAWINJECT_H
#define TUNLAB_RAWINJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../base/pkt.h"

enum {
	/* SO_MARK of every packet injected ("tu"): rules can tell tunlab's own apart. */
	RAWINJECT_MARK = 0x7475,
};

struct rawinject {
	int fd4, fd6;           /* fd6 -1 when the host has no IPv6 */
	struct mmsghdr *msgs;   /* PKT_BATCH_MAX each, one allocation */
	struct iovec *iov;
	struct sockaddr_storage *to;
};

/* What one batch did, for the frontend's stats. */
struct rawinject_counts {
	uint64_t packets, bytes; /* the kernel took them */
	uint64_t refused;        /* not plain, malformed, no IPv6 here, or refused by the kernel */
	uint64_t denied;         /* a special source or destination (base/reach.h): never sent */
};

int rawinject_open(struct rawinject *in, char *err, size_t err_len);
/*
 * Sends every plain IPv4/IPv6 packet of batch, adding what happened to
 * counts; -errno and err only when a socket itself is broken.
 */
int rawinject_batch(struct rawinject *in, const struct pkt_batch *batch,
		    struct rawinject_counts *counts, char *err, size_t err_len);
void rawinject_close(struct rawinject *in);

/*
 * Sends msgs[0..n) on fd with sendmmsg, the packet in each message's last
 * iovec (before it, a header of the socket's own, if any). A message the
 * kernel refuses is skipped and counted in refused; the others in packets
 * and bytes (the packet's). Returns 0, or -errno when fatal(errno) says
 * the socket itself is broken. pktinject shares it.
 */
int rawinject_send_batch(int fd, struct mmsghdr *msgs, unsigned n, bool (*fatal)(int err),
			 struct rawinject_counts *c);

#endif
