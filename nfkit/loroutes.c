// SPDX-License-Identifier: MIT
/* The inner addresses on lo and the routes that make local traffic carry them (and, for pcap, go to lo). */

/*
 * A locally originated packet reaches the OUTPUT hook only once a route
 * exists for it, and it gets its source address from that route. Each
 * --address (one per family) goes on lo as a host address (/32, /128,
 * label "lo:tl<pid>" for IPv4) and each remote prefix gets a route with
 * "src <inner address of its family> proto 77". Which route depends on
 * the frontend:
 *
 * KEEP_PATH (nfqueue: its rules steal at the hook, so traffic they do not
 * select keeps its normal path): a copy of each prefix's current path
 * (`ip route get` of its first address), same next hop and device, with
 * the source added. IPv4 copies are prepended (they win over an identical
 * route, and a delete naming proto 77 removes only them); IPv6 copies
 * take metric 1. A prefix with no route at all gets "dev lo" so that its
 * packets reach OUTPUT (the server's clients' prefixes; Linux turns such
 * an IPv6 route into a reject route: ICMPv6 and UDP still pass OUTPUT
 * first, a TCP connect() fails with ENETUNREACH before it). A prefix of
 * a family without an --address gets no copy.
 *
 * TO_LO (pcap: the first background text's design): every prefix goes to
 * lo. An IPv4 route via lo is local to the kernel (RTCF_LOCAL): packets
 * loop through lo and come back in as if addressed to us, where a raw
 * PREROUTING rule drops them after libpcap has read them. The same IPv6
 * route would be a reject route, so IPv6 prefixes get "local" routes in
 * table local instead (AnyIP): the packets take the same loop. Both carry
 * "mtu <inner MTU>", so that local TCP sizes its segments and the stack
 * fragments as it would for a TUN device of that MTU, not for lo's 64 KiB.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loroutes.h"
#include "../base/polroutes.h"
#include "../base/sysexec.h"

enum { LOROUTES_DUMP_MAX = 1 << 20, LOROUTES_WORD_MAX = ROUTE_WORD_MAX };

/* ---- setup ---- */

/* The inner address of family af, or NULL. */
static const struct ip_addr *family_address(const struct loroutes_params *p, int af)
{
	for (size_t i = 0; i < p->address_count; i++)
		if (p->addresses[i].addr.family == af)
			return &p->addresses[i].addr;
	return NULL;
}

static void source_text(const struct loroutes_params *p, const struct ip_prefix *prefix,
			char *out, size_t out_len)
{
	const struct ip_addr *inner = family_address(p, prefix->addr.family);
	char addr[PREFIX_STR_MAX];

	out[0] = '\0';
	if (!inner)
		return;
	addr_format(inner, addr, sizeof(addr));
	snprintf(out, out_len, " src %s", addr);
}

static void keep_path_lines(FILE *setup, FILE *teardown, const struct loroutes_params *p,
			    const struct ip_prefix *prefix, const struct route_path *path)
{
	bool v6 = prefix->addr.family == AF_INET6, copy = path->unicast && path->dev[0];
	char dst[PREFIX_STR_MAX], src[PREFIX_STR_MAX + 8], via[LOROUTES_WORD_MAX + 16] = "";
	char tail[32];

	/* A route that exists and would get no source adds nothing. */
	if (copy && !family_address(p, prefix->addr.family))
		return;
	prefix_format(prefix, dst, sizeof(dst));
	source_text(p, prefix, src, sizeof(src));
	if (copy && path->via[0])
		snprintf(via, sizeof(via), " via %s", path->via);
	snprintf(tail, sizeof(tail), " proto %d%s", LOROUTES_PROTO, v6 ? " metric 1" : "");
	_Static_assert(LOROUTES_V6_METRIC == 1, "the line above spells the metric");
	fprintf(setup, "route %s %s%s dev %s%s%s\n", v6 ? "add" : "prepend", dst, via,
		copy ? path->dev : "lo", src, tail);
	/* src too: an IPv4 copy may share prefix, device and metric with the route it copies. */
	fprintf(teardown, "route del %s%s dev %s%s%s\n", dst, via, copy ? path->dev : "lo", src,
		tail);
}

