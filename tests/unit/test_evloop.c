// SPDX-License-Identifier: MIT
/*
 * Unit tests: the one event loop's deferred frees (base/evloop.c): run at
 * the end of the round, in the order deferred, including what a deferred
 * call defers; a watcher stopped mid-round is not called again; the spin
 * after a busy round takes an event that comes during it and yields to a
 * timer that falls due; a timer armed for the next round takes one turn a
 * round, other events between.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../../base/evloop.h"

struct item {
	struct ev_defer d; /* first: the deferred call finds the item from it */
	int *order, *at;
	int id;
	struct evloop *loop;
	struct item *chain; /* deferred by this one's call */
};

static void item_run(struct ev_defer *d)
{
	struct item *it = (struct item *)d;

	it->order[(*it->at)++] = it->id;
	if (it->chain)
		evloop_defer(it->loop, &it->chain->d, item_run);
}

static void stop_now(struct evloop *loop, struct ev_timer *timer)
{
	(void)timer;
	evloop_stop(loop);
}

/* Deferred in a timer callback: nothing runs before the round ends, then all in order. */
static void defer_three(struct evloop *loop, struct ev_timer *timer)
{
	struct item *items = timer->arg;

	for (int i = 0; i < 3; i++)
		evloop_defer(loop, &items[i].d, item_run);
	evloop_defer(loop, &items[0].d, item_run); /* queued already: a no-op */
	assert_int_equal(*items[0].at, 0);
	evloop_stop(loop);
}

static void test_defer_runs_in_order_at_round_end(void **state)
{
	(void)state;
	struct evloop *loop = evloop_new();
	int order[8] = { 0 }, at = 0;
	struct item items[4];
	struct ev_timer t;

	assert_non_null(loop);
	for (int i = 0; i < 4; i++)
		items[i] = (struct item){ .order = order, .at = &at, .id = i + 1, .loop = loop };
	items[1].chain = &items[3];
	ev_timer_init(&t, defer_three, items);
	evloop_timer_start(loop, &t, 1);
	assert_int_equal(evloop_run(loop), 0);
	assert_int_equal(at, 4);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 3);
	assert_int_equal(order[3], 4); /* deferred by 2's call, in the same round */
	evloop_free(loop);
}

/* Teardown outside the loop: evloop_run_deferred, and evloop_free, run what is left. */
static void test_run_deferred_outside_the_loop(void **state)
{
	(void)state;
	struct evloop *loop = evloop_new();
	int order[4] = { 0 }, at = 0;
	struct item a = { .order = order, .at = &at, .id = 7, .loop = loop };
	struct item b = { .order = order, .at = &at, .id = 8, .loop = loop };

	assert_non_null(loop);
	evloop_defer(loop, &a.d, item_run);
	evloop_run_deferred(loop);
	assert_int_equal(at, 1);
	evloop_defer(loop, &b.d, item_run);
	evloop_free(loop);
	assert_int_equal(at, 2);
	assert_int_equal(order[1], 8);
}

struct pair {
	struct ev_io io[2];
	int calls[2];
};

/* Whichever of two readable watchers runs first stops the other: it is not called. */
static void on_either(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct pair *p = io->arg;

	(void)events;
	p->calls[io == &p->io[1]]++;
	evloop_io_stop(loop, &p->io[io == &p->io[0]]);
}

static void test_stopped_watcher_not_called(void **state)
{
	(void)state;
	struct evloop *loop = evloop_new();
	int fds[2] = { eventfd(1, EFD_CLOEXEC), eventfd(1, EFD_CLOEXEC) };
	struct pair p = { .calls = { 0, 0 } };
	struct ev_timer t;

	assert_non_null(loop);
	assert_true(fds[0] >= 0 && fds[1] >= 0);
	for (int i = 0; i < 2; i++) {
		ev_io_init(&p.io[i], fds[i], on_either, &p);
		assert_int_equal(evloop_io_start(loop, &p.io[i], EPOLLIN), 0);
	}
	ev_timer_init(&t, stop_now, NULL);
	evloop_timer_start(loop, &t, 1);
	assert_int_equal(evloop_run(loop), 0);
	/* The survivor stays readable and is called every round until the timer; the other never. */
	assert_true(p.io[0].active != p.io[1].active);
	assert_true(p.calls[p.io[0].active ? 0 : 1] >= 1);
	assert_int_equal(p.calls[p.io[0].active ? 1 : 0], 0);
	evloop_free(loop);
	close(fds[0]);
	close(fds[1]);
}

/* A spin far longer than the test's bounds: what ends the run early is what the test checks. */
enum { LONG_SPIN_US = 2000000, BOUND_MS = 1000 };

