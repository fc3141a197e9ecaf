/* SPDX-License-Identifier: MIT */
/* Injecting packets, GSO super-packets included, through a packet socket with a virtio-net header. */
#ifndef TUNLAB_PKTINJECT_H
#define TUNLAB_PKTINJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "nexthop.h"
#include "../base/pkt.h"
#include "rawinject.h"

struct virtio_net_hdr;

enum {
	PKTINJECT_L2_LEN = 14, /* the Ethernet header lo's frames carry */
};

/* One frame's header: the virtio-net header, then an Ethernet header. */
struct pktinject_frame_hdr {
	uint8_t vnet[10];       /* struct virtio_net_hdr */
	uint8_t eth[PKTINJECT_L2_LEN];
};

struct pktinject {
	int fd;
	int ifindex;                     /* lo's */
	struct mmsghdr *msgs;            /* PKT_BATCH_MAX each, one allocation each */
	struct iovec *iov;               /* 2 per packet: the headers, the packet */
	struct pktinject_frame_hdr *hdrs;
	struct sockaddr_ll *to;          /* the device of each frame */
	struct nexthop_cache *hops;      /* --inject dev only, else NULL */
};

/*
 * Opens an AF_PACKET socket with PACKET_VNET_HDR bound to lo, marked
 * RAWINJECT_MARK like the raw sockets. What it sends loops back in on lo
 * as if received there: delivered locally or forwarded by the routing
 * table (TTL decremented, "fragmentation needed" for a too-big DF packet).
 * egress: a packet whose route leaves by an Ethernet device with a
 * resolved neighbour is written on that device instead (nfkit/nexthop.h),
 * past the local stack: no TTL, no frag-needed, no netfilter FORWARD.
 */
int pktinject_open(struct pktinject *in, bool egress, char *err, size_t err_len);
/*
 * Sends every IPv4/IPv6 packet of batch, plain or with an offload block
 * that offload_check accepts, adding what happened to counts; -errno and
 * err only when the socket itself is broken.
 */
int pktinject_batch(struct pktinject *in, const struct pkt_batch *batch,
		    struct rawinject_counts *counts, char *err, size_t err_len);
void pktinject_close(struct pktinject *in);

/*
 * The frame header for p (the vnet header offsets counting the Ethernet
 * header, which carries lo's all-zero addresses and p's EtherType); false
 * when p is not IPv4/IPv6 or its offload block fails offload_check.
 */
bool pktinject_frame_hdr(const struct pkt *p, struct pktinject_frame_hdr *h);

/*
 * A frontend's choice of injection (its --inject): "raw" (rawinject, one
 * MTU packet per send, no offload), "lo" (this module) or "dev" (this
 * module, egress on); NULL picks the default, lo. Returns -EINVAL for
 * another name.
 */
enum pktinject_method { PKTINJECT_RAW, PKTINJECT_LO, PKTINJECT_DEV };

struct pktinject_any {
	enum pktinject_method method;
	struct rawinject raw;
	struct pktinject pk;
};

int pktinject_any_parse(const char *name, enum pktinject_method *method);
/*
 * Whether IPv4 source validation on lo is strict (rp_filter 1, the larger
 * of conf/all and conf/lo): it drops what the tunnel injects through lo,
 * since the inner sources are not routed via lo. pktinject_any_open then
 * takes raw for the default (name NULL) and refuses lo and dev by name.
 */
bool pktinject_lo_rp_strict(void);
int pktinject_any_open(struct pktinject_any *a, const char *name, enum pktinject_method method,
		       char *err, size_t err_len);
int pktinject_any_batch(struct pktinject_any *a, const struct pkt_batch *batch,
			struct rawinject_counts *counts, char *err, size_t err_len);
void pktinject_any_close(struct pktinject_any *a);

#endif
