// SPDX-License-Identifier: MIT
/* Unit tests of base/icmperr.h: the administratively-prohibited and too-big answers, and when there is none. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "../../base/gso.h"
#include "../../base/icmperr.h"

/* A 28-byte IPv4 UDP packet (or ICMP with proto 1) from src to dst. */
static size_t v4_packet(uint8_t *p, const char *src, const char *dst, uint8_t proto, uint8_t l4_first)
{
	memset(p, 0, 28);
	p[0] = 0x45;
	p[3] = 28;
	p[8] = 64;
	p[9] = proto;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	p[20] = l4_first;
	return 28;
}

static size_t v6_packet(uint8_t *p, const char *src, const char *dst, uint8_t next, uint8_t l4_first)
{
	memset(p, 0, 48);
	p[0] = 0x60;
	p[5] = 8;
	p[6] = next;
	p[7] = 64;
	inet_pton(AF_INET6, src, p + 8);
	inet_pton(AF_INET6, dst, p + 24);
	p[40] = l4_first;
	return 48;
}

static void test_v4_answer(void **state)
{
	uint8_t in[64], out[ICMPERR_MAX], want[4];
	size_t n;

	(void)state;
	v4_packet(in, "10.102.0.2", "10.8.0.2", IPPROTO_UDP, 0);
	n = icmperr_prohibited(in, 28, out);
	assert_int_equal(n, 20 + 8 + 28);
	assert_int_equal(out[9], IPPROTO_ICMP);
	assert_int_equal(out[20], 3);
	assert_int_equal(out[21], ICMPERR_V4_CODE_PROHIBITED);
	inet_pton(AF_INET, "10.8.0.2", want);
	assert_memory_equal(out + 12, want, 4); /* from the peer's address */
	inet_pton(AF_INET, "10.102.0.2", want);
	assert_memory_equal(out + 16, want, 4);
	assert_memory_equal(out + 28, in, 28);
	assert_int_equal(pkt_inet_csum(NULL, 0, out, 20), 0);
	assert_int_equal(pkt_inet_csum(NULL, 0, out + 20, n - 20), 0);
}

static void test_v4_no_answer(void **state)
{
	uint8_t in[64], out[ICMPERR_MAX];

	(void)state;
	v4_packet(in, "10.102.0.2", "10.8.0.2", IPPROTO_ICMP, 3); /* an error itself */
	assert_int_equal(icmperr_prohibited(in, 28, out), 0);
	v4_packet(in, "10.102.0.2", "10.8.0.2", IPPROTO_ICMP, 8); /* echo request: answered */
	assert_int_not_equal(icmperr_prohibited(in, 28, out), 0);
	v4_packet(in, "127.0.0.1", "10.8.0.2", IPPROTO_UDP, 0);
	assert_int_equal(icmperr_prohibited(in, 28, out), 0);
	v4_packet(in, "10.102.0.2", "224.0.0.9", IPPROTO_UDP, 0);
	assert_int_equal(icmperr_prohibited(in, 28, out), 0);
	v4_packet(in, "10.102.0.2", "10.8.0.2", IPPROTO_UDP, 0);
	in[7] = 1; /* fragment offset 8 */
	assert_int_equal(icmperr_prohibited(in, 28, out), 0);
	v4_packet(in, "10.102.0.2", "10.8.0.2", IPPROTO_UDP, 0);
	assert_int_equal(icmperr_prohibited(in, 27, out), 0); /* cut short */
}

static void test_v4_quote_capped(void **state)
{
	uint8_t in[1500] = { 0 }, out[ICMPERR_MAX];

	(void)state;
	v4_packet(in, "10.102.0.2", "10.8.0.2", IPPROTO_UDP, 0);
	in[2] = 1500 >> 8;
	in[3] = 1500 & 0xff;
	assert_int_equal(icmperr_prohibited(in, sizeof(in), out), ICMPERR_V4_MAX);
}

