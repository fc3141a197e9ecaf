// SPDX-License-Identifier: MIT
/* Unit tests of base/prefix.h (parsing, matching, the LPM table) and base/pkt.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../base/pkt.h"
#include "../../base/prefix.h"

static struct ip_prefix must_prefix(const char *text)
{
	struct ip_prefix p;

	assert_int_equal(prefix_parse(text, &p), 0);
	return p;
}

static struct ip_addr must_addr(const char *text)
{
	struct ip_addr a;

	assert_int_equal(addr_parse(text, &a), 0);
	return a;
}

/* Parses then formats: what comes back is the canonical form. */
static void assert_prefix_roundtrip(const char *text, const char *canonical)
{
	struct ip_prefix p = must_prefix(text);
	char out[PREFIX_STR_MAX];

	prefix_format(&p, out, sizeof(out));
	assert_string_equal(out, canonical);
}

static void test_parse_v4(void **state)
{
	(void)state;
	struct ip_prefix p;
	const uint8_t want[4] = { 10, 1, 0, 0 };

	assert_int_equal(prefix_parse("10.1.0.0/16", &p), 0);
	assert_int_equal(p.addr.family, AF_INET);
	assert_int_equal(p.len, 16);
	assert_memory_equal(p.addr.bytes, want, 4);

	assert_int_equal(prefix_parse("0.0.0.0/0", &p), 0);
	assert_int_equal(p.addr.family, AF_INET);
	assert_int_equal(p.len, 0);

	/* A bare address is a host prefix. */
	assert_int_equal(prefix_parse("192.168.60.7", &p), 0);
	assert_int_equal(p.len, 32);
	assert_int_equal(p.addr.bytes[3], 7);
}

static void test_parse_v6(void **state)
{
	(void)state;
	struct ip_prefix p;
	uint8_t want[16] = { 0xfd, 0x00, 0, 0x08 };

	assert_int_equal(prefix_parse("fd00:8::/64", &p), 0);
	assert_int_equal(p.addr.family, AF_INET6);
	assert_int_equal(p.len, 64);
	assert_memory_equal(p.addr.bytes, want, 16);

	assert_int_equal(prefix_parse("fd00::1", &p), 0);
	assert_int_equal(p.len, 128);
	assert_int_equal(p.addr.bytes[15], 1);

	assert_int_equal(prefix_parse("::/0", &p), 0);
	assert_int_equal(p.addr.family, AF_INET6);
	assert_int_equal(p.len, 0);
}

static void test_format(void **state)
{
	(void)state;
	assert_prefix_roundtrip("10.0.0.0/8", "10.0.0.0/8");
	assert_prefix_roundtrip("192.168.60.0/24", "192.168.60.0/24");
	assert_prefix_roundtrip("0.0.0.0/0", "0.0.0.0/0");
	assert_prefix_roundtrip("10.8.0.2", "10.8.0.2/32");
	assert_prefix_roundtrip("fd00::/64", "fd00::/64");
	assert_prefix_roundtrip("FD00:0:0:0:0:0:0:1/128", "fd00::1/128");
	assert_prefix_roundtrip("::/0", "::/0");

	char out[PREFIX_STR_MAX];
	struct ip_addr a = must_addr("10.8.0.2");

	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "10.8.0.2");
	a = must_addr("2001:db8::42");
	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "2001:db8::42");
	assert_int_equal(a.family, AF_INET6);
}

/* The longest text fits PREFIX_STR_MAX; a short buffer is cut, never overrun. */
static void test_format_bounds(void **state)
{
	(void)state;
	struct ip_prefix p = must_prefix("1111:2222:3333:4444:5555:6666:7777:8888/128");
	char out[PREFIX_STR_MAX];
	char small[12];

	prefix_format(&p, out, sizeof(out));
	assert_string_equal(out, "1111:2222:3333:4444:5555:6666:7777:8888/128");

	memset(small, 'X', sizeof(small));
	prefix_format(&p, small, 8);
	assert_true(memchr(small, '\0', 8) != NULL);
	for (size_t i = 8; i < sizeof(small); i++)
		assert_int_equal(small[i], 'X');
}

