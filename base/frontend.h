/* SPDX-License-Identifier: MIT */
/*
 * The frontend boundary: how packets leave the local stack for the tunnel
 * (capture) and come back in from it (inject). One ops table per approach,
 * chosen by name at run time from src/frontends.h's registry; the tunnel never
 * sees any of this.
 */
#ifndef TUNLAB_FRONTEND_H
#define TUNLAB_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkt.h"
#include "policy.h"
#include "prefix.h"
#include "selector.h"
#include "stream.h"

enum frontend_role { FRONTEND_CLIENT, FRONTEND_SERVER };

/* --address gives at most one inner address per family: IPv4 and IPv6. */
enum { FRONTEND_ADDRESS_MAX = 2 };

/* What `tunlab client|server` hands every frontend: the same flags for all. */
struct frontend_config {
	enum frontend_role role;
	/*
	 * --address: this end's inner addresses, host bits kept (10.8.0.2/24,
	 * fd08::2/64), at most one per family, in the order given (0, 1 or
	 * 2 of them). frontend_address() finds the one of a family.
	 */
	struct ip_prefix addresses[FRONTEND_ADDRESS_MAX];
	size_t address_count;
	/* Client: its --route prefixes. Server: every peer's prefixes. */
	const struct ip_prefix *routes;
	size_t route_count;
	unsigned mtu;       /* inner MTU, --mtu */
	const char *ifname; /* --dev, or NULL for tunlab<pid> */
	bool offload;       /* try GSO/checksum offload where the kernel offers it */
	bool verbose;       /* print every command that changes the system */
	/* --select: only matching traffic to the routes is captured (OR of all). */
	const struct selector *selectors;
	size_t selector_count;
	/*
	 * --policy: the entries, first match wins, already checked against
	 * the frontend's policy_keys and policy_actions. NULL without
	 * --policy: then routes x selectors are the (protect) entries.
	 * With it, routes are the protect entries' dsts and selectors NULL.
	 */
	const struct policy *policy;
	/*
	 * Server: the process's fd limit and the fds the tunnel needs of it;
	 * a stream frontend budgets its sockets from what is left. 0: no
	 * limit planned (the frontend's own defaults).
	 */
	unsigned long fd_limit, fd_tunnel;
	/*
	 * The frontend's own flags (its ops' flags table), parsed into a
	 * zeroed struct of ops->flags_size bytes: zero means the default.
	 * NULL when the frontend has no table or none was parsed.
	 */
	const void *flags;
};

/* cfg's inner address of family af (AF_INET, AF_INET6), or NULL. */
static inline const struct ip_prefix *frontend_address(const struct frontend_config *cfg, int af)
{
	for (size_t i = 0; i < cfg->address_count; i++)
		if (cfg->addresses[i].addr.family == af)
			return &cfg->addresses[i];
	return NULL;
}

/* Whether cfg routes any prefix of family af, or has a policy entry of it (to bypass or discard). */
static inline bool frontend_routes_family(const struct frontend_config *cfg, int af)
{
	for (size_t i = 0; cfg->policy && i < cfg->policy->count; i++)
		if (cfg->policy->entries[i].dst.addr.family == af)
			return true;
	for (size_t i = 0; i < cfg->route_count; i++)
		if (cfg->routes[i].addr.family == af)
			return true;
	return false;
}

/*
 * cfg's inner address of family af when one of the routes covers it, or
 * NULL: traffic to it is local and must never be taken for the tunnel.
 */
static inline const struct ip_addr *frontend_covered_address(const struct frontend_config *cfg,
							     int af)
{
	const struct ip_prefix *inner = frontend_address(cfg, af);

	for (size_t i = 0; inner && i < cfg->route_count; i++)
		if (prefix_contains(&cfg->routes[i], &inner->addr))
			return &inner->addr;
	return NULL;
}

/* One entry of what to capture, the same whether from --policy or --route x --select. */
struct frontend_rule {
	const struct ip_prefix *dst;
	const struct selector *sel; /* NULL: anything toward dst */
	enum policy_action action;
};

/*
 * The i-th rule of cfg into r, in order (first match wins): the policy's
 * entries, or without one every route with every selector. false past the
 * last. The frontends write one rule of their mechanism per rule.
 */
