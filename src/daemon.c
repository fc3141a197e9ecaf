// SPDX-License-Identifier: MIT
/*
 * Wiring: the frontend's watchers and the tunnel share one event loop. Packets
 * captured by the frontend go to tunnel_send in batches; batches the tunnel
 * delivers go to the frontend's write_batch. A client whose tunnel send
 * buffer fills stops reading the frontend (the kernel queue then pushes back
 * on the inner TCP) until the tunnel says it is writable again.
 *
 * A stream frontend (the proxy) carries byte streams instead: it gets
 * the tunnel's stream calls through a struct stream_port at attach, and
 * every stream message the tunnel receives through its stream_event op,
 * and no packet ops: packets a peer sends it are counted as dropped.
 *
 * SIGHUP rereads the peers file (server), the ticket keys (--ticket-keys:
 * how keys are rotated, see README), the CRL (--crl) and the client's
 * --policy (as `tunlab policy load` swaps it): each is
 * taken whole or refused whole, the old one staying in force; the tunnel
 * cuts only the sessions the new files no longer admit. The frontend's
 * kernel objects (routes, rules) stay as the peers file made them at
 * start: a new peer's prefixes that they do not cover are named in a
 * warning, and need a restart to be captured.
 *
 * SIGUSR1 (server) is a planned switchover, tunnel_handover: the listener
 * closes and every client is told to move to --standby beside its session
 * (or, without one, to reconnect at once elsewhere); the daemon runs on
 * (its frontend's kernel objects too) until it is stopped, so that what is
 * still in flight to it is delivered.
 *
 * Lifecycle: signals blocked and read from a signalfd; frontend opened
 * (kernel objects created) before the tunnel so a bad route fails fast;
 * torn down in reverse on every exit path, so nothing borrowed stays.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../base/owner.h"
#include "../tunnel/proto.h"
#include "../tunnel/tunnel.h"
#include "daemon.h"
#include "ctl.h"
#include "hits.h"
#include "log.h"
#include "show.h"
#include "stats.h"

/* Batches read per wakeup: enough to fill records, few enough to stay fair. */
enum { CAPTURE_BATCHES_PER_WAKEUP = 8 };

enum {
	/* fds besides sessions and streams: epoll, signalfd, frontend, stats, listener... */
	DAEMON_FD_RESERVE = 64,
	/* The soft limit we ask for when the hard one is unlimited (the kernel's nr_open default). */
	DAEMON_FD_CEILING = 1 << 20,
};

struct daemon {
	const struct options *opts;
	struct evloop *loop;
	struct frontend *fe;
	struct tunnel *tunnel;
	struct peer_table *peers; /* heap: the tunnel points at it until a reload swaps it */
	struct reach_policy *reach;
	struct ip_prefix *routes; /* server: every peer's prefixes; client with --policy: protect dsts */
	size_t route_count;
	struct policy policy;     /* client: --policy, or the --route/--select entries (shown only) */
	struct policy_hits *hits; /* client: per entry of policy, or NULL */
	const struct frontend_ops *ops;
	struct ctl_server *ctl;   /* the control socket (tunlab show) */
	struct ev_io signal_io;
	struct ev_timer stats_timer;
	struct stream_port stream_port;
	struct frontend_sink sink;
	int signal_fd;
	FILE *stats_out;
	struct stats_context stats_ctx;
	struct pkt_batch batch;
	bool capture_paused;
	int exit_status;
	/* server: the fd limit and the tunnel's share of it; the rest is the frontend's */
	unsigned long fd_limit, fd_tunnel;
};

static void trace_packet(const char *stage, const char *peer, const struct pkt *p)
{
	char desc[160];

	pkt_describe(p->data, p->len, desc, sizeof(desc));
	fprintf(stderr, "trace %-8s %s%s%s%s\n", stage, desc,
		p->off.gso_type ? " gso" : "", peer ? " peer " : "", peer ? peer : "");
}

static void trace_batch(const struct daemon *d, const char *stage, const struct pkt_batch *b)
{
	if (!d->opts->trace)
		return;
	for (unsigned i = 0; i < b->count; i++)
		trace_packet(stage, NULL, &b->pkts[i]);
}

static void capture_set_paused(struct daemon *d, bool paused)
{
	if (d->capture_paused == paused)
		return;
	d->capture_paused = paused;
	d->fe->ops->packets->pause(d->fe, paused);
}

