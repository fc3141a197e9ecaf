/* SPDX-License-Identifier: MIT */
/*
 * ICMP errors the tunnel writes back to a sender, rate-limited with a
 * token bucket, instead of a silent black hole: on the server, for a
 * peer that is not connected, "administratively prohibited" (issue 14);
 * on either end of the UDP data channel, for a packet above its inner
 * MTU, "fragmentation needed" / "packet too big" (issue 15). The
 * builder is base/icmperr.h.
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
/* p is above mtu (icmperr_exceeds; dropped and counted by the caller): answer it if allowed. */
void unreach_too_big(struct tunnel *t, struct unreach *u, const struct pkt *p, unsigned mtu);
/* Delivers the answers of the batch just sent (through cb.deliver, as packets from peers). */
void unreach_flush(struct tunnel *t, struct unreach *u);

#endif
