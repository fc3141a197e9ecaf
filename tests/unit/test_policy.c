// SPDX-License-Identifier: MIT
/* Unit tests for the policy database file (base/policy.c). */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../base/policy.h"

static const char good[] =
	"# action  selector              first match wins\n"
	"bypass    dst=10.102.0.9/32\n"
	"\n"
	"protect   dst=10.102.0.0/24,proto=tcp,dport=5201   # iperf3\n"
	"discard\tdst=10.102.0.0/24,proto=udp,sport=1000-2000,src=10.8.0.0/24\r\n"
	"protect   dst=10.102.0.0/16,mark=0x10,uid=1000\n"
	"protect   dst=fd02::1/64,proto=icmpv6\n"
	"   protect dst=0.0.0.0/0";

static void test_good_file(void **state)
{
	struct policy p;
	char err[256] = "", line[POLICY_ENTRY_TEXT_MAX];

	(void)state;
	assert_int_equal(policy_parse(good, strlen(good), &p, err, sizeof(err)), 0);
	assert_int_equal(p.count, 6);
	assert_int_equal(p.entries[0].action, POLICY_BYPASS);
	assert_int_equal(p.entries[0].line, 2);
	assert_int_equal(p.entries[0].dst.len, 32);
	assert_false(p.entries[0].sel.has_proto);
	assert_int_equal(p.entries[1].line, 4);
	assert_true(p.entries[1].sel.has_dport && p.entries[1].sel.dport.lo == 5201);
	assert_int_equal(p.entries[2].action, POLICY_DISCARD);
	assert_true(p.entries[2].sel.has_src && p.entries[2].sel.sport.hi == 2000);
	assert_true(p.entries[3].sel.has_mark && p.entries[3].sel.uid == 1000);
	policy_entry_format(&p.entries[4], line, sizeof(line));
	assert_string_equal(line, "protect dst=fd02::/64,proto=icmpv6");
	assert_int_equal(p.entries[5].line, 8);
	policy_free(&p);
	assert_null(p.entries);
}

/* The printed form parses back to the same entries: what `tunlab policy show` prints can be loaded. */
static void test_round_trip(void **state)
{
	struct policy p, q;
	char err[256] = "", *text;

	(void)state;
	assert_int_equal(policy_parse(good, strlen(good), &p, err, sizeof(err)), 0);
	text = policy_format(&p);
	assert_non_null(text);
	assert_int_equal(policy_parse(text, strlen(text), &q, err, sizeof(err)), 0);
	assert_int_equal(q.count, p.count);
	for (size_t i = 0; i < p.count; i++)
		assert_true(policy_entry_equal(&p.entries[i], &q.entries[i]));
	free(text);
	policy_free(&p);
	policy_free(&q);
}

static void assert_refused(const char *text, const char *expect)
{
	struct policy p = { (void *)1, 1 };
	char err[256] = "";

	if (policy_parse(text, strlen(text), &p, err, sizeof(err)) != -EINVAL)
		fail_msg("'%s' was accepted", text);
	if (p.entries || p.count)
		fail_msg("'%s' left a policy behind", text);
	if (!strstr(err, expect))
		fail_msg("error for '%s' is '%s', expected '%s'", text, err, expect);
}