/* The frontend's sink: captured packets wait. */
static void on_capture(void *ctx)
{
	struct daemon *d = ctx;

	for (int i = 0; i < CAPTURE_BATCHES_PER_WAKEUP; i++) {
		int n = d->fe->ops->packets->read_batch(d->fe, &d->batch);

		if (n < 0) {
			log_msg(TUNNEL_LOG_ERR, "frontend %s: %s", d->fe->ops->name, d->fe->error);
			d->exit_status = 1;
			evloop_stop(d->loop);
			return;
		}
		if (n == 0)
			return;
		trace_batch(d, "captured", &d->batch);
		hits_count(d->hits, &d->batch);
		tunnel_send(d->tunnel, &d->batch);
		if (tunnel_send_blocked(d->tunnel)) {
			capture_set_paused(d, true);
			return;
		}
		/*
		 * A short batch drained the fd (or nearly): another read would
		 * cost a syscall for EAGAIN on every idle packet. The fds are
		 * level-triggered, so whatever is left wakes us again.
		 */
		if (n < PKT_BATCH_MAX)
			return;
	}
}

static void on_deliver(void *ctx, const struct pkt_batch *batch)
{
	struct daemon *d = ctx;

	/* A stream frontend injects nothing: what a peer sent it anyway is counted. */
	if (!d->fe->ops->packets) {
		d->fe->stream_stats.dropped_packets += batch->count;
		return;
	}
	if (d->fe->ops->packets->write_batch(d->fe, batch) < 0) {
		log_msg(TUNNEL_LOG_ERR, "frontend %s: %s", d->fe->ops->name, d->fe->error);
		d->exit_status = 1;
		evloop_stop(d->loop);
		return;
	}
	trace_batch(d, "injected", batch);
}

static void on_writable(void *ctx)
{
	capture_set_paused(ctx, false);
}

static void on_tunnel_log(void *ctx, enum tunnel_log_level level, const char *msg)
{
	(void)ctx;
	log_msg(level, "%s", msg);
}

static void on_tunnel_trace(void *ctx, const char *stage, const char *peer, const struct pkt *pkt)
{
	(void)ctx;
	trace_packet(stage, peer, pkt);
}

static void on_stream(void *ctx, const struct stream_msg *msg)
{
	struct daemon *d = ctx;

	if (d->fe->ops->streams)
		d->fe->ops->streams->stream_event(d->fe, msg);
}

static const struct tunnel_callbacks tunnel_callbacks = {
	.deliver = on_deliver,
	.stream = on_stream,
	.writable = on_writable,
	.log = on_tunnel_log,
	.trace = on_tunnel_trace,
};

static void write_stats(struct daemon *d, const char *event)
{
	struct tunnel_stats ts;

	if (!d->stats_out)
		return;
	tunnel_stats(d->tunnel, &ts);
	if (stats_write(d->stats_out, &d->stats_ctx, event, &ts, &d->fe->stats,
			d->fe->ops->streams ? &d->fe->stream_stats : NULL) < 0)
		log_msg(TUNNEL_LOG_WARN, "--stats %s: %s", d->opts->stats_file, strerror(errno));
}

static void on_stats_timer(struct evloop *loop, struct ev_timer *timer)
{
	struct daemon *d = timer->arg;

	write_stats(d, "interval");
	evloop_timer_start(loop, timer, d->opts->stats_interval_ms);
}

/* Peers' prefixes that the routes the frontend opened with do not cover. */
static void warn_uncaptured(const struct daemon *d, const struct peer_table *peers)
{
	char text[PREFIX_STR_MAX];

	if (d->fe->ops->streams)
		return; /* a stream frontend routes nothing toward the peers */
	for (size_t i = 0; i < peers->count; i++) {
		for (size_t j = 0; j < peers->peers[i].prefix_count; j++) {
			const struct ip_prefix *p = &peers->peers[i].prefixes[j];
			bool covered = false;

			for (size_t k = 0; k < d->route_count && !covered; k++)
				covered = prefix_covers(&d->routes[k], p);
			if (covered)
				continue;
			prefix_format(p, text, sizeof(text));
			log_msg(TUNNEL_LOG_WARN, "--peers: %s of '%s' was not routed by the frontend at "
				"start (a TUN device's --address subnet may cover it); restart to route it",
				text, peers->peers[i].name);
		}
	}
}

static struct reach_policy *build_reach(const struct daemon *d, const struct peer_table *peers);

static void reload_peers(struct daemon *d)
{
	struct peer_table *fresh = calloc(1, sizeof(*fresh));
	struct reach_policy *reach = NULL;
	char err[512];

	if (!fresh || peers_load(d->opts->peers_file, fresh, err, sizeof(err)) < 0) {
		log_msg(TUNNEL_LOG_ERR, "SIGHUP: %s; the previous peers file stays in force",
			fresh ? err : "out of memory");
		free(fresh);
		return;
	}
	/* The policy names peers by their entries: it is rebuilt with the table. */
	reach = build_reach(d, fresh);
	if (!reach) {
		snprintf(err, sizeof(err), "reach policy: out of memory");
		goto err_free;
	}
	if (tunnel_set_peers(d->tunnel, fresh, reach, err, sizeof(err)) < 0)
		goto err_free;
	reach_free(d->reach);
	d->reach = reach;
	peers_free(d->peers);
	free(d->peers);
	d->peers = fresh;
	log_msg(TUNNEL_LOG_INFO, "SIGHUP: %s reloaded: %zu peers", d->opts->peers_file, fresh->count);
	warn_uncaptured(d, fresh);
	return;

err_free:
	log_msg(TUNNEL_LOG_ERR, "SIGHUP: %s; the previous peers file stays in force", err);
	reach_free(reach);
	peers_free(fresh);
	free(fresh);
}

