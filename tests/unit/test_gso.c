// SPDX-License-Identifier: MIT
/* Unit tests of base/gso.h: segments checked field by field with a checksum of the test's own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/gso.h"
#include "../../base/offload.h"
#include "pkt_fixture.h"

enum {
	PROTO_TCP = 6,
	PROTO_UDP = 17,
	PROTO_DSTOPTS = 60,
	F_FIN = 0x01, F_PSH = 0x08, F_ACK = 0x10, F_CWR = 0x80,
	MAX_SEGS = 2048,
};

/* ---- building packets as a TUN device with offload hands them over ---- */

struct gso_spec {
	unsigned version;
	size_t ip_opt_len;  /* IPv4 options, a multiple of 4 */
	size_t ext_len;     /* IPv6 destination options header, a multiple of 8; 0: none */
	size_t tcp_opt_len; /* a multiple of 4 */
	size_t payload;
	uint16_t mss;
	uint8_t flags;
	uint32_t seq;
	uint16_t ip_id;
};

static uint8_t payload_byte(size_t i)
{
	return (uint8_t)(i * 31 + 7 + (i >> 8));
}

static size_t build_ip(uint8_t *buf, const struct gso_spec *s, size_t len, uint8_t proto)
{
	static const uint8_t v6_src[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
	static const uint8_t v6_dst[16] = { 0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	size_t ihl = 20 + s->ip_opt_len;

	if (s->version == 4) {
		buf[0] = (uint8_t)(0x40 | ihl / 4);
		buf[1] = 0x02; /* ECT(0) */
		put_be16(buf + 2, (uint16_t)len);
		put_be16(buf + 4, s->ip_id);
		put_be16(buf + 6, 0x4000); /* DF */
		buf[8] = 64;
		buf[9] = proto;
		memcpy(buf + 12, (uint8_t[]){ 10, 8, 0, 2, 10, 9, 0, 1 }, 8);
		memset(buf + 20, 1, s->ip_opt_len); /* NOPs */
		put_be16(buf + 10, (uint16_t)~ref_fold(ref_sum(0, buf, ihl)));
		return ihl;
	}
	put_be32(buf, 0x6002abcd); /* flow label carried to every segment */
	put_be16(buf + 4, (uint16_t)(len - 40));
	buf[6] = s->ext_len ? PROTO_DSTOPTS : proto;
	buf[7] = 64;
	memcpy(buf + 8, v6_src, 16);
	memcpy(buf + 24, v6_dst, 16);
	if (!s->ext_len)
		return 40;
	buf[40] = proto;
	buf[41] = (uint8_t)(s->ext_len / 8 - 1);
	buf[42] = 1; /* PadN */
	buf[43] = (uint8_t)(s->ext_len - 4);
	memset(buf + 44, 0, s->ext_len - 4);
	return 40 + s->ext_len;
}

/* Fills buf with a GSO packet and p with its offload block; the TCP checksum holds the pseudo-header seed. */
static void build_gso(uint8_t *buf, const struct gso_spec *s, struct pkt *p)
{
	size_t l3 = s->version == 4 ? 20 + s->ip_opt_len : 40 + s->ext_len;
	size_t hdr = l3 + 20 + s->tcp_opt_len, len = hdr + s->payload;
	uint8_t *tcp = buf + l3;

	memset(buf, 0, hdr);
	build_ip(buf, s, len, PROTO_TCP);
	put_be16(tcp, 40000);
	put_be16(tcp + 2, 5201);
	put_be32(tcp + 4, s->seq);
	put_be32(tcp + 8, 0x01020304);
	tcp[12] = (uint8_t)((20 + s->tcp_opt_len) / 4 << 4);
	tcp[13] = s->flags;
	put_be16(tcp + 14, 512);
	for (size_t i = 0; i < s->tcp_opt_len; i++)
		tcp[20 + i] = i < 2 ? 1 : (uint8_t)(0x80 + i); /* NOP NOP then bytes that must survive */
	for (size_t i = 0; i < s->payload; i++)
		buf[hdr + i] = payload_byte(i);
	put_be16(tcp + 16, ref_fold(ref_pseudo(buf, len - l3, PROTO_TCP)));
	*p = (struct pkt){
		.data = buf,
		.len = (uint32_t)len,
		.off = {
			.flags = PKT_F_NEEDS_CSUM,
			.gso_type = s->version == 4 ? PKT_GSO_TCPV4 : PKT_GSO_TCPV6,
			.hdr_len = (uint16_t)hdr,
			.gso_size = s->mss,
			.csum_start = (uint16_t)l3,
			.csum_offset = 16,
		},
	};
}

/* ---- collecting what pkt_segment emits ---- */

struct collected {
	unsigned count;
	int fail_at; /* emit returns -ECANCELED at this index; -1: never */
	size_t used;
	size_t start[MAX_SEGS], len[MAX_SEGS];
	uint8_t buf[1 << 20];
};

static int collect(void *ctx, const struct pkt *seg)
{
	struct collected *c = ctx;

	if ((int)c->count == c->fail_at)
		return -ECANCELED;
	assert_true(c->count < MAX_SEGS);
	assert_true(c->used + seg->len <= sizeof(c->buf));
	assert_true(pkt_is_plain(seg));
	c->start[c->count] = c->used;
	c->len[c->count] = seg->len;
	memcpy(c->buf + c->used, seg->data, seg->len);
	c->used += seg->len;
	c->count++;
	/* The scratch is the segmenter's again once we return: scribble on it. */
	memset(seg->data, 0xee, seg->len);
	return 0;
}

static struct collected *collected_new(void)
{
	struct collected *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->fail_at = -1;
	return c;
}

static uint8_t scratch[PKT_SEGMENT_SCRATCH];

/* ---- checking segments ---- */

static void check_ip(const uint8_t *orig, const uint8_t *seg, size_t seg_len, size_t l3,
		     const struct gso_spec *s, unsigned i)
{
	if (s->version == 4) {
		assert_memory_equal(seg, orig, 2);
		assert_int_equal(get_be16(seg + 2), seg_len);
		assert_int_equal(get_be16(seg + 4), (uint16_t)(s->ip_id + i));
		assert_memory_equal(seg + 6, orig + 6, 4);  /* DF, TTL, protocol */
		assert_memory_equal(seg + 12, orig + 12, l3 - 12); /* addresses, options */
		assert_int_equal(ref_fold(ref_sum(0, seg, l3)), 0xffff);
		return;
	}
	assert_memory_equal(seg, orig, 4);
	assert_int_equal(get_be16(seg + 4), seg_len - 40);
	assert_memory_equal(seg + 6, orig + 6, l3 - 6); /* next header, hop limit, addresses, ext */
}

static void check_tcp(const uint8_t *orig, const uint8_t *seg, size_t seg_len, size_t l3,
		      const struct gso_spec *s, unsigned i, unsigned count)
{
	const uint8_t *tcp = seg + l3, *otcp = orig + l3;
	uint8_t want = s->flags;

	if (i + 1 < count)
		want &= (uint8_t)~(F_FIN | F_PSH);
	if (i > 0)
		want &= (uint8_t)~F_CWR;
	assert_memory_equal(tcp, otcp, 4); /* ports */
	assert_int_equal(get_be32(tcp + 4), (uint32_t)(s->seq + i * s->mss));
	assert_memory_equal(tcp + 8, otcp + 8, 5); /* ack, data offset */
	assert_int_equal(tcp[13], want);
	assert_memory_equal(tcp + 14, otcp + 14, 2); /* window */
	assert_memory_equal(tcp + 18, otcp + 18, 2 + s->tcp_opt_len); /* urgent, options */
	assert_true(ref_l4_ok(seg, seg_len, l3, PROTO_TCP));
}

/* Segments the packet s describes and checks every field of every segment. */
static void segment_and_check(const struct gso_spec *s)
{
	size_t l3 = s->version == 4 ? 20 + s->ip_opt_len : 40 + s->ext_len;
	size_t hdr = l3 + 20 + s->tcp_opt_len;
	unsigned want = s->payload ? (unsigned)((s->payload + s->mss - 1) / s->mss) : 1;
	uint8_t *orig = malloc(hdr + s->payload), *copy = malloc(hdr + s->payload);
	struct collected *c = collected_new();
	size_t got_payload = 0;
	struct pkt p;

	assert_non_null(orig);
	assert_non_null(copy);
	build_gso(orig, s, &p);
	memcpy(copy, orig, p.len);
	assert_int_equal(pkt_segment(&p, scratch, sizeof(scratch), collect, c), want);
	assert_int_equal(c->count, want);
	assert_memory_equal(orig, copy, p.len); /* the input is left alone */
	for (unsigned i = 0; i < c->count; i++) {
		const uint8_t *seg = c->buf + c->start[i];
		size_t seg_len = c->len[i];

		assert_true(seg_len >= hdr);
		assert_true(seg_len - hdr <= s->mss);
		if (i + 1 < c->count)
			assert_int_equal(seg_len - hdr, s->mss);
		check_ip(orig, seg, seg_len, l3, s, i);
		check_tcp(orig, seg, seg_len, l3, s, i, c->count);
		assert_memory_equal(seg + hdr, orig + hdr + got_payload, seg_len - hdr);
		got_payload += seg_len - hdr;
	}
	assert_int_equal(got_payload, s->payload);
	free(c);
	free(copy);
	free(orig);
}

static void test_tcpv4(void **state)
{
	(void)state;
	segment_and_check(&(struct gso_spec){ .version = 4, .tcp_opt_len = 12, .payload = 10000,
		.mss = 1448, .flags = F_ACK | F_PSH | F_FIN | F_CWR, .seq = 0x10000000, .ip_id = 7 });
}

static void test_tcpv4_ip_options_and_wrap(void **state)
{
	(void)state;
	/* IP options on every segment; sequence number and IP ID wrap around. */
	segment_and_check(&(struct gso_spec){ .version = 4, .ip_opt_len = 8, .tcp_opt_len = 4,
		.payload = 4 * 1000, .mss = 1000, .flags = F_ACK | F_PSH,
		.seq = 0xfffffc00, .ip_id = 0xfffe });
}

static void test_tcpv6(void **state)
{
	(void)state;
	segment_and_check(&(struct gso_spec){ .version = 6, .tcp_opt_len = 12, .payload = 20001,
		.mss = 1428, .flags = F_ACK | F_PSH | F_FIN | F_CWR, .seq = 12345 });
}

static void test_tcpv6_extension_header(void **state)
{
	(void)state;
	segment_and_check(&(struct gso_spec){ .version = 6, .ext_len = 16, .tcp_opt_len = 8,
		.payload = 5000, .mss = 1200, .flags = F_ACK | F_FIN, .seq = 99 });
}

static void test_largest(void **state)
{
	(void)state;
	/* 64 KiB of IP packet, odd payload length: the odd-byte path of both sums. */
	segment_and_check(&(struct gso_spec){ .version = 4, .tcp_opt_len = 12,
		.payload = 65535 - 52, .mss = 1448, .flags = F_ACK | F_PSH, .seq = 1 });
	segment_and_check(&(struct gso_spec){ .version = 6, .tcp_opt_len = 12,
		.payload = 65535 - 72, .mss = 65535, .flags = F_ACK, .seq = 1 });
}

static void test_edges(void **state)
{
	(void)state;
	/* Exact multiple of mss, one short segment, mss 1 (no payload at all: test_offload_check). */
	segment_and_check(&(struct gso_spec){ .version = 4, .payload = 3 * 1448, .mss = 1448,
		.flags = F_ACK | F_FIN });
	segment_and_check(&(struct gso_spec){ .version = 6, .payload = 100, .mss = 1448,
		.flags = F_ACK | F_PSH | F_CWR });
	segment_and_check(&(struct gso_spec){ .version = 6, .payload = 700, .mss = 1,
		.flags = F_ACK | F_PSH | F_FIN | F_CWR });
}

/* ---- the checksum itself (base/pkt.c) ---- */

/* The checksum field pkt_csum_add and pkt_csum_fold give, as stored (host order, memcpy). */
static void pkt_csum_field(const uint8_t *data, size_t len, size_t split, uint8_t out[2])
{
	uint16_t check = (uint16_t)~pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, data, split), data + split,
								len - split));

	memcpy(out, &check, 2);
}

