// SPDX-License-Identifier: MIT
/*
 * The proxy's toolbox, below every px_ file: watches on its epoll, links to
 * the tunnel, sending a stream message, ids, the graveyard, per-client caps.
 * proxy.c (the ops, on top) and px_client/px_conn/px_exit/px_udp/px_syn call
 * down into it; it calls none of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
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

int px_watch_add(struct proxy *px, int fd, struct px_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(px->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int px_watch_mod(struct proxy *px, int fd, struct px_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(px->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void px_watch_del(struct proxy *px, int fd)
{
	epoll_ctl(px->epfd, EPOLL_CTL_DEL, fd, NULL);
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

int px_send(struct proxy *px, struct px_link *l, struct stream_msg *msg)
{
	if (!px->port || (l && l->down))
		return -ENOTCONN;
	msg->link = l ? l->link : NULL;
	return px->port->send(px->port->ctx, msg);
}

uint32_t px_next_id(struct proxy *px)
{
	if (++px->next_id == 0)
		px->next_id = 1; /* 0 is no id; 4 billion streams later, old ones are long gone */
	return px->next_id;
}

void px_bury(struct proxy *px, struct px_watch *w)
{
	w->dead = true;
	w->gnext = px->graveyard;
	px->graveyard = w;
}

void px_graveyard_empty(struct proxy *px)
{
	while (px->graveyard) {
		struct px_watch *w = px->graveyard;

		px->graveyard = w->gnext;
		if (w->kind == PX_W_CONN)
			free(((struct px_conn *)w)->buf);
		free(w); /* the watch is the first member of conns and flows */
	}
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
