// SPDX-License-Identifier: MIT
/* The client's SYN hold: the application's connect() waits for the exit's, and fails as it did. */

/*
 * REDIRECT alone completes the application's handshake at our listener
 * before the far end is asked, so a closed port can only show up later
 * as a reset. Instead, mangle OUTPUT queues each SYN toward the routes
 * (px_rules.c) and we hold it:
 *
 *   SYN queued     -> STREAM_OPEN now; the conn exists, fd -1 ("pending")
 *   STREAM_CONNECTED -> verdict ACCEPT: the SYN goes on through nat
 *                     REDIRECT to the listener; its accept() finds the
 *                     pending conn by the 4-tuple (px_client.c)
 *   STREAM_RESET   -> verdict ACCEPT with PX_MARK_REFUSE or
 *                     PX_MARK_UNREACH: nat lets it be, filter OUTPUT
 *                     REJECTs it with a TCP reset (ECONNREFUSED) or ICMP
 *                     host unreachable (EHOSTUNREACH)
 *
 * The kernel builds the reset and the ICMP error (REJECT), with the
 * original destination as their source. A retransmitted SYN of a held one
 * is dropped (the first still waits); data the exit sends before the
 * accept waits in the conn's ring, as at the exit before its connect.
 * The cost is one tunnel round trip more before connect() returns: the
 * price of the far end's answer, which a packet tunnel pays too.
 *
 * Without a netfilter queue (no NFQUEUE target, no CAP_NET_ADMIN) the
 * client works as before, and a refusal arrives as a reset after connect.
 */

#include <netinet/in.h> /* before the linux/ headers, whose struct in_addr it then hides */

#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "../nfkit/nfqsock.h"
#include "px.h"

enum {
	PX_SYN_RCVBUF = 1 << 20,   /* a burst of a few thousand SYNs */
	PX_SYN_MAXLEN = 4096,      /* held SYNs: PX_STREAMS_PER_CLIENT */
	PX_SYN_BUF = 8192,         /* one netlink message: a SYN and its attributes */
	TCP_FLAG_SYN = 0x02,
	TCP_FLAG_ACK = 0x10,
};

struct syn_tuple {
	struct ip_addr src, dst;
	uint16_t sport, dport;
};

/* ---- the queue ---- */

static void syn_on_io(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	px_syn_read(io->arg);
}

int px_syn_open(struct px_syn *syn, struct proxy *px, char *err, size_t err_len)
{
	const struct nfqsock_config c = {
		.copy_range = PX_SYN_COPY, .maxlen = PX_SYN_MAXLEN, .rcvbuf = PX_SYN_RCVBUF,
	};
	int ret = -EBUSY;

	syn->buf = malloc(PX_SYN_BUF);
	if (!syn->buf) {
		snprintf(err, err_len, "SYN hold: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < PX_SYN_QUEUE_TRIES && (ret == -EBUSY || ret == -EPERM); i++) {
		syn->queue = (uint16_t)(PX_SYN_QUEUE + i);
		ret = nfqsock_open(&syn->nl, syn->queue, &c);
	}
	if (ret == 0) {
		px_watch_init(&syn->w, mnl_socket_get_fd(syn->nl), syn_on_io, px);
		ret = px_watch_add(px, &syn->w, EPOLLIN);
	}
	if (ret < 0) {
		snprintf(err, err_len, "SYN hold: netfilter queue %u..%u: %s", PX_SYN_QUEUE,
			 PX_SYN_QUEUE + PX_SYN_QUEUE_TRIES - 1, strerror(-ret));
		px_syn_close(syn);
		return ret;
	}
	syn->on = true;
	return 0;
}

void px_syn_close(struct px_syn *syn)
{
	if (syn->nl)
		mnl_socket_close(syn->nl); /* the kernel drops what is still held */
	syn->nl = NULL;
	free(syn->buf);
	syn->buf = NULL;
	syn->on = false;
}

static void verdict(struct px_syn *syn, uint32_t packet, int what, uint32_t mark)
{
	char buf[256];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, syn->queue);

	nfq_nlmsg_verdict_put(nlh, packet, what);
	if (mark)
		nfq_nlmsg_verdict_put_mark(nlh, mark);
	/*
	 * Fails only without memory; the SYN then stays queued until we
	 * close the queue, and the application retries or times out.
	 */
	mnl_socket_sendto(syn->nl, nlh, nlh->nlmsg_len);
}

/* A destination the exit may not reach is unreachable from here, as ICMP "prohibited" makes it. */
static uint32_t mark_of_reason(uint8_t reason)
{
	return reason == STREAM_RESET_UNREACHABLE || reason == STREAM_RESET_TIMEOUT ||
			       reason == STREAM_RESET_PROHIBITED
		       ? PX_MARK_UNREACH : PX_MARK_REFUSE;
}

/* ---- pending conns ---- */

static void pending_add(struct px_syn *syn, struct px_conn *c)
{
	c->pending = true;
	c->pprev = NULL;
	c->pnext = syn->pending;
	if (c->pnext)
		c->pnext->pprev = c;
	syn->pending = c;
}

void px_syn_forget(struct px_conn *c, uint8_t reason)
{
	struct px_syn *syn = &c->px->syn;

	if (!c->pending)
		return;
	if (c->held && syn->nl)
		verdict(syn, c->syn_packet, NF_ACCEPT, mark_of_reason(reason));
	c->held = false;
	c->pending = false;
	if (c->pprev)
		c->pprev->pnext = c->pnext;
	else
		syn->pending = c->pnext;
	if (c->pnext)
		c->pnext->pprev = c->pprev;
}

