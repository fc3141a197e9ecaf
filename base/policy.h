/* SPDX-License-Identifier: MIT */
/*
 * The policy database (--policy FILE): ordered entries, first match wins,
 * each a selector and an action. The same selector type as --select, with
 * the remote prefix (dst) that --route gives today; the frontends compile
 * it into their own mechanism and refuse what they cannot express.
 */
#ifndef TUNLAB_POLICY_H
#define TUNLAB_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "prefix.h"
#include "selector.h"

enum policy_action {
	POLICY_PROTECT, /* through the tunnel */
	POLICY_BYPASS,  /* the normal path, in clear */
	POLICY_DISCARD, /* dropped */
};

enum {
	/* Past the policy-scale experiment's 1000 prefixes, with room. */
	POLICY_ENTRIES_MAX = 4096,
	/* A line longer than any full selector is a mistake. */
	POLICY_LINE_MAX = 512,
	POLICY_FILE_MAX = POLICY_ENTRIES_MAX * POLICY_LINE_MAX,
	/* "discard " + "dst=" + prefix + the longest selector text. */
	POLICY_ENTRY_TEXT_MAX = 320,
};

/* The keys a frontend's mechanism can express, beside dst which all can. */
enum policy_key {
	POLICY_KEY_SRC = 1u << 0,
	POLICY_KEY_PROTO = 1u << 1,
	POLICY_KEY_DPORT = 1u << 2,
	POLICY_KEY_SPORT = 1u << 3,
	POLICY_KEY_MARK = 1u << 4,
	POLICY_KEY_UID = 1u << 5,
};
#define POLICY_ACTION_BIT(a) (1u << (a))

struct policy_entry {
	struct ip_prefix dst;      /* the remote prefix: always present */
	struct selector sel;       /* src (the local prefix), proto, ports, mark, uid */
	enum policy_action action;
	size_t line;               /* the line it came from; 0 for --route/--select */
};

struct policy {
	struct policy_entry *entries; /* heap; policy_free releases it */
	size_t count;
};

/*
 * Parses a policy file's text (len bytes, NUL bytes refused). All or
 * nothing: on error out is empty and err reads "LINE: reason". A file with
 * no entries, an entry that an earlier one makes unreachable, mixed
 * families, or a key given twice is an error. 0, -EINVAL or -ENOMEM.
 */
int policy_parse(const char *text, size_t len, struct policy *out, char *err, size_t err_len);
/* policy_parse on the file path; err reads "PATH:LINE: reason" or "PATH: reason". */
int policy_load(const char *path, struct policy *out, char *err, size_t err_len);
/*
 * Appends one entry as the shorthand flags make them (sel may be NULL),
 * with the checks the parser makes; err names the clash. 0, -EINVAL,
 * -E2BIG past POLICY_ENTRIES_MAX or -ENOMEM.
 */
int policy_append(struct policy *p, enum policy_action action, const struct ip_prefix *dst,
		  const struct selector *sel, char *err, size_t err_len);
void policy_free(struct policy *p);

/*
 * Whether sel may stand beside dst in an entry: src of the same family,
 * icmp only with IPv4, icmpv6 only with IPv6. 0 or -EINVAL with the reason.
 */
int policy_selector_fits(const struct ip_prefix *dst, const struct selector *sel, char *err,
			 size_t err_len);
/*
 * The shorthand flags as entries, in their order: protect dst=ROUTE,SEL
 * for every route and every selector that fits it (all of a route when
 * there are no selectors). A route no selector fits gets no entry, as
 * before: the flags never selected anything there.
 */
int policy_from_flags(const struct ip_prefix *routes, size_t route_count,
		      const struct selector *sels, size_t sel_count, struct policy *out, char *err,
		      size_t err_len);
/*
 * Refuses an entry using a key outside keys (enum policy_key) or an action
 * outside actions (POLICY_ACTION_BIT), naming its line, the key or action,
 * and who ("the tun frontend") with why. 0 or -EINVAL.
 */
int policy_check_caps(const struct policy *p, unsigned keys, unsigned actions, const char *who,
		      const char *why, char *err, size_t err_len);

/*
 * The protect entries' dsts, each once, in order, into out (room for
 * p->count): what a frontend routes toward the tunnel. Returns how many.
 */
size_t policy_protect_dsts(const struct policy *p, struct ip_prefix *out);

const char *policy_action_name(enum policy_action action);
/* "protect dst=10.102.0.0/24,proto=tcp,dport=5201": the file's line form. */
void policy_entry_format(const struct policy_entry *e, char *out, size_t out_len);
/* The whole policy in the file's form, one entry a line; the caller frees it. */
char *policy_format(const struct policy *p);
/* Same selector and action (the line does not count): an unchanged entry on reload. */
bool policy_entry_equal(const struct policy_entry *a, const struct policy_entry *b);
/* Every packet b's selector matches, a's matches too: b after a is never reached. */
bool policy_entry_covers(const struct policy_entry *a, const struct policy_entry *b);

#endif
