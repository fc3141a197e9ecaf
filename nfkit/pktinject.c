// SPDX-License-Identifier: MIT
/* Injecting packets from the tunnel through lo (or the egress device): a packet socket with a virtio-net header. */

/*
 * A raw socket takes one MTU-sized packet per send: a GSO packet from the
 * tunnel had to be segmented in software first, and every stage after
 * that handled ~44 times more packets. A packet socket with
 * PACKET_VNET_HDR takes what a TUN device with IFF_VNET_HDR takes: a
 * virtio-net header that says "segment this at gso_size" and "finish
 * this checksum", so a 64 KiB packet crosses into the kernel in one piece
 * and is segmented (or not at all, by a device that does TSO) on its way
 * out. A frontend that injects here announces FRONTEND_CAP_OFFLOAD.
 *
 * Why lo: a packet socket sends a link-layer frame on one device. On lo,
 * whose header is Ethernet with all-zero addresses and which accepts GSO,
 * the frame loops straight back in as if received: the routing table
 * decides, as for a raw socket, but on the input path: a packet for a
 * local address is delivered; any other is forwarded, so the TTL goes
 * down by one and a too-big packet with DF set is answered with
 * "fragmentation needed" (what a router on the path would do). No
 * neighbour resolution, one socket for both families, and any route
 * works. The price: the forwarding path's checks (forwarding must be
 * on; a strict rp_filter judges the inner source addresses as arriving
 * on lo, which the namespaces here do not set and we did not test) and
 * a trip through lo's input. With egress (--inject dev) a packet whose
 * next hop is known goes out on its device instead, past all of that.
 *
 * Special sources and destinations (base/reach.h: loopback, link-local,
 * ...) are refused here once more, as rawinject does. Every offload
 * block is held to its packet (offload_check) before it reaches the
 * kernel; the header offsets count the Ethernet header, as a
 * SOCK_RAW packet socket's frame starts with it. Sends never block.
 */

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/offload.h"
#include "pktinject.h"
#include "../base/reach.h"

enum {
	PKTINJECT_SNDBUF = 4 << 20, /* a batch of 64 packets of 64 KiB */
};

_Static_assert(sizeof(struct virtio_net_hdr) == sizeof(((struct pktinject_frame_hdr *)0)->vnet),
	       "the frame header starts with a legacy virtio-net header");
_Static_assert(sizeof(struct pktinject_frame_hdr) == 24, "no padding between the headers");

bool pktinject_frame_hdr(const struct pkt *p, struct pktinject_frame_hdr *h)
{
	struct virtio_net_hdr vh;
	unsigned version = p->len ? p->data[0] >> 4 : 0;
	uint16_t type = version == 4 ? ETH_P_IP : ETH_P_IPV6;

	if ((version != 4 && version != 6) || offload_check(p, NULL) < 0)
		return false;
	offload_to_vnet(&p->off, PKTINJECT_L2_LEN, &vh);
	memcpy(h->vnet, &vh, sizeof(vh));
	memset(h->eth, 0, sizeof(h->eth)); /* lo's addresses, both all-zero */
	h->eth[12] = (uint8_t)(type >> 8);
	h->eth[13] = (uint8_t)type;
	return true;
}

static int packet_socket(int *fd_out, int *ifindex)
{
	int one = 1, mark = RAWINJECT_MARK, size = PKTINJECT_SNDBUF, fd;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };

	/* Protocol 0: this socket receives nothing. */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sll.sll_ifindex = (int)if_nametoindex("lo");
	if (sll.sll_ifindex == 0)
		goto fail;
	if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	*fd_out = fd;
	*ifindex = sll.sll_ifindex;
	return 0;
fail:
	one = -errno;
	close(fd);
	return one ? one : -ENODEV;
}

int pktinject_open(struct pktinject *in, bool egress, char *err, size_t err_len)
{
	int ret;

	*in = (struct pktinject){ .fd = -1 };
	in->msgs = calloc(PKT_BATCH_MAX, sizeof(*in->msgs));
	in->iov = calloc(2 * PKT_BATCH_MAX, sizeof(*in->iov));
	in->hdrs = calloc(PKT_BATCH_MAX, sizeof(*in->hdrs));
	in->to = calloc(PKT_BATCH_MAX, sizeof(*in->to));
	in->hops = egress ? malloc(sizeof(*in->hops)) : NULL;
	ret = -ENOMEM;
	if (!in->msgs || !in->iov || !in->hdrs || !in->to || (egress && !in->hops))
		goto fail;
	if (egress && (ret = nexthop_open(in->hops)) < 0) {
		free(in->hops);
		in->hops = NULL;
		goto fail;
	}
	ret = packet_socket(&in->fd, &in->ifindex);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, err_len, "packet socket on lo for injection: %s", strerror(-ret));
	pktinject_close(in);
	return ret;
}

void pktinject_close(struct pktinject *in)
{
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	if (in->hops)
		nexthop_close(in->hops);
	free(in->hops);
	free(in->msgs);
	free(in->iov);
	free(in->hdrs);
	free(in->to);
	in->msgs = NULL;
	in->iov = NULL;
	in->hdrs = NULL;
	in->to = NULL;
	in->hops = NULL;
}

