/* SPDX-License-Identifier: MIT */
/* --stats: one flat JSON object per line, every interval and at exit. */
#ifndef TUNLAB_STATS_H
#define TUNLAB_STATS_H

#include <stdio.h>

#include "../tunnel/tunnel.h"
#include "../base/frontend.h"

struct stats_context {
	const char *role, *frontend;
	double started; /* CLOCK_REALTIME seconds */
};

/*
 * event: "interval" or "exit". ss: a stream frontend's counters, or NULL.
 * Returns 0 or -errno if the write failed.
 */
int stats_write(FILE *out, const struct stats_context *ctx, const char *event,
		const struct tunnel_stats *ts, const struct frontend_stats *fs,
		const struct frontend_stream_stats *ss);

#endif
