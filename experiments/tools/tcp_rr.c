// SPDX-License-Identifier: MIT
/* tcp_rr: TCP request/response rate and latency over one connection, netperf TCP_RR style. */

/*
 * netperf, the usual tool for this, is not in Debian's main archive, so the
 * experiments carry this small one. The client sends a request of --size
 * bytes, waits for the whole response of the same size, and repeats on one
 * TCP connection (TCP_NODELAY at both ends) for --seconds; the server
 * echoes. Each transaction's time is kept, so the client prints exact
 * percentiles:
 *
 *   transactions=41234 seconds=2.000 rate=20617.0 size=1 min_us=31.2
 *   p50_us=45.1 p90_us=52.3 p99_us=88.0 max_us=812.4
 *
 * Every wait is bounded: the server gives up after --timeout seconds
 * without a connection, either end after --timeout seconds without bytes
 * from the other. Exit status 0 on success, 1 on an error (said on
 * stderr), 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
	MAX_SIZE = 65536,           /* request/response bytes at most */
	MAX_SAMPLES = 1 << 24,      /* latencies kept; later ones are counted only */
	DEFAULT_TIMEOUT_S = 10,
	LISTEN_BACKLOG = 4,
};

struct rr_opts {
	bool server;
	bool once;                  /* server: exit after the first connection */
	struct sockaddr_in addr;
	double seconds;
	size_t size;
	int timeout_s;
};

struct rr_samples {
	uint32_t *ns;               /* latency of each transaction, nanoseconds */
	size_t count;
	size_t cap;
	uint64_t transactions;
};


static void usage(FILE *out)
{
	fputs("usage: tcp_rr server --listen ADDR:PORT [--once] [--timeout S]\n"
	      "       tcp_rr client --connect ADDR:PORT [--seconds S] [--size N] [--timeout S]\n", out);
}

/* ---- arguments ---- */



/* One flag with its value at argv[i + 1]; returns how many words it used, or -EINVAL. */
static int parse_flag(struct rr_opts *o, int argc, char **argv, int i)
{
	const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
	double v;

	if (!strcmp(flag, "--once")) {
		o->once = true;
		return 1;
	}
	if (!val)
		return -EINVAL;
	if (!strcmp(flag, "--listen") || !strcmp(flag, "--connect"))
		return tool_parse_addr(val, &o->addr) < 0 ? -EINVAL : 2;
	if (!strcmp(flag, "--seconds"))
		return tool_parse_num(val, 0.1, 3600, &o->seconds) < 0 ? -EINVAL : 2;
	if (!strcmp(flag, "--size")) {
		if (tool_parse_num(val, 1, MAX_SIZE, &v) < 0)
			return -EINVAL;
		o->size = (size_t)v;
		return 2;
	}
	if (!strcmp(flag, "--timeout")) {
		if (tool_parse_num(val, 1, 3600, &v) < 0)
			return -EINVAL;
		o->timeout_s = (int)v;
		return 2;
	}
	return -EINVAL;
}

static int parse_args(int argc, char **argv, struct rr_opts *o)
{
	int used;

	*o = (struct rr_opts){ .seconds = 2, .size = 1, .timeout_s = DEFAULT_TIMEOUT_S };
	if (argc < 2)
		return -EINVAL;
	if (!strcmp(argv[1], "server"))
		o->server = true;
	else if (strcmp(argv[1], "client"))
		return -EINVAL;
	for (int i = 2; i < argc; i += used) {
		used = parse_flag(o, argc, argv, i);
		if (used < 0)
			return used;
	}
	return o->addr.sin_port ? 0 : -EINVAL;
}

/* ---- socket I/O, every wait bounded ---- */

