// SPDX-License-Identifier: MIT
/* What `tunlab show` prints of one instance, as text in the style of `wg show` or as JSON. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "show.h"

const char *show_state_name(const struct show_state *s)
{
	if (strcmp(s->ctx->role, "server") == 0)
		return "listening";
	if (s->ts->connected)
		return "connected";
	return s->ts->dormant ? "idle" : "connecting";
}

static void write_ago(FILE *f, double when)
{
	struct timespec now;

	if (when <= 0) {
		fputs("never\n", f);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	fprintf(f, "%.0f seconds ago\n", (double)now.tv_sec - when < 0 ? 0 : (double)now.tv_sec - when);
}

/* Each entry with the captured packets it matched first (hits.h says which count). */
static void write_policy_hits(FILE *f, const struct show_state *s)
{
	char line[POLICY_ENTRY_TEXT_MAX];

	for (size_t i = 0; s->policy && i < s->policy->count; i++) {
		policy_entry_format(&s->policy->entries[i], line, sizeof(line));
		fprintf(f, "    %s: %llu hits\n", line, (unsigned long long)hits_get(s->hits, i));
	}
}

void show_write_text(FILE *f, const struct show_state *s)
{
	const struct tunnel_stats *ts = s->ts;

	fprintf(f, "instance: %ld\n  role: %s\n  frontend: %s\n  endpoint: %s\n  state: %s\n", s->pid,
		s->ctx->role, s->ctx->frontend, s->endpoint, show_state_name(s));
	fputs("  latest handshake: ", f);
	write_ago(f, ts->last_handshake);
	fprintf(f, "  transfer: %llu B received (%llu packets), %llu B sent (%llu packets)\n",
		(unsigned long long)ts->rx_bytes, (unsigned long long)ts->rx_packets,
		(unsigned long long)ts->tx_bytes, (unsigned long long)ts->tx_packets);
	fprintf(f, "  drops: no_peer %llu, peer_down %llu, spoofed_source %llu, queue_full %llu, "
		   "tx_full %llu, malformed %llu, capture %llu\n",
		(unsigned long long)ts->drop_no_peer, (unsigned long long)ts->drop_peer_down,
		(unsigned long long)ts->drop_spoofed_source, (unsigned long long)ts->drop_queue_full,
		(unsigned long long)ts->drop_tx_full, (unsigned long long)ts->drop_malformed,
		(unsigned long long)s->fs->capture_drops);
	fprintf(f, "  transport: %s (udp: %llu datagrams received, %llu sent; drops: auth %llu, "
		   "replay %llu, unknown_session %llu; rekeys %llu, roams %llu)\n",
		ts->udp_sessions ? "udp" : "tls", (unsigned long long)ts->udp_rx_datagrams,
		(unsigned long long)ts->udp_tx_datagrams, (unsigned long long)ts->udp_drop_auth,
		(unsigned long long)ts->udp_drop_replay, (unsigned long long)ts->udp_drop_unknown_session,
		(unsigned long long)ts->udp_rekeys, (unsigned long long)ts->udp_roams);
	fprintf(f, "  queue: %llu packets, %llu B\n", (unsigned long long)ts->queue_packets,
		(unsigned long long)ts->queue_bytes);
	fprintf(f, "  flow queue: %llu packets, %llu B in %llu flows; codel drops %llu, ce marks %llu, "
		   "overlimit %llu; sojourn last %llu us, max %llu us, p50 %llu us, p99 %llu us\n",
		(unsigned long long)ts->fq_backlog_packets, (unsigned long long)ts->fq_backlog_bytes,
		(unsigned long long)ts->fq_flows, (unsigned long long)ts->fq_drops,
		(unsigned long long)ts->fq_marks, (unsigned long long)ts->fq_drops_overlimit,
		(unsigned long long)ts->fq_sojourn_last_us, (unsigned long long)ts->fq_sojourn_max_us,
		(unsigned long long)ts->fq_sojourn_p50_us, (unsigned long long)ts->fq_sojourn_p99_us);
	if (s->policy)
		fprintf(f, "  policy: %zu entries (tunlab policy show)\n", s->policy->count);
	write_policy_hits(f, s);
}

/* The --stats line's fields: one writer for both, so the names cannot drift. */
static void write_stats_object(FILE *f, const struct show_state *s)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	if (!m || stats_write(m, s->ctx, "show", s->ts, s->fs, s->ss) < 0 || fclose(m) != 0) {
		if (m)
			fclose(m);
		free(text);
		fputs("null", f);
		return;
	}
	while (len && text[len - 1] == '\n')
		len--;
	fwrite(text, 1, len, f);
	free(text);
}

static void write_json_string(FILE *f, const char *text)
{
	fputc('"', f);
	for (const char *p = text; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void write_policy_json(FILE *f, const struct policy *p, const struct policy_hits *hits)
{
	char line[POLICY_ENTRY_TEXT_MAX];

	fputc('[', f);
	for (size_t i = 0; p && i < p->count; i++) {
		policy_entry_format(&p->entries[i], line, sizeof(line));
		fprintf(f, "%s{\"line\":%zu,\"action\":\"%s\",\"hits\":%llu,\"entry\":", i ? "," : "",
			p->entries[i].line, policy_action_name(p->entries[i].action),
			(unsigned long long)hits_get(hits, i));
		write_json_string(f, line);
		fputc('}', f);
	}
	fputc(']', f);
}

void show_write_json(FILE *f, const struct show_state *s)
{
	fprintf(f, "{\"pid\":%ld,\"role\":\"%s\",\"frontend\":\"%s\",\"endpoint\":", s->pid, s->ctx->role,
		s->ctx->frontend);
	write_json_string(f, s->endpoint);
	fprintf(f, ",\"state\":\"%s\",\"last_handshake\":%.6f,\"stats\":", show_state_name(s),
		s->ts->last_handshake);
	write_stats_object(f, s);
	fputs(",\"policy\":", f);
	write_policy_json(f, s->policy, s->hits);
	fputs("}\n", f);
}

void show_write_policy(FILE *f, const struct policy *p)
{
	char *text;

	if (!p) {
		fputs("# no policy\n", f);
		return;
	}
	text = policy_format(p);
	if (text)
		fputs(text, f);
	free(text);
}
