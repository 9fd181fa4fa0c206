/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token layer: the only code in keymgr that speaks Cryptoki.
 *
 * A km_token_t is one logged-in token of one PKCS#11 module, with a pool of long-lived
 * sessions for signing and a cache of object handles so signing never searches. Generation
 * and destruction are serialized (SoftHSM 2.6.1 fails under concurrent generation).
 * km_token_sign() may be called from several threads at once.
 *
 * Key identity (see docs/token-layer.md): every key pair keymgr creates carries
 *   CKA_ID    = "KMGR" (4 bytes) || 16 random bytes            (KM_TOKEN_ID_LEN = 20)
 *   CKA_LABEL = the caller's label, conventionally "keymgr:ENV/KEYSET"
 * on both the private and the public object. The CKA_ID is stored in the key's record and is
 * how the store finds the token objects again; the magic prefix lets reconciliation tell
 * keymgr's objects from foreign ones.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keymgr/common/alg.h"
#include "keymgr/common/pubkey.h"

#define KM_TOKEN_ID_MAGIC "KMGR"
#define KM_TOKEN_ID_MAGIC_LEN 4
#define KM_TOKEN_ID_LEN 20
#define KM_TOKEN_ID_MAX 64     /* longest CKA_ID km_token_list_keys() reports (foreign keys) */
#define KM_TOKEN_LABEL_MAX 32  /* CK_TOKEN_INFO label width */
#define KM_TOKEN_SERIAL_MAX 16

typedef struct km_token km_token_t;

/* The kinds of PIN source (km_token_cfg_t.pin_source). */
typedef enum { KM_PIN_FROM_FILE = 1, KM_PIN_FROM_ENV, KM_PIN_FROM_PROMPT } km_pin_kind_t;

/*
 * What a PIN was read from, for a PIN gate: never the PIN, nor anything computed from it.
 * For a file: source, the identity of the file the PIN was read from, as fstat(2) gave it on
 * the descriptor that was read (device, inode, modification time, size): any change to the
 * file makes a new identity. An env: source has no identity beyond its name (its value could
 * only be told apart by the value itself), and a prompt is a new PIN every time.
 */
typedef struct {
	const char *source;        /* as configured: "file:PATH", "env:NAME", "prompt" */
	km_pin_kind_t kind;
	uint64_t dev, ino;         /* file: only, like the three below */
	int64_t mtime_sec, mtime_nsec;
	int64_t size;
} km_pin_id_t;

/*
 * A PIN gate: asked before every user C_Login (at km_token_open and when lost sessions are
 * re-opened), and told what each one answered, so that a PIN the token refused is not
 * presented again (keymgr/core/pin_refusal.c remembers refusals next to the store). The
 * callbacks may run on any thread; ctx must outlive every token opened with the gate.
 */
typedef struct {
	/* KM_EOK: go on with C_Login. Any other code (KM_P11_ELOGIN: this PIN was refused
	 * before) is returned by the login without calling C_Login, with msg as its message. */
	int (*check)(void *ctx, const km_pin_id_t *id, char *msg, size_t len);
	/* What C_Login answered for the PIN from id: KM_EOK, or its code (KM_P11_ELOGIN for a
	 * PIN the token refused) with rv_name the CK_RV's name. Not called when the token said
	 * CKR_USER_ALREADY_LOGGED_IN (the PIN was not checked). */
	void (*outcome)(void *ctx, const km_pin_id_t *id, int code, const char *rv_name);
	void *ctx;
} km_pin_gate_t;

typedef struct {
	const char *module_path;   /* required: path of the PKCS#11 module */
	const char *token_label;   /* label, or NULL when token_serial is given */
	const char *token_serial;  /* serial, or NULL */
	/*
	 * Where the user PIN comes from:
	 *   "file:PATH"  a file, mode 0600 or stricter, owned by the caller; the first line is the PIN
	 *   "env:NAME"   an environment variable, read with secure_getenv()
	 *   "prompt"     asked on the controlling terminal without echo
	 * NULL opens the token without logging in (enough for reading token info only).
	 */
	const char *pin_source;
	unsigned sessions;         /* signing session pool size; 0 = default (4) */
	/* Seconds a signing session may idle before keymgrd keeps it warm (km_token_keepalive,
	 * called by keymgrd's pass; the token layer itself does not read it); 0: never. The
	 * configuration's default is KM_CONFIG_DEFAULT_KEEPALIVE. */
	unsigned keepalive;
	/*
	 * A string passed as pReserved of CK_C_INITIALIZE_ARGS in C_Initialize, or NULL. NSS
	 * softoken needs its database there ("configdir='sql:DIR' certPrefix='' ..."). A module
	 * is initialised once per process: a second token of the same module with other
	 * init_args is refused (KM_P11_EMODULE).
	 */
	const char *init_args;
	/* Asked before each user login, told its outcome (copied; NULL: every login tries).
	 * With a gate, a re-login the token refuses is retried with the usual backoff: the gate
	 * decides whether the PIN is presented again. Without one, never by itself. */
	const km_pin_gate_t *pin_gate;
} km_token_cfg_t;

