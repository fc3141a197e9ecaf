// SPDX-License-Identifier: MIT
/* Unit tests: CoDel's judge for a queue read one packet at a time signals on RFC 8289's schedule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../base/codel.h"

enum { US = 1000, MS = 1000000 };

static const struct codel_params params = { .target_ns = 1 * MS, .interval_ns = 20 * MS };

/*
 * Packets every 100 us from `from` to `to` (ns), each having waited
 * sojourn; returns how many were signalled and the times of the first
 * `max` signals in at.
 */
static unsigned feed(struct codel_vars *v, uint64_t from, uint64_t to, uint64_t sojourn, uint64_t *at,
		     unsigned max)
{
	unsigned n = 0;

	for (uint64_t t = from; t < to; t += 100 * US)
		if (codel_judge(v, &params, sojourn, t, true)) {
			if (n < max)
				at[n] = t;
			n++;
		}
	return n;
}

static void test_quiet_below_target(void **state)
{
	struct codel_vars v = { 0 };
	uint64_t at[1];

	(void)state;
	assert_int_equal(feed(&v, MS, 1000 * MS, params.target_ns - 1, at, 1), 0);
	assert_false(v.dropping);
}

/* First signal one interval after the wait rose, the next interval/sqrt(count) after the one before. */
static void test_signal_schedule(void **state)
{
	struct codel_vars v = { 0 };
	uint64_t at[4];
	unsigned n;

	(void)state;
	n = feed(&v, 10 * MS, 10 * MS + 70 * MS, 3 * MS, at, 4);
	assert_true(n >= 3);
	/* The wait was first seen above target at 10 ms: the first signal one interval later. */
	assert_true(at[0] >= 30 * MS && at[0] < 30 * MS + 100 * US);
	/* count 1: one interval; count 2: interval/sqrt(2) = 14.14 ms; within one packet's spacing. */
	assert_true(at[1] - at[0] >= 20 * MS && at[1] - at[0] < 20 * MS + 100 * US);
	assert_true(at[2] - at[1] >= 14142 * US - 100 * US && at[2] - at[1] < 14142 * US + 200 * US);
	assert_true(v.dropping);
}

/* At most one signal per packet, however late the packets come. */
static void test_one_signal_per_packet(void **state)
{
	struct codel_vars v = { 0 };

	(void)state;
	assert_false(codel_judge(&v, &params, 5 * MS, 1 * MS, true));
	assert_true(codel_judge(&v, &params, 5 * MS, 1000 * MS, true));
	/* A second later: one signal, and the schedule moves on from there. */
	assert_true(codel_judge(&v, &params, 5 * MS, 2000 * MS, true));
	assert_int_equal(v.count, 2);
}

/* A wait below target ends the dropping state; signals come again only after another interval above. */
static void test_recovery_ends_dropping(void **state)
{
	struct codel_vars v = { 0 };
	uint64_t at[1];

	(void)state;
	assert_true(feed(&v, 0, 40 * MS, 3 * MS, at, 1) >= 1);
	assert_true(v.dropping);
	assert_false(codel_judge(&v, &params, 0, 40 * MS, true));
	assert_false(v.dropping);
	/* Above again at 41 ms: nothing until 61 ms. */
	assert_int_equal(feed(&v, 41 * MS, 61 * MS, 3 * MS, at, 1), 0);
	assert_int_equal(feed(&v, 61 * MS, 62 * MS, 3 * MS, at, 1), 1);
}

/*
 * A lone packet after a dropping spell, late only because its reader was
 * (nothing queued behind it): no signal, and the spell ends. Before, the
 * spell's state judged it, and an echo after a bulk transfer on a slow
 * reader was dropped.
 */
static void test_lone_packet_after_spell(void **state)
{
	struct codel_vars v = { 0 };
	uint64_t at[1];

	(void)state;
	assert_true(feed(&v, 0, 40 * MS, 3 * MS, at, 1) >= 1);
	assert_true(v.dropping);
	assert_false(codel_judge(&v, &params, 3 * MS, 500 * MS, false));
	assert_false(v.dropping);
	/* The same packet with a queue behind it is signalled. */
	assert_true(feed(&v, 600 * MS, 640 * MS, 3 * MS, at, 1) >= 1);
	assert_true(codel_judge(&v, &params, 3 * MS, 700 * MS, true));
}

/* Re-entering soon after a dropping spell resumes near its rate, not from count 1 (RFC 8289). */
static void test_resumes_recent_rate(void **state)
{
	struct codel_vars v = { 0 };
	uint64_t at[8];
	unsigned first;

	(void)state;
	first = feed(&v, 0, 200 * MS, 3 * MS, at, 8);
	assert_true(first > 4);
	assert_false(codel_judge(&v, &params, 0, 200 * MS, true));
	assert_int_equal(feed(&v, 201 * MS, 222 * MS, 3 * MS, at, 1), 1);
	assert_true(v.count > 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quiet_below_target),
		cmocka_unit_test(test_signal_schedule),
		cmocka_unit_test(test_one_signal_per_packet),
		cmocka_unit_test(test_recovery_ends_dropping),
		cmocka_unit_test(test_lone_packet_after_spell),
		cmocka_unit_test(test_resumes_recent_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
