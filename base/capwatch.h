/* SPDX-License-Identifier: MIT */
/*
 * A packet frontend's capture fds on the one event loop: a watcher per fd
 * (a TUN device, each netfilter queue, each pcap handle) that notes which
 * fd is readable and tells the frontend's sink, and pausing all of them
 * at once for the tunnel's push-back. The start, pause and close ops of
 * tunbackend, nfqueue and capture are this.
 */
#ifndef TUNLAB_CAPWATCH_H
#define TUNLAB_CAPWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "evloop.h"
#include "frontend.h"

enum { CAPWATCH_MAX = 16 }; /* --queues' cap; pcap needs 2 */

struct capwatch {
	struct evloop *loop; /* NULL until started */
	struct frontend_sink sink;
	struct ev_io io[CAPWATCH_MAX];
	unsigned count;
	/* Bit i: fd i was reported readable and has not been read dry since. */
	uint32_t ready;
};

/* Watches fds[0..count) for EPOLLIN; nothing stays registered on failure. */
int capwatch_start(struct capwatch *w, struct evloop *loop, const struct frontend_sink *sink,
		   const int *fds, unsigned count);
void capwatch_pause(struct capwatch *w, bool paused);
/* Takes every watcher off the loop; a no-op if never started. */
void capwatch_stop(struct capwatch *w);

#endif
