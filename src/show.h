/* SPDX-License-Identifier: MIT */
/* What `tunlab show` prints of one instance, as text in the style of `wg show` or as JSON. */
#ifndef TUNLAB_SHOW_H
#define TUNLAB_SHOW_H

#include <stdio.h>

#include "../base/policy.h"
#include "hits.h"
#include "stats.h"

struct show_state {
	long pid;
	const char *endpoint;               /* --connect or --listen */
	const struct stats_context *ctx;    /* role, frontend, start */
	const struct tunnel_stats *ts;
	const struct frontend_stats *fs;
	const struct frontend_stream_stats *ss; /* stream frontends, else NULL */
	const struct policy *policy;        /* --policy, or the --route/--select entries; NULL: none */
	const struct policy_hits *hits;     /* its hit counts, or NULL */
};

/* "connected", "connecting", "idle" (client, --lazy), "listening" (server). */
const char *show_state_name(const struct show_state *s);
void show_write_text(FILE *f, const struct show_state *s);
/* One JSON object and a newline; "stats" holds the --stats line's fields. */
void show_write_json(FILE *f, const struct show_state *s);
/* The policy in the file's form; "# no policy" when there is none. */
void show_write_policy(FILE *f, const struct policy *p);

#endif
