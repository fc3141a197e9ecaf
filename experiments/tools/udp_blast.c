// SPDX-License-Identifier: MIT
/* udp_blast: a paced sendmmsg UDP generator and a recvmmsg sink that counts loss and reordering. */

/*
 * iperf3 -u sends one datagram per syscall and tops out below 100k
 * packets/s on this kind of machine, so a packet-rate test with it
 * measures iperf3. This pair moves up to BATCH datagrams per syscall:
 *
 *   udp_blast sink --listen ADDR:PORT [--timeout S]
 *   udp_blast send --connect ADDR:PORT --rate PPS --seconds S [--size N]
 *
 * The sender paces to --rate packets/s, split over --threads flows (a
 * socket and a sequence each, for a path that one core cannot fill):
 * what is due is sent in one sendmmsg of up to BATCH, and it sleeps in
 * between, waking for a whole batch when one is due within BURST_NS. It
 * numbers every datagram, and after --seconds sends END_MARKERS end
 * datagrams that carry the count. It prints
 *
 *   sent=N seconds=S rate=R
 *
 * The sink counts datagrams by sequence number (a bitmap: duplicates are
 * told apart) until an end datagram plus DRAIN_MS, or IDLE_S without any
 * datagram after the first, or --timeout; it prints
 *
 *   received=N lost=N reordered=N duplicates=N expected=N seconds=S
 *
 * where expected is the count an end datagram gave (else the flows'
 * highest sequence + 1, summed) and reordered counts datagrams that
 * arrived after a higher sequence number of their flow. Every wait is bounded. Exit status 0, 1 on an
 * error (said on stderr), 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool_args.h"

enum {
	BATCH = 64,                 /* datagrams per sendmmsg / recvmmsg */
	MIN_SIZE = 24, MAX_SIZE = 1472,
	MAX_COUNT = 1 << 27,        /* datagrams one run may send: a 16 MiB bitmap */
	FLOWS_MAX = 16,             /* --threads: one flow (socket, sequence) each */
	FLOW_SPAN = MAX_COUNT / FLOWS_MAX,
	END_MARKERS = 5,
	DRAIN_MS = 200,             /* the sink waits this long after an end datagram */
	IDLE_S = 2,                 /* ... or this long without a datagram after the first */
	SOCK_BUF = 16 << 20,
	BURST_NS = 200000,          /* datagrams due this close together go in one sendmmsg */
	DEFAULT_TIMEOUT_S = 30,
};

static const uint64_t END_SEQ = UINT64_MAX;

struct blast_opts {
	bool sink;
	struct sockaddr_in addr;
	double rate, seconds;
	size_t size;
	int timeout_s;
	unsigned threads;
};

/* What every datagram starts with; the rest of the payload is zero. */
struct blast_hdr {
	uint64_t seq;   /* END_SEQ: an end datagram */
	uint64_t count; /* an end datagram: how many were sent, all flows */
	uint32_t flow;  /* the sending thread */
	uint32_t zero;
};

struct sink_state {
	uint8_t *seen;              /* bitmap over flow * FLOW_SPAN + seq */
	uint64_t received, reordered, duplicates, expected;
	uint64_t highest[FLOWS_MAX]; /* + 1: 0 when the flow has sent nothing yet */
	bool ended;
};

/* One sending thread: its flow, its share of the rate, what it did. */
struct sender {
	pthread_t thread;
	const struct blast_opts *o;
	uint32_t flow;
	uint64_t total, sent;
	int err;                    /* errno of a failure, else 0 */
};


static void usage(FILE *out)
{
	fputs("usage: udp_blast sink --listen ADDR:PORT [--timeout S]\n"
	      "       udp_blast send --connect ADDR:PORT --rate PPS --seconds S [--size N] [--threads N]\n", out);
}

/* ---- arguments ---- */



static int parse_opts(int argc, char **argv, struct blast_opts *o)
{
	bool have_addr = false;
	double v;

	*o = (struct blast_opts){ .size = 64, .timeout_s = DEFAULT_TIMEOUT_S, .threads = 1 };
	if (argc < 2 || (strcmp(argv[1], "sink") && strcmp(argv[1], "send")))
		return -1;
	o->sink = strcmp(argv[1], "sink") == 0;
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *val = argv[i + 1];
		int bad = 0;

		if (!strcmp(k, o->sink ? "--listen" : "--connect"))
			bad = tool_parse_addr(val, &o->addr), have_addr = true;
		else if (!strcmp(k, "--rate") && !o->sink)
			bad = tool_parse_num(val, 1, 1e8, &o->rate);
		else if (!strcmp(k, "--seconds") && !o->sink)
			bad = tool_parse_num(val, 0.01, 3600, &o->seconds);
		else if (!strcmp(k, "--size") && !o->sink)
			bad = tool_parse_num(val, MIN_SIZE, MAX_SIZE, &v), o->size = (size_t)v;
		else if (!strcmp(k, "--threads") && !o->sink)
			bad = tool_parse_num(val, 1, FLOWS_MAX, &v), o->threads = (unsigned)v;
		else if (!strcmp(k, "--timeout"))
			bad = tool_parse_num(val, 1, 3600, &v), o->timeout_s = (int)v;
		else
			return -1;
		if (bad)
			return -1;
	}
	if (!have_addr || (argc % 2) != 0)
		return -1;
	if (!o->sink && (o->rate <= 0 || o->seconds <= 0 || o->rate * o->seconds / o->threads > FLOW_SPAN - BATCH))
		return -1;
	return 0;
}

