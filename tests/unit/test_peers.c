// SPDX-License-Identifier: MIT
/* Unit tests of the peers file parser (peers_parse, peers_find, peers_free in tunnel/tunnel.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tunnel/tunnel.h"

/* Parses exactly len bytes from a heap copy, so that reading past len shows under ASan. */
static int parse_n(const char *text, size_t len, struct peer_table *t, char *err, size_t err_len)
{
	char *copy = malloc(len ? len : 1);
	int ret;

	assert_non_null(copy);
	memcpy(copy, text, len);
	err[0] = '\0';
	ret = peers_parse(copy, len, t, err, err_len);
	free(copy);
	return ret;
}

static int parse(const char *text, struct peer_table *t, char *err, size_t err_len)
{
	return parse_n(text, strlen(text), t, err, err_len);
}

static void assert_prefix_is(const struct ip_prefix *p, const char *want)
{
	char out[PREFIX_STR_MAX];

	prefix_format(p, out, sizeof(out));
	assert_string_equal(out, want);
}

static const struct peer *must_find(const struct peer_table *t, const char *name, size_t prefixes)
{
	const struct peer *peer = peers_find(t, name);

	if (!peer)
		fail_msg("peer '%s' not found", name);
	assert_string_equal(peer->name, name);
	assert_int_equal(peer->prefix_count, prefixes);
	return peer;
}

