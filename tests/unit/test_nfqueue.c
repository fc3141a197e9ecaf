// SPDX-License-Identifier: MIT
/* Unit tests of the nfqueue frontend's pure parts: offload metadata, rule text, owner comments (nfkit/tagrules). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../base/gso.h"
#include "../../nfqueue/nfq.h"
#include "../../nfqueue/nfqueue.h"
#include "policy_fixture.h"

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* IPv4 + TCP (32-byte header, timestamps) with payload bytes, addresses set. */
static size_t build_v4_tcp(uint8_t *buf, size_t payload)
{
	size_t len = 20 + 32 + payload;

	memset(buf, 0, len);
	buf[0] = 0x45;
	wr16(buf + 2, (uint16_t)len);
	buf[8] = 64;
	buf[9] = IPPROTO_TCP;
	memcpy(buf + 12, (uint8_t[]){ 10, 8, 0, 2 }, 4);
	memcpy(buf + 16, (uint8_t[]){ 10, 102, 0, 2 }, 4);
	buf[20 + 12] = 8 << 4; /* data offset: 32 bytes */
	for (size_t i = 0; i < payload; i++)
		buf[52 + i] = (uint8_t)(i * 7);
	return len;
}

/* A full IPv4 TCP/UDP checksum verifies to 0, pseudo-header included. */
static bool v4_l4_csum_ok(const uint8_t *ip, size_t len, size_t l4)
{
	const uint8_t pseudo[12] = { ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19],
				     0, ip[9], (uint8_t)((len - l4) >> 8), (uint8_t)(len - l4) };

	return pkt_inet_csum(pseudo, sizeof(pseudo), ip + l4, len - l4) == 0;
}

static void test_plain_packet(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct pkt p = { .data = buf, .len = (uint32_t)build_v4_tcp(buf, 10) };

	assert_true(nfq_offload_from_skbinfo(&p, 0, 1500));
	assert_true(pkt_is_plain(&p));
}

static void test_partial_tcp(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct pkt p = { .data = buf, .len = (uint32_t)build_v4_tcp(buf, 10) };

	assert_true(nfq_offload_from_skbinfo(&p, NFQA_SKB_CSUMNOTREADY, 1500));
	assert_int_equal(p.off.flags, PKT_F_NEEDS_CSUM);
	assert_int_equal(p.off.gso_type, PKT_GSO_NONE);
	assert_int_equal(p.off.csum_start, 20);
	assert_int_equal(p.off.csum_offset, 16);
}

static void test_gso_tcp(void **state)
{
	(void)state;
	static uint8_t buf[20 + 32 + 4 * 1448];
	struct pkt p = { .data = buf, .len = (uint32_t)build_v4_tcp(buf, 4 * 1448) };

	assert_true(nfq_offload_from_skbinfo(&p, NFQA_SKB_GSO | NFQA_SKB_CSUMNOTREADY, 1500));
	assert_int_equal(p.off.gso_type, PKT_GSO_TCPV4);
	assert_int_equal(p.off.hdr_len, 52);
	/* MTU - IP header - TCP header with options. */
	assert_int_equal(p.off.gso_size, 1448);
	assert_int_equal(p.off.flags, PKT_F_NEEDS_CSUM);
}

/* No segment beyond the MTU: a GSO packet of one segment needs only its checksum. */
static void test_gso_single_segment(void **state)
{
	(void)state;
	uint8_t buf[20 + 32 + 1000];
	struct pkt p = { .data = buf, .len = (uint32_t)build_v4_tcp(buf, 1000) };

	assert_true(nfq_offload_from_skbinfo(&p, NFQA_SKB_GSO | NFQA_SKB_CSUMNOTREADY, 1500));
	assert_int_equal(p.off.gso_type, PKT_GSO_NONE);
	assert_int_equal(p.off.flags, PKT_F_NEEDS_CSUM);
}

/* GRO'd, checksum already complete: rewritten to the partial form, which then completes right. */
static void test_gso_complete_checksum(void **state)
{
	(void)state;
	uint8_t buf[20 + 32 + 100];
	struct pkt p = { .data = buf, .len = (uint32_t)build_v4_tcp(buf, 100) };

	assert_true(nfq_offload_from_skbinfo(&p, NFQA_SKB_GSO, 1500));
	assert_int_equal(p.off.flags, PKT_F_NEEDS_CSUM);
	assert_int_equal(pkt_finish_csum(p.data, p.len, &p.off), 0);
	assert_true(v4_l4_csum_ok(p.data, p.len, 20));
}

