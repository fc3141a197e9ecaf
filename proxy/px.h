/* SPDX-License-Identifier: MIT */
/* The parts of the proxy frontend (internal to proxy/): relay, client, exit, UDP, rules. */
#ifndef TUNLAB_PX_H
#define TUNLAB_PX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mnl_socket;
struct keyhash;

#include "../base/evloop.h"
#include "../base/owner.h"
#include "../base/frontend.h"
#include "../tunnel/proto.h"

enum {
	/* Streams one client may have open at the exit: a busy browser times ten. */
	PX_STREAMS_PER_CLIENT = 4096,
	/* The exit's budget of streams and flows when the daemon gives none (a test's). */
	PX_EXIT_BUDGET_DEFAULT = 16384,
	/* The exit's budget whatever the fd limit says, so that a proxy server can work at all. */
	PX_EXIT_BUDGET_MIN = 16,
	/*
	 * Bytes from the tunnel waiting for slow sockets, per client. Each
	 * stream is already bounded by STREAM_WINDOW; this bounds the sum, so
	 * that many stalled readers cost a client its streams, not the exit
	 * its memory.
	 */
	PX_BUFFERED_PER_CLIENT = 64 * 1024 * 1024,
	/* UDP flows one client may have: DNS bursts and a few media flows. */
	PX_FLOWS_PER_CLIENT = 1024,
	/* By default one client's streams, and its flows, take at most this share of the budget. */
	PX_PER_CLIENT_BUDGET_DIVISOR = 4,
	/* A destination that neither answers nor refuses: TCP's SYN retries take 2 min. */
	PX_CONNECT_TIMEOUT_MS = 10 * 1000,
	/* Idle established streams: conntrack keeps 5 days; an hour frees forgotten ones. */
	PX_TCP_IDLE_MS = 3600 * 1000,
	/* Half-closed streams waiting for the other half: conntrack's CLOSE_WAIT scale. */
	PX_HALF_CLOSED_IDLE_MS = 120 * 1000,
	/* UDP flow association: conntrack's unreplied UDP timeout, enough for DNS retries. */
	PX_UDP_IDLE_MS = 30 * 1000,
	/* Housekeeping period: timeouts are coarse by nature; one wakeup a second. */
	PX_TICK_MS = 1000,
	/* How often the client reads the iptables counter of uncarried packets (a fork). */
	PX_COUNTER_TICKS = 2,
	/* Reads per socket per event: fairness. */
	PX_READS_PER_EVENT = 4,
	/* DATA frames one socket read fills: 4 x 16 KiB per syscall, within iobuf. */
	PX_READ_FRAMES = 4,
	/* Conn hash buckets: a power of two, about the streams of one busy client (keyed: px_conn.c). */
	PX_HASH_BUCKETS = 4096,
	/* fwmark and routing table of the UDP TPROXY path ("tv"), next to nfqueue's 0x7475. */
	PX_MARK = 0x7476,
	PX_TABLE = 0x7476,
	/* Preference of the fwmark rule: before main (32766), after local (0). */
	PX_RULE_PREF = 7476,
	PX_RT_PROTO = 77, /* like every tunlab route: `ip route show proto 77` */
	/*
	 * The SYN hold (px_syn.c). A held SYN is answered by the verdict with
	 * one of these marks; filter OUTPUT REJECTs them with a TCP reset or
	 * ICMP host unreachable, and nat skips them (mask 0xfffffffe: both).
	 */
	PX_MARK_REFUSE = 0x7478,
	PX_MARK_UNREACH = 0x7479,
	/* First netfilter queue tried for SYNs; the next ones if it is taken. */
	PX_SYN_QUEUE = 0x7476,
	PX_SYN_QUEUE_TRIES = 16,
	/* IPv6 + TCP with all options: all a SYN's verdict needs. */
	PX_SYN_COPY = 128,
	/*
	 * How long a SYN may wait for the exit's answer: the exit gives up at
	 * PX_CONNECT_TIMEOUT_MS, so this only fires when the answer is lost.
	 */
	PX_SYN_WAIT_MS = PX_CONNECT_TIMEOUT_MS + 2 * PX_TICK_MS,
	/*
	 * From the SYN's release to its accept(): one loopback round trip,
	 * or a few SYN retries if the listener's backlog overflowed.
	 */
	PX_ACCEPT_WAIT_MS = 30 * 1000,
	PX_SYNS_PER_EVENT = 64,
};

