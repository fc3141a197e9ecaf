// SPDX-License-Identifier: MIT
/* The policy database: parsing, checking and printing the --policy file. */

/*
 * One entry per line, an action, white space, then a selector in the
 * --select syntax plus the remote prefix dst=:
 *
 *   # action  selector                      first match wins
 *   bypass    dst=10.102.0.9/32
 *   protect   dst=10.102.0.0/24,proto=tcp,dport=5201
 *   discard   dst=10.102.0.0/24,proto=udp
 *   protect   dst=fd02::/64
 *
 * '#' starts a comment; blank lines and a CR before the newline are fine.
 * The parse is all or nothing: the first error names its line and the
 * caller gets no policy. What the parser refuses beyond bad syntax is what
 * would make a frontend's compilation guess: an entry an earlier one makes
 * unreachable (a route table would give it precedence by being more
 * specific), a src or an ICMP of the other family, a key given twice.
 */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "textfile.h"

static const char *const action_names[] = {
	[POLICY_PROTECT] = "protect",
	[POLICY_BYPASS] = "bypass",
	[POLICY_DISCARD] = "discard",
};

const char *policy_action_name(enum policy_action action)
{
	return (unsigned)action < sizeof(action_names) / sizeof(action_names[0]) ? action_names[action] : "?";
}

static int parse_action(const char *word, enum policy_action *out)
{
	for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++)
		if (strcmp(word, action_names[i]) == 0) {
			*out = (enum policy_action)i;
			return 0;
		}
	return -EINVAL;
}

void policy_free(struct policy *p)
{
	free(p->entries);
	p->entries = NULL;
	p->count = 0;
}

bool policy_entry_equal(const struct policy_entry *a, const struct policy_entry *b)
{
	return a->action == b->action && prefix_covers(&a->dst, &b->dst) &&
	       prefix_covers(&b->dst, &a->dst) && selector_equal(&a->sel, &b->sel);
}

bool policy_entry_covers(const struct policy_entry *a, const struct policy_entry *b)
{
	return prefix_covers(&a->dst, &b->dst) && selector_covers(&a->sel, &b->sel);
}

void policy_entry_format(const struct policy_entry *e, char *out, size_t out_len)
{
	char dst[PREFIX_STR_MAX], sel[POLICY_ENTRY_TEXT_MAX];

	prefix_format(&e->dst, dst, sizeof(dst));
	selector_format(&e->sel, sel, sizeof(sel));
	snprintf(out, out_len, "%s dst=%s%s%s", policy_action_name(e->action), dst, sel[0] ? "," : "", sel);
}

