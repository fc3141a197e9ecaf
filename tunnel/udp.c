// SPDX-License-Identifier: MIT
/* The UDP data channel of the tunnel (issue 15): sockets, probes, roaming. */

/*
 * The TLS connection stays the control channel; the data channel is a
 * UDP socket on the same port number, its keys from the connection's
 * exporter (dgram/dgram.h). The server's one socket serves every peer:
 * a datagram's session id finds the session in one bucket of a table
 * indexed by the id's low bits (ids are the server's random picks, so
 * nobody can aim at one bucket), and the datagram costs at most one AEAD
 * open before it is dropped or delivered. A drop is counted and changes
 * nothing: not the replay window, not the peer address, not the keys.
 *
 * Roaming as WireGuard does it: the server sends to the source of the
 * last authenticated datagram of the session, so a client behind a NAT
 * that rebinds, or one that moved, is followed after its first datagram
 * from the new address.
 *
 * The client probes (an empty datagram with DGRAM_F_PROBE, answered by a
 * DGRAM_F_PROBE_REPLY) every UDP_PROBE_MS until one is answered, then
 * every keepalive period, which also keeps a NAT mapping alive. With
 * --transport auto, data goes over UDP once a probe is answered within
 * UDP_PROBE_TIMEOUT_MS, back over TLS when nothing was heard for
 * TUNNEL_DEAD_FACTOR keepalive periods, and UDP is tried again after
 * UDP_RETRY_FACTOR periods; the client tells the server with UDP_PATH
 * which way to send. With --transport udp data goes over UDP from the
 * start and never falls back.
 *
 * Batching: recvmmsg reads ahead into a ring of UDP_BATCH buffers (with
 * UDP_GRO each may hold several datagrams of one source, split here);
 * small datagrams (pings, ACKs, keepalives) are opened as soon as they
 * are read, the bulk UDP_RX_GRO_SLOTS buffers a loop round with GRO
 * (without, the whole ring), oldest first (udp_rx_turn): the queue forms
 * in the ring, where a ping can pass it, not in the socket, where it
 * cannot. Datagrams are opened in
 * place, their packets delivered per session in one batch (for a frontend
 * that injects GSO packets, a TUN device with offload, the batch's
 * in-order TCP segments merged first, base/gro.h: one write of up to 64
 * KiB instead of one per inner MTU, as the TLS path gets from carrying
 * the sender's GSO packets whole); sealing goes
 * into a send batch that sendmmsg sends when it is full and at the end of
 * each tunnel_send, runs of equal-size datagrams to one peer as one
 * UDP_SEGMENT (GSO) message where the kernel takes it. A client seals in
 * turns of UDP_PUMP_BYTES through its session's flow queue (udp_pump),
 * so that a ping or an ACK does not wait behind a batch's bulk. A client whose
 * socket is full keeps the unsent rest and pauses its frontend
 * (tunnel_send_blocked) until EPOLLOUT, instead of losing datagrams.
 * An offload packet from TUN is cut to the inner MTU (the outer 1500
 * minus IP, UDP and DGRAM_OVERHEAD) by the segmenter
 * before sealing, so TCP inside never makes outer fragments. A plain
 * packet above it that may not be fragmented (IPv4 with DF, IPv6) is not
 * sent: its sender gets ICMP "fragmentation needed" / "packet too big"
 * with the inner MTU (tunnel/unreach.h), written back into the frontend
 * when the send batch is flushed, and learns the path MTU as from a
 * router. IPv4 without DF goes, and the kernel fragments the outer
 * datagram (the socket allows it): that is what its sender allowed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../base/codel.h"
#include "../base/fqcodel.h"
#include "../base/gro.h"
#include "../base/gso.h"
#include "../base/icmperr.h"
#include "../dgram/dgram.h"
#include "session.h"
#include "udp.h"
#include "unreach.h"

enum {
	UDP_BATCH = 32,
	/* The largest datagram IPv4 carries; a sealed packet must fit. */
	UDP_DATAGRAM_MAX = 65507,
	UDP_SLOT = 65536,
	/* One GSO send: at most this many segments and bytes (the kernel's UDP_MAX_SEGMENTS is 64). */
	UDP_GSO_SEGS = 64,
	UDP_GSO_BYTES = 60000,
	UDP_ID_BUCKETS = 4096,
	/*
	 * Slots opened per turn (udp_rx_turn) before other fds get theirs:
	 * without GRO, UDP_RX_ROUNDS reads of UDP_BATCH datagrams; with
	 * UDP_GRO a slot may hold ~64 KiB, so 8 reads of 32 were up to 16 MB
	 * opened before the TUN device was read again (under one upload, an
	 * inner ping's answer waited 1.5 ms median in the server for it):
	 * UDP_RX_GRO_SLOTS. Either way a turn is ~256 KiB.
	 */
	UDP_RX_ROUNDS = 8,
	UDP_RX_GRO_SLOTS = 4,
	/*
	 * Express: a datagram of at most this many bytes (a ping, an ACK, a
	 * DNS query, a keepalive: 256 inner bytes) is opened when it is read,
	 * ahead of the ring's bulk, at most UDP_RX_EXPRESS_MAX of them a turn.
	 */
	UDP_RX_SMALL = DGRAM_OVERHEAD + 256,
	UDP_RX_EXPRESS_MAX = 64,
	/*
	 * An express datagram overtakes at most the ring's datagrams (32
	 * slots of up to 64). The receiver holds the previous, current and
	 * next key, so the ring must not span two key switches: with
	 * --rekey-packets below twice that, this end keeps arrival order. The
	 * peer's setting counts too; both ends take the same option.
	 */
	UDP_RX_EXPRESS_EPOCH_MIN = 2 * UDP_BATCH * UDP_GSO_SEGS,
	/* Probe period until the first reply, and how long auto waits for one. */
	UDP_PROBE_MS = 250,
	UDP_PROBE_TIMEOUT_MS = 3000,
	/* auto: UDP is tried again this many keepalive periods after it failed. */
	UDP_RETRY_FACTOR = 6,
	/* The outer path's MTU that the inner MTU is cut for: Ethernet's, or the client's route's if smaller. */
	UDP_OUTER_MTU = 1500,
	/* A route MTU that leaves less than IPv4's 576 inside is not believed. */
	UDP_INNER_MTU_MIN = 576,
	/*
	 * Send buffers: a client's burst must not block on the default ~208
	 * KiB (it pauses its frontend then). Receive buffers, per peer using
	 * UDP (a server's socket is shared, up to UDP_SOCK_BUF): the receive
	 * queue is where the standing queue forms when this end is the
	 * slower one, a FIFO every inner flow waits in, since no flow control
	 * pushes back on the sender as TCP's does on the TLS path. On a short
	 * path 4 MiB held ~3 ms under one TCP upload. The reader takes small
	 * datagrams ahead of the rest (udp_rx_express), but only those read:
	 * what the socket holds, a ping waits behind. 512 KiB (the kernel
	 * doubles it for its overhead) rides out the reader's spells off the
	 * CPU better than 256 KiB did (whose tail drops cost the inner TCP a
	 * tenth of its goodput) and keeps that wait short; the kernel's tail
	 * drop tells the inner TCP to slow down, as a router's short buffer
	 * does (udp_rcvbuf_for: a long path gets its BDP, as the TLS socket
	 * does). The README's "queue under load" has the measurements.
	 */
	UDP_SOCK_BUF = 4 << 20,
	UDP_RCVBUF_PER_PEER = 512 << 10,
	/*
	 * How long a flush waits for room in a full send buffer, and how
	 * often: a client has one peer to throttle (the TLS path pauses
	 * capture instead), a server must not hold up the others for long.
	 */
	UDP_SEND_WAIT_MS = 10,
	UDP_SEND_WAITS_CLIENT = 10,
	UDP_SEND_WAITS_SERVER = 1,
	/* Reasons to defer a receive-batch delivery: sessions touched per batch. */
	UDP_TOUCHED_MAX = UDP_BATCH,
	/*
	 * Client: bytes sealed per loop round (udp_pump); the rest waits in
	 * the flow queue. ~0.1 ms of sealing here: what a ping read in this
	 * round waits at most for its turn, and the socket's answers for
	 * theirs.
	 */
	UDP_PUMP_BYTES = 128 * 1024,
};

