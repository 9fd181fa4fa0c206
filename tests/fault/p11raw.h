/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw Cryptoki for tests that must make token objects keymgr never would (an unsafe key pair
 * a crash could leave, a mismatched pair, a token's own marker): the module loaded with
 * dlopen, one read-write session on the token with this label, logged in as user.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

typedef struct {
	void *dl;
	CK_FUNCTION_LIST *fl;
	CK_SESSION_HANDLE s;
	bool initialised_here;
} p11raw_t;

/* Opens module, finds the token labelled label, opens a RW session and logs in with the PIN
 * from pin_source ("file:PATH"). Fails the test otherwise. */
void p11raw_open(p11raw_t *r, const char *module, const char *label, const char *pin_source);

/* Logs out, closes the session, finalizes the module if this opened it. */
void p11raw_close(p11raw_t *r);

/* The one object of class cls with this CKA_ID (CK_INVALID_HANDLE when none). */
CK_OBJECT_HANDLE p11raw_find(p11raw_t *r, CK_OBJECT_CLASS cls, const uint8_t *id, size_t len);
