// SPDX-License-Identifier: MIT
/* Unit tests of base/reach.h: special ranges, v4 in v6 clothing, exports, local and peer entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "../../base/reach.h"

static struct ip_addr addr(const char *text)
{
	struct ip_addr a;

	if (addr_parse(text, &a) < 0)
		fail_msg("bad address in test: %s", text);
	return a;
}

static struct ip_prefix prefix(const char *text)
{
	struct ip_prefix p;

	if (prefix_parse(text, &p) < 0)
		fail_msg("bad prefix in test: %s", text);
	return p;
}

static void expect_special(const char *text, enum reach_verdict want)
{
	struct ip_addr a = addr(text);
	enum reach_verdict got = reach_special(&a);

	if (got != want)
		fail_msg("%s: got %s, want %s", text, reach_verdict_name(got), reach_verdict_name(want));
}

static void test_special_v4(void **state)
{
	(void)state;
	expect_special("127.0.0.1", REACH_LOOPBACK);
	expect_special("127.255.255.254", REACH_LOOPBACK);
	expect_special("0.0.0.0", REACH_UNSPECIFIED);
	expect_special("0.1.2.3", REACH_UNSPECIFIED);
	expect_special("169.254.169.254", REACH_LINK_LOCAL);
	expect_special("169.254.0.1", REACH_LINK_LOCAL);
	expect_special("224.0.0.1", REACH_MULTICAST);
	expect_special("239.255.255.250", REACH_MULTICAST);
	expect_special("255.255.255.255", REACH_BROADCAST);
	/* Neighbours of the ranges are ordinary. */
	expect_special("126.255.255.255", REACH_OK);
	expect_special("128.0.0.1", REACH_OK);
	expect_special("1.0.0.0", REACH_OK);
	expect_special("169.253.255.255", REACH_OK);
	expect_special("169.255.0.0", REACH_OK);
	expect_special("223.255.255.255", REACH_OK);
	expect_special("10.102.0.2", REACH_OK);
	expect_special("255.255.255.254", REACH_OK);
}

static void test_special_v6(void **state)
{
	(void)state;
	expect_special("::1", REACH_LOOPBACK);
	expect_special("::", REACH_UNSPECIFIED);
	expect_special("fe80::1", REACH_LINK_LOCAL);
	expect_special("febf:ffff::1", REACH_LINK_LOCAL);
	expect_special("ff02::1", REACH_MULTICAST);
	expect_special("ff05::1:3", REACH_MULTICAST);
	expect_special("fec0::1", REACH_OK);
	expect_special("fe7f::1", REACH_OK);
	expect_special("fd02::2", REACH_OK);
	expect_special("2001:db8::1", REACH_OK);
	expect_special("::2", REACH_UNSPECIFIED); /* ::0.0.0.2, compatible form of 0/8 */
}

/* A socket to ::ffff:127.0.0.1 reaches 127.0.0.1: every v4-in-v6 form is the v4 address. */
static void test_special_embedded_v4(void **state)
{
	(void)state;
	expect_special("::ffff:127.0.0.1", REACH_LOOPBACK);
	expect_special("::ffff:0.0.0.0", REACH_UNSPECIFIED);
	expect_special("::ffff:169.254.169.254", REACH_LINK_LOCAL);
	expect_special("::ffff:224.0.0.1", REACH_MULTICAST);
	expect_special("::ffff:255.255.255.255", REACH_BROADCAST);
	expect_special("::ffff:0:127.0.0.1", REACH_LOOPBACK);       /* translated */
	expect_special("::ffff:0:169.254.1.1", REACH_LINK_LOCAL);
	expect_special("::127.0.0.1", REACH_LOOPBACK);              /* compatible */
	expect_special("::224.0.0.251", REACH_MULTICAST);
	expect_special("::ffff:10.102.0.2", REACH_OK);
	expect_special("::10.102.0.2", REACH_OK);
	expect_special("1::ffff:127.0.0.1", REACH_OK);              /* not an embedding */
}

