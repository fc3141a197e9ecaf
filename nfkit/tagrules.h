/* SPDX-License-Identifier: MIT */
/* Tagged iptables rules: how tunlab names what it adds to netfilter, and applies it in one go. */
#ifndef TUNLAB_TAGRULES_H
#define TUNLAB_TAGRULES_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/prefix.h"

/*
 * Every packet frontend's rules live in chains TUNLAB-<pid>-<role> of the
 * raw table, hooked by jump rules commented "tunlab:pid=<pid>" (plus
 * " addr=<inner address>" per inner address, IPv4 and IPv6 alike, in both
 * families' rules): the pid names the owner, whose liveness `tunlab
 * cleanup` asks base/owner.h (never kill(pid, 0)), and the comment
 * records its lo addresses (nfkit/leftovers.h).
 */
#define TAGRULES_CHAIN_PREFIX "TUNLAB-"
#define TAGRULES_COMMENT_PREFIX "tunlab:pid="
/* nft fallback of the nfqueue frontend: table inet tunlab_<pid>. */
#define TAGRULES_NFT_TABLE_PREFIX "tunlab_"

/* Index of the per-family tools (iptables, ip6tables). */
enum tagrules_fam { TAGRULES_FAM_V4, TAGRULES_FAM_V6, TAGRULES_FAM_COUNT };

enum {
	TAGRULES_ADDR_MAX = 2,      /* inner addresses: one per family */
	TAGRULES_COMMENT_MAX = 112, /* "tunlab:pid=N addr=<IPv4> addr=<IPv6>" */
};

/* AF_INET or AF_INET6 of fam. */
int tagrules_fam_af(int fam);

/*
 * The owner comment: "tunlab:pid=123", with inner addresses
 * "tunlab:pid=123 addr=10.8.0.2 addr=fd08::2" (the first TAGRULES_ADDR_MAX
 * of inner_count).
 */
void tagrules_owner_comment(const struct ip_prefix *inner, size_t inner_count, long pid,
			    char *out, size_t out_len);
/*
 * Parses that comment (from the "tunlab:pid=" on) into pid and up to
 * TAGRULES_ADDR_MAX addresses; false if it is not one.
 */
bool tagrules_parse_owner_comment(const char *text, long *pid,
				  struct ip_addr addrs[TAGRULES_ADDR_MAX], size_t *addr_count);

/*
 * Feeds text to ip(6)tables-restore --noflush (fam: TAGRULES_FAM_V4 or
 * _V6): a whole ruleset applied atomically by one process. text NULL
 * (an allocation that failed) is -ENOMEM; a failing tool is -EIO.
 */
int tagrules_restore(int fam, const char *text, bool verbose, char *err, size_t err_len);

#endif
