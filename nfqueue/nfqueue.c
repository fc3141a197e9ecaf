// SPDX-License-Identifier: MIT
/* The NFQUEUE frontend: steal selected packets at a netfilter hook, inject them through nfkit/pktinject. */

/*
 * Capture. tunlab adds its own chains to the raw table, TUNLAB-<pid>-OUT
 * (jumped to from OUTPUT: locally originated packets) and TUNLAB-<pid>-PRE
 * (from PREROUTING: forwarded packets, for a gateway, and the server's
 * return traffic from the hosts behind it). The jump rules carry the
 * comment "tunlab:pid=<pid>" (plus " addr=<inner address>"). Raw runs
 * before conntrack, so stolen packets create no conntrack state. In the
 * chains, one rule per remote prefix (client: --route; server: every
 * peer's prefixes) and per --select selector (none: everything):
 *
 *   -d PREFIX [-s SRC] [-p PROTO] [--sport A[:B]] [--dport A[:B]]
 *      [-m mark --mark M] [-m owner --uid-owner U]       (uid: OUT only)
 *      -j NFQUEUE --queue-num Q | --queue-balance Q:Q+N-1  [--queue-bypass]
 *
 * IPv6 prefixes go to ip6tables. Each family's ruleset is applied at once
 * with iptables-restore --noflush (iptables-nft is what works here). Only
 * if that fails, and a one-rule probe shows the NFQUEUE target missing, is
 * the same ruleset tried as an nft table (inet tunlab_<pid>, priority raw)
 * with nft's queue statement; if neither works, open fails with "neither
 * iptables' NFQUEUE target nor nft's queue statement is available (kernel
 * lacks xt_NFQUEUE and nft_queue)".
 *
 * Queue. libnetfilter_queue over libmnl: NFQNL_COPY_PACKET of whole
 * packets; NFQA_CFG_F_GSO (unless --no-offload) so that GSO packets arrive
 * whole instead of being segmented in the kernel for nothing, their partial
 * checksums described as PKT_F_NEEDS_CSUM and TCP GSO as TCPV4/TCPV6 with
 * gso_size = MTU - IP header - TCP header (the tunnel segments in software
 * for peers that cannot take offload). 8 MiB receive buffers; ENOBUFS is
 * counted in capture_drops and never fatal. Reads are one recvmmsg of up
 * to PKT_BATCH_MAX packets into buffers allocated once; every packet gets
 * NF_DROP ("steal": we hold the copy), so one NFQNL_MSG_VERDICT_BATCH per
 * read settles them all. --queues N binds N queues, one socket each, held
 * each a watcher of its own on the daemon's event loop (base/capwatch.h).
 *
 * Fail-closed is the default: a full queue drops (the kernel's default),
 * and so does a rule whose queue has no listener: when tunlab dies, by
 * kill -9 too, its rules stay and traffic to the remote prefixes is
 * dropped, never sent in clear. --fail-open sets NFQA_CFG_F_FAIL_OPEN and
 * --queue-bypass: packets then pass in clear on their normal path.
 *
 * Inject (nfkit/pktinject.c). By default (--inject lo) a packet socket
 * on lo with a virtio-net header, one sendmmsg per batch: GSO packets go
 * in whole, so FRONTEND_CAP_OFFLOAD is on (unless --no-offload), and the
 * frame loops in on lo to be delivered or forwarded. --inject raw: a raw
 * socket per family (IPPROTO_RAW: the header is ours, as the original
 * sender built it), each packet sent to its own destination, no GSO and
 * no CAP_OFFLOAD. Injected packets
 * carry SO_MARK 0x7475; on a client the OUT and PRE chains return such
 * packets first, so nothing from the tunnel is stolen back into it. A
 * server has no such rule: a packet one client sends to another is stolen
 * again and relayed.
 *
 * Routing (nfkit/loroutes.c, KEEP_PATH). The rules steal at the hook, so
 * traffic they do not select keeps its normal path; tunlab never routes a
 * remote prefix elsewhere. With --address the address goes on lo as a /32
 * or /128 (IPv4 labelled lo:tl<pid>) and each remote prefix gets a copy
 * of its current path with "src <inner address> proto 77": local traffic
 * to the remote prefixes carries the inner address. A prefix with no
 * route at all is routed "dev lo" so that its packets reach OUTPUT (the
 * server does this for its clients' prefixes: their forwarded return
 * traffic is stolen in raw PREROUTING, before any routing). Without
 * --address, dst sees the source address the stack picked (the
 * underlay's), which the server drops as a spoofed source unless the
 * peer's prefixes include it.
 *
 * Cleanup. close deletes the routes and the lo address, then the rules,
 * then closes the sockets. `tunlab cleanup`, and every nfqueue open first,
 * removes what instances that no longer run left in this network
 * namespace: their chains and jump rules (or nft table), found by pid,
 * and the routes and lo address their rules record (nfkit/leftovers.c).
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/capwatch.h"
#include "../nfkit/kitfe.h"
#include "nfq.h"
#include "nfqueue.h"

enum { NFQ_MTU_DEFAULT = 1500 };

struct nfqf {
	struct frontend fe;
	struct nfq_queues queues;
	struct capwatch watch;
	struct pktinject_any inject;
	struct nfq_rules rules;
	struct loroutes routes;
	struct owner_lock owner; /* held while any object of ours exists */
	uint16_t queue_first;    /* for a policy swap's rules */
	unsigned queue_count;
	bool fail_open;          /* for a policy swap's rules */
	bool verbose;
};

