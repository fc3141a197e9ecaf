/* SPDX-License-Identifier: MIT */
/* What a peer may reach through this end: the destination half of the policy, one classifier for every path. */
#ifndef TUNLAB_REACH_H
#define TUNLAB_REACH_H

/*
 * Two layers, checked in this order by reach_classify():
 *
 * 1. Special addresses that no tunnel may ever deliver to, whatever the
 *    policy says (reach_special): loopback (127/8, ::1), unspecified
 *    (0/8, ::), link-local (169.254/16, fe80::/10), multicast (224/4,
 *    ff00::/8) and the limited broadcast 255.255.255.255, and the same in
 *    IPv6 clothing: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
 *    (::ffff:0:a.b.c.d) and IPv4-compatible (::a.b.c.d) forms. A socket
 *    connected to ::ffff:127.0.0.1 reaches the IPv4 loopback.
 *
 * 2. A prefix set with longest-prefix match (base/prefix.h's table):
 *    allowed prefixes (a server's --export, a client's routes), this
 *    host's own addresses and interface broadcast addresses (refused
 *    unless an allowed prefix names exactly that address, /32 or /128),
 *    and peers' prefixes (reachable only with peer_to_peer, and never the
 *    sender's own). The most specific entry decides: a peer's /32 inside
 *    an exported /8 is the peer's. Built at start-up; lookups allocate
 *    nothing and walk at most 32 or 128 trie levels.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"

/* Why an address was refused; REACH_OK when it was not. Indexes stats arrays. */
enum reach_verdict {
	REACH_OK = 0,
	REACH_LOOPBACK,     /* 127/8, ::1 */
	REACH_UNSPECIFIED,  /* 0/8, :: */
	REACH_LINK_LOCAL,   /* 169.254/16, fe80::/10 */
	REACH_MULTICAST,    /* 224/4, ff00::/8 */
	REACH_BROADCAST,    /* 255.255.255.255, or an interface's broadcast address */
	REACH_LOCAL,        /* an address of this host, not allowed by name */
	REACH_PEER,         /* a peer's prefix: without peer_to_peer, or the sender's own */
	REACH_NOT_EXPORTED,  /* in no allowed prefix (--export, --route) */
	REACH_VERDICT_COUNT,
};

/* "loopback", "link_local", ...: stable names for stats keys. */
const char *reach_verdict_name(enum reach_verdict v);

/* Layer 1 alone: REACH_OK or the special class of a. */
enum reach_verdict reach_special(const struct ip_addr *a);

/*
 * Layer 1 on both addresses of an IP packet: what every inject site checks
 * before the kernel sees the packet. REACH_OK also for a packet whose
 * header cannot be read (the caller refuses those on its own).
 */
enum reach_verdict reach_packet_special(const uint8_t *data, size_t len);

struct reach_policy;

struct reach_policy *reach_new(bool peer_to_peer);
void reach_free(struct reach_policy *p);
/* Destinations in p are reachable (--export, --route). 0, -ENOMEM. */
int reach_allow(struct reach_policy *p, const struct ip_prefix *prefix);
/* A peer's prefix; owner identifies the peer (the sender passed to reach_classify). */
int reach_add_peer(struct reach_policy *p, const struct ip_prefix *prefix, const void *owner);
/* An address of this host; broadcast: an interface's broadcast address. */
int reach_add_local(struct reach_policy *p, const struct ip_addr *a, bool broadcast);
/*
 * An address of this end the peer may deliver packets to: a client's
 * --address. Local besides (a server's classification refuses it).
 */
int reach_add_own(struct reach_policy *p, const struct ip_addr *a);
/* The source the kernel picks toward route, as an own address (a client without --address). */
int reach_add_route_source(struct reach_policy *p, const struct ip_prefix *route);
/*
 * Every address of this host's interfaces (getifaddrs), with the IPv4
 * broadcast addresses and the IPv6 subnet-router anycast address of each
 * interface prefix. A snapshot: the caller rereads it (start, SIGHUP).
 */
int reach_add_host_addresses(struct reach_policy *p);
struct ifaddrs;
/* The same from a given list (reach_add_host_addresses' getifaddrs, tests). */
int reach_add_ifaddrs(struct reach_policy *p, const struct ifaddrs *list);

/*
 * Both layers: REACH_OK if a peer identified by sender (NULL: none) may
 * reach a, else why not. The client uses it on sources: a source the
 * server may send from is one it "may reach" in the client's policy.
 */
enum reach_verdict reach_classify(const struct reach_policy *p, const struct ip_addr *a,
				  const void *sender);

/*
 * The client's destinations: REACH_OK only for exactly an own address
 * (reach_add_own); else the special class, REACH_LOCAL or REACH_BROADCAST
 * for another address of this host, REACH_NOT_EXPORTED for anything else.
 */
enum reach_verdict reach_classify_own(const struct reach_policy *p, const struct ip_addr *a);

#endif
