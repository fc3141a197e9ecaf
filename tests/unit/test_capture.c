// SPDX-License-Identifier: MIT
/* Unit tests of the pcap frontend's pure parts: handles, BPF filters, DROP rules, routes, captured frames. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../capture/cap.h"
#include "../../capture/capture.h"
#include "../../tunbackend/tunbackend.h"
#include "policy_fixture.h"
#include "../../base/gso.h"
#include "../../nfkit/loroutes.h"
#include "../../base/owner.h"
#include "../../base/polroutes.h"
#include "../../base/offload.h"
#include "../../base/sysexec.h"

/* ---- configuration fixtures ---- */

struct fixture {
	struct ip_prefix routes[3];
	struct frontend_config cfg;
};

static void client(struct fixture *f, const char *route4, const char *route6)
{
	memset(f, 0, sizeof(*f));
	f->cfg.role = FRONTEND_CLIENT;
	f->cfg.routes = f->routes;
	if (route4)
		assert_int_equal(prefix_parse(route4, &f->routes[f->cfg.route_count++]), 0);
	if (route6)
		assert_int_equal(prefix_parse(route6, &f->routes[f->cfg.route_count++]), 0);
	assert_int_equal(prefix_parse_host("10.8.0.2/24", &f->cfg.addresses[0]), 0);
	f->cfg.address_count = 1;
	f->cfg.mtu = 1400;
}

/* A server with clients 10.8.0.2/32 and fd08::2/128, address 10.8.0.1. */
static void server(struct fixture *f)
{
	client(f, "10.8.0.2/32", "fd08::2/128");
	f->cfg.role = FRONTEND_SERVER;
	assert_int_equal(prefix_parse_host("10.8.0.1/24", &f->cfg.addresses[0]), 0);
}

/* The same end with an IPv6 inner address too (--address twice). */
static void add_address6(struct fixture *f, const char *address)
{
	assert_int_equal(prefix_parse_host(address, &f->cfg.addresses[f->cfg.address_count++]), 0);
}

static char *filter_of(const struct fixture *f, unsigned handle)
{
	struct cap_plan plan[CAP_HANDLES_MAX];
	unsigned n = cap_plan_for(&f->cfg, plan);

	assert_true(handle < n);
	return cap_filter_text(&f->cfg, &plan[handle]);
}

/* The text compiles with libpcap, plain and behind "inbound" as the kernel gets it. */
static void assert_compiles(const char *text, int dlt)
{
	pcap_t *dead = pcap_open_dead(dlt, CAP_SNAPLEN);
	struct bpf_program prog;
	char inbound[512];

	assert_non_null(dead);
	assert_int_equal(pcap_compile(dead, &prog, text, 1, PCAP_NETMASK_UNKNOWN), 0);
	pcap_freecode(&prog);
	snprintf(inbound, sizeof(inbound), "inbound and (%s)", text);
	assert_int_equal(pcap_compile(dead, &prog, inbound, 1, PCAP_NETMASK_UNKNOWN), 0);
	pcap_freecode(&prog);
	pcap_close(dead);
}

/* ---- handles and filters ---- */

static void test_plan(void **state)
{
	(void)state;
	struct fixture f;
	struct cap_plan plan[CAP_HANDLES_MAX];

	client(&f, "10.102.0.0/24", "fd02::/64");
	assert_int_equal(cap_plan_for(&f.cfg, plan), 1);
	assert_string_equal(plan[0].device, "lo");
	assert_int_equal(plan[0].af, 0);
	assert_true(plan[0].drop_on_lo);

	server(&f);
	assert_int_equal(cap_plan_for(&f.cfg, plan), 2);
	assert_string_equal(plan[0].device, "lo");
	assert_int_equal(plan[0].af, AF_INET);
	/* IPv6 return traffic cannot loop through lo: read where it arrives. */
	assert_string_equal(plan[1].device, "any");
	assert_int_equal(plan[1].af, AF_INET6);
	assert_false(plan[1].drop_on_lo);

	f.cfg.route_count = 1; /* IPv4 clients only */
	assert_int_equal(cap_plan_for(&f.cfg, plan), 1);
}

