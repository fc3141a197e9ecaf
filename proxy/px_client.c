// SPDX-License-Identifier: MIT
/* The client's TCP side: the REDIRECT listeners, accepting, and opening a stream per connection. */

/*
 * nat OUTPUT REDIRECT sends a locally originated connection toward the
 * routes to our listener on 127.0.0.1 (::1 for IPv6), which completes the
 * handshake at once: the application's connect() succeeds before the far
 * end was even asked. SO_ORIGINAL_DST (conntrack's record of the
 * destination before NAT) says where it was going; a STREAM_OPEN goes out
 * and data may follow it at once (the exit buffers it until connected).
 * So a destination that refuses can only reach the application as a
 * reset after the handshake, never as ECONNREFUSED: the transparency loss
 * of every REDIRECT proxy, sshuttle's too.
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h, which clashes with netinet/in.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

enum {
	/* Connections the kernel may hold for us: the 200-at-once test, with room. */
	PX_LISTEN_BACKLOG = 1024,
	PX_ACCEPTS_PER_EVENT = 64,
};

static void on_accept(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	px_client_accept(io->arg);
}

static int listen_on(struct proxy *px, struct px_listener *ln, int af)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int one = 1;

	ln->px = px;
	ln->family = af;
	ln->fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ln->fd < 0)
		return -errno;
	px_watch_init(&ln->w, ln->fd, on_accept, ln);
	ss.ss_family = (sa_family_t)af;
	if (af == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (af == AF_INET6)
		setsockopt(ln->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(ln->fd, (struct sockaddr *)&ss, len) < 0 || listen(ln->fd, PX_LISTEN_BACKLOG) < 0 ||
	    getsockname(ln->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	ln->port = ntohs(af == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return px_watch_add(px, &ln->w, EPOLLIN);
}

int px_client_listen(struct proxy *px, const struct frontend_config *cfg, char *err,
		     size_t err_len)
{
	static const int afs[2] = { AF_INET, AF_INET6 };

	for (int fam = 0; fam < 2; fam++) {
		int ret;

		if (!frontend_routes_family(cfg, afs[fam]))
			continue;
		ret = listen_on(px, &px->tcp[fam], afs[fam]);
		if (ret < 0) {
			snprintf(err, err_len, "proxy: TCP listener on %s: %s",
				 fam ? "[::1]" : "127.0.0.1", strerror(-ret));
			px_client_close(px);
			return ret;
		}
	}
	return 0;
}

void px_client_close(struct proxy *px)
{
	for (int fam = 0; fam < 2; fam++) {
		if (px->tcp[fam].fd >= 0)
			px_watch_del(px, &px->tcp[fam].w);
		if (px->tcp[fam].fd >= 0)
			close(px->tcp[fam].fd);
		px->tcp[fam].fd = -1;
	}
}

/* Where the application meant to connect, before REDIRECT. */
static int original_dst(int fd, int af, struct ip_addr *addr, uint16_t *port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	int ret = af == AF_INET ? getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len)
				: getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);

	if (ret < 0)
		return -errno;
	return addr_from_sockaddr((const struct sockaddr *)&ss, addr, port);
}

static size_t client_streams(const struct proxy *px)
{
	size_t n = 0;

	for (const struct px_link *l = px->links; l; l = l->next)
		n += l->conn_count;
	return n;
}

struct px_conn *px_client_open(struct proxy *px, int fd, const struct ip_addr *dst, uint16_t port,
			       uint8_t *reason)
{
	struct stream_msg msg = {
		.type = STREAM_MSG_OPEN, .id = px_next_id(px), .proto = IPPROTO_TCP,
		.addr = *dst, .port = port,
	};
	struct px_link *l;
	struct px_conn *c;

	*reason = STREAM_RESET_LIMIT;
	if (client_streams(px) >= PX_STREAMS_PER_CLIENT) {
		px->fe.stream_stats.streams_limited++;
		return NULL;
	}
	if (px_send(px, NULL, &msg) < 0) {
		/* No tunnel (reconnecting) or a server without streams: refused. */
		*reason = STREAM_RESET_REFUSED;
		px->fe.stream_stats.streams_refused++;
		return NULL;
	}
	l = px_link_get(px, msg.link, true);
	c = l ? px_conn_new(px, l, msg.id, fd, fd < 0) : NULL;
	if (!c) {
		struct stream_msg reset = { .type = STREAM_MSG_RESET, .id = msg.id,
					    .reason = STREAM_RESET_LIMIT };

		px_send(px, l, &reset);
		px->fe.stream_stats.streams_limited++;
	}
	return c;
}

/* Where the connection came from: the application's address and port. */
static int peer_of(int fd, struct ip_addr *addr, uint16_t *port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return addr_from_sockaddr((const struct sockaddr *)&ss, addr, port);
}

static void accept_one(struct proxy *px, struct px_listener *ln, int fd)
{
	struct ip_addr dst, app;
	uint16_t port, app_port;
	struct px_conn *c;
	uint8_t reason;
	int one = 1;

	if (original_dst(fd, ln->family, &dst, &port) < 0) {
		close(fd); /* connected to the listener itself, not redirected */
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Its SYN was held until the exit connected: the stream is open already. */
	c = px->syn.pending && peer_of(fd, &app, &app_port) == 0
		    ? px_syn_match(px, &app, app_port, &dst, port) : NULL;
	if (c) {
		if (c->held || px_conn_attach(c, fd) < 0) {
			px_close_rst(fd);
			px_conn_reset(c, STREAM_RESET_RESET);
		}
		return;
	}
	if (!px_client_open(px, fd, &dst, port, &reason))
		px_close_rst(fd);
}

void px_client_accept(struct px_listener *ln)
{
	struct proxy *px = ln->px;

	for (int i = 0; i < PX_ACCEPTS_PER_EVENT; i++) {
		int fd = accept4(ln->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			accept_one(px, ln, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* The listener stays readable: without a pause this would spin. */
			if (px_watch_mod(px, &ln->w, 0) == 0)
				ln->paused = true;
		}
		return; /* EAGAIN, or an error of one connection only */
	}
}

void px_client_resume(struct proxy *px)
{
	for (int fam = 0; fam < 2; fam++) {
		struct px_listener *ln = &px->tcp[fam];

		if (ln->fd >= 0 && ln->paused && px_watch_mod(px, &ln->w, EPOLLIN) == 0)
			ln->paused = false;
	}
}
