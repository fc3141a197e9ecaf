// SPDX-License-Identifier: MIT
/*
 * The command line, driven by two tables: commands[] and flags[]. A flag
 * says which commands take it, which require it, how to parse its value
 * and where to store it; help text is generated from the same rows, so
 * the parser and --help cannot disagree. Flags of one frontend are rows of
 * that frontend's own table (base/frontend.h, struct frontend_flag): a
 * second pass over argv, once --frontend is known, parses them into the
 * frontend's flag struct.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../tunnel/proto.h"
#include "frontends.h"
#include "options.h"

#define CMD(c) (1u << (c))
#define DAEMONS (CMD(CMD_SERVER) | CMD(CMD_CLIENT))

enum flag_kind {
	FLAG_STRING,   /* const char * into argv */
	FLAG_ADDRESS,  /* --address: prefix with host bits kept, one per family */
	FLAG_ROUTE,    /* --route: appended to opts->routes */
	FLAG_EXPORT,   /* --export: appended to opts->exports */
	FLAG_SELECT,   /* --select: appended to opts->selectors */
	FLAG_CONNECT,  /* --connect: appended to opts->connects, the first also in endpoint */
	FLAG_UINT,     /* unsigned within [min, max] */
	FLAG_SECONDS,  /* seconds, decimals allowed, stored as ms */
	FLAG_BYTES,    /* size_t with optional K/M suffix */
	FLAG_SET,      /* bool set to true, takes no value */
	FLAG_CLEAR,    /* bool set to false, takes no value */
};

struct flag {
	const char *name;
	enum flag_kind kind;
	size_t offset;
	unsigned commands; /* CMD() bits that accept it */
	unsigned required; /* CMD() bits that need it */
	unsigned long min, max;
	const char *metavar, *help;
};

#define OPT(field) offsetof(struct options, field)