typedef struct {
	char label[KM_TOKEN_LABEL_MAX + 1];      /* trailing spaces removed */
	char serial[KM_TOKEN_SERIAL_MAX + 1];
	char manufacturer[33];
	char model[17];
	unsigned long slot_id;                  /* informational only; never used to find a token */
} km_token_info_t;

/* A key pair known to the token, as km_token_list_keys() reports it. */
typedef struct {
	uint8_t id[KM_TOKEN_ID_MAX];
	size_t id_len;                          /* foreign keys may have other lengths (<= 64) */
	char label[129];
	bool has_private;
	bool has_public;
	bool keymgr_id;                         /* CKA_ID carries keymgr's magic prefix */
	km_kty_t kty;
} km_token_key_info_t;

/*
 * Loads the module, initialises it (CKF_OS_LOCKING_OK; an already-initialised module is
 * accepted), finds exactly one token by label or serial, and logs in as user with the PIN
 * from cfg->pin_source, unless cfg->pin_gate refuses it (then no C_Login is made and the
 * gate's code is returned, KM_P11_ELOGIN for a PIN refused before). The PIN is wiped right
 * after C_Login.
 * On failure, if errbuf is given, writes a message naming the module/token and the operation
 * (never the PIN). Returns KM_EOK, KM_P11_EMODULE, KM_P11_ENOTOKEN, KM_P11_EAMBIGUOUS,
 * KM_P11_ELOGIN, KM_P11_EPINLOCKED, KM_P11_EPINSOURCE, KM_P11_EPINPERM, ...
 * *ret is set only on success and must be freed with km_token_free().
 */
int km_token_open(const km_token_cfg_t *cfg, km_token_t **ret, char *errbuf, size_t errlen);

/* Logs out, closes sessions, finalizes the module if this process initialised it. NULL ok. */
void km_token_free(km_token_t *t);

/*
 * The message of the last failure on this token (generate, sign, destroy, list, ...): it
 * names the token and the operation, never a PIN. The string is a copy private to the
 * calling thread, valid until that thread calls this function again. "" when none.
 */
const char *km_token_last_error(const km_token_t *t);

/* The state of a token's sessions (see docs/token-layer.md, "Lost sessions"). */
typedef struct {
	bool lost;                     /* sessions or login lost; re-opened by a later call */
	unsigned long recoveries;      /* successful re-opens since km_token_open() */
	unsigned long failed_attempts; /* re-opens that failed (token gone, PIN refused, ...) */
	unsigned retry_in_ms;          /* while lost: wait before the next attempt (0: next call) */
	unsigned sessions;             /* signing sessions open now */
	unsigned sessions_wanted;      /* the pool's size (km_token_cfg_t.sessions): fewer are
	                                * open while the token answers CKR_SESSION_COUNT */
} km_token_health_t;

/*
 * Re-opens the token's sessions and logs in again now if they were lost, without waiting for
 * the backoff (every operation does this by itself first, within the backoff; without a PIN
 * gate, a refused PIN is only tried again through this call; with one, the gate decides).
 * KM_EOK when the token is usable; otherwise the code of the loss or of the failed re-open,
 * message in km_token_last_error().
 */
int km_token_recover(km_token_t *t);

/*
 * A cheap health check that reaches the token (C_GetTokenInfo, C_GetSessionInfo; no object
 * search): re-opens lost sessions when due, and notices a lost session or login. A signing
 * pool that opened fewer sessions than wanted (the token answered CKR_SESSION_COUNT) grows
 * back by one session per check while the token allows it. KM_EOK, or the token's error
 * (message in km_token_last_error()).
 */
