// SPDX-License-Identifier: MIT
/* tl_peer: a hostile tunnel peer for the tests: valid certificate, crafted inner packets, streams and datagrams. */

/*
 * It speaks the tunnel through the same library tunlab uses, so that only
 * what it sends is hostile, never how. As a client it connects with its
 * certificate and then runs the actions in order; as a server it waits
 * for one client and runs them toward it (its peers file decides where
 * tunnel_send routes: "cli 0.0.0.0/0,::/0" sends anything to cli).
 *
 *   tl_peer client --connect A:P --server-name N --cert F --key F --ca F ACTION...
 *   tl_peer server --listen A:P --peers F --cert F --key F --ca F ACTION...
 *
 *   udp SRC DST PORT   an inner UDP packet, payload "tl_peer", SRC:40000 -> DST:PORT
 *   open DST PORT      client: STREAM_OPEN (TCP); prints "open DST PORT: connected"
 *                      or "open DST PORT: reset R" (R the reset reason number)
 *   dgram DST PORT     client: one datagram "tl_peer" on a new UDP flow
 *   sdgram SRC PORT    server: one datagram on flow 1 whose source is SRC:PORT
 *   wait MS            keep the tunnel up MS milliseconds
 *
 * Every packet the other end delivers to it is printed as "received DESC"
 * (pkt_describe's line), so that a test sees what got through.
 *
 * Exit status 0 when every action ran, 1 when the tunnel did not come up
 * within CONNECT_MS or an open got no answer within ANSWER_MS, 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../base/evloop.h"
#include "../../base/pkt.h"
#include "../../tunnel/proto.h"
#include "../../tunnel/tunnel.h"

enum {
	TICK_MS = 10,
	CONNECT_MS = 10000,
	ANSWER_MS = 5000,
	LINGER_MS = 300,     /* after the last action: let the frames leave */
	SRC_PORT = 40000,
	PACKET_MAX = 128,
};

static const char payload[] = "tl_peer";

enum phase { PHASE_CONNECTING, PHASE_RUNNING, PHASE_LINGER };

