/* SPDX-License-Identifier: MIT */
/* Reading a whole configuration file (peers, policy) into memory, bounded. */
#ifndef TUNLAB_TEXTFILE_H
#define TUNLAB_TEXTFILE_H

#include <stddef.h>

/*
 * Reads the regular file path, at most max bytes, into a heap buffer the
 * caller frees (NUL-terminated; len excludes the NUL). 0 or a negative
 * errno: -EISDIR for a directory, -EFBIG past max or for any other kind of
 * file, as the callers report both as "not a configuration file".
 */
int textfile_read(const char *path, size_t max, char **text, size_t *len);

#endif
