// SPDX-License-Identifier: MIT
/* Unit tests of base/gro.h: merged packets checked field by field, and cut again by pkt_segment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../base/gro.h"
#include "../../base/gso.h"
#include "../../base/offload.h"
#include "pkt_fixture.h"

enum {
	PROTO_ICMP = 1,
	PROTO_TCP = 6,
	PROTO_UDP = 17,
	F_FIN = 0x01, F_SYN = 0x02, F_PSH = 0x08, F_ACK = 0x10, F_URG = 0x20,
	SLOT = 2048,
	TCP_OPT_LEN = 12, /* NOP NOP and a timestamp, as Linux sends */
};

/* ---- building segments as the far end's segmenter sends them ---- */

struct seg_spec {
	unsigned version;
	uint8_t proto;       /* PROTO_TCP unless set */
	uint32_t seq, ack;
	size_t payload;
	uint8_t flags;       /* F_ACK unless set */
	uint16_t ip_id;
	uint16_t frag;       /* IPv4 flags and offset: DF unless set */
	bool frag_set;
	uint8_t ttl, tos;
	uint16_t sport, window;
	uint8_t tsval;       /* the timestamp option's last byte */
	size_t ip_opt_len;
	bool bad_csum;
};

static struct seg_spec spec(unsigned version, uint32_t seq, size_t payload)
{
	return (struct seg_spec){ .version = version, .proto = PROTO_TCP, .seq = seq, .ack = 0x01020304,
				  .payload = payload, .flags = F_ACK, .ip_id = (uint16_t)(seq / 1000),
				  .ttl = 64, .sport = 40000, .window = 512 };
}

/* The payload byte at sequence number n: merged payloads can be checked against it. */
static uint8_t stream_byte(uint32_t n)
{
	return (uint8_t)(n * 31 + 7 + (n >> 8));
}

static size_t build_ip(uint8_t *buf, const struct seg_spec *s, size_t len)
{
	static const uint8_t v6_addrs[32] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
					      0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	size_t ihl = 20 + s->ip_opt_len;

	if (s->version == 4) {
		buf[0] = (uint8_t)(0x40 | ihl / 4);
		buf[1] = s->tos;
		put_be16(buf + 2, (uint16_t)len);
		put_be16(buf + 4, s->ip_id);
		put_be16(buf + 6, s->frag_set ? s->frag : 0x4000);
		buf[8] = s->ttl;
		buf[9] = s->proto;
		memcpy(buf + 12, (uint8_t[]){ 10, 8, 0, 2, 10, 9, 0, 1 }, 8);
		memset(buf + 20, 1, s->ip_opt_len);
		put_be16(buf + 10, (uint16_t)~ref_fold(ref_sum(0, buf, ihl)));
		return ihl;
	}
	put_be32(buf, 0x6002abcd | (uint32_t)s->tos << 20);
	put_be16(buf + 4, (uint16_t)(len - 40));
	buf[6] = s->proto;
	buf[7] = s->ttl;
	memcpy(buf + 8, v6_addrs, 32);
	return 40;
}

/* A plain packet with valid checksums (unless bad_csum) into buf. */
static struct pkt build(uint8_t *buf, const struct seg_spec *s)
{
	size_t l3 = s->version == 4 ? 20 + s->ip_opt_len : 40;
	size_t l4 = s->proto == PROTO_TCP ? 20 + TCP_OPT_LEN : 8, len = l3 + l4 + s->payload;
	uint8_t *tcp = buf + l3;

	assert_true(len <= SLOT);
	memset(buf, 0, l3 + l4);
	build_ip(buf, s, len);
	put_be16(tcp, s->sport);
	put_be16(tcp + 2, 5201);
	for (size_t i = 0; i < s->payload; i++)
		buf[l3 + l4 + i] = stream_byte(s->seq + (uint32_t)i);
	if (s->proto != PROTO_TCP) {
		put_be16(tcp + 4, (uint16_t)(l4 + s->payload));
		return (struct pkt){ .data = buf, .len = (uint32_t)len };
	}
	put_be32(tcp + 4, s->seq);
	put_be32(tcp + 8, s->ack);
	tcp[12] = (20 + TCP_OPT_LEN) / 4 << 4;
	tcp[13] = s->flags;
	put_be16(tcp + 14, s->window);
	memcpy(tcp + 20, (uint8_t[]){ 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, s->tsval }, TCP_OPT_LEN);
	put_be16(tcp + 16, (uint16_t)~ref_fold(ref_sum(ref_pseudo(buf, len - l3, PROTO_TCP), tcp, len - l3)));
	if (s->bad_csum)
		tcp[16] ^= 0x40;
	return (struct pkt){ .data = buf, .len = (uint32_t)len };
}

