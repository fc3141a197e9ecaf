// SPDX-License-Identifier: MIT
/* Unit tests of tunnel/frame.h: every frame type put and parsed back, and what the parser refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../../tunnel/frame.h"

/* A v4 or v6 header of the given total length; the rest is a byte pattern. */
static void build_ip(uint8_t *buf, unsigned version, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	if (version == 4) {
		buf[0] = 0x45;
		buf[2] = (uint8_t)(len >> 8);
		buf[3] = (uint8_t)len;
		buf[9] = 6;
	} else {
		buf[0] = 0x60;
		buf[4] = (uint8_t)((len - 40) >> 8);
		buf[5] = (uint8_t)(len - 40);
		buf[6] = 17;
	}
}

static void put_header(uint8_t *buf, uint8_t type, uint32_t len)
{
	buf[0] = type;
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
}

/* Parses into a frame pre-filled with junk, so that unset fields show. */
static int parse(const uint8_t *buf, size_t len, struct frame *f)
{
	memset(f, 0xa5, sizeof(*f));
	return frame_parse(buf, len, f);
}

static void assert_all_cuts_partial(const uint8_t *buf, size_t len)
{
	struct frame f;

	for (size_t cut = 0; cut < len; cut++) {
		int ret = frame_parse(buf, cut, &f);

		if (ret != 0)
			fail_msg("frame of %zu bytes cut at %zu: got %d, want 0", len, cut, ret);
	}
}

static void test_hello(void **state)
{
	(void)state;
	uint8_t buf[16];
	const uint8_t want[] = { FRAME_HELLO, 0, 0, 4, PROTO_VERSION, HELLO_F_OFFLOAD, 0, 0 };
	struct frame f;

	assert_int_equal(frame_put_hello(buf, sizeof(buf), PROTO_VERSION, HELLO_F_OFFLOAD), 8);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(parse(buf, sizeof(buf), &f), 8);
	assert_int_equal(f.type, FRAME_HELLO);
	assert_int_equal(f.len, FRAME_HELLO_LEN);
	assert_ptr_equal(f.payload, buf + FRAME_HEADER_LEN);
	assert_int_equal(f.hello_version, PROTO_VERSION);
	assert_int_equal(f.hello_flags, HELLO_F_OFFLOAD);

	assert_int_equal(frame_put_hello(buf, 8, 7, 0), 8);
	assert_int_equal(parse(buf, 8, &f), 8);
	assert_int_equal(f.hello_version, 7);
	assert_int_equal(f.hello_flags, 0);
	assert_all_cuts_partial(buf, 8);
}

static void test_keepalive(void **state)
{
	(void)state;
	uint8_t buf[8];
	const uint8_t want[] = { FRAME_KEEPALIVE, 0, 0, 0 };
	struct frame f;

	assert_int_equal(frame_put_keepalive(buf, sizeof(buf)), 4);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(parse(buf, 4, &f), 4);
	assert_int_equal(f.type, FRAME_KEEPALIVE);
	assert_int_equal(f.len, 0);
	assert_all_cuts_partial(buf, 4);
}

static void test_close(void **state)
{
	(void)state;
	uint8_t buf[256];
	const char *reason = "server shutting down";
	size_t n = strlen(reason);
	struct frame f;

	assert_int_equal(frame_put_close(buf, sizeof(buf), reason), 4 + n);
	assert_int_equal(buf[0], FRAME_CLOSE);
	assert_int_equal(buf[3], n);
	assert_int_equal(parse(buf, sizeof(buf), &f), 4 + n);
	assert_int_equal(f.type, FRAME_CLOSE);
	assert_int_equal(f.len, n);
	assert_memory_equal(f.payload, reason, n);
	assert_all_cuts_partial(buf, 4 + n);

	assert_int_equal(frame_put_close(buf, sizeof(buf), ""), 4);
	assert_int_equal(parse(buf, 4, &f), 4);
	assert_int_equal(f.type, FRAME_CLOSE);
	assert_int_equal(f.len, 0);
}

/* The longest reason passes; a longer one is cut so that the frame still parses. */
static void test_close_reason_limit(void **state)
{
	(void)state;
	char reason[300];
	uint8_t buf[512];
	struct frame f;

	memset(reason, 'r', FRAME_CLOSE_REASON_MAX);
	reason[FRAME_CLOSE_REASON_MAX] = '\0';
	assert_int_equal(frame_put_close(buf, sizeof(buf), reason), 4 + FRAME_CLOSE_REASON_MAX);
	assert_int_equal(parse(buf, sizeof(buf), &f), 4 + FRAME_CLOSE_REASON_MAX);
	assert_int_equal(f.len, FRAME_CLOSE_REASON_MAX);

	memset(reason, 'r', 250);
	reason[250] = '\0';
	assert_int_equal(frame_put_close(buf, sizeof(buf), reason), 4 + FRAME_CLOSE_REASON_MAX);
	assert_int_equal(parse(buf, sizeof(buf), &f), 4 + FRAME_CLOSE_REASON_MAX);

	/* "é" at bytes 199-200 straddles the limit: cut before it, not inside it. */
	memset(reason, 'r', 199);
	strcpy(reason + 199, "\xc3\xa9tc");
	assert_int_equal(frame_put_close(buf, sizeof(buf), reason), 4 + 199);
	assert_int_equal(parse(buf, sizeof(buf), &f), 4 + 199);
	assert_int_equal(f.payload[198], 'r');
}