static void test_filter_client(void **state)
{
	(void)state;
	struct fixture f;
	char *text;

	client(&f, "10.102.0.0/24", "fd02::/64");
	text = filter_of(&f, 0);
	assert_string_equal(text, "(ip or ip6) and (dst net 10.102.0.0/24 or dst net fd02::/64)");
	assert_compiles(text, DLT_EN10MB);
	free(text);
}

/* Traffic to our own inner address inside a routed prefix stays local. */
static void test_filter_inner_excluded(void **state)
{
	(void)state;
	struct fixture f;
	char *text;

	client(&f, "10.8.0.0/24", NULL);
	text = filter_of(&f, 0);
	assert_string_equal(text, "(ip or ip6) and (dst net 10.8.0.0/24) and not dst host 10.8.0.2");
	assert_compiles(text, DLT_EN10MB);
	free(text);

	/* Both families' inner addresses, each excluded where a prefix covers it. */
	client(&f, "10.8.0.0/24", "fd08::/64");
	add_address6(&f, "fd08::2/64");
	text = filter_of(&f, 0);
	assert_string_equal(text, "(ip or ip6) and (dst net 10.8.0.0/24 or dst net fd08::/64) "
				  "and not dst host 10.8.0.2 and not dst host fd08::2");
	assert_compiles(text, DLT_EN10MB);
	free(text);

	/* An IPv6 address no prefix covers is not mentioned. */
	client(&f, "10.102.0.0/24", "fd02::/64");
	add_address6(&f, "fd08::2/64");
	text = filter_of(&f, 0);
	assert_string_equal(text, "(ip or ip6) and (dst net 10.102.0.0/24 or dst net fd02::/64)");
	free(text);
}

static void test_filter_server(void **state)
{
	(void)state;
	struct fixture f;
	char *text;

	server(&f);
	text = filter_of(&f, 0);
	assert_string_equal(text, "ip and (dst net 10.8.0.2/32)");
	assert_compiles(text, DLT_EN10MB);
	free(text);
	text = filter_of(&f, 1);
	assert_string_equal(text, "ip6 and (dst net fd08::2/128)");
	assert_compiles(text, DLT_LINUX_SLL);
	free(text);

	/* IPv6 clients only: the lo handle stays (it injects) and takes nothing. */
	f.routes[0] = f.routes[1];
	f.cfg.route_count = 1;
	text = filter_of(&f, 0);
	assert_string_equal(text, "ip and (less 0)");
	assert_compiles(text, DLT_EN10MB);
	free(text);
}

/* ---- DROP rules ---- */

static char *rules_of(const struct fixture *f, int af, bool *enomem)
{
	struct cap_plan plan[CAP_HANDLES_MAX];
	unsigned n = cap_plan_for(&f->cfg, plan);

	return cap_rules_text(&f->cfg, plan, n, 42, af, enomem);
}

static void test_rules_client(void **state)
{
	(void)state;
	struct fixture f;
	bool enomem;
	char *text;

	client(&f, "10.102.0.0/24", "fd02::/64");
	text = rules_of(&f, AF_INET, &enomem);
	assert_non_null(text);
	assert_string_equal(text, "*raw\n:TUNLAB-42-PCAP - [0:0]\n"
				  "-A TUNLAB-42-PCAP -i lo -d 10.102.0.0/24 -j DROP\n"
				  "-I PREROUTING 1 -m comment --comment \"tunlab:pid=42 addr=10.8.0.2\" "
				  "-j TUNLAB-42-PCAP\nCOMMIT\n");
	free(text);
	text = rules_of(&f, AF_INET6, &enomem);
	assert_non_null(strstr(text, "-A TUNLAB-42-PCAP -i lo -d fd02::/64 -j DROP\n"));
	assert_null(strstr(text, "10.102"));
	free(text);

	/* Both inner addresses: every family's comment records both (cleanup reads either). */
	add_address6(&f, "fd08::2/64");
	text = rules_of(&f, AF_INET6, &enomem);
	assert_non_null(strstr(text, "--comment \"tunlab:pid=42 addr=10.8.0.2 addr=fd08::2\" "
				     "-j TUNLAB-42-PCAP\n"));
	free(text);

	client(&f, "10.102.0.0/24", NULL);
	assert_null(rules_of(&f, AF_INET6, &enomem)); /* no IPv6 prefix: no ip6tables */
	assert_false(enomem);
}

