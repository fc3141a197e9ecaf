/* SPDX-License-Identifier: MIT */
/* Packet batches: the unit that crosses the frontend boundary and the tunnel. */
#ifndef TUNLAB_PKT_H
#define TUNLAB_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"

/*
 * Offload metadata of a packet, modelled on struct virtio_net_hdr so that a
 * TUN device opened with IFF_VNET_HDR can hand it over and take it back
 * without translation. A packet with gso_type PKT_GSO_NONE and no
 * PKT_F_NEEDS_CSUM flag is a plain IP datagram with valid checksums, which
 * every frontend can inject.
 */
enum pkt_gso_type {
	PKT_GSO_NONE  = 0,
	PKT_GSO_TCPV4 = 1,
	PKT_GSO_UDP   = 3,
	PKT_GSO_TCPV6 = 4,
};

enum pkt_flags {
	PKT_F_NEEDS_CSUM = 1, /* L4 checksum is partial: csum_start/csum_offset valid */
};

struct pkt_offload {
	uint8_t  flags;       /* enum pkt_flags */
	uint8_t  gso_type;    /* enum pkt_gso_type */
	uint16_t hdr_len;     /* bytes of L3+L4 headers, as virtio_net_hdr */
	uint16_t gso_size;    /* payload bytes per segment */
	uint16_t csum_start;  /* from the start of the IP header */
	uint16_t csum_offset; /* from csum_start */
};

struct pkt {
	uint8_t *data; /* IP header first; never owned by the batch user */
	uint32_t len;
	struct pkt_offload off;
};

enum { PKT_BATCH_MAX = 64 };

/*
 * A batch points into memory that someone else owns (a frontend's read ring,
 * a session's receive buffer). Whoever fills it says how long it stays valid:
 * until the next call on the same object.
 */
struct pkt_batch {
	unsigned count;
	struct pkt pkts[PKT_BATCH_MAX];
};

static inline bool pkt_is_plain(const struct pkt *p)
{
	return p->off.gso_type == PKT_GSO_NONE && !(p->off.flags & PKT_F_NEEDS_CSUM);
}

/*
 * Reads the inner source and destination of an IPv4 or IPv6 packet.
 * Returns 0, or -EINVAL when the buffer is not a well-formed IP header
 * (too short, wrong version, header length or total length beyond len).
 */
int pkt_addrs(const uint8_t *data, size_t len, struct ip_addr *src, struct ip_addr *dst);

/* One short human line for --trace: "10.8.0.2 > 10.9.0.1 icmp len 84". */
void pkt_describe(const uint8_t *data, size_t len, char *out, size_t out_len);

/*
 * The Internet checksum (RFC 1071), the one implementation every part
 * uses. Sums are in host byte order (the one's complement sum does not
 * care, as long as the result is stored in host order too: memcpy it,
 * never htons). pkt_csum_add adds data to sum (0 to start; every piece
 * but the last of even length), pkt_csum_fold folds it to 16 bits.
 */
uint64_t pkt_csum_add(uint64_t sum, const uint8_t *data, size_t len);
uint16_t pkt_csum_fold(uint64_t sum);
/*
 * The checksum of head (a pseudo-header, an even length; NULL with 0)
 * followed by data, ready to store as it is: 0 over bytes that carry
 * their right checksum.
 */
uint16_t pkt_inet_csum(const uint8_t *head, size_t head_len, const uint8_t *data, size_t len);

#endif
