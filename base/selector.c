// SPDX-License-Identifier: MIT
/* Parsing and printing of --select traffic selectors. */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selector.h"

enum { SELECTOR_TEXT_MAX = 256 };

static const struct {
	const char *name;
	uint8_t number;
} protocols[] = {
	{ "tcp", IPPROTO_TCP },
	{ "udp", IPPROTO_UDP },
	{ "icmp", IPPROTO_ICMP },
	{ "icmpv6", IPPROTO_ICMPV6 },
};

static int parse_u32(const char *text, unsigned long max, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_proto(const char *text, uint8_t *out)
{
	uint32_t v;

	for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
		if (strcmp(text, protocols[i].name) == 0) {
			*out = protocols[i].number;
			return 0;
		}
	if (parse_u32(text, 255, &v) < 0)
		return -EINVAL;
	*out = (uint8_t)v;
	return 0;
}

static int parse_ports(char *text, struct port_range *out)
{
	char *dash = strchr(text, '-');
	uint32_t lo, hi;
	int ret;

	if (dash)
		*dash = '\0';
	ret = parse_u32(text, 65535, &lo);
	hi = lo;
	if (ret == 0 && dash)
		ret = parse_u32(dash + 1, 65535, &hi);
	if (dash)
		*dash = '-'; /* the caller quotes the whole value in its error */
	if (ret < 0 || lo > hi)
		return -EINVAL;
	*out = (struct port_range){ (uint16_t)lo, (uint16_t)hi };
	return 0;
}

int selector_set(struct selector *s, const char *key, char *value)
{
	uint32_t v;

	if (strcmp(key, "proto") == 0)
		return s->has_proto ? -EEXIST : (s->has_proto = true, parse_proto(value, &s->proto));
	if (strcmp(key, "dport") == 0)
		return s->has_dport ? -EEXIST : (s->has_dport = true, parse_ports(value, &s->dport));
	if (strcmp(key, "sport") == 0)
		return s->has_sport ? -EEXIST : (s->has_sport = true, parse_ports(value, &s->sport));
	if (strcmp(key, "src") == 0)
		return s->has_src ? -EEXIST : (s->has_src = true, prefix_parse(value, &s->src));
	if (strcmp(key, "mark") == 0) {
		if (s->has_mark)
			return -EEXIST;
		s->has_mark = true;
		if (parse_u32(value, UINT32_MAX, &v) < 0)
			return -EINVAL;
		s->mark = v;
		return 0;
	}
	if (strcmp(key, "uid") == 0) {
		if (s->has_uid)
			return -EEXIST;
		s->has_uid = true;
		if (parse_u32(value, UINT32_MAX - 1, &v) < 0)
			return -EINVAL;
		s->uid = v;
		return 0;
	}
	return -ENOENT;
}

int selector_check(const struct selector *s, char *err, size_t err_len)
{
	bool ports = s->has_dport || s->has_sport;

	if (ports && !(s->has_proto && (s->proto == IPPROTO_TCP || s->proto == IPPROTO_UDP))) {
		snprintf(err, err_len, "ports need proto=tcp or proto=udp");
		return -EINVAL;
	}
	return 0;
}

void selector_set_error(int ret, const char *key, const char *value, char *err, size_t err_len)
{
	if (ret == -ENOENT)
		snprintf(err, err_len, "unknown key '%s' (proto, dport, sport, src, mark, uid)", key);
	else if (ret == -EEXIST)
		snprintf(err, err_len, "key '%s' given twice", key);
	else
		snprintf(err, err_len, "bad value '%s' for %s", value, key);
}

int selector_parse(const char *text, struct selector *out, char *err, size_t err_len)
{
	char buf[SELECTOR_TEXT_MAX], *save = NULL, *item;
	int count = 0;

	memset(out, 0, sizeof(*out));
	if (strlen(text) >= sizeof(buf)) {
		snprintf(err, err_len, "longer than %d characters", SELECTOR_TEXT_MAX - 1);
		return -EINVAL;
	}
	strcpy(buf, text);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		int ret;

		if (!eq) {
			snprintf(err, err_len, "'%s' is not key=value", item);
			return -EINVAL;
		}
		*eq = '\0';
		ret = selector_set(out, item, eq + 1);
		if (ret < 0) {
			selector_set_error(ret, item, eq + 1, err, err_len);
			return -EINVAL;
		}
		count++;
	}
	if (!count) {
		snprintf(err, err_len, "empty selector");
		return -EINVAL;
	}
	return selector_check(out, err, err_len);
}

static const char *proto_name(uint8_t number)
{
	for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
		if (protocols[i].number == number)
			return protocols[i].name;
	return NULL;
}

static void append(char *out, size_t out_len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));


static void append(char *out, size_t out_len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= out_len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *used, out_len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n;
}

static void append_ports(char *out, size_t len, size_t *used, const char *key,
			 const struct port_range *r)
{
	if (r->lo == r->hi)
		append(out, len, used, ",%s=%u", key, r->lo);
	else
		append(out, len, used, ",%s=%u-%u", key, r->lo, r->hi);
}

void selector_format(const struct selector *s, char *out, size_t out_len)
{
	char prefix[PREFIX_STR_MAX];
	size_t used = 0;

	out[0] = '\0';
	if (s->has_proto) {
		const char *name = proto_name(s->proto);

		if (name)
			append(out, out_len, &used, ",proto=%s", name);
		else
			append(out, out_len, &used, ",proto=%u", s->proto);
	}
	if (s->has_dport)
		append_ports(out, out_len, &used, "dport", &s->dport);
	if (s->has_sport)
		append_ports(out, out_len, &used, "sport", &s->sport);
	if (s->has_src) {
		prefix_format(&s->src, prefix, sizeof(prefix));
		append(out, out_len, &used, ",src=%s", prefix);
	}
	if (s->has_mark)
		append(out, out_len, &used, ",mark=0x%x", s->mark);
	if (s->has_uid)
		append(out, out_len, &used, ",uid=%u", s->uid);
	if (used)
		memmove(out, out + 1, strlen(out + 1) + 1);
}

static bool ports_hold(const struct port_range *a, const struct port_range *b)
{
	return a->lo <= b->lo && b->hi <= a->hi;
}

bool selector_covers(const struct selector *a, const struct selector *b)
{
	/* A key a leaves out matches anything; a key a has, b must have, as narrow or narrower. */
	if (a->has_proto && !(b->has_proto && b->proto == a->proto))
		return false;
	if (a->has_dport && !(b->has_dport && ports_hold(&a->dport, &b->dport)))
		return false;
	if (a->has_sport && !(b->has_sport && ports_hold(&a->sport, &b->sport)))
		return false;
	if (a->has_src && !(b->has_src && prefix_covers(&a->src, &b->src)))
		return false;
	if (a->has_mark && !(b->has_mark && b->mark == a->mark))
		return false;
	return !a->has_uid || (b->has_uid && b->uid == a->uid);
}

bool selector_equal(const struct selector *a, const struct selector *b)
{
	return selector_covers(a, b) && selector_covers(b, a);
}
