/* SPDX-License-Identifier: MIT */
/* Wire and timing constants of the tunnel, with the reason beside each. */
#ifndef TUNLAB_PROTO_H
#define TUNLAB_PROTO_H

/*
 * Inside TLS the byte stream is a sequence of frames:
 *
 *   0      1                   4
 *   +------+-------------------+----------------------+
 *   | type | payload length    | payload ...          |
 *   | u8   | u24, big endian   |                      |
 *   +------+-------------------+----------------------+
 *
 * Frames are packed back to back into one write buffer, so that several
 * packets share one TLS record (16 KiB of plaintext at most).
 *
 * FRAME_PACKET_OFF's payload starts with the offload block of struct
 * pkt_offload, big endian: flags u8, gso_type u8, hdr_len u16, gso_size u16,
 * csum_start u16, csum_offset u16, reserved u16 (0); the IP packet follows.
 */
enum frame_type {
	FRAME_HELLO      = 1, /* first frame each way: version, flags */
	FRAME_PACKET     = 2, /* one IP packet with valid checksums */
	FRAME_PACKET_OFF = 3, /* struct pkt_offload (12 bytes) + one IP packet */
	FRAME_KEEPALIVE  = 4, /* empty; sent when nothing else was for a while */
	FRAME_CLOSE      = 5, /* UTF-8 reason, then close_notify */
};

enum {
	PROTO_VERSION = 1,
	FRAME_HEADER_LEN = 4,
	/* IP's total-length field caps a packet at 65535, GSO packets too. */
	FRAME_IP_MAX = 65535,
	FRAME_OFFLOAD_LEN = 12,
	/* The largest payload any frame type may carry; longer is malformed. */
	FRAME_PAYLOAD_MAX = FRAME_OFFLOAD_LEN + FRAME_IP_MAX,
	FRAME_HELLO_LEN = 4,  /* version u8, flags u8, reserved u16 = 0 */
	FRAME_CLOSE_REASON_MAX = 200,
};

enum hello_flags {
	/* The sender's frontend injects offload packets: send FRAME_PACKET_OFF. */
	HELLO_F_OFFLOAD = 1u << 0,
};

enum {
	/* One TLS record holds 16 KiB; four of them per flush keeps syscalls few. */
	TUNNEL_TX_FLUSH_BYTES = 64 * 1024,
	/* Per-session send buffer; beyond it a server drops, a client pauses capture. */
	TUNNEL_TX_BUF_BYTES = 1024 * 1024,
	/* Receive buffer: at least one maximal frame plus a batch of reads. */
	TUNNEL_RX_BUF_BYTES = 256 * 1024,
	/* What a client holds while reconnecting (the --queue default). */
	TUNNEL_QUEUE_DEFAULT_BYTES = 256 * 1024,
};

enum {
	/* Idle-transmit period before a keepalive; a NAT or firewall keeps state. */
	TUNNEL_KEEPALIVE_MS_DEFAULT = 5000,
	/* Silence after which a peer is dead: three missed keepalives. */
	TUNNEL_DEAD_FACTOR = 3,
	/* A handshake (TLS + HELLO) that takes longer is a stalled or hostile peer. */
	TUNNEL_HANDSHAKE_MS_DEFAULT = 10000,
	/* Client reconnect backoff: quick first retry, doubling, capped. */
	TUNNEL_BACKOFF_MIN_MS = 100,
	TUNNEL_BACKOFF_MAX_MS = 3000,
	/* Server: bound on concurrent connections, handshaking ones included. */
	TUNNEL_MAX_SESSIONS = 1024,
};

#endif
