/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "keymgr/core/readiness.h"

const char *km_sign_gap_name(km_sign_gap_t gap)
{
	switch (gap) {
	case KM_SIGN_GAP_ISSUER: return "issuer";
	case KM_SIGN_GAP_AUDIENCES: return "audiences";
	case KM_SIGN_GAP_SIGNERS: return "signers";
	}
	return "unknown";
}

unsigned km_keyset_signing_gaps(const km_env_t *env, const char *keyset, char *msg,
                                size_t len)
{
	const km_keyset_cfg_t *k = km_config_keyset(km_env_config(env), km_env_name(env), keyset);
	unsigned gaps = 0;
	if (k == NULL || k->issuer == NULL || k->issuer[0] == '\0')
		gaps |= KM_SIGN_GAP_ISSUER;
	if (k == NULL || k->n_audiences == 0)
		gaps |= KM_SIGN_GAP_AUDIENCES;
	if (k == NULL || k->n_signer_users + k->n_signer_groups == 0)
		gaps |= KM_SIGN_GAP_SIGNERS;
	if (msg == NULL || len == 0)
		return gaps;
	msg[0] = '\0';
	if (gaps == 0)
		return gaps;
	char keys[256] = "";
	size_t used = 0;
	for (unsigned g = KM_SIGN_GAP_ISSUER; g <= KM_SIGN_GAP_SIGNERS; g <<= 1)
		if (gaps & g)
			used += (size_t)snprintf(keys + used, used < sizeof(keys) ? sizeof(keys) - used : 0,
			                         "%s%s", used ? ", " : "", km_sign_gap_name(g));
	const char *what = gaps & (KM_SIGN_GAP_ISSUER | KM_SIGN_GAP_AUDIENCES)
	                   ? "it signs nothing (the claims policy needs an issuer and audiences)"
	                   : "nobody may sign with it through keymgrd (`keymgr sign` with the "
	                     "environment's PIN still can)";
	snprintf(msg, len, "key set %s/%s cannot sign: %s; set %s under environments.%s.keysets.%s "
	         "in the configuration%s", km_env_name(env), keyset, what, keys, km_env_name(env),
	         keyset, k == NULL ? " (the key set has no entry there)" : "");
	return gaps;
}