/*
 * CoDel on the receive queue (base/codel.h). A datagram channel has no
 * flow control: when this end is the slower one, the standing queue
 * forms in its socket's receive buffer and the read-ahead ring (with a 4
 * MiB buffer: several milliseconds at a few Gbit/s, measured 2 MB deep
 * under one TCP upload), where every inner flow waits behind it. The
 * kernel stamps each datagram on arrival, so the wait is known when it
 * is opened; past the target for an interval, an inner packet is
 * dropped (or CE-marked if ECN-capable) on CoDel's schedule and the
 * inner TCP slows down. The target is short because the queue is one
 * FIFO for every flow but the small datagrams (there is no flow queue
 * to give a flow its own turn, as the TLS path's sender has); the
 * interval is RFC 8289's. Express datagrams are not judged: dropping a
 * ping or an ACK slows no bulk flow down.
 */
#define UDP_AQM_TARGET_NS (1000ull * 1000)
#define UDP_AQM_INTERVAL_NS (100ull * 1000 * 1000)
/* A wait longer than this is a stepped clock, not a queue: not judged. */
#define UDP_AQM_WAIT_MAX_NS (10ull * 1000 * 1000 * 1000)

/* A read buffer in the ring: a datagram, or with GRO several of one source. */
struct udp_rx_slot {
	uint32_t len;          /* bytes [0, len) not opened yet (udp_rx_express takes small ones off the end) */
	uint32_t seg;          /* its datagrams' size; with GRO the last may be shorter */
	struct timespec stamp; /* arrival (CLOCK_REALTIME, SO_TIMESTAMPNS); zero without */
};

struct udp_sock {
	int fd;
	struct ev_io io;
	struct tunnel *t;
	struct session *owner; /* client: the session it belongs to; server: NULL */
	uint8_t *bufs;         /* UDP_BATCH slots of UDP_SLOT bytes */
	struct mmsghdr msgs[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage addrs[UDP_BATCH];
	bool gro;              /* datagrams may arrive coalesced (UDP_GRO) */
	bool stamps;           /* the kernel stamps arrivals (SO_TIMESTAMPNS) */
	struct codel_vars aqm; /* CoDel on this socket's receive queue */
	/* the read-ahead ring: slots [rx_head, rx_head + rx_count) are read, not all opened */
	struct udp_rx_slot rx[UDP_BATCH];
	unsigned rx_head, rx_count;
	size_t rx_bytes;       /* their bytes not opened yet: the queue behind the packet being judged */
	bool rx_more;          /* the last read filled every free slot: the kernel may hold more */
	uint64_t rx_round;     /* the loop round of the last turn (udp_rx_turn) */
	struct ev_timer rx_next; /* the next round's turn, while the ring is not empty */
	uint64_t rx_wait_ns;   /* the slot being opened: how long it waited */
	struct timespec rx_now_real; /* the turn's clock, against the kernel's stamps */
	uint64_t rx_now_ns;    /* and CLOCK_MONOTONIC, for CoDel's schedule */
	char ctrl[UDP_BATCH][CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct timespec))]
		__attribute__((aligned(8)));
};

struct udp {
	struct udp_sock *server_sock;
	int server_rcvbuf;     /* what udp_server_rcvbuf last set */
	uint64_t rcvbuf_sum;   /* the shares of the sessions on UDP (udp_server_share) */
	struct session *buckets[UDP_ID_BUCKETS];
	enum tunnel_transport transport;
	uint64_t rekey_packets;
	uint64_t rekeys_done;  /* of channels already freed */
	unsigned inner_mtu;
	/* the send batch: all for one socket; [tx_sent, tx_count) not sent yet */
	int tx_fd;
	struct udp_sock *tx_sock;
	unsigned tx_count, tx_sent;
	bool tx_blocked;       /* client: the socket was full, EPOLLOUT armed, the frontend paused */
	bool pumping;          /* client: the packet being sealed points into a session's flow queue */
	uint8_t *tx_bufs;
	struct mmsghdr tx_msgs[UDP_BATCH];
	struct iovec tx_iov[UDP_BATCH];
	struct sockaddr_storage tx_addrs[UDP_BATCH];
	/* GSO: each message's segment size, segment count, whether a short one ended it */
	bool gso, tx_join;
	unsigned send_waits;   /* UDP_SEND_WAITS_* of the role */
	uint16_t tx_seg[UDP_BATCH];
	unsigned tx_segs[UDP_BATCH];
	bool tx_closed[UDP_BATCH];
	char tx_ctrl[UDP_BATCH][CMSG_SPACE(sizeof(uint16_t))] __attribute__((aligned(8)));
	uint8_t *scratch;      /* PKT_SEGMENT_SCRATCH for the segmenter */
	struct unreach *too_big; /* the "too big" answers of the send batch */
	uint8_t *gro_arena;    /* PKT_COALESCE_ARENA when the frontend injects GSO packets */
	struct session *touched[UDP_TOUCHED_MAX];
	unsigned touched_count;
	bool express;          /* small datagrams go first (udp_rx_express) */
};

static uint64_t now_ms(const struct tunnel *t)
{
	return evloop_now_ms(t->loop);
}

/* ---- sockets ---- */

static void udp_on_events(struct evloop *loop, struct ev_io *io, uint32_t events);
static void udp_on_rx_next(struct evloop *loop, struct ev_timer *timer);

static void udp_sock_close(struct tunnel *t, struct udp_sock *u)
{
	if (!u)
		return;
	evloop_timer_stop(t->loop, &u->rx_next);
	if (u->fd >= 0) {
		evloop_io_stop(t->loop, &u->io);
		close(u->fd);
	}
	free(u->bufs);
	free(u);
}

static void udp_sock_buffers(int fd)
{
	tunnel_sockbuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, UDP_RCVBUF_PER_PEER);
	tunnel_sockbuf(fd, SO_SNDBUFFORCE, SO_SNDBUF, UDP_SOCK_BUF);
}

/*
 * A peer's receive buffer: UDP_RCVBUF_PER_PEER on a short path; on a long
 * one (the TLS socket's RTT at the UDP set-up, TUNNEL_RCV_LONG_PATH_US or
 * more) its bandwidth-delay product at TUNNEL_RCV_RATE, up to
 * UDP_SOCK_BUF, so that a window's burst fits (with 256 KiB at +20 ms,
 * goodput fell 13 %). Sized once: a path that grows later keeps it.
 */
static int udp_rcvbuf_for(const struct session *s)
{
	uint64_t rtt_us = session_rtt_us(s), bdp = rtt_us * TUNNEL_RCV_RATE_BYTES_PER_US;

	if (rtt_us < TUNNEL_RCV_LONG_PATH_US || bdp < UDP_RCVBUF_PER_PEER)
		return UDP_RCVBUF_PER_PEER;
	return bdp > UDP_SOCK_BUF ? UDP_SOCK_BUF : (int)bdp;
}