static void expect_csum_as_reference(const uint8_t *data, size_t len, size_t split)
{
	uint16_t ref = (uint16_t)~ref_fold(ref_sum(0, data, len));
	uint8_t got[2];

	pkt_csum_field(data, len, split, got);
	if (got[0] != ref >> 8 || got[1] != (ref & 0xff))
		fail_msg("length %zu split at %zu: %02x%02x, the reference %04x", len, split, got[0], got[1], ref);
}

/*
 * Every length up to 600 at every alignment, in one piece and split at an
 * even offset, on random bytes and on all-ones bytes (the most carries),
 * and a 64 KiB packet of each, against the test's 16-bit reference.
 */
static void test_csum_matches_reference(void **state)
{
	static uint8_t data[65536 + 8];
	(void)state;

	for (int fill = 0; fill < 2; fill++) {
		srand(7);
		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = fill ? 0xff : (uint8_t)rand();
		for (size_t off = 0; off < 8; off++) {
			for (size_t len = 0; len <= 600; len++) {
				expect_csum_as_reference(data + off, len, 0);
				expect_csum_as_reference(data + off, len, (len / 3) & ~(size_t)1);
			}
		}
		expect_csum_as_reference(data + 1, 65535, 40);
		expect_csum_as_reference(data, 65536, 0);
	}
}

