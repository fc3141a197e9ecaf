// SPDX-License-Identifier: MIT
/* One TLS connection of the tunnel: its state machine, buffers and timers. */

/*
 * A session owns a socket, its TLS connection, a send and a receive
 * buffer and two timers. Both roles use it; what differs (whom to accept,
 * what to do when a session ends) is behind tunnel->role.
 *
 * Send: frames are appended back to back to tx and handed to SSL_write
 * when a batch is done (or when TUNNEL_TX_FLUSH_BYTES wait), so that
 * OpenSSL fills whole 16 KiB records with several packets. A write that
 * would block keeps its bytes and waits for EPOLLOUT. A peer whose HELLO
 * lacks HELLO_F_OFFLOAD gets GSO and partial-checksum packets segmented
 * and completed here (base/gso.h), one segment at a time through a
 * scratch buffer allocated with the HELLO, not per packet.
 *
 * Both buffers are allocated when TLS is up (session_alloc_buffers), so
 * that a connection still handshaking costs little.
 *
 * Receive: SSL_read fills rx; whole frames are parsed in place and their
 * packets delivered in batches that point into rx (no copy); a trailing
 * partial frame moves to the front. A stream session's frames are handed
 * over record by record instead, so that credits go back without waiting
 * for the whole budget (session_read_step). Reads stop after a budget so
 * other fds get a turn; OpenSSL may then hold bytes the socket no longer
 * signals, so the resume timer picks them up.
 *
 * Timers: before ESTABLISHED the timer is the handshake deadline; then it
 * ticks every keepalive/2 to send a keepalive after keepalive_ms without
 * sending and to declare the peer dead after TUNNEL_DEAD_FACTOR periods
 * of silence; in CLOSING it bounds the linger.
 *
 * Ending: session_end() tells the role at once (routing forgets the
 * session), then the session may linger in CLOSING so that the peer can
 * read our CLOSE frame before the socket closes. Memory is only freed at
 * the end of the loop's round (evloop_defer): a callback deep in a read
 * loop may end a session, and everything up the stack checks its state,
 * never a dangling pointer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/fqcodel.h"
#include "../base/gso.h"
#include "session.h"

enum {
	/* Bytes read per readiness callback before other fds get a turn. */
	SESSION_RX_BUDGET = TUNNEL_RX_BUF_BYTES,
	/* Parse once less than this is free: many records per parse, room for the next. */
	SESSION_RX_PARSE_ROOM = 64 * 1024,
	/* How long an ended session waits for the peer to read our CLOSE frame. */
	SESSION_LINGER_MS = 1000,
	/* Reads that discard what a closing peer still sends, per callback. */
	SESSION_LINGER_READS = 16,
};

static uint64_t session_now(const struct session *s)
{
	return evloop_now_ms(s->tunnel->loop);
}

static bool session_open(const struct session *s)
{
	return s->state == SESSION_HELLO || s->state == SESSION_ESTABLISHED;
}

size_t session_tx_pending(const struct session *s)
{
	return s->tx_tail - s->tx_head;
}

void session_trace(struct tunnel *t, const char *stage, const char *peer, const struct pkt *p)
{
	if (t->trace && t->cb.trace)
		t->cb.trace(t->cb_ctx, stage, peer, p);
}

static void session_update_events(struct session *s)
{
	uint32_t events;

	switch (s->state) {
	case SESSION_CONNECTING:
		events = EPOLLOUT;
		break;
	case SESSION_HANDSHAKE:
		events = s->read_want == TLS_WANT_POLLOUT ? EPOLLOUT : EPOLLIN;
		break;
	case SESSION_HELLO:
	case SESSION_ESTABLISHED:
	case SESSION_CLOSING:
		events = EPOLLIN;
		if (s->read_want == TLS_WANT_POLLOUT || s->write_want == TLS_WANT_POLLOUT)
			events |= EPOLLOUT;
		break;
	default:
		return;
	}
	/* MOD on a registered fd only fails without memory; the next event retries. */
	evloop_io_set(s->tunnel->loop, &s->io, events);
}

/* ---- life and death ---- */

static void session_unlink(struct session *s)
{
	struct tunnel *t = s->tunnel;

	if (s->prev)
		s->prev->next = s->next;
	else
		t->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	t->session_count--;
}

static void session_fq_retire(struct session *s);
static void session_on_defer(struct ev_defer *d);

/* Closes the socket; the memory goes at the end of the round. */
static void session_finalize(struct session *s)
{
	struct tunnel *t = s->tunnel;

	if (s->state == SESSION_CLOSED)
		return;
	evloop_io_stop(t->loop, &s->io);
	evloop_timer_stop(t->loop, &s->timer);
	evloop_timer_stop(t->loop, &s->resume);
	close(s->fd);
	s->fd = -1;
	s->state = SESSION_CLOSED;
	t->records_done.written += s->records.written;
	t->records_done.read += s->records.read;
	s->records.written = s->records.read = 0;
	session_fq_retire(s);
	session_unlink(s);
	evloop_defer(t->loop, &s->defer, session_on_defer);
}

static void session_destroy(struct session *s)
{
	fqcodel_free(s->fq);
	tls_conn_free(s->tls);
	free(s->scratch);
	free(s->tx);
	free(s->rx);
	free(s);
}