static void test_packet_special(void **state)
{
	(void)state;
	uint8_t ip[20] = { 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 8, 0, 2, 10, 102, 0, 2 };

	assert_int_equal(reach_packet_special(ip, sizeof(ip)), REACH_OK);
	memcpy(ip + 16, (uint8_t[]){ 127, 0, 0, 1 }, 4);
	assert_int_equal(reach_packet_special(ip, sizeof(ip)), REACH_LOOPBACK);
	memcpy(ip + 16, (uint8_t[]){ 10, 102, 0, 2 }, 4);
	memcpy(ip + 12, (uint8_t[]){ 127, 0, 0, 1 }, 4);  /* a loopback source is as bad */
	assert_int_equal(reach_packet_special(ip, sizeof(ip)), REACH_LOOPBACK);
	assert_int_equal(reach_packet_special(ip, 10), REACH_OK); /* unreadable: the caller's */
}

static enum reach_verdict classify(const struct reach_policy *p, const char *text, const void *sender)
{
	struct ip_addr a = addr(text);

	return reach_classify(p, &a, sender);
}

static void test_exports(void **state)
{
	(void)state;
	struct reach_policy *p = reach_new(false);
	struct ip_prefix in4 = prefix("10.102.0.0/24"), in6 = prefix("fd02::/64");

	assert_non_null(p);
	assert_int_equal(reach_allow(p, &in4), 0);
	assert_int_equal(reach_allow(p, &in6), 0);
	assert_int_equal(classify(p, "10.102.0.2", NULL), REACH_OK);
	assert_int_equal(classify(p, "fd02::2", NULL), REACH_OK);
	assert_int_equal(classify(p, "10.102.1.2", NULL), REACH_NOT_EXPORTED);
	assert_int_equal(classify(p, "10.101.0.1", NULL), REACH_NOT_EXPORTED);
	assert_int_equal(classify(p, "fd01::1", NULL), REACH_NOT_EXPORTED);
	assert_int_equal(classify(p, "::ffff:10.102.0.2", NULL), REACH_NOT_EXPORTED);
	assert_int_equal(classify(p, "127.0.0.1", NULL), REACH_LOOPBACK);
	reach_free(p);
}

/* --export 0.0.0.0/0 and ::/0 still never reach the special ranges. */
static void test_export_everything(void **state)
{
	(void)state;
	struct reach_policy *p = reach_new(false);
	struct ip_prefix all4 = prefix("0.0.0.0/0"), all6 = prefix("::/0");
	struct ip_prefix lo = prefix("127.0.0.0/8"), lo1 = prefix("127.0.0.1/32");

	assert_int_equal(reach_allow(p, &all4), 0);
	assert_int_equal(reach_allow(p, &all6), 0);
	assert_int_equal(reach_allow(p, &lo), 0);   /* naming it changes nothing */
	assert_int_equal(reach_allow(p, &lo1), 0);
	assert_int_equal(classify(p, "8.8.8.8", NULL), REACH_OK);
	assert_int_equal(classify(p, "2001:db8::1", NULL), REACH_OK);
	assert_int_equal(classify(p, "127.0.0.1", NULL), REACH_LOOPBACK);
	assert_int_equal(classify(p, "::1", NULL), REACH_LOOPBACK);
	assert_int_equal(classify(p, "0.0.0.0", NULL), REACH_UNSPECIFIED);
	assert_int_equal(classify(p, "::", NULL), REACH_UNSPECIFIED);
	assert_int_equal(classify(p, "169.254.169.254", NULL), REACH_LINK_LOCAL);
	assert_int_equal(classify(p, "fe80::1", NULL), REACH_LINK_LOCAL);
	assert_int_equal(classify(p, "224.0.0.1", NULL), REACH_MULTICAST);
	assert_int_equal(classify(p, "ff02::1", NULL), REACH_MULTICAST);
	assert_int_equal(classify(p, "255.255.255.255", NULL), REACH_BROADCAST);
	assert_int_equal(classify(p, "::ffff:127.0.0.1", NULL), REACH_LOOPBACK);
	assert_int_equal(classify(p, "::ffff:169.254.169.254", NULL), REACH_LINK_LOCAL);
	reach_free(p);
}

