// SPDX-License-Identifier: MIT
/* Unit tests of the command line parser (src/options.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../proxy/proxy.h"
#include "../../src/options.h"
#include "../skeleton/skeleton.h"

#define ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])))

static const char *const server_argv[] = {
	"tunlab", "server",
	"--frontend", "tun",
	"--listen", "127.0.0.1:4443",
	"--cert", "srv.pem",
	"--key", "srv.key",
	"--ca", "ca.pem",
	"--peers", "peers.conf",
	"--export", "10.102.0.0/24",
	"--export=fd02::1/64",
	"--peer-to-peer",
	"--address", "10.8.0.1/24",
	"--mtu", "1400",
	"--stats", "stats.json",
	"--stats-interval", "250",
	"--dev", "tl0",
	"--keepalive", "2.5",
	"--handshake-timeout=3",
	"--trace",
	"--verbose",
	"--no-offload",
};

static const char *const client_argv[] = {
	"tunlab", "client",
	"--frontend", "nfqueue",
	"--connect", "[::1]:4443",
	"--server-name", "srv.tunlab.test",
	"--cert", "cli.pem",
	"--key", "cli.key",
	"--ca", "ca.pem",
	"--address=10.8.0.2/24",
	"--route", "10.9.0.0/16",
	"--route", "fd00:9::/64",
	"--route=192.168.60.7/24",
	"--queue", "512K",
};

static int parse(int argc, const char *const *argv, struct options *o, char *err, size_t err_len)
{
	err[0] = '\0';
	return options_parse(argc, (char *const *)argv, o, err, err_len);
}

static void assert_prefix_is(const struct ip_prefix *p, const char *want)
{
	char out[PREFIX_STR_MAX];

	prefix_format(p, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_server(void **state)
{
	(void)state;
	struct options o;
	char err[256];

	assert_int_equal(parse(ARGC(server_argv), server_argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.command, CMD_SERVER);
	assert_string_equal(o.frontend, "tun");
	assert_string_equal(o.endpoint, "127.0.0.1:4443");
	assert_null(o.server_name);
	assert_string_equal(o.cert_file, "srv.pem");
	assert_string_equal(o.key_file, "srv.key");
	assert_string_equal(o.ca_file, "ca.pem");
	assert_string_equal(o.peers_file, "peers.conf");
	assert_int_equal(o.address_count, 1);
	assert_prefix_is(&o.addresses[0], "10.8.0.1/24");
	assert_int_equal(o.route_count, 0);
	assert_int_equal(o.export_count, 2);
	assert_prefix_is(&o.exports[0], "10.102.0.0/24");
	assert_prefix_is(&o.exports[1], "fd02::/64");
	assert_true(o.peer_to_peer);
	assert_string_equal(o.stats_file, "stats.json");
	assert_int_equal(o.stats_interval_ms, 250);
	assert_string_equal(o.ifname, "tl0");
	assert_int_equal(o.mtu, 1400);
	assert_int_equal(o.keepalive_ms, 2500);
	assert_int_equal(o.handshake_ms, 3000);
	assert_true(o.trace);
	assert_true(o.verbose);
	assert_false(o.offload);
	options_free(&o);
}

static void test_client(void **state)
{
	(void)state;
	struct options o;
	char err[256];

	assert_int_equal(parse(ARGC(client_argv), client_argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.command, CMD_CLIENT);
	assert_string_equal(o.frontend, "nfqueue");
	assert_string_equal(o.endpoint, "[::1]:4443");
	assert_string_equal(o.server_name, "srv.tunlab.test");
	assert_string_equal(o.cert_file, "cli.pem");
	assert_null(o.peers_file);
	assert_int_equal(o.address_count, 1);
	assert_prefix_is(&o.addresses[0], "10.8.0.2/24");
	assert_int_equal(o.route_count, 3);
	assert_non_null(o.routes);
	assert_prefix_is(&o.routes[0], "10.9.0.0/16");
	assert_prefix_is(&o.routes[1], "fd00:9::/64");
	assert_int_equal(o.routes[1].addr.family, AF_INET6);
	assert_prefix_is(&o.routes[2], "192.168.60.0/24"); /* host bits cleared */
	assert_int_equal(o.queue_bytes, 512 * 1024);
	/* Defaults of what was not given. */
	assert_int_equal(o.mtu, 1500);
	assert_int_equal(o.stats_interval_ms, 1000);
	assert_null(o.stats_file);
	assert_null(o.ifname);
	assert_true(o.offload);
	assert_false(o.trace);
	assert_int_equal(o.keepalive_ms, 0);
	assert_int_equal(o.handshake_ms, 0);
	options_free(&o);
	assert_null(o.routes);
	assert_int_equal(o.route_count, 0);
}

