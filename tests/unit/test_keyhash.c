// SPDX-License-Identifier: MIT
/* Unit tests: the keyed hash gives SipHash-2-4's known answers and depends on its key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../base/keyhash.h"

static const uint8_t ref_key[KEYHASH_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

/* The SipHash paper's vectors (appendix A): key 00..0f, message 00, 01, ... of each length. */
static void test_known_answers(void **state)
{
	(void)state;
	struct keyhash *h = keyhash_new_key(ref_key);
	uint8_t msg[15];

	assert_non_null(h);
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	assert_true(keyhash_bytes(h, msg, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(keyhash_bytes(h, msg, 15) == 0xa129ca6149be45e5ull);
	/* Again: each call starts afresh from the key. */
	assert_true(keyhash_bytes(h, msg, 15) == 0xa129ca6149be45e5ull);
	keyhash_free(h);
}

static void test_convenience_is_bytes(void **state)
{
	(void)state;
	struct keyhash *h = keyhash_new_key(ref_key);
	uint32_t v32 = 0xdeadbeef;
	uint64_t v64 = 0x0123456789abcdefull;

	assert_non_null(h);
	assert_true(keyhash_u32(h, v32) == keyhash_bytes(h, &v32, sizeof(v32)));
	assert_true(keyhash_u64(h, v64) == keyhash_bytes(h, &v64, sizeof(v64)));
	assert_true(keyhash_u32(h, 1) != keyhash_u32(h, 2));
	keyhash_free(h);
}

/* Two random keys agree on a value with chance 2^-64: never in practice. */
static void test_random_keys_differ(void **state)
{
	(void)state;
	struct keyhash *a = keyhash_new(), *b = keyhash_new(), *ref = keyhash_new_key(ref_key);

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(ref);
	assert_true(keyhash_u64(a, 42) != keyhash_u64(b, 42));
	assert_true(keyhash_u64(a, 42) != keyhash_u64(ref, 42));
	keyhash_free(a);
	keyhash_free(b);
	keyhash_free(ref);
	keyhash_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_convenience_is_bytes),
		cmocka_unit_test(test_random_keys_differ),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
