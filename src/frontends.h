/* SPDX-License-Identifier: MIT */
/* The registry: which frontends the tunlab program offers, by name. */
#ifndef TUNLAB_FRONTENDS_H
#define TUNLAB_FRONTENDS_H

#include "../base/frontend.h"

/* NULL-terminated, in the order --help lists them. */
extern const struct frontend_ops *const frontend_registry[];

/* The registered ops named name, or NULL (then frontend_planned() may say why). */
const struct frontend_ops *frontend_find(const char *name);
/* For a known approach not built yet: which issue brings it; else NULL. */
const char *frontend_planned(const char *name);

#endif
