// SPDX-License-Identifier: MIT
/* Unit tests: the datagram channel seals and opens, refuses tampering, replays and old counters, re-keys with overlap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "../../dgram/dgram.h"

enum { SID = 0x11223344, BUF = 2048 };

static const uint8_t secret[DGRAM_SECRET_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

struct pair {
	struct dgram_chan *cli, *srv;
};

static void pair_new(struct pair *p, uint64_t rekey_packets, uint64_t rekey_ms)
{
	p->cli = dgram_chan_new(secret, false, rekey_packets, rekey_ms, 0);
	p->srv = dgram_chan_new(secret, true, rekey_packets, rekey_ms, 0);
	assert_non_null(p->cli);
	assert_non_null(p->srv);
}

static void pair_free(struct pair *p)
{
	dgram_chan_free(p->cli);
	dgram_chan_free(p->srv);
}

/* Seals msg from a into buf; returns the datagram length. */
static long seal(struct dgram_chan *a, const char *msg, uint8_t *buf, uint64_t now)
{
	long n = dgram_seal(a, SID, 0, (const uint8_t *)msg, strlen(msg), buf, BUF, now);

	assert_true(n == (long)strlen(msg) + DGRAM_OVERHEAD);
	return n;
}

/* Opens a copy of the datagram (so that it can be offered again); result of dgram_open. */
static long open_copy(struct dgram_chan *b, const uint8_t *dg, long n, uint8_t *plain)
{
	uint8_t copy[BUF];
	struct dgram_header h;
	long ret;

	memcpy(copy, dg, (size_t)n);
	if (dgram_parse_header(copy, (size_t)n, &h) < 0)
		return -DGRAM_DROP_MALFORMED;
	assert_int_equal(h.session_id, SID);
	ret = dgram_open(b, &h, copy, (size_t)n);
	if (ret >= 0 && plain)
		memcpy(plain, copy + DGRAM_HEADER_LEN, (size_t)ret);
	return ret;
}

static void test_round_trip(void **state)
{
	struct pair p;
	uint8_t dg[BUF], plain[BUF];
	long n;

	(void)state;
	pair_new(&p, 0, 0);
	n = seal(p.cli, "hello server", dg, 0);
	assert_int_equal(open_copy(p.srv, dg, n, plain), 12);
	assert_memory_equal(plain, "hello server", 12);
	n = seal(p.srv, "hello client", dg, 0);
	assert_int_equal(open_copy(p.cli, dg, n, plain), 12);
	assert_memory_equal(plain, "hello client", 12);
	/* Directions have their own keys: our own datagram does not open here. */
	n = seal(p.cli, "reflected", dg, 0);
	assert_int_equal(open_copy(p.cli, dg, n, NULL), -DGRAM_DROP_AUTH);
	/* An empty plaintext (probe, keepalive) is authenticated too. */
	n = dgram_seal(p.cli, SID, DGRAM_F_PROBE, NULL, 0, dg, BUF, 0);
	assert_int_equal(n, DGRAM_OVERHEAD);
	assert_int_equal(open_copy(p.srv, dg, n, NULL), 0);
	pair_free(&p);
}

static void test_in_place(void **state)
{
	struct pair p;
	uint8_t dg[BUF], plain[BUF];
	long n;

	(void)state;
	pair_new(&p, 0, 0);
	memcpy(dg + DGRAM_HEADER_LEN, "in place", 8);
	n = dgram_seal(p.cli, SID, 0, dg + DGRAM_HEADER_LEN, 8, dg, BUF, 0);
	assert_int_equal(n, 8 + DGRAM_OVERHEAD);
	assert_int_equal(open_copy(p.srv, dg, n, plain), 8);
	assert_memory_equal(plain, "in place", 8);
	assert_int_equal(dgram_seal(p.cli, SID, 0, dg, 8, dg, 8 + DGRAM_OVERHEAD - 1, 0), -ENOSPC);
	pair_free(&p);
}

