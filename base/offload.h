/* SPDX-License-Identifier: MIT */
/* Offload metadata: describing captured packets, and checking any block against its packet. */
#ifndef TUNLAB_OFFLOAD_H
#define TUNLAB_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkt.h"

struct virtio_net_hdr;

/*
 * Fills p->off for a packet a frontend captured, from what the kernel
 * said (or the frontend found out) about it:
 *   csum_partial  its TCP/UDP checksum field holds the pseudo-header sum
 *                 only (CHECKSUM_PARTIAL): PKT_F_NEEDS_CSUM;
 *   gso           it is a GSO packet: a TCP packet longer than mtu gets
 *                 PKT_GSO_TCPV4/TCPV6 with gso_size = mtu - IP header -
 *                 TCP header (what a TUN device of that MTU would see),
 *                 its checksum made partial if it was complete.
 * Neither flag: a plain packet (p->off all zero). Returns false when the
 * packet cannot be described: a fragment, UDP GSO, another protocol that
 * claims an offload, or headers that do not fit.
 */
bool offload_describe(struct pkt *p, bool csum_partial, bool gso, unsigned mtu);

/*
 * Whether the TCP or UDP checksum field of an unfragmented packet holds
 * exactly its folded pseudo-header sum: how a packet socket shows a
 * CHECKSUM_PARTIAL packet, whose sum the device was to finish. A
 * complete checksum that happens to equal that sum (1 in 65536) is
 * harmless: finishing it again gives the same value back.
 */
bool offload_csum_is_pseudo(const uint8_t *data, size_t len);

/* Where the headers of a packet lie, as offload_check found them. */
struct offload_layout {
	unsigned version; /* 4 or 6 */
	uint8_t proto;    /* the transport protocol */
	uint32_t l4;      /* offset of the transport header */
	uint32_t hdr_len; /* GSO: IP and TCP headers with their options; else 0 */
};

/*
 * Whether p's offload block tells the truth about p: the one check before
 * offload metadata reaches a virtio-net header (a peer's FRAME_PACKET_OFF)
 * or the software segmentation (pkt_segment). A plain block is fine when
 * its other fields are 0. Otherwise:
 *   - p is IPv4 or IPv6, at most 65535 bytes, not a fragment, its
 *     transport header found within bounded extension headers;
 *   - flags holds no bit but PKT_F_NEEDS_CSUM, and csum_start is exactly
 *     that transport header, csum_offset its checksum field (TCP 16, UDP
 *     6), the header inside p;
 *   - GSO: gso_type TCPV4 for an IPv4 and TCPV6 for an IPv6 TCP packet
 *     (no routing header, which would change the pseudo-header), with
 *     PKT_F_NEEDS_CSUM, hdr_len exactly the IP and TCP headers, some
 *     payload after them, gso_size > 0;
 *   - no GSO: gso_size 0 and hdr_len within p (virtio's hint).
 * Returns 0 (filling *l when l is not NULL), -EOPNOTSUPP for UDP GSO, or
 * -EINVAL.
 */
int offload_check(const struct pkt *p, struct offload_layout *l);

/*
 * The virtio-net header (host order: legacy virtio, as TUN and packet
 * sockets read it) for an offload block that offload_check accepted, for
 * a device whose frames carry l2_len bytes of link-layer header before
 * the IP header (TUN: 0; a packet socket on an Ethernet-like device: 14),
 * which csum_start and a non-zero hdr_len then count. A plain block gives
 * an all-zero header.
 */
void offload_to_vnet(const struct pkt_offload *off, unsigned l2_len, struct virtio_net_hdr *vh);

#endif
