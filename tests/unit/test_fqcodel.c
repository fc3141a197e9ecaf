// SPDX-License-Identifier: MIT
/* Unit tests: the flow-fair CoDel queue isolates flows, favours sparse ones, drops and marks on schedule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/fqcodel.h"
#include "../../base/pkt.h"

static const uint8_t test_key[KEYHASH_KEY_LEN] = { 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

enum { MS = 1000000 };

struct fixture {
	struct keyhash *hash;
	struct fqcodel *q;
	uint64_t now;          /* the synthetic clock, ns */
	uint8_t buf[2048];
};

static uint64_t synthetic_now(void *ctx)
{
	return ((struct fixture *)ctx)->now;
}

/* An IPv4 UDP packet from port sport, len bytes, with tos; its payload starts with seq. */
static struct pkt make_udp(struct fixture *fx, uint16_t sport, uint32_t len, uint8_t tos, uint32_t seq)
{
	uint8_t *d = fx->buf;
	uint16_t check;

	memset(d, 0, len);
	d[0] = 0x45;
	d[1] = tos;
	d[2] = (uint8_t)(len >> 8);
	d[3] = (uint8_t)len;
	d[8] = 64;
	d[9] = 17;
	memcpy(d + 12, (uint8_t[]){ 10, 8, 0, 2 }, 4);
	memcpy(d + 16, (uint8_t[]){ 10, 102, 0, 2 }, 4);
	d[20] = (uint8_t)(sport >> 8);
	d[21] = (uint8_t)sport;
	d[23] = 9;
	memcpy(d + 28, &seq, sizeof(seq));
	check = pkt_inet_csum(NULL, 0, d, 20);
	memcpy(d + 10, &check, 2);
	return (struct pkt){ .data = d, .len = len };
}

static uint16_t port_of(const struct pkt *p)
{
	return (uint16_t)(p->data[20] << 8 | p->data[21]);
}

static uint32_t seq_of(const struct pkt *p)
{
	uint32_t seq;

	memcpy(&seq, p->data + 28, sizeof(seq));
	return seq;
}

static struct fixture *fixture_new(uint32_t limit_packets, uint32_t limit_bytes, bool ecn)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct fqcodel_config cfg = {
		.limit_packets = limit_packets, .limit_bytes = limit_bytes, .ecn = ecn,
		.now_ns = synthetic_now,
	};

	assert_non_null(fx);
	fx->hash = keyhash_new_key(test_key);
	assert_non_null(fx->hash);
	cfg.hash = fx->hash;
	cfg.clock_ctx = fx;
	fx->q = fqcodel_new(&cfg);
	assert_non_null(fx->q);
	return fx;
}

static void fixture_free(struct fixture *fx)
{
	fqcodel_free(fx->q);
	keyhash_free(fx->hash);
	free(fx);
}

static void enqueue(struct fixture *fx, uint16_t sport, uint32_t len, uint8_t tos, uint32_t seq)
{
	struct pkt p = make_udp(fx, sport, len, tos, seq);

	assert_int_equal(fqcodel_enqueue(fx->q, &p), 0);
}

/* A port whose flow is not that of port other: flows that share a queue cannot be isolated. */
static uint16_t distinct_port(struct fixture *fx, uint16_t other, uint16_t from)
{
	struct pkt a = make_udp(fx, other, 100, 0, 0);
	uint32_t fa = fqcodel_flow_of(fx->q, &a);

	for (uint16_t port = from;; port++) {
		struct pkt b = make_udp(fx, port, 100, 0, 0);

		if (fqcodel_flow_of(fx->q, &b) != fa)
			return port;
	}
}

static struct fqcodel_stats stats(const struct fixture *fx)
{
	struct fqcodel_stats st;

	fqcodel_stats(fx->q, &st);
	return st;
}

/* A fat flow with 100 packets queued first: the thin one still gets every other turn. */
static void test_flow_isolation(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(10000, 4 << 20, false);
	uint16_t fat = 1000, thin = distinct_port(fx, fat, 2000);
	unsigned thin_seen = 0, i;
	struct pkt out;

	for (i = 0; i < 100; i++)
		enqueue(fx, fat, 1500, 0, i);
	for (i = 0; i < 10; i++)
		enqueue(fx, thin, 1500, 0, i);
	for (i = 0; i < 21 && fqcodel_dequeue(fx->q, &out); i++)
		thin_seen += port_of(&out) == thin;
	assert_int_equal(thin_seen, 10);
	/* The rest is the fat flow's, in order. */
	for (uint32_t seq = 11; fqcodel_dequeue(fx->q, &out); seq++) {
		assert_int_equal(port_of(&out), fat);
		assert_int_equal(seq_of(&out), seq);
	}
	assert_true(fqcodel_empty(fx->q));
	fixture_free(fx);
}

