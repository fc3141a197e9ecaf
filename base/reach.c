// SPDX-License-Identifier: MIT
/* The reach classifier: special address ranges, and an LPM prefix set of allowed, local and peer entries. */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pkt.h"
#include "reach.h"

static const char *const verdict_names[REACH_VERDICT_COUNT] = {
	[REACH_OK] = "ok",
	[REACH_LOOPBACK] = "loopback",
	[REACH_UNSPECIFIED] = "unspecified",
	[REACH_LINK_LOCAL] = "link_local",
	[REACH_MULTICAST] = "multicast",
	[REACH_BROADCAST] = "broadcast",
	[REACH_LOCAL] = "local",
	[REACH_PEER] = "peer",
	[REACH_NOT_EXPORTED] = "not_exported",
};

const char *reach_verdict_name(enum reach_verdict v)
{
	return (unsigned)v < REACH_VERDICT_COUNT ? verdict_names[v] : "?";
}

/* ---- layer 1: special ranges ---- */

static enum reach_verdict special4(const uint8_t *b)
{
	if (b[0] == 127)
		return REACH_LOOPBACK;
	if (b[0] == 0) /* 0.0.0.0 connects to this host; 0/8 is "this network" */
		return REACH_UNSPECIFIED;
	if (b[0] == 169 && b[1] == 254)
		return REACH_LINK_LOCAL;
	if ((b[0] & 0xf0) == 0xe0)
		return REACH_MULTICAST;
	if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
		return REACH_BROADCAST;
	return REACH_OK;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static enum reach_verdict special6(const struct ip_addr *a)
{
	const uint8_t *b = a->bytes;
	struct ip_addr v4;

	if (all_zero(b, 15))
		return b[15] == 1 ? REACH_LOOPBACK : REACH_UNSPECIFIED;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return REACH_LINK_LOCAL;
	if (b[0] == 0xff)
		return REACH_MULTICAST;
	return addr_unmap(a, &v4) ? special4(v4.bytes) : REACH_OK;
}

enum reach_verdict reach_special(const struct ip_addr *a)
{
	if (a->family == AF_INET)
		return special4(a->bytes);
	if (a->family == AF_INET6)
		return special6(a);
	return REACH_UNSPECIFIED; /* no family: nothing to deliver to */
}

enum reach_verdict reach_packet_special(const uint8_t *data, size_t len)
{
	struct ip_addr src, dst;
	enum reach_verdict v;

