/* SPDX-License-Identifier: MIT */
/* Running iproute2 and iptables: how tunlab changes kernel state it borrows. */
#ifndef TUNLAB_SYSEXEC_H
#define TUNLAB_SYSEXEC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Runs argv[0] (searched in PATH) with argv, no shell, and waits for it.
 * With verbose, first prints "[#] ip link add ..." to stderr, as wg-quick
 * does, so a student sees every command that changes the system.
 * Returns 0 when it exited 0; otherwise -1 with the command and the first
 * line of its stderr in err (e.g. "ip route add 10.9.0.0/24 dev tunlab7:
 * RTNETLINK answers: File exists").
 */
int sysexec(const char *const argv[], bool verbose, char *err, size_t err_len);

/*
 * Feeds lines (newline-separated) to "ip -batch -" in one process: adding a
 * thousand routes costs one fork, not a thousand. With force, ip carries on
 * past failing lines (used for removal). Same return convention as sysexec.
 */
int sysexec_ip_batch(const char *lines, bool force, bool verbose, char *err, size_t err_len);

/* Like sysexec but captures up to out_len-1 bytes of stdout into out. */
int sysexec_capture(const char *const argv[], char *out, size_t out_len, char *err, size_t err_len);

/*
 * Feeds input (NUL-terminated) to argv's stdin, for tools that read a whole
 * ruleset at once (iptables-restore --noflush, nft -f -), and captures up
 * to out_len-1 bytes of its stdout into out (out NULL: discarded). With
 * verbose, first prints the command with its input as a here-document,
 * which a student can paste into a shell. Same return convention as sysexec.
 */
int sysexec_pipe(const char *const argv[], const char *input, char *out, size_t out_len,
		 bool verbose, char *err, size_t err_len);

/*
 * The word after key in one line of ip's output ("dev" in "10.9.0.0/24 via
 * 10.0.0.1 dev eth0 proto 77"; "inet" in an `ip -o addr` line), into out.
 * key counts only as a whole word; the value ends at a space, a backslash
 * (ip -o's line break) or a newline. false if absent or empty.
 */
bool sysexec_ip_field(const char *line, const char *key, char *out, size_t out_len);

#endif