static void test_host_bits(void **state)
{
	(void)state;
	struct ip_prefix p;
	const uint8_t cleared[4] = { 10, 8, 0, 0 };
	const uint8_t kept[4] = { 10, 8, 0, 2 };

	assert_int_equal(prefix_parse("10.8.0.2/24", &p), 0);
	assert_int_equal(p.len, 24);
	assert_memory_equal(p.addr.bytes, cleared, 4);

	assert_int_equal(prefix_parse_host("10.8.0.2/24", &p), 0);
	assert_int_equal(p.len, 24);
	assert_memory_equal(p.addr.bytes, kept, 4);

	/* Bits cleared inside a byte, not only whole bytes. */
	assert_int_equal(prefix_parse("10.255.255.255/9", &p), 0);
	assert_int_equal(p.addr.bytes[1], 0x80);
	assert_int_equal(p.addr.bytes[2], 0);
	assert_int_equal(p.addr.bytes[3], 0);

	assert_int_equal(prefix_parse("fd00::ffff/120", &p), 0);
	assert_int_equal(p.addr.bytes[14], 0xff);
	assert_int_equal(p.addr.bytes[15], 0);
	assert_int_equal(prefix_parse_host("fd00::ffff/120", &p), 0);
	assert_int_equal(p.addr.bytes[15], 0xff);
	assert_int_equal(p.len, 120);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"10.0.0.0/33", "1.2.3", "fd00::/129", "", "10.0.0.0/", "abc",
		"/8", "10.0.0.256/8", "10.0.0.0/8/8", "10.0.0.0/abc", "10.0.0.0/-1",
		"10.0.0.0/8x", "fd00::/-1", "fd00:::/64", "10.0.0.0 /8",
	};
	struct ip_prefix p;
	struct ip_addr a;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (prefix_parse(bad[i], &p) != -EINVAL)
			fail_msg("prefix_parse(\"%s\") accepted", bad[i]);
		if (prefix_parse_host(bad[i], &p) != -EINVAL)
			fail_msg("prefix_parse_host(\"%s\") accepted", bad[i]);
	}
	assert_int_equal(addr_parse("10.0.0.0/8", &a), -EINVAL);
	assert_int_equal(addr_parse("", &a), -EINVAL);
	assert_int_equal(addr_parse("1.2.3", &a), -EINVAL);
	assert_int_equal(addr_parse("fd00::g", &a), -EINVAL);
}

static void test_contains(void **state)
{
	(void)state;
	struct ip_prefix net = must_prefix("10.1.0.0/16");
	struct ip_prefix odd = must_prefix("10.128.0.0/9");
	struct ip_prefix all4 = must_prefix("0.0.0.0/0");
	struct ip_prefix v6 = must_prefix("fd00:8::/32");
	struct ip_prefix host = must_prefix("10.8.0.2/32");

	struct ip_addr a = must_addr("10.1.255.255");

	assert_true(prefix_contains(&net, &a));
	a = must_addr("10.2.0.0");
	assert_false(prefix_contains(&net, &a));
	a = must_addr("10.127.255.255");
	assert_false(prefix_contains(&odd, &a));
	a = must_addr("10.128.0.1");
	assert_true(prefix_contains(&odd, &a));
	assert_true(prefix_contains(&all4, &a));
	a = must_addr("10.8.0.2");
	assert_true(prefix_contains(&host, &a));
	a = must_addr("10.8.0.3");
	assert_false(prefix_contains(&host, &a));

	a = must_addr("fd00:8:ffff::1");
	assert_true(prefix_contains(&v6, &a));
	assert_false(prefix_contains(&all4, &a));
	a = must_addr("fd00:9::1");
	assert_false(prefix_contains(&v6, &a));
	/* 10.1.x.x as the first bytes of an IPv6 address is not in 10.1/16. */
	a = must_addr("a01::1");
	assert_false(prefix_contains(&net, &a));
}

