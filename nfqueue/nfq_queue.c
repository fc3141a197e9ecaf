// SPDX-License-Identifier: MIT
/* Netfilter queues over libmnl: binding, batched reads, one verdict per batch. */

/*
 * One netlink socket per queue, bound with NFQNL_COPY_PACKET (the whole
 * packet), as the library's examples/nf-queue.c does it. Queue numbers are
 * per network namespace; an instance takes NFQ_QUEUES_MAX consecutive ones
 * from a start derived from its pid, and moves on when the kernel says a
 * number is taken (EPERM: bound by another socket).
 *
 * A read is one recvmmsg per ready socket into PKT_BATCH_MAX slots
 * allocated at open; the batch points into those slots, nothing is copied.
 * Every packet we take gets the same verdict, NF_DROP ("steal"), so one
 * NFQNL_MSG_VERDICT_BATCH with the last id read settles the whole read:
 * the packet is ours by then, the kernel's copy can go.
 *
 * With NFQA_CFG_F_GSO the kernel hands over a GSO packet whole (up to 64
 * KiB) and leaves partial checksums partial, saying so in NFQA_SKB_INFO;
 * nfq_offload_from_skbinfo turns that into struct pkt_offload, and the
 * tunnel segments where the peer cannot take it. Without the flag the
 * kernel segments and checksums before queueing.
 *
 * A receive buffer that overflows makes the kernel drop (or, fail-open,
 * accept) the packet and report ENOBUFS on our next read: counted in
 * capture_drops, never fatal.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../nfkit/nfqsock.h"
#include "../base/offload.h"
#include "nfq.h"

enum {
	NFQ_COPY_RANGE = 0xffff,      /* the kernel caps it at 0xffff - NLA_HDRLEN */
	/* A whole 64 KiB packet plus the message around it (attributes: < 1 KiB). */
	NFQ_SLOT_SIZE = 65536 + 4096,
	NFQ_RCVBUF = 8 << 20,         /* about 5000 MTU packets in flight */
	NFQ_QUEUE_MAXLEN = 4096,      /* packets waiting for a verdict (default 1024) */
	NFQ_BIND_TRIES = 64,
	NFQ_RECV_RETRIES = 4,         /* EINTR / ENOBUFS before we give up this round */
};

/* ---- binding ---- */

static int open_queue(struct mnl_socket **out, uint16_t num, const struct nfq_queue_params *p)
{
	const struct nfqsock_config c = {
		.copy_range = NFQ_COPY_RANGE,
		.maxlen = NFQ_QUEUE_MAXLEN,
		.flags = (p->gso ? NFQA_CFG_F_GSO : 0) | (p->fail_open ? NFQA_CFG_F_FAIL_OPEN : 0),
		.flags_mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN,
		.rcvbuf = NFQ_RCVBUF,
	};

	return nfqsock_open(out, num, &c);
}

static void close_sockets(struct nfq_queues *q)
{
	for (unsigned i = 0; i < NFQ_QUEUES_MAX; i++) {
		if (q->socks[i])
			mnl_socket_close(q->socks[i]);
		q->socks[i] = NULL;
	}
}

/* Binds count consecutive queues from first; -EPERM/-EBUSY: one is taken. */
static int bind_range(struct nfq_queues *q, uint16_t first, const struct nfq_queue_params *p)
{
	for (unsigned i = 0; i < p->count; i++) {
		int ret = open_queue(&q->socks[i], (uint16_t)(first + i), p);
		if (ret < 0) {
			close_sockets(q);
			return ret;
		}
	}
	q->first = first;
	return 0;
}

static int bind_queues(struct nfq_queues *q, const struct nfq_queue_params *p, char *err,
		       size_t err_len)
{
	/* 4096 blocks of 16 cover the 16-bit queue numbers. */
	unsigned start = (unsigned)getpid() % 4096u;
	int ret = -EINVAL;

	for (unsigned i = 0; i < NFQ_BIND_TRIES; i++) {
		uint16_t first = (uint16_t)(((start + i) % 4096u) * NFQ_QUEUES_MAX);
		ret = bind_range(q, first, p);
		if (ret != -EPERM && ret != -EBUSY)
			break;
	}
	if (ret == -EPERM || ret == -EBUSY)
		snprintf(err, err_len, "binding a netfilter queue: %s after %d tries "
			 "(all taken, or no CAP_NET_ADMIN)", strerror(-ret), NFQ_BIND_TRIES);
	else if (ret < 0)
		snprintf(err, err_len, "binding netfilter queue: %s%s", strerror(-ret),
			 ret == -EINVAL ? " (the kernel refused copy mode or flags)" : "");
	return ret;
}

