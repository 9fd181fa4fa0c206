/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keymgr/audit/audit.h"
#include "keymgr/common/error.h"
#include "keymgr/core/keyops.h"
#include "tests/audit/fixture.h"

extern char **environ;

static const char config_fmt[] =
	"# SPDX-License-Identifier: Apache-2.0\n"
	"# Written by tests/audit/fixture.c.\n"
	"version: 1\n"
	"environments:\n"
	"  development:\n"
	"    token:\n"
	"      module: %s\n"
	"      label: %s\n"
	"      pin: %s\n"
	"    store: %s\n"
	"    audit:\n"
	"      jsonl: %s\n"
	"%s"
	"    policy:\n"
	"      algorithms: [ ES256 ]\n"
	"      rotation_period: 30d\n"
	"      jwks_max_age: %s\n"
	"      max_token_ttl: 1h\n"
	"      clock_skew: 5m\n"
	"      publish_lead: 2h\n"
	"      retire_retention: 1d\n"
	"      destroy_after: %s\n"
	"    keysets:\n"
	"      api: { issuer: https://issuer.test, audiences: [ api.test ] }\n";

/* Writes the configuration with these two policy values (the others are fixed). */
static int write_config(audit_fx_t *fx, const char *jwks_max_age, const char *destroy_after)
{
	FILE *f = fopen(fx->config, "w");
	if (f == NULL)
		return -1;
	fprintf(f, config_fmt, fx->hsm.module, fx->hsm.label, fx->hsm.pin_source, fx->store,
	        fx->jsonl, fx->audit_token, jwks_max_age, destroy_after);
	return fclose(f) == 0 ? 0 : -1;
}

static int open_env(audit_fx_t *fx)
{
	char err[1024] = "";
	int r = km_config_load(fx->config, &fx->cfg, err, sizeof(err));
	if (r == KM_EOK)
		r = km_env_open(fx->cfg, AUDIT_FX_ENV, &fx->env, err, sizeof(err));
	if (r != KM_EOK)
		fprintf(stderr, "audit fixture: %s\n", err);
	return r == KM_EOK ? 0 : -1;
}

int audit_fx_create(audit_fx_t *fx)
{
	memset(fx, 0, sizeof(*fx));
	/* As keymgr and keymgrd do at start: every environment opened is audited. */
	km_env_set_hooks(&km_audit_env_hooks);
	if (km_test_softhsm_create(&fx->hsm, "audit-dev") != 0)
		return -1;
	snprintf(fx->config, sizeof(fx->config), "%s/keymgr.yaml", fx->hsm.dir);
	snprintf(fx->store, sizeof(fx->store), "%s/development.db", fx->hsm.dir);
	snprintf(fx->jsonl, sizeof(fx->jsonl), "%s/audit.jsonl", fx->hsm.dir);
	if (write_config(fx, "1h", "7d") != 0)
		return -1;
	if (setenv("KEYMGR_CONFIG", fx->config, 1) != 0)
		return -1;
	return open_env(fx);
}

int audit_fx_keyset(audit_fx_t *fx, const char *name, int64_t at)
{
	km_store_keyset_t ks;
	char err[1024] = "";
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.name, sizeof(ks.name), "%s", name);
	ks.alg = KM_ALG_ES256;
	snprintf(ks.owner, sizeof(ks.owner), "team-a");
	snprintf(ks.purpose, sizeof(ks.purpose), "access-token");
	if (km_keyset_create(fx->env, &ks, "tester", at, err, sizeof(err)) != KM_EOK) {
		fprintf(stderr, "audit fixture: key set %s: %s\n", name, err);
		return -1;
	}
	return 0;
}

void audit_fx_destroy(audit_fx_t *fx)
{
	km_env_free(fx->env);
	km_config_free(fx->cfg);
	fx->env = NULL;
	fx->cfg = NULL;
	km_test_softhsm_destroy(&fx->hsm);
}

void audit_fx_reopen(audit_fx_t *fx)
{
	km_env_free(fx->env);
	km_config_free(fx->cfg);
	fx->env = NULL;
	fx->cfg = NULL;
	if (open_env(fx) != 0)
		abort();
}

void audit_fx_set_audit_token(audit_fx_t *fx, const char *selector, const char *pin_source)
{
	fx->audit_token[0] = '\0';
	if (selector != NULL)
		snprintf(fx->audit_token, sizeof(fx->audit_token), "      token:\n        module: %s\n"
		         "        %s\n        pin: %s\n", fx->hsm.module, selector, pin_source);
	if (write_config(fx, "1h", "7d") != 0)
		abort();
	audit_fx_reopen(fx);
}

void audit_fx_configure(audit_fx_t *fx, const char *jwks_max_age, const char *destroy_after)
{
	if (write_config(fx, jwks_max_age, destroy_after) != 0)
		abort();
	audit_fx_reopen(fx);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (buf == NULL) {
		if (f)
			fclose(f);
		return NULL;
	}
	buf[0] = '\0';
	if (f == NULL)
		return buf;
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			char *p = realloc(buf, cap * 2);
			if (p == NULL)
				break;
			buf = p;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

int audit_fx_run(audit_fx_t *fx, const char *const *argv, audit_run_t *r)
{
	char out_path[400], err_path[400];
	snprintf(out_path, sizeof(out_path), "%s/run.out", fx->hsm.dir);
	snprintf(err_path, sizeof(err_path), "%s/run.err", fx->hsm.dir);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = slurp(out_path);
	r->err = slurp(err_path);
	return r->out && r->err ? 0 : -1;
}

void audit_run_free(audit_run_t *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int audit_fx_sql(const char *db, const char *sql)
{
	const char *argv[] = { "/usr/bin/sqlite3", "-bail", db, sql, NULL };
	pid_t pid;
	if (posix_spawn(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
		return -1;
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int audit_fx_copy_store(audit_fx_t *fx, const char *path)
{
	char sql[512];
	unlink(path);
	/* VACUUM INTO writes a consistent copy including what is still in the WAL. */
	snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", path);
	if (audit_fx_sql(fx->store, sql) != 0)
		return -1;
	return chmod(path, 0600);
}

size_t audit_fx_count(audit_fx_t *fx, const char *action)
{
	km_store_audit_filter_t f = { .action = action };
	km_store_audit_event_t *ev = NULL;
	size_t n = 0;
	char err[256];
	if (km_store_audit_query(km_env_store(fx->env), &f, &ev, &n, err, sizeof(err)) != KM_EOK)
		abort();
	km_store_audit_events_free(ev, n);
	return n;
}

static const char *srcdir = ".";

void audit_fx_set_srcdir(const char *dir)
{
	srcdir = dir;
}

const char *audit_fx_srcdir(void)
{
	return srcdir;
}

const char *audit_fx_args(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PATH-TO-KEYMGR TESTS-AUDIT-SRCDIR\n", argv[0]);
		return NULL;
	}
	audit_fx_set_srcdir(argv[2]);
	return argv[1];
}
