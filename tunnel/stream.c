// SPDX-License-Identifier: MIT
/* Streams over the tunnel: stream messages to frames and back, for a stream frontend. */

/*
 * The tunnel keeps no per-stream state: a link is a session (both HELLOs
 * had HELLO_F_STREAMS), stream ids and windows are the frontend's. What
 * the tunnel owns is the framing, the choice of session (a client's OPEN
 * goes to its established session) and the link events: LINK_DOWN when
 * an established stream session ends (every stream on it is dead),
 * LINK_WRITABLE when its send buffer drains after passing high water.
 *
 * Stream frames are never dropped for a full buffer the way packets are:
 * a lost FIN or CREDIT would hang a stream forever. A send that does not
 * fit returns -ENOBUFS and the frontend resets that stream; frontends
 * stop reading sockets while tunnel_stream_blocked(), which leaves the
 * quarter of the buffer above high water to control frames.
 *
 * A session whose own side did not offer streams answers STREAM_OPEN with
 * STREAM_RESET (refused) and counts other stream frames as malformed.
 *
 * Addresses are checked here, for every stream frontend: the server
 * answers an OPEN to a destination its policy forbids (base/reach.h)
 * with STREAM_RESET (prohibited) and drops such a DGRAM; the client drops
 * a DGRAM whose source it would not accept in a packet. Both counted.
 */
#include <errno.h>

#include "session.h"

static struct session *link_session(const struct stream_link *link)
{
	return (struct session *)link;
}

static struct stream_link *session_link(struct session *s)
{
	return (struct stream_link *)s;
}

/* The client's established session, for an OPEN that names no link. */
static struct session *client_link(struct tunnel *t)
{
	for (struct session *s = t->sessions; s; s = s->next)
		if (s->state == SESSION_ESTABLISHED)
			return s;
	return NULL;
}

/* Enough for any stream frame carrying len bytes: the largest header is DGRAM over IPv6. */
static size_t stream_frame_bound(const struct stream_msg *msg)
{
	return FRAME_HEADER_LEN + FRAME_DGRAM_V6_HEADER + msg->len;
}

static size_t stream_put(uint8_t *buf, size_t cap, const struct stream_msg *m)
{
	switch (m->type) {
	case STREAM_MSG_OPEN:
		return frame_put_stream_open(buf, cap, m->id, m->proto, &m->addr, m->port);
	case STREAM_MSG_DATA:
		return frame_put_stream_data(buf, cap, m->id, m->data, m->len);
	case STREAM_MSG_FIN:
		return frame_put_stream_fin(buf, cap, m->id);
	case STREAM_MSG_RESET:
		return frame_put_stream_reset(buf, cap, m->id, m->reason);
	case STREAM_MSG_CREDIT:
		return frame_put_stream_credit(buf, cap, m->id, m->credit);
	case STREAM_MSG_DGRAM:
		return frame_put_dgram(buf, cap, m->id, &m->addr, m->port, m->data, m->len);
	case STREAM_MSG_CONNECTED:
		return frame_put_stream_connected(buf, cap, m->id);
	default:
		return 0;
	}
}

static int stream_check(const struct stream_msg *msg)
{
	if (msg->type == STREAM_MSG_DATA && msg->len > FRAME_STREAM_DATA_MAX)
		return -EMSGSIZE;
	if (msg->type == STREAM_MSG_DGRAM && msg->len > FRAME_DGRAM_MAX)
		return -EMSGSIZE;
	return msg->type > STREAM_MSG_CONNECTED ? -EINVAL : 0;
}

int tunnel_stream_send(struct tunnel *t, struct stream_msg *msg)
{
	struct session *s;
	uint8_t *at;
	size_t n;
	int ret = stream_check(msg);

	if (ret < 0)
		return ret;
	if (!msg->link && msg->type == STREAM_MSG_OPEN && t->role_kind == TUNNEL_CLIENT)
		msg->link = (struct stream_link *)client_link(t);
	s = link_session(msg->link);
	if (!s || s->state != SESSION_ESTABLISHED)
		return -ENOTCONN;
	if (!s->streams)
		return -EOPNOTSUPP;
	at = session_reserve(s, stream_frame_bound(msg));
	if (!at)
		return s->state == SESSION_ESTABLISHED ? -ENOBUFS : -ENOTCONN;
	n = stream_put(at, TUNNEL_TX_BUF_BYTES - (size_t)(at - s->tx), msg);
	if (!n)
		return -EINVAL;
	session_commit(s, n);
	if (session_tx_pending(s) >= TUNNEL_TX_FLUSH_BYTES)
		session_flush(s);
	return 0;
}