void px_syn_connected(struct px_conn *c)
{
	if (!c->held)
		return;
	verdict(&c->px->syn, c->syn_packet, NF_ACCEPT, 0);
	c->held = false;
	c->last_ms = px_now_ms(); /* the accept wait starts */
}

static bool addr_same(const struct ip_addr *a, const struct ip_addr *b)
{
	return a->family == b->family &&
	       memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

/*
 * Pending conns live from a SYN to its accept(), a loopback round trip
 * after the exit's answer: few at any time, so a scan, not a second hash.
 */
struct px_conn *px_syn_match(struct proxy *px, const struct ip_addr *app, uint16_t app_port,
			     const struct ip_addr *dst, uint16_t dst_port)
{
	for (struct px_conn *c = px->syn.pending; c; c = c->pnext)
		if (c->app_port == app_port && c->dst_port == dst_port &&
		    addr_same(&c->app_addr, app) && addr_same(&c->dst_addr, dst))
			return c;
	return NULL;
}

void px_syn_tick(struct proxy *px, uint64_t now)
{
	struct px_conn *c = px->syn.pending, *next;

	for (; c; c = next) {
		next = c->pnext; /* a timeout frees c */
		if (c->held && now - c->started_ms >= PX_SYN_WAIT_MS) {
			px_syn_forget(c, STREAM_RESET_TIMEOUT);
			px_conn_reset(c, STREAM_RESET_TIMEOUT);
		} else if (!c->held && now - c->last_ms >= PX_ACCEPT_WAIT_MS) {
			px_conn_reset(c, STREAM_RESET_TIMEOUT); /* the SYN went, no accept came */
		}
	}
}

/* ---- reading SYNs ---- */

static bool parse_tcp(const uint8_t *tcp, size_t len, struct syn_tuple *t)
{
	if (len < 14)
		return false;
	t->sport = (uint16_t)(tcp[0] << 8 | tcp[1]);
	t->dport = (uint16_t)(tcp[2] << 8 | tcp[3]);
	return (tcp[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* An IPv4 or IPv6 (no extension headers) TCP SYN: its tuple. */
static bool parse_syn(const uint8_t *p, size_t len, struct syn_tuple *t)
{
	memset(t, 0, sizeof(*t));
	if (len >= 20 && p[0] >> 4 == 4) {
		size_t ihl = (size_t)(p[0] & 0x0f) * 4;

		if (ihl < 20 || len < ihl || p[9] != IPPROTO_TCP || ((p[6] & 0x1f) | p[7]))
			return false;
		t->src.family = t->dst.family = AF_INET;
		memcpy(t->src.bytes, p + 12, 4);
		memcpy(t->dst.bytes, p + 16, 4);
		return parse_tcp(p + ihl, len - ihl, t);
	}
	if (len >= 40 && p[0] >> 4 == 6 && p[6] == IPPROTO_TCP) {
		t->src.family = t->dst.family = AF_INET6;
		memcpy(t->src.bytes, p + 8, 16);
		memcpy(t->dst.bytes, p + 24, 16);
		return parse_tcp(p + 40, len - 40, t);
	}
	return false;
}

static void hold(struct proxy *px, uint32_t packet, const struct syn_tuple *t)
{
	struct px_conn *c = px_syn_match(px, &t->src, t->sport, &t->dst, t->dport);
	uint8_t reason = 0;

	if (c) {
		/* A retransmission: the first SYN still waits, or has passed already. */
		verdict(&px->syn, packet, c->held ? NF_DROP : NF_ACCEPT, 0);
		return;
	}
	c = px_client_open(px, -1, &t->dst, t->dport, &reason);
	if (!c) {
		verdict(&px->syn, packet, NF_ACCEPT, mark_of_reason(reason));
		return;
	}
	c->app_addr = t->src;
	c->app_port = t->sport;
	c->dst_addr = t->dst;
	c->dst_port = t->dport;
	c->syn_packet = packet;
	c->held = true;
	pending_add(&px->syn, c);
}

static int on_queued(const struct nlmsghdr *nlh, void *data)
{
	struct proxy *px = data;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	struct syn_tuple t;
	uint32_t packet;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	packet = ntohl(ph->packet_id);
	if (!attr[NFQA_PAYLOAD] ||
	    !parse_syn(mnl_attr_get_payload(attr[NFQA_PAYLOAD]),
		       mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]), &t)) {
		/* Not a SYN we can key (IPv6 extension headers): REDIRECT's old path. */
		verdict(&px->syn, packet, NF_ACCEPT, 0);
		return MNL_CB_OK;
	}
	hold(px, packet, &t);
	return MNL_CB_OK;
}

void px_syn_read(struct proxy *px)
{
	struct px_syn *syn = &px->syn;

	for (int i = 0; i < PX_SYNS_PER_EVENT && syn->nl; i++) {
		ssize_t n = mnl_socket_recvfrom(syn->nl, syn->buf, PX_SYN_BUF);

		if (n < 0) {
			/* ENOBUFS: the queue overflowed and dropped SYNs; applications retry. */
			if (errno == ENOBUFS)
				continue;
			return;
		}
		mnl_cb_run(syn->buf, (size_t)n, 0, mnl_socket_get_portid(syn->nl), on_queued, px);
	}
}
