/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy as data: built-in defaults per environment class, and setting fields from the YAML
 * text the config parser hands over. The timing rules are in validate.c; the reasoning behind
 * the defaults is in docs/policy.md.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "policy/policy.h"

#define MIN_ 60
#define HOUR_ 3600
#define DAY_ 86400

static const char *const field_names[KM_POLICY_F_COUNT] = {
	[KM_POLICY_F_ALGORITHMS] = "algorithms",
	[KM_POLICY_F_MIN_RSA_BITS] = "min_rsa_bits",
	[KM_POLICY_F_ROTATION_PERIOD] = "rotation_period",
	[KM_POLICY_F_JWKS_MAX_AGE] = "jwks_max_age",
	[KM_POLICY_F_MAX_TOKEN_TTL] = "max_token_ttl",
	[KM_POLICY_F_CLOCK_SKEW] = "clock_skew",
	[KM_POLICY_F_PUBLISH_LEAD] = "publish_lead",
	[KM_POLICY_F_RETIRE_RETENTION] = "retire_retention",
	[KM_POLICY_F_DESTROY_AFTER] = "destroy_after",
	[KM_POLICY_F_STANDBY] = "standby",
	[KM_POLICY_F_OWNERS] = "owners",
	[KM_POLICY_F_PURPOSES] = "purposes",
	[KM_POLICY_F_REQUIRE_DISTINCT_PURPOSE] = "require_distinct_purpose",
	[KM_POLICY_F_ACTIVATE_WHEN_SEEN_BY] = "activate_when_seen_by",
	[KM_POLICY_F_ACTIVATE_WHEN_SEEN_CEILING] = "activate_when_seen_ceiling",
};

const char *km_policy_field_name(km_policy_field_t f)
{
	if ((unsigned)f >= KM_POLICY_F_COUNT)
		return NULL;
	return field_names[f];
}

static int field_from_name(const char *name, km_policy_field_t *ret)
{
	for (unsigned i = 0; name != NULL && i < KM_POLICY_F_COUNT; i++) {
		if (strcmp(field_names[i], name) == 0) {
			*ret = (km_policy_field_t)i;
			return KM_EOK;
		}
	}
	return KM_EINVAL;
}

static uint32_t all_algorithms(void)
{
	uint32_t m = 0;
	for (unsigned a = 1; a <= KM_ALG_COUNT; a++)
		m |= 1u << a;
	return m;
}

void km_policy_defaults(km_policy_t *p, const char *env_name)
{
	memset(p, 0, sizeof(*p));
	bool prod = env_name != NULL && strcmp(env_name, "production") == 0;
	p->algorithms = all_algorithms();
	if (prod) {
		/* Strict: see docs/policy.md for each number. */
		p->min_rsa_bits = 3072;
		p->rotation_period = 90 * DAY_;
		p->jwks_max_age = 1 * HOUR_;
		p->max_token_ttl = 1 * HOUR_;
		p->clock_skew = 5 * MIN_;
		p->publish_lead = 2 * HOUR_;      /* >= M + S = 1h5m, with room for a missed tick */
		p->retire_retention = 1 * DAY_;   /* >= T + M + S = 2h5m */
		p->destroy_after = 30 * DAY_;
		p->standby = true;
		p->require_distinct_purpose = true;
	} else {
		p->min_rsa_bits = 2048;
		p->rotation_period = 7 * DAY_;
		p->jwks_max_age = 5 * MIN_;
		p->max_token_ttl = 1 * HOUR_;
		p->clock_skew = 2 * MIN_;
		p->publish_lead = 15 * MIN_;      /* >= M + S = 7m */
		p->retire_retention = 2 * HOUR_;  /* >= T + M + S = 1h7m */
		p->destroy_after = 1 * DAY_;
		p->standby = false;
		p->require_distinct_purpose = false;
	}
	p->activate_when_seen_ceiling = 1 * HOUR_;  /* only used with activate_when_seen_by */
	for (unsigned i = 0; i < KM_POLICY_F_COUNT; i++)
		p->src[i] = KM_POLICY_SRC_BUILTIN;
}

