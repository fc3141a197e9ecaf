/* SPDX-License-Identifier: MIT */
/* The netfilter-queue approach: tagged raw-table rules steal packets to NFQUEUE. */
#ifndef TUNLAB_NFQUEUE_H
#define TUNLAB_NFQUEUE_H

#include "../base/frontend.h"

extern const struct frontend_ops nfqueue_frontend;

#endif