static void session_on_defer(struct ev_defer *d)
{
	session_destroy((struct session *)((char *)d - offsetof(struct session, defer)));
}

void session_reap(struct tunnel *t)
{
	while (t->sessions) {
		struct session *s = t->sessions;

		session_end(s, SESSION_END_LOCAL, true, "%s shutting down",
			    t->role_kind == TUNNEL_SERVER ? "server" : "client");
		session_finalize(s);
	}
	evloop_run_deferred(t->loop);
}

static void session_on_io(struct evloop *loop, struct ev_io *io, uint32_t events);
static void session_on_timer(struct evloop *loop, struct ev_timer *timer);
static void session_on_resume(struct evloop *loop, struct ev_timer *timer);

static int session_start_tls(struct session *s)
{
	struct tunnel *t = s->tunnel;
	const char *name = t->role_kind == TUNNEL_CLIENT ? t->server_name : NULL;

	s->tls = tls_conn_new(t->tls, s->fd, name, &s->records);
	return s->tls ? 0 : -ENOMEM;
}

static struct session *session_alloc(struct tunnel *t, int fd, enum session_state state)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->tunnel = t;
	s->fd = fd;
	s->state = state;
	if (state == SESSION_HANDSHAKE && session_start_tls(s) < 0) {
		session_destroy(s);
		return NULL;
	}
	return s;
}

/*
 * The big buffers come only once TLS is up and the role accepted the
 * peer's identity (tls_ready): a stranger's connection, and one with a
 * certificate of our CA but a name refused, costs its socket and an SSL
 * object, not 1.25 MiB (issue 13). Nothing before that touches them.
 */
static int session_alloc_buffers(struct session *s)
{
	s->tx = malloc(TUNNEL_TX_BUF_BYTES);
	s->rx = malloc(TUNNEL_RX_BUF_BYTES);
	return s->tx && s->rx ? 0 : -ENOMEM;
}

struct session *session_new(struct tunnel *t, int fd, const struct sockaddr *remote,
			    enum session_state state)
{
	struct session *s = session_alloc(t, fd, state);
	int ret;

	if (!s) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	tunnel_format_sockaddr(remote, s->remote, sizeof(s->remote));
	ev_io_init(&s->io, fd, session_on_io, s);
	ev_timer_init(&s->timer, session_on_timer, s);
	ev_timer_init(&s->resume, session_on_resume, s);
	ret = evloop_io_start(t->loop, &s->io, state == SESSION_CONNECTING ? EPOLLOUT : EPOLLIN);
	if (ret < 0) {
		close(fd);
		session_destroy(s);
		errno = -ret;
		return NULL;
	}
	s->started_ms = s->last_rx_ms = s->last_tx_ms = evloop_now_ms(t->loop);
	evloop_timer_start(t->loop, &s->timer, t->handshake_ms);
	s->next = t->sessions;
	if (s->next)
		s->next->prev = s;
	t->sessions = s;
	t->session_count++;
	return s;
}

/* ---- sending ---- */

static bool session_room(struct session *s, size_t need)
{
	/* Bytes before keep are sent; with --trace, whole frames not yet reported stay. */
	size_t keep = s->tunnel->trace ? s->tx_traced : s->tx_head;

	if (TUNNEL_TX_BUF_BYTES - s->tx_tail >= need)
		return true;
	if (TUNNEL_TX_BUF_BYTES - (s->tx_tail - keep) < need)
		return false;
	/* SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows this under a pending write. */
	memmove(s->tx, s->tx + keep, s->tx_tail - keep);
	s->tx_tail -= keep;
	s->tx_head -= keep;
	s->tx_traced -= keep < s->tx_traced ? keep : s->tx_traced;
	return true;
}

static void session_note_high_water(struct session *s)
{
	if (session_tx_pending(s) > SESSION_TX_HIGH_WATER)
		s->above_high_water = true;
}

/* Reports "sent" for each frame SSL_write has taken whole. */
static void session_trace_sent(struct session *s)
{
	struct frame f;
	int n;

	while (s->tx_traced < s->tx_head) {
		n = frame_parse(s->tx + s->tx_traced, s->tx_head - s->tx_traced, &f);
		if (n <= 0)
			break;
		s->tx_traced += (size_t)n;
		if (f.type == FRAME_PACKET || f.type == FRAME_PACKET_OFF)
			session_trace(s->tunnel, "sent", s->name, &f.pkt);
	}
}

/* 1: all written, 0: would block (write_want set), -1: TLS error. */
static int session_write_some(struct session *s)
{
	struct tunnel *t = s->tunnel;
	ssize_t n = 0;

	if (s->write_want)
		return 0;
	while (s->tx_head < s->tx_tail) {
		n = tls_write(s->tls, s->tx + s->tx_head, s->tx_tail - s->tx_head);
		if (n <= 0)
			break;
		s->tx_head += (size_t)n;
		t->stats.tls_writes++;
		s->last_tx_ms = session_now(s);
	}
	if (t->trace)
		session_trace_sent(s);
	if (s->tx_head == s->tx_tail) {
		s->tx_head = s->tx_tail = s->tx_traced = 0;
		return 1;
	}
	if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
		s->write_want = (int)n;
		return 0;
	}
	return -1;
}

