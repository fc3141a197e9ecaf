// SPDX-License-Identifier: MIT
/* The exit: a STREAM_OPEN becomes the server's own connection to the original destination. */

/*
 * The connection leaves from whatever address the server's routing picks
 * toward the destination (10.102.0.1 in the test topology): the host
 * behind the exit sees the server, never the client's address. That is
 * the proxy's transparency loss, and the tests assert it.
 *
 * The connect is non-blocking; until it completes, the client's first
 * bytes (and even its FIN) wait in the conn's ring, within the stream's
 * window. A refusal or unreachable destination becomes STREAM_RESET with
 * the reason (px_conn.c), PX_CONNECT_TIMEOUT_MS without an answer a
 * TIMEOUT reset. Limits per client: max_streams_per_client streams
 * (--max-streams-per-client), and PX_BUFFERED_PER_CLIENT bytes buffered
 * over all of them; for the exit as a whole, max_streams sockets.
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px.h"

/*
 * Every stream and flow holds a socket. The daemon sizes max_streams from
 * the fd limit minus what the tunnel needs, so new ones are refused here,
 * with reason LIMIT, before accept() of the listener starves on EMFILE.
 */
bool px_exit_over_budget(struct proxy *px)
{
	struct frontend_stream_stats *st = &px->fe.stream_stats;

	if (st->streams_open + st->udp_flows_open < px->max_streams)
		return false;
	st->exit_over_budget++;
	return true;
}

static void refuse(struct proxy *px, struct px_link *l, uint32_t id, uint8_t reason)
{
	struct stream_msg msg = { .type = STREAM_MSG_RESET, .id = id, .reason = reason };

	px_send(px, l, &msg);
	px_count_reset_reason(px, reason);
}

/*
 * A socket for a peer's destination. An AF_INET6 one is IPv6-only: a
 * dual-stack socket would take ::ffff:a.b.c.d out as IPv4, past the
 * policy's IPv6 entries (reach_classify checks those forms as IPv4 too;
 * this is the second lock). The fd, or -errno.
 */
int px_exit_socket(int family, int type)
{
	int one = 1, fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* A non-blocking connect: the fd (connecting or connected), or -errno. */
static int connect_to(const struct stream_msg *msg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	addr_to_sockaddr(&ss, &len, &msg->addr, msg->port);
	fd = px_exit_socket(ss.ss_family, SOCK_STREAM);
	if (fd < 0)
		return fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

void px_exit_open(struct proxy *px, const struct stream_msg *msg)
{
	struct px_link *l = px_link_get(px, msg->link, true);
	int fd;

	if (!l) {
		struct px_link gone = { .link = msg->link };

		refuse(px, &gone, msg->id, STREAM_RESET_LIMIT); /* no memory for the client */
		return;
	}
	if (msg->proto != IPPROTO_TCP) {
		refuse(px, l, msg->id, STREAM_RESET_REFUSED); /* UDP travels as DGRAM frames */
		return;
	}
	if (l->conn_count >= px->max_streams_per_client || px_conn_find(px, l, msg->id) ||
	    px_exit_over_budget(px)) {
		refuse(px, l, msg->id, STREAM_RESET_LIMIT);
		return;
	}
	fd = connect_to(msg);
	if (fd < 0) {
		refuse(px, l, msg->id, px_reason_of_errno(-fd));
		return;
	}
	/* Completion, or an immediate refusal, shows as EPOLLOUT. */
	if (!px_conn_new(px, l, msg->id, fd, true)) {
		close(fd);
		refuse(px, l, msg->id, STREAM_RESET_LIMIT);
	}
}