/* Server: its socket's receive buffer, the sum of the shares of the sessions on UDP, within bounds. */
static void udp_server_rcvbuf(struct tunnel *t)
{
	struct udp *udp = t->udp;
	uint64_t sum = udp->rcvbuf_sum;
	int bytes = sum < UDP_RCVBUF_PER_PEER ? UDP_RCVBUF_PER_PEER : sum > UDP_SOCK_BUF ? UDP_SOCK_BUF : (int)sum;

	if (!udp->server_sock || bytes == udp->server_rcvbuf)
		return;
	tunnel_sockbuf(udp->server_sock->fd, SO_RCVBUFFORCE, SO_RCVBUF, bytes);
	udp->server_rcvbuf = bytes;
}

/* Server: the session's share joins the socket's buffer (on) or leaves it. */
static void udp_server_share(struct session *s, bool on)
{
	struct udp *udp = s->tunnel->udp;

	if (on) {
		s->udp.rcvbuf = udp_rcvbuf_for(s);
		udp->rcvbuf_sum += (uint64_t)s->udp.rcvbuf;
	} else {
		udp->rcvbuf_sum -= (uint64_t)s->udp.rcvbuf;
		s->udp.rcvbuf = 0;
	}
	udp_server_rcvbuf(s->tunnel);
}

/*
 * GSO where the kernel has it (the option exists; a device refusing it is
 * caught at the send); GRO likewise, split again on receipt.
 */
