/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "keymgr/common/error.h"

static const struct {
	int code;
	const char *msg;
} errors[] = {
	{ KM_EOK, "success" },
	{ KM_ENOMEM, "out of memory" },
	{ KM_EINVAL, "invalid argument" },
	{ KM_ENOENT, "not found" },
	{ KM_EEXIST, "already exists" },
	{ KM_EACCES, "permission denied" },
	{ KM_EIO, "input/output error" },
	{ KM_ERANGE, "value out of range" },
	{ KM_EBUSY, "resource busy" },
	{ KM_ENOSPC, "no space left on device" },
	{ KM_ETIMEDOUT, "timed out" },
	{ KM_ENOTSUP, "not supported" },

	{ KM_ERROR, "failed" },
	{ KM_EALG, "unknown or unsupported algorithm" },
	{ KM_EKEYSIZE, "key size not allowed" },
	{ KM_EMALFORMED, "malformed input" },
	{ KM_ECRYPTO, "cryptographic library failure" },

	{ KM_P11_EMODULE, "PKCS#11 module cannot be loaded" },
	{ KM_P11_ENOTOKEN, "no token with that label or serial" },
	{ KM_P11_EAMBIGUOUS, "more than one token matches" },
	{ KM_P11_ELOGIN, "token login failed: incorrect PIN" },
	{ KM_P11_EPINLOCKED, "token PIN is locked" },
	{ KM_P11_EPINSOURCE, "PIN source unusable" },
	{ KM_P11_EPINPERM, "PIN file is accessible by group or others (needs mode 0600 or stricter)" },
	{ KM_P11_ENOKEY, "key not found in token" },
	{ KM_P11_EMECHANISM, "mechanism not supported by token" },
	{ KM_P11_EDEVICE, "token device error or token removed" },
	{ KM_P11_ESESSION, "token session invalid" },
	{ KM_P11_ENOTLOGGEDIN, "not logged in to token" },
	{ KM_P11_EFAIL, "token operation failed" },
	{ KM_P11_EKEYREFUSED, "the token's new key failed keymgr's checks and was destroyed" },

	{ KM_STORE_EOPEN, "cannot open store" },
	{ KM_STORE_ESCHEMA, "store schema is newer than this program" },
	{ KM_STORE_EBUSY, "store is locked by another writer" },
	{ KM_STORE_ECONSTRAINT, "store constraint violated" },
	{ KM_STORE_EIO, "store failure" },
	{ KM_STORE_EFENCED, "this node no longer leads the environment (leader lease lost)" },

	{ KM_EWRONGENV, "object belongs to another environment" },
	{ KM_ETRANSITION, "illegal key state transition" },
	{ KM_EACTIVE, "key set already has an active key" },
	{ KM_ENOACTIVE, "key set has no active key" },
	{ KM_ENAME, "malformed name" },
	{ KM_EOWNER, "owner missing or not allowed" },
	{ KM_EPURPOSE, "purpose unknown or not allowed" },

	{ KM_CONFIG_EPARSE, "configuration cannot be parsed" },
	{ KM_CONFIG_EINVAL, "configuration is invalid" },
	{ KM_POLICY_EUNSAFE, "policy timing is unsafe" },
	{ KM_POLICY_EDENIED, "refused by policy" },
	{ KM_CONFIG_EPERM, "configuration file may be changed by someone else than its owner" },
	{ KM_CONFIG_EBROKEN, "the part of the configuration this needs has errors" },
};

const char *km_strerror(int code)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].code == code)
			return errors[i].msg;
	if (code < 0 && code > KM_ERROR_BASE)
		return strerror(-code);
	return "unknown error";
}
