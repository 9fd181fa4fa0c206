/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policies in the config: "policy:" mappings are collected as text with their positions,
 * then layered once every file is read:
 *   km_policy_defaults(ENV) -> defaults.policy -> environments.ENV.policy   (the env policy)
 *   env policy -> environments.ENV.keysets.NAME.policy                      (a key set's)
 * and each result is checked with km_policy_validate() so unsafe timings stop the load.
 */
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config_int.h"

static bool field_is_list(const char *field)
{
	return strcmp(field, km_policy_field_name(KM_POLICY_F_ALGORITHMS)) == 0 ||
	       strcmp(field, km_policy_field_name(KM_POLICY_F_OWNERS)) == 0 ||
	       strcmp(field, km_policy_field_name(KM_POLICY_F_PURPOSES)) == 0 ||
	       strcmp(field, km_policy_field_name(KM_POLICY_F_ACTIVATE_WHEN_SEEN_BY)) == 0;
}

static bool field_known(const char *field)
{
	for (int f = 0; f < KM_POLICY_F_COUNT; f++) {
		const char *name = km_policy_field_name((km_policy_field_t)f);
		if (name != NULL && strcmp(name, field) == 0)
			return true;
	}
	return false;
}

static const char *field_list(char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int f = 0; f < KM_POLICY_F_COUNT && n < len; f++) {
		const char *name = km_policy_field_name((km_policy_field_t)f);
		if (name == NULL)
			continue;
		int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	return buf;
}

int cfg_pblock_add(km_config_t *cfg, cfg_pblock_t *b, cfg_pset_t *ps, const char *where,
                   cfg_err_t *e)
{
	for (cfg_pset_t *o = b->head; o != NULL; o = o->next) {
		if (strcmp(o->field, ps->field) != 0)
			continue;
		cfg_errorf(e, ps->loc, "%s.%s: already set at %s:%d:%d (a value may be given once "
		           "per level, in the main file or in one included file)", where, ps->field,
		           o->loc.file, o->loc.line, o->loc.col);
		return KM_CONFIG_EINVAL;
	}
	(void)cfg;
	if (b->tail != NULL)
		b->tail->next = ps;
	else
		b->head = ps;
	b->tail = ps;
	return KM_EOK;
}

static int parse_list(km_config_t *cfg, struct fy_node *seq, cfg_loc_t at, const char *what,
                      cfg_pset_t *ps, cfg_err_t *e)
{
	int r = cfg_yaml_expect_seq(seq, at, what, e);
	if (r != KM_EOK)
		return r;
	int count = fy_node_sequence_item_count(seq);
	if (count > KM_POLICY_MAX_LIST) {
		cfg_errorf(e, at, "%s: more than %d items", what, KM_POLICY_MAX_LIST);
		return KM_CONFIG_EINVAL;
	}
	ps->items = cfg_alloc(cfg, sizeof(*ps->items) * (size_t)(count > 0 ? count : 1));
	if (ps->items == NULL)
		return KM_ENOMEM;
	void *it = NULL;
	struct fy_node *item;
	while ((item = fy_node_sequence_iterate(seq, &it)) != NULL && ps->n < (size_t)count) {
		const char *s = NULL;
		if ((r = cfg_yaml_scalar(item, at, what, &s, e)) != KM_EOK)
			return r;
		if ((ps->items[ps->n] = cfg_strdup(cfg, s)) == NULL)
			return KM_ENOMEM;
		ps->n++;
	}
	return KM_EOK;
}

int cfg_policy_parse(km_config_t *cfg, struct fy_node *map, cfg_loc_t at, cfg_pblock_t *b,
                     const char *where, cfg_err_t *e)
{
	char what[256];
	int r = cfg_yaml_expect_map(map, at, where, e);
	if (r != KM_EOK)
		return r;
	const char *where_copy = cfg_strdup(cfg, where);
	if (where_copy == NULL)
		return KM_ENOMEM;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, e)) == 1) {
		if (!field_known(key)) {
			char fields[512];
			return cfg_yaml_unknown_key(e, kat, key, where, field_list(fields, sizeof(fields)));
		}
		snprintf(what, sizeof(what), "%s.%s", where, key);
		cfg_pset_t *ps = cfg_alloc(cfg, sizeof(*ps));
		if (ps == NULL || (ps->field = cfg_strdup(cfg, key)) == NULL)
			return KM_ENOMEM;
		ps->is_list = field_is_list(key);
		ps->loc = cfg_yaml_loc(val, kat);
		if (ps->is_list) {
			r = parse_list(cfg, val, kat, what, ps, e);
		} else {
			const char *s = NULL;
			r = cfg_yaml_scalar(val, kat, what, &s, e);
			if (r == KM_EOK) {
				ps->items = cfg_alloc(cfg, sizeof(*ps->items));
				if (ps->items == NULL || (ps->items[0] = cfg_strdup(cfg, s)) == NULL)
					return KM_ENOMEM;
				ps->n = 1;
			}
		}
		if (r != KM_EOK)
			return r;
		if ((r = cfg_pblock_add(cfg, b, ps, where_copy, e)) != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

static int apply(km_policy_t *p, const cfg_pblock_t *b, km_policy_src_t src, const char *who,
                 cfg_err_t *e)
{
	char msg[256];
	for (const cfg_pset_t *ps = b->head; ps != NULL; ps = ps->next) {
		int r;
		msg[0] = '\0';
		if (ps->is_list)
			r = km_policy_set_list(p, ps->field, (const char *const *)ps->items, ps->n, src,
			                       msg, sizeof(msg));
		else
			r = km_policy_set(p, ps->field, ps->items[0], src, msg, sizeof(msg));
		if (r != KM_EOK) {
			cfg_errorf(e, ps->loc, "%s: policy: %s", who,
			           msg[0] ? msg : km_strerror(r));
			return r == KM_ENOMEM ? r : KM_CONFIG_EINVAL;
		}
	}
	return KM_EOK;
}

/* Whether the values of b alone fail on the built-in defaults of environment env. */
static bool apply_fails(const char *env, const cfg_pblock_t *b)
{
	km_policy_t p;
	char buf[16];
	cfg_err_t quiet = { buf, sizeof(buf), false };
	km_policy_defaults(&p, env);
	return apply(&p, b, KM_POLICY_SRC_ENV, "", &quiet) != KM_EOK;
}

static int validate(const km_policy_t *p, cfg_loc_t at, const char *who, cfg_err_t *e)
{
	char msg[256];
	msg[0] = '\0';
	int r = km_policy_validate(p, msg, sizeof(msg));
	if (r == KM_EOK)
		return KM_EOK;
	cfg_errorf(e, at, "%s: unsafe policy: %s", who, msg[0] ? msg : km_strerror(r));
	return KM_POLICY_EUNSAFE;
}

/* A key set served to kube-apiserver (kubernetes: true; docs/kubernetes.md). */
static int validate_k8s(const km_keyset_cfg_t *ks, const km_policy_t *p, cfg_loc_t at,
                        const char *who, cfg_err_t *e)
{
	char a[32], b[32], c[32];
	int64_t hint = km_config_k8s_refresh_hint(p->publish_lead, p->clock_skew);
	if (ks->issuer == NULL || ks->n_audiences == 0) {
		cfg_errorf(e, at, "%s: kubernetes: true needs issuer and audiences (kube-apiserver's "
		           "--service-account-issuer and --api-audiences)", who);
		return KM_CONFIG_EINVAL;
	}
	if (p->max_token_ttl < 600) {
		cfg_errorf(e, at, "%s: kubernetes: true needs max_token_ttl >= 10m (kube-apiserver "
		           "refuses a signer whose tokens may not live 600 s), not %s", who,
		           km_duration_format(p->max_token_ttl, a, sizeof(a)));
		return KM_POLICY_EUNSAFE;
	}
	if (hint < 1 || p->publish_lead < 2 * hint + p->clock_skew) {
		cfg_errorf(e, at, "%s: kubernetes: true needs publish_lead (%s) >= 2 x "
		           "refresh_hint_seconds + clock_skew (%s), with refresh_hint_seconds >= 1 s "
		           "(derived as (publish_lead - clock_skew) / 2, here %s): kube-apiserver "
		           "serves the keys it fetched for up to a refresh interval, so a verifier "
		           "behind it lags by two", who,
		           km_duration_format(p->publish_lead, a, sizeof(a)),
		           km_duration_format(p->clock_skew, b, sizeof(b)),
		           km_duration_format(hint, c, sizeof(c)));
		return KM_POLICY_EUNSAFE;
	}
	return KM_EOK;
}

/*
 * An environment or key set whose own or inherited policy values have errors is skipped:
 * its effective policy is never computed from what remains. A failure here is recorded for
 * the environment (all its key sets) or the one key set, and the others go on.
 */
int cfg_policy_compute(km_config_t *cfg, cfg_err_t *e)
{
	char who[160];
	for (size_t i = 0; i < cfg->n_envs; i++) {
		cfg_env_t *env = cfg->envs[i];
		const char *en = env->pub.name;
		km_policy_t p;
		if (env->broken || cfg_policy_blocked(cfg, en, NULL))
			continue;
		snprintf(who, sizeof(who), "environment '%s'", en);
		km_policy_defaults(&p, en);
		int r = apply(&p, &cfg->defaults_pol, KM_POLICY_SRC_ENV, who, e);
		if (r == KM_EOK)
			r = apply(&p, &env->pol, KM_POLICY_SRC_ENV, who, e);
		if (r == KM_EOK)
			r = validate(&p, env->loc, who, e);
		if (r != KM_EOK) {
			/* defaults.policy is applied to every environment: a bad value there is
			 * reported once, for all of them. */
			bool from_defaults = e->set && cfg->defaults_pol.head != NULL &&
			                     apply_fails(en, &cfg->defaults_pol);
			if ((r = cfg_record(cfg, e, r, from_defaults ? CFG_SCOPE_POLICIES
			                                             : CFG_SCOPE_ENV_POLICY,
			                    from_defaults ? NULL : en, NULL, NULL)) != KM_EOK)
				return r;
			continue;
		}
		env->pub.policy = p;
		size_t n = 0;
		for (size_t k = 0; k < env->n_keysets; k++) {
			cfg_keyset_t *ks = env->keysets[k];
			km_policy_t q = p;
			if (ks->broken)
				continue;
			snprintf(who, sizeof(who), "environment '%s', key set '%s'", en, ks->pub.name);
			r = apply(&q, &ks->pol, KM_POLICY_SRC_KEYSET, who, e);
			if (r == KM_EOK)
				r = validate(&q, ks->loc, who, e);
			if (r == KM_EOK && ks->pub.kubernetes)
				r = validate_k8s(&ks->pub, &q, ks->loc, who, e);
			if (r != KM_EOK) {
				if ((r = cfg_record(cfg, e, r, CFG_SCOPE_KEYSET, en, NULL,
				                    ks->pub.name)) != KM_EOK)
					return r;
				continue;
			}
			ks->pub.policy = q;
			env->pub.keysets[n++] = &ks->pub;
		}
		env->pub.n_keysets = n;
	}
	return KM_EOK;
}
