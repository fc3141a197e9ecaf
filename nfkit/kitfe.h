/* SPDX-License-Identifier: MIT */
/*
 * The ops pieces the kit's packet frontends (nfqueue, capture) share: their
 * routes and lo addresses from the frontend config, counting an injected
 * batch into the frontend's stats, and cleanup of dead instances.
 */
#ifndef TUNLAB_KITFE_H
#define TUNLAB_KITFE_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/frontend.h"
#include "loroutes.h"
#include "pktinject.h"

/*
 * loroutes_setup for cfg's routes and addresses in mode (the mtu only for
 * LOROUTES_TO_LO); on a failure without its own message, err names who.
 */
int kitfe_routes(struct loroutes *r, struct owner_lock *owner, const struct frontend_config *cfg,
		 enum loroutes_mode mode, const char *who, char *err, size_t err_len);

/* write_batch through a pktinject_any, its counts added to fe->stats. */
int kitfe_inject(struct frontend *fe, struct pktinject_any *a, const struct pkt_batch *batch);

/* The cleanup op: what dead instances left (leftovers_cleanup). */
int kitfe_cleanup(bool verbose, char *err, size_t err_len);

#endif
