// SPDX-License-Identifier: MIT
/* Receive-side coalescing: in-order TCP segments of a flow into one GSO packet for a device with offload. */

/*
 * The inverse of gso.c, done where the packets of a peer arrive one
 * inner MTU at a time (the UDP data channel) but leave through a TUN
 * device with offload: one write of a 64 KiB GSO packet instead of 40-odd
 * writes, each of which runs the kernel's whole receive path, as
 * wireguard-go's TUN offload and the kernel's own GRO do.
 *
 * Two passes over one batch, nothing kept between calls. The first parses
 * each packet and finds its flow (address pair and ports) in a small
 * table; a segment that may merge joins the flow's open group when it
 * continues it exactly (tcp_gro_receive's rules, gro.h), and otherwise
 * opens a new one; any other TCP packet of the flow (SYN, FIN, a pure ACK,
 * options in the IP header) closes the flow's group, so nothing of the
 * flow jumps over it. The second pass writes each group of two or more
 * into the arena: the first segment whole, the others' payloads after
 * it, the IP lengths and IPv4 header checksum fixed, PSH of the last
 * kept, and the checksum made partial with the offload block by
 * offload_describe, the same code that describes a captured GSO packet.
 *
 * Checksums are verified before a segment joins: NEEDS_CSUM tells the
 * receiving kernel the sum is still to be made, so a corrupt segment
 * merged would come out with a valid checksum.
 */
#include <netinet/in.h>
#include <string.h>

#include "be.h"
#include "gro.h"
#include "gso.h"
#include "offload.h"

enum {
	IPV4_HDR_LEN = 20,
	IPV6_HDR_LEN = 40,
	TCP_HDR_MIN = 20,
	TCP_PSH = 0x08,
	TCP_ACK = 0x10,
	IPV4_DF = 0x4000,
	/* version, both addresses (IPv6's size), both ports */
	FLOW_KEY_LEN = 1 + 32 + 4,
	NONE = -1,
};

enum seg_kind {
	SEG_OTHER,   /* not TCP, or not readable as TCP: no flow */
	SEG_TCP,     /* a TCP packet of a flow that does not merge */
	SEG_MERGE,   /* a segment that may merge */
};

/* What the first pass knows about each packet of the batch. */
struct seg {
	uint32_t seq, ack;
	uint16_t l4, hdr_len, payload, ip_id;
	uint8_t flags;
	bool csum_checked, csum_ok;
	int head;       /* first packet of its group (itself for a head) */
	int next;       /* next packet of its group, NONE after the last */
	/* of a head only: */
	int last;
	uint32_t len;   /* bytes of the merged packet */
	bool closed;    /* nothing more joins: a short or PSH segment ended it */
};

struct flow {
	uint8_t key[FLOW_KEY_LEN];
	int open;       /* head of the group the next segment may join, or NONE */
};

struct gro {
	struct pkt in[PKT_BATCH_MAX];
	struct seg seg[PKT_BATCH_MAX];
	struct flow flows[PKT_BATCH_MAX];
	unsigned count, flow_count;
};

/* ---- the first pass: parsing and grouping ---- */

/* IP header: the TCP offset, the flow's addresses; SEG_MERGE when the IP layer allows merging. */
static enum seg_kind parse_ip(const uint8_t *d, size_t len, struct seg *s, uint8_t key[FLOW_KEY_LEN])
{
	unsigned version = d[0] >> 4;

	key[0] = (uint8_t)version;
	if (version == 4) {
		s->l4 = (uint16_t)((d[0] & 0x0f) * 4);
		/* A later fragment has no ports: no flow. */
		if (d[9] != IPPROTO_TCP || s->l4 < IPV4_HDR_LEN || (get_be16(d + 6) & 0x1fff))
			return SEG_OTHER;
		memcpy(key + 1, d + 12, 8);
		s->ip_id = get_be16(d + 4);
		return s->l4 == IPV4_HDR_LEN && get_be16(d + 2) == len && !(get_be16(d + 6) & 0x2000) ?
			       SEG_MERGE : SEG_TCP;
	}
	if (version != 6 || len < IPV6_HDR_LEN || d[6] != IPPROTO_TCP)
		return SEG_OTHER;
	s->l4 = IPV6_HDR_LEN;
	memcpy(key + 1, d + 8, 32);
	return get_be16(d + 4) + (size_t)IPV6_HDR_LEN == len ? SEG_MERGE : SEG_TCP;
}

