/* SPDX-License-Identifier: MIT */
/* The Ethernet next hop of a destination (route, then neighbour), cached briefly: for injecting on the egress device. */
#ifndef TUNLAB_NEXTHOP_H
#define TUNLAB_NEXTHOP_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/prefix.h"

enum {
	NEXTHOP_CACHE_SIZE = 64,   /* destinations remembered, direct-mapped */
	NEXTHOP_TTL_MS = 1000,     /* how long a lookup stays good */
};

struct nexthop {
	int ifindex;
	uint8_t dst_mac[6], src_mac[6];
};

struct nexthop_entry {
	struct ip_addr dst;
	uint64_t expires_ms;
	bool usable;               /* false: local, unresolved or not Ethernet */
	struct nexthop hop;
};

struct nexthop_cache {
	struct mnl_socket *nl;
	struct keyhash *hash;      /* slots by a keyed hash: a peer picks the destinations */
	int ioctl_fd;              /* for SIOCGIFHWADDR */
	uint32_t seq;
	struct nexthop_entry entries[NEXTHOP_CACHE_SIZE];
};

int nexthop_open(struct nexthop_cache *c);
/*
 * The egress device and MAC addresses for a packet to dst; false when
 * there is none to use (a local destination, no route, a neighbour not
 * yet resolved, a device that is not Ethernet): the caller takes another
 * path. At most two netlink round trips per destination and NEXTHOP_TTL_MS.
 */
bool nexthop_lookup(struct nexthop_cache *c, const struct ip_addr *dst, uint64_t now_ms,
		    struct nexthop *out);
void nexthop_close(struct nexthop_cache *c);

#endif
