/* SPDX-License-Identifier: MIT */
/*
 * The common tunnel: TLS 1.3 over TCP with mutual certificate
 * authentication, carrying IP packets in frames. One server serves many
 * clients from the caller's event loop; a client reconnects on its own.
 * No OpenSSL type appears here, and nothing here knows about frontends.
 */
#ifndef TUNLAB_TUNNEL_H
#define TUNLAB_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/evloop.h"
#include "../base/pkt.h"
#include "../base/prefix.h"
#include "../base/reach.h"
#include "../base/stream.h"

/* ---- peers file: "name prefix[,prefix...]", '#' comments ---- */

enum { PEER_NAME_MAX = 64 }; /* X.509 caps a common name at 64 characters */

struct peer {
	char name[PEER_NAME_MAX + 1];
	struct ip_prefix *prefixes;
	size_t prefix_count;
};

struct peer_table {
	struct peer *peers;
	size_t count;
};

/*
 * Parses a peers file held in memory. On error returns -EINVAL with
 * "LINE: what is wrong" in err and leaves out empty. Rejects duplicate names
 * and prefixes that overlap between peers (routing would be ambiguous).
 */
int peers_parse(const char *text, size_t len, struct peer_table *out, char *err, size_t err_len);
/* Reads and parses path; err then starts with the path. */
int peers_load(const char *path, struct peer_table *out, char *err, size_t err_len);
void peers_free(struct peer_table *table);
const struct peer *peers_find(const struct peer_table *table, const char *name);

/* ---- the tunnel ---- */

enum tunnel_role { TUNNEL_CLIENT, TUNNEL_SERVER };

/*
 * Where a client's data goes (--transport): over the TLS stream, over the
 * UDP data channel keyed by it (issue 15), or UDP while its probes are
 * answered and TLS otherwise. A server always offers UDP.
 */
enum tunnel_transport { TUNNEL_TRANSPORT_AUTO, TUNNEL_TRANSPORT_TLS, TUNNEL_TRANSPORT_UDP };

enum tunnel_log_level { TUNNEL_LOG_ERR, TUNNEL_LOG_WARN, TUNNEL_LOG_INFO, TUNNEL_LOG_DEBUG };

struct tunnel_config {
	enum tunnel_role role;
	const char *endpoint;    /* server: --listen, client: --connect; "host:port", "[v6]:port" */
	/*
	 * Client: several servers, tried in order and round the list when one
	 * fails (endpoint is then ignored); endpoint_count 0: endpoint alone.
	 */
	const char *const *endpoints;
	size_t endpoint_count;
	const char *server_name; /* client: expected SAN; NULL means each endpoint's host */
	const char *cert_file, *key_file, *ca_file;
	const char *crl_file;    /* PEM CRLs of the CA(s), or NULL: no revocation check */
	/* server: session-ticket keys shared with a standby (tls.h), or NULL: no resumption */
	const char *ticket_keys_file;
	/*
	 * Server: "host:port" where the standby takes connections, its own
	 * address (not a floating one): tunnel_handover() moves clients there
	 * make-before-break. NULL: a handover ends every session with a CLOSE.
	 */
	const char *standby;
	const struct peer_table *peers; /* server only; must outlive the tunnel */
	/*
	 * What the peer may reach (base/reach.h); must outlive the tunnel.
	 * Server: destinations of packets, STREAM_OPEN and DGRAM, with the
	 * peers' prefixes owned by their struct peer of peers. Client: the
	 * sources the server may send from. NULL: only the special ranges
	 * are refused (tunlab's daemon always passes one).
	 */
	const struct reach_policy *reach;
	bool accept_offload;     /* our frontend injects offload packets */
	bool streams;            /* our frontend carries streams (HELLO_F_STREAMS) */
	unsigned keepalive_ms;   /* 0: TUNNEL_KEEPALIVE_MS_DEFAULT */
	unsigned handshake_ms;   /* 0: TUNNEL_HANDSHAKE_MS_DEFAULT */
	size_t queue_bytes;      /* client; 0: TUNNEL_QUEUE_DEFAULT_BYTES */
	/*
	 * Client: connect on the first packet sent, not at start (then the
	 * queue holds TUNNEL_LAZY_QUEUE_PACKETS unless queue_bytes is set);
	 * idle_timeout_ms (0: never) closes a session that carried no packet
	 * that long, and the next packet sets one up again.
	 */
	bool lazy;
	unsigned idle_timeout_ms;
	/* server, 0: the TUNNEL_*_DEFAULT of proto.h */
	unsigned max_handshakes;            /* unauthenticated connections in all */
	unsigned max_handshakes_per_source; /* ...from one IPv4 address or IPv6 /64 */
	unsigned max_peers;                 /* authenticated connections */
	bool trace;              /* call cb->trace per packet per stage */
	enum tunnel_transport transport; /* client */
	/* UDP data channel: new keys after this many datagrams each way; 0: the default (dgram.h) */
	uint64_t rekey_packets;
};

