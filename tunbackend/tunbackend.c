// SPDX-License-Identifier: MIT
/* The TUN frontend: a virtual NIC whose packets tunlab reads and writes. */

/*
 * The device is non-persistent: it exists exactly as long as our fd. When
 * tunlab exits for any reason, kill -9 included, the kernel closes the fd
 * and deletes the device, and with it its address and every route through
 * it. The fd is O_CLOEXEC so no child (ip, iptables) can keep it alive.
 * The policy's bypass and discard routes (base/polroutes.h) are on no
 * device of ours: they outlive a kill -9 (discard stays dropped) until
 * `tunlab cleanup` runs the lock file's record of them (tun_ip.c).
 *
 * Speed: TUN has no batched read or write, so at a 1500-byte MTU the cost
 * is one syscall per packet. With offload (IFF_VNET_HDR + TUNSETOFFLOAD)
 * the kernel hands over TCP segments of up to 64 KiB with a partial
 * checksum, described by a struct virtio_net_hdr in front of each packet,
 * and takes them back the same way: one syscall per 40-odd segments, and
 * the segmentation and checksums happen in the kernel at the far end.
 *
 * Read memory: PKT_BATCH_MAX slots of 66 KiB allocated at open. The vnet
 * header is read just in front of a 16-byte-aligned IP header, so the
 * batch's packets are aligned for whoever parses them.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../base/capwatch.h"
#include "../base/offload.h"
#include "../base/owner.h"
#include "../base/polroutes.h"
#include "../base/sysexec.h"
#include "tun.h"
#include "tunbackend.h"

enum {
	TUNB_VNET_HDR_LEN = sizeof(struct virtio_net_hdr), /* 10 */
	TUNB_PKT_MAX = 65535,     /* IPv4 total length; tun's GSO limit is 64 KiB too */
	TUNB_DATA_OFF = 16,       /* IP header offset in a slot, after the vnet header */
	/* 64 KiB + 2 KiB: slot starts not a power of two apart, so in different cache sets */
	TUNB_SLOT_SIZE = 65536 + 2048,
	TUNB_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
};

struct tunb {
	struct frontend fe;
	int fd;
	struct capwatch watch;
	unsigned vnet_len;   /* TUNB_VNET_HDR_LEN with offload, else 0 */
	bool verbose;
	uint64_t skipped;    /* read packets that were not IPv4/IPv6 or not understood */
	uint8_t *ring;       /* PKT_BATCH_MAX * TUNB_SLOT_SIZE */
	char *teardown;      /* ip -batch lines deleting our routes */
	char *policy_teardown; /* the same for the bypass and discard routes (recorded) */
	char ifname[IFNAMSIZ];
	struct owner_lock owner; /* vouches for the alias "tunlab:pid=<pid>" */
};

static struct tunb *to_tunb(const struct frontend *fe)
{
	return (struct tunb *)fe;
}

static void set_error(struct tunb *t, const char *what, int err)
{
	snprintf(t->fe.error, sizeof(t->fe.error), "%s %s: %s", what, t->ifname, strerror(err));
}

/* ---- device ---- */

static int tun_attach(const char *name, bool vnet, char actual[IFNAMSIZ], int *fd_out)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) };
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	snprintf(actual, IFNAMSIZ, "%s", ifr.ifr_name); /* "%d" names are resolved now */
	*fd_out = fd;
	return 0;
}

static int tun_enable_offload(int fd)
{
	int hdr_len = TUNB_VNET_HDR_LEN;

	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0)
		return -errno;
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)TUNB_OFFLOADS) < 0)
		return -errno;
	return 0;
}

/*
 * With offload asked for, the offload ioctls are the probe: a kernel that
 * refuses them gets a plain device instead.
 */
static int tun_create(struct tunb *t, const char *name, bool offload, char *err, size_t err_len)
{
	int ret = tun_attach(name, offload, t->ifname, &t->fd);

	if (ret == 0 && offload) {
		ret = tun_enable_offload(t->fd);
		if (ret == 0) {
			t->vnet_len = TUNB_VNET_HDR_LEN;
			t->fe.caps |= FRONTEND_CAP_OFFLOAD;
			return 0;
		}
		snprintf(t->fe.error, sizeof(t->fe.error),
			 "offload off: the kernel refused it on %s (%s)", t->ifname, strerror(-ret));
		close(t->fd); /* deletes the device: a new one without the vnet header */
		t->fd = -1;
		ret = tun_attach(name, false, t->ifname, &t->fd);
	}
	if (ret < 0)
		snprintf(err, err_len, "TUN device %s: %s%s", name, strerror(-ret),
			 ret == -EBUSY ? " (in use by another process)" : "");
	return ret;
}