static void reload_ticket_keys(struct daemon *d)
{
	char err[512];

	if (!d->opts->ticket_keys_file)
		return;
	/* The message never quotes a key. */
	if (tunnel_reload_ticket_keys(d->tunnel, err, sizeof(err)) < 0)
		log_msg(TUNNEL_LOG_ERR, "SIGHUP: %s; the previous ticket keys stay in force", err);
	else
		log_msg(TUNNEL_LOG_INFO, "SIGHUP: --ticket-keys %s reloaded", d->opts->ticket_keys_file);
}

static void reload_policy(struct daemon *d);

static void reload(struct daemon *d)
{
	char err[512];

	if (d->opts->command == CMD_SERVER) {
		reload_peers(d);
		reload_ticket_keys(d);
	}
	reload_policy(d);
	if (!d->opts->crl_file) {
		if (d->opts->command != CMD_SERVER && !d->opts->policy_file)
			log_msg(TUNNEL_LOG_INFO, "SIGHUP: nothing to reload without --crl");
		return;
	}
	if (tunnel_reload_crl(d->tunnel, err, sizeof(err)) < 0)
		log_msg(TUNNEL_LOG_ERR, "SIGHUP: %s; the previous CRL stays in force", err);
	else
		log_msg(TUNNEL_LOG_INFO, "SIGHUP: --crl %s reloaded", d->opts->crl_file);
}

/* SIGUSR1 or `tunlab handover` (how: for the log); the control socket's reply into f. */
static void handover(struct daemon *d, const char *how, FILE *f)
{
	int n = tunnel_handover(d->tunnel);

	if (n < 0) {
		log_msg(TUNNEL_LOG_WARN, "%s: a client has nothing to hand over; ignored", how);
		if (f)
			fprintf(f, "error: a client has nothing to hand over\n");
		return;
	}
	log_msg(TUNNEL_LOG_INFO, "%s: handover: listener closed, %d client(s) told to move", how, n);
	if (f)
		fprintf(f, "ok: listener closed, %d client(s) told to move\n", n);
}

/* `tunlab down`: a lazy client's tunnel closed now, as --idle-timeout closes it; the reply into f. */
static void down(struct daemon *d, FILE *f)
{
	switch (tunnel_down(d->tunnel)) {
	case 0:
		fputs("ok\n", f);
		break;
	case -ENOTCONN:
		fputs("ok: not connected\n", f);
		break;
	case -EBUSY:
		fputs("error: the tunnel is being set up for packets that wait for it (or still sends "
		      "them); try again once it is up\n", f);
		break;
	case -EOPNOTSUPP:
		fputs("error: this client runs without --lazy: it would reconnect at once (stop it "
		      "instead)\n", f);
		break;
	default:
		fputs("error: a server has no on-demand tunnel to close (down is for a client with "
		      "--lazy)\n", f);
	}
}

