// SPDX-License-Identifier: MIT
/* Unit tests of base/owner.h: who is dead (the lock, never the pid) and what a record may hold. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../base/owner.h"

struct dir {
	char path[64];
};

static int dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/tl-owner-XXXXXX");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int dir_teardown(void **state)
{
	struct dir *d = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", d->path);
	if (system(cmd) != 0)
		return -1;
	free(d);
	return 0;
}

/*
 * A child that takes its lock in dir, records text and then either exits
 * without releasing anything (a kill -9 as far as the files know) or, with
 * hold, waits for a byte on *release before it does.
 */
static pid_t child_instance(const char *dir, const char *text, bool hold, int *release)
{
	int ready[2], go[2];
	char byte;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct owner_lock l;
		char err[256];

		close(ready[0]);
		close(go[1]);
		if (owner_lock_acquire(&l, dir, err, sizeof(err)) < 0 || owner_lock_record(&l, text) < 0)
			_exit(1);
		byte = 1;
		if (write(ready[1], &byte, 1) != 1)
			_exit(1);
		if (hold && read(go[0], &byte, 1) < 0)
			_exit(1);
		_exit(0); /* no release: the kernel drops the lock, the file stays */
	}
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &byte, 1), 1);
	close(ready[0]);
	if (hold)
		*release = go[1];
	else
		close(go[1]);
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A crashed instance: its file stays, nobody holds it, so it is dead and its record is read. */
static void test_dead_after_crash(void **state)
{
	struct dir *d = *state;
	struct owner_judge j;
	pid_t pid = child_instance(d->path, "route del fd02::/64 dev lo proto 77 metric 1\n"
					    "link del dev eth0\n", false, NULL);
	char *record;

	reap(pid);
	owner_judge_init(&j, d->path);
	assert_true(owner_judge_dead(&j, pid));
	record = owner_judge_record(&j, pid);
	assert_non_null(record);
	/* A record only deletes what a record may hold. */
	assert_string_equal(record, "route del fd02::/64 dev lo proto 77 metric 1\n");
	free(record);
	owner_judge_release(&j, true);

	/* Forgotten once its objects are gone: the file went with it. */
	owner_judge_init(&j, d->path);
	assert_false(owner_judge_dead(&j, pid));
	owner_judge_release(&j, false);
}

/*
 * The lock, not the pid, says who lives: a held lock protects its owner
 * while kill(pid, 0) would say it is gone (the pid of another pid
 * namespace), and a pid that runs does not keep a crashed owner alive.
 */
static void test_held_lock_protects(void **state)
{
	struct dir *d = *state;
	struct owner_judge j;
	int release = -1;
	char byte = 1;
	pid_t pid = child_instance(d->path, "", true, &release);

	owner_judge_init(&j, d->path);
	assert_false(owner_judge_dead(&j, pid));
	owner_judge_release(&j, true);

	assert_int_equal(write(release, &byte, 1), 1);
	close(release);
	reap(pid);
	owner_judge_init(&j, d->path);
	assert_true(owner_judge_dead(&j, pid));
	owner_judge_release(&j, false);
}

/* No file: an older binary or a /run not ours; never proven dead, whatever the pid says. */
static void test_missing_file_is_not_dead(void **state)
{
	struct dir *d = *state;
	struct owner_judge j;

	owner_judge_init(&j, d->path);
	assert_false(owner_judge_dead(&j, 4194303)); /* no such pid either */
	assert_null(owner_judge_record(&j, 4194303));
	owner_judge_release(&j, true);
}

