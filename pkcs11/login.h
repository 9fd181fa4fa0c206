/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to pkcs11/ (login.c): the user login on a token's admin session, the one place that
 * calls C_Login as user: the PIN read from its source, the token's PIN gate asked first and
 * told the answer (km_pin_gate_t, token.h), the PIN wiped right after C_Login.
 */
#pragma once

#include <stddef.h>

#include "pkcs11/internal.h"

/*
 * Logs t's admin session in as user with the PIN of t->pin_source. op names the call in
 * messages ("C_Login as user"). KM_EOK (also for CKR_USER_ALREADY_LOGGED_IN: another token
 * of this process shares the login), the PIN source's code, the gate's refusal (no C_Login
 * made), or C_Login's code; the message goes to msg.
 */
int km_p11_login(km_token_t *t, const char *op, char *msg, size_t len);