static void test_rules_inner_and_server(void **state)
{
	(void)state;
	struct fixture f;
	bool enomem;
	char *text;

	client(&f, "10.8.0.0/24", NULL);
	text = rules_of(&f, AF_INET, &enomem);
	/* The RETURN comes before the DROP it exempts from. */
	assert_non_null(strstr(text, ":TUNLAB-42-PCAP - [0:0]\n-A TUNLAB-42-PCAP -d 10.8.0.2 -j RETURN\n"
				     "-A TUNLAB-42-PCAP -i lo -d 10.8.0.0/24 -j DROP\n"));
	free(text);

	server(&f);
	text = rules_of(&f, AF_INET, &enomem);
	assert_non_null(strstr(text, "-A TUNLAB-42-PCAP -i lo -d 10.8.0.2/32 -j DROP\n"));
	free(text);
	/* Read on "any": dropped on whatever interface it arrives. */
	text = rules_of(&f, AF_INET6, &enomem);
	assert_non_null(strstr(text, "-A TUNLAB-42-PCAP -d fd08::2/128 -j DROP\n"));
	assert_null(strstr(text, "-i lo"));
	free(text);

	text = cap_rules_remove_text("tunlab:pid=42", 42);
	assert_string_equal(text, "*raw\n-D PREROUTING -m comment --comment \"tunlab:pid=42\" "
				  "-j TUNLAB-42-PCAP\n-F TUNLAB-42-PCAP\n-X TUNLAB-42-PCAP\nCOMMIT\n");
	free(text);
}

/* ---- routes ---- */

static void test_routes_to_lo(void **state)
{
	(void)state;
	struct fixture f;
	struct loroutes_params p;
	char *setup, *teardown;

	client(&f, "10.102.0.0/24", "fd02::/64");
	p = (struct loroutes_params){ .routes = f.cfg.routes, .route_count = f.cfg.route_count,
				      .addresses = f.cfg.addresses,
				      .address_count = f.cfg.address_count,
				      .mode = LOROUTES_TO_LO, .mtu = 1400 };
	assert_int_equal(loroutes_text(&p, &setup, &teardown), 0);
	assert_string_equal(setup, "route prepend 10.102.0.0/24 dev lo src 10.8.0.2 proto 77 mtu 1400\n"
				   "route add local fd02::/64 dev lo table local proto 77 mtu 1400\n");
	/* Every field of the route, src too: cleanup deletes exactly these from the record. */
	assert_string_equal(teardown, "route del 10.102.0.0/24 dev lo src 10.8.0.2 proto 77\n"
				      "route del local fd02::/64 dev lo table local proto 77\n"
				      "addr del 10.8.0.2/32 dev lo\n");
	free(setup);
	free(teardown);

	/* With an IPv6 address too, each family's routes take their own source. */
	add_address6(&f, "fd08::2/64");
	p.address_count = f.cfg.address_count;
	assert_int_equal(loroutes_text(&p, &setup, &teardown), 0);
	assert_string_equal(setup, "route prepend 10.102.0.0/24 dev lo src 10.8.0.2 proto 77 mtu 1400\n"
				   "route add local fd02::/64 dev lo table local src fd08::2 proto 77 "
				   "mtu 1400\n");
	assert_string_equal(teardown, "route del 10.102.0.0/24 dev lo src 10.8.0.2 proto 77\n"
				      "route del local fd02::/64 dev lo table local src fd08::2 proto 77\n"
				      "addr del 10.8.0.2/32 dev lo\n"
				      "addr del fd08::2/128 dev lo\n");
	free(setup);
	free(teardown);
}

