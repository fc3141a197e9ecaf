// SPDX-License-Identifier: MIT
/* libFuzzer target: the --policy file parser on arbitrary text, with a round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/policy.h"

/* A parsed policy keeps its promises: entries in line order, none hidden by an earlier one. */
static void check_policy(const struct policy *p)
{
	if (p->count == 0 || p->count > POLICY_ENTRIES_MAX)
		abort();
	for (size_t i = 0; i < p->count; i++) {
		if (i && p->entries[i].line <= p->entries[i - 1].line)
			abort();
		for (size_t j = 0; j < i; j++)
			if (policy_entry_covers(&p->entries[j], &p->entries[i]))
				abort();
	}
}

/* What policy_format prints parses back to the same entries. */
static void check_round_trip(const struct policy *p)
{
	struct policy q;
	char err[256];
	char *text = policy_format(p);

	if (!text)
		return; /* out of memory is allowed, not a finding */
	if (policy_parse(text, strlen(text), &q, err, sizeof(err)) != 0 || q.count != p->count)
		abort();
	for (size_t i = 0; i < p->count; i++)
		if (!policy_entry_equal(&p->entries[i], &q.entries[i]))
			abort();
	policy_free(&q);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy p;
	char err[256];

	err[0] = '\0';
	if (policy_parse((const char *)data, size, &p, err, sizeof(err)) == 0) {
		check_policy(&p);
		check_round_trip(&p);
		policy_free(&p);
	} else if (p.count != 0 || p.entries != NULL || err[0] < '1' || err[0] > '9') {
		/* On error: no policy, and err starts with the line number. */
		abort();
	}
	return 0;
}