static const struct flag flags[] = {
	{ "--frontend", FLAG_STRING, OPT(frontend), DAEMONS, DAEMONS, 0, 0,
	  "NAME", "interception approach: tun, nfqueue, pcap, proxy (each one's own flags below)" },
	{ "--listen", FLAG_STRING, OPT(endpoint), CMD(CMD_SERVER), CMD(CMD_SERVER), 0, 0,
	  "ADDR:PORT", "TLS listening address, [v6]:port for IPv6" },
	{ "--connect", FLAG_CONNECT, OPT(endpoint), CMD(CMD_CLIENT), CMD(CMD_CLIENT), 0, 0,
	  "ADDR:PORT", "server to connect to (repeatable, up to 8: on failure the next is tried)" },
	{ "--server-name", FLAG_STRING, OPT(server_name), CMD(CMD_CLIENT), 0, 0, 0,
	  "NAME", "name the server certificate must carry (default: the --connect host)" },
	{ "--cert", FLAG_STRING, OPT(cert_file), DAEMONS, DAEMONS, 0, 0,
	  "FILE", "our certificate (PEM)" },
	{ "--key", FLAG_STRING, OPT(key_file), DAEMONS, DAEMONS, 0, 0,
	  "FILE", "its private key (PEM)" },
	{ "--ca", FLAG_STRING, OPT(ca_file), DAEMONS, DAEMONS, 0, 0,
	  "FILE", "CA certificate that signs every peer" },
	{ "--crl", FLAG_STRING, OPT(crl_file), DAEMONS, 0, 0, 0,
	  "FILE", "CRL of the CA (PEM); a revoked peer is refused; SIGHUP rereads it" },
	{ "--ticket-keys", FLAG_STRING, OPT(ticket_keys_file), CMD(CMD_SERVER), 0, 0, 0,
	  "FILE", "TLS session-ticket keys shared with a standby server (mode 600): current key, "
	  "then previous; SIGHUP rereads it" },
	{ "--standby", FLAG_STRING, OPT(standby), CMD(CMD_SERVER), 0, 0, 0,
	  "ADDR:PORT", "the standby server's own address: a handover (SIGUSR1) moves clients there "
	  "make-before-break, losing nothing (default: clients are told to reconnect)" },
	{ "--peers", FLAG_STRING, OPT(peers_file), CMD(CMD_SERVER), CMD(CMD_SERVER), 0, 0,
	  "FILE", "peers file: 'CN prefix[,prefix...]' per line; SIGHUP rereads it" },
	{ "--address", FLAG_ADDRESS, 0, DAEMONS, 0, 0, 0,
	  "INNER/PLEN", "this end's inner address, the source of local traffic to the tunnel "
	  "(repeatable: one IPv4, one IPv6)" },
	{ "--route", FLAG_ROUTE, 0, CMD(CMD_CLIENT), CMD(CMD_CLIENT), 0, 0,
	  "PREFIX", "remote prefix to send through the tunnel (repeatable)" },
	{ "--export", FLAG_EXPORT, 0, CMD(CMD_SERVER), CMD(CMD_SERVER), 0, 0,
	  "PREFIX", "destinations peers may reach through this exit (repeatable, IPv4 and IPv6)" },
	{ "--peer-to-peer", FLAG_SET, OPT(peer_to_peer), CMD(CMD_SERVER), 0, 0, 0,
	  NULL, "peers may also reach other peers' prefixes (default: only --export)" },
	{ "--policy", FLAG_STRING, OPT(policy_file), CMD(CMD_CLIENT), 0, 0, 0,
	  "FILE", "policy database: 'ACTION dst=PREFIX[,key=value...]' per line, first match wins "
	  "(instead of --route and --select)" },
	{ "--select", FLAG_SELECT, 0, DAEMONS, 0, 0, 0,
	  "SEL", "tunnel only matching traffic, e.g. proto=tcp,dport=80,src=P (repeatable: any)" },
	{ "--stats", FLAG_STRING, OPT(stats_file), DAEMONS, 0, 0, 0,
	  "FILE", "append JSON stats lines every interval and at exit" },
	{ "--stats-interval", FLAG_UINT, OPT(stats_interval_ms), DAEMONS, 0, 10, 3600000,
	  "MS", "stats period in milliseconds (default 1000)" },
	{ "--busy-poll", FLAG_UINT, OPT(busy_poll_us), DAEMONS, 0, 0, 1000,
	  "USEC", "after a burst of events, poll this long without sleeping (lower request/response "
	  "latency for CPU; default 0: never)" },
	{ "--trace", FLAG_SET, OPT(trace), DAEMONS, 0, 0, 0,
	  NULL, "print one line per packet per stage (for teaching)" },
	{ "--mtu", FLAG_UINT, OPT(mtu), DAEMONS, 0, 576, 65535,
	  "N", "inner MTU (default 1500)" },
	{ "--dev", FLAG_STRING, OPT(ifname), DAEMONS, 0, 0, 0,
	  "NAME", "device name where the approach creates one (default tunlab<pid>)" },
	{ "--no-offload", FLAG_CLEAR, OPT(offload), DAEMONS, 0, 0, 0,
	  NULL, "do not use GSO/checksum offload even if the kernel offers it" },
	{ "--keepalive", FLAG_SECONDS, OPT(keepalive_ms), DAEMONS, 0, 100, 3600000,
	  "SEC", "keepalive period; a peer silent for 3 periods is dead; also the UDP probe period "
	  "that keeps a NAT mapping alive (default 5)" },
	{ "--transport", FLAG_STRING, OPT(transport), CMD(CMD_CLIENT), 0, 0, 0,
	  "MODE", "data over tls (the TLS stream), udp (UDP keyed by the TLS session) or auto "
	  "(UDP when a probe is answered within 3 s, else TLS, UDP retried after 6 keepalive "
	  "periods; the default, but tls for the proxy)" },
	{ "--rekey-packets", FLAG_UINT, OPT(rekey_packets), DAEMONS, 0, 16, 1u << 23,
	  "N", "UDP data channel: new keys after N datagrams each way (default 8388608; small "
	  "values are for tests)" },
	{ "--handshake-timeout", FLAG_SECONDS, OPT(handshake_ms), DAEMONS, 0, 100, 600000,
	  "SEC", "cut off a peer whose handshake takes longer (default 10)" },
	{ "--queue", FLAG_BYTES, OPT(queue_bytes), CMD(CMD_CLIENT), 0, 0, 64ul << 20,
	  "BYTES", "bytes held while reconnecting, K/M suffix (default 256K; with --lazy 128 packets)" },
	{ "--lazy", FLAG_SET, OPT(lazy), CMD(CMD_CLIENT), 0, 0, 0,
	  NULL, "connect on the first packet for the tunnel, not at start; packets wait in the queue" },
	{ "--idle-timeout", FLAG_SECONDS, OPT(idle_timeout_ms), CMD(CMD_CLIENT), 0, 100, 86400000,
	  "SEC", "with --lazy: close the tunnel after SEC without a packet; the next one reopens it" },
	{ "--max-handshakes", FLAG_UINT, OPT(max_handshakes), CMD(CMD_SERVER), 0, 1,
	  TUNNEL_MAX_HANDSHAKES_LIMIT, "N",
	  "connections in the TLS handshake; when full, the oldest makes room (default 256)" },
	{ "--max-handshakes-per-source", FLAG_UINT, OPT(max_handshakes_per_source), CMD(CMD_SERVER), 0,
	  1, TUNNEL_MAX_HANDSHAKES_LIMIT, "N",
	  "handshakes from one IPv4 address or IPv6 /64; more are refused (default 16)" },
	{ "--max-peers", FLAG_UINT, OPT(max_peers), CMD(CMD_SERVER), 0, 1,
	  TUNNEL_MAX_PEERS_LIMIT, "N", "authenticated connections; strangers never count here (default 1024)" },
	{ "--verbose", FLAG_SET, OPT(verbose), DAEMONS | CMD(CMD_CLEANUP), 0, 0, 0,
	  NULL, "print every command that changes the system, and debug logs" },
	{ "-v", FLAG_SET, OPT(verbose), DAEMONS | CMD(CMD_CLEANUP), 0, 0, 0,
	  NULL, NULL },
};