/* nfqueue's mode: without a current path every prefix goes to lo, with its family's source. */
static void test_routes_keep_path(void **state)
{
	(void)state;
	struct fixture f;
	struct loroutes_params p;
	char *setup, *teardown;

	client(&f, "10.102.0.0/24", "fd02::/64");
	add_address6(&f, "fd08::2/64");
	p = (struct loroutes_params){ .routes = f.cfg.routes, .route_count = f.cfg.route_count,
				      .addresses = f.cfg.addresses,
				      .address_count = f.cfg.address_count,
				      .mode = LOROUTES_KEEP_PATH };
	assert_int_equal(loroutes_text(&p, &setup, &teardown), 0);
	assert_string_equal(setup, "route prepend 10.102.0.0/24 dev lo src 10.8.0.2 proto 77\n"
				   "route add fd02::/64 dev lo src fd08::2 proto 77 metric 1\n");
	/* The device and metric say which route: a TUN instance's to fd02::/64 has others. */
	assert_non_null(strstr(teardown, "route del fd02::/64 dev lo src fd08::2 proto 77 metric 1\n"));
	assert_non_null(strstr(teardown, "addr del fd08::2/128 dev lo\n"));
	free(setup);
	free(teardown);

	p.address_count = LOROUTES_ADDRESS_MAX + 1;
	assert_int_equal(loroutes_text(&p, &setup, &teardown), -EINVAL);
}

/* protect, bypass and discard by destination: what tun and pcap compile into routes. */
static const char policy_routes_text[] = "bypass  dst=10.102.0.9/32\n"
					 "discard dst=10.102.0.128/25\n"
					 "protect dst=10.102.0.0/24\n"
					 "bypass  dst=10.103.0.0/24\n"
					 "discard dst=fd02::5/128\n"
					 "protect dst=fd02::/64\n";

static void policy_lines(const struct policy *p, const struct route_path *paths, bool v6_local,
			 char **setup, char **teardown)
{
	size_t slen, tlen;
	FILE *s = open_memstream(setup, &slen), *t = open_memstream(teardown, &tlen);

	assert_int_equal(polroutes_lines(p, paths, v6_local, s, t), 0);
	fclose(s);
	fclose(t);
}

/* tun: a blackhole per discard, the old path for a bypass inside a protect prefix, nothing outside one. */
static void test_policy_routes(void **state)
{
	const struct frontend_ops *const ops[] = { &capture_frontend, &tunbackend_frontend };
	struct frontend_config cfg = { .role = FRONTEND_CLIENT };
	struct route_path paths[6] = { [0] = { .unicast = true, .via = "10.1.0.1", .dev = "veth0" } };
	struct ip_prefix routes[8];
	struct policy p;
	char err[256], *setup, *teardown;

	(void)state;
	policy_fixture_load(policy_routes_text, &p, routes, &cfg);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(policy_check_caps(&p, ops[i]->policy_keys, ops[i]->policy_actions, "x",
						   "y", err, sizeof(err)), 0);
	policy_lines(&p, paths, false, &setup, &teardown);
	assert_string_equal(setup, "route prepend 10.102.0.9/32 via 10.1.0.1 dev veth0 proto 77\n"
				   "route prepend blackhole 10.102.0.128/25 proto 77\n"
				   "route add blackhole fd02::5/128 proto 77 metric 1\n");
	assert_string_equal(teardown, "route del 10.102.0.9/32 via 10.1.0.1 dev veth0 proto 77\n"
				      "route del blackhole 10.102.0.128/25 proto 77\n"
				      "route del blackhole fd02::5/128 proto 77 metric 1\n");
	/* The record keeps every line: cleanup deletes exactly these after a kill -9. */
	assert_int_equal(owner_record_check(teardown), 3);
	free(setup);
	free(teardown);

	/* No path before tunlab: unreachable, as the stack said without it. */
	policy_lines(&p, NULL, false, &setup, &teardown);
	assert_non_null(strstr(setup, "route prepend unreachable 10.102.0.9/32 proto 77\n"));
	assert_null(strstr(setup, "10.103.0.0"));
	free(setup);
	free(teardown);
	policy_free(&p);
}

