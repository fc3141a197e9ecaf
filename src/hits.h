/* SPDX-License-Identifier: MIT */
/*
 * Policy hit counts: per entry, the captured packets it matched first.
 * Counted in userspace on what the frontend captured, so only protect
 * entries count, and an entry whose selector has uid or mark (which a
 * packet does not carry) is never matched here: the kernel matched it,
 * and the packet counts under the first header-only entry it fits, or
 * none.
 */
#ifndef TUNLAB_HITS_H
#define TUNLAB_HITS_H

#include <stdint.h>

#include "../base/pkt.h"
#include "../base/policy.h"

struct policy_hits;

/* For p (which must outlive it); NULL with errno. */
struct policy_hits *hits_new(const struct policy *p);
void hits_free(struct policy_hits *h);
void hits_count(struct policy_hits *h, const struct pkt_batch *batch);
/* Entry i's count (0 past the end or for NULL). */
uint64_t hits_get(const struct policy_hits *h, size_t i);
/* p is where the policy given to hits_new now lives (a struct copy, the same entries). */
void hits_rebind(struct policy_hits *h, const struct policy *p);
/* Carries the counts of entries unchanged from old to h (a policy swap). */
void hits_carry(struct policy_hits *h, const struct policy_hits *old);

#endif