static inline bool frontend_rule(const struct frontend_config *cfg, size_t i, struct frontend_rule *r)
{
	size_t sels = cfg->selector_count ? cfg->selector_count : 1;

	if (cfg->policy) {
		if (i >= cfg->policy->count)
			return false;
		*r = (struct frontend_rule){ &cfg->policy->entries[i].dst, &cfg->policy->entries[i].sel,
					     cfg->policy->entries[i].action };
		return true;
	}
	if (i >= cfg->route_count * sels)
		return false;
	*r = (struct frontend_rule){ &cfg->routes[i / sels],
				     cfg->selector_count ? &cfg->selectors[i % sels] : NULL, POLICY_PROTECT };
	return true;
}

struct frontend_stats {
	uint64_t captured_packets, captured_bytes;
	uint64_t injected_packets, injected_bytes;
	uint64_t inject_errors;  /* the kernel refused a packet we wrote */
	uint64_t inject_denied;  /* a special address (base/reach.h): never handed to the kernel */
	uint64_t capture_drops;  /* dropped before we saw it, where the kernel says */
};

/*
 * A stream frontend's counters (the proxy), written as fe_<field> by
 * --stats only for frontends that have .streams. "out" is from local
 * sockets into the tunnel, "in" from the tunnel to local sockets.
 */
struct frontend_stream_stats {
	uint64_t streams_open, streams_total;
	uint64_t stream_bytes_out, stream_bytes_in;
	uint64_t streams_refused;     /* the destination refused, or no tunnel to open on */
	uint64_t streams_unreachable; /* no route to the destination, or connect timed out */
	uint64_t streams_reset;       /* reset by an application or the far end */
	uint64_t streams_idle_closed; /* closed by an idle timeout */
	uint64_t streams_limited;     /* refused or reset by a per-client limit or the budget */
	uint64_t exit_over_budget;    /* exit: streams and flows refused, its socket budget spent */
	uint64_t flows_limited;       /* exit: UDP flows refused by a per-client cap or the budget */
	uint64_t streams_prohibited;  /* the exit's policy forbids the destination */
	uint64_t udp_flows_open, udp_flows_total;
	uint64_t dgrams_out, dgrams_in;
	uint64_t dgrams_dropped;      /* no flow, no memory, or the tunnel was full */
	uint64_t dropped_uncarried;   /* packets to the routes neither TCP nor UDP (dropped) */
	uint64_t dropped_packets;     /* IP packets from the tunnel: nothing to inject them with */
};

enum frontend_caps {
	/* write_batch accepts packets with offload metadata (GSO, partial csum) */
	FRONTEND_CAP_OFFLOAD = 1u << 0,
};

struct evloop;

/* Which commands take a frontend flag. */
enum frontend_flag_roles {
	FRONTEND_FLAG_CLIENT = 1u << 0,
	FRONTEND_FLAG_SERVER = 1u << 1,
	FRONTEND_FLAG_BOTH = FRONTEND_FLAG_CLIENT | FRONTEND_FLAG_SERVER,
};

enum frontend_flag_kind {
	FRONTEND_FLAG_SET,    /* bool set to true, takes no value */
	FRONTEND_FLAG_STRING, /* const char * into argv, non-empty */
	FRONTEND_FLAG_UINT,   /* unsigned within [min, max] */
	FRONTEND_FLAG_REFUSE, /* refused with help as the reason; not listed by --help */
};

/*
 * One flag a frontend owns, as a row of its ops' flags table: the command
 * line (src/options.c) parses it after --frontend names the frontend,
 * stores it at offset in the frontend's flag struct, and --help lists it
 * under the frontend. Another frontend's flag is refused, naming both.
 */
struct frontend_flag {
	const char *name;     /* "--queues" */
	enum frontend_flag_kind kind;
	size_t offset;        /* in the frontend's flag struct */
	unsigned roles;       /* enum frontend_flag_roles */
	unsigned long min, max;
	const char *metavar, *help;
};

/* Where a packet frontend says that captured packets wait (src/daemon.c). */
struct frontend_sink {
	void (*ready)(void *ctx);
	void *ctx;
};

