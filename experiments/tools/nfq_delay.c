// SPDX-License-Identifier: MIT
/* nfq_delay: a delay line for the experiments' router: holds queued packets N ms, in order, then accepts them. */

/*
 * This kernel has no netem, so the router namespace delays with an
 * iptables NFQUEUE rule and this tool:
 *
 *   nfq_delay --queue NUM --delay-ms MS [--seconds S] [--maxlen N]
 *
 * It binds netfilter queue NUM (per network namespace) and prints
 *
 *   ready queue=NUM delay_ms=MS
 *
 * once bound; the rule must go in after that line, or packets queued to an
 * unbound queue are dropped. Every packet is held until MS after we read
 * it (at least MS after the kernel queued it), then accepted. The delay is
 * the same for every packet, so the packets leave in the order they came:
 * one NFQNL_MSG_VERDICT_BATCH with the newest id that is due accepts all
 * the older ones too, in queue order, whatever the backlog.
 *
 * Bounded: the kernel keeps at most --maxlen packets waiting for a verdict
 * (more are dropped, as a router's full buffer would), and our ring of
 * (id, due time) entries has as many slots, allocated once. Only 64 bytes
 * of each packet are copied to us (we never look at them), and GSO packets
 * are queued whole (NFQA_CFG_F_GSO), so a bulk flow costs one entry per
 * super-packet. The tool exits after --seconds (default 600) or on
 * SIGTERM/SIGINT, accepting whatever it still holds first, and prints
 *
 *   packets=N batches=N max_held=N late_max_us=N overflow=N enobufs=N seconds=S
 *
 * where late_max_us is the most a verdict came after its due time and
 * overflow counts packets released early because the ring was full
 * (never, while --maxlen matches the kernel's limit). Exit status 0, 1 on
 * an error (said on stderr), 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../nfkit/nfqsock.h"
#include "tool_args.h"

enum {
	COPY_RANGE = 64,             /* bytes of each packet we are sent: we read none */
	SLOT_SIZE = 2048,            /* one queue message: headers, attributes, 64 bytes */
	RECV_BATCH = 64,             /* messages per recvmmsg */
	DRAIN_ROUNDS = 4,            /* recvmmsg calls between two looks at the clock */
	RCVBUF = 4 << 20,
	DEFAULT_MAXLEN = 8192,       /* 20 ms of a 4 Gbit/s flow in 1500-byte packets */
	DEFAULT_SECONDS = 600,
};

struct held {
	uint32_t id;
	uint64_t due_ns;
};

struct delay_line {
	struct mnl_socket *nl;
	uint16_t queue;
	uint64_t delay_ns;
	struct held *ring;
	uint32_t cap, head, count;
	uint64_t packets, batches, overflow, enobufs, late_max_ns;
	uint32_t max_held;
	char (*slots)[SLOT_SIZE];
	struct mmsghdr msgs[RECV_BATCH];
	struct iovec iov[RECV_BATCH];
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int send_verdict(struct delay_line *d, uint32_t id)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, d->queue);

	nfq_nlmsg_verdict_put(nlh, (int)id, NF_ACCEPT);
	if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0) {
		fprintf(stderr, "nfq_delay: verdict: %s\n", strerror(errno));
		return -1;
	}
	d->batches++;
	return 0;
}

/* Accepts the held packets due by now (all of them with now = UINT64_MAX). */
static int release_due(struct delay_line *d, uint64_t now)
{
	uint32_t n = 0, last_id = 0;

	while (n < d->count) {
		const struct held *h = &d->ring[(d->head + n) % d->cap];
		if (h->due_ns > now)
			break;
		if (n == 0 && now != UINT64_MAX && now - h->due_ns > d->late_max_ns)
			d->late_max_ns = now - h->due_ns;
		last_id = h->id;
		n++;
	}
	if (n == 0)
		return 0;
	d->head = (d->head + n) % d->cap;
	d->count -= n;
	return send_verdict(d, last_id);
}

static int hold(struct delay_line *d, uint32_t id, uint64_t now)
{
	/* The kernel's maxlen should keep us from ever getting here. */
	if (d->count == d->cap) {
		if (send_verdict(d, d->ring[d->head].id) < 0)
			return -1;
		d->head = (d->head + 1) % d->cap;
		d->count--;
		d->overflow++;
	}
	d->ring[(d->head + d->count) % d->cap] = (struct held){ .id = id, .due_ns = now + d->delay_ns };
	d->count++;
	d->packets++;
	if (d->count > d->max_held)
		d->max_held = d->count;
	return 0;
}

static int take_message(const struct nlmsghdr *nlh, void *data)
{
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct delay_line *d = data;
	const struct nfqnl_msg_packet_hdr *ph;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR] ||
	    mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(*ph))
		return MNL_CB_OK; /* not a packet: nothing to hold */
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	return hold(d, ntohl(ph->packet_id), tool_mono_ns()) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
}

/*
 * Reads what is waiting, one recvmmsg at a time, until none is left or
 * DRAIN_ROUNDS are done: packets that are due must not wait behind a flood
 * of new ones (ppoll returns at once for the rest).
 */
