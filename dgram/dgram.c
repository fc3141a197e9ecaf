// SPDX-License-Identifier: MIT
/* The datagram data channel's crypto: header, keys per direction, seal, open, replay, re-key. */

/*
 * Every EVP_CIPHER_CTX is created and keyed when its epoch begins; per
 * datagram only the IV is set (EVP_CipherInit_ex with NULL cipher and
 * key keeps the key schedule), so sealing and opening allocate nothing.
 *
 * Receiving holds three keys: the previous epoch's (late datagrams), the
 * current one and the next, derived ahead so that the switch costs no
 * more than one AEAD open. The phase bit says current or not; for "not",
 * a counter below the first one authenticated in the current epoch means
 * previous, anything else next. Counters run on across epochs, so the
 * one replay window covers every key.
 *
 * The replay window is RFC 6479's: a ring of 64-bit words indexed by
 * counter / 64, with the words ahead of the highest counter cleared as
 * it advances. It is checked before the AEAD (cheap refusals) and
 * updated only after it (forgeries change nothing).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "dgram.h"

enum {
	KEY_LEN = 16,
	NONCE_LEN = 12,
	REPLAY_WORDS = DGRAM_REPLAY_WINDOW / 64 + 1,
};

struct dgram_tx {
	EVP_CIPHER_CTX *ctx, *spare;
	uint8_t secret[DGRAM_SECRET_LEN]; /* this epoch's */
	uint32_t epoch;
	uint64_t counter;                 /* the next to use */
	uint64_t epoch_packets, epoch_start_ms;
};

struct dgram_rx {
	EVP_CIPHER_CTX *prev, *cur, *next;
	uint8_t next_secret[DGRAM_SECRET_LEN]; /* epoch + 1's */
	uint32_t epoch;
	bool have_prev;
	uint64_t cur_start;               /* first counter authenticated in this epoch */
	uint64_t top;                     /* highest counter authenticated, + 1 (0: none) */
	uint64_t bitmap[REPLAY_WORDS];
};

struct dgram_chan {
	struct dgram_tx tx;
	struct dgram_rx rx;
	uint64_t rekey_packets, rekey_ms;
	uint64_t rekeys;
};

/* ---- the header ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int dgram_parse_header(const uint8_t *buf, size_t len, struct dgram_header *out)
{
	if (len < DGRAM_OVERHEAD || buf[0] != DGRAM_VERSION || (buf[1] & ~DGRAM_F_ALL) ||
	    buf[2] || buf[3])
		return -DGRAM_DROP_MALFORMED;
	/* A probe and its reply at once means nothing: refuse, do not guess. */
	if ((buf[1] & DGRAM_F_PROBE) && (buf[1] & DGRAM_F_PROBE_REPLY))
		return -DGRAM_DROP_MALFORMED;
	out->flags = buf[1];
	out->session_id = get_be32(buf + 4);
	out->counter = (uint64_t)get_be32(buf + 8) << 32 | get_be32(buf + 12);
	return 0;
}

static void put_header(uint8_t *out, uint8_t flags, uint32_t session_id, uint64_t counter)
{
	out[0] = DGRAM_VERSION;
	out[1] = flags;
	out[2] = out[3] = 0;
	put_be32(out + 4, session_id);
	put_be32(out + 8, (uint32_t)(counter >> 32));
	put_be32(out + 12, (uint32_t)counter);
}

static void nonce_of(uint64_t counter, uint8_t nonce[NONCE_LEN])
{
	memset(nonce, 0, 4);
	put_be32(nonce + 4, (uint32_t)(counter >> 32));
	put_be32(nonce + 8, (uint32_t)counter);
}

/* ---- keys ---- */

static int hkdf_expand(const uint8_t *secret, const char *info, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ret = -1;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, DGRAM_SECRET_LEN),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};

	if (kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1)
		ret = 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ret;
}

/* Keys ctx with the epoch key of secret. */
static int key_ctx(EVP_CIPHER_CTX *ctx, const uint8_t *secret, bool enc)
{
	uint8_t key[KEY_LEN];
	int ret = -1;

	if (hkdf_expand(secret, "tunlab dgram key", key, sizeof(key)) == 0 &&
	    EVP_CipherInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, NULL, enc) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1)
		ret = 0;
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

static int next_secret(uint8_t *secret)
{
	uint8_t next[DGRAM_SECRET_LEN];
	int ret = hkdf_expand(secret, "tunlab dgram ku", next, sizeof(next));

	memcpy(secret, next, sizeof(next));
	OPENSSL_cleanse(next, sizeof(next));
	return ret;
}

