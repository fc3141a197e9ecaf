/* SPDX-License-Identifier: MIT */
/* The application-layer proxy: TCP connections and UDP flows carried as streams, not packets. */
#ifndef TUNLAB_PROXY_H
#define TUNLAB_PROXY_H

#include "../base/frontend.h"

extern const struct frontend_ops proxy_frontend;

#endif
