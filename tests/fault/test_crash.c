/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The crash matrix (issue 8): for each step of each change, keymgr is killed with SIGKILL
 * exactly there (KEYMGR_CRASH_AT, keymgr/common/faultpoint.h; built only with
 * -Dtest_hooks=true). Then, as a restart would: `keymgr reconcile`, then `keymgr apply`.
 * Asserted after each: the kill really happened at that point; reconcile needs no operator
 * and fails nothing; a second reconcile finds nothing; exactly one key is active; the JWKS
 * contains it; no pending intent; no untracked token object; the audit chain verifies (when
 * this keymgr has `keymgr audit verify`).
 *
 * One SoftHSM token and one store for the process; every scenario uses its own key set.
 * With KEYMGR_CRASH_DOC=FILE the group teardown writes the table of tested points
 * (docs/crash-points.md) with what reconcile found after each crash.
 *
 * Usage: test_fault_crash PATH-TO-KEYMGR
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fault/common.h"

typedef enum {
	PREP_EMPTY,      /* a new key set, no key */
	PREP_ACTIVE,     /* one active key */
	PREP_REMOVED,    /* an active key and a removed one (ready to destroy) */
} prep_t;

typedef enum {
	CMD_ROTATE,      /* keymgr rotate ENV/KS */
	CMD_ROTATE_NOW,  /* keymgr rotate ENV/KS --now --force */
	CMD_REVOKE,      /* keymgr revoke ACTIVE --reason ... (emergency) */
	CMD_DESTROY,     /* keymgr destroy REMOVED */
	CMD_APPLY,       /* keymgr apply ENV/KS */
} cmd_t;

typedef struct {
	prep_t prep;
	cmd_t cmd;
	const char *point;      /* KEYMGR_CRASH_AT */
	const char *step;       /* the step the point sits after, for the doc */
	/* filled in by the run */
	char name[96];
	char found[256];        /* reconcile's findings after the crash */
	bool audited;
	bool passed;
} scenario_t;

static const char *const cmd_text[] = {
	[CMD_ROTATE] = "keymgr rotate ENV/KS",
	[CMD_ROTATE_NOW] = "keymgr rotate ENV/KS --now --force",
	[CMD_REVOKE] = "keymgr revoke ACTIVE (emergency)",
	[CMD_DESTROY] = "keymgr destroy REMOVED",
	[CMD_APPLY] = "keymgr apply ENV/KS",
};
static const char *const prep_text[] = {
	[PREP_EMPTY] = "new key set",
	[PREP_ACTIVE] = "one active key",
	[PREP_REMOVED] = "active key + removed key",
};