static void on_signal(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct daemon *d = io->arg;
	struct signalfd_siginfo si;

	(void)events;
	if (read(d->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		reload(d);
		return;
	}
	if (si.ssi_signo == SIGUSR1) {
		handover(d, "SIGUSR1", NULL);
		return;
	}
	log_msg(TUNNEL_LOG_INFO, "%s: shutting down", strsignal((int)si.ssi_signo));
	evloop_stop(loop);
}

static int open_signals(struct daemon *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	/* A tunnel peer that vanishes must not kill us through SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	d->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->signal_fd < 0)
		return -errno;
	ev_io_init(&d->signal_io, d->signal_fd, on_signal, d);
	return evloop_io_start(d->loop, &d->signal_io, EPOLLIN);
}

/* The server routes every peer's prefixes toward the frontend. */
static int collect_peer_routes(struct daemon *d)
{
	size_t total = 0, k = 0;

	for (size_t i = 0; i < d->peers->count; i++)
		total += d->peers->peers[i].prefix_count;
	d->routes = calloc(total ? total : 1, sizeof(*d->routes));
	if (!d->routes)
		return -ENOMEM;
	for (size_t i = 0; i < d->peers->count; i++)
		for (size_t j = 0; j < d->peers->peers[i].prefix_count; j++)
			d->routes[k++] = d->peers->peers[i].prefixes[j];
	d->route_count = total;
	return 0;
}

/* What open (and a policy swap) hands the frontend; policy NULL keeps --route x --select. */
static void make_config(const struct daemon *d, const struct policy *policy, struct frontend_config *cfg)
{
	const struct options *o = d->opts;
	bool server = o->command == CMD_SERVER;

	*cfg = (struct frontend_config){
		.role = server ? FRONTEND_SERVER : FRONTEND_CLIENT,
		.address_count = o->address_count,
		.routes = server || policy ? d->routes : o->routes,
		.route_count = server || policy ? d->route_count : o->route_count,
		.mtu = o->mtu,
		.ifname = o->ifname,
		.offload = o->offload,
		.verbose = o->verbose,
		.selectors = policy ? NULL : o->selectors,
		.selector_count = policy ? 0 : o->selector_count,
		.policy = policy,
		.fd_limit = d->fd_limit,
		.fd_tunnel = d->fd_tunnel,
		.flags = o->frontend_flags,
	};
	_Static_assert((int)FRONTEND_ADDRESS_MAX == (int)OPTIONS_ADDRESS_MAX,
		       "one --address per family");
	memcpy(cfg->addresses, o->addresses, o->address_count * sizeof(*cfg->addresses));
}

static int open_frontend(struct daemon *d, const struct frontend_ops *ops)
{
	struct frontend_config cfg;
	char err[512];
	int ret;

	make_config(d, d->opts->policy_file ? &d->policy : NULL, &cfg);
	ret = ops->open(&d->fe, &cfg, err, sizeof(err));

	if (ret < 0) {
		log_msg(TUNNEL_LOG_ERR, "frontend %s: %s", ops->name, err);
		return ret;
	}
	/* Opened with less than it wanted (a kernel feature missing): say what is lost. */
	if (d->fe->error[0]) {
		log_msg(TUNNEL_LOG_WARN, "frontend %s: %s", ops->name, d->fe->error);
		d->fe->error[0] = '\0';
	}
	d->sink = (struct frontend_sink){ .ready = on_capture, .ctx = d };
	ret = ops->start(d->fe, d->loop, &d->sink);
	if (ret < 0)
		log_msg(TUNNEL_LOG_ERR, "frontend %s: event loop: %s", ops->name, strerror(-ret));
	return ret;
}

/*
 * Server: what peers may reach: --export, the peers' prefixes (owned by
 * their struct peer, as the tunnel knows the sender), and this host's own
 * addresses, read once the frontend has added its own.
 */
static int reach_server(const struct daemon *d, const struct peer_table *peers,
			struct reach_policy *p)
{
	const struct options *o = d->opts;
	int ret = 0;

	for (size_t i = 0; i < o->export_count && ret == 0; i++)
		ret = reach_allow(p, &o->exports[i]);
	for (size_t i = 0; i < peers->count && ret == 0; i++)
		for (size_t j = 0; j < peers->peers[i].prefix_count && ret == 0; j++)
			ret = reach_add_peer(p, &peers->peers[i].prefixes[j], &peers->peers[i]);
	return ret;
}

static bool has_address(const struct options *o, uint8_t family)
{
	for (size_t i = 0; i < o->address_count; i++)
		if (o->addresses[i].addr.family == family)
			return true;
	return false;
}

/*
 * Client: the sources the server may send from: the --route prefixes (the
 * policy's protect dsts) and
 * the inner network of each --address (where the server's inner address
 * lives: its ICMP errors come from there), but never an address of ours.
 * The destinations it may deliver to: its --addresses, and for a family
 * without one the source the kernel picks toward each route of that
 * family, which is where the answers to its traffic come back.
 */
static int reach_client(const struct daemon *d, struct reach_policy *p)
{
	const struct options *o = d->opts;
	const struct ip_prefix *routes = o->policy_file ? d->routes : o->routes;
	size_t route_count = o->policy_file ? d->route_count : o->route_count;
	int ret = 0;

	for (size_t i = 0; i < route_count && ret == 0; i++) {
		ret = reach_allow(p, &routes[i]);
		if (ret == 0 && !has_address(o, routes[i].addr.family))
			ret = reach_add_route_source(p, &routes[i]);
	}
	for (size_t i = 0; i < o->address_count && ret == 0; i++) {
		struct ip_prefix net = prefix_network(&o->addresses[i]);

		if (!prefix_is_host(&net))
			ret = reach_allow(p, &net);
		if (ret == 0)
			ret = reach_add_own(p, &o->addresses[i].addr);
	}
	return ret;
}

/*
 * The policy of this end, with peers' entries on a server. The host's
 * addresses are read now, so a reload also learns addresses added since.
 * NULL on failure (logged).
 */
static struct reach_policy *build_reach(const struct daemon *d, const struct peer_table *peers)
{
	const struct options *o = d->opts;
	struct reach_policy *p = reach_new(o->peer_to_peer);
	int ret = -ENOMEM;

	if (!p)
		goto err;
	ret = o->command == CMD_SERVER ? reach_server(d, peers, p) : reach_client(d, p);
	for (size_t i = 0; i < o->address_count && ret == 0 && o->command == CMD_SERVER; i++)
		ret = reach_add_local(p, &o->addresses[i].addr, false);
	if (ret == 0)
		ret = reach_add_host_addresses(p);
	if (ret == 0)
		return p;
	reach_free(p);
err:
	log_msg(TUNNEL_LOG_ERR, "reach policy: %s", strerror(-ret));
	return NULL;
}

static int open_reach(struct daemon *d)
{
	d->reach = build_reach(d, d->peers);
	return d->reach ? 0 : -ENOMEM;
}

static int port_send(void *ctx, struct stream_msg *msg)
{
	return tunnel_stream_send(ctx, msg);
}

static bool port_blocked(void *ctx, const struct stream_link *link)
{
	return tunnel_stream_blocked(ctx, link);
}

static void port_flush(void *ctx)
{
	tunnel_stream_flush(ctx);
}

/* A stream frontend talks to the tunnel through these, never through tunnel.h. */
static void attach_streams(struct daemon *d)
{
	if (!d->fe->ops->streams)
		return;
	d->stream_port = (struct stream_port){
		.ctx = d->tunnel,
		.send = port_send,
		.blocked = port_blocked,
		.flush = port_flush,
	};
	d->fe->ops->streams->attach(d->fe, &d->stream_port);
}

/*
 * auto by default for a packet frontend (README, "The UDP data channel":
 * the UDP path is the faster one where it works); a stream frontend's
 * streams ride the TLS stream, so it has nothing to put in datagrams.
 */
static enum tunnel_transport transport_of(const struct options *o, const struct frontend_ops *ops)
{
	if (!o->transport)
		return ops->streams ? TUNNEL_TRANSPORT_TLS : TUNNEL_TRANSPORT_AUTO;
	if (!strcmp(o->transport, "tls"))
		return TUNNEL_TRANSPORT_TLS;
	return !strcmp(o->transport, "udp") ? TUNNEL_TRANSPORT_UDP : TUNNEL_TRANSPORT_AUTO;
}

static int open_tunnel(struct daemon *d)
{
	const struct options *o = d->opts;
	struct tunnel_config cfg = {
		.role = o->command == CMD_SERVER ? TUNNEL_SERVER : TUNNEL_CLIENT,
		.endpoint = o->endpoint,
		.endpoints = o->command == CMD_CLIENT ? o->connects : NULL,
		.endpoint_count = o->command == CMD_CLIENT ? o->connect_count : 0,
		.server_name = o->server_name,
		.cert_file = o->cert_file,
		.key_file = o->key_file,
		.ca_file = o->ca_file,
		.crl_file = o->crl_file,
		.ticket_keys_file = o->ticket_keys_file,
		.standby = o->standby,
		.peers = d->peers,
		.reach = d->reach,
		.accept_offload = d->fe->caps & FRONTEND_CAP_OFFLOAD,
		.streams = d->fe->ops->streams != NULL,
		.keepalive_ms = o->keepalive_ms,
		.handshake_ms = o->handshake_ms,
		.queue_bytes = o->queue_bytes,
		.lazy = o->lazy,
		.idle_timeout_ms = o->idle_timeout_ms,
		.max_handshakes = o->max_handshakes,
		.max_handshakes_per_source = o->max_handshakes_per_source,
		.max_peers = o->max_peers,
		.trace = o->trace,
		.transport = transport_of(o, d->fe->ops),
		.rekey_packets = o->rekey_packets,
	};
	char err[512];

	d->tunnel = tunnel_new(&cfg, d->loop, &tunnel_callbacks, d, err, sizeof(err));
	if (!d->tunnel) {
		log_msg(TUNNEL_LOG_ERR, "%s", err);
		return -EINVAL;
	}
	attach_streams(d);
	return 0;
}

static int open_stats(struct daemon *d, const char *frontend)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	d->stats_ctx = (struct stats_context){
		.role = d->opts->command == CMD_SERVER ? "server" : "client",
		.frontend = frontend,
		.started = (double)now.tv_sec + (double)now.tv_nsec / 1e9,
	};
	if (!d->opts->stats_file)
		return 0;
	d->stats_out = fopen(d->opts->stats_file, "ae");
	if (!d->stats_out) {
		log_msg(TUNNEL_LOG_ERR, "--stats %s: %s", d->opts->stats_file, strerror(errno));
		return -errno;
	}
	ev_timer_init(&d->stats_timer, on_stats_timer, d);
	evloop_timer_start(d->loop, &d->stats_timer, d->opts->stats_interval_ms);
	return 0;
}

/* Client, --policy: the file, refused whole if bad or if this frontend cannot express it. */
static int load_policy(struct daemon *d, const struct frontend_ops *ops)
{
	const char *path = d->opts->policy_file;
	char err[600], who[64];

	if (!path)
		return 0;
	if (policy_load(path, &d->policy, err, sizeof(err)) < 0) {
		log_msg(TUNNEL_LOG_ERR, "--policy %s", err);
		return -EINVAL;
	}
	snprintf(who, sizeof(who), "the %s frontend", ops->name);
	if (policy_check_caps(&d->policy, ops->policy_keys, ops->policy_actions, who, ops->policy_why,
			      err, sizeof(err)) < 0) {
		log_msg(TUNNEL_LOG_ERR, "--policy %s:%s", path, err);
		return -EINVAL;
	}
	d->routes = calloc(d->policy.count, sizeof(*d->routes));
	if (!d->routes)
		return -ENOMEM;
	d->route_count = policy_protect_dsts(&d->policy, d->routes);
	return 0;
}

static int load_peers(struct daemon *d)
{
	char err[512];

	if (d->opts->command != CMD_SERVER)
		return 0;
	d->peers = calloc(1, sizeof(*d->peers));
	if (!d->peers)
		return -ENOMEM;
	if (peers_load(d->opts->peers_file, d->peers, err, sizeof(err)) < 0) {
		log_msg(TUNNEL_LOG_ERR, "%s", err);
		return -EINVAL;
	}
	return collect_peer_routes(d);
}

/* The soft RLIMIT_NOFILE up to the hard one; returns the soft limit now in force. */
static unsigned long raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > DAEMON_FD_CEILING
				      ? DAEMON_FD_CEILING : rl.rlim_max;

		if (want > rl.rlim_cur) {
			struct rlimit raised = { .rlim_cur = want, .rlim_max = rl.rlim_max };

			if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
				rl.rlim_cur = want;
		}
	}
	return rl.rlim_cur == RLIM_INFINITY ? DAEMON_FD_CEILING : (unsigned long)rl.rlim_cur;
}

