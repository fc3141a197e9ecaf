// SPDX-License-Identifier: MIT
/* tunlab: parse the command line and run the command it names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/owner.h"
#include "ctl_cli.h"
#include "daemon.h"
#include "frontends.h"
#include "options.h"

static int run_cleanup(const struct options *opts)
{
	int total = 0, status = 0;

	for (size_t i = 0; frontend_registry[i]; i++) {
		const struct frontend_ops *ops = frontend_registry[i];
		char err[512];
		int n = ops->cleanup(opts->verbose, err, sizeof(err));

		if (n < 0) {
			fprintf(stderr, "tunlab cleanup: %s: %s\n", ops->name, err);
			status = 1;
			continue;
		}
		total += n;
	}
	/* Last: until every frontend has looked, a dead owner's lock file is its proof of death. */
	if (status == 0)
		owner_prune(OWNER_RUN_DIR);
	ctl_prune(OWNER_RUN_DIR);
	printf("tunlab cleanup: removed %d leftover object%s\n", total, total == 1 ? "" : "s");
	return status;
}

static const struct frontend_ops *pick_frontend(const char *name)
{
	const struct frontend_ops *ops = frontend_find(name);
	const char *issue;

	if (ops)
		return ops;
	issue = frontend_planned(name);
	if (issue)
		fprintf(stderr, "tunlab: --frontend: '%s' is not built yet (%s)\n", name, issue);
	else
		fprintf(stderr, "tunlab: --frontend: '%s' is not a frontend (try 'tunlab --help')\n",
			name);
	return NULL;
}

static int run(const struct options *opts)
{
	const struct frontend_ops *ops;

	switch (opts->command) {
	case CMD_VERSION:
		printf("tunlab %s\n", TUNLAB_VERSION);
		return 0;
	case CMD_CLEANUP:
		return run_cleanup(opts);
	case CMD_SERVER:
	case CMD_CLIENT:
		ops = pick_frontend(opts->frontend);
		return ops ? daemon_run(opts, ops) : EXIT_USAGE;
	default:
		options_usage(stdout, opts->help_topic);
		return 0;
	}
}

int main(int argc, char *argv[])
{
	struct options opts;
	char err[256];
	int status;

	/* The control socket's commands take words, not flags: their own small parser. */
	if (argc >= 2 && (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "policy") == 0 ||
			  strcmp(argv[1], "handover") == 0 || strcmp(argv[1], "down") == 0))
		return ctl_cli_main(argc, argv, OWNER_RUN_DIR);
	if (options_parse(argc, argv, &opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "tunlab: %s\n", err);
		return EXIT_USAGE;
	}
	status = run(&opts);
	options_free(&opts);
	return status;
}
