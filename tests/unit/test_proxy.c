// SPDX-License-Identifier: MIT
/* Unit tests of the proxy frontend: its rule text per family and selector, and the exit's stream budget. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../base/keyhash.h"
#include "../../proxy/proxy.h"
#include "../../proxy/px.h"
#include "policy_fixture.h"

static void assert_has(const char *text, const char *line)
{
	if (!strstr(text, line))
		fail_msg("expected the line\n  %s\nin\n%s", line, text);
}

static void assert_lacks(const char *text, const char *what)
{
	if (strstr(text, what))
		fail_msg("did not expect '%s' in\n%s", what, text);
}

static struct ip_prefix prefix(const char *text)
{
	struct ip_prefix p;

	assert_int_equal(prefix_parse(text, &p), 0);
	return p;
}

/* No selectors: all TCP redirected, UDP marked and TPROXYed, the rest dropped; per family. */
static void test_rules_v4_all(void **state)
{
	(void)state;
	struct ip_prefix routes[] = { prefix("10.102.0.0/24"), prefix("fd02::/64") };
	struct frontend_config cfg = { .role = FRONTEND_CLIENT, .routes = routes, .route_count = 2 };
	struct px_rules_params p = { .cfg = &cfg, .tcp_port = { 4000, 4001 }, .udp_port = { 5000, 5001 } };
	char *text = px_rules_text(&p, 42, AF_INET);

	assert_non_null(text);
	assert_has(text, "*nat\n:TUNLAB-42-PX - [0:0]\n");
	assert_has(text, "-A TUNLAB-42-PX -d 10.102.0.0/24 -p tcp -j REDIRECT --to-ports 4000\n");
	assert_has(text, "-I OUTPUT 1 -m comment --comment \"tunlab:pid=42\" -j TUNLAB-42-PX\n");
	assert_has(text, "-A TUNLAB-42-PXDROP -p tcp -j RETURN\n-A TUNLAB-42-PXDROP -p udp -j RETURN\n"
			 "-A TUNLAB-42-PXDROP -d 10.102.0.0/24 -j DROP\n");
	assert_has(text, "-A TUNLAB-42-PXMARK -d 10.102.0.0/24 -p udp -j MARK --set-xmark 0x7476/0xffffffff\n");
	assert_has(text, "-A TUNLAB-42-PXTP -i lo -p udp -m mark --mark 0x7476 -j TPROXY --on-port 5000 "
			 "--on-ip 127.0.0.1 --tproxy-mark 0x7476/0xffffffff\n");
	assert_has(text, "-I PREROUTING 1 -m comment --comment \"tunlab:pid=42\" -j TUNLAB-42-PXTP\n");
	assert_lacks(text, "fd02::");
	free(text);

	/* IPv6 alike, with its own ports and TPROXY to ::1. */
	text = px_rules_text(&p, 42, AF_INET6);
	assert_non_null(text);
	assert_has(text, "-A TUNLAB-42-PX -d fd02::/64 -p tcp -j REDIRECT --to-ports 4001\n");
	assert_has(text, "-A TUNLAB-42-PXDROP -p tcp -j RETURN\n-A TUNLAB-42-PXDROP -p udp -j RETURN\n"
			 "-A TUNLAB-42-PXDROP -d fd02::/64 -j DROP\n");
	assert_has(text, "*mangle\n");
	assert_has(text, "-A TUNLAB-42-PXMARK -d fd02::/64 -p udp -j MARK --set-xmark 0x7476/0xffffffff\n");
	assert_has(text, "-A TUNLAB-42-PXTP -i lo -p udp -m mark --mark 0x7476 -j TPROXY --on-port 5001 "
			 "--on-ip ::1 --tproxy-mark 0x7476/0xffffffff\n");
	assert_has(text, "-I PREROUTING 1 -m comment --comment \"tunlab:pid=42\" -j TUNLAB-42-PXTP\n");
	assert_lacks(text, "10.102.");
	assert_lacks(text, "127.0.0.1");
	free(text);

	/* A family without its UDP socket: that family's UDP is dropped, the other's carried. */
	p.udp_port[1] = 0;
	text = px_rules_text(&p, 42, AF_INET6);
	assert_non_null(text);
	assert_has(text, "-A TUNLAB-42-PXDROP -p tcp -j RETURN\n-A TUNLAB-42-PXDROP -d fd02::/64 -j DROP\n");
	assert_lacks(text, "-p udp -j RETURN");
	assert_lacks(text, "*mangle");
	free(text);
	text = px_rules_text(&p, 42, AF_INET);
	assert_non_null(text);
	assert_has(text, "--on-port 5000 --on-ip 127.0.0.1");
	free(text);
}