static void test_v6_answer(void **state)
{
	uint8_t in[64], out[ICMPERR_MAX], pseudo[40] = { 0 };
	size_t n;

	(void)state;
	v6_packet(in, "fd02::2", "fd08::2", IPPROTO_UDP, 0);
	n = icmperr_prohibited(in, 48, out);
	assert_int_equal(n, 40 + 8 + 48);
	assert_int_equal(out[6], IPPROTO_ICMPV6);
	assert_int_equal(out[40], 1);
	assert_int_equal(out[41], ICMPERR_V6_CODE_PROHIBITED);
	assert_memory_equal(out + 8, in + 24, 16);
	assert_memory_equal(out + 24, in + 8, 16);
	memcpy(pseudo, out + 8, 32);
	pseudo[35] = (uint8_t)(n - 40);
	pseudo[39] = IPPROTO_ICMPV6;
	assert_int_equal(pkt_inet_csum(pseudo, sizeof(pseudo), out + 40, n - 40), 0);
}

static void test_v6_no_answer(void **state)
{
	uint8_t in[64], out[ICMPERR_MAX];

	(void)state;
	v6_packet(in, "fd02::2", "fd08::2", IPPROTO_ICMPV6, 1); /* an error itself */
	assert_int_equal(icmperr_prohibited(in, 48, out), 0);
	v6_packet(in, "fd02::2", "fd08::2", IPPROTO_ICMPV6, 128); /* echo request */
	assert_int_not_equal(icmperr_prohibited(in, 48, out), 0);
	v6_packet(in, "::", "fd08::2", IPPROTO_UDP, 0);
	assert_int_equal(icmperr_prohibited(in, 48, out), 0);
	v6_packet(in, "fd02::2", "ff02::1", IPPROTO_UDP, 0);
	assert_int_equal(icmperr_prohibited(in, 48, out), 0);
	/* A fragment header, offset 8: not the first fragment. */
	v6_packet(in, "fd02::2", "fd08::2", 44, IPPROTO_UDP);
	in[43] = 8;
	assert_int_equal(icmperr_prohibited(in, 48, out), 0);
	in[43] = 0; /* the first fragment is answered */
	assert_int_not_equal(icmperr_prohibited(in, 48, out), 0);
}

/* An IPv4 UDP packet of len bytes (header's total length too), DF set or not. */
static void v4_big(uint8_t *p, size_t len, bool df)
{
	memset(p, 0xab, len);
	v4_packet(p, "10.8.0.2", "10.102.0.2", IPPROTO_UDP, 0);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[6] = df ? 0x40 : 0;
}

static void v6_big(uint8_t *p, size_t len, uint8_t next, uint8_t l4_first)
{
	memset(p, 0xab, len);
	v6_packet(p, "fd08::2", "fd02::2", next, l4_first);
	p[4] = (uint8_t)((len - 40) >> 8);
	p[5] = (uint8_t)(len - 40);
}

static void test_exceeds(void **state)
{
	uint8_t in[1500];

	(void)state;
	v4_big(in, 1441, true);
	assert_true(icmperr_exceeds(in, 1441, 1440));
	assert_false(icmperr_exceeds(in, 1440, 1440));
	v4_big(in, 1500, false); /* no DF: the sender allows fragments */
	assert_false(icmperr_exceeds(in, 1500, 1440));
	v6_big(in, 1421, IPPROTO_UDP, 0);
	assert_true(icmperr_exceeds(in, 1421, 1420));
	assert_false(icmperr_exceeds(in, 1420, 1420));
	v6_big(in, 1280, IPPROTO_UDP, 0); /* IPv6's minimum MTU always goes */
	assert_false(icmperr_exceeds(in, 1280, 1000));
	assert_false(icmperr_exceeds(in, 19, 10));
}