/* ---- a batch of them, and what comes out ---- */

static uint8_t slots[PKT_BATCH_MAX][SLOT];
static uint8_t arena[PKT_COALESCE_ARENA];

struct run {
	struct pkt_batch batch;
	struct pkt in[PKT_BATCH_MAX];
	unsigned count;
	unsigned merged;
};

static void add(struct run *r, const struct seg_spec *s)
{
	assert_true(r->count < PKT_BATCH_MAX);
	r->in[r->count] = build(slots[r->count], s);
	r->batch.pkts[r->count] = r->in[r->count];
	r->batch.count = ++r->count;
}

/* Adds n contiguous segments of size bytes from seq on, the last with last_flags. */
static void add_run(struct run *r, struct seg_spec s, unsigned n, uint8_t last_flags)
{
	for (unsigned i = 0; i < n; i++) {
		s.flags = i + 1 == n ? last_flags : F_ACK;
		add(r, &s);
		s.seq += (uint32_t)s.payload;
		s.ip_id++;
	}
}

static void coalesce(struct run *r, size_t arena_len)
{
	r->merged = pkt_coalesce(&r->batch, arena, arena_len);
	assert_int_equal(r->batch.count + r->merged, r->count);
}

/* An output packet that is input i, untouched. */
static void assert_same(const struct run *r, unsigned out, unsigned i)
{
	assert_ptr_equal(r->batch.pkts[out].data, r->in[i].data);
	assert_int_equal(r->batch.pkts[out].len, r->in[i].len);
	assert_true(pkt_is_plain(&r->batch.pkts[out]));
}

/* ---- checking a merged packet ---- */

static uint8_t scratch[PKT_SEGMENT_SCRATCH];

struct cut {
	const struct run *r;
	const unsigned *idx; /* the inputs it merged, in order */
	unsigned count;
};

/* pkt_segment gives back exactly the segments that went in (checksums, IDs, flags and all). */
static int compare_segment(void *ctx, const struct pkt *seg)
{
	struct cut *c = ctx;
	const struct pkt *want = &c->r->in[c->idx[c->count]];

	assert_int_equal(seg->len, want->len);
	assert_memory_equal(seg->data, want->data, want->len);
	c->count++;
	return 0;
}

/* Output out is one GSO packet of the n inputs idx, each of gso payload bytes but the last. */
static void assert_merged_fields(const struct run *r, unsigned out, const unsigned *idx, unsigned n,
				 uint16_t gso)
{
	const struct pkt *m = &r->batch.pkts[out], *head = &r->in[idx[0]];
	size_t l3 = (head->data[0] >> 4) == 4 ? 20 : 40, hdr = l3 + 20 + TCP_OPT_LEN, len = hdr;
	uint8_t last_flags = r->in[idx[n - 1]].data[l3 + 13];

	for (unsigned i = 0; i < n; i++)
		len += r->in[idx[i]].len - hdr;
	assert_true(m->data >= arena && m->data + m->len <= arena + sizeof(arena));
	assert_int_equal(m->len, len);
	assert_true(m->len <= PKT_COALESCE_MAX);
	assert_int_equal(m->off.flags, PKT_F_NEEDS_CSUM);
	assert_int_equal(m->off.gso_type, l3 == 20 ? PKT_GSO_TCPV4 : PKT_GSO_TCPV6);
	assert_int_equal(m->off.gso_size, gso);
	assert_int_equal(m->off.hdr_len, hdr);
	assert_int_equal(m->off.csum_start, l3);
	assert_int_equal(m->off.csum_offset, 16);
	assert_int_equal(offload_check(m, NULL), 0);
	assert_true(offload_csum_is_pseudo(m->data, m->len));
	assert_int_equal(m->data[l3 + 13], F_ACK | (last_flags & F_PSH));
	if (l3 == 20) {
		assert_int_equal(get_be16(m->data + 2), len);
		assert_int_equal(ref_fold(ref_sum(0, m->data, 20)), 0xffff);
	} else {
		assert_int_equal(get_be16(m->data + 4), len - 40);
	}
	for (size_t i = 0; i < len - hdr; i++)
		assert_int_equal(m->data[hdr + i], stream_byte(get_be32(head->data + l3 + 4) + (uint32_t)i));
}