/* Hands tx to TLS; the queue stays where it is. */
static void session_flush_tx(struct session *s)
{
	int ret;

	if (!session_open(s))
		return;
	ret = session_write_some(s);
	if (ret < 0) {
		session_end(s, s->state == SESSION_ESTABLISHED ? SESSION_END_ERROR : SESSION_END_HANDSHAKE,
			    false, "%s", tls_conn_error(s->tls));
		return;
	}
	session_update_events(s);
	if (s->above_high_water && session_tx_pending(s) < SESSION_TX_LOW_WATER) {
		s->above_high_water = false;
		if (s->tunnel->role->drained)
			s->tunnel->role->drained(s);
		if (s->streams && session_open(s))
			tunnel_stream_link_event(s, STREAM_MSG_LINK_WRITABLE);
	}
}

long session_frame_packet(uint8_t *buf, size_t cap, const struct pkt *p)
{
	struct frame f;
	size_t n;

	if (p->len > FRAME_IP_MAX)
		return -EINVAL;
	n = frame_put_packet(buf, cap, p);
	if (!n)
		return 0;
	/*
	 * The one parser vets our output too: a peer would cut us off for
	 * less, or drop an offload block that lies about its packet.
	 */
	if (frame_parse(buf, n, &f) != (int)n || f.offload_bad)
		return -EINVAL;
	return (long)n;
}

/* Room for need bytes, flushing once if the buffer is full. */
static bool session_make_room(struct session *s, size_t need)
{
	if (session_room(s, need))
		return true;
	session_flush_tx(s);
	return session_open(s) && session_room(s, need);
}

/* Frames one packet as it is; p is plain or the peer takes offload packets. */
static void session_send_frame(struct session *s, const struct pkt *p)
{
	struct tunnel *t = s->tunnel;
	long n;

	if (p->len > FRAME_IP_MAX) {
		t->stats.drop_malformed++;
		return;
	}
	if (!session_make_room(s, frame_packet_size(p))) {
		t->stats.drop_tx_full++;
		return;
	}
	n = session_frame_packet(s->tx + s->tx_tail, TUNNEL_TX_BUF_BYTES - s->tx_tail, p);
	if (n <= 0) {
		t->stats.drop_malformed++;
		return;
	}
	s->tx_tail += (size_t)n;
	t->stats.tx_packets++;
	t->stats.tx_bytes += p->len;
	session_trace(t, "framed", s->name, p);
	session_note_high_water(s);
	if (session_tx_pending(s) >= TUNNEL_TX_FLUSH_BYTES)
		session_flush_tx(s);
}

static int session_emit_segment(void *ctx, const struct pkt *seg)
{
	struct session *s = ctx;

	/* A flush between two segments may have ended the session. */
	if (!session_open(s))
		return -EPIPE;
	s->tunnel->stats.tx_segmented++;
	session_send_frame(s, seg);
	return 0;
}

void session_send_segmented(struct session *s, const struct pkt *p)
{
	int ret;

	if (!s->scratch) {
		s->tunnel->stats.drop_offload++; /* no memory for it at the HELLO */
		return;
	}
	ret = pkt_segment(p, s->scratch, PKT_SEGMENT_SCRATCH, session_emit_segment, s);
	/* UDP GSO or a malformed packet; -EPIPE lost the rest with the session. */
	if (ret < 0 && ret != -EPIPE)
		s->tunnel->stats.drop_offload++;
}

static void session_frame_out(struct session *s, const struct pkt *p)
{
	if (!pkt_is_plain(p) && !s->peer_offload)
		session_send_segmented(s, p);
	else
		session_send_frame(s, p);
}

void session_send_now(struct session *s, const struct pkt *p)
{
	session_frame_out(s, p);
}

/*
 * While nothing waits in the queue and TLS takes more, a packet goes
 * straight into tx (no copy, no queue: an idle path costs nothing). Else
 * it waits in the flow queue, and session_flush() frames what TLS takes.
 */
void session_send_packet(struct session *s, const struct pkt *p)
{
	if (!s->fq || (fqcodel_empty(s->fq) && !s->write_want &&
		       session_tx_pending(s) < TUNNEL_TX_FLUSH_BYTES)) {
		session_frame_out(s, p);
		return;
	}
	if (fqcodel_enqueue(s->fq, p) < 0)
		s->tunnel->stats.drop_malformed++;
}

/*
 * Frames queued packets while TLS takes them: the socket holds at most
 * TUNNEL_NOTSENT_LOWAT unsent and tx a flush's worth, so the standing
 * queue stays in the flow queue, where CoDel and DRR act on it.
 */
static void session_pump(struct session *s)
{
	struct pkt p;

	/* The UDP data channel drains the queue itself (udp_pump); a leaving session's rest goes here. */
	if (udp_sending(s) && !s->leaving)
		return;
	while (s->fq && session_open(s) && !s->write_want &&
	       session_tx_pending(s) < TUNNEL_TX_FLUSH_BYTES && fqcodel_dequeue(s->fq, &p))
		session_frame_out(s, &p);
}

enum {
	/* Pump rounds a leaving session gets per flush: FQ_LIMIT_BYTES in TX_FLUSH_BYTES steps. */
	SESSION_LEAVE_ROUNDS = TUNNEL_FQ_LIMIT_BYTES / TUNNEL_TX_FLUSH_BYTES,
};

