// SPDX-License-Identifier: MIT
/* The proxy's kernel state: REDIRECT, TPROXY and drop rules, the fwmark rule, and their cleanup. */

/*
 * Per family, one iptables-restore --noflush (atomic, one fork) adds
 * tunlab's own chains, each jumped to first from a builtin chain by a rule
 * commented "tunlab:pid=<pid>" (nfkit/tagrules.h, as every frontend's):
 *
 *   nat    TUNLAB-<pid>-PX      (OUTPUT)      SYN-hold marks RETURN;
 *                                             -d ROUTE -p tcp [sel] -j REDIRECT --to-ports P
 *   filter TUNLAB-<pid>-PXDROP  (OUTPUT)      SYN-hold marks REJECT (reset, ICMP);
 *                                             tcp and carried udp RETURN;
 *                                             -d ROUTE [sel] -j DROP  (counted: uncarried)
 *   mangle TUNLAB-<pid>-PXSYN   (OUTPUT)      -d ROUTE -p tcp --syn [sel] -j NFQUEUE Q
 *   mangle TUNLAB-<pid>-PXMARK  (OUTPUT)      -d ROUTE -p udp [sel] -j MARK PX_MARK
 *   mangle TUNLAB-<pid>-PXTP    (PREROUTING)  -i lo -p udp -m mark PX_MARK
 *                                             -j TPROXY --on-ip 127.0.0.1|::1 --on-port U
 *
 * plus, for UDP, per family, "ip [-6] rule fwmark PX_MARK lookup PX_TABLE"
 * and "local default dev lo table PX_TABLE", both proto 77. nat sees only
 * a connection's first packet, so REDIRECT costs nothing per packet after.
 * The jump rules and chain names carry the pid: `tunlab cleanup` (and
 * every client open) removes, through the kit's one scanner
 * (nfkit/savescan.h), those of nat, filter and mangle whose owners
 * base/owner.h proves dead (their lock is free), and a family's fwmark
 * rule and table once no live proxy has a TPROXY chain of that family
 * left. One proxy client per namespace can carry UDP: the mark and table
 * are fixed numbers.
 */

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/owner.h"
#include "../base/sysexec.h"
#include "../nfkit/savescan.h"
#include "../nfkit/selrender.h"
#include "../nfkit/tagrules.h"
#include "px.h"

/* The packet frontends' tags (nfkit/tagrules.h), in nat, filter and mangle instead of raw. */
#define PX_CHAIN_PREFIX TAGRULES_CHAIN_PREFIX

static const int fam_af[2] = { AF_INET, AF_INET6 };
static const char *const ipt_tool[2] = { "iptables", "ip6tables" };

static bool sel_family_ok(const struct selector *sel, int af)
{
	return !sel || !sel->has_src || sel->src.addr.family == af;
}

/* Which selectors each chain's rules are written for: a predicate per chain. */
struct rule_filter {
	uint8_t proto;     /* REDIRECT: TCP, MARK: UDP; 0: the drop chain */
	bool udp_carried;  /* drop chain: UDP goes through TPROXY, so it is not dropped */
};

static bool sel_applies(const struct selector *sel, int af, const struct rule_filter *rf)
{
	if (!sel_family_ok(sel, af))
		return false;
	if (rf->proto)
		return !sel || !sel->has_proto || sel->proto == rf->proto;
	/* Dropped: what is selected and cannot be carried. */
	if (!sel || !sel->has_proto)
		return true;
	if (sel->proto == IPPROTO_TCP)
		return false;
	return sel->proto != IPPROTO_UDP || !rf->udp_carried;
}

typedef void (*rule_fn)(FILE *f, const char *chain, const char *dst, const struct selector *sel,
			const struct px_rules_params *p);

/*
 * One rule per policy entry (or route and selector) of family af that rf
 * lets through. Only protect entries reach here: the proxy's policy_actions
 * refuse the others before open.
 */
static void for_each_rule(FILE *f, const struct px_rules_params *p, int af,
			  const struct rule_filter *rf, const char *chain, rule_fn emit)
{
	struct frontend_rule r;
	char dst[PREFIX_STR_MAX];

	for (size_t i = 0; frontend_rule(p->cfg, i, &r); i++) {
		if (r.dst->addr.family != af || !sel_applies(r.sel, af, rf))
			continue;
		prefix_format(r.dst, dst, sizeof(dst));
		emit(f, chain, dst, r.sel, p);
	}
}

static void redirect_rule(FILE *f, const char *chain, const char *dst, const struct selector *sel,
			  const struct px_rules_params *p)
{
	int fam = strchr(dst, ':') ? 1 : 0;

	fprintf(f, "-A %s -d %s -p tcp", chain, dst);
	selector_ipt_matches(f, sel, false);
	fprintf(f, " -j REDIRECT --to-ports %u\n", p->tcp_port[fam]);
}