int km_token_check(km_token_t *t);

/*
 * Keeps the signing sessions warm where a token closes idle ones (some network HSMs close a
 * session idle for a few minutes): each free pool session that nobody used for idle_ms or
 * longer gets a C_GetSessionInfo. One the token closed already is noticed like any lost
 * session (re-opened by the next call). Nothing is done while the sessions are lost.
 * Writes the number of sessions asked into *ret_kept (may be NULL). KM_EOK, or the code of
 * the failed call (message in km_token_last_error()).
 */
int km_token_keepalive(km_token_t *t, unsigned idle_ms, unsigned *ret_kept);

/* Copies the state of the token's sessions into *ret. */
void km_token_get_health(km_token_t *t, km_token_health_t *ret);

/* Copies the token's identity. */
void km_token_get_info(const km_token_t *t, km_token_info_t *ret);

/* What the token can do for one JOSE algorithm (km_token_get_caps). */
typedef struct {
	km_alg_t alg;
	bool supported;
	/* how keymgr signs: "CKM_SHA256_RSA_PKCS", or "CKM_RSA_PKCS + DigestInfo (SHA-256 in
	 * software)", ...; "" when not supported */
	char via[80];
	/* when not supported: the missing mechanism or the reason ("no CKM_EDDSA") */
	char why[160];
	unsigned min_bits, max_bits;   /* RSA key sizes the generator accepts (0: not reported) */
} km_token_alg_caps_t;

/* One mechanism of the token's list that keymgr cares about. */
typedef struct {
	char name[40];                 /* "CKM_ECDSA", or "CKM_0x..." */
	unsigned long min_size, max_size;
	bool sign, generate_key_pair;
} km_token_mech_t;

#define KM_TOKEN_MECHS_MAX 24

/*
 * What the token reported (C_GetMechanismList / C_GetMechanismInfo, probed once when the
 * token is opened) with what the quirk table (pkcs11/quirks.c) knows about the module.
 */
typedef struct {
	bool probed;                   /* false: the module gave no mechanism list */
	char library[80];              /* CK_INFO manufacturerID and libraryDescription */
	char quirk[32];                /* name of the quirk table entry, "" when none */
	/*
	 * A recorded exception: a property the token cannot give its keys although keymgr asks
	 * for it ("CKA_DECRYPT is always TRUE"), "" when none. keymgr never asks such a key to do
	 * anything but sign; token info, keyset show and policy check name it as a warning, and
	 * the audit record of each key generated on the token carries it.
	 */
	char exception[160];
	km_token_alg_caps_t algs[KM_ALG_COUNT];   /* indexed by alg - 1 */
	km_token_mech_t mechs[KM_TOKEN_MECHS_MAX];
	size_t n_mechs;
} km_token_caps_t;

/* Copies the token's capabilities (see above) into *ret. */
void km_token_get_caps(const km_token_t *t, km_token_caps_t *ret);

/*
 * KM_EOK when the token can generate and sign with alg (and rsa_bits for RS/PS). Otherwise
 * writes "the PKCS#11 module M (token 'L') cannot do ALG: no CKM_X; it can do: ..." into
 * err and returns KM_P11_EMECHANISM.
 */
int km_token_alg_check(const km_token_t *t, km_alg_t alg, unsigned rsa_bits, char *err,
                       size_t errlen);

/*
 * Generates a key pair for alg inside the token. rsa_bits is used for RS and PS algorithms
 * (2048, 3072 or 4096; others give KM_EKEYSIZE) and ignored otherwise.
 * The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, !CKA_EXTRACTABLE, CKA_SIGN only,
 * with !CKA_COPYABLE and CKA_ALLOWED_MECHANISMS limited to alg's mechanism where the token
 * accepts them (the template ladder of keygen.c: without CKA_COPYABLE, then without
 * CKA_ALLOWED_MECHANISMS too, then the minimal template).
 * Writes the new CKA_ID into id_out (KM_TOKEN_ID_LEN bytes) and the public key into *pub.
 * Serialised against other generate/destroy calls on this token.
 */
int km_token_generate(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                      uint8_t id_out[KM_TOKEN_ID_LEN], km_pubkey_t *pub);

