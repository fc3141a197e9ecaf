/* SPDX-License-Identifier: MIT */
/* The datagram data channel's crypto: header, keys per direction, seal, open, replay, re-key. */
#ifndef TUNLAB_DGRAM_H
#define TUNLAB_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One UDP datagram of the data channel (all fields big endian):
 *
 *   0       1       2               4                8               16
 *   +-------+-------+---------------+----------------+---------------+
 *   | ver=1 | flags | reserved = 0  | session id u32 | counter u64   |
 *   +-------+-------+---------------+----------------+---------------+
 *   | AES-128-GCM ciphertext of one IP packet (or nothing) | tag (16) |
 *   +------------------------------------------------------+----------+
 *
 * The 16 header bytes are the AEAD's associated data; the nonce is four
 * zero bytes and the counter. flags: DGRAM_F_PHASE is the sender's key
 * phase (its key epoch's low bit), DGRAM_F_PROBE asks the receiver to
 * answer with a DGRAM_F_PROBE_REPLY; an empty plaintext is a probe,
 * reply or keepalive. Anything else set makes the datagram malformed.
 *
 * Keys: the TLS 1.3 exporter (RFC 8446 7.5) of the control connection
 * with DGRAM_EXPORTER_LABEL and the session id (4 bytes, big endian) as
 * context gives DGRAM_SECRET_LEN bytes; HKDF-SHA256-Expand of it with
 * "tunlab dgram c2s" / "tunlab dgram s2c" gives each direction's first
 * secret; each secret gives its epoch's key (expand "tunlab dgram key",
 * 16 bytes) and the next epoch's secret (expand "tunlab dgram ku").
 *
 * Nonces are never reused: a key belongs to one TLS session (the exporter
 * secret is unique per handshake), one direction and one epoch; the
 * counter goes up by one per datagram for the channel's whole life, across
 * epochs, and sealing stops at DGRAM_COUNTER_LIMIT (and at the last epoch)
 * instead of wrapping. Nothing is kept across restarts: a new process
 * needs a new handshake, hence new keys.
 */
#define DGRAM_EXPORTER_LABEL "EXPORTER-tunlab-dgram-v1"

enum {
	DGRAM_VERSION = 1,
	DGRAM_HEADER_LEN = 16,
	DGRAM_TAG_LEN = 16,
	DGRAM_OVERHEAD = DGRAM_HEADER_LEN + DGRAM_TAG_LEN,
	DGRAM_SECRET_LEN = 32,
	DGRAM_F_PHASE = 1u << 0,
	DGRAM_F_PROBE = 1u << 1,
	DGRAM_F_PROBE_REPLY = 1u << 2,
	DGRAM_F_ALL = DGRAM_F_PHASE | DGRAM_F_PROBE | DGRAM_F_PROBE_REPLY,
	/* Counters this far behind the highest seen are refused; 64 words of bitmap. */
	DGRAM_REPLAY_WINDOW = 4032,
};

/*
 * Re-key after this many datagrams of one key: QUIC's confidentiality
 * limit for AES-GCM (RFC 9001 6.6), or after DGRAM_REKEY_MS_DEFAULT,
 * WireGuard's two minutes, whichever comes first.
 */
#define DGRAM_REKEY_PACKETS_DEFAULT (1ull << 23)
#define DGRAM_REKEY_MS_DEFAULT 120000ull
/* 2^62 datagrams at 10^8 per second is 1400 years: a stop, never a wrap. */
#define DGRAM_COUNTER_LIMIT (1ull << 62)

/* Why dgram_open refused a datagram. */
enum dgram_drop {
	DGRAM_DROP_MALFORMED = 1, /* too short, unknown version or flags */
	DGRAM_DROP_AUTH,          /* the AEAD tag does not match */
	DGRAM_DROP_REPLAY,        /* counter seen already or behind the window */
};

struct dgram_header {
	uint8_t flags;
	uint32_t session_id;
	uint64_t counter;
};

/*
 * The one parser of received bytes: 0, or -DGRAM_DROP_MALFORMED when buf
 * is shorter than DGRAM_OVERHEAD or the version, reserved bytes or flags
 * are not what dgram_seal writes.
 */
int dgram_parse_header(const uint8_t *buf, size_t len, struct dgram_header *out);

struct dgram_chan;

/*
 * A channel for one session: server says which direction is ours.
 * secret comes from the exporter; rekey_packets/rekey_ms 0: the defaults.
 * NULL on failure (OpenSSL or memory). Allocates once; nothing after.
 */
struct dgram_chan *dgram_chan_new(const uint8_t secret[DGRAM_SECRET_LEN], bool server,
				  uint64_t rekey_packets, uint64_t rekey_ms, uint64_t now_ms);
void dgram_chan_free(struct dgram_chan *c);

/*
 * Seals len bytes at in into out (cap bytes; in may be out +
 * DGRAM_HEADER_LEN) with flags (DGRAM_F_PROBE, DGRAM_F_PROBE_REPLY or 0),
 * moving to the next key first when the current one reached its limit.
 * Returns the datagram's size, -ENOSPC when cap is too small, -EOVERFLOW
 * when the counter or epoch is spent (the caller falls back to TLS).
 */
long dgram_seal(struct dgram_chan *c, uint32_t session_id, uint8_t flags, const uint8_t *in,
		size_t len, uint8_t *out, size_t cap, uint64_t now_ms);

/*
 * Opens the datagram buf (len bytes, h from dgram_parse_header) in place:
 * the plaintext is at buf + DGRAM_HEADER_LEN. Returns its length, or
 * -enum dgram_drop. One AEAD open at most; a refused datagram changes
 * nothing. A datagram of the next epoch, once authentic, moves the
 * receiver to it; the previous key stays valid for late datagrams until
 * the one after.
 */
long dgram_open(struct dgram_chan *c, const struct dgram_header *h, uint8_t *buf, size_t len);

/* Epochs moved to, sending and receiving (each counts once per switch). */
uint64_t dgram_rekeys(const struct dgram_chan *c);

#endif
