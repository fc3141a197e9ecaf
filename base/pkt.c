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

/*
 * 32-bit words into a 64-bit sum: no carry to propagate until the fold,
 * and 2^32 words before it could overflow.
 */
uint64_t pkt_csum_add(uint64_t sum, const uint8_t *data, size_t len)
{
	uint32_t w32;
	uint16_t w16;

	for (; len >= 4; data += 4, len -= 4) {
		memcpy(&w32, data, 4);
		sum += w32;
	}
	if (len >= 2) {
		memcpy(&w16, data, 2);
		sum += w16;
		data += 2;
		len -= 2;
	}
	if (len) {
		/* An odd last byte is the high half of a word padded with zero. */
		uint8_t tail[2] = { data[0], 0 };

		memcpy(&w16, tail, 2);
		sum += w16;
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