/* ---- checksum completion alone ---- */

/* A UDP or TCP packet with a partial checksum: the field holds the pseudo-header seed. */
static void build_partial(uint8_t *buf, unsigned version, uint8_t proto, size_t payload, struct pkt *p)
{
	struct gso_spec s = { .version = version };
	size_t l3 = version == 4 ? 20 : 40, l4 = proto == PROTO_UDP ? 8 : 20;
	size_t len = l3 + l4 + payload, field = proto == PROTO_UDP ? 6 : 16;

	memset(buf, 0, len);
	build_ip(buf, &s, len, proto);
	put_be16(buf + l3, 5353);
	put_be16(buf + l3 + 2, 53);
	if (proto == PROTO_UDP) {
		put_be16(buf + l3 + 4, (uint16_t)(l4 + payload));
	} else {
		buf[l3 + 12] = 5 << 4;
		buf[l3 + 13] = F_ACK | F_PSH;
	}
	for (size_t i = 0; i < payload; i++)
		buf[l3 + l4 + i] = payload_byte(i);
	put_be16(buf + l3 + field, ref_fold(ref_pseudo(buf, len - l3, proto)));
	*p = (struct pkt){ .data = buf, .len = (uint32_t)len,
		.off = { .flags = PKT_F_NEEDS_CSUM, .csum_start = (uint16_t)l3,
			 .csum_offset = (uint16_t)field } };
}

