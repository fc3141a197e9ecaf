// SPDX-License-Identifier: MIT
/* CoDel's control law (RFC 8289, Linux's codel_impl.h) without a queue of its own. */
#include "codel.h"

static uint64_t isqrt64(uint64_t x)
{
	uint64_t r = 0, bit = 1ull << 62;

	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return r;
}

/* In fixed point: sqrt(count << 32) is sqrt(count) << 16. */
uint64_t codel_control_law(const struct codel_params *p, uint64_t t, uint32_t count)
{
	uint64_t root = isqrt64((uint64_t)(count ? count : 1) << 32);

	return t + (p->interval_ns << 16) / root;
}

bool codel_above(struct codel_vars *v, const struct codel_params *p, uint64_t sojourn_ns, uint64_t now_ns,
		 bool standing)
{
	if (sojourn_ns < p->target_ns || !standing) {
		v->first_above_ns = 0;
		return false;
	}
	if (v->first_above_ns == 0) {
		v->first_above_ns = now_ns + p->interval_ns;
		return false;
	}
	return now_ns >= v->first_above_ns;
}

void codel_start_dropping(struct codel_vars *v, const struct codel_params *p, uint64_t now_ns)
{
	uint32_t delta = v->count - v->lastcount;

	v->dropping = true;
	if (delta > 1 && (int64_t)(now_ns - v->drop_next_ns) < (int64_t)(16 * p->interval_ns))
		v->count = delta;
	else
		v->count = 1;
	v->lastcount = v->count;
	v->drop_next_ns = codel_control_law(p, now_ns, v->count);
}

bool codel_judge(struct codel_vars *v, const struct codel_params *p, uint64_t sojourn_ns, uint64_t now_ns,
		 bool standing)
{
	bool above = codel_above(v, p, sojourn_ns, now_ns, standing);

	if (v->dropping) {
		if (!above) {
			v->dropping = false;
			return false;
		}
		if (now_ns < v->drop_next_ns)
			return false;
		v->count++;
		v->drop_next_ns = codel_control_law(p, v->drop_next_ns, v->count);
		return true;
	}
	if (!above)
		return false;
	codel_start_dropping(v, p, now_ns);
	return true;
}
