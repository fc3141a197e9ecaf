/* SPDX-License-Identifier: MIT */
/* Command line: subcommands and their flags, parsed from one table. */
#ifndef TUNLAB_OPTIONS_H
#define TUNLAB_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../base/frontend.h"
#include "../base/prefix.h"
#include "../base/selector.h"

/* --address: at most one inner address per family (IPv4, IPv6). */
enum { OPTIONS_ADDRESS_MAX = 2 };
/* --connect: servers a client tries in turn. */
enum { OPTIONS_CONNECT_MAX = 8 };

enum command {
	CMD_NONE,
	CMD_SERVER,
	CMD_CLIENT,
	CMD_CLEANUP,
	CMD_HELP,    /* tunlab --help, tunlab help [CMD], tunlab CMD --help */
	CMD_VERSION,
};

struct options {
	enum command command;
	enum command help_topic; /* CMD_HELP: which command, CMD_NONE for all */
	const char *frontend;
	const char *endpoint;    /* --listen, or the first --connect */
	const char *connects[OPTIONS_CONNECT_MAX]; /* every --connect, in order */
	size_t connect_count;
	const char *server_name;
	const char *cert_file, *key_file, *ca_file, *peers_file;
	const char *crl_file;    /* --crl, or NULL */
	const char *ticket_keys_file; /* --ticket-keys, or NULL */
	const char *standby;          /* --standby, or NULL */
	/* --address, host bits kept, in the order given; one per family */
	struct ip_prefix addresses[OPTIONS_ADDRESS_MAX];
	size_t address_count;
	const char *policy_file;  /* --policy: client; replaces --route and --select */
	struct ip_prefix *routes; /* heap; options_free releases it */
	size_t route_count;
	struct ip_prefix *exports; /* --export, heap; options_free releases it */
	size_t export_count;
	bool peer_to_peer;
	const char *stats_file;
	unsigned stats_interval_ms;
	unsigned busy_poll_us;
	const char *ifname;
	unsigned mtu;
	unsigned keepalive_ms, handshake_ms;
	size_t queue_bytes;
	bool lazy;                /* --lazy: connect on the first packet */
	unsigned idle_timeout_ms; /* --idle-timeout, 0: never */
	/* server: the listener's caps and the exit's budget; 0 means the default */
	unsigned max_handshakes, max_handshakes_per_source, max_peers;
	bool trace, verbose, offload;
	struct selector *selectors; /* heap; options_free releases it */
	size_t selector_count;
	/*
	 * The chosen frontend's own flags (its ops' flags table), heap,
	 * flags_size bytes; NULL when it has no table. options_free releases it.
	 */
	void *frontend_flags;
	const char *transport;   /* --transport: tls, udp or auto (NULL: auto) */
	unsigned rekey_packets;  /* --rekey-packets; 0: the default */
};

enum { EXIT_USAGE = 2 };

/*
 * Parses argv (argv[0] is the program). Returns 0, or -EINVAL with one line
 * in err naming the flag or value at fault ("--mtu: 'abc' is not a number
 * from 576 to 65535"). Checks per command that required flags are present.
 */
int options_parse(int argc, char *const argv[], struct options *out, char *err, size_t err_len);
/*
 * The same with the frontends of registry (NULL-terminated) instead of
 * the program's: flags no row of options.c knows go to the flags table of
 * the frontend --frontend names, wherever on the line it is given.
 */
int options_parse_in(const struct frontend_ops *const registry[], int argc, char *const argv[],
		     struct options *out, char *err, size_t err_len);
void options_free(struct options *opts);
/* Full help for one command, or the overview for CMD_NONE. */
void options_usage(FILE *out, enum command topic);

#endif