enum {
	/* A UDP datagram or PX_READ_FRAMES DATA payloads, whichever is larger. */
	PX_IOBUF_BYTES = FRAME_DGRAM_MAX > PX_READ_FRAMES * FRAME_STREAM_DATA_MAX
				 ? FRAME_DGRAM_MAX : PX_READ_FRAMES * FRAME_STREAM_DATA_MAX,
};

/* Every watched object starts with one: its watcher on the loop, with its own callback. */
struct px_watch {
	struct ev_io io;
	/*
	 * Freed conns and flows wait for the end of the loop's round: a caller
	 * up the stack may still point at them.
	 */
	struct ev_defer defer;
};

struct px_conn;
struct px_flow;

/* One tunnel session carrying streams (the client's, or one client at the exit). */
struct px_link {
	struct stream_link *link;
	bool down;       /* LINK_DOWN seen; torn down outside the tunnel's call */
	bool blocked;    /* the tunnel's send buffer is above high water */
	struct px_conn *conns;
	size_t conn_count;
	size_t buffered; /* bytes of all its conns' buffers */
	struct px_flow *flows;
	size_t flow_count;
	struct px_link *next;
};

/* One TCP connection relayed as a stream (the application's at the client, ours at the exit). */
struct px_conn {
	struct px_watch w;
	struct proxy *px;
	struct px_link *link;
	uint32_t id;
	int fd;
	uint32_t events;      /* registered with epoll now */
	bool connecting;      /* exit: non-blocking connect in progress */
	bool eof_sent;        /* the socket said EOF, FIN went out */
	bool fin_received;    /* the peer's FIN: shut our write side once buf is written */
	bool shut_wr;
	bool detached;        /* out of epoll: hung up, waiting for a window to read the rest */
	uint32_t window;      /* bytes we may still send on this stream */
	uint32_t rwindow;     /* bytes the peer may still send us */
	uint32_t consumed;    /* written to the socket, not yet credited */
	uint8_t *buf;         /* STREAM_WINDOW ring, allocated on first need */
	size_t head, len;
	uint64_t started_ms, last_ms;
	/*
	 * Client, SYN hold: the conn exists from the application's SYN on,
	 * with fd -1, until its connection is accepted (px_syn.c).
	 */
	bool pending;          /* on px->syn.pending, not accepted yet */
	bool held;             /* the SYN waits in the queue for our verdict */
	uint32_t syn_packet;   /* its netfilter packet id */
	struct ip_addr app_addr, dst_addr;
	uint16_t app_port, dst_port;
	struct px_conn *pprev, *pnext; /* px->syn.pending */
	struct px_conn *hnext;       /* hash chain */
	struct px_conn *prev, *next; /* link->conns */
};

/* A UDP flow: (application address, destination) at the client, one socket at the exit. */
struct px_flow {
	struct px_watch w;
	struct proxy *px;
	struct px_link *link;
	uint32_t id;
	int fd;
	struct sockaddr_storage app, dst; /* client: the application's and its destination */
	uint64_t last_ms;
	struct px_flow *prev, *next; /* link->flows */
};

struct px_listener {
	struct px_watch w;
	struct proxy *px;
	int fd;
	bool paused;          /* out of fds: accepting again at the next tick */
	int family;
	uint16_t port;
};

/* Client: the SYN hold's netfilter queue and the conns it waits for. */
struct px_syn {
	struct px_watch w;
	struct mnl_socket *nl;
	bool on;
	uint16_t queue;
	struct px_conn *pending;
	uint8_t *buf;          /* one netlink read */
};

