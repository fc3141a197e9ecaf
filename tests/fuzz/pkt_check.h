/* SPDX-License-Identifier: MIT */
/* What the packet fuzz targets (gso, gro) check segments with: a checksum apart from base/'s. */
#ifndef TUNLAB_FUZZ_PKT_CHECK_H
#define TUNLAB_FUZZ_PKT_CHECK_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Folded sum of big-endian words, written apart from gso.c's on purpose. */
static inline uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

#endif
