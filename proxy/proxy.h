/* SPDX-License-Identifier: MIT */
/* The application-layer proxy: TCP connections and UDP flows carried as streams, not packets. */
#ifndef TUNLAB_PROXY_H
#define TUNLAB_PROXY_H

#include "../base/frontend.h"

/*
 * The proxy's own flags (the exit's caps: --max-streams,
 * --max-streams-per-client, --max-flows-per-client), cfg->flags. 0: the
 * default.
 */
struct proxy_flags {
	unsigned max_streams, max_streams_per_client, max_flows_per_client;
};

extern const struct frontend_ops proxy_frontend;

#endif