/* Only a broken socket (or its device gone) is the frontend's failure; anything else is one bad packet. */
static bool fatal(int err)
{
	return err == EBADF || err == ENOTSOCK || err == EFAULT || err == ENODEV || err == ENXIO;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* lo, or with egress on the device of p's route with its next hop's addresses. */
static void frame_target(struct pktinject *in, const struct pkt *p, struct pktinject_frame_hdr *h,
			 struct sockaddr_ll *to, uint64_t now)
{
	struct ip_addr src, dst;
	struct nexthop hop;

	*to = (struct sockaddr_ll){ .sll_family = AF_PACKET, .sll_ifindex = in->ifindex };
	memcpy(&to->sll_protocol, h->eth + 12, 2); /* the EtherType, in network order */
	if (!in->hops || pkt_addrs(p->data, p->len, &src, &dst) < 0 ||
	    !nexthop_lookup(in->hops, &dst, now, &hop))
		return;
	to->sll_ifindex = hop.ifindex;
	memcpy(h->eth, hop.dst_mac, 6);
	memcpy(h->eth + 6, hop.src_mac, 6);
}

int pktinject_batch(struct pktinject *in, const struct pkt_batch *batch,
		    struct rawinject_counts *counts, char *err, size_t err_len)
{
	uint64_t now = in->hops ? now_ms() : 0;
	unsigned n = 0;
	int ret;

	for (unsigned i = 0; i < batch->count; i++) {
		const struct pkt *p = &batch->pkts[i];
		struct iovec *iov = &in->iov[2 * n];

		if (!pktinject_frame_hdr(p, &in->hdrs[n])) {
			counts->refused++; /* not IP, or an offload block that lies */
			continue;
		}
		/* lo delivers 127.0.0.1 to the host: the tunnel refused it already; again here. */
		if (reach_packet_special(p->data, p->len) != REACH_OK) {
			counts->denied++;
			continue;
		}
		frame_target(in, p, &in->hdrs[n], &in->to[n], now);
		iov[0] = (struct iovec){ .iov_base = &in->hdrs[n], .iov_len = sizeof(in->hdrs[n]) };
		iov[1] = (struct iovec){ .iov_base = p->data, .iov_len = p->len };
		in->msgs[n] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = &in->to[n],
			.msg_namelen = sizeof(in->to[n]),
			.msg_iov = iov,
			.msg_iovlen = 2,
		} };
		n++;
	}
	ret = n ? rawinject_send_batch(in->fd, in->msgs, n, fatal, counts) : 0;
	if (ret < 0)
		snprintf(err, err_len, "packet socket send: %s", strerror(-ret));
	return ret;
}

/* ---- the frontend's choice ---- */

int pktinject_any_parse(const char *name, enum pktinject_method *method)
{
	if (!name || strcmp(name, "lo") == 0)
		*method = PKTINJECT_LO;
	else if (strcmp(name, "dev") == 0)
		*method = PKTINJECT_DEV;
	else if (strcmp(name, "raw") == 0)
		*method = PKTINJECT_RAW;
	else
		return -EINVAL;
	return 0;
}

static int read_sysctl(const char *path)
{
	FILE *f = fopen(path, "re");
	int v = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

bool pktinject_lo_rp_strict(void)
{
	int all = read_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter");
	int lo = read_sysctl("/proc/sys/net/ipv4/conf/lo/rp_filter");

	return (all > lo ? all : lo) == 1;
}

int pktinject_any_open(struct pktinject_any *a, const char *name, enum pktinject_method method,
		       char *err, size_t err_len)
{
	if (method != PKTINJECT_RAW && pktinject_lo_rp_strict()) {
		if (name) {
			snprintf(err, err_len, "--inject %s: strict rp_filter on lo "
				 "(net.ipv4.conf.all/lo.rp_filter = 1) would drop what comes in "
				 "through lo; set it to 2 (loose) or use --inject raw", name);
			return -EPERM;
		}
		method = PKTINJECT_RAW; /* the default still works, without GSO */
	}
	*a = (struct pktinject_any){ .method = method, .raw = { .fd4 = -1, .fd6 = -1 },
				     .pk = { .fd = -1 } };
	if (method == PKTINJECT_RAW)
		return rawinject_open(&a->raw, err, err_len);
	return pktinject_open(&a->pk, method == PKTINJECT_DEV, err, err_len);
}

int pktinject_any_batch(struct pktinject_any *a, const struct pkt_batch *batch,
			struct rawinject_counts *counts, char *err, size_t err_len)
{
	if (a->method == PKTINJECT_RAW)
		return rawinject_batch(&a->raw, batch, counts, err, err_len);
	return pktinject_batch(&a->pk, batch, counts, err, err_len);
}

void pktinject_any_close(struct pktinject_any *a)
{
	if (a->method == PKTINJECT_RAW)
		rawinject_close(&a->raw);
	else
		pktinject_close(&a->pk);
}