static void test_example_line(void **state)
{
	(void)state;
	struct peer_table t;
	char err[256];
	const struct peer *cli;

	assert_int_equal(parse("cli 10.8.0.2/32,192.168.60.0/24\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 1);
	cli = must_find(&t, "cli", 2);
	assert_ptr_equal(cli, &t.peers[0]);
	assert_prefix_is(&cli->prefixes[0], "10.8.0.2/32");
	assert_prefix_is(&cli->prefixes[1], "192.168.60.0/24");
	assert_null(peers_find(&t, "cl"));
	assert_null(peers_find(&t, "clie"));
	assert_null(peers_find(&t, ""));
	peers_free(&t);
	assert_int_equal(t.count, 0);
}

static void test_comments_blanks_tabs(void **state)
{
	(void)state;
	static const char text[] =
		"# tunlab peers\n"
		"\n"
		"   \t  \n"
		"cli\t10.8.0.2/32 # the laptop\n"
		"  # indented comment\n"
		"\tlab2 \t 10.8.0.3/32,10.60.0.0/16#no blank before\n"
		"lab3 10.8.0.5/32 , 10.61.0.0/16,\t10.62.0.0/16\n" /* blanks around commas */
		"office 10.8.0.4/32"; /* no newline at the end */
	struct peer_table t;
	char err[256];

	assert_int_equal(parse(text, &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 4);
	assert_prefix_is(&must_find(&t, "cli", 1)->prefixes[0], "10.8.0.2/32");
	const struct peer *lab2 = must_find(&t, "lab2", 2);

	assert_prefix_is(&lab2->prefixes[0], "10.8.0.3/32");
	assert_prefix_is(&lab2->prefixes[1], "10.60.0.0/16");
	const struct peer *lab3 = must_find(&t, "lab3", 3);

	assert_prefix_is(&lab3->prefixes[1], "10.61.0.0/16");
	assert_prefix_is(&lab3->prefixes[2], "10.62.0.0/16");
	assert_prefix_is(&must_find(&t, "office", 1)->prefixes[0], "10.8.0.4/32");
	/* In file order. */
	assert_string_equal(t.peers[0].name, "cli");
	assert_string_equal(t.peers[3].name, "office");
	peers_free(&t);
}

static void test_several_and_v6(void **state)
{
	(void)state;
	static const char text[] =
		"alpha 10.8.0.2/32,fd00:8::2/128\n"
		"beta 10.8.0.3/32,2001:db8:1::/48,192.168.61.0/24\n"
		"gamma fd00:9::/64\n";
	struct peer_table t;
	char err[256];

	assert_int_equal(parse(text, &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 3);
	const struct peer *alpha = must_find(&t, "alpha", 2);
	const struct peer *beta = must_find(&t, "beta", 3);
	const struct peer *gamma = must_find(&t, "gamma", 1);

	assert_prefix_is(&alpha->prefixes[1], "fd00:8::2/128");
	assert_prefix_is(&beta->prefixes[1], "2001:db8:1::/48");
	assert_prefix_is(&beta->prefixes[2], "192.168.61.0/24");
	assert_prefix_is(&gamma->prefixes[0], "fd00:9::/64");
	assert_null(peers_find(&t, "delta"));
	peers_free(&t);
}

/* Only len bytes count: what follows them is not part of the file. */
static void test_len_bounds(void **state)
{
	(void)state;
	static const char text[] = "cli 10.8.0.2/32\nthis is not a peer line";
	struct peer_table t;
	char err[256];

	assert_int_equal(parse_n(text, 16, &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 1);
	peers_free(&t);
	/* Cut inside a prefix: "10.8.0.2/3" is still a valid prefix. */
	assert_int_equal(parse_n(text, 14, &t, err, sizeof(err)), 0);
	assert_prefix_is(&must_find(&t, "cli", 1)->prefixes[0], "0.0.0.0/3");
	peers_free(&t);
}

static void test_empty(void **state)
{
	(void)state;
	struct peer_table t;
	char err[256];

	assert_int_equal(parse("", &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 0);
	assert_null(peers_find(&t, "cli"));
	peers_free(&t);
	assert_int_equal(parse("# nobody yet\n\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 0);
	peers_free(&t);
}

/* -EINVAL, no table, and err starting "LINE: " and naming what is wrong. */
static void assert_error(const char *text, unsigned line, const char *mentions)
{
	struct peer_table t = { .peers = (struct peer *)&t, .count = 99 };
	char err[256], want[16];
	int ret = parse(text, &t, err, sizeof(err));

	if (ret != -EINVAL) {
		if (ret == 0)
			peers_free(&t);
		fail_msg("got %d, want -EINVAL, parsing:\n%s", ret, text);
	}
	assert_null(t.peers);
	assert_int_equal(t.count, 0);
	snprintf(want, sizeof(want), "%u: ", line);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("err \"%s\" does not start with \"%s\"", err, want);
	if (mentions && !strstr(err, mentions))
		fail_msg("err \"%s\" does not mention \"%s\"", err, mentions);
}

static void test_missing_prefixes(void **state)
{
	(void)state;
	assert_error("cli\n", 1, NULL);
	assert_error("a 10.0.0.1\n\ncli   # prefixes forgotten\n", 3, NULL);
	assert_error("a 10.0.0.1\ncli\t", 2, NULL);
}

static void test_bad_prefix(void **state)
{
	(void)state;
	assert_error("cli 10.8.0.300/32\n", 1, "10.8.0.300/32");
	assert_error("# c\ncli 10.8.0.2/32,10.9.0.0/33\n", 2, "10.9.0.0/33");
	assert_error("a 10.0.0.1\nb 10.0.0.2\nc fd00::/129\n", 3, "fd00::/129");
	assert_error("cli 10.8.0.2/32,\n", 1, NULL);
	assert_error("cli 10.8.0.2/32,,10.8.0.3/32\n", 1, NULL);
	assert_error("cli banana\n", 1, "banana");
}

static void test_duplicate_name(void **state)
{
	(void)state;
	assert_error("cli 10.8.0.2/32\nsrv 10.8.0.1/32\ncli 10.8.0.3/32\n", 3, "cli");
}

static void test_overlap(void **state)
{
	(void)state;
	assert_error("a 10.0.0.0/8\nb 10.1.0.0/16\n", 2, "10.1.0.0/16");
	assert_error("a 10.1.0.0/16\n\nb 10.0.0.0/8\n", 3, "10.0.0.0/8");
	assert_error("a 10.8.0.2/32\nb 10.8.0.3/32,10.8.0.2/32\n", 2, "10.8.0.2/32");
	assert_error("a fd00::/16\nb 10.9.0.0/16,fd00:1::/64\n", 2, "fd00:1::/64");
	assert_error("a 10.8.0.2/32\nb 0.0.0.0/0\n", 2, NULL);

	/* Neighbours that do not overlap, and two families sharing leading bytes. */
	struct peer_table t;
	char err[256];

	assert_int_equal(parse("a 10.1.0.0/16\nb 10.2.0.0/16\nc a01::/16\n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 3);
	peers_free(&t);
}

static void test_name_length(void **state)
{
	(void)state;
	char text[PEER_NAME_MAX + 64], name[PEER_NAME_MAX + 2];
	struct peer_table t;
	char err[256];

	memset(name, 'n', PEER_NAME_MAX);
	name[PEER_NAME_MAX] = '\0';
	snprintf(text, sizeof(text), "%s 10.8.0.2/32\n", name);
	assert_int_equal(parse(text, &t, err, sizeof(err)), 0);
	must_find(&t, name, 1);
	peers_free(&t);

	memset(name, 'n', PEER_NAME_MAX + 1);
	name[PEER_NAME_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "ok 10.8.0.1/32\n%s 10.8.0.2/32\n", name);
	assert_error(text, 2, NULL);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

struct load_dir {
	char dir[40], path[64];
};

static int load_setup(void **state)
{
	static struct load_dir d;

	snprintf(d.dir, sizeof(d.dir), "/tmp/tunlab-test-peers-XXXXXX");
	if (!mkdtemp(d.dir))
		return -1;
	snprintf(d.path, sizeof(d.path), "%s/peers", d.dir);
	*state = &d;
	return 0;
}

static int load_teardown(void **state)
{
	struct load_dir *d = *state;

	unlink(d->path);
	return rmdir(d->dir);
}

/* peers_load: the same parser on a file, and err starts with the path. */
static void test_load(void **state)
{
	const struct load_dir *d = *state;
	const char *path = d->path;
	struct peer_table t;
	char err[512];

	write_file(path, "# lab\ncli 10.8.0.2/32,192.168.60.0/24\n");
	assert_int_equal(peers_load(path, &t, err, sizeof(err)), 0);
	assert_int_equal(t.count, 1);
	must_find(&t, "cli", 2);
	peers_free(&t);

	write_file(path, "cli 10.8.0.2/32\ncli 10.8.0.3/32\n");
	assert_int_equal(peers_load(path, &t, err, sizeof(err)), -EINVAL);
	assert_null(t.peers);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_non_null(strstr(err + strlen(path), "2: "));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(peers_load(path, &t, err, sizeof(err)), -ENOENT);
	assert_int_equal(t.count, 0);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_true(peers_load(d->dir, &t, err, sizeof(err)) < 0);
	assert_true(strncmp(err, d->dir, strlen(d->dir)) == 0);
}

/* A short err buffer is cut and terminated, never overrun. */
static void test_err_truncated(void **state)
{
	(void)state;
	struct peer_table t;
	char err[32];

	memset(err, 'X', sizeof(err));
	assert_int_equal(peers_parse("cli 10.8.0.300/32\n", 18, &t, err, 8), -EINVAL);
	assert_non_null(memchr(err, '\0', 8));
	assert_true(strncmp(err, "1: ", 3) == 0);
	for (size_t i = 8; i < sizeof(err); i++)
		assert_int_equal(err[i], 'X');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_line),
		cmocka_unit_test(test_comments_blanks_tabs),
		cmocka_unit_test(test_several_and_v6),
		cmocka_unit_test(test_len_bounds),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_missing_prefixes),
		cmocka_unit_test(test_bad_prefix),
		cmocka_unit_test(test_duplicate_name),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_name_length),
		cmocka_unit_test(test_err_truncated),
		cmocka_unit_test_setup_teardown(test_load, load_setup, load_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
