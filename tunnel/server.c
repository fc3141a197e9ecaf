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
 * exchanged. Between the two it is the slot's hello session.
 *
 * One live connection per certificate name. A newcomer whose name already
 * has a session is refused while that session was heard from within
 * SERVER_DUP_LIVE_PERIODS keepalive periods: a live peer, even an idle
 * one, sends a keepalive at least every 1.5 periods, so two machines
 * sharing a certificate cannot take the name from each other in turn.
 * When the older one has been silent longer, it is presumed dead and the
 * newcomer replaces it at once: a client that moved to another network
 * gets in on its first try after two periods of silence, not after the
 * three of dead-peer detection (plus its reconnect backoff either way). A
 * refusal also sends the older one a keepalive: if its host rebooted,
 * the RST ends it within a round trip, and the client's next try gets in.
 *
 * Reloading the peers file (tunnel_server_reload) builds a new table and
 * new slots beside the old, moves the sessions of unchanged peers over
 * and cuts the others, then swaps: routing never sees half a table.
 *
 * Caps (issue 13): until TLS is up a connection is a stranger's, on the
 * pending list, capped in total (max_handshakes) and per source
 * (max_handshakes_per_source), where a newcomer evicts an older one
 * (server_admit); from then on it counts against max_peers, which
 * strangers cannot reach. Warnings a stranger can cause go through
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
#include "unreach.h"

enum {
	SERVER_ACCEPTS_PER_EVENT = 64,
	SERVER_BACKLOG = 128,
	/* Out of fds or memory: how long to stop accepting before trying again. */
	SERVER_ACCEPT_PAUSE_MS = 100,
	/* Heard from within this many keepalive periods: a name's session is alive. */
	SERVER_DUP_LIVE_PERIODS = 2,
};

struct server_peer {
	const struct peer *peer;
	struct session *session; /* established, or NULL */
	struct session *hello;   /* its connection past TLS, before HELLO (one at most) */
};

/* Listener warnings, TUNNEL_WARN_BURST lines per window, the rest in one summary. */
struct server_warn {
	uint64_t window_start_ms;
	unsigned lines;
	uint64_t suppressed;
	struct ev_timer summary;
};

/* A pending connection and its age rank, for server_global_victim's sort. */
struct server_ref {
	struct session *s;
	size_t age;
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
	struct server_ref *refs; /* max_handshakes of them */
	size_t authenticated; /* connections in HELLO or established */
	struct server_warn warn;
	struct unreach *unreach; /* answers for peers that are down */
	struct ev_timer move_deadline; /* clients told to MOVE that have not left by then get a CLOSE */
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
		   " evicted (per-source cap), %" PRIu64 " evicted (handshake cap), %" PRIu64
		   " refused (peer cap), %" PRIu64 " handshakes failed, %" PRIu64 " handshaking now",
		   w->suppressed, TUNNEL_WARN_WINDOW_MS / 1000, st->evicted_per_source,
		   st->handshakes_evicted, st->refused_max_peers, st->handshake_failures,
		   (uint64_t)t->server->pending_count);
	/* Only the count: the window and its lines roll over in server_warn, so
	 * a summary firing early cannot open a second burst in one window. */
	w->suppressed = 0;
}

/* ---- unauthenticated connections ---- */

void tunnel_source_of(const struct sockaddr *sa, struct ip_addr *out)
{
	struct ip_addr a, v4;

	memset(out, 0, sizeof(*out));
	if (addr_from_sockaddr(sa, &a, NULL) < 0)
		return;
	if (addr_unmap(&a, &v4))
		a = v4; /* a dual-stack listener's IPv4 client */
	else if (a.family == AF_INET6)
		memset(a.bytes + TUNNEL_SOURCE_PREFIX_V6 / 8, 0, 16 - TUNNEL_SOURCE_PREFIX_V6 / 8);
	*out = a;
}

static bool server_same_source(const struct session *a, const struct ip_addr *source)
{
	return memcmp(&a->source, source, sizeof(*source)) == 0;
}