/*
 * A server's fds: every unauthenticated connection, every peer (twice: a
 * replaced session lingers a moment beside its successor) and a reserve;
 * a stream frontend budgets its streams and flows from what is left (its
 * own flags say how many it wants). Says so when the limit is short.
 */
static void plan_fds(struct daemon *d)
{
	const struct options *o = d->opts;
	unsigned long limit = raise_fd_limit();
	unsigned long handshakes = o->max_handshakes ? o->max_handshakes : TUNNEL_MAX_HANDSHAKES_DEFAULT;
	unsigned long peers = o->max_peers ? o->max_peers : TUNNEL_MAX_PEERS_DEFAULT;
	unsigned long tunnel_need = handshakes + 2 * peers + DAEMON_FD_RESERVE;

	if (o->command != CMD_SERVER)
		return;
	if (limit < tunnel_need)
		log_msg(TUNNEL_LOG_WARN, "fd limit %lu is below the %lu that --max-handshakes and "
			"--max-peers need; accept() may fail under load", limit, tunnel_need);
	d->fd_limit = limit;
	d->fd_tunnel = tunnel_need;
	log_msg(TUNNEL_LOG_DEBUG, "fd limit %lu: %lu for the tunnel, the rest for the frontend",
		limit, tunnel_need);
}