struct px_rules {
	long pid;
	struct owner_lock owner; /* vouches for our chains while they exist */
	bool installed[2];     /* per family: v4, v6 */
	bool udp[2];           /* per family: ip rule and route of the UDP path */
	bool syn;              /* the SYN hold's mangle chain and REJECT rules */
	bool verbose;
	char err[256];
};

struct proxy {
	struct frontend fe;
	bool server;
	bool verbose;
	struct evloop *loop;   /* NULL until the start op */
	struct ev_timer tick;  /* PX_TICK_MS: timeouts, counters */
	struct ev_defer reap;  /* links the tunnel marked down go at the end of the round */
	struct ev_defer flush; /* what this round sent goes out at its end, in one flush */
	const struct stream_port *port;
	struct stream_port port_copy;
	struct px_link *links;
	struct px_conn *table[PX_HASH_BUCKETS];
	struct keyhash *conn_hash; /* the table's bucket function, keyed at open */
	uint32_t next_id;      /* client: the next stream or flow id */
	/* exit: sockets for streams and flows in all, streams and flows per client */
	unsigned max_streams, max_streams_per_client, max_flows_per_client;
	unsigned ticks;
	struct px_listener tcp[2];  /* client: REDIRECT targets, v4 and v6 */
	struct px_listener udp[2];  /* client: the TPROXY sockets, v4 and v6 */
	struct px_rules rules;
	struct px_syn syn;
	uint8_t *iobuf;        /* PX_IOBUF_BYTES: one read's worth */
};


/* ---- px_core.c: the toolbox every px_ file calls down into ---- */
uint64_t px_now_ms(void);
/* w watches fd with cb(arg); px_watch_add registers it, or before the start op notes it. */
void px_watch_init(struct px_watch *w, int fd, ev_io_cb cb, void *arg);
int px_watch_add(struct proxy *px, struct px_watch *w, uint32_t events);
int px_watch_mod(struct proxy *px, struct px_watch *w, uint32_t events);
void px_watch_del(struct proxy *px, struct px_watch *w);
/* The start op: the watches added before it (listeners, the SYN queue) go on the loop. */
int px_watch_start(struct proxy *px, struct px_watch *w);
struct px_link *px_link_get(struct proxy *px, struct stream_link *link, bool create);
/* Sends through the tunnel, unless the link is down: 0 or -errno. Flushed at the round's end. */
int px_send(struct proxy *px, struct px_link *l, struct stream_msg *msg);
uint32_t px_next_id(struct proxy *px);
/* w is off the loop and its socket closed; free(w) runs at the end of the round (at once before start). */
void px_bury(struct proxy *px, struct px_watch *w, void (*free_fn)(struct ev_defer *d));
/* RST instead of FIN: what an application sees when the far end refused or reset. */
void px_close_rst(int fd);

/* ---- px_conn.c: the relay, both roles ---- */
struct px_conn *px_conn_new(struct proxy *px, struct px_link *l, uint32_t id, int fd,
			    bool connecting);
struct px_conn *px_conn_find(struct proxy *px, struct px_link *l, uint32_t id);
/* The longest hash chain: what one lookup may walk (tests, benchmarks). */
size_t px_conn_longest_chain(const struct proxy *px);
void px_conn_io(struct px_conn *c, uint32_t events);
void px_conn_on_msg(struct px_conn *c, const struct stream_msg *msg);
void px_conn_update(struct px_conn *c);
/* Tells the peer (RESET with reason), counts, and aborts the socket with RST. */
void px_conn_reset(struct px_conn *c, uint8_t reason);
/* Frees without telling the peer: it reset, or the link is gone. */
void px_conn_abort(struct px_conn *c);
void px_conn_tick(struct px_conn *c, uint64_t now);
void px_count_reset_reason(struct proxy *px, uint8_t reason);
uint8_t px_reason_of_errno(int err);

