/* SPDX-License-Identifier: MIT */
/* The UDP data channel of the tunnel (issue 15): sockets, probes, roaming. Internal to tunnel/. */
#ifndef TUNLAB_TUNNEL_UDP_H
#define TUNLAB_TUNNEL_UDP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../base/evloop.h"
#include "frame.h"

struct session;
struct tunnel;
struct tunnel_config;
struct dgram_chan;
struct udp_sock;

/* The client's view of the path, driven by its probes. */
enum udp_path_state {
	UDP_PATH_NONE,    /* no channel (not negotiated, or set up failed) */
	UDP_PATH_PROBING, /* probes out, no reply yet */
	UDP_PATH_UP,      /* replies come: data goes over UDP */
	UDP_PATH_DOWN,    /* auto: no reply; data over TLS until the retry */
};

/* A session's part of the data channel. */
struct udp_session {
	struct dgram_chan *chan;
	uint32_t id;
	struct session *hash_next;       /* server: the id table's chain */
	struct sockaddr_storage peer;    /* server: the last authenticated source */
	socklen_t peer_len;
	uint64_t peer_counter;           /* server: the counter of the datagram peer was taken from */
	bool send;                       /* data to the peer goes over UDP */
	bool path_on;                    /* server: the client's last UDP_PATH */
	bool deliver_queued;             /* in the receive batch's to-deliver list */
	bool rx_coalesce;                /* rx_batch holds packets from datagrams: coalesce before delivery */
	enum udp_path_state state;       /* client */
	uint64_t last_rx_ms, last_probe_ms, probe_start_ms;
	struct udp_sock *sock;           /* client: its own connected socket */
	struct ev_timer timer;           /* client: probes and retries */
	struct ev_timer pump;            /* client: the flow queue's next turn (udp_pump) */
	int rcvbuf;                      /* this peer's receive buffer (server: its share, while path_on) */
	size_t pump_bytes;               /* client: sealed in loop round pump_round */
	uint64_t pump_round;
};

/* Tunnel-wide: the server's socket and id table, the send batch. 0 or -errno, err set. */
int udp_init(struct tunnel *t, const struct tunnel_config *cfg, char *err, size_t err_len);
void udp_free(struct tunnel *t);
/* The HELLO flag this end sends: HELLO_F_UDP or 0. */
uint8_t udp_hello_flag(const struct tunnel *t);
/* HELLOs exchanged, both with HELLO_F_UDP: the server sets the channel up and sends UDP_SETUP. */
void udp_session_established(struct session *s);
/* UDP_SETUP or UDP_PATH arrived on s. */
void udp_on_frame(struct session *s, const struct frame *f);
/* s ends: its id, socket, timer and keys go. */
void udp_session_end(struct session *s);
/* Data to the peer of s goes over UDP now. */
bool udp_sending(const struct session *s);
/* Seals p (segmented to the inner MTU first when it is an offload packet) into the send batch. */
void udp_send_packet(struct session *s, const struct pkt *p);
/* Client: p through the session's flow queue; at most a turn's bytes are sealed at once. */
void udp_queue_packet(struct session *s, const struct pkt *p);
/* Client: seals from the flow queue up to the turn's bytes; a timer takes the rest next loop round. */
void udp_pump(struct session *s);
/* Sends the batch; a client whose socket is full keeps the rest and is blocked until it has room. */
void udp_flush(struct tunnel *t);
/* Client: the UDP socket was full; the frontend should pause until cb.writable. */
bool udp_send_blocked(const struct tunnel *t);
/* Before s->rx_batch goes to a frontend that injects GSO packets: its TCP segments from datagrams merged. */
void udp_coalesce(struct session *s);
/* Fills the udp_* counters of out. */
void udp_stats(const struct tunnel *t, struct tunnel_stats *out);

#endif
