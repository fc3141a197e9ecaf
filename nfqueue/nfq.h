/* SPDX-License-Identifier: MIT */
/* The parts of the nfqueue frontend (internal to nfqueue/): queues and rules. */
#ifndef TUNLAB_NFQ_H
#define TUNLAB_NFQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../nfkit/leftovers.h"
#include "../nfkit/loroutes.h"
#include "../nfkit/pktinject.h"
#include "../nfkit/tagrules.h"
#include "../base/frontend.h"

enum {
	/* SO_MARK of every packet we inject ("tu"): a client's chains let it pass. */
	NFQ_MARK = RAWINJECT_MARK,
	/* --queues is capped by the CLI at 16. */
	NFQ_QUEUES_MAX = 16,
};

/*
 * Chains TUNLAB-<pid>-OUT/-PRE and jump rules commented "tunlab:pid=<pid>
 * ..." (nfkit/tagrules.h); the raw-socket injection, the routes and the
 * cleanup of dead instances are shared with the pcap frontend (nfkit/).
 */

/* ---- nfq_queue.c: netlink queues, batch read, batch verdict ---- */

struct mnl_socket;
struct sockaddr_nl;

struct nfq_queues {
	unsigned count;
	uint16_t first;         /* queue numbers first .. first + count - 1 */
	unsigned next;          /* where the next read starts (fairness) */
	unsigned mtu;           /* inner MTU: gso_size of captured GSO packets */
	struct mnl_socket *socks[NFQ_QUEUES_MAX];
	uint8_t *ring;          /* PKT_BATCH_MAX receive slots, one allocation */
	struct mmsghdr *msgs;   /* PKT_BATCH_MAX, pointing into ring */
	struct iovec *iov;
	struct sockaddr_nl *from;
	uint64_t verdict_errors;
	uint64_t unsupported;   /* copied but not describable (UDP GSO, ...) */
};

struct nfq_queue_params {
	unsigned count;
	bool gso;       /* NFQA_CFG_F_GSO: whole GSO packets, partial checksums */
	bool fail_open; /* NFQA_CFG_F_FAIL_OPEN: a full queue accepts */
	unsigned mtu;
};

int nfq_queues_open(struct nfq_queues *q, const struct nfq_queue_params *params, char *err,
		    size_t err_len);
/* The sockets' fds into fds[NFQ_QUEUES_MAX], for the event loop; returns their count. */
unsigned nfq_queues_fds(const struct nfq_queues *q, int *fds);
/*
 * Fills batch (count 0 first) from the queues whose bit is set in *ready
 * (bit i: queue i), clearing the bit of each queue read dry; -errno and
 * err only when a socket is broken.
 */
int nfq_queues_read(struct nfq_queues *q, uint32_t *ready, struct pkt_batch *batch,
		    struct frontend_stats *st, char *err, size_t err_len);
void nfq_queues_close(struct nfq_queues *q);

/*
 * Offload metadata of a captured packet from NFQA_SKB_INFO (exposed for the
 * unit tests). Returns false when the packet cannot be described.
 */
bool nfq_offload_from_skbinfo(struct pkt *p, uint32_t skbinfo, unsigned mtu);

/* ---- nfq_rules.c: the capture rules, iptables-nft first, nft second ---- */

enum nfq_backend { NFQ_BACKEND_NONE, NFQ_BACKEND_IPTABLES, NFQ_BACKEND_NFT };

struct nfq_rules {
	enum nfq_backend backend;
	bool families[TAGRULES_FAM_COUNT]; /* the tools (iptables, ip6tables) we configured */
	long pid;
	char comment[TAGRULES_COMMENT_MAX]; /* of our jump rules, to delete them exactly */
};

struct nfq_rules_params {
	const struct frontend_config *cfg;
	uint16_t queue_first;
	unsigned queue_count;
	bool fail_open; /* --fail-open: the rules let packets pass without a listener */
};

int nfq_rules_install(struct nfq_rules *r, const struct nfq_rules_params *params, char *err,
		      size_t err_len);
/*
 * The ruleset install applies for pid: iptables-restore input for family
 * af, or the nft table (af ignored). malloc'd; NULL on ENOMEM. For the
 * unit tests, and for a student who wants to see it without --verbose.
 */
char *nfq_rules_text(const struct nfq_rules_params *params, long pid, enum nfq_backend backend,
		     int af);
/*
 * Replaces the rules of both chains with those of params (a new policy of
 * the same families), one atomic iptables-restore per family: rules of
 * unchanged entries keep matching throughout. iptables backend only.
 */
int nfq_rules_replace(const struct nfq_rules *r, const struct nfq_rules_params *params, char *err,
		      size_t err_len);
void nfq_rules_remove(struct nfq_rules *r, bool verbose);

#endif