static void test_bad_files(void **state)
{
	(void)state;
	assert_refused("", "1: no entries");
	assert_refused("# nothing\n\n", "2: no entries");
	assert_refused("protect\n", "1: 'protect' has no selector");
	assert_refused("tunnel dst=10.0.0.0/8\n", "1: unknown action 'tunnel'");
	assert_refused("protect dst=10.0.0.0/8\nprotect proto=tcp\n", "2: no dst=");
	assert_refused("protect dst=10.0.0.0/33\n", "1: bad value '10.0.0.0/33' for dst");
	assert_refused("protect dst=10.0.0.0/8,dst=11.0.0.0/8\n", "key 'dst' given twice");
	assert_refused("protect dst=10.0.0.0/8,proto=tcp,proto=udp\n", "key 'proto' given twice");
	assert_refused("protect dst=10.0.0.0/8, proto=tcp\n", "after the selector");
	assert_refused("protect dst=10.0.0.0/8,,proto=tcp\n", "empty item");
	assert_refused("protect dst=10.0.0.0/8,\n", "empty item");
	assert_refused("protect dst=10.0.0.0/8,color=red\n", "unknown key 'color'");
	assert_refused("protect dst=10.0.0.0/8,dport=80\n", "proto=tcp or proto=udp");
	assert_refused("protect dst=10.0.0.0/8,proto=tcp,dport=90-80\n", "bad value '90-80' for dport");
	assert_refused("protect dst=10.0.0.0/8,src=fd00::/64\n", "different families");
	assert_refused("protect dst=fd02::/64,proto=icmp\n", "proto=icmp with an IPv6 dst");
	assert_refused("protect dst=10.0.0.0/8,proto=icmpv6\n", "proto=icmpv6 with an IPv4 dst");
	/* Under first match the /24 is dead; a route table would make it win instead. */
	assert_refused("protect dst=10.0.0.0/8\n# x\nbypass dst=10.1.0.0/24\n", "3: never reached: line 1");
	assert_refused("protect dst=10.0.0.0/8,proto=tcp\ndiscard dst=10.1.0.0/16,proto=tcp,dport=80\n",
		       "2: never reached");
	assert_refused("protect dst=10.0.0.0/8,proto=tcp,dport=1-100\n"
		       "discard dst=10.0.0.0/8,proto=tcp,dport=20-30\n", "never reached");
}

static void test_not_shadowed(void **state)
{
	/* Narrower first, or only partly covered: each later entry still matches something. */
	static const char text[] =
		"bypass dst=10.1.0.0/24\n"
		"protect dst=10.0.0.0/8,proto=tcp,dport=20-30\n"
		"discard dst=10.0.0.0/8,proto=tcp,dport=25-40\n"
		"protect dst=10.0.0.0/8,proto=udp\n"
		"protect dst=10.0.0.0/8,uid=0\n"
		"protect dst=10.0.0.0/8\n";
	struct policy p;
	char err[256] = "";

	(void)state;
	assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	assert_int_equal(p.count, 6);
	policy_free(&p);
}

