// SPDX-License-Identifier: MIT
/* The inner address on lo and the routes that make local traffic carry it. */

/*
 * A locally originated packet reaches the OUTPUT hook only once a route
 * exists for it, and it gets its source address from that route. The
 * rules steal at the hook, so traffic they do not select must keep its
 * normal path: tunlab never routes a remote prefix elsewhere. Instead, with
 * --address, the address goes on lo as a host address (/32, /128, label
 * "lo:tl<pid>" for IPv4) and each remote prefix gets a copy of its current
 * path (`ip route get` of its first address) with "src <inner address>
 * proto 77" added: same next hop, same device, inner source. IPv4 copies
 * are prepended (they win over an identical route, and a delete naming
 * proto 77 removes only them); IPv6 copies take metric 1.
 *
 * A prefix with no route at all gets "dev lo" so that its packets reach
 * OUTPUT; this is what the server does for its clients' prefixes, whose
 * forwarded return traffic is stolen in raw PREROUTING before any routing
 * (the route only serves the server's own traffic). Linux turns an IPv6
 * route via lo into a reject route: ICMPv6 and UDP still pass OUTPUT
 * first, but a TCP connect() fails with ENETUNREACH before it.
 *
 * Without --address no copy is made: dst sees the source the stack picked
 * (the underlay address), and the server drops it as spoofed unless that
 * address is inside the client's prefixes in the peers file.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/sysexec.h"
#include "nfq.h"

enum { NFQ_ROUTE_DUMP_MAX = 1 << 20, NFQ_WORD_MAX = 64 };

/* One answer of `ip -o route get`: "10.9.0.0 via 10.1.0.1 dev eth0 src ... \ cache". */
struct path {
	struct ip_addr dst;
	bool unicast;
	char via[NFQ_WORD_MAX + 8]; /* "10.1.0.1" or "inet6 fe80::1" */
	char dev[NFQ_WORD_MAX];
};

static const char *const route_types[] = { "local", "broadcast", "unreachable", "prohibit",
					   "blackhole", "multicast", "anycast", "throw", "nat",
					   NULL };

/* The word after key in line, into out; false if absent. */
static bool word_after(const char *line, const char *key, char *out, size_t out_len)
{
	size_t klen = strlen(key);

	for (const char *p = strstr(line, key); p; p = strstr(p + 1, key)) {
		if ((p != line && p[-1] != ' ') || p[klen] != ' ')
			continue;
		p += klen + 1;
		snprintf(out, out_len, "%.*s", (int)strcspn(p, " \\\n"), p);
		return out[0] != '\0';
	}
	return false;
}

static bool is_route_type(const char *word, size_t len)
{
	for (size_t i = 0; route_types[i]; i++)
		if (strlen(route_types[i]) == len && strncmp(word, route_types[i], len) == 0)
			return true;
	return false;
}

static bool parse_path(const char *line, struct path *out)
{
	char word[NFQ_WORD_MAX];
	size_t n = strcspn(line, " ");

	*out = (struct path){ .unicast = !is_route_type(line, n) };
	if (!out->unicast)
		line += n + (line[n] == ' ');
	snprintf(word, sizeof(word), "%.*s", (int)strcspn(line, " /"), line);
	if (addr_parse(word, &out->dst) < 0)
		return false;
	if (word_after(line, "via", out->via, sizeof(out->via)) &&
	    (!strcmp(out->via, "inet") || !strcmp(out->via, "inet6"))) {
		char gw[NFQ_WORD_MAX];
		if (word_after(line, out->via, gw, sizeof(gw)))
			snprintf(out->via + strlen(out->via), sizeof(out->via) - strlen(out->via),
				 " %s", gw);
	}
	out->unicast = out->unicast && word_after(line, "dev", out->dev, sizeof(out->dev));
	return true;
}

