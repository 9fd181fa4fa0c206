/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers of the commands that work on configured environments (env, keyset, key, rotate,
 * revoke, destroy, jwks, sign, plan, apply, policy): loading the configuration, opening one
 * environment, mapping KM_* codes to exit codes, and the stable JSON/table renderings.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "keymgr/config/config.h"
#include "keymgr/core/env.h"
#include "keymgr/store/store.h"

/* The -c/--config value given before the command (NULL: $KEYMGR_CONFIG, then the default). */
void km_cli_set_config_path(const char *path);

/* The configuration file's path as located (-c, $KEYMGR_CONFIG, the default), or NULL when
 * it cannot be (empty -c). Static storage. */
const char *km_cli_config_located(void);

/*
 * Locates and loads the configuration. Prints the error and returns an exit code on failure;
 * 0 and *ret (free with km_config_free()) on success.
 */
int km_cli_config_load(km_config_t **ret);

/*
 * The same with km_config_load_partial(), for the verbs that work with a configuration that
 * has errors where they do not need it (keymgr(1), A BROKEN CONFIGURATION): the read-only
 * verbs and revoke. Every recorded error is printed as a warning first; what an error
 * touches is then refused where a command needs it (km_env_open(), km_config_check()).
 */
int km_cli_config_load_partial(km_config_t **ret);

/* Prints the errors of a partial load as warnings on stderr (nothing when there are none). */
void km_cli_config_warn(const km_config_t *cfg);

/*
 * For a command over every environment: when the partial load left an environment out
 * (km_config_envs_complete()), says so and returns KM_CLI_EXIT_REFUSED (what was printed is
 * not the whole answer); otherwise returns rc.
 */
int km_cli_config_complete(const km_config_t *cfg, int rc);

/*
 * Loads the configuration and opens environment name. Prints the error and returns an exit
 * code on failure; 0 on success with *cfg and *env set (release with km_cli_env_close()).
 */
int km_cli_env_open(const char *name, km_config_t **cfg, km_env_t **env);
/* The same after km_cli_config_load_partial(): an environment with errors is refused. */
int km_cli_env_open_partial(const char *name, km_config_t **cfg, km_env_t **env);
void km_cli_env_close(km_config_t *cfg, km_env_t *env);

/*
 * Prints "keymgr: msg" (or km_strerror(r) when msg is empty) and returns the exit code for r:
 * KM_CLI_EXIT_USAGE for malformed names, KM_CLI_EXIT_REFUSED otherwise.
 */
int km_cli_fail(int r, const char *msg);

/* Current time (seconds since the epoch). */
int64_t km_cli_now(void);

/* "2026-11-28T17:00:00Z", or "-" for KM_STORE_TIME_NONE. Returns buf (at least 32 bytes). */
const char *km_cli_iso8601(int64_t t, char *buf, size_t len);

/*
 * Parses a time given by a user: ISO 8601 UTC ("2026-11-28T17:00:00Z", "2026-11-28"),
 * "@UNIXSECONDS", or "now". KM_EOK or KM_EINVAL (also for a date that does not exist, such
 * as 2026-02-30, which timegm() alone would move to March).
 */
int km_cli_parse_time(const char *s, int64_t *ret);

/*
 * Tells a running keymgrd (its control socket from $KEYMGR_CONTROL_SOCKET, else found as
 * km_ctl_locate() finds it: the configuration, keymgrd's records, the default) that the CLI
 * changed env (keyset may be NULL), so it re-reads the store, plans and republishes the JWKS
 * now rather than at its next poll: a revoked key leaves the served JWKS when `keymgr revoke`
 * returns, even when the configuration has errors. Silent when no daemon runs; a note on
 * stderr when one runs but cannot be told.
 */
void km_cli_wake_daemon(const km_config_t *cfg, const char *env, const char *keyset);

/*
 * The states key k entered, in the order of its life: by time, and for equal times in
 * lifecycle order (generated, published, active, retired, removed, revoked, destroyed).
 * Returns their number (at most KM_STATE_COUNT).
 */
size_t km_cli_key_times(const km_store_key_t *k, km_state_t order[KM_STATE_COUNT]);

/* The CKA_ID of k in lower-case hex. */
void km_cli_cka_id_hex(const km_store_key_t *k, char hex[2 * KM_STORE_CKA_ID_MAX + 1]);

/* Stable JSON renderings (new references). */
json_t *km_cli_keyset_json(const km_store_keyset_t *ks);
json_t *km_cli_key_json(const km_store_key_t *k);

/* ["issuer", "audiences", "signers"]: the names of a km_keyset_signing_gaps() mask. */
json_t *km_cli_signing_gaps_json(unsigned gaps);
