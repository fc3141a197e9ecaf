// SPDX-License-Identifier: MIT
/* Capture fds on the one event loop (see capwatch.h). */
#include <errno.h>

#include "capwatch.h"

static void on_readable(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct capwatch *w = io->arg;

	(void)loop;
	(void)events;
	w->ready |= 1u << (unsigned)(io - w->io);
	w->sink.ready(w->sink.ctx);
}

int capwatch_start(struct capwatch *w, struct evloop *loop, const struct frontend_sink *sink,
		   const int *fds, unsigned count)
{
	int ret = 0;

	if (count > CAPWATCH_MAX)
		return -EINVAL;
	w->loop = loop;
	w->sink = *sink;
	w->ready = 0;
	for (w->count = 0; w->count < count && ret == 0; w->count++) {
		ev_io_init(&w->io[w->count], fds[w->count], on_readable, w);
		ret = evloop_io_start(loop, &w->io[w->count], EPOLLIN);
	}
	if (ret < 0)
		capwatch_stop(w);
	return ret;
}

void capwatch_pause(struct capwatch *w, bool paused)
{
	/* MOD on a registered fd only fails without memory; the next pause or resume retries. */
	for (unsigned i = 0; i < w->count; i++)
		evloop_io_set(w->loop, &w->io[i], paused ? 0 : EPOLLIN);
}

void capwatch_stop(struct capwatch *w)
{
	for (unsigned i = 0; w->loop && i < w->count; i++)
		evloop_io_stop(w->loop, &w->io[i]);
	w->count = 0;
	w->loop = NULL;
}
