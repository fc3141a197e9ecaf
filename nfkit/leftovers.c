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
#include <unistd.h>

#include "leftovers.h"
#include "loroutes.h"
#include "../base/sysexec.h"

/* iptables-save of a busy raw table and an nft table listing fit; beyond, we see less. */
enum { LEFTOVERS_DUMP_MAX = 1 << 20, LEFTOVERS_NFT_TABLES_MAX = 256 };

static const char *const save_tool[TAGRULES_FAM_COUNT] = { "iptables-save", "ip6tables-save" };

/* pid 0 selects every owner proven dead. */
static bool selected(struct leftovers *l, long want, long pid)
{
	return want ? pid == want : owner_judge_dead(&l->judge, pid);
}

/* Whether name is an executable in PATH: a host without nft has no nft tables. */
static bool tool_present(const char *name)
{
	const char *path = getenv("PATH");
	char dir[512], file[600];

	if (!path)
		path = "/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
		snprintf(file, sizeof(file), "%s/%s", dir[0] ? dir : ".", name);
		if (access(file, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
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

/* "TUNLAB-123-OUT" -> 123; 0 for any other chain. */
static long chain_owner(const char *name)
{
	char *end;
	long pid;

	if (strncmp(name, TAGRULES_CHAIN_PREFIX, strlen(TAGRULES_CHAIN_PREFIX)) != 0)
		return 0;
	pid = strtol(name + strlen(TAGRULES_CHAIN_PREFIX), &end, 10);
	return *end == '-' ? pid : 0;
}

/* ---- iptables ---- */

struct ipt_scan {
	struct leftovers *l;
	long want;
	FILE *jumps, *flushes, *deletes;
	size_t objects;
};

/* ":TUNLAB-123-OUT - [0:0]" */
static int scan_chain_decl(struct ipt_scan *s, const char *line)
{
	char name[64];
	long pid;

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(line + 1, " "), line + 1);
	pid = chain_owner(name);
	if (!pid || !selected(s->l, s->want, pid))
		return 0;
	if (!leftover_get(s->l, pid))
		return -ENOMEM;
	fprintf(s->flushes, "-F %s\n", name);
	fprintf(s->deletes, "-X %s\n", name);
	s->objects++;
	return 0;
}

/* "-A PREROUTING -m comment --comment "tunlab:pid=1 addr=..." -j TUNLAB-1-PRE" */
static int scan_rule(struct ipt_scan *s, const char *line)
{
	struct ip_addr addrs[TAGRULES_ADDR_MAX];
	size_t addr_count;
	long pid;

	if (!strstr(line, " -j " TAGRULES_CHAIN_PREFIX) ||
	    !tagrules_parse_owner_comment(line, &pid, addrs, &addr_count) ||
	    !selected(s->l, s->want, pid))
		return 0;
	if (!leftover_get(s->l, pid))
		return -ENOMEM;
	fprintf(s->jumps, "-D %s\n", line + 3);
	s->objects++;
	return 0;
}

static int scan_lines(struct ipt_scan *s, char *dump)
{
	char *save = NULL;
	int ret = 0;

	for (char *line = strtok_r(dump, "\n", &save); line && ret >= 0;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == ':')
			ret = scan_chain_decl(s, line);
		else if (strncmp(line, "-A ", 3) == 0)
			ret = scan_rule(s, line);
	}
	return ret;
}

/* The restore input: jumps first, then flush every chain, then delete them. */
static char *join_restore(char *const parts[3])
{
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f, "*raw\n%s%s%sCOMMIT\n", parts[0] ? parts[0] : "", parts[1] ? parts[1] : "",
		parts[2] ? parts[2] : "");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int scan_family(struct leftovers *l, long want, int fam, char *dump, char *err,
		       size_t err_len)
{
	const char *argv[] = { save_tool[fam], "-t", "raw", NULL };
	struct ipt_scan s = { .l = l, .want = want };
	char *parts[3] = { NULL, NULL, NULL };
	size_t lens[3];
	int ret = -ENOMEM;

	if (!tool_present(save_tool[fam]))
		return 0;
	if (sysexec_capture(argv, dump, LEFTOVERS_DUMP_MAX, err, err_len) < 0)
		return -EIO;
	s.jumps = open_memstream(&parts[0], &lens[0]);
	s.flushes = open_memstream(&parts[1], &lens[1]);
	s.deletes = open_memstream(&parts[2], &lens[2]);
	if (s.jumps && s.flushes && s.deletes)
		ret = scan_lines(&s, dump);
	if (s.jumps && fclose(s.jumps) != 0)
		ret = -ENOMEM;
	if (s.flushes && fclose(s.flushes) != 0)
		ret = -ENOMEM;
	if (s.deletes && fclose(s.deletes) != 0)
		ret = -ENOMEM;
	if (ret >= 0 && s.objects) {
		l->restore[fam] = join_restore(parts);
		l->rule_objects += s.objects;
		if (!l->restore[fam])
			ret = -ENOMEM;
	}
	for (int i = 0; i < 3; i++)
		free(parts[i]);
	return ret;
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

	if (!tool_present("nft"))
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
	ret = scan_family(l, pid, TAGRULES_FAM_V4, dump, err, err_len);
	if (ret >= 0)
		ret = scan_family(l, pid, TAGRULES_FAM_V6, dump, err, err_len);
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
