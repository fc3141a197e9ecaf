// SPDX-License-Identifier: MIT
/* libFuzzer target: receive-side coalescing of a batch of arbitrary packets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/gro.h"
#include "../../base/gso.h"
#include "../../base/offload.h"
#include "pkt_check.h"

/*
 * Input: the arena size u16 (in 64-byte units; 0: PKT_COALESCE_ARENA),
 * then up to PKT_BATCH_MAX records of length u16 (big endian), a flags
 * byte and the packet. Flag 1 asks the harness to make the IPv4 header
 * and TCP checksums right first, so that the fuzzer reaches the merging
 * and not only the checksum test. Each packet gets a buffer of exactly
 * its size, so the sanitizer sees any access beyond it.
 *
 * Besides memory safety: the batch shrinks by what the call returns;
 * inputs are never written; an output is an input as it was, in its own
 * memory, or a merged packet in the arena that offload_check accepts,
 * that pkt_segment cuts into segments whose checksums verify, and that
 * stands for exactly the bytes of the segments it merged.
 */
enum { REC_HEADER_LEN = 3, FLAG_FIX_CSUM = 1, ARENA_UNIT = 64 };

static uint8_t scratch[PKT_SEGMENT_SCRATCH];
static uint8_t arena[PKT_COALESCE_ARENA];

static void store(uint8_t *field, uint32_t sum)
{
	uint16_t check = (uint16_t)~sum;

	field[0] = (uint8_t)(check >> 8);
	field[1] = (uint8_t)check;
}

/* Where TCP starts in a simple IPv4 or IPv6 packet, or 0. */
static size_t tcp_offset(const uint8_t *p, size_t len)
{
	size_t l4;

	if (len >= 20 && p[0] >> 4 == 4 && p[9] == 6)
		l4 = (size_t)(p[0] & 0x0f) * 4;
	else if (len >= 40 && p[0] >> 4 == 6 && p[6] == 6)
		l4 = 40;
	else
		return 0;
	return l4 >= 20 && l4 + 20 <= len ? l4 : 0;
}

static uint32_t pseudo(const uint8_t *p, size_t l4, size_t len)
{
	uint32_t tcp_len = (uint32_t)(len - l4);

	if (p[0] >> 4 == 4)
		return sum16(6 + tcp_len, p + 12, 8);
	return sum16(6 + (tcp_len & 0xffff) + (tcp_len >> 16), p + 8, 32);
}

static void fix_csums(uint8_t *p, size_t len)
{
	size_t l4 = tcp_offset(p, len);

	if (!l4)
		return;
	if (p[0] >> 4 == 4) {
		p[10] = p[11] = 0;
		store(p + 10, sum16(0, p, l4));
	}
	p[l4 + 16] = p[l4 + 17] = 0;
	store(p + l4 + 16, sum16(pseudo(p, l4, len), p + l4, len - l4));
}

static int check_segment(void *ctx, const struct pkt *seg)
{
	size_t l4 = tcp_offset(seg->data, seg->len);

	(void)ctx;
	if (!l4 || sum16(pseudo(seg->data, l4, seg->len), seg->data + l4, seg->len - l4) != 0xffff)
		abort();
	if (seg->data[0] >> 4 == 4 && sum16(0, seg->data, l4) != 0xffff)
		abort();
	return 0;
}

/* Bytes of the segments a merged packet stands for; aborts when it is not a good one. */
static size_t merged_bytes(const struct pkt *m)
{
	size_t payload = m->len - m->off.hdr_len, segs = (payload + m->off.gso_size - 1) / m->off.gso_size;

	if (m->len > PKT_COALESCE_MAX || offload_check(m, NULL) != 0 ||
	    (m->off.gso_type != PKT_GSO_TCPV4 && m->off.gso_type != PKT_GSO_TCPV6) || segs < 2)
		abort();
	if (pkt_segment(m, scratch, PKT_SEGMENT_SCRATCH, check_segment, NULL) != (int)segs)
		abort();
	return m->len + (segs - 1) * m->off.hdr_len;
}

struct input {
	struct pkt_batch batch;
	uint8_t *copy[PKT_BATCH_MAX]; /* what each packet was, to see it left alone */
	size_t arena_len, total;
};

static void parse_input(struct input *in, const uint8_t *data, size_t size)
{
	size_t off = 2, len;

	in->arena_len = be16(data) ? (size_t)be16(data) * ARENA_UNIT : PKT_COALESCE_ARENA;
	if (in->arena_len > sizeof(arena))
		in->arena_len = sizeof(arena);
	while (in->batch.count < PKT_BATCH_MAX && off + REC_HEADER_LEN <= size) {
		struct pkt *p = &in->batch.pkts[in->batch.count];
		uint8_t flags = data[off + 2];

		len = be16(data + off);
		off += REC_HEADER_LEN;
		if (len > size - off)
			len = size - off;
		p->data = malloc(len ? len : 1);
		in->copy[in->batch.count] = malloc(len ? len : 1);
		if (!p->data || !in->copy[in->batch.count])
			abort();
		memcpy(p->data, data + off, len);
		if (flags & FLAG_FIX_CSUM)
			fix_csums(p->data, len);
		memcpy(in->copy[in->batch.count], p->data, len);
		p->len = (uint32_t)len;
		in->total += len;
		in->batch.count++;
		off += len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { 0 };
	struct pkt orig[PKT_BATCH_MAX];
	unsigned merged, count, j;
	uint8_t seen[PKT_BATCH_MAX] = { 0 };
	size_t total = 0;

	if (size < 2)
		return 0;
	parse_input(&in, data, size);
	count = in.batch.count;
	memcpy(orig, in.batch.pkts, sizeof(orig));
	merged = pkt_coalesce(&in.batch, arena, in.arena_len);
	if (in.batch.count + merged != count)
		abort();
	for (unsigned i = 0; i < in.batch.count; i++) {
		const struct pkt *p = &in.batch.pkts[i];

		if (p->data >= arena && p->data < arena + sizeof(arena)) {
			if (p->data + p->len > arena + in.arena_len)
				abort();
			total += merged_bytes(p);
			continue;
		}
		/* An input, as it came, out once (only flows may interleave otherwise). */
		for (j = 0; j < count && orig[j].data != p->data; j++)
			;
		if (j == count || seen[j]++ || orig[j].len != p->len || !pkt_is_plain(p))
			abort();
		total += p->len;
	}
	for (unsigned i = 0; i < count; i++) {
		if (memcmp(orig[i].data, in.copy[i], orig[i].len) != 0)
			abort();
		free(orig[i].data);
		free(in.copy[i]);
	}
	if (total != in.total)
		abort();
	return 0;
}
