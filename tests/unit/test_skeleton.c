// SPDX-License-Identifier: MIT
/*
 * Unit tests: the skeleton frontend (tests/skeleton/) driven through its ops
 * table alone, as src/daemon.c drives a registered one: a fifth approach is
 * one folder, one registry line and one Makefile word.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../base/evloop.h"
#include "../../src/frontends.h"
#include "../../src/options.h"
#include "../skeleton/skeleton.h"

static const struct frontend_ops *const ops = &skeleton_frontend;
static struct evloop *loop;
static unsigned ready_calls;

static void on_ready(void *ctx)
{
	(void)ctx;
	ready_calls++;
}

static const struct frontend_sink sink = { .ready = on_ready };

/* Opened with flags (its flag struct, or NULL) and started on a fresh loop, as src/daemon.c does. */
static struct frontend *open_fe_with(const void *flags)
{
	struct frontend_config cfg = { .role = FRONTEND_CLIENT, .mtu = 1400, .flags = flags };
	struct frontend *fe = NULL;
	char err[256] = "";

	loop = evloop_new();
	assert_non_null(loop);
	assert_int_equal(ops->open(&fe, &cfg, err, sizeof(err)), 0);
	assert_non_null(fe);
	assert_ptr_equal(fe->ops, ops);
	assert_int_equal(ops->start(fe, loop, &sink), 0);
	return fe;
}

static struct frontend *open_fe(void)
{
	return open_fe_with(NULL);
}

static void close_fe(struct frontend *fe)
{
	ops->close(fe);
	evloop_free(loop);
	loop = NULL;
}

static void on_round_done(struct evloop *l, struct ev_timer *timer)
{
	(void)timer;
	evloop_stop(l);
}

/* Whether one round of the loop (a 1 ms timer ends it) told the sink packets wait. */
static bool readable(const struct frontend *fe)
{
	struct ev_timer stop;

	(void)fe;
	ready_calls = 0;
	ev_timer_init(&stop, on_round_done, NULL);
	evloop_timer_start(loop, &stop, 1);
	assert_int_equal(evloop_run(loop), 0);
	return ready_calls > 0;
}

static void test_nothing_ready(void **state)
{
	(void)state;
	struct frontend *fe = open_fe();
	struct pkt_batch b;

	assert_false(readable(fe));
	assert_int_equal(ops->packets->read_batch(fe, &b), 0);
	close_fe(fe);
}

static void test_written_packets_come_back(void **state)
{
	(void)state;
	struct frontend *fe = open_fe();
	uint8_t a[20] = { 0x45, 1 }, c[40] = { 0x60, 2 };
	struct pkt_batch in = { .count = 2 }, out;

	in.pkts[0] = (struct pkt){ .data = a, .len = sizeof(a) };
	in.pkts[1] = (struct pkt){ .data = c, .len = sizeof(c) };
	assert_int_equal(ops->packets->write_batch(fe, &in), 0);
	assert_true(readable(fe));
	assert_int_equal(ops->packets->read_batch(fe, &out), 2);
	assert_int_equal(out.pkts[0].len, sizeof(a));
	assert_memory_equal(out.pkts[1].data, c, sizeof(c));
	assert_int_equal(fe->stats.injected_packets, 2);
	assert_int_equal(fe->stats.captured_bytes, sizeof(a) + sizeof(c));
	assert_false(readable(fe));
	close_fe(fe);
}

/* Paused (the tunnel's push-back), waiting packets wake nobody until resumed. */
static void test_pause_stops_the_watchers(void **state)
{
	(void)state;
	struct frontend *fe = open_fe();
	uint8_t a[20] = { 0x45 };
	struct pkt_batch in = { .count = 1 }, out;

	in.pkts[0] = (struct pkt){ .data = a, .len = sizeof(a) };
	assert_int_equal(ops->packets->write_batch(fe, &in), 0);
	ops->packets->pause(fe, true);
	assert_false(readable(fe));
	ops->packets->pause(fe, false);
	assert_true(readable(fe));
	assert_int_equal(ops->packets->read_batch(fe, &out), 1);
	close_fe(fe);
}

