// SPDX-License-Identifier: MIT
/* The pcap frontend's libpcap handles: activation, filters, batched reads into our own slots. */

/*
 * A handle is pcap_create + snaplen of the largest IP packet + immediate
 * mode + a 64 MiB ring + pcap_activate, then the BPF filter and
 * non-blocking mode; pcap_get_selectable_fd is what the event loop polls.
 *
 * Ring. libpcap on Linux uses TPACKET_V3 only without immediate mode: V3
 * hands over blocks, and poll() reports a block only when it is full or
 * its timeout (at least 1 ms) expires. Measured here: a ping through the
 * tunnel went from 0.54 ms to 1.58 ms with V3 and a 1 ms timeout, for no
 * gain in bulk TCP (the ring is not what limits it). Immediate mode gets
 * TPACKET_V2 instead: one packet per fixed-size frame, readable at once.
 * The price: on lo (64 KiB MTU, TSO) a frame is a 128 KiB block, so the
 * 64 MiB ring holds 512 packets of any size, and a flood of small packets
 * overflows it (counted: ps_drop).
 *
 * A read is pcap_dispatch for as many packets as the batch has room,
 * copying each into a slot allocated at open (cap_frame.c). The copy
 * cannot be avoided: libpcap returns a ring frame (V2) or block (V3) to
 * the kernel as soon as the callback returns, so the data is valid only
 * inside the callback, while a batch must stay valid until the next read.
 *
 * What the kernel dropped because the ring was full (ps_drop) and what
 * the interface dropped (ps_ifdrop) are read every CAP_STATS_PERIOD_MS
 * and added to capture_drops as deltas; pcap_stats reads sysfs, so not
 * per packet. libpcap keeps both counters cumulative.
 */

#include <errno.h>
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cap.h"

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif

enum { SLL_HLEN = 16, SLL2_HLEN = 20 };

/* ---- opening ---- */

static int link_header_len(int dlt, unsigned *out)
{
	switch (dlt) {
	case DLT_EN10MB: *out = CAP_ETH_HLEN; return 0;
	case DLT_LINUX_SLL: *out = SLL_HLEN; return 0;
	case DLT_LINUX_SLL2: *out = SLL2_HLEN; return 0;
	default: return -EPROTONOSUPPORT;
	}
}

static int compile(pcap_t *p, const char *text, struct bpf_program *prog, char *err,
		   size_t err_len)
{
	if (pcap_compile(p, prog, text, 1, PCAP_NETMASK_UNKNOWN) == 0)
		return 0;
	snprintf(err, err_len, "pcap filter '%.120s%s': %s", text, strlen(text) > 120 ? "..." : "",
		 pcap_geterr(p));
	return -EINVAL;
}

/*
 * "inbound and FILTER" as the socket's kernel filter, behind libpcap's
 * back. libpcap compiles "inbound" to a load of the packet type, which
 * only the kernel can run; but pcap_setfilter also runs the filter in
 * userspace over the first frame after it is set (to catch packets that
 * predate it), where that load always fails: through pcap_setfilter, the
 * first packet a handle ever sees would be lost. So libpcap gets the
 * plain filter and PCAP_D_IN (both right in userspace), and the kernel
 * this one, which libpcap itself would hand over unchanged on a raw
 * (non-cooked) packet socket. If the kernel refuses it, libpcap's stays:
 * slower (two copies of each packet in the ring), not wrong.
 */
static void attach_inbound(pcap_t *p, const char *filter)
{
	struct bpf_program prog;
	struct sock_fprog fprog;
	char *text = NULL;

	/* A thousand prefixes make a long filter: no fixed buffer. */
	if (asprintf(&text, "inbound and (%s)", filter) < 0)
		return;
	if (pcap_compile(p, &prog, text, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		free(text);
		return;
	}
	free(text);
	/* struct bpf_insn is struct sock_filter: code, jt, jf, k. */
	fprog = (struct sock_fprog){ .len = (unsigned short)prog.bf_len,
				     .filter = (struct sock_filter *)prog.bf_insns };
	setsockopt(pcap_get_selectable_fd(p), SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog));
	pcap_freecode(&prog);
}