static int pick_name(const struct frontend_config *cfg, char name[IFNAMSIZ], char *err,
		     size_t err_len)
{
	if (!cfg->ifname) {
		/* pids stay below PID_MAX_LIMIT (2^22): 7 digits, the modulo only tells gcc */
		snprintf(name, IFNAMSIZ, "tunlab%u", (unsigned)getpid() % 10000000u);
		return 0;
	}
	if (strlen(cfg->ifname) >= IFNAMSIZ || !cfg->ifname[0]) {
		snprintf(err, err_len, "device name \"%s\": 1 to %d characters", cfg->ifname,
			 IFNAMSIZ - 1);
		return -EINVAL;
	}
	snprintf(name, IFNAMSIZ, "%s", cfg->ifname);
	return 0;
}

/*
 * The policy's bypass and discard routes (base/polroutes.h): looked up
 * before the device's routes exist, so a bypass copies the path that was
 * there before tunlab. They are on no device of ours and outlive a kill
 * -9, so the lock file records their delete lines first, for cleanup.
 */
static int tun_policy_routes(struct tunb *t, const struct frontend_config *cfg, char *err,
			     size_t err_len)
{
	struct route_path *paths = NULL;
	char *setup = NULL;
	size_t slen, tlen;
	FILE *s = NULL, *td = NULL;
	int ret = polroutes_paths(cfg->policy, true, &paths);

	if (ret == 0) {
		s = open_memstream(&setup, &slen);
		td = open_memstream(&t->policy_teardown, &tlen);
		ret = s && td ? polroutes_lines(cfg->policy, paths, false, s, td) : -ENOMEM;
	}
	if ((s && fclose(s) != 0) || (td && fclose(td) != 0))
		ret = -ENOMEM;
	free(paths);
	if (ret < 0)
		snprintf(err, err_len, "policy routes: %s", strerror(-ret));
	else if (setup[0] && (ret = owner_lock_record(&t->owner, t->policy_teardown)) < 0)
		snprintf(err, err_len, "policy routes: recording them in %s: %s", t->owner.path,
			 strerror(-ret));
	else if (setup[0] && sysexec_ip_batch(setup, false, cfg->verbose, err, err_len) < 0) {
		char ignored[256];

		/* -force: whatever part of the batch went in comes out. */
		sysexec_ip_batch(t->policy_teardown, true, cfg->verbose, ignored, sizeof(ignored));
		ret = -EIO;
	}
	free(setup);
	return ret;
}

static void tun_policy_teardown(struct tunb *t)
{
	char err[256];

	if (t->policy_teardown && t->policy_teardown[0])
		sysexec_ip_batch(t->policy_teardown, true, t->verbose, err, sizeof(err));
	free(t->policy_teardown);
	t->policy_teardown = NULL;
}

static int tun_configure(struct tunb *t, const struct frontend_config *cfg, char *err,
			 size_t err_len)
{
	char *setup;
	int ret = tun_ip_lines(t->ifname, cfg, &setup, &t->teardown);

	if (ret < 0) {
		snprintf(err, err_len, "configuring %s: %s", t->ifname, strerror(-ret));
		return ret;
	}
	/* Before the device's routes: bypass and discard are in force when those take traffic. */
	ret = tun_policy_routes(t, cfg, err, err_len);
	if (ret == 0 && sysexec_ip_batch(setup, false, cfg->verbose, err, err_len) < 0) {
		tun_policy_teardown(t);
		ret = -EIO;
	}
	free(setup);
	return ret;
}

/* ---- ops ---- */

