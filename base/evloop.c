// SPDX-License-Identifier: MIT
/*
 * The event loop every component registers with. One epoll set for fds,
 * a singly linked list of armed timers kept sorted by deadline (a handful
 * per session; inserting is O(n), firing O(1)). A round: compute the
 * wait from the first timer, epoll_wait, dispatch fds, fire due timers,
 * run what was deferred (FIFO: what was deferred first goes first).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"

enum { EVLOOP_MAX_EVENTS = 64 };

struct evloop {
	int epfd;
	bool running;
	uint64_t now_ms;
	struct ev_timer *timers;
	struct ev_defer *deferred, **deferred_tail;
	/* The round being dispatched, so a stopped watcher can be forgotten. */
	struct epoll_event events[EVLOOP_MAX_EVENTS];
	int nevents, next_event;
	/* evloop_set_spin_us: how long to poll without sleeping after a busy round, and until when. */
	uint64_t spin_ns, spin_until_ns;
	uint64_t round; /* loop iterations, for evloop_timer_next_round */
};

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t monotonic_ms(void)
{
	return monotonic_ns() / 1000000;
}

struct evloop *evloop_new(void)
{
	struct evloop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int saved = errno;

		free(loop);
		errno = saved;
		return NULL;
	}
	loop->now_ms = monotonic_ms();
	loop->deferred_tail = &loop->deferred;
	return loop;
}

void evloop_free(struct evloop *loop)
{
	if (!loop)
		return;
	evloop_run_deferred(loop);
	close(loop->epfd);
	free(loop);
}

void ev_io_init(struct ev_io *io, int fd, ev_io_cb cb, void *arg)
{
	*io = (struct ev_io){ .fd = fd, .cb = cb, .arg = arg };
}

int evloop_io_start(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	io->active = true;
	return 0;
}

int evloop_io_set(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (!io->active || io->events == events)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

void evloop_io_stop(struct evloop *loop, struct ev_io *io)
{
	if (!io->active)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->active = false;
	for (int i = loop->next_event; i < loop->nevents; i++)
		if (loop->events[i].data.ptr == io)
			loop->events[i].data.ptr = NULL;
}

void ev_timer_init(struct ev_timer *timer, ev_timer_cb cb, void *arg)
{
	*timer = (struct ev_timer){ .cb = cb, .arg = arg };
}

void evloop_timer_stop(struct evloop *loop, struct ev_timer *timer)
{
	struct ev_timer **link = &loop->timers;

	if (!timer->armed)
		return;
	while (*link && *link != timer)
		link = &(*link)->next;
	if (*link)
		*link = timer->next;
	timer->next = NULL;
	timer->armed = false;
}

static void timer_insert(struct evloop *loop, struct ev_timer *timer)
{
	struct ev_timer **link = &loop->timers;

	while (*link && (*link)->deadline_ms <= timer->deadline_ms)
		link = &(*link)->next;
	timer->next = *link;
	*link = timer;
	timer->armed = true;
}

void evloop_timer_start(struct evloop *loop, struct ev_timer *timer, uint64_t delay_ms)
{
	evloop_timer_stop(loop, timer);
	/* Never due in the round that arms it, so firing always terminates. */
	timer->deadline_ms = monotonic_ms() + (delay_ms ? delay_ms : 1);
	timer->not_before_round = 0;
	timer_insert(loop, timer);
}

/* Due now, so the poll does not sleep; fire_due_timers holds it back until the next round. */
void evloop_timer_next_round(struct evloop *loop, struct ev_timer *timer)
{
	evloop_timer_stop(loop, timer);
	timer->deadline_ms = loop->now_ms;
	timer->not_before_round = loop->round + 1;
	timer_insert(loop, timer);
}

void evloop_defer(struct evloop *loop, struct ev_defer *d, void (*fn)(struct ev_defer *d))
{
	if (d->queued)
		return;
	d->fn = fn;
	d->next = NULL;
	d->queued = true;
	*loop->deferred_tail = d;
	loop->deferred_tail = &d->next;
}

void evloop_run_deferred(struct evloop *loop)
{
	while (loop->deferred) {
		struct ev_defer *d = loop->deferred;

		loop->deferred = d->next;
		if (!loop->deferred)
			loop->deferred_tail = &loop->deferred;
		d->queued = false;
		d->fn(d); /* may free d, and may defer more */
	}
}

uint64_t evloop_now_ms(const struct evloop *loop)
{
	return loop->now_ms;
}

static int next_timeout_ms(const struct evloop *loop)
{
	if (!loop->timers)
		return -1;
	if (loop->timers->deadline_ms <= loop->now_ms)
		return 0;
	uint64_t wait = loop->timers->deadline_ms - loop->now_ms;
	return wait > 60000 ? 60000 : (int)wait;
}

/* A due timer armed for a later round is passed over; a callback may change the list, so each starts over. */
static void fire_due_timers(struct evloop *loop)
{
	uint64_t now = loop->now_ms;
	struct ev_timer **link = &loop->timers;

	while (loop->running && *link && (*link)->deadline_ms <= now) {
		struct ev_timer *timer = *link;

		if (timer->not_before_round > loop->round) {
			link = &timer->next;
			continue;
		}
		*link = timer->next;
		timer->next = NULL;
		timer->armed = false;
		timer->cb(loop, timer);
		link = &loop->timers;
	}
}

static void dispatch_events(struct evloop *loop)
{
	for (loop->next_event = 0; loop->next_event < loop->nevents && loop->running;) {
		struct epoll_event *ev = &loop->events[loop->next_event++];
		struct ev_io *io = ev->data.ptr;

		if (io)
			io->cb(loop, io, ev->events);
	}
	loop->nevents = loop->next_event = 0;
}

uint64_t evloop_round(const struct evloop *loop)
{
	return loop->round;
}

void evloop_set_spin_us(struct evloop *loop, unsigned us)
{
	loop->spin_ns = (uint64_t)us * 1000;
}

/*
 * After a round with events, polls without sleeping for up to spin_ns
 * (never past the first timer) before blocking: the answer to what was
 * just sent often comes within that time, and a thread that did not sleep
 * takes it without a wake-up (an idle CPU's exit latency, a virtual CPU's
 * halt and resume), at the price of the CPU it spins.
 */
static int wait_events(struct evloop *loop)
{
	uint64_t until = loop->spin_until_ns;

	if (until && loop->timers && loop->timers->deadline_ms * 1000000 < until)
		until = loop->timers->deadline_ms * 1000000;
	while (until && monotonic_ns() < until) {
		int n = epoll_wait(loop->epfd, loop->events, EVLOOP_MAX_EVENTS, 0);

		if (n != 0)
			return n;
	}
	if (until)
		loop->now_ms = monotonic_ms();
	return epoll_wait(loop->epfd, loop->events, EVLOOP_MAX_EVENTS, next_timeout_ms(loop));
}

int evloop_run(struct evloop *loop)
{
	loop->running = true;
	while (loop->running) {
		int n = wait_events(loop);

		loop->spin_until_ns = n > 0 && loop->spin_ns ? monotonic_ns() + loop->spin_ns : 0;

		if (n < 0 && errno != EINTR)
			return -errno;
		loop->now_ms = monotonic_ms();
		loop->round++;
		loop->nevents = n > 0 ? n : 0;
		dispatch_events(loop);
		fire_due_timers(loop);
		evloop_run_deferred(loop);
	}
	return 0;
}

void evloop_stop(struct evloop *loop)
{
	loop->running = false;
}