static int64_t *duration_field(km_policy_t *p, km_policy_field_t f)
{
	switch (f) {
	case KM_POLICY_F_ROTATION_PERIOD: return &p->rotation_period;
	case KM_POLICY_F_JWKS_MAX_AGE: return &p->jwks_max_age;
	case KM_POLICY_F_MAX_TOKEN_TTL: return &p->max_token_ttl;
	case KM_POLICY_F_CLOCK_SKEW: return &p->clock_skew;
	case KM_POLICY_F_PUBLISH_LEAD: return &p->publish_lead;
	case KM_POLICY_F_RETIRE_RETENTION: return &p->retire_retention;
	case KM_POLICY_F_DESTROY_AFTER: return &p->destroy_after;
	case KM_POLICY_F_ACTIVATE_WHEN_SEEN_CEILING: return &p->activate_when_seen_ceiling;
	default: return NULL;
	}
}

static bool is_list_field(km_policy_field_t f)
{
	return f == KM_POLICY_F_ALGORITHMS || f == KM_POLICY_F_OWNERS || f == KM_POLICY_F_PURPOSES ||
	       f == KM_POLICY_F_ACTIVATE_WHEN_SEEN_BY;
}

/* YAML 1.2 core schema booleans. */
static int parse_bool(const char *s, bool *ret)
{
	static const char *const t[] = { "true", "True", "TRUE" };
	static const char *const f[] = { "false", "False", "FALSE" };
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(s, t[i]) == 0) {
			*ret = true;
			return KM_EOK;
		}
		if (strcmp(s, f[i]) == 0) {
			*ret = false;
			return KM_EOK;
		}
	}
	return KM_EINVAL;
}

static int parse_uint(const char *s, unsigned *ret)
{
	unsigned long v = 0;
	if (*s == '\0')
		return KM_EINVAL;
	for (const char *c = s; *c != '\0'; c++) {
		if (*c < '0' || *c > '9')
			return KM_EINVAL;
		v = v * 10 + (unsigned long)(*c - '0');
		if (v > 1000000)
			return KM_EINVAL;
	}
	*ret = (unsigned)v;
	return KM_EOK;
}

int km_policy_set(km_policy_t *p, const char *field, const char *value, km_policy_src_t src,
                  char *err, size_t errlen)
{
	km_policy_field_t f;
	if (p == NULL || field == NULL || field_from_name(field, &f) != KM_EOK) {
		snprintf(err, errlen, "%.64s: unknown policy field", field ? field : "(null)");
		return KM_CONFIG_EINVAL;
	}
	if (value == NULL) {
		snprintf(err, errlen, "%s: missing value", field);
		return KM_CONFIG_EINVAL;
	}
	if (is_list_field(f)) {
		snprintf(err, errlen, "%s: expected a list, not a single value", field);
		return KM_CONFIG_EINVAL;
	}

	int64_t *dur = duration_field(p, f);
	if (dur != NULL) {
		char why[96];
		int64_t v;
		if (km_duration_parse_err(value, &v, why, sizeof(why)) != KM_EOK) {
			snprintf(err, errlen, "%s: '%.40s' is not a duration: %s (e.g. 90s, 15m, 12h, "
			         "30d, 2w, 1d12h)", field, value, why);
			return KM_CONFIG_EINVAL;
		}
		*dur = v;
	} else if (f == KM_POLICY_F_MIN_RSA_BITS) {
		unsigned bits;
		if (parse_uint(value, &bits) != KM_EOK || !km_rsa_bits_valid(bits)) {
			snprintf(err, errlen, "%s: '%.40s' is not one of 2048, 3072, 4096", field, value);
			return KM_CONFIG_EINVAL;
		}
		p->min_rsa_bits = bits;
	} else {
		bool b;
		if (parse_bool(value, &b) != KM_EOK) {
			snprintf(err, errlen, "%s: '%.40s' is not a boolean (true or false)", field,
			         value);
			return KM_CONFIG_EINVAL;
		}
		if (f == KM_POLICY_F_STANDBY)
			p->standby = b;
		else
			p->require_distinct_purpose = b;
	}
	p->src[f] = src;
	return KM_EOK;
}

/* A verifier name as sent in Keymgr-Verifier: 1..64 of [A-Za-z0-9._-]. */
static bool verifier_name_valid(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	if (len == 0 || len > KM_POLICY_VERIFIER_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("._-", s[i]) != NULL))
			return false;
	return true;
}

