// SPDX-License-Identifier: MIT
/* Serialises tunnel and frontend counters as flat JSON, one line per sample. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <sys/resource.h>
#include <time.h>

#include "stats.h"

struct counter {
	const char *key;
	size_t offset;
};

#define TS(field) { #field, offsetof(struct tunnel_stats, field) }
static const struct counter tunnel_counters[] = {
	TS(tx_packets), TS(tx_bytes), TS(rx_packets), TS(rx_bytes),
	TS(tls_records_written), TS(tls_records_read), TS(tls_writes),
	TS(drop_no_peer), TS(drop_peer_down), TS(drop_spoofed_source),
	TS(drop_queue_full), TS(drop_tx_full), TS(drop_malformed), TS(drop_offload),
	TS(drop_bad_offload), TS(tx_segmented),
	TS(sessions_active), TS(sessions_total), TS(handshake_failures),
	TS(handshakes_full), TS(handshakes_resumed),
	TS(sessions_dead), TS(reconnects), TS(queue_packets), TS(queue_bytes), TS(queue_rounds),
	TS(handshakes_pending), TS(sessions_buffered), TS(evicted_per_source), TS(handshakes_evicted), TS(refused_max_peers),
	TS(refused_accept_error), TS(log_suppressed), TS(sessions_cut_reload),
	TS(fq_drops), TS(fq_marks), TS(fq_drops_overlimit), TS(fq_backlog_packets), TS(fq_backlog_bytes),
	TS(fq_flows), TS(fq_sojourn_last_us), TS(fq_sojourn_max_us), TS(fq_sojourn_p50_us),
	TS(fq_sojourn_p99_us),
	TS(on_demand_connects), TS(idle_closes), TS(icmp_prohibited), TS(icmp_rate_limited),
	TS(drop_too_big), TS(icmp_too_big),
	TS(udp_tx_datagrams), TS(udp_tx_bytes), TS(udp_rx_datagrams), TS(udp_rx_bytes),
	TS(udp_drop_auth), TS(udp_drop_replay), TS(udp_drop_unknown_session), TS(udp_drop_malformed),
	TS(udp_rekeys), TS(udp_roams), TS(udp_fallbacks), TS(udp_sessions), TS(udp_rx_coalesced),
	TS(udp_tx_blocked), TS(udp_aqm_drops), TS(udp_aqm_marks), TS(udp_rx_wait_max_us),
	TS(udp_rx_express),
	TS(sessions_moving), TS(moves),
};

#define FS(field) { "fe_" #field, offsetof(struct frontend_stats, field) }
static const struct counter frontend_counters[] = {
	FS(captured_packets), FS(captured_bytes), FS(injected_packets),
	FS(injected_bytes), FS(inject_errors), FS(inject_denied), FS(capture_drops),
};

#define SS(field) { "fe_" #field, offsetof(struct frontend_stream_stats, field) }
static const struct counter stream_counters[] = {
	SS(streams_open), SS(streams_total), SS(stream_bytes_out), SS(stream_bytes_in),
	SS(streams_refused), SS(streams_unreachable), SS(streams_reset), SS(streams_idle_closed),
	SS(streams_limited), SS(streams_prohibited), SS(exit_over_budget), SS(flows_limited),
	SS(udp_flows_open), SS(udp_flows_total), SS(dgrams_out),
	SS(dgrams_in), SS(dgrams_dropped), SS(dropped_uncarried), SS(dropped_packets),
};

/* drop_dst_loopback, ...: one key per reason the reach policy refuses. */
static void write_reach_drops(FILE *out, const struct tunnel_stats *ts)
{
	for (unsigned v = REACH_OK + 1; v < REACH_VERDICT_COUNT; v++)
		fprintf(out, ",\"drop_dst_%s\":%" PRIu64, reach_verdict_name(v), ts->drop_dst[v]);
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void write_counters(FILE *out, const void *base, const struct counter *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(out, ",\"%s\":%" PRIu64, c[i].key,
			*(const uint64_t *)((const char *)base + c[i].offset));
}

int stats_write(FILE *out, const struct stats_context *ctx, const char *event,
		const struct tunnel_stats *ts, const struct frontend_stats *fs,
		const struct frontend_stream_stats *ss)
{
	struct timespec now;
	struct rusage ru;

	clock_gettime(CLOCK_REALTIME, &now);
	getrusage(RUSAGE_SELF, &ru);
	double t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;

	fprintf(out, "{\"event\":\"%s\",\"time\":%.3f,\"uptime_s\":%.3f,\"role\":\"%s\","
		     "\"frontend\":\"%s\",\"connected\":%s",
		event, t, t - ctx->started, ctx->role, ctx->frontend,
		ts->connected ? "true" : "false");
	fprintf(out, ",\"last_handshake\":%.6f", ts->last_handshake);
	/* Where data goes now: a client's one session, a server's any. */
	fprintf(out, ",\"transport\":\"%s\"", ts->udp_sessions ? "udp" : "tls");
	write_counters(out, ts, tunnel_counters, sizeof(tunnel_counters) / sizeof(tunnel_counters[0]));
	write_reach_drops(out, ts);
	write_counters(out, fs, frontend_counters,
		       sizeof(frontend_counters) / sizeof(frontend_counters[0]));
	if (ss)
		write_counters(out, ss, stream_counters,
			       sizeof(stream_counters) / sizeof(stream_counters[0]));
	fprintf(out, ",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f}\n",
		seconds(ru.ru_utime), seconds(ru.ru_stime));
	if (fflush(out) != 0)
		return -errno;
	return 0;
}
