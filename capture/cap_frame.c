// SPDX-License-Identifier: MIT
/* One frame from libpcap into a packet of the batch: link header off, IP length checked, offload described. */

/*
 * The one place where captured bytes are parsed, so that the fuzzer can
 * call it directly (tests/fuzz/fuzz_capture.c). Whatever the kernel hands
 * over is checked again: the frame must hold the whole IP packet its
 * header announces (a snapshot length that cut it short, or a link layer
 * that padded a short frame, both show here), and no packet may exceed
 * what the tunnel frames (CAP_IP_MAX).
 *
 * Offload. A packet socket shows a CHECKSUM_PARTIAL skb as it is: its
 * TCP or UDP checksum field holds the pseudo-header sum the device was to
 * finish, and no flag says so (libpcap passes no tp_status). The field
 * itself does: it equals the folded pseudo-header sum (base/offload.c),
 * and a complete checksum that happens to equal it is finished to the
 * same value again. A packet longer than the MTU the routes set is a GSO
 * packet (lo does TSO, a forwarded one kept its GSO state from the veth):
 * described as TCP GSO; UDP GSO cannot be described and is dropped.
 */

#include <string.h>

#include "../base/offload.h"
#include "cap.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The IP packet's own length, 0 if the captured bytes are no whole IP packet. */
static uint32_t ip_length(const uint8_t *ip, uint32_t len)
{
	uint32_t total;

	if (len >= 20 && (ip[0] >> 4) == 4) {
		total = get16(ip + 2);
		return total >= 20 && total <= len ? total : 0;
	}
	if (len >= 40 && (ip[0] >> 4) == 6) {
		total = 40u + get16(ip + 4);
		/* A payload length of 0 is a jumbogram: no packet of ours. */
		return get16(ip + 4) && total <= len ? total : 0;
	}
	return 0;
}

uint32_t cap_take_packet(const uint8_t *frame, uint32_t caplen, uint32_t wirelen,
			 unsigned link_len, uint8_t *slot, unsigned mtu, struct pkt *p)
{
	uint32_t len;

	/* Cut short by the snapshot length: larger than any IP packet. */
	if (caplen < wirelen || caplen <= link_len)
		return 0;
	/* Trimmed to the IP length: a link layer may have padded a short frame. */
	len = ip_length(frame + link_len, caplen - link_len);
	if (!len || len > CAP_IP_MAX)
		return 0;
	memcpy(slot, frame + link_len, len);
	p->data = slot;
	p->len = len;
	if (!offload_describe(p, offload_csum_is_pseudo(slot, len), len > mtu, mtu))
		return 0;
	return len;
}
