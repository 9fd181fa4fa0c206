/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler's token check (ensure_token in scheduler.c): open the environment's token
 * and probe it. Opening alone proves nothing for a token that stays open (an environment that
 * signs keeps it), so km_token_check() reaches the module every time: a dropped session or a
 * lost login is noticed here, and the token layer re-opens it (pkcs11/recover.c).
 */
#include <stdio.h>

#include "keymgr/common/error.h"
#include "keymgr/daemon/state.h"
#include "keymgr/daemon/token_check.h"

int kd_env_token_check(kd_env_t *e, bool force, char *err, size_t errlen)
{
	km_token_t *t = NULL;
	int r = km_env_token(e->env, &t, err, errlen);

	if (r != KM_EOK)
		return r;
	/* An explicit tick retries at once; a PIN the token refused is presented again only from
	 * a changed source (the PIN gate, keymgr/core/pin_refusal.c). */
	if (force && (r = km_token_recover(t)) != KM_EOK) {
		snprintf(err, errlen, "environment '%s': %s", e->name, km_token_last_error(t));
		return r;
	}
	if ((r = km_token_check(t)) != KM_EOK)
		snprintf(err, errlen, "environment '%s': %s", e->name, km_token_last_error(t));
	return r;
}
