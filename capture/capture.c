// SPDX-License-Identifier: MIT
/* The loopback + libpcap frontend: the first background text's design, built as well as it can be. */

/*
 * Capture. Every remote prefix (client: --route; server: every peer's
 * prefixes) is routed to lo with "src <inner address>" and "mtu <inner
 * MTU>", proto 77 (nfkit/loroutes.c, TO_LO; IPv6 prefixes as "local"
 * routes, since Linux turns an IPv6 route via lo into a reject route).
 * The stack builds the packet as for any other route and sends it out
 * through lo, which loops it straight back in. libpcap reads it there on
 * its way in (cap_pcap.c), and a raw-table rule "-i lo -d PREFIX -j DROP"
 * in a chain TUNLAB-<pid>-PCAP (cap_text.c) stops it before conntrack
 * and routing: without it the kernel would deliver it locally (a route
 * via lo makes the destination local: the stack answers pings for dst,
 * resets TCP for it) or, for the server's forwarded return traffic, send
 * it round lo until its TTL runs out, each lap captured again.
 *
 * The server's return traffic from the hosts behind it to its clients'
 * prefixes takes the same way for IPv4: forwarded to the route via lo, it
 * loops back in and is read and dropped like the client's own. For IPv6
 * that cannot work (a reject route answers "no route", a local route
 * delivers a forwarded packet without passing lo), so a second handle on
 * "any" reads it where it arrives and the DROP rule matches every
 * interface: the limitation of "loopback is closed on the local machine".
 *
 * Large segments. lo has a 64 KiB MTU and does TSO and checksum offload,
 * so local TCP hands lo one packet of up to 64 KiB per burst, whatever
 * the route's MTU, with its checksum partial (the field holds the
 * pseudo-header sum): that is what libpcap reads. Such packets are
 * described, not finished here: PKT_F_NEEDS_CSUM when the field holds the
 * pseudo-header sum, TCP GSO with gso_size from the inner MTU when longer
 * than it (base/offload.c); the tunnel carries them whole and the
 * sending side segments and checksums in software for a peer that cannot
 * inject them (--inject raw or pcap), so one 64 KiB packet
 * crosses the frontend boundary and TLS sees one large write.
 *
 * Inject. By default a packet socket on lo with a virtio-net header
 * (nfkit/pktinject.c, one sendmmsg per batch, GSO packets whole:
 * FRONTEND_CAP_OFFLOAD unless --no-offload); --inject raw, raw sockets
 * (nfkit/rawinject.c); --inject pcap, pcap_inject on the lo handle
 * (cap_inject.c, one send per packet). The last two take no offload.
 *
 * Fail-closed. When tunlab dies, by kill -9 too, routes and rules stay:
 * traffic to the prefixes keeps looping into lo and being dropped, never
 * sent in clear. `tunlab cleanup` (and every open first) removes what
 * dead instances left (nfkit/leftovers.c); after that, traffic follows
 * whatever route is left, in clear.
 *
 * Policy. protect entries are the routes to lo above; bypass and discard
 * entries are routes of their own (base/polroutes.h, through loroutes, so
 * recorded and removed with the rest): a blackhole for discard, never
 * reaching lo, so neither captured nor looped; for a bypass inside a
 * protect prefix, a more specific copy of its path before tunlab, so its
 * packets leave by the underlay and never pass lo either.
 *
 * What the approach cannot do: --select or a policy selector beyond dst
 * (a route takes everything to a prefix; nfqueue selects), --fail-open (nothing to fall back to), apply
 * backpressure (a full ring drops, counted from pcap_stats in
 * capture_drops), or keep local traffic inside a prefix local, other
 * than to the inner address.
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/capwatch.h"
#include "../nfkit/kitfe.h"
#include "../nfkit/leftovers.h"
#include "../nfkit/loroutes.h"
#include "../nfkit/pktinject.h"
#include "../nfkit/tagrules.h"
#include "cap.h"
#include "capture.h"

enum { CAP_MTU_DEFAULT = 1500 };

struct capf {
	struct frontend fe;
	struct cap_reader reader;
	struct capwatch watch;
	bool inject_pcap;
	enum pktinject_method method; /* unless inject_pcap */
	const char *inject_name;      /* --inject as given, NULL: the default */
	struct pktinject_any raw; /* lo (GSO) or raw: unless --inject pcap */
	struct cap_inject pinject;
	struct cap_plan plans[CAP_HANDLES_MAX];
	unsigned plan_count;
	bool rules[TAGRULES_FAM_COUNT]; /* the families whose rules we installed */
	long pid;
	char comment[TAGRULES_COMMENT_MAX];
	struct loroutes routes;
	struct owner_lock owner; /* held while any object of ours exists */
	bool verbose;
};