/* pcap: the same routes through loroutes, first; IPv6 in table local, where its protect route is. */
static void test_policy_routes_pcap(void **state)
{
	struct fixture f;
	struct loroutes_params lp;
	struct ip_prefix routes[8];
	struct policy p;
	char *setup, *teardown;

	(void)state;
	client(&f, "10.102.0.0/24", "fd02::/64");
	policy_fixture_load(policy_routes_text, &p, routes, &f.cfg);
	lp = (struct loroutes_params){ .routes = f.cfg.routes, .route_count = f.cfg.route_count,
				       .addresses = f.cfg.addresses, .address_count = f.cfg.address_count,
				       .mode = LOROUTES_TO_LO, .mtu = 1400, .policy = &p };
	assert_int_equal(loroutes_text(&lp, &setup, &teardown), 0);
	assert_string_equal(setup, "route prepend unreachable 10.102.0.9/32 proto 77\n"
				   "route prepend blackhole 10.102.0.128/25 proto 77\n"
				   "route add blackhole fd02::5/128 table local proto 77 metric 1\n"
				   "route prepend 10.102.0.0/24 dev lo src 10.8.0.2 proto 77 mtu 1400\n"
				   "route add local fd02::/64 dev lo table local proto 77 mtu 1400\n");
	assert_non_null(strstr(teardown, "route del blackhole fd02::5/128 table local proto 77 metric 1\n"));
	free(setup);
	free(teardown);
	policy_free(&p);
}

/* ---- captured frames ---- */

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * An Ethernet frame with IPv4 + TCP (32-byte header) and payload bytes,
 * as lo shows it: zero MAC addresses. partial: the checksum field holds
 * the pseudo-header sum (CHECKSUM_PARTIAL); else the complete checksum.
 */
static size_t build_frame(uint8_t *f, size_t payload, bool partial)
{
	uint8_t *ip = f + CAP_ETH_HLEN;
	size_t len = 20 + 32 + payload;
	const uint8_t rest[4] = { 0, IPPROTO_TCP, (uint8_t)((len - 20) >> 8), (uint8_t)(len - 20) };
	uint64_t pseudo;
	uint16_t check;

	memset(f, 0, CAP_ETH_HLEN + len);
	f[12] = 0x08;
	ip[0] = 0x45;
	wr16(ip + 2, (uint16_t)len);
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, (uint8_t[]){ 10, 8, 0, 2, 10, 102, 0, 2 }, 8);
	ip[20 + 12] = 8 << 4;
	for (size_t i = 0; i < payload; i++)
		ip[52 + i] = (uint8_t)(i * 13);
	pseudo = pkt_csum_add(pkt_csum_add(0, ip + 12, 8), rest, sizeof(rest));
	check = partial ? pkt_csum_fold(pseudo)
			: (uint16_t)~pkt_csum_fold(pkt_csum_add(pseudo, ip + 20, len - 20));
	memcpy(ip + 36, &check, 2);
	return CAP_ETH_HLEN + len;
}