static enum seg_kind parse(const struct pkt *p, struct seg *s, uint8_t key[FLOW_KEY_LEN])
{
	const uint8_t *d = p->data, *tcp;
	enum seg_kind kind;
	size_t doff;

	memset(key, 0, FLOW_KEY_LEN);
	if (p->len < IPV4_HDR_LEN || p->len > PKT_COALESCE_MAX)
		return SEG_OTHER;
	kind = parse_ip(d, p->len, s, key);
	if (kind == SEG_OTHER || s->l4 + (size_t)TCP_HDR_MIN > p->len)
		return SEG_OTHER;
	tcp = d + s->l4;
	memcpy(key + 33, tcp, 4);
	doff = (size_t)(tcp[12] >> 4) * 4;
	if (doff < TCP_HDR_MIN || s->l4 + doff >= p->len || !pkt_is_plain(p))
		return SEG_TCP;
	s->hdr_len = (uint16_t)(s->l4 + doff);
	s->payload = (uint16_t)(p->len - s->hdr_len);
	s->seq = get_be32(tcp + 4);
	s->ack = get_be32(tcp + 8);
	s->flags = tcp[13];
	return s->flags == TCP_ACK || s->flags == (TCP_ACK | TCP_PSH) ? kind : SEG_TCP;
}

static struct flow *flow_find(struct gro *g, const uint8_t key[FLOW_KEY_LEN])
{
	struct flow *f;

	for (unsigned i = 0; i < g->flow_count; i++)
		if (memcmp(g->flows[i].key, key, FLOW_KEY_LEN) == 0)
			return &g->flows[i];
	/* At most one flow per packet: the table cannot overflow. */
	f = &g->flows[g->flow_count++];
	memcpy(f->key, key, FLOW_KEY_LEN);
	f->open = NONE;
	return f;
}

/* Checked once per packet, and only for packets about to merge. */
static bool csum_ok(struct gro *g, int i)
{
	struct seg *s = &g->seg[i];
	const uint8_t *d = g->in[i].data;
	unsigned version = d[0] >> 4;

	if (!s->csum_checked) {
		s->csum_checked = true;
		s->csum_ok = (version != 4 || pkt_inet_csum(NULL, 0, d, IPV4_HDR_LEN) == 0) &&
			     pkt_tcp_csum_ok(d, g->in[i].len, version, s->l4);
	}
	return s->csum_ok;
}

/* The IP fields that must agree, against the group's head and its last segment. */
static bool ip_continues(const struct gro *g, int h, int last, int i)
{
	const uint8_t *hd = g->in[h].data, *d = g->in[i].data;
	uint16_t df = get_be16(d + 6) & IPV4_DF, id = g->seg[i].ip_id, last_id = g->seg[last].ip_id;

	if ((d[0] >> 4) == 6)
		return memcmp(d, hd, 4) == 0 && d[7] == hd[7]; /* class, flow label; hop limit */
	return d[1] == hd[1] && d[8] == hd[8] && df == (get_be16(hd + 6) & IPV4_DF) &&
	       (id == (uint16_t)(last_id + 1) || (df && id == last_id));
}

/* Whether segment i continues the group of head h exactly. */
static bool continues(const struct gro *g, int h, int i)
{
	const struct seg *hs = &g->seg[h], *ls = &g->seg[hs->last], *s = &g->seg[i];
	const uint8_t *ht = g->in[h].data + hs->l4, *t = g->in[i].data + s->l4;

	if (hs->closed || s->seq != ls->seq + ls->payload || s->ack != hs->ack ||
	    s->hdr_len != hs->hdr_len || s->payload > hs->payload ||
	    hs->len + s->payload > PKT_COALESCE_MAX)
		return false;
	/* Window, urgent pointer and options: bytes 14 to the header's end but the checksum. */
	if (memcmp(t + 14, ht + 14, 2) != 0 ||
	    memcmp(t + 18, ht + 18, (size_t)(hs->hdr_len - hs->l4 - 18)) != 0)
		return false;
	return ip_continues(g, h, hs->last, i);
}