/* Every prefix's current path, one `ip -batch` for all; paths[i].dev "" if none. */
static int lookup_paths(const struct frontend_config *cfg, struct path *paths, char *err,
			size_t err_len)
{
	static const char *const argv[] = { "ip", "-o", "-force", "-batch", "-", NULL };
	char *input = NULL, *out = malloc(NFQ_ROUTE_DUMP_MAX), *save = NULL, text[PREFIX_STR_MAX];
	size_t len;
	FILE *f = open_memstream(&input, &len);
	struct path p;

	if (!f || !out) {
		if (f)
			fclose(f);
		free(input);
		free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->route_count; i++) {
		addr_format(&cfg->routes[i].addr, text, sizeof(text));
		fprintf(f, "route get %s\n", text);
	}
	if (fclose(f) != 0) {
		free(input);
		free(out);
		return -ENOMEM;
	}
	/* A prefix without a route makes ip complain and exit 1: it just has no answer. */
	sysexec_pipe(argv, input, out, NFQ_ROUTE_DUMP_MAX, false, err, err_len);
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!parse_path(line, &p))
			continue;
		for (size_t i = 0; i < cfg->route_count; i++)
			if (!memcmp(&cfg->routes[i].addr, &p.dst, sizeof(p.dst)))
				paths[i] = p;
	}
	free(input);
	free(out);
	return 0;
}

/* ---- setup ---- */

static bool same_family_address(const struct frontend_config *cfg, const struct ip_prefix *p)
{
	return cfg->has_address && cfg->address.addr.family == p->addr.family;
}

static void route_lines(FILE *setup, FILE *teardown, const struct frontend_config *cfg,
			const struct ip_prefix *prefix, const struct path *path)
{
	bool v6 = prefix->addr.family == AF_INET6, copy = path->unicast && path->dev[0];
	char dst[PREFIX_STR_MAX], src[PREFIX_STR_MAX] = "", via[NFQ_WORD_MAX + 16] = "";
	char tail[32];

	/* A route that exists and would get no source adds nothing. */
	if (copy && !same_family_address(cfg, prefix))
		return;
	prefix_format(prefix, dst, sizeof(dst));
	if (same_family_address(cfg, prefix))
		addr_format(&cfg->address.addr, src, sizeof(src));
	if (copy && path->via[0])
		snprintf(via, sizeof(via), " via %s", path->via);
	snprintf(tail, sizeof(tail), " proto %d%s", NFQ_RT_PROTO, v6 ? " metric 1" : "");
	_Static_assert(NFQ_RT6_METRIC == 1, "the line above spells the metric");
	fprintf(setup, "route %s %s%s dev %s%s%s%s\n", v6 ? "add" : "prepend", dst, via,
		copy ? path->dev : "lo", src[0] ? " src " : "", src, tail);
	fprintf(teardown, "route del %s%s dev %s%s\n", dst, via, copy ? path->dev : "lo", tail);
}

static void address_text(const struct frontend_config *cfg, char *out, size_t out_len)
{
	char addr[PREFIX_STR_MAX];

	addr_format(&cfg->address.addr, addr, sizeof(addr));
	snprintf(out, out_len, "%s/%d", addr, cfg->address.addr.family == AF_INET ? 32 : 128);
}

/* Setup adds the routes; teardown deletes them, then the address if it is ours. */
static int build_lines(const struct frontend_config *cfg, bool addr_owned, char **setup,
		       char **teardown, char *err, size_t err_len)
{
	struct path *paths = calloc(cfg->route_count ? cfg->route_count : 1, sizeof(*paths));
	char text[PREFIX_STR_MAX + 8];
	size_t slen, tlen;
	FILE *s = NULL, *t = NULL;
	int ret = -ENOMEM;

	*setup = *teardown = NULL;
	if (!paths)
		goto out;
	ret = lookup_paths(cfg, paths, err, err_len);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	s = open_memstream(setup, &slen);
	t = open_memstream(teardown, &tlen);
	if (!s || !t)
		goto out;
	for (size_t i = 0; i < cfg->route_count; i++)
		route_lines(s, t, cfg, &cfg->routes[i], &paths[i]);
	/* Routes go before the address their src names. */
	if (addr_owned) {
		address_text(cfg, text, sizeof(text));
		fprintf(t, "addr del %s dev lo\n", text);
	}
	ret = 0;
out:
	if (s && fclose(s) != 0)
		ret = -ENOMEM;
	if (t && fclose(t) != 0)
		ret = -ENOMEM;
	free(paths);
	if (ret < 0) {
		free(*setup);
		free(*teardown);
		*setup = *teardown = NULL;
	}
	return ret;
}

