// SPDX-License-Identifier: MIT
/* Injecting packets from the tunnel: raw sockets, one sendmmsg per family per batch. */

/*
 * AF_INET/SOCK_RAW/IPPROTO_RAW implies IP_HDRINCL, and AF_INET6 with
 * IPPROTO_RAW implies IPV6_HDRINCL (Linux 4.5): the packet enters the
 * local stack's output path exactly as the original sender built it,
 * source address, TTL and DSCP included, and is routed by its destination.
 * The kernel only fills in the IPv4 header checksum (and an ID of 0).
 *
 * Every injected packet carries SO_MARK RAWINJECT_MARK, so that a
 * frontend's rules can let tunlab's own packets pass (the nfqueue client
 * returns them before stealing). A raw socket cannot take GSO or partial
 * checksums, so a frontend that injects here never announces
 * FRONTEND_CAP_OFFLOAD and the tunnel hands over plain packets only.
 *
 * Sends never block: a full socket buffer or qdisc drops the packet, and
 * the drop is counted as refused like any other refusal.
 *
 * An injected packet counts as locally originated: it skips FORWARD,
 * ip_forward, rp_filter and the martian checks, and one to 127.0.0.1
 * reaches the host's loopback services. The tunnel's reach policy refuses
 * those before they get here; the special ranges are refused again here,
 * where it costs one header read, in case a path ever bypasses it.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rawinject.h"
#include "../base/reach.h"

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36 /* linux/in6.h; glibc's netinet/in.h lacks it */
#endif

enum {
	RAWINJECT_SNDBUF = 4 << 20, /* a batch of 64 packets of 64 KiB */
};

static int raw_socket(int family, int *out)
{
	int one = 1, mark = RAWINJECT_MARK, size = RAWINJECT_SNDBUF;
	int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);

	if (fd < 0)
		return -errno;
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof(one)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	*out = fd;
	return 0;
fail:
	one = -errno;
	close(fd);
	return one;
}

int rawinject_open(struct rawinject *in, char *err, size_t err_len)
{
	int ret;

	*in = (struct rawinject){ .fd4 = -1, .fd6 = -1 };
	in->msgs = calloc(PKT_BATCH_MAX, sizeof(*in->msgs));
	in->iov = calloc(PKT_BATCH_MAX, sizeof(*in->iov));
	in->to = calloc(PKT_BATCH_MAX, sizeof(*in->to));
	ret = -ENOMEM;
	if (!in->msgs || !in->iov || !in->to)
		goto fail;
	ret = raw_socket(AF_INET, &in->fd4);
	if (ret < 0)
		goto fail;
	/* A host without IPv6 only loses IPv6 packets, counted as refused. */
	ret = raw_socket(AF_INET6, &in->fd6);
	if (ret < 0 && ret != -EAFNOSUPPORT)
		goto fail;
	return 0;
fail:
	snprintf(err, err_len, "raw socket for injection: %s", strerror(-ret));
	rawinject_close(in);
	return ret;
}

void rawinject_close(struct rawinject *in)
{
	if (in->fd4 >= 0)
		close(in->fd4);
	if (in->fd6 >= 0)
		close(in->fd6);
	in->fd4 = in->fd6 = -1;
	free(in->msgs);
	free(in->iov);
	free(in->to);
	in->msgs = NULL;
	in->iov = NULL;
	in->to = NULL;
}

/* Only a broken socket is the frontend's failure; anything else is one bad packet. */
static bool send_error_fatal(int err)
{
	return err == EBADF || err == ENOTSOCK || err == EFAULT;
}

/* The destination sockaddr of a plain packet of family; false if it is not one. */
static bool packet_dest(const struct pkt *p, int family, struct sockaddr_storage *to,
			socklen_t *len)
{
	struct ip_addr src, dst;

	if (!pkt_is_plain(p) || pkt_addrs(p->data, p->len, &src, &dst) < 0 ||
	    dst.family != family)
		return false;
	memset(to, 0, sizeof(*to));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)to;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, dst.bytes, 4);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)to;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, dst.bytes, 16);
		*len = sizeof(*sin6);
	}
	return true;
}

int rawinject_send_batch(int fd, struct mmsghdr *msgs, unsigned n, bool (*fatal)(int err),
			 struct rawinject_counts *c)
{
	unsigned off = 0;

	while (off < n) {
		int sent = sendmmsg(fd, msgs + off, n - off, MSG_DONTWAIT);

		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0 && fatal(errno))
			return -errno;
		if (sent < 0) {
			c->refused++; /* msgs[off] refused: EPERM, EMSGSIZE, EINVAL, EAGAIN, ENOBUFS... */
			off++;
			continue;
		}
		for (unsigned i = off; i < off + (unsigned)sent; i++) {
			const struct msghdr *h = &msgs[i].msg_hdr;

			c->packets++;
			c->bytes += h->msg_iov[h->msg_iovlen - 1].iov_len;
		}
		off += (unsigned)sent;
	}
	return 0;
}

/* Gathers the batch's packets of one family into msgs and sends them. */
static int inject_family(struct rawinject *in, const struct pkt_batch *batch, int family,
			 struct rawinject_counts *c)
{
	int fd = family == AF_INET ? in->fd4 : in->fd6;
	unsigned n = 0;

	for (unsigned i = 0; i < batch->count; i++) {
		const struct pkt *p = &batch->pkts[i];
		socklen_t len;

		if ((p->len ? p->data[0] >> 4 : 0) != (family == AF_INET ? 4 : 6))
			continue;
		if (fd < 0 || !packet_dest(p, family, &in->to[n], &len)) {
			c->refused++; /* not plain, malformed, or no IPv6 here */
			continue;
		}
		if (reach_packet_special(p->data, p->len) != REACH_OK) {
			c->denied++;
			continue;
		}
		in->iov[n] = (struct iovec){ .iov_base = p->data, .iov_len = p->len };
		in->msgs[n] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = &in->to[n],
			.msg_namelen = len,
			.msg_iov = &in->iov[n],
			.msg_iovlen = 1,
		} };
		n++;
	}
	return n ? rawinject_send_batch(fd, in->msgs, n, send_error_fatal, c) : 0;
}

static bool is_ip(const struct pkt *p)
{
	return p->len && ((p->data[0] >> 4) == 4 || (p->data[0] >> 4) == 6);
}

int rawinject_batch(struct rawinject *in, const struct pkt_batch *batch,
		    struct rawinject_counts *counts, char *err, size_t err_len)
{
	int ret;

	for (unsigned i = 0; i < batch->count; i++)
		if (!is_ip(&batch->pkts[i]))
			counts->refused++;
	ret = inject_family(in, batch, AF_INET, counts);
	if (ret == 0)
		ret = inject_family(in, batch, AF_INET6, counts);
	if (ret < 0)
		snprintf(err, err_len, "raw socket send: %s", strerror(-ret));
	return ret;
}
