/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The probe section of the main file (keymgr probe, docs/probe.md):
 *
 *   probe:
 *     environments: [ staging, development ]     # whose key sets may sign probe tokens
 *     allowed_hosts: [ api.staging.example.com ] # besides loopback
 *
 * Probe tokens are real credentials signed by the probed key set's key, so the environments
 * are named one by one: no wildcard, and production only when it is written here. A name
 * that is not an environment of the file is an error, not a no-op (a typo would otherwise
 * leave the section silently useless or, worse, look like it names something it does not).
 */
#include <arpa/inet.h>
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/config/config_int.h"

/* A DNS name: dot-separated labels of [a-z0-9-] (1..63, no '-' at either end), at most
 * KM_CONFIG_PROBE_HOST_MAX characters; upper case is lowered into out. */
static bool dns_name(const char *s, char out[KM_CONFIG_PROBE_HOST_MAX + 1])
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > KM_CONFIG_PROBE_HOST_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || out[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		           (c == '-' && label > 0)) {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
			label++;
		} else {
			return false;
		}
		out[i] = c;
	}
	return true;
}

static bool ip_literal(const char *s)
{
	unsigned char addr[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* One item of a list: a scalar that valid() accepts, copied (as normalised) into the pool. */
static int item(km_config_t *cfg, struct fy_node *n, cfg_loc_t at, const char *what,
                bool host, const char **ret, cfg_err_t *e)
{
	char norm[KM_CONFIG_PROBE_HOST_MAX + 1] = "";
	const char *s = NULL;
	int r = cfg_yaml_scalar(n, at, what, &s, e);
	if (r != KM_EOK)
		return r;
	at = cfg_yaml_loc(n, at);
	if (host ? !(ip_literal(s) ? snprintf(norm, sizeof(norm), "%s", s) > 0 : dns_name(s, norm))
	         : !km_name_env_valid(s)) {
		cfg_errorf(e, at, "%s: '%.64s%s' is not %s", what, s, strlen(s) > 64 ? "..." : "",
		           host ? "a host name or an IP address literal (no scheme, port or "
		                  "wildcard)" : "a valid environment name");
		return KM_CONFIG_EINVAL;
	}
	if ((*ret = cfg_strdup(cfg, host ? norm : s)) == NULL) {
		cfg_errorf(e, at, "out of memory");
		return KM_ENOMEM;
	}
	return KM_EOK;
}

static bool listed(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* probe.environments or probe.allowed_hosts: a sequence without repeats. */
static int parse_list(km_config_t *cfg, struct fy_node *seq, cfg_loc_t at, const char *what,
                      bool host, const char **out, size_t max, size_t *n, cfg_err_t *e)
{
	int r = cfg_yaml_expect_seq(seq, at, what, e);
	void *it = NULL;
	struct fy_node *n_item;
	while (r == KM_EOK && (n_item = fy_node_sequence_iterate(seq, &it)) != NULL) {
		cfg_loc_t iat = cfg_yaml_loc(n_item, at);
		const char *s = NULL;
		if (*n == max) {
			cfg_errorf(e, iat, "%s: more than %zu entries", what, max);
			return KM_CONFIG_EINVAL;
		}
		if ((r = item(cfg, n_item, at, what, host, &s, e)) != KM_EOK)
			return r;
		if (listed(out, *n, s)) {
			cfg_errorf(e, iat, "%s: '%s' is listed twice", what, s);
			return KM_CONFIG_EINVAL;
		}
		if (!host && cfg_env_find(cfg, s) == NULL) {
			char known[256];
			cfg_errorf(e, iat, "%s: unknown environment '%s' (known: %s)", what, s,
			           km_config_env_names(cfg, known, sizeof(known)));
			return KM_CONFIG_EINVAL;
		}
		out[(*n)++] = s;
	}
	return r;
}

int cfg_probe_parse(km_config_t *cfg, struct fy_node *map, cfg_loc_t at, cfg_err_t *e)
{
	km_probe_cfg_t *p = &cfg->probe;
	int r = cfg_yaml_expect_map(map, at, "probe", e);
	if (r != KM_EOK)
		return r;
	void *it = NULL;
	const char *key;
	cfg_loc_t kat;
	struct fy_node *val;
	while ((r = cfg_yaml_next_pair(map, &it, at, &key, &kat, &val, e)) == 1) {
		if (strcmp(key, "environments") == 0)
			r = parse_list(cfg, val, kat, "probe.environments", false, p->environments,
			               KM_CONFIG_MAX_ENVS, &p->n_environments, e);
		else if (strcmp(key, "allowed_hosts") == 0)
			r = parse_list(cfg, val, kat, "probe.allowed_hosts", true, p->allowed_hosts,
			               KM_CONFIG_MAX_PROBE_HOSTS, &p->n_allowed_hosts, e);
		else
			r = cfg_yaml_unknown_key(e, kat, key, "probe", "environments, allowed_hosts");
		if (r != KM_EOK)
			return r;
	}
	return r < 0 ? r : KM_EOK;
}

const km_probe_cfg_t *km_config_probe(const km_config_t *cfg)
{
	return &cfg->probe;
}

bool km_config_probe_env(const km_config_t *cfg, const char *env)
{
	return cfg != NULL && env != NULL &&
	       listed(cfg->probe.environments, cfg->probe.n_environments, env);
}
