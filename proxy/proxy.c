// SPDX-License-Identifier: MIT
/* The proxy frontend: TCP connections and UDP flows to the remote prefixes carried as streams. */

/*
 * The fourth approach of DESIGN.md, as sshuttle does it: intercept at the
 * socket layer, not the packet layer, and carry byte streams. It is fast
 * for TCP (no per-packet work, no inner TCP over the tunnel's TCP) and
 * blind to everything that is not TCP or UDP; the far end opens its own
 * connections, so the source address is lost.
 *
 * Client. iptables nat OUTPUT REDIRECTs TCP toward the routes (and the
 * --select selectors) to a listener on 127.0.0.1 / ::1 (px_client.c);
 * each accepted connection's SO_ORIGINAL_DST becomes a STREAM_OPEN. UDP
 * is marked in mangle OUTPUT, rerouted to lo by a fwmark rule, and
 * TPROXYed in mangle PREROUTING to a transparent socket (127.0.0.1 / ::1)
 * that learns the original destination per datagram (px_udp.c).
 * Everything else toward the routes (ICMP, other protocols) is dropped by
 * a filter rule whose counter is the dropped_uncarried stat: what the
 * proxy cannot carry must not leak in clear (px_rules.c).
 *
 * A SYN toward the routes waits in a netfilter queue until the exit has
 * connected, so that a refusal reaches the application as ECONNREFUSED
 * (px_syn.c).
 *
 * Server (the exit). A STREAM_OPEN becomes a non-blocking connect from
 * the server's own address to the original destination (px_exit.c); a
 * refusal or an unreachable destination goes back as STREAM_RESET with
 * its reason, success as STREAM_CONNECTED. DGRAMs of a flow
 * leave from one connected UDP socket per flow.
 *
 * Relay (px_conn.c, both ends alike): per-stream windows (STREAM_WINDOW,
 * credits as the socket consumes) bound what each stream may make the
 * other end buffer; a link whose tunnel send buffer passes high water
 * stops every socket read on that link until LINK_WRITABLE.
 *
 * Events: every socket is a watcher on the daemon's event loop with its
 * own callback, and a loop timer ticks for timeouts and counters (the
 * start op). What a round sent is flushed once at its end. LINK_DOWN may
 * arrive inside a send of ours (a flush that fails ends the session), so
 * it only marks the link; the link's streams are torn down at the end of
 * the round (evloop_defer), before the tunnel frees the session.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#include "../base/keyhash.h"
#include "proxy.h"
#include "px.h"

static struct proxy *to_proxy(const struct frontend *fe)
{
	return (struct proxy *)fe;
}

static void link_teardown(struct px_link *l)
{
	while (l->conns)
		px_conn_abort(l->conns);
	while (l->flows)
		px_flow_free(l->flows);
}

/* Links marked down by the tunnel: their streams die now, outside the tunnel's calls. */
static void reap_links(struct ev_defer *d)
{
	struct proxy *px = (struct proxy *)((char *)d - offsetof(struct proxy, reap));
	struct px_link **at = &px->links, *l;

	while ((l = *at)) {
		if (!l->down) {
			at = &l->next;
			continue;
		}
		link_teardown(l);
		*at = l->next;
		free(l);
	}
}

static void link_writable(struct px_link *l)
{
	l->blocked = false;
	for (struct px_conn *c = l->conns; c; c = c->next)
		px_conn_update(c);
}

static void link_down(struct proxy *px, struct stream_link *link)
{
	for (struct px_link *l = px->links; l; l = l->next)
		if (l->link == link)
			l->down = true;
	/* Before the start op nothing can be down: close tears down what is left. */
	if (px->loop)
		evloop_defer(px->loop, &px->reap, reap_links);
}

/* ---- the tunnel's side ---- */

