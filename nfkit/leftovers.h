/* SPDX-License-Identifier: MIT */
/* What tunlab instances that no longer run left in this network namespace, found from their rules. */
#ifndef TUNLAB_LEFTOVERS_H
#define TUNLAB_LEFTOVERS_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/owner.h"
#include "tagrules.h"

/* A dead instance whose rules were found here; its record says what else it left. */
struct leftover {
	long pid;
};

struct leftovers {
	struct leftover *items;
	size_t count, cap;
	char *restore[TAGRULES_FAM_COUNT]; /* ip(6)tables-restore --noflush input removing them */
	char *nft;                         /* nft -f input deleting their tables */
	size_t rule_objects;               /* chains, jump rules and nft tables in the above */
	struct owner_judge judge;          /* who is dead; their locks held until freed */
};

/*
 * Collects the raw-table chains TUNLAB-<pid>-*, their jump rules and nft
 * tables tunlab_<pid> of pid, or (pid 0) of every owner base/owner.h
 * proves dead.
 */
int leftovers_scan(struct leftovers *l, long pid, char *err, size_t err_len);
/* Removes the collected rules; returns the number of objects removed. */
int leftovers_remove_rules(const struct leftovers *l, bool verbose, char *err, size_t err_len);
void leftovers_free(struct leftovers *l);

/*
 * The whole of `tunlab cleanup` for the packet frontends that route to lo
 * or steal with rules (nfqueue, pcap): dead instances' routes and lo
 * addresses (nfkit/loroutes.h, from each one's record), then their
 * rules. With only_if_rules, a namespace where no dead instance left
 * rules costs no address dump (what open does first). Returns the
 * number of objects removed or a negative errno.
 */
int leftovers_cleanup(bool verbose, bool only_if_rules, char *err, size_t err_len);

#endif