static int address_line(const struct frontend_config *cfg, const char *verb, bool force,
			char *err, size_t err_len)
{
	char line[160], text[PREFIX_STR_MAX + 8];
	bool add = !strcmp(verb, "add");

	address_text(cfg, text, sizeof(text));
	if (add && cfg->address.addr.family == AF_INET)
		snprintf(line, sizeof(line), "addr add %s dev lo label " NFQ_LO_LABEL_PREFIX "%ld\n",
			 text, (long)getpid());
	else
		snprintf(line, sizeof(line), "addr %s %s dev lo\n", verb, text);
	return sysexec_ip_batch(line, force, cfg->verbose, err, err_len);
}

int nfq_routes_setup(struct nfq_routes *r, const struct frontend_config *cfg, char *err,
		     size_t err_len)
{
	char *setup = NULL, ignored[256];
	int ret;

	*r = (struct nfq_routes){ 0 };
	if (cfg->has_address) {
		r->addr_owned = address_line(cfg, "add", false, err, err_len) == 0;
		/* An address that is there already is not ours to delete. */
		if (!r->addr_owned && !strstr(err, "File exists"))
			return -EIO;
	}
	ret = build_lines(cfg, r->addr_owned, &setup, &r->teardown, err, err_len);
	if (ret < 0) {
		if (r->addr_owned)
			address_line(cfg, "del", true, ignored, sizeof(ignored));
		snprintf(err, err_len, "nfqueue routes: %s", strerror(-ret));
		return ret;
	}
	if (setup[0] && sysexec_ip_batch(setup, false, cfg->verbose, err, err_len) < 0) {
		/* -force: whatever part of the batch went in comes out. */
		nfq_routes_teardown(r, cfg->verbose);
		ret = -EIO;
	}
	free(setup);
	return ret;
}

void nfq_routes_teardown(struct nfq_routes *r, bool verbose)
{
	char err[256];

	if (r->teardown && r->teardown[0])
		sysexec_ip_batch(r->teardown, true, verbose, err, sizeof(err));
	free(r->teardown);
	r->teardown = NULL;
}

/* ---- what dead instances left ---- */

/* "10.9.0.0/24 via 10.1.0.1 dev eth0 src 10.8.0.2" of a dead instance: its delete line. */
static void dead_route(FILE *f, const struct nfq_dead_list *dead, const char *line,
		       size_t *count)
{
	char word[NFQ_WORD_MAX], via[NFQ_WORD_MAX], dev[NFQ_WORD_MAX], metric[16], table[32];
	struct ip_prefix dst;
	struct ip_addr src;
	bool has_src = word_after(line, "src", word, sizeof(word)) && addr_parse(word, &src) == 0;
	size_t n = strcspn(line, " ");

	if (is_route_type(line, n))
		line += n + 1;
	snprintf(word, sizeof(word), "%.*s", (int)strcspn(line, " "), line);
	if (prefix_parse(word, &dst) < 0 || !word_after(line, "dev", dev, sizeof(dev)))
		return;
	for (size_t i = 0; i < dead->count; i++) {
		const struct nfq_dead *d = &dead->items[i];
		bool owner = has_src ? d->has_addr && !memcmp(&src, &d->addr, sizeof(src))
				     : !d->has_addr || d->addr.family != dst.addr.family;
		for (size_t k = 0; owner && k < d->prefix_count; k++) {
			if (d->prefixes[k].len != dst.len ||
			    memcmp(&d->prefixes[k].addr, &dst.addr, sizeof(dst.addr)))
				continue;
			fprintf(f, "route del %s", word);
			if (word_after(line, "via", via, sizeof(via)))
				fprintf(f, " via %s", via);
			fprintf(f, " dev %s proto %d", dev, NFQ_RT_PROTO);
			if (word_after(line, "metric", metric, sizeof(metric)))
				fprintf(f, " metric %s", metric);
			if (word_after(line, "table", table, sizeof(table)))
				fprintf(f, " table %s", table);
			fputc('\n', f);
			(*count)++;
			return;
		}
	}
}