/* ---- px_client.c: REDIRECT listeners, accepting, opening streams ---- */
int px_client_listen(struct proxy *px, const struct frontend_config *cfg, char *err,
		     size_t err_len);
void px_client_accept(struct px_listener *ln);
/*
 * STREAM_OPEN to dst:port for the application's connection fd (-1: its
 * SYN is held, the conn pending). The conn, or NULL with the reason the
 * application should see (counted; fd is the caller's to close).
 */
struct px_conn *px_client_open(struct proxy *px, int fd, const struct ip_addr *dst, uint16_t port,
			       uint8_t *reason);
void px_client_close(struct proxy *px);
/* A listener paused for lack of fds listens again. */
void px_client_resume(struct proxy *px);

/* Client: a pending conn (fd -1) gets its accepted socket: the relay starts. */
int px_conn_attach(struct px_conn *c, int fd);

/* ---- px_syn.c: the client's SYN hold, for a refusal the application sees as one ---- */
int px_syn_open(struct px_syn *syn, struct proxy *px, char *err, size_t err_len);
void px_syn_close(struct px_syn *syn);
void px_syn_read(struct proxy *px);
/* The exit connected: the held SYN passes to the REDIRECT listener. */
void px_syn_connected(struct px_conn *c);
/* Frees a pending conn; a held SYN is rejected as reason says (RST or ICMP). */
void px_syn_forget(struct px_conn *c, uint8_t reason);
/* The pending conn of an accepted connection, or NULL. */
struct px_conn *px_syn_match(struct proxy *px, const struct ip_addr *app, uint16_t app_port,
			     const struct ip_addr *dst, uint16_t dst_port);
void px_syn_tick(struct proxy *px, uint64_t now);

/* ---- px_exit.c: the server's side of a stream ---- */
void px_exit_open(struct proxy *px, const struct stream_msg *msg);
/* A socket toward a peer's destination (AF_INET6: IPv6-only). The fd or -errno. */
int px_exit_socket(int family, int type);
/* The per-client cap of streams or flows: flag if set, else min(builtin, budget / 4). */
unsigned px_per_client_cap(unsigned flag, unsigned budget, unsigned builtin);
/* The exit's socket budget (streams and flows together) is spent: counted. */
bool px_exit_over_budget(struct proxy *px);

/* ---- px_udp.c: TPROXY at the client, a socket per flow at the exit ---- */
int px_udp_listen(struct proxy *px, char *err, size_t err_len);
void px_udp_close(struct proxy *px);
void px_udp_client_read(struct px_listener *ln);
void px_udp_flow_read(struct px_flow *f);
void px_udp_on_dgram(struct proxy *px, struct px_link *l, const struct stream_msg *msg);
void px_flow_free(struct px_flow *f);
void px_flow_tick(struct px_flow *f, uint64_t now);

/* ---- px_rules.c: iptables REDIRECT/TPROXY, the fwmark rule, cleanup ---- */
struct px_rules_params {
	const struct frontend_config *cfg;
	uint16_t tcp_port[2]; /* per family, 0: none */
	uint16_t udp_port[2]; /* per family, the TPROXY port; 0: that family's UDP is dropped */
	bool syn_hold;        /* SYNs to the netfilter queue syn_queue */
	uint16_t syn_queue;
};

int px_rules_install(struct px_rules *r, const struct px_rules_params *p, char *err,
		     size_t err_len);
/* The iptables-restore input for family af (AF_INET, AF_INET6); malloc'd, NULL on ENOMEM. */
char *px_rules_text(const struct px_rules_params *p, long pid, int af);
void px_rules_remove(struct px_rules *r);
/* Packets to the routes that were neither TCP nor UDP, and so dropped. */
int px_rules_uncarried(const struct px_rules *r, uint64_t *out);
int px_rules_cleanup(bool verbose, char *err, size_t err_len);

#endif
