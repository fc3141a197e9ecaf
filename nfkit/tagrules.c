// SPDX-License-Identifier: MIT
/* Tagged iptables rules: owner comments and iptables-restore. */

/*
 * iptables-restore --noflush is how every ruleset goes in: a family's
 * chains and jump rules appear together or not at all, and a thousand
 * prefixes cost one fork, not a thousand. iptables-nft is what works on
 * this project's machines; -w waits for a concurrent user of the lock.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../base/sysexec.h"
#include "tagrules.h"

static const char *const restore_tool[TAGRULES_FAM_COUNT] = { "iptables-restore",
							       "ip6tables-restore" };

int tagrules_fam_af(int fam)
{
	return fam == TAGRULES_FAM_V4 ? AF_INET : AF_INET6;
}

void tagrules_owner_comment(const struct ip_prefix *inner, size_t inner_count, long pid,
			    char *out, size_t out_len)
{
	char addr[PREFIX_STR_MAX];
	int n = snprintf(out, out_len, TAGRULES_COMMENT_PREFIX "%ld", pid);

	for (size_t i = 0; i < inner_count && i < TAGRULES_ADDR_MAX; i++) {
		if (n < 0 || (size_t)n >= out_len)
			return;
		addr_format(&inner[i].addr, addr, sizeof(addr));
		n += snprintf(out + n, out_len - (size_t)n, " addr=%s", addr);
	}
}

bool tagrules_parse_owner_comment(const char *text, long *pid,
				  struct ip_addr addrs[TAGRULES_ADDR_MAX], size_t *addr_count)
{
	const char *at = strstr(text, TAGRULES_COMMENT_PREFIX);
	const char *num;
	char word[PREFIX_STR_MAX];
	char *end;

	if (!at)
		return false;
	num = at + strlen(TAGRULES_COMMENT_PREFIX);
	*pid = strtol(num, &end, 10);
	if (end == num || *pid <= 0)
		return false;
	*addr_count = 0;
	for (const char *p = end; strncmp(p, " addr=", 6) == 0;) {
		size_t len = strcspn(p + 6, "\" \n");

		snprintf(word, sizeof(word), "%.*s", (int)len, p + 6);
		if (*addr_count < TAGRULES_ADDR_MAX && addr_parse(word, &addrs[*addr_count]) == 0)
			(*addr_count)++;
		p += 6 + len;
	}
	return true;
}

int tagrules_restore(int fam, const char *text, bool verbose, char *err, size_t err_len)
{
	const char *argv[] = { restore_tool[fam], "-w", "5", "--noflush", NULL };

	if (!text) {
		snprintf(err, err_len, "%s: %s", restore_tool[fam], strerror(ENOMEM));
		return -ENOMEM;
	}
	return sysexec_pipe(argv, text, NULL, 0, verbose, err, err_len) < 0 ? -EIO : 0;
}
