// SPDX-License-Identifier: MIT
/* tunnel_loopback: rough throughput of the common tunnel over 127.0.0.1, server and client in two threads. */

/*
 * Each case starts a server and a client of the tunnel, each with its own
 * event loop in its own thread (as two tunlab processes would run), and
 * has the client send one batch after another for a while, as a frontend
 * that always has packets would. The ceiling case is one TLS byte stream
 * through the same OpenSSL with the same settings, without framing.
 *
 * One line per case on stdout, key=value, for scripts:
 *
 *   case=packets_1400 seconds=3.00 bytes=... mbytes_per_s=... gbit_per_s=...
 *   pkts_per_s=... records_written=... pkts_per_record=... drops_tx_full=...
 *   cli_cpu_s=... srv_cpu_s=...
 *
 * bytes are the inner IP bytes delivered at the server (segments made in
 * software carry headers of their own). The PKI comes from
 * experiments/mkpki in a temporary directory, removed at exit, also after
 * SIGINT/SIGTERM: they end the running case early, without a result line,
 * and the exit status is then 130.
 * Exit status 1 if a case failed its checks (nothing moved, unexpected
 * drops, offload metadata lost).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../base/evloop.h"
#include "../../base/pkt.h"
#include "../../tunnel/tls.h"
#include "../../tunnel/tunnel.h"

extern char **environ;

enum {
	STOP_POLL_MS = 20,       /* how often a loop looks at the stop flags */
	CONNECT_TIMEOUT_MS = 5000,
	STREAM_WRITE_BYTES = 64 * 1024,
	STREAM_READ_BYTES = 256 * 1024,
};

static const char peers_text[] = "cli 10.8.0.2/32\n";

static struct {
	char pki[256];
	double seconds;
	bool verbose;
	atomic_bool interrupted;
} g = { .seconds = 3 };

/* ---- small things ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double thread_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static const char *pki_file(char *buf, size_t len, const char *name, const char *ext)
{
	snprintf(buf, len, "%s/%s.%s", g.pki, name, ext);
	return buf;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g.interrupted, true);
}

/* ---- the PKI ---- */

/* experiments/mkpki from the working directory, above the binary, or installed. */
static int find_mkpki(char out[PATH_MAX])
{
	char exe[PATH_MAX - 32], *slash; /* room for the suffix in out */
	ssize_t n;

	if (access("experiments/mkpki", X_OK) == 0)
		return snprintf(out, PATH_MAX, "experiments/mkpki") < PATH_MAX ? 0 : -ENAMETOOLONG;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; up < 5 && (slash = strrchr(exe, '/')); up++) {
			*slash = '\0';
			snprintf(out, PATH_MAX, "%s/experiments/mkpki", exe);
			if (access(out, X_OK) == 0)
				return 0;
		}
	}
	snprintf(out, PATH_MAX, "tunlab-mkpki"); /* make install; posix_spawnp finds it */
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void pki_remove(void)
{
	if (g.pki[0] && nftw(g.pki, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "tunnel_loopback: could not remove %s\n", g.pki);
	g.pki[0] = '\0';
}

/* mkpki DIR cli, its "made ..." lines kept off stdout. */
static int pki_make(void)
{
	const char *tmp = getenv("TMPDIR");
	char mkpki[PATH_MAX];
	char *argv[] = { mkpki, g.pki, "cli", NULL };
	posix_spawn_file_actions_t fa;
	int status, ret;
	pid_t pid;

	if (!tmp || !*tmp || strlen(tmp) > 200)
		tmp = "/tmp";
	snprintf(g.pki, sizeof(g.pki), "%s/tunnel_loopback.XXXXXX", tmp);
	if (!mkdtemp(g.pki)) {
		fprintf(stderr, "tunnel_loopback: mkdtemp %s: %s\n", g.pki, strerror(errno));
		g.pki[0] = '\0';
		return -1;
	}
	atexit(pki_remove);
	find_mkpki(mkpki);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	ret = posix_spawnp(&pid, mkpki, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "tunnel_loopback: %s failed (run from the repository)\n", mkpki);
		return -1;
	}
	return 0;
}

/* A free port of 127.0.0.1: bind port 0, read what the kernel chose, let it go. */
static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* ---- packets ---- */

