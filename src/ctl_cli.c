// SPDX-License-Identifier: MIT
/* tunlab show [--json], tunlab policy show|load FILE [--pid N], tunlab handover|down [--pid N]: the control socket's command line. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../base/owner.h"
#include "ctl.h"
#include "ctl_cli.h"
#include "options.h"

enum { CTL_CLI_INSTANCES_MAX = 256 };

struct instances {
	long pids[CTL_CLI_INSTANCES_MAX];
	size_t count;
};

/* The instances of this network namespace: <netns>-<pid>.sock in dir. */
static int list_instances(const char *dir, struct instances *out)
{
	char ours[128], *dash;
	struct dirent *e;
	DIR *dp;
	int ret = owner_lock_path(dir, 0, ours, sizeof(ours));

	out->count = 0;
	if (ret < 0)
		return ret;
	dash = strrchr(ours, '-'); /* ".../<netns>-0.lock" -> "<netns>-" */
	dash[1] = '\0';
	dp = opendir(dir);
	if (!dp)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(dp)) && out->count < CTL_CLI_INSTANCES_MAX) {
		const char *prefix = strrchr(ours, '/') + 1;
		char *end;
		long pid;

		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		pid = strtol(e->d_name + strlen(prefix), &end, 10);
		if (pid > 0 && strcmp(end, ".sock") == 0)
			out->pids[out->count++] = pid;
	}
	closedir(dp);
	return 0;
}

/* One instance's reply into a buffer; NULL if it does not answer (a dead instance's socket). */
static char *ask(const char *dir, long pid, const struct ctl_request *req)
{
	char path[PATH_MAX + 8], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int ret;

	if (!f)
		return NULL;
	ret = ctl_socket_path(dir, pid, path, sizeof(path));
	if (ret == 0)
		ret = ctl_query(path, req, f);
	fclose(f);
	if (ret < 0 || len == 0) {
		free(text);
		return NULL;
	}
	return text;
}

static bool has_instance(const struct instances *all, long pid)
{
	for (size_t i = 0; i < all->count; i++)
		if (all->pids[i] == pid)
			return true;
	return false;
}

/* Every instance of this network namespace, or with pid > 0 that one only (an error if it is not there). */
static int show(const char *dir, bool json, long pid)
{
	struct ctl_request req = { .command = json ? CTL_SHOW_JSON : CTL_SHOW };
	struct instances all;
	size_t shown = 0;
	int ret = list_instances(dir, &all);

	if (ret < 0) {
		fprintf(stderr, "tunlab show: %s: %s\n", dir, strerror(-ret));
		return 1;
	}
	if (pid > 0 && !has_instance(&all, pid)) {
		fprintf(stderr, "tunlab show: no tunlab instance with pid %ld in this network namespace\n", pid);
		return 1;
	}
	if (json)
		fputs("[", stdout);
	for (size_t i = 0; i < all.count; i++) {
		char *reply = pid > 0 && all.pids[i] != pid ? NULL : ask(dir, all.pids[i], &req);

		if (!reply)
			continue;
		if (json)
			fputs(shown ? "," : "", stdout);
		else if (shown)
			fputs("\n", stdout);
		fputs(reply, stdout);
		free(reply);
		shown++;
	}
	if (json)
		fputs("]\n", stdout);
	return 0;
}

/* A socket nobody listens on is a dead instance's (kill -9 leaves it): connect tells. */
static bool answers(const char *dir, long pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool ok;
	int fd;

	if (ctl_socket_path(dir, pid, sa.sun_path, sizeof(sa.sun_path)) < 0)
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* --pid N, or the one live instance there is. */
static long pick_instance(const char *dir, const char *what, long pid)
{
	struct instances all;
	size_t live = 0;

	if (pid > 0)
		return pid;
	if (list_instances(dir, &all) == 0)
		for (size_t i = 0; i < all.count; i++)
			if (answers(dir, all.pids[i]))
				all.pids[live++] = all.pids[i];
	all.count = live;
	if (all.count == 0) {
		fprintf(stderr, "tunlab %s: no tunlab instance in this network namespace\n", what);
		return -1;
	}
	if (all.count > 1) {
		fprintf(stderr, "tunlab %s: %zu instances here: say which with --pid N\n", what, all.count);
		return -1;
	}
	return all.pids[0];
}

/* One request to instance pid (or the one live instance): its reply on stdout, a refusal on stderr. */
static int request(const char *dir, const char *what, const struct ctl_request *req, long pid)
{
	char *reply;
	int status;

	pid = pick_instance(dir, what, pid);
	if (pid < 0)
		return 1;
	reply = ask(dir, pid, req);
	if (!reply) {
		fprintf(stderr, "tunlab %s: instance %ld does not answer\n", what, pid);
		return 1;
	}
	status = strncmp(reply, "error: ", 7) == 0;
	fputs(reply, status ? stderr : stdout);
	free(reply);
	return status;
}

static int policy(const char *dir, const char *verb, const char *file, long pid)
{
	struct ctl_request req = { .command = CTL_POLICY_SHOW };

	if (strcmp(verb, "load") == 0) {
		if (!file || !realpath(file, req.path)) {
			fprintf(stderr, "tunlab policy load: %s: %s\n", file ? file : "FILE missing",
				file ? strerror(errno) : "give the policy file");
			return file ? 1 : EXIT_USAGE;
		}
		req.command = CTL_POLICY_LOAD;
	} else if (strcmp(verb, "show") != 0 || file) {
		fprintf(stderr, "tunlab policy: 'show' or 'load FILE'\n");
		return EXIT_USAGE;
	}
	return request(dir, "policy", &req, pid);
}

int ctl_cli_main(int argc, char *argv[], const char *dir)
{
	const char *verb = NULL, *file = NULL;
	bool json = false;
	long pid = 0;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && strcmp(argv[1], "show") == 0)
			json = true;
		else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
			pid = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[1], "policy") == 0 && !verb)
			verb = argv[i];
		else if (strcmp(argv[1], "policy") == 0 && !file)
			file = argv[i];
		else {
			fprintf(stderr, "tunlab %s: unexpected '%s'\n", argv[1], argv[i]);
			return EXIT_USAGE;
		}
	}
	if (strcmp(argv[1], "show") == 0)
		return show(dir, json, pid);
	if (strcmp(argv[1], "handover") == 0)
		return request(dir, "handover", &(struct ctl_request){ .command = CTL_HANDOVER }, pid);
	if (strcmp(argv[1], "down") == 0)
		return request(dir, "down", &(struct ctl_request){ .command = CTL_DOWN }, pid);
	if (!verb) {
		fprintf(stderr, "tunlab policy: 'show' or 'load FILE'\n");
		return EXIT_USAGE;
	}
	return policy(dir, verb, file, pid);
}

int ctl_prune(const char *dir)
{
	struct instances all;
	char path[PATH_MAX];
	int pruned = 0;

	if (list_instances(dir, &all) < 0)
		return 0;
	for (size_t i = 0; i < all.count; i++)
		if (!answers(dir, all.pids[i]) && ctl_socket_path(dir, all.pids[i], path, sizeof(path)) == 0 &&
		    unlink(path) == 0)
			pruned++;
	return pruned;
}
