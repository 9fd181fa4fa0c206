/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation policy as plain data (after Knot DNS kasp/policy.h), and its validation.
 * No I/O. The YAML parser (keymgr/config.c) feeds values in as strings through
 * km_policy_set()/km_policy_set_list(); this module parses and checks them, so the rules live
 * in one place. All times are seconds.
 *
 * See docs/timing.md for the model and the reasoning behind each rule.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"

#define KM_POLICY_MAX_LIST 32

/* Longest accepted duration: 100 years. Sums of a few durations and a unix time stay far from
 * INT64_MAX, so the planner's arithmetic cannot overflow. */
#define KM_DURATION_MAX ((int64_t)100 * 365 * 86400)

/* Most keys the JWKS may hold in steady state (see the jwks_size rule in docs/timing.md). */
#define KM_POLICY_MAX_JWKS_KEYS 10

/* Longest verifier name in activate_when_seen_by (a Keymgr-Verifier header value). */
#define KM_POLICY_VERIFIER_MAX 64

/* Where an effective value came from, for `keymgr policy show`. */
typedef enum {
	KM_POLICY_SRC_BUILTIN = 0,   /* compiled-in default for the environment class */
	KM_POLICY_SRC_ENV,           /* environments.ENV.policy in the config */
	KM_POLICY_SRC_KEYSET,        /* keysets.NAME.policy override */
} km_policy_src_t;

typedef enum {
	KM_POLICY_F_ALGORITHMS = 0,
	KM_POLICY_F_MIN_RSA_BITS,
	KM_POLICY_F_ROTATION_PERIOD,
	KM_POLICY_F_JWKS_MAX_AGE,
	KM_POLICY_F_MAX_TOKEN_TTL,
	KM_POLICY_F_CLOCK_SKEW,
	KM_POLICY_F_PUBLISH_LEAD,
	KM_POLICY_F_RETIRE_RETENTION,
	KM_POLICY_F_DESTROY_AFTER,
	KM_POLICY_F_STANDBY,
	KM_POLICY_F_OWNERS,
	KM_POLICY_F_PURPOSES,
	KM_POLICY_F_REQUIRE_DISTINCT_PURPOSE,
	KM_POLICY_F_ACTIVATE_WHEN_SEEN_BY,
	KM_POLICY_F_ACTIVATE_WHEN_SEEN_CEILING,
	KM_POLICY_F_COUNT
} km_policy_field_t;

typedef struct {
	uint32_t algorithms;         /* bit (1u << km_alg_t) per allowed algorithm */
	unsigned min_rsa_bits;
	int64_t rotation_period;     /* R */
	int64_t jwks_max_age;        /* M */
	int64_t max_token_ttl;       /* T */
	int64_t clock_skew;          /* S */
	int64_t publish_lead;        /* P */
	int64_t retire_retention;    /* Ret */
	int64_t destroy_after;       /* D */
	bool standby;
	/* Allowed owners: exact names or fnmatch(3) patterns. Empty list: any non-empty owner. */
	char owners[KM_POLICY_MAX_LIST][64];
	size_t n_owners;
	/* Allowed purposes. Empty list: the built-in token classes. */
	char purposes[KM_POLICY_MAX_LIST][64];
	size_t n_purposes;
	bool require_distinct_purpose;
	/*
	 * Propagation gating (enforced by keymgrd, not by the pure planner): a rotation's
	 * ACTIVATE waits until every named verifier (1..64 of [A-Za-z0-9._-]) has fetched a JWKS
	 * holding the key, or until activate_when_seen_ceiling after the activation was due.
	 * Empty list: no gating.
	 */
	char activate_when_seen_by[KM_POLICY_MAX_LIST][KM_POLICY_VERIFIER_MAX + 1];
	size_t n_activate_when_seen_by;
	int64_t activate_when_seen_ceiling;
	km_policy_src_t src[KM_POLICY_F_COUNT];
} km_policy_t;

/* YAML name of a field ("rotation_period"), or NULL. */
const char *km_policy_field_name(km_policy_field_t f);

/*
 * Fills p with the built-in defaults for an environment. "production" gets the strict set
 * (min_rsa_bits 3072, ...); every other name the development set. See docs/policy.md.
 */
void km_policy_defaults(km_policy_t *p, const char *env_name);

/*
 * Sets one scalar field from its YAML text: durations like "30d", "12h", "90s", "1w";
 * booleans "true"/"false"; integers. On error writes "FIELD: why" into err.
 * Returns KM_EOK or KM_CONFIG_EINVAL.
 */
int km_policy_set(km_policy_t *p, const char *field, const char *value, km_policy_src_t src,
                  char *err, size_t errlen);

/* Sets a list field (algorithms, owners, purposes). Same contract as km_policy_set(). */
int km_policy_set_list(km_policy_t *p, const char *field, const char *const *items, size_t n,
                       km_policy_src_t src, char *err, size_t errlen);

/*
 * Checks the timing rules (docs/timing.md). On the first violation writes a message naming
 * the rule and the numbers, e.g.
 *   "publish_lead (1h) must be >= jwks_max_age (1h) + clock_skew (5m) = 1h5m"
 * and returns KM_POLICY_EUNSAFE.
 */
int km_policy_validate(const km_policy_t *p, char *err, size_t errlen);

/* Parses a duration ("90s", "12h", "30d", "2w", "1d12h"); KM_EOK or KM_EINVAL. */
int km_duration_parse(const char *s, int64_t *ret);

/*
 * Same as km_duration_parse(), and on error writes why into err (may be NULL): "empty",
 * "missing unit", "unknown unit 'y'", "units out of order", "out of range (max 36500d)", ...
 */
int km_duration_parse_err(const char *s, int64_t *ret, char *err, size_t errlen);

/* Formats seconds compactly with the units d, h, m, s ("1d12h", "1m30s", "0s"; negative values
 * get a leading '-'). Returns buf. */
char *km_duration_format(int64_t secs, char *buf, size_t len);

/* True if owner is allowed by p (non-empty and matching the list when the list is set). */
bool km_policy_owner_allowed(const km_policy_t *p, const char *owner);

/* True if purpose is allowed by p. */
bool km_policy_purpose_allowed(const km_policy_t *p, const char *purpose);

/* True if alg (with rsa_bits for RSA) is allowed by p. */
bool km_policy_alg_allowed(const km_policy_t *p, km_alg_t alg, unsigned rsa_bits);

/*
 * What p allows for a list field, as text for a refusal: the allowed algorithms ("ES256,
 * ES384, EdDSA"; RSA with " (>= N bits)"), owners ("any non-empty owner" or the list) or
 * purposes (the list, or the built-in token classes). Any other field: its value as text.
 * Returns buf.
 */
char *km_policy_allowed_text(const km_policy_t *p, km_policy_field_t f, char *buf, size_t len);

/*
 * The configuration key that set field f of a key set's effective policy:
 * "environments.ENV.keysets.NAME.policy.FIELD" when the key set overrides it, else
 * "environments.ENV.policy.FIELD" (where to set it, also for a built-in default).
 * Returns buf.
 */
char *km_policy_config_key(const km_policy_t *p, km_policy_field_t f, const char *env,
                           const char *keyset, char *buf, size_t len);

/*
 * The most keys the JWKS holds in steady state under p: one active key, one successor (two
 * with standby: the ready standby and the next one), and ceil(retire_retention /
 * rotation_period) retired keys.
 */
unsigned km_policy_jwks_keys(const km_policy_t *p);