struct tunnel_callbacks {
	/* Packets out of the tunnel, source and destination already checked (reach). */
	void (*deliver)(void *ctx, const struct pkt_batch *batch);
	/* Client: the send side has room again after tunnel_send_blocked(). */
	void (*writable)(void *ctx);
	void (*log)(void *ctx, enum tunnel_log_level level, const char *msg);
	/* stage: "framed", "sent", "received"; peer: the session's name or NULL. */
	void (*trace)(void *ctx, const char *stage, const char *peer, const struct pkt *pkt);
	/*
	 * With cfg.streams: a stream frame received (msg->link names the
	 * session), or a link event (LINK_UP, LINK_DOWN, LINK_WRITABLE). msg->data
	 * points into the receive buffer, valid during the call only.
	 */
	void (*stream)(void *ctx, const struct stream_msg *msg);
};

struct tunnel_stats {
	uint64_t tx_packets, tx_bytes;   /* IP packets/bytes framed into the tunnel */
	uint64_t rx_packets, rx_bytes;   /* IP packets/bytes delivered out of it */
	uint64_t tls_records_written, tls_records_read;
	uint64_t tls_writes;             /* SSL_write calls that moved data */
	uint64_t drop_no_peer;           /* server: no peer prefix holds the destination */
	uint64_t drop_peer_down;         /* server: that peer is not connected */
	uint64_t icmp_prohibited;        /* server: ...answered with ICMP administratively prohibited */
	uint64_t icmp_rate_limited;      /* ...not answered, the rate limit spent (this or too big) */
	/* UDP data channel: packets above its inner MTU not sent (IPv4 with DF, IPv6), and those answered with ICMP */
	uint64_t drop_too_big, icmp_too_big;
	/* Server: source outside the sending peer's prefixes; client: outside its
	 * --route prefixes and inner network; both: a special address (reach.h). */
	uint64_t drop_spoofed_source;
	/*
	 * Refused by reach policy, per enum reach_verdict: packets, STREAM_OPENs
	 * (answered with STREAM_RESET_PROHIBITED) and DGRAMs whose destination
	 * the peer may not reach. [REACH_OK] stays 0.
	 */
	uint64_t drop_dst[REACH_VERDICT_COUNT];
	uint64_t drop_queue_full;        /* client: reconnect queue full */
	uint64_t drop_tx_full;           /* server: a session's send buffer full; both: UDP datagrams the socket had no room for */
	uint64_t drop_malformed;         /* not an IP packet, bad frame contents */
	uint64_t drop_offload;           /* offload packet the peer cannot take */
	uint64_t drop_bad_offload;       /* peer's offload block does not describe its packet */
	uint64_t tx_segmented;           /* plain packets made in software from offload ones */
	uint64_t sessions_active, sessions_total;
	uint64_t handshake_failures;     /* bad cert, unknown peer, timeout, version */
	/* TLS handshakes completed with certificates, and by resuming a ticket's session */
	uint64_t handshakes_full, handshakes_resumed;
	uint64_t sessions_dead;          /* cut off by dead-peer detection */
	uint64_t sessions_cut_reload;    /* cut by SIGHUP: peer removed or changed, certificate revoked */
	uint64_t reconnects;             /* client: connections after the first */
	uint64_t queue_packets, queue_bytes; /* client: held now while reconnecting */
	uint64_t queue_rounds;           /* client: queue flushes that waited for the send buffer */
	uint64_t on_demand_connects;     /* client, --lazy: connections a packet started */
	uint64_t idle_closes;            /* client: sessions closed by --idle-timeout */
	uint64_t handshakes_pending;     /* server: unauthenticated connections now */
	uint64_t sessions_buffered;      /* sessions holding their tx/rx buffers now */
	uint64_t evicted_per_source;     /* server: a source at max_handshakes_per_source lost one */
	uint64_t handshakes_evicted;     /* server: table full, the largest source lost one */
	uint64_t refused_max_peers;      /* server: max_peers authenticated connections already */
	uint64_t refused_accept_error;   /* server: accept() failed for lack of fds or memory */
	uint64_t log_suppressed;         /* server: listener warnings folded into a summary */
	/*
	 * The flow queues in front of TLS and of a client's UDP sealing
	 * (base/fqcodel.h), over sessions: CoDel's drops and CE marks, drops
	 * over the global limit, what they hold now, and the time packets
	 * waited in them (µs; the largest of the sessions; p50/p99 since
	 * start, upper bounds of log2 buckets).
	 */
	uint64_t fq_drops, fq_marks, fq_drops_overlimit;
	uint64_t fq_backlog_packets, fq_backlog_bytes, fq_flows;
	uint64_t fq_sojourn_last_us, fq_sojourn_max_us, fq_sojourn_p50_us, fq_sojourn_p99_us;
	/* The UDP data channel: datagrams and their bytes on the wire, each way */
	uint64_t udp_tx_datagrams, udp_tx_bytes, udp_rx_datagrams, udp_rx_bytes;
	/* ...refused: tag wrong, counter seen or too old, no such session id, not a datagram of ours */
	uint64_t udp_drop_auth, udp_drop_replay, udp_drop_unknown_session, udp_drop_malformed;
	uint64_t udp_rekeys;             /* key epochs moved to, sending and receiving */
	uint64_t udp_roams;              /* server: a session's UDP peer address moved */
	uint64_t udp_fallbacks;          /* client: the UDP path stopped answering, data over TLS */
	uint64_t udp_sessions;           /* sessions whose data goes over UDP now (client: 0 or 1) */
	uint64_t udp_rx_coalesced;       /* packets from datagrams merged into the GSO packet before them */
	uint64_t udp_tx_blocked;         /* client: times the UDP socket was full and the frontend paused */
	uint64_t udp_aqm_drops;          /* packets CoDel dropped from the UDP receive queue */
	uint64_t udp_aqm_marks;          /* ECN-capable packets CoDel CE-marked instead */
	uint64_t udp_rx_wait_max_us;     /* the longest a datagram waited in the receive queue */
	uint64_t udp_rx_express;         /* small datagrams opened ahead of the read-ahead queue */
	/*
	 * A planned switchover, make before break. Server: sessions told to
	 * MOVE that have not said MOVED yet, and clients that said MOVED
	 * (moved their sending to the standby). Client: 1 while a connection
	 * to the standby is being set up beside the session, and the sessions
	 * moved so.
	 */
	uint64_t sessions_moving, moves;
	bool connected;                  /* client: a session is established */
	bool dormant;                    /* client, --lazy: no session, none until a packet comes */
	double last_handshake;           /* CLOCK_REALTIME s of the last session established; 0: none */
};

