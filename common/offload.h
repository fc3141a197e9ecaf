/* SPDX-License-Identifier: MIT */
/* Offload metadata of captured packets: which are GSO, which carry only a partial checksum. */
#ifndef TUNLAB_OFFLOAD_H
#define TUNLAB_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkt.h"

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

#endif