/* Has not sent a TLS record yet: an idle stranger's, not a handshake in progress. */
static bool server_silent(const struct session *s)
{
	return s->records.read == 0;
}

/*
 * The one of source's pending connections to drop for a newcomer from
 * it: the oldest silent one, else the oldest (NULL: it has none). A scan,
 * not a table: nothing a stranger chooses is hashed (bounded by the flag's max).
 */
static struct session *server_source_victim(const struct server *srv, const struct ip_addr *source,
					    size_t *count)
{
	struct session *oldest = NULL, *silent = NULL;

	*count = 0;
	for (struct session *s = srv->pending_head; s; s = s->pending_next) {
		if (!server_same_source(s, source))
			continue;
		++*count;
		if (!oldest)
			oldest = s;
		if (!silent && server_silent(s))
			silent = s;
	}
	return silent ? silent : oldest;
}

static int server_ref_cmp(const void *a, const void *b)
{
	const struct server_ref *x = a, *y = b;
	int c = memcmp(&x->s->source, &y->s->source, sizeof(x->s->source));

	return c ? c : (x->age > y->age) - (x->age < y->age);
}

/*
 * The pending connection to drop when the table is full: from the source
 * holding the most, its oldest silent one, else its oldest; among equally
 * large sources, silent before heard, then the oldest. Sorting by source
 * groups each source's connections, oldest first: O(n log n), n bounded
 * by --max-handshakes, and only when the table is full.
 */
static struct session *server_global_victim(struct server *srv, size_t cap)
{
	struct server_ref *refs = srv->refs;
	size_t n = 0, best_count = 0, i, j;
	struct session *best = NULL;
	bool best_silent = false;