static void assert_plain_roundtrip(unsigned version, uint32_t ip_len)
{
	uint8_t *ip = malloc(ip_len), *buf = malloc(ip_len + 8);
	struct pkt p = { .data = ip, .len = ip_len };
	const struct pkt_offload zero = { 0 };
	struct frame f;

	assert_non_null(ip);
	assert_non_null(buf);
	build_ip(ip, version, ip_len);
	assert_int_equal(frame_packet_size(&p), FRAME_HEADER_LEN + ip_len);
	assert_int_equal(frame_put_packet(buf, ip_len + 8, &p), FRAME_HEADER_LEN + ip_len);
	assert_int_equal(buf[0], FRAME_PACKET);
	assert_int_equal((buf[1] << 16) | (buf[2] << 8) | buf[3], ip_len);
	assert_memory_equal(buf + 4, ip, ip_len);

	assert_int_equal(parse(buf, ip_len + 8, &f), FRAME_HEADER_LEN + ip_len);
	assert_int_equal(f.type, FRAME_PACKET);
	assert_int_equal(f.len, ip_len);
	assert_ptr_equal(f.payload, buf + FRAME_HEADER_LEN);
	assert_ptr_equal(f.pkt.data, buf + FRAME_HEADER_LEN);
	assert_int_equal(f.pkt.len, ip_len);
	assert_memory_equal(&f.pkt.off, &zero, sizeof(zero));
	assert_true(pkt_is_plain(&f.pkt));
	free(ip);
	free(buf);
}

static void test_packet_plain(void **state)
{
	(void)state;
	assert_plain_roundtrip(4, 20);
	assert_plain_roundtrip(4, 84);
	assert_plain_roundtrip(6, 40);
	assert_plain_roundtrip(6, 1280);
	assert_plain_roundtrip(4, FRAME_IP_MAX);
}

static void assert_offload_roundtrip(unsigned version, uint32_t ip_len, const struct pkt_offload *off)
{
	uint8_t *ip = malloc(ip_len), *buf = malloc(ip_len + 32);
	struct pkt p = { .data = ip, .len = ip_len, .off = *off };
	const uint32_t plen = FRAME_OFFLOAD_LEN + ip_len;
	const uint8_t block[FRAME_OFFLOAD_LEN] = {
		off->flags, off->gso_type,
		off->hdr_len >> 8, off->hdr_len & 0xff,
		off->gso_size >> 8, off->gso_size & 0xff,
		off->csum_start >> 8, off->csum_start & 0xff,
		off->csum_offset >> 8, off->csum_offset & 0xff,
		0, 0,
	};
	struct frame f;

	assert_non_null(ip);
	assert_non_null(buf);
	build_ip(ip, version, ip_len);
	assert_int_equal(frame_packet_size(&p), FRAME_HEADER_LEN + plen);
	assert_int_equal(frame_put_packet(buf, ip_len + 32, &p), FRAME_HEADER_LEN + plen);
	assert_int_equal(buf[0], FRAME_PACKET_OFF);
	assert_int_equal((buf[1] << 16) | (buf[2] << 8) | buf[3], plen);
	/* Big endian, in struct pkt_offload's order, 2 reserved zero bytes. */
	assert_memory_equal(buf + 4, block, sizeof(block));
	assert_memory_equal(buf + 16, ip, ip_len);

	assert_int_equal(parse(buf, ip_len + 32, &f), FRAME_HEADER_LEN + plen);
	assert_int_equal(f.type, FRAME_PACKET_OFF);
	assert_int_equal(f.len, plen);
	assert_ptr_equal(f.pkt.data, buf + FRAME_HEADER_LEN + FRAME_OFFLOAD_LEN);
	assert_int_equal(f.pkt.len, ip_len);
	assert_int_equal(f.pkt.off.flags, off->flags);
	assert_int_equal(f.pkt.off.gso_type, off->gso_type);
	assert_int_equal(f.pkt.off.hdr_len, off->hdr_len);
	assert_int_equal(f.pkt.off.gso_size, off->gso_size);
	assert_int_equal(f.pkt.off.csum_start, off->csum_start);
	assert_int_equal(f.pkt.off.csum_offset, off->csum_offset);
	assert_all_cuts_partial(buf, FRAME_HEADER_LEN + plen);
	free(ip);
	free(buf);
}

static void test_packet_offload(void **state)
{
	(void)state;
	const struct pkt_offload tso4 = {
		.flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV4,
		.hdr_len = 52, .gso_size = 1448, .csum_start = 20, .csum_offset = 16,
	};
	const struct pkt_offload uso6 = {
		.flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_UDP,
		.hdr_len = 48, .gso_size = 1232, .csum_start = 40, .csum_offset = 6,
	};
	const struct pkt_offload tso6_no_csum = {
		.gso_type = PKT_GSO_TCPV6, .hdr_len = 60, .gso_size = 0x1234,
	};
	const struct pkt_offload csum_only = {
		.flags = PKT_F_NEEDS_CSUM, .csum_start = 0x0102, .csum_offset = 0x0304,
	};

	assert_offload_roundtrip(4, 3000, &tso4);
	assert_offload_roundtrip(6, 2000, &uso6);
	assert_offload_roundtrip(6, 9000, &tso6_no_csum);
	/* The checksum field ends exactly at the packet's end. */
	assert_offload_roundtrip(4, 0x0102 + 0x0304 + 2, &csum_only);
	/* The largest payload any frame may carry. */
	assert_offload_roundtrip(4, FRAME_IP_MAX, &tso4);
}

