/* SPDX-License-Identifier: MIT */
/*
 * The control socket: one unix socket per running instance under
 * /run/tunlab/ (root only, 0600), named <netns inode>-<pid>.sock like the
 * owner lock beside it, so instances in several network namespaces never
 * collide. One request line per connection, one reply, then close:
 *
 *   show          the instance as text        show json    the same as JSON
 *   policy show   the policy, in the file's form, one entry a line
 *   policy load /ABS/PATH   parse, check and swap the policy atomically
 *   handover      server: a planned switchover, as SIGUSR1 (tunnel_handover)
 *   down          client with --lazy: close the tunnel now, as --idle-timeout
 *                 would (tunnel_down); the next packet sets it up again
 *
 * A reply starting "error: " is a refusal. The socket lives on the
 * daemon's one event loop: non-blocking, requests bounded, few clients.
 */
#ifndef TUNLAB_CTL_H
#define TUNLAB_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../base/evloop.h"

enum {
	CTL_REQUEST_MAX = 4096, /* the line, newline included; longer is refused */
	CTL_CLIENTS_MAX = 4,    /* connections served at once; more are closed at accept */
	CTL_CLIENT_TIMEOUT_MS = 2000, /* a client silent this long is dropped */
};

enum ctl_command {
	CTL_SHOW,
	CTL_SHOW_JSON,
	CTL_POLICY_SHOW,
	CTL_POLICY_LOAD,
	CTL_HANDOVER,
	CTL_DOWN,
};

struct ctl_request {
	enum ctl_command command;
	char path[CTL_REQUEST_MAX]; /* CTL_POLICY_LOAD: absolute, printable, no blanks */
};

/*
 * One request line (len bytes, a trailing newline allowed, nothing after
 * it). 0 or -EINVAL with the reason in err. Fuzzed: tests/fuzz/fuzz_ctl.c.
 */
int ctl_parse_request(const char *buf, size_t len, struct ctl_request *out, char *err, size_t err_len);
/* The request line for r, newline included (the inverse of ctl_parse_request). */
void ctl_format_request(const struct ctl_request *r, char *out, size_t out_len);

/* Writes the reply to req into f; the daemon's side. */
typedef void (*ctl_handler)(void *arg, const struct ctl_request *req, FILE *f);

struct ctl_server;

/*
 * Creates dir (0700) and the socket <netns>-<pid>.sock in it (0600),
 * registered on loop. NULL with err on failure.
 */
struct ctl_server *ctl_server_open(struct evloop *loop, const char *dir, ctl_handler handler, void *arg,
				   char *err, size_t err_len);
/* Closes every client and the socket, and unlinks it. NULL is fine. */
void ctl_server_close(struct ctl_server *s);

/* The socket path of instance pid of this network namespace in dir. 0 or -errno. */
int ctl_socket_path(const char *dir, long pid, char *out, size_t out_len);
/* Sends req to the socket at path and copies the reply to out. 0 or -errno. */
int ctl_query(const char *path, const struct ctl_request *req, FILE *out);

#endif
