// SPDX-License-Identifier: MIT
/* libFuzzer target: software segmentation and checksum completion on arbitrary packets and offload fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/gso.h"
#include "../../base/offload.h"
#include "pkt_check.h"

/*
 * Input: the offload block as FRAME_PACKET_OFF carries it (flags u8,
 * gso_type u8, hdr_len u16, gso_size u16, csum_start u16, csum_offset u16,
 * all big endian), then the scratch size u16 (0: PKT_SEGMENT_SCRATCH), then
 * the IP packet. Scratch and packet are exactly as large as they say, so
 * the sanitizer sees any access beyond either.
 *
 * Besides memory safety: emit is called as often as the result says, each
 * segment fits the scratch, a TCP segment is an IP packet whose length
 * fields match it and whose checksums verify, and a block that passes
 * offload_check (what a peer's block must pass) segments without error
 * given the full scratch.
 */
enum { INPUT_HEADER_LEN = 12 };

struct run {
	const struct pkt *in;
	const uint8_t *scratch;
	size_t scratch_len;
	int emitted;
};

static void check_tcp_segment(const uint8_t *s, size_t len)
{
	size_t l4;
	uint32_t sum;

	if (s[0] >> 4 == 4) {
		l4 = (size_t)(s[0] & 0x0f) * 4;
		if (be16(s + 2) != len || sum16(0, s, l4) != 0xffff)
			abort();
		sum = sum16(6 + (uint32_t)(len - l4), s + 12, 8);
	} else {
		if (be16(s + 4) + 40u != len)
			abort();
		/* Where gso.c found TCP is not ours to know here: only the simple case is checked. */
		if (s[6] != 6)
			return;
		l4 = 40;
		sum = sum16(6 + (uint32_t)(len - l4), s + 8, 32);
	}
	if (sum16(sum, s + l4, len - l4) != 0xffff)
		abort();
}

static int emit(void *ctx, const struct pkt *seg)
{
	struct run *r = ctx;
	bool in_scratch = seg->data == r->scratch && seg->len <= r->scratch_len;
	bool is_input = seg->data == r->in->data && seg->len == r->in->len;

	if (!in_scratch && !is_input)
		abort();
	if (!pkt_is_plain(seg))
		abort();
	if (r->in->off.gso_type == PKT_GSO_TCPV4 || r->in->off.gso_type == PKT_GSO_TCPV6)
		check_tcp_segment(seg->data, seg->len);
	r->emitted++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt p = { 0 };
	struct run r = { .in = &p };
	uint8_t *scratch;
	int ret;

	if (size < INPUT_HEADER_LEN)
		return 0;
	p.off.flags = data[0];
	p.off.gso_type = data[1];
	p.off.hdr_len = be16(data + 2);
	p.off.gso_size = be16(data + 4);
	p.off.csum_start = be16(data + 6);
	p.off.csum_offset = be16(data + 8);
	r.scratch_len = be16(data + 10) ? be16(data + 10) : PKT_SEGMENT_SCRATCH;
	/* pkt_segment promises not to write through p.data. */
	p.data = (uint8_t *)data + INPUT_HEADER_LEN;
	p.len = (uint32_t)(size - INPUT_HEADER_LEN);
	scratch = malloc(r.scratch_len);
	if (!scratch)
		return 0;
	r.scratch = scratch;
	ret = pkt_segment(&p, scratch, r.scratch_len, emit, &r);
	if (ret >= 0 && ret != r.emitted)
		abort();
	if (ret < 0 && r.emitted)
		abort(); /* emit never fails here, so an error comes before any segment */
	if (ret < 0 && r.scratch_len == PKT_SEGMENT_SCRATCH && offload_check(&p, NULL) == 0)
		abort();
	free(scratch);
	return 0;
}
