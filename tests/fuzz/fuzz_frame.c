// SPDX-License-Identifier: MIT
/* libFuzzer target: the frame parser fed a received byte stream, as a session consumes it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/offload.h"
#include "../../tunnel/frame.h"

/*
 * What the parser promises and the fuzzer checks besides memory safety: a
 * frame lies inside the input, a packet lies inside its frame, an offload
 * block not marked bad passes offload_check (so a receiver may hand it to
 * a vnet header or the segmenter), and putting a parsed packet back gives
 * a frame that parses to the same packet.
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
	if (f->type == FRAME_PACKET && f->offload_bad)
		abort();
	if (f->offload_bad)
		return; /* dropped by the receiver; its raw flags need not survive a round trip */
	if (offload_check(&f->pkt, NULL) < 0)
		abort();

	n = frame_put_packet(again, sizeof(again), &f->pkt);
	if (n != frame_packet_size(&f->pkt) || frame_parse(again, n, &g) != (int)n)
		abort();
	if (g.pkt.len != f->pkt.len || memcmp(g.pkt.data, f->pkt.data, f->pkt.len) != 0 || g.offload_bad)
		abort();
	/* Offload fields of a plain packet mean nothing and are not sent. */
	if (!pkt_is_plain(&f->pkt) && memcmp(&g.pkt.off, &f->pkt.off, sizeof(g.pkt.off)) != 0)
		abort();
}

/* A parsed stream frame, put back, gives the same bytes: the format has no slack. */
static void check_stream(const uint8_t *frame_start, int used, const struct frame *f)
{
	static uint8_t again[FRAME_HEADER_LEN + FRAME_PAYLOAD_MAX];
	size_t n = 0;

	switch (f->type) {
	case FRAME_STREAM_OPEN:
		n = frame_put_stream_open(again, sizeof(again), f->stream_id, f->stream_proto,
					  &f->stream_addr, f->stream_port);
		break;
	case FRAME_STREAM_DATA:
		n = frame_put_stream_data(again, sizeof(again), f->stream_id, f->stream_data, f->stream_len);
		break;
	case FRAME_STREAM_FIN:
		n = frame_put_stream_fin(again, sizeof(again), f->stream_id);
		break;
	case FRAME_STREAM_CONNECTED:
		n = frame_put_stream_connected(again, sizeof(again), f->stream_id);
		break;
	case FRAME_STREAM_RESET:
		n = frame_put_stream_reset(again, sizeof(again), f->stream_id, f->stream_reason);
		break;
	case FRAME_STREAM_CREDIT:
		n = frame_put_stream_credit(again, sizeof(again), f->stream_id, f->stream_credit);
		break;
	case FRAME_DGRAM:
		n = frame_put_dgram(again, sizeof(again), f->stream_id, &f->stream_addr, f->stream_port,
				    f->stream_data, f->stream_len);
		break;
	case FRAME_UDP_SETUP:
		n = frame_put_udp_setup(again, sizeof(again), f->udp_session_id);
		break;
	case FRAME_UDP_PATH:
		n = frame_put_udp_path(again, sizeof(again), f->udp_path);
		break;
	case FRAME_MOVE:
		n = frame_put_move(again, sizeof(again), &f->stream_addr, f->stream_port);
		break;
	case FRAME_MOVED:
		n = frame_put_moved(again, sizeof(again));
		break;
	default:
		return;
	}
	if (n != (size_t)used || memcmp(again, frame_start, n) != 0)
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
		else
			check_stream(data + at, used, &f);
		at += (size_t)used;
	}
	return 0;
}