/*
 * Like km_token_generate() but with a CKA_ID chosen by the caller (made by km_token_new_id(),
 * or id_len bytes made by km_token_new_id_for() for a token that keeps shorter ids), so that
 * the store can record the ID before the token creates the objects (intent first,
 * confirmation after). The CKA_ID is read back after generation: a token that did not keep
 * it is refused (KM_P11_EKEYREFUSED, the pair destroyed); a token that kept only its first
 * bytes (YubiHSM 2) is remembered as one that keeps that many, km_token_id_len() says so, and
 * the caller asks again with an id from km_token_new_id_for().
 */
int km_token_generate_with_id(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                              const uint8_t *id, size_t id_len, km_pubkey_t *pub);

/*
 * For a token that assigns CKA_IDs itself (Google's kmsp11 refuses a CKA_ID in a keygen
 * template): generates a key pair for alg as km_token_generate() does, but with no CKA_ID in
 * the templates, and writes the id the token gave it into ret_id and its length into *ret_len.
 * The id must be on both keys and on no other object of the token, else the pair is destroyed
 * (KM_P11_EKEYREFUSED). The pair is NOT checked yet: the caller records the id, then calls
 * km_token_check_key() (attributes, test signature), and destroys the pair if that fails.
 * Afterwards km_token_assigns_ids(t) is true.
 */
int km_token_generate_assigned(km_token_t *t, km_alg_t alg, unsigned rsa_bits, const char *label,
                               uint8_t ret_id[KM_TOKEN_ID_MAX], size_t *ret_len);

/* Whether t generated a pair only without a CKA_ID (km_token_generate_assigned), in this
 * process or, as the store recorded, in an earlier one (km_token_set_assigns_ids). */
bool km_token_assigns_ids(km_token_t *t);

/* Tells t that it assigns CKA_IDs itself, as an earlier process learned (the store records it:
 * km_store_token_assigns_ids): its first generation goes without a CKA_ID at once. */
void km_token_set_assigns_ids(km_token_t *t);

/* The CKA_ID length t keeps: KM_TOKEN_ID_LEN, or less once a generation showed it cuts ids. */
size_t km_token_id_len(km_token_t *t);

/*
 * Tells t that it keeps only len bytes of a CKA_ID, as an earlier process learned (the store
 * records it: km_store_token_id_len), so that its first generation draws an id of that length
 * at once. A len of 0 or of KM_TOKEN_ID_LEN and more changes nothing.
 */
void km_token_set_id_len(km_token_t *t, size_t len);

#define KM_TOKEN_FIT_LABEL_MAX 32

/*
 * The label a generation falls back to where the token refuses label (strict tokens): its
 * characters [A-Za-z0-9_-] (others become '-'), at most KM_TOKEN_FIT_LABEL_MAX bytes, into
 * out. Returns out, or NULL when label already is such a label (then out is label's copy).
 */
const char *km_token_fit_label(const char *label, char out[KM_TOKEN_FIT_LABEL_MAX + 1]);

/*
 * A new CKA_ID for t into id and its length into *ret_len: km_token_new_id() where the token
 * keeps 20 bytes; otherwise km_token_id_len(t) random bytes that no object of the token has
 * (C_FindObjects before use) and that are not the cut of the magic prefix (what a 20-byte
 * id becomes on such a token). KM_EOK; KM_EEXIST when no free id was drawn in 32 tries;
 * the token's code when it could not be searched.
 */
int km_token_new_id_for(km_token_t *t, uint8_t id[KM_TOKEN_ID_LEN], size_t *ret_len);

/*
 * Checks an existing key pair as a new one is checked before it is kept: the private key's
 * attributes read back (sensitive, never extractable, sign only, except the token's recorded
 * exception), its CKA_ID is id, it is a key of alg, and a test signature made through the
 * signing path verifies with the public key read from the token (OpenSSL). For pairs whose
 * generation was never confirmed (reconcile's adoption after a crash). Writes the public key
 * into *pub. KM_EOK; KM_P11_EKEYREFUSED (the key failed a check: the reason in
 * km_token_last_error()); KM_P11_ENOKEY (no such pair); the token's code when it could not be
 * asked (a lost session: nothing is known about the key).
 */
int km_token_check_key(km_token_t *t, const uint8_t *id, size_t id_len, km_alg_t alg,
                       km_pubkey_t *pub);

/* Fills id with the magic prefix and 16 random bytes (OpenSSL RAND_bytes). */
int km_token_new_id(uint8_t id[KM_TOKEN_ID_LEN]);