char *policy_format(const struct policy *p)
{
	char *text = NULL, line[POLICY_ENTRY_TEXT_MAX];
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	for (size_t i = 0; i < p->count; i++) {
		policy_entry_format(&p->entries[i], line, sizeof(line));
		fprintf(f, "%s\n", line);
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

int policy_selector_fits(const struct ip_prefix *dst, const struct selector *sel, char *err,
			 size_t err_len)
{
	int family = dst->addr.family;

	if (sel->has_src && sel->src.addr.family != family) {
		snprintf(err, err_len, "src and dst are of different families");
		return -EINVAL;
	}
	if (sel->has_proto && ((sel->proto == IPPROTO_ICMP && family != AF_INET) ||
			       (sel->proto == IPPROTO_ICMPV6 && family != AF_INET6))) {
		snprintf(err, err_len, "proto=%s with an %s dst", sel->proto == IPPROTO_ICMP ? "icmp" : "icmpv6",
			 family == AF_INET ? "IPv4" : "IPv6");
		return -EINVAL;
	}
	return 0;
}

/* The checks one entry needs whatever made it: families agree, nothing before it hides it. */
static int check_entry(const struct policy *p, const struct policy_entry *e, char *err, size_t err_len)
{
	int ret = policy_selector_fits(&e->dst, &e->sel, err, err_len);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < p->count; i++) {
		if (!policy_entry_covers(&p->entries[i], e))
			continue;
		/* The shorthand repeats and nests routes of one action, which is harmless. */
		if (!e->line && p->entries[i].action == e->action)
			continue;
		if (p->entries[i].line)
			snprintf(err, err_len, "never reached: line %zu matches everything it does",
				 p->entries[i].line);
		else
			snprintf(err, err_len, "never reached: entry %zu matches everything it does", i + 1);
		return -EINVAL;
	}
	return 0;
}

static int push_entry(struct policy *p, const struct policy_entry *e, char *err, size_t err_len)
{
	struct policy_entry *grown;
	int ret = check_entry(p, e, err, err_len);

	if (ret < 0)
		return ret;
	if (p->count >= POLICY_ENTRIES_MAX) {
		snprintf(err, err_len, "more than %d entries", POLICY_ENTRIES_MAX);
		return -E2BIG;
	}
	grown = realloc(p->entries, (p->count + 1) * sizeof(*grown));
	if (!grown) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	p->entries = grown;
	p->entries[p->count++] = *e;
	return 0;
}

int policy_append(struct policy *p, enum policy_action action, const struct ip_prefix *dst,
		  const struct selector *sel, char *err, size_t err_len)
{
	struct policy_entry e = { .dst = *dst, .action = action };

	if (sel)
		e.sel = *sel;
	return push_entry(p, &e, err, err_len);
}

/* One key=value of the selector; dst is the policy's, the rest the selector's. */
static int parse_item(char *item, struct policy_entry *e, bool *has_dst, char *err, size_t err_len)
{
	char *eq = strchr(item, '=');
	int ret;

	if (!eq) {
		snprintf(err, err_len, "'%.60s' is not key=value", item);
		return -EINVAL;
	}
	*eq = '\0';
	if (strcmp(item, "dst") == 0) {
		if (*has_dst) {
			snprintf(err, err_len, "key 'dst' given twice");
			return -EINVAL;
		}
		*has_dst = true;
		if (prefix_parse(eq + 1, &e->dst) == 0)
			return 0;
		snprintf(err, err_len, "bad value '%.60s' for dst", eq + 1);
		return -EINVAL;
	}
	ret = selector_set(&e->sel, item, eq + 1);
	if (ret == -ENOENT) {
		snprintf(err, err_len, "unknown key '%.60s' (dst, proto, dport, sport, src, mark, uid)", item);
		return -EINVAL;
	}
	if (ret < 0) {
		selector_set_error(ret, item, eq + 1, err, err_len);
		return -EINVAL;
	}
	return 0;
}

/* The selector text: items split at commas, none empty, dst required. */
static int parse_selector(char *text, struct policy_entry *e, char *err, size_t err_len)
{
	bool has_dst = false;
	char *item = text, *comma;
	int ret;

	for (;;) {
		comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		if (!*item) {
			snprintf(err, err_len, "empty item in the selector");
			return -EINVAL;
		}
		ret = parse_item(item, e, &has_dst, err, err_len);
		if (ret < 0)
			return ret;
		if (!comma)
			break;
		item = comma + 1;
	}
	if (!has_dst) {
		snprintf(err, err_len, "no dst= (the remote prefix)");
		return -EINVAL;
	}
	return selector_check(&e->sel, err, err_len);
}

/* Splits "ACTION SELECTOR" (already trimmed, not empty) and parses both halves. */
static int parse_line(char *line, struct policy_entry *e, char *err, size_t err_len)
{
	char *sel = line, *extra;

	while (*sel && !isspace((unsigned char)*sel))
		sel++;
	if (!*sel) {
		snprintf(err, err_len, "'%.60s' has no selector (ACTION dst=PREFIX[,key=value...])", line);
		return -EINVAL;
	}
	*sel++ = '\0';
	while (isspace((unsigned char)*sel))
		sel++;
	if (parse_action(line, &e->action) < 0) {
		snprintf(err, err_len, "unknown action '%.60s' (protect, bypass, discard)", line);
		return -EINVAL;
	}
	for (extra = sel; *extra && !isspace((unsigned char)*extra); extra++)
		;
	if (*extra) {
		*extra++ = '\0';
		while (isspace((unsigned char)*extra))
			extra++;
		snprintf(err, err_len, "'%.40s' after the selector (keys are separated by commas only)", extra);
		return -EINVAL;
	}
	return parse_selector(sel, e, err, err_len);
}

/* Copies one line without its comment and surrounding blanks into buf; -EINVAL when too long or NUL. */
static int take_line(const char *p, size_t len, char *buf, char *err, size_t err_len)
{
	const char *hash = memchr(p, '#', len);
	size_t start = 0;

	if (memchr(p, '\0', len)) {
		snprintf(err, err_len, "NUL byte in line");
		return -EINVAL;
	}
	if (hash)
		len = (size_t)(hash - p);
	while (start < len && isspace((unsigned char)p[start]))
		start++;
	while (len > start && isspace((unsigned char)p[len - 1]))
		len--;
	if (len - start >= POLICY_LINE_MAX) {
		snprintf(err, err_len, "longer than %d characters", POLICY_LINE_MAX - 1);
		return -EINVAL;
	}
	memcpy(buf, p + start, len - start);
	buf[len - start] = '\0';
	return 0;
}

static int parse_all(const char *text, size_t len, struct policy *out, size_t *line_no, char *err,
		     size_t err_len)
{
	char buf[POLICY_LINE_MAX];
	size_t pos = 0;
	int ret;

	for (*line_no = 1; pos < len; (*line_no)++) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		struct policy_entry e = { .line = *line_no };

		ret = take_line(text + pos, end - pos, buf, err, err_len);
		pos = end + 1;
		if (ret < 0)
			return ret;
		if (!buf[0])
			continue;
		ret = parse_line(buf, &e, err, err_len);
		if (ret == 0)
			ret = push_entry(out, &e, err, err_len);
		if (ret < 0)
			return ret;
	}
	if (out->count == 0) {
		snprintf(err, err_len, "no entries");
		return -EINVAL;
	}
	return 0;
}

