// SPDX-License-Identifier: MIT
/* The server role: accept clients, check who they are, route between them and the frontend. */

/*
 * Every prefix of the peers file goes into one longest-prefix-match table
 * whose values are server_peer slots; a slot points at the peer's
 * established session, or at nothing while it is away. Sending is then a
 * lookup per packet, and the source check of a received packet is the
 * same lookup on its source: it must land on the sending peer's slot
 * (prefixes never overlap between peers, peers_parse sees to it).
 *
 * A connection is a session from accept on; it becomes the peer's only
 * when its certificate name is in the peers file and HELLOs are
 * exchanged. A newer connection of the same peer replaces the older one
 * (a client that rebooted must not wait for dead-peer detection).
 *
 * Caps (issue 13): until TLS is up a connection is a stranger's, on the
 * pending list, capped in total (max_handshakes) and per source
 * (max_handshakes_per_source); from then on it counts against max_peers,
 * which strangers cannot reach. Warnings a stranger can cause go through
 * server_warn(), a few lines per window and then one summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"

enum {
	SERVER_ACCEPTS_PER_EVENT = 64,
	SERVER_BACKLOG = 128,
	/* Out of fds or memory: how long to stop accepting before trying again. */
	SERVER_ACCEPT_PAUSE_MS = 100,
};

struct server_peer {
	const struct peer *peer;
	struct session *session; /* established, or NULL */
	unsigned hello;          /* its connections past TLS, before HELLO */
};

/* Listener warnings, TUNNEL_WARN_BURST lines per window, the rest in one summary. */
struct server_warn {
	uint64_t window_start_ms;
	unsigned lines;
	uint64_t suppressed;
	struct ev_timer summary;
};

struct server {
	int listen_fd;
	struct ev_io listen_io;
	struct ev_timer accept_pause;
	struct prefix_table *routes;
	struct server_peer *slots;
	size_t slot_count;
	/* Unauthenticated connections, oldest first: the first to go when full. */
	struct session *pending_head, *pending_tail;
	size_t pending_count;
	size_t authenticated; /* connections in HELLO or established */
	struct server_warn warn;
};

/* ---- warnings a stranger can cause: rate-limited ---- */

__attribute__((format(printf, 2, 3)))
static void server_warn(struct tunnel *t, const char *fmt, ...)
{
	struct server_warn *w = &t->server->warn;
	uint64_t now = evloop_now_ms(t->loop);
	char msg[400];
	va_list ap;

	if (now - w->window_start_ms >= TUNNEL_WARN_WINDOW_MS) {
		w->window_start_ms = now;
		w->lines = 0;
	}
	if (w->lines >= TUNNEL_WARN_BURST) {
		w->suppressed++;
		t->stats.log_suppressed++;
		if (!w->summary.armed)
			evloop_timer_start(t->loop, &w->summary,
					   w->window_start_ms + TUNNEL_WARN_WINDOW_MS - now);
		return;
	}
	w->lines++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tunnel_log(t, TUNNEL_LOG_WARN, "%s", msg);
}

static void server_on_warn_summary(struct evloop *loop, struct ev_timer *timer)
{
	struct tunnel *t = timer->arg;
	struct server_warn *w = &t->server->warn;
	const struct tunnel_stats *st = &t->stats;

	(void)loop;
	tunnel_log(t, TUNNEL_LOG_WARN,
		   "listener: %" PRIu64 " more warnings in %d s not shown; totals: %" PRIu64
		   " refused (per-source cap), %" PRIu64 " evicted (handshake cap), %" PRIu64
		   " refused (peer cap), %" PRIu64 " handshakes failed, %" PRIu64 " handshaking now",
		   w->suppressed, TUNNEL_WARN_WINDOW_MS / 1000, st->refused_per_source,
		   st->handshakes_evicted, st->refused_max_peers, st->handshake_failures,
		   (uint64_t)t->server->pending_count);
	w->suppressed = 0;
	w->lines = 0;
	w->window_start_ms = evloop_now_ms(t->loop);
}

/* ---- unauthenticated connections ---- */

void tunnel_source_of(const struct sockaddr *sa, struct ip_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return;
	}
	if (sa->sa_family != AF_INET6)
		return;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

	if (IN6_IS_ADDR_V4MAPPED(a)) {
		out->family = AF_INET;
		memcpy(out->bytes, a->s6_addr + 12, 4);
		return;
	}
	out->family = AF_INET6;
	memcpy(out->bytes, a->s6_addr, TUNNEL_SOURCE_PREFIX_V6 / 8);
}

