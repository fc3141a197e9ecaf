// SPDX-License-Identifier: MIT
/* Reading the few IP header fields the tunnel routes and traces on. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pkt.h"

enum {
	IPV4_HDR_MIN = 20,
	IPV6_HDR_LEN = 40,
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int ipv4_addrs(const uint8_t *d, size_t len, struct ip_addr *src, struct ip_addr *dst)
{
	size_t ihl = (size_t)(d[0] & 0x0f) * 4;

	if (len < IPV4_HDR_MIN || ihl < IPV4_HDR_MIN || ihl > len)
		return -EINVAL;
	/* A GSO packet's total length may be 0 when it exceeds 64 KiB; ours never does. */
	if (be16(d + 2) < ihl || be16(d + 2) > len)
		return -EINVAL;
	memset(src, 0, sizeof(*src));
	memset(dst, 0, sizeof(*dst));
	src->family = dst->family = AF_INET;
	memcpy(src->bytes, d + 12, 4);
	memcpy(dst->bytes, d + 16, 4);
	return 0;
}

static int ipv6_addrs(const uint8_t *d, size_t len, struct ip_addr *src, struct ip_addr *dst)
{
	if (len < IPV6_HDR_LEN || (size_t)be16(d + 4) + IPV6_HDR_LEN > len)
		return -EINVAL;
	src->family = dst->family = AF_INET6;
	memcpy(src->bytes, d + 8, 16);
	memcpy(dst->bytes, d + 24, 16);
	return 0;
}

int pkt_addrs(const uint8_t *data, size_t len, struct ip_addr *src, struct ip_addr *dst)
{
	if (len < 1)
		return -EINVAL;
	switch (data[0] >> 4) {
	case 4:
		return ipv4_addrs(data, len, src, dst);
	case 6:
		return ipv6_addrs(data, len, src, dst);
	default:
		return -EINVAL;
	}
}

static const char *proto_name(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMPV6: return "icmp6";
	default: return NULL;
	}
}

void pkt_describe(const uint8_t *data, size_t len, char *out, size_t out_len)
{
	struct ip_addr src, dst;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	uint8_t proto;
	const char *name;

	if (pkt_addrs(data, len, &src, &dst) < 0) {
		snprintf(out, out_len, "not an IP packet, len %zu", len);
		return;
	}
	addr_format(&src, s, sizeof(s));
	addr_format(&dst, d, sizeof(d));
	proto = src.family == AF_INET ? data[9] : data[6];
	name = proto_name(proto);
	if (name)
		snprintf(out, out_len, "%s > %s %s len %zu", s, d, name, len);
	else
		snprintf(out, out_len, "%s > %s proto %u len %zu", s, d, proto, len);
}

/* ---- the Internet checksum ---- */

/* One's complement addition in 64 bits: the carry out of the top goes back in at the bottom. */
static inline uint64_t csum_add64(uint64_t sum, uint64_t word)
{
	sum += word;
	return sum + (sum < word);
}

/*
 * 8-byte words into four sums (RFC 1071 section 2: any word size that is
 * a multiple of 16 bits folds to the same result, and independent sums
 * keep the CPU's adders busy). It is on every segment both ends of the
 * UDP channel touch: 4-byte words into one sum ran at ~2.5 GB/s and took
 * 7-10 % of each end's CPU under an upload; this runs at 11-15 GB/s.
 */
uint64_t pkt_csum_add(uint64_t sum, const uint8_t *data, size_t len)
{
	/* Four scalars, not an array: GCC keeps an array's sums in memory. */
	uint64_t a = sum, b = 0, c = 0, d = 0, w64;
	uint32_t w32;
	uint16_t w16;

	for (; len >= 32; data += 32, len -= 32) {
		memcpy(&w64, data, 8);
		a = csum_add64(a, w64);
		memcpy(&w64, data + 8, 8);
		b = csum_add64(b, w64);
		memcpy(&w64, data + 16, 8);
		c = csum_add64(c, w64);
		memcpy(&w64, data + 24, 8);
		d = csum_add64(d, w64);
	}
	for (; len >= 8; data += 8, len -= 8) {
		memcpy(&w64, data, 8);
		a = csum_add64(a, w64);
	}
	sum = csum_add64(csum_add64(a, b), csum_add64(c, d));
	if (len >= 4) {
		memcpy(&w32, data, 4);
		sum = csum_add64(sum, w32);
		data += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&w16, data, 2);
		sum = csum_add64(sum, w16);
		data += 2;
		len -= 2;
	}
	if (len) {
		/* An odd last byte is the high half of a word padded with zero. */
		uint8_t tail[2] = { data[0], 0 };

		memcpy(&w16, tail, 2);
		sum = csum_add64(sum, w16);
	}
	return sum;
}

uint16_t pkt_csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t pkt_inet_csum(const uint8_t *head, size_t head_len, const uint8_t *data, size_t len)
{
	return (uint16_t)~pkt_csum_fold(pkt_csum_add(pkt_csum_add(0, head, head_len), data, len));
}