static int alloc_ring(struct nfq_queues *q)
{
	q->ring = malloc((size_t)PKT_BATCH_MAX * NFQ_SLOT_SIZE);
	q->msgs = calloc(PKT_BATCH_MAX, sizeof(*q->msgs));
	q->iov = calloc(PKT_BATCH_MAX, sizeof(*q->iov));
	q->from = calloc(PKT_BATCH_MAX, sizeof(*q->from));
	if (!q->ring || !q->msgs || !q->iov || !q->from)
		return -ENOMEM;
	for (unsigned i = 0; i < PKT_BATCH_MAX; i++)
		q->iov[i] = (struct iovec){ .iov_base = q->ring + (size_t)i * NFQ_SLOT_SIZE,
					    .iov_len = NFQ_SLOT_SIZE };
	return 0;
}

int nfq_queues_open(struct nfq_queues *q, const struct nfq_queue_params *params, char *err,
		    size_t err_len)
{
	int ret;

	*q = (struct nfq_queues){ .count = params->count, .mtu = params->mtu };
	if (q->count < 1 || q->count > NFQ_QUEUES_MAX) {
		snprintf(err, err_len, "--queues %u: 1 to %d", q->count, NFQ_QUEUES_MAX);
		return -EINVAL;
	}
	ret = alloc_ring(q);
	if (ret < 0) {
		snprintf(err, err_len, "nfqueue receive ring: %s", strerror(-ret));
		goto err_free;
	}
	ret = bind_queues(q, params, err, err_len);
	if (ret < 0)
		goto err_free;
	return 0;

err_free:
	nfq_queues_close(q);
	return ret;
}

unsigned nfq_queues_fds(const struct nfq_queues *q, int *fds)
{
	for (unsigned i = 0; i < q->count; i++)
		fds[i] = mnl_socket_get_fd(q->socks[i]);
	return q->count;
}

void nfq_queues_close(struct nfq_queues *q)
{
	/* Packets still queued are dropped when their instance goes: fail-closed. */
	close_sockets(q);
	free(q->ring);
	free(q->msgs);
	free(q->iov);
	free(q->from);
	q->ring = NULL;
	q->msgs = NULL;
	q->iov = NULL;
	q->from = NULL;
}

/* ---- offload metadata ---- */

bool nfq_offload_from_skbinfo(struct pkt *p, uint32_t skbinfo, unsigned mtu)
{
	return offload_describe(p, skbinfo & NFQA_SKB_CSUMNOTREADY, skbinfo & NFQA_SKB_GSO, mtu);
}

/* ---- reading ---- */

static bool is_packet_msg(const struct nlmsghdr *nlh)
{
	return NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_QUEUE &&
	       NFNL_MSG_TYPE(nlh->nlmsg_type) == NFQNL_MSG_PACKET;
}

struct read_state {
	struct pkt_batch *batch;
	struct frontend_stats *st;
	uint32_t last_id;
	bool have_id;
};

/* The whole packet is there: a copy beyond 0xffff bytes comes truncated. */
static bool payload_whole(struct nlattr *const *attr)
{
	return attr[NFQA_PAYLOAD] &&
	       (!attr[NFQA_CAP_LEN] || ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN])) <=
					       mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]));
}

/* One queued packet: into the batch, or counted as dropped. */
static void take_packet(struct nfq_queues *q, const struct nlmsghdr *nlh, struct read_state *rs)
{
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	const struct nfqnl_msg_packet_hdr *ph;
	struct pkt *p;
	uint32_t skbinfo = 0;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) {
		rs->st->capture_drops++;
		return;
	}
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	rs->last_id = ntohl(ph->packet_id);
	rs->have_id = true;
	/* No room cannot happen (one packet per datagram, as the kernel sends them). */
	if (rs->batch->count == PKT_BATCH_MAX || !payload_whole(attr)) {
		rs->st->capture_drops++;
		return;
	}
	p = &rs->batch->pkts[rs->batch->count];
	p->data = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
	p->len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	if (attr[NFQA_SKB_INFO])
		skbinfo = ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO]));
	if (p->len < 1 || ((p->data[0] >> 4) != 4 && (p->data[0] >> 4) != 6) ||
	    !nfq_offload_from_skbinfo(p, skbinfo, q->mtu)) {
		q->unsupported++;
		rs->st->capture_drops++;
		return;
	}
	rs->st->captured_packets++;
	rs->st->captured_bytes += p->len;
	rs->batch->count++;
}