static int set_verifiers(km_policy_t *p, const char *field, const char *const *items, size_t n,
                         char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (!verifier_name_valid(items[i])) {
			snprintf(err, errlen, "%s: '%.64s' is not a valid verifier name (1 to %d of A-Z "
			         "a-z 0-9 . _ -)", field, items[i] ? items[i] : "(null)",
			         KM_POLICY_VERIFIER_MAX);
			return KM_CONFIG_EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(items[j], items[i]) == 0) {
				snprintf(err, errlen, "%s: '%s' is listed twice", field, items[i]);
				return KM_CONFIG_EINVAL;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		snprintf(p->activate_when_seen_by[i], sizeof(p->activate_when_seen_by[i]), "%s",
		         items[i]);
	p->n_activate_when_seen_by = n;
	return KM_EOK;
}

/* An owner pattern: owner characters plus the fnmatch(3) metacharacters * ? [ ] !. */
static bool owner_pattern_valid(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len >= sizeof(((km_policy_t *)0)->owners[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          strchr("._@+:-*?[]!", c) != NULL;
		if (!ok)
			return false;
	}
	return true;
}

static int set_algorithms(km_policy_t *p, const char *const *items, size_t n, char *err,
                          size_t errlen)
{
	uint32_t mask = 0;
	for (size_t i = 0; i < n; i++) {
		km_alg_t a;
		if (items[i] == NULL || km_alg_from_name(items[i], &a) != KM_EOK) {
			snprintf(err, errlen, "algorithms: unknown algorithm '%.32s' (RS256, RS384, RS512, "
			         "PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)",
			         items[i] ? items[i] : "(null)");
			return KM_CONFIG_EINVAL;
		}
		if (mask & (1u << a)) {
			snprintf(err, errlen, "algorithms: '%s' is listed twice", items[i]);
			return KM_CONFIG_EINVAL;
		}
		mask |= 1u << a;
	}
	p->algorithms = mask;
	return KM_EOK;
}

static int set_names(char (*dst)[64], size_t *dst_n, const char *field, bool owners,
                     const char *const *items, size_t n, char *err, size_t errlen)
{
	char tmp[KM_POLICY_MAX_LIST][64];
	for (size_t i = 0; i < n; i++) {
		const char *s = items[i];
		bool ok = s != NULL && (owners ? owner_pattern_valid(s)
		                               : (strlen(s) < 64 && km_name_purpose_valid(s)));
		if (!ok) {
			snprintf(err, errlen, owners
			         ? "%s: '%.64s' is not a valid owner or pattern (1 to 63 of A-Z a-z 0-9 "
			           "._@+:- and the wildcards * ? [ ] !)"
			         : "%s: '%.64s' is not a valid purpose (a lowercase slug of at most 63 "
			           "characters)", field, s ? s : "(null)");
			return KM_CONFIG_EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(tmp[j], s) == 0) {
				snprintf(err, errlen, "%s: '%s' is listed twice", field, s);
				return KM_CONFIG_EINVAL;
			}
		}
		snprintf(tmp[i], sizeof(tmp[i]), "%s", s);
	}
	memcpy(dst, tmp, n * sizeof(tmp[0]));
	*dst_n = n;
	return KM_EOK;
}

int km_policy_set_list(km_policy_t *p, const char *field, const char *const *items, size_t n,
                       km_policy_src_t src, char *err, size_t errlen)
{
	km_policy_field_t f;
	int r;
	if (p == NULL || field == NULL || field_from_name(field, &f) != KM_EOK) {
		snprintf(err, errlen, "%.64s: unknown policy field", field ? field : "(null)");
		return KM_CONFIG_EINVAL;
	}
	if (!is_list_field(f)) {
		snprintf(err, errlen, "%s: expected a single value, not a list", field);
		return KM_CONFIG_EINVAL;
	}
	if (n > 0 && items == NULL) {
		snprintf(err, errlen, "%s: missing list items", field);
		return KM_CONFIG_EINVAL;
	}
	if (n > KM_POLICY_MAX_LIST) {
		snprintf(err, errlen, "%s: %zu entries, at most %d allowed", field, n,
		         KM_POLICY_MAX_LIST);
		return KM_CONFIG_EINVAL;
	}
	if (f == KM_POLICY_F_ALGORITHMS) {
		if (n == 0) {
			snprintf(err, errlen, "algorithms: the list is empty: allow at least one algorithm");
			return KM_CONFIG_EINVAL;
		}
		r = set_algorithms(p, items, n, err, errlen);
	} else if (f == KM_POLICY_F_ACTIVATE_WHEN_SEEN_BY) {
		r = set_verifiers(p, field, items, n, err, errlen);
	} else if (f == KM_POLICY_F_OWNERS) {
		r = set_names(p->owners, &p->n_owners, field, true, items, n, err, errlen);
	} else {
		r = set_names(p->purposes, &p->n_purposes, field, false, items, n, err, errlen);
	}
	if (r == KM_EOK)
		p->src[f] = src;
	return r;
}

bool km_policy_owner_allowed(const km_policy_t *p, const char *owner)
{
	if (p == NULL || owner == NULL || !km_name_owner_valid(owner))
		return false;
	if (p->n_owners == 0)
		return true;
	for (size_t i = 0; i < p->n_owners; i++)
		if (fnmatch(p->owners[i], owner, 0) == 0)
			return true;
	return false;
}

bool km_policy_purpose_allowed(const km_policy_t *p, const char *purpose)
{
	if (p == NULL || purpose == NULL || !km_name_purpose_valid(purpose))
		return false;
	if (p->n_purposes == 0)
		return km_purpose_is_builtin(purpose);
	for (size_t i = 0; i < p->n_purposes; i++)
		if (strcmp(p->purposes[i], purpose) == 0)
			return true;
	return false;
}

bool km_policy_alg_allowed(const km_policy_t *p, km_alg_t alg, unsigned rsa_bits)
{
	const km_alg_info_t *info = km_alg_info(alg);
	if (p == NULL || info == NULL || !(p->algorithms & (1u << alg)))
		return false;
	if (info->kty == KM_KTY_RSA)
		return km_rsa_bits_valid(rsa_bits) && rsa_bits >= p->min_rsa_bits;
	return true;
}

unsigned km_policy_jwks_keys(const km_policy_t *p)
{
	if (p == NULL || p->rotation_period <= 0 || p->retire_retention < 0)
		return 0;
	int64_t retired = (p->retire_retention + p->rotation_period - 1) / p->rotation_period;
	if (retired > 1000)
		retired = 1000;
	return 1u + (p->standby ? 2u : 1u) + (unsigned)retired;
}

char *km_policy_allowed_text(const km_policy_t *p, km_policy_field_t f, char *buf, size_t len)
{
	size_t used = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
#define ADD(...) do { \
		int n_ = snprintf(buf + used, len - used, __VA_ARGS__); \
		if (n_ > 0) \
			used = used + (size_t)n_ < len ? used + (size_t)n_ : len - 1; \
	} while (0)
	switch (f) {
	case KM_POLICY_F_ALGORITHMS:
		for (int a = 1; a <= KM_ALG_COUNT; a++) {
			if (!(p->algorithms & (1u << a)))
				continue;
			ADD("%s%s", used ? ", " : "", km_alg_name((km_alg_t)a));
			if (km_alg_info((km_alg_t)a)->kty == KM_KTY_RSA)
				ADD(" (>= %u bits)", p->min_rsa_bits);
		}
		if (used == 0)
			ADD("none");
		break;
	case KM_POLICY_F_OWNERS:
		if (p->n_owners == 0)
			ADD("any non-empty owner");
		for (size_t i = 0; i < p->n_owners; i++)
			ADD("%s%s", i ? ", " : "", p->owners[i]);
		break;
	case KM_POLICY_F_PURPOSES:
		if (p->n_purposes == 0)
			ADD("%s", km_purpose_builtin_list());
		for (size_t i = 0; i < p->n_purposes; i++)
			ADD("%s%s", i ? ", " : "", p->purposes[i]);
		break;
	case KM_POLICY_F_MIN_RSA_BITS:
		ADD("%u", p->min_rsa_bits);
		break;
	default:
		ADD("%s", km_policy_field_name(f) ? km_policy_field_name(f) : "?");
		break;
	}
#undef ADD
	return buf;
}

char *km_policy_config_key(const km_policy_t *p, km_policy_field_t f, const char *env,
                           const char *keyset, char *buf, size_t len)
{
	const char *name = km_policy_field_name(f);
	if (keyset != NULL && (unsigned)f < KM_POLICY_F_COUNT && p->src[f] == KM_POLICY_SRC_KEYSET)
		snprintf(buf, len, "environments.%s.keysets.%s.policy.%s", env, keyset,
		         name ? name : "?");
	else
		snprintf(buf, len, "environments.%s.policy.%s", env, name ? name : "?");
	return buf;
}
