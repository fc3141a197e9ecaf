// SPDX-License-Identifier: MIT
/* Running iproute2 and iptables without a shell, with their stderr as our error. */

/*
 * Every change tunlab makes to routes, addresses, devices and rules goes
 * through here, so this is the one place that echoes "[#] cmd" for a student
 * and the one place that turns a tool's complaint into an error message.
 *
 * A child is spawned with posix_spawnp (argv, never a shell), its stdin,
 * stdout and stderr wired to pipes or /dev/null, and one poll loop feeds
 * stdin while draining both outputs: feeding a thousand route lines to
 * `ip -batch -` while ip writes errors must not deadlock on a full pipe.
 * Pipes are O_CLOEXEC so no fd of ours (a TUN fd, a socket) leaks into the
 * child, and the loop has a deadline so a hung tool cannot hang tunlab.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sysexec.h"

enum {
	/* ip adds a thousand routes in well under a second: a stall is a bug. */
	SYSEXEC_TIMEOUT_MS = 30000,
	/* stderr kept to build the message; anything after it is drained unread. */
	SYSEXEC_ERRBUF = 4096,
	SYSEXEC_CMDLINE_MAX = 512,
};

enum { IO_IN, IO_OUT, IO_ERR, IO_COUNT };

struct child_io {
	const char *in;       /* fed to stdin, or NULL for /dev/null */
	size_t in_len, in_off;
	char *out;            /* stdout capture, or NULL for /dev/null */
	size_t out_cap, out_len;
	char err[SYSEXEC_ERRBUF];
	size_t err_len;
	int fd[IO_COUNT];     /* our ends of the pipes, -1 when closed */
	bool timed_out;
	bool exited;          /* exited on its own (any status), not killed */
};

static void join_argv(const char *const argv[], char *out, size_t out_len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; argv[i] && used < out_len; i++) {
		int n = snprintf(out + used, out_len - used, "%s%s", i ? " " : "", argv[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Child end blocking (ip reads its stdin with stdio), our end non-blocking. */
static int make_pipe(int p[2], int our_end)
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[our_end], F_SETFL, O_NONBLOCK) < 0) {
		int ret = -errno;
		close(p[0]);
		close(p[1]);
		return ret;
	}
	return 0;
}

static int wire_fd(posix_spawn_file_actions_t *fa, struct child_io *io, int which,
		   bool piped, int child_fd[IO_COUNT])
{
	static const int target[IO_COUNT] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO };
	int p[2], ours = which == IO_IN ? 1 : 0, ret;

	if (!piped)
		return -posix_spawn_file_actions_addopen(fa, target[which], "/dev/null",
							which == IO_IN ? O_RDONLY : O_WRONLY, 0);
	ret = make_pipe(p, ours);
	if (ret < 0)
		return ret;
	io->fd[which] = p[ours];
	child_fd[which] = p[!ours];
	/* dup2 clears O_CLOEXEC on the copy; the originals close at exec. */
	return -posix_spawn_file_actions_adddup2(fa, p[!ours], target[which]);
}

/* The child starts with default dispositions whatever tunlab blocks or ignores. */
static void init_attr(posix_spawnattr_t *attr)
{
	sigset_t none, deflt;

	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGHUP);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_init(attr);
	posix_spawnattr_setsigmask(attr, &none);
	posix_spawnattr_setsigdefault(attr, &deflt);
	posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