static void check_partial(unsigned version, uint8_t proto, size_t payload)
{
	static uint8_t buf[2048];
	struct collected *c = collected_new();
	size_t l3 = version == 4 ? 20 : 40;
	struct pkt p;

	build_partial(buf, version, proto, payload, &p);
	assert_int_equal(pkt_segment(&p, scratch, sizeof(scratch), collect, c), 1);
	assert_int_equal(c->count, 1);
	assert_int_equal(c->len[0], p.len);
	assert_true(ref_l4_ok(c->buf, p.len, l3, proto));
	/* Everything but the checksum field is what it was. */
	assert_memory_equal(c->buf, buf, p.off.csum_start + p.off.csum_offset);
	assert_false(ref_l4_ok(buf, p.len, l3, proto));
	assert_int_equal(pkt_finish_csum(buf, p.len, &p.off), 0);
	assert_memory_equal(c->buf, buf, p.len);
	free(c);
}

static void test_needs_csum(void **state)
{
	(void)state;
	check_partial(4, PROTO_UDP, 100);
	check_partial(4, PROTO_UDP, 1); /* odd length */
	check_partial(6, PROTO_UDP, 1232);
	check_partial(4, PROTO_TCP, 1460);
	check_partial(6, PROTO_TCP, 77);
}

/* A UDP sum that comes out 0 is sent as 0xffff: 0 would mean "no checksum". */
static void test_udp_zero_sum(void **state)
{
	static uint8_t buf[256];
	size_t field = 20 + 6;
	struct pkt p;
	uint16_t rest;

	(void)state;
	build_partial(buf, 4, PROTO_UDP, 64, &p);
	/* Choose the last payload word so that the data sums to 0xffff. */
	put_be16(buf + p.len - 2, 0);
	rest = ref_fold(ref_sum(0, buf + 20, p.len - 20));
	put_be16(buf + p.len - 2, (uint16_t)(0xffff - rest));
	assert_int_equal(pkt_finish_csum(buf, p.len, &p.off), 0);
	assert_int_equal(get_be16(buf + field), 0xffff);
	assert_true(ref_l4_ok(buf, p.len, 20, PROTO_UDP));
}