struct peer_tool {
	enum phase phase;
	struct evloop *loop;
	struct tunnel *t;
	struct ev_timer tick;
	enum tunnel_role role;
	char **actions;      /* what is left to run */
	int action_count;
	uint64_t deadline;   /* of the current wait */
	bool waiting_open;   /* an open waits for its answer */
	uint32_t open_id, next_id;
	struct stream_link *link; /* the session's, from LINK_UP */
	uint8_t packet[PACKET_MAX];
	int status;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An IPv4 or IPv6 UDP packet with valid checksums into buf; its length, or 0. */
static size_t build_udp(uint8_t *buf, const struct ip_addr *src, const struct ip_addr *dst,
			uint16_t port)
{
	size_t alen = src->family == AF_INET ? 4 : 16, ihl = src->family == AF_INET ? 20 : 40;
	size_t ulen = 8 + sizeof(payload) - 1, len = ihl + ulen;
	uint8_t *udp = buf + ihl;
	/* The pseudo-header's protocol and length words: the same sum in either family. */
	const uint8_t rest[4] = { 0, IPPROTO_UDP, (uint8_t)(ulen >> 8), (uint8_t)ulen };
	uint64_t sum;
	uint16_t check;

	if (src->family != dst->family)
		return 0;
	memset(buf, 0, len);
	if (src->family == AF_INET) {
		buf[0] = 0x45;
		put16(buf + 2, (uint16_t)len);
		buf[8] = 64;
		buf[9] = IPPROTO_UDP;
		memcpy(buf + 12, src->bytes, 4);
		memcpy(buf + 16, dst->bytes, 4);
		check = pkt_inet_csum(NULL, 0, buf, 20);
		memcpy(buf + 10, &check, 2);
	} else {
		buf[0] = 0x60;
		put16(buf + 4, (uint16_t)ulen);
		buf[6] = IPPROTO_UDP;
		buf[7] = 64;
		memcpy(buf + 8, src->bytes, 16);
		memcpy(buf + 24, dst->bytes, 16);
	}
	put16(udp, SRC_PORT);
	put16(udp + 2, port);
	put16(udp + 4, (uint16_t)ulen);
	memcpy(udp + 8, payload, sizeof(payload) - 1);
	sum = pkt_csum_add(pkt_csum_add(0, src->bytes, alen), dst->bytes, alen);
	sum = pkt_csum_add(pkt_csum_add(sum, rest, sizeof(rest)), udp, ulen);
	check = (uint16_t)~pkt_csum_fold(sum);
	/* 0 would mean "no checksum": 0xffff is the same sum. */
	check = check ? check : 0xffff;
	memcpy(udp + 6, &check, 2);
	return len;
}

static bool connected(const struct peer_tool *pt)
{
	struct tunnel_stats st;

	tunnel_stats(pt->t, &st);
	return pt->role == TUNNEL_CLIENT ? st.connected : st.sessions_active > 0;
}

static int parse_target(const char *addr, const char *port, struct ip_addr *a, uint16_t *p)
{
	char *end;
	unsigned long v = strtoul(port, &end, 10);

	if (addr_parse(addr, a) < 0 || *end || v == 0 || v > 65535) {
		fprintf(stderr, "tl_peer: bad address or port: %s %s\n", addr, port);
		return -EINVAL;
	}
	*p = (uint16_t)v;
	return 0;
}

static int act_udp(struct peer_tool *pt, char **arg)
{
	struct ip_addr src, dst;
	uint16_t port;
	struct pkt_batch batch = { .count = 1 };

	if (addr_parse(arg[0], &src) < 0 || parse_target(arg[1], arg[2], &dst, &port) < 0)
		return -EINVAL;
	batch.pkts[0] = (struct pkt){ .data = pt->packet, .len = (uint32_t)build_udp(pt->packet, &src, &dst, port) };
	if (!batch.pkts[0].len)
		return -EINVAL;
	tunnel_send(pt->t, &batch);
	return 0;
}

static int act_stream(struct peer_tool *pt, enum stream_msg_type type, char **arg)
{
	struct stream_msg msg = { .type = type, .proto = IPPROTO_TCP, .id = ++pt->next_id };
	int ret;

	if (parse_target(arg[0], arg[1], &msg.addr, &msg.port) < 0)
		return -EINVAL;
	if (type == STREAM_MSG_DGRAM) {
		msg.proto = IPPROTO_UDP;
		msg.data = (const uint8_t *)payload;
		msg.len = sizeof(payload) - 1;
	}
	msg.link = pt->link; /* from LINK_UP; a client's OPEN finds it alone */
	if (pt->role == TUNNEL_SERVER)
		msg.id = 1;
	ret = tunnel_stream_send(pt->t, &msg);
	tunnel_stream_flush(pt->t);
	if (ret < 0) {
		fprintf(stderr, "tl_peer: stream send: %s\n", strerror(-ret));
		return ret;
	}
	if (type == STREAM_MSG_OPEN) {
		pt->waiting_open = true;
		pt->open_id = msg.id;
		pt->deadline = evloop_now_ms(pt->loop) + ANSWER_MS;
	}
	return 0;
}

/* Runs the next action; false when it waits (open, wait) or nothing is left. */
static bool run_action(struct peer_tool *pt)
{
	char **a = pt->actions;
	int need = 0, ret = -EINVAL;

	if (strcmp(a[0], "udp") == 0 && (need = 4) <= pt->action_count)
		ret = act_udp(pt, a + 1);
	else if (strcmp(a[0], "open") == 0 && (need = 3) <= pt->action_count)
		ret = act_stream(pt, STREAM_MSG_OPEN, a + 1);
	else if ((strcmp(a[0], "dgram") == 0 || strcmp(a[0], "sdgram") == 0) && (need = 3) <= pt->action_count)
		ret = act_stream(pt, STREAM_MSG_DGRAM, a + 1);
	else if (strcmp(a[0], "wait") == 0 && (need = 2) <= pt->action_count)
		ret = 0, pt->deadline = evloop_now_ms(pt->loop) + strtoul(a[1], NULL, 10);
	if (ret < 0 || !need) {
		fprintf(stderr, "tl_peer: cannot run action '%s'\n", a[0]);
		pt->status = 2;
		pt->action_count = 0;
		return false;
	}
	pt->actions += need;
	pt->action_count -= need;
	return strcmp(a[0], "open") != 0 && strcmp(a[0], "wait") != 0;
}

static void on_tick(struct evloop *loop, struct ev_timer *timer)
{
	struct peer_tool *pt = timer->arg;
	uint64_t now = evloop_now_ms(loop);

	switch (pt->phase) {
	case PHASE_CONNECTING:
		if (connected(pt)) {
			pt->phase = PHASE_RUNNING;
			pt->deadline = now;
		} else if (now >= pt->deadline) {
			fprintf(stderr, "tl_peer: no tunnel within %d ms\n", CONNECT_MS);
			pt->status = 1;
			evloop_stop(loop);
			return;
		}
		break;
	case PHASE_RUNNING:
		if (pt->waiting_open && now >= pt->deadline) {
			printf("open: no answer\n");
			fflush(stdout);
			pt->status = 1;
			pt->waiting_open = false;
		}
		if (pt->waiting_open || now < pt->deadline)
			break;
		while (pt->action_count > 0 && run_action(pt))
			;
		if (pt->action_count == 0 && !pt->waiting_open && evloop_now_ms(loop) >= pt->deadline) {
			pt->phase = PHASE_LINGER;
			pt->deadline = now + LINGER_MS; /* the last frames leave */
		}
		break;
	case PHASE_LINGER:
		if (now >= pt->deadline) {
			evloop_stop(loop);
			return;
		}
		break;
	}
	evloop_timer_start(loop, timer, TICK_MS);
}

static void on_stream(void *ctx, const struct stream_msg *msg)
{
	struct peer_tool *pt = ctx;
	if (msg->type == STREAM_MSG_LINK_UP)
		pt->link = msg->link;
	if (!pt->waiting_open || msg->id != pt->open_id)
		return;
	if (msg->type == STREAM_MSG_CONNECTED) {
		struct stream_msg rst = { .type = STREAM_MSG_RESET, .link = msg->link, .id = msg->id,
					  .reason = STREAM_RESET_RESET };

		printf("open: connected\n");
		tunnel_stream_send(pt->t, &rst);
		tunnel_stream_flush(pt->t);
	} else if (msg->type == STREAM_MSG_RESET) {
		printf("open: reset %u\n", msg->reason);
	} else {
		return;
	}
	fflush(stdout);
	pt->waiting_open = false;
	pt->deadline = 0; /* answered: the next action may run */
}

static void on_log(void *ctx, enum tunnel_log_level level, const char *msg)
{
	(void)ctx;
	if (level <= TUNNEL_LOG_WARN)
		fprintf(stderr, "tl_peer: %s\n", msg);
}

/* What the other end let through to us: one line each, for the tests to read. */
static void on_deliver(void *ctx, const struct pkt_batch *batch)
{
	char desc[160];

	(void)ctx;
	for (unsigned i = 0; i < batch->count; i++) {
		pkt_describe(batch->pkts[i].data, batch->pkts[i].len, desc, sizeof(desc));
		printf("received %s\n", desc);
	}
	fflush(stdout);
}

struct args {
	const char *endpoint, *server_name, *cert, *key, *ca, *peers;
	int first_action;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	int i;

