// SPDX-License-Identifier: MIT
/* What the pcap frontend asks of libpcap and netfilter, as text: handles, BPF filters, DROP rules. */

/*
 * Kept free of system calls so that the unit tests can read every line.
 *
 * Handles. Everything routed to lo loops back in on lo, where one handle
 * reads it: the client's traffic to its routes, of both families, and the
 * server's IPv4 return traffic to its clients, which the kernel forwards
 * to lo like any other route. The server's IPv6 return traffic cannot take
 * that path (an IPv6 route via lo is a reject route, and a "local" one
 * delivers a forwarded packet without passing lo), so a second handle on
 * "any" takes it on whatever interface it arrives.
 *
 * Filters. IP or IPv6, "dst net" per prefix, and "not dst host INNER" for
 * each of our own inner addresses that a prefix covers: its traffic is
 * local. On lo the kernel runs it behind "inbound" (cap_pcap.c): lo shows
 * every packet twice, going out and coming in, and without a test of the
 * packet type in the kernel both copies would be copied into the ring, one
 * of them only to be thrown away by libpcap in userspace.
 *
 * Rules. One chain TUNLAB-<pid>-PCAP in raw PREROUTING, per family:
 * "-i lo -d PREFIX -j DROP" stops what looped back (or, on "any", what
 * arrived) from going anywhere after libpcap read it; before it, "-d
 * INNER -j RETURN" when a prefix covers the inner address. Raw runs
 * before conntrack: a dropped packet leaves no conntrack state behind.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../nfkit/tagrules.h"
#include "cap.h"

/* A filter nothing passes: len <= 0. */
#define CAP_FILTER_NOTHING "less 0"

unsigned cap_plan_for(const struct frontend_config *cfg, struct cap_plan plan[CAP_HANDLES_MAX])
{
	if (cfg->role == FRONTEND_CLIENT) {
		plan[0] = (struct cap_plan){ .device = "lo", .af = 0, .drop_on_lo = true };
		return 1;
	}
	/* The lo handle also sends what --inject pcap injects, prefixes or not. */
	plan[0] = (struct cap_plan){ .device = "lo", .af = AF_INET, .drop_on_lo = true };
	if (!frontend_routes_family(cfg, AF_INET6))
		return 1;
	plan[1] = (struct cap_plan){ .device = "any", .af = AF_INET6, .drop_on_lo = false };
	return 2;
}

static bool takes(const struct cap_plan *plan, int af)
{
	return plan->af == 0 || plan->af == af;
}

/* Closes an open_memstream, which is when *text becomes the whole text. */
static char *close_text(FILE *f, char **text)
{
	if (fclose(f) != 0) {
		free(*text);
		return NULL;
	}
	return *text;
}

char *cap_filter_text(const struct frontend_config *cfg, const struct cap_plan *plan)
{
	static const int families[] = { AF_INET, AF_INET6 };
	char text[PREFIX_STR_MAX], *out = NULL;
	size_t len, n = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	/* "dst net" of an IPv4 prefix would take ARP too. */
	fprintf(f, "%s and (", plan->af == AF_INET    ? "ip"
			       : plan->af == AF_INET6 ? "ip6"
						      : "(ip or ip6)");
	for (size_t i = 0; i < cfg->route_count; i++) {
		if (!takes(plan, cfg->routes[i].addr.family))
			continue;
		prefix_format(&cfg->routes[i], text, sizeof(text));
		fprintf(f, "%sdst net %s", n++ ? " or " : "", text);
	}
	fputs(n ? ")" : CAP_FILTER_NOTHING ")", f);
	for (size_t i = 0; n && i < sizeof(families) / sizeof(families[0]); i++) {
		const struct ip_addr *inner = frontend_covered_address(cfg, families[i]);

		if (!inner || !takes(plan, families[i]))
			continue;
		addr_format(inner, text, sizeof(text));
		fprintf(f, " and not dst host %s", text);
	}
	return close_text(f, &out);
}

/* The handle that takes family af: its DROP rules say whether they match -i lo. */
static bool drop_on_lo(const struct cap_plan *plans, unsigned count, int af)
{
	for (unsigned i = 0; i < count; i++)
		if (takes(&plans[i], af))
			return plans[i].drop_on_lo;
	return true;
}

char *cap_rules_text(const struct frontend_config *cfg, const struct cap_plan *plans,
		     unsigned plan_count, long pid, int af, bool *enomem)
{
	const struct ip_addr *inner = frontend_covered_address(cfg, af);
	const char *in_lo = drop_on_lo(plans, plan_count, af) ? " -i lo" : "";
	char chain[48], comment[TAGRULES_COMMENT_MAX], text[PREFIX_STR_MAX], *out = NULL;
	size_t len;
	FILE *f;

	*enomem = false;
	if (!frontend_routes_family(cfg, af))
		return NULL;
	f = open_memstream(&out, &len);
	*enomem = !f;
	if (!f)
		return NULL;
	snprintf(chain, sizeof(chain), TAGRULES_CHAIN_PREFIX "%ld-" CAP_CHAIN_SUFFIX, pid);
	tagrules_owner_comment(cfg->addresses, cfg->address_count, pid, comment, sizeof(comment));
	fprintf(f, "*raw\n:%s - [0:0]\n", chain);
	if (inner) {
		addr_format(inner, text, sizeof(text));
		fprintf(f, "-A %s -d %s -j RETURN\n", chain, text);
	}
	for (size_t i = 0; i < cfg->route_count; i++) {
		if (cfg->routes[i].addr.family != af)
			continue;
		prefix_format(&cfg->routes[i], text, sizeof(text));
		fprintf(f, "-A %s%s -d %s -j DROP\n", chain, in_lo, text);
	}
	/* First in raw: nothing before us may accept the packet. */
	fprintf(f, "-I PREROUTING 1 -m comment --comment \"%s\" -j %s\nCOMMIT\n", comment, chain);
	out = close_text(f, &out);
	*enomem = !out;
	return out;
}

char *cap_rules_remove_text(const char *comment, long pid)
{
	char *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	fprintf(f, "*raw\n-D PREROUTING -m comment --comment \"%s\" -j " TAGRULES_CHAIN_PREFIX
		"%ld-" CAP_CHAIN_SUFFIX "\n-F " TAGRULES_CHAIN_PREFIX "%ld-" CAP_CHAIN_SUFFIX
		"\n-X " TAGRULES_CHAIN_PREFIX "%ld-" CAP_CHAIN_SUFFIX "\nCOMMIT\n",
		comment, pid, pid, pid);
	return close_text(f, &out);
}