/* Several frames back to back, as the sender coalesces them into one record. */
static void test_coalesced(void **state)
{
	(void)state;
	uint8_t ip4[100], ip6[60], buf[512];
	const struct pkt plain = { .data = ip4, .len = sizeof(ip4) };
	const struct pkt off = {
		.data = ip6, .len = sizeof(ip6),
		.off = { .flags = PKT_F_NEEDS_CSUM, .csum_start = 40, .csum_offset = 6 },
	};
	size_t n = 0, sizes[6];
	struct frame f;

	build_ip(ip4, 4, sizeof(ip4));
	build_ip(ip6, 6, sizeof(ip6));
	n += sizes[0] = frame_put_hello(buf + n, sizeof(buf) - n, PROTO_VERSION, 0);
	n += sizes[1] = frame_put_packet(buf + n, sizeof(buf) - n, &plain);
	n += sizes[2] = frame_put_keepalive(buf + n, sizeof(buf) - n);
	n += sizes[3] = frame_put_packet(buf + n, sizeof(buf) - n, &off);
	n += sizes[4] = frame_put_packet(buf + n, sizeof(buf) - n, &plain);
	n += sizes[5] = frame_put_close(buf + n, sizeof(buf) - n, "bye");
	assert_int_equal(n, 8 + 104 + 4 + 76 + 104 + 7);

	static const uint8_t types[] = {
		FRAME_HELLO, FRAME_PACKET, FRAME_KEEPALIVE, FRAME_PACKET_OFF, FRAME_PACKET, FRAME_CLOSE,
	};
	size_t at = 0;

	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(parse(buf + at, n - at, &f), sizes[i]);
		assert_int_equal(f.type, types[i]);
		if (f.type == FRAME_PACKET)
			assert_memory_equal(f.pkt.data, ip4, sizeof(ip4));
		if (f.type == FRAME_PACKET_OFF) {
			assert_memory_equal(f.pkt.data, ip6, sizeof(ip6));
			assert_int_equal(f.pkt.off.csum_start, 40);
		}
		at += sizes[i];
	}
	assert_int_equal(at, n);
	assert_int_equal(parse(buf + at, 0, &f), 0);

	/* Cut anywhere inside the second frame: the first still parses, then 0. */
	for (size_t cut = sizes[0]; cut < sizes[0] + sizes[1]; cut++) {
		assert_int_equal(parse(buf, cut, &f), sizes[0]);
		assert_int_equal(parse(buf + sizes[0], cut - sizes[0], &f), 0);
	}
}

static int parse_header_only(uint8_t type, uint32_t len, size_t have)
{
	uint8_t *buf = calloc(1, FRAME_HEADER_LEN + have);
	struct frame f;
	int ret;

	assert_non_null(buf);
	put_header(buf, type, len);
	ret = parse(buf, FRAME_HEADER_LEN + have, &f);
	free(buf);
	return ret;
}

static void test_malformed_header(void **state)
{
	(void)state;
	/* Unknown types. */
	assert_int_equal(parse_header_only(0, 0, 0), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_STREAM_LAST + 1, 0, 0), -EPROTO);
	assert_int_equal(parse_header_only(0xff, 4, 4), -EPROTO);
	/* Too long: refused from the header alone, without waiting for the payload. */
	assert_int_equal(parse_header_only(FRAME_PACKET_OFF, FRAME_PAYLOAD_MAX + 1, 0), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_PACKET, 0xffffff, 0), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_CLOSE, 0xffffff, 100), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_PACKET_OFF, FRAME_PAYLOAD_MAX + 1,
					   FRAME_PAYLOAD_MAX + 1), -EPROTO);
	/* Lengths wrong for the type. */
	assert_int_equal(parse_header_only(FRAME_HELLO, 3, 3), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_HELLO, 5, 5), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_HELLO, 0, 0), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_KEEPALIVE, 1, 1), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_CLOSE, FRAME_CLOSE_REASON_MAX + 1,
					   FRAME_CLOSE_REASON_MAX + 1), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_CLOSE, FRAME_CLOSE_REASON_MAX,
					   FRAME_CLOSE_REASON_MAX), 4 + FRAME_CLOSE_REASON_MAX);
	/* IP's total length caps a plain packet at 65535 bytes. */
	assert_int_equal(parse_header_only(FRAME_PACKET, FRAME_IP_MAX + 1, FRAME_IP_MAX + 1), -EPROTO);
}

static int parse_plain_ip(const uint8_t *ip, uint32_t len)
{
	uint8_t *buf = malloc(FRAME_HEADER_LEN + len);
	struct frame f;
	int ret;

	assert_non_null(buf);
	put_header(buf, FRAME_PACKET, len);
	memcpy(buf + FRAME_HEADER_LEN, ip, len);
	ret = parse(buf, FRAME_HEADER_LEN + len, &f);
	free(buf);
	return ret;
}

static int parse_offload_ip(const uint8_t *ip, uint32_t len, const struct pkt_offload *off)
{
	uint8_t *buf = malloc(FRAME_HEADER_LEN + FRAME_OFFLOAD_LEN + len);
	const struct pkt p = { .data = (uint8_t *)ip, .len = len, .off = *off };
	struct frame f;
	size_t n;
	int ret;

	assert_non_null(buf);
	n = frame_put_packet(buf, FRAME_HEADER_LEN + FRAME_OFFLOAD_LEN + len, &p);
	assert_int_equal(n, FRAME_HEADER_LEN + FRAME_OFFLOAD_LEN + len);
	ret = parse(buf, n, &f);
	free(buf);
	return ret;
}

