// SPDX-License-Identifier: MIT
/* The Ethernet next hop of a destination: RTM_GETROUTE, then RTM_GETNEIGH, cached for a second. */

/*
 * Used only by --inject dev (nfkit/pktinject.c), which writes frames on
 * the egress device itself. The kernel's own tables answer: the route
 * gives the device and the gateway (none: the destination is on link),
 * the neighbour table the gateway's MAC. A neighbour that is not resolved
 * yet (no entry, INCOMPLETE, FAILED) is not resolved here either: the
 * packet takes the lo path, whose forwarding resolves it for the next.
 */

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/keyhash.h"
#include "nexthop.h"

enum { NL_BUF = 8192 };

int nexthop_open(struct nexthop_cache *c)
{
	memset(c, 0, sizeof(*c));
	c->ioctl_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->ioctl_fd < 0)
		return -errno;
	c->hash = keyhash_new();
	c->nl = c->hash ? mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC) : NULL;
	if (!c->nl || mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int err = errno ? -errno : -ENOMEM;

		nexthop_close(c);
		return err;
	}
	return 0;
}

void nexthop_close(struct nexthop_cache *c)
{
	if (c->nl)
		mnl_socket_close(c->nl);
	keyhash_free(c->hash);
	c->hash = NULL;
	if (c->ioctl_fd > 0)
		close(c->ioctl_fd);
	c->nl = NULL;
	c->ioctl_fd = -1;
}

/* What one reply said: the route's device, type and gateway, or the neighbour's MAC. */
struct nl_answer {
	int oif;
	uint8_t type;              /* RTN_* of a route */
	bool have_gw, have_mac;
	uint8_t gw[16], mac[6];
	uint16_t state;            /* NUD_* of a neighbour */
};

static int attr_cb(const struct nlattr *a, void *data)
{
	struct nl_answer *ans = data;
	uint16_t type = mnl_attr_get_type(a), len = mnl_attr_get_payload_len(a);

	if (ans->type != 0xff && type == RTA_OIF && len == 4)
		ans->oif = (int)mnl_attr_get_u32(a);
	else if (ans->type != 0xff && type == RTA_GATEWAY && (len == 4 || len == 16)) {
		memcpy(ans->gw, mnl_attr_get_payload(a), len);
		ans->have_gw = true;
	} else if (ans->type == 0xff && type == NDA_LLADDR && len == 6) {
		memcpy(ans->mac, mnl_attr_get_payload(a), 6);
		ans->have_mac = true;
	}
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nl_answer *ans = data;
	const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	ans->type = rt->rtm_type;
	return mnl_attr_parse(nlh, sizeof(*rt), attr_cb, ans);
}

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nl_answer *ans = data;
	const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWNEIGH)
		return MNL_CB_OK;
	ans->state = nd->ndm_state;
	return mnl_attr_parse(nlh, sizeof(*nd), attr_cb, ans);
}

/* One request, its answer parsed by cb; -errno on a failure or a refusal. */
static int ask(struct nexthop_cache *c, struct nlmsghdr *nlh, mnl_cb_t cb, struct nl_answer *ans)
{
	char buf[NL_BUF];
	unsigned portid = mnl_socket_get_portid(c->nl);
	ssize_t n;
	int ret;

	nlh->nlmsg_seq = ++c->seq;
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	/* Not a dump: the answer is one message (or an error), in one datagram. */
	n = mnl_socket_recvfrom(c->nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	ret = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, ans);
	return ret < 0 ? -errno : 0;
}

static int get_route(struct nexthop_cache *c, const struct ip_addr *dst, struct nl_answer *ans)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rt;
	unsigned alen = dst->family == AF_INET ? 4 : 16;

	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
	rt->rtm_family = dst->family;
	rt->rtm_dst_len = (uint8_t)(alen * 8);
	mnl_attr_put(nlh, RTA_DST, alen, dst->bytes);
	return ask(c, nlh, route_cb, ans);
}

static int get_neigh(struct nexthop_cache *c, int family, const uint8_t *addr, int ifindex,
		     struct nl_answer *ans)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *nd;

	nlh->nlmsg_type = RTM_GETNEIGH;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
	nd->ndm_family = (uint8_t)family;
	nd->ndm_ifindex = ifindex;
	mnl_attr_put(nlh, NDA_DST, family == AF_INET ? 4 : 16, addr);
	ans->type = 0xff; /* parse neighbour attributes */
	return ask(c, nlh, neigh_cb, ans);
}

/* The device's own MAC; false unless it is Ethernet. */
static bool device_mac(struct nexthop_cache *c, int ifindex, uint8_t mac[6])
{
	struct ifreq ifr = { 0 };

	if (!if_indextoname((unsigned)ifindex, ifr.ifr_name) ||
	    ioctl(c->ioctl_fd, SIOCGIFHWADDR, &ifr) < 0 || ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return false;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return true;
}

static bool resolve(struct nexthop_cache *c, const struct ip_addr *dst, struct nexthop *hop)
{
	struct nl_answer route = { 0 }, neigh = { 0 };
	const uint8_t *via = dst->bytes;

	if (get_route(c, dst, &route) < 0 || route.type != RTN_UNICAST || route.oif <= 0)
		return false;
	if (route.have_gw)
		via = route.gw;
	if (get_neigh(c, dst->family, via, route.oif, &neigh) < 0 || !neigh.have_mac ||
	    (neigh.state & (NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP)))
		return false;
	hop->ifindex = route.oif;
	memcpy(hop->dst_mac, neigh.mac, 6);
	return device_mac(c, route.oif, hop->src_mac);
}

static unsigned slot_of(struct nexthop_cache *c, const struct ip_addr *dst)
{
	return (unsigned)(keyhash_bytes(c->hash, dst->bytes, dst->family == AF_INET ? 4 : 16) %
			  NEXTHOP_CACHE_SIZE);
}

bool nexthop_lookup(struct nexthop_cache *c, const struct ip_addr *dst, uint64_t now_ms,
		    struct nexthop *out)
{
	struct nexthop_entry *e = &c->entries[slot_of(c, dst)];

	if (e->expires_ms <= now_ms || memcmp(&e->dst, dst, sizeof(*dst)) != 0) {
		*e = (struct nexthop_entry){ .dst = *dst, .expires_ms = now_ms + NEXTHOP_TTL_MS };
		e->usable = resolve(c, dst, &e->hop);
	}
	if (e->usable)
		*out = e->hop;
	return e->usable;
}