static int tunf_open(struct frontend **out, const struct frontend_config *cfg, char *err,
		     size_t err_len)
{
	char name[IFNAMSIZ];
	struct tunb *t;
	int ret = -ENOMEM;

	if (cfg->selector_count) {
		/* A route takes everything toward a prefix; selectors need a netfilter frontend. */
		snprintf(err, err_len, "--select: the tun frontend cannot select within a route "
			 "(use --frontend nfqueue)");
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	t->fe.ops = &tunbackend_frontend;
	t->fd = -1;
	t->verbose = cfg->verbose;
	t->ring = malloc((size_t)PKT_BATCH_MAX * TUNB_SLOT_SIZE);
	if (!t->ring)
		goto err_free;
	ret = pick_name(cfg, name, err, err_len);
	if (ret < 0)
		goto err_ring;
	ret = owner_lock_acquire(&t->owner, OWNER_RUN_DIR, err, err_len);
	if (ret < 0)
		goto err_ring;
	ret = tun_create(t, name, cfg->offload, err, err_len);
	if (ret < 0)
		goto err_owner;
	ret = tun_configure(t, cfg, err, err_len);
	if (ret < 0)
		goto err_device;
	*out = &t->fe;
	return 0;

err_device:
	/* Takes the device and whatever the batch managed to add with it. */
	close(t->fd);
	free(t->teardown);
	free(t->policy_teardown);
err_owner:
	owner_lock_release(&t->owner);
err_ring:
	free(t->ring);
err_free:
	free(t);
out:
	if (ret == -ENOMEM)
		snprintf(err, err_len, "tun: %s", strerror(ENOMEM));
	return ret;
}

static int tunf_start(struct frontend *fe, struct evloop *loop, const struct frontend_sink *sink)
{
	struct tunb *t = to_tunb(fe);

	return capwatch_start(&t->watch, loop, sink, &t->fd, 1);
}

static void tunf_pause(struct frontend *fe, bool paused)
{
	capwatch_pause(&to_tunb(fe)->watch, paused);
}

/*
 * The vnet header as the kernel wrote it, in host order (legacy virtio,
 * which TUN uses unless TUNSETVNETLE/BE asks otherwise). Returns false for
 * offload types we never asked for.
 */
static bool offload_from_vnet(const uint8_t *hdr, struct pkt_offload *off)
{
	struct virtio_net_hdr vh;

	memcpy(&vh, hdr, sizeof(vh));
	off->flags = vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
	/*
	 * GSO_ECN only appears with TUN_F_TSO_ECN, which we do not offer (the
	 * kernel segments CWR-marked bursts itself). It would only demand ECN
	 * support of the segmenter, which clears CWR after the first segment
	 * in any case: dropping it is safe.
	 */
	off->gso_type = vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	off->hdr_len = vh.hdr_len;
	off->gso_size = vh.gso_size;
	off->csum_start = vh.csum_start;
	off->csum_offset = vh.csum_offset;
	return off->gso_type == PKT_GSO_NONE || off->gso_type == PKT_GSO_TCPV4 ||
	       off->gso_type == PKT_GSO_TCPV6;
}

/*
 * TUN reports hdr_len as the linear part of its buffer, which is only a
 * hint; pkt_offload promises the L3+L4 header length, read from the TCP
 * header that csum_start points at.
 */
static void fix_hdr_len(struct pkt *p)
{
	uint32_t tcp = p->off.csum_start;

	if (p->off.gso_type == PKT_GSO_NONE || !(p->off.flags & PKT_F_NEEDS_CSUM) ||
	    tcp + 20 > p->len)
		return;
	p->off.hdr_len = (uint16_t)(tcp + (p->data[tcp + 12] >> 4) * 4);
}

static bool take_packet(struct tunb *t, struct pkt *p, uint8_t *slot, size_t n)
{
	uint8_t version;

	if (n <= t->vnet_len)
		return false;
	p->data = slot + t->vnet_len;
	p->len = (uint32_t)(n - t->vnet_len);
	version = p->data[0] >> 4;
	if (version != 4 && version != 6)
		return false;
	memset(&p->off, 0, sizeof(p->off));
	if (t->vnet_len && !offload_from_vnet(slot, &p->off))
		return false;
	fix_hdr_len(p);
	return true;
}

static int tunf_read_batch(struct frontend *fe, struct pkt_batch *batch)
{
	struct tunb *t = to_tunb(fe);

	batch->count = 0;
	while (batch->count < PKT_BATCH_MAX) {
		uint8_t *slot = t->ring + (size_t)batch->count * TUNB_SLOT_SIZE +
				TUNB_DATA_OFF - t->vnet_len;
		ssize_t n = read(t->fd, slot, t->vnet_len + TUNB_PKT_MAX);
		struct pkt *p = &batch->pkts[batch->count];

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			int err = errno;
			set_error(t, "read from", err);
			/* What we already hold is good; the error returns next call. */
			return batch->count ? (int)batch->count : -err;
		}
		if (!take_packet(t, p, slot, (size_t)n)) {
			t->skipped++;
			continue;
		}
		fe->stats.captured_packets++;
		fe->stats.captured_bytes += p->len;
		batch->count++;
	}
	return (int)batch->count;
}