struct tunnel;

/* Sets up TLS and starts listening or connecting. NULL and err on failure. */
struct tunnel *tunnel_new(const struct tunnel_config *cfg, struct evloop *loop,
			  const struct tunnel_callbacks *cb, void *ctx,
			  char *err, size_t err_len);
/*
 * Frames a batch of captured packets and sends it: a server picks the
 * session by longest-prefix match on each destination, a client queues
 * while disconnected. Never blocks; drops are counted by reason.
 */
void tunnel_send(struct tunnel *t, const struct pkt_batch *batch);
/* Client: true while the send buffer is above its high-water mark. */
bool tunnel_send_blocked(const struct tunnel *t);
void tunnel_stats(const struct tunnel *t, struct tunnel_stats *out);

/*
 * Streams (base/stream.h): frames msg onto its link; a client's OPEN
 * with msg->link NULL goes to the established session and sets msg->link.
 * Returns 0 or the negative errno of struct stream_port's send. Nothing
 * is dropped silently: a stream that cannot be sent is the caller's to
 * reset. Frames wait in the send buffer until tunnel_stream_flush() or a
 * full record's worth.
 */
int tunnel_stream_send(struct tunnel *t, struct stream_msg *msg);
/* True while link's send buffer is above its high-water mark. */
bool tunnel_stream_blocked(const struct tunnel *t, const struct stream_link *link);
/* Hands every link's pending frames to TLS. */
void tunnel_stream_flush(struct tunnel *t);
/*
 * Server: the peers table is replaced by peers (which must then outlive
 * the tunnel; the previous one may be freed once this returns 0).
 * Sessions of peers whose entry is unchanged (same name, same prefixes)
 * go on untouched; those of removed or changed peers are cut, with the
 * reason in their CLOSE frame and the log. reach replaces cfg.reach in
 * the same step: its peer prefixes name the new table's peers, so the old
 * policy must not outlive the old table. It may be NULL only for a server
 * that has no policy (tests); otherwise -EINVAL. On failure (-EINVAL,
 * -ENOMEM, err set) the previous table and policy stay in force.
 */
