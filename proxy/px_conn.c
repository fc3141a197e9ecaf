// SPDX-License-Identifier: MIT
/* The relay of one TCP connection as a stream: windows, credits, half-close, reset. Both roles. */

/*
 * A conn is a socket on one side and a stream id on a link on the other.
 *
 *   socket -> tunnel: read at most `window` bytes (what the peer granted)
 *     in DATA frames; EOF becomes FIN. No reading while the window is 0 or
 *     the link is blocked.
 *   tunnel -> socket: DATA is written at once; what the socket does not
 *     take waits in a ring of STREAM_WINDOW bytes (the peer cannot send
 *     more; one that does is reset with LIMIT). Every STREAM_CREDIT_THRESHOLD
 *     bytes the socket takes are credited back. FIN becomes shutdown(SHUT_WR)
 *     once the ring is empty.
 *
 * A conn ends cleanly when both directions are done (FIN sent and our
 * write side shut), and abortively (RST, SO_LINGER 0) on RESET either
 * way: the application sees what the far end's application saw.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../base/keyhash.h"
#include "px.h"

/*
 * Stream ids are the peer's choice: an unkeyed mix lets it pick thousands
 * of ids for one bucket and make every lookup walk them all. SipHash with
 * the proxy's random key (keyhash.h) takes that choice away; the link
 * keeps two clients' equal ids apart.
 */
static unsigned bucket(struct proxy *px, const struct px_link *l, uint32_t id)
{
	uint8_t key[sizeof(uintptr_t) + sizeof(id)];
	uintptr_t link = (uintptr_t)l;

	memcpy(key, &link, sizeof(link));
	memcpy(key + sizeof(link), &id, sizeof(id));
	return (unsigned)keyhash_bytes(px->conn_hash, key, sizeof(key)) & (PX_HASH_BUCKETS - 1);
}

struct px_conn *px_conn_find(struct proxy *px, struct px_link *l, uint32_t id)
{
	for (struct px_conn *c = px->table[bucket(px, l, id)]; c; c = c->hnext)
		if (c->link == l && c->id == id)
			return c;
	return NULL;
}

size_t px_conn_longest_chain(const struct proxy *px)
{
	size_t longest = 0;

	for (size_t i = 0; i < PX_HASH_BUCKETS; i++) {
		size_t n = 0;

		for (const struct px_conn *c = px->table[i]; c; c = c->hnext)
			n++;
		if (n > longest)
			longest = n;
	}
	return longest;
}

static void conn_link(struct px_conn *c)
{
	struct px_conn **head = &c->px->table[bucket(c->px, c->link, c->id)];

	c->hnext = *head;
	*head = c;
	c->next = c->link->conns;
	if (c->next)
		c->next->prev = c;
	c->link->conns = c;
	c->link->conn_count++;
}

static void conn_unlink(struct px_conn *c)
{
	struct px_conn **at = &c->px->table[bucket(c->px, c->link, c->id)];

	while (*at && *at != c)
		at = &(*at)->hnext;
	if (*at)
		*at = c->hnext;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->link->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->link->conn_count--;
	c->link->buffered -= c->len;
}

static void conn_on_io(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	(void)loop;
	px_conn_io(io->arg, events);
}

static void conn_on_defer(struct ev_defer *d)
{
	struct px_conn *c = (struct px_conn *)((char *)d - offsetof(struct px_conn, w.defer));

	free(c->buf);
	free(c);
}

struct px_conn *px_conn_new(struct proxy *px, struct px_link *l, uint32_t id, int fd,
			    bool connecting)
{
	struct px_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	px_watch_init(&c->w, fd, conn_on_io, c);
	c->px = px;
	c->link = l;
	c->id = id;
	c->fd = fd;
	c->connecting = connecting;
	c->window = c->rwindow = STREAM_WINDOW;
	c->started_ms = c->last_ms = px_now_ms();
	c->events = connecting ? EPOLLOUT : EPOLLIN;
	if (fd >= 0 && px_watch_add(px, &c->w, c->events) < 0) {
		free(c);
		return NULL;
	}
	conn_link(c);
	px->fe.stream_stats.streams_open++;
	px->fe.stream_stats.streams_total++;
	return c;
}

