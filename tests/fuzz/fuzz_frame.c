// SPDX-License-Identifier: MIT
/* libFuzzer target: the frame parser fed a received byte stream, as a session consumes it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tunnel/frame.h"

/*
 * What the parser promises and the fuzzer checks besides memory safety: a
 * frame lies inside the input, a packet lies inside its frame, and
 * putting a parsed packet back gives a frame that parses to the same packet.
 */
static void check_packet(const uint8_t *frame_start, int used, const struct frame *f)
{
	static uint8_t again[FRAME_HEADER_LEN + FRAME_PAYLOAD_MAX];
	struct ip_addr src, dst;
	struct frame g;
	char line[128];
	size_t n;

	if (f->pkt.data < frame_start || f->pkt.data + f->pkt.len > frame_start + used)
		abort();
	(void)pkt_addrs(f->pkt.data, f->pkt.len, &src, &dst);
	pkt_describe(f->pkt.data, f->pkt.len, line, sizeof(line));

	n = frame_put_packet(again, sizeof(again), &f->pkt);
	if (n != frame_packet_size(&f->pkt) || frame_parse(again, n, &g) != (int)n)
		abort();
	if (g.pkt.len != f->pkt.len || memcmp(g.pkt.data, f->pkt.data, f->pkt.len) != 0)
		abort();
	/* Offload fields of a plain packet mean nothing and are not sent. */
	if (!pkt_is_plain(&f->pkt) && memcmp(&g.pkt.off, &f->pkt.off, sizeof(g.pkt.off)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 0;

	while (at < size) {
		struct frame f;
		int used = frame_parse(data + at, size - at, &f);

		if (used <= 0)
			break;
		if (used < FRAME_HEADER_LEN || (size_t)used > size - at || f.len != (uint32_t)used - FRAME_HEADER_LEN)
			abort();
		if (f.type == FRAME_PACKET || f.type == FRAME_PACKET_OFF)
			check_packet(data + at, used, &f);
		at += (size_t)used;
	}
	return 0;
}
