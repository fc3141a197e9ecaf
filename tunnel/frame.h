/* SPDX-License-Identifier: MIT */
/* Frame encoding and the one parser every byte from the wire goes through. */
#ifndef TUNLAB_FRAME_H
#define TUNLAB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/pkt.h"
#include "../base/prefix.h"
#include "proto.h"

struct frame {
	uint8_t type;           /* enum frame_type */
	const uint8_t *payload; /* points into the parsed buffer */
	uint32_t len;
	/* Filled for FRAME_HELLO */
	uint8_t hello_version, hello_flags;
	/* Filled for FRAME_PACKET / FRAME_PACKET_OFF: the IP packet itself */
	struct pkt pkt;
	/*
	 * FRAME_PACKET_OFF whose offload block does not describe its packet
	 * (offload_check, or reserved bits set): drop the packet, keep the session.
	 */
	bool offload_bad;
	/* Filled for the stream frames and FRAME_DGRAM (id: the flow) */
	uint32_t stream_id;
	uint8_t stream_proto;          /* OPEN */
	uint8_t stream_reason;         /* RESET */
	uint32_t stream_credit;        /* CREDIT */
	struct ip_addr stream_addr;    /* OPEN, DGRAM, MOVE (the standby) */
	uint16_t stream_port;          /* OPEN, DGRAM, MOVE */
	const uint8_t *stream_data;    /* DATA, DGRAM: points into the parsed buffer */
	uint32_t stream_len;
	uint32_t udp_session_id;       /* UDP_SETUP, not 0 */
	uint8_t udp_path;              /* UDP_PATH, 0 or 1 */
};

/*
 * Parses one frame at the start of buf. Returns the bytes it occupies
 * (header + payload), 0 when buf holds only part of a frame, or -EPROTO
 * for a malformed one: unknown type, length above FRAME_PAYLOAD_MAX or
 * wrong for the type (HELLO not FRAME_HELLO_LEN, KEEPALIVE not empty,
 * CLOSE above FRAME_CLOSE_REASON_MAX, a packet shorter than an IP header
 * or of another IP version; for stream frames: id 0,
 * a family other than 4 or 6 or a length that does not match it, port 0,
 * proto other than TCP or UDP, DATA empty or above FRAME_STREAM_DATA_MAX,
 * a reset reason outside enum stream_reset_reason, credit 0 or above
 * STREAM_WINDOW, a DGRAM reserved byte not 0; MOVE: a family other than
 * 4 or 6 or a length not its, reserved not 0, port 0; MOVED not empty).
 * A FRAME_PACKET_OFF whose offload block lies about its packet parses,
 * with offload_bad set.
 * Packet contents beyond that (addresses) are checked by the caller with
 * pkt_addrs().
 */
int frame_parse(const uint8_t *buf, size_t len, struct frame *out);

/* Bytes frame_put_packet needs for p. */
size_t frame_packet_size(const struct pkt *p);
/*
 * Appends p as FRAME_PACKET (plain) or FRAME_PACKET_OFF (with offload) to
 * buf. Returns the bytes written, or 0 when cap is too small.
 */
size_t frame_put_packet(uint8_t *buf, size_t cap, const struct pkt *p);
size_t frame_put_hello(uint8_t *buf, size_t cap, uint8_t version, uint8_t flags);
size_t frame_put_keepalive(uint8_t *buf, size_t cap);
size_t frame_put_close(uint8_t *buf, size_t cap, const char *reason);
size_t frame_put_udp_setup(uint8_t *buf, size_t cap, uint32_t session_id);
size_t frame_put_udp_path(uint8_t *buf, size_t cap, bool on);
/* MOVE: 0 unless addr is IPv4 or IPv6 and port not 0. */
size_t frame_put_move(uint8_t *buf, size_t cap, const struct ip_addr *addr, uint16_t port);
size_t frame_put_moved(uint8_t *buf, size_t cap);

/*
 * Stream frames (proto.h). Each returns the bytes written, or 0 when cap
 * is too small or an argument is outside what frame_parse accepts.
 */
size_t frame_put_stream_open(uint8_t *buf, size_t cap, uint32_t id, uint8_t proto,
			     const struct ip_addr *addr, uint16_t port);
size_t frame_put_stream_data(uint8_t *buf, size_t cap, uint32_t id, const void *data, size_t len);
size_t frame_put_stream_fin(uint8_t *buf, size_t cap, uint32_t id);
size_t frame_put_stream_connected(uint8_t *buf, size_t cap, uint32_t id);
size_t frame_put_stream_reset(uint8_t *buf, size_t cap, uint32_t id, uint8_t reason);
size_t frame_put_stream_credit(uint8_t *buf, size_t cap, uint32_t id, uint32_t credit);
size_t frame_put_dgram(uint8_t *buf, size_t cap, uint32_t flow, const struct ip_addr *addr,
		       uint16_t port, const void *data, size_t len);

#endif