static int chan_keys(struct dgram_chan *c, const uint8_t *secret, bool server)
{
	uint8_t rx_secret[DGRAM_SECRET_LEN];
	int ret = -1;

	if (hkdf_expand(secret, server ? "tunlab dgram s2c" : "tunlab dgram c2s", c->tx.secret,
			DGRAM_SECRET_LEN) < 0 ||
	    hkdf_expand(secret, server ? "tunlab dgram c2s" : "tunlab dgram s2c", rx_secret,
			DGRAM_SECRET_LEN) < 0)
		goto out;
	if (key_ctx(c->tx.ctx, c->tx.secret, true) < 0 || key_ctx(c->rx.cur, rx_secret, false) < 0)
		goto out;
	memcpy(c->rx.next_secret, rx_secret, DGRAM_SECRET_LEN);
	if (next_secret(c->rx.next_secret) < 0 || key_ctx(c->rx.next, c->rx.next_secret, false) < 0)
		goto out;
	ret = 0;
out:
	OPENSSL_cleanse(rx_secret, sizeof(rx_secret));
	return ret;
}

struct dgram_chan *dgram_chan_new(const uint8_t secret[DGRAM_SECRET_LEN], bool server,
				  uint64_t rekey_packets, uint64_t rekey_ms, uint64_t now_ms)
{
	struct dgram_chan *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rekey_packets = rekey_packets ? rekey_packets : DGRAM_REKEY_PACKETS_DEFAULT;
	c->rekey_ms = rekey_ms ? rekey_ms : DGRAM_REKEY_MS_DEFAULT;
	c->tx.epoch_start_ms = now_ms;
	c->tx.ctx = EVP_CIPHER_CTX_new();
	c->tx.spare = EVP_CIPHER_CTX_new();
	c->rx.prev = EVP_CIPHER_CTX_new();
	c->rx.cur = EVP_CIPHER_CTX_new();
	c->rx.next = EVP_CIPHER_CTX_new();
	if (!c->tx.ctx || !c->tx.spare || !c->rx.prev || !c->rx.cur || !c->rx.next ||
	    chan_keys(c, secret, server) < 0) {
		dgram_chan_free(c);
		return NULL;
	}
	return c;
}

void dgram_chan_free(struct dgram_chan *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->tx.ctx);
	EVP_CIPHER_CTX_free(c->tx.spare);
	EVP_CIPHER_CTX_free(c->rx.prev);
	EVP_CIPHER_CTX_free(c->rx.cur);
	EVP_CIPHER_CTX_free(c->rx.next);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

uint64_t dgram_rekeys(const struct dgram_chan *c)
{
	return c->rekeys;
}

/* ---- sending ---- */

/* The next epoch's key into the spare context, then swapped in: the old key is gone. */
static int tx_rekey(struct dgram_chan *c, uint64_t now_ms)
{
	EVP_CIPHER_CTX *old = c->tx.ctx;
	uint8_t secret[DGRAM_SECRET_LEN];
	int ret = -1;

	if (c->tx.epoch == UINT32_MAX)
		return -1;
	memcpy(secret, c->tx.secret, sizeof(secret));
	if (next_secret(secret) < 0 || key_ctx(c->tx.spare, secret, true) < 0)
		goto out;
	memcpy(c->tx.secret, secret, sizeof(secret));
	c->tx.ctx = c->tx.spare;
	c->tx.spare = old;
	c->tx.epoch++;
	c->tx.epoch_packets = 0;
	c->tx.epoch_start_ms = now_ms;
	c->rekeys++;
	ret = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	return ret;
}

static bool tx_key_spent(const struct dgram_chan *c, uint64_t now_ms)
{
	return c->tx.epoch_packets >= c->rekey_packets || now_ms - c->tx.epoch_start_ms >= c->rekey_ms;
}