static void test_malformed_packet(void **state)
{
	(void)state;
	uint8_t ip[200];
	const struct pkt_offload csum = {
		.flags = PKT_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 6,
	};

	build_ip(ip, 4, 19);
	assert_int_equal(parse_plain_ip(ip, 19), -EPROTO);
	assert_int_equal(parse_plain_ip(ip, 0), -EPROTO);
	assert_int_equal(parse_offload_ip(ip, 19, &csum), -EPROTO);
	build_ip(ip, 4, 20);
	assert_int_equal(parse_plain_ip(ip, 20), 24);

	static const uint8_t bad_versions[] = { 0x05, 0x35, 0x55, 0x75, 0xf5 };

	for (size_t i = 0; i < sizeof(bad_versions); i++) {
		build_ip(ip, 4, 100);
		ip[0] = bad_versions[i];
		if (parse_plain_ip(ip, 100) != -EPROTO)
			fail_msg("plain packet with first byte 0x%02x accepted", bad_versions[i]);
		if (parse_offload_ip(ip, 100, &csum) != -EPROTO)
			fail_msg("offload packet with first byte 0x%02x accepted", bad_versions[i]);
	}
}

/* "a packet shorter than an IP header": for IPv6 that header is 40 bytes. */
static void test_malformed_packet_v6_short(void **state)
{
	(void)state;
	uint8_t ip[40];
	const struct pkt_offload csum = {
		.flags = PKT_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 6,
	};

	build_ip(ip, 6, 40);
	assert_int_equal(parse_plain_ip(ip, 40), 44);
	assert_int_equal(parse_offload_ip(ip, 40, &csum), 56);
	assert_int_equal(parse_plain_ip(ip, 39), -EPROTO);
	assert_int_equal(parse_plain_ip(ip, 20), -EPROTO);
	assert_int_equal(parse_offload_ip(ip, 39, &csum), -EPROTO);
}

/* An unfragmented TCP packet of len bytes (header without options) behind a v4 or v6 header. */
static void build_tcp(uint8_t *buf, unsigned version, uint32_t len)
{
	uint32_t l4 = version == 4 ? 20 : 40;

	build_ip(buf, version, len);
	if (version == 4) {
		buf[6] = 0x40; /* DF, no offset */
		buf[7] = 0;
	}
	buf[version == 4 ? 9 : 6] = IPPROTO_TCP;
	buf[l4 + 12] = 5 << 4;
}

/*
 * Frames ip with off, pokes `poke` at byte `at` of the offload block
 * (unless at < 0), parses: 1 if the frame parsed whole with offload_bad,
 * 0 if it parsed whole and good, -1 if the parser refused the frame.
 */
static int offload_verdict(const uint8_t *ip, uint32_t len, const struct pkt_offload *off, int at,
			   uint8_t poke)
{
	static uint8_t buf[FRAME_HEADER_LEN + FRAME_OFFLOAD_LEN + 4096];
	const struct pkt p = { .data = (uint8_t *)ip, .len = len, .off = *off };
	size_t n = frame_put_packet(buf, sizeof(buf), &p);
	struct frame f;
	int ret;

	assert_int_equal(n, FRAME_HEADER_LEN + FRAME_OFFLOAD_LEN + len);
	if (at >= 0)
		buf[FRAME_HEADER_LEN + at] = poke;
	ret = parse(buf, n, &f);
	if (ret < 0)
		return -1;
	assert_int_equal(ret, (int)n);
	assert_int_equal(f.type, FRAME_PACKET_OFF);
	return f.offload_bad ? 1 : 0;
}

static void expect_offload(const uint8_t *ip, uint32_t len, const struct pkt_offload *off, int want,
			   const char *what)
{
	int got = offload_verdict(ip, len, off, -1, 0);

	if (got != want)
		fail_msg("%s: verdict %d, want %d (1: dropped, session kept)", what, got, want);
}

/*
 * Issue 13: offload blocks that lie about their packet parse (the frame
 * is whole, the session goes on) but carry offload_bad, so the packet is
 * dropped before any vnet header; good TCPv4/TCPv6 GSO blocks pass.
 */
static void test_malformed_offload(void **state)
{
	(void)state;
	static uint8_t tcp4[2000], tcp6[2000], udp6[200];
	const struct pkt_offload tso4 = {
		.flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV4,
		.hdr_len = 40, .gso_size = 1400, .csum_start = 20, .csum_offset = 16,
	};
	const struct pkt_offload tso6 = {
		.flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV6,
		.hdr_len = 60, .gso_size = 1400, .csum_start = 40, .csum_offset = 16,
	};
	struct pkt_offload off;

	build_tcp(tcp4, 4, sizeof(tcp4));
	build_tcp(tcp6, 6, sizeof(tcp6));
	build_ip(udp6, 6, sizeof(udp6)); /* next header UDP */
	expect_offload(tcp4, sizeof(tcp4), &tso4, 0, "good TCPv4 GSO");
	expect_offload(tcp6, sizeof(tcp6), &tso6, 0, "good TCPv6 GSO");

	off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV4,
				    .hdr_len = 48, .csum_start = 40, .csum_offset = 6 };
	expect_offload(udp6, sizeof(udp6), &off, 1, "the issue's v6 UDP as TCPv4, gso_size 0");
	expect_offload(tcp6, sizeof(tcp6), &tso4, 1, "v6 packet as TCPv4");
	expect_offload(tcp4, sizeof(tcp4), &tso6, 1, "v4 packet as TCPv6");
	off = tso6, off.hdr_len = 48, off.csum_offset = 6;
	expect_offload(udp6, sizeof(udp6), &off, 1, "UDP as TCPv6");
	off = tso4, off.gso_size = 0, expect_offload(tcp4, sizeof(tcp4), &off, 1, "gso_size 0");
	off = tso4, off.csum_start = sizeof(tcp4);
	expect_offload(tcp4, sizeof(tcp4), &off, 1, "csum_start past the end");
	off = tso4, off.csum_start = 0xffff, off.csum_offset = 0xffff;
	expect_offload(tcp4, sizeof(tcp4), &off, 1, "csum far past the end");
	off = tso4, off.csum_start = 12, off.csum_offset = 4;
	expect_offload(tcp4, sizeof(tcp4), &off, 1, "csum over the IP addresses");
	off = tso4, off.hdr_len = sizeof(tcp4) + 1;
	expect_offload(tcp4, sizeof(tcp4), &off, 1, "hdr_len past the end");
	off = tso4, off.hdr_len = 60, expect_offload(tcp4, sizeof(tcp4), &off, 1, "hdr_len too big");
	off = tso4, off.flags = 0, expect_offload(tcp4, sizeof(tcp4), &off, 1, "GSO without csum");
	expect_offload(tcp4, 40, &tso4, 1, "GSO without payload");

	static const uint8_t bad_gso[] = { 2, 3, 5, 0x7f, 0x81, 0xff };

	for (size_t i = 0; i < sizeof(bad_gso); i++) {
		off = tso4, off.gso_type = bad_gso[i];
		if (offload_verdict(tcp4, sizeof(tcp4), &off, -1, 0) != 1)
			fail_msg("gso_type %u not dropped", bad_gso[i]);
	}
	/* Bits the encoder never sends: an unknown flag, the reserved field. */
	assert_int_equal(offload_verdict(tcp4, sizeof(tcp4), &tso4, 0, PKT_F_NEEDS_CSUM | 2), 1);
	assert_int_equal(offload_verdict(tcp4, sizeof(tcp4), &tso4, 10, 1), 1);
	assert_int_equal(offload_verdict(tcp4, sizeof(tcp4), &tso4, 11, 0x80), 1);
	assert_int_equal(offload_verdict(tcp4, sizeof(tcp4), &tso4, 11, 0), 0);
}

