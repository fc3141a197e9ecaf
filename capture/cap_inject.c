// SPDX-License-Identifier: MIT
/* --inject pcap: packets from the tunnel sent with pcap_inject on lo, as if lo had received them. */

/*
 * Each packet gets a zero Ethernet header (lo's address is all zeros, so
 * the frame is PACKET_HOST) and goes out through the lo handle's packet
 * socket; loopback_xmit hands it straight to the receive path, where it
 * is routed as a packet that arrived on lo: delivered locally on a
 * client, forwarded to the inner network on a server. The routes to lo
 * make reverse-path filtering agree (the source's route points at lo).
 *
 * The capture rules never eat these packets: their destinations are
 * outside the captured prefixes, except the inner address, which the
 * rules return on first, and a server's client-to-client relay, which is
 * meant to be captured again. (A mark would do too: SO_MARK on the
 * packet socket survives the loop through lo, contrary to a common
 * belief; the rules do not need it.)
 *
 * pcap_inject takes one contiguous frame and sends it with one send():
 * the header is copied in front of the packet (packets here are plain and
 * at most one MTU: the peer segments for us), and a batch costs one system
 * call per packet, where the raw socket path needs one sendmmsg per family.
 * That difference is what `--inject pcap` measures. A packet socket cannot
 * take GSO without PACKET_VNET_HDR, which libpcap never sets, so neither
 * method announces FRONTEND_CAP_OFFLOAD.
 */

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/reach.h"
#include "cap.h"

int cap_inject_open(struct cap_inject *in, void *lo_pcap, char *err, size_t err_len)
{
	in->pcap = lo_pcap;
	in->frame = calloc(1, CAP_ETH_HLEN + CAP_IP_MAX);
	if (!in->frame) {
		snprintf(err, err_len, "pcap inject buffer: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

void cap_inject_close(struct cap_inject *in)
{
	free(in->frame);
	in->frame = NULL;
	in->pcap = NULL;
}

/* Only a broken socket is the frontend's failure; anything else is one bad packet. */
static bool inject_error_fatal(int err)
{
	return err == EBADF || err == ENOTSOCK || err == EFAULT || err == ENODEV;
}

/* The frame of a plain IP packet in in->frame; its length, or 0 if p is no such packet. */
static size_t build_frame(struct cap_inject *in, const struct pkt *p)
{
	unsigned version = p->len ? p->data[0] >> 4 : 0;

	if (!pkt_is_plain(p) || p->len > CAP_IP_MAX || (version != 4 && version != 6))
		return 0;
	/* Addresses stay zero: lo's own, so the frame is for this host. */
	in->frame[12] = version == 4 ? 0x08 : 0x86;
	in->frame[13] = version == 4 ? 0x00 : 0xdd;
	memcpy(in->frame + CAP_ETH_HLEN, p->data, p->len);
	return CAP_ETH_HLEN + p->len;
}

int cap_inject_batch(struct cap_inject *in, const struct pkt_batch *batch,
		     struct frontend_stats *st, char *err, size_t err_len)
{
	for (unsigned i = 0; i < batch->count; i++) {
		const struct pkt *p = &batch->pkts[i];
		size_t len = build_frame(in, p);

		if (!len) {
			st->inject_errors++; /* offload packet, or not IP */
			continue;
		}
		/* lo delivers 127.0.0.1 to the host: the tunnel refused it already; again here. */
		if (reach_packet_special(p->data, p->len) != REACH_OK) {
			st->inject_denied++;
			continue;
		}
		errno = 0;
		if (pcap_inject(in->pcap, in->frame, len) < 0) {
			int saved = errno;

			if (inject_error_fatal(saved)) {
				snprintf(err, err_len, "pcap_inject: %s", pcap_geterr(in->pcap));
				return -saved;
			}
			st->inject_errors++; /* ENOBUFS: lo's backlog was full */
			continue;
		}
		st->injected_packets++;
		st->injected_bytes += p->len;
	}
	return 0;
}