static void test_v4_frag_needed(void **state)
{
	uint8_t in[1500], out[ICMPERR_MAX];
	size_t n, quote = ICMPERR_V4_MAX - 28;

	(void)state;
	v4_big(in, sizeof(in), true);
	n = icmperr_too_big(in, sizeof(in), 1440, out);
	assert_int_equal(n, ICMPERR_V4_MAX);
	assert_int_equal(out[20], 3);
	assert_int_equal(out[21], ICMPERR_V4_CODE_FRAG_NEEDED);
	assert_int_equal(out[24] << 8 | out[25], 0); /* unused */
	assert_int_equal(out[26] << 8 | out[27], 1440); /* next-hop MTU */
	assert_memory_equal(out + 12, in + 16, 4);
	assert_memory_equal(out + 16, in + 12, 4);
	assert_memory_equal(out + 28, in, quote); /* the packet's start, header and all */
	assert_int_equal(pkt_inet_csum(NULL, 0, out, 20), 0);
	assert_int_equal(pkt_inet_csum(NULL, 0, out + 20, n - 20), 0);
}

static void test_v6_packet_too_big(void **state)
{
	uint8_t in[1500], out[ICMPERR_MAX], pseudo[40] = { 0 };
	size_t n;

	(void)state;
	v6_big(in, sizeof(in), IPPROTO_UDP, 0);
	n = icmperr_too_big(in, sizeof(in), 1420, out);
	assert_int_equal(n, ICMPERR_V6_MAX);
	assert_int_equal(out[40], 2);
	assert_int_equal(out[41], 0);
	assert_int_equal((uint32_t)out[44] << 24 | (uint32_t)out[45] << 16 | out[46] << 8 | out[47], 1420);
	assert_memory_equal(out + 8, in + 24, 16);
	assert_memory_equal(out + 24, in + 8, 16);
	assert_memory_equal(out + 48, in, ICMPERR_V6_MAX - 48);
	memcpy(pseudo, out + 8, 32);
	pseudo[34] = (uint8_t)((n - 40) >> 8);
	pseudo[35] = (uint8_t)(n - 40);
	pseudo[39] = IPPROTO_ICMPV6;
	assert_int_equal(pkt_inet_csum(pseudo, sizeof(pseudo), out + 40, n - 40), 0);
	/* Below IPv6's minimum the error says 1280, which any IPv6 link carries. */
	n = icmperr_too_big(in, sizeof(in), 1000, out);
	assert_int_equal(out[46] << 8 | out[47], ICMPERR_V6_MIN_MTU);
}

static void test_too_big_no_answer(void **state)
{
	uint8_t in[1500], out[ICMPERR_MAX];

	(void)state;
	v4_big(in, sizeof(in), true);
	in[9] = IPPROTO_ICMP;
	in[20] = 3; /* an error itself */
	assert_int_equal(icmperr_too_big(in, sizeof(in), 1440, out), 0);
	in[20] = 8; /* echo request: answered */
	assert_int_not_equal(icmperr_too_big(in, sizeof(in), 1440, out), 0);
	v4_big(in, sizeof(in), true);
	inet_pton(AF_INET, "127.0.0.1", in + 12); /* from no single host */
	assert_int_equal(icmperr_too_big(in, sizeof(in), 1440, out), 0);
	v6_big(in, sizeof(in), IPPROTO_ICMPV6, 2); /* a packet-too-big itself */
	assert_int_equal(icmperr_too_big(in, sizeof(in), 1420, out), 0);
	v6_big(in, sizeof(in), IPPROTO_UDP, 0);
	inet_pton(AF_INET6, "ff02::1", in + 24);
	assert_int_equal(icmperr_too_big(in, sizeof(in), 1420, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_answer),
		cmocka_unit_test(test_v4_no_answer),
		cmocka_unit_test(test_v4_quote_capped),
		cmocka_unit_test(test_v6_answer),
		cmocka_unit_test(test_v6_no_answer),
		cmocka_unit_test(test_exceeds),
		cmocka_unit_test(test_v4_frag_needed),
		cmocka_unit_test(test_v6_packet_too_big),
		cmocka_unit_test(test_too_big_no_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