static struct capf *to_capf(const struct frontend *fe)
{
	return (struct capf *)fe;
}

/* pcap's own flags (its flags table below); NULL: the default. */
struct capf_flags {
	const char *inject;
};

static const char *capf_inject(const struct frontend_config *cfg)
{
	return cfg->flags ? ((const struct capf_flags *)cfg->flags)->inject : NULL;
}

/* What a route to lo cannot do, said before anything is created. */
static int check_config(const struct frontend_config *cfg, bool *inject_pcap,
			enum pktinject_method *method,
			char *err, size_t err_len)
{
	const char *inject = capf_inject(cfg);

	if (cfg->selector_count) {
		snprintf(err, err_len, "--select: a route to lo takes all traffic to a prefix; "
			 "selectors need a netfilter frontend (--frontend nfqueue)");
		return -EINVAL;
	}
	*inject_pcap = inject && strcmp(inject, "pcap") == 0;
	if (!*inject_pcap && pktinject_any_parse(inject, method) < 0) {
		snprintf(err, err_len, "--inject '%s': not an injection method; pcap injects "
			 "with lo (a packet socket on lo, GSO, the default), dev (the same on the "
			 "egress device), raw (a raw socket) "
			 "or pcap (pcap_inject on lo)", inject);
		return -EINVAL;
	}
	return 0;
}

/* ---- rules ---- */

/* If the exact removal fails (someone changed our chain), remove by owner instead. */
static void remove_rules(struct capf *c)
{
	char err[512];

	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++) {
		char *text;
		struct leftovers mine = { 0 };

		if (!c->rules[fam])
			continue;
		text = cap_rules_remove_text(c->comment, c->pid);
		if (tagrules_restore(fam, text, c->verbose, err, sizeof(err)) < 0 &&
		    leftovers_scan(&mine, c->pid, err, sizeof(err)) >= 0)
			leftovers_remove_rules(&mine, c->verbose, err, sizeof(err));
		leftovers_free(&mine);
		free(text);
		c->rules[fam] = false;
	}
}

static int install_rules(struct capf *c, const struct frontend_config *cfg, char *err,
			 size_t err_len)
{
	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++) {
		bool enomem;
		char *text = cap_rules_text(cfg, c->plans, c->plan_count, c->pid,
					    tagrules_fam_af(fam), &enomem);
		int ret;

		if (!text && !enomem)
			continue; /* no prefix of this family */
		ret = tagrules_restore(fam, text, cfg->verbose, err, err_len);
		free(text);
		if (ret < 0) {
			remove_rules(c);
			return ret;
		}
		c->rules[fam] = true;
	}
	return 0;
}

/* ---- open and close ---- */

static int open_inject(struct capf *c, char *err, size_t err_len)
{
	if (c->inject_pcap)
		return cap_inject_open(&c->pinject, cap_reader_lo(&c->reader), err, err_len);
	return pktinject_any_open(&c->raw, c->inject_name, c->method, err, err_len);
}

static void close_inject(struct capf *c)
{
	if (c->inject_pcap)
		cap_inject_close(&c->pinject);
	else
		pktinject_any_close(&c->raw);
}

static struct capf *capf_new(const struct frontend_config *cfg, bool inject_pcap,
			     enum pktinject_method method)
{
	struct capf *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fe.ops = &capture_frontend;
	c->verbose = cfg->verbose;
	c->inject_pcap = inject_pcap;
	c->method = method;
	c->inject_name = capf_inject(cfg);
	c->raw = (struct pktinject_any){ .method = method, .raw = { .fd4 = -1, .fd6 = -1 },
					 .pk = { .fd = -1 } };
	c->owner.fd = -1;
	c->pid = (long)getpid();
	tagrules_owner_comment(cfg->addresses, cfg->address_count, c->pid, c->comment,
			       sizeof(c->comment));
	c->plan_count = cap_plan_for(cfg, c->plans);
	return c;
}

/*
 * The handles first, so that the first packet a route sends is read; the
 * DROP rules before the routes, so that no packet reaches the local stack.
 */