static void syn_rule(FILE *f, const char *chain, const char *dst, const struct selector *sel,
		     const struct px_rules_params *p)
{
	fprintf(f, "-A %s -d %s -p tcp --syn", chain, dst);
	selector_ipt_matches(f, sel, false);
	/*
	 * Bypass: if we die, SYNs go on to the orphaned REDIRECT and are
	 * refused at once, rather than waiting in a queue nobody reads.
	 */
	fprintf(f, " -j NFQUEUE --queue-num %u --queue-bypass\n", p->syn_queue);
}

static void mark_rule(FILE *f, const char *chain, const char *dst, const struct selector *sel,
		      const struct px_rules_params *p)
{
	(void)p;
	fprintf(f, "-A %s -d %s -p udp", chain, dst);
	selector_ipt_matches(f, sel, false);
	fprintf(f, " -j MARK --set-xmark 0x%x/0xffffffff\n", PX_MARK);
}

static void drop_rule(FILE *f, const char *chain, const char *dst, const struct selector *sel,
		      const struct px_rules_params *p)
{
	(void)p;
	fprintf(f, "-A %s -d %s", chain, dst);
	if (sel && sel->has_proto)
		fprintf(f, " -p %u", sel->proto);
	selector_ipt_matches(f, sel, false);
	fputs(" -j DROP\n", f);
}

/* ---- install ---- */

static void jump(FILE *f, long pid, const char *builtin, const char *chain)
{
	char comment[TAGRULES_COMMENT_MAX];

	tagrules_owner_comment(NULL, 0, pid, comment, sizeof(comment));
	fprintf(f, "-I %s 1 -m comment --comment \"%s\" -j %s\n", builtin, comment, chain);
}

/* A SYN the exit refused (or could not reach) is rejected here, as the far end would have. */
static void reject_rules(FILE *f, const char *drop, int af)
{
	fprintf(f, "-A %s -p tcp -m mark --mark 0x%x -j REJECT --reject-with tcp-reset\n", drop,
		PX_MARK_REFUSE);
	fprintf(f, "-A %s -p tcp -m mark --mark 0x%x -j REJECT --reject-with %s\n", drop,
		PX_MARK_UNREACH, af == AF_INET ? "icmp-host-unreachable" : "icmp6-addr-unreachable");
}

static void mangle_text(FILE *f, const struct px_rules_params *p, long pid, int af,
			uint16_t udp_port)
{
	const struct rule_filter tcp = { .proto = IPPROTO_TCP }, udp_sel = { .proto = IPPROTO_UDP };
	char syn[40], mark[40], tp[40];

	snprintf(syn, sizeof(syn), PX_CHAIN_PREFIX "%ld-PXSYN", pid);
	snprintf(mark, sizeof(mark), PX_CHAIN_PREFIX "%ld-PXMARK", pid);
	snprintf(tp, sizeof(tp), PX_CHAIN_PREFIX "%ld-PXTP", pid);
	fputs("*mangle\n", f);
	if (p->syn_hold) {
		fprintf(f, ":%s - [0:0]\n", syn);
		for_each_rule(f, p, af, &tcp, syn, syn_rule);
		jump(f, pid, "OUTPUT", syn);
	}
	if (udp_port) {
		fprintf(f, ":%s - [0:0]\n:%s - [0:0]\n", mark, tp);
		for_each_rule(f, p, af, &udp_sel, mark, mark_rule);
		fprintf(f, "-A %s -i lo -p udp -m mark --mark 0x%x -j TPROXY --on-port %u "
			"--on-ip %s --tproxy-mark 0x%x/0xffffffff\n", tp, PX_MARK, udp_port,
			af == AF_INET ? "127.0.0.1" : "::1", PX_MARK);
		jump(f, pid, "OUTPUT", mark);
		jump(f, pid, "PREROUTING", tp);
	}
	fputs("COMMIT\n", f);
}

_Static_assert((PX_MARK_REFUSE & ~1u) == (PX_MARK_UNREACH & ~1u),
	       "nat lets both SYN-hold marks pass with one mask");

