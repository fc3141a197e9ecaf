/* SPDX-License-Identifier: MIT */
/* Traffic selectors (base/selector.h) written as netfilter matches: iptables and nft syntax in one place. */
#ifndef TUNLAB_SELRENDER_H
#define TUNLAB_SELRENDER_H

#include <stdbool.h>
#include <stdio.h>

#include "../base/selector.h"

/*
 * Whether sel can match packets of family af (AF_INET, AF_INET6) in an
 * output (out_chain) or a forwarding/prerouting chain at all: a uid only
 * in output, src and ICMP only in their family. NULL matches anything.
 */
bool selector_applies(const struct selector *sel, int af, bool out_chain);

/*
 * sel as iptables(-restore) matches, each with a leading space: " -s SRC
 * -p PROTO --sport A:B --dport A:B -m mark --mark M -m owner --uid-owner
 * U". with_proto false leaves -p out, for a rule that names its own. NULL
 * writes nothing.
 */
void selector_ipt_matches(FILE *f, const struct selector *sel, bool with_proto);

/*
 * The same as nft matches for family af: " ip saddr SRC meta l4proto P
 * th sport A-B th dport A-B meta mark 0xM meta skuid U". NULL writes nothing.
 */
void selector_nft_matches(FILE *f, const struct selector *sel, int af);

#endif