/* IPv4 10.8.0.2 > 10.9.0.1 with a 32-byte TCP header (timestamps), as a bulk TCP sender's. */
static void build_tcp4(uint8_t *buf, size_t len, uint32_t seq)
{
	uint16_t csum;

	memset(buf, 0, 52);
	buf[0] = 0x45;
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	buf[8] = 64;
	buf[9] = IPPROTO_TCP;
	inet_pton(AF_INET, "10.8.0.2", buf + 12);
	inet_pton(AF_INET, "10.9.0.1", buf + 16);
	csum = pkt_inet_csum(NULL, 0, buf, 20);
	memcpy(buf + 10, &csum, 2);
	buf[22] = 0x14; /* port 5201 */
	buf[23] = 0x51;
	memcpy(buf + 24, &seq, 4);
	buf[32] = 8 << 4; /* data offset: 12 bytes of options */
	buf[33] = 0x10; /* ACK */
	buf[34] = 0xff;
	buf[40] = buf[41] = 1; /* NOP NOP, then a timestamp option */
	buf[42] = 8;
	buf[43] = 10;
	for (size_t i = 52; i < len; i++)
		buf[i] = (uint8_t)(seq + i);
}

/* ---- a tunnel case: one loop per thread ---- */

struct tunnel_case {
	const char *name;
	size_t pkt_len;
	unsigned per_batch;
	bool offload;        /* packets carry TCPv4 GSO metadata */
	bool server_offload; /* the server takes them as they are; else the client segments */
};

static const struct tunnel_case tunnel_cases[] = {
	{ .name = "packets_1400", .pkt_len = 1400, .per_batch = 64 },
	{ .name = "offload_64k", .pkt_len = 65000, .per_batch = 4, .offload = true, .server_offload = true },
	{ .name = "segmented_64k", .pkt_len = 65000, .per_batch = 4, .offload = true },
};

static const struct pkt_offload bench_gso = {
	.flags = PKT_F_NEEDS_CSUM, .gso_type = PKT_GSO_TCPV4, .hdr_len = 52,
	.gso_size = 1448, .csum_start = 20, .csum_offset = 16,
};

struct bench {
	const struct tunnel_case *tc;
	struct evloop *srv_loop, *cli_loop;
	struct tunnel *srv, *cli;
	struct ev_io gen_io;
	struct ev_timer stop_timer, srv_poll, cli_poll;
	int gen_fd;
	struct pkt_batch batch;
	uint8_t *bufs;
	atomic_uint_fast64_t rx_bytes, rx_packets;
	atomic_bool stop;
	struct pkt_offload first_off;
	atomic_bool got_first;
	double srv_cpu_s;
};

static void bench_deliver(void *ctx, const struct pkt_batch *batch)
{
	struct bench *b = ctx;
	uint64_t bytes = 0;

	for (unsigned i = 0; i < batch->count; i++)
		bytes += batch->pkts[i].len;
	if (batch->count && !atomic_load(&b->got_first)) {
		b->first_off = batch->pkts[0].off;
		atomic_store(&b->got_first, true);
	}
	atomic_fetch_add(&b->rx_bytes, bytes);
	atomic_fetch_add(&b->rx_packets, batch->count);
}

static void bench_log(void *ctx, enum tunnel_log_level level, const char *msg)
{
	(void)ctx;
	if (g.verbose || level <= TUNNEL_LOG_WARN)
		fprintf(stderr, "tunnel_loopback: %s\n", msg);
}

/* The eventfd is always readable: a frontend that always has a batch. */
static void bench_generate(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct bench *b = io->arg;

	(void)events;
	if (tunnel_send_blocked(b->cli)) {
		evloop_io_stop(loop, io); /* until cb->writable */
		return;
	}
	tunnel_send(b->cli, &b->batch);
}

static void bench_writable(void *ctx)
{
	struct bench *b = ctx;

	if (!b->gen_io.active)
		evloop_io_start(b->cli_loop, &b->gen_io, EPOLLIN);
}

static void bench_stop(struct evloop *loop, struct ev_timer *timer)
{
	(void)timer;
	evloop_stop(loop);
}

/* Both loops: stop when told by the other thread or by a signal. */
static void bench_poll(struct evloop *loop, struct ev_timer *timer)
{
	struct bench *b = timer->arg;

	if (atomic_load(&b->stop) || atomic_load(&g.interrupted))
		evloop_stop(loop);
	else
		evloop_timer_start(loop, timer, STOP_POLL_MS);
}

static void *bench_server_thread(void *arg)
{
	struct bench *b = arg;

	evloop_run(b->srv_loop);
	b->srv_cpu_s = thread_cpu_s();
	return NULL;
}

