// SPDX-License-Identifier: MIT
/* Configuring a TUN device with iproute2, and finding what dead instances left. */

/*
 * Everything is written as `ip -batch -` lines, so that configuring a
 * device with a thousand routes is one process, and a student running with
 * --verbose sees the equivalent `ip ...` commands one by one.
 *
 * Ownership: each device carries the alias "tunlab:pid=N", each route the
 * protocol TUNB_RT_PROTO. A device is a dead instance's only if its alias
 * (or, without one, its default name tunlab<N>) names an owner that
 * base/owner.h proves dead, and a route only if it is proto 77 on such
 * a device: a live instance's route to the same prefix is on another.
 */

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/owner.h"
#include "../base/sysexec.h"
#include "tun.h"
#include "tunbackend.h"

/* `ip -o link show` and the route dump of a busy host fit; beyond, we see less. */
enum { TUNB_DUMP_MAX = 1 << 20 };

/* The route the kernel adds itself for an address ("10.8.0.0/24 dev X", "fd08::/64 dev X"). */
static bool is_connected_route(const struct ip_prefix *route, const struct frontend_config *cfg)
{
	const struct ip_prefix *address = frontend_address(cfg, route->addr.family);

	return address && route->len == address->len && prefix_contains(route, &address->addr);
}

static void add_route_lines(FILE *setup, FILE *teardown, const char *dev,
			    const struct frontend_config *cfg)
{
	char text[PREFIX_STR_MAX];

	for (size_t i = 0; i < cfg->route_count; i++) {
		/* Adding it again would fail with "File exists" (IPv4). */
		if (is_connected_route(&cfg->routes[i], cfg))
			continue;
		prefix_format(&cfg->routes[i], text, sizeof(text));
		fprintf(setup, "route add %s dev %s proto %d\n", text, dev, TUNB_RT_PROTO);
		fprintf(teardown, "route del %s dev %s proto %d\n", text, dev, TUNB_RT_PROTO);
	}
}

static void add_link_lines(FILE *setup, const char *dev, const struct frontend_config *cfg)
{
	char text[PREFIX_STR_MAX];

	fprintf(setup, "link set dev %s alias %s%ld\n", dev, TUNB_ALIAS_PREFIX, (long)getpid());
	fprintf(setup, "link set dev %s mtu %u up\n", dev, cfg->mtu ? cfg->mtu : TUNB_MTU_DEFAULT);
	/*
	 * Both families on one device: it carries whatever the routes send
	 * it. nodad: an IPv6 address is usable when open returns, not after
	 * the kernel's DAD work has run (a TUN device has no neighbours).
	 */
	for (size_t i = 0; i < cfg->address_count; i++) {
		bool v6 = cfg->addresses[i].addr.family == AF_INET6;

		prefix_format(&cfg->addresses[i], text, sizeof(text));
		fprintf(setup, "addr add %s dev %s%s\n", text, dev, v6 ? " nodad" : "");
	}
}

int tun_ip_lines(const char *dev, const struct frontend_config *cfg, char **setup,
		  char **teardown)
{
	size_t setup_len, teardown_len;
	FILE *s, *t;
	int ret = -ENOMEM;

	*setup = *teardown = NULL;
	s = open_memstream(setup, &setup_len);
	if (!s)
		goto out;
	t = open_memstream(teardown, &teardown_len);
	if (!t)
		goto err_setup;
	add_link_lines(s, dev, cfg);
	add_route_lines(s, t, dev, cfg);
	ret = 0;
	if (fclose(t) != 0)
		ret = -ENOMEM;
err_setup:
	if (fclose(s) != 0)
		ret = -ENOMEM;
out:
	if (ret < 0) {
		free(*setup);
		free(*teardown);
		*setup = *teardown = NULL;
	}
	return ret;
}

/* ---- cleanup ---- */

struct dead_links {
	char (*names)[IFNAMSIZ];
	size_t count, cap;
	struct owner_judge *judge; /* who is dead (their locks held until the end) */
};