static int wait_fd(int fd, short events, int timeout_s)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, timeout_s * 1000);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* Moves exactly len bytes; -EPIPE when the peer closed, -ETIMEDOUT when it went silent. */
static int xfer_all(int fd, uint8_t *buf, size_t len, bool sending, int timeout_s)
{
	size_t done = 0;
	ssize_t n;
	int ret;

	while (done < len) {
		n = sending ? send(fd, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT)
			    : recv(fd, buf + done, len - done, MSG_DONTWAIT);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		ret = wait_fd(fd, sending ? POLLOUT : POLLIN, timeout_s);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- server ---- */

/* Echoes what arrives until the client closes. */
static int serve_conn(int fd, int timeout_s)
{
	uint8_t buf[MAX_SIZE];
	ssize_t n;
	int ret;

	set_nodelay(fd);
	for (;;) {
		ret = wait_fd(fd, POLLIN, timeout_s);
		if (ret < 0)
			return ret;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		ret = xfer_all(fd, buf, (size_t)n, true, timeout_s);
		if (ret < 0)
			return ret == -EPIPE ? 0 : ret;
	}
}

static int listen_on(const struct sockaddr_in *addr)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int run_server(const struct rr_opts *o)
{
	int lfd, cfd, ret;

	lfd = listen_on(&o->addr);
	if (lfd < 0) {
		fprintf(stderr, "tcp_rr: listen: %s\n", strerror(-lfd));
		return 1;
	}
	for (;;) {
		ret = wait_fd(lfd, POLLIN, o->timeout_s);
		if (ret < 0) {
			/* Without --once, nobody coming any more is the normal end. */
			if (ret != -ETIMEDOUT || o->once)
				fprintf(stderr, "tcp_rr: waiting for a client: %s\n", strerror(-ret));
			else
				ret = 0;
			break;
		}
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		ret = serve_conn(cfd, o->timeout_s);
		close(cfd);
		if (ret < 0)
			fprintf(stderr, "tcp_rr: connection: %s\n", strerror(-ret));
		if (o->once)
			break;
	}
	close(lfd);
	return ret < 0 ? 1 : 0;
}

/* ---- client ---- */

static int connect_to(const struct sockaddr_in *addr, int timeout_s)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int ret = 0, err = 0;
	socklen_t len = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
		ret = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, timeout_s) : -errno;
		if (ret == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
			ret = -err;
	}
	if (ret < 0) {
		close(fd);
		return ret;
	}
	set_nodelay(fd);
	return fd;
}

static void samples_add(struct rr_samples *s, uint64_t ns)
{
	uint32_t *grown;

	s->transactions++;
	if (s->count == s->cap) {
		if (s->cap >= MAX_SAMPLES)
			return;
		grown = realloc(s->ns, (s->cap ? s->cap * 2 : 65536) * sizeof(*s->ns));
		if (!grown)
			return;
		s->ns = grown;
		s->cap = s->cap ? s->cap * 2 : 65536;
	}
	s->ns[s->count++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Transactions until the deadline; fills s. */
static int rr_loop(int fd, const struct rr_opts *o, struct rr_samples *s, double *elapsed_s)
{
	uint8_t buf[MAX_SIZE];
	uint64_t t0 = tool_mono_ns(), end = t0 + (uint64_t)(o->seconds * 1e9), now = t0, start;
	int ret;

	memset(buf, 'r', o->size);
	while (now < end) {
		start = now;
		ret = xfer_all(fd, buf, o->size, true, o->timeout_s);
		if (ret == 0)
			ret = xfer_all(fd, buf, o->size, false, o->timeout_s);
		if (ret < 0)
			return ret;
		now = tool_mono_ns();
		samples_add(s, now - start);
	}
	*elapsed_s = (double)(now - t0) / 1e9;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted samples, in microseconds. */
static double pct_us(const struct rr_samples *s, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)s->count + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > s->count)
		rank = s->count;
	return s->ns[rank - 1] / 1e3;
}

static void report(const struct rr_samples *s, const struct rr_opts *o, double elapsed_s)
{
	qsort(s->ns, s->count, sizeof(*s->ns), cmp_u32);
	printf("transactions=%llu seconds=%.3f rate=%.1f size=%zu min_us=%.1f p50_us=%.1f p90_us=%.1f "
	       "p99_us=%.1f max_us=%.1f\n",
	       (unsigned long long)s->transactions, elapsed_s, (double)s->transactions / elapsed_s, o->size,
	       pct_us(s, 0), pct_us(s, 50), pct_us(s, 90), pct_us(s, 99), pct_us(s, 100));
}

static int run_client(const struct rr_opts *o)
{
	struct rr_samples s = { 0 };
	double elapsed_s = 0;
	int fd, ret;

	fd = connect_to(&o->addr, o->timeout_s);
	if (fd < 0) {
		fprintf(stderr, "tcp_rr: connect: %s\n", strerror(-fd));
		return 1;
	}
	ret = rr_loop(fd, o, &s, &elapsed_s);
	close(fd);
	if (ret == 0 && s.count == 0)
		ret = -ENODATA;
	if (ret < 0)
		fprintf(stderr, "tcp_rr: after %llu transactions: %s\n", (unsigned long long)s.transactions,
			strerror(-ret));
	else
		report(&s, o, elapsed_s);
	free(s.ns);
	return ret < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct rr_opts o;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	return o.server ? run_server(&o) : run_client(&o);
}
