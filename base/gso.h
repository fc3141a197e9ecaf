/* SPDX-License-Identifier: MIT */
/* Software offload: TCP segmentation and checksum completion for peers that cannot inject GSO packets. */
#ifndef TUNLAB_GSO_H
#define TUNLAB_GSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkt.h"

enum {
	/* Scratch that holds any segment of any packet: IP's total-length limit. */
	PKT_SEGMENT_SCRATCH = 65535,
};

/*
 * Called once per plain packet that pkt_segment makes. seg->data points
 * into the scratch buffer (or at the input, for a packet already plain)
 * and is only valid until the callback returns. A negative return stops
 * the segmentation and becomes pkt_segment's result.
 */
typedef int (*pkt_segment_cb)(void *ctx, const struct pkt *seg);

/*
 * Completes a partial L4 checksum in place, as virtio_net_hdr means it:
 * the field at csum_start + csum_offset holds the pseudo-header sum, and
 * the one's complement sum over [csum_start, len) goes there. Returns 0
 * (also when off has no PKT_F_NEEDS_CSUM), or -EINVAL when the field lies
 * outside the packet.
 */
int pkt_finish_csum(uint8_t *data, size_t len, const struct pkt_offload *off);

/*
 * Whether the TCP checksum of a packet of IP version 4 or 6 verifies,
 * pseudo-header included, its TCP header at l4 (for IPv6, 40: the
 * pseudo-header's addresses are the IPv6 header's, no routing header).
 */
bool pkt_tcp_csum_ok(const uint8_t *data, size_t len, unsigned version, uint32_t l4);

/*
 * Turns p into plain packets with valid checksums and hands each to emit:
 * a TCP GSO packet (PKT_GSO_TCPV4/TCPV6) into segments of gso_size payload
 * bytes, a packet with only PKT_F_NEEDS_CSUM into one copy with its
 * checksum completed, a plain packet into itself. p is never modified;
 * a block that is not plain must first pass offload_check (offload.h),
 * the same check a peer's block passes before it reaches a virtio-net
 * header, so p may hold arbitrary bytes.
 *
 * Returns the number of packets emitted, or a negative errno: -EOPNOTSUPP
 * for UDP GSO (UFO), -EINVAL for a malformed packet or offload block,
 * -ENOSPC when a segment does not fit scratch_len, or what emit returned.
 */
int pkt_segment(const struct pkt *p, uint8_t *scratch, size_t scratch_len, pkt_segment_cb emit,
		void *ctx);

#endif