static void test_v6_udp_after_hop_by_hop(void **state)
{
	(void)state;
	uint8_t buf[40 + 8 + 8 + 4] = { 0 };
	struct pkt p = { .data = buf, .len = sizeof(buf) };

	buf[0] = 0x60;
	wr16(buf + 4, 8 + 8 + 4);
	buf[6] = 0;             /* hop-by-hop options */
	buf[40] = IPPROTO_UDP;  /* its next header */
	buf[41] = 0;            /* 8 bytes */
	assert_true(nfq_offload_from_skbinfo(&p, NFQA_SKB_CSUMNOTREADY, 1500));
	assert_int_equal(p.off.csum_start, 48);
	assert_int_equal(p.off.csum_offset, 6);
}

static void test_undescribable(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct pkt p = { .data = buf, .len = (uint32_t)build_v4_tcp(buf, 10) };

	buf[9] = IPPROTO_UDP; /* UDP GSO has no pkt_gso_type */
	assert_false(nfq_offload_from_skbinfo(&p, NFQA_SKB_GSO | NFQA_SKB_CSUMNOTREADY, 1500));
	buf[9] = IPPROTO_SCTP; /* a partial checksum we do not know */
	assert_false(nfq_offload_from_skbinfo(&p, NFQA_SKB_CSUMNOTREADY, 1500));
	buf[9] = IPPROTO_TCP;
	p.len = 30;            /* TCP header cut off */
	assert_false(nfq_offload_from_skbinfo(&p, NFQA_SKB_CSUMNOTREADY, 1500));
}

/* ---- rule text ---- */

struct rules_fixture {
	struct ip_prefix routes[2];
	struct selector sel[2];
	struct frontend_config cfg;
	struct nfq_rules_params params;
};

static void fixture(struct rules_fixture *f, enum frontend_role role)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(prefix_parse("10.102.0.0/24", &f->routes[0]), 0);
	assert_int_equal(prefix_parse("fd02::/64", &f->routes[1]), 0);
	f->cfg.role = role;
	f->cfg.routes = f->routes;
	f->cfg.route_count = 2;
	assert_int_equal(prefix_parse_host("10.8.0.2/24", &f->cfg.addresses[0]), 0);
	f->cfg.address_count = 1;
	f->params = (struct nfq_rules_params){ .cfg = &f->cfg, .queue_first = 100,
					       .queue_count = 1 };
}

static void add_selector(struct rules_fixture *f, const char *text)
{
	char err[128];

	assert_int_equal(selector_parse(text, &f->sel[f->cfg.selector_count], err, sizeof(err)), 0);
	f->cfg.selectors = f->sel;
	f->cfg.selector_count++;
}

static void test_ipt_client_default(void **state)
{
	(void)state;
	struct rules_fixture f;
	char *text;

	fixture(&f, FRONTEND_CLIENT);
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET);
	assert_non_null(text);
	assert_non_null(strstr(text, ":TUNLAB-42-OUT - [0:0]\n:TUNLAB-42-PRE - [0:0]\n"));
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -m mark --mark 0x7475 -j RETURN\n"));
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -d 10.102.0.0/24 -j NFQUEUE --queue-num 100\n"));
	assert_non_null(strstr(text, "-A TUNLAB-42-PRE -d 10.102.0.0/24 -j NFQUEUE --queue-num 100\n"));
	assert_non_null(strstr(text, "-I OUTPUT 1 -m comment --comment \"tunlab:pid=42 addr=10.8.0.2\" "
				     "-j TUNLAB-42-OUT\n"));
	assert_null(strstr(text, "fd02::"));   /* IPv6 goes to ip6tables */
	assert_null(strstr(text, "--queue-bypass"));
	free(text);
}

static void test_ipt_selectors(void **state)
{
	(void)state;
	struct rules_fixture f;
	char *text;

	fixture(&f, FRONTEND_CLIENT);
	add_selector(&f, "proto=tcp,dport=5201-5210,uid=1000");
	add_selector(&f, "proto=icmp,src=10.8.0.0/24,mark=0x10");
	f.params.queue_count = 2;
	f.params.fail_open = true;
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET);
	assert_non_null(text);
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -d 10.102.0.0/24 -p tcp --dport 5201:5210 "
				     "-m owner --uid-owner 1000 -j NFQUEUE --queue-balance 100:101 "
				     "--queue-bypass\n"));
	/* A forwarded packet has no owner: no uid rule in PRE. */
	assert_null(strstr(text, "-A TUNLAB-42-PRE -d 10.102.0.0/24 -p tcp"));
	assert_non_null(strstr(text, "-A TUNLAB-42-PRE -d 10.102.0.0/24 -s 10.8.0.0/24 -p icmp "
				     "-m mark --mark 0x10 -j NFQUEUE"));
	free(text);

	/* proto=icmp cannot match IPv6; only the TCP selector is left there. */
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET6);
	assert_non_null(text);
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -d fd02::/64 -p tcp --dport 5201:5210"));
	assert_null(strstr(text, "icmp"));
	free(text);
}

