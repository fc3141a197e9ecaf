// SPDX-License-Identifier: MIT
/* Offload metadata: describing captured packets, and checking any block against its packet. */

/*
 * Both capturing frontends hand the tunnel GSO packets whole (up to 64
 * KiB) and partial checksums partial: nfqueue because NFQA_CFG_F_GSO says
 * so in NFQA_SKB_INFO, pcap because lo does TSO and a packet socket shows
 * the skb before any segmentation. The tunnel segments in software for a
 * peer that cannot inject them (base/gso.h).
 *
 * offload_check is the other direction: a block from anywhere (a peer's
 * FRAME_PACKET_OFF, a TUN read) is held to the packet it describes before
 * it reaches the kernel or the segmenter. Both directions walk the
 * headers with the same find_l4.
 */

#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <string.h>

#include "offload.h"
#include "pkt.h"

enum { IPV6_EXT_WALK_MAX = 8 };

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/*
 * Transport protocol and header offset; false for fragments and unknown
 * chains. *routed says whether an IPv6 routing header was walked.
 */
static bool find_l4(const uint8_t *d, size_t len, uint8_t *proto, uint32_t *off, bool *routed)
{
	*routed = false;
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
		*routed |= *proto == 43;
		*proto = d[*off];
		*off += ((uint32_t)d[*off + 1] + 1) * 8;
	}
	return *off <= len && *proto != 0 && *proto != 43 && *proto != 60 && *proto != 44;
}

/*
 * The folded pseudo-header sum of the L4 segment at offset l4, in host
 * byte order (base/pkt.h): what a partial checksum holds.
 */
static uint16_t pseudo_sum(const uint8_t *d, size_t len, uint8_t proto, uint32_t l4)
{
	bool v4 = (d[0] >> 4) == 4;
	uint32_t l4_len = (uint32_t)len - l4;
	/* Protocol and length as words in network order: their sum is the same in either header. */
	const uint8_t rest[6] = { 0, proto, (uint8_t)(l4_len >> 24), (uint8_t)(l4_len >> 16),
				  (uint8_t)(l4_len >> 8), (uint8_t)l4_len };

	return pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, d + (v4 ? 12 : 8), v4 ? 8 : 32), rest,
					  sizeof(rest)));
}

/*
 * A GSO packet whose checksum the kernel had already finished (GRO on a
 * forwarded flow): store the pseudo-header sum instead, the partial form
 * that PKT_F_NEEDS_CSUM promises.
 */
static void make_partial(struct pkt *p, uint8_t proto, uint32_t l4)
{
	uint16_t sum = pseudo_sum(p->data, p->len, proto, l4);

	memcpy(p->data + l4 + p->off.csum_offset, &sum, 2);
}

bool offload_describe(struct pkt *p, bool csum_partial, bool gso, unsigned mtu)
{
	uint32_t l4, tcp_len;
	uint8_t proto;
	bool routed;

	memset(&p->off, 0, sizeof(p->off));
	if (!csum_partial && !gso)
		return true;
	if (!find_l4(p->data, p->len, &proto, &l4, &routed))
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
	uint16_t sum;
	bool routed;

	if (!find_l4(data, len, &proto, &l4, &routed))
		return false;
	if (proto == IPPROTO_TCP)
		field = l4 + 16;
	else if (proto == IPPROTO_UDP)
		field = l4 + 6;
	else
		return false;
	if (field + 2 > len)
		return false;
	sum = pseudo_sum(data, len, proto, l4);
	return memcmp(data + field, &sum, 2) == 0;
}

/* ---- checking a block against its packet ---- */

enum {
	OFFLOAD_IP_MAX = 65535,
	TCP_HDR_MIN = 20, TCP_CSUM_FIELD = 16,
	UDP_HDR_LEN = 8, UDP_CSUM_FIELD = 6,
};

/* A plain block says nothing: every other field 0, so nothing stale reaches a vnet header. */
static int check_plain(const struct pkt_offload *off)
{
	return off->hdr_len || off->gso_size || off->csum_start || off->csum_offset ? -EINVAL : 0;
}

/* csum_start and csum_offset name the transport header's own checksum field. */
static int check_csum(const struct pkt *p, const struct offload_layout *l)
{
	const struct pkt_offload *off = &p->off;

	if (off->csum_start != l->l4)
		return -EINVAL;
	if (l->proto == IPPROTO_TCP)
		return off->csum_offset == TCP_CSUM_FIELD && l->l4 + TCP_HDR_MIN <= p->len ? 0 : -EINVAL;
	if (l->proto == IPPROTO_UDP)
		return off->csum_offset == UDP_CSUM_FIELD && l->l4 + UDP_HDR_LEN <= p->len ? 0 : -EINVAL;
	return -EINVAL;
}

/* TCP segmentation: the family the type names, the whole header, a payload to cut. */
static int check_gso(const struct pkt *p, struct offload_layout *l, bool routed)
{
	const struct pkt_offload *off = &p->off;
	uint32_t doff;

	if (l->version != (off->gso_type == PKT_GSO_TCPV4 ? 4u : 6u) || l->proto != IPPROTO_TCP ||
	    routed || !(off->flags & PKT_F_NEEDS_CSUM) || off->gso_size == 0)
		return -EINVAL;
	doff = (uint32_t)(p->data[l->l4 + 12] >> 4) * 4; /* check_csum made l4 + 20 <= len */
	if (doff < TCP_HDR_MIN || l->l4 + doff > p->len)
		return -EINVAL;
	l->hdr_len = l->l4 + doff;
	return off->hdr_len == l->hdr_len && p->len > l->hdr_len ? 0 : -EINVAL;
}

int offload_check(const struct pkt *p, struct offload_layout *out)
{
	const struct pkt_offload *off = &p->off;
	struct offload_layout l = { 0 };
	bool gso = off->gso_type != PKT_GSO_NONE, routed;
	int ret;

	if (pkt_is_plain(p))
		return check_plain(off);
	if (off->gso_type == PKT_GSO_UDP)
		return -EOPNOTSUPP;
	if (gso && off->gso_type != PKT_GSO_TCPV4 && off->gso_type != PKT_GSO_TCPV6)
		return -EINVAL;
	if ((off->flags & ~PKT_F_NEEDS_CSUM) || p->len > OFFLOAD_IP_MAX)
		return -EINVAL;
	if (!find_l4(p->data, p->len, &l.proto, &l.l4, &routed))
		return -EINVAL;
	l.version = p->data[0] >> 4;
	if ((off->flags & PKT_F_NEEDS_CSUM) && (ret = check_csum(p, &l)) < 0)
		return ret;
	if (gso)
		ret = check_gso(p, &l, routed);
	else
		ret = off->gso_size == 0 && off->hdr_len <= p->len ? 0 : -EINVAL;
	if (ret == 0 && out)
		*out = l;
	return ret;
}

void offload_to_vnet(const struct pkt_offload *off, unsigned l2_len, struct virtio_net_hdr *vh)
{
	*vh = (struct virtio_net_hdr){
		.flags = off->flags,
		.gso_type = off->gso_type,
		.hdr_len = off->hdr_len ? (uint16_t)(off->hdr_len + l2_len) : 0,
		.gso_size = off->gso_size,
		.csum_start = off->flags & PKT_F_NEEDS_CSUM ? (uint16_t)(off->csum_start + l2_len) : 0,
		.csum_offset = off->csum_offset,
	};
}
