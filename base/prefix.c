// SPDX-License-Identifier: MIT
/* IPv4/IPv6 prefixes: parsing, formatting, containment and a LPM trie. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "prefix.h"

static unsigned family_bits(uint8_t family)
{
	return family == AF_INET ? 32 : 128;
}

static unsigned addr_bit(const struct ip_addr *a, unsigned i)
{
	return (a->bytes[i / 8] >> (7 - i % 8)) & 1;
}

static void clear_host_bits(struct ip_prefix *p)
{
	unsigned total = family_bits(p->addr.family) / 8;

	for (unsigned i = 0; i < total; i++) {
		unsigned first = i * 8;

		if (first >= p->len)
			p->addr.bytes[i] = 0;
		else if (first + 8 > p->len)
			p->addr.bytes[i] &= (uint8_t)(0xff << (8 - (p->len - first)));
	}
}

struct ip_prefix prefix_network(const struct ip_prefix *p)
{
	struct ip_prefix net = *p;

	clear_host_bits(&net);
	return net;
}

bool prefix_is_host(const struct ip_prefix *p)
{
	return p->len == family_bits(p->addr.family);
}

int addr_parse(const char *text, struct ip_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, out->bytes) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->bytes) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

static int parse_len(const char *text, unsigned max, uint8_t *out)
{
	char *end;
	unsigned long v;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (uint8_t)v;
	return 0;
}

int prefix_parse_host(const char *text, struct ip_prefix *out)
{
	char buf[PREFIX_STR_MAX];
	char *slash;
	size_t n = strlen(text);

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, n + 1);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (addr_parse(buf, &out->addr) < 0)
		return -EINVAL;
	if (!slash) {
		out->len = (uint8_t)family_bits(out->addr.family);
		return 0;
	}
	return parse_len(slash + 1, family_bits(out->addr.family), &out->len);
}

int prefix_parse(const char *text, struct ip_prefix *out)
{
	int ret = prefix_parse_host(text, out);

	if (ret == 0)
		clear_host_bits(out);
	return ret;
}

void addr_format(const struct ip_addr *a, char *out, size_t out_len)
{
	if (!inet_ntop(a->family, a->bytes, out, (socklen_t)out_len))
		snprintf(out, out_len, "?");
}

void prefix_format(const struct ip_prefix *p, char *out, size_t out_len)
{
	char addr[INET6_ADDRSTRLEN];

	addr_format(&p->addr, addr, sizeof(addr));
	snprintf(out, out_len, "%s/%u", addr, p->len);
}

static bool bits_equal(const struct ip_addr *a, const struct ip_addr *b, unsigned len)
{
	unsigned whole = len / 8, rest = len % 8;

	if (memcmp(a->bytes, b->bytes, whole) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return ((a->bytes[whole] ^ b->bytes[whole]) & mask) == 0;
}

bool prefix_contains(const struct ip_prefix *p, const struct ip_addr *a)
{
	return p->addr.family == a->family && bits_equal(&p->addr, a, p->len);
}

bool prefix_overlaps(const struct ip_prefix *a, const struct ip_prefix *b)
{
	unsigned shorter = a->len < b->len ? a->len : b->len;

	return a->addr.family == b->addr.family && bits_equal(&a->addr, &b->addr, shorter);
}

bool prefix_equal(const struct ip_prefix *a, const struct ip_prefix *b)
{
	return a->len == b->len && prefix_overlaps(a, b);
}

bool prefix_covers(const struct ip_prefix *outer, const struct ip_prefix *inner)
{
	return outer->len <= inner->len && prefix_contains(outer, &inner->addr);
}

int addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out, uint16_t *port)
{
	uint16_t p;

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		memcpy(out->bytes, &in->sin_addr, 4);
		p = in->sin_port;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(out->bytes, &in6->sin6_addr, 16);
		p = in6->sin6_port;
	} else {
		return -EAFNOSUPPORT;
	}
	out->family = (uint8_t)sa->sa_family;
	if (port)
		*port = ntohs(p);
	return 0;
}

void addr_to_sockaddr(struct sockaddr_storage *ss, socklen_t *len, const struct ip_addr *a,
		      uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, a->bytes, 4);
		*len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, a->bytes, 16);
		*len = sizeof(*in6);
	}
}

static bool bytes_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

bool addr_unmap(const struct ip_addr *a, struct ip_addr *out)
{
	const uint8_t *b = a->bytes;
	bool embedded;

	if (a->family != AF_INET6)
		return false;
	embedded = (bytes_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) ||     /* mapped */
		   (bytes_zero(b, 8) && b[8] == 0xff && b[9] == 0xff && !b[10] && !b[11]) || /* translated */
		   (bytes_zero(b, 12) && !(bytes_zero(b + 12, 3) && b[15] <= 1)); /* compatible */
	if (!embedded)
		return false;
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	memcpy(out->bytes, b + 12, 4);
	return true;
}

