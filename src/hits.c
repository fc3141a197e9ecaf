// SPDX-License-Identifier: MIT
/*
 * With only dst selectors (tun, pcap: all they can express) first match
 * is longest-prefix match, because the parser refuses an entry an earlier
 * one covers: one LPM lookup per packet however large the table. With
 * other keys (nfqueue) the entries are scanned in order.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "hits.h"

struct policy_hits {
	const struct policy *p;
	uint64_t *hits;
	struct prefix_table *lpm; /* dst -> entry index + 1; NULL: scan */
};

static bool dst_only(const struct policy *p)
{
	for (size_t i = 0; i < p->count; i++) {
		const struct selector *s = &p->entries[i].sel;

		if (s->has_proto || s->has_dport || s->has_sport || s->has_src || s->has_mark || s->has_uid)
			return false;
	}
	return true;
}

static int hits_build_lpm(struct policy_hits *h)
{
	h->lpm = prefix_table_new();
	if (!h->lpm)
		return -ENOMEM;
	for (size_t i = 0; i < h->p->count; i++)
		if (h->p->entries[i].action == POLICY_PROTECT &&
		    prefix_table_insert(h->lpm, &h->p->entries[i].dst, (void *)(uintptr_t)(i + 1)) < 0)
			return -ENOMEM;
	return 0;
}

struct policy_hits *hits_new(const struct policy *p)
{
	struct policy_hits *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->p = p;
	h->hits = calloc(p->count ? p->count : 1, sizeof(*h->hits));
	if (!h->hits || (dst_only(p) && hits_build_lpm(h) < 0)) {
		hits_free(h);
		errno = ENOMEM;
		return NULL;
	}
	return h;
}

void hits_free(struct policy_hits *h)
{
	if (!h)
		return;
	prefix_table_free(h->lpm);
	free(h->hits);
	free(h);
}

struct l4 {
	struct ip_addr src, dst;
	bool has_ports;
	uint8_t proto;
	uint16_t sport, dport;
};

/* Addresses, protocol and ports (no IPv6 extension headers walked: their ports stay unknown). */
static int parse_l4(const struct pkt *p, struct l4 *out)
{
	size_t off;

	if (pkt_addrs(p->data, p->len, &out->src, &out->dst) < 0)
		return -1;
	if (out->src.family == AF_INET) {
		out->proto = p->data[9];
		off = (size_t)(p->data[0] & 0x0f) * 4;
		if (p->data[6] & 0x1f || p->data[7])
			off = p->len; /* a later fragment: no ports */
	} else {
		out->proto = p->data[6];
		off = 40;
	}
	out->has_ports = (out->proto == IPPROTO_TCP || out->proto == IPPROTO_UDP) && off + 4 <= p->len;
	if (out->has_ports) {
		out->sport = (uint16_t)(p->data[off] << 8 | p->data[off + 1]);
		out->dport = (uint16_t)(p->data[off + 2] << 8 | p->data[off + 3]);
	}
	return 0;
}

static bool in_range(const struct port_range *r, uint16_t v)
{
	return v >= r->lo && v <= r->hi;
}

static bool entry_matches(const struct policy_entry *e, const struct l4 *k)
{
	const struct selector *s = &e->sel;

	if (s->has_mark || s->has_uid || !prefix_contains(&e->dst, &k->dst))
		return false;
	if (s->has_src && !prefix_contains(&s->src, &k->src))
		return false;
	if (s->has_proto && s->proto != k->proto)
		return false;
	if ((s->has_dport || s->has_sport) && !k->has_ports)
		return false;
	return (!s->has_dport || in_range(&s->dport, k->dport)) &&
	       (!s->has_sport || in_range(&s->sport, k->sport));
}

static void count_one(struct policy_hits *h, const struct pkt *p)
{
	struct l4 k;

	if (h->lpm) {
		struct ip_addr src, dst;
		uintptr_t i;

		if (pkt_addrs(p->data, p->len, &src, &dst) < 0)
			return;
		i = (uintptr_t)prefix_table_lookup(h->lpm, &dst);
		if (i)
			h->hits[i - 1]++;
		return;
	}
	if (parse_l4(p, &k) < 0)
		return;
	for (size_t i = 0; i < h->p->count; i++)
		if (entry_matches(&h->p->entries[i], &k)) {
			h->hits[i]++;
			return;
		}
}

void hits_count(struct policy_hits *h, const struct pkt_batch *batch)
{
	for (unsigned i = 0; h && i < batch->count && i < PKT_BATCH_MAX; i++)
		count_one(h, &batch->pkts[i]);
}

uint64_t hits_get(const struct policy_hits *h, size_t i)
{
	return h && i < h->p->count ? h->hits[i] : 0;
}

void hits_rebind(struct policy_hits *h, const struct policy *p)
{
	if (h)
		h->p = p;
}

void hits_carry(struct policy_hits *h, const struct policy_hits *old)
{
	for (size_t i = 0; h && old && i < h->p->count; i++)
		for (size_t k = 0; k < old->p->count; k++)
			if (policy_entry_equal(&h->p->entries[i], &old->p->entries[k])) {
				h->hits[i] = old->hits[k];
				break;
			}
}