struct spin_case {
	struct ev_io kick, later;
	struct ev_timer timer;
	int kick_fd, later_fd;
	bool later_seen;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_later(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct spin_case *c = io->arg;
	uint64_t expirations;

	(void)events;
	assert_int_equal(read(c->later_fd, &expirations, sizeof(expirations)), sizeof(expirations));
	c->later_seen = true;
	evloop_stop(loop);
}

/* The first round's event: arms what must end the spin (a timerfd, or a loop timer). */
static void on_kick(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct spin_case *c = io->arg;
	struct itimerspec in20ms = { .it_value = { .tv_nsec = 20 * 1000000 } };
	uint64_t value;

	(void)events;
	assert_int_equal(read(c->kick_fd, &value, sizeof(value)), sizeof(value));
	if (c->later_fd >= 0)
		assert_int_equal(timerfd_settime(c->later_fd, 0, &in20ms, NULL), 0);
	else
		evloop_timer_start(loop, &c->timer, 20);
}

static void run_spin_case(struct spin_case *c, uint64_t *elapsed_ms)
{
	struct evloop *loop = evloop_new();
	uint64_t start;

	assert_non_null(loop);
	evloop_set_spin_us(loop, LONG_SPIN_US);
	c->kick_fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(c->kick_fd >= 0);
	ev_io_init(&c->kick, c->kick_fd, on_kick, c);
	assert_int_equal(evloop_io_start(loop, &c->kick, EPOLLIN), 0);
	if (c->later_fd >= 0) {
		ev_io_init(&c->later, c->later_fd, on_later, c);
		assert_int_equal(evloop_io_start(loop, &c->later, EPOLLIN), 0);
	}
	ev_timer_init(&c->timer, stop_now, NULL);
	start = now_ms();
	assert_int_equal(evloop_run(loop), 0);
	*elapsed_ms = now_ms() - start;
	evloop_free(loop);
	close(c->kick_fd);
	if (c->later_fd >= 0)
		close(c->later_fd);
}

/* An fd that becomes ready while the loop spins is dispatched then, not after the spin. */
static void test_spin_takes_an_event(void **state)
{
	struct spin_case c = { .later_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK) };
	uint64_t elapsed;

	(void)state;
	assert_true(c.later_fd >= 0);
	run_spin_case(&c, &elapsed);
	assert_true(c.later_seen);
	assert_true(elapsed < BOUND_MS);
}

/* A loop timer that falls due during the spin ends it: the spin never holds a timer up. */
static void test_spin_yields_to_a_timer(void **state)
{
	struct spin_case c = { .later_fd = -1 };
	uint64_t elapsed;

	(void)state;
	run_spin_case(&c, &elapsed);
	assert_true(elapsed >= 20 && elapsed < BOUND_MS);
}

enum { TURNS = 5 };

struct turns {
	struct ev_timer timer;
	struct ev_io io;
	int io_calls, turns;
	int io_calls_at[TURNS];
	uint64_t round_at[TURNS];
};

/* Always readable (never read): called every round. */
static void count_io(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct turns *c = io->arg;

	(void)loop;
	(void)events;
	c->io_calls++;
}

static void take_turn(struct evloop *loop, struct ev_timer *timer)
{
	struct turns *c = timer->arg;

	c->io_calls_at[c->turns] = c->io_calls;
	c->round_at[c->turns] = evloop_round(loop);
	if (++c->turns == TURNS)
		evloop_stop(loop);
	else
		evloop_timer_next_round(loop, timer);
}

/*
 * A timer re-armed for the next round from its own callback takes one
 * turn per round, with the other fds' events dispatched between turns,
 * instead of firing again and again in the round that armed it.
 */
static void test_next_round_turns(void **state)
{
	struct evloop *loop = evloop_new();
	int fd = eventfd(1, EFD_CLOEXEC);
	struct turns c = { .turns = 0 };

	(void)state;
	assert_non_null(loop);
	assert_true(fd >= 0);
	ev_io_init(&c.io, fd, count_io, &c);
	assert_int_equal(evloop_io_start(loop, &c.io, EPOLLIN), 0);
	ev_timer_init(&c.timer, take_turn, &c);
	evloop_timer_next_round(loop, &c.timer);
	assert_int_equal(evloop_run(loop), 0);
	assert_int_equal(c.turns, TURNS);
	for (int i = 1; i < TURNS; i++) {
		assert_int_equal(c.round_at[i], c.round_at[i - 1] + 1);
		assert_int_equal(c.io_calls_at[i], c.io_calls_at[i - 1] + 1);
	}
	evloop_free(loop);
	close(fd);
}

/* Turns until the loop stops; a bound so that a broken loop fails instead of hanging. */
enum { TURNS_BOUND = 10 * 1000 * 1000 };

static void turn_again(struct evloop *loop, struct ev_timer *timer)
{
	int *turns = timer->arg;

	if (++*turns < TURNS_BOUND)
		evloop_timer_next_round(loop, timer);
	else
		evloop_stop(loop);
}

static void stop_count(struct evloop *loop, struct ev_timer *timer)
{
	int *stops = timer->arg;

	++*stops;
	evloop_stop(loop);
}

/* Turns re-armed every round do not starve a timer that falls due. */
static void test_next_round_passes_over(void **state)
{
	struct evloop *loop = evloop_new();
	struct ev_timer turn, plain;
	int turns = 0, stops = 0;

	(void)state;
	assert_non_null(loop);
	ev_timer_init(&turn, turn_again, &turns);
	ev_timer_init(&plain, stop_count, &stops);
	evloop_timer_start(loop, &plain, 1);
	/* Re-armed every round, the turn is always due first; the 1 ms timer still ends the run. */
	evloop_timer_next_round(loop, &turn);
	assert_int_equal(evloop_run(loop), 0);
	assert_int_equal(stops, 1);
	assert_true(turns >= 1 && turns < TURNS_BOUND);
	evloop_timer_stop(loop, &turn);
	evloop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defer_runs_in_order_at_round_end),
		cmocka_unit_test(test_run_deferred_outside_the_loop),
		cmocka_unit_test(test_stopped_watcher_not_called),
		cmocka_unit_test(test_spin_takes_an_event),
		cmocka_unit_test(test_spin_yields_to_a_timer),
		cmocka_unit_test(test_next_round_turns),
		cmocka_unit_test(test_next_round_passes_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
