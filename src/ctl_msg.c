// SPDX-License-Identifier: MIT
/* The control socket's request line: the one strict parser, and its inverse (fuzzed). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const struct {
	const char *line;
	enum ctl_command command;
} commands[] = {
	{ "show", CTL_SHOW },
	{ "show json", CTL_SHOW_JSON },
	{ "policy show", CTL_POLICY_SHOW },
	{ "handover", CTL_HANDOVER },
	{ "down", CTL_DOWN },
};

static const char load_prefix[] = "policy load ";

static int parse_path(const char *p, size_t len, struct ctl_request *out, char *err, size_t err_len)
{
	if (len == 0 || p[0] != '/') {
		snprintf(err, err_len, "policy load: the path must be absolute");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		if (p[i] <= ' ' || p[i] > '~') {
			snprintf(err, err_len, "policy load: byte 0x%02x in the path", (unsigned char)p[i]);
			return -EINVAL;
		}
	memcpy(out->path, p, len);
	out->path[len] = '\0';
	out->command = CTL_POLICY_LOAD;
	return 0;
}

int ctl_parse_request(const char *buf, size_t len, struct ctl_request *out, char *err, size_t err_len)
{
	const char *nl = memchr(buf, '\n', len);

	memset(out, 0, sizeof(*out));
	if (len >= CTL_REQUEST_MAX) {
		snprintf(err, err_len, "request longer than %d bytes", CTL_REQUEST_MAX - 1);
		return -EINVAL;
	}
	if (nl) {
		if ((size_t)(nl - buf) != len - 1) {
			snprintf(err, err_len, "bytes after the request line");
			return -EINVAL;
		}
		len--;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].line) == len && memcmp(buf, commands[i].line, len) == 0) {
			out->command = commands[i].command;
			return 0;
		}
	if (len > sizeof(load_prefix) - 1 && memcmp(buf, load_prefix, sizeof(load_prefix) - 1) == 0)
		return parse_path(buf + sizeof(load_prefix) - 1, len - (sizeof(load_prefix) - 1), out, err,
				  err_len);
	snprintf(err, err_len, "unknown request (show, show json, policy show, policy load PATH, handover, down)");
	return -EINVAL;
}

void ctl_format_request(const struct ctl_request *r, char *out, size_t out_len)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].command == r->command) {
			snprintf(out, out_len, "%s\n", commands[i].line);
			return;
		}
	snprintf(out, out_len, "%s%s\n", load_prefix, r->path);
}
