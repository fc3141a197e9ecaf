// SPDX-License-Identifier: MIT
/* Unit tests for the control socket's request parser (src/ctl_msg.c) and what show prints (src/show.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/ctl.h"
#include "../../src/show.h"

static void test_requests(void **state)
{
	struct ctl_request r;
	char err[160], line[CTL_REQUEST_MAX + 16];

	(void)state;
	assert_int_equal(ctl_parse_request("show\n", 5, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_SHOW);
	assert_int_equal(ctl_parse_request("show json", 9, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_SHOW_JSON);
	assert_int_equal(ctl_parse_request("policy show\n", 12, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_POLICY_SHOW);
	assert_int_equal(ctl_parse_request("policy load /etc/p.conf\n", 24, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_POLICY_LOAD);
	assert_string_equal(r.path, "/etc/p.conf");
	ctl_format_request(&r, line, sizeof(line));
	assert_string_equal(line, "policy load /etc/p.conf\n");
	assert_int_equal(ctl_parse_request("handover\n", 9, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_HANDOVER);
	ctl_format_request(&r, line, sizeof(line));
	assert_string_equal(line, "handover\n");
	assert_int_equal(ctl_parse_request("down\n", 5, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_DOWN);
	ctl_format_request(&r, line, sizeof(line));
	assert_string_equal(line, "down\n");
	assert_int_equal(ctl_parse_request("down", 4, &r, err, sizeof(err)), 0);
	assert_int_equal(r.command, CTL_DOWN);
}

static void assert_refused(const char *text, size_t len, const char *expect)
{
	struct ctl_request r;
	char err[160] = "";

	if (ctl_parse_request(text, len, &r, err, sizeof(err)) != -EINVAL)
		fail_msg("'%s' was accepted", text);
	if (!strstr(err, expect))
		fail_msg("error for '%s' is '%s', expected '%s'", text, err, expect);
}

static void test_bad_requests(void **state)
{
	char *big = malloc(CTL_REQUEST_MAX + 1);

	(void)state;
	assert_refused("", 0, "unknown request");
	assert_refused("show \n", 6, "unknown request");
	assert_refused("SHOW\n", 5, "unknown request");
	assert_refused("show\nshow\n", 10, "bytes after the request line");
	assert_refused("show\0", 5, "unknown request");
	assert_refused("policy load relative.conf\n", 26, "must be absolute");
	assert_refused("policy load /a b\n", 17, "byte 0x20");
	assert_refused("policy load \n", 13, "unknown request");
	assert_refused("handover now\n", 13, "unknown request");
	/* One word: which tunnel is not a choice (a client has one), nor is a peer (a server refuses). */
	assert_refused("down now\n", 9, "unknown request");
	assert_refused("down \n", 6, "unknown request");
	assert_refused("DOWN\n", 5, "unknown request");
	assert_refused("down\ndown\n", 10, "bytes after the request line");
	assert_non_null(big);
	memset(big, 'a', CTL_REQUEST_MAX);
	assert_refused(big, CTL_REQUEST_MAX, "longer than");
	free(big);
}

static void test_show_json(void **state)
{
	static const char text[] = "protect dst=10.102.0.0/24,proto=tcp\n";
	struct stats_context ctx = { .role = "client", .frontend = "nfqueue", .started = 1 };
	struct tunnel_stats ts = { .tx_packets = 3, .rx_bytes = 99, .connected = true, .last_handshake = 5.5 };
	struct frontend_stats fs = { 0 };
	struct policy p;
	struct show_state s = { .pid = 42, .endpoint = "10.101.0.1:4433", .ctx = &ctx, .ts = &ts, .fs = &fs,
				.policy = &p };
	/* A TCP packet 10.8.0.2:40000 -> 10.102.0.5:80 and a UDP one: the entry matches the first only. */
	uint8_t tcp[40] = { 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 8, 0, 2, 10, 102, 0, 5,
			    0x9c, 0x40, 0, 80 };
	uint8_t udp[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 8, 0, 2, 10, 102, 0, 5 };
	struct pkt_batch batch = { .count = 2, .pkts = { { .data = tcp, .len = 40 }, { .data = udp, .len = 28 } } };
	struct policy_hits *hits;
	char err[160], *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	hits = hits_new(&p);
	assert_non_null(hits);
	hits_count(hits, &batch);
	s.hits = hits;
	f = open_memstream(&out, &len);
	assert_non_null(f);
	show_write_json(f, &s);
	fclose(f);
	assert_non_null(strstr(out, "{\"pid\":42,\"role\":\"client\",\"frontend\":\"nfqueue\","
				    "\"endpoint\":\"10.101.0.1:4433\",\"state\":\"connected\","
				    "\"last_handshake\":5.500000,\"stats\":{\"event\":\"show\""));
	assert_non_null(strstr(out, "\"tx_packets\":3,"));
	assert_non_null(strstr(out, "\"rx_bytes\":99,"));
	assert_non_null(strstr(out, ",\"policy\":[{\"line\":1,\"action\":\"protect\",\"hits\":1,"
				    "\"entry\":\"protect dst=10.102.0.0/24,proto=tcp\"}]}\n"));
	free(out);
	hits_free(hits);
	policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_show_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