static void test_nul_and_long_lines(void **state)
{
	static const char nul[] = "protect dst=10.0.0.0/8\nprotect dst=11.0.0.0/8\0\n";
	char *text = malloc(POLICY_LINE_MAX + 40);
	struct policy p;
	char err[256] = "";

	(void)state;
	assert_int_equal(policy_parse(nul, sizeof(nul) - 1, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "2: NUL byte in line");
	assert_non_null(text);
	strcpy(text, "protect dst=10.0.0.0/8,proto=tcp");
	memset(text + strlen(text), ' ', POLICY_LINE_MAX);
	strcpy(text + POLICY_LINE_MAX + 10, "#");
	/* Blanks before a comment do not count: the line is the text before them. */
	assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	policy_free(&p);
	memset(text, 'x', POLICY_LINE_MAX + 10);
	text[POLICY_LINE_MAX + 10] = '\0';
	assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1: longer than"));
	free(text);
}

static void test_too_many_entries(void **state)
{
	struct policy p = { 0 };
	struct ip_prefix dst = { .addr = { .family = AF_INET6 }, .len = 128 };
	char err[256] = "";

	(void)state;
	for (unsigned i = 0; i < POLICY_ENTRIES_MAX; i++) {
		dst.addr.bytes[14] = (uint8_t)(i >> 8);
		dst.addr.bytes[15] = (uint8_t)i;
		assert_int_equal(policy_append(&p, POLICY_PROTECT, &dst, NULL, err, sizeof(err)), 0);
	}
	dst.addr.bytes[13] = 1;
	assert_int_equal(policy_append(&p, POLICY_PROTECT, &dst, NULL, err, sizeof(err)), -E2BIG);
	assert_int_equal(p.count, POLICY_ENTRIES_MAX);
	policy_free(&p);
}

/*
 * The shorthand (--route, --select) goes through the same checks, named by
 * entry number; nested routes of one action stay allowed, as they always were.
 */
static void test_append_checks(void **state)
{
	struct policy p = { 0 };
	struct ip_prefix wide, narrow;
	char err[256] = "";

	(void)state;
	assert_int_equal(prefix_parse("10.0.0.0/8", &wide), 0);
	assert_int_equal(prefix_parse("10.1.0.0/16", &narrow), 0);
	assert_int_equal(policy_append(&p, POLICY_PROTECT, &wide, NULL, err, sizeof(err)), 0);
	assert_int_equal(policy_append(&p, POLICY_PROTECT, &narrow, NULL, err, sizeof(err)), 0);
	assert_int_equal(policy_append(&p, POLICY_BYPASS, &narrow, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "never reached: entry 1 matches everything it does");
	policy_free(&p);
}

/* --route x --select, in order; a selector of the other family is left out for that route, as before. */
static void test_from_flags(void **state)
{
	struct ip_prefix routes[2];
	struct selector sels[2];
	struct policy p;
	char err[256] = "", line[POLICY_ENTRY_TEXT_MAX];

	(void)state;
	assert_int_equal(prefix_parse("10.102.0.0/24", &routes[0]), 0);
	assert_int_equal(prefix_parse("fd02::/64", &routes[1]), 0);
	assert_int_equal(selector_parse("proto=tcp,dport=5201", &sels[0], err, sizeof(err)), 0);
	assert_int_equal(selector_parse("proto=icmp", &sels[1], err, sizeof(err)), 0);
	assert_int_equal(policy_from_flags(routes, 2, sels, 2, &p, err, sizeof(err)), 0);
	assert_int_equal(p.count, 3);
	policy_entry_format(&p.entries[0], line, sizeof(line));
	assert_string_equal(line, "protect dst=10.102.0.0/24,proto=tcp,dport=5201");
	policy_entry_format(&p.entries[1], line, sizeof(line));
	assert_string_equal(line, "protect dst=10.102.0.0/24,proto=icmp");
	policy_entry_format(&p.entries[2], line, sizeof(line));
	assert_string_equal(line, "protect dst=fd02::/64,proto=tcp,dport=5201");
	policy_free(&p);
	assert_int_equal(policy_from_flags(routes, 2, NULL, 0, &p, err, sizeof(err)), 0);
	assert_int_equal(p.count, 2);
	assert_false(p.entries[1].sel.has_proto);
	policy_free(&p);
}

/* A frontend's mechanism refuses by line, key or action, and who: never widened or narrowed. */
static void test_check_caps(void **state)
{
	static const char text[] = "protect dst=10.0.0.0/8,proto=tcp,dport=80\ndiscard dst=10.0.0.0/8\n";
	unsigned all_actions = POLICY_ACTION_BIT(POLICY_PROTECT) | POLICY_ACTION_BIT(POLICY_BYPASS) |
			       POLICY_ACTION_BIT(POLICY_DISCARD);
	struct policy p;
	char err[256] = "";

	(void)state;
	assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	assert_int_equal(policy_check_caps(&p, POLICY_KEY_PROTO, all_actions, "the tun frontend",
					   "a route", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "1: the tun frontend cannot express the selector key dport (a route)");
	assert_int_equal(policy_check_caps(&p, POLICY_KEY_PROTO | POLICY_KEY_DPORT,
					   POLICY_ACTION_BIT(POLICY_PROTECT), "X", "why", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "2: X cannot express the action discard (why)");
	assert_int_equal(policy_check_caps(&p, POLICY_KEY_PROTO | POLICY_KEY_DPORT, all_actions, "X", "why",
					   err, sizeof(err)), 0);
	policy_free(&p);
}

static void test_load(void **state)
{
	char path[] = "/tmp/test_policy.XXXXXX", err[512] = "";
	struct policy p;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "protect dst=10.0.0.0/8\nprotect dst=10.0.0.0/9\n", 46), 46);
	close(fd);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: never reached"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	unlink(path);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(policy_load("/tmp", &p, err, sizeof(err)), -EISDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_not_shadowed),
		cmocka_unit_test(test_nul_and_long_lines),
		cmocka_unit_test(test_too_many_entries),
		cmocka_unit_test(test_append_checks),
		cmocka_unit_test(test_from_flags),
		cmocka_unit_test(test_check_caps),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
