/* SPDX-License-Identifier: MIT */
/*
 * ICMP errors in answer to a packet: "administratively prohibited", what
 * a server says to the sender of a packet for a peer that is not
 * connected, rather than dropping it silently (issue 14); and
 * "fragmentation needed" / "packet too big", what the sender of a packet
 * above the UDP data channel's inner MTU gets (issue 15).
 */
#ifndef TUNLAB_ICMPERR_H
#define TUNLAB_ICMPERR_H

#include <stdbool.h>
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
	ICMPERR_V4_CODE_FRAG_NEEDED = 4, /* fragmentation needed and DF set (type 3) */
	ICMPERR_V6_MIN_MTU = 1280,
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

/*
 * Whether pkt (len bytes) may not cross a link of mtu bytes whole: IPv4
 * above it with DF set (without DF the sender allows fragments), IPv6
 * above it, but never at or below IPv6's minimum MTU of 1280.
 */
bool icmperr_exceeds(const uint8_t *pkt, size_t len, unsigned mtu);

/*
 * As icmperr_prohibited, with ICMP type 3 code 4 "fragmentation needed
 * and DF set" carrying mtu as the next hop's MTU (RFC 1191), or ICMPv6
 * type 2 "packet too big" carrying mtu (at least 1280).
 */
size_t icmperr_too_big(const uint8_t *pkt, size_t len, unsigned mtu, uint8_t *out);

#endif
