/* SPDX-License-Identifier: MIT */
/* The one policy every frontend's unit test compiles, and a helper to parse it. */
#ifndef TUNLAB_TEST_POLICY_FIXTURE_H
#define TUNLAB_TEST_POLICY_FIXTURE_H

#include <string.h>

#include "../../base/policy.h"
#include "../../base/frontend.h"

/* Line 1: a host in clear; 2-4 split the /24 by protocol; 5 the IPv6 prefix for one user. */
static const char policy_fixture_text[] =
	"bypass  dst=10.102.0.9/32\n"
	"protect dst=10.102.0.0/24,proto=tcp,dport=5201\n"
	"discard dst=10.102.0.0/24,proto=udp\n"
	"protect dst=10.102.0.0/24\n"
	"protect dst=fd02::/64,uid=1000\n";

/* Only the protect entries: what a frontend with protect alone can take. */
static const char policy_fixture_protect_text[] =
	"protect dst=10.102.0.0/24,proto=tcp,dport=5201\n"
	"protect dst=fd02::/64,uid=1000\n";

/* Parses text into p and points cfg at it, routes the protect dsts as src/daemon.c makes them. */
static inline void policy_fixture_load(const char *text, struct policy *p, struct ip_prefix *routes,
				       struct frontend_config *cfg)
{
	char err[256];

	assert_int_equal(policy_parse(text, strlen(text), p, err, sizeof(err)), 0);
	cfg->policy = p;
	cfg->routes = routes;
	cfg->route_count = policy_protect_dsts(p, routes);
	cfg->selectors = NULL;
	cfg->selector_count = 0;
}

#endif