	if (pkt_addrs(data, len, &src, &dst) < 0)
		return REACH_OK;
	v = reach_special(&dst);
	return v != REACH_OK ? v : reach_special(&src);
}

/* ---- layer 2: the prefix set ---- */

/* What one exact prefix stands for; several roles merge into one entry. */
struct reach_entry {
	bool allowed;         /* an allowed prefix names exactly this one */
	bool local, broadcast;
	bool own;             /* local, and an address the peer may deliver to (client) */
	const void *owner;    /* a peer's prefix: whose */
	struct reach_entry *next;
};

struct reach_policy {
	struct prefix_table *table;
	struct reach_entry *entries; /* every entry, for reach_free */
	bool peer_to_peer;
};

struct reach_policy *reach_new(bool peer_to_peer)
{
	struct reach_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->table = prefix_table_new();
	if (!p->table) {
		free(p);
		return NULL;
	}
	p->peer_to_peer = peer_to_peer;
	return p;
}

void reach_free(struct reach_policy *p)
{
	if (!p)
		return;
	while (p->entries) {
		struct reach_entry *e = p->entries;

		p->entries = e->next;
		free(e);
	}
	prefix_table_free(p->table);
	free(p);
}

/* The entry of exactly prefix, created if there is none yet. */
static struct reach_entry *entry_for(struct reach_policy *p, const struct ip_prefix *prefix)
{
	struct reach_entry *e = prefix_table_get(p->table, prefix);

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	if (prefix_table_insert(p->table, prefix, e) < 0) {
		free(e);
		return NULL;
	}
	e->next = p->entries;
	p->entries = e;
	return e;
}

int reach_allow(struct reach_policy *p, const struct ip_prefix *prefix)
{
	struct reach_entry *e = entry_for(p, prefix);

	if (!e)
		return -ENOMEM;
	e->allowed = true;
	return 0;
}

int reach_add_peer(struct reach_policy *p, const struct ip_prefix *prefix, const void *owner)
{
	struct reach_entry *e = entry_for(p, prefix);

	if (!e)
		return -ENOMEM;
	e->owner = owner;
	return 0;
}

int reach_add_local(struct reach_policy *p, const struct ip_addr *a, bool broadcast)
{
	struct ip_prefix host = { .addr = *a, .len = a->family == AF_INET ? 32 : 128 };
	struct reach_entry *e = entry_for(p, &host);

	if (!e)
		return -ENOMEM;
	if (broadcast)
		e->broadcast = true;
	else
		e->local = true;
	return 0;
}

int reach_add_own(struct reach_policy *p, const struct ip_addr *a)
{
	struct ip_prefix host = { .addr = *a, .len = a->family == AF_INET ? 32 : 128 };
	struct reach_entry *e = entry_for(p, &host);

	if (!e)
		return -ENOMEM;
	e->local = true;
	e->own = true;
	return 0;
}

/*
 * The source the kernel picks toward route (a host inside it): where a
 * client without --address of that family sends from, and so where
 * answers come back. A route the kernel cannot reach adds nothing.
 */
int reach_add_route_source(struct reach_policy *p, const struct ip_prefix *route)
{
	struct sockaddr_storage ss;
	struct ip_addr to = route->addr, src;
	socklen_t len;
	int fd, ret = 0;

	if (!prefix_is_host(route))
		to.bytes[route->addr.family == AF_INET ? 3 : 15] |= 1; /* not the network address */
	addr_to_sockaddr(&ss, &len, &to, 9);
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A UDP connect sends nothing: it only asks the routing table. */
	if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
		    addr_from_sockaddr((struct sockaddr *)&ss, &src, NULL) == 0 &&
		    reach_special(&src) == REACH_OK)
			ret = reach_add_own(p, &src);
	}
	close(fd);
	return ret;
}

static int add_sockaddr(struct reach_policy *p, const struct sockaddr *sa, bool broadcast)
{
	struct ip_addr a;

	if (addr_from_sockaddr(sa, &a, NULL) < 0)
		return 0; /* AF_PACKET and the like: no IP address */
	return reach_add_local(p, &a, broadcast);
}

/*
 * The kernel routes the first and last address of an IPv4 subnet shorter
 * than /31 as broadcast (RTN_BROADCAST in the local table) whether or not
 * the address was added with "brd": a packet to 10.102.0.255 arriving on
 * a TUN device is delivered to this host. Both count as broadcast here.
 */
