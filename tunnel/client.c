// SPDX-License-Identifier: MIT
/* The client role: one connection to the server, kept up, with a queue while it is down. */

/*
 *   connect --ok--> session (TCP, TLS, HELLOs) --established--> carry packets
 *      ^                     |  failure                              | lost
 *      +---- retry timer <---+---------------------------------------+
 *
 * Endpoints (several --connect, issue 16): each failure, of an attempt
 * or of an established session, moves on to the next endpoint, round the
 * list. How soon: a session that was established and is lost (reset,
 * close, or silence that the keepalive judged dead) is followed by an
 * attempt at once, and a failed attempt by one at the next endpoint at
 * once, until every endpoint has been tried once in this round: then the
 * retry delay applies, which starts at TUNNEL_BACKOFF_MIN_MS and doubles
 * up to TUNNEL_BACKOFF_MAX_MS; an established session resets it. So a
 * reset from a server that died (or from the new owner of a moved
 * address) costs no wait, and a dead endpoint list cannot make the client
 * spin. An attempt that hears nothing ends at the handshake timeout. While no
 * session is established, captured packets are framed into a byte queue
 * of queue_bytes (no allocation per packet) and sent after the HELLOs;
 * what does not fit is dropped and counted. The queue may be larger than
 * the session's send buffer (--queue up to 64 MiB, the buffer 1 MiB), so
 * it is handed over in rounds: as much as fits, then the rest each time
 * the buffer drains (the drained hook), while capture stays paused and
 * new packets queue behind it to keep their order. Frames still in the
 * send buffer when a connection dies are lost with it, like packets on a
 * link that goes down (TCP inside the tunnel retransmits); the queue's
 * rest waits for the next connection.
 *
 * A planned switchover (MOVE, proto.h), make before break: the server
 * going away names its standby, and the client connects there (the
 * successor) beside the session, which goes on carrying packets both
 * ways. Once the successor is established it becomes the session:
 * packets go there from then on, and the old one sends what its flow
 * queue still holds, then MOVED, and only receives (draining) until no
 * packet has come on it for TUNNEL_MOVE_QUIET_MS: the answers still on
 * their way to the old server. Then it is closed. If the successor
 * fails, the session stays as it is (the server cuts it at its deadline
 * and the client reconnects as after any close); if the session is lost
 * first, packets queue until the successor is up.
 *
 * On demand (--lazy, issue 14): no connection at start; the first packet
 * the frontend captures (it captures only what the policy protects) is
 * queued and starts one. Once established, a session lost with nothing
 * queued is not redialled: the next packet does it. --idle-timeout
 * closes a session that carried no packet either way for that long, and
 * the client goes back to waiting for a packet. The queue is the same one
 * as while reconnecting, capped at TUNNEL_LAZY_QUEUE_PACKETS unless
 * --queue gives a size in bytes. tunnel_down closes the session at once
 * the way the idle timer does (`tunlab down`), when one is established
 * and its queue sent.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"

/* One --connect, resolved at start. */
struct client_endpoint {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char text[280];        /* as given, for logs */
	char server_name[256]; /* what its certificate must name */
};

struct client {
	struct session *session; /* the current attempt or connection */
	struct session *successor; /* a MOVE's connection to the standby, until established */
	struct session *draining;  /* the session moved away from: receives until quiet */
	uint64_t draining_seen;    /* its rx_packets at the last quiet tick */
	struct ev_timer quiet;
	struct client_endpoint *endpoints;
	size_t endpoint_count, current;
	size_t tried;            /* attempts in this round, at most endpoint_count */
	bool established, ever_established;
	unsigned backoff_ms;
	struct ev_timer retry;
	uint8_t *queue; /* frames, back to back: [queue_off, queue_len) still to send */
	size_t queue_off, queue_len;
	uint64_t queue_packets;
	bool flushing;  /* client_flush_queue() runs: a drained hook inside it waits */
	unsigned queue_packets_max; /* 0: only queue_bytes bounds the queue */
	/* --lazy, --idle-timeout */
	bool lazy;
	bool dormant;   /* no session and none wanted until a packet comes */
	unsigned idle_ms;
	struct ev_timer idle;
	uint64_t idle_seen;     /* tx + rx packets at the last tick */
	uint64_t idle_since_ms; /* when they last changed */
};

