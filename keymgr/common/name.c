/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool km_name_is_slug(const char *s, size_t max)
{
	if (s == NULL || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	size_t len = strlen(s);
	if (len > max || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (is_lower_alnum(s[i]))
			continue;
		if (s[i] == '-' && s[i + 1] != '-')
			continue;
		return false;
	}
	return true;
}

bool km_name_env_valid(const char *s)
{
	return km_name_is_slug(s, KM_ENV_NAME_MAX);
}

bool km_name_keyset_valid(const char *s)
{
	return km_name_is_slug(s, KM_KEYSET_NAME_MAX);
}

const char *km_name_echo(const char *in, size_t max, char *out, size_t outlen)
{
	size_t i = 0;
	for (; in[i] != '\0' && i < max && i + 1 < outlen; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[i] = '\0';
	return out;
}

int km_name_split(const char *ref_in, bool allow_env_only, char env_out[KM_ENV_NAME_MAX + 1],
                  char name_out[KM_KEYSET_NAME_MAX + 1], char *err, size_t errlen)
{
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1], ref[81];
	if (ref_in == NULL || *ref_in == '\0') {
		snprintf(err, errlen, "empty name: expected ENV/NAME");
		return KM_ENAME;
	}
	km_name_echo(ref_in, 80, ref, sizeof(ref));
	const char *slash = strchr(ref_in, '/');
	size_t env_len = slash ? (size_t)(slash - ref_in) : strlen(ref_in);
	if (env_len == 0 || env_len > KM_ENV_NAME_MAX) {
		snprintf(err, errlen, "invalid environment in '%.80s': expected a lowercase slug "
		         "of 1 to %d characters", ref, KM_ENV_NAME_MAX);
		return KM_ENAME;
	}
	memcpy(env, ref_in, env_len);
	env[env_len] = '\0';
	if (!km_name_env_valid(env)) {
		snprintf(err, errlen, "invalid environment name in '%.80s': use lowercase letters, "
		         "digits and single '-', starting with a letter", ref);
		return KM_ENAME;
	}
	if (slash == NULL) {
		if (!allow_env_only) {
			snprintf(err, errlen, "'%.80s' names no key set: expected ENV/NAME", ref);
			return KM_ENAME;
		}
		name[0] = '\0';
	} else {
		const char *n = slash + 1;
		if (strchr(n, '/') != NULL) {
			snprintf(err, errlen, "invalid key set reference '%.80s': exactly one '/' "
			         "separates ENV and NAME", ref);
			return KM_ENAME;
		}
		if (strlen(n) > KM_KEYSET_NAME_MAX || !km_name_keyset_valid(n)) {
			snprintf(err, errlen, "invalid key set name in '%.80s': use 1 to %d lowercase "
			         "letters, digits and single '-', starting with a letter",
			         ref, KM_KEYSET_NAME_MAX);
			return KM_ENAME;
		}
		strcpy(name, n);
	}
	strcpy(env_out, env);
	strcpy(name_out, name);
	return KM_EOK;
}

bool km_name_owner_valid(const char *s)
{
	if (s == NULL || s[0] == '\0' || strlen(s) > KM_OWNER_MAX)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	      (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("._@+:-", c) != NULL)
			continue;
		return false;
	}
	return true;
}

static const char *const builtin_purposes[] = {
	"access-token", "id-token", "refresh-token", "logout-token", "security-event-token",
	KM_PURPOSE_SERVICE_ACCOUNT,
};

bool km_purpose_is_service_account(const char *purpose)
{
	return purpose != NULL && strcmp(purpose, KM_PURPOSE_SERVICE_ACCOUNT) == 0;
}

bool km_purpose_is_builtin(const char *s)
{
	for (size_t i = 0; s && i < sizeof(builtin_purposes) / sizeof(builtin_purposes[0]); i++)
		if (strcmp(s, builtin_purposes[i]) == 0)
			return true;
	return false;
}

const char *km_purpose_builtin_list(void)
{
	return "access-token, id-token, refresh-token, logout-token, security-event-token, "
	       "service-account-token";
}

bool km_name_purpose_valid(const char *s)
{
	return km_purpose_is_builtin(s) || km_name_is_slug(s, KM_PURPOSE_MAX);
}

bool km_name_label_valid(const char *kv)
{
	if (kv == NULL)
		return false;
	const char *eq = strchr(kv, '=');
	if (eq == NULL || eq == kv || eq - kv > 63 || strlen(eq + 1) > 255)
		return false;
	for (const char *p = kv; p < eq; p++)
		if (!(is_lower_alnum(*p) || strchr("._/-", *p) != NULL))
			return false;
	for (const char *p = eq + 1; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return false;
	return true;
}

bool km_name_kid_valid(const char *s)
{
	if (s == NULL || s[0] == '\0' || strlen(s) > KM_KID_MAX)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}
