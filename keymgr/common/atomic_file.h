/* SPDX-License-Identifier: Apache-2.0 */
/* Atomic replacement of a file: readers see the old or the new content, never a torn one. */
#pragma once

#include <stddef.h>

/*
 * Writes data[0..len) to path atomically: a temporary file in the same directory, fchmod
 * mode, fsync, rename over path, fsync of the directory. On failure path is untouched and no
 * temporary file is left behind. Returns KM_EOK, a negative errno code or KM_ENOMEM.
 */
int km_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