static void assert_untouched(const uint8_t *buf, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (buf[i] != 0xee)
			fail_msg("byte %zu written beyond cap %zu", i, from);
}

static void test_put_small_cap(void **state)
{
	(void)state;
	uint8_t ip[64], buf[128];
	const struct pkt plain = { .data = ip, .len = sizeof(ip) };
	const struct pkt off = {
		.data = ip, .len = sizeof(ip),
		.off = { .gso_type = PKT_GSO_TCPV4, .hdr_len = 40, .gso_size = 10 },
	};

	build_ip(ip, 4, sizeof(ip));
	for (size_t cap = 0; cap < 4 + 12 + sizeof(ip); cap++) {
		memset(buf, 0xee, sizeof(buf));
		if (cap < 8)
			assert_int_equal(frame_put_hello(buf, cap, 1, 0), 0);
		if (cap < 4)
			assert_int_equal(frame_put_keepalive(buf, cap), 0);
		if (cap < 7)
			assert_int_equal(frame_put_close(buf, cap, "bye"), 0);
		if (cap < 4 + sizeof(ip))
			assert_int_equal(frame_put_packet(buf, cap, &plain), 0);
		assert_int_equal(frame_put_packet(buf, cap, &off), 0);
		assert_untouched(buf, cap, sizeof(buf));
	}
	assert_int_equal(frame_put_packet(buf, 4 + 12 + sizeof(ip), &off), 4 + 12 + sizeof(ip));
	assert_int_equal(frame_put_close(buf, 7, "bye"), 7);
}


/* ---- stream frames ---- */

static struct ip_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct ip_addr ip = { .family = AF_INET, .bytes = { a, b, c, d } };

	return ip;
}

static struct ip_addr addr6_example(void)
{
	struct ip_addr ip = { .family = AF_INET6, .bytes = { 0xfd, 0x02, [15] = 0x02 } };

	return ip;
}

static void test_stream_open(void **state)
{
	(void)state;
	uint8_t buf[64];
	const struct ip_addr v4 = addr4(10, 102, 0, 2), v6 = addr6_example();
	const uint8_t want4[] = { FRAME_STREAM_OPEN, 0, 0, 12, 0x01, 0x02, 0x03, 0x04,
				  IPPROTO_TCP, 4, 0x1f, 0x90, 10, 102, 0, 2 };
	struct frame f;

	assert_int_equal(frame_put_stream_open(buf, sizeof(buf), 0x01020304, IPPROTO_TCP, &v4, 8080), 16);
	assert_memory_equal(buf, want4, sizeof(want4));
	assert_int_equal(parse(buf, sizeof(buf), &f), 16);
	assert_int_equal(f.type, FRAME_STREAM_OPEN);
	assert_int_equal(f.stream_id, 0x01020304);
	assert_int_equal(f.stream_proto, IPPROTO_TCP);
	assert_int_equal(f.stream_port, 8080);
	assert_int_equal(f.stream_addr.family, AF_INET);
	assert_memory_equal(f.stream_addr.bytes, v4.bytes, 4);
	assert_all_cuts_partial(buf, 16);

	assert_int_equal(frame_put_stream_open(buf, sizeof(buf), 7, IPPROTO_UDP, &v6, 53), 28);
	assert_int_equal(parse(buf, 28, &f), 28);
	assert_int_equal(f.stream_proto, IPPROTO_UDP);
	assert_int_equal(f.stream_addr.family, AF_INET6);
	assert_memory_equal(f.stream_addr.bytes, v6.bytes, 16);
	assert_int_equal(f.stream_port, 53);
	assert_all_cuts_partial(buf, 28);

	/* What frame_parse would refuse, frame_put_* refuses to write. */
	assert_int_equal(frame_put_stream_open(buf, sizeof(buf), 0, IPPROTO_TCP, &v4, 80), 0);
	assert_int_equal(frame_put_stream_open(buf, sizeof(buf), 1, IPPROTO_TCP, &v4, 0), 0);
	assert_int_equal(frame_put_stream_open(buf, sizeof(buf), 1, IPPROTO_ICMP, &v4, 80), 0);
	assert_int_equal(frame_put_stream_open(buf, 15, 1, IPPROTO_TCP, &v4, 80), 0);
}