static void on_conn_msg(struct proxy *px, struct px_link *l, const struct stream_msg *msg)
{
	struct px_conn *c = l ? px_conn_find(px, l, msg->id) : NULL;

	/* A stream we already closed: its last frames cross our RESET or FIN. */
	if (c)
		px_conn_on_msg(c, msg);
}

static void pxf_stream_event(struct frontend *fe, const struct stream_msg *msg)
{
	struct proxy *px = to_proxy(fe);
	struct px_link *l;

	switch (msg->type) {
	case STREAM_MSG_LINK_UP:
		px_link_get(px, msg->link, true); /* no memory: made again at first use */
		return;
	case STREAM_MSG_LINK_DOWN:
		link_down(px, msg->link);
		return;
	case STREAM_MSG_LINK_WRITABLE:
		l = px_link_get(px, msg->link, false);
		if (l)
			link_writable(l);
		return;
	case STREAM_MSG_OPEN:
		if (px->server)
			px_exit_open(px, msg);
		return;
	case STREAM_MSG_DGRAM:
		px_udp_on_dgram(px, px_link_get(px, msg->link, px->server), msg);
		return;
	default:
		on_conn_msg(px, px_link_get(px, msg->link, false), msg);
		return;
	}
}

static void pxf_attach(struct frontend *fe, const struct stream_port *port)
{
	struct proxy *px = to_proxy(fe);

	px->port_copy = *port;
	px->port = &px->port_copy;
}

/* ---- housekeeping ---- */

static void tick(struct evloop *loop, struct ev_timer *timer)
{
	struct proxy *px = timer->arg;
	uint64_t now = px_now_ms(), dropped;

	evloop_timer_start(loop, timer, PX_TICK_MS);
	for (struct px_link *l = px->links; l; l = l->next) {
		struct px_conn *c = l->conns, *cnext;
		struct px_flow *f = l->flows, *fnext;

		for (; c; c = cnext) {
			cnext = c->next; /* a timeout frees c */
			px_conn_tick(c, now);
		}
		for (; f; f = fnext) {
			fnext = f->next;
			px_flow_tick(f, now);
		}
	}
	if (!px->server) {
		px_syn_tick(px, now);
		px_client_resume(px);
	}
	if (!px->server && ++px->ticks % PX_COUNTER_TICKS == 0 &&
	    px_rules_uncarried(&px->rules, &dropped) == 0)
		px->fe.stream_stats.dropped_uncarried = dropped;
}

/* The listeners and the SYN queue were opened by open; the exit's sockets come later. */
static int pxf_start(struct frontend *fe, struct evloop *loop, const struct frontend_sink *sink)
{
	struct proxy *px = to_proxy(fe);
	int ret = 0;

	(void)sink; /* streams, not packets: nothing to tell the daemon */
	px->loop = loop;
	for (int fam = 0; fam < 2 && ret == 0; fam++) {
		if (px->tcp[fam].fd >= 0)
			ret = px_watch_start(px, &px->tcp[fam].w);
		if (ret == 0 && px->udp[fam].fd >= 0)
			ret = px_watch_start(px, &px->udp[fam].w);
	}
	if (ret == 0 && px->syn.nl)
		ret = px_watch_start(px, &px->syn.w);
	if (ret < 0)
		return ret; /* close takes off what did go on */
	ev_timer_init(&px->tick, tick, px);
	evloop_timer_start(loop, &px->tick, PX_TICK_MS);
	return 0;
}

/*
 * The rules, with the SYN hold if the kernel lets us queue: without it
 * the proxy still works, and fe.error says what the applications lose.
 */
