// SPDX-License-Identifier: MIT
/* A policy's bypass and discard entries as routes, and a prefix's current path (polroutes.h). */

/*
 * Why routes and not netfilter rules: tun and pcap already select by
 * destination with routes, and a route is the one object that decides
 * before any interception does. discard is "blackhole" (dropped at the
 * routing decision, in every table the packet could reach; a local sender
 * gets EINVAL, a forwarded packet vanishes, nothing reaches lo or the TUN
 * device, so nothing is captured). bypass copies the path the prefix had
 * before tunlab (as nfqueue's KEEP_PATH copies do, without a src), so it
 * leaves by the underlay in clear, as the policy says; the copy is taken
 * at start and does not follow later changes of the underlay route.
 *
 * IPv4 routes are prepended (they win over an identical route, and a
 * delete naming proto 77 removes only ours); IPv6 ones take metric 1.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "polroutes.h"
#include "sysexec.h"

enum { ROUTE_DUMP_MAX = 1 << 20 };

static const char *const route_types[] = { "local", "broadcast", "unreachable", "prohibit",
					   "blackhole", "multicast", "anycast", "throw", "nat",
					   NULL };

static bool is_route_type(const char *word, size_t len)
{
	for (size_t i = 0; route_types[i]; i++)
		if (strlen(route_types[i]) == len && strncmp(word, route_types[i], len) == 0)
			return true;
	return false;
}

static bool parse_path(const char *line, struct route_path *out)
{
	char word[ROUTE_WORD_MAX];
	size_t n = strcspn(line, " ");

	*out = (struct route_path){ .unicast = !is_route_type(line, n),
				    .local = n == 5 && !strncmp(line, "local", 5) };
	if (!out->unicast)
		line += n + (line[n] == ' ');
	snprintf(word, sizeof(word), "%.*s", (int)strcspn(line, " /"), line);
	if (addr_parse(word, &out->dst) < 0)
		return false;
	if (sysexec_ip_field(line, "via", out->via, sizeof(out->via)) &&
	    (!strcmp(out->via, "inet") || !strcmp(out->via, "inet6"))) {
		char gw[ROUTE_WORD_MAX];
		if (sysexec_ip_field(line, out->via, gw, sizeof(gw)))
			snprintf(out->via + strlen(out->via), sizeof(out->via) - strlen(out->via),
				 " %s", gw);
	}
	out->unicast = out->unicast && sysexec_ip_field(line, "dev", out->dev, sizeof(out->dev));
	if (!out->unicast)
		out->dev[0] = '\0';
	return true;
}

static char *get_lines(const struct ip_prefix *prefixes, size_t count)
{
	char *input = NULL, text[PREFIX_STR_MAX];
	size_t len;
	FILE *f = open_memstream(&input, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		addr_format(&prefixes[i].addr, text, sizeof(text));
		fprintf(f, "route get %s\n", text);
	}
	if (fclose(f) != 0) {
		free(input);
		return NULL;
	}
	return input;
}

int route_paths_lookup(const struct ip_prefix *prefixes, size_t count, struct route_path *paths)
{
	static const char *const argv[] = { "ip", "-o", "-force", "-batch", "-", NULL };
	char *input = get_lines(prefixes, count), *out = malloc(ROUTE_DUMP_MAX), *save = NULL;
	char ignored[256];
	struct route_path path;

	if (!input || !out) {
		free(input);
		free(out);
		return -ENOMEM;
	}
	/* A prefix without a route makes ip complain and exit 1: it just has no answer. */
	sysexec_pipe(argv, input, out, ROUTE_DUMP_MAX, false, ignored, sizeof(ignored));
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!parse_path(line, &path))
			continue;
		for (size_t i = 0; i < count; i++)
			if (!memcmp(&prefixes[i].addr, &path.dst, sizeof(path.dst)))
				paths[i] = path;
	}
	free(input);
	free(out);
	return 0;
}

/* A bypass entry needs a route only where a protect route would take its traffic. */
static bool bypass_needs_route(const struct policy *p, size_t i)
{
	if (p->entries[i].action != POLICY_BYPASS)
		return false;
	for (size_t k = 0; k < p->count; k++)
		if (p->entries[k].action == POLICY_PROTECT &&
		    prefix_covers(&p->entries[k].dst, &p->entries[i].dst))
			return true;
	return false;
}

int polroutes_paths(const struct policy *p, bool lookup, struct route_path **out)
{
	size_t n = p ? p->count : 0, want = 0;
	struct route_path *paths = calloc(n ? n : 1, sizeof(*paths)), *found = NULL;
	struct ip_prefix *dsts = calloc(n ? n : 1, sizeof(*dsts));
	int ret = -ENOMEM;

	if (!paths || !dsts)
		goto out;
	for (size_t i = 0; lookup && i < n; i++)
		if (bypass_needs_route(p, i))
			dsts[want++] = p->entries[i].dst;
	ret = 0;
	if (!want)
		goto out;
	found = calloc(want, sizeof(*found));
	ret = found ? route_paths_lookup(dsts, want, found) : -ENOMEM;
	for (size_t i = 0, k = 0; ret == 0 && i < n; i++)
		if (bypass_needs_route(p, i))
			paths[i] = found[k++];
out:
	free(found);
	free(dsts);
	if (ret < 0) {
		free(paths);
		paths = NULL;
	}
	*out = paths;
	return ret;
}

/* "route prepend blackhole 10.9.0.5/32 proto 77" and its delete line. */
static void write_route(FILE *setup, FILE *teardown, const char *what, bool v6, bool table_local)
{
	char tail[48];

	snprintf(tail, sizeof(tail), "%s proto %d%s", table_local ? " table local" : "",
		 POLROUTES_PROTO, v6 ? " metric 1" : "");
	fprintf(setup, "route %s %s%s\n", v6 ? "add" : "prepend", what, tail);
	fprintf(teardown, "route del %s%s\n", what, tail);
}

static void entry_lines(const struct policy *p, size_t i, const struct route_path *path,
			bool v6_table_local, FILE *setup, FILE *teardown)
{
	const struct ip_prefix *dst = &p->entries[i].dst;
	bool v6 = dst->addr.family == AF_INET6;
	char text[PREFIX_STR_MAX], what[PREFIX_STR_MAX + 2 * ROUTE_WORD_MAX + 32];

	prefix_format(dst, text, sizeof(text));
	if (p->entries[i].action == POLICY_DISCARD)
		snprintf(what, sizeof(what), "blackhole %s", text);
	else if (!bypass_needs_route(p, i) || path->local)
		return; /* the normal path already, or this host's own address */
	else if (!path->dev[0]) /* no path before tunlab: the stack said unreachable */
		snprintf(what, sizeof(what), "unreachable %s", text);
	else
		snprintf(what, sizeof(what), "%s%s%s dev %s", text, path->via[0] ? " via " : "",
			 path->via, path->dev);
	write_route(setup, teardown, what, v6, v6 && v6_table_local);
}

int polroutes_lines(const struct policy *p, const struct route_path *paths, bool v6_table_local,
		    FILE *setup, FILE *teardown)
{
	static const struct route_path none;

	for (size_t i = 0; p && i < p->count; i++)
		entry_lines(p, i, paths ? &paths[i] : &none, v6_table_local, setup, teardown);
	return ferror(setup) || ferror(teardown) ? -ENOMEM : 0;
}