/* The parser keeps no state between calls: the same line twice gives the same result. */
static void test_reparse(void **state)
{
	(void)state;
	struct options o;
	char err[256];

	for (int i = 0; i < 2; i++) {
		assert_int_equal(parse(ARGC(client_argv), client_argv, &o, err, sizeof(err)), 0);
		assert_int_equal(o.route_count, 3);
		options_free(&o);
	}
}

static void test_cleanup(void **state)
{
	(void)state;
	const char *const argv[] = { "tunlab", "cleanup", "--verbose" };
	struct options o;
	char err[256];

	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.command, CMD_CLEANUP);
	assert_true(o.verbose);
	options_free(&o);
}

static void assert_help(int argc, const char *const *argv, enum command topic)
{
	struct options o;
	char err[256];

	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.command, CMD_HELP);
	assert_int_equal(o.help_topic, topic);
	options_free(&o);
}

static void test_help_and_version(void **state)
{
	(void)state;
	const char *const bare[] = { "tunlab" };
	const char *const help[] = { "tunlab", "--help" };
	const char *const help_server[] = { "tunlab", "help", "server" };
	const char *const help_client[] = { "tunlab", "help", "client" };
	const char *const server_help[] = { "tunlab", "server", "--help" };
	const char *const late_help[] = { "tunlab", "client", "--frontend", "tun", "--help" };
	const char *const version[] = { "tunlab", "--version" };
	struct options o;
	char err[256];

	assert_help(ARGC(bare), bare, CMD_NONE);
	assert_help(ARGC(help), help, CMD_NONE);
	assert_help(ARGC(help_server), help_server, CMD_SERVER);
	assert_help(ARGC(help_client), help_client, CMD_CLIENT);
	assert_help(ARGC(server_help), server_help, CMD_SERVER);
	assert_help(ARGC(late_help), late_help, CMD_CLIENT);

	assert_int_equal(parse(ARGC(version), version, &o, err, sizeof(err)), 0);
	assert_int_equal(o.command, CMD_VERSION);
	options_free(&o);
}

/* options_usage(topic)'s text, malloc'd. */
static char *usage_text(enum command topic)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	options_usage(out, topic);
	fclose(out);
	return text;
}

/* Usage text goes where it is told and names the command's flags. */
static void test_usage(void **state)
{
	(void)state;
	char *text = usage_text(CMD_CLIENT);

	assert_non_null(strstr(text, "--connect"));
	assert_non_null(strstr(text, "--route"));
	assert_null(strstr(text, "--peers"));
	/* The lab writes -v: the help must name it beside --verbose. */
	assert_non_null(strstr(text, "-v, --verbose"));
	free(text);

	text = usage_text(CMD_NONE);
	assert_non_null(strstr(text, "server"));
	assert_non_null(strstr(text, "client"));
	free(text);
}

/* -EINVAL, no routes left allocated, and err names the flag or value at fault. */
static void assert_error(int argc, const char *const *argv, const char *mentions)
{
	struct options o;
	char err[256];
	int ret = parse(argc, argv, &o, err, sizeof(err));

	if (ret != -EINVAL) {
		options_free(&o);
		fail_msg("argv[%d] \"%s\": got %d, want -EINVAL", argc - 1, argv[argc - 1], ret);
	}
	assert_null(o.routes);
	assert_int_equal(o.route_count, 0);
	if (!strstr(err, mentions))
		fail_msg("err \"%s\" does not mention \"%s\"", err, mentions);
}

