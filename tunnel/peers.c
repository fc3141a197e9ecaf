// SPDX-License-Identifier: MIT
/* The server's peers file: which certificate name may use which inner prefixes. */

/*
 * One peer per line: its certificate's common name, whitespace, then its
 * prefixes separated by commas (blanks around a comma are allowed):
 *
 *   # name  prefixes
 *   cli     10.8.0.2/32, 192.168.60.0/24
 *
 * '#' starts a comment anywhere on a line; blank lines are fine; a CR
 * before the newline counts as a blank. The parse is all or nothing: the
 * first error names its line, and the caller gets no table at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunnel.h"
#include "../base/textfile.h"

/* A peers file larger than this is a mistake, not a configuration. */
enum { PEERS_FILE_MAX = 64 * 1024 * 1024 };

struct peers_parser {
	struct peer_table table;
	size_t *lines;    /* the line each peer was defined on */
	size_t peers_cap;
	size_t line;
	char *err;
	size_t err_len;
};

struct span {
	const char *p;
	size_t len;
};

static int parse_error(struct peers_parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(ps->err, ps->err_len, "%zu: ", ps->line);
	if (n >= 0 && (size_t)n < ps->err_len) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->err_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static struct span span_trim(struct span s)
{
	while (s.len && is_blank(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len && is_blank(s.p[s.len - 1]))
		s.len--;
	return s;
}

/* Everything before the first '#', trimmed. */
static struct span strip_comment(struct span line)
{
	const char *hash = memchr(line.p, '#', line.len);

	if (hash)
		line.len = (size_t)(hash - line.p);
	return span_trim(line);
}

static bool name_char_ok(char c)
{
	return c > ' ' && c < 0x7f && c != ',';
}

static int check_name(struct peers_parser *ps, struct span name)
{
	size_t i;

	if (name.len > PEER_NAME_MAX)
		return parse_error(ps, "peer name longer than %d characters", PEER_NAME_MAX);
	for (i = 0; i < name.len; i++) {
		if (!name_char_ok(name.p[i]))
			return parse_error(ps, "peer name: character 0x%02x not allowed (printable ASCII but comma)",
					   (unsigned char)name.p[i]);
	}
	for (i = 0; i < ps->table.count; i++) {
		if (strlen(ps->table.peers[i].name) == name.len &&
		    !memcmp(ps->table.peers[i].name, name.p, name.len))
			return parse_error(ps, "duplicate peer '%.*s' (first on line %zu)",
					   (int)name.len, name.p, ps->lines[i]);
	}
	return 0;
}

static struct peer *add_peer(struct peers_parser *ps, struct span name)
{
	struct peer *peer;

	if (ps->table.count == ps->peers_cap) {
		size_t cap = ps->peers_cap ? 2 * ps->peers_cap : 8;
		struct peer *peers = realloc(ps->table.peers, cap * sizeof(*peers));
		size_t *lines;

		if (!peers)
			return NULL;
		ps->table.peers = peers;
		lines = realloc(ps->lines, cap * sizeof(*lines));
		if (!lines)
			return NULL;
		ps->lines = lines;
		ps->peers_cap = cap;
	}
	peer = &ps->table.peers[ps->table.count];
	memset(peer, 0, sizeof(*peer));
	memcpy(peer->name, name.p, name.len);
	ps->lines[ps->table.count++] = ps->line;
	return peer;
}

/* Is p disjoint from every prefix of the peers defined before this one? */
static int check_overlap(struct peers_parser *ps, const struct peer *self, const struct ip_prefix *p)
{
	char mine[PREFIX_STR_MAX], theirs[PREFIX_STR_MAX];
	size_t i, j;

	for (i = 0; i < ps->table.count; i++) {
		const struct peer *other = &ps->table.peers[i];

		if (other == self)
			continue;
		for (j = 0; j < other->prefix_count; j++) {
			if (!prefix_overlaps(p, &other->prefixes[j]))
				continue;
			prefix_format(p, mine, sizeof(mine));
			prefix_format(&other->prefixes[j], theirs, sizeof(theirs));
			return parse_error(ps, "prefix %s of '%s' overlaps %s of '%s' (line %zu)",
					   mine, self->name, theirs, other->name, ps->lines[i]);
		}
	}
	return 0;
}

static int add_prefix(struct peers_parser *ps, struct peer *peer, struct span text, size_t *cap)
{
	char buf[PREFIX_STR_MAX + 1];
	struct ip_prefix prefix;
	int ret;

	if (!text.len)
		return parse_error(ps, "empty prefix in the list of '%s'", peer->name);
	if (text.len >= sizeof(buf))
		return parse_error(ps, "'%.*s' is not a prefix", (int)text.len, text.p);
	memcpy(buf, text.p, text.len);
	buf[text.len] = '\0';
	if (prefix_parse(buf, &prefix) < 0)
		return parse_error(ps, "'%s' is not a prefix", buf);
	ret = check_overlap(ps, peer, &prefix);
	if (ret < 0)
		return ret;
	if (peer->prefix_count == *cap) {
		size_t n = *cap ? 2 * *cap : 4;
		struct ip_prefix *prefixes = realloc(peer->prefixes, n * sizeof(*prefixes));

		if (!prefixes)
			return -ENOMEM;
		peer->prefixes = prefixes;
		*cap = n;
	}
	peer->prefixes[peer->prefix_count++] = prefix;
	return 0;
}

static int parse_prefix_list(struct peers_parser *ps, struct peer *peer, struct span list)
{
	size_t cap = 0;
	int ret;

	if (!list.len)
		return parse_error(ps, "peer '%s' has no prefixes", peer->name);
	for (;;) {
		const char *comma = memchr(list.p, ',', list.len);
		struct span item = { list.p, comma ? (size_t)(comma - list.p) : list.len };

		ret = add_prefix(ps, peer, span_trim(item), &cap);
		if (ret < 0 || !comma)
			return ret;
		list.len -= item.len + 1;
		list.p = comma + 1;
	}
}

static int parse_line(struct peers_parser *ps, struct span line)
{
	struct span text = strip_comment(line), name = { text.p, 0 }, rest;
	struct peer *peer;
	int ret;

	if (!text.len)
		return 0;
	if (memchr(text.p, '\0', text.len))
		return parse_error(ps, "NUL byte in line");
	while (name.len < text.len && !is_blank(text.p[name.len]))
		name.len++;
	rest = (struct span){ text.p + name.len, text.len - name.len };
	ret = check_name(ps, name);
	if (ret < 0)
		return ret;
	peer = add_peer(ps, name);
	if (!peer)
		return -ENOMEM;
	return parse_prefix_list(ps, peer, span_trim(rest));
}

void peers_free(struct peer_table *table)
{
	size_t i;

	if (!table)
		return;
	for (i = 0; i < table->count; i++)
		free(table->peers[i].prefixes);
	free(table->peers);
	table->peers = NULL;
	table->count = 0;
}

int peers_parse(const char *text, size_t len, struct peer_table *out, char *err, size_t err_len)
{
	struct peers_parser ps = { .err = err, .err_len = err_len };
	const char *end = text + len;
	int ret = 0;

	out->peers = NULL;
	out->count = 0;
	while (text < end && ret == 0) {
		const char *nl = memchr(text, '\n', (size_t)(end - text));
		struct span line = { text, nl ? (size_t)(nl - text) : (size_t)(end - text) };

		ps.line++;
		ret = parse_line(&ps, line);
		text = nl ? nl + 1 : end;
	}
	free(ps.lines);
	if (ret == -ENOMEM)
		snprintf(err, err_len, "%zu: out of memory", ps.line);
	if (ret < 0) {
		peers_free(&ps.table);
		return ret;
	}
	*out = ps.table;
	return 0;
}

int peers_load(const char *path, struct peer_table *out, char *err, size_t err_len)
{
	char *text = NULL, msg[256];
	size_t len = 0;
	int ret;

	out->peers = NULL;
	out->count = 0;
	ret = textfile_read(path, PEERS_FILE_MAX, &text, &len);
	if (ret < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	ret = peers_parse(text, len, out, msg, sizeof(msg));
	free(text);
	if (ret < 0)
		snprintf(err, err_len, "%s:%s", path, msg);
	return ret;
}

const struct peer *peers_find(const struct peer_table *table, const char *name)
{
	size_t i;

	for (i = 0; i < table->count; i++) {
		if (!strcmp(table->peers[i].name, name))
			return &table->peers[i];
	}
	return NULL;
}