static void test_equal_covers(void **state)
{
	(void)state;
	struct ip_prefix p8 = must_prefix("10.0.0.0/8"), p8b = must_prefix("10.1.2.3/8");
	struct ip_prefix p16 = must_prefix("10.1.0.0/16"), other = must_prefix("11.0.0.0/8");
	struct ip_prefix v6 = must_prefix("a00::/8"), all6 = must_prefix("::/0");

	assert_true(prefix_equal(&p8, &p8b));
	assert_false(prefix_equal(&p8, &p16));   /* overlapping is not equal */
	assert_false(prefix_equal(&p16, &p8));
	assert_false(prefix_equal(&p8, &other));
	assert_false(prefix_equal(&p8, &v6));    /* same bits, other family */
	assert_true(prefix_covers(&p8, &p16));
	assert_true(prefix_covers(&p8, &p8b));
	assert_false(prefix_covers(&p16, &p8));  /* the narrower one covers less */
	assert_false(prefix_covers(&other, &p16));
	assert_false(prefix_covers(&all6, &p16));
	assert_true(prefix_covers(&all6, &v6));
}

static struct ip_addr sockaddr_addr(const char *text, uint16_t port, uint16_t *port_out)
{
	struct sockaddr_storage ss = { 0 };
	struct ip_addr a = must_addr(text);

	if (a.family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, a.bytes, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, a.bytes, 16);
	}
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &a, port_out), 0);
	return a;
}

static void test_from_sockaddr_and_unmap(void **state)
{
	(void)state;
	struct sockaddr_storage unix_ss = { .ss_family = AF_UNIX };
	struct ip_addr a, v4, want;
	uint16_t port = 0;

	a = sockaddr_addr("10.1.2.3", 443, &port);
	want = must_addr("10.1.2.3");
	assert_memory_equal(&a, &want, sizeof(a));
	assert_int_equal(port, 443);
	a = sockaddr_addr("fd00::1", 53, NULL);
	want = must_addr("fd00::1");
	assert_memory_equal(&a, &want, sizeof(a));
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&unix_ss, &a, NULL), -EAFNOSUPPORT);

	want = must_addr("10.1.2.3");
	for (int i = 0; i < 3; i++) {
		static const char *const forms[] = { "::ffff:10.1.2.3", "::ffff:0:10.1.2.3", "::10.1.2.3" };

		a = must_addr(forms[i]);
		assert_true(addr_unmap(&a, &v4));
		assert_memory_equal(&v4, &want, sizeof(v4));
	}
	a = must_addr("::1");
	assert_false(addr_unmap(&a, &v4)); /* IPv6's own loopback and unspecified */
	a = must_addr("::");
	assert_false(addr_unmap(&a, &v4));
	a = must_addr("1::ffff:10.1.2.3");
	assert_false(addr_unmap(&a, &v4));
	a = must_addr("10.1.2.3");
	assert_false(addr_unmap(&a, &v4));
}

static void test_overlaps(void **state)
{
	(void)state;
	struct ip_prefix p8 = must_prefix("10.0.0.0/8");
	struct ip_prefix p16 = must_prefix("10.1.0.0/16");
	struct ip_prefix other = must_prefix("11.0.0.0/8");
	struct ip_prefix sib = must_prefix("10.2.0.0/16");
	struct ip_prefix all4 = must_prefix("0.0.0.0/0");
	struct ip_prefix all6 = must_prefix("::/0");
	struct ip_prefix v6 = must_prefix("a00::/8");

	assert_true(prefix_overlaps(&p8, &p16));
	assert_true(prefix_overlaps(&p16, &p8));
	assert_true(prefix_overlaps(&p8, &p8));
	assert_false(prefix_overlaps(&p8, &other));
	assert_false(prefix_overlaps(&p16, &sib));
	assert_true(prefix_overlaps(&all4, &other));
	assert_true(prefix_overlaps(&other, &all4));
	assert_false(prefix_overlaps(&all4, &all6));
	assert_true(prefix_overlaps(&all6, &v6));
	/* Same leading bytes, different family. */
	assert_false(prefix_overlaps(&p8, &v6));
}

static void assert_lookup(const struct prefix_table *t, const char *addr, const void *want)
{
	struct ip_addr a = must_addr(addr);
	void *got = prefix_table_lookup(t, &a);

	if (got != want)
		fail_msg("lookup %s: got %p, want %p", addr, got, want);
}

static void insert_ok(struct prefix_table *t, const char *prefix, void *value)
{
	struct ip_prefix p = must_prefix(prefix);

	assert_int_equal(prefix_table_insert(t, &p, value), 0);
}

