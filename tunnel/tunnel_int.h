/* SPDX-License-Identifier: MIT */
/* What the parts of the tunnel (sessions, server, client) share; not for frontends. */
#ifndef TUNLAB_TUNNEL_INT_H
#define TUNLAB_TUNNEL_INT_H

#include <time.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "tls.h"
#include "tunnel.h"

struct frame;
struct session;
struct server;
struct client;
struct udp;

/* Why a session ended: the role decides what to count and how loudly to log. */
enum session_end {
	SESSION_END_CONNECT,   /* client: TCP connect failed */
	SESSION_END_HANDSHAKE, /* TLS, identity, HELLO or timeout before established */
	SESSION_END_ERROR,     /* TLS or protocol error once established */
	SESSION_END_DEAD,      /* silent for TUNNEL_DEAD_FACTOR keepalive periods */
	SESSION_END_PEER,      /* the peer closed: CLOSE frame or close_notify */
	SESSION_END_REPLACED,  /* server: the same peer connected again */
	SESSION_END_POLICY,    /* a reload: peers file or CRL no longer admits the peer */
	SESSION_END_HANDOVER,  /* server: a planned switchover (tunnel_handover) */
	SESSION_END_LOCAL,     /* tunnel_free */
};

/*
 * The role-specific half of a session's life, called by session.c. A hook
 * may end the session it is given; session.c checks the state afterwards.
 */
struct tunnel_role_ops {
	/* TLS is up: check the peer's identity. 0, or -1 after ending s. */
	int (*tls_ready)(struct session *s);
	/* HELLOs were exchanged: s may carry packets now. */
	void (*established)(struct session *s);
	/* May a packet from s carry this source address? (Not special: checked already.) */
	bool (*source_ok)(const struct session *s, const struct ip_addr *src);
	/* May s reach dst? REACH_OK or why not. */
	enum reach_verdict (*dest_verdict)(const struct session *s, const struct ip_addr *dst);
	/* A MOVE or MOVED frame came on established s (proto.h); the role checks it is its to get. */
	void (*move)(struct session *s, const struct frame *f);
	/* s ended (before it lingers and is freed): unlink it, count, log. */
	void (*ended)(struct session *s, enum session_end why, const char *reason);
	/* The send buffer of s fell below half after being above high water. */
	void (*drained)(struct session *s);
	void (*send)(struct tunnel *t, const struct pkt_batch *batch);
	bool (*send_blocked)(const struct tunnel *t);
	void (*stats)(const struct tunnel *t, struct tunnel_stats *out);
	void (*free)(struct tunnel *t);
};

struct tunnel {
	const struct tunnel_role_ops *role;
	struct evloop *loop;
	struct tunnel_callbacks cb;
	void *cb_ctx;
	struct tls_ctx *tls;

	/* from the config, defaults applied */
	enum tunnel_role role_kind;
	bool accept_offload, trace;
	bool streams;              /* our frontend carries streams: HELLO_F_STREAMS */
	unsigned keepalive_ms, handshake_ms;
	size_t queue_bytes;
	unsigned max_handshakes, max_handshakes_per_source, max_peers;
	const struct peer_table *peers;
	const struct reach_policy *reach;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char endpoint[280];        /* as given, for logs */
	char server_name[256];     /* client: what the server certificate must name */
	/* server, --standby: where a handover sends clients (MOVE); port 0: none */
	struct ip_addr standby;
	uint16_t standby_port;

	struct tunnel_stats stats;
	/* records of sessions already freed; live ones keep their own */
	struct tls_record_counters records_done;

	struct session *sessions;  /* every session with an fd, lingering ones too */
	size_t session_count;

	struct server *server;
	struct client *client;
	struct udp *udp;           /* the UDP data channel's tunnel-wide part */
};

extern const struct tunnel_role_ops tunnel_server_ops;
extern const struct tunnel_role_ops tunnel_client_ops;

int tunnel_server_init(struct tunnel *t, char *err, size_t err_len);
int tunnel_client_init(struct tunnel *t, const struct tunnel_config *cfg, char *err, size_t err_len);
/* tunnel_down for a client (tunnel.h). */
int tunnel_client_down(struct tunnel *t);
/* Server: closes the listener, so a client's next connection is refused here. */
void tunnel_server_stop_listening(struct tunnel *t);
/*
 * Server, tunnel_handover(): sends s a MOVE to the standby and arms the
 * deadline. 0, or -EOPNOTSUPP when s cannot move (no --standby, its
 * client does not follow MOVE, not established) and needs a CLOSE.
 */
int tunnel_server_move(struct session *s);
/* Server: tunnel_set_peers() (tunnel.h). */
int tunnel_server_reload(struct tunnel *t, const struct peer_table *peers, char *err, size_t err_len);

__attribute__((format(printf, 3, 4)))
void tunnel_log(struct tunnel *t, enum tunnel_log_level level, const char *fmt, ...);

/* "10.1.0.2:40312", "[fd00::2]:40312" */
void tunnel_format_sockaddr(const struct sockaddr *sa, char *out, size_t out_len);

/* Parses "host:port" or "[v6]:port"; the host may be a name (resolved now, blocking). */
int tunnel_parse_endpoint(const char *text, struct sockaddr_storage *ss, socklen_t *len,
			  char *host, size_t host_len, char *err, size_t err_len);

/*
 * What counts as one source for the server's per-source cap: an IPv4
 * address (a v4-mapped IPv6 one too) or an IPv6 address cut to
 * TUNNEL_SOURCE_PREFIX_V6 bits; zeroes elsewhere, so memcmp compares.
 */
void tunnel_source_of(const struct sockaddr *sa, struct ip_addr *out);

/*
 * A MOVE's target (--standby, and what a client accepts): an address a
 * connection can go to. Loopback is allowed (a lab on one host); link-local
 * (no scope id in the frame), unspecified, multicast and broadcast are not.
 */
static inline bool tunnel_move_target_ok(const struct ip_addr *a, uint16_t port)
{
	enum reach_verdict v = reach_special(a);

	return port && (v == REACH_OK || v == REACH_LOOPBACK);
}

/* TLS records of live sessions plus those of freed ones. */
void tunnel_sum_records(const struct tunnel *t, struct tunnel_stats *out);

/*
 * A socket buffer of bytes (opt: SO_RCVBUF or SO_SNDBUF): force_opt
 * (SO_RCVBUFFORCE, SO_SNDBUFFORCE) passes net.core.[rw]mem_max with
 * CAP_NET_ADMIN; without it the kernel's capped size will do.
 */
static inline void tunnel_sockbuf(int fd, int force_opt, int opt, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

/* Wall-clock seconds, for what is shown to people (last_handshake). */
static inline double tunnel_now_realtime(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

#endif