static void parse_datagram(struct nfq_queues *q, unsigned slot, struct read_state *rs)
{
	const struct mmsghdr *m = &q->msgs[slot];
	const struct nlmsghdr *nlh = q->iov[slot].iov_base;
	int len = (int)m->msg_len;

	/* Only the kernel (port 0) speaks for a queue; a truncated message has no end. */
	if (q->from[slot].nl_pid != 0 || (m->msg_hdr.msg_flags & MSG_TRUNC)) {
		rs->st->capture_drops++;
		return;
	}
	for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
		if (nlh->nlmsg_type == NLMSG_ERROR)
			q->verdict_errors++; /* the kernel refused a verdict of ours */
		else if (is_packet_msg(nlh))
			take_packet(q, nlh, rs);
	}
}

/* The batch verdict: NF_DROP for every packet up to and including id. */
static void send_verdict(struct nfq_queues *q, unsigned idx, uint32_t id)
{
	char buf[256];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, q->first + idx);

	nfq_nlmsg_verdict_put(nlh, (int)id, NF_DROP);
	/* Lost: the next batch verdict covers these ids too. */
	if (mnl_socket_sendto(q->socks[idx], nlh, nlh->nlmsg_len) < 0)
		q->verdict_errors++;
}

static void prepare_slots(struct nfq_queues *q, unsigned from, unsigned count)
{
	for (unsigned i = from; i < from + count; i++)
		q->msgs[i] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = &q->from[i],
			.msg_namelen = sizeof(q->from[i]),
			.msg_iov = &q->iov[i],
			.msg_iovlen = 1,
		} };
}

/* recvmmsg into the free slots: the count, 0 when empty, -errno when broken. */
static int receive(struct nfq_queues *q, int fd, unsigned slots, struct frontend_stats *st)
{
	unsigned want = PKT_BATCH_MAX - slots;

	for (int i = 0; i < NFQ_RECV_RETRIES; i++) {
		int n;

		prepare_slots(q, slots, want);
		n = recvmmsg(fd, q->msgs + slots, want, MSG_DONTWAIT, NULL);
		if (n >= 0)
			return n;
		if (errno == EAGAIN)
			return 0;
		if (errno == ENOBUFS)
			st->capture_drops++; /* at least one; the kernel does not say how many */
		else if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int read_queue(struct nfq_queues *q, unsigned idx, unsigned *slots, struct read_state *rs)
{
	int n = receive(q, mnl_socket_get_fd(q->socks[idx]), *slots, rs->st);

	if (n <= 0)
		return n;
	rs->have_id = false;
	for (unsigned i = *slots; i < *slots + (unsigned)n; i++)
		parse_datagram(q, i, rs);
	*slots += (unsigned)n;
	if (rs->have_id)
		send_verdict(q, idx, rs->last_id);
	return n;
}

static int read_ready(struct nfq_queues *q, uint32_t *ready, struct read_state *rs, unsigned *slots)
{
	q->next++;
	for (unsigned k = 0; k < q->count && *slots < PKT_BATCH_MAX; k++) {
		/* Rotate the start so that one busy queue cannot starve the rest. */
		unsigned idx = (q->next + k) % q->count, want = PKT_BATCH_MAX - *slots;
		int ret;

		if (!(*ready & (1u << idx)))
			continue;
		ret = read_queue(q, idx, slots, rs);
		if (ret < 0)
			return ret;
		/* Read dry: the loop reports it again when more arrives. */
		if ((unsigned)ret < want)
			*ready &= ~(1u << idx);
	}
	return 0;
}

int nfq_queues_read(struct nfq_queues *q, uint32_t *ready, struct pkt_batch *batch,
		    struct frontend_stats *st, char *err, size_t err_len)
{
	struct read_state rs = { .batch = batch, .st = st };
	unsigned slots = 0;
	int ret;

	batch->count = 0;
	if (q->count == 1)
		ret = read_queue(q, 0, &slots, &rs);
	else
		ret = read_ready(q, ready, &rs, &slots);
	if (ret < 0) {
		snprintf(err, err_len, "reading netfilter queue: %s", strerror(-ret));
		/* What we already hold is good; the error returns next call. */
		return batch->count ? (int)batch->count : ret;
	}
	return (int)batch->count;
}
