/* SPDX-License-Identifier: MIT */
/* Receive-side coalescing: in-order TCP segments of a flow into one GSO packet for a device with offload. */
#ifndef TUNLAB_GRO_H
#define TUNLAB_GRO_H

#include <stddef.h>
#include <stdint.h>

#include "pkt.h"

enum {
	/* The largest packet made: IP's total-length limit, and TUN's GSO limit. */
	PKT_COALESCE_MAX = 65535,
	/*
	 * Arena that holds every merged packet of a full batch of segments up
	 * to 4 KiB; a group that does not fit any more goes out unmerged.
	 */
	PKT_COALESCE_ARENA = PKT_BATCH_MAX * 4096,
};

/*
 * Merges runs of plain TCP segments of one flow in batch into TCP GSO
 * packets (PKT_GSO_TCPV4/TCPV6, PKT_F_NEEDS_CSUM, the pseudo-header sum
 * in the checksum field) written into arena, as the kernel's GRO would:
 * the same addresses and ports, each segment's sequence number where the
 * last one ended, the same ACK number, window, TCP options, header
 * lengths, TOS/traffic class, TTL/hop limit and DF, the IPv4 ID going up
 * by one (or fixed, with DF), flags ACK with PSH only on the last, every
 * segment's payload gso_size long but the last (which may be shorter),
 * checksums valid (so a bad one is never laundered by NEEDS_CSUM), and
 * the whole at most PKT_COALESCE_MAX bytes. IPv4 options, IPv6 extension
 * headers and fragments are never merged.
 *
 * The batch is rewritten in place: a merged packet stands where its
 * first segment stood, everything else keeps its place and its memory,
 * so each flow's packets stay in order (flows may interleave otherwise).
 * Input packets are read only; every length is checked, so the batch
 * may hold arbitrary bytes. Merged packets live in arena until the next
 * call. Returns how many packets were merged into others (the batch
 * shrank by that many).
 */
unsigned pkt_coalesce(struct pkt_batch *batch, uint8_t *arena, size_t arena_len);

#endif
