/* SPDX-License-Identifier: MIT */
/* What the packet-level unit tests (gso, gro) share: a checksum of their own. */
#ifndef TUNLAB_TEST_PKT_FIXTURE_H
#define TUNLAB_TEST_PKT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../base/be.h"

/* ---- the reference checksum: big-endian 16-bit words, as RFC 793 describes it ---- */

static inline uint32_t ref_sum(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static inline uint16_t ref_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static inline uint32_t ref_pseudo(const uint8_t *ip, size_t l4_len, uint8_t proto)
{
	if (ip[0] >> 4 == 4)
		return ref_sum(0, ip + 12, 8) + proto + (uint32_t)l4_len;
	return ref_sum(0, ip + 8, 32) + (uint32_t)(l4_len >> 16) + (uint32_t)(l4_len & 0xffff) + proto;
}

/* A correct checksum makes the sum over everything it covers 0xffff. */
static inline bool ref_l4_ok(const uint8_t *ip, size_t len, size_t l4_off, uint8_t proto)
{
	size_t l4_len = len - l4_off;

	return ref_fold(ref_sum(ref_pseudo(ip, l4_len, proto), ip + l4_off, l4_len)) == 0xffff;
}

#endif