static void group_start(struct gro *g, int i, bool closed)
{
	struct seg *s = &g->seg[i];

	s->head = i;
	s->next = NONE;
	s->last = i;
	s->len = g->in[i].len;
	s->closed = closed || (s->flags & TCP_PSH);
}

static bool group_join(struct gro *g, int h, int i)
{
	struct seg *hs = &g->seg[h], *s = &g->seg[i];

	if (!continues(g, h, i))
		return false;
	if (!csum_ok(g, h)) {
		hs->closed = true; /* it goes out alone, as it came */
		return false;
	}
	if (!csum_ok(g, i))
		return false;
	g->seg[hs->last].next = i;
	hs->last = i;
	hs->len += s->payload;
	hs->closed = s->payload < hs->payload || (s->flags & TCP_PSH);
	s->head = h;
	s->next = NONE;
	return true;
}

static void group_all(struct gro *g)
{
	uint8_t key[FLOW_KEY_LEN];
	enum seg_kind kind;
	struct flow *f;

	for (unsigned i = 0; i < g->count; i++) {
		memset(&g->seg[i], 0, sizeof(g->seg[i]));
		kind = parse(&g->in[i], &g->seg[i], key);
		group_start(g, (int)i, kind != SEG_MERGE);
		if (kind == SEG_OTHER)
			continue;
		f = flow_find(g, key);
		if (kind == SEG_MERGE && f->open != NONE && group_join(g, f->open, (int)i))
			continue;
		/* A segment that did not join starts the group; a bad checksum ends it at once. */
		if (kind == SEG_MERGE && g->seg[i].csum_checked && !g->seg[i].csum_ok)
			g->seg[i].closed = true;
		f->open = (int)i;
	}
}

/* ---- the second pass: writing merged packets ---- */

/* Group h as one GSO packet at out (hs->len bytes). */
static struct pkt build(const struct gro *g, int h, uint8_t *out)
{
	const struct seg *hs = &g->seg[h];
	struct pkt m = { .data = out, .len = hs->len };
	size_t at = g->in[h].len;
	uint16_t check;

	memcpy(out, g->in[h].data, at);
	for (int j = hs->next; j != NONE; j = g->seg[j].next) {
		memcpy(out + at, g->in[j].data + hs->hdr_len, g->seg[j].payload);
		at += g->seg[j].payload;
	}
	if ((out[0] >> 4) == 4) {
		put_be16(out + 2, (uint16_t)m.len);
		memset(out + 10, 0, 2);
		check = pkt_inet_csum(NULL, 0, out, IPV4_HDR_LEN);
		memcpy(out + 10, &check, 2);
	} else {
		put_be16(out + 4, (uint16_t)(m.len - IPV6_HDR_LEN));
	}
	out[hs->l4 + 13] |= g->in[hs->last].data[hs->l4 + 13] & TCP_PSH;
	/* The checksum made partial, the block filled: gso_size is the first segment's payload. */
	(void)offload_describe(&m, false, true, (unsigned)hs->hdr_len + hs->payload);
	return m;
}

unsigned pkt_coalesce(struct pkt_batch *batch, uint8_t *arena, size_t arena_len)
{
	struct gro g;
	size_t used = 0;
	unsigned out = 0;

	if (batch->count < 2 || batch->count > PKT_BATCH_MAX)
		return 0;
	g.count = batch->count;
	g.flow_count = 0;
	memcpy(g.in, batch->pkts, g.count * sizeof(g.in[0]));
	group_all(&g);
	for (unsigned i = 0; i < g.count; i++) {
		const struct seg *s = &g.seg[i];

		if (s->head != (int)i)
			continue; /* went out with its head */
		if (s->next == NONE) {
			batch->pkts[out++] = g.in[i];
		} else if (s->len <= arena_len - used) {
			batch->pkts[out++] = build(&g, (int)i, arena + used);
			used += s->len;
		} else {
			for (int j = (int)i; j != NONE; j = g.seg[j].next)
				batch->pkts[out++] = g.in[j];
		}
	}
	batch->count = out;
	return g.count - out;
}