/* Only a broken fd is the frontend's failure; anything else is one bad packet. */
static bool write_error_fatal(int err)
{
	return err == EBADF || err == EBADFD || err == EFAULT;
}

static ssize_t write_one(struct tunb *t, const struct pkt *p)
{
	struct virtio_net_hdr vh;
	struct iovec iov[2] = {
		{ .iov_base = &vh, .iov_len = t->vnet_len },
		{ .iov_base = p->data, .iov_len = p->len },
	};
	ssize_t n;

	if (!t->vnet_len) {
		do
			n = write(t->fd, p->data, p->len);
		while (n < 0 && errno == EINTR);
		return n;
	}
	offload_to_vnet(&p->off, 0, &vh);
	do
		n = writev(t->fd, iov, 2);
	while (n < 0 && errno == EINTR);
	return n < 0 ? n : n - (ssize_t)t->vnet_len;
}

static int tunf_write_batch(struct frontend *fe, const struct pkt_batch *batch)
{
	struct tunb *t = to_tunb(fe);

	for (unsigned i = 0; i < batch->count; i++) {
		const struct pkt *p = &batch->pkts[i];
		ssize_t n;

		if (!t->vnet_len && !pkt_is_plain(p)) {
			fe->stats.inject_errors++; /* the caller ignored CAP_OFFLOAD */
			continue;
		}
		n = write_one(t, p);
		if (n < 0 && write_error_fatal(errno)) {
			int err = errno;
			set_error(t, "write to", err);
			return -err;
		}
		if (n != (ssize_t)p->len) {
			fe->stats.inject_errors++;
			continue;
		}
		fe->stats.injected_packets++;
		fe->stats.injected_bytes += p->len;
	}
	return 0;
}

static void tunf_close(struct frontend *fe)
{
	struct tunb *t = to_tunb(fe);
	char err[256];

	if (!t)
		return;
	/*
	 * Closing the fd would take the routes along with the device; deleting
	 * them first lets --verbose show what is undone. -force: best effort.
	 */
	if (t->teardown && t->teardown[0])
		sysexec_ip_batch(t->teardown, true, t->verbose, err, sizeof(err));
	tun_policy_teardown(t);
	capwatch_stop(&t->watch);
	close(t->fd);
	owner_lock_release(&t->owner);
	free(t->teardown);
	free(t->ring);
	free(t);
}

static int tunf_cleanup(bool verbose, char *err, size_t err_len)
{
	return tun_ip_cleanup(verbose, err, err_len);
}

static const struct frontend_packet_ops tunf_packet_ops = {
	.read_batch = tunf_read_batch,
	.write_batch = tunf_write_batch,
	.pause = tunf_pause,
};

const struct frontend_ops tunbackend_frontend = {
	.name = "tun",
	/* A route selects by destination only; bypass and discard are routes too (base/polroutes.h). */
	.policy_keys = 0,
	.policy_actions = POLICY_ACTION_BIT(POLICY_PROTECT) | POLICY_ACTION_BIT(POLICY_BYPASS) |
			  POLICY_ACTION_BIT(POLICY_DISCARD),
	.policy_why = "a route selects by destination only",
	.summary = "route the remote prefixes to a TUN device (virtual NIC)",
	.open = tunf_open,
	.start = tunf_start,
	.packets = &tunf_packet_ops,
	.close = tunf_close,
	.cleanup = tunf_cleanup,
};