static bool bench_connected(const struct bench *b)
{
	struct tunnel_stats st;

	tunnel_stats(b->cli, &st);
	return st.connected;
}

static void bench_fill_batch(struct bench *b)
{
	const struct tunnel_case *tc = b->tc;

	for (unsigned i = 0; i < tc->per_batch; i++) {
		uint8_t *buf = b->bufs + (size_t)i * tc->pkt_len;

		build_tcp4(buf, tc->pkt_len, i);
		b->batch.pkts[i] = (struct pkt){ .data = buf, .len = (uint32_t)tc->pkt_len };
		if (tc->offload)
			b->batch.pkts[i].off = bench_gso;
	}
	b->batch.count = tc->per_batch;
}

static int bench_setup(struct bench *b, const struct peer_table *peers, char *endpoint)
{
	static const struct tunnel_callbacks cb = {
		.deliver = bench_deliver, .writable = bench_writable, .log = bench_log,
	};
	char cert[320], key[320], ca[320], ccert[320], ckey[320], err[256] = "";
	struct tunnel_config scfg = {
		.role = TUNNEL_SERVER, .endpoint = endpoint, .peers = peers,
		.cert_file = pki_file(cert, sizeof(cert), "server", "crt"),
		.key_file = pki_file(key, sizeof(key), "server", "key"),
		.ca_file = pki_file(ca, sizeof(ca), "ca", "crt"),
		.accept_offload = b->tc->server_offload,
	};
	struct tunnel_config ccfg = {
		.role = TUNNEL_CLIENT, .endpoint = endpoint, .ca_file = ca,
		.cert_file = pki_file(ccert, sizeof(ccert), "cli", "crt"),
		.key_file = pki_file(ckey, sizeof(ckey), "cli", "key"),
		.accept_offload = b->tc->offload,
	};

	b->srv_loop = evloop_new();
	b->cli_loop = evloop_new();
	b->bufs = malloc((size_t)b->tc->per_batch * b->tc->pkt_len);
	b->gen_fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!b->srv_loop || !b->cli_loop || !b->bufs || b->gen_fd < 0) {
		fprintf(stderr, "tunnel_loopback: %s: out of resources\n", b->tc->name);
		return -1;
	}
	b->srv = tunnel_new(&scfg, b->srv_loop, &cb, b, err, sizeof(err));
	if (b->srv)
		b->cli = tunnel_new(&ccfg, b->cli_loop, &cb, b, err, sizeof(err));
	if (!b->srv || !b->cli) {
		fprintf(stderr, "tunnel_loopback: %s: %s\n", b->tc->name, err);
		return -1;
	}
	bench_fill_batch(b);
	return 0;
}

static void bench_free(struct bench *b)
{
	tunnel_free(b->cli);
	tunnel_free(b->srv);
	if (b->gen_fd >= 0)
		close(b->gen_fd);
	evloop_free(b->cli_loop);
	evloop_free(b->srv_loop);
	free(b->bufs);
	free(b);
}

/* Runs the client loop until connected, within CONNECT_TIMEOUT_MS. */
static int bench_connect(struct bench *b)
{
	uint64_t end = mono_ms() + CONNECT_TIMEOUT_MS;

	ev_timer_init(&b->stop_timer, bench_stop, b);
	while (!bench_connected(b) && mono_ms() < end && !atomic_load(&g.interrupted)) {
		evloop_timer_start(b->cli_loop, &b->stop_timer, 5);
		evloop_run(b->cli_loop);
	}
	evloop_timer_stop(b->cli_loop, &b->stop_timer);
	if (bench_connected(b))
		return 0;
	fprintf(stderr, "tunnel_loopback: %s: client not connected within %d ms\n", b->tc->name,
		CONNECT_TIMEOUT_MS);
	return -1;
}

/* Sends for g.seconds; returns the bytes the server delivered meanwhile. */
static uint64_t bench_measure(struct bench *b, uint64_t *elapsed_ms, double *cli_cpu_s)
{
	uint64_t base, start;
	double cpu0;

	ev_io_init(&b->gen_io, b->gen_fd, bench_generate, b);
	evloop_io_start(b->cli_loop, &b->gen_io, EPOLLIN);
	ev_timer_init(&b->cli_poll, bench_poll, b);
	evloop_timer_start(b->cli_loop, &b->cli_poll, STOP_POLL_MS);
	base = atomic_load(&b->rx_bytes);
	cpu0 = thread_cpu_s();
	start = mono_ms();
	evloop_timer_start(b->cli_loop, &b->stop_timer, (uint64_t)(g.seconds * 1000));
	evloop_run(b->cli_loop);
	*elapsed_ms = mono_ms() - start;
	*cli_cpu_s = thread_cpu_s() - cpu0;
	evloop_timer_stop(b->cli_loop, &b->stop_timer);
	evloop_timer_stop(b->cli_loop, &b->cli_poll);
	evloop_io_stop(b->cli_loop, &b->gen_io);
	return atomic_load(&b->rx_bytes) - base;
}

