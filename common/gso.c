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
 * on what it was given.
 *
 * Checksums are RFC 1071 sums in host byte order (the one's complement
 * sum does not care, as long as the result is stored in host order too),
 * over 32-bit words into a 64-bit accumulator: no carry to propagate
 * until the fold, and 2^32 words before it could overflow.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "gso.h"

enum {
	GSO_IP_MAX = 65535,
	IPV4_HDR_MIN = 20,
	IPV6_HDR_LEN = 40,
	TCP_HDR_MIN = 20,
	/* Extension headers walked before TCP; more is no packet we sent. */
	IPV6_EXT_MAX = 8,
};

enum { TCP_FIN = 0x01, TCP_PSH = 0x08, TCP_CWR = 0x80 };

/* Where TCP starts and ends in a packet, read from the packet itself. */
struct tcp_layout {
	unsigned version;
	size_t tcp_off; /* IP header, IPv4 options and IPv6 extension headers */
	size_t hdr_len; /* ... and the TCP header with its options */
};

/* One TCP GSO packet, checked and cut into count segments. */
struct tcp_gso {
	const struct pkt *p;
	struct tcp_layout l;
	size_t payload, mss, count;
	uint32_t seq;
	uint16_t ip_id;
	uint8_t flags;
};

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

/* ---- checksums ---- */

static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	uint32_t w32;
	uint16_t w16;

	for (; len >= 4; p += 4, len -= 4) {
		memcpy(&w32, p, 4);
		sum += w32;
	}
	if (len >= 2) {
		memcpy(&w16, p, 2);
		sum += w16;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* An odd last byte is the high half of a word padded with zero. */
		uint8_t tail[2] = { p[0], 0 };

		memcpy(&w16, tail, 2);
		sum += w16;
	}
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void csum_store(uint8_t *field, uint64_t sum)
{
	uint16_t check = (uint16_t)~csum_fold(sum);

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
	check = (uint16_t)~csum_fold(csum_add(0, data + start, len - start));
	/* UDP reads 0 as "no checksum"; 0xffff is the same sum (the kernel's CSUM_MANGLED_0). */
	if (check == 0)
		check = 0xffff;
	memcpy(data + field, &check, 2);
	return 0;
}

/* The sum of the TCP pseudo-header of a segment whose IP header is at seg. */
static uint64_t pseudo_sum(const uint8_t *seg, const struct tcp_layout *l, size_t tcp_len)
{
	uint8_t ph[IPV6_HDR_LEN] = { 0 };

	if (l->version == 4) {
		memcpy(ph, seg + 12, 8); /* source, destination */
		ph[9] = IPPROTO_TCP;
		put_be16(ph + 10, (uint16_t)tcp_len);
		return csum_add(0, ph, 12);
	}
	memcpy(ph, seg + 8, 32);
	put_be32(ph + 32, (uint32_t)tcp_len);
	ph[39] = IPPROTO_TCP;
	return csum_add(0, ph, 40);
}

/* ---- finding TCP ---- */

static int ipv4_layout(const uint8_t *d, size_t len, struct tcp_layout *l)
{
	size_t ihl = (size_t)(d[0] & 0x0f) * 4;

	if (ihl < IPV4_HDR_MIN || ihl > len || d[9] != IPPROTO_TCP)
		return -EINVAL;
	/* A fragment's TCP header is not where it seems (or not there at all). */
	if (get_be16(d + 6) & 0x3fff)
		return -EINVAL;
	l->tcp_off = ihl;
	return 0;
}

/*
 * Options headers only: a routing header would change the destination
 * the pseudo-header names, and a fragment header has no place in GSO.
 */
