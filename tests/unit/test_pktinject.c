// SPDX-License-Identifier: MIT
/* Unit tests of nfkit/pktinject.h: the virtio-net and Ethernet header built for each kind of packet. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/virtio_net.h>
#include <string.h>

#include "../../nfkit/pktinject.h"

enum { PROTO_TCP = 6, PROTO_UDP = 17, PAYLOAD = 3000 };

static uint8_t buf[65536];

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An IPv4 or IPv6 packet with a transport header of l4_len bytes and PAYLOAD bytes after it. */
static struct pkt build(unsigned version, uint8_t proto, unsigned l4_len)
{
	unsigned l3 = version == 4 ? 20 : 40, len = l3 + l4_len + PAYLOAD;

	memset(buf, 0, sizeof(buf));
	if (version == 4) {
		buf[0] = 0x45;
		wr16(buf + 2, (uint16_t)len);
		wr16(buf + 6, 0x4000); /* DF, not a fragment */
		buf[8] = 64;
		buf[9] = proto;
	} else {
		buf[0] = 0x60;
		wr16(buf + 4, (uint16_t)(len - 40));
		buf[6] = proto;
		buf[7] = 64;
	}
	if (proto == PROTO_TCP)
		buf[l3 + 12] = (uint8_t)((l4_len / 4) << 4);
	else
		wr16(buf + l3 + 4, (uint16_t)(l4_len + PAYLOAD));
	return (struct pkt){ .data = buf, .len = len };
}

static struct virtio_net_hdr vnet_of(const struct pktinject_frame_hdr *h)
{
	struct virtio_net_hdr vh;

	memcpy(&vh, h->vnet, sizeof(vh));
	return vh;
}

static void check_eth(const struct pktinject_frame_hdr *h, uint16_t type)
{
	static const uint8_t zero[12];

	assert_memory_equal(h->eth, zero, sizeof(zero)); /* lo's addresses */
	assert_int_equal(h->eth[12] << 8 | h->eth[13], type);
}

static void test_tcpv4_gso(void **state)
{
	struct pkt p = build(4, PROTO_TCP, 20);
	struct pktinject_frame_hdr h;
	struct virtio_net_hdr vh;

	(void)state;
	p.off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV4,
				      .hdr_len = 40, .gso_size = 1448, .csum_start = 20,
				      .csum_offset = 16 };
	assert_true(pktinject_frame_hdr(&p, &h));
	vh = vnet_of(&h);
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(vh.gso_size, 1448);
	/* Offsets count the frame from its Ethernet header on. */
	assert_int_equal(vh.hdr_len, 14 + 40);
	assert_int_equal(vh.csum_start, 14 + 20);
	assert_int_equal(vh.csum_offset, 16);
	check_eth(&h, 0x0800);
}

static void test_tcpv6_gso_with_options(void **state)
{
	struct pkt p = build(6, PROTO_TCP, 32);
	struct pktinject_frame_hdr h;
	struct virtio_net_hdr vh;

	(void)state;
	p.off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV6,
				      .hdr_len = 72, .gso_size = 1408, .csum_start = 40,
				      .csum_offset = 16 };
	assert_true(pktinject_frame_hdr(&p, &h));
	vh = vnet_of(&h);
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV6);
	assert_int_equal(vh.gso_size, 1408);
	assert_int_equal(vh.hdr_len, 14 + 72);
	assert_int_equal(vh.csum_start, 14 + 40);
	assert_int_equal(vh.csum_offset, 16);
	check_eth(&h, 0x86dd);
}

static void test_plain(void **state)
{
	static const uint8_t zero[sizeof(struct virtio_net_hdr)];
	struct pktinject_frame_hdr h;

	(void)state;
	for (unsigned version = 4; version <= 6; version += 2) {
		struct pkt p = build(version, PROTO_TCP, 20);

		memset(&h, 0xa5, sizeof(h));
		assert_true(pktinject_frame_hdr(&p, &h));
		/* No flag, no GSO, no offset: the kernel takes the packet as it is. */
		assert_memory_equal(h.vnet, zero, sizeof(zero));
		check_eth(&h, version == 4 ? 0x0800 : 0x86dd);
	}
}

static void test_partial_udp_no_gso(void **state)
{
	struct pkt p = build(4, PROTO_UDP, 8);
	struct pktinject_frame_hdr h;
	struct virtio_net_hdr vh;

	(void)state;
	p.off = (struct pkt_offload){ .flags = PKT_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 6 };
	assert_true(pktinject_frame_hdr(&p, &h));
	vh = vnet_of(&h);
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(vh.gso_size, 0);
	assert_int_equal(vh.hdr_len, 0);
	assert_int_equal(vh.csum_start, 14 + 20);
	assert_int_equal(vh.csum_offset, 6);
}

/* A block that lies about its packet never reaches the kernel. */
static void test_refused(void **state)
{
	struct pktinject_frame_hdr h;
	struct pkt p = build(4, PROTO_TCP, 20);
	struct pkt_offload good = { .flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV4,
				    .hdr_len = 40, .gso_size = 1448, .csum_start = 20,
				    .csum_offset = 16 };

	(void)state;
	p.off = good;
	p.off.hdr_len = 60; /* beyond the TCP header */
	assert_false(pktinject_frame_hdr(&p, &h));
	p.off = good;
	p.off.gso_type = PKT_GSO_TCPV6; /* the wrong family */
	assert_false(pktinject_frame_hdr(&p, &h));
	p.off = good;
	p.off.csum_start = 14; /* not the transport header */
	assert_false(pktinject_frame_hdr(&p, &h));
	p.off = good;
	p.off.gso_type = PKT_GSO_UDP;
	assert_false(pktinject_frame_hdr(&p, &h));
	p.off = (struct pkt_offload){ 0 };
	buf[0] = 0x50; /* neither IPv4 nor IPv6 */
	assert_false(pktinject_frame_hdr(&p, &h));
	p.len = 0;
	assert_false(pktinject_frame_hdr(&p, &h));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcpv4_gso),
		cmocka_unit_test(test_tcpv6_gso_with_options),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_partial_udp_no_gso),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