static bool bench_check(const struct bench *b, uint64_t got, const struct tunnel_stats *ss)
{
	const struct pkt_offload *o = &b->first_off;
	bool ok = true;

	if (got == 0) {
		fprintf(stderr, "tunnel_loopback: %s: nothing arrived\n", b->tc->name);
		ok = false;
	}
	if (ss->drop_malformed || ss->drop_spoofed_source || ss->drop_offload) {
		fprintf(stderr, "tunnel_loopback: %s: server dropped packets (malformed %lu spoofed %lu offload %lu)\n",
			b->tc->name, (unsigned long)ss->drop_malformed, (unsigned long)ss->drop_spoofed_source,
			(unsigned long)ss->drop_offload);
		ok = false;
	}
	if (b->tc->server_offload && memcmp(o, &bench_gso, sizeof(*o)) != 0) {
		fprintf(stderr, "tunnel_loopback: %s: offload metadata did not cross the tunnel\n", b->tc->name);
		ok = false;
	}
	if (b->tc->offload && !b->tc->server_offload && o->gso_type != PKT_GSO_NONE) {
		fprintf(stderr, "tunnel_loopback: %s: an offload packet reached a server without offload\n",
			b->tc->name);
		ok = false;
	}
	return ok;
}

static void bench_print(const struct bench *b, uint64_t got, uint64_t elapsed_ms, double cli_cpu_s,
			const struct tunnel_stats *cs, const struct tunnel_stats *ss)
{
	double secs = (double)elapsed_ms / 1e3;

	printf("case=%s seconds=%.2f bytes=%lu mbytes_per_s=%.1f gbit_per_s=%.2f pkts_per_s=%.0f "
	       "records_written=%lu pkts_per_record=%.2f segmented=%lu drops_tx_full=%lu "
	       "cli_cpu_s=%.2f srv_cpu_s=%.2f\n",
	       b->tc->name, secs, (unsigned long)got, (double)got / 1e6 / secs, (double)got * 8 / 1e9 / secs,
	       (double)ss->rx_packets / secs, (unsigned long)cs->tls_records_written,
	       cs->tls_records_written ? (double)cs->tx_packets / (double)cs->tls_records_written : 0.0,
	       (unsigned long)cs->tx_segmented, (unsigned long)cs->drop_tx_full, cli_cpu_s, b->srv_cpu_s);
	fflush(stdout);
}

static int run_tunnel_case(const struct tunnel_case *tc, const struct peer_table *peers)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct tunnel_stats cs, ss;
	char endpoint[64];
	uint64_t got, elapsed_ms;
	double cli_cpu_s;
	pthread_t thread;
	bool ok;

	if (!b)
		return -1;
	b->tc = tc;
	b->gen_fd = -1;
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", free_port());
	if (bench_setup(b, peers, endpoint) < 0) {
		bench_free(b);
		return -1;
	}
	ev_timer_init(&b->srv_poll, bench_poll, b);
	evloop_timer_start(b->srv_loop, &b->srv_poll, STOP_POLL_MS);
	if (pthread_create(&thread, NULL, bench_server_thread, b) != 0) {
		bench_free(b);
		return -1;
	}
	ok = bench_connect(b) == 0;
	got = ok ? bench_measure(b, &elapsed_ms, &cli_cpu_s) : 0;
	atomic_store(&b->stop, true);
	pthread_join(thread, NULL);
	if (ok && !atomic_load(&g.interrupted)) { /* a cut-short case is no result */
		tunnel_stats(b->cli, &cs);
		tunnel_stats(b->srv, &ss);
		bench_print(b, got, elapsed_ms, cli_cpu_s, &cs, &ss);
		ok = bench_check(b, got, &ss);
	}
	bench_free(b);
	return ok ? 0 : -1;
}

/* ---- the ceiling: one TLS byte stream, 64 KiB writes, no framing ---- */