	for (i = 2; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		const char *v = argv[i + 1];

		if (!strcmp(argv[i], "--connect") || !strcmp(argv[i], "--listen"))
			a->endpoint = v;
		else if (!strcmp(argv[i], "--server-name"))
			a->server_name = v;
		else if (!strcmp(argv[i], "--cert"))
			a->cert = v;
		else if (!strcmp(argv[i], "--key"))
			a->key = v;
		else if (!strcmp(argv[i], "--ca"))
			a->ca = v;
		else if (!strcmp(argv[i], "--peers"))
			a->peers = v;
		else
			return -EINVAL;
	}
	a->first_action = i;
	return a->endpoint && a->cert && a->key && a->ca ? 0 : -EINVAL;
}

static int run(struct peer_tool *pt, const struct tunnel_config *cfg)
{
	static const struct tunnel_callbacks cb = {
		.deliver = on_deliver, .log = on_log, .stream = on_stream,
	};
	char err[512] = "";

	pt->loop = evloop_new();
	if (!pt->loop)
		return 1;
	pt->t = tunnel_new(cfg, pt->loop, &cb, pt, err, sizeof(err));
	if (!pt->t) {
		fprintf(stderr, "tl_peer: %s\n", err);
		evloop_free(pt->loop);
		return 1;
	}
	ev_timer_init(&pt->tick, on_tick, pt);
	pt->deadline = evloop_now_ms(pt->loop) + CONNECT_MS;
	evloop_timer_start(pt->loop, &pt->tick, TICK_MS);
	evloop_run(pt->loop);
	evloop_timer_stop(pt->loop, &pt->tick);
	tunnel_free(pt->t);
	evloop_free(pt->loop);
	return pt->status;
}

int main(int argc, char **argv)
{
	struct peer_tool pt = { 0 };
	struct peer_table peers = { 0 };
	struct args a = { 0 };
	char err[512];
	int ret;

	if (argc < 3 || (strcmp(argv[1], "client") && strcmp(argv[1], "server")) ||
	    parse_args(argc, argv, &a) < 0 || (argv[1][0] == 's' && !a.peers)) {
		fprintf(stderr, "usage: tl_peer client|server --connect|--listen A:P [--server-name N] "
				"[--peers F] --cert F --key F --ca F ACTION...\n");
		return 2;
	}
	pt.role = argv[1][0] == 's' ? TUNNEL_SERVER : TUNNEL_CLIENT;
	if (a.peers && peers_load(a.peers, &peers, err, sizeof(err)) < 0) {
		fprintf(stderr, "tl_peer: %s\n", err);
		return 2;
	}
	pt.actions = argv + a.first_action;
	pt.action_count = argc - a.first_action;
	struct tunnel_config cfg = {
		.role = pt.role, .endpoint = a.endpoint, .server_name = a.server_name,
		.cert_file = a.cert, .key_file = a.key, .ca_file = a.ca,
		.peers = a.peers ? &peers : NULL, .streams = true,
	};
	ret = run(&pt, &cfg);
	peers_free(&peers);
	return ret;
}