/* This host's addresses: refused inside an export, allowed only when named exactly. */
static void test_local_addresses(void **state)
{
	(void)state;
	struct reach_policy *p = reach_new(false);
	struct ip_prefix in4 = prefix("10.102.0.0/24"), inner = prefix("10.8.0.1/32");
	struct ip_addr srv_in = addr("10.102.0.1"), srv_ul = addr("10.101.0.1");
	struct ip_addr srv_inner = addr("10.8.0.1"), bcast = addr("10.102.0.255");

	assert_int_equal(reach_allow(p, &in4), 0);
	assert_int_equal(reach_add_local(p, &srv_in, false), 0);
	assert_int_equal(reach_add_local(p, &srv_ul, false), 0);
	assert_int_equal(reach_add_local(p, &srv_inner, false), 0);
	assert_int_equal(reach_add_local(p, &bcast, true), 0);
	/* glibc gives an address added without "brd" as its own broadcast address. */
	assert_int_equal(reach_add_local(p, &srv_ul, true), 0);
	assert_int_equal(classify(p, "10.102.0.2", NULL), REACH_OK);
	assert_int_equal(classify(p, "10.102.0.1", NULL), REACH_LOCAL);
	assert_int_equal(classify(p, "10.101.0.1", NULL), REACH_LOCAL);
	assert_int_equal(classify(p, "10.102.0.255", NULL), REACH_BROADCAST);
	assert_int_equal(classify(p, "10.8.0.1", NULL), REACH_LOCAL);
	/* --export 10.8.0.1/32 names the server's inner address: reachable, before or after. */
	assert_int_equal(reach_allow(p, &inner), 0);
	assert_int_equal(classify(p, "10.8.0.1", NULL), REACH_OK);
	reach_free(p);
}

static void test_peers(void **state)
{
	(void)state;
	static const int cli, cli2;
	struct ip_prefix all = prefix("10.0.0.0/8"), p1 = prefix("10.8.0.2/32"), p2 = prefix("10.8.0.3/32");
	struct ip_prefix net2 = prefix("192.168.60.0/24");

	for (int p2p = 0; p2p < 2; p2p++) {
		struct reach_policy *p = reach_new(p2p);

		assert_int_equal(reach_allow(p, &all), 0);
		assert_int_equal(reach_add_peer(p, &p1, &cli), 0);
		assert_int_equal(reach_add_peer(p, &p2, &cli2), 0);
		assert_int_equal(reach_add_peer(p, &net2, &cli2), 0);
		/* A peer's prefix inside an export is still the peer's. */
		assert_int_equal(classify(p, "10.8.0.3", &cli), p2p ? REACH_OK : REACH_PEER);
		assert_int_equal(classify(p, "192.168.60.9", &cli), p2p ? REACH_OK : REACH_PEER);
		assert_int_equal(classify(p, "10.8.0.2", &cli2), p2p ? REACH_OK : REACH_PEER);
		/* Its own prefix is never a destination: that would loop. */
		assert_int_equal(classify(p, "10.8.0.2", &cli), REACH_PEER);
		assert_int_equal(classify(p, "10.8.0.9", &cli), REACH_OK);
		assert_int_equal(classify(p, "11.0.0.1", &cli), REACH_NOT_EXPORTED);
		reach_free(p);
	}
}

/*
 * --export ::/0 covers ::ffff:0:0/96, and a socket connected to
 * ::ffff:a.b.c.d reaches a.b.c.d: the IPv4 policy decides the mapped
 * forms (this host, IPv4 networks not exported, peers' IPv4 prefixes).
 */