struct stream_side {
	bool server;
	int fd;
	struct tls_ctx *ctx;
	uint64_t end_ms;
	uint64_t bytes;
	struct tls_record_counters records;
	double cpu_s;
	char error[256];
};

static void stream_wait(int fd, long want)
{
	struct pollfd pfd = { .fd = fd, .events = want == TLS_WANT_POLLOUT ? POLLOUT : POLLIN };

	poll(&pfd, 1, 100);
}

static bool stream_go_on(const struct stream_side *sd)
{
	return sd->server || (mono_ms() < sd->end_ms && !atomic_load(&g.interrupted));
}

/* The client writes until end_ms and closes; the server reads until the close. */
static void stream_pump(struct stream_side *sd, struct tls_conn *conn, uint8_t *buf)
{
	ssize_t n;

	while (stream_go_on(sd)) {
		if (sd->server)
			n = tls_read(conn, buf, STREAM_READ_BYTES);
		else
			n = tls_write(conn, buf, STREAM_WRITE_BYTES);
		if (n > 0) {
			sd->bytes += (uint64_t)n;
		} else if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			stream_wait(sd->fd, n);
		} else {
			if (n < 0)
				snprintf(sd->error, sizeof(sd->error), "%s", tls_conn_error(conn));
			return; /* 0: the writer's close_notify */
		}
	}
}

static void *stream_thread(void *arg)
{
	struct stream_side *sd = arg;
	uint8_t *buf = calloc(1, STREAM_READ_BYTES);
	struct tls_conn *conn = tls_conn_new(sd->ctx, sd->fd, sd->server ? NULL : "127.0.0.1", &sd->records);
	uint64_t end = mono_ms() + CONNECT_TIMEOUT_MS;
	int ret = -1;

	if (!buf || !conn) {
		snprintf(sd->error, sizeof(sd->error), "out of memory");
		goto out;
	}
	while ((ret = tls_handshake(conn)) != 0 && ret != -1 && mono_ms() < end)
		stream_wait(sd->fd, ret);
	if (ret != 0) {
		snprintf(sd->error, sizeof(sd->error), "handshake: %s", tls_conn_error(conn));
		goto out;
	}
	stream_pump(sd, conn, buf);
	tls_close(conn);
out:
	shutdown(sd->fd, SHUT_WR); /* the reader sees the end even after a failure here */
	sd->cpu_s = thread_cpu_s();
	tls_conn_free(conn);
	free(buf);
	return NULL;
}