static int dead_routes(FILE *f, const struct nfq_dead_list *dead, char *buf, size_t *count,
		       char *err, size_t err_len)
{
	static const char *const argv4[] = { "ip", "-o", "-4", "route", "show", "table", "all",
					     "proto", "77", NULL };
	static const char *const argv6[] = { "ip", "-o", "-6", "route", "show", "table", "all",
					     "proto", "77", NULL };
	const char *const *argvs[2] = { argv4, argv6 };
	_Static_assert(NFQ_RT_PROTO == 77, "argv above spells the protocol");

	for (int fam = 0; fam < 2; fam++) {
		char *save = NULL;
		if (sysexec_capture(argvs[fam], buf, NFQ_ROUTE_DUMP_MAX, err, err_len) < 0)
			return -EIO;
		for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			dead_route(f, dead, line, count);
	}
	return 0;
}

/* An IPv4 address labelled lo:tl<pid> of a dead pid, or a dead instance's IPv6 address. */
static void dead_address(FILE *f, const struct nfq_dead_list *dead, const char *line,
			 size_t *count)
{
	char word[NFQ_WORD_MAX], *end;
	const char *label = strstr(line, " " NFQ_LO_LABEL_PREFIX);
	struct ip_prefix p;
	bool v6 = word_after(line, "inet6", word, sizeof(word));

	if (!v6 && !word_after(line, "inet", word, sizeof(word)))
		return;
	if (prefix_parse_host(word, &p) < 0)
		return;
	if (!v6 && label) {
		long pid = strtol(label + 1 + strlen(NFQ_LO_LABEL_PREFIX), &end, 10);
		if (!nfq_pid_gone(pid))
			return;
	} else {
		bool found = false;
		for (size_t i = 0; !found && i < dead->count; i++)
			found = dead->items[i].has_addr &&
				!memcmp(&dead->items[i].addr, &p.addr, sizeof(p.addr));
		/* An IPv4 address we added always carries the label. */
		if (!found || !v6)
			return;
	}
	fprintf(f, "addr del %s dev lo\n", word);
	(*count)++;
}

static int dead_addresses(FILE *f, const struct nfq_dead_list *dead, char *buf, size_t *count,
			  char *err, size_t err_len)
{
	static const char *const argv[] = { "ip", "-o", "addr", "show", "dev", "lo", NULL };
	char *save = NULL;

	if (sysexec_capture(argv, buf, NFQ_ROUTE_DUMP_MAX, err, err_len) < 0)
		return -EIO;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		dead_address(f, dead, line, count);
	return 0;
}

int nfq_routes_remove_dead(const struct nfq_dead_list *dead, bool verbose, char *err,
			   size_t err_len)
{
	char *buf = malloc(NFQ_ROUTE_DUMP_MAX), *lines = NULL;
	size_t len, count = 0;
	FILE *f = open_memstream(&lines, &len);
	int ret = -ENOMEM;

	if (!buf || !f)
		goto out;
	ret = dead_routes(f, dead, buf, &count, err, err_len);
	if (ret >= 0)
		ret = dead_addresses(f, dead, buf, &count, err, err_len);
out:
	if (f && fclose(f) != 0 && ret >= 0)
		ret = -ENOMEM;
	/* -force: one object already gone must not keep the others. */
	if (ret >= 0 && count)
		sysexec_ip_batch(lines, true, verbose, err, err_len);
	if (ret == -ENOMEM)
		snprintf(err, err_len, "nfqueue cleanup: %s", strerror(ENOMEM));
	free(lines);
	free(buf);
	return ret < 0 ? ret : (int)count;
}