static void assert_merged(const struct run *r, unsigned out, const unsigned *idx, unsigned n, uint16_t gso)
{
	struct cut c = { .r = r, .idx = idx };

	assert_merged_fields(r, out, idx, n, gso);
	assert_int_equal(pkt_segment(&r->batch.pkts[out], scratch, sizeof(scratch), compare_segment, &c), n);
	assert_int_equal(c.count, n);
}

/* ---- merging ---- */

static void test_merge_tcpv4(void **state)
{
	struct run r = { 0 };

	(void)state;
	add_run(&r, spec(4, 1000, 1000), 4, F_ACK | F_PSH);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 1);
	assert_merged(&r, 0, (unsigned[]){ 0, 1, 2, 3 }, 4, 1000);
}

static void test_merge_tcpv6_short_last(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(6, 0xfffffc00, 1200); /* the sequence number wraps inside */

	(void)state;
	add_run(&r, s, 4, F_ACK);
	s.seq += 4 * 1200;
	s.payload = 301;
	s.flags = F_ACK | F_PSH;
	add(&r, &s);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 1);
	assert_merged(&r, 0, (unsigned[]){ 0, 1, 2, 3, 4 }, 5, 1200);
}

static void test_short_segment_ends_group(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000);

	(void)state;
	add(&r, &s);
	s.seq = 1000, s.payload = 500, s.ip_id++;
	add(&r, &s);
	s.seq = 1500, s.payload = 1000, s.ip_id++;
	add(&r, &s);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 2);
	assert_merged(&r, 0, (unsigned[]){ 0, 1 }, 2, 1000);
	assert_same(&r, 1, 2);
}

static void test_flows_kept_apart(void **state)
{
	struct run r = { 0 };
	struct seg_spec a = spec(4, 0, 1000), b = spec(4, 50000, 1000), c = spec(6, 0, 1000);

	(void)state;
	b.sport = 40001;
	for (int i = 0; i < 3; i++) {
		add(&r, &a);
		add(&r, &b);
		add(&r, &c);
		a.seq += 1000, a.ip_id++;
		b.seq += 1000, b.ip_id++;
		c.seq += 1000;
	}
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 3);
	assert_merged(&r, 0, (unsigned[]){ 0, 3, 6 }, 3, 1000);
	assert_merged(&r, 1, (unsigned[]){ 1, 4, 7 }, 3, 1000);
	assert_merged(&r, 2, (unsigned[]){ 2, 5, 8 }, 3, 1000);
}

static void test_gap(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000);

	(void)state;
	add(&r, &s);
	s.seq = 2000, s.ip_id++; /* 1000..1999 missing */
	add(&r, &s);
	s.seq = 1000, s.ip_id++; /* the missing one late: not put back in front */
	add(&r, &s);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.merged, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_same(&r, i, i);
}

/* The second segment differs from the first in one way: no merge. */
static void check_no_merge(void (*change)(struct seg_spec *s))
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000);

	add(&r, &s);
	s.seq += 1000, s.ip_id++;
	change(&s);
	add(&r, &s);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.merged, 0);
	assert_same(&r, 0, 0);
	assert_same(&r, 1, 1);
}