static int udp_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), size = SOCK_BUF;

	if (fd < 0)
		return -1;
	/* FORCE needs CAP_NET_ADMIN, which the experiments have; else what rmem_max allows. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	return fd;
}

/* ---- sender ---- */

/* Sends n datagrams from seq on; returns how many the kernel took, -1 on an error. */
static int send_batch(int fd, uint8_t (*bufs)[MAX_SIZE], struct mmsghdr *msgs, unsigned n,
		      uint32_t flow, uint64_t seq)
{
	for (unsigned i = 0; i < n; i++) {
		struct blast_hdr h = { .seq = seq + i, .flow = flow };

		memcpy(bufs[i], &h, sizeof(h));
	}
	for (;;) {
		int sent = sendmmsg(fd, msgs, n, 0);

		if (sent >= 0 || errno != EINTR)
			return sent;
	}
}

/*
 * Sleeps until t_ns, never spins: on two cores a spinning sender would
 * take the CPU from the tunnel it measures. Sleeping late only makes the
 * next batch larger (everything due is sent), never the rate lower.
 */
static void wait_until(uint64_t t_ns)
{
	uint64_t now = tool_mono_ns();

	if (t_ns > now) {
		uint64_t d = t_ns - now;
		struct timespec ts = { .tv_sec = (time_t)(d / 1000000000u), .tv_nsec = (long)(d % 1000000000u) };

		nanosleep(&ts, NULL);
	}
}

static void send_end(int fd, uint64_t count, size_t size)
{
	uint8_t buf[MAX_SIZE] = { 0 };
	struct blast_hdr h = { .seq = END_SEQ, .count = count };
	struct timespec gap = { .tv_nsec = 10 * 1000000 };

	memcpy(buf, &h, sizeof(h));
	for (int i = 0; i < END_MARKERS; i++) {
		(void)send(fd, buf, size, 0);
		nanosleep(&gap, NULL);
	}
}

