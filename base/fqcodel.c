// SPDX-License-Identifier: MIT
/* A flow-fair packet queue with CoDel (fq_codel's design) in front of a sender it paces. */

/*
 * Storage: one byte ring of slots (a header, then the packet), allocated
 * in enqueue order. Each flow links its slots FIFO through the headers;
 * a slot dequeued or dropped is marked dead and the ring's tail moves
 * over dead slots. Since every flow leaves from its head, the oldest live
 * slot is always the head of its flow: when the ring has no room (it
 * holds dead slots behind a live one), that oldest packet, the one that
 * waited longest, is dropped to make some.
 *
 * Scheduling and CoDel follow RFC 8290 and Linux's fq_codel / codel_impl.h:
 * new_flows are served before old_flows, a flow that used up its deficit
 * goes to the back of old_flows with another quantum, and a new flow that
 * empties moves to old_flows (when there are any) so that it cannot come
 * back as "new" at once and take every priority turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fqcodel.h"

enum {
	FQ_NIL = UINT32_MAX,
	FQ_ALIGN = 8,
	/* Drop-from-the-fattest works in batches, as fq_codel: one scan per many drops. */
	FQ_DROP_BATCH = 64,
	FQ_HIST_BUCKETS = 32, /* log2 of microseconds */
};

enum fq_list_id { FQ_LIST_NONE, FQ_LIST_NEW, FQ_LIST_OLD };

struct fq_slot {
	uint64_t enqueued_ns;
	struct pkt_offload off;
	uint32_t next;  /* the flow's next slot, or FQ_NIL */
	uint32_t len;   /* packet bytes */
	uint32_t size;  /* ring bytes the slot takes, header included */
	uint32_t flow;
	bool live;
};

struct fq_flow {
	uint32_t head, tail; /* slot offsets */
	uint32_t packets, bytes;
	int32_t deficit;
	uint32_t list_next;
	uint8_t list;        /* enum fq_list_id */
	struct codel_vars cv;
};

struct fq_list {
	uint32_t head, tail; /* flow indexes */
};

struct fqcodel {
	struct fqcodel_config cfg;
	struct codel_params codel; /* the config's target and interval */
	struct keyhash *hash;
	bool own_hash;
	struct fq_flow *flows;
	struct fq_list new_flows, old_flows;
	uint8_t *ring;
	uint32_t cap, head, tail, wrap_at, slots;
	bool wrapped;
	struct fqcodel_stats st;
	uint64_t hist[FQ_HIST_BUCKETS];
};