/* Implementations embed this first and keep their own state after it. */
struct frontend {
	const struct frontend_ops *ops;
	unsigned caps; /* enum frontend_caps, decided at open time */
	struct frontend_stats stats;
	struct frontend_stream_stats stream_stats; /* stream frontends only */
	char error[256];
};

/* A packet frontend's operations (tunbackend, nfqueue, capture). */
struct frontend_packet_ops {
	/*
	 * Captures up to PKT_BATCH_MAX packets without blocking. Returns the
	 * count (0: nothing ready), or a negative errno on a fatal error.
	 * Packet memory stays valid until the next read_batch.
	 */
	int (*read_batch)(struct frontend *fe, struct pkt_batch *batch);
	/*
	 * Injects a batch. Packets the kernel refuses are counted in
	 * stats.inject_errors, not returned; a negative errno means the
	 * frontend itself is broken. Offload packets only if CAP_OFFLOAD.
	 */
	int (*write_batch)(struct frontend *fe, const struct pkt_batch *batch);
	/*
	 * Stops (true) or resumes watching for captured packets, the
	 * tunnel's push-back: the kernel's queue then fills.
	 */
	void (*pause)(struct frontend *fe, bool paused);
};

/*
 * A stream frontend's operations (the proxy). It carries byte streams, not
 * packets: its sockets are watchers on the loop and it never calls
 * sink->ready; packets a peer sends it anyway are counted in
 * stream_stats.dropped_packets by src/daemon.c. The daemon calls attach
 * once the tunnel exists, handing over the tunnel's stream port
 * (base/stream.h), and stream_event for every stream message the tunnel
 * delivers. Neither side sees the other.
 */
struct frontend_stream_ops {
	void (*attach)(struct frontend *fe, const struct stream_port *port);
	void (*stream_event)(struct frontend *fe, const struct stream_msg *msg);
};

struct frontend_ops {
	const char *name;
	const char *summary; /* one line for --help */
	/*
	 * Creates and configures everything the approach needs (device,
	 * address, MTU, routes, rules), all tagged as tunlab's. On failure
	 * nothing it created is left, and err says what failed and why.
	 */
	int (*open)(struct frontend **out, const struct frontend_config *cfg,
		    char *err, size_t err_len);
	/*
	 * Registers the frontend's fds and timers on the one event loop, each
	 * watcher with its own callback; no frontend makes an epoll set or a
	 * timerfd of its own. A packet frontend calls sink->ready when
	 * captured packets wait; the daemon then calls packets->read_batch.
	 * close takes every watcher off the loop again.
	 */
	int (*start)(struct frontend *fe, struct evloop *loop, const struct frontend_sink *sink);
	/* Exactly one of the two: what the frontend carries. */
	const struct frontend_packet_ops *packets;
	const struct frontend_stream_ops *streams;
	/* Removes every kernel object open created, then frees fe. */
	void (*close)(struct frontend *fe);
	/*
	 * For `tunlab cleanup`: removes what instances that no longer run left
	 * behind (a crash, kill -9). Returns the number of objects removed or
	 * a negative errno.
	 */
	int (*cleanup)(bool verbose, char *err, size_t err_len);
	/*
	 * What a --policy entry may use with this frontend: selector keys
	 * (enum policy_key; dst always) and actions (POLICY_ACTION_BIT), and
	 * why the rest cannot be expressed. src/daemon.c refuses a policy
	 * outside them before open, naming the line, the key and the frontend.
	 */
	unsigned policy_keys, policy_actions;
	const char *policy_why;
	/*
	 * `tunlab policy load`: swaps to cfg->policy atomically, the routes
	 * (protect dsts) unchanged, so flows of unchanged entries go on
	 * undisturbed. NULL: the frontend cannot swap while running.
	 */
	int (*policy_reload)(struct frontend *fe, const struct frontend_config *cfg, char *err,
			     size_t err_len);
	/*
	 * The frontend's own flags, ended by a row without a name, or NULL;
	 * parsed into cfg->flags, a struct of flags_size bytes.
	 */
	const struct frontend_flag *flags;
	size_t flags_size;
};

#endif
