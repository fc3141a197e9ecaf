// SPDX-License-Identifier: MIT
/* UDP flows: TPROXY and a transparent socket per flow at the client, a connected socket at the exit. */

/*
 * Client. A locally originated datagram cannot be TPROXYed in OUTPUT, so
 * mangle OUTPUT marks UDP toward the routes with PX_MARK, the fwmark rule
 * looks such packets up in table PX_TABLE ("local default dev lo"), and
 * the rerouted packet enters mangle PREROUTING on lo, where TPROXY hands it
 * to our IP_TRANSPARENT socket on 127.0.0.1 (sshuttle's method).
 * IP_RECVORIGDSTADDR gives the destination the application used. The
 * first datagram of (application address, destination) makes a flow: a
 * transparent socket bound to the destination and connected to the
 * application. TPROXY prefers that socket for the flow's later datagrams,
 * and replies sent from it reach the application from the address it
 * wrote to. IPv6 goes the same way, with its own socket on ::1 and the
 * IPV6_ options, when a route of that family exists (ip -6 rule and
 * route, ip6tables TPROXY --on-ip ::1).
 *
 * Exit. The first DGRAM of a flow id opens a UDP socket connected to the
 * destination; what it receives (from that address only: a connected
 * socket filters) goes back as DGRAMs of the flow. A flow idle for
 * PX_UDP_IDLE_MS is forgotten at both ends; a DNS exchange fits easily.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px.h"

enum { PX_DGRAMS_PER_EVENT = 32 };

static void udp_on_listener(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	px_udp_client_read(io->arg);
}

static void udp_on_flow(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	px_udp_flow_read(io->arg);
}

static void flow_on_defer(struct ev_defer *d)
{
	free((char *)d - offsetof(struct px_flow, w.defer));
}

/* The socket level and options of family fam (0: IPv4, 1: IPv6). */
static const struct udp_family {
	int af, level, transparent, recv_orig, orig;
	const char *name;
} udp_fam[2] = {
	{ AF_INET, SOL_IP, IP_TRANSPARENT, IP_RECVORIGDSTADDR, IP_ORIGDSTADDR, "127.0.0.1" },
	{ AF_INET6, SOL_IPV6, IPV6_TRANSPARENT, IPV6_RECVORIGDSTADDR, IPV6_ORIGDSTADDR, "[::1]" },
};

