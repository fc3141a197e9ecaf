// SPDX-License-Identifier: MIT
/*
 * The answers of one send batch are built into a fixed array and handed
 * to the frontend at its end, one batch: nothing is allocated per packet,
 * and the frontend's capture batch is not interleaved with injection.
 * The bucket holds UNREACH_BURST answers and refills UNREACH_PER_SEC a
 * second, like the kernel's icmp_ratelimit: a flood toward a down peer
 * costs the server little and the sender gets what it needs to give up.
 * The same goes for "too big" answers (issue 15), from either end.
 */
#include <errno.h>
#include <stdlib.h>

#include "../base/icmperr.h"
#include "session.h"
#include "unreach.h"

struct unreach {
	uint64_t refill_ms;
	unsigned tokens;
	struct pkt_batch batch;
	/* One more than a batch holds: where an answer is built that has no room, to judge it. */
	uint8_t buf[UNREACH_BURST + 1][ICMPERR_MAX];
};

struct unreach *unreach_new(void)
{
	struct unreach *u = calloc(1, sizeof(*u));

	if (u)
		u->tokens = UNREACH_BURST;
	return u;
}

void unreach_free(struct unreach *u)
{
	free(u);
}

static bool unreach_take_token(struct tunnel *t, struct unreach *u)
{
	uint64_t now = evloop_now_ms(t->loop);
	uint64_t earned = (now - u->refill_ms) * UNREACH_PER_SEC / 1000;

	if (earned) {
		u->tokens = u->tokens + earned > UNREACH_BURST ? UNREACH_BURST : u->tokens + (unsigned)earned;
		u->refill_ms = now;
	}
	if (!u->tokens)
		return false;
	u->tokens--;
	return true;
}

/* The answer just built into the next buffer (n bytes, 0: none allowed) joins the batch if the bucket allows. */
static bool unreach_queue(struct tunnel *t, struct unreach *u, size_t n)
{
	if (!n)
		return false;
	if (u->batch.count >= UNREACH_BURST || !unreach_take_token(t, u)) {
		t->stats.icmp_rate_limited++;
		return false;
	}
	u->batch.pkts[u->batch.count] = (struct pkt){ .data = u->buf[u->batch.count], .len = (uint32_t)n };
	u->batch.count++;
	return true;
}

void unreach_answer(struct tunnel *t, struct unreach *u, const struct pkt *p)
{
	if (!u)
		return;
	/* An offload packet's partial checksum or GSO length is quoted as it came: harmless. */
	if (unreach_queue(t, u, icmperr_prohibited(p->data, p->len, u->buf[u->batch.count])))
		t->stats.icmp_prohibited++;
}

void unreach_too_big(struct tunnel *t, struct unreach *u, const struct pkt *p, unsigned mtu)
{
	if (u && unreach_queue(t, u, icmperr_too_big(p->data, p->len, mtu, u->buf[u->batch.count])))
		t->stats.icmp_too_big++;
}

void unreach_flush(struct tunnel *t, struct unreach *u)
{
	if (!u || !u->batch.count)
		return;
	if (t->cb.deliver)
		t->cb.deliver(t->cb_ctx, &u->batch);
	u->batch.count = 0;
}
