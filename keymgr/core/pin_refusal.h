/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Refused PINs stay refused (pin_refusal.c): the PIN gate (km_pin_gate_t, pkcs11/token.h)
 * that keymgr and keymgrd put in front of every login to an environment's token.
 *
 * A hardware token counts wrong PINs and locks the PIN, or wipes itself, after a few. So once
 * the token has refused the PIN of an environment's PIN source, that PIN is not presented
 * again, by any process, until the source changes or someone asks explicitly:
 *
 *   - the refusal is recorded next to the store, in STORE.pin-refused (mode 0600, given to
 *     the store's owner when root writes it), with the source's identity and never the PIN
 *     nor anything computed from it: for file:PATH the file's device, inode, modification
 *     time and size as read; for env:NAME the name only; prompt is never gated (each typed
 *     PIN is a new attempt);
 *   - every later login with the same identity fails at once with KM_P11_ELOGIN and a message
 *     that says when the PIN was refused and how to try again; the token is not called;
 *   - a file: source that changes in any way (rewritten, replaced, touched) is a new PIN and
 *     is tried once; an env: source only after an explicit retry;
 *   - a successful login removes the record;
 *   - km_pin_refusal_forget() (keymgr env login, keymgr reload --retry-pin) removes it, so
 *     that the next login presents the PIN once more.
 * A record that exists but cannot be read or trusted (not a regular file, writable by group
 * or others, malformed) counts as a refusal: the PIN is not presented. When the record cannot
 * be written, the refusal is kept in this process's memory (and the message says so).
 */
#pragma once

#include <stddef.h>

#include "pkcs11/token.h"

/* Appended to the store's path to name the record. */
#define KM_PIN_REFUSAL_SUFFIX ".pin-refused"

/*
 * The PIN gate of the environment env whose store is the file store (env is used in
 * messages: `keymgr env login ENV`). The gate lives as long as the process, and every caller
 * asking for the same store gets the same one, so that the tokens of one process share what
 * they learn. KM_EOK and *ret, KM_ENOMEM, or KM_ERANGE for a path too long.
 */
int km_pin_refusal_gate(const char *store, const char *env, const km_pin_gate_t **ret);

/*
 * Forgets the refusal recorded for the store (the record and this process's memory): the next
 * login presents the PIN once more. KM_EOK, also when none was recorded; otherwise the code of
 * unlink(2) with a message naming the record in err.
 */
int km_pin_refusal_forget(const char *store, char *err, size_t errlen);