bool tunnel_stream_blocked(const struct tunnel *t, const struct stream_link *link)
{
	const struct session *s = link_session(link);

	(void)t;
	return s && session_tx_pending(s) > SESSION_TX_HIGH_WATER;
}

void tunnel_stream_flush(struct tunnel *t)
{
	struct session *s = t->sessions, *next;

	for (; s; s = next) {
		next = s->next; /* a flush that fails ends s, which leaves the list */
		if (s->streams && session_tx_pending(s))
			session_flush(s);
	}
}

static void stream_deliver(struct session *s, const struct stream_msg *msg)
{
	struct tunnel *t = s->tunnel;

	if (t->cb.stream)
		t->cb.stream(t->cb_ctx, msg);
}

void tunnel_stream_link_event(struct session *s, enum stream_msg_type type)
{
	struct stream_msg msg = { .type = type, .link = session_link(s) };

	stream_deliver(s, &msg);
}

/* Answers a STREAM_OPEN with STREAM_RESET, without ending the session. */
static void stream_reset_open(struct session *s, uint32_t id, uint8_t reason)
{
	uint8_t *at = session_reserve(s, FRAME_HEADER_LEN + FRAME_STREAM_RESET_LEN);

	if (at)
		session_commit(s, frame_put_stream_reset(at, FRAME_HEADER_LEN + FRAME_STREAM_RESET_LEN,
							 id, reason));
	session_flush(s);
}

/* A packet-only side: refuse streams cleanly, without ending the session. */
static void stream_refuse(struct session *s, const struct frame *f)
{
	s->tunnel->stats.drop_malformed++;
	if (f->type == FRAME_STREAM_OPEN)
		stream_reset_open(s, f->stream_id, STREAM_RESET_REFUSED);
}

/*
 * The reach policy on the frames that carry an address: a client's OPEN
 * and DGRAM name a destination, a server's DGRAM its source. False when
 * the frame was refused (counted, and an OPEN answered) and goes no further.
 */
static bool stream_admit(struct session *s, const struct frame *f)
{
	struct tunnel *t = s->tunnel;
	enum reach_verdict verdict;

	if (f->type != FRAME_STREAM_OPEN && f->type != FRAME_DGRAM)
		return true;
	if (t->role_kind == TUNNEL_CLIENT) {
		if (session_source_ok(s, &f->stream_addr))
			return true;
		t->stats.drop_spoofed_source++;
		return false;
	}
	verdict = session_dest_verdict(s, &f->stream_addr);
	if (verdict == REACH_OK)
		return true;
	t->stats.drop_dst[verdict]++;
	if (f->type == FRAME_STREAM_OPEN)
		stream_reset_open(s, f->stream_id, STREAM_RESET_PROHIBITED);
	return false;
}

static const enum stream_msg_type msg_of_frame[] = {
	[FRAME_STREAM_OPEN] = STREAM_MSG_OPEN,
	[FRAME_STREAM_DATA] = STREAM_MSG_DATA,
	[FRAME_STREAM_FIN] = STREAM_MSG_FIN,
	[FRAME_STREAM_RESET] = STREAM_MSG_RESET,
	[FRAME_STREAM_CREDIT] = STREAM_MSG_CREDIT,
	[FRAME_DGRAM] = STREAM_MSG_DGRAM,
	[FRAME_STREAM_CONNECTED] = STREAM_MSG_CONNECTED,
};

void tunnel_stream_receive(struct session *s, const struct frame *f)
{
	struct stream_msg msg = {
		.link = session_link(s),
		.id = f->stream_id,
		.proto = f->stream_proto,
		.reason = f->stream_reason,
		.credit = f->stream_credit,
		.addr = f->stream_addr,
		.port = f->stream_port,
		.data = f->stream_data,
		.len = f->stream_len,
	};

	if (f->type < FRAME_STREAM_OPEN || f->type > FRAME_STREAM_LAST)
		return; /* frame_parse knows no other type */
	if (!s->streams) {
		stream_refuse(s, f);
		return;
	}
	/* A client opens streams; a server that tries is not speaking our protocol. */
	if (f->type == FRAME_STREAM_OPEN && s->tunnel->role_kind == TUNNEL_CLIENT) {
		session_end(s, SESSION_END_ERROR, true, "protocol error: STREAM_OPEN from the server");
		return;
	}
	if (!stream_admit(s, f))
		return;
	msg.type = msg_of_frame[f->type];
	stream_deliver(s, &msg);
}