/* A flow that arrives while a fat one is busy is served next, not after the fat one's turn. */
static void test_sparse_flow_priority(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(10000, 4 << 20, false);
	uint16_t fat = 1000, sparse = distinct_port(fx, fat, 3000);
	struct pkt out;

	for (uint32_t i = 0; i < 50; i++)
		enqueue(fx, fat, 1500, 0, i);
	for (int i = 0; i < 5; i++)
		assert_true(fqcodel_dequeue(fx->q, &out));
	enqueue(fx, sparse, 84, 0, 0);
	assert_true(fqcodel_dequeue(fx->q, &out));
	assert_int_equal(port_of(&out), sparse);
	assert_int_equal(out.len, 84);
	assert_true(fqcodel_dequeue(fx->q, &out));
	assert_int_equal(port_of(&out), fat);
	assert_int_equal(stats(fx).new_flows, 2);
	fixture_free(fx);
}

/*
 * One flow with a standing queue of 20 packets, one in and one out each
 * ms: its head waits 5 ms from t = 5 ms on, so CoDel signals first at
 * 5 + 100 ms, then interval/sqrt(count) after each: 100, 70.7, 57.7, 50 ms.
 * Returns how many signals came at the expected times.
 */
static void run_codel_schedule(struct fixture *fx, uint8_t tos, uint64_t *(*counter)(struct fqcodel_stats *))
{
	const uint64_t expect_ms[] = { 105, 205, 276, 334, 384 };
	struct fqcodel_stats st;
	uint64_t last = 0;
	unsigned hits = 0;
	struct pkt out;

	for (uint32_t i = 0; i < 20; i++)
		enqueue(fx, 1000, 1000, tos, i);
	for (uint64_t t = 1; t <= 390; t++) {
		fx->now = t * MS;
		enqueue(fx, 1000, 1000, tos, 1000 + (uint32_t)t);
		assert_true(fqcodel_dequeue(fx->q, &out));
		if (tos)
			assert_int_equal(pkt_inet_csum(NULL, 0, out.data, 20), 0);
		st = stats(fx);
		if (*counter(&st) == last)
			continue;
		assert_true(hits < sizeof(expect_ms) / sizeof(expect_ms[0]));
		assert_int_equal(t, expect_ms[hits]);
		assert_int_equal(*counter(&st), last + 1);
		if (tos)
			assert_int_equal(out.data[1] & 3, 3); /* the packet handed out is the marked one */
		last = *counter(&st);
		hits++;
	}
	assert_int_equal(hits, 5);
}

static uint64_t *drops_of(struct fqcodel_stats *st)
{
	return &st->drops_codel;
}

static uint64_t *marks_of(struct fqcodel_stats *st)
{
	return &st->marks_ce;
}

static void test_codel_drop_schedule(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(10000, 4 << 20, true);

	run_codel_schedule(fx, 0, drops_of); /* Not-ECT: dropped even with ecn on */
	assert_int_equal(stats(fx).marks_ce, 0);
	fixture_free(fx);
}

static void test_codel_mark_schedule(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(10000, 4 << 20, true);

	run_codel_schedule(fx, 2, marks_of); /* ECT(0) */
	assert_int_equal(stats(fx).drops_codel, 0);
	fixture_free(fx);
}

/* Below target, or with less than one quantum queued, nothing is ever dropped. */
static void test_codel_quiet_below_target(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(10000, 4 << 20, false);
	struct pkt out;

	for (uint64_t t = 0; t < 1000; t++) {
		fx->now = t * MS;
		enqueue(fx, 1000, 1000, 0, (uint32_t)t);
		enqueue(fx, 1000, 1000, 0, (uint32_t)t);
		fx->now += 4 * MS;
		assert_true(fqcodel_dequeue(fx->q, &out));
		assert_true(fqcodel_dequeue(fx->q, &out));
	}
	assert_int_equal(stats(fx).drops_codel, 0);
	assert_int_equal(stats(fx).sojourn_max_us, 4000);
	fixture_free(fx);
}

/* Over the packet limit the fattest flow loses packets from its head; a thin flow keeps its own. */
static void test_packet_limit_drops_fattest(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(16, 4 << 20, false);
	uint16_t fat = 1000, thin = distinct_port(fx, fat, 4000);
	struct fqcodel_stats st;
	unsigned thin_seen = 0;
	uint32_t fat_first = UINT32_MAX;
	struct pkt out;

	enqueue(fx, thin, 100, 0, 0);
	enqueue(fx, thin, 100, 0, 1);
	for (uint32_t i = 0; i < 100; i++)
		enqueue(fx, fat, 1000, 0, i);
	st = stats(fx);
	assert_true(st.backlog_packets <= 16);
	assert_int_equal(st.drops_overlimit, 102 - st.backlog_packets);
	while (fqcodel_dequeue(fx->q, &out)) {
		if (port_of(&out) == thin)
			thin_seen++;
		else if (fat_first == UINT32_MAX)
			fat_first = seq_of(&out);
	}
	assert_int_equal(thin_seen, 2);
	assert_true(fat_first > 80); /* head drops: the newest of the fat flow stay */
	fixture_free(fx);
}