/* Selectors narrow each chain to what they select; unselected traffic is left alone. */
static void test_rules_selectors(void **state)
{
	(void)state;
	struct ip_prefix routes[] = { prefix("10.102.0.0/24") };
	struct selector sels[3] = { 0 };
	char err[128];

	assert_int_equal(selector_parse("proto=tcp,dport=80-81", &sels[0], err, sizeof(err)), 0);
	assert_int_equal(selector_parse("proto=icmp,uid=1000", &sels[1], err, sizeof(err)), 0);
	assert_int_equal(selector_parse("proto=udp,dport=53", &sels[2], err, sizeof(err)), 0);

	struct frontend_config cfg = {
		.role = FRONTEND_CLIENT, .routes = routes, .route_count = 1,
		.selectors = sels, .selector_count = 3,
	};
	struct px_rules_params p = { .cfg = &cfg, .tcp_port = { 4000, 0 }, .udp_port = { 5000, 0 } };
	char *text = px_rules_text(&p, 7, AF_INET);

	assert_non_null(text);
	assert_has(text, "-A TUNLAB-7-PX -d 10.102.0.0/24 -p tcp --dport 80:81 -j REDIRECT --to-ports 4000\n");
	assert_has(text, "-A TUNLAB-7-PXDROP -d 10.102.0.0/24 -p 1 -m owner --uid-owner 1000 -j DROP\n");
	assert_has(text, "-A TUNLAB-7-PXMARK -d 10.102.0.0/24 -p udp --dport 53 -j MARK");
	/* Exactly one rule per chain: each selector lands in its own chain only. */
	assert_lacks(text, "-p tcp --dport 80:81 -j DROP");
	assert_lacks(text, "--dport 53 -j DROP");
	assert_lacks(text, "-p tcp -j MARK");
	free(text);

	/* Without UDP (no TPROXY socket), a UDP selector's traffic is dropped, not leaked. */
	p.udp_port[0] = 0;
	text = px_rules_text(&p, 7, AF_INET);
	assert_non_null(text);
	assert_has(text, "-A TUNLAB-7-PXDROP -d 10.102.0.0/24 -p 17 --dport 53 -j DROP\n");
	assert_lacks(text, "*mangle");
	free(text);
}