/* Required flags whose absence deserves more than "missing": the reason they are required. */
static const struct {
	const char *flag, *why;
} missing_why[] = {
	{ "--export", "missing: a server must say what its peers may reach, e.g. --export 10.102.0.0/24 "
		      "(loopback, link-local, multicast and this host are never reachable)" },
};

struct command_row {
	const char *name;
	enum command command;
	const char *summary;
};

static const struct command_row commands[] = {
	{ "server", CMD_SERVER, "run the tunnel's exit: accept clients, inject their packets" },
	{ "client", CMD_CLIENT, "capture packets for --route prefixes and send them to the server" },
	{ "cleanup", CMD_CLEANUP, "remove kernel objects that tunlab instances no longer running left" },
	{ "help", CMD_HELP, "show help for a command" },
};

static const struct command_row *command_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const char *command_name(enum command c)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].command == c)
			return commands[i].name;
	return "tunlab";
}

static const struct flag *flag_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

static int fail(char *err, size_t err_len, const char *flag, const char *what, const char *value)
{
	if (value)
		snprintf(err, err_len, "%s: '%s' %s", flag, value, what);
	else
		snprintf(err, err_len, "%s: %s", flag, what);
	return -EINVAL;
}

static int parse_ulong(const char *text, unsigned long *out, char **end)
{
	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(text, end, 10);
	return errno ? -EINVAL : 0;
}

static int parse_seconds(const char *text, unsigned long *ms)
{
	char *end;
	double sec;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	sec = strtod(text, &end);
	if (errno || *end || sec > 1e7)
		return -EINVAL;
	*ms = (unsigned long)(sec * 1000.0 + 0.5);
	return 0;
}

static int parse_bytes(const char *text, unsigned long *out)
{
	char *end;

	unsigned shift = 0;

	if (parse_ulong(text, out, &end) < 0)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	if (*end || *out > (ULONG_MAX >> shift))
		return -EINVAL;
	*out <<= shift;
	return 0;
}