static void test_mapped_forms_are_ipv4(void **state)
{
	(void)state;
	static const int cli, cli2;
	struct reach_policy *p = reach_new(false);
	struct ip_prefix all6 = prefix("::/0"), in4 = prefix("10.102.0.0/24");
	struct ip_prefix peer4 = prefix("10.8.0.3/32");
	struct ip_addr srv_ul = addr("10.101.0.1");

	assert_int_equal(reach_allow(p, &all6), 0);
	assert_int_equal(reach_allow(p, &in4), 0);
	assert_int_equal(reach_add_local(p, &srv_ul, false), 0);
	assert_int_equal(reach_add_peer(p, &peer4, &cli2), 0);
	assert_int_equal(classify(p, "::ffff:10.101.0.1", &cli), REACH_LOCAL);
	assert_int_equal(classify(p, "::ffff:0:10.101.0.1", &cli), REACH_LOCAL);
	assert_int_equal(classify(p, "::10.101.0.1", &cli), REACH_LOCAL);
	assert_int_equal(classify(p, "::ffff:10.1.2.3", &cli), REACH_NOT_EXPORTED);
	assert_int_equal(classify(p, "::ffff:10.8.0.3", &cli), REACH_PEER);
	assert_int_equal(classify(p, "::ffff:10.102.0.2", &cli), REACH_OK);
	assert_int_equal(classify(p, "2001:db8::1", &cli), REACH_OK);
	reach_free(p);
	/* And never wider than the IPv6 policy: an IPv4 export alone does not reach the v6 form. */
	p = reach_new(false);
	assert_int_equal(reach_allow(p, &in4), 0);
	assert_int_equal(classify(p, "::ffff:10.102.0.2", &cli), REACH_NOT_EXPORTED);
	reach_free(p);
}

/* The client delivers to its own --address only (finding 9). */
static void test_classify_own(void **state)
{
	(void)state;
	struct reach_policy *p = reach_new(false);
	struct ip_prefix routes = prefix("10.102.0.0/24");
	struct ip_addr me = addr("10.8.0.2"), me6 = addr("fd08::2"), ul = addr("10.101.0.2");

	assert_int_equal(reach_allow(p, &routes), 0);
	assert_int_equal(reach_add_own(p, &me), 0);
	assert_int_equal(reach_add_own(p, &me6), 0);
	assert_int_equal(reach_add_local(p, &ul, false), 0);
	assert_int_equal(reach_add_local(p, &me, true), 0); /* glibc's "broadcast" of it */
	assert_int_equal(reach_classify_own(p, &me), REACH_OK);
	assert_int_equal(reach_classify_own(p, &me6), REACH_OK);
	assert_int_equal(reach_classify_own(p, &ul), REACH_LOCAL);
	ul = addr("10.102.0.2"); /* inside the routes, but no address of ours */
	assert_int_equal(reach_classify_own(p, &ul), REACH_NOT_EXPORTED);
	ul = addr("::ffff:10.8.0.2"); /* an IPv6 packet to it goes nowhere we deliver */
	assert_int_equal(reach_classify_own(p, &ul), REACH_NOT_EXPORTED);
	ul = addr("127.0.0.1");
	assert_int_equal(reach_classify_own(p, &ul), REACH_LOOPBACK);
	/* As a source (reach_classify), the own address is still this host's. */
	assert_int_equal(classify(p, "10.8.0.2", NULL), REACH_LOCAL);
	reach_free(p);
}

static void test_verdict_names(void **state)
{
	(void)state;
	assert_string_equal(reach_verdict_name(REACH_LOOPBACK), "loopback");
	assert_string_equal(reach_verdict_name(REACH_LINK_LOCAL), "link_local");
	assert_string_equal(reach_verdict_name(REACH_NOT_EXPORTED), "not_exported");
	for (int v = 0; v < REACH_VERDICT_COUNT; v++)
		assert_non_null(reach_verdict_name(v));
	assert_string_equal(reach_verdict_name(REACH_VERDICT_COUNT), "?");
}