/* A scan, not a table: nothing a stranger chooses is hashed (bounded by the flag's max). */
static size_t server_pending_from(const struct server *srv, const struct ip_addr *source)
{
	size_t n = 0;

	for (const struct session *s = srv->pending_head; s; s = s->pending_next)
		n += memcmp(&s->source, source, sizeof(*source)) == 0;
	return n;
}

static void server_pending_add(struct server *srv, struct session *s)
{
	s->pending = true;
	s->pending_prev = srv->pending_tail;
	s->pending_next = NULL;
	if (srv->pending_tail)
		srv->pending_tail->pending_next = s;
	else
		srv->pending_head = s;
	srv->pending_tail = s;
	srv->pending_count++;
}

static void server_pending_remove(struct server *srv, struct session *s)
{
	if (!s->pending)
		return;
	if (s->pending_prev)
		s->pending_prev->pending_next = s->pending_next;
	else
		srv->pending_head = s->pending_next;
	if (s->pending_next)
		s->pending_next->pending_prev = s->pending_prev;
	else
		srv->pending_tail = s->pending_prev;
	s->pending_prev = s->pending_next = NULL;
	s->pending = false;
	srv->pending_count--;
}

/* ---- accepting ---- */

/*
 * A newcomer from a source at its cap is refused: one host cannot fill
 * the table. When the table is full anyway (many sources), the oldest
 * unauthenticated connection makes room: a stranger's idle connections
 * go first, and to push out a real client's handshake (a round trip or
 * two) he would have to open max_handshakes new ones within that time.
 * Refusing the newcomer instead would let idle strangers keep every
 * client out for as long as they renew their connections.
 */
static bool server_admit(struct tunnel *t, const struct ip_addr *source, const char *remote)
{
	struct server *srv = t->server;

	if (server_pending_from(srv, source) >= t->max_handshakes_per_source) {
		t->stats.refused_per_source++;
		server_warn(t, "connection from %s refused: %u handshakes from its source already", remote,
			    t->max_handshakes_per_source);
		return false;
	}
	if (srv->pending_count >= t->max_handshakes) {
		struct session *oldest = srv->pending_head;

		t->stats.handshakes_evicted++;
		session_end(oldest, SESSION_END_HANDSHAKE, false,
			    "dropped for a newer connection (%u handshakes at once)", t->max_handshakes);
	}
	return true;
}

static void server_accept_one(struct tunnel *t, int fd, const struct sockaddr *addr)
{
	struct ip_addr source;
	struct session *s;
	char remote[64];
	int one = 1;

	tunnel_source_of(addr, &source);
	tunnel_format_sockaddr(addr, remote, sizeof(remote));
	if (!server_admit(t, &source, remote)) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s = session_new(t, fd, addr, SESSION_HANDSHAKE);
	if (!s) {
		server_warn(t, "connection from %s dropped: %s", remote, strerror(errno));
		return;
	}
	s->source = source;
	server_pending_add(t->server, s);
}

static void server_on_accept(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct tunnel *t = io->arg;
	struct server *srv = t->server;
	struct sockaddr_storage ss;
	socklen_t len;
	int i, fd;

	(void)events;
	for (i = 0; i < SERVER_ACCEPTS_PER_EVENT; i++) {
		len = sizeof(ss);
		fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			server_accept_one(t, fd, (struct sockaddr *)&ss);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* The listener stays readable: without a pause this would spin. */
			t->stats.refused_accept_error++;
			server_warn(t, "accept: %s; pausing for %d ms", strerror(errno),
				    SERVER_ACCEPT_PAUSE_MS);
			evloop_io_stop(loop, io);
			evloop_timer_start(loop, &srv->accept_pause, SERVER_ACCEPT_PAUSE_MS);
			return;
		}
		/* ECONNABORTED and friends concern one connection only. */
	}
}

static void server_on_accept_pause(struct evloop *loop, struct ev_timer *timer)
{
	struct tunnel *t = timer->arg;

	evloop_io_start(loop, &t->server->listen_io, EPOLLIN);
}