static void table_text(FILE *f, const struct px_rules_params *p, long pid, int af)
{
	uint16_t udp_port = p->udp_port[af == AF_INET6];
	const struct rule_filter tcp = { .proto = IPPROTO_TCP };
	const struct rule_filter uncarried = { .udp_carried = udp_port != 0 };
	char px[40], drop[40];

	snprintf(px, sizeof(px), PX_CHAIN_PREFIX "%ld-PX", pid);
	snprintf(drop, sizeof(drop), PX_CHAIN_PREFIX "%ld-PXDROP", pid);
	fprintf(f, "*nat\n:%s - [0:0]\n", px);
	if (p->syn_hold)
		fprintf(f, "-A %s -m mark --mark 0x%x/0xfffffffe -j RETURN\n", px, PX_MARK_REFUSE);
	for_each_rule(f, p, af, &tcp, px, redirect_rule);
	jump(f, pid, "OUTPUT", px);
	fprintf(f, "COMMIT\n*filter\n:%s - [0:0]\n", drop);
	if (p->syn_hold)
		reject_rules(f, drop, af);
	fprintf(f, "-A %s -p tcp -j RETURN\n", drop);
	if (udp_port)
		fprintf(f, "-A %s -p udp -j RETURN\n", drop);
	for_each_rule(f, p, af, &uncarried, drop, drop_rule);
	jump(f, pid, "OUTPUT", drop);
	fputs("COMMIT\n", f);
	if (udp_port || p->syn_hold)
		mangle_text(f, p, pid, af, udp_port);
}