static bool client_queue_waiting(const struct client *c)
{
	return c->queue_off < c->queue_len;
}

/* Makes endpoint i the one the next attempt goes to (t->addr, t->endpoint, t->server_name). */
static void client_use_endpoint(struct tunnel *t, size_t i)
{
	struct client *c = t->client;
	const struct client_endpoint *ep = &c->endpoints[i];

	c->current = i;
	t->addr = ep->addr;
	t->addr_len = ep->addr_len;
	snprintf(t->endpoint, sizeof(t->endpoint), "%s", ep->text);
	snprintf(t->server_name, sizeof(t->server_name), "%s", ep->server_name);
}

/*
 * After a failure: the next endpoint, at once while this round has one
 * left untried, else after the retry delay (see the top). what says
 * what failed, for the log.
 */
static void client_schedule_retry(struct tunnel *t, const char *what, const char *reason)
{
	struct client *c = t->client;
	const char *failed = c->endpoints[c->current].text;
	unsigned delay = 0;

	if (c->tried >= c->endpoint_count) {
		c->tried = 0;
		delay = c->backoff_ms;
		c->backoff_ms = c->backoff_ms * 2 < TUNNEL_BACKOFF_MAX_MS ? c->backoff_ms * 2
									  : TUNNEL_BACKOFF_MAX_MS;
	}
	client_use_endpoint(t, (c->current + 1) % c->endpoint_count);
	if (c->endpoint_count == 1 && delay)
		tunnel_log(t, TUNNEL_LOG_WARN, "connection to %s %s: %s; %s in %u ms", failed, what,
			   reason, *what == 'l' ? "reconnecting" : "retrying", delay);
	else if (c->endpoint_count == 1)
		tunnel_log(t, TUNNEL_LOG_WARN, "connection to %s %s: %s; reconnecting now", failed, what,
			   reason);
	else if (delay)
		tunnel_log(t, TUNNEL_LOG_WARN, "connection to %s %s: %s; every endpoint tried, %s in %u ms",
			   failed, what, reason, t->endpoint, delay);
	else
		tunnel_log(t, TUNNEL_LOG_WARN, "connection to %s %s: %s; trying %s now", failed, what,
			   reason, t->endpoint);
	/* Even "now" goes through the timer: never a new session inside a dying one's callback. */
	evloop_timer_start(t->loop, &c->retry, delay);
}

static void client_attempt_failed(struct tunnel *t, const char *reason)
{
	client_schedule_retry(t, "failed", reason);
}

/* A connection to addr, expecting the current server name; NULL with errno. */
static struct session *client_dial(struct tunnel *t, const struct sockaddr_storage *addr, socklen_t len)
{
	struct session *s;
	int fd, one = 1, saved;

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)addr, len) < 0 && errno != EINPROGRESS) {
		saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	/* Completion (or failure) shows as EPOLLOUT, even for an immediate connect. */
	s = session_new(t, fd, (const struct sockaddr *)addr, SESSION_CONNECTING);
	if (s)
		snprintf(s->name, sizeof(s->name), "%.*s", PEER_NAME_MAX, t->server_name);
	return s;
}

static void client_connect(struct tunnel *t)
{
	struct client *c = t->client;
	struct session *s;

	c->tried++;
	s = client_dial(t, &t->addr, t->addr_len);
	if (!s) {
		client_attempt_failed(t, strerror(errno));
		return;
	}
	c->session = s;
}

static void client_on_retry(struct evloop *loop, struct ev_timer *timer)
{
	(void)loop;
	client_connect(timer->arg);
}

/* ---- the queue while disconnected ---- */

/* Moves what is left of a partly sent queue to the front, for room at the end. */
static void client_queue_compact(struct client *c)
{
	memmove(c->queue, c->queue + c->queue_off, c->queue_len - c->queue_off);
	c->queue_len -= c->queue_off;
	c->queue_off = 0;
}