/* MOVED after the last packet, once the flow queue has given up every one. */
static void session_send_moved(struct session *s)
{
	uint8_t moved[FRAME_HEADER_LEN];

	if (!session_open(s) || (s->fq && !fqcodel_empty(s->fq)))
		return;
	if (!session_append(s, moved, frame_put_moved(moved, sizeof(moved))))
		return; /* no room: the next flush tries again */
	s->leaving = false;
	session_flush_tx(s);
}

void session_flush(struct session *s)
{
	/* A leaving session gets no new packets, so nothing else would pump its queue. */
	unsigned rounds = s->leaving ? SESSION_LEAVE_ROUNDS : 1;

	session_flush_tx(s);
	while (rounds-- && s->fq && !fqcodel_empty(s->fq) && session_open(s) && !s->write_want) {
		session_pump(s);
		session_flush_tx(s);
	}
	if (s->leaving)
		session_send_moved(s);
}

void session_leave(struct session *s)
{
	s->move = SESSION_MOVE_LEFT;
	s->leaving = true;
	session_flush(s);
}

/*
 * A receive buffer of the path's bandwidth-delay product at
 * TUNNEL_RCV_RATE (the smoothed RTT the kernel measures), at least
 * TUNNEL_RCV_WINDOW: a receive queue that this end drains slower than the
 * peer fills stays short, and the excess waits in the peer's flow queue.
 * A path already long at the handshake keeps the kernel's autotuning,
 * which a fixed size would cap (64 KiB at 20 ms is 26 Mbit/s). Not
 * TCP_WINDOW_CLAMP: autotuning raises the clamp again; a set SO_RCVBUF
 * stays, and so does its lock on autotuning: a path that grows longer
 * after the handshake (the loss experiment adds its delay to a running
 * tunnel) would stay capped, so the bound is checked again every
 * TUNNEL_RCV_CHECK_MS while data arrives. Only a long path moves it: on a
 * short one the smoothed RTT under load is queueing and CPU, not
 * distance, and a buffer that followed it would grow the very queue it
 * bounds.
 */
static void session_set_rcvbuf(struct session *s, int bytes)
{
	tunnel_sockbuf(s->fd, SO_RCVBUFFORCE, SO_RCVBUF, bytes);
	s->rcvbuf_bytes = bytes;
}

/* After the handshake: the long path's BDP from TUNNEL_RCV_LONG_PATH_US, the handshake's bound below half that. */
static int session_rcvbuf_want(const struct session *s, uint32_t rtt_us)
{
	uint64_t bdp = (uint64_t)rtt_us * TUNNEL_RCV_RATE_BYTES_PER_US;

	if (rtt_us >= TUNNEL_RCV_LONG_PATH_US)
		return bdp > TUNNEL_RCV_MAX ? TUNNEL_RCV_MAX : (int)bdp;
	if (rtt_us < TUNNEL_RCV_LONG_PATH_US / 2)
		return s->rcvbuf_short;
	return s->rcvbuf_bytes; /* between: hysteresis, so that RTT noise does not flap it */
}

/* The TLS socket's smoothed RTT (TCP_INFO) in *rtt_us; false if the kernel does not say. */
static bool session_tcp_rtt(const struct session *s, uint32_t *rtt_us)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return false;
	*rtt_us = ti.tcpi_rtt;
	return true;
}

static void session_bound_rcvbuf(struct session *s)
{
	uint32_t rtt_us;
	uint64_t bdp;
	int bytes;

	s->rcvbuf_checked_ms = session_now(s);
	if (!session_tcp_rtt(s, &rtt_us))
		return;
	if (s->rcvbuf_short == 0) {
		bdp = (uint64_t)rtt_us * TUNNEL_RCV_RATE_BYTES_PER_US;
		if (bdp > TUNNEL_RCV_AUTOTUNE_ABOVE) {
			s->rcvbuf_autotuned = true;
			return;
		}
		s->rcvbuf_short = bdp > TUNNEL_RCV_WINDOW ? (int)bdp : TUNNEL_RCV_WINDOW;
		session_set_rcvbuf(s, s->rcvbuf_short);
		return;
	}
	bytes = session_rcvbuf_want(s, rtt_us);
	if (bytes != s->rcvbuf_bytes)
		session_set_rcvbuf(s, bytes);
}

uint32_t session_rtt_us(const struct session *s)
{
	uint32_t rtt_us;

	return session_tcp_rtt(s, &rtt_us) ? rtt_us : 0;
}

/* Rate-limited, from the read path: the receive side is where a longer path shows. */
static void session_recheck_rcvbuf(struct session *s)
{
	if (s->fq && session_open(s) && !s->rcvbuf_autotuned &&
	    session_now(s) - s->rcvbuf_checked_ms >= TUNNEL_RCV_CHECK_MS)
		session_bound_rcvbuf(s);
}

/*
 * Packet sessions get the flow queue and a bounded socket: unsent bytes
 * in the kernel are a FIFO that every flow waits behind. A stream
 * session keeps its per-stream windows instead. Without memory for the
 * queue, packets go straight to tx as before.
 */
static void session_fq_start(struct session *s)
{
	struct fqcodel_config cfg = {
		.limit_packets = TUNNEL_FQ_LIMIT_PACKETS,
		.limit_bytes = TUNNEL_FQ_LIMIT_BYTES,
		.ecn = true,
	};
	int lowat = TUNNEL_NOTSENT_LOWAT;

	if (s->streams || s->fq)
		return;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	session_bound_rcvbuf(s);
	s->fq = fqcodel_new(&cfg);
}

