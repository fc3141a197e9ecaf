/* SPDX-License-Identifier: MIT */
/*
 * Server: the sender of a packet for a peer that is not connected gets
 * ICMP "administratively prohibited" (base/icmperr.h), rate-limited
 * with a token bucket, instead of a silent black hole (issue 14).
 */
#ifndef TUNLAB_UNREACH_H
#define TUNLAB_UNREACH_H

#include "../base/pkt.h"

struct tunnel;
struct unreach;

/* NULL with errno on failure. */
struct unreach *unreach_new(void);
void unreach_free(struct unreach *u);
/* p could not go to its peer (drop_peer_down, counted by the caller): answer it if allowed. */
void unreach_answer(struct tunnel *t, struct unreach *u, const struct pkt *p);
/* Delivers the answers of the batch just sent (through cb.deliver, as packets from peers). */
void unreach_flush(struct tunnel *t, struct unreach *u);

#endif