static void test_table_lpm(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	int v8, v16, v24, vdef;

	assert_non_null(t);
	assert_lookup(t, "10.1.2.3", NULL);
	insert_ok(t, "10.1.0.0/16", &v16);
	insert_ok(t, "10.0.0.0/8", &v8);
	insert_ok(t, "10.1.2.0/24", &v24);

	assert_lookup(t, "10.1.2.3", &v24);
	assert_lookup(t, "10.1.2.255", &v24);
	assert_lookup(t, "10.1.3.1", &v16);
	assert_lookup(t, "10.1.0.0", &v16);
	assert_lookup(t, "10.2.0.1", &v8);
	assert_lookup(t, "10.255.255.255", &v8);
	assert_lookup(t, "11.0.0.1", NULL);
	assert_lookup(t, "9.255.255.255", NULL);

	insert_ok(t, "0.0.0.0/0", &vdef);
	assert_lookup(t, "11.0.0.1", &vdef);
	assert_lookup(t, "255.255.255.255", &vdef);
	assert_lookup(t, "10.1.2.3", &v24);
	prefix_table_free(t);
}

static void test_table_host_and_v6(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	int host, net, v6a, v6b;

	assert_non_null(t);
	insert_ok(t, "10.8.0.2/32", &host);
	insert_ok(t, "10.8.0.0/24", &net);
	insert_ok(t, "fd00::/16", &v6a);
	insert_ok(t, "fd00:8::1/128", &v6b);
	assert_lookup(t, "10.8.0.2", &host);
	assert_lookup(t, "10.8.0.3", &net);
	assert_lookup(t, "fd00:8::1", &v6b);
	assert_lookup(t, "fd00:8::2", &v6a);
	assert_lookup(t, "fd01::1", NULL);
	prefix_table_free(t);
}

/* The exact entry, never the longest match: what merges roles of one prefix. */
static void test_table_get_exact(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	struct ip_prefix p24 = must_prefix("10.8.0.0/24"), p25 = must_prefix("10.8.0.0/25");
	struct ip_prefix host = must_prefix("10.8.0.2/32"), all = must_prefix("::/0");
	int net;

	assert_non_null(t);
	insert_ok(t, "10.8.0.0/24", &net);
	assert_ptr_equal(prefix_table_get(t, &p24), &net);
	assert_null(prefix_table_get(t, &p25));
	assert_null(prefix_table_get(t, &host));
	assert_null(prefix_table_get(t, &all));
	prefix_table_free(t);
}

static void test_network_and_host(void **state)
{
	(void)state;
	struct ip_prefix a, net;
	char out[PREFIX_STR_MAX];

	assert_int_equal(prefix_parse_host("10.8.0.2/24", &a), 0);
	net = prefix_network(&a);
	prefix_format(&net, out, sizeof(out));
	assert_string_equal(out, "10.8.0.0/24");
	assert_false(prefix_is_host(&net));
	assert_int_equal(prefix_parse_host("fd08::2", &a), 0);
	assert_true(prefix_is_host(&a));
	assert_int_equal(prefix_parse_host("10.8.0.2/32", &a), 0);
	assert_true(prefix_is_host(&a));
}

static void test_table_families_apart(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	int v4def, v6def, v4net;

	assert_non_null(t);
	insert_ok(t, "0.0.0.0/0", &v4def);
	assert_lookup(t, "::1", NULL);
	assert_lookup(t, "fd00::1", NULL);
	insert_ok(t, "10.0.0.0/8", &v4net);
	/* a00::1 starts with byte 10: it must not reach the IPv4 trie. */
	assert_lookup(t, "a00::1", NULL);
	insert_ok(t, "::/0", &v6def);
	assert_lookup(t, "a00::1", &v6def);
	assert_lookup(t, "10.0.0.1", &v4net);
	assert_lookup(t, "11.0.0.1", &v4def);
	prefix_table_free(t);
}

