// SPDX-License-Identifier: MIT
/*
 * One builder for every error tunlab makes: the type, code and the
 * header's second word (the MTU of "too big") differ, the rules on when
 * to answer and what to quote do not.
 *
 * The error's source is the packet's destination (the peer's address), not
 * an address of this host: injected through a TUN device, a packet from
 * one of the host's own addresses is a martian the kernel drops, while the
 * peer's address routes back through the device and passes rp_filter.
 */
#include <netinet/in.h>
#include <string.h>

#include "gso.h"
#include "icmperr.h"
#include "pkt.h"
#include "reach.h"

enum {
	V4_HDR = 20,
	V6_HDR = 40,
	ICMP_HDR = 8,
	V6_EXT_MAX = 8, /* extension headers walked before giving up (no answer) */
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ICMPv4 types that are errors (RFC 1812 4.3.2.7 lists them with redirect and source quench). */
static bool v4_icmp_error(uint8_t type)
{
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* Whether pkt's addresses and kind allow an error at all (see icmperr.h). */
static bool addrs_allow(const uint8_t *pkt, size_t len)
{
	struct ip_addr src, dst;
	enum reach_verdict d;

	if (pkt_addrs(pkt, len, &src, &dst) < 0 || reach_special(&src) != REACH_OK)
		return false;
	d = reach_special(&dst);
	return d != REACH_MULTICAST && d != REACH_BROADCAST;
}

/* What the error says: ICMP type, code and the header's bytes 4-7 (network order), per family. */
struct kind {
	uint8_t v4_type, v4_code, v6_type, v6_code;
	uint32_t v4_word, v6_word;
};

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static size_t v4_answer(const uint8_t *pkt, size_t len, const struct kind *k, uint8_t *out)
{
	size_t ihl = (size_t)(pkt[0] & 0x0f) * 4, total = get16(pkt + 2), quote, n;

	if (ihl < V4_HDR || len < ihl || total < ihl || total > len)
		return 0;
	if (get16(pkt + 6) & 0x1fff)
		return 0; /* not the first fragment */
	if (pkt[9] == IPPROTO_ICMP && (total < ihl + 1 || v4_icmp_error(pkt[ihl])))
		return 0;
	quote = total < ICMPERR_V4_MAX - V4_HDR - ICMP_HDR ? total : ICMPERR_V4_MAX - V4_HDR - ICMP_HDR;
	n = V4_HDR + ICMP_HDR + quote;
	memset(out, 0, V4_HDR + ICMP_HDR);
	out[0] = 0x45;
	out[1] = 0xc0; /* internetwork control, as the kernel's own errors */
	put16(out + 2, (uint16_t)n);
	out[8] = 64;
	out[9] = IPPROTO_ICMP;
	memcpy(out + 12, pkt + 16, 4);
	memcpy(out + 16, pkt + 12, 4);
	memcpy(out + 10, &(uint16_t){ pkt_inet_csum(NULL, 0, out, V4_HDR) }, 2);
	out[V4_HDR] = k->v4_type;
	out[V4_HDR + 1] = k->v4_code;
	put32(out + V4_HDR + 4, k->v4_word);
	memcpy(out + V4_HDR + ICMP_HDR, pkt, quote);
	memcpy(out + V4_HDR + 2, &(uint16_t){ pkt_inet_csum(NULL, 0, out + V4_HDR, n - V4_HDR) }, 2);
	return n;
}

/*
 * The upper-layer protocol of an IPv6 packet past its extension headers,
 * with where it starts; -1 for a fragment other than the first, or
 * headers that do not fit or do not end.
 */
static int v6_upper(const uint8_t *pkt, size_t len, size_t *at)
{
	uint8_t next = pkt[6];
	size_t off = V6_HDR;

	for (int i = 0; i < V6_EXT_MAX; i++) {
		if (next != 0 && next != 43 && next != 44 && next != 60) {
			*at = off;
			return next;
		}
		if (off + 8 > len)
			return -1;
		if (next == 44 && (get16(pkt + off + 2) & 0xfff8))
			return -1;
		next = pkt[off];
		off += next == 44 ? 8 : ((size_t)pkt[off + 1] + 1) * 8;
	}
	return -1;
}

static size_t v6_answer(const uint8_t *pkt, size_t len, const struct kind *k, uint8_t *out)
{
	uint8_t pseudo[40] = { 0 };
	size_t at = 0, quote, n;
	int upper;

	if (len < V6_HDR || (size_t)get16(pkt + 4) + V6_HDR > len)
		return 0;
	len = (size_t)get16(pkt + 4) + V6_HDR;
	upper = v6_upper(pkt, len, &at);
	/* ICMPv6 types below 128 are errors. */
	if (upper < 0 || (upper == IPPROTO_ICMPV6 && (at >= len || pkt[at] < 128)))
		return 0;
	quote = len < ICMPERR_V6_MAX - V6_HDR - ICMP_HDR ? len : ICMPERR_V6_MAX - V6_HDR - ICMP_HDR;
	n = V6_HDR + ICMP_HDR + quote;
	memset(out, 0, V6_HDR + ICMP_HDR);
	out[0] = 0x60;
	put16(out + 4, (uint16_t)(n - V6_HDR));
	out[6] = IPPROTO_ICMPV6;
	out[7] = 64;
	memcpy(out + 8, pkt + 24, 16);
	memcpy(out + 24, pkt + 8, 16);
	out[V6_HDR] = k->v6_type;
	out[V6_HDR + 1] = k->v6_code;
	put32(out + V6_HDR + 4, k->v6_word);
	memcpy(out + V6_HDR + ICMP_HDR, pkt, quote);
	memcpy(pseudo, out + 8, 32);
	put16(pseudo + 34, (uint16_t)(n - V6_HDR));
	pseudo[39] = IPPROTO_ICMPV6;
	memcpy(out + V6_HDR + 2,
	       &(uint16_t){ pkt_inet_csum(pseudo, sizeof(pseudo), out + V6_HDR, n - V6_HDR) }, 2);
	return n;
}

static size_t answer(const uint8_t *pkt, size_t len, const struct kind *k, uint8_t *out)
{
	if (len < 1 || !addrs_allow(pkt, len))
		return 0;
	if (pkt[0] >> 4 == 4)
		return v4_answer(pkt, len, k, out);
	return pkt[0] >> 4 == 6 ? v6_answer(pkt, len, k, out) : 0;
}

size_t icmperr_prohibited(const uint8_t *pkt, size_t len, uint8_t *out)
{
	static const struct kind prohibited = {
		3, ICMPERR_V4_CODE_PROHIBITED, 1, ICMPERR_V6_CODE_PROHIBITED, 0, 0,
	};

	return answer(pkt, len, &prohibited, out);
}

/* IPv6 links carry 1280 bytes (RFC 8200 section 5): nothing up to that is ever too big. */
static unsigned v6_mtu(unsigned mtu)
{
	return mtu < ICMPERR_V6_MIN_MTU ? ICMPERR_V6_MIN_MTU : mtu;
}

bool icmperr_exceeds(const uint8_t *pkt, size_t len, unsigned mtu)
{
	if (len < V4_HDR)
		return false;
	if (pkt[0] >> 4 == 4)
		return len > mtu && (pkt[6] & 0x40);
	return pkt[0] >> 4 == 6 && len > v6_mtu(mtu);
}

size_t icmperr_too_big(const uint8_t *pkt, size_t len, unsigned mtu, uint8_t *out)
{
	/* RFC 1191: the next hop's MTU in the low 16 bits; RFC 4443 3.2: the MTU, 32 bits. */
	const struct kind too_big = {
		3, ICMPERR_V4_CODE_FRAG_NEEDED, 2, 0, mtu > 0xffff ? 0xffff : mtu, v6_mtu(mtu),
	};

	return answer(pkt, len, &too_big, out);
}