long dgram_seal(struct dgram_chan *c, uint32_t session_id, uint8_t flags, const uint8_t *in,
		size_t len, uint8_t *out, size_t cap, uint64_t now_ms)
{
	uint8_t nonce[NONCE_LEN], header[DGRAM_HEADER_LEN];
	int n = 0, fin = 0;

	if (cap < DGRAM_OVERHEAD || len > cap - DGRAM_OVERHEAD || len > INT32_MAX)
		return -ENOSPC;
	if (c->tx.counter >= DGRAM_COUNTER_LIMIT)
		return -EOVERFLOW;
	/* A failed re-key keeps the old key only while it is within its limit. */
	if (tx_key_spent(c, now_ms) && tx_rekey(c, now_ms) < 0 &&
	    c->tx.epoch_packets >= c->rekey_packets)
		return -EOVERFLOW;
	flags = (uint8_t)((flags & (DGRAM_F_PROBE | DGRAM_F_PROBE_REPLY)) | (c->tx.epoch & 1));
	/* The header goes last: in may lie right after it (in place). */
	put_header(header, flags, session_id, c->tx.counter);
	nonce_of(c->tx.counter, nonce);
	if (EVP_EncryptInit_ex(c->tx.ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(c->tx.ctx, NULL, &n, header, DGRAM_HEADER_LEN) != 1 ||
	    (len && EVP_EncryptUpdate(c->tx.ctx, out + DGRAM_HEADER_LEN, &n, in, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(c->tx.ctx, out + DGRAM_HEADER_LEN + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c->tx.ctx, EVP_CTRL_GCM_GET_TAG, DGRAM_TAG_LEN,
				out + DGRAM_HEADER_LEN + len) != 1)
		return -EIO;
	memcpy(out, header, DGRAM_HEADER_LEN);
	c->tx.counter++;
	c->tx.epoch_packets++;
	return (long)(len + DGRAM_OVERHEAD);
}

/* ---- receiving ---- */

static bool replay_seen(const struct dgram_rx *rx, uint64_t counter)
{
	if (counter >= rx->top)
		return false;
	if (rx->top - counter > DGRAM_REPLAY_WINDOW)
		return true;
	return rx->bitmap[(counter / 64) % REPLAY_WORDS] >> (counter % 64) & 1;
}

static void replay_mark(struct dgram_rx *rx, uint64_t counter)
{
	if (counter >= rx->top) {
		uint64_t from = rx->top ? (rx->top - 1) / 64 + 1 : 0, to = counter / 64;

		/* Words passed over are cleared; more than a ring's worth clears all. */
		if (!rx->top || (to >= from && to - from >= REPLAY_WORDS))
			memset(rx->bitmap, 0, sizeof(rx->bitmap));
		else
			for (uint64_t w = from; w <= to; w++)
				rx->bitmap[w % REPLAY_WORDS] = 0;
		rx->top = counter + 1;
	}
	rx->bitmap[(counter / 64) % REPLAY_WORDS] |= 1ull << (counter % 64);
}

static bool aead_open(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len, uint64_t counter)
{
	size_t clen = len - DGRAM_OVERHEAD;
	uint8_t nonce[NONCE_LEN];
	int n = 0, fin = 0;

	nonce_of(counter, nonce);
	return EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
	       EVP_DecryptUpdate(ctx, NULL, &n, buf, DGRAM_HEADER_LEN) == 1 &&
	       (!clen || EVP_DecryptUpdate(ctx, buf + DGRAM_HEADER_LEN, &n, buf + DGRAM_HEADER_LEN,
					   (int)clen) == 1) &&
	       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, DGRAM_TAG_LEN,
				   buf + DGRAM_HEADER_LEN + clen) == 1 &&
	       EVP_DecryptFinal_ex(ctx, buf + DGRAM_HEADER_LEN + clen, &fin) == 1;
}

/* The next epoch was authentic: it becomes current, the one after is derived. */
static void rx_advance(struct dgram_chan *c, uint64_t counter)
{
	struct dgram_rx *rx = &c->rx;
	EVP_CIPHER_CTX *old = rx->prev;

	rx->prev = rx->cur;
	rx->cur = rx->next;
	rx->next = old;
	rx->have_prev = true;
	rx->epoch++;
	rx->cur_start = counter;
	c->rekeys++;
	/*
	 * Should this fail (no memory in OpenSSL), next holds a stale key and
	 * the following epoch's datagrams fail to open: the path looks dead and
	 * the client falls back to TLS. Nothing is accepted wrongly.
	 */
	if (next_secret(rx->next_secret) == 0)
		(void)key_ctx(rx->next, rx->next_secret, false);
}

long dgram_open(struct dgram_chan *c, const struct dgram_header *h, uint8_t *buf, size_t len)
{
	struct dgram_rx *rx = &c->rx;
	EVP_CIPHER_CTX *ctx = rx->cur;
	bool next = false;

	if (len < DGRAM_OVERHEAD || len - DGRAM_OVERHEAD > INT32_MAX)
		return -DGRAM_DROP_MALFORMED;
	if (h->counter >= DGRAM_COUNTER_LIMIT || replay_seen(rx, h->counter))
		return -DGRAM_DROP_REPLAY;
	if ((h->flags & DGRAM_F_PHASE) != (rx->epoch & 1)) {
		if (rx->have_prev && h->counter < rx->cur_start) {
			ctx = rx->prev;
		} else {
			if (rx->epoch == UINT32_MAX)
				return -DGRAM_DROP_AUTH;
			ctx = rx->next;
			next = true;
		}
	}
	if (!aead_open(ctx, buf, len, h->counter))
		return -DGRAM_DROP_AUTH;
	replay_mark(rx, h->counter);
	if (next)
		rx_advance(c, h->counter);
	return (long)(len - DGRAM_OVERHEAD);
}