static void test_server_relays(void **state)
{
	(void)state;
	struct rules_fixture f;
	char *text;

	fixture(&f, FRONTEND_SERVER);
	text = nfq_rules_text(&f.params, 7, NFQ_BACKEND_IPTABLES, AF_INET);
	assert_non_null(text);
	assert_null(strstr(text, "--mark 0x7475")); /* relayed packets are stolen again */
	free(text);
}

/* The inner address inside a remote prefix stays local. */
static void test_inner_address_excluded(void **state)
{
	(void)state;
	struct rules_fixture f;
	char *text;

	fixture(&f, FRONTEND_CLIENT);
	assert_int_equal(prefix_parse("10.8.0.0/24", &f.routes[0]), 0);
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET);
	assert_non_null(text);
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -d 10.8.0.2 -j RETURN\n"));
	free(text);

	/* The IPv6 one in ip6tables' rules, each family only its own. */
	assert_int_equal(prefix_parse("fd08::/64", &f.routes[1]), 0);
	assert_int_equal(prefix_parse_host("fd08::2/64", &f.cfg.addresses[1]), 0);
	f.cfg.address_count = 2;
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET6);
	assert_non_null(text);
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -d fd08::2 -j RETURN\n"));
	assert_non_null(strstr(text, "-A TUNLAB-42-PRE -d fd08::2 -j RETURN\n"));
	assert_null(strstr(text, "-d 10.8.0.2 -j RETURN"));
	free(text);
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_NFT, 0);
	assert_non_null(text);
	assert_non_null(strstr(text, "\t\tip daddr 10.8.0.2 return\n"));
	assert_non_null(strstr(text, "\t\tip6 daddr fd08::2 return\n"));
	free(text);
}

static void test_nft_text(void **state)
{
	(void)state;
	struct rules_fixture f;
	char *text;

	fixture(&f, FRONTEND_CLIENT);
	add_selector(&f, "proto=tcp,dport=5201-5210");
	f.params.queue_count = 2;
	f.params.fail_open = true;
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_NFT, 0);
	assert_non_null(text);
	assert_non_null(strstr(text, "table inet tunlab_42 {\n\tcomment \"tunlab:pid=42 addr=10.8.0.2\"\n"));
	assert_non_null(strstr(text, "type filter hook output priority raw; policy accept;\n"
				     "\t\tmeta mark 0x7475 return\n"));
	assert_non_null(strstr(text, "\t\tip daddr 10.102.0.0/24 meta l4proto 6 th dport 5201-5210 "
				     "queue num 100-101 bypass\n"));
	assert_non_null(strstr(text, "\t\tip6 daddr fd02::/64 meta l4proto 6"));
	free(text);
}

/* The list's lines in this order, each present: first match wins only if the order holds. */
static void assert_in_order(const char *text, const char *const *lines, size_t n)
{
	const char *at = text;

	for (size_t i = 0; i < n; i++) {
		const char *found = strstr(at, lines[i]);

		if (!found)
			fail_msg("expected, after line %zu of the list,\n  %s\nin\n%s", i, lines[i], text);
		at = found + strlen(lines[i]);
	}
}

/* The shared policy: one rule per entry, in order, protect to the queue, bypass RETURN, discard DROP. */
static void test_policy_rules(void **state)
{
	static const char *const out_v4[] = {
		"-A TUNLAB-42-OUT -d 10.102.0.9/32 -j RETURN\n",
		"-A TUNLAB-42-OUT -d 10.102.0.0/24 -p tcp --dport 5201 -j NFQUEUE --queue-num 100\n",
		"-A TUNLAB-42-OUT -d 10.102.0.0/24 -p udp -j DROP\n",
		"-A TUNLAB-42-OUT -d 10.102.0.0/24 -j NFQUEUE --queue-num 100\n",
		"-A TUNLAB-42-PRE -d 10.102.0.9/32 -j RETURN\n",
	};
	static const char *const nft[] = {
		"\t\tip daddr 10.102.0.9/32 return\n",
		"\t\tip daddr 10.102.0.0/24 meta l4proto 6 th dport 5201 queue num 100\n",
		"\t\tip daddr 10.102.0.0/24 meta l4proto 17 drop\n",
		"\t\tip daddr 10.102.0.0/24 queue num 100\n",
		"\t\tip6 daddr fd02::/64 meta skuid 1000 queue num 100\n",
	};
	struct rules_fixture f;
	struct ip_prefix routes[8];
	struct policy p;
	char err[256], *text;

	(void)state;
	fixture(&f, FRONTEND_CLIENT);
	policy_fixture_load(policy_fixture_text, &p, routes, &f.cfg);
	assert_int_equal(f.cfg.route_count, 2); /* 10.102.0.0/24 once, fd02::/64 */
	assert_int_equal(policy_check_caps(&p, nfqueue_frontend.policy_keys, nfqueue_frontend.policy_actions,
					   "nfqueue", nfqueue_frontend.policy_why, err, sizeof(err)), 0);
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET);
	assert_non_null(text);
	assert_in_order(text, out_v4, sizeof(out_v4) / sizeof(out_v4[0]));
	free(text);
	/* uid: locally originated only, as with --select. */
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_IPTABLES, AF_INET6);
	assert_non_null(text);
	assert_non_null(strstr(text, "-A TUNLAB-42-OUT -d fd02::/64 -m owner --uid-owner 1000 -j NFQUEUE"));
	assert_null(strstr(text, "-A TUNLAB-42-PRE -d fd02::/64"));
	free(text);
	text = nfq_rules_text(&f.params, 42, NFQ_BACKEND_NFT, 0);
	assert_non_null(text);
	assert_in_order(text, nft, sizeof(nft) / sizeof(nft[0]));
	free(text);
	policy_free(&p);
}

