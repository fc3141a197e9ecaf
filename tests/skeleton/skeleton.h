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

/*
 * Its own flag, from its ops' flags table like any frontend's: --ring N,
 * the slots of its ring in use (1 to PKT_BATCH_MAX; 0: all). A write
 * beyond them is an inject error.
 */
struct skeleton_flags {
	unsigned ring;
};

extern const struct frontend_ops skeleton_frontend;

#endif