char *px_rules_text(const struct px_rules_params *p, long pid, int af)
{
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	table_text(f, p, pid, af);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int restore(int fam, const char *text, bool verbose, char *err, size_t err_len)
{
	return tagrules_restore(fam, text, verbose, err, err_len);
}

/*
 * Family fam's fwmark rule and local route, for "ip -4|-6 -batch" (which
 * gives the rule its family): added with proto 77, or deleted.
 */
static void udp_route_lines(int fam, bool add, char *out, size_t out_len)
{
	const char *any = fam ? "::/0" : "0.0.0.0/0";

	if (add)
		snprintf(out, out_len,
			 "rule add fwmark 0x%x/0xffffffff lookup %d pref %d proto %d\n"
			 "route add local %s dev lo table %d proto %d\n",
			 PX_MARK, PX_TABLE, PX_RULE_PREF, PX_RT_PROTO, any, PX_TABLE, PX_RT_PROTO);
	else
		snprintf(out, out_len,
			 "rule del fwmark 0x%x/0xffffffff lookup %d pref %d\n"
			 "route del local %s dev lo table %d\n",
			 PX_MARK, PX_TABLE, PX_RULE_PREF, any, PX_TABLE);
}

/* Adds (or, forcing past what is already gone, removes) family fam's fwmark rule and table. */
static int udp_routes(int fam, bool add, bool verbose, char *err, size_t err_len)
{
	const char *family = fam ? "-6" : "-4";
	const char *force[] = { "ip", family, "-force", "-batch", "-", NULL };
	const char *plain[] = { "ip", family, "-batch", "-", NULL };
	char lines[256];

	udp_route_lines(fam, add, lines, sizeof(lines));
	return sysexec_pipe(add ? plain : force, lines, NULL, 0, verbose, err, err_len);
}

/* Family fam's fwmark rule and table (with UDP), then its chains, in one restore. */
static int install_family(struct px_rules *r, const struct px_rules_params *p, int fam, char *err,
			  size_t err_len)
{
	char *text;
	int ret;

	if (p->udp_port[fam]) {
		/* Set first: px_rules_remove takes away what half an add left. */
		r->udp[fam] = true;
		if (udp_routes(fam, true, r->verbose, err, err_len) < 0)
			return -EIO;
	}
	text = px_rules_text(p, r->pid, fam_af[fam]);
	ret = restore(fam, text, r->verbose, err, err_len);
	free(text);
	if (ret == 0)
		r->installed[fam] = true;
	return ret;
}

int px_rules_install(struct px_rules *r, const struct px_rules_params *p, char *err,
		     size_t err_len)
{
	int ret = 0;

	*r = (struct px_rules){ .pid = (long)getpid(), .verbose = p->cfg->verbose,
				.syn = p->syn_hold };
	ret = owner_lock_acquire(&r->owner, OWNER_RUN_DIR, err, err_len);
	if (ret < 0)
		return ret;
	for (int fam = 0; fam < 2 && ret == 0; fam++)
		if (frontend_routes_family(p->cfg, fam_af[fam]))
			ret = install_family(r, p, fam, err, err_len);
	if (ret < 0)
		px_rules_remove(r);
	return ret;
}

/* ---- remove ---- */

static void chain_removal(FILE *f, long pid, const char *table, const char *const *jumps)
{
	char comment[TAGRULES_COMMENT_MAX];

	tagrules_owner_comment(NULL, 0, pid, comment, sizeof(comment));
	fprintf(f, "*%s\n", table);
	for (const char *const *j = jumps; *j; j += 2)
		fprintf(f, "-D %s -m comment --comment \"%s\" -j " PX_CHAIN_PREFIX "%ld-%s\n", j[0],
			comment, pid, j[1]);
	for (const char *const *j = jumps; *j; j += 2)
		fprintf(f, "-F " PX_CHAIN_PREFIX "%ld-%s\n-X " PX_CHAIN_PREFIX "%ld-%s\n", pid, j[1],
			pid, j[1]);
	fputs("COMMIT\n", f);
}

static char *removal_text(long pid, bool udp, bool syn)
{
	static const char *const nat[] = { "OUTPUT", "PX", NULL };
	static const char *const filter[] = { "OUTPUT", "PXDROP", NULL };
	const char *mangle[7];
	size_t n = 0;
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	chain_removal(f, pid, "nat", nat);
	chain_removal(f, pid, "filter", filter);
	if (syn) {
		mangle[n++] = "OUTPUT";
		mangle[n++] = "PXSYN";
	}
	if (udp) {
		mangle[n++] = "OUTPUT";
		mangle[n++] = "PXMARK";
		mangle[n++] = "PREROUTING";
		mangle[n++] = "PXTP";
	}
	mangle[n] = NULL;
	if (n)
		chain_removal(f, pid, "mangle", mangle);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

void px_rules_remove(struct px_rules *r)
{
	for (int fam = 0; fam < 2; fam++) {
		char *text;

		if (!r->installed[fam])
			continue;
		text = removal_text(r->pid, r->udp[fam], r->syn);
		restore(fam, text, r->verbose, r->err, sizeof(r->err));
		free(text);
		r->installed[fam] = false;
	}
	for (int fam = 0; fam < 2; fam++) {
		if (r->udp[fam])
			udp_routes(fam, false, r->verbose, r->err, sizeof(r->err));
		r->udp[fam] = false;
	}
	owner_lock_release(&r->owner);
}

/* ---- the uncarried-packet counter ---- */

static uint64_t sum_drops(char *listing)
{
	uint64_t sum = 0, pkts;
	char *save = NULL, target[32];

	for (char *line = strtok_r(listing, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, " %" SCNu64 " %*u %31s", &pkts, target) == 2 &&
		    strcmp(target, "DROP") == 0)
			sum += pkts;
	return sum;
}

int px_rules_uncarried(const struct px_rules *r, uint64_t *out)
{
	char chain[40], listing[8192], err[256];

	*out = 0;
	snprintf(chain, sizeof(chain), PX_CHAIN_PREFIX "%ld-PXDROP", r->pid);
	for (int fam = 0; fam < 2; fam++) {
		const char *argv[] = { ipt_tool[fam], "-w", "1", "-t", "filter", "-nvxL", chain, NULL };

		if (!r->installed[fam])
			continue;
		if (sysexec_capture(argv, listing, sizeof(listing), err, sizeof(err)) < 0)
			return -EIO;
		*out += sum_drops(listing);
	}
	return 0;
}

/* ---- cleanup of instances that no longer run ---- */

struct px_scan {
	struct owner_judge judge; /* who is dead: base/owner.h, never kill(pid, 0) */
	bool live_tproxy[2], dead_tproxy[2]; /* per family: a TPROXY chain of a live/dead pid */
};

static int pick_dead(void *ctx, const struct savescan_obj *o)
{
	struct px_scan *s = ctx;
	bool dead = owner_judge_dead(&s->judge, o->pid);

	if (!o->jump && strcmp(o->role, "PXTP") == 0)
		(dead ? s->dead_tproxy : s->live_tproxy)[o->fam] = true;
	return dead;
}

/* The number of objects removed, or a negative errno. */
static int cleanup_family(int fam, struct px_scan *s, bool verbose, char *err, size_t err_len)
{
	static const char *const tables[] = { "nat", "filter", "mangle", NULL };
	char *text;
	int n = savescan_family(fam, tables, pick_dead, s, &text, err, err_len);

	if (n == -EIO && fam == TAGRULES_FAM_V6)
		n = 0; /* a host without ip6tables has nothing there */
	if (n > 0 && restore(fam, text, verbose, err, err_len) < 0)
		n = -EIO;
	free(text);
	return n;
}

int px_rules_cleanup(bool verbose, char *err, size_t err_len)
{
	struct px_scan s = { 0 };
	int objects = 0, ret = 0;

	owner_judge_init(&s.judge, OWNER_RUN_DIR);
	for (int fam = 0; fam < 2 && ret >= 0; fam++) {
		ret = cleanup_family(fam, &s, verbose, err, err_len);
		objects += ret > 0 ? ret : 0;
	}
	owner_judge_release(&s.judge, ret >= 0);
	if (ret < 0) {
		if (ret == -ENOMEM)
			snprintf(err, err_len, "proxy cleanup: %s", strerror(ENOMEM));
		return ret;
	}
	for (int fam = 0; fam < 2; fam++) {
		char ignored[256];

		if (!s.dead_tproxy[fam] || s.live_tproxy[fam])
			continue;
		udp_routes(fam, false, verbose, ignored, sizeof(ignored));
		objects += 2;
	}
	return objects;
}