/* A copy of the valid client line with one argument replaced or the line cut. */
static void assert_client_error(size_t at, const char *arg, size_t argc, const char *mentions)
{
	const char *argv[ARGC(client_argv)];

	memcpy(argv, client_argv, sizeof(argv));
	if (arg)
		argv[at] = arg;
	assert_error((int)argc, argv, mentions);
}

static size_t client_index(const char *arg)
{
	for (size_t i = 0; i < ARGC(client_argv); i++)
		if (strcmp(client_argv[i], arg) == 0)
			return i;
	fail_msg("%s not in client_argv", arg);
	return 0;
}

static void test_unknown_flag(void **state)
{
	(void)state;
	const char *const bogus[] = { "tunlab", "server", "--bogus", "1" };
	/* A flag of the other command is unknown here. */
	const char *const wrong_cmd[] = { "tunlab", "server", "--connect", "x:1" };
	const char *const positional[] = { "tunlab", "client", "stray" };

	assert_error(ARGC(bogus), bogus, "--bogus");
	assert_error(ARGC(wrong_cmd), wrong_cmd, "--connect");
	assert_error(ARGC(positional), positional, "stray");
}

static void test_missing_value(void **state)
{
	(void)state;
	const char *const cert_last[] = { "tunlab", "server", "--frontend", "tun", "--cert" };
	const char *const flag_no_value[] = { "tunlab", "client", "--trace=yes" };

	assert_error(ARGC(cert_last), cert_last, "--cert");
	assert_error(ARGC(flag_no_value), flag_no_value, "--trace");
	assert_client_error(client_index("--cert") + 1, "", ARGC(client_argv), "--cert");
}

static void test_bad_values(void **state)
{
	(void)state;
	size_t addr = client_index("--address=10.8.0.2/24");
	size_t route = client_index("fd00:9::/64");
	size_t queue = client_index("512K");

	assert_client_error(addr, "--address=10.8.0.300/24", ARGC(client_argv), "--address");
	assert_client_error(addr, "--address=10.8.0.300/24", ARGC(client_argv), "10.8.0.300/24");
	assert_client_error(addr, "--address=10.8.0.2/33", ARGC(client_argv), "--address");
	assert_client_error(route, "10.9.0.0/40", ARGC(client_argv), "--route");
	assert_client_error(route, "10.9.0.0/40", ARGC(client_argv), "10.9.0.0/40");
	assert_client_error(route, "nowhere", ARGC(client_argv), "--route");
	assert_client_error(queue, "lots", ARGC(client_argv), "--queue");
	assert_client_error(queue, "1G", ARGC(client_argv), "--queue");
	assert_client_error(queue, "65M", ARGC(client_argv), "--queue");

	static const char *const bad_mtu[] = { "abc", "1400x", "-1", "575", "65536", "", "4294968796" };

	for (size_t i = 0; i < sizeof(bad_mtu) / sizeof(bad_mtu[0]); i++) {
		const char *argv[] = { "tunlab", "client", "--mtu", bad_mtu[i] };

		assert_error(ARGC(argv), argv, "--mtu");
		if (bad_mtu[i][0])
			assert_error(ARGC(argv), argv, bad_mtu[i]);
	}
	const char *const keepalive[] = { "tunlab", "client", "--keepalive", "soon" };
	const char *const interval[] = { "tunlab", "server", "--stats-interval", "9" };

	assert_error(ARGC(keepalive), keepalive, "--keepalive");
	assert_error(ARGC(interval), interval, "--stats-interval");
}

