/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The auditor's side of the store's audit chain (keymgr/store/store.h): attaching the policy
 * and the streaming outputs to an environment, signed checkpoints of the chain head,
 * verification (offline: it needs the store file only), replay of the log into the state it
 * describes, and the JWKS history. docs/auditor-guide.md explains what each proves.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keymgr/core/env.h"
#include "keymgr/store/store.h"

#define KM_AUDIT_KEY_LABEL_PREFIX "keymgr-audit:"
#define KM_AUDIT_CHECKPOINT_TYPE "keymgr-audit-checkpoint"
/* The token's record of the last checkpoint: a private data object (CKO_DATA, CKA_PRIVATE)
 * with this CKA_APPLICATION and CKA_LABEL PREFIX + ENV, holding {"env","hash","kid","seq"}. */
#define KM_AUDIT_HEAD_APPLICATION "keymgr"
#define KM_AUDIT_HEAD_LABEL_PREFIX "keymgr-audit-head:"

/*
 * The environment hooks (keymgr/core/env.h) that audit every environment a program opens;
 * keymgr and keymgrd register them at start: km_env_set_hooks(&km_audit_env_hooks).
 * attach sets the policy hash and text of the environment's effective policies on its store
 * (so the first change under a new policy is preceded by a policy.load event) and installs
 * the streaming sink configured in environments.ENV.audit (JSON lines file, syslog); its
 * state is that sink's (NULL when nothing streams), released by detach. attach's codes:
 * KM_ENOMEM, KM_ECRYPTO, KM_EINVAL, KM_EIO (the JSON lines file cannot be opened; the
 * message names it).
 */
extern const km_env_hooks_t km_audit_env_hooks;

/*
 * Canonical JSON of the effective policies of env_cfg (environment policy plus every configured
 * key set's) and its SHA-256 in hex. After a partial load (km_config_load_partial()), a policy
 * an error touches is left out (the environment's is null) and "config_errors" holds the
 * errors. *text is malloc'd. KM_ENOMEM, KM_ECRYPTO.
 */
int km_audit_policy_canonical(const km_config_t *cfg, const km_env_cfg_t *ecfg, char **text,
                              char hash[KM_STORE_HASH_HEX + 1]);

/*
 * Records an event with no other row: sign.denied, config.reload, ... at now, with the
 * environment's actor. See km_store_audit_append() for the arguments and codes.
 */
int km_audit_record(km_env_t *env, const char *action, const char *keyset, const char *kid,
                    const char *after, const char *reason, int64_t now, char *err,
                    size_t errlen);

/* The canonical text a checkpoint signs. *ret is malloc'd. KM_ENOMEM. */
int km_audit_checkpoint_payload(const char *env, const km_store_checkpoint_t *c, char **ret);

/*
 * Signs the chain head with the environment's audit key (an ES256 pair in the environment's
 * audit token, km_env_audit_token(): audit.token when configured, else the environment's
 * token; CKA_LABEL "keymgr-audit:ENV", created on first use and recorded in the store; it is
 * in no key set and never signs a JWT) and stores the checkpoint. Then it streams the
 * checkpoint to the environment's audit sinks (JSON lines file, syslog) and writes its seq
 * and hash into the audit token's private record (KM_AUDIT_HEAD_LABEL_PREFIX), which only a
 * holder of that token's PIN can change: a store rolled back to an earlier checkpoint no
 * longer holds what the record says (km_audit_token_anchor()); on a token that keeps no
 * private data objects there is no record, and the checkpoint stands without it. An audit
 * key that lives in
 * another token than the audit token is replaced by a new one when audit.token is
 * configured (moving the key there), and refused (KM_EWRONGENV) otherwise. Without force, a
 * head that the latest checkpoint already covers is not signed again (*ret is that
 * checkpoint). This is what keymgrd calls regularly. *ret may be NULL. KM_ENOENT (empty
 * log), the token's codes (message in err; also when only the token record failed: the
 * checkpoint is then stored), store codes.
 */
