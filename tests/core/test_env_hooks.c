/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hooks a program registers for every environment it opens (keymgr/core/env.h): core/
 * calls only what was registered, an environment keeps the hooks it was opened with, and a
 * failing attach fails the open. Real configuration and SQLite store in a temp directory, no
 * token.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/core/env.h"
#include "tests/common/tmpconfig.h"

/* Relative paths resolve into the fixture's directory. */
static const char config_text[] =
	"version: 1\n"
	"environments:\n"
	"  dev:\n"
	"    token: { module: /usr/lib/softhsm/libsofthsm2.so, label: d, pin: file:./p }\n"
	"    store: ./dev.db\n"
	"    audit: { jsonl: ./audit.jsonl }\n";

typedef struct {
	km_test_config_t c;
	char jsonl[PATH_MAX + 32];
} fx_t;

static int setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	if (fx == NULL || km_test_config_create(&fx->c, config_text) != 0) {
		free(fx);
		return -1;
	}
	snprintf(fx->jsonl, sizeof(fx->jsonl), "%s/audit.jsonl", fx->c.dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	km_env_set_hooks(NULL);
	km_test_config_destroy(&fx->c);
	free(fx);
	return 0;
}

/* ---- a recording hook table ---- */

static struct {
	int attached, detached;
	char env_seen[64];
	bool store_open;
	void *detached_state;
	int fail_with;              /* attach returns this (KM_EOK: succeeds) */
} rec;

static int marker;

static int rec_attach(km_env_t *env, void **state, char *err, size_t errlen)
{
	rec.attached++;
	snprintf(rec.env_seen, sizeof(rec.env_seen), "%s", km_env_name(env));
	rec.store_open = km_env_store(env) != NULL;
	*state = &marker;
	if (rec.fail_with != KM_EOK)
		snprintf(err, errlen, "recording hook refuses environment '%s'", km_env_name(env));
	return rec.fail_with;
}

static void rec_detach(void *state)
{
	rec.detached++;
	rec.detached_state = state;
}

static const km_env_hooks_t rec_hooks = { .attach = rec_attach, .detach = rec_detach };

/* Appends one event through env; returns the policy_hash recorded with it. */
static void append_event(km_env_t *env, char policy_hash[KM_STORE_HASH_HEX + 1])
{
	km_store_t *s = km_env_store(env);
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	int64_t seq = 0;
	char err[256] = "";
	assert_int_equal(km_store_audit_append(s, "test.event", NULL, NULL, NULL, NULL, "hooks",
	                                       1800000000, &seq, err, sizeof(err)), KM_EOK);
	km_store_audit_filter_t f = { .from_seq = seq, .to_seq = seq };
	assert_int_equal(km_store_audit_query(s, &f, &ev, &n, err, sizeof(err)), KM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].action, "test.event");
	memcpy(policy_hash, ev[0].policy_hash, KM_STORE_HASH_HEX + 1);
	km_store_audit_events_free(ev, n);
}

static void test_env_hooks_none_registered(void **state)
{
	fx_t *fx = *state;
	km_env_t *env = NULL;
	char err[256] = "", hash[KM_STORE_HASH_HEX + 1];
	struct stat st;
	km_env_set_hooks(NULL);
	assert_int_equal(km_env_open(fx->c.cfg, "dev", &env, err, sizeof(err)), KM_EOK);
	append_event(env, hash);
	km_env_free(env);
	/* core/ by itself attaches no audit context: no policy, nothing streamed */
	assert_string_equal(hash, "");
	assert_int_not_equal(stat(fx->jsonl, &st), 0);
}

static void test_env_hooks_called_and_kept(void **state)
{
	fx_t *fx = *state;
	km_env_t *env = NULL, *env2 = NULL;
	char err[256] = "";
	memset(&rec, 0, sizeof(rec));
	km_env_set_hooks(&rec_hooks);
	assert_int_equal(km_env_open(fx->c.cfg, "dev", &env, err, sizeof(err)), KM_EOK);
	assert_int_equal(rec.attached, 1);
	assert_string_equal(rec.env_seen, "dev");
	assert_true(rec.store_open);
	assert_int_equal(rec.detached, 0);
	/* registering other hooks later changes nothing for an environment already open */
	km_env_set_hooks(NULL);
	assert_int_equal(km_env_open(fx->c.cfg, "dev", &env2, err, sizeof(err)), KM_EOK);
	assert_int_equal(rec.attached, 1);
	km_env_free(env2);
	assert_int_equal(rec.detached, 0);
	km_env_free(env);
	assert_int_equal(rec.detached, 1);
	assert_ptr_equal(rec.detached_state, &marker);
	km_env_free(NULL);
	assert_int_equal(rec.detached, 1);
}

static void test_env_hooks_attach_failure_fails_open(void **state)
{
	fx_t *fx = *state;
	km_env_t *env = (km_env_t *)&marker;
	char err[256] = "";
	memset(&rec, 0, sizeof(rec));
	rec.fail_with = KM_EIO;
	km_env_set_hooks(&rec_hooks);
	assert_int_equal(km_env_open(fx->c.cfg, "dev", &env, err, sizeof(err)), KM_EIO);
	assert_string_equal(err, "recording hook refuses environment 'dev'");
	assert_ptr_equal(env, (km_env_t *)&marker);      /* *ret untouched */
	assert_int_equal(rec.detached, 1);                /* what attach kept is released */
	assert_ptr_equal(rec.detached_state, &marker);
}

static void test_env_hooks_audit(void **state)
{
	fx_t *fx = *state;
	km_env_t *env = NULL;
	char err[256] = "", hash[KM_STORE_HASH_HEX + 1], want[KM_STORE_HASH_HEX + 1];
	char *text = NULL;
	struct stat st;
	km_env_set_hooks(&km_audit_env_hooks);
	assert_int_equal(km_env_open(fx->c.cfg, "dev", &env, err, sizeof(err)), KM_EOK);
	append_event(env, hash);
	km_env_free(env);
	/* the audit context keymgr and keymgrd register: the policy in force and the stream */
	assert_int_equal(km_audit_policy_canonical(fx->c.cfg, km_config_env(fx->c.cfg, "dev"), &text,
	                                           want), KM_EOK);
	free(text);
	assert_string_equal(hash, want);
	assert_int_equal(stat(fx->jsonl, &st), 0);
	assert_true(st.st_size > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_env_hooks_none_registered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_hooks_called_and_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_hooks_attach_failure_fails_open, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_env_hooks_audit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
