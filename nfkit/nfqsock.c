// SPDX-License-Identifier: MIT
/* One netfilter queue socket over libmnl: bind, configure, wait for the kernel's acks. */

/*
 * As the library's examples/nf-queue.c binds a queue, with one difference:
 * every configuration message asks for an ack and waits for it (bounded by
 * SO_RCVTIMEO), so that a queue number another socket holds is an error
 * here, not a silent loss of packets later.
 */

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "nfqsock.h"

enum {
	NFQSOCK_CTL_BUF = 8192,      /* config messages and their acks */
	NFQSOCK_ACK_TIMEOUT_S = 2,
	NFQSOCK_ACK_READS = 4,
};

/* Sends a config message and waits for its ack: 0 or -errno from the kernel. */
static int send_config(struct mnl_socket *nl, struct nlmsghdr *nlh, uint32_t seq)
{
	char buf[NFQSOCK_CTL_BUF];
	unsigned portid = mnl_socket_get_portid(nl);

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (int i = 0; i < NFQSOCK_ACK_READS; i++) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		int ret;

		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		ret = mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL);
		if (ret == MNL_CB_ERROR)
			return -errno;
		if (ret == MNL_CB_STOP)
			return 0;
	}
	return -ETIMEDOUT;
}

static void set_buffers(int fd, int rcvbuf)
{
	struct timeval ack_wait = { .tv_sec = NFQSOCK_ACK_TIMEOUT_S };

	/* FORCE passes net.core.rmem_max (root); otherwise take what we get. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ack_wait, sizeof(ack_wait));
}

static int configure(struct mnl_socket *nl, uint16_t num, const struct nfqsock_config *c)
{
	char buf[NFQSOCK_CTL_BUF];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, num);
	int ret;

	/* Since Linux 3.8 a bind takes every family; AF_INET is only the example's habit. */
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	ret = send_config(nl, nlh, 1);
	if (ret < 0)
		return ret;
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)c->copy_range);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, c->maxlen);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(c->flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(c->flags_mask));
	/* A failure here is not "taken": report it as a config error. */
	ret = send_config(nl, nlh, 2);
	return ret == -EPERM || ret == -EBUSY ? -EINVAL : ret;
}

int nfqsock_open(struct mnl_socket **out, uint16_t num, const struct nfqsock_config *c)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	int ret;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto err_close;
	}
	set_buffers(mnl_socket_get_fd(nl), c->rcvbuf);
	ret = configure(nl, num, c);
	if (ret < 0)
		goto err_close;
	if (fcntl(mnl_socket_get_fd(nl), F_SETFL, O_NONBLOCK) < 0) {
		ret = -errno;
		goto err_close;
	}
	*out = nl;
	return 0;

err_close:
	mnl_socket_close(nl); /* unbinds whatever it had bound */
	return ret;
}