/* Counters of a session's queue, added into out (live) or into the tunnel's (retired). */
static void session_fq_add(const struct session *s, struct tunnel_stats *out)
{
	struct fqcodel_stats st;

	if (!s->fq)
		return;
	fqcodel_stats(s->fq, &st);
	out->fq_drops += st.drops_codel;
	out->fq_marks += st.marks_ce;
	out->fq_drops_overlimit += st.drops_overlimit;
	out->fq_backlog_packets += st.backlog_packets;
	out->fq_backlog_bytes += st.backlog_bytes;
	out->fq_flows += st.flows_active;
	if (st.dequeued && st.sojourn_last_us > out->fq_sojourn_last_us)
		out->fq_sojourn_last_us = st.sojourn_last_us;
	if (st.sojourn_max_us > out->fq_sojourn_max_us)
		out->fq_sojourn_max_us = st.sojourn_max_us;
	if (st.sojourn_p50_us > out->fq_sojourn_p50_us)
		out->fq_sojourn_p50_us = st.sojourn_p50_us;
	if (st.sojourn_p99_us > out->fq_sojourn_p99_us)
		out->fq_sojourn_p99_us = st.sojourn_p99_us;
}

void session_fq_stats(const struct session *s, struct tunnel_stats *out)
{
	session_fq_add(s, out);
}

/*
 * What the queue counted outlives it; what it held is lost with the
 * session. The memory stays until the round ends: a packet being framed or
 * segmented from it may be what ended the session.
 */
static void session_fq_retire(struct session *s)
{
	struct tunnel_stats *t = &s->tunnel->stats;

	if (!s->fq)
		return;
	fqcodel_purge(s->fq);
	session_fq_add(s, t);
	t->fq_backlog_packets = t->fq_backlog_bytes = t->fq_flows = 0;
}

uint8_t *session_reserve(struct session *s, size_t need)
{
	if (!session_open(s) || !session_make_room(s, need))
		return NULL;
	return s->tx + s->tx_tail;
}

void session_commit(struct session *s, size_t n)
{
	s->tx_tail += n;
	session_note_high_water(s);
}

bool session_append(struct session *s, const uint8_t *frame, size_t len)
{
	if (!session_open(s) || !session_make_room(s, len))
		return false;
	memcpy(s->tx + s->tx_tail, frame, len);
	s->tx_tail += len;
	session_note_high_water(s);
	return true;
}

/* ---- ending ---- */

/* Drops what the peer still sends, raw: our TLS read side is done. */
static int session_linger_drain(struct session *s)
{
	ssize_t n;
	int i;

	for (i = 0; i < SESSION_LINGER_READS; i++) {
		n = recv(s->fd, s->rx, TUNNEL_RX_BUF_BYTES, 0);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		return -1; /* the peer is gone: nothing left to linger for */
	}
	return 0;
}

/* CLOSING: flush what is left (our CLOSE frame), close_notify, wait for the peer's FIN. */
static void session_linger(struct session *s)
{
	int ret;

	if (session_linger_drain(s) < 0) {
		session_finalize(s);
		return;
	}
	if (s->tls) {
		s->write_want = 0; /* called on readiness: try again */
		ret = session_write_some(s);
		if (ret < 0) {
			session_finalize(s);
			return;
		}
		if (ret == 0) {
			session_update_events(s);
			return;
		}
		tls_close(s->tls);
		shutdown(s->fd, SHUT_WR);
		tls_conn_free(s->tls);
		s->tls = NULL;
		s->write_want = s->read_want = 0;
	}
	session_update_events(s);
}

static void session_tell_peer(struct session *s, const char *reason)
{
	size_t need = FRAME_HEADER_LEN + FRAME_CLOSE_REASON_MAX;

	if (session_room(s, need))
		s->tx_tail += frame_put_close(s->tx + s->tx_tail, need, reason);
}

/*
 * Ends a session refused before it got its buffers (by tls_ready, on its
 * identity): the CLOSE reason from the stack in one write, close_notify,
 * what the peer sent drained (so that close sends FIN, not RST) and the
 * fd closed now. No linger: a refused session keeps neither 1.25 MiB nor
 * an fd that no cap counts. Best effort: the write follows the
 * handshake, into an empty socket buffer, and fits.
 */
static void session_refuse(struct session *s, const char *reason)
{
	uint8_t frame[FRAME_HEADER_LEN + FRAME_CLOSE_REASON_MAX];
	uint8_t sink[4096];
	size_t len;

	if (reason) {
		len = frame_put_close(frame, sizeof(frame), reason);
		if (len > 0)
			(void)tls_write(s->tls, frame, len);
	}
	tls_close(s->tls);
	shutdown(s->fd, SHUT_WR);
	for (int i = 0; i < SESSION_LINGER_READS && recv(s->fd, sink, sizeof(sink), 0) > 0; i++)
		;
	session_finalize(s);
}