	/* refs holds cap: server_admit never lets the list grow past it. */
	for (struct session *s = srv->pending_head; s && n < cap; s = s->pending_next, n++)
		refs[n] = (struct server_ref){ s, n };
	qsort(refs, n, sizeof(*refs), server_ref_cmp);
	for (i = 0; i < n; i = j) {
		struct session *pick = refs[i].s;

		for (j = i; j < n && server_same_source(refs[j].s, &refs[i].s->source); j++) {
			if (!server_silent(pick) && server_silent(refs[j].s))
				pick = refs[j].s;
		}
		if (j - i > best_count || (j - i == best_count && server_silent(pick) && !best_silent)) {
			best = pick;
			best_count = j - i;
			best_silent = server_silent(pick);
		}
	}
	return best;
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
 * Room for a newcomer is made, never refused (refusing would let idle
 * strangers keep every client out for as long as they renew their
 * connections). A source at its cap loses one of its own: a stranger
 * behind the same NAT as a real client cannot lock it out, he only
 * drops his own or, at worst, the client's next try drops his. When the
 * table is full (many sources), the source holding the most loses one:
 * an attacker with many sources cannot keep a client's handshake the
 * oldest and push it out for ever. Either way a silent connection (no
 * TLS record yet: idle) goes before one in the middle of its handshake.
 */
static void server_admit(struct tunnel *t, const struct ip_addr *source)
{
	struct server *srv = t->server;
	struct session *victim;
	size_t held;

	victim = server_source_victim(srv, source, &held);
	if (held >= t->max_handshakes_per_source) {
		t->stats.evicted_per_source++;
		session_end(victim, SESSION_END_HANDSHAKE, false,
			    "dropped for a newer connection from its source (%u handshakes from one source)",
			    t->max_handshakes_per_source);
		return;
	}
	if (srv->pending_count >= t->max_handshakes) {
		t->stats.handshakes_evicted++;
		session_end(server_global_victim(srv, t->max_handshakes), SESSION_END_HANDSHAKE, false,
			    "dropped for a newer connection (%u handshakes at once)", t->max_handshakes);
	}
}

static void server_accept_one(struct tunnel *t, int fd, const struct sockaddr *addr)
{
	struct ip_addr source;
	struct session *s;
	char remote[64];
	int one = 1;

	tunnel_source_of(addr, &source);
	tunnel_format_sockaddr(addr, remote, sizeof(remote));
	server_admit(t, &source);
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

/* A longest-prefix-match table of peers' prefixes onto fresh slots, one per peer. */
static int server_build_routes(const struct peer_table *peers, struct prefix_table **routes_out,
			       struct server_peer **slots_out)
{
	struct prefix_table *routes = prefix_table_new();
	struct server_peer *slots = calloc(peers->count ? peers->count : 1, sizeof(*slots));
	size_t i, j;
	int ret = -ENOMEM;

	if (!routes || !slots)
		goto err_free;
	for (i = 0; i < peers->count; i++) {
		slots[i].peer = &peers->peers[i];
		for (j = 0; j < peers->peers[i].prefix_count; j++) {
			ret = prefix_table_insert(routes, &peers->peers[i].prefixes[j], &slots[i]);
			/* A prefix listed twice by one peer: harmless, it routes the same. */
			if (ret < 0 && ret != -EEXIST)
				goto err_free;
		}
	}
	*routes_out = routes;
	*slots_out = slots;
	return 0;

err_free:
	prefix_table_free(routes);
	free(slots);
	return ret;
}

static int server_routes(struct tunnel *t, char *err, size_t err_len)
{
	struct server *srv = t->server;
	int ret = server_build_routes(t->peers, &srv->routes, &srv->slots);

	if (ret < 0) {
		snprintf(err, err_len, "out of memory");
		return ret;
	}
	srv->slot_count = t->peers->count;
	return 0;
}

void tunnel_server_stop_listening(struct tunnel *t)
{
	struct server *srv = t->server;

	if (!srv || srv->listen_fd < 0)
		return;
	evloop_io_stop(t->loop, &srv->listen_io);
	evloop_timer_stop(t->loop, &srv->accept_pause);
	close(srv->listen_fd);
	srv->listen_fd = -1;
}

static void server_free(struct tunnel *t)
{
	struct server *srv = t->server;

	if (!srv)
		return;
	tunnel_server_stop_listening(t);
	evloop_timer_stop(t->loop, &srv->accept_pause);
	evloop_timer_stop(t->loop, &srv->warn.summary);
	evloop_timer_stop(t->loop, &srv->move_deadline);
	prefix_table_free(srv->routes);
	free(srv->slots);
	free(srv->refs);
	unreach_free(srv->unreach);
	free(srv);
	t->server = NULL;
}

/* ---- a planned switchover, make before break (proto.h) ---- */

int tunnel_server_move(struct session *s)
{
	struct tunnel *t = s->tunnel;
	uint8_t move[FRAME_HEADER_LEN + FRAME_MOVE_V6_LEN];
	size_t n;

	if (!t->standby_port || !s->peer_move || s->state != SESSION_ESTABLISHED)
		return -EOPNOTSUPP;
	n = frame_put_move(move, sizeof(move), &t->standby, t->standby_port);
	if (!n || !session_append(s, move, n))
		return -EOPNOTSUPP;
	s->move = SESSION_MOVE_TOLD;
	session_flush(s);
	if (!t->server->move_deadline.armed)
		evloop_timer_start(t->loop, &t->server->move_deadline,
				   (uint64_t)TUNNEL_MOVE_DEADLINE_FACTOR * t->handshake_ms);
	tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s told to move to the standby; its session "
		   "carries on until it has", s->name, s->remote);
	return 0;
}

/* The standby was not reached in time: the clients still here reconnect as after a CLOSE. */
static void server_on_move_deadline(struct evloop *loop, struct ev_timer *timer)
{
	struct tunnel *t = timer->arg;
	struct session *s, *next;

	(void)loop;
	for (s = t->sessions; s; s = next) {
		next = s->next;
		if (s->state == SESSION_ESTABLISHED && s->move == SESSION_MOVE_TOLD)
			session_end(s, SESSION_END_HANDOVER, true,
				    "handover: the standby was not reached in time; this server is going away, reconnect");
	}
}

/* MOVED from a client told to move: it sends nothing more here; what comes back still goes. */
static void server_move(struct session *s, const struct frame *f)
{
	struct tunnel *t = s->tunnel;

	if (f->type != FRAME_MOVED || s->move != SESSION_MOVE_TOLD) {
		session_end(s, SESSION_END_ERROR, true, "protocol error: %s",
			    f->type == FRAME_MOVE ? "MOVE from a client" : "MOVED without MOVE");
		return;
	}
	s->move = SESSION_MOVE_LEFT;
	t->stats.moves++;
	tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s moved to the standby; its session here "
		   "carries what still comes back", s->name, s->remote);
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
	t->server->refs = calloc(t->max_handshakes, sizeof(*t->server->refs));
	t->server->unreach = unreach_new();
	if (!t->server->refs || !t->server->unreach) {
		unreach_free(t->server->unreach);
		free(t->server->refs);
		free(t->server);
		t->server = NULL;
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	ev_timer_init(&t->server->accept_pause, server_on_accept_pause, t);
	ev_timer_init(&t->server->warn.summary, server_on_warn_summary, t);
	ev_timer_init(&t->server->move_deadline, server_on_move_deadline, t);
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

/* A live session gets a keepalive now: a peer host that rebooted answers with RST. */
static void server_probe(struct session *s)
{
	uint8_t keepalive[FRAME_HEADER_LEN];

	if (s->state != SESSION_ESTABLISHED)
		return;
	if (session_append(s, keepalive, frame_put_keepalive(keepalive, sizeof(keepalive))))
		session_flush(s);
}

/* Makes s the slot's hello session, unless the name is taken by a live one (see the top). */
static int server_claim_slot(struct session *s, struct server_peer *slot)
{
	struct tunnel *t = s->tunnel;
	struct session *old = slot->session ? slot->session : slot->hello;
	uint64_t silent;

	if (old) {
		silent = evloop_now_ms(t->loop) - old->last_rx_ms;
		if (silent < (uint64_t)SERVER_DUP_LIVE_PERIODS * t->keepalive_ms) {
			server_probe(old);
			session_end(s, SESSION_END_HANDSHAKE, true,
				    "'%s' is already connected from %s (heard from %.1f s ago)", s->name,
				    old->remote, (double)silent / 1000);
			return -1;
		}
		tunnel_log(t, TUNNEL_LOG_INFO,
			   "client '%s' from %s replaces its connection from %s, silent for %.1f s",
			   s->name, s->remote, old->remote, (double)silent / 1000);
		session_end(old, SESSION_END_REPLACED, true, "replaced by a new connection");
	}
	slot->hello = s;
	return 0;
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
			    : ret == -ENOTUNIQ ? "certificate has more than one common name"
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
	/* A connected peer coming back may replace its session: the cap never refuses it. */
	if (t->server->authenticated >= t->max_peers && !(slot->session && !slot->hello)) {
		t->stats.refused_max_peers++;
		session_end(s, SESSION_END_HANDSHAKE, true, "%u peers connected already", t->max_peers);
		return -1;
	}
	s->role_data = slot;
	t->server->authenticated++;
	return server_claim_slot(s, slot);
}

static void server_established(struct session *s)
{
	struct tunnel *t = s->tunnel;
	struct server_peer *slot = s->role_data;
	struct session *old = slot->session;

	if (slot->hello == s)
		slot->hello = NULL;
	slot->session = s;
	t->stats.sessions_active++;
	t->stats.sessions_total++;
	t->stats.last_handshake = tunnel_now_realtime();
	/* server_claim_slot ended any older one; this is for safety only. */
	if (old && old != s) {
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

	if (why == SESSION_END_LOCAL || why == SESSION_END_HANDOVER)
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
		if (slot->hello == s)
			slot->hello = NULL;
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
		tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s %s: %s", s->name, s->remote,
			   s->move == SESSION_MOVE_LEFT ? "closed its moved session" : "disconnected", reason);
		break;
	case SESSION_END_HANDOVER:
		tunnel_log(t, TUNNEL_LOG_INFO, "client '%s' from %s told to move: %s", s->name, s->remote,
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

/* ---- reloading the peers file ---- */

static bool prefix_listed(const struct peer *peer, const struct ip_prefix *p)
{
	for (size_t i = 0; i < peer->prefix_count; i++)
		if (prefix_equal(&peer->prefixes[i], p))
			return true;
	return false;
}

/* The same prefixes, in any order: the entry did not change. */
static bool peer_unchanged(const struct peer *a, const struct peer *b)
{
	size_t i;

	for (i = 0; i < a->prefix_count; i++)
		if (!prefix_listed(b, &a->prefixes[i]))
			return false;
	for (i = 0; i < b->prefix_count; i++)
		if (!prefix_listed(a, &b->prefixes[i]))
			return false;
	return true;
}

/* Moves s onto its peer's slot among new_slots, or cuts it with the reason. */
static void server_rehome(struct session *s, const struct peer_table *peers,
			  struct server_peer *new_slots)
{
	struct server_peer *slot = s->role_data, *to;
	const struct peer *peer = peers_find(peers, s->name);

	if (!peer || !peer_unchanged(peer, slot->peer)) {
		s->tunnel->stats.sessions_cut_reload++;
		session_end(s, SESSION_END_POLICY, true, "%s",
			    peer ? "its entry in the peers file changed" : "removed from the peers file");
		s->role_data = NULL; /* the old slots are freed after the swap */
		return;
	}
	to = &new_slots[peer - peers->peers];
	if (slot->session == s)
		to->session = s;
	if (slot->hello == s)
		to->hello = s;
	s->role_data = to;
}

int tunnel_server_reload(struct tunnel *t, const struct peer_table *peers, char *err, size_t err_len)
{
	struct server *srv = t->server;
	struct prefix_table *routes, *old_routes = srv->routes;
	struct server_peer *slots, *old_slots = srv->slots;
	struct session *s, *next;
	int ret;

	ret = server_build_routes(peers, &routes, &slots);
	if (ret < 0) {
		snprintf(err, err_len, "out of memory");
		return ret;
	}
	/* Sessions before their identity check (no slot) will be checked against the new table. */
	for (s = t->sessions; s; s = next) {
		next = s->next;
		if (s->role_data && (s->state == SESSION_HELLO || s->state == SESSION_ESTABLISHED))
			server_rehome(s, peers, slots);
		else
			s->role_data = NULL; /* ended already: no slot holds it any more */
	}
	srv->routes = routes;
	srv->slots = slots;
	srv->slot_count = peers->count;
	t->peers = peers;
	prefix_table_free(old_routes);
	free(old_slots);
	return 0;
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
			unreach_answer(t, t->server->unreach, p);
			continue;
		}
		/* Over UDP a packet may still fall back to TLS (too big): flushed below too. */
		if (udp_sending(slot->session))
			udp_send_packet(slot->session, p);
		else
			session_send_packet(slot->session, p);
		/* The session stays in memory until the round ends, even if it ended. */
		if (!slot->session || slot->session->flush_queued)
			continue;
		slot->session->flush_queued = true;
		to_flush[n++] = slot->session;
	}
	for (i = 0; i < n; i++) {
		to_flush[i]->flush_queued = false;
		session_flush(to_flush[i]);
	}
	unreach_flush(t, t->server->unreach);
	udp_flush(t);
}

static bool server_send_blocked(const struct tunnel *t)
{
	(void)t;
	return false; /* a slow client costs its own packets, never the others' */
}

static void server_stats(const struct tunnel *t, struct tunnel_stats *out)
{
	out->sessions_moving = 0;
	for (const struct session *s = t->sessions; s; s = s->next)
		out->sessions_moving += s->state == SESSION_ESTABLISHED && s->move == SESSION_MOVE_TOLD;
	out->handshakes_pending = t->server->pending_count;
	out->connected = out->sessions_active > 0;
}

const struct tunnel_role_ops tunnel_server_ops = {
	.tls_ready    = server_tls_ready,
	.established  = server_established,
	.source_ok    = server_source_ok,
	.dest_verdict = server_dest_verdict,
	.move         = server_move,
	.ended        = server_ended,
	.send         = server_send,
	.send_blocked = server_send_blocked,
	.stats        = server_stats,
	.free         = server_free,
};
