// SPDX-License-Identifier: MIT
/* libFuzzer target: the datagram header parser and the open path, as the UDP socket feeds them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../dgram/dgram.h"

/*
 * Besides memory safety: what parses obeys the header's rules, random
 * bytes never open (nobody forges a tag by chance), and the input sealed
 * as a plaintext opens back to itself once, then counts as a replay.
 */
static struct dgram_chan *cli, *srv;

static void check_header(const uint8_t *data, size_t size, const struct dgram_header *h)
{
	if (size < DGRAM_OVERHEAD || data[0] != DGRAM_VERSION || data[2] || data[3] ||
	    (h->flags & ~DGRAM_F_ALL) || h->flags != data[1])
		abort();
}

static void check_round_trip(const uint8_t *data, size_t size)
{
	static uint8_t dg[70000];
	struct dgram_header h;
	long n;

	n = dgram_seal(cli, 7, 0, data, size, dg, sizeof(dg), 0);
	if (n != (long)(size + DGRAM_OVERHEAD))
		abort();
	if (dgram_parse_header(dg, (size_t)n, &h) < 0 || h.session_id != 7)
		abort();
	if (dgram_open(srv, &h, dg, (size_t)n) != (long)size || memcmp(dg + DGRAM_HEADER_LEN, data, size))
		abort();
	if (dgram_open(srv, &h, dg, (size_t)n) != -DGRAM_DROP_REPLAY)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t secret[DGRAM_SECRET_LEN] = "fuzz fuzz fuzz fuzz fuzz fuzz!!";
	static uint8_t buf[70000];
	struct dgram_header h;

	if (!cli) {
		cli = dgram_chan_new(secret, false, 16, 0, 0);
		srv = dgram_chan_new(secret, true, 16, 0, 0);
		if (!cli || !srv)
			abort();
	}
	if (size > sizeof(buf) - DGRAM_OVERHEAD)
		return 0;
	memcpy(buf, data, size);
	if (dgram_parse_header(buf, size, &h) == 0) {
		check_header(data, size, &h);
		if (dgram_open(srv, &h, buf, size) >= 0)
			abort();
	}
	check_round_trip(data, size);
	return 0;
}