/* Runs as any user: reads this host's interfaces and refuses 127.0.0.1 twice over. */
static void test_host_addresses(void **state)
{
	(void)state;
	struct reach_policy *p = reach_new(false);
	struct ip_prefix all = prefix("0.0.0.0/0");

	assert_int_equal(reach_allow(p, &all), 0);
	assert_int_equal(reach_add_host_addresses(p), 0);
	assert_int_equal(classify(p, "127.0.0.1", NULL), REACH_LOOPBACK);
	assert_int_equal(classify(p, "192.0.2.1", NULL), REACH_OK);
	reach_free(p);
}

static struct sockaddr_storage sockaddr_of(const char *text)
{
	struct sockaddr_storage ss = { 0 };
	struct ip_addr a = addr(text);

	if (a.family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, a.bytes, 4);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, a.bytes, 16);
	}
	return ss;
}

/*
 * A forwarding server owns fd02:: (subnet-router anycast) of its fd02::1/64,
 * which getifaddrs does not list, and the network and broadcast address of
 * its 10.102.0.1/24.
 */
static void test_interface_prefix_addresses(void **state)
{
	(void)state;
	struct sockaddr_storage a6 = sockaddr_of("fd02::1"), m6 = sockaddr_of("ffff:ffff:ffff:ffff::");
	struct sockaddr_storage a4 = sockaddr_of("10.102.0.1"), m4 = sockaddr_of("255.255.255.0");
	struct sockaddr_storage b4 = sockaddr_of("10.102.0.255");
	struct ifaddrs v4 = { .ifa_name = (char *)"veth", .ifa_flags = IFF_BROADCAST,
			      .ifa_addr = (struct sockaddr *)&a4, .ifa_netmask = (struct sockaddr *)&m4,
			      .ifa_broadaddr = (struct sockaddr *)&b4 };
	struct ifaddrs v6 = { .ifa_next = &v4, .ifa_name = (char *)"veth",
			      .ifa_addr = (struct sockaddr *)&a6, .ifa_netmask = (struct sockaddr *)&m6 };
	struct reach_policy *p = reach_new(false);
	struct ip_prefix in4 = prefix("10.102.0.0/24"), in6 = prefix("fd02::/64");

	assert_int_equal(reach_allow(p, &in4), 0);
	assert_int_equal(reach_allow(p, &in6), 0);
	assert_int_equal(reach_add_ifaddrs(p, &v6), 0);
	assert_int_equal(classify(p, "fd02::", NULL), REACH_LOCAL);
	assert_int_equal(classify(p, "fd02::1", NULL), REACH_LOCAL);
	assert_int_equal(classify(p, "fd02::2", NULL), REACH_OK);
	assert_int_equal(classify(p, "10.102.0.0", NULL), REACH_BROADCAST);
	assert_int_equal(classify(p, "10.102.0.255", NULL), REACH_BROADCAST);
	assert_int_equal(classify(p, "10.102.0.1", NULL), REACH_LOCAL);
	assert_int_equal(classify(p, "10.102.0.2", NULL), REACH_OK);
	reach_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_special_v4),
		cmocka_unit_test(test_special_v6),
		cmocka_unit_test(test_special_embedded_v4),
		cmocka_unit_test(test_packet_special),
		cmocka_unit_test(test_exports),
		cmocka_unit_test(test_export_everything),
		cmocka_unit_test(test_local_addresses),
		cmocka_unit_test(test_peers),
		cmocka_unit_test(test_mapped_forms_are_ipv4),
		cmocka_unit_test(test_classify_own),
		cmocka_unit_test(test_verdict_names),
		cmocka_unit_test(test_host_addresses),
		cmocka_unit_test(test_interface_prefix_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