static void conn_free(struct px_conn *c, bool rst)
{
	struct proxy *px = c->px;

	conn_unlink(c);
	px_syn_forget(c, STREAM_RESET_RESET); /* a held SYN is refused */
	if (c->fd >= 0 && !c->detached)
		px_watch_del(px, &c->w);
	if (c->fd >= 0 && rst)
		px_close_rst(c->fd);
	else if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	px->fe.stream_stats.streams_open--;
	px_bury(px, &c->w, conn_on_defer);
}

void px_conn_abort(struct px_conn *c)
{
	conn_free(c, true);
}

void px_count_reset_reason(struct proxy *px, uint8_t reason)
{
	struct frontend_stream_stats *st = &px->fe.stream_stats;

	switch (reason) {
	case STREAM_RESET_REFUSED: st->streams_refused++; break;
	case STREAM_RESET_UNREACHABLE:
	case STREAM_RESET_TIMEOUT: st->streams_unreachable++; break;
	case STREAM_RESET_LIMIT: st->streams_limited++; break;
	case STREAM_RESET_PROHIBITED: st->streams_prohibited++; break;
	default: st->streams_reset++; break;
	}
}

uint8_t px_reason_of_errno(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return STREAM_RESET_REFUSED;
	case ENETUNREACH:
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ENETDOWN:
	case EADDRNOTAVAIL:
		return STREAM_RESET_UNREACHABLE;
	case ETIMEDOUT:
		return STREAM_RESET_TIMEOUT;
	default:
		return STREAM_RESET_RESET;
	}
}

void px_conn_reset(struct px_conn *c, uint8_t reason)
{
	struct stream_msg msg = { .type = STREAM_MSG_RESET, .id = c->id, .reason = reason };

	px_send(c->px, c->link, &msg); /* a link that is gone has reset everything already */
	px_count_reset_reason(c->px, reason);
	conn_free(c, true);
}

/* ---- events ---- */

static bool conn_wants_read(const struct px_conn *c)
{
	return !c->connecting && !c->eof_sent && c->window > 0 && !c->link->blocked;
}

void px_conn_update(struct px_conn *c)
{
	uint32_t events = 0;

	if (c->fd < 0)
		return; /* pending: no socket yet */
	if (c->connecting)
		events = EPOLLOUT;
	else if (c->len)
		events = EPOLLOUT;
	if (conn_wants_read(c))
		events |= EPOLLIN;
	if (c->detached) {
		if (!events || px_watch_add(c->px, &c->w, events) < 0)
			return;
		c->detached = false;
		c->events = events;
		return;
	}
	if (events == c->events)
		return;
	/* Fails only without memory; the conn then keeps its old interest. */
	if (px_watch_mod(c->px, &c->w, events) == 0)
		c->events = events;
}

/* Both directions done: a clean close, FIN and all. */
static bool conn_finish_if_done(struct px_conn *c)
{
	if (!c->eof_sent || !c->shut_wr)
		return false;
	conn_free(c, false);
	return true;
}

/* ---- tunnel -> socket ---- */

static void conn_credit(struct px_conn *c)
{
	struct stream_msg msg = { .type = STREAM_MSG_CREDIT, .id = c->id, .credit = c->consumed };

	if (c->consumed < STREAM_CREDIT_THRESHOLD)
		return;
	if (px_send(c->px, c->link, &msg) < 0)
		return; /* the link is going down, or full: the next write credits more */
	c->rwindow += c->consumed;
	c->consumed = 0;
}

static void conn_consumed(struct px_conn *c, size_t n)
{
	c->consumed += (uint32_t)n;
	c->px->fe.stream_stats.stream_bytes_in += n;
	c->last_ms = px_now_ms();
}

/* Writes what the ring holds. 0, or -errno of a broken socket. */
static int conn_drain(struct px_conn *c)
{
	while (c->len) {
		size_t first = STREAM_WINDOW - c->head < c->len ? STREAM_WINDOW - c->head : c->len;
		struct iovec iov[2] = {
			{ c->buf + c->head, first },
			{ c->buf, c->len - first },
		};
		ssize_t n = writev(c->fd, iov, c->len > first ? 2 : 1);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->head = (c->head + (size_t)n) % STREAM_WINDOW;
		c->len -= (size_t)n;
		c->link->buffered -= (size_t)n;
		conn_consumed(c, (size_t)n);
	}
	c->head = 0;
	return 0;
}