void session_end(struct session *s, enum session_end why, bool tell_peer, const char *fmt, ...)
{
	struct tunnel *t = s->tunnel;
	bool tls_up = session_open(s);
	char reason[256];
	va_list ap;

	if (s->ending || s->state >= SESSION_CLOSING)
		return;
	s->ending = true;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (s->streams && s->state == SESSION_ESTABLISHED)
		tunnel_stream_link_event(s, STREAM_MSG_LINK_DOWN);
	udp_session_end(s);
	t->role->ended(s, why, reason); /* s->state still says how far it got */
	s->state = SESSION_CLOSING;
	s->rx_batch.count = 0;
	evloop_timer_stop(t->loop, &s->resume);
	if (!tls_up) {
		session_finalize(s);
		return;
	}
	if (!s->tx) {
		session_refuse(s, tell_peer ? reason : NULL);
		return;
	}
	if (tell_peer)
		session_tell_peer(s, reason);
	if (!tell_peer || why == SESSION_END_LOCAL) {
		/* Best effort, without waiting: one write attempt, close_notify. */
		session_write_some(s);
		tls_close(s->tls);
		session_finalize(s);
		return;
	}
	evloop_timer_start(t->loop, &s->timer, SESSION_LINGER_MS);
	session_linger(s);
}

/* ---- receiving ---- */

void session_deliver(struct session *s)
{
	struct tunnel *t = s->tunnel;

	if (!s->rx_batch.count)
		return;
	udp_coalesce(s);
	if (t->cb.deliver)
		t->cb.deliver(t->cb_ctx, &s->rx_batch);
	s->rx_batch.count = 0;
}

bool session_source_ok(const struct session *s, const struct ip_addr *src)
{
	return reach_special(src) == REACH_OK && s->tunnel->role->source_ok(s, src);
}

enum reach_verdict session_dest_verdict(const struct session *s, const struct ip_addr *dst)
{
	return s->tunnel->role->dest_verdict(s, dst);
}

void session_receive_packet(struct session *s, const struct pkt *p)
{
	struct tunnel *t = s->tunnel;
	struct ip_addr src, dst;
	enum reach_verdict verdict;

	if (!pkt_is_plain(p) && !t->accept_offload) {
		/* We never offered HELLO_F_OFFLOAD; the packet is lost, the session need not be. */
		t->stats.drop_offload++;
		return;
	}
	if (pkt_addrs(p->data, p->len, &src, &dst) < 0) {
		t->stats.drop_malformed++;
		return;
	}
	if (!session_source_ok(s, &src)) {
		t->stats.drop_spoofed_source++;
		return;
	}
	/* The one check every frontend's inject path relies on. */
	verdict = session_dest_verdict(s, &dst);
	if (verdict != REACH_OK) {
		t->stats.drop_dst[verdict]++;
		return;
	}
	s->rx_batch.pkts[s->rx_batch.count++] = *p;
	s->rx_packets++;
	t->stats.rx_packets++;
	t->stats.rx_bytes += p->len;
	session_trace(t, "received", s->name, p);
	if (s->rx_batch.count == PKT_BATCH_MAX)
		session_deliver(s);
}

static void session_send_hello(struct session *s)
{
	uint8_t flags = (s->tunnel->accept_offload ? HELLO_F_OFFLOAD : 0) |
			(s->tunnel->streams ? HELLO_F_STREAMS : HELLO_F_MOVE) | udp_hello_flag(s->tunnel);
	uint8_t hello[FRAME_HEADER_LEN + FRAME_HELLO_LEN];
	size_t n = frame_put_hello(hello, sizeof(hello), PROTO_VERSION, flags);

	session_append(s, hello, n);
}

static void session_on_hello(struct session *s, const struct frame *f)
{
	struct tunnel *t = s->tunnel;
	uint64_t tick = t->keepalive_ms / 2 ? t->keepalive_ms / 2 : 1;

	if (f->hello_version != PROTO_VERSION) {
		session_end(s, SESSION_END_HANDSHAKE, true, "unsupported protocol version %u",
			    f->hello_version);
		return;
	}
	s->peer_offload = f->hello_flags & HELLO_F_OFFLOAD;
	s->streams = t->streams && (f->hello_flags & HELLO_F_STREAMS);
	s->udp_ok = udp_hello_flag(t) && (f->hello_flags & HELLO_F_UDP);
	s->peer_move = !t->streams && (f->hello_flags & HELLO_F_MOVE);
	/* Failure only costs offload packets (counted), not the session. */
	if (!s->peer_offload && !s->scratch)
		s->scratch = malloc(PKT_SEGMENT_SCRATCH);
	session_fq_start(s);
	if (t->role_kind == TUNNEL_SERVER)
		session_send_hello(s);
	s->state = SESSION_ESTABLISHED;
	evloop_timer_start(t->loop, &s->timer, tick);
	t->role->established(s);
	if (s->state == SESSION_ESTABLISHED)
		udp_session_established(s);
	if (s->streams && s->state == SESSION_ESTABLISHED)
		tunnel_stream_link_event(s, STREAM_MSG_LINK_UP);
	session_flush(s);
}

