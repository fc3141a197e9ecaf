// SPDX-License-Identifier: MIT
/* The capture rules: tunlab's own raw-table chains sending selected packets to NFQUEUE. */

/*
 * iptables-nft first: `iptables-restore --noflush` applies a family's whole
 * ruleset atomically in one process (and a thousand prefixes cost one
 * fork). Chains TUNLAB-<pid>-OUT (hooked from raw OUTPUT: locally
 * originated) and TUNLAB-<pid>-PRE (raw PREROUTING: forwarded, and the
 * server's return traffic) are inserted first in raw, which runs before
 * conntrack: a stolen packet leaves no conntrack state behind. The jump
 * rules' comment "tunlab:pid=<pid> addr=<inner>..." names the owner and the
 * inner addresses, so that `tunlab cleanup` can find, from the rules alone,
 * everything a dead instance created.
 *
 * nft second, only when iptables fails and a one-rule probe shows that its
 * NFQUEUE target is what is missing: a table inet tunlab_<pid> with the
 * same two chains at priority raw. On this project's kernels nft's native
 * queue statement is refused (no nft_queue), so the fallback is for others.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/sysexec.h"
#include "../nfkit/selrender.h"
#include "nfq.h"

static const int fam_af[TAGRULES_FAM_COUNT] = { AF_INET, AF_INET6 };

struct rule_ctx {
	const struct nfq_rules_params *params;
	const struct frontend_config *cfg;
	long pid;
	int af;
	const char *chain;  /* the iptables chain being written */
	bool out_chain;     /* hooked from OUTPUT (else PREROUTING) */
};

typedef void (*rule_fn)(FILE *f, const struct rule_ctx *c, const char *dst,
			const struct frontend_rule *r);

static void owner_comment(const struct frontend_config *cfg, long pid, char *out, size_t out_len)
{
	tagrules_owner_comment(cfg->addresses, cfg->address_count, pid, out, out_len);
}

/* ---- matches ---- */

static void ipt_target(FILE *f, const struct rule_ctx *c)
{
	unsigned first = c->params->queue_first, n = c->params->queue_count;

	if (n > 1)
		fprintf(f, " -j NFQUEUE --queue-balance %u:%u", first, first + n - 1);
	else
		fprintf(f, " -j NFQUEUE --queue-num %u", first);
	/* Without a listener: pass in clear (fail-open) or drop (the default). */
	fputs(c->params->fail_open ? " --queue-bypass\n" : "\n", f);
}

static void nft_target(FILE *f, const struct rule_ctx *c)
{
	unsigned first = c->params->queue_first, n = c->params->queue_count;

	if (n > 1)
		fprintf(f, " queue num %u-%u", first, first + n - 1);
	else
		fprintf(f, " queue num %u", first);
	fputs(c->params->fail_open ? " bypass\n" : "\n", f);
}

/* ---- iptables ---- */

/* One rule per policy entry (or route and selector) of c->af that can match in this chain. */
static void for_each_rule(FILE *f, const struct rule_ctx *c, rule_fn emit)
{
	struct frontend_rule r;
	char dst[PREFIX_STR_MAX];

	for (size_t i = 0; frontend_rule(c->cfg, i, &r); i++) {
		if (r.dst->addr.family != c->af || !selector_applies(r.sel, c->af, c->out_chain))
			continue;
		prefix_format(r.dst, dst, sizeof(dst));
		emit(f, c, dst, &r);
	}
}

/* protect: to the queue; bypass: on through raw, its normal path; discard: dropped here. */
static void ipt_rule(FILE *f, const struct rule_ctx *c, const char *dst,
		     const struct frontend_rule *r)
{
	fprintf(f, "-A %s -d %s", c->chain, dst);
	selector_ipt_matches(f, r->sel, true);
	if (r->action == POLICY_BYPASS)
		fputs(" -j RETURN\n", f);
	else if (r->action == POLICY_DISCARD)
		fputs(" -j DROP\n", f);
	else
		ipt_target(f, c);
}