static void to_lo_lines(FILE *setup, FILE *teardown, const struct loroutes_params *p,
			const struct ip_prefix *prefix)
{
	bool v6 = prefix->addr.family == AF_INET6;
	/* "local" (AnyIP): the IPv6 route via lo that the kernel does not turn into a reject. */
	const char *type = v6 ? "local " : "", *table = v6 ? " table local" : "";
	char dst[PREFIX_STR_MAX], src[PREFIX_STR_MAX + 8], mtu[24] = "";

	prefix_format(prefix, dst, sizeof(dst));
	source_text(p, prefix, src, sizeof(src));
	if (p->mtu)
		snprintf(mtu, sizeof(mtu), " mtu %u", p->mtu);
	fprintf(setup, "route %s %s%s dev lo%s%s proto %d%s\n", v6 ? "add" : "prepend", type, dst,
		table, src, LOROUTES_PROTO, mtu);
	fprintf(teardown, "route del %s%s dev lo%s%s proto %d\n", type, dst, table, src,
		LOROUTES_PROTO);
}

/* "10.8.0.2/32", "fd08::2/128": the address as it goes on lo. */
static void address_text(const struct ip_prefix *address, char *out, size_t out_len)
{
	char addr[PREFIX_STR_MAX];

	addr_format(&address->addr, addr, sizeof(addr));
	snprintf(out, out_len, "%s/%d", addr, address->addr.family == AF_INET ? 32 : 128);
}

static int close_streams(FILE *s, FILE *t, int ret)
{
	if (s && fclose(s) != 0)
		ret = -ENOMEM;
	if (t && fclose(t) != 0)
		ret = -ENOMEM;
	return ret;
}

/* Setup adds the routes; teardown deletes them, then the addresses that are ours. */
static int build_lines(const struct loroutes_params *p, const struct route_path *paths,
		       const struct route_path *policy_paths, const bool *addr_owned, char **setup,
		       char **teardown)
{
	char text[PREFIX_STR_MAX + 8];
	size_t slen, tlen;
	FILE *s = open_memstream(setup, &slen), *t = open_memstream(teardown, &tlen);
	int ret = -ENOMEM;

	if (!s || !t)
		goto out;
	/* Before the protect routes: bypass and discard are in force when those take traffic. */
	ret = polroutes_lines(p->policy, policy_paths, p->mode == LOROUTES_TO_LO, s, t);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	for (size_t i = 0; i < p->route_count; i++) {
		if (p->mode == LOROUTES_TO_LO)
			to_lo_lines(s, t, p, &p->routes[i]);
		else
			keep_path_lines(s, t, p, &p->routes[i], &paths[i]);
	}
	/* Routes go before the addresses their src names. */
	for (size_t i = 0; i < p->address_count; i++) {
		if (!addr_owned[i])
			continue;
		address_text(&p->addresses[i], text, sizeof(text));
		fprintf(t, "addr del %s dev lo\n", text);
	}
	ret = 0;
out:
	ret = close_streams(s, t, ret);
	if (ret < 0) {
		free(*setup);
		free(*teardown);
		*setup = *teardown = NULL;
	}
	return ret;
}

static int address_line(const struct loroutes_params *p, const struct ip_prefix *address,
			const char *verb, bool force, char *err, size_t err_len)
{
	char line[160], text[PREFIX_STR_MAX + 8];
	bool add = !strcmp(verb, "add");

	address_text(address, text, sizeof(text));
	if (add && address->addr.family == AF_INET)
		snprintf(line, sizeof(line),
			 "addr add %s dev lo label " LOROUTES_LO_LABEL_PREFIX "%ld\n", text,
			 (long)getpid());
	else if (add) /* usable at once: a tentative address is no route's "src" */
		snprintf(line, sizeof(line), "addr add %s dev lo nodad\n", text);
	else
		snprintf(line, sizeof(line), "addr %s %s dev lo\n", verb, text);
	return sysexec_ip_batch(line, force, p->verbose, err, err_len);
}