int km_audit_checkpoint(km_env_t *env, int64_t now, bool force, km_store_checkpoint_t *ret,
                        char *err, size_t errlen);

/*
 * A point of the chain recorded outside the store (the token's record, an auditor's note, the
 * streamed JSON lines), that the log must still hold: a log cut back before it, or rewritten
 * at or before it, fails verification.
 */
typedef struct {
	char source[192];          /* for messages: "the token's checkpoint record",
	                            * "--expect-seq/--expect-head", "FILE:LINE" */
	int64_t seq;               /* 0: the hash alone, at any sequence number */
	char hash[KM_STORE_HASH_HEX + 1];  /* "": the sequence number alone */
} km_audit_anchor_t;

typedef struct {
	const char *pin_kid;       /* every checkpoint must be signed by this audit key (or NULL) */
	const km_audit_anchor_t *anchors;  /* points the log must hold (may be NULL) */
	size_t n_anchors;
} km_audit_verify_opts_t;

typedef struct {
	bool ok;
	int64_t first_bad_seq;     /* 0 when ok */
	char problem[512];         /* what is wrong at first_bad_seq */
	int64_t events;            /* events read */
	int64_t head_seq;
	char head_hash[KM_STORE_HASH_HEX + 1];
	size_t checkpoints;        /* checkpoints read (all verified when ok) */
	int64_t checkpoint_seq;    /* highest signed sequence number, 0 when none */
	int64_t checkpoint_at;
	char checkpoint_kid[KM_KID_MAX + 1];
	size_t anchors;            /* anchors compared (all held when ok) */
	int64_t anchor_seq;        /* highest sequence number an anchor named, 0 when none */
} km_audit_verify_t;

/*
 * Verifies the audit trail of an open store, with no token: recomputes the hash chain,
 * checks every checkpoint's signature against the audit key's stored public JWK (OpenSSL),
 * checks that each checkpoint's (seq, hash) is in the chain (a shorter chain or a different
 * hash means truncation or rewriting), that each of o's anchors is in it too (a log rolled
 * back to an earlier checkpoint, with the later checkpoints deleted, is caught only there),
 * and that the key sets, keys, JWKS versions and audit keys in the store are exactly what a
 * replay of the log gives. Tampering is a result
 * (res->ok false, first_bad_seq, problem), not an error code: returns KM_EOK, or a store or
 * KM_ENOMEM code when the store cannot be read.
 */
int km_audit_verify(km_store_t *s, const km_audit_verify_opts_t *o, km_audit_verify_t *res,
                    char *err, size_t errlen);

/*
 * Reads the audit token's record of the last checkpoint of env (km_env_audit_token(); two
 * records after a crash: the higher seq) into *ret, source "the token's checkpoint record".
 * *found false when the token holds none yet. KM_EOK, the token's codes (message in err: the
 * token cannot be opened, the PIN is refused), KM_EMALFORMED (a record that is not one keymgr
 * wrote).
 */
int km_audit_token_anchor(km_env_t *env, km_audit_anchor_t *ret, bool *found, char *err,
                          size_t errlen);

/*
 * Reads the JSON lines an environment's audit stream wrote (environments.ENV.audit.jsonl, or
 * a SIEM's copy of it) into anchors: one per event (its seq and hash) and per checkpoint of
 * environment env (lines of other environments are skipped), source "PATH:LINE". *ret is
 * malloc'd (free()). KM_EOK, KM_ENOENT / KM_EACCES / KM_EIO (the file), KM_EMALFORMED (a line
 * that is not a keymgr audit record: "PATH:LINE: ..." in err), KM_ENOMEM.
 */
int km_audit_stream_anchors(const char *path, const char *env, km_audit_anchor_t **ret,
                            size_t *count, char *err, size_t errlen);

/* ---- replay ---- */