/* Without FRONTEND_CAP_OFFLOAD an offload packet is refused and counted, never passed on. */
static void test_offload_without_cap_is_an_inject_error(void **state)
{
	(void)state;
	struct frontend *fe = open_fe();
	uint8_t a[60] = { 0x45 };
	struct pkt_batch in = { .count = 1 }, out;

	assert_false(fe->caps & FRONTEND_CAP_OFFLOAD);
	in.pkts[0] = (struct pkt){ .data = a, .len = sizeof(a), .off.gso_type = PKT_GSO_TCPV4 };
	assert_int_equal(ops->packets->write_batch(fe, &in), 0);
	assert_int_equal(fe->stats.inject_errors, 1);
	assert_int_equal(ops->packets->read_batch(fe, &out), 0);
	close_fe(fe);
}

/*
 * Its own flag comes through the generic command line, src/options.c
 * knowing nothing of it, to its open: --ring 2 leaves a third packet
 * without a slot.
 */
static void test_own_flag_reaches_open(void **state)
{
	(void)state;
	const struct frontend_ops *const registry[] = { ops, NULL };
	const char *const argv[] = { "tunlab", "client", "--ring", "2", "--frontend", "skeleton",
				     "--connect", "127.0.0.1:4443", "--cert", "c", "--key", "k",
				     "--ca", "a", "--route", "10.9.0.0/24" };
	struct options o;
	char err[256] = "";
	uint8_t a[20] = { 0x45 };
	struct pkt_batch in = { .count = 3 };

	assert_int_equal(options_parse_in(registry, (int)(sizeof(argv) / sizeof(argv[0])),
					  (char *const *)argv, &o, err, sizeof(err)), 0);
	assert_non_null(o.frontend_flags);
	assert_int_equal(((const struct skeleton_flags *)o.frontend_flags)->ring, 2);

	struct frontend *fe = open_fe_with(o.frontend_flags);

	for (unsigned i = 0; i < in.count; i++)
		in.pkts[i] = (struct pkt){ .data = a, .len = sizeof(a) };
	assert_int_equal(ops->packets->write_batch(fe, &in), 0);
	assert_int_equal(fe->stats.injected_packets, 2);
	assert_int_equal(fe->stats.inject_errors, 1);
	close_fe(fe);
	options_free(&o);
}

/* The tests build it; the shipped registry does not offer it. */
static void test_not_registered(void **state)
{
	(void)state;
	char err[64];

	assert_null(frontend_find("skeleton"));
	for (size_t i = 0; frontend_registry[i]; i++)
		assert_ptr_not_equal(frontend_registry[i], ops);
	assert_int_equal(ops->cleanup(false, err, sizeof(err)), 0);
}

/* Every frontend carries packets or streams, never both, and has every op of its kind. */
static void test_registry_ops_contract(void **state)
{
	(void)state;
	for (size_t i = 0; frontend_registry[i]; i++) {
		const struct frontend_ops *o = frontend_registry[i];

		assert_true(!o->packets != !o->streams);
		assert_non_null(o->open);
		assert_non_null(o->start);
		assert_non_null(o->close);
		assert_non_null(o->cleanup);
		if (o->packets) {
			assert_non_null(o->packets->read_batch);
			assert_non_null(o->packets->write_batch);
			assert_non_null(o->packets->pause);
		} else {
			assert_non_null(o->streams->attach);
			assert_non_null(o->streams->stream_event);
		}
	}
	assert_non_null(ops->packets);
	assert_null(ops->streams);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_ready),
		cmocka_unit_test(test_written_packets_come_back),
		cmocka_unit_test(test_pause_stops_the_watchers),
		cmocka_unit_test(test_offload_without_cap_is_an_inject_error),
		cmocka_unit_test(test_own_flag_reaches_open),
		cmocka_unit_test(test_not_registered),
		cmocka_unit_test(test_registry_ops_contract),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