/* The owner recorded in a `ip -o link show` line, or 0. */
static long link_owner(const char *line, const char *name)
{
	const char *alias = strstr(line, "alias " TUNB_ALIAS_PREFIX);
	char *end;
	long pid;

	if (alias)
		return strtol(alias + strlen("alias " TUNB_ALIAS_PREFIX), NULL, 10);
	if (strncmp(name, "tunlab", 6) != 0 || name[6] < '1' || name[6] > '9')
		return 0;
	pid = strtol(name + 6, &end, 10);
	return *end ? 0 : pid;
}

/* "7: tunlab123: <...> ..." (a veth shows as "name@peer") */
static bool link_name(const char *line, char name[IFNAMSIZ])
{
	const char *p = strstr(line, ": ");
	size_t n;

	if (!p)
		return false;
	p += 2;
	n = strcspn(p, ":@ ");
	if (n == 0 || n >= IFNAMSIZ)
		return false;
	memcpy(name, p, n);
	name[n] = '\0';
	return true;
}

static bool dead_contains(const struct dead_links *d, const char *name)
{
	for (size_t i = 0; i < d->count; i++)
		if (strcmp(d->names[i], name) == 0)
			return true;
	return false;
}

static int dead_add(struct dead_links *d, const char *name)
{
	if (d->count == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 8;
		void *n = realloc(d->names, cap * sizeof(*d->names));
		if (!n)
			return -ENOMEM;
		d->names = n;
		d->cap = cap;
	}
	snprintf(d->names[d->count++], IFNAMSIZ, "%s", name);
	return 0;
}

/* Calls fn on each line of text (modified in place). */
static int for_each_line(char *text, int (*fn)(char *line, void *arg), void *arg)
{
	char *save = NULL;
	int ret = 0;

	for (char *line = strtok_r(text, "\n", &save); line && ret >= 0;
	     line = strtok_r(NULL, "\n", &save))
		ret = fn(line, arg);
	return ret;
}

static int collect_dead_link(char *line, void *arg)
{
	struct dead_links *dead = arg;
	char name[IFNAMSIZ];

	if (!link_name(line, name) || !owner_judge_dead(dead->judge, link_owner(line, name)))
		return 0;
	return dead_add(dead, name);
}

static int scan_links(char *buf, struct dead_links *dead, char *err, size_t err_len)
{
	static const char *const argv[] = { "ip", "-o", "link", "show", NULL };

	if (sysexec_capture(argv, buf, TUNB_DUMP_MAX, err, err_len) < 0)
		return -EIO;
	return for_each_line(buf, collect_dead_link, dead);
}

struct route_scan {
	const struct dead_links *dead;
	FILE *batch; /* NULL: only count */
	size_t count;
};

/* "10.9.0.0/24 dev tunlab123 scope link" (proto is left out: it was filtered on) */
static int collect_dead_route(char *line, void *arg)
{
	struct route_scan *rs = arg;
	char dev[IFNAMSIZ], table[32];
	const char *dev_at = strstr(line, " dev ");

	if (!dev_at || !sysexec_ip_field(line, "dev", dev, sizeof(dev)) ||
	    !dead_contains(rs->dead, dev))
		return 0;
	rs->count++;
	if (!rs->batch)
		return 0;
	fprintf(rs->batch, "route del %.*s dev %s proto %d", (int)(dev_at - line), line, dev,
		TUNB_RT_PROTO);
	if (sysexec_ip_field(line, "table", table, sizeof(table)))
		fprintf(rs->batch, " table %s", table);
	fputc('\n', rs->batch);
	return 0;
}

static int scan_routes(char *buf, struct route_scan *rs, char *err, size_t err_len)
{
	static const char *const argv[] = { "ip", "-o", "route", "show", "table", "all",
					    "proto", "77", NULL };
	_Static_assert(TUNB_RT_PROTO == 77, "argv above spells the protocol");

	if (sysexec_capture(argv, buf, TUNB_DUMP_MAX, err, err_len) < 0)
		return -EIO;
	return for_each_line(buf, collect_dead_route, rs);
}