static void test_plain_passes(void **state)
{
	static uint8_t buf[100];
	struct collected *c = collected_new();
	struct pkt p = { .data = buf, .len = sizeof(buf) };
	int ret;

	(void)state;
	memset(buf, 0x45, sizeof(buf));
	ret = pkt_segment(&p, NULL, 0, collect, c); /* needs no scratch */
	assert_int_equal(ret, 1);
	assert_int_equal(c->len[0], sizeof(buf));
	free(c);
}

/* ---- what is refused ---- */

static int never(void *ctx, const struct pkt *seg)
{
	(void)ctx;
	(void)seg;
	fail_msg("emit called for a packet that should be refused");
	return 0;
}

static void refuse(const struct pkt *p, int want)
{
	assert_int_equal(pkt_segment(p, scratch, sizeof(scratch), never, NULL), want);
}

static void test_refused(void **state)
{
	static uint8_t buf[4096];
	struct gso_spec s = { .version = 4, .tcp_opt_len = 12, .payload = 3000, .mss = 1448,
			      .flags = F_ACK };
	struct pkt p, q;

	(void)state;
	build_gso(buf, &s, &p);
	q = p, q.off.gso_size = 0, refuse(&q, -EINVAL);
	q = p, q.off.gso_type = PKT_GSO_UDP, refuse(&q, -EOPNOTSUPP);
	q = p, q.off.gso_type = 2, refuse(&q, -EINVAL);
	q = p, q.off.gso_type = PKT_GSO_TCPV6, refuse(&q, -EINVAL); /* a v4 packet */
	q = p, q.len = 19, refuse(&q, -EINVAL);
	q = p, q.len = 20 + 19, refuse(&q, -EINVAL); /* TCP header cut */
	q = p, q.len = 20 + 31, refuse(&q, -EINVAL); /* TCP options cut */
	q = p, q.len = 70000, refuse(&q, -EINVAL);
	assert_int_equal(pkt_segment(&p, scratch, 20 + 32 + 1447, never, NULL), -ENOSPC);

	buf[0] = 0x44, refuse(&p, -EINVAL); /* IHL < 5 */
	buf[0] = 0x4f, q = p, q.len = 59, refuse(&q, -EINVAL); /* IHL beyond len */
	buf[0] = 0x45;
	buf[9] = PROTO_UDP, refuse(&p, -EINVAL);
	buf[9] = PROTO_TCP;
	buf[6] = 0x20, refuse(&p, -EINVAL); /* more fragments */
	buf[6] = 0x40;
	buf[20 + 12] = 4 << 4, refuse(&p, -EINVAL); /* data offset < 5 */
	buf[20 + 12] = 8 << 4;

	q = p, q.off.flags = PKT_F_NEEDS_CSUM, q.off.gso_type = PKT_GSO_NONE, q.off.gso_size = 0;
	q.off.csum_start = (uint16_t)(p.len - 1), q.off.csum_offset = 0, refuse(&q, -EINVAL);
	q.off.csum_start = 20, q.off.csum_offset = (uint16_t)(p.len - 21), refuse(&q, -EINVAL);
	q.off.csum_start = 0xffff, q.off.csum_offset = 0xffff, refuse(&q, -EINVAL);
	q.off.csum_start = 20, q.off.csum_offset = 16;
	assert_int_equal(pkt_segment(&q, scratch, p.len - 1, never, NULL), -ENOSPC);
	assert_int_equal(pkt_finish_csum(buf, p.len, &q.off), 0);
	q.off.csum_offset = 0xfff0;
	assert_int_equal(pkt_finish_csum(buf, p.len, &q.off), -EINVAL);
}