/*
 * A plain binary trie, one bit per level. Nodes are few (a thousand
 * prefixes make at most 32 thousand) and only built at start-up, so
 * simplicity wins over path compression.
 */
struct trie_node {
	struct trie_node *child[2];
	void *value;
	bool has_value;
};

/*
 * The last lookup's answer. A receive batch looks up the same addresses
 * packet after packet (the ~45 segments of a GSO packet over UDP, each
 * checked on its own), and each walk chases up to 32 or 128 pointers: 6 %
 * of a server's CPU under one upload. Apart from the table, which a
 * lookup only reads; any change to the table forgets it.
 */
struct prefix_memo {
	struct ip_addr addr;
	void *value;
	bool valid;
};

struct prefix_table {
	struct trie_node root4, root6;
	struct prefix_memo *memo;
};

struct prefix_table *prefix_table_new(void)
{
	struct prefix_table *t = calloc(1, sizeof(struct prefix_table));

	if (!t)
		return NULL;
	t->memo = calloc(1, sizeof(*t->memo));
	if (!t->memo) {
		free(t);
		return NULL;
	}
	return t;
}

static void trie_free(struct trie_node *n)
{
	if (!n)
		return;
	trie_free(n->child[0]);
	trie_free(n->child[1]);
	free(n);
}

void prefix_table_free(struct prefix_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < 2; i++) {
		trie_free(t->root4.child[i]);
		trie_free(t->root6.child[i]);
	}
	free(t->memo);
	free(t);
}

static struct trie_node *root_for(const struct prefix_table *t, uint8_t family)
{
	return (struct trie_node *)(family == AF_INET ? &t->root4 : &t->root6);
}

int prefix_table_insert(struct prefix_table *t, const struct ip_prefix *p, void *value)
{
	struct trie_node *n = root_for(t, p->addr.family);

	t->memo->valid = false;
	for (unsigned i = 0; i < p->len; i++) {
		unsigned bit = addr_bit(&p->addr, i);

		if (!n->child[bit]) {
			n->child[bit] = calloc(1, sizeof(*n));
			if (!n->child[bit])
				return -ENOMEM;
		}
		n = n->child[bit];
	}
	if (n->has_value)
		return -EEXIST;
	n->value = value;
	n->has_value = true;
	return 0;
}

static void trie_remove_value(struct trie_node *n, void *value)
{
	if (!n)
		return;
	if (n->has_value && n->value == value) {
		n->has_value = false;
		n->value = NULL;
	}
	trie_remove_value(n->child[0], value);
	trie_remove_value(n->child[1], value);
}

void prefix_table_remove_value(struct prefix_table *t, void *value)
{
	t->memo->valid = false;
	trie_remove_value(&t->root4, value);
	trie_remove_value(&t->root6, value);
}

void *prefix_table_lookup(const struct prefix_table *t, const struct ip_addr *a)
{
	const struct trie_node *n = root_for(t, a->family);
	unsigned bits = family_bits(a->family);
	void *best = n->has_value ? n->value : NULL;
	struct prefix_memo *memo = t->memo;

	/* Only the family's bytes: the rest of an IPv4 address is not defined. */
	if (memo->valid && memo->addr.family == a->family && !memcmp(memo->addr.bytes, a->bytes, bits / 8))
		return memo->value;
	for (unsigned i = 0; i < bits; i++) {
		n = n->child[addr_bit(a, i)];
		if (!n)
			break;
		if (n->has_value)
			best = n->value;
	}
	*memo = (struct prefix_memo){ .addr = *a, .value = best, .valid = true };
	return best;
}

void *prefix_table_get(const struct prefix_table *t, const struct ip_prefix *p)
{
	const struct trie_node *n = root_for(t, p->addr.family);

	for (unsigned i = 0; n && i < p->len; i++)
		n = n->child[addr_bit(&p->addr, i)];
	return n && n->has_value ? n->value : NULL;
}

