/* SPDX-License-Identifier: MIT */
/* The one reader of ip(6)tables-save: tunlab's chains and jump rules, by owner, and their removal. */
#ifndef TUNLAB_SAVESCAN_H
#define TUNLAB_SAVESCAN_H

#include <stdbool.h>
#include <stddef.h>

/* A tunlab chain (nfkit/tagrules.h's naming) or a jump rule to one, as a dump shows it. */
struct savescan_obj {
	int fam;           /* TAGRULES_FAM_V4 or _V6 */
	const char *table; /* "raw", "nat", ... */
	const char *chain; /* the chain declared, or the one jumped to */
	const char *role;  /* what follows "TUNLAB-<pid>-" in chain */
	long pid;          /* the owner: the chain's name, or the jump's comment */
	bool jump;
};

/* > 0: remove o; 0: keep it; < 0: stop the scan with that error. */
typedef int (*savescan_pick_fn)(void *ctx, const struct savescan_obj *o);

/*
 * Reads family fam's tables (tables: NULL-terminated names) with
 * ip(6)tables-save and asks pick about each tunlab chain and jump rule in
 * them. *restore gets the ip(6)tables-restore --noflush input removing the
 * picked (NULL when none): per table the jumps, then every chain flushed,
 * then deleted. Returns the number of objects in it; 0 when the tool is
 * absent; -EIO when it fails; -ENOMEM.
 */
int savescan_family(int fam, const char *const *tables, savescan_pick_fn pick, void *ctx,
		    char **restore, char *err, size_t err_len);
/* The same over a dump already read (tokenised in place): what the unit tests feed. */
int savescan_dump(int fam, const char *const *tables, char *dump, savescan_pick_fn pick,
		  void *ctx, char **restore);

/* Whether name is an executable in PATH: a host without nft has no nft tables. */
bool savescan_tool_present(const char *name);

#endif