static void ipt_chain_rules(FILE *f, const struct rule_ctx *base, const char *chain,
			    bool out_chain)
{
	struct rule_ctx c = *base;
	const struct ip_addr *inner = frontend_covered_address(base->cfg, base->af);
	char text[PREFIX_STR_MAX];

	c.chain = chain;
	c.out_chain = out_chain;
	/* Ours, back from the tunnel: never into it again (a server relays on purpose). */
	if (c.cfg->role == FRONTEND_CLIENT)
		fprintf(f, "-A %s -m mark --mark 0x%x -j RETURN\n", chain, NFQ_MARK);
	if (inner) {
		addr_format(inner, text, sizeof(text));
		fprintf(f, "-A %s -d %s -j RETURN\n", chain, text);
	}
	for_each_rule(f, &c, ipt_rule);
}

/*
 * The raw table's text for both chains: a new install creates them and
 * their jump rules; a replace (a policy swap) flushes and refills them in
 * the same COMMIT, so no packet sees a half-written policy.
 */
static char *ipt_chains_text(const struct rule_ctx *c, bool replace)
{
	char out[32], pre[32], comment[TAGRULES_COMMENT_MAX], *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	snprintf(out, sizeof(out), TAGRULES_CHAIN_PREFIX "%ld-OUT", c->pid);
	snprintf(pre, sizeof(pre), TAGRULES_CHAIN_PREFIX "%ld-PRE", c->pid);
	owner_comment(c->cfg, c->pid, comment, sizeof(comment));
	if (replace)
		fprintf(f, "*raw\n-F %s\n-F %s\n", out, pre);
	else
		fprintf(f, "*raw\n:%s - [0:0]\n:%s - [0:0]\n", out, pre);
	ipt_chain_rules(f, c, out, true);
	ipt_chain_rules(f, c, pre, false);
	/* First in raw: nothing before us may accept the packet. */
	if (!replace) {
		fprintf(f, "-I OUTPUT 1 -m comment --comment \"%s\" -j %s\n", comment, out);
		fprintf(f, "-I PREROUTING 1 -m comment --comment \"%s\" -j %s\n", comment, pre);
	}
	fputs("COMMIT\n", f);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static char *ipt_remove_text(const struct nfq_rules *r)
{
	const char *comment = r->comment;
	long pid = r->pid;
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f, "*raw\n"
		"-D OUTPUT -m comment --comment \"%s\" -j " TAGRULES_CHAIN_PREFIX "%ld-OUT\n"
		"-D PREROUTING -m comment --comment \"%s\" -j " TAGRULES_CHAIN_PREFIX "%ld-PRE\n"
		"-F " TAGRULES_CHAIN_PREFIX "%ld-OUT\n-F " TAGRULES_CHAIN_PREFIX "%ld-PRE\n"
		"-X " TAGRULES_CHAIN_PREFIX "%ld-OUT\n-X " TAGRULES_CHAIN_PREFIX "%ld-PRE\nCOMMIT\n",
		comment, pid, comment, pid, pid, pid, pid, pid);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void ipt_remove_family(const struct nfq_rules *r, int fam, bool verbose);

static int ipt_install(struct nfq_rules *r, const struct nfq_rules_params *p, char *err,
		       size_t err_len)
{
	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++) {
		struct rule_ctx c = { .params = p, .cfg = p->cfg, .pid = r->pid, .af = fam_af[fam] };
		char *text;
		int ret;

		if (!frontend_routes_family(p->cfg, fam_af[fam]))
			continue;
		text = ipt_chains_text(&c, false);
		ret = tagrules_restore(fam, text, p->cfg->verbose, err, err_len);
		free(text);
		if (ret < 0) {
			for (int done = 0; done < fam; done++)
				if (r->families[done])
					ipt_remove_family(r, done, p->cfg->verbose);
			r->families[TAGRULES_FAM_V4] = r->families[TAGRULES_FAM_V6] = false;
			return ret;
		}
		r->families[fam] = true;
	}
	return 0;
}

