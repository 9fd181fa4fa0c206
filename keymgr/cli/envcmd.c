/* SPDX-License-Identifier: Apache-2.0 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keymgr/cli/cli.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/common/hex.h"
#include "keymgr/common/timefmt.h"
#include "keymgr/core/readiness.h"

static const char *config_path;

void km_cli_set_config_path(const char *path)
{
	config_path = path;
}

const char *km_cli_config_located(void)
{
	static char path[PATH_MAX];
	if (km_config_locate(config_path, path, sizeof(path)) != KM_EOK)
		return NULL;
	return path;
}

/* Loads strictly, or partially (printing what is left out). Prints the error on failure. */
static int load(bool partial, km_config_t **ret)
{
	char path[PATH_MAX], err[1024] = "";
	int r = km_config_locate(config_path, path, sizeof(path));
	if (r != KM_EOK) {
		km_cli_error("cannot locate the configuration file: %s", km_strerror(r));
		return KM_CLI_EXIT_USAGE;
	}
	km_config_t *cfg = NULL;
	r = partial ? km_config_load_partial(path, &cfg, err, sizeof(err))
	            : km_config_load(path, &cfg, err, sizeof(err));
	if (r != KM_EOK) {
		km_cli_error("%s", err[0] ? err : km_strerror(r));
		return KM_CLI_EXIT_REFUSED;
	}
	km_cli_config_warn(cfg);
	*ret = cfg;
	return KM_CLI_EXIT_OK;
}

void km_cli_config_warn(const km_config_t *cfg)
{
	size_t n = km_config_error_count(cfg);
	if (n == 0)
		return;
	km_cli_error("warning: %s has %zu error%s; this command uses only what %s not touch "
	             "(keymgr(1), A BROKEN CONFIGURATION):", km_config_path(cfg), n,
	             n == 1 ? "" : "s", n == 1 ? "it does" : "they do");
	for (size_t i = 0; i < n; i++)
		km_cli_error("warning:   %s", km_config_error_at(cfg, i));
}

int km_cli_config_complete(const km_config_t *cfg, int rc)
{
	if (km_config_envs_complete(cfg))
		return rc;
	km_cli_error("incomplete: environments whose own configuration has errors were left out "
	             "(see the warnings above)");
	return rc == KM_CLI_EXIT_OK ? KM_CLI_EXIT_REFUSED : rc;
}

int km_cli_config_load(km_config_t **ret)
{
	return load(false, ret);
}

int km_cli_config_load_partial(km_config_t **ret)
{
	return load(true, ret);
}

/* Loads the configuration (strictly or partially) and opens environment name. */
static int env_open(bool partial, const char *name, km_config_t **cfg, km_env_t **env)
{
	char err[1024] = "";
	int rc = load(partial, cfg);
	if (rc != KM_CLI_EXIT_OK)
		return rc;
	int r = km_env_open(*cfg, name, env, err, sizeof(err));
	if (r != KM_EOK) {
		km_config_free(*cfg);
		*cfg = NULL;
		return km_cli_fail(r, err);
	}
	return KM_CLI_EXIT_OK;
}

int km_cli_env_open(const char *name, km_config_t **cfg, km_env_t **env)
{
	return env_open(false, name, cfg, env);
}

int km_cli_env_open_partial(const char *name, km_config_t **cfg, km_env_t **env)
{
	return env_open(true, name, cfg, env);
}

void km_cli_env_close(km_config_t *cfg, km_env_t *env)
{
	km_env_free(env);
	km_config_free(cfg);
}

int km_cli_fail(int r, const char *msg)
{
	km_cli_error("%s", msg != NULL && msg[0] ? msg : km_strerror(r));
	return r == KM_ENAME ? KM_CLI_EXIT_USAGE : KM_CLI_EXIT_REFUSED;
}

int64_t km_cli_now(void)
{
	return (int64_t)time(NULL);
}

const char *km_cli_iso8601(int64_t t, char *buf, size_t len)
{
	if (t == KM_STORE_TIME_NONE || km_time_rfc3339(t, buf, len)[0] == '\0')
		snprintf(buf, len, "-");
	return buf;
}

/* timegm() of tm, when tm names a real moment: timegm() would turn 2026-02-30 into March 2. */
static bool utc_of(struct tm *tm, int64_t *ret)
{
	struct tm want = *tm, back;
	time_t t = timegm(tm);
	if (gmtime_r(&t, &back) == NULL || back.tm_year != want.tm_year ||
	    back.tm_mon != want.tm_mon || back.tm_mday != want.tm_mday ||
	    back.tm_hour != want.tm_hour || back.tm_min != want.tm_min || back.tm_sec != want.tm_sec)
		return false;
	*ret = (int64_t)t;
	return true;
}

