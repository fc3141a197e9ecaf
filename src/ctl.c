// SPDX-License-Identifier: MIT
/* The control socket: the request parser, the daemon's listener on its event loop, and the query. */

/*
 * A client connection goes READING (until a newline, at most
 * CTL_REQUEST_MAX bytes, within CTL_CLIENT_TIMEOUT_MS) -> WRITING (the
 * whole reply, as the socket drains) -> closed. Nothing blocks the loop:
 * a slow or silent client costs one slot until its timer fires.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../base/owner.h"
#include "ctl.h"

/* ---- the daemon's listener ---- */

struct ctl_client {
	struct ctl_server *server;
	int fd; /* -1: free slot */
	struct ev_io io;
	struct ev_timer timer;
	char request[CTL_REQUEST_MAX];
	size_t request_len;
	char *reply; /* WRITING: malloc'd */
	size_t reply_len, reply_sent;
};

struct ctl_server {
	struct evloop *loop;
	int fd;
	struct ev_io io;
	char path[128];
	ctl_handler handler;
	void *arg;
	struct ctl_client clients[CTL_CLIENTS_MAX];
};

static void client_close(struct ctl_client *c)
{
	if (c->fd < 0)
		return;
	evloop_io_stop(c->server->loop, &c->io);
	evloop_timer_stop(c->server->loop, &c->timer);
	close(c->fd);
	c->fd = -1;
	free(c->reply);
	c->reply = NULL;
}

static void client_write(struct ctl_client *c)
{
	while (c->reply_sent < c->reply_len) {
		ssize_t n = send(c->fd, c->reply + c->reply_sent, c->reply_len - c->reply_sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT brings us back */
		if (n <= 0)
			break;
		c->reply_sent += (size_t)n;
	}
	client_close(c);
}

/* The request is whole: parse it, let the daemon answer, start writing. */
static void client_answer(struct ctl_client *c)
{
	struct ctl_request req;
	char err[160];
	FILE *f = open_memstream(&c->reply, &c->reply_len);

	if (!f) {
		client_close(c);
		return;
	}
	if (ctl_parse_request(c->request, c->request_len, &req, err, sizeof(err)) < 0)
		fprintf(f, "error: %s\n", err);
	else
		c->server->handler(c->server->arg, &req, f);
	if (fclose(f) != 0) {
		client_close(c);
		return;
	}
	evloop_io_set(c->server->loop, &c->io, EPOLLOUT);
	client_write(c);
}

static void client_read(struct ctl_client *c)
{
	ssize_t n = recv(c->fd, c->request + c->request_len, sizeof(c->request) - c->request_len, 0);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->request_len += (size_t)n;
	/* A whole line, or a full buffer, which the parser refuses as too long. */
	if (memchr(c->request, '\n', c->request_len) || c->request_len == sizeof(c->request))
		client_answer(c);
}

static void on_client(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct ctl_client *c = io->arg;

	(void)loop;
	if (c->reply)
		client_write(c);
	else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(c);
}

static void on_client_timeout(struct evloop *loop, struct ev_timer *timer)
{
	(void)loop;
	client_close(timer->arg);
}

static void on_accept(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct ctl_server *s = io->arg;
	struct ctl_client *c = NULL;
	int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)events;
	if (fd < 0)
		return;
	for (size_t i = 0; i < CTL_CLIENTS_MAX && !c; i++)
		if (s->clients[i].fd < 0)
			c = &s->clients[i];
	if (!c) {
		close(fd); /* busy: the caller may retry */
		return;
	}
	c->fd = fd;
	c->request_len = c->reply_len = c->reply_sent = 0;
	ev_io_init(&c->io, fd, on_client, c);
	ev_timer_init(&c->timer, on_client_timeout, c);
	if (evloop_io_start(loop, &c->io, EPOLLIN) < 0) {
		close(fd);
		c->fd = -1;
		return;
	}
	evloop_timer_start(loop, &c->timer, CTL_CLIENT_TIMEOUT_MS);
}

int ctl_socket_path(const char *dir, long pid, char *out, size_t out_len)
{
	char lock[PATH_MAX];
	size_t n;
	int ret = owner_lock_path(dir, pid, lock, sizeof(lock));

	if (ret < 0)
		return ret;
	/* The lock's own name with .sock for .lock: <netns inode>-<pid>. */
	n = strlen(lock) - strlen(".lock");
	if ((size_t)snprintf(out, out_len, "%.*s.sock", (int)n, lock) >= out_len)
		return -ENAMETOOLONG;
	return 0;
}

static int bind_socket(struct ctl_server *s, const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int ret;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	ret = ctl_socket_path(dir, (long)getpid(), s->path, sizeof(s->path));
	if (ret < 0)
		return ret;
	if (strlen(s->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, s->path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	/* Our pid in our namespace: a file of this name is a dead predecessor's. */
	unlink(s->path);
	old = umask(0177);
	ret = bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (ret == 0 && listen(s->fd, CTL_CLIENTS_MAX) < 0)
		ret = -errno;
	return ret;
}

struct ctl_server *ctl_server_open(struct evloop *loop, const char *dir, ctl_handler handler, void *arg,
				   char *err, size_t err_len)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		snprintf(err, err_len, "%s", strerror(ENOMEM));
		return NULL;
	}
	*s = (struct ctl_server){ .loop = loop, .fd = -1, .handler = handler, .arg = arg };
	for (size_t i = 0; i < CTL_CLIENTS_MAX; i++)
		s->clients[i] = (struct ctl_client){ .server = s, .fd = -1 };
	ret = bind_socket(s, dir);
	if (ret == 0) {
		ev_io_init(&s->io, s->fd, on_accept, s);
		ret = evloop_io_start(loop, &s->io, EPOLLIN);
	}
	if (ret < 0) {
		snprintf(err, err_len, "%s: %s", s->path[0] ? s->path : dir, strerror(-ret));
		ctl_server_close(s);
		errno = -ret;
		return NULL;
	}
	return s;
}

void ctl_server_close(struct ctl_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < CTL_CLIENTS_MAX; i++)
		client_close(&s->clients[i]);
	if (s->fd >= 0) {
		if (s->io.active)
			evloop_io_stop(s->loop, &s->io);
		close(s->fd);
		unlink(s->path);
	}
	free(s);
}

/* ---- the query (tunlab show) ---- */

int ctl_query(const char *path, const struct ctl_request *req, FILE *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	char line[CTL_REQUEST_MAX + 16], buf[4096];
	size_t len;
	ssize_t n;
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A wedged daemon must not wedge `tunlab show`. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ctl_format_request(req, line, sizeof(line));
	len = strlen(line);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		ret = -errno;
		goto out;
	}
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		fwrite(buf, 1, (size_t)n, out);
	if (n < 0)
		ret = -errno;
out:
	close(fd);
	return ret;
}
