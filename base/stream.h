/* SPDX-License-Identifier: MIT */
/* Stream messages: what a stream frontend (the proxy) and the tunnel exchange, in neither's terms. */
#ifndef TUNLAB_STREAM_H
#define TUNLAB_STREAM_H

/*
 * The proxy carries byte streams and datagrams, not packets. The tunnel
 * turns each message into one stream frame (tunnel/proto.h) and each
 * received stream frame back into a message; src/daemon.c passes them
 * between the two, so neither includes the other's header.
 *
 * A link is one tunnel session that carries streams (a client's
 * connection to the server; on the server, one client). Stream ids are
 * per link. A link is valid from STREAM_MSG_LINK_UP until
 * STREAM_MSG_LINK_DOWN for it: after that the receiver forgets every
 * stream of that link and never passes the link back.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"

struct stream_link; /* opaque */

enum stream_msg_type {
	STREAM_MSG_OPEN,          /* id, proto, addr/port: the destination */
	STREAM_MSG_DATA,          /* id, data/len */
	STREAM_MSG_FIN,           /* id */
	STREAM_MSG_RESET,         /* id, reason (enum stream_reset_reason) */
	STREAM_MSG_CREDIT,        /* id, credit */
	STREAM_MSG_DGRAM,         /* id = flow, addr/port, data/len */
	STREAM_MSG_CONNECTED,     /* id: server to client, the destination accepted */
	/* From the tunnel only: */
	STREAM_MSG_LINK_UP,       /* a session carrying streams is established */
	STREAM_MSG_LINK_DOWN,     /* the session ended: every stream of link is dead */
	STREAM_MSG_LINK_WRITABLE, /* the link's send buffer drained below low water */
};

struct stream_msg {
	enum stream_msg_type type;
	struct stream_link *link; /* client OPEN: NULL, set by the tunnel */
	uint32_t id;
	uint8_t proto;            /* IPPROTO_TCP or IPPROTO_UDP */
	uint8_t reason;
	uint32_t credit;
	struct ip_addr addr;
	uint16_t port;
	const uint8_t *data;
	size_t len;
};

/*
 * The tunnel's side, as src/daemon.c hands it to a stream frontend.
 * send returns 0, -ENOTCONN (no link, or the link is down), -EOPNOTSUPP
 * (the peer does not carry streams), -EMSGSIZE or -EINVAL (a message the
 * peer would refuse), or -ENOBUFS (the send buffer is full: wait for
 * LINK_WRITABLE). blocked says that data should wait for LINK_WRITABLE.
 * Sends are batched into TLS records; flush hands them to TLS.
 */
struct stream_port {
	void *ctx;
	int (*send)(void *ctx, struct stream_msg *msg);
	bool (*blocked)(void *ctx, const struct stream_link *link);
	void (*flush)(void *ctx);
};

#endif
