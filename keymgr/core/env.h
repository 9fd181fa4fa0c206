/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One environment opened for work: its configuration, its store and (on demand) its token.
 *
 * This is the environment wall in code: a km_env_t opens exactly one environment's store and
 * one token, both named by that environment's configuration, and every key it touches must
 * carry the identity (serial) of that token. Operations on keys live in keyops.h; they all
 * take a km_env_t.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keymgr/config/config.h"
#include "keymgr/store/store.h"
#include "pkcs11/token.h"

typedef struct km_env km_env_t;

/*
 * What a program attaches to every environment it opens, beyond the store and the token.
 * keymgr and keymgrd attach the audit context (keymgr/audit/audit.h, km_audit_env_hooks: the
 * policy hash on the store, the JSON lines file and syslog streams); audit sits above core/
 * (it works on a km_env_t), so core/ only calls what the program registered:
 *
 *   int main(...) { km_env_set_hooks(&km_audit_env_hooks); ... km_env_open(...) ... }
 *
 * A process that registers nothing (a test of core/ alone) opens environments without it.
 */
typedef struct {
	/*
	 * Called by km_env_open() once the store is open. *state (left NULL when there is
	 * nothing to keep) stays with the environment for detach. A code other than KM_EOK
	 * makes km_env_open() fail with it (message in err), after detach(*state).
	 */
	int (*attach)(km_env_t *env, void **state, char *err, size_t errlen);
	/* Called by km_env_free() after the token and the store are closed. state may be NULL. */
	void (*detach)(void *state);
} km_env_hooks_t;

/*
 * Registers hooks (NULL: none) for every later km_env_open() of this process; an environment
 * keeps the hooks it was opened with. hooks must outlive those environments (a static
 * table). Call it at start, before any environment is opened: it is not synchronised.
 */
void km_env_set_hooks(const km_env_hooks_t *hooks);

/*
 * Opens environment name of cfg: looks it up (unknown names list the known ones), opens its
 * store and runs the registered attach hook (km_env_set_hooks). The token is opened later,
 * by the first operation that needs it. *ret must be freed with km_env_free(). Codes of
 * km_config_env_lookup(), km_store_open() and the hook.
 */
int km_env_open(const km_config_t *cfg, const char *name, km_env_t **ret, char *err,
                size_t errlen);

/* Closes token and store, then runs the detach hook. NULL ok. */
void km_env_free(km_env_t *env);

const char *km_env_name(const km_env_t *env);
const km_env_cfg_t *km_env_cfg(const km_env_t *env);
const km_config_t *km_env_config(const km_env_t *env);
km_store_t *km_env_store(km_env_t *env);

/*
 * The environment's token, logged in with the environment's PIN source (opened on first
 * call). A token whose identity marker (keymgr token init --env) names another environment
 * is refused (KM_EWRONGENV) and closed again: label and serial do not tell every token apart
 * (NSS, tpm2). A PIN the token refused before is not presented again while its source is unchanged
 * (pin_refusal.h): KM_P11_ELOGIN at once, with a message that says how to retry. Returns
 * KM_EOK and sets *ret (owned by env), or the token layer's code with its message in err.
 */
int km_env_token(km_env_t *env, km_token_t **ret, char *err, size_t errlen);

/*
 * Writes the token identity marker naming env into the environment's token (keymgr token
 * init --env): km_token_marker_write(). *ret_created says whether it was written now (false:
 * it was there). KM_EOK, KM_EWRONGENV (the token's marker names another environment), or
 * the codes of km_env_token(), with err set.
 */
int km_env_mark_token(km_env_t *env, bool *ret_created, char *err, size_t errlen);

/* The environment's token if km_env_token() opened it and it is still open, else NULL (no
 * attempt is made to open it: a caller that only reads what an earlier step found). */
km_token_t *km_env_token_if_open(km_env_t *env);

/*
 * The token of the environment's audit key and checkpoint record: environments.ENV.audit.token
 * (its own PIN source) when configured, else the environment's token (km_env_token()).
 * Opened on first call; *ret is owned by env. KM_EOK, or the token layer's code with its
 * message in err.
 */
int km_env_audit_token(km_env_t *env, km_token_t **ret, char *err, size_t errlen);

/*
 * Records in the environment's store what a generation taught about t (a token of env): the
 * CKA_ID length it keeps when shorter than KM_TOKEN_ID_LEN (YubiHSM 2: 2 bytes), or that it
 * assigns CKA_IDs itself (kmsp11), which km_env_token() and km_env_audit_token() tell the
 * token when a later process opens it.
 * KM_EOK (also when there is nothing to record), or store codes with err set.
 */
int km_env_token_learned(km_env_t *env, km_token_t *t, char *err, size_t errlen);

/*
 * The state the registered attach hook kept for this environment (km_env_hooks_t), when env
 * was opened with hooks, else NULL: for the program that registered them.
 */
void *km_env_hook_state(const km_env_t *env, const km_env_hooks_t *hooks);

/*
 * Closes the environment's token (and its audit token) if it is open (logs out; the module is finalized when no
 * other token of this process uses it). The next operation that needs the token opens it
 * again. For long-running processes that use their token rarely (keymgrd): no session stays
 * logged in between uses, and a software token's copy of its objects is released.
 */
void km_env_close_token(km_env_t *env);

/*
 * Forgets a refusal of the environment's PIN (pin_refusal.h), and of its audit token's PIN
 * (recorded apart, as STORE.audit.pin-refused), so that the next login presents the PIN once
 * more, even if its source is unchanged. KM_EOK, or an errno code with err set.
 */
int km_env_pin_retry(km_env_t *env, char *err, size_t errlen);

/*
 * Logs in to the environment's token once more, an explicit retry (keymgr env login): forgets
 * a refusal of its PIN (and of its audit token's), closes the tokens if open, and opens them
 * again with the PINs read from their sources (the audit token when audit.token is
 * configured). KM_EOK (logged in), KM_EINVAL (no PIN source), or the codes of km_env_token()
 * and km_env_audit_token(); a refusal is recorded again.
 */
int km_env_login(km_env_t *env, char *err, size_t errlen);

/*
 * Effective policy of a key set of this environment (environment policy plus the key set's
 * overrides in the config).
 */
int km_env_keyset_policy(const km_env_t *env, const char *keyset, km_policy_t *ret);

/*
 * Explains where a kid that is unknown here lives: looks it up in the other environments'
 * stores that exist and can be opened, and writes "kid K belongs to environment 'staging',
 * not 'production'" (KM_EWRONGENV) or "unknown kid K in environment 'production'"
 * (KM_ENOENT) into err. Never opens another environment's token.
 */
int km_env_explain_unknown_kid(km_env_t *env, const char *kid, char *err, size_t errlen);

/*
 * Checks that no other environment's store holds kid (kids are unique across environments).
 * KM_EOK, or KM_EEXIST with a message naming the other environment.
 */
int km_env_kid_unique(km_env_t *env, const char *kid, char *err, size_t errlen);

/* "user(uid)@host" of the calling process, for history records. Returns buf. */
const char *km_env_actor(char *buf, size_t len);