static int install_rules(struct proxy *px, struct px_rules_params *rp, char *err, size_t err_len)
{
	char why[192];
	int ret;

	rp->syn_hold = px_syn_open(&px->syn, px, why, sizeof(why)) == 0;
	rp->syn_queue = px->syn.queue;
	ret = px_rules_install(&px->rules, rp, err, err_len);
	if (ret < 0 && rp->syn_hold) {
		snprintf(why, sizeof(why), "SYN hold rules: %s", err);
		px_syn_close(&px->syn);
		rp->syn_hold = false;
		ret = px_rules_install(&px->rules, rp, err, err_len);
	}
	if (ret == 0 && !rp->syn_hold)
		snprintf(px->fe.error, sizeof(px->fe.error),
			 "%.180s; a refused connection reaches applications as a reset after connect",
			 why);
	return ret;
}

static int open_client(struct proxy *px, const struct frontend_config *cfg, char *err,
		       size_t err_len)
{
	struct px_rules_params rp = { .cfg = cfg };
	int ret = px_client_listen(px, cfg, err, err_len);

	if (ret < 0)
		return ret;
	ret = px_udp_listen(px, err, err_len);
	if (ret < 0)
		goto err_tcp;
	for (int fam = 0; fam < 2; fam++) {
		rp.tcp_port[fam] = px->tcp[fam].port;
		rp.udp_port[fam] = px->udp[fam].port;
	}
	ret = install_rules(px, &rp, err, err_len);
	if (ret < 0)
		goto err_udp;
	return 0;

err_udp:
	px_syn_close(&px->syn);
	px_udp_close(px);
err_tcp:
	px_client_close(px);
	return ret;
}

static void pxf_free(struct proxy *px)
{
	keyhash_free(px->conn_hash);
	free(px->iobuf);
	free(px);
}

/*
 * The exit's streams and flows: --max-streams if the fds the daemon left
 * allow it, else what they allow (at least PX_EXIT_BUDGET_MIN); says in
 * fe.error when the limit is short of --max-streams.
 */
static unsigned exit_budget(struct proxy *px, const struct frontend_config *cfg, unsigned want)
{
	unsigned long left = cfg->fd_limit > cfg->fd_tunnel ? cfg->fd_limit - cfg->fd_tunnel : 0;
	unsigned long budget = want ? want : left;

	if (!cfg->fd_limit)
		return want ? want : PX_EXIT_BUDGET_DEFAULT;
	if (want && want > left)
		snprintf(px->fe.error, sizeof(px->fe.error), "fd limit %lu is below the %lu that the "
			 "caps need (--max-streams %u); the exit refuses streams and flows beyond %lu",
			 cfg->fd_limit, cfg->fd_tunnel + want, want, left);
	if (budget > left)
		budget = left > PX_EXIT_BUDGET_MIN ? left : PX_EXIT_BUDGET_MIN;
	if (budget > UINT32_MAX / 2)
		budget = UINT32_MAX / 2;
	return budget ? (unsigned)budget : PX_EXIT_BUDGET_DEFAULT;
}

static int pxf_open(struct frontend **out, const struct frontend_config *cfg, char *err,
		      size_t err_len)
{
	static const struct proxy_flags no_flags;
	const struct proxy_flags *fl = cfg->flags ? cfg->flags : &no_flags;
	struct proxy *px = calloc(1, sizeof(*px));
	char ignored[256];
	int ret = -ENOMEM;

	if (!px) {
		snprintf(err, err_len, "proxy: %s", strerror(ENOMEM));
		return ret;
	}
	px->fe.ops = &proxy_frontend;
	px->server = cfg->role == FRONTEND_SERVER;
	px->verbose = cfg->verbose;
	px->max_streams = exit_budget(px, cfg, fl->max_streams);
	px->max_streams_per_client = px_per_client_cap(fl->max_streams_per_client, px->max_streams,
							  PX_STREAMS_PER_CLIENT);
	px->max_flows_per_client = px_per_client_cap(fl->max_flows_per_client, px->max_streams,
							PX_FLOWS_PER_CLIENT);
	px->udp[0].fd = px->udp[1].fd = -1;
	px->tcp[0].fd = px->tcp[1].fd = -1;
	px->iobuf = malloc(PX_IOBUF_BYTES);
	if (!px->iobuf) {
		snprintf(err, err_len, "proxy: %s", strerror(ENOMEM));
		goto err_free;
	}
	px->conn_hash = keyhash_new();
	if (!px->conn_hash) {
		ret = -errno;
		snprintf(err, err_len, "proxy: keyed hash: %s", strerror(errno));
		goto err_free;
	}
	if (!px->server) {
		px_rules_cleanup(cfg->verbose, ignored, sizeof(ignored));
		ret = open_client(px, cfg, err, err_len);
		if (ret < 0)
			goto err_free;
	}
	*out = &px->fe;
	return 0;

err_free:
	pxf_free(px);
	return ret;
}