/* --address once per family: IPv4 and IPv6 in either order; a second of one family is an error. */
static void test_address_per_family(void **state)
{
	(void)state;
	const char *argv[ARGC(client_argv) + 2];
	struct options o;
	char err[256];

	memcpy(argv, client_argv, sizeof(client_argv));
	argv[ARGC(client_argv)] = "--address";
	argv[ARGC(client_argv) + 1] = "fd08::2/64";
	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.address_count, 2);
	assert_prefix_is(&o.addresses[0], "10.8.0.2/24");
	assert_prefix_is(&o.addresses[1], "fd08::2/64"); /* host bits kept */
	assert_int_equal(o.addresses[1].addr.family, AF_INET6);
	options_free(&o);

	const char *const v6_first[] = { "tunlab", "client", "--frontend", "tun", "--connect",
					 "[fd01::1]:4443", "--cert", "c", "--key", "k", "--ca", "a",
					 "--route", "fd02::/64", "--address", "fd08::2/64",
					 "--address=10.8.0.2/24" };
	assert_int_equal(parse(ARGC(v6_first), v6_first, &o, err, sizeof(err)), 0);
	assert_int_equal(o.address_count, 2);
	assert_prefix_is(&o.addresses[0], "fd08::2/64");
	assert_prefix_is(&o.addresses[1], "10.8.0.2/24");
	options_free(&o);
	assert_int_equal(parse(ARGC(v6_first) - 1, v6_first, &o, err, sizeof(err)), 0);
	assert_int_equal(o.address_count, 1); /* IPv6 only */
	options_free(&o);

	argv[ARGC(client_argv) + 1] = "10.9.0.2/24";
	assert_error(ARGC(argv), argv, "--address");
	assert_error(ARGC(argv), argv, "10.9.0.2/24");
	assert_error(ARGC(argv), argv, "second IPv4");
	const char *const two_v6[] = { "tunlab", "client", "--address", "fd08::2/64",
				       "--address", "fd08::3/64" };
	assert_error(ARGC(two_v6), two_v6, "--address: 'fd08::3/64' is a second IPv6 address");
	const char *const same_twice[] = { "tunlab", "server", "--address", "10.8.0.1/24",
					   "--address", "10.8.0.1/24" };
	assert_error(ARGC(same_twice), same_twice, "--address");
}

/* 2^44 + 1 mebibytes wraps to 1 MiB in 64 bits: an overflow, not a size. */
static void test_queue_overflow(void **state)
{
	(void)state;
	assert_client_error(client_index("512K"), "17592186044417M", ARGC(client_argv), "--queue");
	assert_client_error(client_index("512K"), "18014398509481985K", ARGC(client_argv), "--queue");
}

static void test_limits_accepted(void **state)
{
	(void)state;
	const char *argv[ARGC(client_argv) + 2];
	struct options o;
	char err[256];

	memcpy(argv, client_argv, sizeof(client_argv));
	argv[ARGC(client_argv)] = "--mtu";
	argv[ARGC(client_argv) + 1] = "576";
	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.mtu, 576);
	options_free(&o);
	argv[ARGC(client_argv) + 1] = "65535";
	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.mtu, 65535);
	options_free(&o);

	argv[ARGC(client_argv)] = "--queue";
	argv[ARGC(client_argv) + 1] = "64M";
	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.queue_bytes, 64u << 20);
	options_free(&o);
	argv[ARGC(client_argv) + 1] = "3000";
	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.queue_bytes, 3000);
	options_free(&o);
}

