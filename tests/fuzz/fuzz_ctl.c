// SPDX-License-Identifier: MIT
/* libFuzzer target: the control socket's request parser, with a round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req, again;
	char err[256], line[CTL_REQUEST_MAX + 16];

	if (ctl_parse_request((const char *)data, size, &req, err, sizeof(err)) != 0)
		return 0;
	/* Accepted: printable path, absolute, and what we print parses back the same. */
	if (req.command == CTL_POLICY_LOAD && req.path[0] != '/')
		abort();
	ctl_format_request(&req, line, sizeof(line));
	if (ctl_parse_request(line, strlen(line), &again, err, sizeof(err)) != 0 ||
	    again.command != req.command || strcmp(again.path, req.path) != 0)
		abort();
	return 0;
}