static int plan(const struct loroutes_params *p, bool lookup, const bool *addr_owned,
		char **setup, char **teardown)
{
	struct route_path *paths = calloc(p->route_count ? p->route_count : 1, sizeof(*paths));
	struct route_path *policy_paths = NULL;
	int ret = -ENOMEM;

	*setup = *teardown = NULL;
	if (!paths)
		return ret;
	ret = lookup && p->mode == LOROUTES_KEEP_PATH ? route_paths_lookup(p->routes, p->route_count, paths)
						      : 0;
	if (ret == 0)
		ret = polroutes_paths(p->policy, lookup, &policy_paths);
	if (ret == 0)
		ret = build_lines(p, paths, policy_paths, addr_owned, setup, teardown);
	free(policy_paths);
	free(paths);
	return ret;
}

int loroutes_text(const struct loroutes_params *p, char **setup, char **teardown)
{
	bool owned[LOROUTES_ADDRESS_MAX];

	*setup = *teardown = NULL;
	if (p->address_count > LOROUTES_ADDRESS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < p->address_count; i++)
		owned[i] = true;
	return plan(p, false, owned, setup, teardown);
}

/* Deletes the addresses setup added (when a later step fails). */
static void remove_owned_addresses(struct loroutes *r, const struct loroutes_params *p)
{
	char ignored[256];

	for (size_t i = 0; i < p->address_count; i++)
		if (r->addr_owned[i])
			address_line(p, &p->addresses[i], "del", true, ignored, sizeof(ignored));
}

/* Each address on lo; one that is there already is not ours to delete. */
static int add_addresses(struct loroutes *r, const struct loroutes_params *p, char *err,
			 size_t err_len)
{
	for (size_t i = 0; i < p->address_count; i++) {
		int ret = address_line(p, &p->addresses[i], "add", false, err, err_len);

		r->addr_owned[i] = ret == 0;
		if (ret < 0 && !strstr(err, "File exists")) {
			remove_owned_addresses(r, p);
			return -EIO;
		}
	}
	return 0;
}

int loroutes_setup(struct loroutes *r, const struct loroutes_params *p, char *err,
		   size_t err_len)
{
	char *setup = NULL;
	int ret;

	*r = (struct loroutes){ 0 };
	if (p->address_count > LOROUTES_ADDRESS_MAX) {
		snprintf(err, err_len, "routes: more than %d inner addresses", LOROUTES_ADDRESS_MAX);
		return -EINVAL;
	}
	ret = add_addresses(r, p, err, err_len);
	if (ret < 0)
		return ret;
	ret = plan(p, true, r->addr_owned, &setup, &r->teardown);
	if (ret < 0) {
		remove_owned_addresses(r, p);
		snprintf(err, err_len, "routes: %s", strerror(-ret));
		return ret;
	}
	/* The record before the routes: a crash from here on leaves cleanup the exact lines. */
	ret = p->owner ? owner_lock_record(p->owner, r->teardown) : 0;
	if (ret < 0) {
		snprintf(err, err_len, "routes: recording them in %s: %s%s", p->owner->path,
			 strerror(-ret),
			 ret == -EFBIG ? " (their delete lines exceed the 1 MiB a record may hold:"
					 " fewer prefixes or addresses)" : "");
		remove_owned_addresses(r, p);
		free(r->teardown);
		r->teardown = NULL;
	} else if (setup[0] && sysexec_ip_batch(setup, false, p->verbose, err, err_len) < 0) {
		/* -force: whatever part of the batch went in comes out. */
		loroutes_teardown(r, p->verbose);
		ret = -EIO;
	}
	free(setup);
	return ret;
}

