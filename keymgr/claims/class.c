/* SPDX-License-Identifier: Apache-2.0 */
/* Token classes: typ per purpose, claims reserved to some classes, required claims. */
#include <stdio.h>
#include <string.h>

#include "keymgr/claims/claims_int.h"
#include "keymgr/common/error.h"

static const struct {
	const char *purpose;
	const char *typ;
	unsigned cls;
} classes[] = {
	{ "access-token", "at+jwt", CLAIMS_ACCESS },                /* RFC 9068 section 2.1 */
	{ "id-token", "JWT", CLAIMS_ID },                           /* OIDC Core defines none */
	{ "logout-token", "logout+jwt", CLAIMS_LOGOUT },            /* OIDC BCL section 2.4 */
	{ "security-event-token", "secevent+jwt", CLAIMS_SET },     /* RFC 8417 section 2.3 */
	{ "refresh-token", "rt+jwt", CLAIMS_REFRESH },              /* keymgr's own */
	{ KM_CLAIMS_SA_PURPOSE, "JWT", CLAIMS_SA },                 /* what kube-apiserver wants */
};

/* Claims that belong to some classes only; every other class is refused them. */
static const struct {
	const char *claim;
	unsigned allowed;
	const char *allowed_text;
} reserved[] = {
	{ "events", CLAIMS_SET | CLAIMS_LOGOUT, "security-event-token and logout-token" },
	{ "toe", CLAIMS_SET, "security-event-token" },
	{ "nonce", CLAIMS_ID, "id-token" },
	{ "at_hash", CLAIMS_ID, "id-token" },
	{ "c_hash", CLAIMS_ID, "id-token" },
	{ "s_hash", CLAIMS_ID, "id-token" },
	{ "azp", CLAIMS_ID, "id-token" },
	{ "auth_time", CLAIMS_ID | CLAIMS_ACCESS, "id-token and access-token" },
	{ "acr", CLAIMS_ID | CLAIMS_ACCESS, "id-token and access-token" },
	{ "amr", CLAIMS_ID | CLAIMS_ACCESS, "id-token and access-token" },
	{ "sid", CLAIMS_ID | CLAIMS_LOGOUT, "id-token and logout-token" },
};

/*
 * Payload claims that name a token class: keymgr states the class in the header's typ, set
 * from the key set's purpose. Relying parties that read the class from the payload instead
 * (Keycloak's "typ", Amazon Cognito's "token_use") would take a token signed for one class
 * for another, e.g. an access token carrying "typ": "logout+jwt" for a logout token; no
 * class may carry them.
 */
static const char *const class_naming[] = { "typ", "token_use" };

const char *km_claims_typ(const char *purpose, char typ[KM_CLAIMS_TYP_MAX + 1])
{
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (strcmp(classes[i].purpose, purpose) == 0) {
			snprintf(typ, KM_CLAIMS_TYP_MAX + 1, "%s", classes[i].typ);
			return typ;
		}
	}
	/* RFC 8725 section 3.11: an explicit type per kind of token, here PURPOSE+jwt. */
	snprintf(typ, KM_CLAIMS_TYP_MAX + 1, "%.*s+jwt", KM_PURPOSE_MAX, purpose);
	return typ;
}

unsigned km_claims_class_of(const char *purpose)
{
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcmp(classes[i].purpose, purpose) == 0)
			return classes[i].cls;
	return CLAIMS_CUSTOM;
}

/* A required claim that must be a non-empty string. */
static int need_string(const km_claims_policy_t *pol, const json_t *claims, const char *name,
                       const char *rule, char *err, size_t errlen)
{
	const json_t *v = json_object_get(claims, name);
	if (json_is_string(v) && json_string_length(v) > 0)
		return KM_EOK;
	snprintf(err, errlen, "claim '%s' is required in %s tokens (%s): a non-empty string",
	         name, pol->purpose, rule);
	return KM_POLICY_EDENIED;
}

/* events must be a non-empty object whose members are objects (RFC 8417 section 2.2). */
static int check_events(const json_t *events, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	if (!json_is_object(events) || json_object_size(events) == 0) {
		snprintf(err, errlen, "claim 'events' must be a non-empty JSON object of events");
		return KM_POLICY_EDENIED;
	}
	json_object_foreach((json_t *)events, k, v) {
		if (!json_is_object(v)) {
			snprintf(err, errlen, "claim 'events': the value of event '%.200s' must be "
			         "a JSON object", k);
			return KM_POLICY_EDENIED;
		}
	}
	return KM_EOK;
}