/* The prefixes of a and b, each listed once, are the same set. */
static bool same_prefixes(const struct ip_prefix *a, size_t na, const struct ip_prefix *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		bool found = false;

		for (size_t k = 0; k < nb && !found; k++)
			found = prefix_covers(&a[i], &b[k]) && prefix_covers(&b[k], &a[i]);
		if (!found)
			return false;
	}
	return true;
}

static size_t count_unchanged(const struct policy *old, const struct policy *fresh)
{
	size_t n = 0;

	for (size_t i = 0; i < fresh->count; i++)
		for (size_t k = 0; k < old->count; k++)
			if (policy_entry_equal(&fresh->entries[i], &old->entries[k])) {
				n++;
				break;
			}
	return n;
}

/* The bypass and discard entries of a are those of b (in any order). */
static bool same_non_protect(const struct policy *a, const struct policy *b)
{
	size_t na = 0, nb = 0;

	for (size_t i = 0; i < b->count; i++)
		nb += b->entries[i].action != POLICY_PROTECT;
	for (size_t i = 0; i < a->count; i++) {
		bool found = false;

		if (a->entries[i].action == POLICY_PROTECT)
			continue;
		na++;
		for (size_t k = 0; k < b->count && !found; k++)
			found = policy_entry_equal(&a->entries[i], &b->entries[k]);
		if (!found)
			return false;
	}
	return na == nb;
}