static socklen_t sa_len(int af)
{
	return af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* A socket of family fam with IP(V6)_TRANSPARENT; -errno on failure. */
static int transparent_socket(int fam)
{
	const struct udp_family *uf = &udp_fam[fam];
	int one = 1, fd = socket(uf->af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	/* V6ONLY: an IPv4-mapped peer belongs to the IPv4 socket, never here. */
	if (setsockopt(fd, uf->level, uf->transparent, &one, sizeof(one)) < 0 ||
	    (uf->af == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static int listen_family(struct proxy *px, int fam)
{
	const struct udp_family *uf = &udp_fam[fam];
	struct px_listener *ln = &px->udp[fam];
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)uf->af };
	socklen_t len = sa_len(uf->af);
	int one = 1, fd = transparent_socket(fam);

	if (fd < 0)
		return fd;
	ln->fd = fd;
	px_watch_init(&ln->w, fd, udp_on_listener, ln);
	ln->px = px;
	ln->family = uf->af;
	if (uf->af == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (setsockopt(fd, uf->level, uf->recv_orig, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	ln->port = sa_port(&ss);
	return px_watch_add(px, &ln->w, EPOLLIN);
}

int px_udp_listen(struct proxy *px, char *err, size_t err_len)
{
	for (int fam = 0; fam < 2; fam++) {
		int ret;

		/* A family's TCP listener exists exactly when routes of that family do. */
		if (px->tcp[fam].fd < 0)
			continue;
		ret = listen_family(px, fam);
		if (ret < 0) {
			snprintf(err, err_len, "proxy: transparent UDP socket on %s: %s",
				 udp_fam[fam].name, strerror(-ret));
			px_udp_close(px);
			return ret;
		}
	}
	return 0;
}

void px_udp_close(struct proxy *px)
{
	for (int fam = 0; fam < 2; fam++) {
		if (px->udp[fam].fd >= 0)
			px_watch_del(px, &px->udp[fam].w);
		if (px->udp[fam].fd >= 0)
			close(px->udp[fam].fd);
		px->udp[fam].fd = -1;
		px->udp[fam].port = 0;
	}
}

/* ---- flows ---- */

static struct px_flow *flow_new(struct proxy *px, struct px_link *l, uint32_t id, int fd)
{
	struct px_flow *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	px_watch_init(&f->w, fd, udp_on_flow, f);
	f->px = px;
	f->link = l;
	f->id = id;
	f->fd = fd;
	f->last_ms = px_now_ms();
	if (px_watch_add(px, &f->w, EPOLLIN) < 0) {
		free(f);
		return NULL;
	}
	f->next = l->flows;
	if (f->next)
		f->next->prev = f;
	l->flows = f;
	l->flow_count++;
	px->fe.stream_stats.udp_flows_open++;
	px->fe.stream_stats.udp_flows_total++;
	return f;
}

void px_flow_free(struct px_flow *f)
{
	struct px_link *l = f->link;

	if (f->prev)
		f->prev->next = f->next;
	else
		l->flows = f->next;
	if (f->next)
		f->next->prev = f->prev;
	l->flow_count--;
	px_watch_del(f->px, &f->w);
	close(f->fd);
	f->px->fe.stream_stats.udp_flows_open--;
	px_bury(f->px, &f->w, flow_on_defer);
}

void px_flow_tick(struct px_flow *f, uint64_t now)
{
	if (now - f->last_ms >= PX_UDP_IDLE_MS)
		px_flow_free(f);
}

static struct px_flow *flow_by_id(struct px_link *l, uint32_t id)
{
	for (struct px_flow *f = l->flows; f; f = f->next)
		if (f->id == id)
			return f;
	return NULL;
}

static bool same_ep(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

	return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Sends a flow's datagram through the tunnel; counts what cannot go. */
static void flow_send(struct proxy *px, struct px_link *l, struct px_flow *f,
		      const struct sockaddr_storage *ep, size_t len)
{
	struct stream_msg msg = { .type = STREAM_MSG_DGRAM, .id = f->id, .data = px->iobuf, .len = len };

	(void)addr_from_sockaddr((const struct sockaddr *)ep, &msg.addr, &msg.port); /* AF_INET/6 */
	if (px_send(px, l, &msg) < 0) {
		px->fe.stream_stats.dgrams_dropped++;
		return;
	}
	f->last_ms = px_now_ms();
	px->fe.stream_stats.dgrams_out++;
}

/* ---- client ---- */

/* A transparent socket bound to the destination, connected to the application. */
static int flow_socket(int fam, const struct sockaddr_storage *bind_to,
		       const struct sockaddr_storage *peer)
{
	socklen_t len = sa_len(udp_fam[fam].af);
	int one = 1, fd = transparent_socket(fam);

	if (fd < 0)
		return fd;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)bind_to, len) < 0 ||
	    connect(fd, (const struct sockaddr *)peer, len) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static struct px_flow *client_flow(struct proxy *px, struct px_link *l, int fam,
				   const struct sockaddr_storage *app,
				   const struct sockaddr_storage *dst)
{
	struct px_flow *f;
	int fd;

	for (f = l->flows; f; f = f->next)
		if (same_ep(&f->app, app) && same_ep(&f->dst, dst))
			return f;
	if (l->flow_count >= PX_FLOWS_PER_CLIENT)
		return NULL;
	fd = flow_socket(fam, dst, app);
	if (fd < 0)
		return NULL;
	f = flow_new(px, l, px_next_id(px), fd);
	if (!f) {
		close(fd);
		return NULL;
	}
	f->app = *app;
	f->dst = *dst;
	return f;
}

/* The client's live link, if its tunnel is up. */
static struct px_link *client_link(struct proxy *px)
{
	for (struct px_link *l = px->links; l; l = l->next)
		if (!l->down)
			return l;
	return NULL;
}

static int recv_orig(int fam, int fd, uint8_t *buf, struct sockaddr_storage *app,
		     struct sockaddr_storage *dst)
{
	const struct udp_family *uf = &udp_fam[fam];
	char control[CMSG_SPACE(sizeof(struct sockaddr_in6))];
	struct iovec iov = { buf, FRAME_DGRAM_MAX };
	struct msghdr mh = {
		.msg_name = app, .msg_namelen = sizeof(*app),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	ssize_t n = recvmsg(fd, &mh, 0);

	if (n < 0)
		return -errno;
	memset(dst, 0, sizeof(*dst));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == uf->level && c->cmsg_type == uf->orig) {
			memcpy(dst, CMSG_DATA(c), sa_len(uf->af));
			return (int)n;
		}
	}
	return -EPROTO; /* not TPROXYed: someone sent to the socket itself */
}

void px_udp_client_read(struct px_listener *ln)
{
	struct proxy *px = ln->px;
	int fam = ln->family == AF_INET6;
	struct sockaddr_storage app, dst;

	for (int i = 0; i < PX_DGRAMS_PER_EVENT; i++) {
		int n = recv_orig(fam, ln->fd, px->iobuf, &app, &dst);
		struct px_link *l;
		struct px_flow *f;

		if (n == -EAGAIN || n == -EINTR)
			return;
		l = n < 0 ? NULL : client_link(px);
		f = l ? client_flow(px, l, fam, &app, &dst) : NULL;
		if (!f) {
			px->fe.stream_stats.dgrams_dropped++;
			continue;
		}
		flow_send(px, l, f, &f->dst, (size_t)n);
	}
}

void px_udp_flow_read(struct px_flow *f)
{
	struct proxy *px = f->px;

	for (int i = 0; i < PX_DGRAMS_PER_EVENT; i++) {
		ssize_t n = recv(f->fd, px->iobuf, FRAME_DGRAM_MAX, 0);

		if (n < 0) {
			/* ICMP errors (port unreachable) of a connected socket: the flow goes on. */
			if (errno == EAGAIN || errno == EINTR)
				return;
			continue;
		}
		flow_send(px, f->link, f, &f->dst, (size_t)n);
	}
}

/* ---- from the tunnel ---- */

static struct px_flow *exit_flow(struct proxy *px, struct px_link *l, const struct stream_msg *msg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct px_flow *f;
	int fd;

	if (l->flow_count >= px->max_flows_per_client || px_exit_over_budget(px)) {
		px->fe.stream_stats.flows_limited++;
		return NULL;
	}
	addr_to_sockaddr(&ss, &len, &msg->addr, msg->port);
	fd = px_exit_socket(ss.ss_family, SOCK_DGRAM);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return NULL;
	}
	f = flow_new(px, l, msg->id, fd);
	if (!f) {
		close(fd);
		return NULL;
	}
	memcpy(&f->dst, &ss, sizeof(ss));
	return f;
}

void px_udp_on_dgram(struct proxy *px, struct px_link *l, const struct stream_msg *msg)
{
	struct px_flow *f = l ? flow_by_id(l, msg->id) : NULL;

	if (!f && px->server && l)
		f = exit_flow(px, l, msg);
	if (!f) {
		px->fe.stream_stats.dgrams_dropped++;
		return;
	}
	/* A send the socket refuses (buffer full, ICMP error) loses the datagram, as UDP may. */
	if (send(f->fd, msg->data, msg->len, 0) < 0) {
		px->fe.stream_stats.dgrams_dropped++;
		return;
	}
	f->last_ms = px_now_ms();
	px->fe.stream_stats.dgrams_in++;
}