/* A one-rule chain with an NFQUEUE target, added and removed: does the target exist? */
static bool ipt_nfqueue_works(long pid, int fam, unsigned queue, bool verbose)
{
	char text[256], err[256];
	bool ok;

	snprintf(text, sizeof(text), "*raw\n:" TAGRULES_CHAIN_PREFIX "%ld-PROBE - [0:0]\n"
		 "-A " TAGRULES_CHAIN_PREFIX "%ld-PROBE -j NFQUEUE --queue-num %u\nCOMMIT\n",
		 pid, pid, queue);
	ok = tagrules_restore(fam, text, verbose, err, sizeof(err)) == 0;
	if (ok) {
		snprintf(text, sizeof(text), "*raw\n-F " TAGRULES_CHAIN_PREFIX "%ld-PROBE\n"
			 "-X " TAGRULES_CHAIN_PREFIX "%ld-PROBE\nCOMMIT\n", pid, pid);
		tagrules_restore(fam, text, verbose, err, sizeof(err));
	}
	return ok;
}

/* ---- nft ---- */

static void nft_rule(FILE *f, const struct rule_ctx *c, const char *dst,
		     const struct frontend_rule *r)
{
	fprintf(f, "\t\t%s daddr %s", c->af == AF_INET ? "ip" : "ip6", dst);
	selector_nft_matches(f, r->sel, c->af);
	if (r->action == POLICY_BYPASS)
		fputs(" return\n", f);
	else if (r->action == POLICY_DISCARD)
		fputs(" drop\n", f);
	else
		nft_target(f, c);
}

/* One inet chain holds both families. */
static void nft_chain(FILE *f, const struct rule_ctx *base, const char *name, const char *hook)
{
	struct rule_ctx c = *base;
	char text[PREFIX_STR_MAX];

	c.out_chain = strcmp(hook, "output") == 0;
	fprintf(f, "\tchain %s {\n\t\ttype filter hook %s priority raw; policy accept;\n", name, hook);
	if (c.cfg->role == FRONTEND_CLIENT)
		fprintf(f, "\t\tmeta mark 0x%x return\n", NFQ_MARK);
	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++) {
		const struct ip_addr *inner = frontend_covered_address(c.cfg, fam_af[fam]);

		c.af = fam_af[fam];
		if (inner) {
			addr_format(inner, text, sizeof(text));
			fprintf(f, "\t\t%s daddr %s return\n", fam == TAGRULES_FAM_V4 ? "ip" : "ip6", text);
		}
		for_each_rule(f, &c, nft_rule);
	}
	fputs("\t}\n", f);
}

