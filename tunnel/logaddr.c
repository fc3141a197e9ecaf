// SPDX-License-Identifier: MIT
/*
 * The tunnel's lowest helpers: its log line, and endpoint addresses
 * ("host:port", "[v6]:port") parsed and printed. client.c, server.c and
 * session.c call down into this file; tunnel.c, on top, builds them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

void tunnel_log(struct tunnel *t, enum tunnel_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!t->cb.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->cb.log(t->cb_ctx, level, msg);
}

void tunnel_format_sockaddr(const struct sockaddr *sa, char *out, size_t out_len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, out_len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, out_len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, out_len, "(address family %u)", sa->sa_family);
	}
}

/* Splits "host:port" / "[v6]:port" into its parts; 0 or -EINVAL. */
static int split_endpoint(const char *text, char *host, size_t host_len, unsigned long *port)
{
	const char *host_start = text, *host_end, *port_text;
	char *end;

	if (text[0] == '[') {
		host_start = text + 1;
		host_end = strchr(host_start, ']');
		if (!host_end || host_end[1] != ':')
			return -EINVAL;
		port_text = host_end + 2;
	} else {
		host_end = strrchr(text, ':');
		/* A bare IPv6 address has colons of its own: it needs brackets. */
		if (!host_end || memchr(text, ':', (size_t)(host_end - text)))
			return -EINVAL;
		port_text = host_end + 1;
	}
	if (host_end == host_start || (size_t)(host_end - host_start) >= host_len)
		return -EINVAL;
	memcpy(host, host_start, (size_t)(host_end - host_start));
	host[host_end - host_start] = '\0';
	if (port_text[0] < '0' || port_text[0] > '9')
		return -EINVAL;
	errno = 0;
	*port = strtoul(port_text, &end, 10);
	if (errno || *end || *port == 0 || *port > 65535)
		return -EINVAL;
	return 0;
}

int tunnel_parse_endpoint(const char *text, struct sockaddr_storage *ss, socklen_t *len,
			  char *host, size_t host_len, char *err, size_t err_len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char port_text[8];
	unsigned long port;
	int ret;

	if (!text || split_endpoint(text, host, host_len, &port) < 0) {
		snprintf(err, err_len, "'%s': expected host:port or [v6]:port", text ? text : "");
		return -EINVAL;
	}
	snprintf(port_text, sizeof(port_text), "%lu", port);
	ret = getaddrinfo(host, port_text, &hints, &res);
	if (ret) {
		snprintf(err, err_len, "'%s': %s", text, gai_strerror(ret));
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}