/* Route lines first (so --verbose shows them), then the links themselves. */
static int build_cleanup_batch(char *buf, const struct dead_links *dead, char **lines,
			       size_t *routes, char *err, size_t err_len)
{
	size_t len;
	FILE *f = open_memstream(lines, &len);
	struct route_scan rs = { .dead = dead };
	int ret;

	if (!f)
		return -ENOMEM;
	rs.batch = f;
	ret = scan_routes(buf, &rs, err, err_len);
	for (size_t i = 0; i < dead->count; i++)
		fprintf(f, "link del dev %s\n", dead->names[i]);
	if (fclose(f) != 0 && ret == 0)
		ret = -ENOMEM;
	*routes = rs.count;
	return ret;
}

/* What of the targets is still there after the batch ran. */
static int count_left(char *buf, const struct dead_links *dead, size_t *left,
		      char *err, size_t err_len)
{
	struct dead_links now = { .judge = dead->judge };
	struct route_scan rs = { .dead = dead };
	int ret = scan_links(buf, &now, err, err_len);

	*left = 0;
	for (size_t i = 0; ret >= 0 && i < now.count; i++)
		*left += dead_contains(dead, now.names[i]);
	free(now.names);
	if (ret >= 0)
		ret = scan_routes(buf, &rs, err, err_len);
	*left += rs.count;
	return ret;
}

static int remove_dead(char *buf, const struct dead_links *dead, bool verbose,
		       char *err, size_t err_len)
{
	char *lines = NULL;
	size_t routes = 0, left = 0;
	int ret = build_cleanup_batch(buf, dead, &lines, &routes, err, err_len);

	if (ret < 0)
		goto out;
	/* -force: one device already gone must not stop the others. */
	sysexec_ip_batch(lines, true, verbose, err, err_len);
	ret = count_left(buf, dead, &left, err, err_len);
	if (ret >= 0)
		ret = (int)(dead->count + routes - left);
out:
	free(lines);
	return ret;
}

/*
 * The bypass and discard routes of dead instances (tun_policy_routes): on
 * no device of theirs, so found from their records alone. Any dead
 * owner's record is run (a pcap instance's too: its routes are its
 * record's, whoever runs it) and then emptied, so nobody runs or counts it
 * twice; its lock file stays for the owner's other cleanups (its rules).
 */
static int remove_dead_records(bool verbose, char *err, size_t err_len)
{
	struct owner_judge judge;
	int count = 0, ret;

	owner_judge_init(&judge, OWNER_RUN_DIR);
	ret = owner_judge_scan(&judge);
	for (size_t i = 0; ret >= 0 && i < judge.count; i++) {
		char *text = judge.seen[i].fd >= 0 ? owner_judge_record(&judge, judge.seen[i].pid) : NULL;

		if (text && text[0]) {
			for (const char *p = text; *p; p += strcspn(p, "\n") + 1)
				count++;
			sysexec_ip_batch(text, true, verbose, err, err_len);
			owner_judge_clear_record(&judge, judge.seen[i].pid);
		}
		free(text);
	}
	owner_judge_release(&judge, false);
	if (ret < 0)
		snprintf(err, err_len, "tun cleanup: %s: %s", OWNER_RUN_DIR, strerror(-ret));
	return ret < 0 ? ret : count;
}

int tun_ip_cleanup(bool verbose, char *err, size_t err_len)
{
	struct owner_judge judge;
	struct dead_links dead = { .judge = &judge };
	char *buf = malloc(TUNB_DUMP_MAX);
	int ret = -ENOMEM, records;

	owner_judge_init(&judge, OWNER_RUN_DIR);
	if (!buf) {
		snprintf(err, err_len, "tun cleanup: %s", strerror(ENOMEM));
		goto out;
	}
	/* First: the links' judge below forgets its dead owners' files, records and all. */
	ret = records = remove_dead_records(verbose, err, err_len);
	if (ret >= 0)
		ret = scan_links(buf, &dead, err, err_len);
	if (ret >= 0 && dead.count)
		ret = remove_dead(buf, &dead, verbose, err, err_len);
	if (ret >= 0)
		ret += records;
	if (ret == -ENOMEM)
		snprintf(err, err_len, "tun cleanup: %s", strerror(ENOMEM));
	free(dead.names);
	free(buf);
out:
	owner_judge_release(&judge, ret >= 0);
	return ret;
}
