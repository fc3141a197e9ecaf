/* SPDX-License-Identifier: MIT */
/* The loopback + libpcap approach: remote prefixes routed to lo, read back with libpcap, dropped by a raw-table rule. */
#ifndef TUNLAB_CAPTURE_H
#define TUNLAB_CAPTURE_H

#include "../base/frontend.h"

extern const struct frontend_ops capture_frontend;

#endif