#define S(p, c, at, what) { .prep = p, .cmd = c, .point = at, .step = what }
static scenario_t scenarios[] = {
	/* The first key of a key set: generate, publish, activate at once. */
	S(PREP_EMPTY, CMD_ROTATE, "generate.after_intent", "intent recorded (pending row committed)"),
	S(PREP_EMPTY, CMD_ROTATE, "generate.after_token", "token created the pair, not confirmed"),
	S(PREP_EMPTY, CMD_ROTATE, "generate.after_confirm", "kid + JWK confirmed"),
	S(PREP_EMPTY, CMD_ROTATE, "apply.after_action:1", "generated, not yet published"),
	S(PREP_EMPTY, CMD_ROTATE, "apply.after_action:2", "published, not yet activated"),
	S(PREP_EMPTY, CMD_ROTATE, "activate.before_commit", "activation transaction open"),
	S(PREP_EMPTY, CMD_ROTATE, "activate.after_commit", "activation committed"),
	/* A successor while a key is active. */
	S(PREP_ACTIVE, CMD_ROTATE, "generate.after_intent", "intent recorded"),
	S(PREP_ACTIVE, CMD_ROTATE, "generate.after_token", "token created the pair"),
	S(PREP_ACTIVE, CMD_ROTATE, "apply.after_action:2", "successor published, its activation "
	  "not yet recorded"),
	S(PREP_ACTIVE, CMD_ROTATE, "apply.after_action:3", "successor's activation time recorded"),
	/* Immediate rotation: retire the active key and activate the successor in one txn. */
	S(PREP_ACTIVE, CMD_ROTATE_NOW, "generate.after_token", "token created the pair"),
	S(PREP_ACTIVE, CMD_ROTATE_NOW, "activate.before_commit",
	  "old key retired + new key active, uncommitted"),
	S(PREP_ACTIVE, CMD_ROTATE_NOW, "activate.after_commit", "swap committed"),
	/* Emergency revocation of the active key: revoke, then generate and activate. */
	S(PREP_ACTIVE, CMD_REVOKE, "revoke.after_record", "revocation committed, no replacement yet"),
	S(PREP_ACTIVE, CMD_REVOKE, "generate.after_intent", "replacement intent recorded"),
	S(PREP_ACTIVE, CMD_REVOKE, "generate.after_token", "replacement pair in the token"),
	S(PREP_ACTIVE, CMD_REVOKE, "activate.before_commit", "replacement activation uncommitted"),
	/* Destruction: token objects first, then the store. */
	S(PREP_REMOVED, CMD_DESTROY, "destroy.after_token", "objects destroyed, row still 'removed'"),
	/* The planner (keymgr apply, keymgrd's tick) bootstrapping a key set. */
	S(PREP_EMPTY, CMD_APPLY, "generate.after_token", "token created the pair"),
	S(PREP_EMPTY, CMD_APPLY, "apply.after_action:1", "first planned action done (generate)"),
	S(PREP_EMPTY, CMD_APPLY, "apply.after_action:2", "second planned action done"),
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static kmt_t kmt;
static const char *keymgr_path;
static bool any_audited;

static int group_setup(void **state)
{
	return kmt_setup(&kmt, keymgr_path, NULL);
}

static void write_doc(const char *path)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return;
	fprintf(f, "<!-- SPDX-License-Identifier: Apache-2.0 -->\n"
	           "<!-- Generated by tests/fault/test_crash.c: KEYMGR_CRASH_DOC=docs/crash-points.md"
	           " meson test -C BUILD crash.matrix (a -Dtest_hooks=true build). -->\n"
	           "# Tested crash points\n\n"
	           "Each row is one test of the crash matrix (`tests/fault/test_crash.c`, suite "
	           "`crash`): keymgr is killed\nwith SIGKILL at the point (`KEYMGR_CRASH_AT`, "
	           "`keymgr/common/faultpoint.h`), then `keymgr reconcile` and\n`keymgr apply` "
	           "run as a restart would. After each: exactly one active key, the JWKS holds it,\n"
	           "no pending intent, no untracked token object, a second reconcile finds nothing"
	           "%s.\nThe *reconcile found* column is what the first reconcile reported after "
	           "the crash.\n\n"
	           "| # | state before | change | killed at | step done | reconcile found | result |\n"
	           "|---|---|---|---|---|---|---|\n",
	        any_audited ? ", `keymgr audit verify` passes" : "");
	for (size_t i = 0; i < N_SCENARIOS; i++) {
		const scenario_t *s = &scenarios[i];
		fprintf(f, "| %zu | %s | `%s` | `%s` | %s | %s | %s |\n", i + 1, prep_text[s->prep],
		        cmd_text[s->cmd], s->point, s->step, s->found[0] ? s->found : "nothing",
		        s->passed ? "pass" : "FAIL");
	}
	fclose(f);
}

static int group_teardown(void **state)
{
	const char *doc = getenv("KEYMGR_CRASH_DOC");
	if (doc != NULL && doc[0] != '\0')
		write_doc(doc);
	kmt_teardown(&kmt);
	return 0;
}

/* Prepares key set ks as the scenario needs; writes the kid the change acts on. */
static void prepare(const scenario_t *s, const char *ref, char *target, size_t len)
{
	km_run_t *r = calloc(1, sizeof(*r));
	target[0] = '\0';
	kmt_ok(&kmt, r, (const char *[]){ "keyset", "create", ref, "--no-key", "--alg", "ES256",
	                                  "--owner", "reliability", "--purpose", "access-token",
	                                  NULL });
	if (s->prep != PREP_EMPTY)
		kmt_ok(&kmt, r, (const char *[]){ "rotate", ref, NULL });
	const char *ks = strchr(ref, '/') + 1;
	kmt_active_kid(&kmt, ks, target, len);
	if (s->prep == PREP_REMOVED) {
		char old[128];
		snprintf(old, sizeof(old), "%s", target);
		kmt_ok(&kmt, r, (const char *[]){ "rotate", ref, "--now", "--force", NULL });
		kmt_ok(&kmt, r, (const char *[]){ "key", "remove", old, "--env", KMT_ENV, "--force",
		                                  NULL });
		snprintf(target, len, "%s", old);
	}
	free(r);
}