typedef struct {
	char cka_id[2 * KM_STORE_CKA_ID_MAX + 1];   /* hex: a key's identity from its intent on */
	char kid[KM_KID_MAX + 1];
	char keyset[KM_KEYSET_NAME_MAX + 1];
	km_state_t state;
	bool pending;
	int64_t at[KM_STATE_COUNT];                 /* KM_STORE_TIME_NONE when never */
	int64_t activate_at;                        /* a requested rotation's time, or NONE */
	int64_t first_seq, last_seq;
} km_audit_key_state_t;

typedef struct {
	char name[KM_KEYSET_NAME_MAX + 1];
	char alg[16];
	char owner[KM_OWNER_MAX + 1];
	char purpose[KM_PURPOSE_MAX + 1];
	int64_t created_at;
	int64_t last_seq;
} km_audit_keyset_state_t;

typedef struct {
	km_audit_key_state_t *keys;
	size_t n_keys;
	km_audit_keyset_state_t *keysets;
	size_t n_keysets;
} km_audit_replay_t;

/*
 * Replays events (in sequence order) up to and including time until (0: all) into *out.
 * An event that contradicts the state before it (unknown key, wrong prior state, malformed
 * before/after) stops the replay: KM_EMALFORMED with its seq in *bad_seq (may be NULL) and a
 * message. Free *out with km_audit_replay_free().
 */
int km_audit_replay(const km_store_audit_event_t *ev, size_t n, int64_t until,
                    km_audit_replay_t *out, int64_t *bad_seq, char *err, size_t errlen);

void km_audit_replay_free(km_audit_replay_t *r);

/* The kid of a replayed key whose state at that point is served in the JWKS. */
bool km_audit_key_trusted(const km_audit_key_state_t *k);

/* ---- JWKS history ---- */

/*
 * The JWKS version in force at time at (the newest one recorded at or before it), or the one
 * with this serial (serial != 0). *ret's kids is owned by the caller (free()). KM_ENOENT when
 * there is none.
 */
int km_audit_jwks_version(km_store_t *s, uint64_t serial, int64_t at,
                          km_store_jwks_version_t *ret, char *err, size_t errlen);

/*
 * Renders the JWKS document of a kid list (a JSON array text as stored in a version) from the
 * stored public JWKs, exactly as the environment's JWKS is rendered. *ret is malloc'd.
 */
int km_audit_jwks_render(km_store_t *s, const char *kids_json, char **ret, size_t *len,
                         char *err, size_t errlen);

/* ---- the ownership report ---- */

/* The report's JSON schema version (its "version" member); docs/auditor-guide.md says what
 * each version added. */
#define KM_AUDIT_REPORT_VERSION 2

typedef struct {
	int64_t now;               /* reference time for durations of keys still active */
	bool has_at;
	int64_t at;                /* --at: states and trusted keys at this time */
} km_audit_report_opts_t;

/*
 * Builds the ownership review of an environment as JSON (schema in docs/auditor-guide.md):
 * every key set (owner, purpose, algorithm, policy, owner history, compliance) and key (state,
 * the owner and purpose it was made for and the current ones, every date with the actor of
 * its event, rotation compliance, when it left the JWKS and until when cached JWKS may still
 * hold it (jwks_max_age in force then, from the log's policy.load events, else the current
 * policy), and with has_at its state at `at` and whether verifiers trusted it: in the JWKS,
 * or possibly from a cached JWKS), the chain verification summary and, with has_at, the JWKS
 * serial, the kids trusted and the kids possibly still cached at `at`. *ret is a new
 * reference. Store codes, KM_EMALFORMED (a log that does not replay), KM_ENOMEM.
 */
int km_audit_report(km_env_t *env, const km_audit_report_opts_t *o, json_t **ret, char *err,
                    size_t errlen);

/* The JSON form of an event (as streamed and as `audit log --json` prints it). New ref. */
json_t *km_audit_event_json(const char *env, const km_store_audit_event_t *e);