/* nfqueue's own flags (its flags table below), zero meaning the default. */
struct nfqf_flags {
	unsigned queues;
	bool fail_open;
	const char *inject;
};

static const struct nfqf_flags nfqf_no_flags;

static struct nfqf *to_nfqf(const struct frontend *fe)
{
	return (struct nfqf *)fe;
}

static int nfqf_open(struct frontend **out, const struct frontend_config *cfg, char *err,
		     size_t err_len)
{
	const struct nfqf_flags *fl = cfg->flags ? cfg->flags : &nfqf_no_flags;
	struct nfq_queue_params qp = {
		.count = fl->queues ? fl->queues : 1,
		.gso = cfg->offload,
		.fail_open = fl->fail_open,
		.mtu = cfg->mtu ? cfg->mtu : NFQ_MTU_DEFAULT,
	};
	struct nfq_rules_params rp = { .cfg = cfg, .queue_count = qp.count, .fail_open = fl->fail_open };
	char ignored[256];
	struct nfqf *n;
	enum pktinject_method method;
	int ret = pktinject_any_parse(fl->inject, &method);

	if (ret < 0) {
		snprintf(err, err_len, "--inject '%s': not an injection method; nfqueue injects "
			 "with lo (a packet socket on lo, GSO, the default), dev (the same on the "
			 "egress device) or raw (a raw socket)",
			 fl->inject);
		goto out;
	}
	n = calloc(1, sizeof(*n));
	ret = -ENOMEM;
	if (!n) {
		snprintf(err, err_len, "nfqueue: %s", strerror(ENOMEM));
		goto out;
	}
	n->fe.ops = &nfqueue_frontend;
	n->verbose = cfg->verbose;
	/* A dead instance's lo address and routes would collide with ours. */
	leftovers_cleanup(cfg->verbose, true, ignored, sizeof(ignored));
	/* After that cleanup: a predecessor with our pid must still be judged dead. */
	ret = owner_lock_acquire(&n->owner, OWNER_RUN_DIR, err, err_len);
	if (ret < 0)
		goto err_free;
	ret = nfq_queues_open(&n->queues, &qp, err, err_len);
	if (ret < 0)
		goto err_owner;
	ret = pktinject_any_open(&n->inject, fl->inject, method, err, err_len);
	if (ret < 0)
		goto err_queues;
	if (n->inject.method != PKTINJECT_RAW && cfg->offload)
		n->fe.caps |= FRONTEND_CAP_OFFLOAD;
	rp.queue_first = n->queues.first;
	n->queue_first = rp.queue_first;
	n->queue_count = rp.queue_count;
	n->fail_open = fl->fail_open;
	ret = nfq_rules_install(&n->rules, &rp, err, err_len);
	if (ret < 0)
		goto err_inject;
	ret = kitfe_routes(&n->routes, &n->owner, cfg, LOROUTES_KEEP_PATH, "nfqueue", err, err_len);
	if (ret < 0)
		goto err_rules;
	*out = &n->fe;
	return 0;

err_rules:
	nfq_rules_remove(&n->rules, cfg->verbose);
err_inject:
	pktinject_any_close(&n->inject);
err_queues:
	nfq_queues_close(&n->queues);
err_owner:
	owner_lock_release(&n->owner);
err_free:
	free(n);
out:
	return ret;
}