static int set_filter(pcap_t *p, const char *text, bool raw_socket, char *err, size_t err_len)
{
	struct bpf_program prog;
	int ret = compile(p, text, &prog, err, err_len);

	if (ret < 0)
		return ret;
	if (pcap_setfilter(p, &prog) < 0 || pcap_setdirection(p, PCAP_D_IN) < 0) {
		snprintf(err, err_len, "pcap filter: %s", pcap_geterr(p));
		ret = -EINVAL;
	}
	pcap_freecode(&prog);
	if (ret == 0 && raw_socket)
		attach_inbound(p, text);
	return ret;
}

static int activate(pcap_t *p, const char *device, char *err, size_t err_len)
{
	int ret;

	if (pcap_set_snaplen(p, CAP_SNAPLEN) || pcap_set_immediate_mode(p, 1) ||
	    pcap_set_buffer_size(p, CAP_RING_BYTES) || pcap_set_promisc(p, 0)) {
		snprintf(err, err_len, "pcap on %s: cannot set options", device);
		return -EINVAL;
	}
	ret = pcap_activate(p);
	if (ret < 0) {
		/* PCAP_ERROR_PERM_DENIED and friends: the message says which. */
		snprintf(err, err_len, "pcap on %s: %s (%s)", device, pcap_statustostr(ret),
			 pcap_geterr(p));
		return ret == PCAP_ERROR_PERM_DENIED ? -EPERM : -EIO;
	}
	return 0; /* a warning (ret > 0) changes nothing we rely on */
}

static int open_handle(struct cap_handle *h, const struct frontend_config *cfg,
		       const struct cap_plan *plan, char *err, size_t err_len)
{
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	char *filter = NULL;
	pcap_t *p = pcap_create(plan->device, errbuf);
	struct pcap_stat ps;
	int ret = -EIO;

	if (!p) {
		snprintf(err, err_len, "pcap on %s: %s", plan->device, errbuf);
		return ret;
	}
	ret = activate(p, plan->device, err, err_len);
	if (ret < 0)
		goto fail;
	ret = link_header_len(pcap_datalink(p), &h->link_len);
	if (ret < 0) {
		snprintf(err, err_len, "pcap on %s: link type %s, not Ethernet or Linux cooked",
			 plan->device, pcap_datalink_val_to_name(pcap_datalink(p)));
		goto fail;
	}
	filter = cap_filter_text(cfg, plan);
	/* A cooked handle's kernel filter sees other offsets: only libpcap may fix those. */
	ret = filter ? set_filter(p, filter, h->link_len == CAP_ETH_HLEN, err, err_len) : -ENOMEM;
	if (ret == -ENOMEM)
		snprintf(err, err_len, "pcap filter: %s", strerror(ENOMEM));
	free(filter);
	if (ret < 0)
		goto fail;
	if (pcap_setnonblock(p, 1, errbuf) < 0) {
		snprintf(err, err_len, "pcap on %s: %s", plan->device, errbuf);
		ret = -EIO;
		goto fail;
	}
	if (pcap_stats(p, &ps) == 0) {
		h->last_drop = ps.ps_drop;
		h->last_ifdrop = ps.ps_ifdrop;
	}
	h->pcap = p;
	return 0;
fail:
	pcap_close(p);
	return ret;
}

int cap_reader_open(struct cap_reader *r, const struct frontend_config *cfg,
		    const struct cap_plan *plans, unsigned plan_count, char *err, size_t err_len)
{
	int ret = -ENOMEM;

	*r = (struct cap_reader){ .mtu = cfg->mtu };
	r->slots = malloc((size_t)PKT_BATCH_MAX * CAP_IP_MAX);
	if (!r->slots) {
		snprintf(err, err_len, "pcap slots: %s", strerror(ENOMEM));
		goto fail;
	}
	for (; r->count < plan_count; r->count++) {
		ret = open_handle(&r->h[r->count], cfg, &plans[r->count], err, err_len);
		if (ret < 0)
			goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC_COARSE, &r->next_stats);
	return 0;
fail:
	cap_reader_close(r);
	return ret;
}