static void test_stream_data_fin_reset_credit(void **state)
{
	(void)state;
	static uint8_t buf[FRAME_HEADER_LEN + FRAME_STREAM_ID_LEN + FRAME_STREAM_DATA_MAX + 8];
	static uint8_t data[FRAME_STREAM_DATA_MAX + 1];
	struct frame f;
	size_t n;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	assert_int_equal(frame_put_stream_data(buf, sizeof(buf), 9, data, 1), 9);
	assert_int_equal(parse(buf, sizeof(buf), &f), 9);
	assert_int_equal(f.type, FRAME_STREAM_DATA);
	assert_int_equal(f.stream_id, 9);
	assert_int_equal(f.stream_len, 1);
	assert_ptr_equal(f.stream_data, buf + 8);
	n = frame_put_stream_data(buf, sizeof(buf), 9, data, FRAME_STREAM_DATA_MAX);
	/* A full DATA frame is exactly one TLS record of plaintext. */
	assert_int_equal(n, 16384);
	assert_int_equal(parse(buf, n, &f), 16384);
	assert_int_equal(f.stream_len, FRAME_STREAM_DATA_MAX);
	assert_memory_equal(f.stream_data, data, FRAME_STREAM_DATA_MAX);
	assert_all_cuts_partial(buf, n);
	assert_int_equal(frame_put_stream_data(buf, sizeof(buf), 9, data, FRAME_STREAM_DATA_MAX + 1), 0);
	assert_int_equal(frame_put_stream_data(buf, sizeof(buf), 9, data, 0), 0);

	assert_int_equal(frame_put_stream_fin(buf, sizeof(buf), 0xffffffff), 8);
	assert_int_equal(parse(buf, 8, &f), 8);
	assert_int_equal(f.type, FRAME_STREAM_FIN);
	assert_int_equal(f.stream_id, 0xffffffff);

	for (uint8_t r = 1; r <= STREAM_RESET_REASON_MAX; r++) {
		assert_int_equal(frame_put_stream_reset(buf, sizeof(buf), 3, r), 9);
		assert_int_equal(parse(buf, 9, &f), 9);
		assert_int_equal(f.type, FRAME_STREAM_RESET);
		assert_int_equal(f.stream_reason, r);
	}
	assert_int_equal(frame_put_stream_reset(buf, sizeof(buf), 3, 0), 0);
	assert_int_equal(frame_put_stream_reset(buf, sizeof(buf), 3, STREAM_RESET_REASON_MAX + 1), 0);

	assert_int_equal(frame_put_stream_credit(buf, sizeof(buf), 5, STREAM_WINDOW), 12);
	assert_int_equal(parse(buf, 12, &f), 12);
	assert_int_equal(f.type, FRAME_STREAM_CREDIT);
	assert_int_equal(f.stream_credit, STREAM_WINDOW);
	assert_all_cuts_partial(buf, 12);
	assert_int_equal(frame_put_stream_credit(buf, sizeof(buf), 5, 0), 0);
	assert_int_equal(frame_put_stream_credit(buf, sizeof(buf), 5, STREAM_WINDOW + 1), 0);
}

static void test_dgram(void **state)
{
	(void)state;
	static uint8_t buf[FRAME_HEADER_LEN + FRAME_DGRAM_V6_HEADER + FRAME_DGRAM_MAX];
	static uint8_t payload[FRAME_DGRAM_MAX + 1];
	const struct ip_addr v4 = addr4(10, 102, 0, 2), v6 = addr6_example();
	struct frame f;
	size_t n;

	memset(payload, 0x5a, sizeof(payload));
	n = frame_put_dgram(buf, sizeof(buf), 11, &v4, 53, payload, 0);
	assert_int_equal(n, 4 + 12);
	assert_int_equal(parse(buf, n, &f), (int)n);
	assert_int_equal(f.type, FRAME_DGRAM);
	assert_int_equal(f.stream_id, 11);
	assert_int_equal(f.stream_len, 0);
	assert_int_equal(f.stream_port, 53);
	assert_memory_equal(f.stream_addr.bytes, v4.bytes, 4);

	n = frame_put_dgram(buf, sizeof(buf), 12, &v6, 5353, payload, FRAME_DGRAM_MAX);
	assert_int_equal(n, 4 + 24 + FRAME_DGRAM_MAX);
	assert_int_equal(parse(buf, n, &f), (int)n);
	assert_int_equal(f.stream_addr.family, AF_INET6);
	assert_int_equal(f.stream_len, FRAME_DGRAM_MAX);
	assert_ptr_equal(f.stream_data, buf + 4 + 24);
	assert_all_cuts_partial(buf, 4 + 24 + 40);
	assert_int_equal(frame_put_dgram(buf, sizeof(buf), 12, &v6, 5353, payload, FRAME_DGRAM_MAX + 1), 0);
	assert_int_equal(frame_put_dgram(buf, sizeof(buf), 0, &v6, 5353, payload, 1), 0);
	assert_int_equal(frame_put_dgram(buf, sizeof(buf), 1, &v6, 0, payload, 1), 0);
}

static void test_hello_streams(void **state)
{
	(void)state;
	uint8_t buf[8];
	struct frame f;

	assert_int_equal(frame_put_hello(buf, sizeof(buf), PROTO_VERSION, HELLO_F_STREAMS | HELLO_F_OFFLOAD), 8);
	assert_int_equal(parse(buf, 8, &f), 8);
	assert_int_equal(f.hello_flags, HELLO_F_STREAMS | HELLO_F_OFFLOAD);
}

