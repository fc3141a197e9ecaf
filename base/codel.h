/* SPDX-License-Identifier: MIT */
/* CoDel's control law (RFC 8289): the state of one queue, for a queue tunlab holds or one it only reads. */
#ifndef TUNLAB_CODEL_H
#define TUNLAB_CODEL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A queue whose packets waited longer than `target` for a whole
 * `interval` gets a signal (a drop, or a CE mark), then another at
 * interval/sqrt(count) while the wait stays above target; the first wait
 * below target ends it. fqcodel runs this per flow on the queue it holds;
 * the UDP data channel runs it on its socket's receive queue, whose wait
 * the kernel's receive timestamps tell.
 */
struct codel_params {
	uint64_t target_ns;
	uint64_t interval_ns;
};

struct codel_vars {
	uint32_t count, lastcount;
	bool dropping;
	uint64_t first_above_ns, drop_next_ns;
};

/* t + interval / sqrt(count). */
uint64_t codel_control_law(const struct codel_params *p, uint64_t t, uint32_t count);
/*
 * Whether a packet that waited sojourn_ns, seen at now_ns, finds the wait
 * above target for a whole interval. `standing` false (too little queued
 * to be a standing queue) counts as below target.
 */
bool codel_above(struct codel_vars *v, const struct codel_params *p, uint64_t sojourn_ns, uint64_t now_ns,
		 bool standing);
/* Enters the dropping state at now_ns, resuming near the last rate if that was recent (RFC 8289). */
void codel_start_dropping(struct codel_vars *v, const struct codel_params *p, uint64_t now_ns);
/*
 * For a queue read one packet at a time, where a signalled packet cannot
 * be followed by its successor in the same step: true when this packet
 * gets the signal. At most one signal per call; the dropping state's
 * schedule is RFC 8289's. `standing` as for codel_above: false when at
 * most one packet's worth is left behind this one, so that a lone packet
 * after a busy spell, late only because its reader was, is not judged by
 * the spell's state.
 */
bool codel_judge(struct codel_vars *v, const struct codel_params *p, uint64_t sojourn_ns, uint64_t now_ns,
		 bool standing);

#endif