static bool is_flag(const char *arg, const char *flag)
{
	size_t n = strlen(flag);

	return strncmp(arg, flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* The line without any occurrence of flag (and its value) must fail naming it. */
static void assert_missing(const char *const *line, size_t argc, const char *flag)
{
	const char *argv[64];
	size_t n = 0;

	assert_true(argc <= 64);
	for (size_t i = 0; i < argc; i++) {
		if (!is_flag(line[i], flag))
			argv[n++] = line[i];
		else if (!strchr(line[i], '='))
			i++;
	}
	assert_true(n < argc);
	assert_error((int)n, argv, flag);
}

static void test_missing_required(void **state)
{
	(void)state;
	static const char *const server_required[] = {
		"--frontend", "--listen", "--cert", "--key", "--ca", "--peers", "--export",
	};
	static const char *const client_required[] = {
		"--frontend", "--connect", "--cert", "--key", "--ca", "--route",
	};

	for (size_t i = 0; i < sizeof(server_required) / sizeof(server_required[0]); i++)
		assert_missing(server_argv, ARGC(server_argv), server_required[i]);
	for (size_t i = 0; i < sizeof(client_required) / sizeof(client_required[0]); i++)
		assert_missing(client_argv, ARGC(client_argv), client_required[i]);
}

/* Without --export a server would reach everything: it refuses, and says why. */
static void test_export_required(void **state)
{
	(void)state;
	const char *argv[ARGC(server_argv)];
	const char *const client_export[] = { "tunlab", "client", "--export", "10.0.0.0/8" };
	const char *const bad[] = { "tunlab", "server", "--export", "10.0.0.0/33" };
	struct options o;
	char err[256];
	size_t n = 0;

	for (size_t i = 0; i < ARGC(server_argv); i++) {
		if (is_flag(server_argv[i], "--export"))
			i += !strchr(server_argv[i], '=');
		else
			argv[n++] = server_argv[i];
	}
	assert_int_equal(parse((int)n, argv, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--export: missing: a server must say what its peers may reach"));
	assert_error(ARGC(client_export), client_export, "--export");
	assert_error(ARGC(bad), bad, "10.0.0.0/33");
}

static void test_unknown_command(void **state)
{
	(void)state;
	const char *const argv[] = { "tunlab", "serve", "--frontend", "tun" };
	const char *const help_topic[] = { "tunlab", "help", "bogus" };

	assert_error(ARGC(argv), argv, "serve");
	assert_error(ARGC(help_topic), help_topic, "bogus");
}

/* The frontend registry, not the option parser, decides which names exist. */
static void test_unknown_frontend_is_not_an_option_error(void **state)
{
	(void)state;
	const char *argv[ARGC(client_argv)];
	struct options o;
	char err[256];

	memcpy(argv, client_argv, sizeof(argv));
	argv[client_index("nfqueue")] = "carrier-pigeon";
	assert_int_equal(parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_string_equal(o.frontend, "carrier-pigeon");
	options_free(&o);
}

/* --connect is repeatable: every one in order, the first also as the endpoint; at most 8. */
static void test_connect_repeatable(void **state)
{
	const char *argv[40];
	struct options o;
	char err[256];
	int argc = 0;

	(void)state;
	for (int i = 0; i < ARGC(client_argv); i++)
		argv[argc++] = client_argv[i];
	argv[argc++] = "--connect";
	argv[argc++] = "10.103.0.1:4433";
	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.connect_count, 2);
	assert_string_equal(o.connects[0], "[::1]:4443");
	assert_string_equal(o.connects[1], "10.103.0.1:4433");
	assert_string_equal(o.endpoint, "[::1]:4443");
	options_free(&o);
	for (int i = 2; i < OPTIONS_CONNECT_MAX; i++) {
		argv[argc++] = "--connect";
		argv[argc++] = "10.103.0.1:4433";
	}
	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.connect_count, OPTIONS_CONNECT_MAX);
	options_free(&o);
	argv[argc++] = "--connect";
	argv[argc++] = "10.103.0.1:4433";
	assert_error(argc, argv, "--connect: given more than 8 times");
}

/* server_argv with --frontend NAME and extra flags before (at 2) and after the rest. */
static int server_line(const char **argv, const char *name, const char *const *before, size_t nb,
		       const char *const *after, size_t na)
{
	int argc = 0;

	argv[argc++] = "tunlab";
	argv[argc++] = "server";
	for (size_t i = 0; i < nb; i++)
		argv[argc++] = before[i];
	for (size_t i = 2; i < ARGC(server_argv); i++)
		argv[argc++] = strcmp(server_argv[i], "tun") == 0 ? name : server_argv[i];
	for (size_t i = 0; i < na; i++)
		argv[argc++] = after[i];
	return argc;
}

/* A frontend's own flags land in its flag struct, given before or after --frontend. */
static void test_frontend_flags_any_order(void **state)
{
	(void)state;
	const char *const before[] = { "--max-streams-per-client", "3" };
	const char *const after[] = { "--max-streams=64", "--max-flows-per-client", "5" };
	const char *argv[64];
	int argc = server_line(argv, "proxy", before, ARGC(before), after, ARGC(after));
	const struct proxy_flags *fl;
	struct options o;
	char err[256];

	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	fl = o.frontend_flags;
	assert_non_null(fl);
	assert_int_equal(fl->max_streams, 64);
	assert_int_equal(fl->max_streams_per_client, 3);
	assert_int_equal(fl->max_flows_per_client, 5);
	options_free(&o);
	assert_null(o.frontend_flags);

	/* None given: a zeroed struct, the frontend's defaults. */
	argc = server_line(argv, "proxy", NULL, 0, NULL, 0);
	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	fl = o.frontend_flags;
	assert_non_null(fl);
	assert_int_equal(fl->max_streams, 0);
	options_free(&o);

	/* A frontend without a table has no struct. */
	argc = server_line(argv, "tun", NULL, 0, NULL, 0);
	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	assert_null(o.frontend_flags);
	options_free(&o);
}

/* Another frontend's flag, or one for the other command, is refused naming the flag and both frontends. */
static void test_other_frontends_flag(void **state)
{
	(void)state;
	const char *const queues[] = { "--queues", "2" };
	const char *const fail_open[] = { "--fail-open" };
	const char *const bad_queues[] = { "--queues", "17" };
	const char *argv[64];
	struct options o;
	char err[256];
	int argc;

	argc = server_line(argv, "tun", queues, ARGC(queues), NULL, 0);
	assert_error(argc, argv, "--queues: not a flag of the tun frontend (it is the nfqueue frontend's)");
	argc = server_line(argv, "pcap", NULL, 0, fail_open, ARGC(fail_open));
	assert_error(argc, argv, "--fail-open: the pcap frontend refuses it: traffic routed to lo");
	argc = server_line(argv, "nfqueue", NULL, 0, fail_open, ARGC(fail_open));
	assert_int_equal(parse(argc, argv, &o, err, sizeof(err)), 0);
	options_free(&o);
	argc = server_line(argv, "nfqueue", bad_queues, ARGC(bad_queues), NULL, 0);
	assert_error(argc, argv, "--queues: '17' is not a number from 1 to 16");

	const char *const client_caps[] = { "tunlab", "client", "--frontend", "proxy", "--max-streams", "9" };
	const char *const unknown_fe[] = { "tunlab", "client", "--frontend", "pigeon", "--queues", "2" };

	const char *const cleanup[] = { "tunlab", "cleanup", "--queues", "2" };

	assert_error(ARGC(client_caps), client_caps, "--max-streams: unknown flag for 'client'");
	assert_error(ARGC(cleanup), cleanup, "--queues: unknown flag for 'cleanup'");
	assert_error(ARGC(unknown_fe), unknown_fe, "'pigeon' is not one");
}

/* The generic path knows only the registry it is given: a flag of none there is unknown. */
static void test_registry_decides(void **state)
{
	(void)state;
	const struct frontend_ops *const registry[] = { &skeleton_frontend, NULL };
	const char *const argv[] = { "tunlab", "client", "--frontend", "skeleton", "--queues", "2" };
	struct options o;
	char err[256];

	assert_int_equal(options_parse_in(registry, ARGC(argv), (char *const *)argv, &o, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "--queues: unknown flag for 'client'");
}

/* --help lists each frontend's flags from its table, for the commands that take them. */
static void test_usage_lists_frontend_flags(void **state)
{
	(void)state;
	char *text = usage_text(CMD_CLIENT);

	assert_non_null(strstr(text, "with --frontend nfqueue:\n  --queues N"));
	assert_non_null(strstr(text, "with --frontend pcap:\n  --inject HOW"));
	assert_null(strstr(text, "--max-streams"));
	assert_null(strstr(text, "no other way out")); /* a refusal is no flag to offer */
	free(text);

	text = usage_text(CMD_SERVER);
	assert_non_null(strstr(text, "with --frontend proxy:\n  --max-streams N"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_export_required),
		cmocka_unit_test(test_reparse),
		cmocka_unit_test(test_cleanup),
		cmocka_unit_test(test_help_and_version),
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_unknown_flag),
		cmocka_unit_test(test_missing_value),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_address_per_family),
		cmocka_unit_test(test_queue_overflow),
		cmocka_unit_test(test_limits_accepted),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_connect_repeatable),
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_unknown_frontend_is_not_an_option_error),
		cmocka_unit_test(test_frontend_flags_any_order),
		cmocka_unit_test(test_other_frontends_flag),
		cmocka_unit_test(test_registry_decides),
		cmocka_unit_test(test_usage_lists_frontend_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