static void test_crash_matrix_point(void **state)
{
	scenario_t *s = *state;
	km_run_t *r = calloc(1, sizeof(*r));
	char ref[64], target[128], crash_env[128];
	const char *ks = s->name + strlen("test_crash_matrix_");
	snprintf(ref, sizeof(ref), KMT_ENV "/%.40s", ks);
	prepare(s, ref, target, sizeof(target));

	/* The change, killed at the point. */
	snprintf(crash_env, sizeof(crash_env), "KEYMGR_CRASH_AT=%s", s->point);
	const char *env[] = { crash_env, NULL };
	switch (s->cmd) {
	case CMD_ROTATE:
		kmt_run(&kmt, r, env, (const char *[]){ "rotate", ref, NULL });
		break;
	case CMD_ROTATE_NOW:
		kmt_run(&kmt, r, env, (const char *[]){ "rotate", ref, "--now", "--force", NULL });
		break;
	case CMD_REVOKE:
		kmt_run(&kmt, r, env, (const char *[]){ "revoke", target, "--env", KMT_ENV, "--reason",
		                                        "crash matrix", NULL });
		break;
	case CMD_DESTROY:
		kmt_run(&kmt, r, env, (const char *[]){ "destroy", target, "--env", KMT_ENV, NULL });
		break;
	case CMD_APPLY:
		kmt_run(&kmt, r, env, (const char *[]){ "apply", ref, NULL });
		break;
	}
	if (r->status != 128 + 9 || strstr(r->err, "killed at") == NULL)
		fail_msg("%s: keymgr was not killed at %s (exit %d)\nstdout: %s\nstderr: %s",
		         s->name, s->point, r->status, r->out, r->err);

	/* Restart: reconcile (no operator needed, nothing failed), then the planner. */
	kmt_run(&kmt, r, NULL, (const char *[]){ "reconcile", KMT_ENV, "--json", NULL });
	json_error_t jerr;
	json_t *j = json_loads(r->out, 0, &jerr);
	if (j == NULL)
		fail_msg("reconcile --json: not JSON: %s\n%s", r->out, r->err);
	if (r->status != 0 || json_integer_value(json_object_get(j, "attention")) != 0 ||
	    json_integer_value(json_object_get(j, "failed")) != 0)
		fail_msg("reconcile after %s: exit %d\n%s", s->point, r->status, r->out);
	json_t *f;
	size_t i;
	json_array_foreach(json_object_get(j, "findings"), i, f) {
		size_t used = strlen(s->found);
		snprintf(s->found + used, sizeof(s->found) - used, "%s%s (%s row)", used ? ", " : "",
		         json_string_value(json_object_get(f, "action")),
		         json_string_value(json_object_get(f, "state")));
	}
	json_decref(j);
	kmt_ok(&kmt, r, (const char *[]){ "apply", ref, NULL });

	/* Reconciliation converged: a second run finds nothing. */
	kmt_ok(&kmt, r, (const char *[]){ "reconcile", KMT_ENV, NULL });
	if (strstr(r->out, "nothing to repair") == NULL)
		fail_msg("second reconcile after %s still repairs:\n%s%s", s->point, r->out, r->err);

	s->audited = kmt_check_invariants(&kmt, ks);
	any_audited = any_audited || s->audited;
	s->passed = true;
	free(r);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-KEYMGR\n", argv[0]);
		return 2;
	}
	keymgr_path = argv[1];
	struct CMUnitTest tests[N_SCENARIOS];
	for (size_t i = 0; i < N_SCENARIOS; i++) {
		scenario_t *s = &scenarios[i];
		/* The test's name doubles as its key set's name: c<N>. */
		snprintf(s->name, sizeof(s->name), "test_crash_matrix_c%02zu", i + 1);
		tests[i] = (struct CMUnitTest){ s->name, test_crash_matrix_point, NULL, NULL, s };
		fprintf(stderr, "c%02zu: %s, %s, killed at %s\n", i + 1, prep_text[s->prep],
		        cmd_text[s->cmd], s->point);
	}
	return _cmocka_run_group_tests("crash.matrix", tests, N_SCENARIOS, group_setup,
	                               group_teardown);
}
