/* SPDX-License-Identifier: MIT */
/* Which tunlab instance owns a kernel object, and whether it still runs: the one rule every cleanup uses. */
#ifndef TUNLAB_OWNER_H
#define TUNLAB_OWNER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Every instance names its kernel objects with its pid (chains
 * TUNLAB-<pid>-*, comments and aliases "tunlab:pid=<pid>", nft tables
 * tunlab_<pid>, lo labels lo:tl<pid>) and holds, for its whole life, an
 * flock on OWNER_RUN_DIR/<netns>-<pid>.lock, where <netns> is the inode of
 * its network namespace. An owner is dead only if that file exists and
 * its lock can be taken: a pid is only a name here, never a liveness
 * test, so an instance in another pid namespace (same /run) is safe.
 * A missing file is "not known to be dead": an older binary, or an
 * instance whose /run is not ours, and cleanup leaves its objects alone.
 *
 * The file also holds the instance's record: the exact `ip -batch`
 * lines that delete what it routed and added to lo, every identifying
 * field spelled out (prefix, type, device, gateway, table, metric,
 * source, protocol), so that cleanup deletes those objects and nothing
 * that merely resembles them.
 */
#define OWNER_RUN_DIR "/run/tunlab"

enum {
	OWNER_RECORD_MAX = 1 << 20, /* a thousand routes' delete lines fit */
	OWNER_JUDGE_MAX = 64,       /* owners one cleanup judges; beyond, "alive" */
};

struct owner_lock {
	int fd; /* -1: not held */
	char path[128];
};

/* Takes this instance's lock in dir (OWNER_RUN_DIR), creating both; -errno. */
int owner_lock_acquire(struct owner_lock *l, const char *dir, char *err, size_t err_len);
/*
 * Replaces the record in the held lock file (NULL or "": none); -errno,
 * -EFBIG for one longer than OWNER_RECORD_MAX (cleanup could not read it whole).
 * Each line must end with a newline: cleanup drops an unterminated last line.
 */
int owner_lock_record(struct owner_lock *l, const char *text);
/* Removes the file, then drops the lock; idempotent. */
void owner_lock_release(struct owner_lock *l);

/* The verdicts of one cleanup run: the dead owners' locks stay held until release. */
struct owner_judge {
	const char *dir;
	struct {
		long pid;
		int fd; /* held lock of a dead owner, or -1 */
	} seen[OWNER_JUDGE_MAX];
	size_t count;
};

void owner_judge_init(struct owner_judge *j, const char *dir);
/* pid's instance in this network namespace has ended (see above). */
bool owner_judge_dead(struct owner_judge *j, long pid);
/*
 * The record of dead owner pid, checked line by line (owner_record_check)
 * and malloc'd; NULL if none or not dead.
 */
char *owner_judge_record(struct owner_judge *j, long pid);
/*
 * Judges every owner with a lock file of this network namespace in j->dir:
 * for objects that carry no tag to find their owner by (the TUN backend's
 * bypass and discard routes, on devices not its own); then walk j->seen.
 * 0 or -errno.
 */
int owner_judge_scan(struct owner_judge *j);
/* Empties dead owner pid's record once its lines ran: no later cleanup runs or counts them again. */
void owner_judge_clear_record(struct owner_judge *j, long pid);
/* Drops the held locks; with forget, the dead owners' files go first. */
void owner_judge_release(struct owner_judge *j, bool forget);

/*
 * Removes this network namespace's lock files that nobody holds and that
 * hold no record: a TUN instance killed with -9 leaves nothing else
 * behind (its device dies with it). Call it after every cleanup ran, or
 * a dead owner whose objects remain would lose its proof of death.
 * Returns how many went, or -errno.
 */
int owner_prune(const char *dir);

/*
 * Keeps from text only the lines a record may hold, "route del ... proto
 * 77" and "addr del ... dev lo", in place; returns how many it kept.
 */
size_t owner_record_check(char *text);

/* The lock file name for pid in the current network namespace; -errno. */
int owner_lock_path(const char *dir, long pid, char *out, size_t out_len);

#endif
