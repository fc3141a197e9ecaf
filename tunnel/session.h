/* SPDX-License-Identifier: MIT */
/* One TLS connection of the tunnel: its state machine, buffers and timers. */
#ifndef TUNLAB_SESSION_H
#define TUNLAB_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/evloop.h"
#include "frame.h"
#include "tunnel_int.h"
#include "udp.h"

/*
 *   CONNECTING --> HANDSHAKE --> HELLO --> ESTABLISHED
 *   (client)        (TLS)     (identity     (packets,
 *                              checked,      keepalives)
 *                              HELLOs)
 *        any state --end--> CLOSING (lingers to let a CLOSE frame
 *                           arrive) --> CLOSED (freed as the round ends)
 */
enum {
	/* Above this a client's frontend should pause capture (tunnel_send_blocked). */
	SESSION_TX_HIGH_WATER = TUNNEL_TX_BUF_BYTES / 4 * 3,
	/* ...and resumes below this (cb->writable). */
	SESSION_TX_LOW_WATER = TUNNEL_TX_BUF_BYTES / 2,
};

/* A planned switchover, make before break (proto.h), as this end sees it. */
enum session_move {
	SESSION_MOVE_NONE,
	SESSION_MOVE_TOLD,  /* server: MOVE sent, MOVED not yet heard */
	SESSION_MOVE_LEFT,  /* server: MOVED heard; client: moved away. Carries only what comes back. */
};

enum session_state {
	SESSION_CONNECTING,
	SESSION_HANDSHAKE,
	SESSION_HELLO,
	SESSION_ESTABLISHED,
	SESSION_CLOSING,
	SESSION_CLOSED,
};

struct session {
	struct tunnel *tunnel;
	struct session *prev, *next; /* tunnel->sessions */
	struct ev_defer defer;       /* ended: freed at the end of the round */
	enum session_state state;
	int fd;
	struct ev_io io;
	struct ev_timer timer;  /* handshake deadline, keepalive tick, linger */
	struct ev_timer resume; /* read budget spent while OpenSSL holds bytes */
	struct tls_conn *tls;
	struct tls_record_counters records;

	char remote[64];                /* "10.1.0.2:40312" */
	char name[PEER_NAME_MAX + 1];   /* server: the peer's certificate name */
	void *role_data;                /* server: its struct server_peer */
	/* Server, until TLS is up: the list of unauthenticated connections, oldest first. */
	struct session *pending_prev, *pending_next;
	bool pending;                   /* on that list */
	struct ip_addr source;          /* server: the remote's address, an IPv6 one cut to /64 */
	bool peer_offload;              /* the peer's HELLO had HELLO_F_OFFLOAD */
	bool streams;                   /* both HELLOs had HELLO_F_STREAMS */
	bool udp_ok;                    /* both HELLOs had HELLO_F_UDP */
	bool peer_move;                 /* both HELLOs had HELLO_F_MOVE */
	enum session_move move;
	bool leaving;                   /* client: MOVED goes out once the flow queue is empty */
	uint64_t rx_packets;            /* packets received on this session (a moved one's quiet) */
	struct udp_session udp;         /* the UDP data channel, once set up */

	uint64_t started_ms, last_rx_ms, last_tx_ms;
	int read_want, write_want;      /* TLS_WANT_* of the last blocked call, or 0 */
	bool above_high_water;          /* drained() is owed once below half */
	bool flush_queued;              /* in the server's to-flush list of a batch */
	bool ending;                    /* session_end() is running: no reentry */
	/* SO_RCVBUF as session_bound_rcvbuf() last set it and as the handshake set it (0: never), or autotuned. */
	int rcvbuf_bytes, rcvbuf_short;
	bool rcvbuf_autotuned;
	uint64_t rcvbuf_checked_ms;

	/* Frames waiting for SSL_write: [tx_head, tx_tail) of tx. */
	uint8_t *tx;
	size_t tx_head, tx_tail;
	size_t tx_traced; /* frames before this were reported "sent" */
	/* Packets TLS cannot take now (base/fqcodel.h); packet sessions only, from the HELLO. */
	struct fqcodel *fq;
	/* PKT_SEGMENT_SCRATCH bytes, only for a peer that cannot take offload packets. */
	uint8_t *scratch;

