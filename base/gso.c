// SPDX-License-Identifier: MIT
/* Software offload: TCP segmentation and checksum completion for peers that cannot inject GSO packets. */

/*
 * What the kernel's GSO layer does for a TUN device with offload, done in
 * userspace for a peer whose frontend injects through a raw socket
 * (nfqueue, pcap): that wants MTU-sized packets with complete checksums.
 *
 * Segmentation copies the IP and TCP headers in front of each gso_size
 * slice of the payload into one scratch buffer and fixes per segment what
 * tcp_gso_segment() fixes: IPv4 total length, ID and header checksum,
 * IPv6 payload length, TCP sequence number, FIN and PSH only on the last
 * segment, CWR only on the first, and the TCP checksum. That one is
 * computed whole (pseudo-header and segment) instead of patched from the
 * partial seed, so a wrong seed from a buggy sender cannot survive.
 * Headers are copied again for every segment: the callback may scribble
 * on what it was given. Where TCP lies comes from offload_check, which
 * also holds the offload block to the packet (offload.h).
 *
 * Checksums are base/pkt.h's RFC 1071 sums, in host byte order.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "be.h"
#include "gso.h"
#include "offload.h"

enum {
	GSO_IP_MAX = 65535,
	IPV6_HDR_LEN = 40,
};

enum { TCP_FIN = 0x01, TCP_PSH = 0x08, TCP_CWR = 0x80 };

/* One TCP GSO packet, checked and cut into count segments. */
struct tcp_gso {
	const struct pkt *p;
	struct offload_layout l; /* from offload_check: where TCP starts and ends */
	size_t payload, mss, count;
	uint32_t seq;
	uint16_t ip_id;
	uint8_t flags;
};

/* ---- checksums ---- */

static void csum_store(uint8_t *field, uint64_t sum)
{
	uint16_t check = (uint16_t)~pkt_csum_fold(sum);

	memcpy(field, &check, 2);
}

int pkt_finish_csum(uint8_t *data, size_t len, const struct pkt_offload *off)
{
	size_t start = off->csum_start, field = start + off->csum_offset;
	uint16_t check;

	if (!(off->flags & PKT_F_NEEDS_CSUM))
		return 0;
	if (field + 2 > len)
		return -EINVAL;
	check = (uint16_t)~pkt_csum_fold(pkt_csum_add(0, data + start, len - start));
	/* UDP reads 0 as "no checksum"; 0xffff is the same sum (the kernel's CSUM_MANGLED_0). */
	if (check == 0)
		check = 0xffff;
	memcpy(data + field, &check, 2);
	return 0;
}

/* The sum of the TCP pseudo-header of a segment whose IP header is at seg. */
static uint64_t pseudo_sum(const uint8_t *seg, const struct offload_layout *l, size_t tcp_len)
{
	uint8_t ph[IPV6_HDR_LEN] = { 0 };

	if (l->version == 4) {
		memcpy(ph, seg + 12, 8); /* source, destination */
		ph[9] = IPPROTO_TCP;
		put_be16(ph + 10, (uint16_t)tcp_len);
		return pkt_csum_add(0, ph, 12);
	}
	memcpy(ph, seg + 8, 32);
	put_be32(ph + 32, (uint32_t)tcp_len);
	ph[39] = IPPROTO_TCP;
	return pkt_csum_add(0, ph, 40);
}

bool pkt_tcp_csum_ok(const uint8_t *data, size_t len, unsigned version, uint32_t l4)
{
	struct offload_layout l = { .version = version, .proto = IPPROTO_TCP, .l4 = l4 };

	if (l4 > len)
		return false;
	/* A right checksum makes the sum over all it covers negative zero. */
	return pkt_csum_fold(pkt_csum_add(pseudo_sum(data, &l, len - l4), data + l4, len - l4)) == 0xffff;
}

/* ---- segmenting ---- */