static int spawn_child(const char *const argv[], struct child_io *io, pid_t *pid)
{
	int child_fd[IO_COUNT] = { -1, -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int ret;

	posix_spawn_file_actions_init(&fa);
	init_attr(&attr);
	ret = wire_fd(&fa, io, IO_IN, io->in != NULL, child_fd);
	if (ret == 0)
		ret = wire_fd(&fa, io, IO_OUT, io->out != NULL, child_fd);
	if (ret == 0)
		ret = wire_fd(&fa, io, IO_ERR, true, child_fd);
	if (ret == 0)
		ret = -posix_spawnp(pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	for (int i = 0; i < IO_COUNT; i++)
		close_fd(&child_fd[i]);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return ret;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void feed_stdin(struct child_io *io)
{
	ssize_t n = write(io->fd[IO_IN], io->in + io->in_off, io->in_len - io->in_off);

	if (n > 0)
		io->in_off += (size_t)n;
	/* EPIPE: the child quit early (a failing batch); its stderr says why. */
	if ((n < 0 && errno != EAGAIN && errno != EINTR) || io->in_off == io->in_len)
		close_fd(&io->fd[IO_IN]);
}

/* Keeps what fits in buf (NUL-terminated), drains and drops the rest. */
static void drain(int *fd, char *buf, size_t cap, size_t *len)
{
	char scratch[4096];
	ssize_t n;

	if (*len + 1 < cap)
		n = read(*fd, buf + *len, cap - 1 - *len);
	else
		n = read(*fd, scratch, sizeof(scratch));
	if (n > 0 && *len + 1 < cap)
		*len += (size_t)n;
	if (cap)
		buf[*len] = '\0';
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		close_fd(fd);
}

static void pump_once(struct child_io *io, struct pollfd *pfd, int n)
{
	for (int i = 0; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		if (pfd[i].fd == io->fd[IO_IN])
			feed_stdin(io);
		else if (pfd[i].fd == io->fd[IO_OUT])
			drain(&io->fd[IO_OUT], io->out, io->out_cap, &io->out_len);
		else
			drain(&io->fd[IO_ERR], io->err, sizeof(io->err), &io->err_len);
	}
}

/* Runs until the child closed every pipe or the deadline passed. */
static void pump(struct child_io *io)
{
	uint64_t deadline = now_ms() + SYSEXEC_TIMEOUT_MS;

	for (;;) {
		struct pollfd pfd[IO_COUNT];
		int n = 0, ret;
		uint64_t now = now_ms();

		for (int i = 0; i < IO_COUNT; i++)
			if (io->fd[i] >= 0)
				pfd[n++] = (struct pollfd){ .fd = io->fd[i],
							    .events = i == IO_IN ? POLLOUT : POLLIN };
		if (n == 0)
			return;
		if (now >= deadline) {
			io->timed_out = true;
			return;
		}
		ret = poll(pfd, (nfds_t)n, (int)(deadline - now));
		if (ret > 0)
			pump_once(io, pfd, n);
		else if (ret < 0 && errno != EINTR)
			return;
	}
}

static int wait_child(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * A write to a pipe whose reader exited raises SIGPIPE, which would kill
 * tunlab unless it ignores the signal: block it around the conversation and
 * swallow the one it may have raised.
 */
static void run_pumped(struct child_io *io)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pump(io);
	sigpending(&pending);
	if (!was_pending && sigismember(&pending, SIGPIPE)) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void first_line(const char *text, char *out, size_t out_len)
{
	size_t n = strcspn(text, "\n");

	snprintf(out, out_len, "%.*s", (int)n, text);
}

static void describe_failure(const struct child_io *io, int status, const char *cmd,
			     char *err, size_t err_len)
{
	char line[256];

	first_line(io->err, line, sizeof(line));
	if (io->timed_out)
		snprintf(err, err_len, "%s: no answer after %d s, killed", cmd,
			 SYSEXEC_TIMEOUT_MS / 1000);
	else if (WIFSIGNALED(status))
		snprintf(err, err_len, "%s: killed by signal %d", cmd, WTERMSIG(status));
	else if (line[0])
		snprintf(err, err_len, "%s: %s", cmd, line);
	else
		snprintf(err, err_len, "%s: exited with status %d", cmd, WEXITSTATUS(status));
}

/* Spawns, converses, reaps. 0 if the child exited 0; else -1 and err. */
static int run(const char *const argv[], struct child_io *io, const char *cmd,
	       char *err, size_t err_len)
{
	int status = 0, ret;
	pid_t pid;

	for (int i = 0; i < IO_COUNT; i++)
		io->fd[i] = -1;
	ret = spawn_child(argv, io, &pid);
	if (ret < 0) {
		snprintf(err, err_len, "%s: %s", cmd, strerror(-ret));
		goto out;
	}
	run_pumped(io);
	if (io->timed_out)
		kill(pid, SIGKILL);
	ret = wait_child(pid, &status);
	if (ret < 0) {
		snprintf(err, err_len, "%s: waitpid: %s", cmd, strerror(-ret));
		goto out;
	}
	io->exited = !io->timed_out && WIFEXITED(status);
	if (!io->exited || WEXITSTATUS(status) != 0) {
		describe_failure(io, status, cmd, err, err_len);
		ret = -1;
	}
out:
	for (int i = 0; i < IO_COUNT; i++)
		close_fd(&io->fd[i]);
	return ret < 0 ? -1 : 0;
}

int sysexec(const char *const argv[], bool verbose, char *err, size_t err_len)
{
	char cmd[SYSEXEC_CMDLINE_MAX];
	struct child_io *io = calloc(1, sizeof(*io));
	int ret;

	join_argv(argv, cmd, sizeof(cmd));
	if (!io) {
		snprintf(err, err_len, "%s: %s", cmd, strerror(ENOMEM));
		return -1;
	}
	if (verbose)
		fprintf(stderr, "[#] %s\n", cmd);
	ret = run(argv, io, cmd, err, err_len);
	free(io);
	return ret;
}

int sysexec_capture(const char *const argv[], char *out, size_t out_len, char *err, size_t err_len)
{
	char cmd[SYSEXEC_CMDLINE_MAX];
	struct child_io *io = calloc(1, sizeof(*io));
	int ret;

	join_argv(argv, cmd, sizeof(cmd));
	if (out_len)
		out[0] = '\0';
	if (!io) {
		snprintf(err, err_len, "%s: %s", cmd, strerror(ENOMEM));
		return -1;
	}
	io->out = out;
	io->out_cap = out_len;
	ret = run(argv, io, cmd, err, err_len);
	free(io);
	return ret;
}

/* The n-th (1-based) line of text, without its newline. */
static void nth_line(const char *text, long n, char *out, size_t out_len)
{
	for (long i = 1; i < n && text; i++) {
		text = strchr(text, '\n');
		if (text)
			text++;
	}
	if (!text) {
		snprintf(out, out_len, "?");
		return;
	}
	first_line(text, out, out_len);
}

/*
 * ip -batch reports "Command failed -:N" after the error of line N: name
 * that line in the message, as if it had been run alone.
 */
static void batch_command(const char *lines, const char *stderr_text, char *cmd, size_t cmd_len)
{
	const char *mark = strstr(stderr_text, "Command failed -:");
	char line[SYSEXEC_CMDLINE_MAX - 4];

	if (!mark) {
		snprintf(cmd, cmd_len, "ip -batch -");
		return;
	}
	nth_line(lines, strtol(mark + strlen("Command failed -:"), NULL, 10), line, sizeof(line));
	snprintf(cmd, cmd_len, "ip %s", line);
}

/* Each line echoed as the `ip` command it stands for, which a student can rerun. */
static void echo_batch(const char *lines)
{
	while (*lines) {
		size_t n = strcspn(lines, "\n");
		if (n)
			fprintf(stderr, "[#] ip %.*s\n", (int)n, lines);
		lines += n;
		if (*lines == '\n')
			lines++;
	}
}

int sysexec_ip_batch(const char *lines, bool force, bool verbose, char *err, size_t err_len)
{
	static const char *const argv_force[] = { "ip", "-force", "-batch", "-", NULL };
	static const char *const argv_plain[] = { "ip", "-batch", "-", NULL };
	struct child_io *io = calloc(1, sizeof(*io));
	char cmd[SYSEXEC_CMDLINE_MAX], line[256];
	int ret;

	if (!io) {
		snprintf(err, err_len, "ip -batch -: %s", strerror(ENOMEM));
		return -1;
	}
	if (verbose)
		echo_batch(lines);
	io->in = lines;
	io->in_len = strlen(lines);
	ret = run(force ? argv_force : argv_plain, io, "ip -batch -", err, err_len);
	if (ret < 0 && io->exited && io->err_len) {
		batch_command(lines, io->err, cmd, sizeof(cmd));
		first_line(io->err, line, sizeof(line));
		snprintf(err, err_len, "%s: %s", cmd, line);
	}
	free(io);
	return ret;
}

int sysexec_pipe(const char *const argv[], const char *input, char *out, size_t out_len,
		 bool verbose, char *err, size_t err_len)
{
	char cmd[SYSEXEC_CMDLINE_MAX];
	struct child_io *io = calloc(1, sizeof(*io));
	int ret;

	join_argv(argv, cmd, sizeof(cmd));
	if (out && out_len)
		out[0] = '\0';
	if (!io) {
		snprintf(err, err_len, "%s: %s", cmd, strerror(ENOMEM));
		return -1;
	}
	if (verbose)
		fprintf(stderr, "[#] %s <<'EOF'\n%s%sEOF\n", cmd, input,
			input[0] && input[strlen(input) - 1] != '\n' ? "\n" : "");
	io->in = input;
	io->in_len = strlen(input);
	io->out = out;
	io->out_cap = out ? out_len : 0;
	ret = run(argv, io, cmd, err, err_len);
	free(io);
	return ret;
}

bool sysexec_ip_field(const char *line, const char *key, char *out, size_t out_len)
{
	size_t klen = strlen(key);

	for (const char *p = strstr(line, key); p; p = strstr(p + 1, key)) {
		if ((p != line && p[-1] != ' ') || p[klen] != ' ')
			continue;
		p += klen + 1;
		snprintf(out, out_len, "%.*s", (int)strcspn(p, " \\\n"), p);
		return out[0] != '\0';
	}
	return false;
}