/* The routes stay (the daemon checked the protect dsts are the same); the chains are swapped. */
static int nfqf_policy_reload(struct frontend *fe, const struct frontend_config *cfg, char *err,
			      size_t err_len)
{
	struct nfqf *n = to_nfqf(fe);
	struct nfq_rules_params rp = { .cfg = cfg, .queue_first = n->queue_first,
				       .queue_count = n->queue_count, .fail_open = n->fail_open };

	return nfq_rules_replace(&n->rules, &rp, err, err_len);
}

static int nfqf_start(struct frontend *fe, struct evloop *loop, const struct frontend_sink *sink)
{
	struct nfqf *n = to_nfqf(fe);
	int fds[NFQ_QUEUES_MAX];

	return capwatch_start(&n->watch, loop, sink, fds, nfq_queues_fds(&n->queues, fds));
}

static void nfqf_pause(struct frontend *fe, bool paused)
{
	capwatch_pause(&to_nfqf(fe)->watch, paused);
}

static int nfqf_read_batch(struct frontend *fe, struct pkt_batch *batch)
{
	struct nfqf *n = to_nfqf(fe);

	return nfq_queues_read(&n->queues, &n->watch.ready, batch, &fe->stats, fe->error,
			       sizeof(fe->error));
}

static int nfqf_write_batch(struct frontend *fe, const struct pkt_batch *batch)
{
	return kitfe_inject(fe, &to_nfqf(fe)->inject, batch);
}

static void nfqf_close(struct frontend *fe)
{
	struct nfqf *n = to_nfqf(fe);

	if (!n)
		return;
	/* Routes first, rules last: until the end, nothing selected leaves in clear. */
	loroutes_teardown(&n->routes, n->verbose);
	nfq_rules_remove(&n->rules, n->verbose);
	owner_lock_release(&n->owner);
	pktinject_any_close(&n->inject);
	capwatch_stop(&n->watch);
	nfq_queues_close(&n->queues);
	free(n);
}

static const struct frontend_flag nfqf_flags[] = {
	{ "--queues", FRONTEND_FLAG_UINT, offsetof(struct nfqf_flags, queues), FRONTEND_FLAG_BOTH, 1, 16,
	  "N", "netfilter queues to balance over (default 1)" },
	{ "--fail-open", FRONTEND_FLAG_SET, offsetof(struct nfqf_flags, fail_open), FRONTEND_FLAG_BOTH, 0, 0,
	  NULL, "let packets pass in clear when the queue is full or gone" },
	{ "--inject", FRONTEND_FLAG_STRING, offsetof(struct nfqf_flags, inject), FRONTEND_FLAG_BOTH, 0, 0,
	  "HOW", "deliver packets through lo with GSO (lo, default), on the egress device with GSO "
	  "(dev) or with a raw socket (raw)" },
	{ NULL },
};

static const struct frontend_packet_ops nfqf_packet_ops = {
	.read_batch = nfqf_read_batch,
	.write_batch = nfqf_write_batch,
	.pause = nfqf_pause,
};

const struct frontend_ops nfqueue_frontend = {
	.name = "nfqueue",
	/* Every key is an iptables match; the actions are NFQUEUE, RETURN and DROP. */
	.policy_keys = POLICY_KEY_SRC | POLICY_KEY_PROTO | POLICY_KEY_DPORT | POLICY_KEY_SPORT | POLICY_KEY_MARK |
		       POLICY_KEY_UID,
	.policy_actions = POLICY_ACTION_BIT(POLICY_PROTECT) | POLICY_ACTION_BIT(POLICY_BYPASS) |
			  POLICY_ACTION_BIT(POLICY_DISCARD),
	.policy_why = "",
	.policy_reload = nfqf_policy_reload,
	.summary = "steal selected packets to NFQUEUE with raw-table rules, inject GSO packets through lo",
	.open = nfqf_open,
	.start = nfqf_start,
	.packets = &nfqf_packet_ops,
	.close = nfqf_close,
	.cleanup = kitfe_cleanup,
	.flags = nfqf_flags,
	.flags_size = sizeof(struct nfqf_flags),
};
