// SPDX-License-Identifier: MIT
/* The tunnel's entry points: configuration, the role's ops, stats, teardown. */

/*
 * tunnel_new() checks and copies the configuration, builds the TLS
 * context (so that a wrong --cert fails at start, not at the first
 * connection) and starts the role: a server listens, a client connects.
 * Everything after that happens in the caller's event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "udp.h"

/* --standby: an address a client can connect to, resolved now. */
static int tunnel_configure_standby(struct tunnel *t, const char *text, char *err, size_t err_len)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char host[256], msg[300] = "";
	int ret;

	ret = tunnel_parse_endpoint(text, &ss, &len, host, sizeof(host), msg, sizeof(msg));
	if (ret == 0 && (addr_from_sockaddr((struct sockaddr *)&ss, &t->standby, &t->standby_port) < 0 ||
			 !tunnel_move_target_ok(&t->standby, t->standby_port))) {
		snprintf(msg, sizeof(msg), "%s: not an address a client can connect to", text);
		ret = -EINVAL;
	}
	if (ret < 0) {
		snprintf(err, err_len, "--standby %s", msg);
		t->standby_port = 0;
		return ret;
	}
	return 0;
}

static int tunnel_configure(struct tunnel *t, const struct tunnel_config *cfg, char *err,
			    size_t err_len)
{
	const char *flag = cfg->role == TUNNEL_SERVER ? "--listen" : "--connect";
	const char *endpoint = cfg->role == TUNNEL_CLIENT && cfg->endpoint_count ? cfg->endpoints[0]
										  : cfg->endpoint;
	char host[256], msg[300];
	int ret;

	t->role_kind = cfg->role;
	t->role = cfg->role == TUNNEL_SERVER ? &tunnel_server_ops : &tunnel_client_ops;
	t->accept_offload = cfg->accept_offload;
	t->streams = cfg->streams;
	t->trace = cfg->trace;
	t->keepalive_ms = cfg->keepalive_ms ? cfg->keepalive_ms : TUNNEL_KEEPALIVE_MS_DEFAULT;
	t->handshake_ms = cfg->handshake_ms ? cfg->handshake_ms : TUNNEL_HANDSHAKE_MS_DEFAULT;
	t->queue_bytes = cfg->queue_bytes ? cfg->queue_bytes : TUNNEL_QUEUE_DEFAULT_BYTES;
	t->max_handshakes = cfg->max_handshakes ? cfg->max_handshakes : TUNNEL_MAX_HANDSHAKES_DEFAULT;
	t->max_handshakes_per_source = cfg->max_handshakes_per_source
					       ? cfg->max_handshakes_per_source
					       : TUNNEL_MAX_HANDSHAKES_PER_SOURCE_DEFAULT;
	t->max_peers = cfg->max_peers ? cfg->max_peers : TUNNEL_MAX_PEERS_DEFAULT;
	t->peers = cfg->peers;
	t->reach = cfg->reach;
	ret = tunnel_parse_endpoint(endpoint, &t->addr, &t->addr_len, host, sizeof(host), msg,
				    sizeof(msg));
	if (ret < 0) {
		snprintf(err, err_len, "%s %s", flag, msg);
		return ret;
	}
	snprintf(t->endpoint, sizeof(t->endpoint), "%s", endpoint);
	if (cfg->server_name && strlen(cfg->server_name) >= sizeof(t->server_name)) {
		snprintf(err, err_len, "--server-name: longer than %zu characters", sizeof(t->server_name) - 1);
		return -EINVAL;
	}
	snprintf(t->server_name, sizeof(t->server_name), "%s", cfg->server_name ? cfg->server_name : host);
	return cfg->role == TUNNEL_SERVER && cfg->standby ? tunnel_configure_standby(t, cfg->standby, err, err_len)
							  : 0;
}

struct tunnel *tunnel_new(const struct tunnel_config *cfg, struct evloop *loop,
			  const struct tunnel_callbacks *cb, void *ctx,
			  char *err, size_t err_len)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	int ret;

	if (!t) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	t->loop = loop;
	if (cb)
		t->cb = *cb;
	t->cb_ctx = ctx;
	if (tunnel_configure(t, cfg, err, err_len) < 0)
		goto err_free;
	t->tls = tls_ctx_new(cfg->role == TUNNEL_SERVER, cfg->cert_file, cfg->key_file, cfg->ca_file,
			     cfg->crl_file, err, err_len);
	if (!t->tls)
		goto err_free;
	if (cfg->role == TUNNEL_SERVER && cfg->ticket_keys_file &&
	    tls_ctx_set_ticket_keys(t->tls, cfg->ticket_keys_file, err, err_len) < 0)
		goto err_tls;
	if (udp_init(t, cfg, err, err_len) < 0)
		goto err_tls;
	ret = cfg->role == TUNNEL_SERVER ? tunnel_server_init(t, err, err_len)
					 : tunnel_client_init(t, cfg, err, err_len);
	if (ret < 0)
		goto err_udp;
	return t;