static int flow_socket(const struct blast_opts *o)
{
	int fd = udp_socket();

	if (fd >= 0 && connect(fd, (struct sockaddr *)&o->addr, sizeof(o->addr)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* One flow: paced to its share of the rate, each datagram due at t0 + seq * interval. */
static void *send_flow(void *arg)
{
	struct sender *f = arg;
	uint8_t (*bufs)[MAX_SIZE] = calloc(BATCH, MAX_SIZE);
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	double interval_ns = 1e9 * f->o->threads / f->o->rate;
	uint64_t t0 = tool_mono_ns(), end_ns, seq = 0;
	int fd = flow_socket(f->o);

	if (!bufs || fd < 0) {
		f->err = bufs ? errno : ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = f->o->size };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	/* A slow sender stops at twice its time: the count sent is what it reports. */
	end_ns = t0 + (uint64_t)(2e9 * f->o->seconds) + 1000000000u;
	while (seq < f->total && tool_mono_ns() < end_ns) {
		uint64_t due = (uint64_t)((double)(tool_mono_ns() - t0) / interval_ns) + 1;
		unsigned n = (unsigned)(due > seq ? (due - seq < BATCH ? due - seq : BATCH) : 0);
		int sent;

		if (n == 0) {
			/* Wake for a batch when one is due within BURST_NS, else for the next datagram. */
			uint64_t next = t0 + (uint64_t)((double)seq * interval_ns);
			uint64_t full = t0 + (uint64_t)((double)(seq + BATCH - 1) * interval_ns);

			wait_until(full < next + BURST_NS ? full : next);
			continue;
		}
		if (n > f->total - seq)
			n = (unsigned)(f->total - seq);
		sent = send_batch(fd, bufs, msgs, n, f->flow, seq);
		if (sent < 0 && errno != ENOBUFS && errno != EAGAIN) {
			f->err = errno;
			break;
		}
		/* ENOBUFS: a full qdisc dropped the first; it counts as sent and lost. */
		seq += sent > 0 ? (uint64_t)sent : 1;
	}
	f->sent = seq;
out:
	if (fd >= 0)
		close(fd);
	free(bufs);
	return NULL;
}

static int run_send(const struct blast_opts *o)
{
	struct sender flows[FLOWS_MAX] = { 0 };
	uint64_t total = (uint64_t)(o->rate * o->seconds + 0.5), sent = 0, t0 = tool_mono_ns();
	unsigned started = 0;
	int fd = flow_socket(o), err = 0;
	double secs;

	if (fd < 0) {
		perror("udp_blast: socket");
		return 1;
	}
	for (unsigned t = 0; t < o->threads; t++) {
		flows[t] = (struct sender){ .o = o, .flow = t,
					    .total = total / o->threads + (t < total % o->threads) };
		if (pthread_create(&flows[t].thread, NULL, send_flow, &flows[t]) != 0)
			break;
		started++;
	}
	for (unsigned t = 0; t < started; t++) {
		pthread_join(flows[t].thread, NULL);
		sent += flows[t].sent;
		err = err ? err : flows[t].err;
	}
	secs = (double)(tool_mono_ns() - t0) / 1e9;
	send_end(fd, sent, o->size);
	close(fd);
	if (started < o->threads || err) {
		fprintf(stderr, "udp_blast: %s\n", err ? strerror(err) : "cannot start a thread");
		return 1;
	}
	printf("sent=%llu seconds=%.3f rate=%.0f\n", (unsigned long long)sent, secs,
	       secs > 0 ? (double)sent / secs : 0);
	return 0;
}

/* ---- sink ---- */

static void sink_count(struct sink_state *s, const uint8_t *data, size_t len)
{
	struct blast_hdr h;
	uint64_t bit;

	if (len < sizeof(h))
		return; /* not ours */
	memcpy(&h, data, sizeof(h));
	if (h.seq == END_SEQ) {
		s->ended = true;
		s->expected = h.count;
		return;
	}
	if (h.flow >= FLOWS_MAX || h.seq >= FLOW_SPAN)
		return;
	bit = (uint64_t)h.flow * FLOW_SPAN + h.seq;
	if (s->seen[bit / 8] & (1u << (bit % 8))) {
		s->duplicates++;
		return;
	}
	s->seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
	s->received++;
	/* Reordering within a flow: the flows' own orders are independent. */
	if (h.seq + 1 < s->highest[h.flow])
		s->reordered++;
	else
		s->highest[h.flow] = h.seq + 1;
}

/* How long the sink may still wait, in ms; 0 when it is done. */
static int sink_wait_ms(const struct sink_state *s, uint64_t now, uint64_t deadline,
			uint64_t last, uint64_t ended_at)
{
	uint64_t until = deadline;

	if (s->ended && ended_at + DRAIN_MS * 1000000ull < until)
		until = ended_at + DRAIN_MS * 1000000ull;
	if (last && last + IDLE_S * 1000000000ull < until)
		until = last + IDLE_S * 1000000000ull;
	return now >= until ? 0 : (int)((until - now) / 1000000u) + 1;
}

static int sink_loop(int fd, struct sink_state *s, int timeout_s, uint64_t *first, uint64_t *last)
{
	static uint8_t bufs[BATCH][MAX_SIZE];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t deadline = tool_mono_ns() + (uint64_t)timeout_s * 1000000000u, ended_at = 0;

	for (unsigned i = 0; i < BATCH; i++)
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = MAX_SIZE };
	for (;;) {
		uint64_t now = tool_mono_ns();
		int ms = sink_wait_ms(s, now, deadline, *last, ended_at), got;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (ms == 0)
			return 0;
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
			return -1;
		for (unsigned i = 0; i < BATCH; i++)
			msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		got = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (got < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		for (int i = 0; i < got; i++) {
			bool was_ended = s->ended;

			sink_count(s, bufs[i], msgs[i].msg_len);
			if (!was_ended && s->ended)
				ended_at = tool_mono_ns();
		}
		if (got > 0) {
			*last = tool_mono_ns();
			if (!*first)
				*first = *last;
		}
	}
}

static int run_sink(const struct blast_opts *o)
{
	struct sink_state s = { .seen = calloc(MAX_COUNT / 8, 1) };
	uint64_t first = 0, last = 0, expected;
	int fd = udp_socket(), ret = 1;

	if (!s.seen || fd < 0 || bind(fd, (struct sockaddr *)&o->addr, sizeof(o->addr)) < 0) {
		perror("udp_blast: sink");
		goto out;
	}
	if (sink_loop(fd, &s, o->timeout_s, &first, &last) < 0) {
		perror("udp_blast: recvmmsg");
		goto out;
	}
	expected = s.expected;
	for (unsigned f = 0; !s.ended && f < FLOWS_MAX; f++)
		expected += s.highest[f];
	printf("received=%llu lost=%llu reordered=%llu duplicates=%llu expected=%llu seconds=%.3f\n",
	       (unsigned long long)s.received,
	       (unsigned long long)(expected > s.received ? expected - s.received : 0),
	       (unsigned long long)s.reordered, (unsigned long long)s.duplicates,
	       (unsigned long long)expected, (double)(last - first) / 1e9);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(s.seen);
	return ret;
}

int main(int argc, char **argv)
{
	struct blast_opts o;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (parse_opts(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	return o.sink ? run_sink(&o) : run_send(&o);
}