/* Makes a peer's CLOSE reason safe to log: printable, no line breaks. */
static void close_reason(const struct frame *f, char *out, size_t out_len)
{
	size_t i, n = f->len < out_len - 1 ? f->len : out_len - 1;

	for (i = 0; i < n; i++) {
		uint8_t c = f->payload[i];

		out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[n] = '\0';
}

static void session_on_frame(struct session *s, const struct frame *f)
{
	enum session_end why = s->state == SESSION_ESTABLISHED ? SESSION_END_ERROR : SESSION_END_HANDSHAKE;
	char reason[FRAME_CLOSE_REASON_MAX + 1];

	if (f->type == FRAME_CLOSE) {
		close_reason(f, reason, sizeof(reason));
		session_deliver(s);
		session_end(s, SESSION_END_PEER, false, "closed by peer: %s", reason[0] ? reason : "no reason");
		return;
	}
	if (s->state == SESSION_HELLO) {
		if (f->type == FRAME_HELLO)
			session_on_hello(s, f);
		else
			session_end(s, why, true, "protocol error: frame type %u before HELLO", f->type);
		return;
	}
	switch (f->type) {
	case FRAME_HELLO:
		session_end(s, why, true, "protocol error: second HELLO");
		break;
	case FRAME_KEEPALIVE:
		break;
	case FRAME_PACKET_OFF:
		if (f->offload_bad) {
			/* Never into a vnet header or the segmenter; one bad packet, not a bad peer. */
			s->tunnel->stats.drop_bad_offload++;
			break;
		}
		session_receive_packet(s, &f->pkt);
		break;
	case FRAME_PACKET:
		session_receive_packet(s, &f->pkt);
		break;
	case FRAME_UDP_SETUP:
	case FRAME_UDP_PATH:
		session_deliver(s);
		udp_on_frame(s, f);
		break;
	case FRAME_MOVE:
	case FRAME_MOVED:
		session_deliver(s);
		if (!s->peer_move)
			session_end(s, why, true, "protocol error: frame type %u without HELLO_F_MOVE", f->type);
		else
			s->tunnel->role->move(s, f);
		break;
	default:
		session_deliver(s); /* packets before it stay in order */
		tunnel_stream_receive(s, f);
		break;
	}
}

/*
 * Delivers the whole frames of rx from *off on and moves *off past them;
 * a trailing partial frame stays where it is until session_rx_consume().
 */
static void session_parse_from(struct session *s, size_t *off)
{
	struct frame f;
	int n;

	while (session_open(s)) {
		n = frame_parse(s->rx + *off, s->rx_len - *off, &f);
		if (n == 0)
			break;
		if (n < 0) {
			uint8_t type = s->rx[*off];
			uint32_t len = (uint32_t)s->rx[*off + 1] << 16 | s->rx[*off + 2] << 8 | s->rx[*off + 3];

			session_deliver(s);
			session_end(s, s->state == SESSION_ESTABLISHED ? SESSION_END_ERROR : SESSION_END_HANDSHAKE,
				    true, "malformed frame (type %u, length %u)", type, len);
			return;
		}
		*off += (size_t)n;
		session_on_frame(s, &f);
	}
	session_deliver(s);
}

/* Drops the off bytes already parsed: the partial frame after them moves to the front. */
static void session_rx_consume(struct session *s, size_t off)
{
	if (!session_open(s) || !off)
		return;
	memmove(s->rx, s->rx + off, s->rx_len - off);
	s->rx_len -= off;
}

static void session_parse(struct session *s)
{
	size_t off = 0;

	session_parse_from(s, &off);
	session_rx_consume(s, off);
}

static void session_read_failed(struct session *s, ssize_t n)
{
	bool established = s->state == SESSION_ESTABLISHED;

	session_parse(s);
	if (!session_open(s))
		return;
	if (n == 0)
		session_end(s, SESSION_END_PEER, false, "closed the connection");
	else
		session_end(s, established ? SESSION_END_ERROR : SESSION_END_HANDSHAKE, false, "%s",
			    tls_conn_error(s->tls));
}

/*
 * After each read. A stream session hands every record's frames to the
 * frontend as it arrives and lets what the frontend answered (credits)
 * leave at once: parsed once per read budget, a whole stream window would
 * wait in rx while the peer waits for the credit that reopens it, and
 * both ends run in lock step. In place, so no copies; rx is compacted
 * only when it runs short of room.
 */
static void session_read_step(struct session *s, size_t *parsed)
{
	if (s->streams) {
		session_parse_from(s, parsed);
		if (session_tx_pending(s))
			session_flush(s);
	}
	if (TUNNEL_RX_BUF_BYTES - s->rx_len < SESSION_RX_PARSE_ROOM) {
		session_parse_from(s, parsed);
		session_rx_consume(s, *parsed);
		*parsed = 0;
	}
}

static void session_read(struct session *s)
{
	size_t budget = SESSION_RX_BUDGET, parsed = 0;
	ssize_t n;

	while (session_open(s)) {
		if (budget == 0) {
			if (tls_pending(s->tls))
				evloop_timer_start(s->tunnel->loop, &s->resume, 0);
			break;
		}
		n = tls_read(s->tls, s->rx + s->rx_len, TUNNEL_RX_BUF_BYTES - s->rx_len);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			s->read_want = n == TLS_WANT_POLLOUT ? TLS_WANT_POLLOUT : 0;
			break;
		}
		if (n <= 0) {
			session_rx_consume(s, parsed);
			session_read_failed(s, n);
			return;
		}
		s->rx_len += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		s->last_rx_ms = session_now(s);
		session_read_step(s, &parsed);
		/* Level-triggered: what arrives later wakes us again. */
		if (session_open(s) && tls_drained(s->tls))
			break;
	}
	session_parse_from(s, &parsed);
	session_rx_consume(s, parsed);
	session_recheck_rcvbuf(s);
	/* What the stream frontend answered (credits, data) leaves with this wakeup. */
	if (s->streams && session_tx_pending(s))
		session_flush(s);
}