static void client_queue_packet(struct tunnel *t, const struct pkt *p)
{
	struct client *c = t->client;
	long n;

	if (c->queue_packets_max && c->queue_packets >= c->queue_packets_max) {
		t->stats.drop_queue_full++;
		return;
	}
	n = session_frame_packet(c->queue + c->queue_len, t->queue_bytes - c->queue_len, p);

	if (n == 0 && c->queue_off) {
		client_queue_compact(c);
		n = session_frame_packet(c->queue + c->queue_len, t->queue_bytes - c->queue_len, p);
	}
	if (n < 0) {
		t->stats.drop_malformed++;
		return;
	}
	if (n == 0) {
		t->stats.drop_queue_full++;
		return;
	}
	c->queue_len += (size_t)n;
	c->queue_packets++;
	t->stats.tx_packets++;
	t->stats.tx_bytes += p->len;
	session_trace(t, "framed", t->server_name, p);
}

/* An offload packet queued for a server that turned out not to take it. */
static void client_flush_segmented(struct tunnel *t, struct session *s, const struct pkt *p)
{
	/* It counted as one packet when queued; its segments count as they are framed. */
	t->stats.tx_packets--;
	t->stats.tx_bytes -= p->len;
	session_send_segmented(s, p);
}

/*
 * Send-buffer room a queued frame needs: itself, or for a peer that cannot
 * take offload packets, the frames its segments make (each repeats the
 * headers). Capped at what a drained buffer always has.
 */
static size_t client_frame_need(const struct session *s, const struct frame *f, size_t n)
{
	const struct pkt *p = &f->pkt;
	size_t segs, need;

	if (f->type != FRAME_PACKET_OFF || s->peer_offload)
		return n;
	segs = p->off.gso_size && p->len > p->off.hdr_len
		       ? (p->len - p->off.hdr_len + p->off.gso_size - 1) / p->off.gso_size : 1;
	need = p->len + segs * ((size_t)p->off.hdr_len + FRAME_HEADER_LEN);
	return need < SESSION_TX_LOW_WATER ? need : SESSION_TX_LOW_WATER;
}

/* One frame of the queue into s; false when s has no room for it now. */
static bool client_flush_frame(struct tunnel *t, struct session *s, const struct frame *f, size_t n)
{
	struct client *c = t->client;
	uint8_t *at = session_reserve(s, client_frame_need(s, f, n));

	if (!at)
		return false;
	if (f->type == FRAME_PACKET_OFF && !s->peer_offload) {
		client_flush_segmented(t, s, &f->pkt);
	} else {
		memcpy(at, c->queue + c->queue_off, n);
		session_commit(s, n);
	}
	return true;
}

/*
 * Moves as much of the queue into the session's send buffer as fits, after
 * the HELLOs. What is left waits for the buffer to drain (client_drained):
 * nothing is dropped for lack of room.
 */
static void client_flush_queue(struct tunnel *t, struct session *s)
{
	struct client *c = t->client;
	struct frame f;
	int n;

	c->flushing = true;
	while (client_queue_waiting(c) && c->established && c->session == s) {
		n = frame_parse(c->queue + c->queue_off, c->queue_len - c->queue_off, &f);
		if (n <= 0) {
			/* Cannot happen: every frame was checked when queued. */
			t->stats.drop_malformed += c->queue_packets;
			c->queue_off = c->queue_len;
			break;
		}
		if (!client_flush_frame(t, s, &f, (size_t)n)) {
			/* The buffer is full: drained() comes once it is below half. */
			s->above_high_water = true;
			t->stats.queue_rounds++;
			break;
		}
		c->queue_off += (size_t)n;
		c->queue_packets--;
	}
	c->flushing = false;
	if (!client_queue_waiting(c)) {
		c->queue_off = c->queue_len = 0;
		c->queue_packets = 0;
	}
}

/* ---- on demand: --lazy and --idle-timeout ---- */

static void client_on_idle(struct evloop *loop, struct ev_timer *timer);
static void client_lost(struct session *s, enum session_end why);

static void client_lazy_init(struct tunnel *t, const struct tunnel_config *cfg)
{
	struct client *c = t->client;

	c->lazy = cfg->lazy;
	c->dormant = cfg->lazy;
	c->idle_ms = cfg->idle_timeout_ms;
	/* A count, not bytes, unless --queue says bytes: what the issue promises a lazy start holds. */
	c->queue_packets_max = cfg->lazy && !cfg->queue_bytes ? TUNNEL_LAZY_QUEUE_PACKETS : 0;
	ev_timer_init(&c->idle, client_on_idle, t);
}