/* A raw stream frame: header, then the given payload bytes. */
static int parse_raw(uint8_t type, const uint8_t *payload, uint32_t len)
{
	uint8_t *buf = malloc(FRAME_HEADER_LEN + len + 1);
	struct frame f;
	int ret;

	assert_non_null(buf);
	put_header(buf, type, len);
	if (len)
		memcpy(buf + FRAME_HEADER_LEN, payload, len);
	ret = parse(buf, FRAME_HEADER_LEN + len, &f);
	free(buf);
	return ret;
}

static void test_stream_malformed(void **state)
{
	(void)state;
	static uint8_t big[FRAME_DGRAM_V6_HEADER + FRAME_DGRAM_MAX + 2];
	uint8_t open4[] = { 0, 0, 0, 1, IPPROTO_TCP, 4, 0, 80, 10, 0, 0, 1 };
	uint8_t p[32];

	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, open4, sizeof(open4)), 16);
	/* id 0, unknown family, family and length disagreeing, port 0, protocol. */
	memcpy(p, open4, sizeof(open4));
	p[3] = 0;
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 12), -EPROTO);
	memcpy(p, open4, sizeof(open4));
	p[5] = 5;
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 12), -EPROTO);
	p[5] = 6;
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 12), -EPROTO);
	memset(p + 12, 0, 12);
	p[5] = 4;
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 24), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 13), -EPROTO);
	memcpy(p, open4, sizeof(open4));
	p[6] = p[7] = 0;
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 12), -EPROTO);
	memcpy(p, open4, sizeof(open4));
	p[4] = IPPROTO_ICMP;
	assert_int_equal(parse_raw(FRAME_STREAM_OPEN, p, 12), -EPROTO);

	/* DATA: empty, too long (refused from the header alone), id 0. */
	memcpy(p, open4, 4);
	assert_int_equal(parse_raw(FRAME_STREAM_DATA, p, 4), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_STREAM_DATA, FRAME_STREAM_ID_LEN + FRAME_STREAM_DATA_MAX + 1, 0), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_DATA, (const uint8_t[]){ 0, 0, 0, 0, 'x' }, 5), -EPROTO);
	/* FIN, RESET, CREDIT: exact lengths and values. */
	assert_int_equal(parse_raw(FRAME_STREAM_FIN, p, 4), 8);
	assert_int_equal(parse_raw(FRAME_STREAM_FIN, p, 5), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_FIN, (const uint8_t[]){ 0, 0, 0, 0 }, 4), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_CONNECTED, p, 4), 8);
	assert_int_equal(parse_raw(FRAME_STREAM_CONNECTED, p, 3), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_CONNECTED, (const uint8_t[]){ 0, 0, 0, 0 }, 4), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_RESET, (const uint8_t[]){ 0, 0, 0, 1, 0 }, 5), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_RESET, (const uint8_t[]){ 0, 0, 0, 1, STREAM_RESET_REASON_MAX + 1 }, 5), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_RESET, (const uint8_t[]){ 0, 0, 0, 1, 1, 0 }, 6), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_CREDIT, (const uint8_t[]){ 0, 0, 0, 1, 0, 0, 0, 0 }, 8), -EPROTO);
	/* A credit above the window (1 MiB = 0x100000) is a protocol error. */
	_Static_assert(STREAM_WINDOW == 0x100000, "the credit bytes below spell the window");
	assert_int_equal(parse_raw(FRAME_STREAM_CREDIT, (const uint8_t[]){ 0, 0, 0, 1, 0, 0x10, 0, 1 }, 8), -EPROTO);
	assert_int_equal(parse_raw(FRAME_STREAM_CREDIT, (const uint8_t[]){ 0, 0, 0, 1, 0, 0x10, 0, 0 }, 8), 12);
	assert_int_equal(parse_raw(FRAME_STREAM_CREDIT, (const uint8_t[]){ 0, 0, 0, 1, 0, 0x10, 0 }, 7), -EPROTO);

	/* DGRAM: reserved byte, v6 family with a v4-sized header, payload above the maximum. */
	uint8_t dgram[] = { 0, 0, 0, 2, 0, 4, 0, 53, 10, 0, 0, 1, 'q' };
	assert_int_equal(parse_raw(FRAME_DGRAM, dgram, sizeof(dgram)), 4 + (int)sizeof(dgram));
	dgram[4] = 1;
	assert_int_equal(parse_raw(FRAME_DGRAM, dgram, sizeof(dgram)), -EPROTO);
	dgram[4] = 0;
	dgram[5] = 6;
	assert_int_equal(parse_raw(FRAME_DGRAM, dgram, sizeof(dgram)), -EPROTO);
	dgram[5] = 4;
	dgram[7] = 0;
	assert_int_equal(parse_raw(FRAME_DGRAM, dgram, sizeof(dgram)), -EPROTO);
	assert_int_equal(parse_raw(FRAME_DGRAM, dgram, 11), -EPROTO);
	memset(big, 0, sizeof(big));
	memcpy(big, (const uint8_t[]){ 0, 0, 0, 2, 0, 4, 0, 53, 10, 0, 0, 1 }, 12);
	assert_int_equal(parse_raw(FRAME_DGRAM, big, 12 + FRAME_DGRAM_MAX), 4 + 12 + FRAME_DGRAM_MAX);
	assert_int_equal(parse_raw(FRAME_DGRAM, big, 12 + FRAME_DGRAM_MAX + 1), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_DGRAM, FRAME_DGRAM_V6_HEADER + FRAME_DGRAM_MAX + 1, 0), -EPROTO);
	/* Past the last type. */
	assert_int_equal(parse_header_only(FRAME_DGRAM + 1, 8, 8), -EPROTO);
}