static int capf_open(struct frontend **out, const struct frontend_config *cfg, char *err,
		     size_t err_len)
{
	struct frontend_config local = *cfg;
	char ignored[256];
	bool inject_pcap = false;
	enum pktinject_method method = PKTINJECT_LO;
	struct capf *c = NULL;
	int ret = check_config(cfg, &inject_pcap, &method, err, err_len);

	if (ret < 0)
		goto out;
	if (!local.mtu)
		local.mtu = CAP_MTU_DEFAULT;
	ret = -ENOMEM;
	c = capf_new(&local, inject_pcap, method);
	if (!c) {
		snprintf(err, err_len, "pcap: %s", strerror(ENOMEM));
		goto out;
	}
	/* A dead instance's lo address and routes would collide with ours. */
	leftovers_cleanup(cfg->verbose, true, ignored, sizeof(ignored));
	/* After that cleanup: a predecessor with our pid must still be judged dead. */
	ret = owner_lock_acquire(&c->owner, OWNER_RUN_DIR, err, err_len);
	if (ret < 0)
		goto err_free;
	ret = cap_reader_open(&c->reader, &local, c->plans, c->plan_count, err, err_len);
	if (ret < 0)
		goto err_owner;
	ret = open_inject(c, err, err_len);
	if (ret < 0)
		goto err_reader;
	if (!inject_pcap && c->raw.method != PKTINJECT_RAW && cfg->offload)
		c->fe.caps |= FRONTEND_CAP_OFFLOAD;
	ret = install_rules(c, &local, err, err_len);
	if (ret < 0)
		goto err_inject;
	ret = kitfe_routes(&c->routes, &c->owner, &local, LOROUTES_TO_LO, "pcap", err, err_len);
	if (ret < 0)
		goto err_rules;
	*out = &c->fe;
	return 0;

err_rules:
	remove_rules(c);
err_inject:
	close_inject(c);
err_reader:
	cap_reader_close(&c->reader);
err_owner:
	owner_lock_release(&c->owner);
err_free:
	free(c);
out:
	return ret;
}

/* Every handle is read on each call (pcap_dispatch: 0 when empty), so watch.ready goes unused. */
static int capf_start(struct frontend *fe, struct evloop *loop, const struct frontend_sink *sink)
{
	struct capf *c = to_capf(fe);
	int fds[CAP_HANDLES_MAX];

	return capwatch_start(&c->watch, loop, sink, fds, cap_reader_fds(&c->reader, fds));
}

static void capf_pause(struct frontend *fe, bool paused)
{
	capwatch_pause(&to_capf(fe)->watch, paused);
}

static int capf_read_batch(struct frontend *fe, struct pkt_batch *batch)
{
	return cap_reader_read(&to_capf(fe)->reader, batch, &fe->stats, fe->error,
			       sizeof(fe->error));
}

static int capf_write_batch(struct frontend *fe, const struct pkt_batch *batch)
{
	struct capf *c = to_capf(fe);

	if (c->inject_pcap)
		return cap_inject_batch(&c->pinject, batch, &fe->stats, fe->error,
					sizeof(fe->error));
	return kitfe_inject(fe, &c->raw, batch);
}

static void capf_close(struct frontend *fe)
{
	struct capf *c = to_capf(fe);

	if (!c)
		return;
	/* Routes first, rules last: the rules are the record of the routes until the end. */
	loroutes_teardown(&c->routes, c->verbose);
	remove_rules(c);
	owner_lock_release(&c->owner);
	close_inject(c);
	capwatch_stop(&c->watch);
	cap_reader_close(&c->reader);
	free(c);
}

static const struct frontend_flag capf_flags[] = {
	{ "--inject", FRONTEND_FLAG_STRING, offsetof(struct capf_flags, inject), FRONTEND_FLAG_BOTH, 0, 0,
	  "HOW", "deliver packets through lo with GSO (lo, default), on the egress device with GSO "
	  "(dev), with a raw socket (raw) or with pcap_inject (pcap)" },
	/* nfqueue's flag, refused here with the reason rather than as another frontend's. */
	{ "--fail-open", FRONTEND_FLAG_REFUSE, 0, FRONTEND_FLAG_BOTH, 0, 0,
	  NULL, "traffic routed to lo has no other way out; without tunlab it is dropped" },
	{ NULL },
};

static const struct frontend_packet_ops capf_packet_ops = {
	.read_batch = capf_read_batch,
	.write_batch = capf_write_batch,
	.pause = capf_pause,
};

const struct frontend_ops capture_frontend = {
	.name = "pcap",
	/* Routes select by destination only; bypass and discard are routes too (base/polroutes.h). */
	.policy_keys = 0,
	.policy_actions = POLICY_ACTION_BIT(POLICY_PROTECT) | POLICY_ACTION_BIT(POLICY_BYPASS) |
			  POLICY_ACTION_BIT(POLICY_DISCARD),
	.policy_why = "its routes to lo select by destination only",
	.summary = "route remote prefixes to lo and read them back with libpcap; "
		   "inject GSO packets through lo, or with a raw socket or pcap_inject",
	.open = capf_open,
	.start = capf_start,
	.packets = &capf_packet_ops,
	.close = capf_close,
	.cleanup = kitfe_cleanup,
	.flags = capf_flags,
	.flags_size = sizeof(struct capf_flags),
};
