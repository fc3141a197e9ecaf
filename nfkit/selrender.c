// SPDX-License-Identifier: MIT
/* Selectors as iptables and nft matches (selrender.h): one key order, two syntaxes. */
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include "selrender.h"

bool selector_applies(const struct selector *sel, int af, bool out_chain)
{
	if (!sel)
		return true;
	if (sel->has_uid && !out_chain)
		return false; /* a forwarded packet has no local owner */
	if (sel->has_src && sel->src.addr.family != af)
		return false;
	if (sel->has_proto && sel->proto == IPPROTO_ICMP && af != AF_INET)
		return false;
	return !(sel->has_proto && sel->proto == IPPROTO_ICMPV6 && af != AF_INET6);
}

/* A port or a range: iptables writes lo:hi, nft lo-hi. */
static void ports(FILE *f, const char *opt, const struct port_range *r, char sep)
{
	if (r->lo == r->hi)
		fprintf(f, " %s %u", opt, r->lo);
	else
		fprintf(f, " %s %u%c%u", opt, r->lo, sep, r->hi);
}

static void ipt_proto(FILE *f, uint8_t proto)
{
	/* Names, so that --dport/--sport find their match module. */
	switch (proto) {
	case IPPROTO_TCP: fputs(" -p tcp", f); break;
	case IPPROTO_UDP: fputs(" -p udp", f); break;
	case IPPROTO_ICMP: fputs(" -p icmp", f); break;
	case IPPROTO_ICMPV6: fputs(" -p ipv6-icmp", f); break;
	default: fprintf(f, " -p %u", proto); break;
	}
}

void selector_ipt_matches(FILE *f, const struct selector *sel, bool with_proto)
{
	char text[PREFIX_STR_MAX];

	if (!sel)
		return;
	if (sel->has_src) {
		prefix_format(&sel->src, text, sizeof(text));
		fprintf(f, " -s %s", text);
	}
	if (with_proto && sel->has_proto)
		ipt_proto(f, sel->proto);
	if (sel->has_sport)
		ports(f, "--sport", &sel->sport, ':');
	if (sel->has_dport)
		ports(f, "--dport", &sel->dport, ':');
	if (sel->has_mark)
		fprintf(f, " -m mark --mark 0x%x", sel->mark);
	if (sel->has_uid)
		fprintf(f, " -m owner --uid-owner %u", sel->uid);
}

void selector_nft_matches(FILE *f, const struct selector *sel, int af)
{
	char text[PREFIX_STR_MAX];

	if (!sel)
		return;
	if (sel->has_src) {
		prefix_format(&sel->src, text, sizeof(text));
		fprintf(f, " %s saddr %s", af == AF_INET ? "ip" : "ip6", text);
	}
	if (sel->has_proto)
		fprintf(f, " meta l4proto %u", sel->proto);
	if (sel->has_sport)
		ports(f, "th sport", &sel->sport, '-');
	if (sel->has_dport)
		ports(f, "th dport", &sel->dport, '-');
	if (sel->has_mark)
		fprintf(f, " meta mark 0x%x", sel->mark);
	if (sel->has_uid)
		fprintf(f, " meta skuid %u", sel->uid);
}