/* After the ring drained: pass a FIN on, credit, maybe finish. false if c is gone. */
static bool conn_after_write(struct px_conn *c)
{
	if (!c->len && c->fin_received && !c->shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
	conn_credit(c);
	if (conn_finish_if_done(c))
		return false;
	px_conn_update(c);
	return true;
}

static int conn_buffer(struct px_conn *c, const uint8_t *data, size_t len)
{
	size_t tail, first;

	if (c->link->buffered + len > PX_BUFFERED_PER_CLIENT)
		return -ENOBUFS;
	if (!c->buf) {
		c->buf = malloc(STREAM_WINDOW);
		if (!c->buf)
			return -ENOMEM;
	}
	tail = (c->head + c->len) % STREAM_WINDOW;
	first = STREAM_WINDOW - tail < len ? STREAM_WINDOW - tail : len;
	memcpy(c->buf + tail, data, first);
	memcpy(c->buf, data + first, len - first);
	c->len += len;
	c->link->buffered += len;
	return 0;
}

static void conn_on_data(struct px_conn *c, const uint8_t *data, size_t len)
{
	ssize_t n = 0;

	if (len > c->rwindow || c->fin_received) {
		px_conn_reset(c, STREAM_RESET_LIMIT); /* the peer ignored our window or its FIN */
		return;
	}
	c->rwindow -= (uint32_t)len;
	if (!c->len && !c->connecting) {
		n = write(c->fd, data, len);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			px_conn_reset(c, STREAM_RESET_RESET);
			return;
		}
		n = n < 0 ? 0 : n;
		conn_consumed(c, (size_t)n);
	}
	if ((size_t)n < len && conn_buffer(c, data + n, len - (size_t)n) < 0) {
		px_conn_reset(c, STREAM_RESET_LIMIT);
		return;
	}
	conn_after_write(c);
}

void px_conn_on_msg(struct px_conn *c, const struct stream_msg *msg)
{
	switch (msg->type) {
	case STREAM_MSG_DATA:
		conn_on_data(c, msg->data, msg->len);
		break;
	case STREAM_MSG_FIN:
		c->fin_received = true;
		c->last_ms = px_now_ms();
		if (!c->connecting)
			conn_after_write(c);
		break;
	case STREAM_MSG_RESET:
		px_count_reset_reason(c->px, msg->reason);
		px_syn_forget(c, msg->reason); /* the application learns why */
		px_conn_abort(c);
		break;
	case STREAM_MSG_CONNECTED:
		if (c->pending)
			px_syn_connected(c);
		break;
	case STREAM_MSG_CREDIT:
		/* window = STREAM_WINDOW + credited - sent never exceeds STREAM_WINDOW. */
		if (c->window + (uint64_t)msg->credit > STREAM_WINDOW) {
			px_conn_reset(c, STREAM_RESET_LIMIT);
			return;
		}
		c->window += msg->credit;
		px_conn_update(c);
		break;
	default:
		break;
	}
}

/* ---- socket -> tunnel ---- */

/* Frames n bytes of iobuf as DATA (a record's worth each), or FIN for n == 0. */
static int conn_send_read(struct px_conn *c, size_t n)
{
	struct stream_msg msg = { .type = n ? STREAM_MSG_DATA : STREAM_MSG_FIN, .id = c->id };
	size_t off = 0;
	int ret = 0;

	do {
		msg.data = c->px->iobuf + off;
		msg.len = n - off < FRAME_STREAM_DATA_MAX ? n - off : FRAME_STREAM_DATA_MAX;
		ret = px_send(c->px, c->link, &msg);
		off += msg.len;
	} while (ret == 0 && off < n);
	return ret;
}

/*
 * One read into the stream: up to PX_READ_FRAMES frames' worth per
 * syscall. 1: more may follow, 0: stop, -1: c is gone.
 */