/* The SYN hold: SYNs queued, refusals rejected before they could reach REDIRECT or the wire. */
/* The shared policy: refused for its bypass; its protect entries compile one rule each, in order. */
static void test_policy_rules(void **state)
{
	struct frontend_config cfg = { .role = FRONTEND_CLIENT };
	struct px_rules_params p = { .cfg = &cfg, .tcp_port = { 4000, 4001 }, .udp_port = { 5000, 5001 } };
	struct ip_prefix routes[8];
	struct policy pol;
	char err[256], *text;

	(void)state;
	policy_fixture_load(policy_fixture_text, &pol, routes, &cfg);
	assert_int_equal(policy_check_caps(&pol, proxy_frontend.policy_keys, proxy_frontend.policy_actions,
					   "the proxy frontend", proxy_frontend.policy_why, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "1: the proxy frontend cannot express the action bypass "
				 "(its REDIRECT and TPROXY rules take protect entries only)");
	policy_free(&pol);

	policy_fixture_load(policy_fixture_protect_text, &pol, routes, &cfg);
	assert_int_equal(policy_check_caps(&pol, proxy_frontend.policy_keys, proxy_frontend.policy_actions,
					   "the proxy frontend", proxy_frontend.policy_why, err, sizeof(err)), 0);
	text = px_rules_text(&p, 42, AF_INET);
	assert_non_null(text);
	assert_has(text, "-A TUNLAB-42-PX -d 10.102.0.0/24 -p tcp --dport 5201 -j REDIRECT --to-ports 4000\n");
	/* The entry selects TCP only: no UDP mark, nothing dropped toward the prefix. */
	assert_lacks(text, "-j MARK");
	assert_lacks(text, "-d 10.102.0.0/24 -j DROP");
	free(text);
	text = px_rules_text(&p, 42, AF_INET6);
	assert_non_null(text);
	assert_has(text, "-A TUNLAB-42-PX -d fd02::/64 -p tcp -m owner --uid-owner 1000 -j REDIRECT --to-ports 4001\n");
	free(text);
	policy_free(&pol);
}

static void test_rules_syn_hold(void **state)
{
	(void)state;
	struct ip_prefix routes[] = { prefix("10.102.0.0/24"), prefix("fd02::/64") };
	struct selector sel = { 0 };
	char err[128];

	assert_int_equal(selector_parse("proto=tcp,dport=80", &sel, err, sizeof(err)), 0);

	struct frontend_config cfg = { .role = FRONTEND_CLIENT, .routes = routes, .route_count = 2 };
	struct px_rules_params p = { .cfg = &cfg, .tcp_port = { 4000, 4001 }, .syn_hold = true,
				     .syn_queue = 29815 };
	char *text = px_rules_text(&p, 9, AF_INET);

	assert_non_null(text);
	assert_has(text, ":TUNLAB-9-PX - [0:0]\n-A TUNLAB-9-PX -m mark --mark 0x7478/0xfffffffe -j RETURN\n"
			 "-A TUNLAB-9-PX -d 10.102.0.0/24 -p tcp -j REDIRECT");
	assert_has(text, ":TUNLAB-9-PXDROP - [0:0]\n"
			 "-A TUNLAB-9-PXDROP -p tcp -m mark --mark 0x7478 -j REJECT --reject-with tcp-reset\n"
			 "-A TUNLAB-9-PXDROP -p tcp -m mark --mark 0x7479 -j REJECT --reject-with icmp-host-unreachable\n"
			 "-A TUNLAB-9-PXDROP -p tcp -j RETURN\n");
	assert_has(text, "*mangle\n:TUNLAB-9-PXSYN - [0:0]\n"
			 "-A TUNLAB-9-PXSYN -d 10.102.0.0/24 -p tcp --syn -j NFQUEUE --queue-num 29815 --queue-bypass\n"
			 "-I OUTPUT 1 -m comment --comment \"tunlab:pid=9\" -j TUNLAB-9-PXSYN\n");
	assert_lacks(text, "PXTP"); /* no UDP port: no TPROXY */
	free(text);

	text = px_rules_text(&p, 9, AF_INET6);
	assert_non_null(text);
	assert_has(text, "-j REJECT --reject-with icmp6-addr-unreachable\n");
	assert_has(text, "-A TUNLAB-9-PXSYN -d fd02::/64 -p tcp --syn -j NFQUEUE --queue-num 29815 --queue-bypass\n");
	free(text);

	/* Selectors narrow the SYN rule as they narrow REDIRECT. */
	cfg.selectors = &sel;
	cfg.selector_count = 1;
	text = px_rules_text(&p, 9, AF_INET);
	assert_non_null(text);
	assert_has(text, "-A TUNLAB-9-PXSYN -d 10.102.0.0/24 -p tcp --syn --dport 80 -j NFQUEUE");
	free(text);

	/* Without the hold, none of it. */
	p.syn_hold = false;
	text = px_rules_text(&p, 9, AF_INET);
	assert_non_null(text);
	assert_lacks(text, "PXSYN");
	assert_lacks(text, "REJECT");
	assert_lacks(text, "0xfffffffe");
	free(text);
}

/* ---- the exit's budget: per client and in all (issue 13) ---- */

/* The tunnel's side, recording the RESETs the exit sends. */
struct fake_port {
	unsigned resets, limit_resets;
	uint32_t last_reset_id;
};

static int fake_send(void *ctx, struct stream_msg *msg)
{
	struct fake_port *fp = ctx;

	if (msg->type == STREAM_MSG_RESET) {
		fp->resets++;
		fp->limit_resets += msg->reason == STREAM_RESET_LIMIT;
		fp->last_reset_id = msg->id;
	}
	return 0;
}

static bool fake_blocked(void *ctx, const struct stream_link *link)
{
	(void)ctx;
	(void)link;
	return false;
}

static void fake_flush(void *ctx)
{
	(void)ctx;
}

static void exit_msg(struct frontend *fe, enum stream_msg_type type, uintptr_t link, uint32_t id,
		     uint8_t proto, uint16_t port)
{
	struct stream_msg msg = { .type = type, .link = (struct stream_link *)link, .id = id,
				  .proto = proto, .port = port };

	assert_int_equal(addr_parse("127.0.0.1", &msg.addr), 0);
	fe->ops->streams->stream_event(fe, &msg);
}

/* A listener on 127.0.0.1 that never accepts: connects complete in its backlog. */
static int listener(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * Client A exhausts its own cap (3) and is refused with reason LIMIT;
 * client B still opens streams until the exit's budget (5) is spent; then
 * streams and UDP flows of anyone are refused and counted.
 */
static void test_exit_budget(void **state)
{
	struct proxy_flags flags = { .max_streams = 5, .max_streams_per_client = 3 };
	struct frontend_config cfg = { .role = FRONTEND_SERVER, .flags = &flags };
	struct fake_port fp = { 0 };
	struct stream_port port = { .ctx = &fp, .send = fake_send, .blocked = fake_blocked,
				    .flush = fake_flush };
	const uintptr_t a = 0x1000, b = 0x2000;
	struct frontend *fe = NULL;
	struct evloop *loop = evloop_new();
	char err[256];
	uint16_t dport;
	int lfd = listener(&dport);

	(void)state;
	assert_int_equal(proxy_frontend.open(&fe, &cfg, err, sizeof(err)), 0);
	assert_non_null(loop);
	assert_int_equal(fe->ops->start(fe, loop, NULL), 0);
	fe->ops->streams->attach(fe, &port);
	exit_msg(fe, STREAM_MSG_LINK_UP, a, 0, 0, 0);
	exit_msg(fe, STREAM_MSG_LINK_UP, b, 0, 0, 0);
	for (uint32_t id = 1; id <= 4; id++)
		exit_msg(fe, STREAM_MSG_OPEN, a, id, IPPROTO_TCP, dport);
	assert_int_equal(fp.limit_resets, 1);
	assert_int_equal(fp.last_reset_id, 4);
	assert_int_equal(fe->stream_stats.exit_over_budget, 0);

	exit_msg(fe, STREAM_MSG_OPEN, b, 1, IPPROTO_TCP, dport);
	exit_msg(fe, STREAM_MSG_OPEN, b, 2, IPPROTO_TCP, dport);
	assert_int_equal(fp.resets, 1);
	assert_int_equal(fe->stream_stats.streams_open, 5);

	exit_msg(fe, STREAM_MSG_OPEN, b, 3, IPPROTO_TCP, dport);
	assert_int_equal(fp.limit_resets, 2);
	assert_int_equal(fp.last_reset_id, 3);
	assert_int_equal(fe->stream_stats.exit_over_budget, 1);
	exit_msg(fe, STREAM_MSG_DGRAM, b, 9, IPPROTO_UDP, dport);
	assert_int_equal(fe->stream_stats.flows_limited, 1);
	assert_int_equal(fe->stream_stats.udp_flows_open, 0);
	assert_int_equal(fe->stream_stats.streams_limited, 2);

	/* A stream that ends gives its place back. */
	exit_msg(fe, STREAM_MSG_RESET, b, 2, 0, 0);
	exit_msg(fe, STREAM_MSG_OPEN, b, 4, IPPROTO_TCP, dport);
	assert_int_equal(fp.resets, 2);
	fe->ops->close(fe);
	evloop_free(loop);
	close(lfd);
}

/*
 * The fds the daemon leaves decide the exit's budget: --max-streams when it
 * fits, else what is left (at least PX_EXIT_BUDGET_MIN), said in fe->error.
 */
static void test_exit_budget_from_fd_limit(void **state)
{
	struct proxy_flags fits = { .max_streams = 50 }, over = { .max_streams = 64 }, none = { 0 };
	struct frontend_config cfg = { .role = FRONTEND_SERVER, .fd_limit = 190, .fd_tunnel = 90 };
	const struct {
		const struct proxy_flags *flags;
		unsigned long tunnel;
		unsigned budget;
		bool warns;
	} cases[] = {
		{ &fits, 90, 50, false },  /* 100 left */
		{ &none, 90, 100, false }, /* all that is left */
		{ &over, 150, 40, true },  /* 40 left */
		{ &over, 185, PX_EXIT_BUDGET_MIN, true },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct frontend *fe = NULL;

		cfg.flags = cases[i].flags;
		cfg.fd_tunnel = cases[i].tunnel;
		assert_int_equal(proxy_frontend.open(&fe, &cfg, err, sizeof(err)), 0);
		assert_int_equal(((struct proxy *)fe)->max_streams, cases[i].budget);
		assert_int_equal(strstr(fe->error, "fd limit 190 is below") != NULL, cases[i].warns);
		fe->ops->close(fe);
	}
}

/* Without the flags a client gets at most a quarter of the budget in streams, and in flows. */
static void test_exit_per_client_default(void **state)
{
	struct proxy_flags flags = { .max_streams = 8 };
	struct frontend_config cfg = { .role = FRONTEND_SERVER, .flags = &flags };
	struct fake_port fp = { 0 };
	struct stream_port port = { .ctx = &fp, .send = fake_send, .blocked = fake_blocked,
				    .flush = fake_flush };
	const uintptr_t a = 0x1000;
	struct frontend *fe = NULL;
	struct evloop *loop = evloop_new();
	char err[256];
	uint16_t dport;
	int lfd = listener(&dport);

	(void)state;
	assert_int_equal(px_per_client_cap(0, 1728, PX_STREAMS_PER_CLIENT), 432);
	assert_int_equal(px_per_client_cap(0, 1u << 20, PX_STREAMS_PER_CLIENT), PX_STREAMS_PER_CLIENT);
	assert_int_equal(px_per_client_cap(0, 2, PX_FLOWS_PER_CLIENT), 1);
	assert_int_equal(px_per_client_cap(7000, 8, PX_FLOWS_PER_CLIENT), 7000);
	assert_int_equal(proxy_frontend.open(&fe, &cfg, err, sizeof(err)), 0);
	assert_non_null(loop);
	assert_int_equal(fe->ops->start(fe, loop, NULL), 0);
	fe->ops->streams->attach(fe, &port);
	exit_msg(fe, STREAM_MSG_LINK_UP, a, 0, 0, 0);
	for (uint32_t id = 1; id <= 3; id++)
		exit_msg(fe, STREAM_MSG_OPEN, a, id, IPPROTO_TCP, dport);
	assert_int_equal(fe->stream_stats.streams_open, 2);
	assert_int_equal(fp.limit_resets, 1);
	for (uint32_t id = 11; id <= 13; id++)
		exit_msg(fe, STREAM_MSG_DGRAM, a, id, IPPROTO_UDP, dport);
	assert_int_equal(fe->stream_stats.udp_flows_open, 2);
	assert_int_equal(fe->stream_stats.flows_limited, 1);
	assert_int_equal(fe->stream_stats.exit_over_budget, 0);
	fe->ops->close(fe);
	evloop_free(loop);
	close(lfd);
}

/*
 * Hash flood: FLOOD_IDS stream ids that all share one bucket under the
 * unkeyed mix px_conn.c used before (bits 20..31 of id * 0xC2B2AE3D,
 * XORed with a term of the link alone, so they collide on every link).
 * Keyed, they spread like sequential ids: the longest chain, which is
 * what a lookup (one per FIN, DATA, CREDIT frame) may walk, stays at
 * what FLOOD_IDS balls in PX_HASH_BUCKETS bins give (about 5; 10 has a
 * chance near 1e-6), where the old hash made it FLOOD_IDS.
 */
enum { FLOOD_IDS = 2000, FLOOD_CHAIN_MAX = 10 };

static unsigned unkeyed_bucket_of_id(uint32_t id)
{
	return (unsigned)(((uint64_t)id * 0xC2B2AE3Dull) >> 20) & (PX_HASH_BUCKETS - 1);
}

/* The first n ids from 1 on that the unkeyed hash puts in bucket 0. */
static void colliding_ids(uint32_t *ids, size_t n)
{
	size_t found = 0;

	for (uint32_t id = 1; found < n && id < UINT32_MAX; id++)
		if (unkeyed_bucket_of_id(id) == 0)
			ids[found++] = id;
	assert_int_equal(found, n);
}

static size_t longest_chain_of(const uint32_t *ids, size_t n)
{
	struct proxy *px = calloc(1, sizeof(*px));
	struct px_link *l = calloc(1, sizeof(*l));
	size_t longest;

	assert_non_null(px);
	assert_non_null(l);
	px->conn_hash = keyhash_new();
	assert_non_null(px->conn_hash);
	for (size_t i = 0; i < n; i++)
		assert_non_null(px_conn_new(px, l, ids[i], -1, false));
	for (size_t i = 0; i < n; i++)
		assert_non_null(px_conn_find(px, l, ids[i]));
	longest = px_conn_longest_chain(px);
	while (l->conns)
		px_conn_abort(l->conns);
	keyhash_free(px->conn_hash);
	free(l);
	free(px);
	return longest;
}

static void test_conn_hash_flood(void **state)
{
	(void)state;
	static uint32_t chosen[FLOOD_IDS], spread[FLOOD_IDS];
	size_t chosen_chain, spread_chain;

	colliding_ids(chosen, FLOOD_IDS);
	for (uint32_t i = 0; i < FLOOD_IDS; i++)
		spread[i] = i + 1;
	chosen_chain = longest_chain_of(chosen, FLOOD_IDS);
	spread_chain = longest_chain_of(spread, FLOOD_IDS);
	if (chosen_chain > FLOOD_CHAIN_MAX || spread_chain > FLOOD_CHAIN_MAX)
		fail_msg("longest chain: %zu for chosen ids, %zu for spread ids (at most %d wanted)",
			 chosen_chain, spread_chain, FLOOD_CHAIN_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_v4_all),
		cmocka_unit_test(test_rules_selectors),
		cmocka_unit_test(test_policy_rules),
		cmocka_unit_test(test_rules_syn_hold),
		cmocka_unit_test(test_exit_budget),
		cmocka_unit_test(test_exit_budget_from_fd_limit),
		cmocka_unit_test(test_exit_per_client_default),
		cmocka_unit_test(test_conn_hash_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