int km_cli_parse_time(const char *s, int64_t *ret)
{
	struct tm tm;
	char *end = NULL;
	if (s == NULL)
		return KM_EINVAL;
	if (strcmp(s, "now") == 0) {
		*ret = km_cli_now();
		return KM_EOK;
	}
	if (s[0] == '@') {
		long long v = strtoll(s + 1, &end, 10);
		if (end == s + 1 || *end != '\0' || v < 0)
			return KM_EINVAL;
		*ret = (int64_t)v;
		return KM_EOK;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end != NULL && (strcmp(end, "Z") == 0 || strcmp(end, "+00:00") == 0 || *end == '\0'))
		return utc_of(&tm, ret) ? KM_EOK : KM_EINVAL;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end != NULL && *end == '\0')
		return utc_of(&tm, ret) ? KM_EOK : KM_EINVAL;
	return KM_EINVAL;
}

json_t *km_cli_keyset_json(const km_store_keyset_t *ks)
{
	char t[32];
	json_t *labels = json_object();
	for (size_t i = 0; labels != NULL && i < ks->n_labels; i++) {
		const char *eq = strchr(ks->labels[i], '=');
		if (eq == NULL)
			continue;
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - ks->labels[i]), ks->labels[i]);
		json_object_set_new(labels, key, json_string(eq + 1));
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s}",
	                      "env", ks->env, "name", ks->name, "alg", km_alg_name(ks->alg),
	                      "owner", ks->owner, "purpose", ks->purpose,
	                      "description", ks->description, "labels", labels,
	                      "created_at", km_cli_iso8601(ks->created_at, t, sizeof(t)),
	                      "created_by", ks->created_by);
	if (j != NULL && ks->rsa_bits > 0)
		json_object_set_new(j, "rsa_bits", json_integer(ks->rsa_bits));
	return j;
}

json_t *km_cli_signing_gaps_json(unsigned gaps)
{
	json_t *a = json_array();
	for (unsigned g = KM_SIGN_GAP_ISSUER; a != NULL && g <= KM_SIGN_GAP_SIGNERS; g <<= 1)
		if (gaps & g)
			json_array_append_new(a, json_string(km_sign_gap_name((km_sign_gap_t)g)));
	return a;
}

/* Where a state comes in a key's life: revoked (from any state) comes before destroyed. */
static int life_rank(km_state_t s)
{
	return s == KM_STATE_REVOKED ? KM_STATE_REMOVED + 1 :
	       s == KM_STATE_DESTROYED ? KM_STATE_REMOVED + 2 : (int)s;
}

size_t km_cli_key_times(const km_store_key_t *k, km_state_t order[KM_STATE_COUNT])
{
	size_t n = 0;
	for (int s = 0; s < KM_STATE_COUNT; s++) {
		if (k->state_at[s] == KM_STORE_TIME_NONE)
			continue;
		/* Insertion by (time, place in the life): at most 7 entries. */
		size_t i = n++;
		for (; i > 0; i--) {
			km_state_t p = order[i - 1];
			if (k->state_at[p] < k->state_at[s] ||
			    (k->state_at[p] == k->state_at[s] && life_rank(p) < life_rank((km_state_t)s)))
				break;
			order[i] = p;
		}
		order[i] = (km_state_t)s;
	}
	return n;
}

void km_cli_cka_id_hex(const km_store_key_t *k, char hex[2 * KM_STORE_CKA_ID_MAX + 1])
{
	km_hex_encode(k->cka_id, k->cka_id_len, hex, 2 * KM_STORE_CKA_ID_MAX + 1);
}

json_t *km_cli_key_json(const km_store_key_t *k)
{
	char t[32], hex[2 * KM_STORE_CKA_ID_MAX + 1];
	km_state_t order[KM_STATE_COUNT];
	size_t n = km_cli_key_times(k, order);
	km_cli_cka_id_hex(k, hex);
	json_t *times = json_object();
	for (size_t i = 0; times != NULL && i < n; i++)
		json_object_set_new(times, km_state_name(order[i]),
		                    json_string(km_cli_iso8601(k->state_at[order[i]], t, sizeof(t))));
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:b}",
	                      "kid", k->kid, "keyset", k->keyset, "alg", km_alg_name(k->alg),
	                      "state", km_state_name(k->state), "owner", k->owner,
	                      "purpose", k->purpose, "token", "label", k->token_label,
	                      "serial", k->token_serial, "cka_id", hex, "times", times,
	                      "pending", k->pending);
	if (j != NULL && k->rsa_bits > 0)
		json_object_set_new(j, "rsa_bits", json_integer(k->rsa_bits));
	if (j != NULL && k->revoke_reason[0])
		json_object_set_new(j, "revoke_reason", json_string(k->revoke_reason));
	/* A requested rotation's successor: when it activates (the time `rotate` printed). */
	if (j != NULL && k->state == KM_STATE_PUBLISHED && k->activate_at != KM_STORE_TIME_NONE)
		json_object_set_new(j, "activates_at",
		                    json_string(km_cli_iso8601(k->activate_at, t, sizeof(t))));
	return j;
}
