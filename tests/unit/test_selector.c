// SPDX-License-Identifier: MIT
/* Unit tests for --select traffic selectors (base/selector.c). */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../base/selector.h"

static void test_full_selector(void **state)
{
	struct selector sel;
	char err[160], text[160];

	(void)state;
	assert_int_equal(selector_parse("proto=tcp,dport=5201,sport=1000-2000,src=10.8.0.0/24,mark=0x10,uid=0",
					&sel, err, sizeof(err)), 0);
	assert_true(sel.has_proto && sel.proto == IPPROTO_TCP);
	assert_true(sel.has_dport && sel.dport.lo == 5201 && sel.dport.hi == 5201);
	assert_true(sel.has_sport && sel.sport.lo == 1000 && sel.sport.hi == 2000);
	assert_true(sel.has_src && sel.src.len == 24);
	assert_true(sel.has_mark && sel.mark == 16);
	assert_true(sel.has_uid && sel.uid == 0);
	selector_format(&sel, text, sizeof(text));
	assert_string_equal(text, "proto=tcp,dport=5201,sport=1000-2000,src=10.8.0.0/24,mark=0x10,uid=0");
}

static void test_single_keys(void **state)
{
	struct selector sel;
	char err[160], text[160];

	(void)state;
	assert_int_equal(selector_parse("proto=47", &sel, err, sizeof(err)), 0);
	assert_true(sel.has_proto && sel.proto == 47);
	assert_false(sel.has_dport || sel.has_src || sel.has_mark || sel.has_uid);
	selector_format(&sel, text, sizeof(text));
	assert_string_equal(text, "proto=47");
	assert_int_equal(selector_parse("src=fd00::1/64", &sel, err, sizeof(err)), 0);
	selector_format(&sel, text, sizeof(text));
	assert_string_equal(text, "src=fd00::/64");
}

static void assert_rejected(const char *text, const char *mentions)
{
	struct selector sel;
	char err[160] = "";

	if (selector_parse(text, &sel, err, sizeof(err)) != -EINVAL)
		fail_msg("'%s' was accepted", text);
	if (!strstr(err, mentions))
		fail_msg("error for '%s' is '%s', expected it to mention '%s'", text, err, mentions);
}

static void test_rejects(void **state)
{
	(void)state;
	assert_rejected("", "empty");
	assert_rejected("proto", "key=value");
	assert_rejected("color=red", "unknown key 'color'");
	assert_rejected("proto=tcpx", "tcpx");
	assert_rejected("proto=256", "256");
	assert_rejected("proto=tcp,dport=65536", "65536");
	assert_rejected("proto=tcp,dport=20-10", "20-10");
	assert_rejected("proto=tcp,dport=-1", "dport");
	assert_rejected("dport=80", "proto=tcp");
	assert_rejected("proto=icmp,dport=80", "proto=tcp");
	assert_rejected("src=10.0.0.0/33", "10.0.0.0/33");
	assert_rejected("mark=0x100000000", "mark");
	assert_rejected("uid=abc", "uid");
	assert_rejected("proto=tcp,proto=udp", "key 'proto' given twice");
}

static void test_covers(void **state)
{
	struct selector wide, narrow, other;
	char err[160];

	(void)state;
	assert_int_equal(selector_parse("proto=tcp,dport=1-1000", &wide, err, sizeof(err)), 0);
	assert_int_equal(selector_parse("proto=tcp,dport=80,src=10.0.0.0/8,uid=0", &narrow, err, sizeof(err)), 0);
	assert_int_equal(selector_parse("proto=udp,dport=80", &other, err, sizeof(err)), 0);
	assert_true(selector_covers(&wide, &narrow));
	assert_false(selector_covers(&narrow, &wide));
	assert_false(selector_covers(&wide, &other));
	assert_true(selector_equal(&wide, &wide));
	assert_false(selector_equal(&wide, &narrow));
}

static void test_too_long(void **state)
{
	char text[400];

	(void)state;
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	assert_rejected(text, "longer than");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_selector),
		cmocka_unit_test(test_single_keys),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_covers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