int tunnel_set_peers(struct tunnel *t, const struct peer_table *peers,
		     const struct reach_policy *reach, char *err, size_t err_len);
/*
 * Rereads cfg.crl_file (and cfg.ca_file) for new handshakes, then checks
 * every open session's peer certificate against them as a handshake would
 * and cuts those that now fail (a revoked one), with the reason. Without a
 * crl_file it does nothing. On a bad file (-EINVAL, err set) the previous
 * CA and CRL stay in force and no session is touched.
 */
int tunnel_reload_crl(struct tunnel *t, char *err, size_t err_len);
/*
 * Server: rereads cfg.ticket_keys_file (a rotation: tickets of the key
 * that left the file are no longer accepted). Without one it does
 * nothing. On a bad file (-EINVAL, -EPERM, err set) the keys in force stay.
 */
int tunnel_reload_ticket_keys(struct tunnel *t, char *err, size_t err_len);
/*
 * Server: a planned switchover. Closes the listener. With cfg.standby,
 * each established packet session whose client follows MOVE is sent one
 * and carries on: the client connects to the standby beside it, sends
 * there once that session is up, says MOVED here and closes this session
 * once nothing comes back on it (proto.h); a client that has not said
 * MOVED in TUNNEL_MOVE_DEADLINE_FACTOR handshake timeouts gets a CLOSE.
 * Every other session ends with a CLOSE ("handover: ..."), on which its
 * client reconnects at once (to its next --connect endpoint, or the same
 * floating address once it has moved). Sessions told before are left
 * alone. Returns the established sessions told, or -EINVAL for a client.
 */
int tunnel_handover(struct tunnel *t);
/*
 * Client with cfg.lazy: closes the session now, as cfg.idle_timeout_ms
 * does once it runs out (counted in idle_closes, logged, the server told
 * why), and the next packet sets one up again. 0: closed; -ENOTCONN:
 * none was up; -EBUSY: one is being set up or still sends its queue
 * (packets asked for it: try again once it is up); -EOPNOTSUPP: a client
 * without cfg.lazy, which would redial at once; -EINVAL: a server.
 */
int tunnel_down(struct tunnel *t);
/* Sends close_notify to every peer (best effort) and frees everything. */
void tunnel_free(struct tunnel *t);

#endif