/* Checks fresh against the running instance; 0, or -EINVAL with the reason in err. */
static int check_swap(const struct daemon *d, const struct policy *fresh, const char *path, char *err,
		      size_t err_len)
{
	struct ip_prefix *routes = calloc(fresh->count, sizeof(*routes));
	char who[64], why[512];
	int ret = -EINVAL;

	if (!routes) {
		snprintf(err, err_len, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	snprintf(who, sizeof(who), "the %s frontend", d->ops->name);
	if (policy_check_caps(fresh, d->ops->policy_keys, d->ops->policy_actions, who, d->ops->policy_why,
			      why, sizeof(why)) < 0)
		snprintf(err, err_len, "%.200s:%.400s", path, why);
	else if (!same_prefixes(routes, policy_protect_dsts(fresh, routes), d->routes, d->route_count))
		snprintf(err, err_len, "the protect prefixes differ from the running ones (routes, and what "
			 "the server may send from): restart to change them");
	else if (!d->ops->policy_reload && !same_non_protect(fresh, &d->policy))
		snprintf(err, err_len, "the bypass and discard entries differ from the running ones (the %s "
			 "frontend made them routes at start): restart to change them", d->ops->name);
	else
		ret = 0;
	free(routes);
	return ret;
}

/*
 * Whether ops can take a new policy while running: with a policy_reload
 * op, or when its whole compilation is routes (no selector keys): the
 * protect dsts' and the bypass and discard entries', which check_swap()
 * keeps unchanged. NULL, or why not.
 */
static const char *swap_refusal(const struct daemon *d)
{
	if (!d->opts->policy_file)
		return "this instance runs with --route/--select, not --policy: restart it with --policy";
	if (d->ops->policy_reload || !d->ops->policy_keys)
		return NULL;
	return "cannot swap its policy while running: restart it";
}

/* Parse, check, swap atomically; or refuse and leave all as it was. The answer goes to f. */
static void policy_swap(struct daemon *d, const char *path, FILE *f)
{
	struct frontend_config cfg;
	struct policy_hits *hits = NULL;
	struct policy fresh;
	const char *refusal = swap_refusal(d);
	char err[700];
	size_t unchanged;

	if (refusal) {
		fprintf(f, "error: the %s frontend: %s\n", d->ops->name, refusal);
		return;
	}
	if (policy_load(path, &fresh, err, sizeof(err)) < 0 ||
	    check_swap(d, &fresh, path, err, sizeof(err)) < 0) {
		fprintf(f, "error: %s\n", err);
		policy_free(&fresh);
		return;
	}
	make_config(d, &fresh, &cfg);
	if (!(hits = hits_new(&fresh)) ||
	    (d->ops->policy_reload && d->ops->policy_reload(d->fe, &cfg, err, sizeof(err)) < 0)) {
		fprintf(f, "error: %s\n", hits ? err : strerror(ENOMEM));
		hits_free(hits);
		policy_free(&fresh);
		return;
	}
	unchanged = count_unchanged(&d->policy, &fresh);
	hits_carry(hits, d->hits);
	hits_free(d->hits);
	d->hits = hits;
	policy_free(&d->policy);
	d->policy = fresh;
	hits_rebind(hits, &d->policy);
	log_msg(TUNNEL_LOG_INFO, "policy %s loaded: %zu entries, %zu unchanged", path, fresh.count, unchanged);
	fprintf(f, "ok: %zu entries, %zu unchanged\n", fresh.count, unchanged);
}

/* SIGHUP, client with --policy: the file again, through the same swap; the answer is logged. */
static void reload_policy(struct daemon *d)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!d->opts->policy_file)
		return;
	f = open_memstream(&text, &len);
	if (!f) {
		log_msg(TUNNEL_LOG_ERR, "SIGHUP: --policy: %s", strerror(errno));
		return;
	}
	policy_swap(d, d->opts->policy_file, f);
	fclose(f);
	while (len && text[len - 1] == '\n')
		text[--len] = '\0';
	if (strncmp(text, "ok", 2) != 0)
		log_msg(TUNNEL_LOG_ERR, "SIGHUP: --policy: %s; the previous policy stays in force",
			strncmp(text, "error: ", 7) == 0 ? text + 7 : text);
	free(text);
}