static int server_listen(struct tunnel *t, char *err, size_t err_len)
{
	struct server *srv = t->server;
	int one = 1, ret;

	srv->listen_fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0)
		goto err;
	setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(srv->listen_fd, (struct sockaddr *)&t->addr, t->addr_len) < 0 ||
	    listen(srv->listen_fd, SERVER_BACKLOG) < 0)
		goto err;
	ev_io_init(&srv->listen_io, srv->listen_fd, server_on_accept, t);
	ret = evloop_io_start(t->loop, &srv->listen_io, EPOLLIN);
	if (ret < 0) {
		errno = -ret;
		goto err;
	}
	return 0;

err:
	ret = -errno;
	snprintf(err, err_len, "--listen %s: %s", t->endpoint, strerror(errno));
	return ret;
}

/* ---- the peers' routes ---- */

static int server_routes(struct tunnel *t, char *err, size_t err_len)
{
	struct server *srv = t->server;
	const struct peer_table *peers = t->peers;
	size_t i, j;
	int ret;

	srv->routes = prefix_table_new();
	srv->slots = calloc(peers->count ? peers->count : 1, sizeof(*srv->slots));
	if (!srv->routes || !srv->slots) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	srv->slot_count = peers->count;
	for (i = 0; i < peers->count; i++) {
		srv->slots[i].peer = &peers->peers[i];
		for (j = 0; j < peers->peers[i].prefix_count; j++) {
			ret = prefix_table_insert(srv->routes, &peers->peers[i].prefixes[j], &srv->slots[i]);
			/* A prefix listed twice by one peer: harmless, it routes the same. */
			if (ret < 0 && ret != -EEXIST) {
				snprintf(err, err_len, "out of memory");
				return ret;
			}
		}
	}
	return 0;
}

static void server_free(struct tunnel *t)
{
	struct server *srv = t->server;

	if (!srv)
		return;
	if (srv->listen_fd >= 0) {
		evloop_io_stop(t->loop, &srv->listen_io);
		close(srv->listen_fd);
	}
	evloop_timer_stop(t->loop, &srv->accept_pause);
	evloop_timer_stop(t->loop, &srv->warn.summary);
	prefix_table_free(srv->routes);
	free(srv->slots);
	free(srv);
	t->server = NULL;
}

int tunnel_server_init(struct tunnel *t, char *err, size_t err_len)
{
	int ret;

	if (!t->peers) {
		snprintf(err, err_len, "the server needs a peers table (--peers)");
		return -EINVAL;
	}
	t->server = calloc(1, sizeof(*t->server));
	if (!t->server) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	t->server->listen_fd = -1;
	ev_timer_init(&t->server->accept_pause, server_on_accept_pause, t);
	ev_timer_init(&t->server->warn.summary, server_on_warn_summary, t);
	ret = server_routes(t, err, err_len);
	if (ret == 0)
		ret = server_listen(t, err, err_len);
	if (ret < 0)
		server_free(t);
	return ret;
}

/* ---- session hooks ---- */

/* Certificate names reach the log: no control characters. */
static void sanitize(char *text)
{
	for (; *text; text++) {
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			*text = '?';
	}
}

static int server_tls_ready(struct session *s)
{
	struct tunnel *t = s->tunnel;
	char cn[PEER_NAME_MAX + 1];
	struct server_peer *slot;
	const struct peer *peer;
	int ret;

	/* TLS is up: the peer holds a certificate of our CA, it is no stranger now. */
	server_pending_remove(t->server, s);
	ret = tls_peer_cn(s->tls, cn, sizeof(cn));
	if (ret < 0) {
		session_end(s, SESSION_END_HANDSHAKE, true, "%s",
			    ret == -ENOENT ? "certificate without a common name"
					   : "certificate common name unusable (empty, too long or with NUL)");
		return -1;
	}
	peer = peers_find(t->peers, cn);
	if (!peer) {
		sanitize(cn);
		session_end(s, SESSION_END_HANDSHAKE, true, "unknown peer '%s'", cn);
		return -1;
	}
	snprintf(s->name, sizeof(s->name), "%s", peer->name);
	slot = &t->server->slots[peer - t->peers->peers];
	/* A connected peer coming back replaces its session: the cap never refuses it. */
	if (t->server->authenticated >= t->max_peers && !(slot->session && !slot->hello)) {
		t->stats.refused_max_peers++;
		session_end(s, SESSION_END_HANDSHAKE, true, "%u peers connected already", t->max_peers);
		return -1;
	}
	s->role_data = slot;
	slot->hello++;
	t->server->authenticated++;
	return 0;
}