/* ---- events ---- */

static void session_on_tls_up(struct session *s)
{
	struct tunnel *t = s->tunnel;

	s->read_want = 0;
	s->state = SESSION_HELLO;
	if (tls_conn_resumed(s->tls))
		t->stats.handshakes_resumed++;
	else
		t->stats.handshakes_full++;
	/* Identity first: a refused peer never gets the buffers (session_refuse). */
	if (t->role->tls_ready && t->role->tls_ready(s) < 0)
		return;
	if (!session_open(s))
		return;
	if (session_alloc_buffers(s) < 0) {
		session_end(s, SESSION_END_HANDSHAKE, false, "out of memory for the session's buffers");
		return;
	}
	if (t->role_kind == TUNNEL_CLIENT)
		session_send_hello(s);
	session_flush(s);
	/* The peer's first frames may already sit inside OpenSSL. */
	session_read(s);
	if (session_open(s))
		session_update_events(s);
}

static void session_handshake(struct session *s)
{
	int ret = tls_handshake(s->tls);

	if (ret == TLS_WANT_POLLIN || ret == TLS_WANT_POLLOUT) {
		s->read_want = ret;
		session_update_events(s);
		return;
	}
	if (ret < 0) {
		session_end(s, SESSION_END_HANDSHAKE, false, "%s", tls_conn_error(s->tls));
		return;
	}
	session_on_tls_up(s);
}

static void session_connected(struct session *s)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		session_end(s, SESSION_END_CONNECT, false, "%s", strerror(err));
		return;
	}
	if (session_start_tls(s) < 0) {
		session_end(s, SESSION_END_CONNECT, false, "out of memory for TLS");
		return;
	}
	s->state = SESSION_HANDSHAKE;
	session_handshake(s);
}

static void session_open_io(struct session *s, uint32_t events)
{
	bool in = events & (EPOLLIN | EPOLLERR | EPOLLHUP);
	bool out = events & (EPOLLOUT | EPOLLERR | EPOLLHUP);
	bool write_ready = (out && s->write_want == TLS_WANT_POLLOUT) ||
			   (in && s->write_want == TLS_WANT_POLLIN);

	/*
	 * Read before writing: under an upload, what arrives (ACKs, echo
	 * replies) is little and goes straight to the frontend, while a flush
	 * encrypts and sends what the flow queue releases. Flushing first made
	 * the return path wait for it (measured in netns: a reply's wait from
	 * the server's write to the client's read, p50 0.28-0.49 ms, became
	 * 0.06-0.14 ms; issue 17).
	 */
	if (in || (out && s->read_want == TLS_WANT_POLLOUT)) {
		s->read_want = 0;
		session_read(s);
	}
	if (session_open(s) && write_ready) {
		s->write_want = 0;
		session_flush(s);
	}
	if (session_open(s))
		session_update_events(s);
}

static void session_on_io(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct session *s = io->arg;

	(void)loop;
	switch (s->state) {
	case SESSION_CONNECTING:
		session_connected(s);
		break;
	case SESSION_HANDSHAKE:
		session_handshake(s);
		break;
	case SESSION_HELLO:
	case SESSION_ESTABLISHED:
		session_open_io(s, events);
		break;
	case SESSION_CLOSING:
		session_linger(s);
		break;
	case SESSION_CLOSED:
		break;
	}
}

static void session_tick(struct session *s)
{
	struct tunnel *t = s->tunnel;
	uint64_t now = session_now(s), silence = (uint64_t)TUNNEL_DEAD_FACTOR * t->keepalive_ms;
	uint8_t keepalive[FRAME_HEADER_LEN];

	if (now - s->last_rx_ms >= silence) {
		session_end(s, SESSION_END_DEAD, false, "no traffic for %g s", (double)silence / 1000);
		return;
	}
	if (now - s->last_tx_ms >= t->keepalive_ms && !session_tx_pending(s)) {
		session_append(s, keepalive, frame_put_keepalive(keepalive, sizeof(keepalive)));
		session_flush(s);
		if (!session_open(s))
			return;
	}
	evloop_timer_start(t->loop, &s->timer, t->keepalive_ms / 2 ? t->keepalive_ms / 2 : 1);
}

static void session_on_timer(struct evloop *loop, struct ev_timer *timer)
{
	struct session *s = timer->arg;

	(void)loop;
	switch (s->state) {
	case SESSION_CONNECTING:
		session_end(s, SESSION_END_CONNECT, false, "connect timeout");
		break;
	case SESSION_HANDSHAKE:
	case SESSION_HELLO:
		session_end(s, SESSION_END_HANDSHAKE, true, "handshake timeout");
		break;
	case SESSION_ESTABLISHED:
		session_tick(s);
		break;
	case SESSION_CLOSING:
		session_finalize(s);
		break;
	case SESSION_CLOSED:
		break;
	}
}

static void session_on_resume(struct evloop *loop, struct ev_timer *timer)
{
	struct session *s = timer->arg;

	(void)loop;
	if (!session_open(s))
		return;
	session_read(s);
	if (session_open(s))
		session_update_events(s);
}
