/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test fixture: a real SoftHSM2 token in a fresh temporary directory.
 *
 * km_test_softhsm_create() makes DIR=$TMPDIR/keymgr-test-XXXXXX holding softhsm2.conf, a tokens/
 * directory and two PIN files (mode 0600), points SOFTHSM2_CONF at it (setenv), and initialises
 * a token with the given label through keymgr's own km_token_init_dev(). Several tokens can be
 * created in one fixture with km_test_softhsm_add_token(). km_test_softhsm_destroy() removes the
 * directory tree. Nothing outside the temporary directory is touched.
 */
#pragma once

#include <stddef.h>

typedef struct {
	char dir[256];          /* the temporary directory */
	char conf[300];         /* DIR/softhsm2.conf */
	char module[256];       /* SoftHSM module path (KEYMGR_TEST_SOFTHSM_MODULE or built-in) */
	char pin_source[320];   /* "file:DIR/user.pin" for the default token */
	char so_pin_source[320];
	char label[33];
} km_test_softhsm_t;

/* Returns 0 on success; prints the reason to stderr and returns -1 otherwise. */
int km_test_softhsm_create(km_test_softhsm_t *t, const char *label);

/*
 * Adds another token with its own user PIN (pin written to DIR/<label>.pin);
 * writes "file:..." into pin_source_out.
 */
int km_test_softhsm_add_token(km_test_softhsm_t *t, const char *label, const char *user_pin,
                              char *pin_source_out, size_t len);

void km_test_softhsm_destroy(km_test_softhsm_t *t);
