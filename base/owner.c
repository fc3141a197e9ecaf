// SPDX-License-Identifier: MIT
/* Instance lock files: liveness that survives pid namespaces, and the record of what an instance routed. */

/*
 * Why a lock and not kill(pid, 0): a pid means something only in its own
 * pid namespace. An instance started under `unshare --pid` tags its
 * objects with a pid that, seen from outside, names nobody (or somebody
 * else), yet it shares the network namespace and /run with a cleanup run
 * outside. An flock is released by the kernel when its holder dies, by
 * kill -9 too, wherever the holder's pid lives.
 *
 * Why the network namespace's inode in the name: the netns experiments
 * run several instances in one pid namespace and one /run, each in its
 * own network namespace; kernel objects are per network namespace, so
 * the lock that vouches for them must be too. Two live namespaces never
 * share an inode; a dead namespace's inode may come back, so a cleanup
 * acts only on owners whose tags it found in its own namespace, and a
 * new instance truncates whatever record a stale file held.
 *
 * A file is removed by its instance at a clean exit, and by the cleanup
 * that removed a dead owner's objects while holding its lock. Whoever
 * takes a lock checks that the file is still the one at the path, so a
 * file removed under a waiter is never mistaken for a held lock.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "owner.h"

enum {
	/* A cleanup holds a dead predecessor's lock briefly: wait up to 2 s for it. */
	OWNER_LOCK_TRIES = 100,
	OWNER_LOCK_WAIT_NS = 20 * 1000 * 1000,
};

int owner_lock_path(const char *dir, long pid, char *out, size_t out_len)
{
	struct stat st;
	int n;

	if (stat("/proc/self/ns/net", &st) < 0)
		return -errno;
	n = snprintf(out, out_len, "%s/%lu-%ld.lock", dir, (unsigned long)st.st_ino, pid);
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

/* fd is the file that path names now (not one removed since we opened it). */
static bool still_linked(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* One attempt: 0 with the lock held, -EAGAIN to retry, else -errno. */
static int try_lock(struct owner_lock *l)
{
	int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	int ret;

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		goto err_close;
	}
	ret = -EAGAIN;
	if (!still_linked(fd, l->path))
		goto err_close;
	if (ftruncate(fd, 0) < 0) { /* a crashed predecessor's record is not ours */
		ret = -errno;
		goto err_close;
	}
	l->fd = fd;
	return 0;

err_close:
	close(fd);
	return ret;
}

/*
 * dir must be ours alone: a directory (not a symlink to one), owned by our
 * euid, writable by nobody else. Otherwise another user could plant or
 * swap lock files and records, and a record is a list of routes cleanup
 * deletes as root. Its parent (/run) is root's, so what we checked stays.
 */
static const char *dir_unusable(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return strerror(errno);
	if (S_ISLNK(st.st_mode))
		return "it is a symbolic link";
	if (!S_ISDIR(st.st_mode))
		return "it is not a directory";
	if (st.st_uid != geteuid())
		return "it belongs to another user";
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return "it is writable by group or others";
	return NULL;
}

int owner_lock_acquire(struct owner_lock *l, const char *dir, char *err, size_t err_len)
{
	const struct timespec wait = { .tv_nsec = OWNER_LOCK_WAIT_NS };
	const char *why;
	int ret;

	l->fd = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, err_len, "instance lock: mkdir %s: %s", dir, strerror(-ret));
		return ret;
	}
	why = dir_unusable(dir);
	if (why) {
		snprintf(err, err_len,
			 "instance lock: directory %s cannot be used: %s (it must be a directory "
			 "of user %u that nobody else may write)", dir, why, (unsigned)geteuid());
		return -EPERM;
	}
	ret = owner_lock_path(dir, (long)getpid(), l->path, sizeof(l->path));
	for (int i = 0; ret == 0 && i < OWNER_LOCK_TRIES; i++) {
		ret = try_lock(l);
		if (ret != -EAGAIN)
			break;
		nanosleep(&wait, NULL);
		ret = 0;
	}
	if (ret == 0 && l->fd < 0)
		ret = -EBUSY;
	if (ret < 0)
		snprintf(err, err_len, "instance lock %s: %s%s", l->path, strerror(-ret),
			 ret == -EBUSY ? " (an instance with this pid runs in this network "
					 "namespace, in another pid namespace)" : "");
	return ret;
}