/* p passed offload_check, which found its layout l. */
static int tcp_gso_init(struct tcp_gso *g, const struct pkt *p, const struct offload_layout *l,
			size_t scratch_len)
{
	const uint8_t *tcp;

	g->p = p;
	g->l = *l;
	g->mss = p->off.gso_size;
	g->payload = p->len - g->l.hdr_len;
	g->count = (g->payload + g->mss - 1) / g->mss;
	/* Follows from len <= 65535 and mss > 0; kept as the loop's bound in plain sight. */
	if (g->count > GSO_IP_MAX / g->mss + 1)
		return -EINVAL;
	if (g->l.hdr_len + (g->payload < g->mss ? g->payload : g->mss) > scratch_len)
		return -ENOSPC;
	tcp = p->data + g->l.l4;
	g->seq = get_be32(tcp + 4);
	g->flags = tcp[13];
	g->ip_id = g->l.version == 4 ? get_be16(p->data + 4) : 0;
	return 0;
}

static void fix_ip(const struct tcp_gso *g, uint8_t *seg, size_t seg_len, size_t i)
{
	if (g->l.version == 6) {
		put_be16(seg + 4, (uint16_t)(seg_len - IPV6_HDR_LEN));
		return;
	}
	put_be16(seg + 2, (uint16_t)seg_len);
	put_be16(seg + 4, (uint16_t)(g->ip_id + i));
	memset(seg + 10, 0, 2);
	csum_store(seg + 10, pkt_csum_add(0, seg, g->l.l4));
}

static void fix_tcp(const struct tcp_gso *g, uint8_t *seg, size_t seg_len, size_t i)
{
	uint8_t *tcp = seg + g->l.l4;
	size_t tcp_len = seg_len - g->l.l4;
	uint8_t flags = g->flags;

	if (i + 1 < g->count)
		flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
	if (i > 0)
		flags &= (uint8_t)~TCP_CWR;
	put_be32(tcp + 4, g->seq + (uint32_t)(i * g->mss));
	tcp[13] = flags;
	memset(tcp + 16, 0, 2);
	csum_store(tcp + 16, pkt_csum_add(pseudo_sum(seg, &g->l, tcp_len), tcp, tcp_len));
}

/* Builds segment i in scratch; returns its length. */
static size_t tcp_gso_build(const struct tcp_gso *g, size_t i, uint8_t *scratch)
{
	size_t at = i * g->mss;
	size_t n = g->payload - at < g->mss ? g->payload - at : g->mss;
	size_t seg_len = g->l.hdr_len + n;

	memcpy(scratch, g->p->data, g->l.hdr_len);
	memcpy(scratch + g->l.hdr_len, g->p->data + g->l.hdr_len + at, n);
	fix_ip(g, scratch, seg_len, i);
	fix_tcp(g, scratch, seg_len, i);
	return seg_len;
}

static int segment_tcp(const struct pkt *p, const struct offload_layout *l, uint8_t *scratch,
		       size_t scratch_len, pkt_segment_cb emit, void *ctx)
{
	struct tcp_gso g;
	struct pkt seg = { .data = scratch };
	int ret = tcp_gso_init(&g, p, l, scratch_len);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < g.count; i++) {
		seg.len = (uint32_t)tcp_gso_build(&g, i, scratch);
		ret = emit(ctx, &seg);
		if (ret < 0)
			return ret;
	}
	return (int)g.count;
}

static int segment_csum_only(const struct pkt *p, uint8_t *scratch, size_t scratch_len,
			     pkt_segment_cb emit, void *ctx)
{
	struct pkt seg = { .data = scratch, .len = p->len };
	int ret;

	if (p->len > scratch_len)
		return -ENOSPC;
	memcpy(scratch, p->data, p->len);
	ret = pkt_finish_csum(scratch, p->len, &p->off);
	if (ret < 0)
		return ret;
	ret = emit(ctx, &seg);
	return ret < 0 ? ret : 1;
}

int pkt_segment(const struct pkt *p, uint8_t *scratch, size_t scratch_len, pkt_segment_cb emit,
		void *ctx)
{
	struct pkt seg = { .data = p->data, .len = p->len };
	struct offload_layout l;
	int ret;

	if (pkt_is_plain(p)) {
		ret = emit(ctx, &seg);
		return ret < 0 ? ret : 1;
	}
	/* The same check a peer's offload block passes before it reaches the kernel. */
	ret = offload_check(p, &l);
	if (ret < 0)
		return ret;
	if (p->off.gso_type == PKT_GSO_NONE)
		return segment_csum_only(p, scratch, scratch_len, emit, ctx);
	return segment_tcp(p, &l, scratch, scratch_len, emit, ctx);
}
