/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The timing rules of docs/timing.md, checked in one place. Each message names the rule, the
 * fields and their values, so that an operator can fix the config without reading code.
 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "policy/policy.h"

#define D(v, buf) km_duration_format((v), (buf), sizeof(buf))

/* Every duration within 0..KM_DURATION_MAX; the ones that measure a span > 0. */
static int check_ranges(const km_policy_t *p, char *err, size_t errlen)
{
	static const km_policy_field_t positive[] = {
		KM_POLICY_F_ROTATION_PERIOD, KM_POLICY_F_JWKS_MAX_AGE, KM_POLICY_F_MAX_TOKEN_TTL,
		KM_POLICY_F_PUBLISH_LEAD, KM_POLICY_F_RETIRE_RETENTION,
	};
	const struct {
		km_policy_field_t f;
		int64_t v;
	} all[] = {
		{ KM_POLICY_F_ROTATION_PERIOD, p->rotation_period },
		{ KM_POLICY_F_JWKS_MAX_AGE, p->jwks_max_age },
		{ KM_POLICY_F_MAX_TOKEN_TTL, p->max_token_ttl },
		{ KM_POLICY_F_CLOCK_SKEW, p->clock_skew },
		{ KM_POLICY_F_PUBLISH_LEAD, p->publish_lead },
		{ KM_POLICY_F_RETIRE_RETENTION, p->retire_retention },
		{ KM_POLICY_F_DESTROY_AFTER, p->destroy_after },
	};
	char a[32];
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *name = km_policy_field_name(all[i].f);
		if (all[i].v < 0 || all[i].v > KM_DURATION_MAX) {
			snprintf(err, errlen, "range rule: %s (%s) must be between 0s and 36500d", name,
			         D(all[i].v, a));
			return KM_POLICY_EUNSAFE;
		}
		for (size_t j = 0; j < sizeof(positive) / sizeof(positive[0]); j++) {
			if (positive[j] == all[i].f && all[i].v == 0) {
				snprintf(err, errlen, "positive rule: %s (0s) must be > 0", name);
				return KM_POLICY_EUNSAFE;
			}
		}
	}
	return KM_EOK;
}

static int check_keys(const km_policy_t *p, char *err, size_t errlen)
{
	uint32_t known = 0;
	for (unsigned a = 1; a <= KM_ALG_COUNT; a++)
		known |= 1u << a;
	if ((p->algorithms & known) == 0) {
		snprintf(err, errlen, "algorithms rule: algorithms is empty: allow at least one");
		return KM_POLICY_EUNSAFE;
	}
	if (p->algorithms & ~known) {
		snprintf(err, errlen, "algorithms rule: algorithms holds unknown bits (0x%x)",
		         (unsigned)(p->algorithms & ~known));
		return KM_POLICY_EUNSAFE;
	}
	if (!km_rsa_bits_valid(p->min_rsa_bits)) {
		snprintf(err, errlen, "rsa rule: min_rsa_bits (%u) must be 2048, 3072 or 4096",
		         p->min_rsa_bits);
		return KM_POLICY_EUNSAFE;
	}
	if (p->n_owners > KM_POLICY_MAX_LIST || p->n_purposes > KM_POLICY_MAX_LIST) {
		snprintf(err, errlen, "list rule: owners (%zu) and purposes (%zu) hold at most %d "
		         "entries", p->n_owners, p->n_purposes, KM_POLICY_MAX_LIST);
		return KM_POLICY_EUNSAFE;
	}
	return KM_EOK;
}

static int check_timing(const km_policy_t *p, char *err, size_t errlen)
{
	char a[32], b[32], c[32], d[32], e[32];
	int64_t ms = p->jwks_max_age + p->clock_skew;
	if (p->publish_lead < ms) {
		snprintf(err, errlen, "activation rule: publish_lead (%s) must be >= jwks_max_age (%s) "
		         "+ clock_skew (%s) = %s, so that every verifier's cached JWKS holds a key "
		         "before it signs", D(p->publish_lead, a), D(p->jwks_max_age, b),
		         D(p->clock_skew, c), D(ms, d));
		return KM_POLICY_EUNSAFE;
	}
	int64_t tms = p->max_token_ttl + ms;
	if (p->retire_retention < tms) {
		snprintf(err, errlen, "removal rule: retire_retention (%s) must be >= max_token_ttl (%s) "
		         "+ jwks_max_age (%s) + clock_skew (%s) = %s, so that a key stays published "
		         "while a token it signed is valid", D(p->retire_retention, a),
		         D(p->max_token_ttl, b), D(p->jwks_max_age, c), D(p->clock_skew, d),
		         D(tms, e));
		return KM_POLICY_EUNSAFE;
	}
	if (p->rotation_period <= p->publish_lead) {
		snprintf(err, errlen, "overlap rule: rotation_period (%s) must be > publish_lead (%s), "
		         "so that a successor can be published before the active key's period ends",
		         D(p->rotation_period, a), D(p->publish_lead, b));
		return KM_POLICY_EUNSAFE;
	}
	unsigned keys = km_policy_jwks_keys(p);
	if (keys > KM_POLICY_MAX_JWKS_KEYS) {
		snprintf(err, errlen, "jwks_size rule: the JWKS would hold %u keys (1 active + %u "
		         "waiting%s + ceil(retire_retention (%s) / rotation_period (%s)) retired), at "
		         "most %d allowed: lengthen rotation_period or shorten retire_retention",
		         keys, p->standby ? 2u : 1u, p->standby ? " with standby" : "",
		         D(p->retire_retention, a), D(p->rotation_period, b),
		         KM_POLICY_MAX_JWKS_KEYS);
		return KM_POLICY_EUNSAFE;
	}
	return KM_EOK;
}

int km_policy_validate(const km_policy_t *p, char *err, size_t errlen)
{
	int r;
	char scratch[8];
	if (err == NULL || errlen == 0) {
		/* Callers that only want the verdict. */
		err = scratch;
		errlen = sizeof(scratch);
	}
	if (p == NULL) {
		snprintf(err, errlen, "no policy");
		return KM_EINVAL;
	}
	if ((r = check_ranges(p, err, errlen)) != KM_EOK)
		return r;
	if ((r = check_keys(p, err, errlen)) != KM_EOK)
		return r;
	return check_timing(p, err, errlen);
}
