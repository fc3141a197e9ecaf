/* SPDX-License-Identifier: MIT */
/*
 * The skeleton approach: a fifth frontend in one folder, built by the tests
 * and driven through base/frontend.h's ops alone. It loops written packets
 * back to the reader, so the contract (open, fd, read_batch, write_batch,
 * close, cleanup) runs without touching the kernel. Never registered in the
 * shipped binary: src/frontends.c does not name it.
 */
#ifndef TUNLAB_SKELETON_H
#define TUNLAB_SKELETON_H

#include "../../base/frontend.h"

extern const struct frontend_ops skeleton_frontend;

#endif