static int ipv6_layout(const uint8_t *d, size_t len, struct tcp_layout *l)
{
	size_t off = IPV6_HDR_LEN;
	uint8_t next;

	if (len < IPV6_HDR_LEN)
		return -EINVAL;
	next = d[6];
	for (int i = 0; i < IPV6_EXT_MAX && (next == IPPROTO_HOPOPTS || next == IPPROTO_DSTOPTS); i++) {
		if (off + 8 > len)
			return -EINVAL;
		next = d[off];
		off += ((size_t)d[off + 1] + 1) * 8;
	}
	if (next != IPPROTO_TCP || off > len)
		return -EINVAL;
	l->tcp_off = off;
	return 0;
}

static int tcp_layout(const struct pkt *p, struct tcp_layout *l)
{
	const uint8_t *d = p->data;
	size_t len = p->len, doff;
	int ret;

	if (len < IPV4_HDR_MIN || len > GSO_IP_MAX)
		return -EINVAL;
	l->version = d[0] >> 4;
	if (l->version != (p->off.gso_type == PKT_GSO_TCPV4 ? 4u : 6u))
		return -EINVAL;
	ret = l->version == 4 ? ipv4_layout(d, len, l) : ipv6_layout(d, len, l);
	if (ret < 0)
		return ret;
	if (l->tcp_off + TCP_HDR_MIN > len)
		return -EINVAL;
	doff = (size_t)(d[l->tcp_off + 12] >> 4) * 4;
	if (doff < TCP_HDR_MIN || l->tcp_off + doff > len)
		return -EINVAL;
	l->hdr_len = l->tcp_off + doff;
	return 0;
}

/* ---- segmenting ---- */

static int tcp_gso_init(struct tcp_gso *g, const struct pkt *p, size_t scratch_len)
{
	const uint8_t *tcp;
	int ret = tcp_layout(p, &g->l);

	if (ret < 0)
		return ret;
	g->p = p;
	g->mss = p->off.gso_size;
	if (g->mss == 0)
		return -EINVAL;
	g->payload = p->len - g->l.hdr_len;
	/* No payload at all is still one packet, as the kernel would send it. */
	g->count = g->payload ? (g->payload + g->mss - 1) / g->mss : 1;
	/* Follows from len <= GSO_IP_MAX; kept as the loop's bound in plain sight. */
	if (g->count > GSO_IP_MAX / g->mss + 1)
		return -EINVAL;
	if (g->l.hdr_len + (g->payload < g->mss ? g->payload : g->mss) > scratch_len)
		return -ENOSPC;
	tcp = p->data + g->l.tcp_off;
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
	csum_store(seg + 10, csum_add(0, seg, g->l.tcp_off));
}

static void fix_tcp(const struct tcp_gso *g, uint8_t *seg, size_t seg_len, size_t i)
{
	uint8_t *tcp = seg + g->l.tcp_off;
	size_t tcp_len = seg_len - g->l.tcp_off;
	uint8_t flags = g->flags;

	if (i + 1 < g->count)
		flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
	if (i > 0)
		flags &= (uint8_t)~TCP_CWR;
	put_be32(tcp + 4, g->seq + (uint32_t)(i * g->mss));
	tcp[13] = flags;
	memset(tcp + 16, 0, 2);
	csum_store(tcp + 16, csum_add(pseudo_sum(seg, &g->l, tcp_len), tcp, tcp_len));
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

static int segment_tcp(const struct pkt *p, uint8_t *scratch, size_t scratch_len,
		       pkt_segment_cb emit, void *ctx)
{
	struct tcp_gso g;
	struct pkt seg = { .data = scratch };
	int ret = tcp_gso_init(&g, p, scratch_len);

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
	int ret;

	switch (p->off.gso_type) {
	case PKT_GSO_NONE:
		if (p->off.flags & PKT_F_NEEDS_CSUM)
			return segment_csum_only(p, scratch, scratch_len, emit, ctx);
		ret = emit(ctx, &seg);
		return ret < 0 ? ret : 1;
	case PKT_GSO_TCPV4:
	case PKT_GSO_TCPV6:
		return segment_tcp(p, scratch, scratch_len, emit, ctx);
	case PKT_GSO_UDP:
		return -EOPNOTSUPP;
	default:
		return -EINVAL;
	}
}
