// SPDX-License-Identifier: MIT
/*
 * The proxy's toolbox, below every px_ file: watches on the event loop, links
 * to the tunnel, sending a stream message, ids, deferred frees, per-client caps.
 * proxy.c (the ops, on top) and px_client/px_conn/px_exit/px_udp/px_syn call
 * down into it; it calls none of them.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "px.h"

uint64_t px_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void px_watch_init(struct px_watch *w, int fd, ev_io_cb cb, void *arg)
{
	ev_io_init(&w->io, fd, cb, arg);
}

int px_watch_add(struct proxy *px, struct px_watch *w, uint32_t events)
{
	if (!px->loop) {
		w->io.events = events; /* the start op registers it */
		return 0;
	}
	return evloop_io_start(px->loop, &w->io, events);
}

int px_watch_start(struct proxy *px, struct px_watch *w)
{
	if (!w->io.cb || w->io.active)
		return 0;
	return evloop_io_start(px->loop, &w->io, w->io.events);
}

int px_watch_mod(struct proxy *px, struct px_watch *w, uint32_t events)
{
	if (!px->loop) {
		w->io.events = events;
		return 0;
	}
	return evloop_io_set(px->loop, &w->io, events);
}

void px_watch_del(struct proxy *px, struct px_watch *w)
{
	if (px->loop)
		evloop_io_stop(px->loop, &w->io);
}

void px_close_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* ---- links ---- */

struct px_link *px_link_get(struct proxy *px, struct stream_link *link, bool create)
{
	struct px_link *l;

	for (l = px->links; l; l = l->next)
		if (l->link == link && !l->down)
			return l;
	if (!create || !link)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->link = link;
	l->next = px->links;
	px->links = l;
	return l;
}

static void flush_sent(struct ev_defer *d)
{
	struct proxy *px = (struct proxy *)((char *)d - offsetof(struct proxy, flush));

	if (px->port)
		px->port->flush(px->port->ctx);
}

int px_send(struct proxy *px, struct px_link *l, struct stream_msg *msg)
{
	if (!px->port || (l && l->down))
		return -ENOTCONN;
	msg->link = l ? l->link : NULL;
	if (px->loop)
		evloop_defer(px->loop, &px->flush, flush_sent);
	return px->port->send(px->port->ctx, msg);
}

uint32_t px_next_id(struct proxy *px)
{
	if (++px->next_id == 0)
		px->next_id = 1; /* 0 is no id; 4 billion streams later, old ones are long gone */
	return px->next_id;
}

void px_bury(struct proxy *px, struct px_watch *w, void (*free_fn)(struct ev_defer *d))
{
	if (px->loop)
		evloop_defer(px->loop, &w->defer, free_fn);
	else
		free_fn(&w->defer); /* never on the loop: nothing can point at it */
}

/*
 * A per-client cap: the flag's value, else the built-in one but at most a
 * quarter of the exit's budget, so that one client cannot take all of it
 * (with a hard fd limit of 4096 the budget is some 1700, below the 4096
 * streams a client may otherwise open). At least 1.
 */
unsigned px_per_client_cap(unsigned flag, unsigned budget, unsigned builtin)
{
	unsigned share = budget / PX_PER_CLIENT_BUDGET_DIVISOR;

	if (flag)
		return flag;
	if (share < 1)
		share = 1;
	return builtin < share ? builtin : share;
}
