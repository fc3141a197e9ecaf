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
 * wrote to. IPv4 only; IPv6 UDP toward the routes is dropped and counted.
 *
 * Exit. The first DGRAM of a flow id opens a UDP socket connected to the
 * destination; what it receives (from that address only: a connected
 * socket filters) goes back as DGRAMs of the flow. A flow idle for
 * PX_UDP_IDLE_MS is forgotten at both ends; a DNS exchange fits easily.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px.h"

enum { PX_DGRAMS_PER_EVENT = 32 };

static bool has_v4_routes(const struct proxy *px)
{
	return px->tcp[0].fd >= 0; /* the IPv4 listener exists exactly when IPv4 routes do */
}

int px_udp_listen(struct proxy *px, char *err, size_t err_len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int one = 1, fd;

	if (!has_v4_routes(px))
		return 0;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	px->udp.fd = fd;
	px->udp.w.kind = PX_W_UDP_LISTEN;
	px->udp.px = px;
	px->udp.family = AF_INET;
	if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		goto err;
	px->udp.port = ntohs(sin.sin_port);
	errno = -px_watch_add(px, fd, &px->udp.w, EPOLLIN);
	if (errno == 0)
		return 0;
err:
	snprintf(err, err_len, "proxy: transparent UDP socket: %s", strerror(errno));
	px_udp_close(px);
	return -errno;
}

void px_udp_close(struct proxy *px)
{
	if (px->udp.fd >= 0)
		close(px->udp.fd);
	px->udp.fd = -1;
	px->udp.port = 0;
}

/* ---- flows ---- */

static struct px_flow *flow_new(struct proxy *px, struct px_link *l, uint32_t id, int fd)
{
	struct px_flow *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->w.kind = PX_W_FLOW;
	f->px = px;
	f->link = l;
	f->id = id;
	f->fd = fd;
	f->last_ms = px_now_ms();
	if (px_watch_add(px, fd, &f->w, EPOLLIN) < 0) {
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
	px_watch_del(f->px, f->fd);
	close(f->fd);
	f->px->fe.stream_stats.udp_flows_open--;
	px_bury(f->px, &f->w);
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

static bool same_sin(const struct sockaddr_storage *a, const struct sockaddr_in *b)
{
	const struct sockaddr_in *x = (const struct sockaddr_in *)a;

	return x->sin_port == b->sin_port && x->sin_addr.s_addr == b->sin_addr.s_addr;
}

/* Sends a flow's datagram through the tunnel; counts what cannot go. */
static void flow_send(struct proxy *px, struct px_link *l, struct px_flow *f,
		      const struct sockaddr_storage *ep, size_t len)
{
	struct stream_msg msg = { .type = STREAM_MSG_DGRAM, .id = f->id, .data = px->iobuf, .len = len };

	px_addr_of(ep, &msg.addr, &msg.port);
	if (px_send(px, l, &msg) < 0) {
		px->fe.stream_stats.dgrams_dropped++;
		return;
	}
	f->last_ms = px_now_ms();
	px->fe.stream_stats.dgrams_out++;
}

/* ---- client ---- */

/* A transparent socket bound to the destination, connected to the application. */
static int flow_socket(const struct sockaddr_in *bind_to, const struct sockaddr_in *peer)
{
	int one = 1, fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)bind_to, sizeof(*bind_to)) < 0 ||
	    connect(fd, (const struct sockaddr *)peer, sizeof(*peer)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static struct px_flow *client_flow(struct proxy *px, struct px_link *l, const struct sockaddr_in *app,
				   const struct sockaddr_in *dst)
{
	struct px_flow *f;
	int fd;

	for (f = l->flows; f; f = f->next)
		if (same_sin(&f->app, app) && same_sin(&f->dst, dst))
			return f;
	if (l->flow_count >= PX_FLOWS_PER_CLIENT)
		return NULL;
	fd = flow_socket(dst, app);
	if (fd < 0)
		return NULL;
	f = flow_new(px, l, px_next_id(px), fd);
	if (!f) {
		close(fd);
		return NULL;
	}
	memcpy(&f->app, app, sizeof(*app));
	memcpy(&f->dst, dst, sizeof(*dst));
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

static int recv_orig(int fd, uint8_t *buf, struct sockaddr_in *app, struct sockaddr_in *dst)
{
	char control[CMSG_SPACE(sizeof(struct sockaddr_in))];
	struct iovec iov = { buf, FRAME_DGRAM_MAX };
	struct msghdr mh = {
		.msg_name = app, .msg_namelen = sizeof(*app),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	ssize_t n = recvmsg(fd, &mh, 0);

	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
			memcpy(dst, CMSG_DATA(c), sizeof(*dst));
			return (int)n;
		}
	}
	return -EPROTO; /* not TPROXYed: someone sent to the socket itself */
}

void px_udp_client_read(struct proxy *px)
{
	struct sockaddr_in app, dst;

	for (int i = 0; i < PX_DGRAMS_PER_EVENT; i++) {
		int n = recv_orig(px->udp.fd, px->iobuf, &app, &dst);
		struct px_link *l;
		struct px_flow *f;

		if (n == -EAGAIN || n == -EINTR)
			return;
		l = n < 0 ? NULL : client_link(px);
		f = l ? client_flow(px, l, &app, &dst) : NULL;
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

	if (l->flow_count >= PX_FLOWS_PER_CLIENT)
		return NULL;
	px_sockaddr_from(&ss, &len, &msg->addr, msg->port);
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
