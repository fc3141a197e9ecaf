/* SPDX-License-Identifier: MIT */
/* IPv4/IPv6 addresses, prefixes and a longest-prefix-match table. */
#ifndef TUNLAB_PREFIX_H
#define TUNLAB_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ip_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16]; /* IPv4 uses the first 4 */
};

struct ip_prefix {
	struct ip_addr addr; /* host bits cleared by prefix_parse */
	uint8_t len;
};

enum { PREFIX_STR_MAX = 50 }; /* INET6_ADDRSTRLEN + "/128" */

/* "10.0.0.0/8", "fd00::/64"; a bare address is a host prefix. 0 or -EINVAL. */
int prefix_parse(const char *text, struct ip_prefix *out);
/* Like prefix_parse but keeps host bits ("10.8.0.2/24" stays .2): for --address. */
int prefix_parse_host(const char *text, struct ip_prefix *out);
int addr_parse(const char *text, struct ip_addr *out);
/* The network of an --address: host bits cleared. */
struct ip_prefix prefix_network(const struct ip_prefix *p);
/* A /32 (IPv4) or /128 (IPv6): one address. */
bool prefix_is_host(const struct ip_prefix *p);
void prefix_format(const struct ip_prefix *p, char *out, size_t out_len);
void addr_format(const struct ip_addr *a, char *out, size_t out_len);
bool prefix_contains(const struct ip_prefix *p, const struct ip_addr *a);
bool prefix_overlaps(const struct ip_prefix *a, const struct ip_prefix *b);
/* The same prefix: family, length and network bits. */
bool prefix_equal(const struct ip_prefix *a, const struct ip_prefix *b);
/* Every address of inner lies in outer (outer no longer than inner). */
bool prefix_covers(const struct ip_prefix *outer, const struct ip_prefix *inner);

/* The sockaddr of a and port (AF_INET or AF_INET6 as a is), its length in *len. */
void addr_to_sockaddr(struct sockaddr_storage *ss, socklen_t *len, const struct ip_addr *a,
		      uint16_t port);
/* The address (and port, unless NULL) of an AF_INET/AF_INET6 sockaddr; -EAFNOSUPPORT otherwise. */
int addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out, uint16_t *port);
/*
 * An IPv4 address written as IPv6: IPv4-mapped (::ffff:a.b.c.d),
 * -translated (::ffff:0:a.b.c.d) or -compatible (::a.b.c.d, but not :: and
 * ::1, IPv6's own). True and the AF_INET address in *out; else false. A
 * dual-stack socket connected to the mapped form reaches the IPv4 address.
 */
bool addr_unmap(const struct ip_addr *a, struct ip_addr *out);

/*
 * Longest-prefix match from prefix to an opaque value (a peer, a session).
 * A binary trie per family: lookups walk at most 32 or 128 bits whatever
 * the number of prefixes, which matters for the thousand-prefix experiment.
 */
struct prefix_table;

struct prefix_table *prefix_table_new(void);
void prefix_table_free(struct prefix_table *t);
/* -EEXIST if exactly this prefix is already present, -ENOMEM. */
int prefix_table_insert(struct prefix_table *t, const struct ip_prefix *p, void *value);
/* Removes every prefix whose value is value (a peer going away). */
void prefix_table_remove_value(struct prefix_table *t, void *value);
void *prefix_table_lookup(const struct prefix_table *t, const struct ip_addr *a);
/* The value stored for exactly prefix p (no longest match), or NULL. */
void *prefix_table_get(const struct prefix_table *t, const struct ip_prefix *p);

#endif
