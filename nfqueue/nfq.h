/* SPDX-License-Identifier: MIT */
/* The parts of the nfqueue frontend (internal to nfqueue/): queue, inject, rules, routes. */
#ifndef TUNLAB_NFQ_H
#define TUNLAB_NFQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../src/frontend.h"

enum {
	/* SO_MARK of every packet we inject ("tu"): a client's chains let it pass. */
	NFQ_MARK = 0x7475,
	/* Same protocol as the TUN backend's routes: `ip route show proto 77`. */
	NFQ_RT_PROTO = 77,
	/* IPv6 routes we add win over the kernel's (256) and user defaults (1024). */
	NFQ_RT6_METRIC = 1,
	/* --queues is capped by the CLI at 16. */
	NFQ_QUEUES_MAX = 16,
};

/* Chains TUNLAB-<pid>-OUT/-PRE, jump rules commented "tunlab:pid=<pid> ...". */
#define NFQ_CHAIN_PREFIX "TUNLAB-"
#define NFQ_COMMENT_PREFIX "tunlab:pid="
/* nft fallback: table inet tunlab_<pid>. */
#define NFQ_NFT_TABLE_PREFIX "tunlab_"
/* IPv4 label of our address on lo: 15 characters hold "lo:tl" and any pid. */
#define NFQ_LO_LABEL_PREFIX "lo:tl"

/* ---- nfq_queue.c: netlink queues, batch read, batch verdict ---- */

struct mnl_socket;
struct sockaddr_nl;

struct nfq_queues {
	unsigned count;
	uint16_t first;         /* queue numbers first .. first + count - 1 */
	int epoll_fd;           /* with count > 1: holds every socket; else -1 */
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
int nfq_queues_fd(const struct nfq_queues *q);
/* Fills batch (count 0 first); -errno and err only when a socket is broken. */
int nfq_queues_read(struct nfq_queues *q, struct pkt_batch *batch, struct frontend_stats *st,
		    char *err, size_t err_len);
void nfq_queues_close(struct nfq_queues *q);

/*
 * Offload metadata of a captured packet from NFQA_SKB_INFO (exposed for the
 * unit tests). Returns false when the packet cannot be described.
 */
bool nfq_offload_from_skbinfo(struct pkt *p, uint32_t skbinfo, unsigned mtu);

/* ---- nfq_inject.c: raw sockets, one sendmmsg per family per batch ---- */

struct nfq_inject {
	int fd4, fd6;           /* fd6 -1 when the host has no IPv6 */
	struct mmsghdr *msgs;   /* PKT_BATCH_MAX each, one allocation */
	struct iovec *iov;
	struct sockaddr_storage *to;
};

int nfq_inject_open(struct nfq_inject *in, char *err, size_t err_len);
/* Counts refused packets in st; -errno and err only when a socket is broken. */
int nfq_inject_batch(struct nfq_inject *in, const struct pkt_batch *batch,
		     struct frontend_stats *st, char *err, size_t err_len);
void nfq_inject_close(struct nfq_inject *in);

/* ---- nfq_rules.c: the capture rules, iptables-nft first, nft second ---- */

/* Index of the per-family tools (iptables, ip6tables) and their state. */
enum { NFQ_FAM_V4, NFQ_FAM_V6, NFQ_FAM_COUNT };

enum nfq_backend { NFQ_BACKEND_NONE, NFQ_BACKEND_IPTABLES, NFQ_BACKEND_NFT };

enum { NFQ_COMMENT_MAX = 96 }; /* "tunlab:pid=N addr=<IPv6>" */

struct nfq_rules {
	enum nfq_backend backend;
	bool families[NFQ_FAM_COUNT]; /* the tools (iptables, ip6tables) we configured */
	long pid;
	char comment[NFQ_COMMENT_MAX]; /* of our jump rules, to delete them exactly */
};

struct nfq_rules_params {
	const struct frontend_config *cfg;
	uint16_t queue_first;
	unsigned queue_count;
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
void nfq_rules_remove(struct nfq_rules *r, bool verbose);
/* Feeds text to ip(6)tables-restore --noflush (fam: NFQ_FAM_V4 or NFQ_FAM_V6). */
int nfq_restore(int fam, const char *text, bool verbose, char *err, size_t err_len);

/* ---- nfq_scan.c: what instances that no longer run left ---- */

/* What a dead instance left, as its rules record it. */
struct nfq_dead {
	long pid;
	bool has_addr;
	struct ip_addr addr;        /* its inner address, from the jump rules' comment */
	struct ip_prefix *prefixes; /* the destinations its chains queued */
	size_t prefix_count, prefix_cap;
};

struct nfq_dead_list {
	struct nfq_dead *items;
	size_t count, cap;
	char *restore[NFQ_FAM_COUNT]; /* ip(6)tables-restore --noflush input removing them */
	char *nft;                  /* nft -f input deleting their tables */
	size_t rule_objects;        /* chains, jump rules and nft tables in the above */
};

/* Which instances a scan collects: the dead ones, or one by pid (a fallback of close). */
struct nfq_owner_filter {
	long pid;                   /* 0: every pid that no longer runs */
};

/* Collects what the selected instances' rules hold (iptables, ip6tables, nft). */
int nfq_rules_scan(struct nfq_dead_list *dead, const struct nfq_owner_filter *filter,
		   char *err, size_t err_len);
/* Removes the collected rules; returns the number of objects removed. */
int nfq_rules_remove_scanned(const struct nfq_dead_list *dead, bool verbose, char *err,
			     size_t err_len);
void nfq_dead_list_free(struct nfq_dead_list *dead);
bool nfq_pid_gone(long pid);

/* Comment of the jump rules: "tunlab:pid=123" or "tunlab:pid=123 addr=10.8.0.2". */
void nfq_owner_comment(const struct frontend_config *cfg, long pid, char *out, size_t out_len);
/* Parses that comment (from the "tunlab:pid=" on); false if it is not one. */
bool nfq_parse_owner_comment(const char *text, long *pid, bool *has_addr, struct ip_addr *addr);

/* ---- nfq_route.c: the inner address on lo, routes that carry it ---- */

struct nfq_routes {
	char *teardown;         /* ip -batch lines undoing what setup added */
	bool addr_owned;        /* we added the address (it was not there) */
};

int nfq_routes_setup(struct nfq_routes *r, const struct frontend_config *cfg, char *err,
		     size_t err_len);
void nfq_routes_teardown(struct nfq_routes *r, bool verbose);
/* Removes dead instances' routes and lo addresses; returns how many. */
int nfq_routes_remove_dead(const struct nfq_dead_list *dead, bool verbose, char *err,
			   size_t err_len);

#endif