void loroutes_teardown(struct loroutes *r, bool verbose)
{
	char err[256];

	if (r->teardown && r->teardown[0])
		sysexec_ip_batch(r->teardown, true, verbose, err, sizeof(err));
	free(r->teardown);
	r->teardown = NULL;
}

/* ---- what dead instances left ---- */

/*
 * An IPv4 address labelled lo:tl<pid> whose owner is dead (owner id,
 * device and label all match) and that no record already deletes: it
 * went on lo before its owner wrote its record.
 */
static void dead_address(FILE *f, const char *recorded, struct owner_judge *judge,
			 const char *line, size_t *count)
{
	char word[LOROUTES_WORD_MAX], del[LOROUTES_WORD_MAX + 24], *end;
	const char *label = strstr(line, " " LOROUTES_LO_LABEL_PREFIX);
	struct ip_prefix p;
	long pid;

	if (!label || !sysexec_ip_field(line, "inet", word, sizeof(word)) ||
	    prefix_parse_host(word, &p) < 0)
		return;
	pid = strtol(label + 1 + strlen(LOROUTES_LO_LABEL_PREFIX), &end, 10);
	if ((*end && *end != ' ' && *end != '\\') || !owner_judge_dead(judge, pid))
		return;
	snprintf(del, sizeof(del), "addr del %s dev lo\n", word);
	if (recorded && strstr(recorded, del))
		return;
	fputs(del, f);
	(*count)++;
}

static int dead_addresses(FILE *f, char *const *lines, struct owner_judge *judge, char *buf,
			  size_t *count, char *err, size_t err_len)
{
	static const char *const argv[] = { "ip", "-o", "-4", "addr", "show", "dev", "lo", NULL };
	char *save = NULL, *recorded = NULL;

	if (sysexec_capture(argv, buf, LOROUTES_DUMP_MAX, err, err_len) < 0)
		return -EIO;
	/* What the records delete so far; fflush makes *lines current. */
	if (fflush(f) != 0 || (*lines && !(recorded = strdup(*lines))))
		return -ENOMEM;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		dead_address(f, recorded, judge, line, count);
	free(recorded);
	return 0;
}

/* Each dead owner's record: the exact delete lines of what it routed and added. */
static void dead_records(FILE *f, struct leftovers *dead, size_t *count)
{
	for (size_t i = 0; i < dead->count; i++) {
		char *text;

		if (!owner_judge_dead(&dead->judge, dead->items[i].pid))
			continue;
		text = owner_judge_record(&dead->judge, dead->items[i].pid);
		if (!text)
			continue; /* no record: it routed nothing, or never got that far */
		for (const char *p = text; *p; p += strcspn(p, "\n") + 1)
			(*count)++;
		fputs(text, f);
		free(text);
	}
}

int loroutes_remove_dead(struct leftovers *dead, bool verbose, char *err, size_t err_len)
{
	char *buf = malloc(LOROUTES_DUMP_MAX), *lines = NULL;
	size_t len, count = 0;
	FILE *f = open_memstream(&lines, &len);
	int ret = -ENOMEM;

	if (!buf || !f)
		goto out;
	/* Records first: an address a record deletes must not be deleted twice. */
	dead_records(f, dead, &count);
	ret = dead_addresses(f, &lines, &dead->judge, buf, &count, err, err_len);
out:
	if (f && fclose(f) != 0 && ret >= 0)
		ret = -ENOMEM;
	/* -force: one object already gone must not keep the others. */
	if (ret >= 0 && count)
		sysexec_ip_batch(lines, true, verbose, err, err_len);
	if (ret == -ENOMEM)
		snprintf(err, err_len, "cleanup: %s", strerror(ENOMEM));
	free(lines);
	free(buf);
	return ret < 0 ? ret : (int)count;
}