int owner_lock_record(struct owner_lock *l, const char *text)
{
	size_t len = text ? strlen(text) : 0, done = 0;

	if (l->fd < 0)
		return -EBADF;
	/* Cleanup reads at most this much: a longer record would be cut, and obeyed cut. */
	if (len > OWNER_RECORD_MAX)
		return -EFBIG;
	if (ftruncate(l->fd, 0) < 0)
		return -errno;
	while (done < len) {
		ssize_t n = pwrite(l->fd, text + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

void owner_lock_release(struct owner_lock *l)
{
	if (l->fd < 0)
		return;
	/* Unlink while holding: a waiter then sees the file gone and starts again. */
	unlink(l->path);
	close(l->fd);
	l->fd = -1;
}

/* ---- judging other instances ---- */

void owner_judge_init(struct owner_judge *j, const char *dir)
{
	*j = (struct owner_judge){ .dir = dir ? dir : OWNER_RUN_DIR };
}

/* The held lock of pid's file, or -1 (alive, unknown, or an error). */
static int take_dead_lock(const char *dir, long pid)
{
	char path[128];
	int fd;

	if (pid <= 0 || owner_lock_path(dir, pid, path, sizeof(path)) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1; /* no file: never proven dead */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

bool owner_judge_dead(struct owner_judge *j, long pid)
{
	for (size_t i = 0; i < j->count; i++)
		if (j->seen[i].pid == pid)
			return j->seen[i].fd >= 0;
	if (j->count == OWNER_JUDGE_MAX)
		return false;
	j->seen[j->count].pid = pid;
	j->seen[j->count].fd = take_dead_lock(j->dir, pid);
	return j->seen[j->count++].fd >= 0;
}

char *owner_judge_record(struct owner_judge *j, long pid)
{
	char *text, *end;
	ssize_t n;
	int fd = -1;

	for (size_t i = 0; i < j->count && fd < 0; i++)
		if (j->seen[i].pid == pid)
			fd = j->seen[i].fd;
	if (fd < 0)
		return NULL;
	text = malloc(OWNER_RECORD_MAX + 1);
	if (!text)
		return NULL;
	n = pread(fd, text, OWNER_RECORD_MAX, 0);
	text[n > 0 ? n : 0] = '\0';
	/* An unterminated last line is a cut one (or a write the crash cut): never obeyed. */
	end = strrchr(text, '\n');
	*(end ? end + 1 : text) = '\0';
	owner_record_check(text);
	return text;
}

void owner_judge_release(struct owner_judge *j, bool forget)
{
	char path[128];

	for (size_t i = 0; i < j->count; i++) {
		if (j->seen[i].fd < 0)
			continue;
		if (forget && owner_lock_path(j->dir, j->seen[i].pid, path, sizeof(path)) == 0 &&
		    still_linked(j->seen[i].fd, path))
			unlink(path);
		close(j->seen[i].fd);
	}
	j->count = 0;
}

/* name is "<netns>-<pid>.lock" of our netns prefix; its pid in *pid. */
static bool ours(const char *name, const char *prefix, long *pid)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(name, prefix, n) != 0)
		return false;
	*pid = strtol(name + n, &end, 10);
	return *pid > 0 && strcmp(end, ".lock") == 0;
}

/* Calls fn for each pid with a lock file of this network namespace in dir; -errno. */
static int for_each_own_file(const char *dir, void (*fn)(long pid, void *arg), void *arg)
{
	char path[128], prefix[64];
	struct dirent *e;
	int ret = owner_lock_path(dir, 0, path, sizeof(path));
	DIR *d;

	if (ret < 0)
		return ret;
	/* ".../<netns>-0.lock" -> "<netns>-" */
	snprintf(prefix, sizeof(prefix), "%.*s", (int)(strlen(strrchr(path, '/') + 1) - 6),
		 strrchr(path, '/') + 1);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		long pid;

		if (ours(e->d_name, prefix, &pid))
			fn(pid, arg);
	}
	closedir(d);
	return 0;
}

struct prune {
	const char *dir;
	int pruned;
};

static void prune_one(long pid, void *arg)
{
	struct prune *p = arg;
	char path[128];
	struct stat st;
	int fd = take_dead_lock(p->dir, pid);

	if (fd < 0)
		return;
	if (owner_lock_path(p->dir, pid, path, sizeof(path)) == 0 && fstat(fd, &st) == 0 &&
	    st.st_size == 0 && still_linked(fd, path) && unlink(path) == 0)
		p->pruned++;
	close(fd);
}

int owner_prune(const char *dir)
{
	struct prune p = { .dir = dir };
	int ret = for_each_own_file(dir, prune_one, &p);

	return ret < 0 ? ret : p.pruned;
}

static void judge_one(long pid, void *arg)
{
	owner_judge_dead(arg, pid);
}

int owner_judge_scan(struct owner_judge *j)
{
	return for_each_own_file(j->dir, judge_one, j);
}

void owner_judge_clear_record(struct owner_judge *j, long pid)
{
	for (size_t i = 0; i < j->count; i++)
		if (j->seen[i].pid == pid && j->seen[i].fd >= 0 && ftruncate(j->seen[i].fd, 0) < 0)
			return; /* kept: the next cleanup runs it again, with -force */
}

/* ---- the record ---- */

/* word appears in line as a whole word (bounded by spaces or the ends). */
static bool has_words(const char *line, const char *words)
{
	size_t n = strlen(words);

	for (const char *p = strstr(line, words); p; p = strstr(p + 1, words))
		if ((p == line || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* Deletes only, and only what a tunlab record holds: proto-77 routes, addresses on lo. */
static bool record_line_ok(const char *line)
{
	if (strncmp(line, "route del ", 10) == 0)
		return has_words(line, "proto 77");
	if (strncmp(line, "addr del ", 9) == 0) {
		size_t n = strlen(line);
		return n > 7 && strcmp(line + n - 7, " dev lo") == 0;
	}
	return false;
}

size_t owner_record_check(char *text)
{
	char *out = text;
	size_t kept = 0;

	for (char *line = text; *line;) {
		size_t n = strcspn(line, "\n");
		char *next = line + n + (line[n] == '\n');

		line[n] = '\0';
		if (record_line_ok(line)) {
			memmove(out, line, n);
			out[n] = '\n';
			out += n + 1;
			kept++;
		}
		line = next;
	}
	*out = '\0';
	return kept;
}