/* Routes select by destination only: pcap and tun refuse the shared policy's keys, naming line, key, frontend. */
static void test_policy_refused(void **state)
{
	static const char dst_only[] = "protect dst=10.102.0.0/24\nprotect dst=fd02::/64,uid=1000\n";
	const struct frontend_ops *const ops[] = { &capture_frontend, &tunbackend_frontend };
	struct frontend_config cfg = { .role = FRONTEND_CLIENT };
	struct ip_prefix routes[8];
	struct policy p;
	char err[256], who[32];

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		snprintf(who, sizeof(who), "the %s frontend", ops[i]->name);
		/* Line 1, a bypass by dst alone, is theirs now; line 2's proto is not. */
		policy_fixture_load(policy_fixture_text, &p, routes, &cfg);
		assert_int_equal(policy_check_caps(&p, ops[i]->policy_keys, ops[i]->policy_actions, who,
						   ops[i]->policy_why, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "2: "));
		assert_non_null(strstr(err, who));
		assert_non_null(strstr(err, "cannot express the selector key proto"));
		policy_free(&p);
		policy_fixture_load(dst_only, &p, routes, &cfg);
		assert_int_equal(policy_check_caps(&p, ops[i]->policy_keys, ops[i]->policy_actions, who,
						   ops[i]->policy_why, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "2: "));
		assert_non_null(strstr(err, "cannot express the selector key uid"));
		policy_free(&p);
	}
	/* dst alone, protect alone: what --route always was, and the routes are those dsts. */
	policy_fixture_load("protect dst=10.102.0.0/24\nprotect dst=fd02::/64\n", &p, routes, &cfg);
	assert_int_equal(policy_check_caps(&p, capture_frontend.policy_keys, capture_frontend.policy_actions, "x",
					   "y", err, sizeof(err)), 0);
	assert_int_equal(cfg.route_count, 2);
	policy_free(&p);
}

static void test_take_partial_gso(void **state)
{
	(void)state;
	static uint8_t frame[CAP_ETH_HLEN + 20 + 32 + 40000], slot[CAP_IP_MAX];
	size_t n = build_frame(frame, 40000, true);
	struct pkt p;

	assert_true(offload_csum_is_pseudo(frame + CAP_ETH_HLEN, n - CAP_ETH_HLEN));
	assert_int_equal(cap_take_packet(frame, (uint32_t)n, (uint32_t)n, CAP_ETH_HLEN, slot, 1400,
					 &p), n - CAP_ETH_HLEN);
	assert_ptr_equal(p.data, slot);
	assert_int_equal(p.off.flags, PKT_F_NEEDS_CSUM);
	assert_int_equal(p.off.gso_type, PKT_GSO_TCPV4);
	assert_int_equal(p.off.gso_size, 1400 - 52);
	assert_int_equal(p.off.csum_start, 20);
	assert_int_equal(p.off.csum_offset, 16);
}

static void test_take_plain_and_padded(void **state)
{
	(void)state;
	uint8_t frame[CAP_ETH_HLEN + 20 + 32 + 100 + 8], slot[256];
	size_t n = build_frame(frame, 100, false);
	struct pkt p;

	assert_false(offload_csum_is_pseudo(frame + CAP_ETH_HLEN, n - CAP_ETH_HLEN));
	/* Eight bytes of link padding after the IP packet are not part of it. */
	assert_int_equal(cap_take_packet(frame, (uint32_t)n + 8, (uint32_t)n + 8, CAP_ETH_HLEN, slot,
					 1400, &p), n - CAP_ETH_HLEN);
	assert_true(pkt_is_plain(&p));

	/* A partial checksum at most one MTU long: finished, not segmented. */
	n = build_frame(frame, 100, true);
	assert_int_equal(cap_take_packet(frame, (uint32_t)n, (uint32_t)n, CAP_ETH_HLEN, slot, 1400,
					 &p), n - CAP_ETH_HLEN);
	assert_int_equal(p.off.flags, PKT_F_NEEDS_CSUM);
	assert_int_equal(p.off.gso_type, PKT_GSO_NONE);
	assert_int_equal(pkt_finish_csum(p.data, p.len, &p.off), 0);
	build_frame(frame, 100, false);
	assert_memory_equal(p.data, frame + CAP_ETH_HLEN, p.len);
}

