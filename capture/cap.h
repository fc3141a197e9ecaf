/* SPDX-License-Identifier: MIT */
/* The parts of the pcap frontend (internal to capture/): plan and text, libpcap handles, injection. */
#ifndef TUNLAB_CAP_H
#define TUNLAB_CAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../base/frontend.h"

enum {
	/* The largest IP packet (FRAME_IP_MAX) and the longest link header we strip. */
	CAP_IP_MAX = 65535,
	CAP_SNAPLEN = CAP_IP_MAX + 64,
	/*
	 * Ring bytes per handle. Immediate mode makes libpcap take TPACKET_V2,
	 * whose frames are fixed-size: on lo (64 KiB MTU, TSO) each frame is
	 * a 128 KiB block holding one packet, so this is 512 packets deep.
	 */
	CAP_RING_BYTES = 64 << 20,
	/* pcap_stats reads sysfs: not per packet, at most this often. */
	CAP_STATS_PERIOD_MS = 100,
	/* lo for the routed traffic, plus "any" for a server's IPv6 return traffic. */
	CAP_HANDLES_MAX = 2,
	CAP_ETH_HLEN = 14,
};

#define CAP_CHAIN_SUFFIX "PCAP"

/* ---- cap_text.c: which handles, their BPF filters, the DROP rules (pure) ---- */

/* One libpcap handle: where it listens and what it takes. */
struct cap_plan {
	const char *device; /* "lo", or "any" (the server's IPv6 return traffic) */
	int af;             /* AF_INET or AF_INET6 to take one family only; 0: both */
	bool drop_on_lo;    /* its DROP rules match -i lo (else every interface) */
};

/* The handles cfg needs (1 or 2, the lo one first); returns how many. */
unsigned cap_plan_for(const struct frontend_config *cfg, struct cap_plan plan[CAP_HANDLES_MAX]);

/*
 * The BPF filter of one handle: "ip and (dst net P or dst net Q)" over
 * the prefixes of its family ("ip6", "(ip or ip6)" for both), plus " and
 * not dst host INNER" when a prefix covers the inner address. No prefix:
 * a filter that takes nothing.
 * malloc'd; NULL on ENOMEM.
 */
char *cap_filter_text(const struct frontend_config *cfg, const struct cap_plan *plan);

/*
 * iptables-restore input for family af (AF_INET/AF_INET6): the chain
 * TUNLAB-<pid>-PCAP in raw with "-d INNER -j RETURN" when a prefix covers
 * the inner address and "[-i lo] -d PREFIX -j DROP" per prefix, jumped to
 * first from PREROUTING with the owner comment. NULL when cfg has no
 * prefix of af, or on ENOMEM (*enomem says which).
 */
char *cap_rules_text(const struct frontend_config *cfg, const struct cap_plan *plans,
		     unsigned plan_count, long pid, int af, bool *enomem);
/* The input deleting exactly that chain and its jump rule. */
char *cap_rules_remove_text(const char *comment, long pid);

/* ---- cap_frame.c: one captured frame into a packet (pure; fuzzed) ---- */

/*
 * One packet as the link layer handed it: strips the link header, trims
 * to the IP length, copies into slot (CAP_IP_MAX bytes) and describes its
 * offload state. Returns the IP length, 0 when it is to be dropped
 * (truncated, not IP, too large, or an offload it cannot describe).
 */
uint32_t cap_take_packet(const uint8_t *frame, uint32_t caplen, uint32_t wirelen,
			 unsigned link_len, uint8_t *slot, unsigned mtu, struct pkt *p);

/* ---- cap_pcap.c: the libpcap handles and reading from them ---- */

struct cap_handle {
	void *pcap;          /* pcap_t */
	unsigned link_len;   /* link header before the IP header: 14 (lo), 16 or 20 (any) */
	unsigned last_drop, last_ifdrop; /* pcap_stats at the last look */
};

struct cap_reader {
	struct cap_handle h[CAP_HANDLES_MAX];
	unsigned count;
	unsigned next;       /* the handle the next read starts with (fairness) */
	unsigned mtu;        /* inner MTU: gso_size of captured GSO packets */
	uint8_t *slots;      /* PKT_BATCH_MAX copies of CAP_IP_MAX bytes, one allocation */
	struct timespec next_stats;
};

/* Opens, filters and activates one handle per plan entry; nothing is left on failure. */
int cap_reader_open(struct cap_reader *r, const struct frontend_config *cfg,
		    const struct cap_plan *plans, unsigned plan_count, char *err, size_t err_len);
/* The handles' selectable fds into fds[CAP_HANDLES_MAX], for the event loop; returns their count. */
unsigned cap_reader_fds(const struct cap_reader *r, int *fds);
/* Fills batch (count 0 first); -errno and err only when a handle is broken. */
int cap_reader_read(struct cap_reader *r, struct pkt_batch *batch, struct frontend_stats *st,
		    char *err, size_t err_len);
/* Adds what the kernel dropped since the last look to st->capture_drops. */
void cap_reader_stats(struct cap_reader *r, struct frontend_stats *st);
/* The lo handle, which pcap_inject sends on. */
void *cap_reader_lo(const struct cap_reader *r);
void cap_reader_close(struct cap_reader *r);

/* ---- cap_inject.c: pcap_inject on lo, the --inject pcap method ---- */

struct cap_inject {
	void *pcap;          /* the reader's lo handle, not ours to close */
	uint8_t *frame;      /* Ethernet header + the largest IP packet */
};

int cap_inject_open(struct cap_inject *in, void *lo_pcap, char *err, size_t err_len);
/* Counts refused packets in st; -errno and err only when the socket is broken. */
int cap_inject_batch(struct cap_inject *in, const struct pkt_batch *batch,
		     struct frontend_stats *st, char *err, size_t err_len);
void cap_inject_close(struct cap_inject *in);

#endif