/* A packet for the tunnel and no session: set one up (the packet waits in the queue). */
static void client_wake(struct tunnel *t)
{
	struct client *c = t->client;

	c->dormant = false;
	t->stats.on_demand_connects++;
	tunnel_log(t, TUNNEL_LOG_INFO, "packet for the tunnel: connecting to %s", t->endpoint);
	client_connect(t);
}

/*
 * An established session was lost: a lazy client with nothing waiting
 * leaves the next connection to the next packet. The next endpoint is
 * chosen now, as a failure chooses it. true: handled.
 */
static bool client_lazy_lost(struct tunnel *t, const char *reason)
{
	struct client *c = t->client;

	if (!c->lazy || client_queue_waiting(c))
		return false;
	evloop_timer_stop(t->loop, &c->idle);
	tunnel_log(t, TUNNEL_LOG_WARN, "connection to %s lost: %s; reconnecting on the next packet",
		   t->endpoint, reason);
	client_use_endpoint(t, (c->current + 1) % c->endpoint_count);
	c->dormant = true;
	return true;
}

static uint64_t client_packets_seen(const struct tunnel *t)
{
	return t->stats.tx_packets + t->stats.rx_packets;
}

/* A tick a quarter of the timeout: the tunnel closes between 1 and 1.25 timeouts idle. */
static unsigned client_idle_tick_ms(const struct client *c)
{
	return c->idle_ms / 4 > TUNNEL_IDLE_TICK_MIN_MS ? c->idle_ms / 4 : TUNNEL_IDLE_TICK_MIN_MS;
}

static void client_idle_start(struct tunnel *t)
{
	struct client *c = t->client;

	if (!c->idle_ms)
		return;
	c->idle_seen = client_packets_seen(t);
	c->idle_since_ms = evloop_now_ms(t->loop);
	evloop_timer_start(t->loop, &c->idle, client_idle_tick_ms(c));
}

/*
 * Closes the established session and waits for the next packet: the idle
 * timer's end, and tunnel_down's; why goes to the log and to the server.
 * A move's connection still being set up goes too: once up it would
 * carry packets for a client that waits for none, and the next packet
 * would dial beside it.
 */
static void client_idle_close(struct tunnel *t, const char *why)
{
	struct client *c = t->client;
	struct session *s = c->session;

	t->stats.idle_closes++;
	tunnel_log(t, TUNNEL_LOG_INFO, "%s: closing the tunnel to %s; the next packet sets it up again",
		   why, t->endpoint);
	evloop_timer_stop(t->loop, &c->idle);
	if (c->successor)
		session_end(c->successor, SESSION_END_LOCAL, true, "%s", why);
	client_lost(s, SESSION_END_LOCAL);
	c->dormant = true;
	session_end(s, SESSION_END_LOCAL, true, "%s", why);
}

static void client_on_idle(struct evloop *loop, struct ev_timer *timer)
{
	struct tunnel *t = timer->arg;
	struct client *c = t->client;
	uint64_t now = evloop_now_ms(loop), seen = client_packets_seen(t);

	if (!c->established || !c->session)
		return;
	if (seen != c->idle_seen || client_queue_waiting(c)) {
		c->idle_seen = seen;
		c->idle_since_ms = now;
	} else if (now - c->idle_since_ms >= c->idle_ms) {
		char why[48];

		/* Keepalives kept it up; they do not count as use. */
		snprintf(why, sizeof(why), "no packet for %u ms", c->idle_ms);
		client_idle_close(t, why);
		return;
	}
	evloop_timer_start(loop, timer, client_idle_tick_ms(c));
}

int tunnel_client_down(struct tunnel *t)
{
	struct client *c = t->client;

	if (!c->lazy)
		return -EOPNOTSUPP;
	if (c->dormant)
		return -ENOTCONN;
	/* Not idle-closed either: what a set-up or a queue still going out carries was asked for. */
	if (!c->established || !c->session || client_queue_waiting(c))
		return -EBUSY;
	client_idle_close(t, "closed on request");
	return 0;
}

/* ---- a planned switchover: MOVE ---- */