static void test_byte_limit(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(100000, 65536, false);
	struct fqcodel_stats st;

	for (uint32_t i = 0; i < 1000; i++)
		enqueue(fx, (uint16_t)(1000 + i % 7), 1500, 0, i);
	st = stats(fx);
	assert_true(st.backlog_bytes <= 65536);
	assert_true(st.backlog_bytes > 32768);
	assert_int_equal(st.enqueued, 1000);
	assert_int_equal(st.drops_overlimit + st.backlog_packets, 1000);
	fixture_free(fx);
}

/* Many flows, sizes and a small ring that wraps: every packet comes out whole and in flow order. */
static void test_ring_integrity(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(100000, 70000, false);
	uint32_t next_seq[16] = { 0 }, sent[16] = { 0 };
	uint64_t rng = 12345;
	struct pkt out;

	for (int round = 0; round < 20000; round++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		unsigned flow = (unsigned)(rng >> 60), len = 40 + (unsigned)(rng >> 33) % 1400;

		enqueue(fx, (uint16_t)(5000 + flow), len, 0, sent[flow]++);
		if ((rng >> 20) % 3 == 0)
			continue;
		if (!fqcodel_dequeue(fx->q, &out))
			continue;
		unsigned f = port_of(&out) - 5000;

		assert_true(f < 16);
		assert_true(seq_of(&out) >= next_seq[f]); /* later ones may be dropped, never reordered */
		assert_int_equal(pkt_inet_csum(NULL, 0, out.data, 20), 0);
		assert_int_equal(out.data[2] << 8 | out.data[3], out.len);
		next_seq[f] = seq_of(&out) + 1;
	}
	fqcodel_purge(fx->q);
	assert_true(fqcodel_empty(fx->q));
	assert_false(fqcodel_dequeue(fx->q, &out));
	fixture_free(fx);
}

static void test_too_big(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(100, 1 << 20, false);
	static uint8_t big[FQCODEL_PACKET_MAX + 1];
	struct pkt p = { .data = big, .len = sizeof(big) };

	assert_int_equal(fqcodel_enqueue(fx->q, &p), -EMSGSIZE);
	assert_int_equal(stats(fx).drops_too_big, 1);
	assert_true(fqcodel_empty(fx->q));
	fixture_free(fx);
}

static void test_mark_ce(void **state)
{
	(void)state;
	struct fixture *fx = fixture_new(100, 1 << 20, false);
	uint8_t v6[40] = { 0x60 };
	struct pkt p;

	for (uint8_t ecn = 0; ecn < 4; ecn++) {
		p = make_udp(fx, 1, 100, (uint8_t)(0xb8 | ecn), 0); /* DSCP EF stays */
		assert_int_equal(fqcodel_mark_ce(p.data, p.len), ecn != 0);
		assert_int_equal(p.data[1], ecn ? 0xbb : 0xb8);
		assert_int_equal(pkt_inet_csum(NULL, 0, p.data, 20), 0);
	}
	v6[1] = 0x20; /* traffic class 0x02: ECT(0) */
	assert_true(fqcodel_mark_ce(v6, sizeof(v6)));
	assert_int_equal(v6[0], 0x60);
	assert_int_equal(v6[1], 0x30);
	v6[1] = 0x0f; /* Not-ECT, flow label bits set: untouched */
	assert_false(fqcodel_mark_ce(v6, sizeof(v6)));
	assert_int_equal(v6[1], 0x0f);
	assert_false(fqcodel_mark_ce(v6, 10));
	fixture_free(fx);
}

static void test_bad_config(void **state)
{
	(void)state;
	struct fqcodel_config cfg = { .limit_packets = 0, .limit_bytes = 1 << 20 };

	assert_null(fqcodel_new(&cfg));
	assert_int_equal(errno, EINVAL);
	cfg = (struct fqcodel_config){ .limit_packets = 10, .limit_bytes = 1000 };
	assert_null(fqcodel_new(&cfg));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flow_isolation),
		cmocka_unit_test(test_sparse_flow_priority),
		cmocka_unit_test(test_codel_drop_schedule),
		cmocka_unit_test(test_codel_mark_schedule),
		cmocka_unit_test(test_codel_quiet_below_target),
		cmocka_unit_test(test_packet_limit_drops_fattest),
		cmocka_unit_test(test_byte_limit),
		cmocka_unit_test(test_ring_integrity),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_mark_ce),
		cmocka_unit_test(test_bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
