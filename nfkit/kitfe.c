// SPDX-License-Identifier: MIT
/* Shared ops pieces of the kit's packet frontends (kitfe.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kitfe.h"

int kitfe_routes(struct loroutes *r, struct owner_lock *owner, const struct frontend_config *cfg,
		 enum loroutes_mode mode, const char *who, char *err, size_t err_len)
{
	struct loroutes_params p = {
		.routes = cfg->routes,
		.route_count = cfg->route_count,
		.addresses = cfg->addresses,
		.address_count = cfg->address_count,
		.mode = mode,
		/* KEEP_PATH's fallback routes to lo keep lo's mtu, as before. */
		.mtu = mode == LOROUTES_TO_LO ? cfg->mtu : 0,
		/* nfqueue's rules compile bypass and discard; routes to lo cannot. */
		.policy = mode == LOROUTES_TO_LO ? cfg->policy : NULL,
		.verbose = cfg->verbose,
		.owner = owner,
	};
	int ret = loroutes_setup(r, &p, err, err_len);

	if (ret < 0 && ret != -EIO)
		snprintf(err, err_len, "%s routes: %s", who, strerror(-ret));
	return ret;
}

int kitfe_inject(struct frontend *fe, struct pktinject_any *a, const struct pkt_batch *batch)
{
	struct rawinject_counts c = { 0 };
	int ret = pktinject_any_batch(a, batch, &c, fe->error, sizeof(fe->error));

	fe->stats.injected_packets += c.packets;
	fe->stats.injected_bytes += c.bytes;
	fe->stats.inject_errors += c.refused;
	fe->stats.inject_denied += c.denied;
	return ret;
}

int kitfe_cleanup(bool verbose, char *err, size_t err_len)
{
	return leftovers_cleanup(verbose, false, err, err_len);
}
