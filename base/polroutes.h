/* SPDX-License-Identifier: MIT */
/*
 * A policy's bypass and discard entries as routes, for the frontends whose
 * mechanism is a route (tun, pcap); and the lookup of a prefix's current
 * path that a bypass route (and nfqueue's path copies) copy.
 */
#ifndef TUNLAB_POLROUTES_H
#define TUNLAB_POLROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policy.h"
#include "prefix.h"

enum {
	/* tunlab's routes: `ip route show proto 77` (the TUN backend and nfkit use the same). */
	POLROUTES_PROTO = 77,
	ROUTE_WORD_MAX = 64,
};

/* One answer of `ip -o route get`: "10.9.0.0 via 10.1.0.1 dev eth0 src ... \ cache". */
struct route_path {
	struct ip_addr dst;
	bool unicast;                   /* no route type word before the address */
	bool local;                     /* "local": an address of this host */
	char via[ROUTE_WORD_MAX + 8];   /* "10.1.0.1" or "inet6 fe80::1"; "" for none */
	char dev[ROUTE_WORD_MAX];       /* "" for none */
};

/*
 * Every prefix's current path (of its first address), one `ip -batch` for
 * all; paths[i] stays zeroed (dev "") for one without a route. -ENOMEM.
 */
int route_paths_lookup(const struct ip_prefix *prefixes, size_t count, struct route_path *paths);

/*
 * The paths the bypass entries of p need (indexed like p->entries, the
 * rest zeroed): calloc'd into *out, looked up with lookup, else all
 * zeroed (the unit tests). -ENOMEM.
 */
int polroutes_paths(const struct policy *p, bool lookup, struct route_path **out);

/*
 * `ip -batch` lines for p's bypass and discard entries (p NULL: none).
 * discard: a blackhole route, everything to dst dropped at routing. bypass
 * inside a protect entry's dst: a copy of its current path from paths[i],
 * more specific than the protect route, so it wins by longest match (the
 * parser refuses an entry an earlier one covers, so for dst-only entries
 * longest match is first match); "unreachable" when it had no path. A
 * bypass outside every protect dst needs nothing: it is the normal path.
 * v6_table_local puts the IPv6 ones in table local (pcap's IPv6 protect
 * routes live there, and table local is looked up before main).
 * teardown gets the exact delete lines. -ENOMEM.
 */
int polroutes_lines(const struct policy *p, const struct route_path *paths, bool v6_table_local,
		    FILE *setup, FILE *teardown);

#endif