/* Closes the session moved away from, telling its server why. */
static void client_drain_end(struct tunnel *t, const char *why)
{
	struct client *c = t->client;
	struct session *s = c->draining;

	c->draining = NULL;
	evloop_timer_stop(t->loop, &c->quiet);
	session_end(s, SESSION_END_HANDOVER, true, "%s", why);
}

/* The draining session, once a tick passed without a packet on it, is closed. */
static void client_on_quiet(struct evloop *loop, struct ev_timer *timer)
{
	struct tunnel *t = timer->arg;
	struct client *c = t->client;
	struct session *s = c->draining;
	char why[64];

	if (!s)
		return;
	if (s->rx_packets != c->draining_seen || s->leaving) {
		c->draining_seen = s->rx_packets;
		evloop_timer_start(loop, timer, TUNNEL_MOVE_QUIET_MS);
		return;
	}
	snprintf(why, sizeof(why), "moved: nothing came back here for %d ms", TUNNEL_MOVE_QUIET_MS);
	client_drain_end(t, why);
}

/* The successor is up: packets go there now; old sends what it holds, MOVED, and drains. */
static void client_switch(struct tunnel *t, struct session *next)
{
	struct client *c = t->client;
	struct session *old = c->session;

	c->successor = NULL;
	c->session = next;
	t->stats.moves++;
	tunnel_log(t, TUNNEL_LOG_INFO, "moved to %s (server '%s')%s", next->remote, t->server_name,
		   old ? "; the old session carries what still comes back" : "");
	if (!old)
		return;
	c->draining = old;
	c->draining_seen = old->rx_packets;
	evloop_timer_start(t->loop, &c->quiet, TUNNEL_MOVE_QUIET_MS);
	/* Capture paused for the old one's buffer waits no more: the new one has room. */
	if (old->above_high_water && t->cb.writable)
		t->cb.writable(t->cb_ctx);
	old->above_high_water = false;
	session_leave(old);
}

/* Where a MOVE points: an address a connection can go to (tunnel_move_target_ok). */
static int client_move_target(const struct frame *f, struct sockaddr_storage *ss, socklen_t *len)
{
	if (!tunnel_move_target_ok(&f->stream_addr, f->stream_port))
		return -EINVAL;
	addr_to_sockaddr(ss, len, &f->stream_addr, f->stream_port);
	return 0;
}

static void client_move(struct session *s, const struct frame *f)
{
	struct tunnel *t = s->tunnel;
	struct client *c = t->client;
	struct sockaddr_storage ss;
	char where[64];
	socklen_t len;

	if (f->type != FRAME_MOVE) {
		session_end(s, SESSION_END_ERROR, true, "protocol error: MOVED from the server");
		return;
	}
	/* One move at a time, from the session that carries our packets. */
	if (s != c->session || c->successor)
		return;
	/* Told again while the last move still drains: that one ends, two sessions at most. */
	if (c->draining)
		client_drain_end(t, "moving on again");
	if (client_move_target(f, &ss, &len) < 0) {
		tunnel_log(t, TUNNEL_LOG_WARN, "server asked to move to an address no connection can go to; "
			   "staying until it closes");
		return;
	}
	tunnel_format_sockaddr((struct sockaddr *)&ss, where, sizeof(where));
	c->successor = client_dial(t, &ss, len);
	if (!c->successor) {
		tunnel_log(t, TUNNEL_LOG_WARN, "moving to %s: %s; staying until the server closes", where,
			   strerror(errno));
		return;
	}
	tunnel_log(t, TUNNEL_LOG_INFO, "server %s hands over: connecting to the standby %s beside it",
		   s->remote, where);
}

/* ---- session hooks ---- */

static void client_established(struct session *s)
{
	struct tunnel *t = s->tunnel;
	struct client *c = t->client;

	if (s == c->successor)
		client_switch(t, s);
	c->established = true;
	if (c->ever_established)
		t->stats.reconnects++;
	c->ever_established = true;
	c->backoff_ms = TUNNEL_BACKOFF_MIN_MS;
	c->tried = 0;
	t->stats.connected = true;
	t->stats.sessions_active = 1;
	t->stats.sessions_total++;
	t->stats.last_handshake = tunnel_now_realtime();
	if (!c->draining || c->session != s)
		tunnel_log(t, TUNNEL_LOG_INFO, "connected to %s (server '%s')%s", s->remote, t->server_name,
			   s->peer_offload ? ", server takes offload packets" : "");
	client_idle_start(t);
	client_flush_queue(t, s);
}