/* --route and --export: one more prefix in a heap array. */
static int append_prefix(struct ip_prefix **list, size_t *count, const char *text)
{
	struct ip_prefix *grown;

	grown = realloc(*list, (*count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	*list = grown;
	return prefix_parse(text, &grown[(*count)++]);
}

/* One --address per family: a second of the same family is a mistake, not an override. */
static int add_address(struct options *o, const char *text, char *err, size_t err_len)
{
	struct ip_prefix address;

	if (prefix_parse_host(text, &address) < 0)
		return fail(err, err_len, "--address", "is not an address/prefix-length", text);
	for (size_t i = 0; i < o->address_count; i++)
		if (o->addresses[i].addr.family == address.addr.family)
			return fail(err, err_len, "--address",
				    address.addr.family == AF_INET
					    ? "is a second IPv4 address (one per family)"
					    : "is a second IPv6 address (one per family)",
				    text);
	_Static_assert(OPTIONS_ADDRESS_MAX == 2, "one address per family, two families");
	o->addresses[o->address_count++] = address;
	return 0;
}

static int append_selector(struct options *o, const char *text, char *err, size_t err_len)
{
	struct selector *grown;
	char why[160];

	grown = realloc(o->selectors, (o->selector_count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	o->selectors = grown;
	if (selector_parse(text, &o->selectors[o->selector_count], why, sizeof(why)) < 0) {
		snprintf(err, err_len, "--select: '%s': %s", text, why);
		return -EINVAL;
	}
	o->selector_count++;
	return 0;
}

static int parse_number_flag(const struct flag *f, const char *value, void *base,
			     char *err, size_t err_len)
{
	unsigned long v;
	char *end = NULL;
	int ret;

	if (f->kind == FLAG_UINT) {
		ret = parse_ulong(value, &v, &end);
		if (ret == 0 && *end)
			ret = -EINVAL;
	} else if (f->kind == FLAG_SECONDS) {
		ret = parse_seconds(value, &v);
	} else {
		ret = parse_bytes(value, &v);
	}
	if (ret < 0 || v < f->min || v > f->max) {
		char what[96];

		if (f->kind == FLAG_SECONDS)
			snprintf(what, sizeof(what), "is not a number of seconds from %g to %g",
				 f->min / 1000.0, f->max / 1000.0);
		else
			snprintf(what, sizeof(what), "is not a number from %lu to %lu", f->min, f->max);
		return fail(err, err_len, f->name, what, value);
	}
	if (f->kind == FLAG_BYTES)
		*(size_t *)((char *)base + f->offset) = v;
	else
		*(unsigned *)((char *)base + f->offset) = (unsigned)v;
	return 0;
}

/* f's value into base + f->offset: base is o, or a frontend's flag struct. */
static int store_value(const struct flag *f, const char *value, struct options *o, void *base,
		       char *err, size_t err_len)
{
	void *field = (char *)base + f->offset;

	switch (f->kind) {
	case FLAG_STRING:
		if (!*value)
			return fail(err, err_len, f->name, "needs a non-empty value", NULL);
		*(const char **)field = value;
		return 0;
	case FLAG_ADDRESS:
		return add_address(o, value, err, err_len);
	case FLAG_ROUTE:
		if (append_prefix(&o->routes, &o->route_count, value) < 0)
			return fail(err, err_len, f->name, "is not a prefix", value);
		return 0;
	case FLAG_EXPORT:
		if (append_prefix(&o->exports, &o->export_count, value) < 0)
			return fail(err, err_len, f->name, "is not a prefix", value);
		return 0;
	case FLAG_SELECT:
		return append_selector(o, value, err, err_len);
	case FLAG_CONNECT:
		if (!*value)
			return fail(err, err_len, f->name, "needs a non-empty value", NULL);
		if (o->connect_count == OPTIONS_CONNECT_MAX)
			return fail(err, err_len, f->name, "given more than 8 times", NULL);
		o->connects[o->connect_count++] = value;
		if (!o->endpoint)
			o->endpoint = value;
		return 0;
	case FLAG_SET:
	case FLAG_CLEAR:
		*(bool *)field = f->kind == FLAG_SET;
		return 0;
	default:
		return parse_number_flag(f, value, base, err, err_len);
	}
}

static bool takes_value(const struct flag *f)
{
	return f->kind != FLAG_SET && f->kind != FLAG_CLEAR;
}

/* A frontend's row of name in table, or NULL. */
static const struct frontend_flag *fe_flag_in(const struct frontend_flag *table, const char *name,
					      size_t len)
{
	for (size_t i = 0; table && table[i].name; i++)
		if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0)
			return &table[i];
	return NULL;
}

/* The first frontend of registry with a flag called name (its row in *row), or NULL. */
static const struct frontend_ops *fe_flag_owner(const struct frontend_ops *const registry[],
						const char *name, size_t len,
						const struct frontend_flag **row)
{
	for (size_t i = 0; registry[i]; i++) {
		*row = fe_flag_in(registry[i]->flags, name, len);
		if (*row)
			return registry[i];
	}
	return NULL;
}

static unsigned fe_role(enum command c)
{
	return c == CMD_SERVER ? FRONTEND_FLAG_SERVER : c == CMD_CLIENT ? FRONTEND_FLAG_CLIENT : 0;
}

/* A frontend's row as one of ours, so that it parses and fails like ours. */
static struct flag fe_row(const struct frontend_flag *ff)
{
	static const enum flag_kind kinds[] = {
		[FRONTEND_FLAG_SET] = FLAG_SET,
		[FRONTEND_FLAG_STRING] = FLAG_STRING,
		[FRONTEND_FLAG_UINT] = FLAG_UINT,
		[FRONTEND_FLAG_REFUSE] = FLAG_SET,
	};

	return (struct flag){ .name = ff->name, .kind = kinds[ff->kind], .offset = ff->offset,
			      .min = ff->min, .max = ff->max, .metavar = ff->metavar, .help = ff->help };
}

/* An argument's value: after '=' or the next argument. Returns args consumed or <0. */
static int flag_value(int argc, char *const argv[], int i, const struct flag *f, const char **value,
		      char *err, size_t err_len)
{
	const char *eq = strchr(argv[i], '=');

	*value = NULL;
	if (!takes_value(f))
		return eq ? fail(err, err_len, f->name, "takes no value", NULL) : 1;
	if (eq)
		*value = eq + 1;
	else if (i + 1 < argc)
		*value = argv[i + 1];
	else
		return fail(err, err_len, f->name, "needs a value", NULL);
	return eq ? 1 : 2;
}

/*
 * One argument (and its value, if separate); returns args consumed or <0.
 * A flag of some frontend is only stepped over: the second pass parses it.
 */
static int parse_flag(const struct frontend_ops *const registry[], int argc, char *const argv[], int i,
		      struct options *o, bool *seen, char *err, size_t err_len)
{
	const char *arg = argv[i], *eq = strchr(arg, '='), *value;
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct flag *f = flag_by_name(arg, len);
	const struct frontend_flag *ff;
	struct flag row;
	int used;

	if (!f && fe_role(o->command) && fe_flag_owner(registry, arg, len, &ff)) {
		row = fe_row(ff);
		return flag_value(argc, argv, i, &row, &value, err, err_len);
	}
	if (!f || !(f->commands & CMD(o->command))) {
		snprintf(err, err_len, "%s: unknown flag for '%s'", arg, command_name(o->command));
		return -EINVAL;
	}
	used = flag_value(argc, argv, i, f, &value, err, err_len);
	if (used < 0)
		return used;
	seen[f - flags] = true;
	int ret = store_value(f, value, o, o, err, err_len);
	return ret < 0 ? ret : used;
}

/* Why ops does not take the frontend flag arg: refused, another command's, or another frontend's. */
static int refuse_fe_flag(const struct frontend_ops *const registry[], const struct frontend_ops *ops,
			  const char *arg, size_t len, const struct options *o, char *err, size_t err_len)
{
	const struct frontend_flag *ff = fe_flag_in(ops->flags, arg, len), *other;
	const struct frontend_ops *owner = ff ? ops : fe_flag_owner(registry, arg, len, &other);

	if (ff && ff->kind == FRONTEND_FLAG_REFUSE)
		snprintf(err, err_len, "%.*s: the %s frontend refuses it: %s", (int)len, arg, ops->name,
			 ff->help);
	else if (ff)
		snprintf(err, err_len, "%.*s: unknown flag for '%s' (the %s frontend takes it for "
			 "'%s' only)", (int)len, arg, command_name(o->command), ops->name,
			 o->command == CMD_SERVER ? "client" : "server");
	else
		snprintf(err, err_len, "%.*s: not a flag of the %s frontend (it is the %s frontend's)",
			 (int)len, arg, ops->name, owner ? owner->name : "?");
	return -EINVAL;
}

/* The second pass, --frontend known: its own flags into its flag struct, o->frontend_flags. */
static int parse_fe_flags(const struct frontend_ops *const registry[], int argc, char *const argv[],
			  struct options *o, char *err, size_t err_len)
{
	const struct frontend_ops *ops = NULL;

	for (size_t i = 0; o->frontend && registry[i] && !ops; i++)
		if (strcmp(registry[i]->name, o->frontend) == 0)
			ops = registry[i];
	if (ops && ops->flags && !(o->frontend_flags = calloc(1, ops->flags_size ? ops->flags_size : 1)))
		return -ENOMEM;
	for (int i = 2, used; i < argc; i += used) {
		const char *arg = argv[i], *eq = strchr(arg, '='), *value;
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		const struct flag *f = flag_by_name(arg, len);
		const struct frontend_flag *ff = ops ? fe_flag_in(ops->flags, arg, len) : NULL;
		struct flag row;

		if (f) { /* ours, parsed in the first pass */
			used = flag_value(argc, argv, i, f, &value, err, err_len);
			if (used < 0)
				return used;
			continue;
		}
		/* Without --frontend, check_required says so. */
		if (!ops && !o->frontend)
			return 0;
		if (!ops) {
			snprintf(err, err_len, "%s: needs a frontend to take it, and '%s' is not one "
				 "(try 'tunlab --help')", arg, o->frontend);
			return -EINVAL;
		}
		if (!ff || !(ff->roles & fe_role(o->command)) || ff->kind == FRONTEND_FLAG_REFUSE)
			return refuse_fe_flag(registry, ops, arg, len, o, err, err_len);
		row = fe_row(ff);
		used = flag_value(argc, argv, i, &row, &value, err, err_len);
		if (used < 0 || store_value(&row, value, o, o->frontend_flags, err, err_len) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check_required(const struct options *o, const bool *seen, char *err, size_t err_len)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		/* --policy gives the routes as entries: --route is then not wanted at all. */
		if (o->policy_file && flags[i].kind == FLAG_ROUTE)
			continue;
		if ((flags[i].required & CMD(o->command)) && !seen[i]) {
			snprintf(err, err_len, "%s: missing, '%s' needs it", flags[i].name,
				 command_name(o->command));
			for (size_t j = 0; j < sizeof(missing_why) / sizeof(missing_why[0]); j++)
				if (strcmp(missing_why[j].flag, flags[i].name) == 0)
					snprintf(err, err_len, "%s: %s", flags[i].name, missing_why[j].why);
			return -EINVAL;
		}
	}
	if (o->transport && strcmp(o->transport, "tls") && strcmp(o->transport, "udp") &&
	    strcmp(o->transport, "auto")) {
		snprintf(err, err_len, "--transport: '%s' is not tls, udp or auto", o->transport);
		return -EINVAL;
	}
	if (o->policy_file && (o->route_count || o->selector_count)) {
		snprintf(err, err_len, "--policy: replaces --route and --select; give the entries in the file");
		return -EINVAL;
	}
	/* Without --lazy nothing would set the closed tunnel up again but a reconnect at once. */
	if (o->idle_timeout_ms && !o->lazy) {
		snprintf(err, err_len, "--idle-timeout: needs --lazy (a tunnel kept up is never idle-closed)");
		return -EINVAL;
	}
	return 0;
}

static void set_defaults(struct options *o)
{
	*o = (struct options){
		.stats_interval_ms = 1000,
		.mtu = 1500,
		.offload = true,
	};
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int parse_help_topic(int argc, char *const argv[], struct options *o, char *err, size_t err_len)
{
	const struct command_row *row;

	o->command = CMD_HELP;
	o->help_topic = CMD_NONE;
	if (argc < 3)
		return 0;
	row = command_by_name(argv[2]);
	if (!row || row->command == CMD_HELP) {
		snprintf(err, err_len, "help: '%s' is not a command", argv[2]);
		return -EINVAL;
	}
	o->help_topic = row->command;
	return 0;
}

static int parse_command(int argc, char *const argv[], struct options *o, char *err, size_t err_len)
{
	const struct command_row *row;

	if (argc < 2 || is_help(argv[1])) {
		o->command = CMD_HELP;
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		o->command = CMD_VERSION;
		return 0;
	}
	row = command_by_name(argv[1]);
	if (!row) {
		snprintf(err, err_len, "%s: unknown command (try 'tunlab --help')", argv[1]);
		return -EINVAL;
	}
	if (row->command == CMD_HELP)
		return parse_help_topic(argc, argv, o, err, err_len);
	o->command = row->command;
	return 0;
}

int options_parse(int argc, char *const argv[], struct options *out, char *err, size_t err_len)
{
	return options_parse_in(frontend_registry, argc, argv, out, err, err_len);
}

int options_parse_in(const struct frontend_ops *const registry[], int argc, char *const argv[],
		     struct options *out, char *err, size_t err_len)
{
	bool seen[sizeof(flags) / sizeof(flags[0])] = { false };
	int ret;

	set_defaults(out);
	ret = parse_command(argc, argv, out, err, err_len);
	if (ret < 0 || out->command == CMD_HELP || out->command == CMD_VERSION)
		goto out;
	for (int i = 2; i < argc; i += ret) {
		if (is_help(argv[i])) {
			out->help_topic = out->command;
			out->command = CMD_HELP;
			return 0;
		}
		ret = parse_flag(registry, argc, argv, i, out, seen, err, err_len);
		if (ret < 0)
			goto out;
	}
	ret = parse_fe_flags(registry, argc, argv, out, err, err_len);
	if (ret == 0)
		ret = check_required(out, seen, err, err_len);
out:
	if (ret < 0)
		options_free(out);
	return ret < 0 ? ret : 0;
}

void options_free(struct options *opts)
{
	free(opts->routes);
	opts->routes = NULL;
	opts->route_count = 0;
	free(opts->exports);
	opts->exports = NULL;
	opts->export_count = 0;
	free(opts->selectors);
	opts->selectors = NULL;
	opts->selector_count = 0;
	free(opts->frontend_flags);
	opts->frontend_flags = NULL;
}

/* A row without help is another spelling of a row that has it (same field,
 * same kind): the help shows both names on one line, "-v, --verbose". */
static const struct flag *short_spelling(const struct flag *f)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!flags[i].help && flags[i].offset == f->offset && flags[i].kind == f->kind)
			return &flags[i];
	return NULL;
}

/* Each frontend's flags for command c, from its own table, under its name. */
static void usage_fe_flags(FILE *out, enum command c)
{
	for (size_t i = 0; frontend_registry[i]; i++) {
		const struct frontend_ops *ops = frontend_registry[i];
		bool heading = false;

		for (const struct frontend_flag *ff = ops->flags; ff && ff->name; ff++) {
			char left[64];

			if (!(ff->roles & fe_role(c)) || ff->kind == FRONTEND_FLAG_REFUSE)
				continue;
			if (!heading)
				fprintf(out, "\nwith --frontend %s:\n", ops->name);
			heading = true;
			snprintf(left, sizeof(left), "%s%s%s", ff->name, ff->metavar ? " " : "",
				 ff->metavar ? ff->metavar : "");
			fprintf(out, "  %-26s %s\n", left, ff->help);
		}
	}
}

static void usage_command(FILE *out, enum command c)
{
	fprintf(out, "usage: tunlab %s", command_name(c));
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		const struct flag *f = &flags[i];

		if ((f->required & CMD(c)) && f->metavar)
			fprintf(out, " %s %s", f->name, f->metavar);
	}
	fprintf(out, " [options]\n\n");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		const struct flag *f = &flags[i], *alias;
		char left[64];

		if (!(f->commands & CMD(c)) || !f->help)
			continue;
		alias = short_spelling(f);
		snprintf(left, sizeof(left), "%s%s%s%s%s", alias ? alias->name : "", alias ? ", " : "",
			 f->name, f->metavar ? " " : "", f->metavar ? f->metavar : "");
		fprintf(out, "  %-26s %s%s\n", left, f->help,
			(f->required & CMD(c)) ? " [required]" : "");
	}
	usage_fe_flags(out, c);
}

void options_usage(FILE *out, enum command topic)
{
	if (topic != CMD_NONE && topic != CMD_HELP && topic != CMD_VERSION) {
		usage_command(out, topic);
		return;
	}
	fprintf(out, "tunlab: one TLS tunnel, four ways to intercept packets.\n\n"
		     "usage: tunlab COMMAND [flags]\n       tunlab --help | --version\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	/* Handled by src/ctl_cli.c before the flags tables, listed here so that --help shows them. */
	fprintf(out, "\nrunning instances (through their control socket, root only):\n"
		     "  show [--json] [--pid N]        state, counters, queue, policy hit counts\n"
		     "  policy show [--pid N]          the policy in force, in the file's form\n"
		     "  policy load FILE [--pid N]     swap the policy atomically (SIGHUP rereads --policy)\n"
		     "  handover [--pid N]             server: a planned switchover (as SIGUSR1)\n"
		     "  down [--pid N]                 client with --lazy: close the tunnel now, as\n"
		     "                                 --idle-timeout would; the next packet sets it up\n");
	fprintf(out, "\n'tunlab help COMMAND' or 'tunlab COMMAND --help' lists its flags.\n");
}