static void test_owner_comment(void **state)
{
	(void)state;
	struct rules_fixture f;
	char text[TAGRULES_COMMENT_MAX];
	struct ip_addr addrs[TAGRULES_ADDR_MAX];
	size_t count;
	long pid;

	fixture(&f, FRONTEND_CLIENT);
	tagrules_owner_comment(f.cfg.addresses, f.cfg.address_count, 4194304, text, sizeof(text));
	assert_string_equal(text, "tunlab:pid=4194304 addr=10.8.0.2");
	assert_true(tagrules_parse_owner_comment("-A OUTPUT -m comment --comment "
						 "\"tunlab:pid=4194304 addr=10.8.0.2\" "
						 "-j TUNLAB-4194304-OUT",
						 &pid, addrs, &count));
	assert_int_equal(pid, 4194304);
	assert_int_equal(count, 1);
	assert_memory_equal(&addrs[0], &f.cfg.addresses[0].addr, sizeof(addrs[0]));
	assert_true(tagrules_parse_owner_comment("--comment tunlab:pid=9 -j X", &pid, addrs, &count));
	assert_int_equal(pid, 9);
	assert_int_equal(count, 0);
	assert_false(tagrules_parse_owner_comment("--comment tunlab:pid=x", &pid, addrs, &count));
	assert_false(tagrules_parse_owner_comment("--comment other", &pid, addrs, &count));
}

/* Both families' inner addresses, the longest case, fit the comment and parse back. */
static void test_owner_comment_two_families(void **state)
{
	(void)state;
	struct ip_prefix inner[2];
	char text[TAGRULES_COMMENT_MAX], line[TAGRULES_COMMENT_MAX + 64];
	struct ip_addr addrs[TAGRULES_ADDR_MAX];
	size_t count;
	long pid;

	assert_int_equal(prefix_parse_host("255.255.255.254/24", &inner[0]), 0);
	assert_int_equal(prefix_parse_host("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.254/64",
					   &inner[1]), 0);
	tagrules_owner_comment(inner, 2, 4194304, text, sizeof(text));
	assert_non_null(strstr(text, "tunlab:pid=4194304 addr=255.255.255.254 addr=ffff:"));
	snprintf(line, sizeof(line), "-A PREROUTING -m comment --comment \"%s\" -j TUNLAB-1-PRE",
		 text);
	assert_true(tagrules_parse_owner_comment(line, &pid, addrs, &count));
	assert_int_equal(pid, 4194304);
	assert_int_equal(count, 2);
	assert_memory_equal(&addrs[0], &inner[0].addr, sizeof(addrs[0]));
	assert_memory_equal(&addrs[1], &inner[1].addr, sizeof(addrs[1]));

	/* A third address (no such comment is written) is not stored past the array. */
	assert_true(tagrules_parse_owner_comment("tunlab:pid=5 addr=10.8.0.2 addr=fd08::2 "
						 "addr=10.8.0.3", &pid, addrs, &count));
	assert_int_equal(count, TAGRULES_ADDR_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_packet),
		cmocka_unit_test(test_partial_tcp),
		cmocka_unit_test(test_gso_tcp),
		cmocka_unit_test(test_gso_single_segment),
		cmocka_unit_test(test_gso_complete_checksum),
		cmocka_unit_test(test_v6_udp_after_hop_by_hop),
		cmocka_unit_test(test_undescribable),
		cmocka_unit_test(test_ipt_client_default),
		cmocka_unit_test(test_ipt_selectors),
		cmocka_unit_test(test_server_relays),
		cmocka_unit_test(test_inner_address_excluded),
		cmocka_unit_test(test_nft_text),
		cmocka_unit_test(test_policy_rules),
		cmocka_unit_test(test_owner_comment),
		cmocka_unit_test(test_owner_comment_two_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