static char *nft_install_text(const struct rule_ctx *c)
{
	char comment[TAGRULES_COMMENT_MAX], *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	owner_comment(c->cfg, c->pid, comment, sizeof(comment));
	fprintf(f, "table inet " TAGRULES_NFT_TABLE_PREFIX "%ld {\n\tcomment \"%s\"\n", c->pid, comment);
	nft_chain(f, c, "out", "output");
	nft_chain(f, c, "pre", "prerouting");
	fputs("}\n", f);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int nft_install(struct nfq_rules *r, const struct nfq_rules_params *p, char *err,
		       size_t err_len)
{
	static const char *const argv[] = { "nft", "-f", "-", NULL };
	struct rule_ctx c = { .params = p, .cfg = p->cfg, .pid = r->pid };
	char *text = nft_install_text(&c);
	int ret;

	if (!text) {
		snprintf(err, err_len, "nft: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	ret = sysexec_pipe(argv, text, NULL, 0, p->cfg->verbose, err, err_len) < 0 ? -EIO : 0;
	free(text);
	return ret;
}

static void nft_remove(long pid, bool verbose)
{
	char table[48], err[256];
	const char *argv[] = { "nft", "delete", "table", "inet", table, NULL };

	snprintf(table, sizeof(table), TAGRULES_NFT_TABLE_PREFIX "%ld", pid);
	sysexec(argv, verbose, err, sizeof(err));
}

char *nfq_rules_text(const struct nfq_rules_params *p, long pid, enum nfq_backend backend,
		     int af)
{
	struct rule_ctx c = { .params = p, .cfg = p->cfg, .pid = pid, .af = af };

	return backend == NFQ_BACKEND_NFT ? nft_install_text(&c) : ipt_chains_text(&c, false);
}

/* ---- install and remove ---- */

int nfq_rules_install(struct nfq_rules *r, const struct nfq_rules_params *p, char *err,
		      size_t err_len)
{
	char ipt_err[512], nft_err[512];
	int probe_fam = frontend_routes_family(p->cfg, AF_INET) ? TAGRULES_FAM_V4 : TAGRULES_FAM_V6;

	*r = (struct nfq_rules){ .pid = (long)getpid() };
	owner_comment(p->cfg, r->pid, r->comment, sizeof(r->comment));
	if (!frontend_routes_family(p->cfg, AF_INET) && !frontend_routes_family(p->cfg, AF_INET6))
		return 0; /* nothing to capture */
	if (ipt_install(r, p, ipt_err, sizeof(ipt_err)) == 0) {
		r->backend = NFQ_BACKEND_IPTABLES;
		return 0;
	}
	if (ipt_nfqueue_works(r->pid, probe_fam, p->queue_first, p->cfg->verbose)) {
		snprintf(err, err_len, "%s", ipt_err); /* the target is there: a rule is wrong */
		return -EIO;
	}
	if (nft_install(r, p, nft_err, sizeof(nft_err)) == 0) {
		r->backend = NFQ_BACKEND_NFT;
		return 0;
	}
	snprintf(err, err_len, "neither iptables' NFQUEUE target nor nft's queue statement is "
		 "available (kernel lacks xt_NFQUEUE and nft_queue): %.200s; %.200s",
		 ipt_err, nft_err);
	return -EOPNOTSUPP;
}

int nfq_rules_replace(const struct nfq_rules *r, const struct nfq_rules_params *p, char *err,
		      size_t err_len)
{
	if (r->backend != NFQ_BACKEND_IPTABLES) {
		snprintf(err, err_len, "a policy swap needs the iptables backend");
		return -EOPNOTSUPP;
	}
	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++)
		if (frontend_routes_family(p->cfg, fam_af[fam]) != r->families[fam]) {
			snprintf(err, err_len, "the new policy %s IPv%c entries: restart to change families",
				 r->families[fam] ? "has no" : "adds", fam == TAGRULES_FAM_V4 ? '4' : '6');
			return -EINVAL;
		}
	/* Family by family: each swap is atomic; between the two, each family has a whole policy. */
	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++) {
		struct rule_ctx c = { .params = p, .cfg = p->cfg, .pid = r->pid, .af = fam_af[fam] };
		char *text;
		int ret;

		if (!r->families[fam])
			continue;
		text = ipt_chains_text(&c, true);
		if (!text) {
			snprintf(err, err_len, "%s", strerror(ENOMEM));
			return -ENOMEM;
		}
		ret = tagrules_restore(fam, text, p->cfg->verbose, err, err_len);
		free(text);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* If the exact removal fails (someone changed our chains), remove by owner instead. */
static void ipt_remove_family(const struct nfq_rules *r, int fam, bool verbose)
{
	char err[512];
	char *text = ipt_remove_text(r);
	struct leftovers found = { 0 };

	if (tagrules_restore(fam, text, verbose, err, sizeof(err)) < 0 &&
	    leftovers_scan(&found, r->pid, err, sizeof(err)) >= 0)
		leftovers_remove_rules(&found, verbose, err, sizeof(err));
	leftovers_free(&found);
	free(text);
}

void nfq_rules_remove(struct nfq_rules *r, bool verbose)
{
	switch (r->backend) {
	case NFQ_BACKEND_IPTABLES:
		for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++)
			if (r->families[fam])
				ipt_remove_family(r, fam, verbose);
		break;
	case NFQ_BACKEND_NFT:
		nft_remove(r->pid, verbose);
		break;
	case NFQ_BACKEND_NONE:
		break;
	}
	r->backend = NFQ_BACKEND_NONE;
}