static void test_table_duplicate(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	int a, b;
	struct ip_prefix p = must_prefix("10.0.0.0/8");
	struct ip_prefix same = must_prefix("10.9.9.9/8"); /* host bits cleared */
	struct ip_prefix longer = must_prefix("10.0.0.0/9");

	assert_non_null(t);
	assert_int_equal(prefix_table_insert(t, &p, &a), 0);
	assert_int_equal(prefix_table_insert(t, &p, &b), -EEXIST);
	assert_int_equal(prefix_table_insert(t, &same, &b), -EEXIST);
	/* The first value stays. */
	assert_lookup(t, "10.200.0.1", &a);
	assert_int_equal(prefix_table_insert(t, &longer, &b), 0);
	assert_lookup(t, "10.1.0.1", &b);
	assert_lookup(t, "10.200.0.1", &a);

	struct ip_prefix d4 = must_prefix("0.0.0.0/0");
	struct ip_prefix d6 = must_prefix("::/0");

	assert_int_equal(prefix_table_insert(t, &d4, &a), 0);
	assert_int_equal(prefix_table_insert(t, &d4, &a), -EEXIST);
	assert_int_equal(prefix_table_insert(t, &d6, &a), 0);
	prefix_table_free(t);
}

static void test_table_remove_value(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	int a, b;

	assert_non_null(t);
	insert_ok(t, "10.0.0.0/8", &a);
	insert_ok(t, "10.1.0.0/16", &b);
	insert_ok(t, "10.1.2.0/24", &a);
	insert_ok(t, "fd00::/8", &a);

	prefix_table_remove_value(t, &a);
	assert_lookup(t, "10.1.2.3", &b);
	assert_lookup(t, "10.2.0.1", NULL);
	assert_lookup(t, "fd00::1", NULL);
	/* Removed prefixes can come back. */
	insert_ok(t, "10.1.2.0/24", &b);
	assert_lookup(t, "10.1.2.3", &b);

	prefix_table_remove_value(t, &b);
	assert_lookup(t, "10.1.2.3", NULL);
	assert_lookup(t, "10.1.9.9", NULL);
	/* Removing a value that is not there changes nothing. */
	insert_ok(t, "10.0.0.0/8", &a);
	prefix_table_remove_value(t, &b);
	assert_lookup(t, "10.1.2.3", &a);
	prefix_table_free(t);
}

/*
 * The same address looked up again (a table remembers its last answer):
 * every change to the table is seen, an IPv4 address matches whatever
 * follows its 4 bytes, and the same bytes in the other family do not.
 */
static void test_table_repeated_lookup(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	struct ip_addr a = must_addr("10.1.2.3"), v6 = must_addr("a01:203::");
	int wide, narrow, six;

	assert_non_null(t);
	insert_ok(t, "10.0.0.0/8", &wide);
	assert_ptr_equal(prefix_table_lookup(t, &a), &wide);
	insert_ok(t, "10.1.2.0/24", &narrow);
	assert_ptr_equal(prefix_table_lookup(t, &a), &narrow);
	memset(a.bytes + 4, 0xab, sizeof(a.bytes) - 4);
	assert_ptr_equal(prefix_table_lookup(t, &a), &narrow);
	prefix_table_remove_value(t, &narrow);
	assert_ptr_equal(prefix_table_lookup(t, &a), &wide);
	assert_null(prefix_table_lookup(t, &v6));
	insert_ok(t, "a01:200::/24", &six);
	assert_ptr_equal(prefix_table_lookup(t, &v6), &six);
	assert_ptr_equal(prefix_table_lookup(t, &a), &wide);
	prefix_table_free(t);
}

enum { MANY = 1000 };

static void test_table_thousand(void **state)
{
	(void)state;
	struct prefix_table *t = prefix_table_new();
	static int values[MANY];
	char text[PREFIX_STR_MAX];

	assert_non_null(t);
	for (int i = 0; i < MANY; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.0/24", i / 256, i % 256);
		insert_ok(t, text, &values[i]);
	}
	for (int i = 0; i < MANY; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.%d", i / 256, i % 256, (i * 7) % 256);
		assert_lookup(t, text, &values[i]);
	}
	/* 1000 = 3 * 256 + 232: 10.3.232.0/24 is the first one left out. */
	assert_lookup(t, "10.3.232.1", NULL);
	assert_lookup(t, "10.4.0.1", NULL);
	prefix_table_free(t);
}

/* ---- pkt.h ---- */