static void test_take_refused(void **state)
{
	(void)state;
	static uint8_t frame[CAP_ETH_HLEN + 20 + 32 + 4000], slot[CAP_IP_MAX];
	size_t n = build_frame(frame, 4000, true);
	uint8_t *ip = frame + CAP_ETH_HLEN;
	struct pkt p;

	/* Cut short by the snapshot length. */
	assert_int_equal(cap_take_packet(frame, (uint32_t)n - 1, (uint32_t)n, CAP_ETH_HLEN, slot,
					 1400, &p), 0);
	/* IP says more than was captured. */
	wr16(ip + 2, (uint16_t)(n - CAP_ETH_HLEN + 1));
	assert_int_equal(cap_take_packet(frame, (uint32_t)n, (uint32_t)n, CAP_ETH_HLEN, slot, 1400,
					 &p), 0);
	/* UDP above the MTU is UDP GSO, which has no pkt_gso_type. */
	n = build_frame(frame, 4000, true);
	ip[9] = IPPROTO_UDP;
	assert_int_equal(cap_take_packet(frame, (uint32_t)n, (uint32_t)n, CAP_ETH_HLEN, slot, 1400,
					 &p), 0);
	/* Not IP at all (ARP's first byte). */
	ip[0] = 0x00;
	assert_int_equal(cap_take_packet(frame, (uint32_t)n, (uint32_t)n, CAP_ETH_HLEN, slot, 1400,
					 &p), 0);
}

static void test_take_v6_cooked(void **state)
{
	(void)state;
	uint8_t frame[16 + 40 + 8 + 4] = { 0 }, slot[128];
	uint8_t *ip = frame + 16;
	struct pkt p;

	ip[0] = 0x60;
	wr16(ip + 4, 8 + 4);
	ip[6] = IPPROTO_UDP;
	ip[7] = 64;
	wr16(ip + 40 + 4, 8 + 4);
	assert_int_equal(cap_take_packet(frame, sizeof(frame), sizeof(frame), 16, slot, 1400, &p),
			 40 + 8 + 4);
	assert_int_equal(p.len, 52);
	/* A payload length of 0 is a jumbogram: refused. */
	wr16(ip + 4, 0);
	assert_int_equal(cap_take_packet(frame, sizeof(frame), sizeof(frame), 16, slot, 1400, &p), 0);
}

/* One field parser for ip's output, as loroutes (paths, addresses) and tunbackend (cleanup) read it. */
static void test_ip_field(void **state)
{
	(void)state;
	char w[32];

	assert_true(sysexec_ip_field("10.9.0.0/24 via 10.0.0.1 dev eth0 proto 77", "dev", w, sizeof(w)));
	assert_string_equal(w, "eth0");
	assert_true(sysexec_ip_field("10.9.0.0/24 dev tunlab12 table 100", "table", w, sizeof(w)));
	assert_string_equal(w, "100");
	/* A whole word only: "dev" inside "mydev" is not the key. */
	assert_false(sysexec_ip_field("x mydev eth0", "dev", w, sizeof(w)));
	/* ip -o ends a line with a backslash: not part of the value. */
	assert_true(sysexec_ip_field("1: lo    inet 10.8.0.2/24 scope host lo\\       valid_lft", "inet", w,
				     sizeof(w)));
	assert_string_equal(w, "10.8.0.2/24");
	assert_true(sysexec_ip_field("a dev eth1\\", "dev", w, sizeof(w)));
	assert_string_equal(w, "eth1");
	assert_false(sysexec_ip_field("10.9.0.0/24 dev", "dev", w, sizeof(w)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_ip_field),
		cmocka_unit_test(test_filter_client),
		cmocka_unit_test(test_filter_inner_excluded),
		cmocka_unit_test(test_filter_server),
		cmocka_unit_test(test_rules_client),
		cmocka_unit_test(test_rules_inner_and_server),
		cmocka_unit_test(test_routes_to_lo),
		cmocka_unit_test(test_routes_keep_path),
		cmocka_unit_test(test_policy_refused),
		cmocka_unit_test(test_policy_routes),
		cmocka_unit_test(test_policy_routes_pcap),
		cmocka_unit_test(test_take_partial_gso),
		cmocka_unit_test(test_take_plain_and_padded),
		cmocka_unit_test(test_take_refused),
		cmocka_unit_test(test_take_v6_cooked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
