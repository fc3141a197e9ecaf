// SPDX-License-Identifier: MIT
/* hash_flood: CPU cost of the exit's stream lookups for ids a client chose to collide, against spread ids. */

/*
 * Issue 13, finding 4: a client picks stream ids that share one bucket of
 * the exit's conn table under the unkeyed mix px_conn.c once used (bits
 * 20..31 of id * 0xC2B2AE3D, the link's term XORed on top), opens as
 * many streams as it may, then sends small frames (FIN, CREDIT, DATA)
 * that each cost one lookup. This fills a proxy's table the same way,
 * with the ids chosen and with sequential ids, and prints the CPU time of
 * FRAMES lookups of each (arguments: STREAMS FRAMES), one per FIN frame as at the exit:
 *
 *   ids=chosen streams=4000 frames=100000 longest_chain=6 cpu_s=0.0068
 *   ids=spread streams=4000 frames=100000 longest_chain=6 cpu_s=0.0068
 *
 * (The unkeyed mix gave 0.74 s for chosen ids, a 4000-long chain, on the
 * 2-core VM the reference runs use.)
 *
 * No sockets, no tunnel: the table alone. A benchmark, not a test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../base/keyhash.h"
#include "../../proxy/px.h"

enum { DEFAULT_STREAMS = 4000, DEFAULT_FRAMES = 100000 };

static double cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void colliding_ids(uint32_t *ids, size_t n)
{
	size_t found = 0;

	for (uint32_t id = 1; found < n && id < UINT32_MAX; id++)
		if (((((uint64_t)id * 0xC2B2AE3Dull) >> 20) & (PX_HASH_BUCKETS - 1)) == 0)
			ids[found++] = id;
}

static int run(const char *name, const uint32_t *ids, size_t streams, size_t frames)
{
	struct proxy *px = calloc(1, sizeof(*px));
	struct px_link *l = calloc(1, sizeof(*l));
	size_t found = 0;
	double t0;

	if (!px || !l || !(px->conn_hash = keyhash_new()))
		return -1;
	for (size_t i = 0; i < streams; i++)
		if (!px_conn_new(px, l, ids[i], -1, false))
			return -1;
	t0 = cpu_seconds();
	for (size_t i = 0; i < frames; i++)
		found += px_conn_find(px, l, ids[i % streams]) != NULL;
	printf("ids=%s streams=%zu frames=%zu longest_chain=%zu cpu_s=%.4f\n", name, streams, frames,
	       px_conn_longest_chain(px), cpu_seconds() - t0);
	while (l->conns)
		px_conn_abort(l->conns);
	keyhash_free(px->conn_hash);
	free(l);
	free(px);
	return found == frames ? 0 : -1;
}

int main(int argc, char **argv)
{
	size_t streams = argc > 1 ? strtoul(argv[1], NULL, 10) : DEFAULT_STREAMS;
	size_t frames = argc > 2 ? strtoul(argv[2], NULL, 10) : DEFAULT_FRAMES;
	uint32_t *chosen, *spread;

	if (argc > 3 || streams == 0 || streams > PX_STREAMS_PER_CLIENT || frames == 0) {
		fprintf(stderr, "usage: hash_flood [STREAMS (1..%d)] [FRAMES]\n", PX_STREAMS_PER_CLIENT);
		return 2;
	}
	chosen = calloc(streams, sizeof(*chosen));
	spread = calloc(streams, sizeof(*spread));
	if (!chosen || !spread)
		return 1;
	colliding_ids(chosen, streams);
	for (size_t i = 0; i < streams; i++)
		spread[i] = (uint32_t)i + 1;
	if (run("chosen", chosen, streams, frames) < 0 || run("spread", spread, streams, frames) < 0) {
		fprintf(stderr, "hash_flood: setting up the table failed\n");
		return 1;
	}
	free(chosen);
	free(spread);
	return 0;
}