static void test_refused_v6(void **state)
{
	static uint8_t buf[4096];
	struct gso_spec s = { .version = 6, .ext_len = 8, .payload = 3000, .mss = 1448, .flags = F_ACK };
	struct pkt p, q;

	(void)state;
	build_gso(buf, &s, &p);
	q = p, q.len = 39, refuse(&q, -EINVAL);
	q = p, q.len = 47, refuse(&q, -EINVAL); /* extension header cut */
	q = p, q.len = 48 + 19, refuse(&q, -EINVAL);
	buf[41] = 200, q = p, q.len = 1600, refuse(&q, -EINVAL); /* extension header beyond len */
	buf[41] = 0;
	buf[40] = PROTO_UDP, refuse(&p, -EINVAL);
	buf[40] = PROTO_TCP;
	buf[6] = 43, refuse(&p, -EINVAL); /* routing header */
	buf[6] = PROTO_DSTOPTS;
	/* A chain of options headers longer than any real packet's. */
	memset(buf + 40, 0, 9 * 8);
	for (int i = 0; i < 9; i++)
		buf[40 + 8 * i] = PROTO_DSTOPTS;
	refuse(&p, -EINVAL);
}

static void test_emit_error_stops(void **state)
{
	static uint8_t buf[8192];
	struct gso_spec s = { .version = 4, .payload = 5000, .mss = 1000, .flags = F_ACK };
	struct collected *c = collected_new();
	struct pkt p;

	(void)state;
	build_gso(buf, &s, &p);
	c->fail_at = 2;
	assert_int_equal(pkt_segment(&p, scratch, sizeof(scratch), collect, c), -ECANCELED);
	assert_int_equal(c->count, 2);
	free(c);
}

/* Every cut and many random bytes: no crash (the sanitizer build watches), sane results. */
static int bounded(void *ctx, const struct pkt *seg)
{
	size_t *emitted = ctx;

	assert_true(seg->len <= PKT_SEGMENT_SCRATCH);
	(*emitted)++;
	return 0;
}

static void test_hostile(void **state)
{
	static uint8_t buf[4096];
	struct gso_spec s = { .version = 6, .ext_len = 8, .tcp_opt_len = 12, .payload = 2000,
			      .mss = 536, .flags = F_ACK | F_FIN };
	uint32_t rng = 0x12345678;
	struct pkt p, q;
	size_t emitted;

	(void)state;
	build_gso(buf, &s, &p);
	for (uint32_t cut = 0; cut <= p.len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */

		assert_non_null(copy);
		memcpy(copy, buf, cut);
		q = p, q.data = copy, q.len = cut, emitted = 0;
		int ret = pkt_segment(&q, scratch, sizeof(scratch), bounded, &emitted);
		assert_true(ret < 0 || (size_t)ret == emitted);
		free(copy);
	}
	for (int round = 0; round < 20000; round++) {
		q = p;
		for (int k = 0; k < 4; k++) {
			rng = rng * 1103515245 + 12345;
			buf[(rng >> 8) % 128] ^= (uint8_t)(rng >> 24);
		}
		rng = rng * 1103515245 + 12345;
		q.off.gso_size = (uint16_t)(rng >> 16);
		q.off.gso_type = (uint8_t)(rng & 7);
		q.off.flags = (uint8_t)(rng >> 3 & 1);
		q.off.csum_start = (uint16_t)((rng >> 5) % 200);
		q.off.csum_offset = (uint16_t)((rng >> 13) % 32);
		q.len = (uint32_t)(rng >> 4) % (p.len + 1);
		emitted = 0;
		int ret = pkt_segment(&q, scratch, sizeof(scratch), bounded, &emitted);
		assert_true(ret < 0 || (size_t)ret == emitted);
	}
}