/* Reads the public key of the pair with this CKA_ID. KM_P11_ENOKEY if absent. */
int km_token_get_public(km_token_t *t, const uint8_t *id, size_t id_len, km_pubkey_t *pub);

/*
 * Signs data as JWS algorithm alg with the private key of this CKA_ID and writes the JOSE
 * signature (RSA: modulus-sized; EC: r||s at fixed width; EdDSA: 64 bytes) into sig,
 * which holds *sig_len bytes; *sig_len is set to the length written.
 * The handle is found once and cached; later calls do no C_FindObjects.
 * Thread-safe: uses a session from the pool.
 * A C_SignInit or C_Sign answered CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED or
 * CKR_DEVICE_REMOVED (a token that closed the session: some network HSMs close idle ones)
 * is retried once, after the sessions are re-opened: the caller sees only the second
 * attempt's result.
 * KM_P11_ENOKEY if absent, KM_EALG if the key's type does not fit alg, KM_ERANGE if sig is
 * too small.
 */
int km_token_sign(km_token_t *t, const uint8_t *id, size_t id_len, km_alg_t alg,
                  const uint8_t *data, size_t data_len, uint8_t *sig, size_t *sig_len);

/*
 * Runs ahead, on up to max free pool sessions whose last signature used an EC or EdDSA key,
 * the C_SignInit of that key (pkcs11/prepare.c), so that the next signature with the same
 * key only pays C_Sign. For a signing service to call when it waits for requests. Returns
 * how many sessions it prepared. Errors are not reported: the next signature runs
 * C_SignInit itself and reports what it finds.
 */
unsigned km_token_prepare(km_token_t *t, unsigned max);

/* A prepared operation older than this is not used: it is finished and the C_SignInit
 * repeated, which checks again that the key object still exists in the token. */
#define KM_TOKEN_PREPARED_MAX_AGE_MS 1000u

/* Destroys both objects of the pair and drops cached handles. KM_P11_ENOKEY if absent. */
int km_token_destroy(km_token_t *t, const uint8_t *id, size_t id_len);

/*
 * Lists every key pair on the token (private and/or public key objects grouped by CKA_ID).
 * This searches the token: never call it on a hot path. *ret is malloc'd; free() it.
 */
int km_token_list_keys(km_token_t *t, km_token_key_info_t **ret, size_t *count);

/* ---- private keys that are not safe (pkcs11/privkeys.c) ---- */

/* A CK_BBOOL attribute as the token reported it. */
typedef enum {
	KM_TOKEN_ATTR_UNKNOWN = 0,              /* not reported (invalid or unavailable) */
	KM_TOKEN_ATTR_FALSE,
	KM_TOKEN_ATTR_TRUE,
} km_token_attr_t;

/* One private key object and the attributes that say whether it is safe. */
typedef struct {
	unsigned long handle;                   /* its handle in this process's sessions */
	uint8_t id[KM_TOKEN_ID_MAX];
	size_t id_len;                          /* 0: the object has no CKA_ID */
	char label[129];                        /* "" when it has none */
	km_kty_t kty;                           /* 0 for key types keymgr does not know */
	km_token_attr_t sensitive, extractable, never_extractable, always_sensitive;
	km_token_attr_t sign, decrypt, unwrap, derive;
	bool decrypt_excused;                   /* the token sets CKA_DECRYPT on every private
	                                         * key (a recorded exception of its module) */
} km_token_privkey_t;

/*
 * Lists every private key object of the token, one entry per object (not grouped by CKA_ID:
 * a token can hold several objects without one), with its attributes. Searches the token:
 * never on a hot path. *ret is malloc'd (free()); KM_EOK, or the token's code (message in
 * km_token_last_error()).
 */
int km_token_list_private_keys(km_token_t *t, km_token_privkey_t **ret, size_t *count);

/*
 * Whether the private key k can give away its value or do more than sign: CKA_SENSITIVE
 * false, CKA_EXTRACTABLE true, CKA_NEVER_EXTRACTABLE false, or CKA_DECRYPT, CKA_UNWRAP or
 * CKA_DERIVE true (what a generation cut off inside the token leaves on some tokens: the
 * objects with the token's defaults). An attribute the token did not report counts as
 * neither, and so does CKA_DECRYPT where it is the token's recorded exception
 * (decrypt_excused). keymgr makes no such key (km_token_generate()).
 */
bool km_token_privkey_unsafe(const km_token_privkey_t *k);