	/* Bytes from SSL_read: whole frames are parsed in place, a tail kept. */
	uint8_t *rx;
	size_t rx_len;
	struct pkt_batch rx_batch;
};

/*
 * Takes fd (connected, or connecting when state is SESSION_CONNECTING)
 * and links the session into t->sessions. Closes fd and returns NULL with
 * errno on failure.
 */
struct session *session_new(struct tunnel *t, int fd, const struct sockaddr *remote,
			    enum session_state state);
/* Ends s: tells the role, optionally sends CLOSE with reason to the peer. */
__attribute__((format(printf, 4, 5)))
void session_end(struct session *s, enum session_end why, bool tell_peer, const char *fmt, ...);
/* Ends and frees every session, and what else the loop deferred (tunnel_free). */
void session_reap(struct tunnel *t);

/*
 * Frames p into the send buffer of an established session, flushing first
 * when the buffer is full. Counts drops itself.
 */
void session_send_packet(struct session *s, const struct pkt *p);
/*
 * Frames p for TLS now, past the flow queue: for a packet the datagram
 * channel took from that queue and cannot carry (it points into the queue).
 */
void session_send_now(struct session *s, const struct pkt *p);
/*
 * Frames the plain packets that software segmentation and checksum
 * completion make of p, for a peer without HELLO_F_OFFLOAD. Counts them
 * in tx_segmented, and p in drop_offload when it cannot be made plain.
 */
void session_send_segmented(struct session *s, const struct pkt *p);
/*
 * Appends a frame already on the wire format (a client's queue). Returns
 * false when the buffer has no room even after a flush.
 */
bool session_append(struct session *s, const uint8_t *frame, size_t len);
/*
 * Room for need more bytes at the end of the send buffer (flushing once if
 * full): where to write them, or NULL. session_commit() then adds the n
 * bytes written there, as session_append() would have.
 */
uint8_t *session_reserve(struct session *s, size_t need);
void session_commit(struct session *s, size_t n);
/*
 * Hands the send buffer to SSL_write until it is empty or would block,
 * then frames from the flow queue what TLS still takes.
 */
void session_flush(struct session *s);
/*
 * Client: nothing more will be sent on s. What its flow queue holds is
 * framed as TLS takes it, then MOVED, after which s only receives.
 */
void session_leave(struct session *s);
/* Adds the flow queue's counters of s into out (sums; sojourn figures: the largest). */
void session_fq_stats(const struct session *s, struct tunnel_stats *out);
size_t session_tx_pending(const struct session *s);
/* The TLS socket's smoothed RTT (TCP_INFO), µs; 0 if the kernel does not say. */
uint32_t session_rtt_us(const struct session *s);

/*
 * Writes p as a frame into buf and checks the result with frame_parse(),
 * so that nothing leaves that a peer would reject. Returns the size, 0 when
 * cap is too small, or -EINVAL for a packet no peer would accept.
 */
long session_frame_packet(uint8_t *buf, size_t cap, const struct pkt *p);

/* stream.c: a stream frame received on s, and the link events of s. */
void tunnel_stream_receive(struct session *s, const struct frame *f);
void tunnel_stream_link_event(struct session *s, enum stream_msg_type type);

/*
 * The reach checks every path of a peer's traffic goes through: a source
 * the role accepts and that is not special; a destination the policy lets
 * the peer reach (REACH_OK), or why not.
 */
bool session_source_ok(const struct session *s, const struct ip_addr *src);
enum reach_verdict session_dest_verdict(const struct session *s, const struct ip_addr *dst);

/*
 * A packet received on s (over TLS or UDP): checked (offload, source,
 * reach), counted and added to s's receive batch, which
 * session_deliver() hands to the frontend.
 */
void session_receive_packet(struct session *s, const struct pkt *p);
void session_deliver(struct session *s);

/* The per-packet trace hook, a no-op unless --trace. */
void session_trace(struct tunnel *t, const char *stage, const char *peer, const struct pkt *p);

#endif