/* Our own lock: judged alive by ourselves; a crashed predecessor with our pid: dead, then ours. */
static void test_own_pid(void **state)
{
	struct dir *d = *state;
	struct owner_judge j;
	struct owner_lock l;
	char err[256], path[128], record[64];
	FILE *f;

	assert_int_equal(owner_lock_path(d->path, (long)getpid(), path, sizeof(path)), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("route del 10.9.0.0/24 dev lo src 10.8.0.2 proto 77\n", f);
	fclose(f);
	owner_judge_init(&j, d->path);
	assert_true(owner_judge_dead(&j, (long)getpid()));
	owner_judge_release(&j, false);

	assert_int_equal(owner_lock_acquire(&l, d->path, err, sizeof(err)), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_null(fgets(record, sizeof(record), f)); /* the predecessor's record is not ours */
	fclose(f);
	owner_judge_init(&j, d->path);
	assert_false(owner_judge_dead(&j, (long)getpid()));
	owner_judge_release(&j, true);
	owner_lock_release(&l);
	assert_int_equal(access(path, F_OK), -1);
}

static void touch(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Only this namespace's empty files nobody holds go: a record or a holder keeps a file. */
static void test_prune(void **state)
{
	struct dir *d = *state;
	char empty[128], recorded[128], other[128];
	int release = -1;
	char byte = 1;
	pid_t held = child_instance(d->path, "", true, &release);

	assert_int_equal(owner_lock_path(d->path, 4194301, empty, sizeof(empty)), 0);
	assert_int_equal(owner_lock_path(d->path, 4194302, recorded, sizeof(recorded)), 0);
	snprintf(other, sizeof(other), "%s/1-4194301.lock", d->path); /* another namespace's */
	touch(empty, "");
	touch(recorded, "route del 10.9.0.0/24 dev lo proto 77\n");
	touch(other, "");

	assert_int_equal(owner_prune(d->path), 1);
	assert_int_equal(access(empty, F_OK), -1);
	assert_int_equal(access(recorded, F_OK), 0);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(owner_lock_path(d->path, held, empty, sizeof(empty)), 0);
	assert_int_equal(access(empty, F_OK), 0);

	assert_int_equal(write(release, &byte, 1), 1);
	close(release);
	reap(held);
	assert_int_equal(owner_prune(d->path), 1);
}

static void test_record_check(void **state)
{
	(void)state;
	char text[] = "route del 10.102.0.0/24 via 10.101.0.1 dev ul0 src 10.8.0.2 proto 77\n"
		      "route del 10.102.0.0/24 dev tunlab7 proto 770\n"
		      "route add 10.102.0.0/24 dev lo proto 77\n"
		      "route del 10.103.0.0/24 dev lo\n"
		      "addr del 10.8.0.2/32 dev lo\n"
		      "addr del 10.101.0.2/24 dev ul0\n"
		      "addr del 10.8.0.3/32 dev lo0\n"
		      "link del dev ul0\n"
		      "route del local fd02::/64 dev lo table local src fd08::2 proto 77";

	assert_int_equal(owner_record_check(text), 3);
	assert_string_equal(text,
			    "route del 10.102.0.0/24 via 10.101.0.1 dev ul0 src 10.8.0.2 proto 77\n"
			    "addr del 10.8.0.2/32 dev lo\n"
			    "route del local fd02::/64 dev lo table local src fd08::2 proto 77\n");
}

static void expect_refused(const char *dir, const char *why)
{
	struct owner_lock l;
	char err[512] = "";

	assert_int_equal(owner_lock_acquire(&l, dir, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, dir));
	if (!strstr(err, why))
		fail_msg("expected \"%s\" in: %s", why, err);
	assert_int_equal(l.fd, -1);
}

/* The lock directory must be ours alone; else start fails and says which and why. */
static void test_dir_checked(void **state)
{
	struct dir *d = *state;
	char sub[128], link[128];
	struct owner_lock l;
	char err[512];

	snprintf(sub, sizeof(sub), "%s/open", d->path);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(chmod(sub, 0777), 0);
	expect_refused(sub, "writable by group or others");
	assert_int_equal(chmod(sub, 0770), 0);
	expect_refused(sub, "writable by group or others");
	snprintf(link, sizeof(link), "%s/link", d->path);
	assert_int_equal(chmod(sub, 0700), 0);
	assert_int_equal(symlink(sub, link), 0);
	expect_refused(link, "symbolic link");
	/* The same directory, once only ours, is used. */
	assert_int_equal(owner_lock_acquire(&l, sub, err, sizeof(err)), 0);
	owner_lock_release(&l);
}

/* A record cleanup could not read whole is refused at write time. */
static void test_record_too_large(void **state)
{
	struct dir *d = *state;
	size_t len = OWNER_RECORD_MAX + 1;
	char *big = malloc(len + 1);
	struct owner_lock l;
	char err[256];

	assert_non_null(big);
	memset(big, 'x', len);
	big[len] = '\0';
	assert_int_equal(owner_lock_acquire(&l, d->path, err, sizeof(err)), 0);
	assert_int_equal(owner_lock_record(&l, big), -EFBIG);
	big[len - 1] = '\0';
	assert_int_equal(owner_lock_record(&l, big), 0);
	owner_lock_release(&l);
	free(big);
}

/* A record whose last line has no newline was cut: that line is not obeyed. */
static void test_record_cut_line(void **state)
{
	struct dir *d = *state;
	struct owner_judge j;
	pid_t pid = child_instance(d->path, "route del fd02::/64 dev lo proto 77 metric 1\n"
					    "route del fd03::/64 dev lo proto 77", false, NULL);
	char *record;

	reap(pid);
	owner_judge_init(&j, d->path);
	assert_true(owner_judge_dead(&j, pid));
	record = owner_judge_record(&j, pid);
	assert_non_null(record);
	assert_string_equal(record, "route del fd02::/64 dev lo proto 77 metric 1\n");
	free(record);
	owner_judge_release(&j, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dead_after_crash, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_held_lock_protects, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_is_not_dead, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_own_pid, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_prune, dir_setup, dir_teardown),
		cmocka_unit_test(test_record_check),
		cmocka_unit_test_setup_teardown(test_dir_checked, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_record_too_large, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_record_cut_line, dir_setup, dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