static size_t build_ip4(uint8_t *buf, const char *src, const char *dst, uint8_t proto, uint16_t total)
{
	memset(buf, 0, total);
	buf[0] = 0x45;
	buf[2] = total >> 8;
	buf[3] = total & 0xff;
	buf[8] = 64;
	buf[9] = proto;
	assert_int_equal(inet_pton(AF_INET, src, buf + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, buf + 16), 1);
	return total;
}

static size_t build_ip6(uint8_t *buf, const char *src, const char *dst, uint8_t next, uint16_t payload)
{
	memset(buf, 0, 40u + payload);
	buf[0] = 0x60;
	buf[4] = payload >> 8;
	buf[5] = payload & 0xff;
	buf[6] = next;
	buf[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, buf + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, buf + 24), 1);
	return 40u + payload;
}

static void assert_addr_is(const struct ip_addr *a, const char *want)
{
	char out[PREFIX_STR_MAX];

	addr_format(a, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_pkt_addrs_v4(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct ip_addr src, dst;
	size_t len = build_ip4(buf, "10.8.0.2", "192.168.60.9", 1, 84);

	assert_int_equal(pkt_addrs(buf, len, &src, &dst), 0);
	assert_int_equal(src.family, AF_INET);
	assert_int_equal(dst.family, AF_INET);
	assert_addr_is(&src, "10.8.0.2");
	assert_addr_is(&dst, "192.168.60.9");

	/* Options: IHL 6 makes a 24-byte header. */
	len = build_ip4(buf, "10.0.0.1", "10.0.0.2", 17, 32);
	buf[0] = 0x46;
	assert_int_equal(pkt_addrs(buf, len, &src, &dst), 0);
	assert_addr_is(&dst, "10.0.0.2");

	/* A header alone, and a buffer longer than the datagram, are fine. */
	len = build_ip4(buf, "10.0.0.1", "10.0.0.2", 6, 20);
	assert_int_equal(pkt_addrs(buf, 20, &src, &dst), 0);
	assert_int_equal(pkt_addrs(buf, 60, &src, &dst), 0);
}

static void test_pkt_addrs_v6(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct ip_addr src, dst;
	size_t len = build_ip6(buf, "fd00:8::2", "2001:db8::1", 58, 16);

	assert_int_equal(pkt_addrs(buf, len, &src, &dst), 0);
	assert_int_equal(src.family, AF_INET6);
	assert_int_equal(dst.family, AF_INET6);
	assert_addr_is(&src, "fd00:8::2");
	assert_addr_is(&dst, "2001:db8::1");
	len = build_ip6(buf, "::1", "::2", 59, 0);
	assert_int_equal(pkt_addrs(buf, len, &src, &dst), 0);
}

static void test_pkt_addrs_malformed(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct ip_addr src, dst;

	build_ip4(buf, "10.0.0.1", "10.0.0.2", 1, 28);
	assert_int_equal(pkt_addrs(buf, 0, &src, &dst), -EINVAL);
	assert_int_equal(pkt_addrs(buf, 19, &src, &dst), -EINVAL);
	buf[0] = 0x55;
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), -EINVAL);
	buf[0] = 0x05; /* version 0 */
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), -EINVAL);
	buf[0] = 0x44; /* IHL < 5 */
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), -EINVAL);
	buf[0] = 0x48; /* IHL 8 = 32 bytes > 28 */
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), -EINVAL);
	buf[0] = 0x45;
	buf[3] = 29; /* total length one beyond the buffer */
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), -EINVAL);
	buf[3] = 19; /* total length shorter than the header */
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), -EINVAL);
	buf[3] = 28;
	assert_int_equal(pkt_addrs(buf, 28, &src, &dst), 0);

	build_ip6(buf, "fd00::1", "fd00::2", 17, 8);
	assert_int_equal(pkt_addrs(buf, 39, &src, &dst), -EINVAL);
	assert_int_equal(pkt_addrs(buf, 47, &src, &dst), -EINVAL); /* payload beyond */
	buf[0] = 0x50;
	assert_int_equal(pkt_addrs(buf, 48, &src, &dst), -EINVAL);
	buf[0] = 0x40; /* an IPv4 version nibble on 48 bytes of IPv6 */
	assert_int_equal(pkt_addrs(buf, 48, &src, &dst), -EINVAL);
	buf[0] = 0x60;
	assert_int_equal(pkt_addrs(buf, 48, &src, &dst), 0);
}