static void client_lost(struct session *s, enum session_end why)
{
	struct tunnel *t = s->tunnel;
	struct client *c = t->client;

	c->established = false;
	t->stats.connected = false;
	t->stats.sessions_active = 0;
	if (why == SESSION_END_DEAD)
		t->stats.sessions_dead++;
	/* Lost, not refused: the round starts again, its first attempt at once. */
	c->tried = 0;
	/* Packets go to the queue now, which never blocks the frontend. */
	if (s->above_high_water && t->cb.writable)
		t->cb.writable(t->cb_ctx);
}

/* A move's connection failed: the session stays, or if it is gone too, a retry as after a loss. */
static void client_successor_ended(struct tunnel *t, struct session *s, enum session_end why,
				   const char *reason)
{
	struct client *c = t->client;

	c->successor = NULL;
	if (why == SESSION_END_LOCAL)
		return;
	if (c->session) {
		tunnel_log(t, TUNNEL_LOG_WARN, "moving to %s failed: %s; staying until the server closes",
			   s->remote, reason);
		return;
	}
	if (!client_lazy_lost(t, reason))
		client_schedule_retry(t, "lost", reason);
}

static void client_ended(struct session *s, enum session_end why, const char *reason)
{
	struct tunnel *t = s->tunnel;
	struct client *c = t->client;

	if (s == c->successor) {
		client_successor_ended(t, s, why, reason);
		return;
	}
	if (s == c->draining) {
		c->draining = NULL;
		evloop_timer_stop(t->loop, &c->quiet);
		return;
	}
	if (c->session != s)
		return;
	c->session = NULL;
	if (why == SESSION_END_LOCAL)
		return;
	if (c->established) {
		bool dead = why == SESSION_END_DEAD;
		char text[300];

		client_lost(s, why);
		snprintf(text, sizeof(text), "%s%s", dead ? "server dead, " : "", reason);
		if (c->successor) {
			/* Packets queue meanwhile; the successor's HELLO flushes them. */
			tunnel_log(t, TUNNEL_LOG_WARN, "connection to %s lost while moving: %s; waiting for %s",
				   s->remote, text, c->successor->remote);
			return;
		}
		if (client_lazy_lost(t, text))
			return;
		client_schedule_retry(t, "lost", text);
		return;
	}
	/* TCP refused is no handshake; anything after it (alert, CLOSE, timeout) is. */
	if (why != SESSION_END_CONNECT)
		t->stats.handshake_failures++;
	client_schedule_retry(t, "failed", reason);
}

static void client_drained(struct session *s)
{
	struct tunnel *t = s->tunnel;
	struct client *c = t->client;

	if (c->flushing)
		return; /* the flush in progress goes on with the room made */
	if (client_queue_waiting(c) && c->established && c->session == s) {
		client_flush_queue(t, s);
		session_flush(s);
		if (client_queue_waiting(c))
			return;
	}
	if (t->cb.writable)
		t->cb.writable(t->cb_ctx);
}

/* A compromised server must not reach more than the routes we gave it (finding 9). */
static bool client_source_ok(const struct session *s, const struct ip_addr *src)
{
	const struct reach_policy *reach = s->tunnel->reach;

	return !reach || reach_classify(reach, src, NULL) == REACH_OK;
}

/*
 * Only this end's own inner addresses: a compromised server must not
 * deliver to the client's LAN, containers or underlay through an inject
 * path that skips FORWARD.
 */
static enum reach_verdict client_dest_verdict(const struct session *s, const struct ip_addr *dst)
{
	const struct reach_policy *reach = s->tunnel->reach;

	return reach ? reach_classify_own(reach, dst) : reach_special(dst);
}

/* ---- the frontend's side ---- */

