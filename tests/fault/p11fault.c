/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr-p11fault: a loadable PKCS#11 module for tests that wraps a real module (SoftHSM)
 * and injects faults. It dlopens the real module, copies its function list (so every C_*
 * call is forwarded), and puts a fault check in front of the calls keymgr makes.
 *
 * Configuration (read on every wrapped call; the file is re-read when it changes):
 *   KEYMGR_P11FAULT_MODULE  the real module (default /usr/lib/softhsm/libsofthsm2.so)
 *   KEYMGR_P11FAULT         rules, separated by ';' or newlines
 *   KEYMGR_P11FAULT_FILE    a file holding rules (a test rewrites it to change them mid-run)
 *   KEYMGR_P11FAULT_PROFILE a named profile: the rules of a hardware token's quirk (profiles[]
 *                           below, each citing its source), applied before the others
 *   KEYMGR_P11FAULT_LOG     a file to which every injected fault appends one line
 *   KEYMGR_P11FAULT_CALLS   a file to which every wrapped call appends one line, after the
 *                           call: "FUNC rv=CKR session=H" plus "key=H" (C_SignInit),
 *                           "found=H,H" (C_FindObjects), "opened=H" (C_OpenSession),
 *                           "idle" (a session IDLECLOSE closed), "FAULT" when the call
 *                           was injected
 *   KEYMGR_P11FAULT_CLOCK   a file holding the module's clock in ms (a number; missing: 0),
 *                           which only IDLECLOSE reads: a test moves it, nothing sleeps
 * A rule is FUNC:ACTION[:after=N][:count=M]:
 *   FUNC    C_Sign, C_Login, ... or '*' for every wrapped call; C_OpenSession_RO matches
 *           only a C_OpenSession without CKF_RW_SESSION (a read-only session)
 *   ACTION  a CKR_ name (CKR_DEVICE_ERROR, CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN,
 *           CKR_PIN_LOCKED, CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED, ... or 0xHEX) returned
 *           instead of calling the module, or KILL (raise SIGKILL: crash at call N), or
 *           NONE (C_FindObjects only: it finds nothing, as a token that lost its objects), or
 *           DROP (the token is "re-plugged": every real session of the call's slot is closed
 *           with C_CloseAllSessions, which also logs out, and the call returns
 *           CKR_SESSION_HANDLE_INVALID; only for calls that take a session), or HOLD=PATH
 *           (the call waits until the file PATH exists, then goes to the real module: a
 *           test holds a process inside a token call, e.g. a rotation holding the change
 *           lock, for as long as it needs; PATH without ':'), or HALFMADE=PATH (only for
 *           C_GenerateKeyPair: the module generates, through the real module, a pair
 *           with the token's defaults instead of the caller's template (token objects, no
 *           CKA_ID, no label, the private key not sensitive and allowed to sign and
 *           decrypt), as a token leaves it when its generation is cut off between making the
 *           objects and applying the template; then it holds like HOLD, so that the test
 *           can SIGKILL the caller there; once PATH exists the call fails with
 *           CKR_DEVICE_ERROR, the objects left behind)
 *   LIMIT=N (C_OpenSession only): the process may hold at most N sessions of the module at
 *           once; a C_OpenSession beyond them returns CKR_SESSION_COUNT (YubiHSM 2 has 16
 *           per device, and says so only that way: its token info claims no limit). Closed
 *           sessions (C_CloseSession, C_CloseAllSessions, C_Finalize) free their places
 *   IDCUT=N (C_GenerateKeyPair only): the token keeps only the first N bytes of a CKA_ID in
 *           the templates (YubiHSM 2 before yubihsm_pkcs11 2.4.0: 2 bytes, its 16-bit object
 *           ids); the call itself goes to the real module
 *   LABELMAX=N (C_GenerateKeyPair only): a CKA_LABEL longer than N bytes in either template
 *           fails the call with CKR_ATTRIBUTE_VALUE_INVALID (yubihsm_pkcs11: 40, its
 *           YH_OBJ_LABEL_LEN)
 *   IDLECLOSE=N (FUNC '*'): the token closes sessions idle for more than N ms of the
 *           module's clock (KEYMGR_P11FAULT_CLOCK): a call on a session whose last call (or
 *           C_OpenSession) is older closes it for real (C_CloseSession) and returns
 *           CKR_SESSION_HANDLE_INVALID, as network HSMs that end idle sessions answer
 *   ASSIGNID=N (C_GenerateKeyPair only): the caller cannot set CKA_ID: a template with one
 *           fails with CKR_ATTRIBUTE_TYPE_INVALID; the token gives a generated pair an id of
 *           its own choosing, N random bytes on both keys (Google's kmsp11);
 *           ASSIGNID=0xHEX: always the id HEX (a token that gives an id twice)
 *   KEYGENATTRS=LIST (C_GenerateKeyPair only): a keygen template may hold only the attributes
 *           in LIST (comma-separated hex CKA_ values); any other one fails the call with
 *           CKR_ATTRIBUTE_TYPE_INVALID. The pair is made sensitive, not extractable, and
 *           sign-only by the token itself, as a token whose keys take their use from the
 *           algorithm does (kmsp11: label and algorithm only)
 *   LABELCHARS (C_GenerateKeyPair only): a CKA_LABEL with a character outside [a-zA-Z0-9_-]
 *           fails the call with CKR_ATTRIBUTE_VALUE_INVALID (kmsp11)
 *   EDPARAMS=HEX (C_GenerateKeyPair only): CKM_EC_EDWARDS_KEY_PAIR_GEN takes only the
 *           CKA_EC_PARAMS whose DER is HEX (others: CKR_ATTRIBUTE_VALUE_INVALID), generates
 *           an Ed25519 pair, and CKA_EC_PARAMS reads back as HEX (Thales Luna's own OID)
 *   after=N the first N matching calls pass (default 0); count=M only M calls fail, then
 *           calls pass again (default: all later calls fail)
 * Calls are counted per rule, from the moment the rule text was (re)loaded.
 * Example: KEYMGR_P11FAULT="C_Sign:CKR_DEVICE_ERROR:after=3"
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define MAX_RULES 16
/* NONE (C_FindObjects only): the search finds nothing, as a token that lost its objects */
#define RV_NONE (CKR_VENDOR_DEFINED | 0x7ffUL)
#define RULES_MAX 4096

typedef struct {
	char func[48];
	bool kill;
	bool drop;
	char hold[256];            /* HOLD=PATH: wait for PATH, then call the real module */
	bool halfmade;             /* HALFMADE=PATH (hold holds PATH) */
	unsigned long limit;       /* LIMIT=N: sessions the process may hold (0: no limit) */
	unsigned long idcut;       /* IDCUT=N: CKA_ID bytes a generated key keeps (0: all) */
	unsigned long labelmax;    /* LABELMAX=N: longest CKA_LABEL a keygen takes (0: any) */
	unsigned long idleclose;   /* IDLECLOSE=N: ms of the module's clock a session may idle */
	unsigned long assignid;    /* ASSIGNID=N: the token chooses N-byte CKA_IDs (0: no) */
	unsigned long labelchars;  /* LABELCHARS: 1 when labels are [a-zA-Z0-9_-] only */
	unsigned long keygenattrs; /* KEYGENATTRS=LIST: 1 when keygen_allowed[] applies */
	unsigned long edparams;    /* EDPARAMS=HEX: its length in bytes (0: no such rule) */
	CK_RV rv;
	unsigned long after;
	unsigned long count;       /* 0: unlimited */
	unsigned long calls;       /* matching calls seen */
} rule_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST wrapped;
static rule_t rules[MAX_RULES];
static size_t n_rules;
static char loaded[RULES_MAX];      /* the text the rules came from */
static unsigned long open_sessions; /* sessions this process holds (LIMIT rules count them) */
static CK_ATTRIBUTE_TYPE keygen_allowed[24]; /* KEYGENATTRS (one such rule at a time) */
static size_t n_keygen_allowed;
static CK_BYTE ed_params[64];       /* EDPARAMS (one such rule at a time) */
static CK_BYTE fixed_id[32];        /* ASSIGNID=0xHEX (one such rule at a time) */
static size_t fixed_id_len;

static const struct {
	const char *name;
	CK_RV rv;
} rv_names[] = {
	{ "CKR_GENERAL_ERROR", CKR_GENERAL_ERROR },
	{ "CKR_DEVICE_ERROR", CKR_DEVICE_ERROR },
	{ "CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY },
	{ "CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED },
	{ "CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT },
	{ "CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID },
	{ "CKR_SESSION_CLOSED", CKR_SESSION_CLOSED },
	{ "CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN },
	{ "CKR_PIN_LOCKED", CKR_PIN_LOCKED },
	{ "CKR_PIN_INCORRECT", CKR_PIN_INCORRECT },
	{ "CKR_KEY_HANDLE_INVALID", CKR_KEY_HANDLE_INVALID },
	{ "CKR_OBJECT_HANDLE_INVALID", CKR_OBJECT_HANDLE_INVALID },
	{ "CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED },
	{ "CKR_HOST_MEMORY", CKR_HOST_MEMORY },
	{ "CKR_CRYPTOKI_NOT_INITIALIZED", CKR_CRYPTOKI_NOT_INITIALIZED },
	{ "CKR_OPERATION_NOT_INITIALIZED", CKR_OPERATION_NOT_INITIALIZED },
	{ "CKR_FUNCTION_NOT_SUPPORTED", CKR_FUNCTION_NOT_SUPPORTED },
};

/* The bytes of hex into out (at most max); their count, 0 when hex is not even hex. */
static size_t parse_hex(const char *hex, CK_BYTE *out, size_t max)
{
	size_t n = 0;
	for (; hex[0] != '\0' && hex[1] != '\0' && n < max; hex += 2) {
		char b[3] = { hex[0], hex[1], '\0' }, *end;
		out[n++] = (CK_BYTE)strtoul(b, &end, 16);
		if (*end != '\0')
			return 0;
	}
	return hex[0] == '\0' ? n : 0;
}

/* KEYGENATTRS=LIST into keygen_allowed[]; false on a bad list. */
static bool parse_allowed(const char *list)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", list);
	n_keygen_allowed = 0;
	for (char *a = strtok_r(buf, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
		char *end;
		if (n_keygen_allowed >= sizeof(keygen_allowed) / sizeof(keygen_allowed[0]))
			return false;
		keygen_allowed[n_keygen_allowed++] = strtoul(a, &end, 16);
		if (*end != '\0')
			return false;
	}
	return n_keygen_allowed > 0;
}

/* Parses rule text into rules[] (bad rules are reported on stderr and skipped). */
static void parse_rules(const char *text)
{
	char buf[RULES_MAX];
	snprintf(buf, sizeof(buf), "%s", text);
	n_rules = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ";\n", &save); tok != NULL && n_rules < MAX_RULES;
	     tok = strtok_r(NULL, ";\n", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (*tok == '\0' || *tok == '#')
			continue;
		rule_t r = { 0 };
		char *fs = NULL, *f = strtok_r(tok, ":", &fs), *act = strtok_r(NULL, ":", &fs);
		if (f == NULL || act == NULL) {
			fprintf(stderr, "p11fault: bad rule '%s'\n", tok);
			continue;
		}
		snprintf(r.func, sizeof(r.func), "%s", f);
		bool ok = false;
		if (strcmp(act, "KILL") == 0) {
			r.kill = ok = true;
		} else if (strncmp(act, "HOLD=", 5) == 0 && act[5] != '\0') {
			ok = (size_t)snprintf(r.hold, sizeof(r.hold), "%s", act + 5) < sizeof(r.hold);
		} else if (strncmp(act, "HALFMADE=", 9) == 0 && act[9] != '\0' &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			ok = (size_t)snprintf(r.hold, sizeof(r.hold), "%s", act + 9) < sizeof(r.hold);
			r.halfmade = true;
		} else if (strncmp(act, "LIMIT=", 6) == 0 && strcmp(r.func, "C_OpenSession") == 0) {
			r.limit = strtoul(act + 6, NULL, 10);
			ok = r.limit > 0;
		} else if (strncmp(act, "IDCUT=", 6) == 0 &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			r.idcut = strtoul(act + 6, NULL, 10);
			ok = r.idcut > 0;
		} else if (strncmp(act, "LABELMAX=", 9) == 0 &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			r.labelmax = strtoul(act + 9, NULL, 10);
			ok = r.labelmax > 0;
		} else if (strncmp(act, "IDLECLOSE=", 10) == 0 && strcmp(r.func, "*") == 0) {
			r.idleclose = strtoul(act + 10, NULL, 10);
			ok = r.idleclose > 0;
		} else if (strncmp(act, "ASSIGNID=", 9) == 0 &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			fixed_id_len = strncmp(act + 9, "0x", 2) == 0 ?
			               parse_hex(act + 11, fixed_id, sizeof(fixed_id)) : 0;
			r.assignid = fixed_id_len ? fixed_id_len : strtoul(act + 9, NULL, 10);
			ok = r.assignid > 0 && r.assignid <= 32;
		} else if (strcmp(act, "LABELCHARS") == 0 &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			r.labelchars = 1;
			ok = true;
		} else if (strncmp(act, "KEYGENATTRS=", 12) == 0 &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			r.keygenattrs = 1;
			ok = parse_allowed(act + 12);
		} else if (strncmp(act, "EDPARAMS=", 9) == 0 &&
		           strcmp(r.func, "C_GenerateKeyPair") == 0) {
			r.edparams = parse_hex(act + 9, ed_params, sizeof(ed_params));
			ok = r.edparams > 0;
		} else if (strcmp(act, "NONE") == 0 && strcmp(r.func, "C_FindObjects") == 0) {
			r.rv = RV_NONE;
			ok = true;
		} else if (strcmp(act, "DROP") == 0) {
			r.drop = ok = true;
			r.rv = CKR_SESSION_HANDLE_INVALID;
		} else if (strncmp(act, "0x", 2) == 0) {
			r.rv = strtoul(act, NULL, 16);
			ok = true;
		} else {
			for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
				if (strcmp(act, rv_names[i].name) == 0) {
					r.rv = rv_names[i].rv;
					ok = true;
				}
		}
		for (char *o = strtok_r(NULL, ":", &fs); o != NULL; o = strtok_r(NULL, ":", &fs)) {
			if (strncmp(o, "after=", 6) == 0)
				r.after = strtoul(o + 6, NULL, 10);
			else if (strncmp(o, "count=", 6) == 0)
				r.count = strtoul(o + 6, NULL, 10);
			else
				ok = false;
		}
		if (!ok) {
			fprintf(stderr, "p11fault: bad rule for %s\n", r.func);
			continue;
		}
		rules[n_rules++] = r;
	}
}

/* Current rule text: the environment variable, then the file. */
/*
 * Quirk profiles: hardware tokens CI cannot have, as rules over SoftHSM. Each names the
 * public source of the behaviour it copies.
 */
static const struct {
	const char *name;
	const char *rules;
} profiles[] = {
	/* AWS CloudHSM, Client SDK 5 PKCS#11 library: C_OpenSession without CKF_RW_SESSION
	 * fails (CKR_FUNCTION_FAILED). Source: issue 17 and ../shared/PKCS11-NOTES.md ("Quirks
	 * of hardware tokens"), from AWS's PKCS#11 library documentation and known issues
	 * (docs.aws.amazon.com/cloudhsm/latest/userguide/pkcs11-library.html). */
	{ "cloudhsm", "C_OpenSession_RO:CKR_FUNCTION_FAILED" },
	/* YubiHSM 2 through yubihsm_pkcs11: object ids are 16-bit, so a CKA_ID keeps 2 bytes
	 * (before 2.4.0 a longer one was cut to its first 2: every "KMGR..." id became 0x4B4D),
	 * and a device has 16 sessions, refused with CKR_SESSION_COUNT although the token info
	 * claims no limit; a CKA_LABEL longer than 40 bytes fails C_GenerateKeyPair with
	 * CKR_ATTRIBUTE_VALUE_INVALID. Sources: Yubico's YubiHSM 2 PKCS#11 documentation
	 * (developers.yubico.com/YubiHSM2/Component_Reference/PKCS_11/: "Object IDs are 16 bit",
	 * "16 sessions"), yubihsm-shell (lib/yubihsm.h: YH_OBJ_LABEL_LEN 40;
	 * pkcs11/util_pkcs11.c: "if (...ulValueLen > YH_OBJ_LABEL_LEN) return
	 * CKR_ATTRIBUTE_VALUE_INVALID" for CKA_LABEL), and ../shared/PKCS11-NOTES.md. */
	{ "yubihsm", "C_OpenSession:LIMIT=16;C_GenerateKeyPair:IDCUT=2;"
	             "C_GenerateKeyPair:LABELMAX=40" },
	/* Google Cloud KMS through kmsp11 (libkmsp11.so). Its user guide
	 * (github.com/GoogleCloudPlatform/kms-integrations, kmsp11/docs/user_guide.md,
	 * "Functions"): C_GenerateKeyPair takes no public key template, and the private key
	 * template "must specify the attributes CKA_LABEL and CKA_KMS_ALGORITHM, and must not
	 * specify any other attributes"; C_CreateObject and C_SetAttributeValue are not
	 * supported. So the caller cannot set CKA_ID: the library gives the key its own. The
	 * guide names no return code for a refused attribute: the profile answers
	 * CKR_ATTRIBUTE_TYPE_INVALID. Labels are CryptoKey ids, [a-zA-Z0-9_-]{1,63} (Cloud KMS
	 * resource naming, issue 17). Over SoftHSM the algorithm travels as CKA_EC_PARAMS (0x180)
	 * or CKA_MODULUS_BITS/CKA_PUBLIC_EXPONENT (0x121, 0x122), standing in for
	 * CKA_KMS_ALGORITHM; the token assigns 16 random bytes as CKA_ID (the real library uses
	 * a name of its own). Not copied: kmsp11 has no EdDSA and no P-521 (its guide lists P-256
	 * and P-384), which the profile leaves to SoftHSM. */
	{ "kmsp11", "C_GenerateKeyPair:ASSIGNID=16;C_GenerateKeyPair:LABELCHARS;"
	            "C_GenerateKeyPair:LABELMAX=63;C_GenerateKeyPair:KEYGENATTRS=3,180,121,122;"
	            "C_CreateObject:CKR_FUNCTION_NOT_SUPPORTED" },
	/* Thales Luna: Ed25519 keys take their CKA_EC_PARAMS as the OID 1.3.6.1.4.1.11591.15.1
	 * (DER 06 09 2b 06 01 04 01 da 47 0f 01), not the RFC 8410 OID or the PrintableString
	 * "edwards25519", and read it back so. Source: issue 17 and ../shared/PKCS11-NOTES.md
	 * ("Thales Luna uses its own OID for Ed25519"). No Thales document stating the OID was
	 * found in the public code and docs searched; the OID itself is the one libgcrypt
	 * (cipher/ecc-curves.c, curve_aliases) and OpenPGP use for Ed25519 (GnuPG's arc
	 * 1.3.6.1.4.1.11591), which is what keymgr has sent as "Luna's OID". */
	{ "luna", "C_GenerateKeyPair:EDPARAMS=06092b06010401da470f01" },
};

/* The rules of KEYMGR_P11FAULT_PROFILE ("" when unset; an unknown name is reported). */
static const char *profile_rules(void)
{
	const char *name = getenv("KEYMGR_P11FAULT_PROFILE");
	if (name == NULL || name[0] == '\0')
		return "";
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if (strcmp(profiles[i].name, name) == 0)
			return profiles[i].rules;
	fprintf(stderr, "p11fault: unknown profile '%s'\n", name);
	return "";
}

static void current_text(char *out, size_t len)
{
	const char *env = getenv("KEYMGR_P11FAULT");
	size_t used = (size_t)snprintf(out, len, "%s\n%s", profile_rules(), env ? env : "");
	if (used >= len)
		used = len - 1;
	const char *file = getenv("KEYMGR_P11FAULT_FILE");
	if (file == NULL || used + 2 >= len)
		return;
	FILE *f = fopen(file, "r");
	if (f == NULL)
		return;
	out[used++] = '\n';
	size_t n = fread(out + used, 1, len - used - 1, f);
	out[used + n] = '\0';
	fclose(f);
}

/* Appends "FUNC WHAT call N" to KEYMGR_P11FAULT_LOG (if set). */
static void log_fault_text(const char *func, const char *what, unsigned long calls)
{
	const char *path = getenv("KEYMGR_P11FAULT_LOG");
	if (path == NULL)
		return;
	FILE *f = fopen(path, "a");
	if (f == NULL)
		return;
	fprintf(f, "%s %s call %lu\n", func, what, calls);
	fclose(f);
}

static void log_fault(const char *func, const rule_t *r)
{
	log_fault_text(func, r->kill ? "KILL" : r->hold[0] ? "HOLD" : "fault", r->calls);
}

/* Waits until the file path exists. */
static void wait_for_file(const char *path)
{
	while (access(path, F_OK) != 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Decides whether call func fails; if so writes the CK_RV into *rv (or kills). A HOLD rule
 * waits for its file (outside the lock: other threads' calls go on), then lets the call
 * through. A HALFMADE rule (only where halfmade is not NULL) fails the call with its path in
 * halfmade (256 bytes): the caller makes the objects, then waits. */
static bool fault(const char *func, CK_RV *rv, bool *drop, char *halfmade)
{
	char text[RULES_MAX], hold[256] = "";
	bool hit = false;
	current_text(text, sizeof(text));
	pthread_mutex_lock(&lock);
	if (strcmp(text, loaded) != 0) {
		snprintf(loaded, sizeof(loaded), "%s", text);
		parse_rules(text);
	}
	for (size_t i = 0; i < n_rules && !hit; i++) {
		rule_t *r = &rules[i];
		if ((strcmp(r->func, "*") != 0 && strcmp(r->func, func) != 0) ||
		    (r->halfmade && halfmade == NULL) || r->limit != 0 || r->idcut != 0 ||
		    r->labelmax != 0 || r->assignid != 0 || r->labelchars != 0 ||
		    r->keygenattrs != 0 || r->edparams != 0 || r->idleclose != 0)
			continue;
		unsigned long n = ++r->calls;
		if (n <= r->after || (r->count != 0 && n > r->after + r->count))
			continue;
		if (r->halfmade) {
			/* logged by the caller once the objects exist */
			snprintf(halfmade, 256, "%s", r->hold);
			*rv = CKR_DEVICE_ERROR;
			hit = true;
			break;
		}
		log_fault(func, r);
		if (r->kill)
			raise(SIGKILL);
		if (r->hold[0]) {
			snprintf(hold, sizeof(hold), "%s", r->hold);
			break;
		}
		*rv = r->rv;
		*drop = r->drop;
		hit = true;
	}
	pthread_mutex_unlock(&lock);
	if (hold[0])
		wait_for_file(hold);
	return hit;
}

static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long setting(size_t off);

/* IDLECLOSE: the module's clock (KEYMGR_P11FAULT_CLOCK), and each session's last call on
 * it (lock held for tracked[]). */
#define MAX_TRACKED 256
typedef struct {
	CK_SESSION_HANDLE h;
	unsigned long long last;
} tracked_t;
static tracked_t tracked[MAX_TRACKED];
static size_t n_tracked;

static unsigned long long clock_now(void)
{
	const char *path = getenv("KEYMGR_P11FAULT_CLOCK");
	unsigned long long v = 0;
	FILE *f = path != NULL && path[0] != '\0' ? fopen(path, "r") : NULL;
	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* Records a call on session h at now; returns whether h was idle longer than max before it
 * (then it is no longer tracked). max 0: never. Lock held. */
static bool touch(CK_SESSION_HANDLE h, unsigned long long now, unsigned long max)
{
	for (size_t i = 0; i < n_tracked; i++) {
		if (tracked[i].h != h)
			continue;
		if (max != 0 && now > tracked[i].last + max) {
			tracked[i] = tracked[--n_tracked];
			return true;
		}
		tracked[i].last = now;
		return false;
	}
	if (n_tracked < MAX_TRACKED)
		tracked[n_tracked++] = (tracked_t){ h, now };
	return false;
}

static void untrack(CK_SESSION_HANDLE h)
{
	for (size_t i = 0; i < n_tracked; i++)
		if (tracked[i].h == h) {
			tracked[i] = tracked[--n_tracked];
			return;
		}
}

/* Appends one line to KEYMGR_P11FAULT_CALLS (if set): func, rv, session, extra. */
static void log_call(const char *func, CK_RV rv, CK_SESSION_HANDLE h, bool injected,
                     const char *extra)
{
	const char *path = getenv("KEYMGR_P11FAULT_CALLS");
	if (path == NULL || path[0] == '\0')
		return;
	pthread_mutex_lock(&calls_lock);
	FILE *f = fopen(path, "a");
	if (f != NULL) {
		fprintf(f, "%s rv=0x%lx session=%lu%s%s%s\n", func, (unsigned long)rv,
		        (unsigned long)h, extra[0] ? " " : "", extra, injected ? " FAULT" : "");
		fclose(f);
	}
	pthread_mutex_unlock(&calls_lock);
}

/* After a call that closed every session (of the slot: one slot in tests): none held. */
static CK_RV all_closed(CK_RV rv)
{
	pthread_mutex_lock(&lock);
	if (rv == CKR_OK) {
		open_sessions = 0;
		n_tracked = 0;
	}
	pthread_mutex_unlock(&lock);
	return rv;
}

/* DROP: closes every real session of h's slot (as a re-plugged token would). */
static void drop_sessions(CK_SESSION_HANDLE h)
{
	CK_SESSION_INFO si;
	if (real->C_GetSessionInfo(h, &si) == CKR_OK)
		all_closed(real->C_CloseAllSessions(si.slotID));
}

/* The fault check in front of a call whose first argument is not a session. */
static bool pre(const char *func, CK_RV *rv)
{
	bool drop = false;
	if (!fault(func, rv, &drop, NULL))
		return false;
	log_call(func, *rv, 0, true, "");
	return true;
}

/* IDLECLOSE: a call on a session idle too long closes it (for real) and fails; any other
 * call on a session is recorded as its last. Call after fault() loaded the rules. */
static bool idle_closed(const char *func, CK_SESSION_HANDLE h, CK_RV *rv)
{
	unsigned long max = setting(offsetof(rule_t, idleclose));
	unsigned long long now = clock_now();
	pthread_mutex_lock(&lock);
	bool idle = touch(h, now, max);
	pthread_mutex_unlock(&lock);
	if (!idle)
		return false;
	if (real->C_CloseSession(h) == CKR_OK) {
		pthread_mutex_lock(&lock);
		if (open_sessions > 0)
			open_sessions--;
		pthread_mutex_unlock(&lock);
	}
	log_fault_text(func, "IDLECLOSE", 0);
	*rv = CKR_SESSION_HANDLE_INVALID;
	log_call(func, *rv, h, true, "idle");
	return true;
}

/* The fault check in front of a call on session h (DROP closes the slot's sessions;
 * IDLECLOSE an idle session). */
static bool pre_s(const char *func, CK_SESSION_HANDLE h, CK_RV *rv)
{
	bool drop = false;
	if (!fault(func, rv, &drop, NULL))
		return idle_closed(func, h, rv);
	if (drop)
		drop_sessions(h);
	log_call(func, *rv, h, true, "");
	return true;
}

#define WRAP(name, params, args)                                   \
	static CK_RV w_##name params                               \
	{                                                          \
		CK_RV rv;                                          \
		if (pre(#name, &rv))                               \
			return rv;                                 \
		rv = real->name args;                              \
		log_call(#name, rv, 0, false, "");                 \
		return rv;                                         \
	}

/* Same for calls whose first argument is the session h. */
#define WRAP_S(name, params, args)                                 \
	static CK_RV w_##name params                               \
	{                                                          \
		CK_RV rv;                                          \
		if (pre_s(#name, h, &rv))                          \
			return rv;                                 \
		rv = real->name args;                              \
		log_call(#name, rv, h, false, "");                 \
		return rv;                                         \
	}

WRAP(C_GetSlotList, (CK_BBOOL p, CK_SLOT_ID_PTR l, CK_ULONG_PTR n), (p, l, n))
WRAP(C_GetSlotInfo, (CK_SLOT_ID s, CK_SLOT_INFO_PTR i), (s, i))
WRAP(C_GetTokenInfo, (CK_SLOT_ID s, CK_TOKEN_INFO_PTR i), (s, i))
WRAP(C_GetMechanismInfo, (CK_SLOT_ID s, CK_MECHANISM_TYPE t, CK_MECHANISM_INFO_PTR i), (s, t, i))
static CK_RV w_C_CloseSession(CK_SESSION_HANDLE h)
{
	CK_RV rv;
	if (pre_s("C_CloseSession", h, &rv))
		return rv;
	rv = real->C_CloseSession(h);
	pthread_mutex_lock(&lock);
	if (rv == CKR_OK && open_sessions > 0)
		open_sessions--;
	if (rv == CKR_OK)
		untrack(h);
	pthread_mutex_unlock(&lock);
	log_call("C_CloseSession", rv, h, false, "");
	return rv;
}

static CK_RV w_C_CloseAllSessions(CK_SLOT_ID s)
{
	return all_closed(real->C_CloseAllSessions(s));
}

static CK_RV w_C_Finalize(CK_VOID_PTR p)
{
	return all_closed(real->C_Finalize(p));
}
WRAP_S(C_GetSessionInfo, (CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR i), (h, i))
WRAP_S(C_Login, (CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR p, CK_ULONG l), (h, u, p, l))
WRAP_S(C_Logout, (CK_SESSION_HANDLE h), (h))
WRAP_S(C_DestroyObject, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o), (h, o))
WRAP_S(C_FindObjectsInit, (CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, t, n))
WRAP_S(C_FindObjectsFinal, (CK_SESSION_HANDLE h), (h))
WRAP_S(C_Sign, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG_PTR sl),
       (h, d, dl, s, sl))
WRAP_S(C_SignUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl), (h, d, dl))
WRAP_S(C_SignFinal, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG_PTR sl), (h, s, sl))
WRAP_S(C_GenerateRandom, (CK_SESSION_HANDLE h, CK_BYTE_PTR b, CK_ULONG n), (h, b, n))
WRAP(C_InitToken, (CK_SLOT_ID s, CK_UTF8CHAR_PTR p, CK_ULONG l, CK_UTF8CHAR_PTR lab), (s, p, l, lab))
WRAP_S(C_InitPIN, (CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR p, CK_ULONG l), (h, p, l))
WRAP_S(C_CreateObject, (CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n,
       CK_OBJECT_HANDLE_PTR o), (h, t, n, o))

/*
 * HALFMADE: a pair made with mechanism m and the token's defaults, keeping from the caller's
 * public template only what the mechanism needs (curve, modulus size, exponent).
 */
static CK_RV make_halfmade(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub,
                           CK_ULONG npub)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pt[4] = { { CKA_TOKEN, &yes, sizeof(yes) } };
	CK_ULONG n = 1;
	for (CK_ULONG i = 0; i < npub && n < 4; i++)
		if (pub[i].type == CKA_EC_PARAMS || pub[i].type == CKA_MODULUS_BITS ||
		    pub[i].type == CKA_PUBLIC_EXPONENT)
			pt[n++] = pub[i];
	CK_ATTRIBUTE st[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE hp, hs;
	return real->C_GenerateKeyPair(h, m, pt, n, st, sizeof(st) / sizeof(st[0]), &hp, &hs);
}

/* A setting of the loaded rules: the field at offset off (LIMIT: limit, IDCUT: idcut) of the
 * last rule that has one (0: none); call after fault() reloaded them. */
static unsigned long setting(size_t off)
{
	unsigned long v = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_rules; i++) {
		unsigned long x;
		memcpy(&x, (const char *)&rules[i] + off, sizeof(x));
		if (x != 0)
			v = x;
	}
	pthread_mutex_unlock(&lock);
	return v;
}

/* Whether a CKA_LABEL of the n attributes of in is longer than max bytes. */
static bool label_over(const CK_ATTRIBUTE *in, CK_ULONG n, unsigned long max)
{
	for (CK_ULONG i = 0; i < n; i++)
		if (in[i].type == CKA_LABEL && in[i].ulValueLen > max)
			return true;
	return false;
}

static const CK_BYTE rfc8410_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };

/* The first attribute of type in the n attributes of in, or NULL. */
static const CK_ATTRIBUTE *find_attr(const CK_ATTRIBUTE *in, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	for (CK_ULONG i = 0; i < n; i++)
		if (in[i].type == type)
			return &in[i];
	return NULL;
}

/* Whether a CKA_LABEL of the n attributes of in has a character outside [a-zA-Z0-9_-]. */
static bool label_bad_chars(const CK_ATTRIBUTE *in, CK_ULONG n)
{
	const CK_ATTRIBUTE *a = find_attr(in, n, CKA_LABEL);
	for (CK_ULONG i = 0; a != NULL && i < a->ulValueLen; i++) {
		char c = ((const char *)a->pValue)[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return true;
	}
	return false;
}

/* Whether an attribute of the n of in is not in keygen_allowed[]. */
static bool attr_not_allowed(const CK_ATTRIBUTE *in, CK_ULONG n)
{
	for (CK_ULONG i = 0; i < n; i++) {
		bool ok = false;
		for (size_t j = 0; j < n_keygen_allowed && !ok; j++)
			ok = in[i].type == keygen_allowed[j];
		if (!ok)
			return true;
	}
	return false;
}

/* Copies n attributes of in to out[k..] (at most 32 in all), each CKA_ID cut to cut bytes
 * (0: kept), a CKA_EC_PARAMS replaced by ec (when not NULL); returns the new count. */
static CK_ULONG copy_attrs(const CK_ATTRIBUTE *in, CK_ULONG n, unsigned long cut,
                           const CK_ATTRIBUTE *ec, CK_ATTRIBUTE *out, CK_ULONG k)
{
	for (CK_ULONG i = 0; i < n && k < 32; i++) {
		out[k] = in[i];
		if (cut != 0 && in[i].type == CKA_ID && in[i].ulValueLen > cut)
			out[k].ulValueLen = cut;
		if (ec != NULL && in[i].type == CKA_EC_PARAMS)
			out[k] = *ec;
		k++;
	}
	return k;
}

/* A refusal of C_GenerateKeyPair by a quirk rule, logged as what. */
static CK_RV refuse(CK_SESSION_HANDLE h, const char *what, CK_RV rv)
{
	log_fault_text("C_GenerateKeyPair", what, 0);
	log_call("C_GenerateKeyPair", rv, h, true, "");
	return rv;
}

/* ASSIGNID: the token's own CKA_ID, n random bytes, on both keys of the new pair. */
static CK_RV assign_id(CK_SESSION_HANDLE h, unsigned long n, CK_OBJECT_HANDLE hp,
                       CK_OBJECT_HANDLE hs)
{
	CK_BYTE id[32];
	CK_RV rv = CKR_OK;
	pthread_mutex_lock(&lock);
	bool fixed = fixed_id_len == n;
	memcpy(id, fixed_id, sizeof(id));
	pthread_mutex_unlock(&lock);
	if (!fixed)
		rv = real->C_GenerateRandom(h, id, n);
	CK_ATTRIBUTE a = { CKA_ID, id, n };
	if (rv == CKR_OK)
		rv = real->C_SetAttributeValue(h, hp, &a, 1);
	if (rv == CKR_OK)
		rv = real->C_SetAttributeValue(h, hs, &a, 1);
	return rv;
}

static CK_RV w_C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub,
                                 CK_ULONG npub, CK_ATTRIBUTE_PTR priv, CK_ULONG npriv,
                                 CK_OBJECT_HANDLE_PTR hp, CK_OBJECT_HANDLE_PTR hs)
{
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_RV rv;
	bool drop = false;
	char halfmade[256] = "", extra[48];
	if (fault("C_GenerateKeyPair", &rv, &drop, halfmade)) {
		if (halfmade[0]) {
			CK_RV made = make_halfmade(h, m, pub, npub);
			snprintf(extra, sizeof(extra), "halfmade=0x%lx", (unsigned long)made);
			log_call("C_GenerateKeyPair", rv, h, true, extra);
			log_fault_text("C_GenerateKeyPair", made == CKR_OK ? "HALFMADE" :
			               "HALFMADE-FAILED", 0);
			wait_for_file(halfmade);
			return rv;
		}
		if (drop)
			drop_sessions(h);
		log_call("C_GenerateKeyPair", rv, h, true, "");
		return rv;
	}
	if (idle_closed("C_GenerateKeyPair", h, &rv))
		return rv;
	unsigned long cut = setting(offsetof(rule_t, idcut));
	unsigned long labelmax = setting(offsetof(rule_t, labelmax));
	unsigned long assign = setting(offsetof(rule_t, assignid));
	unsigned long edlen = setting(offsetof(rule_t, edparams));
	bool strict = setting(offsetof(rule_t, keygenattrs)) != 0;
	if (labelmax != 0 && (label_over(pub, npub, labelmax) || label_over(priv, npriv, labelmax)))
		return refuse(h, "LABELMAX", CKR_ATTRIBUTE_VALUE_INVALID);
	if (setting(offsetof(rule_t, labelchars)) != 0 &&
	    (label_bad_chars(pub, npub) || label_bad_chars(priv, npriv)))
		return refuse(h, "LABELCHARS", CKR_ATTRIBUTE_VALUE_INVALID);
	if (assign != 0 && (find_attr(pub, npub, CKA_ID) || find_attr(priv, npriv, CKA_ID)))
		return refuse(h, "ASSIGNID", CKR_ATTRIBUTE_TYPE_INVALID);
	if (strict && (attr_not_allowed(pub, npub) || attr_not_allowed(priv, npriv)))
		return refuse(h, "KEYGENATTRS", CKR_ATTRIBUTE_TYPE_INVALID);
	CK_ATTRIBUTE ec = { CKA_EC_PARAMS, (void *)rfc8410_ed25519, sizeof(rfc8410_ed25519) };
	const CK_ATTRIBUTE *want_ec = NULL;
	if (edlen != 0 && m != NULL && m->mechanism == CKM_EC_EDWARDS_KEY_PAIR_GEN) {
		const CK_ATTRIBUTE *a = find_attr(pub, npub, CKA_EC_PARAMS);
		if (a == NULL || a->ulValueLen != edlen || memcmp(a->pValue, ed_params, edlen) != 0)
			return refuse(h, "EDPARAMS", CKR_ATTRIBUTE_VALUE_INVALID);
		want_ec = &ec;
	}
	if (npub > 24 || npriv > 24) {
		rv = real->C_GenerateKeyPair(h, m, pub, npub, priv, npriv, hp, hs);
	} else {
		/* KEYGENATTRS: the token makes the key sign-only, sensitive and not extractable
		 * itself (its use comes from the algorithm), whatever the few attributes say. */
		CK_ATTRIBUTE pc[32] = {
			{ CKA_TOKEN, &yes, sizeof(yes) }, { CKA_VERIFY, &yes, sizeof(yes) },
		};
		CK_ATTRIBUTE vc[32] = {
			{ CKA_TOKEN, &yes, sizeof(yes) }, { CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, &yes, sizeof(yes) }, { CKA_EXTRACTABLE, &no, sizeof(no) },
			{ CKA_SIGN, &yes, sizeof(yes) }, { CKA_DECRYPT, &no, sizeof(no) },
			{ CKA_UNWRAP, &no, sizeof(no) }, { CKA_DERIVE, &no, sizeof(no) },
		};
		CK_ULONG np = copy_attrs(pub, npub, cut, want_ec, pc, strict ? 2 : 0);
		CK_ULONG nv = copy_attrs(priv, npriv, cut, NULL, vc, strict ? 8 : 0);
		rv = real->C_GenerateKeyPair(h, m, pc, np, vc, nv, hp, hs);
	}
	if (rv == CKR_OK && assign != 0 && (rv = assign_id(h, assign, *hp, *hs)) != CKR_OK) {
		real->C_DestroyObject(h, *hp);
		real->C_DestroyObject(h, *hs);
	}
	log_call("C_GenerateKeyPair", rv, h, false, "");
	return rv;
}

/* EDPARAMS: an Ed25519 key's CKA_EC_PARAMS reads back as the token's own encoding. */
static CK_RV w_C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t,
                                   CK_ULONG n)
{
	CK_RV rv;
	CK_ULONG room[64];
	if (pre_s("C_GetAttributeValue", h, &rv))
		return rv;
	for (CK_ULONG i = 0; i < n && i < 64; i++)
		room[i] = t[i].ulValueLen;
	rv = real->C_GetAttributeValue(h, o, t, n);
	unsigned long edlen = setting(offsetof(rule_t, edparams));
	for (CK_ULONG i = 0; edlen != 0 && i < n && i < 64; i++) {
		if (t[i].type != CKA_EC_PARAMS || t[i].ulValueLen != sizeof(rfc8410_ed25519) ||
		    (t[i].pValue != NULL &&
		     memcmp(t[i].pValue, rfc8410_ed25519, sizeof(rfc8410_ed25519)) != 0))
			continue;
		if (t[i].pValue != NULL && room[i] < edlen) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
			continue;
		}
		if (t[i].pValue != NULL)
			memcpy(t[i].pValue, ed_params, edlen);
		t[i].ulValueLen = edlen;
	}
	log_call("C_GetAttributeValue", rv, h, false, "");
	return rv;
}

/* The three calls whose log line carries a handle: the session opened, the key signed
 * with, the objects found (a test checks that no stale handle is used after a re-open). */

static CK_RV w_C_OpenSession(CK_SLOT_ID s, CK_FLAGS f, CK_VOID_PTR a, CK_NOTIFY n,
                             CK_SESSION_HANDLE_PTR h)
{
	CK_RV rv;
	char extra[48] = "";
	if (!(f & CKF_RW_SESSION) && pre("C_OpenSession_RO", &rv))
		return rv;
	if (pre("C_OpenSession", &rv))
		return rv;
	unsigned long limit = setting(offsetof(rule_t, limit));
	pthread_mutex_lock(&lock);
	bool full = limit != 0 && open_sessions >= limit;
	pthread_mutex_unlock(&lock);
	if (full) {
		log_fault_text("C_OpenSession", "LIMIT", open_sessions);
		log_call("C_OpenSession", CKR_SESSION_COUNT, 0, true, "");
		return CKR_SESSION_COUNT;
	}
	rv = real->C_OpenSession(s, f, a, n, h);
	if (rv == CKR_OK) {
		unsigned long long now = clock_now();
		pthread_mutex_lock(&lock);
		open_sessions++;
		if (h != NULL)
			touch(*h, now, 0);
		pthread_mutex_unlock(&lock);
	}
	if (rv == CKR_OK && h != NULL)
		snprintf(extra, sizeof(extra), "opened=%lu", (unsigned long)*h);
	log_call("C_OpenSession", rv, 0, false, extra);
	return rv;
}

static CK_RV w_C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	CK_RV rv;
	char extra[48];
	snprintf(extra, sizeof(extra), "key=%lu", (unsigned long)k);
	if (pre_s("C_SignInit", h, &rv))
		return rv;
	rv = real->C_SignInit(h, m, k);
	log_call("C_SignInit", rv, h, false, extra);
	return rv;
}

static CK_RV w_C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR o, CK_ULONG m,
                             CK_ULONG_PTR n)
{
	CK_RV rv;
	char extra[256] = "found=";
	if (pre_s("C_FindObjects", h, &rv)) {
		if (rv != RV_NONE)
			return rv;
		*n = 0;
		return CKR_OK;
	}
	rv = real->C_FindObjects(h, o, m, n);
	for (CK_ULONG i = 0; rv == CKR_OK && n != NULL && i < *n && strlen(extra) < 200; i++)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), "%s%lu",
		         i ? "," : "", (unsigned long)o[i]);
	log_call("C_FindObjects", rv, h, false, extra);
	return rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ret);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ret)
{
	if (ret == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&lock);
	if (real == NULL) {
		const char *path = getenv("KEYMGR_P11FAULT_MODULE");
		if (path == NULL || path[0] == '\0')
			path = "/usr/lib/softhsm/libsofthsm2.so";
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
		CK_C_GetFunctionList get = h ? (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList") : NULL;
		if (get == NULL || get(&real) != CKR_OK || real == NULL) {
			fprintf(stderr, "p11fault: cannot load %s\n", path);
			real = NULL;
			pthread_mutex_unlock(&lock);
			return CKR_GENERAL_ERROR;
		}
		wrapped = *real;
#define SET(name) wrapped.name = w_##name
		SET(C_GetSlotList); SET(C_GetSlotInfo); SET(C_GetTokenInfo); SET(C_GetMechanismInfo);
		SET(C_OpenSession); SET(C_CloseSession); SET(C_GetSessionInfo); SET(C_Login);
		SET(C_Logout); SET(C_DestroyObject); SET(C_GetAttributeValue); SET(C_FindObjectsInit);
		SET(C_FindObjects); SET(C_FindObjectsFinal); SET(C_SignInit); SET(C_Sign);
		SET(C_SignUpdate); SET(C_SignFinal);
		SET(C_GenerateKeyPair); SET(C_GenerateRandom); SET(C_InitToken); SET(C_InitPIN);
		SET(C_CloseAllSessions); SET(C_Finalize); SET(C_CreateObject);
#undef SET
	}
	pthread_mutex_unlock(&lock);
	*ret = &wrapped;
	return CKR_OK;
}