/* Every truncation of a good header, each in a buffer of exactly that size (ASan sees over-reads). */
static void test_pkt_addrs_truncated(void **state)
{
	(void)state;
	uint8_t v4[20], v6[40];
	struct ip_addr src, dst;

	build_ip4(v4, "10.0.0.1", "10.0.0.2", 1, 20);
	build_ip6(v6, "fd00::1", "fd00::2", 59, 0);
	for (size_t n = 1; n < 40; n++) {
		uint8_t *cut = malloc(n);

		assert_non_null(cut);
		if (n < 20) {
			memcpy(cut, v4, n);
			if (pkt_addrs(cut, n, &src, &dst) != -EINVAL)
				fail_msg("IPv4 header cut to %zu bytes accepted", n);
		}
		memcpy(cut, v6, n);
		if (pkt_addrs(cut, n, &src, &dst) != -EINVAL)
			fail_msg("IPv6 header cut to %zu bytes accepted", n);
		free(cut);
	}
}

static void test_pkt_describe(void **state)
{
	(void)state;
	uint8_t buf[128];
	char out[128];
	size_t len = build_ip4(buf, "10.8.0.2", "10.9.0.1", 1, 84);

	pkt_describe(buf, len, out, sizeof(out));
	assert_string_equal(out, "10.8.0.2 > 10.9.0.1 icmp len 84");

	len = build_ip4(buf, "10.8.0.2", "10.9.0.1", 6, 60);
	pkt_describe(buf, len, out, sizeof(out));
	assert_true(strncmp(out, "10.8.0.2 > 10.9.0.1 tcp", 23) == 0);
	assert_non_null(strstr(out, "60"));

	len = build_ip6(buf, "fd00::2", "fd00::1", 17, 16);
	pkt_describe(buf, len, out, sizeof(out));
	assert_true(strncmp(out, "fd00::2 > fd00::1 udp", 21) == 0);
	assert_non_null(strstr(out, "56"));
}

static void test_pkt_describe_malformed(void **state)
{
	(void)state;
	uint8_t buf[128];
	char out[64];
	size_t len = build_ip4(buf, "10.8.0.2", "10.9.0.1", 1, 84);

	/* Malformed input still gives a terminated line that names no address. */
	buf[0] = 0x55;
	pkt_describe(buf, len, out, sizeof(out));
	assert_true(strlen(out) > 0);
	assert_null(strstr(out, "10.8.0.2"));
	pkt_describe(buf, 3, out, sizeof(out));
	assert_true(strlen(out) > 0);
	pkt_describe(buf, 0, out, sizeof(out));
	assert_true(strlen(out) > 0);

	/* A short output buffer is cut, never overrun. */
	buf[0] = 0x45;
	memset(out, 'X', sizeof(out));
	pkt_describe(buf, len, out, 10);
	assert_true(memchr(out, '\0', 10) != NULL);
	for (size_t i = 10; i < sizeof(out); i++)
		assert_int_equal(out[i], 'X');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4),
		cmocka_unit_test(test_parse_v6),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_bounds),
		cmocka_unit_test(test_host_bits),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_overlaps),
		cmocka_unit_test(test_table_lpm),
		cmocka_unit_test(test_table_host_and_v6),
		cmocka_unit_test(test_table_get_exact),
		cmocka_unit_test(test_network_and_host),
		cmocka_unit_test(test_table_families_apart),
		cmocka_unit_test(test_table_duplicate),
		cmocka_unit_test(test_table_remove_value),
		cmocka_unit_test(test_table_repeated_lookup),
		cmocka_unit_test(test_table_thousand),
		cmocka_unit_test(test_pkt_addrs_v4),
		cmocka_unit_test(test_pkt_addrs_v6),
		cmocka_unit_test(test_pkt_addrs_malformed),
		cmocka_unit_test(test_equal_covers),
		cmocka_unit_test(test_from_sockaddr_and_unmap),
		cmocka_unit_test(test_pkt_addrs_truncated),
		cmocka_unit_test(test_pkt_describe),
		cmocka_unit_test(test_pkt_describe_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