static void client_send(struct tunnel *t, const struct pkt_batch *batch)
{
	struct client *c = t->client;
	struct session *s = c->session;
	unsigned i;

	if (c->dormant && batch->count)
		client_wake(t);
	for (i = 0; i < batch->count && i < PKT_BATCH_MAX; i++) {
		/* Checked per packet: a flush in the middle may end the session. */
		if (c->established && !client_queue_waiting(c) && udp_sending(s))
			udp_queue_packet(s, &batch->pkts[i]);
		else if (c->established && !client_queue_waiting(c))
			session_send_packet(s, &batch->pkts[i]);
		else
			client_queue_packet(t, &batch->pkts[i]);
	}
	if (c->established)
		session_flush(s);
	if (c->established && udp_sending(c->session))
		udp_pump(c->session);
	udp_flush(t);
}

static bool client_send_blocked(const struct tunnel *t)
{
	const struct client *c = t->client;

	return (c->established &&
		(client_queue_waiting(c) || session_tx_pending(c->session) > SESSION_TX_HIGH_WATER)) ||
	       udp_send_blocked(t);
}

static void client_stats(const struct tunnel *t, struct tunnel_stats *out)
{
	out->sessions_moving = t->client->successor != NULL;
	out->queue_packets = t->client->queue_packets;
	out->queue_bytes = t->client->queue_len - t->client->queue_off;
	out->dormant = t->client->dormant;
}

static void client_free(struct tunnel *t)
{
	struct client *c = t->client;

	if (!c)
		return;
	evloop_timer_stop(t->loop, &c->retry);
	evloop_timer_stop(t->loop, &c->idle);
	evloop_timer_stop(t->loop, &c->quiet);
	free(c->endpoints);
	free(c->queue);
	free(c);
	t->client = NULL;
}

/* Resolves every --connect now (names block once, at start), with its expected name. */
static int client_endpoints(struct tunnel *t, const struct tunnel_config *cfg, char *err,
			    size_t err_len)
{
	struct client *c = t->client;
	size_t n = cfg->endpoint_count ? cfg->endpoint_count : 1;
	char host[256], msg[300];
	int ret;

	c->endpoints = calloc(n, sizeof(*c->endpoints));
	if (!c->endpoints) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct client_endpoint *ep = &c->endpoints[i];
		const char *text = cfg->endpoint_count ? cfg->endpoints[i] : cfg->endpoint;

		ret = tunnel_parse_endpoint(text, &ep->addr, &ep->addr_len, host, sizeof(host), msg,
					    sizeof(msg));
		if (ret < 0) {
			snprintf(err, err_len, "--connect %s", msg);
			return ret;
		}
		snprintf(ep->text, sizeof(ep->text), "%s", text);
		snprintf(ep->server_name, sizeof(ep->server_name), "%s",
			 cfg->server_name ? cfg->server_name : host);
	}
	c->endpoint_count = n;
	return 0;
}

int tunnel_client_init(struct tunnel *t, const struct tunnel_config *cfg, char *err, size_t err_len)
{
	struct client *c = calloc(1, sizeof(*c));
	int ret;

	if (c)
		c->queue = malloc(t->queue_bytes);
	if (!c || !c->queue) {
		free(c);
		snprintf(err, err_len, "out of memory for a %zu byte queue", t->queue_bytes);
		return -ENOMEM;
	}
	c->backoff_ms = TUNNEL_BACKOFF_MIN_MS;
	ev_timer_init(&c->retry, client_on_retry, t);
	ev_timer_init(&c->quiet, client_on_quiet, t);
	t->client = c;
	ret = client_endpoints(t, cfg, err, err_len);
	if (ret < 0) {
		client_free(t);
		return ret;
	}
	client_use_endpoint(t, 0);
	client_lazy_init(t, cfg);
	if (c->lazy)
		tunnel_log(t, TUNNEL_LOG_INFO, "lazy: connecting to %s on the first packet for the tunnel",
			   t->endpoint);
	else
		client_connect(t);
	return 0;
}

const struct tunnel_role_ops tunnel_client_ops = {
	.established  = client_established,
	.source_ok    = client_source_ok,
	.dest_verdict = client_dest_verdict,
	.move         = client_move,
	.ended        = client_ended,
	.drained      = client_drained,
	.send         = client_send,
	.send_blocked = client_send_blocked,
	.stats        = client_stats,
	.free         = client_free,
};
