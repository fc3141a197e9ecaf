/* SPDX-License-Identifier: MIT */
/* The inner addresses on lo and the tagged routes that send remote prefixes where a frontend intercepts them. */
#ifndef TUNLAB_LOROUTES_H
#define TUNLAB_LOROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "leftovers.h"
#include "../base/owner.h"
#include "../base/policy.h"
#include "../base/prefix.h"

enum {
	/* Same protocol as the TUN backend's routes: `ip route show proto 77`. */
	LOROUTES_PROTO = 77,
	/* IPv6 path copies win over the kernel's (256) and user defaults (1024). */
	LOROUTES_V6_METRIC = 1,
};

/* IPv4 label of our address on lo: 15 characters hold "lo:tl" and any pid. */
#define LOROUTES_LO_LABEL_PREFIX "lo:tl"

enum loroutes_mode {
	/*
	 * nfqueue: each prefix keeps its current path (a copy of it with
	 * "src <inner>" added); a prefix with no route at all goes to lo.
	 */
	LOROUTES_KEEP_PATH,
	/*
	 * pcap: every prefix goes to lo, IPv4 as a unicast route, IPv6 as a
	 * "local" route in table local (Linux turns an IPv6 unicast route via
	 * lo into a reject route), with mtu set to the inner MTU.
	 */
	LOROUTES_TO_LO,
};

/* At most one inner address per family (IPv4, IPv6), as --address allows. */
enum { LOROUTES_ADDRESS_MAX = 2 };

struct loroutes_params {
	const struct ip_prefix *routes;
	size_t route_count;
	/*
	 * The inner addresses, host bits kept, at most one per family (more
	 * is -EINVAL): each goes on lo as /32 or /128 and is the src of the
	 * routes of its family.
	 */
	const struct ip_prefix *addresses;
	size_t address_count;
	enum loroutes_mode mode;
	unsigned mtu;             /* LOROUTES_TO_LO: the routes' mtu; 0: lo's */
	/*
	 * pcap: the policy whose bypass and discard entries become routes
	 * too (base/polroutes.h), recorded and torn down with the rest.
	 * NULL: none (nfqueue compiles them into its rules).
	 */
	const struct policy *policy;
	bool verbose;
	/*
	 * The instance's lock: setup writes the teardown lines there before
	 * it adds a route, so that a crash leaves cleanup an exact record.
	 * NULL: no record (the unit tests).
	 */
	struct owner_lock *owner;
};

struct loroutes {
	char *teardown; /* ip -batch lines undoing what setup added */
	/* addresses[i] was not there and we added it */
	bool addr_owned[LOROUTES_ADDRESS_MAX];
};

/* Adds the addresses and the routes; on failure nothing of ours is left. */
int loroutes_setup(struct loroutes *r, const struct loroutes_params *p, char *err,
		   size_t err_len);
/* Routes first, then the addresses we added. */
void loroutes_teardown(struct loroutes *r, bool verbose);

/*
 * The `ip -batch` lines setup would run and teardown would undo
 * (malloc'd; -ENOMEM), without running anything: for the unit tests.
 * KEEP_PATH looks up no current paths here, so every prefix gets "dev lo".
 */
int loroutes_text(const struct loroutes_params *p, char **setup, char **teardown);

/*
 * Removes dead instances' routes and lo addresses, as their records name
 * them (and IPv4 addresses labelled lo:tl<dead pid>); returns how many.
 */
int loroutes_remove_dead(struct leftovers *dead, bool verbose, char *err, size_t err_len);

#endif