static int conn_read_once(struct px_conn *c)
{
	struct proxy *px = c->px;
	size_t max = (size_t)PX_READ_FRAMES * FRAME_STREAM_DATA_MAX;
	size_t want = c->window < max ? c->window : max;
	ssize_t n = read(c->fd, px->iobuf, want);
	int ret;

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		px_conn_reset(c, STREAM_RESET_RESET);
		return -1;
	}
	c->eof_sent = n == 0;
	ret = conn_send_read(c, (size_t)n);
	if (ret < 0) {
		/* Full although we stop reading at high water: this stream pays, not the link. */
		if (ret == -ENOBUFS)
			px_conn_reset(c, STREAM_RESET_LIMIT);
		else
			px_conn_abort(c); /* the link is down: every stream of it goes */
		return -1;
	}
	c->last_ms = px_now_ms();
	c->window -= (uint32_t)n;
	px->fe.stream_stats.stream_bytes_out += (size_t)n;
	if (px->port->blocked(px->port->ctx, c->link->link))
		c->link->blocked = true;
	return n > 0 ? 1 : 0;
}

static void conn_read(struct px_conn *c)
{
	for (int i = 0; i < PX_READS_PER_EVENT && conn_wants_read(c); i++) {
		int ret = conn_read_once(c);

		if (ret < 0)
			return;
		if (ret == 0)
			break;
	}
	if (!conn_finish_if_done(c))
		px_conn_update(c);
}

static void conn_connected(struct px_conn *c)
{
	struct stream_msg connected = { .type = STREAM_MSG_CONNECTED, .id = c->id };
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		px_conn_reset(c, px_reason_of_errno(err));
		return;
	}
	c->connecting = false;
	c->last_ms = px_now_ms();
	px_send(c->px, c->link, &connected); /* the client lets its application's SYN pass */
	/* What the client sent before we were connected, and maybe its FIN. */
	if (conn_drain(c) < 0) {
		px_conn_reset(c, STREAM_RESET_RESET);
		return;
	}
	conn_after_write(c);
}

void px_conn_io(struct px_conn *c, uint32_t events)
{
	if (c->connecting) {
		conn_connected(c);
		return;
	}
	if ((events & EPOLLERR) ||
	    ((events & EPOLLHUP) && c->eof_sent && !c->shut_wr && !c->len)) {
		/* Reset by the application, or gone both ways while we still owe it a FIN. */
		px_conn_reset(c, STREAM_RESET_RESET);
		return;
	}
	if ((events & EPOLLOUT) && c->len) {
		if (conn_drain(c) < 0) {
			px_conn_reset(c, STREAM_RESET_RESET);
			return;
		}
		if (!conn_after_write(c))
			return;
	}
	if ((events & EPOLLHUP) && !conn_wants_read(c) && !c->len) {
		/*
		 * Hung up with unread data we may not read yet (no window): epoll
		 * reports HUP whatever the mask, so step out until there is a window.
		 */
		px_watch_del(c->px, &c->w);
		c->detached = true;
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP))
		conn_read(c);
}

int px_conn_attach(struct px_conn *c, int fd)
{
	int ret;

	px_watch_init(&c->w, fd, conn_on_io, c);
	ret = px_watch_add(c->px, &c->w, EPOLLIN);
	if (ret < 0)
		return ret;
	px_syn_forget(c, 0);
	c->fd = fd;
	c->events = EPOLLIN;
	c->connecting = false;
	c->last_ms = px_now_ms();
	/* What the exit's far end sent before the accept (a banner), and maybe its FIN. */
	if (conn_drain(c) < 0) {
		px_conn_reset(c, STREAM_RESET_RESET);
		return 0;
	}
	conn_after_write(c);
	return 0;
}

void px_conn_tick(struct px_conn *c, uint64_t now)
{
	uint64_t idle = c->eof_sent || c->fin_received ? PX_HALF_CLOSED_IDLE_MS : PX_TCP_IDLE_MS;

	if (c->pending)
		return; /* px_syn_tick's */

	if (c->connecting && now - c->started_ms >= PX_CONNECT_TIMEOUT_MS) {
		px_conn_reset(c, STREAM_RESET_TIMEOUT);
		return;
	}
	if (now - c->last_ms >= idle) {
		c->px->fe.stream_stats.streams_idle_closed++;
		px_conn_reset(c, STREAM_RESET_TIMEOUT);
	}
}