static uint64_t fq_clock_monotonic(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t fq_now(const struct fqcodel *q)
{
	return q->cfg.now_ns(q->cfg.clock_ctx);
}

static struct fq_slot *slot_at(const struct fqcodel *q, uint32_t off)
{
	return (struct fq_slot *)(void *)(q->ring + off);
}

static uint32_t slot_size(uint32_t len)
{
	return (uint32_t)((sizeof(struct fq_slot) + len + FQ_ALIGN - 1) / FQ_ALIGN * FQ_ALIGN);
}

/* ---- the ring ---- */

/* Moves the tail over dead slots; an empty ring starts again at 0. */
static void ring_reclaim(struct fqcodel *q)
{
	while (q->slots) {
		const struct fq_slot *s = slot_at(q, q->tail);

		if (s->live)
			return;
		q->tail += s->size;
		q->slots--;
		if (q->wrapped && q->tail == q->wrap_at) {
			q->tail = 0;
			q->wrapped = false;
		}
	}
	q->head = q->tail = 0;
	q->wrapped = false;
}

static uint32_t ring_alloc(struct fqcodel *q, uint32_t size)
{
	uint32_t off = q->head;

	if (!q->wrapped && q->cap - q->head >= size) {
		q->head += size;
	} else if (!q->wrapped && q->tail > size) {
		q->wrap_at = q->head;
		q->wrapped = true;
		off = 0;
		q->head = size;
	} else if (q->wrapped && q->tail - q->head >= size) {
		q->head += size;
	} else {
		return FQ_NIL;
	}
	q->slots++;
	return off;
}

/* ---- flows and their lists ---- */

static void list_push(struct fqcodel *q, struct fq_list *l, uint32_t fi, enum fq_list_id id)
{
	struct fq_flow *f = &q->flows[fi];

	f->list = (uint8_t)id;
	f->list_next = FQ_NIL;
	if (l->tail == FQ_NIL)
		l->head = fi;
	else
		q->flows[l->tail].list_next = fi;
	l->tail = fi;
}

static uint32_t list_pop(struct fqcodel *q, struct fq_list *l)
{
	uint32_t fi = l->head;

	l->head = q->flows[fi].list_next;
	if (l->head == FQ_NIL)
		l->tail = FQ_NIL;
	q->flows[fi].list = FQ_LIST_NONE;
	return fi;
}

/* Takes the flow's head slot out of the queue; it stays readable until the next enqueue. */
static struct fq_slot *flow_pop(struct fqcodel *q, struct fq_flow *f)
{
	struct fq_slot *s;

	if (f->head == FQ_NIL)
		return NULL;
	s = slot_at(q, f->head);
	f->head = s->next;
	if (f->head == FQ_NIL)
		f->tail = FQ_NIL;
	f->packets--;
	f->bytes -= s->len;
	q->st.backlog_packets--;
	q->st.backlog_bytes -= s->len;
	s->live = false;
	return s;
}

static void flow_drop_head(struct fqcodel *q, struct fq_flow *f, uint64_t *counter)
{
	if (flow_pop(q, f))
		(*counter)++;
	ring_reclaim(q);
}

/* Addresses, protocol and ports where there are any: what a flow is. */
struct fq_flow_key {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint8_t family, proto;
	uint8_t zero[2];
};

static bool proto_has_ports(uint8_t proto)
{
	/* TCP, UDP, DCCP, SCTP, UDP-Lite: ports are the L4 header's first 4 bytes. */
	return proto == 6 || proto == 17 || proto == 33 || proto == 132 || proto == 136;
}

static void flow_key(const uint8_t *d, uint32_t len, struct fq_flow_key *k)
{
	uint32_t l4 = 0;

	memset(k, 0, sizeof(*k));
	if (len >= 20 && d[0] >> 4 == 4) {
		k->family = 4;
		k->proto = d[9];
		memcpy(k->src, d + 12, 4);
		memcpy(k->dst, d + 16, 4);
		/* Every fragment hashes without ports: all of a datagram stays in one queue. */
		if (!(d[6] & 0x3f) && !d[7])
			l4 = (uint32_t)(d[0] & 0x0f) * 4;
	} else if (len >= 40 && d[0] >> 4 == 6) {
		k->family = 6;
		k->proto = d[6];
		memcpy(k->src, d + 8, 16);
		memcpy(k->dst, d + 24, 16);
		l4 = 40; /* extension headers: hashed without ports */
	}
	if (l4 && proto_has_ports(k->proto) && len >= l4 + 4) {
		memcpy(&k->sport, d + l4, 2);
		memcpy(&k->dport, d + l4 + 2, 2);
	}
}

uint32_t fqcodel_flow_of(struct fqcodel *q, const struct pkt *p)
{
	struct fq_flow_key k;

	flow_key(p->data, p->len, &k);
	return (uint32_t)(keyhash_bytes(q->hash, &k, sizeof(k)) % q->cfg.flows);
}

/* ---- ECN ---- */

/* RFC 1624: the checksum after one 16-bit word changes from old to new. */
static uint16_t csum_replace(uint16_t check, uint16_t old, uint16_t new)
{
	uint32_t sum = (uint16_t)~check + (uint32_t)(uint16_t)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

bool fqcodel_mark_ce(uint8_t *d, uint32_t len)
{
	uint16_t old, check;

	if (len >= 20 && d[0] >> 4 == 4) {
		if (!(d[1] & 3))
			return false;
		old = (uint16_t)(d[0] << 8 | d[1]);
		d[1] |= 3;
		check = (uint16_t)(d[10] << 8 | d[11]);
		check = csum_replace(check, old, (uint16_t)(d[0] << 8 | d[1]));
		d[10] = (uint8_t)(check >> 8);
		d[11] = (uint8_t)check;
		return true;
	}
	if (len >= 40 && d[0] >> 4 == 6) {
		/* Traffic class straddles bytes 0 and 1; ECN is its low two bits. No checksum. */
		if (!(d[1] & 0x30))
			return false;
		d[1] |= 0x30;
		return true;
	}
	return false;
}

/* ---- CoDel (base/codel.h) on each flow's queue ---- */

static bool codel_should_drop(struct fqcodel *q, struct codel_vars *cv, const struct fq_slot *s,
			      uint64_t now)
{
	if (!s) {
		cv->first_above_ns = 0;
		return false;
	}
	/* Too little queued to be a standing queue: one MTU (fq_codel's rule). */
	return codel_above(cv, &q->codel, now > s->enqueued_ns ? now - s->enqueued_ns : 0, now,
			   q->st.backlog_bytes > q->cfg.quantum);
}

/* Signals on s: a CE mark when allowed and possible, else its drop. true: s was marked. */
static bool codel_signal(struct fqcodel *q, struct fq_slot *s)
{
	if (q->cfg.ecn && fqcodel_mark_ce((uint8_t *)(s + 1), s->len)) {
		q->st.marks_ce++;
		return true;
	}
	q->st.drops_codel++;
	ring_reclaim(q);
	return false;
}

/* In the dropping state: drops (or marks) at interval/sqrt(count) while the wait stays high. */
static struct fq_slot *codel_keep_dropping(struct fqcodel *q, struct fq_flow *f, struct fq_slot *s,
					   uint64_t now)
{
	struct codel_vars *cv = &f->cv;

	while (cv->dropping && now >= cv->drop_next_ns) {
		cv->count++;
		if (codel_signal(q, s)) {
			cv->drop_next_ns = codel_control_law(&q->codel, cv->drop_next_ns, cv->count);
			return s;
		}
		s = flow_pop(q, f);
		if (!codel_should_drop(q, cv, s, now))
			cv->dropping = false;
		else
			cv->drop_next_ns = codel_control_law(&q->codel, cv->drop_next_ns, cv->count);
	}
	return s;
}

/* Entering the dropping state: one signal now, the next at the control law's time. */
static struct fq_slot *codel_enter_dropping(struct fqcodel *q, struct fq_flow *f, struct fq_slot *s,
					    uint64_t now)
{
	struct codel_vars *cv = &f->cv;

	if (!codel_signal(q, s)) {
		s = flow_pop(q, f);
		codel_should_drop(q, cv, s, now);
	}
	codel_start_dropping(cv, &q->codel, now);
	return s;
}

static struct fq_slot *codel_dequeue(struct fqcodel *q, struct fq_flow *f, uint64_t now)
{
	struct codel_vars *cv = &f->cv;
	struct fq_slot *s = flow_pop(q, f);
	bool drop;

	if (!s) {
		cv->dropping = false;
		return NULL;
	}
	drop = codel_should_drop(q, cv, s, now);
	if (cv->dropping) {
		if (!drop)
			cv->dropping = false;
		else if (now >= cv->drop_next_ns)
			s = codel_keep_dropping(q, f, s, now);
	} else if (drop) {
		s = codel_enter_dropping(q, f, s, now);
	}
	return s;
}

/* ---- limits ---- */

static bool fq_over_limit(const struct fqcodel *q)
{
	return q->st.backlog_packets > q->cfg.limit_packets || q->st.backlog_bytes > q->cfg.limit_bytes;
}

/* Half the fattest flow's bytes (at most a batch of packets) go, from its head. */
static void fq_drop_fattest(struct fqcodel *q)
{
	uint32_t fat = 0, threshold;
	struct fq_flow *f;

	for (uint32_t i = 1; i < q->cfg.flows; i++) {
		const struct fq_flow *g = &q->flows[i], *h = &q->flows[fat];

		if (g->bytes > h->bytes || (g->bytes == h->bytes && g->packets > h->packets))
			fat = i;
	}
	f = &q->flows[fat];
	threshold = f->bytes / 2;
	for (int n = 0; n < FQ_DROP_BATCH && f->packets && (n == 0 || f->bytes > threshold); n++)
		flow_drop_head(q, f, &q->st.drops_overlimit);
}

/* No room in the ring: the oldest packet, the head of its flow, makes some. */
static bool fq_drop_oldest(struct fqcodel *q)
{
	struct fq_slot *s;
	struct fq_flow *f;

	if (!q->slots)
		return false;
	s = slot_at(q, q->tail);
	if (!s->live)
		return false;
	f = &q->flows[s->flow];
	if (f->head != q->tail)
		return false; /* cannot happen: flows leave from their heads */
	flow_drop_head(q, f, &q->st.drops_overlimit);
	return true;
}

/* ---- the interface ---- */

int fqcodel_enqueue(struct fqcodel *q, const struct pkt *p)
{
	uint32_t size, off, fi;
	struct fq_slot *s;
	struct fq_flow *f;

	if (p->len > FQCODEL_PACKET_MAX) {
		q->st.drops_too_big++;
		return -EMSGSIZE;
	}
	size = slot_size(p->len);
	fi = fqcodel_flow_of(q, p);
	while ((off = ring_alloc(q, size)) == FQ_NIL) {
		if (!fq_drop_oldest(q)) {
			q->st.drops_overlimit++;
			return 0;
		}
	}
	s = slot_at(q, off);
	*s = (struct fq_slot){ .enqueued_ns = fq_now(q), .off = p->off, .next = FQ_NIL,
			       .len = p->len, .size = size, .flow = fi, .live = true };
	memcpy(s + 1, p->data, p->len);
	f = &q->flows[fi];
	if (f->tail == FQ_NIL)
		f->head = off;
	else
		slot_at(q, f->tail)->next = off;
	f->tail = off;
	f->packets++;
	f->bytes += p->len;
	q->st.enqueued++;
	q->st.backlog_packets++;
	q->st.backlog_bytes += p->len;
	if (f->list == FQ_LIST_NONE) {
		list_push(q, &q->new_flows, fi, FQ_LIST_NEW);
		f->deficit = (int32_t)q->cfg.quantum;
		q->st.new_flows++;
		q->st.flows_active++;
	}
	while (fq_over_limit(q) && q->st.backlog_packets)
		fq_drop_fattest(q);
	return 0;
}

static void fq_note_sojourn(struct fqcodel *q, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (b + 1 < FQ_HIST_BUCKETS && us >> b)
		b++;
	q->hist[b]++;
	q->st.sojourn_last_us = us;
	if (us > q->st.sojourn_max_us)
		q->st.sojourn_max_us = us;
}

/* The flow at the head of new_flows, else of old_flows; moves spent ones on. */
static bool fq_next_flow(struct fqcodel *q, uint32_t *fi, enum fq_list_id *from)
{
	for (;;) {
		struct fq_list *l = q->new_flows.head != FQ_NIL ? &q->new_flows : &q->old_flows;
		struct fq_flow *f;

		if (l->head == FQ_NIL)
			return false;
		f = &q->flows[l->head];
		if (f->deficit > 0) {
			*fi = l->head;
			*from = l == &q->new_flows ? FQ_LIST_NEW : FQ_LIST_OLD;
			return true;
		}
		f->deficit += (int32_t)q->cfg.quantum;
		list_push(q, &q->old_flows, list_pop(q, l), FQ_LIST_OLD);
	}
}

bool fqcodel_dequeue(struct fqcodel *q, struct pkt *out)
{
	uint64_t now = fq_now(q);
	enum fq_list_id from;
	struct fq_slot *s;
	uint32_t fi;

	while (fq_next_flow(q, &fi, &from)) {
		struct fq_flow *f = &q->flows[fi];
		struct fq_list *l = from == FQ_LIST_NEW ? &q->new_flows : &q->old_flows;

		s = codel_dequeue(q, f, now);
		if (!s) {
			list_pop(q, l);
			if (from == FQ_LIST_NEW && q->old_flows.head != FQ_NIL)
				list_push(q, &q->old_flows, fi, FQ_LIST_OLD);
			else
				q->st.flows_active--;
			continue;
		}
		f->deficit -= (int32_t)s->len;
		*out = (struct pkt){ .data = (uint8_t *)(s + 1), .len = s->len, .off = s->off };
		q->st.dequeued++;
		fq_note_sojourn(q, now > s->enqueued_ns ? now - s->enqueued_ns : 0);
		ring_reclaim(q);
		return true;
	}
	return false;
}

bool fqcodel_empty(const struct fqcodel *q)
{
	return q->st.backlog_packets == 0;
}

void fqcodel_purge(struct fqcodel *q)
{
	for (uint32_t i = 0; i < q->cfg.flows; i++)
		while (q->flows[i].packets)
			flow_drop_head(q, &q->flows[i], &q->st.drops_overlimit);
}

/* The upper bound of the log2 bucket where the fraction num/den of samples is reached. */
static uint64_t fq_percentile(const struct fqcodel *q, uint64_t num, uint64_t den)
{
	uint64_t total = 0, seen = 0;

	for (unsigned b = 0; b < FQ_HIST_BUCKETS; b++)
		total += q->hist[b];
	if (!total)
		return 0;
	for (unsigned b = 0; b < FQ_HIST_BUCKETS; b++) {
		seen += q->hist[b];
		if (seen * den >= total * num)
			return b ? 1ull << b : 0;
	}
	return 1ull << (FQ_HIST_BUCKETS - 1);
}

void fqcodel_stats(const struct fqcodel *q, struct fqcodel_stats *out)
{
	*out = q->st;
	out->sojourn_p50_us = fq_percentile(q, 50, 100);
	out->sojourn_p99_us = fq_percentile(q, 99, 100);
}

static int fq_check_config(struct fqcodel_config *c)
{
	if (!c->flows)
		c->flows = FQCODEL_FLOWS_DEFAULT;
	if (!c->quantum)
		c->quantum = FQCODEL_QUANTUM_DEFAULT;
	if (!c->target_ns)
		c->target_ns = 5 * 1000000ull;
	if (!c->interval_ns)
		c->interval_ns = 100 * 1000000ull;
	if (!c->now_ns)
		c->now_ns = fq_clock_monotonic;
	if (!c->limit_packets || c->limit_bytes < FQCODEL_PACKET_MAX || c->limit_bytes > 1u << 30 ||
	    c->flows > 1u << 20 || c->quantum > FQCODEL_PACKET_MAX || c->interval_ns > 60 * 1000000000ull)
		return -EINVAL;
	return 0;
}

struct fqcodel *fqcodel_new(const struct fqcodel_config *cfg)
{
	struct fqcodel *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->cfg = *cfg;
	if (fq_check_config(&q->cfg) < 0) {
		errno = EINVAL;
		goto err_free;
	}
	q->codel = (struct codel_params){ q->cfg.target_ns, q->cfg.interval_ns };
	/* Room for the byte limit with headers and slack, so that dead slots rarely force a drop. */
	q->cap = (q->cfg.limit_bytes + q->cfg.limit_bytes / 2 + 2 * slot_size(FQCODEL_PACKET_MAX)) /
		 FQ_ALIGN * FQ_ALIGN;
	q->flows = calloc(q->cfg.flows, sizeof(*q->flows));
	q->ring = malloc(q->cap);
	if (!q->flows || !q->ring)
		goto err_mem;
	q->hash = q->cfg.hash;
	if (!q->hash) {
		q->hash = keyhash_new();
		q->own_hash = true;
		if (!q->hash)
			goto err_mem;
	}
	for (uint32_t i = 0; i < q->cfg.flows; i++)
		q->flows[i].head = q->flows[i].tail = FQ_NIL;
	q->new_flows = q->old_flows = (struct fq_list){ FQ_NIL, FQ_NIL };
	return q;

err_mem:
	free(q->ring);
	free(q->flows);
	errno = ENOMEM;
err_free:
	free(q);
	return NULL;
}

void fqcodel_free(struct fqcodel *q)
{
	if (!q)
		return;
	if (q->own_hash)
		keyhash_free(q->hash);
	free(q->ring);
	free(q->flows);
	free(q);
}
