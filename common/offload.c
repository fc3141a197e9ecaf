// SPDX-License-Identifier: MIT
/* Offload metadata of captured packets: partial checksums and GSO, as struct pkt_offload says them. */

/*
 * Both capturing frontends hand the tunnel GSO packets whole (up to 64
 * KiB) and partial checksums partial: nfqueue because NFQA_CFG_F_GSO says
 * so in NFQA_SKB_INFO, pcap because lo does TSO and a packet socket shows
 * the skb before any segmentation. The tunnel segments in software for a
 * peer that cannot inject them (common/gso.h).
 */

#include <netinet/in.h>
#include <string.h>

#include "offload.h"

enum { IPV6_EXT_WALK_MAX = 8 };

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Transport protocol and header offset; false for fragments and unknown chains. */
static bool find_l4(const uint8_t *d, size_t len, uint8_t *proto, uint32_t *off)
{
	if (len < 1)
		return false;
	if ((d[0] >> 4) == 4) {
		if (len < 20 || (get16(d + 6) & 0x3fff)) /* MF or an offset: a fragment */
			return false;
		*proto = d[9];
		*off = (uint32_t)(d[0] & 0x0f) * 4;
		return *off >= 20 && *off <= len;
	}
	if ((d[0] >> 4) != 6 || len < 40)
		return false;
	*proto = d[6];
	*off = 40;
	/* Hop-by-hop, routing, destination options: bounded, each checked. */
	for (int i = 0; i < IPV6_EXT_WALK_MAX && (*proto == 0 || *proto == 43 || *proto == 60); i++) {
		if (*off + 8 > len)
			return false;
		*proto = d[*off];
		*off += ((uint32_t)d[*off + 1] + 1) * 8;
	}
	return *off <= len && *proto != 0 && *proto != 43 && *proto != 60 && *proto != 44;
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The folded pseudo-header sum of the L4 segment at offset l4: what a partial checksum holds. */
static uint16_t pseudo_sum(const uint8_t *d, size_t len, uint8_t proto, uint32_t l4)
{
	bool v4 = (d[0] >> 4) == 4;
	uint32_t sum = sum16(d + (v4 ? 12 : 8), v4 ? 8 : 32, 0);
	uint32_t l4_len = (uint32_t)len - l4;

	return fold(sum + proto + (l4_len & 0xffff) + (l4_len >> 16));
}

/*
 * A GSO packet whose checksum the kernel had already finished (GRO on a
 * forwarded flow): store the pseudo-header sum instead, the partial form
 * that PKT_F_NEEDS_CSUM promises.
 */
static void make_partial(struct pkt *p, uint8_t proto, uint32_t l4)
{
	uint16_t sum = pseudo_sum(p->data, p->len, proto, l4);
	uint8_t *field = p->data + l4 + p->off.csum_offset;

	field[0] = (uint8_t)(sum >> 8);
	field[1] = (uint8_t)sum;
}

bool offload_describe(struct pkt *p, bool csum_partial, bool gso, unsigned mtu)
{
	uint32_t l4, tcp_len;
	uint8_t proto;

	memset(&p->off, 0, sizeof(p->off));
	if (!csum_partial && !gso)
		return true;
	if (!find_l4(p->data, p->len, &proto, &l4))
		return false;
	if (proto == IPPROTO_UDP && !gso && l4 + 8 <= p->len) {
		p->off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .csum_start = (uint16_t)l4,
					       .csum_offset = 6 };
		return true;
	}
	/* UDP GSO (UDP_SEGMENT) has no pkt_gso_type; neither has anything else. */
	if (proto != IPPROTO_TCP || l4 + 20 > p->len)
		return false;
	tcp_len = (uint32_t)(p->data[l4 + 12] >> 4) * 4;
	if (tcp_len < 20 || l4 + tcp_len > p->len)
		return false;
	p->off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .csum_start = (uint16_t)l4,
				       .csum_offset = 16 };
	if (!csum_partial)
		make_partial(p, proto, l4);
	/* The segment size is not in the packet: the inner MTU, as TUN's MTU would set it. */
	if (gso && mtu > l4 + tcp_len && p->len > mtu) {
		p->off.gso_type = (p->data[0] >> 4) == 4 ? PKT_GSO_TCPV4 : PKT_GSO_TCPV6;
		p->off.hdr_len = (uint16_t)(l4 + tcp_len);
		p->off.gso_size = (uint16_t)(mtu - l4 - tcp_len);
	}
	return true;
}

bool offload_csum_is_pseudo(const uint8_t *data, size_t len)
{
	uint32_t l4;
	uint8_t proto;
	unsigned field;

	if (!find_l4(data, len, &proto, &l4))
		return false;
	if (proto == IPPROTO_TCP)
		field = l4 + 16;
	else if (proto == IPPROTO_UDP)
		field = l4 + 6;
	else
		return false;
	if (field + 2 > len)
		return false;
	return get16(data + field) == pseudo_sum(data, len, proto, l4);
}
