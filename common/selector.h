/* SPDX-License-Identifier: MIT */
/*
 * Traffic selectors (--select): which packets toward a remote prefix go
 * through the tunnel. The policy database the second background text
 * credits to IPsec, as netfilter matches can express it.
 */
#ifndef TUNLAB_SELECTOR_H
#define TUNLAB_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "prefix.h"

struct port_range {
	uint16_t lo, hi;
};

struct selector {
	bool has_proto, has_dport, has_sport, has_src, has_mark, has_uid;
	uint8_t proto;                 /* IPPROTO_* */
	struct port_range dport, sport;
	struct ip_prefix src;
	uint32_t mark;
	uint32_t uid;
};

/*
 * Parses "proto=tcp,dport=5201", keys proto (tcp, udp, icmp, icmpv6 or a
 * number), dport and sport (N or N-M; need proto tcp or udp), src
 * (prefix), mark (number, 0x allowed) and uid (number). At least one key.
 * Returns 0 or -EINVAL with what is wrong in err.
 */
int selector_parse(const char *text, struct selector *out, char *err, size_t err_len);
/* Back to the text form, keys in a fixed order. */
void selector_format(const struct selector *sel, char *out, size_t out_len);

/*
 * sel as iptables(-restore) matches, each with a leading space: " -s SRC
 * -p PROTO --sport A:B --dport A:B -m mark --mark M -m owner --uid-owner
 * U". with_proto false leaves -p out, for a rule that names its own. NULL
 * writes nothing.
 */
void selector_ipt_matches(FILE *f, const struct selector *sel, bool with_proto);

#endif
