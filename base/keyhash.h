/* SPDX-License-Identifier: MIT */
/* Keyed hashing (SipHash-2-4 from OpenSSL) for tables whose keys a peer chooses. */
#ifndef TUNLAB_KEYHASH_H
#define TUNLAB_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * A hash table indexed by an unkeyed function of ids, ports or addresses
 * that a peer picks is a CPU lever for that peer: it computes keys that
 * share one bucket and every lookup walks the whole chain. With a secret
 * random key the peer cannot tell which keys collide.
 *
 * One struct keyhash holds one key and one OpenSSL MAC context; it is not
 * thread-safe (one per event loop or per table). No allocation per hash.
 */
enum { KEYHASH_KEY_LEN = 16 };

struct keyhash;

/* A hasher with a fresh key from RAND_bytes; NULL with errno set. */
struct keyhash *keyhash_new(void);
/* A hasher with a given key (tests, known answers); NULL with errno set. */
struct keyhash *keyhash_new_key(const uint8_t key[KEYHASH_KEY_LEN]);
void keyhash_free(struct keyhash *h);

/*
 * SipHash-2-4 of len bytes, 64-bit output read little endian as the
 * reference implementation does. keyhash_new ran one whole hash as a
 * self-test; should OpenSSL fail later anyway, this aborts rather than
 * fail open (a constant would put every key in one bucket).
 */
uint64_t keyhash_bytes(struct keyhash *h, const void *data, size_t len);
/* The same of the value's native-order bytes: for table indexes, not for the wire. */
uint64_t keyhash_u32(struct keyhash *h, uint32_t v);
uint64_t keyhash_u64(struct keyhash *h, uint64_t v);

#endif
