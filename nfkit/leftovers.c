// SPDX-License-Identifier: MIT
/* Finding the rules of tunlab instances that no longer run, and removing what they left. */

/*
 * A dead instance's rules are how cleanup finds it in this network
 * namespace: chain names (raw table, TUNLAB-<pid>-*), jump-rule comments
 * ("tunlab:pid=<pid>") and nft table names (tunlab_<pid>) carry its pid.
 * Whether that pid's instance is dead is base/owner.h's question (its
 * lock), never kill(pid, 0); what it routed comes from its record there,
 * exact to the device and table, never from resemblance.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leftovers.h"
#include "loroutes.h"
#include "savescan.h"
#include "../base/sysexec.h"

/* An nft table listing fits; beyond, we see less. */
enum { LEFTOVERS_DUMP_MAX = 1 << 20, LEFTOVERS_NFT_TABLES_MAX = 256 };

/* pid 0 selects every owner proven dead. */
static bool selected(struct leftovers *l, long want, long pid)
{
	return want ? pid == want : owner_judge_dead(&l->judge, pid);
}

/* ---- the list ---- */

static struct leftover *leftover_get(struct leftovers *l, long pid)
{
	for (size_t i = 0; i < l->count; i++)
		if (l->items[i].pid == pid)
			return &l->items[i];
	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		void *grown = realloc(l->items, cap * sizeof(*l->items));
		if (!grown)
			return NULL;
		l->items = grown;
		l->cap = cap;
	}
	l->items[l->count] = (struct leftover){ .pid = pid };
	return &l->items[l->count++];
}

void leftovers_free(struct leftovers *l)
{
	free(l->items);
	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++)
		free(l->restore[fam]);
	free(l->nft);
	owner_judge_release(&l->judge, false);
	*l = (struct leftovers){ 0 };
}

/* ---- iptables ---- */

struct pick {
	struct leftovers *l;
	long want;
};

static int pick_selected(void *ctx, const struct savescan_obj *o)
{
	struct pick *p = ctx;

	if (!selected(p->l, p->want, o->pid))
		return 0;
	return leftover_get(p->l, o->pid) ? 1 : -ENOMEM;
}

static int scan_family(struct leftovers *l, long want, int fam, char *err, size_t err_len)
{
	static const char *const raw[] = { "raw", NULL };
	struct pick p = { .l = l, .want = want };
	int n = savescan_family(fam, raw, pick_selected, &p, &l->restore[fam], err, err_len);

	if (n < 0)
		return n;
	l->rule_objects += (size_t)n;
	return 0;
}

/* ---- nft ---- */

static int scan_nft(struct leftovers *l, long want, char *dump, char *err, size_t err_len)
{
	static const char *const argv[] = { "nft", "list", "tables", NULL };
	const char *key = "table inet " TAGRULES_NFT_TABLE_PREFIX;
	long pids[LEFTOVERS_NFT_TABLES_MAX];
	size_t n = 0, len;
	FILE *f;
	int ret = 0;

	if (!savescan_tool_present("nft"))
		return 0;
	if (sysexec_capture(argv, dump, LEFTOVERS_DUMP_MAX, err, err_len) < 0)
		return 0; /* nft without nf_tables support: it holds nothing of ours */
	for (const char *at = strstr(dump, key); at && n < LEFTOVERS_NFT_TABLES_MAX;
	     at = strstr(at + 1, key)) {
		char *end;
		long pid = strtol(at + strlen(key), &end, 10);
		if (pid > 0 && (*end == '\n' || *end == '\0') && selected(l, want, pid))
			pids[n++] = pid;
	}
	if (!n)
		return 0;
	f = open_memstream(&l->nft, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < n && ret >= 0; i++) {
		ret = leftover_get(l, pids[i]) ? 0 : -ENOMEM;
		fprintf(f, "delete table inet " TAGRULES_NFT_TABLE_PREFIX "%ld\n", pids[i]);
		l->rule_objects++;
	}
	if (fclose(f) != 0 && ret >= 0)
		ret = -ENOMEM;
	return ret;
}

int leftovers_scan(struct leftovers *l, long pid, char *err, size_t err_len)
{
	char *dump = malloc(LEFTOVERS_DUMP_MAX);
	int ret = -ENOMEM;

	*l = (struct leftovers){ 0 };
	owner_judge_init(&l->judge, OWNER_RUN_DIR);
	if (!dump)
		goto out;
	ret = scan_family(l, pid, TAGRULES_FAM_V4, err, err_len);
	if (ret >= 0)
		ret = scan_family(l, pid, TAGRULES_FAM_V6, err, err_len);
	if (ret >= 0)
		ret = scan_nft(l, pid, dump, err, err_len);
	free(dump);
out:
	if (ret == -ENOMEM)
		snprintf(err, err_len, "cleanup: %s", strerror(ENOMEM));
	return ret;
}

int leftovers_remove_rules(const struct leftovers *l, bool verbose, char *err, size_t err_len)
{
	static const char *const nft_argv[] = { "nft", "-f", "-", NULL };
	int ret = 0;

	for (int fam = 0; fam < TAGRULES_FAM_COUNT; fam++)
		if (l->restore[fam] &&
		    tagrules_restore(fam, l->restore[fam], verbose, err, err_len) < 0)
			ret = -EIO;
	if (l->nft && sysexec_pipe(nft_argv, l->nft, NULL, 0, verbose, err, err_len) < 0)
		ret = -EIO;
	return ret < 0 ? ret : (int)l->rule_objects;
}

int leftovers_cleanup(bool verbose, bool only_if_rules, char *err, size_t err_len)
{
	struct leftovers dead;
	int routes = 0, rules;
	int ret = leftovers_scan(&dead, 0, err, err_len);

	if (ret < 0)
		goto out;
	if (!only_if_rules || dead.count)
		routes = loroutes_remove_dead(&dead, verbose, err, err_len);
	/* The rules go last: until then, nothing of a dead owner leaves in clear. */
	rules = routes < 0 ? 0 : leftovers_remove_rules(&dead, verbose, err, err_len);
	ret = routes < 0 ? routes : rules < 0 ? rules : routes + rules;
	/* All gone: the dead owners' lock files, and their records, can go too. */
	owner_judge_release(&dead.judge, ret >= 0);
out:
	leftovers_free(&dead);
	return ret;
}
