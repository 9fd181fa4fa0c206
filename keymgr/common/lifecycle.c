/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/lifecycle.h"

static const char *const names[KM_STATE_COUNT] = {
	[KM_STATE_GENERATED] = "generated",
	[KM_STATE_PUBLISHED] = "published",
	[KM_STATE_ACTIVE] = "active",
	[KM_STATE_RETIRED] = "retired",
	[KM_STATE_REMOVED] = "removed",
	[KM_STATE_DESTROYED] = "destroyed",
	[KM_STATE_REVOKED] = "revoked",
};

#define T(s) (1u << (s))
static const unsigned next[KM_STATE_COUNT] = {
	[KM_STATE_GENERATED] = T(KM_STATE_PUBLISHED) | T(KM_STATE_REVOKED),
	[KM_STATE_PUBLISHED] = T(KM_STATE_ACTIVE) | T(KM_STATE_REMOVED) | T(KM_STATE_REVOKED),
	[KM_STATE_ACTIVE] = T(KM_STATE_RETIRED) | T(KM_STATE_REVOKED),
	[KM_STATE_RETIRED] = T(KM_STATE_REMOVED) | T(KM_STATE_REVOKED),
	[KM_STATE_REMOVED] = T(KM_STATE_DESTROYED) | T(KM_STATE_REVOKED),
	[KM_STATE_DESTROYED] = 0,
	[KM_STATE_REVOKED] = T(KM_STATE_DESTROYED),
};
#undef T

const char *km_state_name(km_state_t s)
{
	if ((unsigned)s >= KM_STATE_COUNT)
		return "unknown";
	return names[s];
}

int km_state_from_name(const char *name, km_state_t *ret)
{
	for (unsigned i = 0; name != NULL && i < KM_STATE_COUNT; i++) {
		if (strcmp(names[i], name) == 0) {
			*ret = (km_state_t)i;
			return KM_EOK;
		}
	}
	return KM_EINVAL;
}

bool km_state_transition_ok(km_state_t from, km_state_t to)
{
	if ((unsigned)from >= KM_STATE_COUNT || (unsigned)to >= KM_STATE_COUNT)
		return false;
	return (next[from] & (1u << to)) != 0;
}

int km_state_check_transition(km_state_t from, km_state_t to, char *msg, unsigned msg_len)
{
	if (km_state_transition_ok(from, to))
		return KM_EOK;
	if (msg != NULL && msg_len > 0) {
		char allowed[128] = "";
		size_t used = 0;
		for (unsigned i = 0; (unsigned)from < KM_STATE_COUNT && i < KM_STATE_COUNT; i++) {
			if (next[from] & (1u << i)) {
				int n = snprintf(allowed + used, sizeof(allowed) - used, "%s%s",
				                 used ? ", " : "", names[i]);
				if (n > 0 && (size_t)n < sizeof(allowed) - used)
					used += (size_t)n;
			}
		}
		const char *from_name = km_state_name(from);
		snprintf(msg, msg_len, "%s %s key cannot become %s (allowed from %s: %s)",
		         strchr("aeiou", from_name[0]) != NULL ? "an" : "a", from_name,
		         km_state_name(to), from_name,
		         used ? allowed : "none");
	}
	return KM_ETRANSITION;
}

bool km_state_in_jwks(km_state_t s)
{
	return s == KM_STATE_PUBLISHED || s == KM_STATE_ACTIVE || s == KM_STATE_RETIRED;
}

bool km_state_in_token(km_state_t s)
{
	return (unsigned)s < KM_STATE_COUNT && s != KM_STATE_DESTROYED;
}