err_udp:
	udp_free(t);
err_tls:
	tls_ctx_free(t->tls);
err_free:
	free(t);
	errno = EINVAL;
	return NULL;
}

void tunnel_send(struct tunnel *t, const struct pkt_batch *batch)
{
	t->role->send(t, batch);
}

bool tunnel_send_blocked(const struct tunnel *t)
{
	return t->role->send_blocked(t);
}

void tunnel_sum_records(const struct tunnel *t, struct tunnel_stats *out)
{
	const struct session *s;

	out->tls_records_written = t->records_done.written;
	out->tls_records_read = t->records_done.read;
	out->sessions_buffered = 0;
	for (s = t->sessions; s; s = s->next) {
		out->tls_records_written += s->records.written;
		out->tls_records_read += s->records.read;
		out->sessions_buffered += s->tx != NULL; /* 1.25 MiB each: what a flood must not reach */
		session_fq_stats(s, out);
	}
}

void tunnel_stats(const struct tunnel *t, struct tunnel_stats *out)
{
	*out = t->stats;
	tunnel_sum_records(t, out);
	udp_stats(t, out);
	t->role->stats(t, out);
}

int tunnel_set_peers(struct tunnel *t, const struct peer_table *peers,
		     const struct reach_policy *reach, char *err, size_t err_len)
{
	int ret;

	if (t->role_kind != TUNNEL_SERVER || !peers) {
		snprintf(err, err_len, "only a server has a peers table");
		return -EINVAL;
	}
	if (t->reach && !reach) {
		/* The old policy's peer entries point into the old table, about to be freed. */
		snprintf(err, err_len, "a new reach policy must come with the new peers table");
		return -EINVAL;
	}
	ret = tunnel_server_reload(t, peers, err, err_len);
	if (ret == 0 && reach)
		t->reach = reach;
	return ret;
}

int tunnel_reload_crl(struct tunnel *t, char *err, size_t err_len)
{
	struct session *s, *next;
	int ret;

	if (!tls_ctx_has_crl(t->tls))
		return 0;
	ret = tls_ctx_reload(t->tls, err, err_len);
	if (ret < 0)
		return ret;
	for (s = t->sessions; s; s = next) {
		next = s->next;
		if ((s->state != SESSION_HELLO && s->state != SESSION_ESTABLISHED) ||
		    tls_conn_reverify(s->tls) != -EPERM)
			continue;
		t->stats.sessions_cut_reload++;
		session_end(s, SESSION_END_POLICY, true, "%s", tls_conn_error(s->tls));
	}
	return 0;
}

/*
 * A planned switchover: no new connection is taken here (the refusal is
 * what a client's next attempt meets until the address has moved). A
 * client that can move make-before-break is sent MOVE and keeps its
 * session (tunnel_server_move). Every other peer gets a CLOSE saying why,
 * which a client answers by reconnecting at once with its ticket, holding
 * its packets in its queue meanwhile; those on the wire at that moment
 * are lost. Sessions still in the handshake are cut as well: their
 * clients retry the same way.
 */
int tunnel_handover(struct tunnel *t)
{
	struct session *s, *next;
	int n = 0;

	if (t->role_kind != TUNNEL_SERVER)
		return -EINVAL;
	tunnel_server_stop_listening(t);
	for (s = t->sessions; s; s = next) {
		next = s->next;
		if (s->state >= SESSION_CLOSING || s->move != SESSION_MOVE_NONE)
			continue;
		if (s->state == SESSION_ESTABLISHED)
			n++;
		if (tunnel_server_move(s) == 0)
			continue;
		session_end(s, SESSION_END_HANDOVER, true, "handover: this server is going away, reconnect");
	}
	return n;
}

int tunnel_down(struct tunnel *t)
{
	return t->role_kind == TUNNEL_CLIENT ? tunnel_client_down(t) : -EINVAL;
}

int tunnel_reload_ticket_keys(struct tunnel *t, char *err, size_t err_len)
{
	return tls_ctx_reload_ticket_keys(t->tls, err, err_len);
}

void tunnel_free(struct tunnel *t)
{
	if (!t)
		return;
	session_reap(t);
	t->role->free(t);
	udp_free(t);
	tls_ctx_free(t->tls);
	free(t);
}