static void on_ctl(void *arg, const struct ctl_request *req, FILE *f)
{
	struct daemon *d = arg;
	struct tunnel_stats ts;
	struct show_state s = {
		.pid = (long)getpid(),
		.endpoint = d->opts->endpoint,
		.ctx = &d->stats_ctx,
		.ts = &ts,
		.fs = &d->fe->stats,
		.ss = d->ops->streams ? &d->fe->stream_stats : NULL,
		.policy = d->policy.count ? &d->policy : NULL,
		.hits = d->hits,
	};

	tunnel_stats(d->tunnel, &ts);
	switch (req->command) {
	case CTL_SHOW:
		show_write_text(f, &s);
		break;
	case CTL_SHOW_JSON:
		show_write_json(f, &s);
		break;
	case CTL_POLICY_SHOW:
		show_write_policy(f, s.policy);
		break;
	case CTL_POLICY_LOAD:
		policy_swap(d, req->path, f);
		break;
	case CTL_HANDOVER:
		handover(d, "control socket", f);
		break;
	case CTL_DOWN:
		down(d, f);
		break;
	}
}

static int open_ctl(struct daemon *d)
{
	char err[300];

	/* Without --policy, the flags' entries, for `tunlab policy show` only. */
	if (!d->opts->policy_file && d->opts->command == CMD_CLIENT &&
	    policy_from_flags(d->opts->routes, d->opts->route_count, d->opts->selectors,
			      d->opts->selector_count, &d->policy, err, sizeof(err)) < 0)
		log_msg(TUNNEL_LOG_WARN, "policy show: %s", err);
	if (d->policy.count && !(d->hits = hits_new(&d->policy)))
		log_msg(TUNNEL_LOG_WARN, "policy hit counts: %s", strerror(errno));
	/* Without it the tunnel still works: `tunlab show` just does not see this instance. */
	d->ctl = ctl_server_open(d->loop, OWNER_RUN_DIR, on_ctl, d, err, sizeof(err));
	if (!d->ctl)
		log_msg(TUNNEL_LOG_WARN, "no control socket: %s", err);
	return 0;
}

static int daemon_setup(struct daemon *d, const struct frontend_ops *ops)
{
	int ret;

	d->ops = ops;
	if (d->opts->transport && strcmp(d->opts->transport, "tls") && ops->streams) {
		log_msg(TUNNEL_LOG_ERR, "--transport %s: the %s frontend carries streams, which ride "
			"the TLS stream; only tls applies", d->opts->transport, ops->name);
		return -EINVAL;
	}
	if (d->opts->lazy && ops->streams) {
		/* Streams open on an established session: no packet comes to set one up. */
		log_msg(TUNNEL_LOG_ERR, "--lazy: the %s frontend carries streams, not packets; it "
			"connects at start", ops->name);
		return -EINVAL;
	}
	plan_fds(d);
	d->loop = evloop_new();
	if (!d->loop)
		return -errno;
	evloop_set_spin_us(d->loop, d->opts->busy_poll_us);
	ret = open_signals(d);
	if (ret < 0) {
		log_msg(TUNNEL_LOG_ERR, "signals: %s", strerror(-ret));
		return ret;
	}
	ret = load_peers(d);
	if (ret == 0)
		ret = load_policy(d, ops);
	if (ret < 0)
		return ret;
	ret = open_frontend(d, ops);
	if (ret < 0)
		return ret;
	ret = open_reach(d);
	if (ret < 0)
		return ret;
	ret = open_tunnel(d);
	if (ret < 0)
		return ret;
	ret = open_stats(d, ops->name);
	if (ret < 0)
		return ret;
	return open_ctl(d);
}

static void daemon_teardown(struct daemon *d)
{
	if (d->tunnel)
		write_stats(d, "exit");
	if (d->stats_out)
		fclose(d->stats_out);
	ctl_server_close(d->ctl);
	tunnel_free(d->tunnel);
	if (d->fe)
		d->fe->ops->close(d->fe);
	if (d->signal_fd > 0)
		close(d->signal_fd);
	evloop_free(d->loop);
	reach_free(d->reach);
	peers_free(d->peers);
	free(d->peers);
	free(d->routes);
	hits_free(d->hits);
	policy_free(&d->policy);
}

int daemon_run(const struct options *opts, const struct frontend_ops *ops)
{
	struct daemon d = { .opts = opts, .signal_fd = -1 };
	int ret;

	log_init(opts->command == CMD_SERVER ? "server" : "client", opts->verbose);
	ret = daemon_setup(&d, ops);
	if (ret == 0) {
		log_msg(TUNNEL_LOG_INFO, "frontend %s up, tunnel %s %s", ops->name,
			opts->command == CMD_SERVER ? "listening on" : "connecting to",
			opts->endpoint);
		ret = evloop_run(d.loop);
		if (ret < 0)
			log_msg(TUNNEL_LOG_ERR, "event loop: %s", strerror(-ret));
	}
	daemon_teardown(&d);
	if (ret < 0)
		return 1;
	return d.exit_status;
}