static void udp_sock_offload(struct tunnel *t, struct udp_sock *u)
{
	int zero = 0, one = 1;

	if (setsockopt(u->fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) < 0)
		t->udp->gso = false;
	u->gro = setsockopt(u->fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	/* Without arrival stamps there is no wait to judge: no receive-side CoDel. */
	u->stamps = setsockopt(u->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) == 0;
}

/*
 * A non-blocking UDP socket on addr: bound for the server, connected for
 * a client. The kernel may fragment what is above the path MTU (DONT):
 * a datagram is never refused for its size.
 */
static struct udp_sock *udp_sock_open(struct tunnel *t, const struct sockaddr_storage *addr,
				      socklen_t len, bool server, struct session *owner)
{
	struct udp_sock *u = calloc(1, sizeof(*u));
	int one = 1, pmtu = IP_PMTUDISC_DONT, ret;

	if (!u)
		return NULL;
	u->t = t;
	u->owner = owner;
	ev_timer_init(&u->rx_next, udp_on_rx_next, u);
	u->fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	u->bufs = malloc((size_t)UDP_BATCH * UDP_SLOT);
	if (u->fd < 0 || !u->bufs)
		goto err;
	udp_sock_buffers(u->fd);
	udp_sock_offload(t, u);
	if (addr->ss_family == AF_INET)
		setsockopt(u->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
	else
		setsockopt(u->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
	if (server) {
		setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ret = bind(u->fd, (const struct sockaddr *)addr, len);
	} else {
		ret = connect(u->fd, (const struct sockaddr *)addr, len);
	}
	if (ret < 0)
		goto err;
	ev_io_init(&u->io, u->fd, udp_on_events, u);
	ret = evloop_io_start(t->loop, &u->io, EPOLLIN);
	if (ret < 0) {
		errno = -ret;
		goto err;
	}
	return u;
err:
	ret = errno;
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	udp_sock_close(t, u);
	errno = ret;
	return NULL;
}

/* ---- the server's id table ---- */

static struct session **udp_bucket(struct udp *udp, uint32_t id)
{
	return &udp->buckets[id % UDP_ID_BUCKETS];
}

static struct session *udp_lookup(struct udp *udp, uint32_t id)
{
	for (struct session *s = *udp_bucket(udp, id); s; s = s->udp.hash_next)
		if (s->udp.id == id)
			return s;
	return NULL;
}

/* A random id, never 0 and not in use. 0 when none is found (cannot happen in practice). */
static uint32_t udp_new_id(struct udp *udp)
{
	uint32_t id;

	for (int i = 0; i < 16; i++) {
		if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
			return 0;
		if (id && !udp_lookup(udp, id))
			return id;
	}
	return 0;
}

static void udp_unhash(struct udp *udp, struct session *s)
{
	for (struct session **pp = udp_bucket(udp, s->udp.id); *pp; pp = &(*pp)->udp.hash_next) {
		if (*pp == s) {
			*pp = s->udp.hash_next;
			break;
		}
	}
	s->udp.hash_next = NULL;
}

/* ---- sending ---- */

static bool same_addr(const struct sockaddr_storage *a, socklen_t a_len,
		      const struct sockaddr_storage *b, socklen_t b_len)
{
	return a_len == b_len && memcmp(a, b, a_len) == 0;
}


/* The kernel refused a GSO send (a device without it): plain datagrams from now on. */
static void udp_gso_failed(struct tunnel *t, const struct mmsghdr *m)
{
	if (!m->msg_hdr.msg_controllen || !t->udp->gso)
		return;
	t->udp->gso = false;
	tunnel_log(t, TUNNEL_LOG_WARN, "UDP_SEGMENT refused (%s): sending plain datagrams", strerror(errno));
}

/*
 * Sends the batch from tx_sent on. False when the socket has no room for
 * the rest (EAGAIN; ENOBUFS likewise), which stays. An ICMP error of an
 * earlier datagram (ECONNREFUSED on a connected socket) costs the message
 * that met it, and so does a refused GSO send.
 */
static bool udp_send_pending(struct tunnel *t)
{
	struct udp *udp = t->udp;
	int n;

	while (udp->tx_sent < udp->tx_count) {
		n = sendmmsg(udp->tx_fd, udp->tx_msgs + udp->tx_sent, udp->tx_count - udp->tx_sent,
			     MSG_DONTWAIT);
		if (n > 0) {
			udp->tx_sent += (unsigned)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
			return false;
		if (n < 0 && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP))
			udp_gso_failed(t, &udp->tx_msgs[udp->tx_sent]);
		t->stats.drop_tx_full += udp->tx_segs[udp->tx_sent++];
	}
	udp->tx_count = udp->tx_sent = 0;
	return true;
}

/*
 * The batch must be empty now (it is full, or the next datagram is for
 * another socket): wait for room, bounded (a sender faster than the NIC
 * is throttled here instead of losing datagrams, which TCP inside would
 * pay for); then the rest is lost like packets on a congested link.
 */
static void udp_flush_wait(struct tunnel *t)
{
	struct udp *udp = t->udp;
	struct pollfd pfd = { .fd = udp->tx_fd, .events = POLLOUT };

	for (unsigned waited = 0; !udp_send_pending(t); waited++) {
		if (waited >= udp->send_waits || poll(&pfd, 1, UDP_SEND_WAIT_MS) <= 0) {
			for (unsigned i = udp->tx_sent; i < udp->tx_count; i++)
				t->stats.drop_tx_full += udp->tx_segs[i];
			udp->tx_count = udp->tx_sent = 0;
			return;
		}
	}
}

/* The client's socket is full: the rest waits for EPOLLOUT, the frontend for udp_unblock. */
static bool udp_block(struct tunnel *t)
{
	struct udp *udp = t->udp;

	if (udp->tx_blocked)
		return true;
	if (!udp->tx_sock || evloop_io_set(t->loop, &udp->tx_sock->io, EPOLLIN | EPOLLOUT) < 0)
		return false;
	udp->tx_blocked = true;
	t->stats.udp_tx_blocked++;
	return true;
}

static void udp_unblock(struct tunnel *t)
{
	struct udp *udp = t->udp;

	if (!udp->tx_blocked)
		return;
	udp->tx_blocked = false;
	if (udp->tx_sock)
		evloop_io_set(t->loop, &udp->tx_sock->io, EPOLLIN);
	if (t->cb.writable)
		t->cb.writable(t->cb_ctx);
}

/*
 * The end of a send: what the socket takes goes. A client keeps the rest
 * and stops reading its frontend until the socket has room (as the TLS
 * path does above its high-water mark), instead of losing it; a server
 * must not hold up its other peers for one, so it waits once, briefly.
 */
void udp_flush(struct tunnel *t)
{
	if (!t->udp)
		return;
	unreach_flush(t, t->udp->too_big);
	if (udp_send_pending(t))
		return;
	if (t->role_kind == TUNNEL_CLIENT && udp_block(t))
		return;
	udp_flush_wait(t);
}

bool udp_send_blocked(const struct tunnel *t)
{
	return t->udp && t->udp->tx_blocked;
}

/*
 * With GSO, a datagram joins the batch's last message when it goes to the
 * same place, is no larger than that message's segments (a smaller one
 * ends the run, as UDP_SEGMENT wants) and the whole stays under
 * UDP_GSO_BYTES and UDP_GSO_SEGS: one trip down the stack for many.
 */
static bool udp_tx_joins(const struct udp *udp, int fd, const struct sockaddr_storage *to,
			 socklen_t to_len, size_t size)
{
	unsigned i = udp->tx_count - 1;

	/*
	 * Segments above the path MTU make the kernel refuse the whole send
	 * (EMSGSIZE, once a second datagram makes it GSO): the first datagram
	 * sets the segment size, so it is the one held to the MTU (a plain
	 * inner packet above the inner MTU goes alone, fragmented).
	 */
	return udp->gso && udp->tx_count && udp->tx_fd == fd && !udp->tx_closed[i] &&
	       udp->tx_seg[i] <= udp->inner_mtu + DGRAM_OVERHEAD &&
	       size <= udp->tx_seg[i] && udp->tx_segs[i] < UDP_GSO_SEGS &&
	       udp->tx_iov[i].iov_len + size <= UDP_GSO_BYTES &&
	       (!to || same_addr(&udp->tx_addrs[i], udp->tx_msgs[i].msg_hdr.msg_namelen, to, to_len));
}

/* Where the next datagram of size bytes to sock and to (NULL: connected) is written; udp_tx_commit adds it. */
static uint8_t *udp_tx_slot(struct tunnel *t, struct udp_sock *sock, const struct sockaddr_storage *to,
			    socklen_t to_len, size_t size)
{
	struct udp *udp = t->udp;
	int fd = sock->fd;
	unsigned i;

	udp->tx_join = udp_tx_joins(udp, fd, to, to_len, size);
	if (udp->tx_join) {
		i = udp->tx_count - 1;
		return (uint8_t *)udp->tx_iov[i].iov_base + udp->tx_iov[i].iov_len;
	}
	if (udp->tx_count && (udp->tx_count == UDP_BATCH || udp->tx_fd != fd))
		udp_flush_wait(t);
	i = udp->tx_count;
	udp->tx_fd = fd;
	udp->tx_sock = sock;
	udp->tx_msgs[i].msg_hdr = (struct msghdr){
		.msg_iov = &udp->tx_iov[i],
		.msg_iovlen = 1,
	};
	if (to) {
		memcpy(&udp->tx_addrs[i], to, to_len);
		udp->tx_msgs[i].msg_hdr.msg_name = &udp->tx_addrs[i];
		udp->tx_msgs[i].msg_hdr.msg_namelen = to_len;
	}
	udp->tx_iov[i] = (struct iovec){ udp->tx_bufs + (size_t)i * UDP_SLOT, 0 };
	udp->tx_segs[i] = 0;
	return udp->tx_iov[i].iov_base;
}

static void udp_tx_commit(struct udp *udp, size_t n)
{
	unsigned i;
	struct cmsghdr *cm;

	if (udp->tx_join) {
		i = udp->tx_count - 1;
		udp->tx_iov[i].iov_len += n;
		udp->tx_closed[i] = n < udp->tx_seg[i];
		if (++udp->tx_segs[i] == 2) {
			/* A second segment: the message becomes a GSO one. */
			udp->tx_msgs[i].msg_hdr.msg_control = udp->tx_ctrl[i];
			udp->tx_msgs[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
			cm = CMSG_FIRSTHDR(&udp->tx_msgs[i].msg_hdr);
			cm->cmsg_level = SOL_UDP;
			cm->cmsg_type = UDP_SEGMENT;
			cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
			memcpy(CMSG_DATA(cm), &udp->tx_seg[i], sizeof(uint16_t));
		}
		return;
	}
	i = udp->tx_count++;
	udp->tx_iov[i].iov_len = n;
	udp->tx_seg[i] = (uint16_t)n;
	udp->tx_segs[i] = 1;
	udp->tx_closed[i] = false;
}

/* Seals len bytes (or a probe) for s into the batch. 0, or -errno when it cannot go over UDP. */
static int udp_seal(struct session *s, uint8_t flags, const uint8_t *data, size_t len)
{
	struct tunnel *t = s->tunnel;
	struct udp *udp = t->udp;
	bool server = t->role_kind == TUNNEL_SERVER;
	const struct sockaddr_storage *to = server ? &s->udp.peer : NULL;
	struct udp_sock *sock = server ? udp->server_sock : s->udp.sock;
	size_t size = len + DGRAM_OVERHEAD;
	uint8_t *slot;
	long n;

	if (size > UDP_DATAGRAM_MAX)
		return -EMSGSIZE;
	slot = udp_tx_slot(t, sock, to, s->udp.peer_len, size);
	n = dgram_seal(s->udp.chan, s->udp.id, flags, data, len, slot, size, now_ms(t));
	if (n < 0)
		return (int)n;
	udp_tx_commit(udp, (size_t)n);
	t->stats.udp_tx_datagrams++;
	t->stats.udp_tx_bytes += (uint64_t)n;
	return 0;
}

/* What a datagram cannot carry goes by TLS; a packet taken from the flow queue must not go back into it. */
static void udp_send_tls(struct session *s, const struct pkt *p)
{
	if (s->tunnel->udp->pumping)
		session_send_now(s, p);
	else
		session_send_packet(s, p);
}

static void udp_send_plain(struct session *s, const struct pkt *p)
{
	struct tunnel *t = s->tunnel;

	if (p->len > t->udp->inner_mtu && icmperr_exceeds(p->data, p->len, t->udp->inner_mtu)) {
		t->stats.drop_too_big++;
		unreach_too_big(t, t->udp->too_big, p, t->udp->inner_mtu);
		return;
	}
	if (udp_seal(s, 0, p->data, p->len) < 0) {
		/* Too big for a datagram, or the counter spent: TLS carries it. */
		udp_send_tls(s, p);
		return;
	}
	t->stats.tx_packets++;
	t->stats.tx_bytes += p->len;
	session_trace(t, "framed", s->name, p);
}

static int udp_emit_segment(void *ctx, const struct pkt *seg)
{
	struct session *s = ctx;

	s->tunnel->stats.tx_segmented++;
	udp_send_plain(s, seg);
	return 0;
}

void udp_send_packet(struct session *s, const struct pkt *p)
{
	struct udp *udp = s->tunnel->udp;
	struct pkt cut;

	if (pkt_is_plain(p)) {
		udp_send_plain(s, p);
		return;
	}
	/* Segments no larger than the inner MTU: TCP inside never makes outer fragments. */
	cut = *p;
	if (cut.off.gso_size && cut.off.hdr_len < udp->inner_mtu &&
	    cut.off.gso_size > udp->inner_mtu - cut.off.hdr_len)
		cut.off.gso_size = (uint16_t)(udp->inner_mtu - cut.off.hdr_len);
	/* UDP GSO cannot be cut here (its segments are datagrams): TLS takes it whole. */
	if (pkt_segment(&cut, udp->scratch, PKT_SEGMENT_SCRATCH, udp_emit_segment, s) < 0)
		udp_send_tls(s, p);
}

bool udp_sending(const struct session *s)
{
	return s->udp.send && s->udp.chan && s->state == SESSION_ESTABLISHED;
}

/*
 * The client's pacing. Sealing is this end's bottleneck on a fast path,
 * and the frontend hands over up to PKT_BATCH_MAX GSO packets at once
 * (~4 MB): sealed in arrival order, a ping read with them waited behind
 * all of it, and behind what the TUN device held meanwhile (RTT under
 * one TCP upload 5 ms, against 2.6 over TLS, whose flow queue gives the
 * ping its turn). So, as on the TLS path, what cannot be sealed in this
 * turn waits in the session's flow queue (base/fqcodel.h): the frontend
 * is read ahead, DRR gives a sparse flow the next turn, and CoDel keeps
 * the bulk flows' standing queue short.
 */
static bool udp_pump_room(struct session *s)
{
	uint64_t round = evloop_round(s->tunnel->loop);

	if (s->udp.pump_round != round) {
		s->udp.pump_round = round;
		s->udp.pump_bytes = 0;
	}
	return s->udp.pump_bytes < UDP_PUMP_BYTES && !s->tunnel->udp->tx_blocked;
}

void udp_queue_packet(struct session *s, const struct pkt *p)
{
	if (!s->fq || (fqcodel_empty(s->fq) && udp_pump_room(s))) {
		s->udp.pump_bytes += p->len;
		udp_send_packet(s, p);
		return;
	}
	if (fqcodel_enqueue(s->fq, p) < 0)
		s->tunnel->stats.drop_malformed++;
}

void udp_pump(struct session *s)
{
	struct tunnel *t = s->tunnel;
	bool plain_sealed = false;
	struct pkt p;

	t->udp->pumping = true;
	/* A leaving session's rest goes by TLS, before its MOVED (session_flush). */
	while (s->fq && udp_sending(s) && !s->leaving && udp_pump_room(s) && fqcodel_dequeue(s->fq, &p)) {
		/* DRR gives new flows the first turns: what they sent leaves before the bulk is sealed. */
		if (plain_sealed && !pkt_is_plain(&p))
			udp_send_pending(t);
		plain_sealed = pkt_is_plain(&p);
		s->udp.pump_bytes += p.len;
		udp_send_packet(s, &p);
	}
	t->udp->pumping = false;
	/* A blocked socket restarts it when writable (udp_on_events). */
	if (s->fq && !fqcodel_empty(s->fq) && !t->udp->tx_blocked && !s->leaving)
		evloop_timer_next_round(t->loop, &s->udp.pump);
}

/* The next turn; a channel that stopped sending leaves the queue to TLS. */
static void udp_on_pump(struct evloop *loop, struct ev_timer *timer)
{
	struct session *s = timer->arg;

	(void)loop;
	if (!udp_sending(s)) {
		session_flush(s);
		return;
	}
	udp_pump(s);
	udp_flush(s->tunnel);
}

static void udp_send_control(struct session *s, size_t (*put)(uint8_t *, size_t, bool), bool on)
{
	uint8_t frame[FRAME_HEADER_LEN + FRAME_UDP_PATH_LEN];

	if (session_append(s, frame, put(frame, sizeof(frame), on)))
		session_flush(s);
}

/* ---- receiving ---- */

static void udp_touch(struct udp *udp, struct session *s)
{
	if (s->udp.deliver_queued || udp->touched_count == UDP_TOUCHED_MAX)
		return;
	s->udp.deliver_queued = true;
	udp->touched[udp->touched_count++] = s;
}

static void udp_deliver_touched(struct udp *udp)
{
	for (unsigned i = 0; i < udp->touched_count; i++) {
		udp->touched[i]->udp.deliver_queued = false;
		session_deliver(udp->touched[i]);
	}
	udp->touched_count = 0;
}

static void udp_path_up(struct session *s);

/*
 * Server: the session's peer is where its newest authenticated datagram
 * came from. Newest by counter, not by the order of opening: the reader
 * opens small datagrams ahead of older bulk (udp_rx_express), so after a
 * NAT rebinding a keepalive from the new address may be opened before
 * datagrams from the old one that were read earlier.
 */
static void udp_follow(struct session *s, const struct sockaddr_storage *from, socklen_t from_len,
		       uint64_t counter)
{
	struct tunnel *t = s->tunnel;
	char text[64];

	if (s->udp.peer_len && counter < s->udp.peer_counter)
		return;
	s->udp.peer_counter = counter;
	if (same_addr(&s->udp.peer, s->udp.peer_len, from, from_len))
		return;
	if (s->udp.peer_len) {
		t->stats.udp_roams++;
		tunnel_format_sockaddr((const struct sockaddr *)from, text, sizeof(text));
		tunnel_log(t, TUNNEL_LOG_INFO, "client '%s': UDP path moved to %s", s->name, text);
	}
	memcpy(&s->udp.peer, from, from_len);
	s->udp.peer_len = from_len;
	s->udp.send = s->udp.path_on;
}

/* An authentic datagram's plaintext: a packet, or nothing (probe, reply, keepalive). */
static void udp_plaintext(struct session *s, uint8_t *data, size_t len)
{
	struct tunnel *t = s->tunnel;
	struct pkt p = { .data = data, .len = (uint32_t)len };
	unsigned version = data[0] >> 4;

	if (len < 20 || (version != 4 && version != 6) || (version == 6 && len < 40)) {
		t->stats.drop_malformed++;
		return;
	}
	/* Set first: a full batch is delivered from inside session_receive_packet. */
	s->udp.rx_coalesce = true;
	session_receive_packet(s, &p);
	udp_touch(t->udp, s);
}

void udp_coalesce(struct session *s)
{
	struct tunnel *t = s->tunnel;

	if (!s->udp.rx_coalesce)
		return;
	s->udp.rx_coalesce = false;
	if (t->udp && t->udp->gro_arena)
		t->stats.udp_rx_coalesced += pkt_coalesce(&s->rx_batch, t->udp->gro_arena, PKT_COALESCE_ARENA);
}

static void udp_count_drop(struct tunnel *t, long why)
{
	if (why == -DGRAM_DROP_AUTH)
		t->stats.udp_drop_auth++;
	else if (why == -DGRAM_DROP_REPLAY)
		t->stats.udp_drop_replay++;
	else
		t->stats.udp_drop_malformed++;
}

/* The segment size of a GRO-coalesced buffer (0 for one datagram), and its arrival stamp (zero without). */
static size_t udp_read_cmsgs(struct msghdr *m, struct timespec *stamp)
{
	int size = 0;

	*stamp = (struct timespec){ 0 };
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && cm->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(&size, CMSG_DATA(cm), sizeof(int));
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(*stamp)))
			memcpy(stamp, CMSG_DATA(cm), sizeof(*stamp));
	}
	return size > 0 ? (size_t)size : 0;
}

/* How long a slot has waited since the kernel stamped it, at this turn's clock; 0 when unknown. */
static uint64_t udp_rx_waited(const struct udp_sock *u, const struct udp_rx_slot *slot)
{
	int64_t wait;

	if (!slot->stamp.tv_sec && !slot->stamp.tv_nsec)
		return 0;
	wait = (int64_t)(u->rx_now_real.tv_sec - slot->stamp.tv_sec) * 1000000000 +
	       (u->rx_now_real.tv_nsec - slot->stamp.tv_nsec);
	return wait > 0 && (uint64_t)wait < UDP_AQM_WAIT_MAX_NS ? (uint64_t)wait : 0;
}

/*
 * CoDel's verdict on a packet that waited u->rx_wait_ns: true when it is
 * dropped here (counted); an ECN-capable one is CE-marked and goes on.
 */
static bool udp_aqm_drops(struct udp_sock *u, uint8_t *data, size_t len)
{
	static const struct codel_params aqm = { UDP_AQM_TARGET_NS, UDP_AQM_INTERVAL_NS };
	struct tunnel *t = u->t;
	/* RFC 8289's "more than one packet's worth queued": else no standing queue. */
	bool standing = u->rx_more || u->rx_bytes > UDP_OUTER_MTU;

	if (!u->stamps || !codel_judge(&u->aqm, &aqm, u->rx_wait_ns, u->rx_now_ns, standing))
		return false;
	if (fqcodel_mark_ce(data, (uint32_t)len)) {
		t->stats.udp_aqm_marks++;
		return false;
	}
	t->stats.udp_aqm_drops++;
	return true;
}

/* One datagram; an express one (udp_rx_express) is not judged by CoDel. */
static void udp_receive_one(struct udp_sock *u, uint8_t *buf, size_t len,
			    const struct sockaddr_storage *from, socklen_t from_len, bool express)
{
	struct tunnel *t = u->t;
	struct dgram_header h;
	struct session *s;
	long n;

	if (dgram_parse_header(buf, len, &h) < 0) {
		t->stats.udp_drop_malformed++;
		return;
	}
	s = u->owner ? (u->owner->udp.id == h.session_id ? u->owner : NULL) : udp_lookup(t->udp, h.session_id);
	if (!s || !s->udp.chan || s->state != SESSION_ESTABLISHED) {
		t->stats.udp_drop_unknown_session++;
		return;
	}
	n = dgram_open(s->udp.chan, &h, buf, len);
	if (n < 0) {
		udp_count_drop(t, n);
		return;
	}
	t->stats.udp_rx_datagrams++;
	t->stats.udp_rx_bytes += len;
	s->udp.last_rx_ms = now_ms(t);
	if (!u->owner)
		udp_follow(s, from, from_len, h.counter);
	if (h.flags & DGRAM_F_PROBE)
		(void)udp_seal(s, DGRAM_F_PROBE_REPLY, NULL, 0);
	if ((h.flags & DGRAM_F_PROBE_REPLY) && u->owner)
		udp_path_up(s);
	if (n > 0 && (express || !udp_aqm_drops(u, buf + DGRAM_HEADER_LEN, (size_t)n)))
		udp_plaintext(s, buf + DGRAM_HEADER_LEN, (size_t)n);
}

/* Opens bytes [from, to) of slot i: datagrams of the slot's segment size, the last may be shorter. */
static void udp_rx_open(struct udp_sock *u, unsigned i, uint32_t from, uint32_t to, bool express)
{
	struct udp_rx_slot *slot = &u->rx[i];
	uint8_t *buf = u->bufs + (size_t)i * UDP_SLOT;
	uint32_t one;

	u->rx_wait_ns = udp_rx_waited(u, slot);
	if (u->rx_wait_ns / 1000 > u->t->stats.udp_rx_wait_max_us)
		u->t->stats.udp_rx_wait_max_us = u->rx_wait_ns / 1000;
	while (from < to) {
		one = to - from < slot->seg ? to - from : slot->seg;
		u->rx_bytes -= one;
		udp_receive_one(u, buf + from, one, &u->addrs[i], u->msgs[i].msg_hdr.msg_namelen, express);
		from += one;
	}
}

/*
 * Small datagrams first: a slot of them is opened as soon as it is read
 * (when all of them fit the budget), and so is a small last datagram of a
 * GRO slot (a different size ends a GRO run, so a ping or an ACK between
 * bulk datagrams arrives as one). At most *budget datagrams a turn, so
 * that small datagrams cannot take the whole turn; the budget is the
 * socket's, not a peer's: a peer that sends only small ones can use it
 * up, and the others' small datagrams then wait in the ring's order, as
 * they did before there was an express lane. Off when this end re-keys
 * more often than UDP_RX_EXPRESS_EPOCH_MIN (a test setting): see there.
 */
static void udp_rx_express(struct udp_sock *u, unsigned i, unsigned *budget)
{
	struct udp_rx_slot *slot = &u->rx[i];
	uint32_t tail = slot->len % slot->seg, count = (slot->len + slot->seg - 1) / slot->seg;

	if (!u->t->udp->express)
		return;
	if (slot->seg <= UDP_RX_SMALL && count <= *budget) {
		*budget -= count;
		u->t->stats.udp_rx_express += count;
		udp_rx_open(u, i, 0, slot->len, true);
		slot->len = 0;
	} else if (tail && tail <= UDP_RX_SMALL && *budget) {
		(*budget)--;
		u->t->stats.udp_rx_express++;
		udp_rx_open(u, i, slot->len - tail, slot->len, true);
		slot->len -= tail;
	}
}

static void udp_rx_arm(struct udp_sock *u, unsigned i)
{
	u->iov[i] = (struct iovec){ u->bufs + (size_t)i * UDP_SLOT, UDP_SLOT };
	u->msgs[i].msg_hdr = (struct msghdr){
		.msg_name = &u->addrs[i],
		.msg_namelen = sizeof(u->addrs[i]),
		.msg_iov = &u->iov[i],
		.msg_iovlen = 1,
		.msg_control = u->gro || u->stamps ? u->ctrl[i] : NULL,
		.msg_controllen = u->gro || u->stamps ? sizeof(u->ctrl[i]) : 0,
	};
}

/* A buffer just read into slot i joins the ring; its small datagrams are opened now. */
static void udp_rx_keep(struct udp_sock *u, unsigned i, unsigned *express)
{
	struct udp_rx_slot *slot = &u->rx[i];
	struct mmsghdr *m = &u->msgs[i];
	size_t seg = udp_read_cmsgs(&m->msg_hdr, &slot->stamp);

	slot->len = m->msg_len;
	if ((m->msg_hdr.msg_flags & MSG_TRUNC) || !slot->len) {
		u->t->stats.udp_drop_malformed++;
		slot->len = 0;
		return;
	}
	slot->seg = !seg || seg >= slot->len ? slot->len : (uint32_t)seg;
	u->rx_bytes += slot->len;
	udp_rx_express(u, i, express);
}

/*
 * Reads into the ring's free slots: one recvmmsg up to the array's end,
 * one more from its start. u->rx_more: every free slot was filled (the
 * kernel may hold more).
 */
static void udp_rx_read(struct udp_sock *u, unsigned *express)
{
	unsigned first, run;
	int n;

	u->rx_more = false;
	while (u->rx_count < UDP_BATCH) {
		first = (u->rx_head + u->rx_count) % UDP_BATCH;
		run = UDP_BATCH - first < UDP_BATCH - u->rx_count ? UDP_BATCH - first : UDP_BATCH - u->rx_count;
		for (unsigned k = 0; k < run; k++)
			udp_rx_arm(u, first + k);
		n = recvmmsg(u->fd, &u->msgs[first], run, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		u->rx_count += (unsigned)n;
		for (unsigned k = 0; k < (unsigned)n; k++)
			udp_rx_keep(u, first + k, express);
		if ((unsigned)n < run)
			return;
	}
	u->rx_more = true;
}

/*
 * Opens up to `slots` slots from the ring's head, oldest first, and frees
 * them; a slot with nothing left (all express, or refused when read) is
 * freed without using one.
 */
static void udp_rx_bulk(struct udp_sock *u, unsigned slots)
{
	unsigned i;

	while (u->rx_count && (slots || !u->rx[u->rx_head].len)) {
		i = u->rx_head;
		if (u->rx[i].len) {
			udp_rx_open(u, i, 0, u->rx[i].len, false);
			slots--;
		}
		u->rx_head = (i + 1) % UDP_BATCH;
		u->rx_count--;
	}
}

/*
 * One turn of the receive side, once per loop round: read ahead into the
 * ring, its small datagrams opened and delivered first, then the oldest
 * UDP_RX_GRO_SLOTS slots (without GRO: all, UDP_RX_ROUNDS times). What
 * is left waits for the next round, after the other fds had theirs.
 */
static void udp_rx_turn(struct udp_sock *u)
{
	struct tunnel *t = u->t;
	uint64_t round = evloop_round(t->loop);
	unsigned express = UDP_RX_EXPRESS_MAX;
	int rounds = u->gro ? 1 : UDP_RX_ROUNDS;
	struct timespec mono;

	if (u->rx_round == round)
		return;
	u->rx_round = round;
	/* The stamps are CLOCK_REALTIME; CoDel's schedule runs on the monotonic clock. */
	clock_gettime(CLOCK_REALTIME, &u->rx_now_real);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	u->rx_now_ns = (uint64_t)mono.tv_sec * 1000000000 + (uint64_t)mono.tv_nsec;
	for (int r = 0; r < rounds; r++) {
		udp_rx_read(u, &express);
		/* Packets point into the slots: delivered before a read reuses them. */
		udp_deliver_touched(t->udp);
		udp_rx_bulk(u, u->gro ? UDP_RX_GRO_SLOTS : UDP_BATCH);
		udp_deliver_touched(t->udp);
		if (!u->rx_more)
			break;
	}
	if (u->rx_count)
		evloop_timer_next_round(t->loop, &u->rx_next);
}

static void udp_on_rx_next(struct evloop *loop, struct ev_timer *timer)
{
	struct udp_sock *u = timer->arg;

	(void)loop;
	udp_rx_turn(u);
	udp_flush(u->t);
}

/* Readable (or an error queued), and for a blocked client writable: the rest of its batch goes. */
static void udp_on_events(struct evloop *loop, struct ev_io *io, uint32_t events)
{
	struct udp_sock *u = io->arg;
	struct tunnel *t = u->t;

	(void)loop;
	if ((events & EPOLLOUT) && t->udp->tx_blocked && t->udp->tx_sock == u && udp_send_pending(t)) {
		udp_unblock(t);
		if (u->owner)
			evloop_timer_next_round(t->loop, &u->owner->udp.pump);
	}
	if (events & ~(uint32_t)EPOLLOUT)
		udp_rx_turn(u);
	udp_flush(t);
}

/* ---- the client's path ---- */

static void udp_set_send(struct session *s, bool on)
{
	struct tunnel *t = s->tunnel;

	if (s->udp.send == on)
		return;
	s->udp.send = on;
	t->stats.udp_sessions = on;
	/* --transport udp told the server at the setup, once and for all. */
	if (t->udp->transport == TUNNEL_TRANSPORT_AUTO)
		udp_send_control(s, frame_put_udp_path, on);
}

static void udp_probe(struct session *s)
{
	s->udp.last_probe_ms = now_ms(s->tunnel);
	(void)udp_seal(s, DGRAM_F_PROBE, NULL, 0);
	udp_flush(s->tunnel);
}

static void udp_path_up(struct session *s)
{
	struct tunnel *t = s->tunnel;

	if (s->udp.state == UDP_PATH_UP)
		return;
	s->udp.state = UDP_PATH_UP;
	tunnel_log(t, TUNNEL_LOG_INFO, "UDP data channel to %s works: data goes over UDP", s->remote);
	udp_set_send(s, true);
}

static void udp_path_down(struct session *s, const char *why)
{
	struct tunnel *t = s->tunnel;
	unsigned retry = UDP_RETRY_FACTOR * t->keepalive_ms;

	s->udp.state = UDP_PATH_DOWN;
	t->stats.udp_fallbacks++;
	if (t->udp->transport == TUNNEL_TRANSPORT_UDP) {
		/* udp: no fallback; keep probing as if starting over. */
		tunnel_log(t, TUNNEL_LOG_WARN, "UDP data channel to %s: %s; still sending over UDP",
			   s->remote, why);
		s->udp.state = UDP_PATH_PROBING;
		s->udp.probe_start_ms = now_ms(t);
		return;
	}
	tunnel_log(t, TUNNEL_LOG_WARN, "UDP data channel to %s: %s; data over TLS, UDP again in %u ms",
		   s->remote, why, retry);
	udp_set_send(s, false);
	evloop_timer_start(t->loop, &s->udp.timer, retry);
}

static void udp_on_timer(struct evloop *loop, struct ev_timer *timer)
{
	struct session *s = timer->arg;
	struct tunnel *t = s->tunnel;
	uint64_t now = now_ms(t), period = t->keepalive_ms;

	(void)loop;
	if (s->state != SESSION_ESTABLISHED || !s->udp.chan)
		return;
	switch (s->udp.state) {
	case UDP_PATH_DOWN:
		s->udp.state = UDP_PATH_PROBING;
		s->udp.probe_start_ms = now;
		break;
	case UDP_PATH_PROBING:
		if (now - s->udp.probe_start_ms >= UDP_PROBE_TIMEOUT_MS) {
			udp_path_down(s, "no answer to probes");
			if (s->udp.state == UDP_PATH_DOWN)
				return;
		}
		break;
	case UDP_PATH_UP:
		if (now - s->udp.last_rx_ms >= (uint64_t)TUNNEL_DEAD_FACTOR * period) {
			udp_path_down(s, "silent");
			if (s->udp.state == UDP_PATH_DOWN)
				return;
		}
		break;
	default:
		return;
	}
	if (s->udp.state == UDP_PATH_PROBING || now - s->udp.last_probe_ms >= period)
		udp_probe(s);
	evloop_timer_start(t->loop, &s->udp.timer,
			   s->udp.state == UDP_PATH_PROBING ? UDP_PROBE_MS : (period / 2 ? period / 2 : 1));
}

/* ---- setting up and ending ---- */

static int udp_derive(struct session *s, uint32_t id)
{
	struct tunnel *t = s->tunnel;
	uint8_t context[4] = { (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id };
	uint8_t secret[DGRAM_SECRET_LEN];
	int ret = -EIO;

	if (tls_export(s->tls, DGRAM_EXPORTER_LABEL, context, sizeof(context), secret, sizeof(secret)) == 0) {
		s->udp.chan = dgram_chan_new(secret, t->role_kind == TUNNEL_SERVER, t->udp->rekey_packets, 0,
					     now_ms(t));
		ret = s->udp.chan ? 0 : -ENOMEM;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	s->udp.id = id;
	return ret;
}

/* Server: the HELLOs agreed on UDP; the channel gets an id and keys, the client its UDP_SETUP. */
void udp_session_established(struct session *s)
{
	struct tunnel *t = s->tunnel;
	struct udp *udp = t->udp;
	uint8_t frame[FRAME_HEADER_LEN + FRAME_UDP_SETUP_LEN];
	uint32_t id;

	if (!udp || !s->udp_ok || t->role_kind != TUNNEL_SERVER)
		return;
	id = udp_new_id(udp);
	if (!id || udp_derive(s, id) < 0) {
		tunnel_log(t, TUNNEL_LOG_WARN, "client '%s': no UDP data channel (no keys)", s->name);
		return;
	}
	s->udp.hash_next = *udp_bucket(udp, id);
	*udp_bucket(udp, id) = s;
	if (session_append(s, frame, frame_put_udp_setup(frame, sizeof(frame), id)))
		session_flush(s);
}

/*
 * Client: the inner MTU from the path, as far as this end knows it: the
 * connected socket's route MTU (the first hop's, or a learnt path MTU),
 * but no more than the Ethernet 1500 assumed beyond it.
 */
static void udp_client_mtu(struct tunnel *t, int fd, int family)
{
	int mtu = 0;
	socklen_t len = sizeof(mtu);
	unsigned over = (family == AF_INET6 ? 40 : 20) + 8 + DGRAM_OVERHEAD;

	t->udp->inner_mtu = UDP_OUTER_MTU - over;
	if (family == AF_INET6 ? getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &len) < 0
			       : getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len) < 0)
		return;
	if (mtu > 0 && (unsigned)mtu < UDP_OUTER_MTU && (unsigned)mtu >= over + UDP_INNER_MTU_MIN)
		t->udp->inner_mtu = (unsigned)mtu - over;
}

/* Client: the server's UDP_SETUP; a socket to the server's port, keys, the first probe. */
static void udp_client_setup(struct session *s, uint32_t id)
{
	struct tunnel *t = s->tunnel;
	struct sockaddr_storage server;
	socklen_t len = sizeof(server);

	if (s->udp.chan) {
		session_end(s, SESSION_END_ERROR, true, "protocol error: second UDP_SETUP");
		return;
	}
	if (getpeername(s->fd, (struct sockaddr *)&server, &len) < 0 || udp_derive(s, id) < 0) {
		tunnel_log(t, TUNNEL_LOG_WARN, "no UDP data channel: %s", strerror(errno));
		return;
	}
	s->udp.sock = udp_sock_open(t, &server, len, false, s);
	if (!s->udp.sock) {
		tunnel_log(t, TUNNEL_LOG_WARN, "no UDP data channel: UDP socket: %s", strerror(errno));
		dgram_chan_free(s->udp.chan);
		s->udp.chan = NULL;
		return;
	}
	udp_client_mtu(t, s->udp.sock->fd, server.ss_family);
	s->udp.rcvbuf = udp_rcvbuf_for(s);
	if (s->udp.rcvbuf != UDP_RCVBUF_PER_PEER)
		tunnel_sockbuf(s->udp.sock->fd, SO_RCVBUFFORCE, SO_RCVBUF, s->udp.rcvbuf);
	ev_timer_init(&s->udp.timer, udp_on_timer, s);
	ev_timer_init(&s->udp.pump, udp_on_pump, s);
	s->udp.state = UDP_PATH_PROBING;
	s->udp.probe_start_ms = now_ms(t);
	if (t->udp->transport == TUNNEL_TRANSPORT_UDP) {
		s->udp.send = true;
		t->stats.udp_sessions = 1;
		udp_send_control(s, frame_put_udp_path, true);
	}
	udp_probe(s);
	evloop_timer_start(t->loop, &s->udp.timer, UDP_PROBE_MS);
}

void udp_on_frame(struct session *s, const struct frame *f)
{
	struct tunnel *t = s->tunnel;
	bool server = t->role_kind == TUNNEL_SERVER;

	if (!s->udp_ok || (f->type == FRAME_UDP_SETUP) == server) {
		session_end(s, SESSION_END_ERROR, true, "protocol error: frame type %u unexpected", f->type);
		return;
	}
	if (f->type == FRAME_UDP_SETUP) {
		udp_client_setup(s, f->udp_session_id);
		return;
	}
	if (!s->udp.chan)
		return; /* we had no keys: the client's datagrams find no session anyway */
	if (s->udp.path_on != (bool)f->udp_path) {
		t->stats.udp_sessions += f->udp_path ? 1 : (uint64_t)-1;
		udp_server_share(s, f->udp_path);
	}
	s->udp.path_on = f->udp_path;
	s->udp.send = f->udp_path && s->udp.peer_len;
}

void udp_session_end(struct session *s)
{
	struct tunnel *t = s->tunnel;

	if (!s->udp.chan)
		return;
	if (t->role_kind == TUNNEL_SERVER) {
		udp_unhash(t->udp, s);
		if (s->udp.path_on) {
			t->stats.udp_sessions--;
			udp_server_share(s, false);
		}
	} else {
		evloop_timer_stop(t->loop, &s->udp.timer);
		evloop_timer_stop(t->loop, &s->udp.pump);
		/* Datagrams of this socket still in the batch go nowhere now. */
		if (t->udp->tx_sock == s->udp.sock) {
			t->udp->tx_count = t->udp->tx_sent = 0;
			/* Nothing is left to wait for: the frontend reads again (into the reconnect queue). */
			udp_unblock(t);
			t->udp->tx_sock = NULL;
		}
		udp_sock_close(t, s->udp.sock);
		s->udp.sock = NULL;
		t->stats.udp_sessions = 0;
	}
	if (s->udp.deliver_queued) {
		for (unsigned i = 0; i < t->udp->touched_count; i++)
			if (t->udp->touched[i] == s)
				t->udp->touched[i] = t->udp->touched[--t->udp->touched_count];
		s->udp.deliver_queued = false;
	}
	t->udp->rekeys_done += dgram_rekeys(s->udp.chan);
	dgram_chan_free(s->udp.chan);
	s->udp.chan = NULL;
	s->udp.send = s->udp.path_on = false;
}

uint8_t udp_hello_flag(const struct tunnel *t)
{
	return t->udp ? HELLO_F_UDP : 0;
}

void udp_stats(const struct tunnel *t, struct tunnel_stats *out)
{
	uint64_t rekeys = t->udp ? t->udp->rekeys_done : 0;

	for (const struct session *s = t->sessions; s; s = s->next)
		if (s->udp.chan)
			rekeys += dgram_rekeys(s->udp.chan);
	out->udp_rekeys = rekeys;
}

int udp_init(struct tunnel *t, const struct tunnel_config *cfg, char *err, size_t err_len)
{
	struct udp *udp;
	int ret;

	if (cfg->role == TUNNEL_CLIENT && cfg->transport == TUNNEL_TRANSPORT_TLS)
		return 0;
	udp = calloc(1, sizeof(*udp));
	if (!udp)
		goto nomem;
	t->udp = udp;
	udp->transport = cfg->transport;
	udp->gso = true; /* until a socket says otherwise */
	udp->send_waits = cfg->role == TUNNEL_SERVER ? UDP_SEND_WAITS_SERVER : UDP_SEND_WAITS_CLIENT;
	udp->rekey_packets = cfg->rekey_packets;
	udp->express = !cfg->rekey_packets || cfg->rekey_packets >= UDP_RX_EXPRESS_EPOCH_MIN;
	udp->inner_mtu = UDP_OUTER_MTU - (t->addr.ss_family == AF_INET6 ? 40 : 20) - 8 - DGRAM_OVERHEAD;
	udp->tx_bufs = malloc((size_t)UDP_BATCH * UDP_SLOT);
	udp->scratch = malloc(PKT_SEGMENT_SCRATCH);
	udp->too_big = unreach_new();
	/* Only a frontend that injects GSO packets gains from merging (TUN with offload, nfqueue, pcap). */
	udp->gro_arena = cfg->accept_offload ? malloc(PKT_COALESCE_ARENA) : NULL;
	if (!udp->tx_bufs || !udp->scratch || !udp->too_big || (cfg->accept_offload && !udp->gro_arena))
		goto nomem;
	if (cfg->role != TUNNEL_SERVER)
		return 0;
	udp->server_sock = udp_sock_open(t, &t->addr, t->addr_len, true, NULL);
	if (!udp->server_sock) {
		ret = -errno;
		snprintf(err, err_len, "--listen %s (UDP): %s", t->endpoint, strerror(errno));
		udp_free(t);
		return ret;
	}
	udp->server_rcvbuf = UDP_RCVBUF_PER_PEER; /* udp_sock_buffers */
	return 0;
nomem:
	udp_free(t);
	snprintf(err, err_len, "out of memory");
	return -ENOMEM;
}

void udp_free(struct tunnel *t)
{
	struct udp *udp = t->udp;

	if (!udp)
		return;
	udp_sock_close(t, udp->server_sock);
	free(udp->tx_bufs);
	free(udp->scratch);
	unreach_free(udp->too_big);
	free(udp->gro_arena);
	free(udp);
	t->udp = NULL;
}
