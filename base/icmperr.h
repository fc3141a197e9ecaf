/* SPDX-License-Identifier: MIT */
/*
 * ICMP "destination unreachable, administratively prohibited" in answer
 * to a packet: what a server says to the sender of a packet for a peer
 * that is not connected, rather than dropping it silently (issue 14).
 */
#ifndef TUNLAB_ICMPERR_H
#define TUNLAB_ICMPERR_H

#include <stddef.h>
#include <stdint.h>

enum {
	/* RFC 1812 4.3.2.3: as much of the packet as keeps the error within 576 bytes. */
	ICMPERR_V4_MAX = 576,
	/* RFC 4443 2.4 (c): within the minimum IPv6 MTU. */
	ICMPERR_V6_MAX = 1280,
	ICMPERR_MAX = ICMPERR_V6_MAX,
	ICMPERR_V4_CODE_PROHIBITED = 13, /* communication administratively prohibited */
	ICMPERR_V6_CODE_PROHIBITED = 1,  /* communication with destination administratively prohibited */
};

/*
 * Writes the error answering pkt into out (ICMPERR_MAX bytes): ICMP type 3
 * code 13, or ICMPv6 type 1 code 1, from pkt's destination to its source,
 * quoting pkt. Returns its length, or 0 where RFC 1812 4.3.2.7 and RFC
 * 4443 2.4 (e) forbid an error: pkt is itself an ICMP error (or not a
 * whole IP packet), a fragment other than the first, to a multicast or
 * broadcast address, or from an address that names no single host
 * (loopback, unspecified, multicast, broadcast, link-local).
 */
size_t icmperr_prohibited(const uint8_t *pkt, size_t len, uint8_t *out);

#endif