static int check_logout(const json_t *claims, char *err, size_t errlen)
{
	const json_t *events = json_object_get(claims, "events");
	int r;
	if (json_object_get(claims, "nonce") != NULL) {
		snprintf(err, errlen, "claim 'nonce' is forbidden in logout tokens "
		         "(OIDC Back-Channel Logout 1.0 section 2.4)");
		return KM_POLICY_EDENIED;
	}
	if (events == NULL) {
		snprintf(err, errlen, "claim 'events' is required in logout tokens: "
		         "{\"" KM_CLAIMS_BCL_EVENT "\":{}} (OIDC Back-Channel Logout 1.0 "
		         "section 2.4)");
		return KM_POLICY_EDENIED;
	}
	if ((r = check_events(events, err, errlen)) != KM_EOK)
		return r;
	if (!json_is_object(json_object_get(events, KM_CLAIMS_BCL_EVENT))) {
		snprintf(err, errlen, "claim 'events' of a logout token must contain the event '"
		         KM_CLAIMS_BCL_EVENT "' (OIDC Back-Channel Logout 1.0 section 2.4)");
		return KM_POLICY_EDENIED;
	}
	const json_t *sub = json_object_get(claims, "sub"), *sid = json_object_get(claims, "sid");
	if (sub == NULL && sid == NULL) {
		snprintf(err, errlen, "a logout token must carry 'sub' or 'sid' or both "
		         "(OIDC Back-Channel Logout 1.0 section 2.4)");
		return KM_POLICY_EDENIED;
	}
	if ((sid != NULL && !json_is_string(sid)) || (sub != NULL && !json_is_string(sub))) {
		snprintf(err, errlen, "claims 'sub' and 'sid' of a logout token must be strings");
		return KM_POLICY_EDENIED;
	}
	return KM_EOK;
}

static int check_set(const json_t *claims, char *err, size_t errlen)
{
	const json_t *events = json_object_get(claims, "events");
	int r;
	if (events == NULL) {
		snprintf(err, errlen, "claim 'events' is required in security event tokens "
		         "(RFC 8417 section 2.2)");
		return KM_POLICY_EDENIED;
	}
	if ((r = check_events(events, err, errlen)) != KM_EOK)
		return r;
	/* A SET carrying the logout event could be replayed to a logout endpoint that does not
	 * check typ: logout tokens come from logout-token key sets only. */
	if (json_object_get(events, KM_CLAIMS_BCL_EVENT) != NULL) {
		snprintf(err, errlen, "event '" KM_CLAIMS_BCL_EVENT "' belongs in a logout-token "
		         "key set, not a security-event-token one");
		return KM_POLICY_EDENIED;
	}
	return KM_EOK;
}

int km_claims_check_class(const km_claims_policy_t *pol, const json_t *claims, char *err,
                          size_t errlen)
{
	unsigned cls = km_claims_class_of(pol->purpose);
	char typ[KM_CLAIMS_TYP_MAX + 1];
	int r;

	if (cls == CLAIMS_LOGOUT && (r = check_logout(claims, err, errlen)) != KM_EOK)
		return r;
	for (size_t i = 0; i < sizeof(class_naming) / sizeof(class_naming[0]); i++) {
		if (json_object_get(claims, class_naming[i]) == NULL)
			continue;
		snprintf(err, errlen, "claim '%s' names a token class and is never signed in the "
		         "payload: keymgr states the class in the header (typ %s for key set %s/%s, "
		         "purpose %s), and relying parties that read it from the payload could take "
		         "this token for another class", class_naming[i],
		         km_claims_typ(pol->purpose, typ), pol->env, pol->keyset, pol->purpose);
		return KM_POLICY_EDENIED;
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		if ((reserved[i].allowed & cls) || json_object_get(claims, reserved[i].claim) == NULL)
			continue;
		snprintf(err, errlen, "claim '%s' is reserved for %s tokens; key set %s/%s signs "
		         "%s tokens (typ %s)", reserved[i].claim, reserved[i].allowed_text,
		         pol->env, pol->keyset, pol->purpose, km_claims_typ(pol->purpose, typ));
		return KM_POLICY_EDENIED;
	}
	switch (cls) {
	case CLAIMS_ACCESS:
		/* RFC 9068 section 2.2: sub and client_id are REQUIRED. */
		if ((r = need_string(pol, claims, "sub", "RFC 9068 section 2.2", err, errlen)) < 0 ||
		    (r = need_string(pol, claims, "client_id", "RFC 9068 section 2.2", err,
		                     errlen)) < 0)
			return r;
		break;
	case CLAIMS_ID:
		if ((r = need_string(pol, claims, "sub", "OIDC Core section 2", err, errlen)) < 0)
			return r;
		break;
	case CLAIMS_SET:
		return check_set(claims, err, errlen);
	default:
		break;
	}
	return KM_EOK;
}