static void fin(struct seg_spec *s) { s->flags = F_ACK | F_FIN; }
static void syn(struct seg_spec *s) { s->flags = F_ACK | F_SYN; }
static void urg(struct seg_spec *s) { s->flags = F_ACK | F_URG; }
static void no_ack(struct seg_spec *s) { s->flags = F_PSH; }
static void ack_no(struct seg_spec *s) { s->ack++; }
static void window(struct seg_spec *s) { s->window++; }
static void option(struct seg_spec *s) { s->tsval++; }
static void ttl(struct seg_spec *s) { s->ttl--; }
static void tos(struct seg_spec *s) { s->tos = 0x10; }
static void df_off(struct seg_spec *s) { s->frag_set = true, s->frag = 0; }
static void ip_id_jump(struct seg_spec *s) { s->ip_id += 2; }
static void ip_options(struct seg_spec *s) { s->ip_opt_len = 4; }
static void more_fragments(struct seg_spec *s) { s->frag_set = true, s->frag = 0x2000; }
static void longer(struct seg_spec *s) { s->payload = 1001; }
static void bad_csum(struct seg_spec *s) { s->bad_csum = true; }

static void test_differences(void **state)
{
	void (*changes[])(struct seg_spec *) = { fin, syn, urg, no_ack, ack_no, window, option, ttl, tos,
						 df_off, ip_id_jump, ip_options, more_fragments, longer,
						 bad_csum };

	(void)state;
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
		check_no_merge(changes[i]);
}

static void test_psh_ends_group(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(6, 0, 1000);

	(void)state;
	add_run(&r, s, 2, F_ACK | F_PSH);
	s.seq = 2000;
	add_run(&r, s, 2, F_ACK);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 2);
	assert_merged(&r, 0, (unsigned[]){ 0, 1 }, 2, 1000);
	assert_merged(&r, 1, (unsigned[]){ 2, 3 }, 2, 1000);
}

static void test_fixed_id_with_df(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000);

	(void)state;
	s.ip_id = 0;
	for (int i = 0; i < 3; i++, s.seq += 1000)
		add(&r, &s);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 1);
	/* pkt_segment would number them: compared field by field only. */
	assert_merged_fields(&r, 0, (unsigned[]){ 0, 1, 2 }, 3, 1000);
}

static void test_bad_checksum_not_laundered(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000);

	(void)state;
	/* First segment bad: it goes alone, the rest merge behind it. */
	s.bad_csum = true;
	add(&r, &s);
	s.bad_csum = false;
	s.seq += 1000, s.ip_id++;
	add_run(&r, s, 2, F_ACK);
	/* A bad one in the middle of a run: it stays alone and splits the run. */
	s.seq += 2000, s.ip_id += 2;
	add(&r, &s);
	s.seq += 1000, s.ip_id++, s.bad_csum = true;
	add(&r, &s);
	s.seq += 1000, s.ip_id++, s.bad_csum = false;
	add_run(&r, s, 2, F_ACK);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 4);
	assert_same(&r, 0, 0);
	assert_merged(&r, 1, (unsigned[]){ 1, 2, 3 }, 3, 1000);
	assert_same(&r, 2, 4);
	assert_merged(&r, 3, (unsigned[]){ 5, 6 }, 2, 1000);
}

/* ---- what passes through ---- */

static void test_other_protocols_pass(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000), u = spec(4, 0, 100), i = spec(6, 0, 56);

	(void)state;
	u.proto = PROTO_UDP;
	i.proto = PROTO_ICMP;
	add(&r, &s);
	add(&r, &u);
	add(&r, &i);
	s.seq += 1000, s.ip_id++;
	add(&r, &s);
	add(&r, &u);
	coalesce(&r, sizeof(arena));
	/* Not of the flow: they neither merge nor stop it from merging, and keep their order. */
	assert_int_equal(r.batch.count, 4);
	assert_merged(&r, 0, (unsigned[]){ 0, 3 }, 2, 1000);
	assert_same(&r, 1, 1);
	assert_same(&r, 2, 2);
	assert_same(&r, 3, 4);
}