static int drain(struct delay_line *d)
{
	int fd = mnl_socket_get_fd(d->nl);
	unsigned portid = mnl_socket_get_portid(d->nl);

	for (unsigned round = 0; round < DRAIN_ROUNDS; round++) {
		for (unsigned i = 0; i < RECV_BATCH; i++) {
			d->iov[i] = (struct iovec){ .iov_base = d->slots[i], .iov_len = SLOT_SIZE };
			d->msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &d->iov[i], .msg_iovlen = 1 } };
		}
		int n = recvmmsg(fd, d->msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			if (errno == ENOBUFS) { /* the kernel dropped messages: counted, go on */
				d->enobufs++;
				continue;
			}
			fprintf(stderr, "nfq_delay: recvmmsg: %s\n", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++)
			if (mnl_cb_run(d->slots[i], d->msgs[i].msg_len, 0, portid, take_message, d) ==
			    MNL_CB_ERROR)
				return -1;
		if (n < RECV_BATCH)
			return 0;
	}
	return 0;
}

static int run(struct delay_line *d, uint64_t end_ns)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(d->nl), .events = POLLIN };
	sigset_t wait_mask;

	sigemptyset(&wait_mask);
	while (!stop_signal) {
		uint64_t now = tool_mono_ns(), until = end_ns;
		if (now >= end_ns)
			break;
		if (d->count && d->ring[d->head].due_ns < until)
			until = d->ring[d->head].due_ns;
		uint64_t wait = until > now ? until - now : 0;
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000u),
				       .tv_nsec = (long)(wait % 1000000000u) };
		int r = ppoll(&pfd, 1, &ts, &wait_mask);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "nfq_delay: ppoll: %s\n", strerror(errno));
			return -1;
		}
		if (r > 0 && drain(d) < 0)
			return -1;
		if (release_due(d, tool_mono_ns()) < 0)
			return -1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: nfq_delay --queue NUM --delay-ms MS [--seconds S] [--maxlen N]\n");
	return 2;
}

static int parse(int argc, char **argv, double *queue, double *delay_ms, double *seconds,
		 double *maxlen)
{
	*queue = -1, *delay_ms = -1, *seconds = DEFAULT_SECONDS, *maxlen = DEFAULT_MAXLEN;
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int ret = -EINVAL;
		if (!v)
			return -EINVAL;
		if (!strcmp(argv[i], "--queue"))
			ret = tool_parse_num(v, 0, 65535, queue);
		else if (!strcmp(argv[i], "--delay-ms"))
			ret = tool_parse_num(v, 0, 10000, delay_ms);
		else if (!strcmp(argv[i], "--seconds"))
			ret = tool_parse_num(v, 1, 86400, seconds);
		else if (!strcmp(argv[i], "--maxlen"))
			ret = tool_parse_num(v, 1, 1 << 20, maxlen);
		if (ret < 0)
			return ret;
	}
	return *queue < 0 || *delay_ms < 0 ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	struct delay_line d = { 0 };
	double queue, delay_ms, seconds, maxlen;
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;
	uint64_t t0;
	int ret = 1, err;

	if (parse(argc, argv, &queue, &delay_ms, &seconds, &maxlen) < 0)
		return usage();
	/* The signals only interrupt ppoll: no race between the check and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* A 1 ms delay needs wake-ups closer than the default 50 us slack allows for. */
	prctl(PR_SET_TIMERSLACK, 1UL);

	d.queue = (uint16_t)queue;
	d.delay_ns = (uint64_t)(delay_ms * 1e6);
	d.cap = (uint32_t)maxlen;
	d.ring = calloc(d.cap, sizeof(*d.ring));
	d.slots = calloc(RECV_BATCH, SLOT_SIZE);
	if (!d.ring || !d.slots) {
		fprintf(stderr, "nfq_delay: out of memory\n");
		goto out;
	}
	const struct nfqsock_config c = {
		.copy_range = COPY_RANGE, .maxlen = d.cap, .rcvbuf = RCVBUF,
		.flags = NFQA_CFG_F_GSO, .flags_mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN,
	};
	err = nfqsock_open(&d.nl, d.queue, &c);
	if (err < 0) {
		fprintf(stderr, "nfq_delay: binding queue %u: %s\n", d.queue, strerror(-err));
		goto out;
	}
	printf("ready queue=%u delay_ms=%g\n", d.queue, delay_ms);
	fflush(stdout);
	t0 = tool_mono_ns();
	ret = run(&d, t0 + (uint64_t)(seconds * 1e9)) < 0 ? 1 : 0;
	/* What we still hold goes on, late rather than lost. */
	if (release_due(&d, UINT64_MAX) < 0)
		ret = 1;
	printf("packets=%llu batches=%llu max_held=%u late_max_us=%llu overflow=%llu enobufs=%llu "
	       "seconds=%.3f\n",
	       (unsigned long long)d.packets, (unsigned long long)d.batches, d.max_held,
	       (unsigned long long)(d.late_max_ns / 1000), (unsigned long long)d.overflow,
	       (unsigned long long)d.enobufs, (double)(tool_mono_ns() - t0) / 1e9);
out:
	if (d.nl)
		mnl_socket_close(d.nl);
	free(d.ring);
	free(d.slots);
	return ret;
}
