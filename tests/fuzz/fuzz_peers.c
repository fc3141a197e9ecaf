// SPDX-License-Identifier: MIT
/* libFuzzer target: the server's peers file parser on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tunnel/tunnel.h"

/* A parsed table keeps its promises: names fit, are found, and no two peers overlap. */
static void check_table(const struct peer_table *t)
{
	for (size_t i = 0; i < t->count; i++) {
		const struct peer *p = &t->peers[i];

		if (strnlen(p->name, sizeof(p->name)) > PEER_NAME_MAX || !p->name[0])
			abort();
		if (peers_find(t, p->name) != p || p->prefix_count == 0)
			abort();
		for (size_t j = i + 1; j < t->count; j++)
			for (size_t a = 0; a < p->prefix_count; a++)
				for (size_t b = 0; b < t->peers[j].prefix_count; b++)
					if (prefix_overlaps(&p->prefixes[a], &t->peers[j].prefixes[b]))
						abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct peer_table t;
	char err[256];

	err[0] = '\0';
	if (peers_parse((const char *)data, size, &t, err, sizeof(err)) == 0) {
		check_table(&t);
		peers_free(&t);
	} else if (t.count != 0 || t.peers != NULL || err[0] < '1' || err[0] > '9') {
		/* On error: no table, and err starts with the line number. */
		abort();
	}
	return 0;
}
