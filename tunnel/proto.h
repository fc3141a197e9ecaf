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
 *
 * Stream frames (only between peers whose HELLOs both carry
 * HELLO_F_STREAMS) carry byte streams and datagrams for the proxy frontend
 * instead of packets. Every field is big endian; an id is never 0. Only
 * the client opens streams and flows, so ids never collide.
 *
 *   STREAM_OPEN    id u32, proto u8 (6 TCP, 17 UDP), family u8 (4 or 6),
 *                  port u16 (not 0), address (4 or 16 bytes): connect there
 *   STREAM_DATA    id u32, 1..FRAME_STREAM_DATA_MAX bytes of the stream
 *   STREAM_FIN     id u32: the sender will send no more (shutdown SHUT_WR)
 *   STREAM_CONNECTED id u32: server only, the destination accepted the
 *                  connection; a client holding the application's SYN
 *                  lets it through now (a refusal is STREAM_RESET)
 *   STREAM_RESET   id u32, reason u8 (enum stream_reset_reason): the stream
 *                  is gone both ways, the receiver aborts it (RST)
 *   STREAM_CREDIT  id u32, bytes u32 (1..STREAM_WINDOW): the receiver's
 *                  application consumed that many more bytes; the sender
 *                  may have STREAM_WINDOW + all credit - all sent in flight
 *   DGRAM          flow u32, reserved u8 (0), family u8, port u16, address,
 *                  0..FRAME_DGRAM_MAX payload bytes. Client to server: the
 *                  datagram's destination; server to client: its source.
 *
 * The UDP data channel (issue 15, between peers whose HELLOs both carry
 * HELLO_F_UDP) is set up over this connection: the server answers the
 * client's HELLO with UDP_SETUP (session id u32, never 0), after which
 * both derive the channel's keys from this connection's exporter; the
 * client says with UDP_PATH (u8, 0 or 1) whether the server should send
 * it data over UDP, as its probes find the path working or not.
 *
 * A planned switchover, make before break (between peers whose HELLOs
 * both carry HELLO_F_MOVE): the server going away sends MOVE
 *
 *   MOVE   family u8 (4 or 6), reserved u8 (0), port u16 (not 0), address:
 *          where the standby takes connections (its own address, not the
 *          floating one, which still leads here)
 *
 * and goes on carrying packets both ways. The client connects there with
 * the expected name of this server (the standby serves the same name,
 * and resumes the client's ticket), moves its sending onto the new
 * session once it is established, and sends MOVED (empty) here after the
 * last packet it sends on this one. This session then carries only what
 * still comes back this way (the return path moves with the gateway
 * address, after the clients) until the client closes it, once nothing
 * has come for TUNNEL_MOVE_QUIET_MS.
 */
enum frame_type {
	FRAME_HELLO      = 1, /* first frame each way: version, flags */
	FRAME_PACKET     = 2, /* one IP packet with valid checksums */
	FRAME_PACKET_OFF = 3, /* struct pkt_offload (12 bytes) + one IP packet */
	FRAME_KEEPALIVE  = 4, /* empty; sent when nothing else was for a while */
	FRAME_CLOSE      = 5, /* UTF-8 reason, then close_notify */
	FRAME_STREAM_OPEN   = 6,  /* client: open a stream to an address */
	FRAME_STREAM_DATA   = 7,  /* bytes of a stream, within the peer's window */
	FRAME_STREAM_FIN    = 8,  /* half-close: no more data from the sender */
	FRAME_STREAM_RESET  = 9,  /* abort, with a reason */
	FRAME_STREAM_CREDIT = 10, /* flow control: widen the sender's window */
	FRAME_DGRAM         = 11, /* one UDP datagram of a flow */
	FRAME_STREAM_CONNECTED = 12, /* exit: the connection of a STREAM_OPEN is established */
	FRAME_STREAM_LAST   = FRAME_STREAM_CONNECTED,
	FRAME_UDP_SETUP     = 13, /* server: the data channel's session id u32 (dgram/dgram.h) */
	FRAME_UDP_PATH      = 14, /* client: u8 1: send data to me over UDP, 0: over TLS */
	FRAME_MOVE          = 15, /* server: connect to this standby; this session carries on */
	FRAME_MOVED         = 16, /* client: empty; the last packet sent on this session is before it */
};

/* Why a stream was reset: what the application at the other end learns. */
enum stream_reset_reason {
	STREAM_RESET_REFUSED     = 1, /* the destination refused the connection */
	STREAM_RESET_UNREACHABLE = 2, /* no route, host or network unreachable */
	STREAM_RESET_RESET       = 3, /* an end reset or aborted the connection */
	STREAM_RESET_TIMEOUT     = 4, /* connect or idle timeout */
	STREAM_RESET_LIMIT       = 5, /* a per-client limit (streams, memory, window) */
	/* The exit's policy forbids the destination (--export, base/reach.h); like ICMP "prohibited". */
	STREAM_RESET_PROHIBITED  = 6,
	STREAM_RESET_REASON_MAX  = STREAM_RESET_PROHIBITED,
};

enum {
	PROTO_VERSION = 3, /* 2: STREAM_CONNECTED, 1 MiB stream window; 3: RESET PROHIBITED */
	FRAME_HEADER_LEN = 4,
	/* IP's total-length field caps a packet at 65535, GSO packets too. */
	FRAME_IP_MAX = 65535,
	FRAME_OFFLOAD_LEN = 12,
	/* The largest payload any frame type may carry; longer is malformed. */
	FRAME_PAYLOAD_MAX = FRAME_OFFLOAD_LEN + FRAME_IP_MAX,
	FRAME_HELLO_LEN = 4,  /* version u8, flags u8, reserved u16 = 0 */
	FRAME_CLOSE_REASON_MAX = 200,
	FRAME_STREAM_ID_LEN = 4,
	/* id + one TLS record's worth: a full DATA frame fills a record exactly. */
	FRAME_STREAM_DATA_MAX = 16384 - FRAME_HEADER_LEN - FRAME_STREAM_ID_LEN,
	/* id, proto, family, port, then 4 or 16 address bytes */
	FRAME_STREAM_OPEN_V4_LEN = 8 + 4,
	FRAME_STREAM_OPEN_V6_LEN = 8 + 16,
	FRAME_STREAM_RESET_LEN = 5,
	FRAME_STREAM_CREDIT_LEN = 8,
	/* The largest UDP payload IPv4 allows (65535 - 20 - 8); IPv6 gets no more. */
	FRAME_DGRAM_MAX = 65507,
	FRAME_DGRAM_V4_HEADER = 8 + 4,
	FRAME_DGRAM_V6_HEADER = 8 + 16,
	FRAME_UDP_SETUP_LEN = 4,
	FRAME_UDP_PATH_LEN = 1,
	FRAME_MOVE_V4_LEN = 4 + 4,  /* family, reserved, port, then the address */
	FRAME_MOVE_V6_LEN = 4 + 16,
};

enum hello_flags {
	/* The sender's frontend injects offload packets: send FRAME_PACKET_OFF. */
	HELLO_F_OFFLOAD = 1u << 0,
	/*
	 * The sender's frontend carries streams (the proxy): stream frames may
	 * be sent to it. A packet-only peer never gets one; if it does anyway,
	 * it answers STREAM_OPEN with STREAM_RESET (refused).
	 */
	HELLO_F_STREAMS = 1u << 1,
	/* The sender wants (client) or offers (server) the UDP data channel. */
	HELLO_F_UDP = 1u << 2,
	/*
	 * The sender follows MOVE (client) or sends it (server). A stream
	 * session does not: the proxy's streams end at this server and cannot
	 * move; such a client gets a CLOSE and reconnects.
	 */
	HELLO_F_MOVE = 1u << 3,
};

enum {
	/*
	 * Per-stream flow control, HTTP/2 style: each side may have this many
	 * bytes unacknowledged per stream from the start, and the receiver
	 * widens the window with STREAM_CREDIT as its application consumes.
	 * 1 MiB covers 4 Gbit/s at 2 ms RTT: measured, 256 KiB held one
	 * proxied stream to ~0.8x a TLS byte-stream relay, its sender waiting
	 * for credit ~40% of the time; beyond 1 MiB nothing more was gained.
	 * It bounds what one stream whose reader stalls can make the other
	 * end buffer (PX_BUFFERED_PER_CLIENT bounds the sum).
	 */
	STREAM_WINDOW = 1024 * 1024,
	/* A receiver credits once this much was consumed: few CREDIT frames, no stall. */
	STREAM_CREDIT_THRESHOLD = STREAM_WINDOW / 4,
};

enum {
	/* One TLS record holds 16 KiB; four of them per flush keeps syscalls few. */
	TUNNEL_TX_FLUSH_BYTES = 64 * 1024,
	/* Per-session send buffer; beyond it a server drops, a client pauses capture. */
	TUNNEL_TX_BUF_BYTES = 1024 * 1024,
	/* Receive buffer: at least one maximal frame plus a batch of reads. */
	TUNNEL_RX_BUF_BYTES = 256 * 1024,
	/*
	 * Unsent bytes the kernel may hold for a packet session's TLS socket
	 * (TCP_NOTSENT_LOWAT): above it writes block and packets wait in the
	 * flow queue, where a ping need not wait behind them. 128 KiB is
	 * ~0.2 ms at 5 Gbit/s, some wakeups' worth of work for the socket.
	 */
	TUNNEL_NOTSENT_LOWAT = 32 * 1024,
	/*
	 * The receive buffer of a packet session's socket on a short path
	 * (SO_RCVBUF, which the kernel doubles for overhead; it bounds the
	 * window we advertise): when this end decrypts slower than the peer
	 * sends, the excess would wait in our socket's receive queue,
	 * autotuned to MiBs (measured: ~1.1 MB, 2.5 ms, under a 4-stream
	 * upload in netns); bounded, it waits in the sender's flow queue.
	 * The floor: 64 KiB (measured in netns: +1.3 ms under load against
	 * +1.9 ms with 128 KiB, throughput the same within the noise).
	 */
	TUNNEL_RCV_WINDOW = 64 * 1024,
	/* The rate a bounded buffer must carry at the path's RTT: 10 Gbit/s. */
	TUNNEL_RCV_RATE_BYTES_PER_US = 1250,
	/* A path whose BDP at that rate is beyond this keeps autotuning (~3 ms and up). */
	TUNNEL_RCV_AUTOTUNE_ABOVE = 4 * 1024 * 1024,
	/* The most a bound raised later sets: tcp_rmem's default maximum (~5 Gbit/s at 10 ms). */
	TUNNEL_RCV_MAX = 6 * 1024 * 1024,
	/* How often arriving data re-checks the bound against the path's RTT. */
	TUNNEL_RCV_CHECK_MS = 100,
	/* A smoothed RTT from which the path, not a queue, sets the bound (2.5 MB at that rate). */
	TUNNEL_RCV_LONG_PATH_US = 2000,
	/* The flow queue's global limits: fq_codel's packet default; ~6 ms at 5 Gbit/s. */
	TUNNEL_FQ_LIMIT_PACKETS = 10240,
	TUNNEL_FQ_LIMIT_BYTES = 4 * 1024 * 1024,
	/* What a client holds while reconnecting (the --queue default). */
	TUNNEL_QUEUE_DEFAULT_BYTES = 256 * 1024,
	/* What a --lazy client holds while its first session comes up, unless --queue sets bytes. */
	TUNNEL_LAZY_QUEUE_PACKETS = 128,
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
	/*
	 * Server: ICMP "administratively prohibited" answers to packets for a
	 * peer that is not connected: a burst of this many, then this many a
	 * second (the kernel's icmp_ratelimit allows one per second per
	 * destination; ours is one bucket for all, so larger).
	 */
	UNREACH_BURST = 16,
	UNREACH_PER_SEC = 50,
	/* --idle-timeout is checked at a quarter of it, but not more often than this. */
	TUNNEL_IDLE_TICK_MIN_MS = 100,
	/*
	 * A session a client moved away from is closed once no packet came
	 * on it for this long: what the old server still had in flight, and
	 * the answers that reach it until the gateway address has moved,
	 * come back first. Far above the milliseconds a VRRP move and its
	 * gratuitous ARP take; far below a keepalive period, so the old
	 * server is free soon.
	 */
	TUNNEL_MOVE_QUIET_MS = 500,
	/*
	 * Server: a client told to MOVE that has not said MOVED in this many
	 * handshake timeouts (it could not reach the standby) gets a CLOSE,
	 * and reconnects as after a failure.
	 */
	TUNNEL_MOVE_DEADLINE_FACTOR = 2,
};

/*
 * The listener's caps (issue 13): a stranger must not lock real peers out.
 * Unauthenticated connections (accepted, TLS not finished) are capped in
 * total and per source, peers with a certificate of our CA separately, so
 * strangers never take a peer's place.
 */
enum {
	/* Unauthenticated connections at once (--max-handshakes). A TLS
	 * handshake takes a round trip or two: 256 is many clients starting at once. */
	TUNNEL_MAX_HANDSHAKES_DEFAULT = 256,
	/* The flag's bound: the per-source count is a scan of this many. */
	TUNNEL_MAX_HANDSHAKES_LIMIT = 4096,
	/* ...from one IPv4 address or one IPv6 /64 (--max-handshakes-per-source):
	 * one host handshakes once at a time; a NAT holds a few such hosts. */
	TUNNEL_MAX_HANDSHAKES_PER_SOURCE_DEFAULT = 16,
	/* Authenticated connections, HELLO and established (--max-peers). */
	TUNNEL_MAX_PEERS_DEFAULT = 1024,
	TUNNEL_MAX_PEERS_LIMIT = 65536,
	/* The prefix that counts as one IPv6 source: what one site or host is given. */
	TUNNEL_SOURCE_PREFIX_V6 = 64,
	/* Listener warnings: at most this many lines per window, then one summary. */
	TUNNEL_WARN_BURST = 5,
	TUNNEL_WARN_WINDOW_MS = 10000,
};

#endif