/* The UDP data channel's two control frames: exact lengths, id not 0, path 0 or 1. */
static void test_udp_frames(void **state)
{
	uint8_t buf[16];
	struct frame f;

	(void)state;
	assert_int_equal(frame_put_udp_setup(buf, sizeof(buf), 0x01020304), FRAME_HEADER_LEN + 4);
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 4, &f), FRAME_HEADER_LEN + 4);
	assert_int_equal(f.type, FRAME_UDP_SETUP);
	assert_int_equal(f.udp_session_id, 0x01020304);
	assert_int_equal(frame_put_udp_setup(buf, sizeof(buf), 0), 0);
	memset(buf + FRAME_HEADER_LEN, 0, 4);
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 4, &f), -EPROTO);
	assert_int_equal(frame_put_udp_path(buf, sizeof(buf), true), FRAME_HEADER_LEN + 1);
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 1, &f), FRAME_HEADER_LEN + 1);
	assert_int_equal(f.udp_path, 1);
	buf[FRAME_HEADER_LEN] = 2;
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 1, &f), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_UDP_SETUP, 5, 5), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_UDP_PATH, 0, 0), -EPROTO);
	assert_int_equal(frame_put_udp_path(buf, FRAME_HEADER_LEN, false), 0);
}

/* MOVE: where the standby is, as strict as STREAM_OPEN's endpoint; MOVED: empty. */
static void test_move_frames(void **state)
{
	struct ip_addr v4 = { .family = AF_INET, .bytes = { 10, 101, 0, 12 } };
	struct ip_addr v6 = { .family = AF_INET6, .bytes = { 0xfd, [15] = 0x12 } };
	struct ip_addr none = { 0 };
	uint8_t buf[32];
	struct frame f;

	(void)state;
	assert_int_equal(frame_put_move(buf, sizeof(buf), &v4, 4433), FRAME_HEADER_LEN + FRAME_MOVE_V4_LEN);
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 8, &f), FRAME_HEADER_LEN + 8);
	assert_int_equal(f.type, FRAME_MOVE);
	assert_int_equal(f.stream_addr.family, AF_INET);
	assert_memory_equal(f.stream_addr.bytes, v4.bytes, 4);
	assert_int_equal(f.stream_port, 4433);
	assert_all_cuts_partial(buf, FRAME_HEADER_LEN + 8);
	buf[FRAME_HEADER_LEN + 1] = 1; /* reserved */
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 8, &f), -EPROTO);
	buf[FRAME_HEADER_LEN + 1] = 0;
	buf[FRAME_HEADER_LEN] = 6; /* family 6 with four address bytes */
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 8, &f), -EPROTO);
	buf[FRAME_HEADER_LEN] = 5;
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 8, &f), -EPROTO);
	buf[FRAME_HEADER_LEN] = 4;
	buf[FRAME_HEADER_LEN + 2] = buf[FRAME_HEADER_LEN + 3] = 0; /* port 0 */
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 8, &f), -EPROTO);
	assert_int_equal(frame_put_move(buf, sizeof(buf), &v6, 1), FRAME_HEADER_LEN + FRAME_MOVE_V6_LEN);
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 20, &f), FRAME_HEADER_LEN + 20);
	assert_int_equal(f.stream_addr.family, AF_INET6);
	assert_memory_equal(f.stream_addr.bytes, v6.bytes, 16);
	buf[FRAME_HEADER_LEN] = 4; /* family 4 with sixteen address bytes */
	assert_int_equal(parse(buf, FRAME_HEADER_LEN + 20, &f), -EPROTO);
	assert_int_equal(frame_put_move(buf, sizeof(buf), &none, 4433), 0);
	assert_int_equal(frame_put_move(buf, sizeof(buf), &v4, 0), 0);
	assert_int_equal(frame_put_move(buf, FRAME_HEADER_LEN + 7, &v4, 4433), 0);
	assert_int_equal(parse_header_only(FRAME_MOVE, 0, 0), -EPROTO);
	assert_int_equal(parse_header_only(FRAME_MOVE, 12, 12), -EPROTO);
	assert_int_equal(frame_put_moved(buf, sizeof(buf)), FRAME_HEADER_LEN);
	assert_int_equal(parse(buf, FRAME_HEADER_LEN, &f), FRAME_HEADER_LEN);
	assert_int_equal(f.type, FRAME_MOVED);
	assert_int_equal(parse_header_only(FRAME_MOVED, 1, 1), -EPROTO);
	assert_int_equal(frame_put_moved(buf, FRAME_HEADER_LEN - 1), 0);
	/* Past the last type. */
	assert_int_equal(parse_header_only(FRAME_MOVED + 1, 0, 0), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_close_reason_limit),
		cmocka_unit_test(test_packet_plain),
		cmocka_unit_test(test_packet_offload),
		cmocka_unit_test(test_coalesced),
		cmocka_unit_test(test_malformed_header),
		cmocka_unit_test(test_malformed_packet),
		cmocka_unit_test(test_malformed_packet_v6_short),
		cmocka_unit_test(test_malformed_offload),
		cmocka_unit_test(test_put_small_cap),
		cmocka_unit_test(test_stream_open),
		cmocka_unit_test(test_stream_data_fin_reset_credit),
		cmocka_unit_test(test_dgram),
		cmocka_unit_test(test_hello_streams),
		cmocka_unit_test(test_stream_malformed),
		cmocka_unit_test(test_udp_frames),
		cmocka_unit_test(test_move_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