static int add_subnet_broadcast(struct reach_policy *p, const struct ifaddrs *ifa)
{
	const struct sockaddr_in *addr = (const struct sockaddr_in *)ifa->ifa_addr;
	const struct sockaddr_in *mask = (const struct sockaddr_in *)ifa->ifa_netmask;
	struct ip_addr edge = { .family = AF_INET };
	uint32_t a, m;
	int ret;

	if (!mask || mask->sin_family != AF_INET)
		return 0;
	a = ntohl(addr->sin_addr.s_addr);
	m = ntohl(mask->sin_addr.s_addr);
	if ((m & 0x2) != 0) /* /31 and /32 have no broadcast */
		return 0;
	for (int i = 0; i < 2; i++) {
		uint32_t v = i ? (a | ~m) : (a & m);

		edge.bytes[0] = (uint8_t)(v >> 24);
		edge.bytes[1] = (uint8_t)(v >> 16);
		edge.bytes[2] = (uint8_t)(v >> 8);
		edge.bytes[3] = (uint8_t)v;
		ret = reach_add_local(p, &edge, true);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * A forwarding host joins the subnet-router anycast address (RFC 4291
 * 2.6.1), the prefix with an all-zero interface id, of each IPv6 prefix
 * on its interfaces; getifaddrs does not list it, and a packet to it is
 * delivered to this host. Added whether or not forwarding is on now.
 */
static int add_subnet_anycast(struct reach_policy *p, const struct ifaddrs *ifa)
{
	const struct sockaddr_in6 *mask = (const struct sockaddr_in6 *)ifa->ifa_netmask;
	struct ip_addr net;

	if (!mask || mask->sin6_family != AF_INET6)
		return 0;
	if (addr_from_sockaddr(ifa->ifa_addr, &net, NULL) < 0)
		return 0;
	for (int i = 0; i < 16; i++)
		net.bytes[i] &= mask->sin6_addr.s6_addr[i];
	return reach_special(&net) == REACH_OK ? reach_add_local(p, &net, false) : 0;
}

static int add_interface_address(struct reach_policy *p, const struct ifaddrs *ifa)
{
	int ret = add_sockaddr(p, ifa->ifa_addr, false);

	if (ret < 0)
		return ret;
	if (ifa->ifa_addr->sa_family == AF_INET6)
		return add_subnet_anycast(p, ifa);
	if (ifa->ifa_addr->sa_family != AF_INET)
		return 0;
	if ((ifa->ifa_flags & IFF_BROADCAST) && ifa->ifa_broadaddr)
		ret = add_sockaddr(p, ifa->ifa_broadaddr, true);
	return ret < 0 ? ret : add_subnet_broadcast(p, ifa);
}

int reach_add_ifaddrs(struct reach_policy *p, const struct ifaddrs *list)
{
	int ret = 0;

	for (const struct ifaddrs *ifa = list; ifa && ret == 0; ifa = ifa->ifa_next)
		if (ifa->ifa_addr)
			ret = add_interface_address(p, ifa);
	return ret;
}

int reach_add_host_addresses(struct reach_policy *p)
{
	struct ifaddrs *list;
	int ret;

	if (getifaddrs(&list) < 0)
		return -errno;
	ret = reach_add_ifaddrs(p, list);
	freeifaddrs(list);
	return ret;
}

/* Layer 2 alone: what the most specific entry covering a says. */
static enum reach_verdict classify_entry(const struct reach_policy *p, const struct ip_addr *a,
					 const void *sender)
{
	const struct reach_entry *e = prefix_table_lookup(p->table, a);

	if (!e)
		return REACH_NOT_EXPORTED;
	if (e->local || e->broadcast) {
		/* This host itself: only where an allowed prefix names exactly the address. */
		if (e->allowed)
			return REACH_OK;
		/* glibc reports an address without "brd" as its own broadcast: local wins. */
		return e->local ? REACH_LOCAL : REACH_BROADCAST;
	}
	if (e->owner)
		return p->peer_to_peer && e->owner != sender ? REACH_OK : REACH_PEER;
	return e->allowed ? REACH_OK : REACH_NOT_EXPORTED;
}

/* Layer 2 for the client's deliveries: exactly an own address, or why not. */
static enum reach_verdict own_entry(const struct reach_policy *p, const struct ip_addr *a)
{
	struct ip_prefix host = { .addr = *a, .len = a->family == AF_INET ? 32 : 128 };
	const struct reach_entry *e = prefix_table_get(p->table, &host);

	if (e && e->own)
		return REACH_OK;
	if (e && (e->local || e->broadcast))
		return e->local ? REACH_LOCAL : REACH_BROADCAST;
	return REACH_NOT_EXPORTED;
}

enum reach_verdict reach_classify_own(const struct reach_policy *p, const struct ip_addr *a)
{
	enum reach_verdict v = reach_special(a);
	struct ip_addr v4;

	if (v != REACH_OK)
		return v;
	if (addr_unmap(a, &v4)) {
		v = own_entry(p, &v4);
		if (v != REACH_OK)
			return v;
	}
	return own_entry(p, a);
}

enum reach_verdict reach_classify(const struct reach_policy *p, const struct ip_addr *a,
				  const void *sender)
{
	enum reach_verdict v = reach_special(a);
	struct ip_addr v4;

	if (v != REACH_OK)
		return v;
	/*
	 * A dual-stack socket sends ::ffff:a.b.c.d out as IPv4 to a.b.c.d, and
	 * this host's IPv4 addresses and peers' IPv4 prefixes live in the IPv4
	 * trie only: such a form must pass as its IPv4 address, and then as
	 * itself (an IPv6 export covering it), so unmapping never widens.
	 */
	if (addr_unmap(a, &v4)) {
		v = classify_entry(p, &v4, sender);
		if (v != REACH_OK)
			return v;
	}
	return classify_entry(p, a, sender);
}