static void test_other_tcp_stops_flow(void **state)
{
	struct run r = { 0 };
	struct seg_spec s = spec(4, 0, 1000), ack = spec(4, 1000, 0);
	struct pkt gso;

	(void)state;
	add(&r, &s);
	ack.ip_id = 1;
	add(&r, &ack); /* a pure ACK of the flow between two segments */
	s.seq += 1000, s.ip_id = 2;
	add(&r, &s);
	s.seq += 1000, s.ip_id++;
	add(&r, &s);
	coalesce(&r, sizeof(arena));
	/* The later segments do not jump over it; they merge behind it. */
	assert_int_equal(r.batch.count, 3);
	assert_same(&r, 0, 0);
	assert_same(&r, 1, 1);
	assert_merged(&r, 2, (unsigned[]){ 2, 3 }, 2, 1000);

	/* An offload packet (from the TLS path) of the flow: never merged, stops the flow too. */
	memset(&r, 0, sizeof(r));
	s = spec(4, 0, 1000);
	add(&r, &s);
	s.seq += 1000, s.ip_id++;
	add(&r, &s);
	gso = r.in[1];
	gso.off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 16 };
	r.batch.pkts[1] = r.in[1] = gso;
	s.seq += 1000, s.ip_id++;
	add(&r, &s);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.merged, 0);
	assert_int_equal(r.batch.pkts[1].off.flags, PKT_F_NEEDS_CSUM);
}

static void test_size_limit(void **state)
{
	struct run r = { 0 };
	unsigned first[46], second[14];

	(void)state;
	/* 52 header bytes + 46 * 1400 = 64452; one more would pass 65535. */
	add_run(&r, spec(4, 7, 1400), 60, F_ACK);
	coalesce(&r, sizeof(arena));
	assert_int_equal(r.batch.count, 2);
	for (unsigned i = 0; i < 46; i++)
		first[i] = i;
	for (unsigned i = 0; i < 14; i++)
		second[i] = 46 + i;
	assert_merged(&r, 0, first, 46, 1400);
	assert_merged(&r, 1, second, 14, 1400);
}

static void test_arena_full(void **state)
{
	struct run r = { 0 };

	(void)state;
	add_run(&r, spec(4, 0, 1000), 3, F_ACK);
	add_run(&r, spec(6, 0, 1000), 3, F_ACK);
	/* Room for the first group only: the second goes out as it came. */
	coalesce(&r, 3 * 1052);
	assert_int_equal(r.batch.count, 4);
	assert_merged(&r, 0, (unsigned[]){ 0, 1, 2 }, 3, 1000);
	for (unsigned i = 1; i < 4; i++)
		assert_same(&r, i, i + 2);
}

static void test_garbage(void **state)
{
	static uint8_t junk[8][128];
	struct pkt_batch b = { 0 };
	struct pkt_batch copy;

	(void)state;
	/* Lengths the headers do not fit: IHL 15, TCP data offset 15, version 6 too short, empty. */
	for (unsigned i = 0; i < 8; i++) {
		memset(junk[i], 0, sizeof(junk[i]));
		b.pkts[i] = (struct pkt){ .data = junk[i], .len = 40 };
	}
	junk[0][0] = 0x4f, junk[0][9] = PROTO_TCP;
	junk[1][0] = 0x45, junk[1][9] = PROTO_TCP, junk[1][32] = 0xf0, junk[1][33] = F_ACK;
	junk[2][0] = 0x60, junk[2][6] = PROTO_TCP, b.pkts[2].len = 39;
	b.pkts[3].len = 0;
	junk[4][0] = 0x45, junk[4][9] = PROTO_TCP, junk[4][3] = 40, junk[4][32] = 0x50, junk[4][33] = F_ACK;
	memcpy(junk[5], junk[4], 128); /* a second one: no payload, so nothing to merge */
	b.count = 8;
	copy = b;
	assert_int_equal(pkt_coalesce(&b, arena, sizeof(arena)), 0);
	assert_memory_equal(&b, &copy, sizeof(b));
	b.count = PKT_BATCH_MAX + 1; /* a caller's bug: refused, not followed */
	assert_int_equal(pkt_coalesce(&b, arena, sizeof(arena)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_tcpv4),
		cmocka_unit_test(test_merge_tcpv6_short_last),
		cmocka_unit_test(test_short_segment_ends_group),
		cmocka_unit_test(test_flows_kept_apart),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_differences),
		cmocka_unit_test(test_psh_ends_group),
		cmocka_unit_test(test_fixed_id_with_df),
		cmocka_unit_test(test_bad_checksum_not_laundered),
		cmocka_unit_test(test_other_protocols_pass),
		cmocka_unit_test(test_other_tcp_stops_flow),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_arena_full),
		cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