static void server_established(struct session *s)
{
	struct tunnel *t = s->tunnel;
	struct server_peer *slot = s->role_data;
	struct session *old = slot->session;

	slot->hello--;
	slot->session = s;
	t->stats.sessions_active++;
	t->stats.sessions_total++;
	if (old) {
		tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s replaces its connection from %s",
			   s->name, s->remote, old->remote);
		session_end(old, SESSION_END_REPLACED, true, "replaced by a new connection");
	}
	tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s connected%s", s->name, s->remote,
		   s->peer_offload ? " (takes offload packets)" : "");
}

static void server_handshake_failed(struct session *s, enum session_end why, const char *reason)
{
	struct tunnel *t = s->tunnel;

	if (why == SESSION_END_LOCAL)
		return;
	t->stats.handshake_failures++;
	if (s->name[0])
		server_warn(t, "client '%s' from %s refused: %s", s->name, s->remote, reason);
	else
		server_warn(t, "connection from %s refused: %s", s->remote, reason);
}

static void server_ended(struct session *s, enum session_end why, const char *reason)
{
	struct tunnel *t = s->tunnel;
	struct server_peer *slot = s->role_data;

	server_pending_remove(t->server, s);
	if (slot) {
		t->server->authenticated--;
		if (s->state == SESSION_HELLO)
			slot->hello--;
	}
	if (s->state != SESSION_ESTABLISHED) {
		server_handshake_failed(s, why, reason);
		return;
	}
	if (slot->session == s)
		slot->session = NULL;
	t->stats.sessions_active--;
	switch (why) {
	case SESSION_END_DEAD:
		t->stats.sessions_dead++;
		tunnel_log(t, TUNNEL_LOG_WARN, "client '%s' dead: %s", s->name, reason);
		break;
	case SESSION_END_PEER:
		tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s disconnected: %s", s->name, s->remote,
			   reason);
		break;
	case SESSION_END_REPLACED:
	case SESSION_END_LOCAL:
		break;
	default:
		tunnel_log(t, TUNNEL_LOG_WARN, "client '%s' from %s: %s, cut off", s->name, s->remote,
			   reason);
		break;
	}
}

static bool server_source_ok(const struct session *s, const struct ip_addr *src)
{
	return prefix_table_lookup(s->tunnel->server->routes, src) == s->role_data;
}

/* The sender is known by its struct peer: the owner the policy's peer prefixes carry. */
static enum reach_verdict server_dest_verdict(const struct session *s, const struct ip_addr *dst)
{
	const struct server_peer *slot = s->role_data;

	if (!s->tunnel->reach)
		return reach_special(dst);
	return reach_classify(s->tunnel->reach, dst, slot ? slot->peer : NULL);
}

/* ---- the frontend's side ---- */

static void server_send(struct tunnel *t, const struct pkt_batch *batch)
{
	struct session *to_flush[PKT_BATCH_MAX];
	struct ip_addr src, dst;
	struct server_peer *slot;
	unsigned i, n = 0;

	for (i = 0; i < batch->count && i < PKT_BATCH_MAX; i++) {
		const struct pkt *p = &batch->pkts[i];

		if (pkt_addrs(p->data, p->len, &src, &dst) < 0) {
			t->stats.drop_malformed++;
			continue;
		}
		slot = prefix_table_lookup(t->server->routes, &dst);
		if (!slot) {
			t->stats.drop_no_peer++;
			continue;
		}
		if (!slot->session) {
			t->stats.drop_peer_down++;
			continue;
		}
		session_send_packet(slot->session, p);
		/* The session stays in memory until the reaper runs, even if it ended. */
		if (!slot->session || slot->session->flush_queued)
			continue;
		slot->session->flush_queued = true;
		to_flush[n++] = slot->session;
	}
	for (i = 0; i < n; i++) {
		to_flush[i]->flush_queued = false;
		session_flush(to_flush[i]);
	}
}

static bool server_send_blocked(const struct tunnel *t)
{
	(void)t;
	return false; /* a slow client costs its own packets, never the others' */
}

static void server_stats(const struct tunnel *t, struct tunnel_stats *out)
{
	out->handshakes_pending = t->server->pending_count;
	out->connected = out->sessions_active > 0;
}

const struct tunnel_role_ops tunnel_server_ops = {
	.tls_ready    = server_tls_ready,
	.established  = server_established,
	.source_ok    = server_source_ok,
	.dest_verdict = server_dest_verdict,
	.ended        = server_ended,
	.send         = server_send,
	.send_blocked = server_send_blocked,
	.stats        = server_stats,
	.free         = server_free,
};
