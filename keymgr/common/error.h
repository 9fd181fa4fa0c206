/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error space for the whole project (after Knot DNS errcode.h and OpenSSH ssherr.h).
 *
 * KM_EOK is 0. errno values are kept negative (KM_ENOMEM = -ENOMEM). The project's own codes
 * follow from KM_ERROR_BASE downwards. Library code returns these codes; only main() prints.
 * CK_RV values are translated once, inside pkcs11/.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>

#define KM_ERROR_BASE (-1000)

enum km_error {
	KM_EOK = 0,

	KM_ENOMEM = -ENOMEM,
	KM_EINVAL = -EINVAL,
	KM_ENOENT = -ENOENT,
	KM_EEXIST = -EEXIST,
	KM_EACCES = -EACCES,
	KM_EIO = -EIO,
	KM_ERANGE = -ERANGE,
	KM_EBUSY = -EBUSY,
	KM_ENOSPC = -ENOSPC,
	KM_ETIMEDOUT = -ETIMEDOUT,
	KM_ENOTSUP = -ENOTSUP,

	KM_ERROR = KM_ERROR_BASE,       /* generic failure */
	KM_EALG,                        /* unknown or unsupported algorithm */
	KM_EKEYSIZE,                    /* key size not allowed */
	KM_EMALFORMED,                  /* malformed input (JSON, base64url, ...) */
	KM_ECRYPTO,                     /* OpenSSL failure */

	/* token layer (pkcs11/) */
	KM_P11_EMODULE = KM_ERROR_BASE - 100, /* module cannot be loaded */
	KM_P11_ENOTOKEN,                /* no token with that label/serial */
	KM_P11_EAMBIGUOUS,              /* more than one token matches */
	KM_P11_ELOGIN,                  /* login failed (wrong PIN) */
	KM_P11_EPINLOCKED,              /* PIN locked */
	KM_P11_EPINSOURCE,              /* pin source unusable */
	KM_P11_EPINPERM,                /* pin file readable by others */
	KM_P11_ENOKEY,                  /* key object not found */
	KM_P11_EMECHANISM,              /* mechanism not supported by token */
	KM_P11_EDEVICE,                 /* device error / removed */
	KM_P11_ESESSION,                /* session invalid / closed */
	KM_P11_ENOTLOGGEDIN,            /* user not logged in */
	KM_P11_EFAIL,                   /* any other CK_RV */
	KM_P11_EKEYREFUSED,             /* a new key failed its checks and was destroyed */

	/* store */
	KM_STORE_EOPEN = KM_ERROR_BASE - 200,
	KM_STORE_ESCHEMA,               /* schema version newer than this program */
	KM_STORE_EBUSY,                 /* database locked by another writer */
	KM_STORE_ECONSTRAINT,           /* uniqueness or foreign key violated */
	KM_STORE_EIO,                   /* other SQLite failure */
	KM_STORE_EFENCED,               /* this node no longer holds the leader lease */

	/* lifecycle / environment wall */
	KM_EWRONGENV = KM_ERROR_BASE - 300, /* object belongs to another environment */
	KM_ETRANSITION,                 /* illegal key state transition */
	KM_EACTIVE,                     /* key set already has an active key */
	KM_ENOACTIVE,                   /* key set has no active key */
	KM_ENAME,                       /* malformed env/key set name */
	KM_EOWNER,                      /* owner missing or not allowed */
	KM_EPURPOSE,                    /* purpose unknown or not allowed */

	/* config and policy */
	KM_CONFIG_EPARSE = KM_ERROR_BASE - 400,
	KM_CONFIG_EINVAL,
	KM_POLICY_EUNSAFE,              /* timing rule violated */
	KM_POLICY_EDENIED,              /* operation refused by policy */
	KM_CONFIG_EPERM,                /* config file writable or owned by someone else */
	KM_CONFIG_EBROKEN,              /* the part of the config an operation needs has errors */
};

/* Whether code is one of the token layer's codes (KM_P11_EMODULE .. KM_P11_EKEYREFUSED). */
static inline bool km_is_token_error(int code)
{
	return code >= KM_P11_EMODULE && code <= KM_P11_EKEYREFUSED;
}

/* Whether code is one of the store's codes (KM_STORE_EOPEN .. KM_STORE_EFENCED). */
static inline bool km_is_store_error(int code)
{
	return code >= KM_STORE_EOPEN && code <= KM_STORE_EFENCED;
}

/*
 * Returns a static, human-readable message for a code. Never NULL.
 */
const char *km_strerror(int code);