static void pxf_close(struct frontend *fe)
{
	struct proxy *px = to_proxy(fe);

	if (!px)
		return;
	/*
	 * Held SYNs are answered while the REJECT rules still stand; then the
	 * rules go: from here on, nothing new is intercepted.
	 */
	while (px->syn.pending)
		px_syn_forget(px->syn.pending, STREAM_RESET_REFUSED);
	if (!px->server)
		px_rules_remove(&px->rules);
	px->port = NULL; /* the tunnel is gone by now */
	while (px->links) {
		struct px_link *l = px->links;

		px->links = l->next;
		link_teardown(l);
		free(l);
	}
	if (px->loop) {
		evloop_timer_stop(px->loop, &px->tick);
		if (px->syn.nl)
			px_watch_del(px, &px->syn.w);
		/* The buried conns and flows, and a reap or flush of ours still queued. */
		evloop_run_deferred(px->loop);
	}
	px_syn_close(&px->syn);
	px_udp_close(px);
	px_client_close(px);
	pxf_free(px);
}

static int pxf_cleanup(bool verbose, char *err, size_t err_len)
{
	return px_rules_cleanup(verbose, err, err_len);
}

static const struct frontend_stream_ops pxf_stream_ops = {
	.attach = pxf_attach,
	.stream_event = pxf_stream_event,
};

static const struct frontend_flag pxf_flags[] = {
	{ "--max-streams", FRONTEND_FLAG_UINT, offsetof(struct proxy_flags, max_streams),
	  FRONTEND_FLAG_SERVER, 1, 1u << 24,
	  "N", "exit: TCP streams and UDP flows in all (default: what the fd limit leaves)" },
	{ "--max-streams-per-client", FRONTEND_FLAG_UINT, offsetof(struct proxy_flags, max_streams_per_client),
	  FRONTEND_FLAG_SERVER, 1, 1u << 24,
	  "N", "exit: TCP streams of one client (default 4096, at most 1/4 of the budget)" },
	{ "--max-flows-per-client", FRONTEND_FLAG_UINT, offsetof(struct proxy_flags, max_flows_per_client),
	  FRONTEND_FLAG_SERVER, 1, 1u << 24,
	  "N", "exit: UDP flows of one client (default 1024, at most 1/4 of the budget)" },
	{ NULL },
};

const struct frontend_ops proxy_frontend = {
	.name = "proxy",
	/* Every key is an iptables match; its nat and mangle rules only redirect so far. */
	.policy_keys = POLICY_KEY_SRC | POLICY_KEY_PROTO | POLICY_KEY_DPORT | POLICY_KEY_SPORT | POLICY_KEY_MARK |
		       POLICY_KEY_UID,
	.policy_actions = POLICY_ACTION_BIT(POLICY_PROTECT),
	.policy_why = "its REDIRECT and TPROXY rules take protect entries only",
	.summary = "intercept TCP (REDIRECT) and UDP (TPROXY) at the socket layer, carry byte streams",
	.open = pxf_open,
	.start = pxf_start,
	.streams = &pxf_stream_ops,
	.close = pxf_close,
	.cleanup = pxf_cleanup,
	.flags = pxf_flags,
	.flags_size = sizeof(struct proxy_flags),
};