/* Any bit flipped, header or ciphertext or tag, fails the tag; the next genuine one still opens. */
static void test_tamper(void **state)
{
	struct pair p;
	uint8_t dg[BUF], bad[BUF];
	long n;

	(void)state;
	pair_new(&p, 0, 0);
	n = seal(p.cli, "do not touch", dg, 0);
	for (long i = 0; i < n; i++) {
		struct dgram_header h;

		memcpy(bad, dg, (size_t)n);
		bad[i] ^= 0x01;
		if (dgram_parse_header(bad, (size_t)n, &h) < 0)
			continue; /* version or reserved byte: malformed before any AEAD */
		if (h.session_id != SID)
			continue; /* the server would not find a channel for it */
		assert_true(dgram_open(p.srv, &h, bad, (size_t)n) < 0);
	}
	assert_int_equal(open_copy(p.srv, dg, n, NULL), 12);
	/* Truncated: shorter than header and tag is malformed. */
	assert_int_equal(open_copy(p.srv, dg, DGRAM_OVERHEAD - 1, NULL), -DGRAM_DROP_MALFORMED);
	pair_free(&p);
}

static void test_header_parser(void **state)
{
	uint8_t buf[DGRAM_OVERHEAD] = { DGRAM_VERSION, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0, 0, 0, 1, 2 };
	struct dgram_header h;

	(void)state;
	assert_int_equal(dgram_parse_header(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.session_id, 0xaabbccdd);
	assert_true(h.counter == 0x102);
	buf[0] = 2;
	assert_int_equal(dgram_parse_header(buf, sizeof(buf), &h), -DGRAM_DROP_MALFORMED);
	buf[0] = DGRAM_VERSION, buf[1] = 0x08;
	assert_int_equal(dgram_parse_header(buf, sizeof(buf), &h), -DGRAM_DROP_MALFORMED);
	buf[1] = DGRAM_F_PROBE | DGRAM_F_PROBE_REPLY;
	assert_int_equal(dgram_parse_header(buf, sizeof(buf), &h), -DGRAM_DROP_MALFORMED);
	buf[1] = 0, buf[3] = 1;
	assert_int_equal(dgram_parse_header(buf, sizeof(buf), &h), -DGRAM_DROP_MALFORMED);
	buf[3] = 0;
	assert_int_equal(dgram_parse_header(buf, sizeof(buf) - 1, &h), -DGRAM_DROP_MALFORMED);
}

static void test_replay(void **state)
{
	static uint8_t dgs[8][BUF];
	long n[8];
	struct pair p;

	(void)state;
	pair_new(&p, 0, 0);
	for (int i = 0; i < 8; i++)
		n[i] = seal(p.cli, "packet", dgs[i], 0);
	/* Out of order is fine, twice is not. */
	assert_true(open_copy(p.srv, dgs[3], n[3], NULL) >= 0);
	assert_true(open_copy(p.srv, dgs[1], n[1], NULL) >= 0);
	assert_true(open_copy(p.srv, dgs[7], n[7], NULL) >= 0);
	assert_int_equal(open_copy(p.srv, dgs[3], n[3], NULL), -DGRAM_DROP_REPLAY);
	assert_int_equal(open_copy(p.srv, dgs[7], n[7], NULL), -DGRAM_DROP_REPLAY);
	assert_true(open_copy(p.srv, dgs[0], n[0], NULL) >= 0);
	assert_int_equal(open_copy(p.srv, dgs[0], n[0], NULL), -DGRAM_DROP_REPLAY);
	/* A forged copy of a genuine one's counter must not burn that counter. */
	dgs[5][n[5] - 1] ^= 1;
	assert_int_equal(open_copy(p.srv, dgs[5], n[5], NULL), -DGRAM_DROP_AUTH);
	dgs[5][n[5] - 1] ^= 1;
	assert_true(open_copy(p.srv, dgs[5], n[5], NULL) >= 0);
	pair_free(&p);
}

/* A counter more than the window behind the highest is refused without an AEAD; within it, accepted once. */
static void test_old_window(void **state)
{
	static uint8_t first[BUF], inside[BUF], dg[BUF];
	long n_first, n_inside = 0, n = 0;
	struct pair p;

	(void)state;
	pair_new(&p, 0, 0);
	n_first = seal(p.cli, "old", first, 0);
	for (int i = 1; i <= DGRAM_REPLAY_WINDOW + 1; i++) {
		if (i == 100)
			n_inside = seal(p.cli, "inside", inside, 0);
		else
			n = seal(p.cli, "filler", dg, 0);
	}
	/* Highest counter is now DGRAM_REPLAY_WINDOW + 1: counter 0 is out, 100 is in. */
	assert_true(open_copy(p.srv, dg, n, NULL) >= 0);
	assert_int_equal(open_copy(p.srv, first, n_first, NULL), -DGRAM_DROP_REPLAY);
	assert_true(open_copy(p.srv, inside, n_inside, NULL) >= 0);
	assert_int_equal(open_copy(p.srv, inside, n_inside, NULL), -DGRAM_DROP_REPLAY);
	pair_free(&p);
}

/* A datagram naming another session's id finds no key here: the caller counts it; this key refuses it. */
static void test_unknown_session(void **state)
{
	struct dgram_chan *other = dgram_chan_new((const uint8_t *)"another secret, 32 bytes long...", false, 0, 0, 0);
	struct pair p;
	uint8_t dg[BUF];
	long n;

	(void)state;
	assert_non_null(other);
	pair_new(&p, 0, 0);
	n = seal(other, "from someone else", dg, 0);
	assert_int_equal(open_copy(p.srv, dg, n, NULL), -DGRAM_DROP_AUTH);
	/* The refusal changed nothing: counter 0 of the genuine peer still opens. */
	n = seal(p.cli, "genuine", dg, 0);
	assert_int_equal(open_copy(p.srv, dg, n, NULL), 7);
	dgram_chan_free(other);
	pair_free(&p);
}

/* Re-key by packet count: both sides follow, and late datagrams of the old key still open. */
static void test_rekey_overlap(void **state)
{
	static uint8_t late[BUF], dg[BUF];
	long n_late, n;
	struct pair p;

	(void)state;
	pair_new(&p, 4, 0);
	for (int i = 0; i < 3; i++) {
		n = seal(p.cli, "epoch 0", dg, 0);
		assert_int_equal(open_copy(p.srv, dg, n, NULL), 7);
	}
	n_late = seal(p.cli, "epoch 0 late", late, 0); /* 4th of epoch 0, held back */
	n = seal(p.cli, "epoch 1", dg, 0);              /* the limit: a new key */
	assert_int_equal(dgram_rekeys(p.cli), 1);
	assert_true((dg[1] & DGRAM_F_PHASE) != (late[1] & DGRAM_F_PHASE));
	assert_int_equal(open_copy(p.srv, dg, n, NULL), 7);
	assert_int_equal(dgram_rekeys(p.srv), 1);
	/* The old key is still valid for the late one, once. */
	assert_int_equal(open_copy(p.srv, late, n_late, NULL), 12);
	assert_int_equal(open_copy(p.srv, late, n_late, NULL), -DGRAM_DROP_REPLAY);
	/* Many epochs on, every datagram opens and the receiver keeps up. */
	for (int i = 0; i < 40; i++) {
		n = seal(p.cli, "onwards", dg, 0);
		assert_int_equal(open_copy(p.srv, dg, n, NULL), 7);
	}
	assert_int_equal(dgram_rekeys(p.cli), 11);
	assert_int_equal(dgram_rekeys(p.srv), 11);
	pair_free(&p);
}

/* Re-key by time: the first datagram after the limit goes out under the next key. */
static void test_rekey_time(void **state)
{
	uint8_t dg[BUF];
	struct pair p;
	long n;

	(void)state;
	pair_new(&p, 0, 1000);
	n = seal(p.cli, "t0", dg, 10);
	assert_int_equal(open_copy(p.srv, dg, n, NULL), 2);
	n = seal(p.cli, "t1", dg, 1010);
	assert_int_equal(dgram_rekeys(p.cli), 1);
	assert_int_equal(open_copy(p.srv, dg, n, NULL), 2);
	assert_int_equal(dgram_rekeys(p.srv), 1);
	pair_free(&p);
}

/* The counter never wraps: a channel near the limit stops sealing; the receiver refuses such counters. */
static void test_counter_limit(void **state)
{
	uint8_t dg[BUF];
	struct dgram_header h = { .session_id = SID, .counter = DGRAM_COUNTER_LIMIT };
	struct pair p;
	long n;

	(void)state;
	pair_new(&p, 0, 0);
	n = seal(p.cli, "x", dg, 0);
	assert_int_equal(dgram_open(p.srv, &h, dg, (size_t)n), -DGRAM_DROP_REPLAY);
	pair_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_in_place),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_header_parser),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_old_window),
		cmocka_unit_test(test_unknown_session),
		cmocka_unit_test(test_rekey_overlap),
		cmocka_unit_test(test_rekey_time),
		cmocka_unit_test(test_counter_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
