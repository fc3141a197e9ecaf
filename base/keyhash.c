// SPDX-License-Identifier: MIT
/* Keyed hashing (SipHash-2-4 from OpenSSL) for tables whose keys a peer chooses. */

/*
 * EVP_MAC "SIPHASH" with an 8-byte output. The context is fetched and
 * keyed once; each hash re-initialises it with the stored key, which
 * costs about what the hash does (some 45 ns for 12 bytes on a 2020 x86
 * core) and allocates nothing. EVP_MAC_CTX_dup per hash costs half again
 * and a malloc, EVP_Q_mac six times as much (fetch per call).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "keyhash.h"

enum { KEYHASH_OUT_LEN = 8 };

struct keyhash {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
	uint8_t key[KEYHASH_KEY_LEN];
};

/* false if OpenSSL failed: after keyhash_new_key's self-test it cannot. */
static bool keyhash_try(struct keyhash *h, const void *data, size_t len, uint64_t *v)
{
	uint8_t out[KEYHASH_OUT_LEN];
	size_t out_len = 0;

	/* The output size set at keyhash_new stays; only the state restarts. */
	if (!EVP_MAC_init(h->ctx, h->key, KEYHASH_KEY_LEN, NULL) ||
	    !EVP_MAC_update(h->ctx, data, len) ||
	    !EVP_MAC_final(h->ctx, out, &out_len, sizeof(out)) || out_len != sizeof(out))
		return false;
	*v = 0;
	for (int i = KEYHASH_OUT_LEN - 1; i >= 0; i--)
		*v = *v << 8 | out[i];
	return true;
}

struct keyhash *keyhash_new_key(const uint8_t key[KEYHASH_KEY_LEN])
{
	uint64_t probe;
	size_t out_len = KEYHASH_OUT_LEN;
	OSSL_PARAM params[] = {
		OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, &out_len),
		OSSL_PARAM_END,
	};
	struct keyhash *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	memcpy(h->key, key, KEYHASH_KEY_LEN);
	h->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	if (!h->mac)
		goto err_free;
	h->ctx = EVP_MAC_CTX_new(h->mac);
	if (!h->ctx)
		goto err_mac;
	/* Self-test: one whole hash, the path keyhash_bytes takes each time. */
	if (!EVP_MAC_init(h->ctx, h->key, KEYHASH_KEY_LEN, params) || !keyhash_try(h, key, 1, &probe))
		goto err_ctx;
	return h;

err_ctx:
	EVP_MAC_CTX_free(h->ctx);
err_mac:
	EVP_MAC_free(h->mac);
err_free:
	OPENSSL_cleanse(h->key, sizeof(h->key));
	free(h);
	errno = ENOSYS; /* this OpenSSL has no SipHash */
	return NULL;
}

struct keyhash *keyhash_new(void)
{
	uint8_t key[KEYHASH_KEY_LEN];
	struct keyhash *h;

	if (RAND_bytes(key, sizeof(key)) != 1) {
		errno = EIO;
		return NULL;
	}
	h = keyhash_new_key(key);
	OPENSSL_cleanse(key, sizeof(key));
	return h;
}

void keyhash_free(struct keyhash *h)
{
	if (!h)
		return;
	EVP_MAC_CTX_free(h->ctx);
	EVP_MAC_free(h->mac);
	OPENSSL_cleanse(h->key, sizeof(h->key));
	free(h);
}

/*
 * Failing open (returning a constant) would put every id in one bucket:
 * the very flood the key is there to stop. The self-test at
 * keyhash_new_key ran this path; a failure now is a broken library or
 * memory, where stopping is the only safe answer.
 */
uint64_t keyhash_bytes(struct keyhash *h, const void *data, size_t len)
{
	uint64_t v;

	if (!keyhash_try(h, data, len, &v))
		abort();
	return v;
}

uint64_t keyhash_u32(struct keyhash *h, uint32_t v)
{
	return keyhash_bytes(h, &v, sizeof(v));
}

uint64_t keyhash_u64(struct keyhash *h, uint64_t v)
{
	return keyhash_bytes(h, &v, sizeof(v));
}