int policy_parse(const char *text, size_t len, struct policy *out, char *err, size_t err_len)
{
	char why[256];
	size_t line_no = 0;
	int ret;

	*out = (struct policy){ 0 };
	ret = parse_all(text, len, out, &line_no, why, sizeof(why));
	if (ret < 0) {
		/* "no entries" belongs to the whole file, not to the line after its last. */
		if (out->count == 0 && strcmp(why, "no entries") == 0)
			line_no = line_no > 1 ? line_no - 1 : 1;
		snprintf(err, err_len, "%zu: %s", line_no, why);
		policy_free(out);
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	return 0;
}

int policy_load(const char *path, struct policy *out, char *err, size_t err_len)
{
	char *text = NULL, msg[300];
	size_t len = 0;
	int ret;

	*out = (struct policy){ 0 };
	ret = textfile_read(path, POLICY_FILE_MAX, &text, &len);
	if (ret < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	ret = policy_parse(text, len, out, msg, sizeof(msg));
	free(text);
	if (ret < 0)
		snprintf(err, err_len, "%s:%s", path, msg);
	return ret;
}

int policy_from_flags(const struct ip_prefix *routes, size_t route_count,
		      const struct selector *sels, size_t sel_count, struct policy *out, char *err,
		      size_t err_len)
{
	static const struct selector any;
	int ret = 0;

	*out = (struct policy){ 0 };
	for (size_t i = 0; i < route_count && ret == 0; i++)
		for (size_t s = 0; s < (sel_count ? sel_count : 1) && ret == 0; s++) {
			const struct selector *sel = sel_count ? &sels[s] : &any;

			if (policy_selector_fits(&routes[i], sel, err, err_len) == 0)
				ret = policy_append(out, POLICY_PROTECT, &routes[i], sel, err, err_len);
		}
	if (ret < 0)
		policy_free(out);
	return ret;
}

/* The first key of sel outside keys, or NULL. */
static const char *key_outside(const struct selector *sel, unsigned keys)
{
	static const struct {
		unsigned bit;
		size_t has;
		const char *name;
	} table[] = {
		{ POLICY_KEY_SRC, offsetof(struct selector, has_src), "src" },
		{ POLICY_KEY_PROTO, offsetof(struct selector, has_proto), "proto" },
		{ POLICY_KEY_DPORT, offsetof(struct selector, has_dport), "dport" },
		{ POLICY_KEY_SPORT, offsetof(struct selector, has_sport), "sport" },
		{ POLICY_KEY_MARK, offsetof(struct selector, has_mark), "mark" },
		{ POLICY_KEY_UID, offsetof(struct selector, has_uid), "uid" },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (*(const bool *)((const char *)sel + table[i].has) && !(keys & table[i].bit))
			return table[i].name;
	return NULL;
}

int policy_check_caps(const struct policy *p, unsigned keys, unsigned actions, const char *who,
		      const char *why, char *err, size_t err_len)
{
	for (size_t i = 0; i < p->count; i++) {
		const struct policy_entry *e = &p->entries[i];
		const char *key = key_outside(&e->sel, keys);

		if (key) {
			snprintf(err, err_len, "%zu: %s cannot express the selector key %s (%s)", e->line, who,
				 key, why);
			return -EINVAL;
		}
		if (!(actions & POLICY_ACTION_BIT(e->action))) {
			snprintf(err, err_len, "%zu: %s cannot express the action %s (%s)", e->line, who,
				 policy_action_name(e->action), why);
			return -EINVAL;
		}
	}
	return 0;
}

size_t policy_protect_dsts(const struct policy *p, struct ip_prefix *out)
{
	size_t n = 0;

	for (size_t i = 0; i < p->count; i++) {
		const struct policy_entry *e = &p->entries[i];
		bool seen = e->action != POLICY_PROTECT;

		for (size_t k = 0; k < n && !seen; k++)
			seen = prefix_covers(&out[k], &e->dst) && prefix_covers(&e->dst, &out[k]);
		if (!seen)
			out[n++] = e->dst;
	}
	return n;
}
