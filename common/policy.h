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
