// SPDX-License-Identifier: MIT
/* Reading ip(6)tables-save for tunlab's rules, and writing their removal. */

/*
 * Every tunlab rule follows nfkit/tagrules.h: chains TUNLAB-<pid>-<role>,
 * hooked by jump rules whose comment starts "tunlab:pid=<pid>". So one
 * reader serves every owner of rules (the packet frontends' raw table, the
 * proxy's nat, filter and mangle); what differs is only which tables and
 * which owners go, the caller's pick. The removal goes per table: jumps
 * first (a chain still jumped to cannot go), then every chain flushed
 * before any is deleted (nor can one another chain still jumps to).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/sysexec.h"
#include "savescan.h"
#include "tagrules.h"

/* iptables-save of a busy host fits; beyond, cleanup sees less. */
enum { SAVESCAN_DUMP_MAX = 1 << 20 };

static const char *const save_tool[TAGRULES_FAM_COUNT] = { "iptables-save", "ip6tables-save" };

bool savescan_tool_present(const char *name)
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

/* "TUNLAB-123-OUT" -> 123 and "OUT"; false for any other name. */
static bool chain_owner(const char *name, long *pid, const char **role)
{
	char *end;

	if (strncmp(name, TAGRULES_CHAIN_PREFIX, strlen(TAGRULES_CHAIN_PREFIX)) != 0)
		return false;
	*pid = strtol(name + strlen(TAGRULES_CHAIN_PREFIX), &end, 10);
	if (*pid <= 0 || *end != '-')
		return false;
	*role = end + 1;
	return true;
}

/* One table's removal, in its three parts: jumps, flushes, deletes. */
struct table_parts {
	FILE *f[3];
	char *text[3];
	size_t len[3];
	size_t objects;
};

static int parts_open(struct table_parts *p)
{
	*p = (struct table_parts){ 0 };
	for (int i = 0; i < 3; i++) {
		p->f[i] = open_memstream(&p->text[i], &p->len[i]);
		if (!p->f[i])
			return -ENOMEM;
	}
	return 0;
}

/*
 * Closes the parts and, with out and anything picked, appends the table's
 * block to out; returns the objects in it.
 */
static int parts_close(struct table_parts *p, const char *table, FILE *out)
{
	int ret = out ? (int)p->objects : 0;

	for (int i = 0; i < 3; i++)
		if (p->f[i] && fclose(p->f[i]) != 0)
			ret = -ENOMEM;
	if (ret > 0)
		fprintf(out, "*%s\n%s%s%sCOMMIT\n", table, p->text[0], p->text[1], p->text[2]);
	for (int i = 0; i < 3; i++)
		free(p->text[i]);
	*p = (struct table_parts){ 0 };
	return ret;
}

struct scan {
	savescan_pick_fn pick;
	void *ctx;
	struct savescan_obj obj;
	struct table_parts parts;
	size_t objects; /* in the tables written out */
};

/* ":TUNLAB-123-OUT - [0:0]" */
static int scan_chain(struct scan *s, const char *line)
{
	char name[64];
	int pick;

	snprintf(name, sizeof(name), "%.*s", (int)strcspn(line + 1, " "), line + 1);
	if (!chain_owner(name, &s->obj.pid, &s->obj.role))
		return 0;
	s->obj.chain = name;
	s->obj.jump = false;
	pick = s->pick(s->ctx, &s->obj);
	if (pick <= 0)
		return pick;
	fprintf(s->parts.f[1], "-F %s\n", name);
	fprintf(s->parts.f[2], "-X %s\n", name);
	s->parts.objects++;
	return 0;
}

/* "-A PREROUTING -m comment --comment "tunlab:pid=1 addr=..." -j TUNLAB-1-PRE" */
static int scan_jump(struct scan *s, const char *line)
{
	const char *at = strstr(line, " -j " TAGRULES_CHAIN_PREFIX);
	struct ip_addr addrs[TAGRULES_ADDR_MAX];
	size_t addr_count;
	char name[64];
	long chain_pid;
	int pick;

	if (!at || !tagrules_parse_owner_comment(line, &s->obj.pid, addrs, &addr_count))
		return 0;
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(at + 4, " "), at + 4);
	if (!chain_owner(name, &chain_pid, &s->obj.role))
		return 0;
	s->obj.chain = name;
	s->obj.jump = true;
	pick = s->pick(s->ctx, &s->obj);
	if (pick <= 0)
		return pick;
	fprintf(s->parts.f[0], "-D %s\n", line + 3);
	s->parts.objects++;
	return 0;
}

static bool table_wanted(const char *const *tables, const char *name)
{
	for (; *tables; tables++)
		if (strcmp(*tables, name) == 0)
			return true;
	return false;
}

/* Closes the open table, counting what it wrote to out (NULL: drops it). */
static int table_end(struct scan *s, const char *table, FILE *out)
{
	int n = parts_close(&s->parts, table, out);

	s->objects += n > 0 ? (size_t)n : 0;
	return n < 0 ? n : 0;
}

static int scan_lines(struct scan *s, const char *const *tables, char *dump, FILE *out)
{
	char table[32] = "", *save = NULL;
	bool open = false;
	int ret = 0;

	for (char *line = strtok_r(dump, "\n", &save); line && ret >= 0;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '*') {
			/* A table without its COMMIT still removes what it showed. */
			ret = open ? table_end(s, table, out) : 0;
			snprintf(table, sizeof(table), "%s", line + 1);
			s->obj.table = table;
			open = table_wanted(tables, table);
			if (open && ret >= 0)
				ret = parts_open(&s->parts);
		} else if (open && strcmp(line, "COMMIT") == 0) {
			ret = table_end(s, table, out);
			open = false;
		} else if (open && line[0] == ':') {
			ret = scan_chain(s, line);
		} else if (open && strncmp(line, "-A ", 3) == 0) {
			ret = scan_jump(s, line);
		}
	}
	/* So does a dump cut short. */
	if (open) {
		int end = table_end(s, table, ret >= 0 ? out : NULL);

		ret = ret < 0 ? ret : end;
	}
	return ret;
}

int savescan_dump(int fam, const char *const *tables, char *dump, savescan_pick_fn pick,
		  void *ctx, char **restore)
{
	struct scan s = { .pick = pick, .ctx = ctx, .obj = { .fam = fam } };
	size_t len;
	FILE *out = open_memstream(restore, &len);
	int ret;

	if (!out)
		return -ENOMEM;
	ret = scan_lines(&s, tables, dump, out);
	if (fclose(out) != 0 && ret >= 0)
		ret = -ENOMEM;
	if (ret < 0 || !s.objects) {
		free(*restore);
		*restore = NULL;
	}
	return ret < 0 ? ret : (int)s.objects;
}

int savescan_family(int fam, const char *const *tables, savescan_pick_fn pick, void *ctx,
		    char **restore, char *err, size_t err_len)
{
	/* One table: the tool reads only that one (and a busy filter table costs nothing). */
	const char *argv[] = { save_tool[fam], tables[1] ? NULL : "-t", tables[0], NULL };
	char *dump;
	int ret;

	*restore = NULL;
	if (!savescan_tool_present(save_tool[fam]))
		return 0;
	dump = malloc(SAVESCAN_DUMP_MAX);
	if (!dump)
		return -ENOMEM;
	ret = sysexec_capture(argv, dump, SAVESCAN_DUMP_MAX, err, err_len) < 0 ? -EIO : 0;
	if (ret == 0)
		ret = savescan_dump(fam, tables, dump, pick, ctx, restore);
	free(dump);
	return ret;
}