/*
 * Writes what k is, for an operator: "handle 5, no CKA_ID, no label, EC: CKA_SENSITIVE false,
 * CKA_EXTRACTABLE true, CKA_NEVER_EXTRACTABLE false, CKA_ALWAYS_SENSITIVE false, usage sign
 * decrypt unwrap" (unreported attributes as "?"). Returns buf.
 */
const char *km_token_privkey_describe(const km_token_privkey_t *k, char *buf, size_t len);

/*
 * Destroys the private key object that km_token_list_private_keys() reported as k, after
 * reading it again under the token's generation lock: only when it still has k's CKA_ID and
 * label and is still unsafe (km_token_privkey_unsafe()); its public key, if any, is left.
 * KM_P11_ENOKEY when that object is gone or no longer matches (nothing destroyed), else
 * KM_EOK or the token's code.
 */
int km_token_destroy_private_key(km_token_t *t, const km_token_privkey_t *k);

/* ---- the token identity marker (pkcs11/marker.c) ---- */

#define KM_TOKEN_MARKER_MAX 128  /* longest environment name a marker holds, plus one */

/*
 * Writes the marker that names environment env into the token: a private data object with a
 * random id (its CKA_LABEL), or, where the token keeps no data objects (NSS softoken), a P-256 marker key
 * labelled "keymgr-identity:ENV". A marker naming env already there: nothing is written
 * (*ret_created false). KM_EOK; KM_EWRONGENV (the marker names another environment: nothing
 * changed); KM_EINVAL; the token's code (message in km_token_last_error()).
 */
int km_token_marker_write(km_token_t *t, const char *env, bool *ret_created);

/* Reads the environment the token's marker names into env ("" when it has none). KM_EOK or
 * the token's code. */
int km_token_marker_read(km_token_t *t, char *env, size_t len);

/* ---- private data objects (pkcs11/dataobj.c) ---- */

#define KM_TOKEN_DATA_MAX 512   /* longest value km_token_data_get() returns */

typedef struct {
	uint8_t value[KM_TOKEN_DATA_MAX];
	size_t len;
} km_token_data_t;

/*
 * Stores value (1..KM_TOKEN_DATA_MAX bytes) as a private data object of the token
 * (CKO_DATA, CKA_TOKEN and CKA_PRIVATE true: reading or changing it needs the PIN) with
 * CKA_APPLICATION app and CKA_LABEL label, replacing any earlier one with the same app and
 * label: the new object is created first and the older ones are destroyed after, so a crash
 * leaves both, never none. KM_EOK, KM_EINVAL, KM_ENOTSUP (the token keeps no private data
 * objects: it refused the object's template, as NSS softoken refuses token data objects), or
 * the token's code (message in km_token_last_error()).
 */
int km_token_data_put(km_token_t *t, const char *app, const char *label, const uint8_t *value,
                      size_t len);

/*
 * Reads the values of the private data objects with CKA_APPLICATION app and CKA_LABEL label:
 * usually one, none before the first km_token_data_put(), two after a crash inside it.
 * *ret is malloc'd (free(); NULL when *count is 0). KM_EOK or the token's code.
 */
int km_token_data_get(km_token_t *t, const char *app, const char *label, km_token_data_t **ret,
                      size_t *count);

/*
 * Creates a token in a SoftHSM-style free slot: C_InitToken with so_pin, then C_InitPIN
 * with user_pin. For development tokens only (keymgr token init).
 * PINs are read from the given pin sources, never passed as literals by callers that got
 * them from argv.
 */
int km_token_init_dev(const char *module_path, const char *label, const char *so_pin_source,
                      const char *user_pin_source, char *errbuf, size_t errlen);

/*
 * Formats the RFC 7512 URI of the private key with CKA_ID id on the token with this label
 * and/or serial (either may be NULL, not both):
 *   pkcs11:serial=...;token=...;id=%4B%4D...;type=private
 * Every byte of the id, and any reserved character of the label, is percent-encoded
 * (p11-kit's formatter). The URI names the key, never a PIN: an issuer adds its own
 * pin-source. *ret is malloc'd (caller frees). KM_EOK, KM_EINVAL (empty or too long label or
 * serial, empty id), KM_ENOMEM.
 */
int km_token_uri(const char *label, const char *serial, const uint8_t *id, size_t id_len,
                 char **ret);
