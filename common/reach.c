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

/* An IPv4 address in IPv6 clothing: its four bytes, or NULL. */
static const uint8_t *embedded_v4(const uint8_t *b)
{
	if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff)
		return b + 12; /* ::ffff:a.b.c.d, mapped */
	if (all_zero(b, 8) && b[8] == 0xff && b[9] == 0xff && !b[10] && !b[11])
		return b + 12; /* ::ffff:0:a.b.c.d, translated (RFC 2765) */
	if (all_zero(b, 12))
		return b + 12; /* ::a.b.c.d, compatible (and :: and ::1 themselves) */
	return NULL;
}

static enum reach_verdict special6(const uint8_t *b)
{
	const uint8_t *v4;

	if (all_zero(b, 15))
		return b[15] == 1 ? REACH_LOOPBACK : b[15] == 0 ? REACH_UNSPECIFIED : special4(b + 12);
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return REACH_LINK_LOCAL;
	if (b[0] == 0xff)
		return REACH_MULTICAST;
	v4 = embedded_v4(b);
	return v4 ? special4(v4) : REACH_OK;
}

enum reach_verdict reach_special(const struct ip_addr *a)
{
	if (a->family == AF_INET)
		return special4(a->bytes);
	if (a->family == AF_INET6)
		return special6(a->bytes);
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

static int add_sockaddr(struct reach_policy *p, const struct sockaddr *sa, bool broadcast)
{
	struct ip_addr a = { .family = (uint8_t)sa->sa_family };

	if (sa->sa_family == AF_INET)
		memcpy(a.bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6)
		memcpy(a.bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return 0;
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

static int add_interface_address(struct reach_policy *p, const struct ifaddrs *ifa)
{
	int ret = add_sockaddr(p, ifa->ifa_addr, false);

	if (ret < 0 || ifa->ifa_addr->sa_family != AF_INET)
		return ret;
	if ((ifa->ifa_flags & IFF_BROADCAST) && ifa->ifa_broadaddr)
		ret = add_sockaddr(p, ifa->ifa_broadaddr, true);
	return ret < 0 ? ret : add_subnet_broadcast(p, ifa);
}

int reach_add_host_addresses(struct reach_policy *p)
{
	struct ifaddrs *list, *ifa;
	int ret = 0;

	if (getifaddrs(&list) < 0)
		return -errno;
	for (ifa = list; ifa && ret == 0; ifa = ifa->ifa_next)
		if (ifa->ifa_addr)
			ret = add_interface_address(p, ifa);
	freeifaddrs(list);
	return ret;
}

enum reach_verdict reach_classify(const struct reach_policy *p, const struct ip_addr *a,
				  const void *sender)
{
	enum reach_verdict v = reach_special(a);
	const struct reach_entry *e;

	if (v != REACH_OK)
		return v;
	e = prefix_table_lookup(p->table, a);
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
