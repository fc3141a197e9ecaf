/* SPDX-License-Identifier: MIT */
/* The one event loop: epoll for fds, a sorted list for timers. */
#ifndef TUNLAB_EVLOOP_H
#define TUNLAB_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h> /* events are EPOLLIN / EPOLLOUT masks */

struct evloop;
struct ev_io;
struct ev_timer;

typedef void (*ev_io_cb)(struct evloop *loop, struct ev_io *io, uint32_t events);
typedef void (*ev_timer_cb)(struct evloop *loop, struct ev_timer *timer);

/*
 * Watchers are owned by the caller (embedded in a session, a frontend
 * wiring...), so registering one allocates nothing. A watcher removed while
 * the loop is dispatching is never called again, even if epoll already
 * reported it in the same round.
 */
struct ev_io {
	int fd;
	uint32_t events; /* EPOLLIN / EPOLLOUT as registered */
	ev_io_cb cb;
	void *arg;
	bool active;
};

struct ev_timer {
	uint64_t deadline_ms;
	ev_timer_cb cb;
	void *arg;
	struct ev_timer *next;
	uint64_t not_before_round; /* evloop_timer_next_round: the round it may fire in */
	bool armed;
};

/*
 * Deferred free: an object ended inside a callback (a session, a proxy
 * conn) may still be pointed at further up the stack or later in the same
 * round, so its memory goes when the round is done, in the order deferred.
 */
struct ev_defer {
	void (*fn)(struct ev_defer *d);
	struct ev_defer *next;
	bool queued;
};

struct evloop *evloop_new(void);
void evloop_free(struct evloop *loop);

void ev_io_init(struct ev_io *io, int fd, ev_io_cb cb, void *arg);
int evloop_io_start(struct evloop *loop, struct ev_io *io, uint32_t events);
/* Changes the event mask of a started watcher; a no-op if unchanged. */
int evloop_io_set(struct evloop *loop, struct ev_io *io, uint32_t events);
void evloop_io_stop(struct evloop *loop, struct ev_io *io);

void ev_timer_init(struct ev_timer *timer, ev_timer_cb cb, void *arg);
/* (Re)arms the timer to fire once, delay_ms from now. */
void evloop_timer_start(struct evloop *loop, struct ev_timer *timer, uint64_t delay_ms);
void evloop_timer_stop(struct evloop *loop, struct ev_timer *timer);
/*
 * (Re)arms the timer for the next round, after a poll for events that
 * does not sleep: work done in turns, with other fds' events between them
 * (a timer of delay 0 waits a millisecond).
 */
void evloop_timer_next_round(struct evloop *loop, struct ev_timer *timer);

/* Queues fn(d) for the end of the round; a no-op while d is queued already. */
void evloop_defer(struct evloop *loop, struct ev_defer *d, void (*fn)(struct ev_defer *d));
/* Runs what is deferred now, including what that defers: for teardown, outside any callback. */
void evloop_run_deferred(struct evloop *loop);

/* The loop iterations so far: work budgeted per round starts anew when it changes. */
uint64_t evloop_round(const struct evloop *loop);
/* Monotonic milliseconds, refreshed once per loop iteration. */
uint64_t evloop_now_ms(const struct evloop *loop);

/* After a round with events, poll up to us microseconds before sleeping (0, the default: never). */
void evloop_set_spin_us(struct evloop *loop, unsigned us);

/* Runs until evloop_stop(); returns 0, or a negative errno if epoll fails. */
int evloop_run(struct evloop *loop);
void evloop_stop(struct evloop *loop);

#endif