unsigned cap_reader_fds(const struct cap_reader *r, int *fds)
{
	for (unsigned i = 0; i < r->count; i++)
		fds[i] = pcap_get_selectable_fd(r->h[i].pcap);
	return r->count;
}

void *cap_reader_lo(const struct cap_reader *r)
{
	return r->h[0].pcap;
}

void cap_reader_close(struct cap_reader *r)
{
	for (unsigned i = 0; i < r->count; i++)
		pcap_close(r->h[i].pcap);
	r->count = 0;
	free(r->slots);
	r->slots = NULL;
}

/* ---- reading ---- */

struct read_ctx {
	struct cap_reader *r;
	const struct cap_handle *h;
	struct pkt_batch *batch;
	struct frontend_stats *st;
};

static void on_packet(u_char *user, const struct pcap_pkthdr *hdr, const u_char *bytes)
{
	struct read_ctx *c = (struct read_ctx *)user;
	struct pkt_batch *b = c->batch;

	/* pcap_dispatch was asked for no more than the room left. */
	if (b->count == PKT_BATCH_MAX ||
	    !cap_take_packet(bytes, hdr->caplen, hdr->len, c->h->link_len,
			     c->r->slots + (size_t)b->count * CAP_IP_MAX, c->r->mtu,
			     &b->pkts[b->count])) {
		c->st->capture_drops++;
		return;
	}
	c->st->captured_packets++;
	c->st->captured_bytes += b->pkts[b->count].len;
	b->count++;
}

void cap_reader_stats(struct cap_reader *r, struct frontend_stats *st)
{
	for (unsigned i = 0; i < r->count; i++) {
		struct cap_handle *h = &r->h[i];
		struct pcap_stat ps;

		if (pcap_stats(h->pcap, &ps) < 0)
			continue;
		/* Unsigned differences: right across a wrap of the 32-bit counters too. */
		st->capture_drops += (unsigned)(ps.ps_drop - h->last_drop) +
				     (unsigned)(ps.ps_ifdrop - h->last_ifdrop);
		h->last_drop = ps.ps_drop;
		h->last_ifdrop = ps.ps_ifdrop;
	}
}

static void stats_if_due(struct cap_reader *r, struct frontend_stats *st)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (now.tv_sec < r->next_stats.tv_sec ||
	    (now.tv_sec == r->next_stats.tv_sec && now.tv_nsec < r->next_stats.tv_nsec))
		return;
	cap_reader_stats(r, st);
	r->next_stats = now;
	r->next_stats.tv_nsec += (long)CAP_STATS_PERIOD_MS * 1000000L;
	if (r->next_stats.tv_nsec >= 1000000000L) {
		r->next_stats.tv_sec++;
		r->next_stats.tv_nsec -= 1000000000L;
	}
}

int cap_reader_read(struct cap_reader *r, struct pkt_batch *batch, struct frontend_stats *st,
		    char *err, size_t err_len)
{
	struct read_ctx c = { .r = r, .batch = batch, .st = st };

	batch->count = 0;
	/* Rotate the start so that a busy handle cannot starve the other. */
	r->next++;
	for (unsigned k = 0; k < r->count && batch->count < PKT_BATCH_MAX; k++) {
		struct cap_handle *h = &r->h[(r->next + k) % r->count];
		int n;

		c.h = h;
		n = pcap_dispatch(h->pcap, (int)(PKT_BATCH_MAX - batch->count), on_packet,
				  (u_char *)&c);
		if (n < 0) {
			snprintf(err, err_len, "pcap read: %s", pcap_geterr(h->pcap));
			/* What we already hold is good; the error returns next call. */
			return batch->count ? (int)batch->count : -EIO;
		}
	}
	stats_if_due(r, st);
	return (int)batch->count;
}
