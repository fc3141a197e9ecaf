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
/*
 * One key=value into s, for parsers of larger texts (the policy file):
 * 0, -ENOENT for an unknown key, -EEXIST for a key s already has, -EINVAL
 * for a bad value. value is modified while parsing, then restored.
 */
int selector_set(struct selector *s, const char *key, char *value);
/* The message selector_parse gives for what selector_set returned. */
void selector_set_error(int ret, const char *key, const char *value, char *err, size_t err_len);
/* What no single key can check: ports need proto tcp or udp. 0 or -EINVAL. */
int selector_check(const struct selector *s, char *err, size_t err_len);
/* Back to the text form, keys in a fixed order. */
void selector_format(const struct selector *sel, char *out, size_t out_len);

/* Every packet b matches, a matches too (a key a leaves out matches anything). */
bool selector_covers(const struct selector *a, const struct selector *b);
bool selector_equal(const struct selector *a, const struct selector *b);

#endif