/* ---- the offload check a peer's block passes (offload.h), shared with pkt_segment ---- */

static void expect_good(const struct pkt *p, uint32_t l4, uint32_t hdr_len)
{
	struct offload_layout l;

	assert_int_equal(offload_check(p, &l), 0);
	assert_int_equal(l.l4, l4);
	assert_int_equal(l.hdr_len, hdr_len);
	assert_int_equal(l.version, p->data[0] >> 4);
}

/* Refused by the check, and so by the segmenter: one check for both. */
static void expect_bad(const struct pkt *p, const char *what)
{
	int ret = offload_check(p, NULL);

	if (ret != -EINVAL)
		fail_msg("%s: offload_check gave %d, want -EINVAL", what, ret);
	if (!pkt_is_plain(p))
		refuse(p, -EINVAL);
}

static void test_offload_check(void **state)
{
	static uint8_t v4[4096], v6[4096], ext[4096], udp6[2048], udp4[2048], tcp4[2048];
	struct gso_spec s4 = { .version = 4, .tcp_opt_len = 12, .payload = 3000, .mss = 1448,
			       .flags = F_ACK };
	struct gso_spec s6 = { .version = 6, .payload = 3000, .mss = 1428, .flags = F_ACK };
	struct gso_spec s6x = { .version = 6, .ext_len = 16, .payload = 2000, .mss = 1200,
				.flags = F_ACK };
	struct pkt p4, p6, p6x, pu6, pu4, pt4, q;

	(void)state;
	build_gso(v4, &s4, &p4);
	build_gso(v6, &s6, &p6);
	build_gso(ext, &s6x, &p6x);
	build_partial(udp6, 6, PROTO_UDP, 100, &pu6);
	build_partial(udp4, 4, PROTO_UDP, 100, &pu4);
	build_partial(tcp4, 4, PROTO_TCP, 100, &pt4);
	expect_good(&p4, 20, 20 + 32);
	expect_good(&p6, 40, 40 + 20);
	expect_good(&p6x, 56, 56 + 20);
	expect_good(&pu6, 40, 0);
	expect_good(&pu4, 20, 0);
	expect_good(&pt4, 20, 0);
	q = (struct pkt){ .data = v4, .len = p4.len };
	assert_int_equal(offload_check(&q, NULL), 0); /* plain */

	/* Issue 13: an IPv6/UDP packet labelled TCPv4 GSO with gso_size 0. */
	q = pu6, q.off.gso_type = PKT_GSO_TCPV4, q.off.hdr_len = 48, expect_bad(&q, "v6 UDP as TCPv4");
	q = pu6, q.off.gso_type = PKT_GSO_TCPV6, q.off.hdr_len = 48, q.off.gso_size = 1200;
	expect_bad(&q, "UDP as TCPv6 GSO");
	q = p6, q.off.gso_type = PKT_GSO_TCPV4, expect_bad(&q, "v6 TCP as TCPv4");
	q = p4, q.off.gso_type = PKT_GSO_TCPV6, expect_bad(&q, "v4 TCP as TCPv6");
	q = p4, q.off.gso_size = 0, expect_bad(&q, "gso_size 0");
	q = p4, q.len = 52, expect_bad(&q, "GSO without payload");
	q = p4, q.off.flags = 0, expect_bad(&q, "GSO without NEEDS_CSUM");
	q = p4, q.off.flags |= 2, expect_bad(&q, "unknown flag (virtio DATA_VALID)");
	q = p4, q.off.flags = 0x80 | PKT_F_NEEDS_CSUM, expect_bad(&q, "unknown flag 0x80");
	q = p4, q.off.hdr_len = (uint16_t)p4.len, expect_bad(&q, "hdr_len the whole packet");
	q = p4, q.off.hdr_len = 0xffff, expect_bad(&q, "hdr_len past the end");
	q = p4, q.off.hdr_len = 51, expect_bad(&q, "hdr_len short of the TCP options");
	q = p4, q.off.hdr_len = 53, expect_bad(&q, "hdr_len into the payload");
	q = p4, q.off.hdr_len = 0, expect_bad(&q, "GSO hdr_len 0");
	q = p4, q.off.csum_start = (uint16_t)p4.len, expect_bad(&q, "csum_start past the end");
	q = p4, q.off.csum_start = 0xffff, q.off.csum_offset = 0xffff, expect_bad(&q, "csum far out");
	q = p4, q.off.csum_start = 21, expect_bad(&q, "csum_start inside TCP");
	/* Would make the kernel write a sum over the destination address. */
	q = p4, q.off.csum_start = 12, q.off.csum_offset = 4, expect_bad(&q, "csum in the IP header");
	q = p4, q.off.csum_offset = 6, expect_bad(&q, "UDP's field in TCP");
	q = pu4, q.off.csum_offset = 16, expect_bad(&q, "TCP's field in UDP");
	q = pu4, q.off.gso_size = 1400, expect_bad(&q, "gso_size without GSO");
	q = pu4, q.off.hdr_len = (uint16_t)(pu4.len + 1), expect_bad(&q, "hint past the end");
	q = p4, q.off.gso_type = 2, expect_bad(&q, "unknown gso_type");
	q = p4, q.off.gso_type = 0x81, expect_bad(&q, "ECN bit gso_type");
	q = p4, q.len = 19, expect_bad(&q, "shorter than IPv4");
	q = p4, q.len = 20 + 19, expect_bad(&q, "TCP header cut");
	q = pu6, q.len = 40 + 7, expect_bad(&q, "UDP header cut");
	/* A plain block with stray fields: nothing stale may reach a vnet header. */
	q = (struct pkt){ .data = v4, .len = p4.len, .off = { .csum_start = 20 } };
	expect_bad(&q, "plain block with csum_start");
	q.off = (struct pkt_offload){ .hdr_len = 52 }, expect_bad(&q, "plain block with hdr_len");
	q.off = (struct pkt_offload){ .gso_size = 1 }, expect_bad(&q, "plain block with gso_size");
	q = pu6, q.off.gso_type = PKT_GSO_UDP, q.off.gso_size = 1000;
	assert_int_equal(offload_check(&q, NULL), -EOPNOTSUPP);

	udp4[6] = 0x20, expect_bad(&pu4, "IPv4 fragment"), udp4[6] = 0;
	/* A routing header before TCP: the pseudo-header would name another destination. */
	ext[6] = 43, expect_bad(&p6x, "GSO behind a routing header");
	ext[6] = PROTO_DSTOPTS, expect_good(&p6x, 56, 76);
	udp6[6] = 1, expect_bad(&pu6, "ICMP with a partial sum");
	udp6[6] = PROTO_UDP;
	expect_good(&pu6, 40, 0);
	expect_good(&p6, 40, 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csum_matches_reference),
		cmocka_unit_test(test_tcpv4),
		cmocka_unit_test(test_tcpv4_ip_options_and_wrap),
		cmocka_unit_test(test_tcpv6),
		cmocka_unit_test(test_tcpv6_extension_header),
		cmocka_unit_test(test_largest),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_needs_csum),
		cmocka_unit_test(test_udp_zero_sum),
		cmocka_unit_test(test_plain_passes),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_refused_v6),
		cmocka_unit_test(test_emit_error_stops),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_offload_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