/* A connected pair of TCP sockets over 127.0.0.1, TCP_NODELAY as the tunnel sets it. */
static int stream_sockets(int *srv_fd, int *cli_fd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = -1;

	*srv_fd = *cli_fd = -1;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		goto out;
	*cli_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cli_fd < 0 || connect(*cli_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto out;
	*srv_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*srv_fd < 0)
		goto out;
	setsockopt(*cli_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*srv_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = 0;
out:
	if (lfd >= 0)
		close(lfd);
	return ret;
}

static int stream_contexts(struct stream_side *srv, struct stream_side *cli)
{
	char cert[320], key[320], ca[320], err[256] = "";

	pki_file(ca, sizeof(ca), "ca", "crt");
	srv->ctx = tls_ctx_new(true, pki_file(cert, sizeof(cert), "server", "crt"),
			       pki_file(key, sizeof(key), "server", "key"), ca, NULL, err,
			       sizeof(err));
	if (srv->ctx)
		cli->ctx = tls_ctx_new(false, pki_file(cert, sizeof(cert), "cli", "crt"),
				       pki_file(key, sizeof(key), "cli", "key"), ca, NULL, err,
				       sizeof(err));
	if (!srv->ctx || !cli->ctx) {
		fprintf(stderr, "tunnel_loopback: tls_stream: %s\n", err);
		return -1;
	}
	return 0;
}

static void stream_print(const struct stream_side *srv, const struct stream_side *cli, uint64_t elapsed_ms)
{
	double secs = (double)elapsed_ms / 1e3;

	printf("case=tls_stream seconds=%.2f bytes=%lu mbytes_per_s=%.1f gbit_per_s=%.2f "
	       "records_written=%lu write_bytes=%d cli_cpu_s=%.2f srv_cpu_s=%.2f\n",
	       secs, (unsigned long)srv->bytes, (double)srv->bytes / 1e6 / secs,
	       (double)srv->bytes * 8 / 1e9 / secs, (unsigned long)cli->records.written,
	       STREAM_WRITE_BYTES, cli->cpu_s, srv->cpu_s);
	fflush(stdout);
}

static int run_stream_case(void)
{
	struct stream_side srv = { .server = true }, cli = { 0 };
	pthread_t t_srv, t_cli;
	uint64_t start;
	int ret = -1;

	if (stream_sockets(&srv.fd, &cli.fd) < 0 || stream_contexts(&srv, &cli) < 0)
		goto out;
	start = mono_ms();
	cli.end_ms = start + (uint64_t)(g.seconds * 1000);
	if (pthread_create(&t_srv, NULL, stream_thread, &srv) != 0)
		goto out;
	if (pthread_create(&t_cli, NULL, stream_thread, &cli) != 0) {
		shutdown(srv.fd, SHUT_RDWR);
		pthread_join(t_srv, NULL);
		goto out;
	}
	pthread_join(t_cli, NULL);
	pthread_join(t_srv, NULL);
	if (atomic_load(&g.interrupted))
		goto out; /* a cut-short case is no result */
	stream_print(&srv, &cli, mono_ms() - start);
	ret = srv.bytes ? 0 : -1;
	if (cli.error[0] || !srv.bytes)
		fprintf(stderr, "tunnel_loopback: tls_stream: client: %s; server: %s\n",
			cli.error[0] ? cli.error : "ok", srv.error[0] ? srv.error : "ok");
out:
	tls_ctx_free(srv.ctx);
	tls_ctx_free(cli.ctx);
	if (srv.fd >= 0)
		close(srv.fd);
	if (cli.fd >= 0)
		close(cli.fd);
	return ret;
}

/* ---- main ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tunnel_loopback [-t SECONDS] [-c CASE]... [-v]\n"
		"  -t SECONDS  duration of each case (default 3; fractions allowed)\n"
		"  -c CASE     packets_1400, offload_64k, segmented_64k, tls_stream\n"
		"              (repeatable; default: all, in that order)\n"
		"  -v          log every message of the tunnels to stderr\n"
		"Run from the repository (it needs experiments/mkpki). One key=value line per case.\n");
}

static int case_index(const char *name)
{
	for (size_t i = 0; i < sizeof(tunnel_cases) / sizeof(tunnel_cases[0]); i++)
		if (!strcmp(name, tunnel_cases[i].name))
			return (int)i;
	return !strcmp(name, "tls_stream") ? (int)(sizeof(tunnel_cases) / sizeof(tunnel_cases[0])) : -1;
}

enum { CASE_COUNT = sizeof(tunnel_cases) / sizeof(tunnel_cases[0]) + 1 };

/* Fills selected[] from -c flags (all when none); 0, or 2 for a usage error. */
static int parse_args(int argc, char **argv, bool selected[CASE_COUNT])
{
	bool any = false;
	char *end;
	int opt, i;

	while ((opt = getopt(argc, argv, "t:c:vh")) != -1) {
		switch (opt) {
		case 't':
			g.seconds = strtod(optarg, &end);
			if (*end || !(g.seconds > 0 && g.seconds <= 3600)) {
				fprintf(stderr, "tunnel_loopback: -t: a duration in seconds, up to 3600\n");
				return 2;
			}
			break;
		case 'c':
			i = case_index(optarg);
			if (i < 0) {
				fprintf(stderr, "tunnel_loopback: unknown case '%s'\n", optarg);
				return 2;
			}
			selected[i] = any = true;
			break;
		case 'v':
			g.verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return 2;
		}
	}
	if (optind != argc)
		return 2;
	for (i = 0; !any && i < CASE_COUNT; i++)
		selected[i] = true;
	return 0;
}

static void handle_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	bool selected[CASE_COUNT] = { false };
	struct peer_table peers;
	char err[128];
	int failed = 0;

	if (parse_args(argc, argv, selected)) {
		usage(stderr);
		return 2;
	}
	handle_signals();
	if (pki_make() < 0)
		return 1;
	if (peers_parse(peers_text, strlen(peers_text), &peers, err, sizeof(err)) < 0) {
		fprintf(stderr, "tunnel_loopback: peers: %s\n", err);
		return 1;
	}
	for (int i = 0; i < CASE_COUNT && !atomic_load(&g.interrupted); i++) {
		if (!selected[i])
			continue;
		if (i < CASE_COUNT - 1)
			failed |= run_tunnel_case(&tunnel_cases[i], &peers) < 0;
		else
			failed |= run_stream_case() < 0;
	}
	peers_free(&peers);
	if (atomic_load(&g.interrupted))
		return 130;
	return failed ? 1 : 0;
}
