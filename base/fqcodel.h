/* SPDX-License-Identifier: MIT */
/* A flow-fair packet queue with CoDel (fq_codel's design) in front of a sender it paces. */
#ifndef TUNLAB_FQCODEL_H
#define TUNLAB_FQCODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "codel.h"
#include "keyhash.h"
#include "pkt.h"

/*
 * Where a standing queue forms, every flow waits behind it unless the
 * queue is split per flow and kept short. This is RFC 8290 in userspace:
 * packets go to one of `flows` queues by a keyed hash of their 5-tuple
 * (a peer cannot aim many flows at one queue), queues take turns by
 * deficit round robin with a priority turn for flows that just became
 * active (a ping, an ACK, a DNS answer), and each queue runs CoDel on
 * the time its head packet waited: past `target` for a whole `interval`,
 * it drops (or CE-marks an ECN-capable packet) and then again at
 * interval/sqrt(count) until the wait falls below target. Above the
 * global packet or byte limit, the fattest queue loses packets from its
 * head.
 *
 * Packets are copied into one ring allocated at fqcodel_new; nothing is
 * allocated per packet. The queue knows nothing of TLS or sessions: its
 * owner enqueues what it cannot send now and dequeues as the sender
 * drains. Not thread-safe.
 */
enum {
	FQCODEL_PACKET_MAX = 65535, /* IP's total length caps GSO packets too */
	FQCODEL_FLOWS_DEFAULT = 1024,
	FQCODEL_QUANTUM_DEFAULT = 1514, /* one Ethernet frame per turn, as fq_codel */
};

struct fqcodel_config {
	uint32_t flows;          /* 0: FQCODEL_FLOWS_DEFAULT */
	uint32_t limit_packets;  /* global caps; both > 0 */
	uint32_t limit_bytes;    /* packet bytes; at least FQCODEL_PACKET_MAX */
	uint32_t quantum;        /* 0: FQCODEL_QUANTUM_DEFAULT */
	uint64_t target_ns;      /* 0: 5 ms */
	uint64_t interval_ns;    /* 0: 100 ms */
	bool ecn;                /* CE-mark ECT packets instead of dropping them */
	/* Monotonic clock in ns; NULL: CLOCK_MONOTONIC. Tests inject a synthetic one. */
	uint64_t (*now_ns)(void *ctx);
	void *clock_ctx;
	/* The flow hash's key; NULL: a fresh random one, owned by the queue. */
	struct keyhash *hash;
};

struct fqcodel_stats {
	uint64_t enqueued, dequeued;
	uint64_t drops_codel;       /* CoDel's drops of non-ECT packets */
	uint64_t marks_ce;          /* CoDel's CE marks instead of drops */
	uint64_t drops_overlimit;   /* global limit: from the fattest queue's head */
	uint64_t drops_too_big;     /* longer than FQCODEL_PACKET_MAX */
	uint64_t new_flows;         /* queues that became active (priority turns) */
	uint64_t backlog_packets, backlog_bytes, flows_active; /* now */
	uint64_t sojourn_last_us, sojourn_max_us;              /* of dequeued packets */
	uint64_t sojourn_p50_us, sojourn_p99_us; /* since start, upper bound of a log2 bucket */
};

struct fqcodel;

/* NULL with errno set (EINVAL for a bad config, ENOMEM). */
struct fqcodel *fqcodel_new(const struct fqcodel_config *cfg);
void fqcodel_free(struct fqcodel *q);

/*
 * Copies p in. Returns 0, or -EMSGSIZE for a packet too long (counted,
 * not queued). A packet over the limits is queued and others dropped.
 */
int fqcodel_enqueue(struct fqcodel *q, const struct pkt *p);
/*
 * The next packet to send, after CoDel's drops. out->data points into
 * the queue, valid until the next fqcodel_enqueue(). false: empty.
 */
bool fqcodel_dequeue(struct fqcodel *q, struct pkt *out);
bool fqcodel_empty(const struct fqcodel *q);
/* Drops everything queued (counted as overlimit). */
void fqcodel_purge(struct fqcodel *q);
void fqcodel_stats(const struct fqcodel *q, struct fqcodel_stats *out);
/* The queue p hashes to: tests pick flows that do not share one. */
uint32_t fqcodel_flow_of(struct fqcodel *q, const struct pkt *p);

/*
 * Sets an IPv4 or IPv6 packet's ECN field to CE if it is ECT(0) or
 * ECT(1), fixing the IPv4 header checksum. true if the packet now says
 * CE (it did already, or was marked); false for Not-ECT or not IP.
 */
bool fqcodel_mark_ce(uint8_t *data, uint32_t len);

#endif
