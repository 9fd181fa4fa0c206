/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr.yaml loading: real files in a temporary directory, parsed by the real loader.
 * argv[1] is docs/keymgr.yaml.example, loaded to prove the shipped example stays valid.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config.h"

static const char *example_path;

typedef struct {
	char dir[PATH_MAX];
	char path[PATH_MAX + 32];       /* DIR/keymgr.yaml */
	char err[1024];
	km_config_t *cfg;
} fx_t;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(p, 0700);
	return remove(p);
}

static int setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof(fx->dir), "%s/keymgr-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	/* realpath: messages and resolved paths use the canonical directory */
	char real[PATH_MAX];
	if (realpath(fx->dir, real) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->dir, sizeof(fx->dir), "%s", real);
	snprintf(fx->path, sizeof(fx->path), "%s/keymgr.yaml", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	km_config_free(fx->cfg);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Writes DIR/rel (creating parent directories). */
static void write_file(fx_t *fx, const char *rel, const char *text)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", fx->dir, rel);
	for (char *s = p + strlen(fx->dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(p, 0700);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Loads DIR/keymgr.yaml with text; returns the code. On failure cfg must stay untouched. */
static int load_text(fx_t *fx, const char *text)
{
	write_file(fx, "keymgr.yaml", text);
	km_config_free(fx->cfg);
	fx->cfg = NULL;
	km_config_t *sentinel = (km_config_t *)(uintptr_t)0x1;
	km_config_t *cfg = sentinel;
	fx->err[0] = '\0';
	int r = km_config_load(fx->path, &cfg, fx->err, sizeof(fx->err));
	if (r == KM_EOK) {
		assert_true(cfg != sentinel && cfg != NULL);
		fx->cfg = cfg;
	} else {
		assert_ptr_equal(cfg, sentinel);
		assert_true(fx->err[0] != '\0');
	}
	return r;
}

/* Loads DIR/keymgr.yaml with text through km_config_load_partial(); like load_text(). */
static int load_partial_text(fx_t *fx, const char *text)
{
	write_file(fx, "keymgr.yaml", text);
	km_config_free(fx->cfg);
	fx->cfg = NULL;
	fx->err[0] = '\0';
	km_config_t *cfg = NULL;
	int r = km_config_load_partial(fx->path, &cfg, fx->err, sizeof(fx->err));
	if (r == KM_EOK)
		fx->cfg = cfg;
	else
		assert_true(cfg == NULL && fx->err[0] != '\0');
	return r;
}

#define assert_contains(hay, needle)                                                           \
	do {                                                                                   \
		if (strstr((hay), (needle)) == NULL)                                           \
			fail_msg("'%s' does not contain '%s'", (hay), (needle));               \
	} while (0)

#define assert_not_contains(hay, needle)                                                       \
	do {                                                                                   \
		if (strstr((hay), (needle)) != NULL)                                           \
			fail_msg("'%s' contains '%s'", (hay), (needle));                       \
	} while (0)

/* The message must start with "DIR/keymgr.yaml:LINE:COL: ". */
static void assert_at(fx_t *fx, int line, int col)
{
	char prefix[PATH_MAX + 64];
	snprintf(prefix, sizeof(prefix), "%s:%d:%d: ", fx->path, line, col);
	if (strncmp(fx->err, prefix, strlen(prefix)) != 0)
		fail_msg("'%s' does not start with '%s'", fx->err, prefix);
}

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define HEAD "version: 1\nenvironments:\n"
#define ENV_PROD                                                                               \
	"  production:\n"                                                                      \
	"    token:\n"                                                                         \
	"      module: " MODULE "\n"                                                           \
	"      label: keymgr-production\n"                                                     \
	"      pin: env:KM_TEST_PIN\n"                                                         \
	"    store: production.db\n"
#define ENV_STAGING                                                                            \
	"  staging:\n"                                                                         \
	"    token:\n"                                                                         \
	"      module: " MODULE "\n"                                                           \
	"      label: keymgr-staging\n"                                                        \
	"      pin: file:pins/staging.pin\n"                                                   \
	"    store: staging.db\n"

/* --- good input --- */

static void test_config_load_round_trip(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx,
		"version: 1\n"
		"defaults:\n"
		"  policy: { clock_skew: 4m }\n"
		"environments:\n"
		"  production:\n"
		"    token:\n"
		"      module: " MODULE "\n"
		"      label: keymgr-production\n"
		"      pin: file:/etc/keymgr/production.pin\n"
		"      sessions: 8\n"
		"      keepalive: 20\n"
		"    store: /var/lib/keymgr/production.db\n"
		"    http:\n"
		"      path: /prod\n"
		"      snapshots: [ /var/www/jwks/production.json, /srv/p.json ]\n"
		"    policy:\n"
		"      rotation_period: 60d\n"
		"      algorithms: [ ES256, EdDSA ]\n"
		"    keysets:\n"
		"      api:\n"
		"        issuer: https://auth.example.com\n"
		"        audiences: [ api.example.com, admin.example.com ]\n"
		"  staging:\n"
		"    token: { module: " MODULE ", serial: \"0123abcd\", pin: prompt }\n"
		"    store: /var/lib/keymgr/staging.db\n"
		"  development:\n"
		"    token:\n"
		"      module: " MODULE "\n"
		"      label: keymgr-development\n"
		"    store: /var/lib/keymgr/development.db\n"
		"daemon:\n"
		"  listen: \"::1\"\n"
		"  port: 9443\n"
		"  control_socket: /run/km.sock\n"), KM_EOK);
	km_config_t *cfg = fx->cfg;
	assert_string_equal(km_config_path(cfg), fx->path);
	assert_int_equal(km_config_env_count(cfg), 3);
	assert_string_equal(km_config_env_at(cfg, 0)->name, "production");
	assert_string_equal(km_config_env_at(cfg, 1)->name, "staging");
	assert_string_equal(km_config_env_at(cfg, 2)->name, "development");
	assert_null(km_config_env_at(cfg, 3));

	const km_env_cfg_t *p = km_config_env(cfg, "production");
	assert_non_null(p);
	assert_string_equal(p->token.module_path, MODULE);
	assert_string_equal(p->token.token_label, "keymgr-production");
	assert_null(p->token.token_serial);
	assert_string_equal(p->token.pin_source, "file:/etc/keymgr/production.pin");
	assert_int_equal(p->token.sessions, 8);
	assert_int_equal(p->token.keepalive, 20);
	assert_string_equal(p->store, "/var/lib/keymgr/production.db");
	assert_string_equal(p->http_path, "/prod");
	assert_int_equal(p->n_snapshots, 2);
	assert_string_equal(p->snapshots[0], "/var/www/jwks/production.json");
	assert_string_equal(p->snapshots[1], "/srv/p.json");
	assert_int_equal(p->policy.rotation_period, 60 * 86400);
	assert_int_equal(p->policy.src[KM_POLICY_F_ROTATION_PERIOD], KM_POLICY_SRC_ENV);
	assert_int_equal(p->policy.clock_skew, 4 * 60);
	assert_int_equal(p->policy.src[KM_POLICY_F_CLOCK_SKEW], KM_POLICY_SRC_ENV);
	assert_int_equal(p->policy.src[KM_POLICY_F_JWKS_MAX_AGE], KM_POLICY_SRC_BUILTIN);
	assert_int_equal(p->policy.algorithms, (1u << KM_ALG_ES256) | (1u << KM_ALG_EDDSA));
	assert_int_equal(p->n_keysets, 1);
	assert_string_equal(p->keysets[0]->name, "api");

	const km_keyset_cfg_t *ks = km_config_keyset(cfg, "production", "api");
	assert_non_null(ks);
	assert_ptr_equal(ks, p->keysets[0]);
	assert_string_equal(ks->issuer, "https://auth.example.com");
	assert_int_equal(ks->n_audiences, 2);
	assert_string_equal(ks->audiences[0], "api.example.com");
	assert_string_equal(ks->audiences[1], "admin.example.com");
	assert_null(km_config_keyset(cfg, "production", "other"));
	assert_null(km_config_keyset(cfg, "staging", "api"));

	const km_env_cfg_t *s = km_config_env(cfg, "staging");
	assert_non_null(s);
	assert_null(s->token.token_label);
	assert_string_equal(s->token.token_serial, "0123abcd");
	assert_string_equal(s->token.pin_source, "prompt");
	assert_int_equal(s->token.sessions, KM_CONFIG_DEFAULT_SESSIONS);
	assert_int_equal(s->token.keepalive, KM_CONFIG_DEFAULT_KEEPALIVE);
	assert_string_equal(s->http_path, "/staging");        /* default: /ENV */
	assert_int_equal(s->n_snapshots, 0);
	assert_int_equal(s->n_keysets, 0);

	const km_env_cfg_t *d = km_config_env(cfg, "development");
	assert_string_equal(d->token.pin_source, "prompt");   /* default */

	const km_daemon_cfg_t *dm = km_config_daemon(cfg);
	assert_string_equal(dm->listen, "::1");
	assert_int_equal(dm->port, 9443);
	assert_string_equal(dm->control_socket, "/run/km.sock");

	assert_null(km_config_env(cfg, "qa"));
	assert_null(km_config_env(cfg, "Production"));
	assert_null(km_config_env(cfg, NULL));
}

static void test_config_load_daemon_defaults(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD), KM_EOK);
	const km_daemon_cfg_t *dm = km_config_daemon(fx->cfg);
	assert_string_equal(dm->listen, KM_CONFIG_DEFAULT_LISTEN);
	assert_int_equal(dm->port, KM_CONFIG_DEFAULT_PORT);
	assert_string_equal(dm->control_socket, KM_CONFIG_DEFAULT_CONTROL_SOCKET);
}

static void test_config_load_example(void **state)
{
	fx_t *fx = *state;
	assert_non_null(example_path);
	km_config_t *cfg = NULL;
	int r = km_config_load(example_path, &cfg, fx->err, sizeof(fx->err));
	if (r != KM_EOK)
		fail_msg("%s: %s", example_path, fx->err);
	fx->cfg = cfg;
	assert_int_equal(km_config_env_count(cfg), 3);
	static const char *const names[] = { "production", "staging", "development" };
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", km_config_path(cfg));
	*strrchr(dir, '/') = '\0';
	for (size_t i = 0; i < 3; i++) {
		const km_env_cfg_t *env = km_config_env_at(cfg, i);
		char want[PATH_MAX + 64];
		assert_string_equal(env->name, names[i]);
		snprintf(want, sizeof(want), "keymgr-%s", names[i]);
		assert_string_equal(env->token.token_label, want);
		snprintf(want, sizeof(want), "file:%s/var/pins/%s.pin", dir, names[i]);
		assert_string_equal(env->token.pin_source, want);
		snprintf(want, sizeof(want), "%s/var/%s.db", dir, names[i]);
		assert_string_equal(env->store, want);
		snprintf(want, sizeof(want), "/%s", names[i]);
		assert_string_equal(env->http_path, want);
	}
	char names_buf[128];
	assert_string_equal(km_config_env_names(cfg, names_buf, sizeof(names_buf)),
	                    "production, staging, development");
	assert_string_equal(km_config_daemon(cfg)->listen, "127.0.0.1");
}

/* --- file location --- */

static void test_config_locate_order(void **state)
{
	(void)state;
	char out[PATH_MAX];
	unsetenv(KM_CONFIG_ENV_VAR);
	assert_int_equal(km_config_locate(NULL, out, sizeof(out)), KM_EOK);
	assert_string_equal(out, KM_CONFIG_DEFAULT_PATH);
	setenv(KM_CONFIG_ENV_VAR, "/tmp/from-env.yaml", 1);
	assert_int_equal(km_config_locate(NULL, out, sizeof(out)), KM_EOK);
	assert_string_equal(out, "/tmp/from-env.yaml");
	assert_int_equal(km_config_locate("cli.yaml", out, sizeof(out)), KM_EOK);
	assert_string_equal(out, "cli.yaml");
	setenv(KM_CONFIG_ENV_VAR, "", 1);
	assert_int_equal(km_config_locate(NULL, out, sizeof(out)), KM_EOK);
	assert_string_equal(out, KM_CONFIG_DEFAULT_PATH);
	unsetenv(KM_CONFIG_ENV_VAR);
	strcpy(out, "unchanged");
	assert_int_equal(km_config_locate("", out, sizeof(out)), KM_EINVAL);
	assert_int_equal(km_config_locate("/a/long/path.yaml", out, 5), KM_ERANGE);
	assert_string_equal(out, "unchanged");
}

static void test_config_load_missing_file(void **state)
{
	fx_t *fx = *state;
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/nope.yaml", fx->dir);
	km_config_t *cfg = NULL;
	assert_int_equal(km_config_load(p, &cfg, fx->err, sizeof(fx->err)), KM_ENOENT);
	assert_null(cfg);
	assert_contains(fx->err, p);
	assert_contains(fx->err, "No such file");
}

static void test_config_load_directory(void **state)
{
	fx_t *fx = *state;
	km_config_t *cfg = NULL;
	/* A directory is never a config file, whoever runs the test (root included). */
	assert_int_equal(km_config_load(fx->dir, &cfg, fx->err, sizeof(fx->err)),
	                 KM_CONFIG_EINVAL);
	assert_null(cfg);
	assert_contains(fx->err, fx->dir);
	assert_contains(fx->err, "not a regular file");
}

static void test_config_load_unreadable_file(void **state)
{
	fx_t *fx = *state;
	if (geteuid() == 0) {
		/* root reads a mode-000 file anyway; test_config_load_directory covers root. */
		print_message("running as root: mode 000 does not stop root, sub-case skipped\n");
		skip();
	}
	write_file(fx, "secret.yaml", HEAD ENV_PROD);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/secret.yaml", fx->dir);
	assert_int_equal(chmod(p, 0), 0);
	km_config_t *cfg = NULL;
	assert_int_equal(km_config_load(p, &cfg, fx->err, sizeof(fx->err)), KM_EACCES);
	assert_null(cfg);
	assert_contains(fx->err, p);
	assert_contains(fx->err, "Permission denied");
}

static void test_config_load_empty_and_multi_document(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, ""), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "empty configuration");
	assert_int_equal(load_text(fx, "# only a comment\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "empty configuration");
	assert_int_equal(load_text(fx, HEAD ENV_PROD "---\n" HEAD ENV_STAGING), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "more than one YAML document");
	assert_int_equal(load_text(fx, "- just\n- a list\n"), KM_CONFIG_EINVAL);
	assert_at(fx, 1, 1);
	assert_contains(fx->err, "expected a mapping, got a list");
}

/* --- YAML syntax --- */

static void test_config_load_syntax_error(void **state)
{
	fx_t *fx = *state;
	/* unclosed flow sequence: reported where the parser gives up */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http:\n      snapshots: [ a.json\n"),
	                 KM_CONFIG_EPARSE);
	assert_contains(fx->err, fx->path);
	assert_contains(fx->err, "YAML syntax error");
	assert_at(fx, 11, 1);

	/* duplicate key */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    store: other.db\n"), KM_CONFIG_EPARSE);
	assert_at(fx, 9, 5);
	assert_contains(fx->err, "duplicate key");

	/* bad indentation */
	assert_int_equal(load_text(fx, "version: 1\n  environments: {}\n"), KM_CONFIG_EPARSE);
	assert_contains(fx->err, fx->path);
	assert_true(strncmp(fx->err + strlen(fx->path), ":2:", 3) == 0 ||
	            strncmp(fx->err + strlen(fx->path), ":1:", 3) == 0);
}

/* --- schema --- */

/* Aliases: a small document uses them; a "billion laughs" (nested aliases that expand to
 * 10^9 nodes from a dozen lines) is refused before anything is expanded, where it crosses
 * the limit, instead of eating gigabytes. */
static void test_config_load_alias_expansion_bounded(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD
	                           "    http:\n"
	                           "      snapshots: &snaps [ a.json, b.json ]\n"
	                           "  staging:\n"
	                           "    token:\n"
	                           "      module: " MODULE "\n"
	                           "      label: keymgr-staging\n"
	                           "      pin: env:KM_TEST_PIN\n"
	                           "    store: staging.db\n"
	                           "    http:\n"
	                           "      path: /stg\n"
	                           "      snapshots: [ c.json ]\n"), KM_EOK);
	char bomb[2048] = "version: 1\n"
	                  "a0: &a0 [ x, x, x, x, x, x, x, x, x, x ]\n";
	for (int i = 1; i <= 9; i++) {
		size_t used = strlen(bomb);
		snprintf(bomb + used, sizeof(bomb) - used, "a%d: &a%d [ *a%d, *a%d, *a%d, *a%d, *a%d, "
		         "*a%d, *a%d, *a%d, *a%d, *a%d ]\n", i, i, i - 1, i - 1, i - 1, i - 1, i - 1,
		         i - 1, i - 1, i - 1, i - 1, i - 1);
	}
	assert_int_equal(load_text(fx, bomb), KM_CONFIG_EPARSE);
	assert_contains(fx->err, fx->path);
	assert_contains(fx->err, "expands to more than 100000 YAML nodes");
	/* refused at the alias that crosses the limit: the tenth of line 6 (a4 holds 111,111) */
	assert_at(fx, 6, 57);
	/* nesting itself is bounded too */
	char deep[512] = "version: 1\nx: ";
	for (int i = 0; i < 70; i++)
		strcat(deep, "[");
	for (int i = 0; i < 70; i++)
		strcat(deep, "]");
	strcat(deep, "\n");
	assert_int_equal(load_text(fx, deep), KM_CONFIG_EPARSE);
	assert_contains(fx->err, "nested more than 64 levels deep");
}

static void test_config_load_unknown_key(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    stroe: x.db\n"), KM_CONFIG_EINVAL);
	assert_at(fx, 9, 5);
	assert_contains(fx->err, "unknown key 'stroe'");
	assert_contains(fx->err, "environments.production");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    policy:\n      rotation_perod: 30d\n"),
	                 KM_CONFIG_EINVAL);
	assert_at(fx, 10, 7);
	assert_contains(fx->err, "unknown key 'rotation_perod'");
	assert_contains(fx->err, "rotation_period");        /* the list of valid keys */

	assert_int_equal(load_text(fx, HEAD ENV_PROD "deamon: {}\n"), KM_CONFIG_EINVAL);
	assert_at(fx, 9, 1);
	assert_contains(fx->err, "unknown key 'deamon'");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    token2: {}\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "unknown key 'token2'");

	assert_int_equal(load_text(fx,
		"version: 1\nenvironments:\n  production:\n    token:\n      module: " MODULE "\n"
		"      label: x\n      pim: prompt\n    store: a.db\n"), KM_CONFIG_EINVAL);
	assert_at(fx, 7, 7);
	assert_contains(fx->err, "unknown key 'pim'");
}

static void test_config_load_wrong_type(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { path: { a: 1 } }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "http.path: expected a scalar, got a mapping");
	assert_at(fx, 9, 13);

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http:\n      snapshots: one.json\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "expected a list, got a scalar");
	assert_at(fx, 10, 18);

	assert_int_equal(load_text(fx, "version: 1\nenvironments: [ production ]\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "environments: expected a mapping, got a list");
	assert_at(fx, 2, 1);

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    policy:\n      algorithms: ES256\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "algorithms: expected a list");
	assert_at(fx, 10, 19);

	assert_int_equal(load_text(fx, HEAD ENV_PROD "daemon: { port: http }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "daemon.port: expected an integer from 1 to 65535");
	assert_at(fx, 9, 17);

	assert_int_equal(load_text(fx, HEAD ENV_PROD "daemon: { port: 70000 }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "daemon.port");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    policy:\n      rotation_period: soon\n"),
	                 KM_CONFIG_EINVAL);
	assert_at(fx, 10, 24);
	assert_contains(fx->err, "rotation_period");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "daemon: { listen: localhost }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "daemon.listen");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    keysets: { api: { issuer: ~ } }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "issuer: missing value");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    policy: !include p.yaml\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "tags are not supported");
}

static void test_config_load_missing_required(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, "environments:\n" ENV_PROD), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'version: 1' is required");
	assert_int_equal(load_text(fx, "version: 2\nenvironments:\n" ENV_PROD), KM_CONFIG_EINVAL);
	assert_at(fx, 1, 10);
	assert_contains(fx->err, "version: 2 is not supported");
	assert_int_equal(load_text(fx, "version: 1\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'environments' is required");
	assert_int_equal(load_text(fx, "version: 1\nenvironments: {}\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "at least one environment");
	assert_int_equal(load_text(fx, HEAD "  production:\n    token: { module: " MODULE
	                           ", label: a }\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'store' is required");
	assert_int_equal(load_text(fx, HEAD "  production:\n    store: a.db\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'token' is required");
	assert_int_equal(load_text(fx, HEAD "  production:\n    token: { module: " MODULE
	                           ", label: a, serial: b }\n    store: a.db\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "exactly one of 'label' and 'serial'");
	assert_int_equal(load_text(fx, HEAD "  production:\n    token: { module: libsofthsm2.so"
	                           ", label: a }\n    store: a.db\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "must be an absolute path");
	assert_int_equal(load_text(fx, HEAD "  production:\n    token: { module: " MODULE ", label: "
	                           "this-label-is-far-too-long-for-pkcs11 }\n    store: a.db\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "longer than 32");
	/* token.keepalive: seconds, 0 (off) to a day */
	assert_int_equal(load_text(fx, HEAD "  production:\n    token: { module: " MODULE
	                           ", label: a, keepalive: 0 }\n    store: a.db\n"), KM_EOK);
	assert_int_equal(km_config_env(fx->cfg, "production")->token.keepalive, 0);
	static const char *const bad_keepalive[] = { "-1", "86401", "1m", "yes" };
	for (size_t i = 0; i < sizeof(bad_keepalive) / sizeof(bad_keepalive[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), HEAD "  production:\n    token: { module: " MODULE
		         ", label: a, keepalive: %s }\n    store: a.db\n", bad_keepalive[i]);
		assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
		assert_contains(fx->err, "keepalive");
	}
}

static void test_config_load_bad_env_name(void **state)
{
	fx_t *fx = *state;
	static const char *const bad[] = { "Production", "prod/staging", "../x", "\"a b\"", "-x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text), HEAD "  %s:\n    token: { module: " MODULE ", label: a }\n"
		         "    store: a.db\n", bad[i]);
		assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
		assert_at(fx, 3, bad[i][0] == '"' ? 4 : 3);   /* quoted: the text after the quote */
		assert_contains(fx->err, "invalid environment name");
	}
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    keysets:\n      API: {}\n"),
	                 KM_CONFIG_EINVAL);
	assert_at(fx, 10, 7);
	assert_contains(fx->err, "invalid key set name 'API'");
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    keysets:\n      ../api: {}\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "invalid key set name");
}

static void test_config_load_bad_pin_source(void **state)
{
	fx_t *fx = *state;
	static const char *const bad[] = { "\"4711-secret\"", "\"file:\"", "\"env:9X\"",
	                                   "\"Prompt\"", "\"12345678\"" };
	static const char *const value[] = { "4711-secret", "file:", "env:9X", "Prompt",
	                                     "12345678" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text), HEAD "  production:\n    token:\n      module: " MODULE
		         "\n      label: a\n      pin: %s\n    store: a.db\n", bad[i]);
		assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
		assert_at(fx, 7, 13);       /* all quoted: the text after the quote */
		assert_contains(fx->err, "token.pin");
		if (strchr(value[i], ':') == NULL || strlen(value[i]) > 6)
			assert_not_contains(fx->err, value[i]);
	}
	/* the message about a pasted PIN points at the right fix */
	assert_int_equal(load_text(fx, HEAD "  production:\n    token:\n      module: " MODULE
	                           "\n      label: a\n      pin: 987654\n    store: a.db\n"),
	                 KM_CONFIG_EINVAL);
	assert_not_contains(fx->err, "987654");
	assert_contains(fx->err, "file:PATH");
}

/* --- the wall --- */

static void test_config_wall_shared_token(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"  staging:\n    token: { module: " MODULE ", label: keymgr-production }\n"
		"    store: s.db\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a token");
	assert_contains(fx->err, "keymgr-production");
	assert_at(fx, 10, 5);

	/* same serial, even if spelled with another module path */
	assert_int_equal(load_text(fx, HEAD
		"  production:\n    token: { module: " MODULE ", serial: abc123 }\n    store: p.db\n"
		"  staging:\n    token: { module: /opt/other.so, serial: abc123 }\n    store: s.db\n"),
		KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a token (serial abc123)");

	/* same label in different modules: different tokens */
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"  staging:\n    token: { module: /opt/other.so, label: keymgr-production }\n"
		"    store: s.db\n"), KM_EOK);
}

/* audit.token (issue 16): the audit key in a token of its own, with its own PIN. */
static void test_config_audit_token(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"    audit:\n      token: { module: " MODULE ", label: audit-production,"
		" pin: file:pins/audit.pin }\n"), KM_EOK);
	const km_env_cfg_t *e = km_config_env(fx->cfg, "production");
	assert_true(e->has_audit_token);
	assert_string_equal(e->audit_token.token_label, "audit-production");
	assert_non_null(strstr(e->audit_token.pin_source, "/pins/audit.pin"));
	assert_string_equal(e->token.token_label, "keymgr-production");
	/* without it: the environment's token */
	assert_int_equal(load_text(fx, HEAD ENV_PROD), KM_EOK);
	assert_false(km_config_env(fx->cfg, "production")->has_audit_token);

	/* the environment's own token separates nothing */
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"    audit:\n      token: { module: " MODULE ", label: keymgr-production }\n"),
		KM_CONFIG_EINVAL);
	assert_contains(fx->err, "audit.token is a token (label keymgr-production in module");
	assert_contains(fx->err, "the environment's own token");
	assert_at(fx, 10, 7);
	/* another environment's token, or its audit token: the wall */
	assert_int_equal(load_text(fx, HEAD ENV_PROD ENV_STAGING
		"    audit:\n      token: { module: " MODULE ", label: keymgr-production }\n"),
		KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a token");
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"    audit: { token: { module: " MODULE ", serial: a1 } }\n" ENV_STAGING
		"    audit: { token: { module: /opt/other.so, serial: a1 } }\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a token (serial a1)");
	/* a token mapping like any other: module and label or serial required */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    audit: { token: { label: x } }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "environments.production.audit.token: 'module' is required");
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    audit: { token: yes }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "environments.production.audit.token");
}

static void test_config_daemon_remove_unsafe_keys(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD), KM_EOK);
	assert_false(km_config_daemon(fx->cfg)->remove_unsafe_keys);
	assert_int_equal(load_text(fx, HEAD ENV_PROD "daemon: { remove_unsafe_keys: true }\n"),
	                 KM_EOK);
	assert_true(km_config_daemon(fx->cfg)->remove_unsafe_keys);
	assert_int_equal(load_text(fx, HEAD ENV_PROD "daemon: { remove_unsafe_keys: 1 }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "daemon.remove_unsafe_keys: expected true or false");
}

static void test_config_wall_shared_store(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"  staging:\n    token: { module: " MODULE ", label: s }\n"
		"    store: ./sub/../production.db\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a file");
	assert_contains(fx->err, "production.db");
	assert_at(fx, 11, 12);

	/* the same directory through a symlink */
	char real[PATH_MAX + 16], link[PATH_MAX + 16];
	snprintf(real, sizeof(real), "%s/real", fx->dir);
	snprintf(link, sizeof(link), "%s/link", fx->dir);
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);
	assert_int_equal(load_text(fx, HEAD
		"  production:\n    token: { module: " MODULE ", label: p }\n    store: real/k.db\n"
		"  staging:\n    token: { module: " MODULE ", label: s }\n    store: link/k.db\n"),
		KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a file");

	/* a snapshot file that is another environment's store */
	assert_int_equal(load_text(fx, HEAD ENV_PROD ENV_STAGING
		"    http: { snapshots: [ production.db ] }\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a file");
	assert_contains(fx->err, "store of 'production', snapshot file of 'staging'");

	/* within one environment: store used as snapshot */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { snapshots: [ production.db ] }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "environment 'production' uses");
}

/* Two environments on PostgreSQL may not share one database and schema, however the URIs
 * are spelt; separate schemas (or databases) are separate stores. */
static void test_config_wall_shared_postgresql_store(void **state)
{
	fx_t *fx = *state;
#define ENV_PG(name, label, uri) \
	"  " name ":\n    token: { module: " MODULE ", label: " label " }\n    store: " uri "\n"
	assert_int_equal(load_text(fx, HEAD
		ENV_PG("production", "p", "postgresql://keymgr:secret@db.example:5432/keys")
		ENV_PG("staging", "s", "postgres://other@db.example/keys?options=-c%20search_path%3Dpublic")),
		KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a PostgreSQL database and schema");
	assert_not_contains(fx->err, "secret");
	/* the default socket directory spelt out is the same database too */
	assert_int_equal(load_text(fx, HEAD
		ENV_PG("production", "p", "postgresql:///keys?host=/var/run/postgresql")
		ENV_PG("staging", "s", "postgresql:///keys")), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "share a PostgreSQL database and schema");

	/* one database, a schema each: two stores; the URI is kept as written */
	assert_int_equal(load_text(fx, HEAD
		ENV_PG("production", "p", "postgresql:///keys?options=-csearch_path%3Dproduction")
		ENV_PG("staging", "s", "postgresql:///keys?options=-csearch_path%3Dstaging")), KM_EOK);
	const km_env_cfg_t *e = NULL;
	assert_int_equal(km_config_env_lookup(fx->cfg, "staging", &e, fx->err, sizeof(fx->err)),
	                 KM_EOK);
	assert_string_equal(e->store, "postgresql:///keys?options=-csearch_path%3Dstaging");
	char local[PATH_MAX + 32];
	snprintf(local, sizeof(local), "%s/staging.local", fx->dir);
	assert_string_equal(e->local, local);

	/* a schema that is not a plain name is refused where it is written */
	assert_int_equal(load_text(fx, HEAD
		ENV_PG("production", "p", "postgresql:///keys?options=-csearch_path%3DX;drop")),
		KM_CONFIG_EINVAL);
	assert_contains(fx->err, "not a plain lowercase schema name");
#undef ENV_PG
}

static void test_config_wall_shared_http(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { path: /jwks }\n" ENV_STAGING
	                           "    http: { path: /jwks }\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share an HTTP path");
	assert_at(fx, 16, 19);

	/* one path inside the other */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { path: /jwks }\n" ENV_STAGING
	                           "    http: { path: /jwks/staging }\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "share an HTTP path");

	/* the default path /staging against an explicit one */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { path: /staging }\n" ENV_STAGING),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "share an HTTP path");

	/* prefix of the string but not of the path: fine */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { path: /jwks }\n" ENV_STAGING
	                           "    http: { path: /jwks2 }\n"), KM_EOK);

	/* shared snapshot file */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { snapshots: [ out/j.json ] }\n"
	                           ENV_STAGING "    http: { snapshots: [ ./out/j.json ] }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "'staging' and 'production' share a file");

	assert_int_equal(load_text(fx, HEAD ENV_PROD "    http: { path: /a/../b }\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "http.path");
}

/* --- policy --- */

static void test_config_policy_unsafe(void **state)
{
	fx_t *fx = *state;
	/* P = 10m < M + S = 1h5m */
	assert_int_equal(load_text(fx, HEAD ENV_PROD "    policy:\n      publish_lead: 10m\n"),
	                 KM_POLICY_EUNSAFE);
	assert_contains(fx->err, "environment 'production'");
	assert_contains(fx->err, "publish_lead");
	assert_at(fx, 3, 3);

	/* unsafe only after a key set override, reported with the key set */
	assert_int_equal(load_text(fx, HEAD ENV_PROD
		"    keysets:\n      api:\n        policy: { jwks_max_age: 6h }\n"),
		KM_POLICY_EUNSAFE);
	assert_contains(fx->err, "environment 'production', key set 'api'");
	assert_contains(fx->err, "publish_lead");
	assert_at(fx, 10, 7);

	/* unsafe through defaults.policy applies to every environment */
	assert_int_equal(load_text(fx, "version: 1\ndefaults:\n  policy: { clock_skew: 3h }\n"
	                           "environments:\n" ENV_PROD), KM_POLICY_EUNSAFE);
	assert_contains(fx->err, "environment 'production'");
}

static void test_config_policy_keyset_precedence(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx,
		"version: 1\n"
		"defaults:\n"
		"  policy: { clock_skew: 1m, destroy_after: 3d }\n"
		"environments:\n"
		ENV_PROD
		"    policy: { rotation_period: 60d, destroy_after: 9d }\n"
		"    keysets:\n"
		"      api:\n"
		"        policy: { rotation_period: 20d, owners: [ team-a ] }\n"
		ENV_STAGING), KM_EOK);
	const km_env_cfg_t *p = km_config_env(fx->cfg, "production");
	assert_int_equal(p->policy.rotation_period, 60 * 86400);
	assert_int_equal(p->policy.src[KM_POLICY_F_ROTATION_PERIOD], KM_POLICY_SRC_ENV);
	assert_int_equal(p->policy.destroy_after, 9 * 86400);      /* env beats defaults */
	assert_int_equal(p->policy.clock_skew, 60);
	assert_int_equal(p->policy.n_owners, 0);

	km_policy_t k;
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "api", &k), KM_EOK);
	assert_int_equal(k.rotation_period, 20 * 86400);
	assert_int_equal(k.src[KM_POLICY_F_ROTATION_PERIOD], KM_POLICY_SRC_KEYSET);
	assert_int_equal(k.destroy_after, 9 * 86400);
	assert_int_equal(k.src[KM_POLICY_F_DESTROY_AFTER], KM_POLICY_SRC_ENV);
	assert_int_equal(k.clock_skew, 60);
	assert_int_equal(k.src[KM_POLICY_F_CLOCK_SKEW], KM_POLICY_SRC_ENV);
	assert_int_equal(k.src[KM_POLICY_F_MAX_TOKEN_TTL], KM_POLICY_SRC_BUILTIN);
	assert_int_equal(k.n_owners, 1);
	assert_string_equal(k.owners[0], "team-a");
	assert_int_equal(k.src[KM_POLICY_F_OWNERS], KM_POLICY_SRC_KEYSET);

	/* a key set the config does not mention gets the environment policy */
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "web", &k), KM_EOK);
	assert_int_equal(k.rotation_period, 60 * 86400);
	assert_int_equal(k.src[KM_POLICY_F_ROTATION_PERIOD], KM_POLICY_SRC_ENV);

	/* staging: built-in development defaults plus defaults.policy */
	const km_env_cfg_t *s = km_config_env(fx->cfg, "staging");
	km_policy_t dev;
	km_policy_defaults(&dev, "staging");
	assert_int_equal(s->policy.rotation_period, dev.rotation_period);
	assert_int_equal(s->policy.src[KM_POLICY_F_ROTATION_PERIOD], KM_POLICY_SRC_BUILTIN);
	assert_int_equal(s->policy.destroy_after, 3 * 86400);

	memset(&k, 0x5a, sizeof(k));
	km_policy_t before = k;
	assert_int_equal(km_config_keyset_policy(fx->cfg, "qa", "api", &k), KM_ENOENT);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "Bad/Name", &k), KM_ENAME);
	assert_memory_equal(&k, &before, sizeof(k));
}

/* --- paths and includes --- */

static void test_config_load_relative_paths(void **state)
{
	fx_t *fx = *state;
	write_file(fx, "etc/keymgr.yaml",
		"version: 1\n"
		"environments:\n"
		"  production:\n"
		"    token: { module: " MODULE ", label: p, pin: file:pins/p.pin }\n"
		"    store: ../var/./production.db\n"
		"    http: { snapshots: [ jwks//p.json ] }\n"
		"daemon: { control_socket: run/c.sock }\n");
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/etc/keymgr.yaml", fx->dir);
	assert_int_equal(km_config_load(p, &fx->cfg, fx->err, sizeof(fx->err)), KM_EOK);
	const km_env_cfg_t *env = km_config_env(fx->cfg, "production");
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "%s/var/production.db", fx->dir);
	assert_string_equal(env->store, want);
	snprintf(want, sizeof(want), "file:%s/etc/pins/p.pin", fx->dir);
	assert_string_equal(env->token.pin_source, want);
	snprintf(want, sizeof(want), "%s/etc/jwks/p.json", fx->dir);
	assert_string_equal(env->snapshots[0], want);
	snprintf(want, sizeof(want), "%s/etc/run/c.sock", fx->dir);
	assert_string_equal(km_config_daemon(fx->cfg)->control_socket, want);

	/* loading through a relative path of the config file itself */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->dir), 0);
	km_config_t *cfg = NULL;
	int r = km_config_load("etc/keymgr.yaml", &cfg, fx->err, sizeof(fx->err));
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(r, KM_EOK);
	snprintf(want, sizeof(want), "%s/var/production.db", fx->dir);
	assert_string_equal(km_config_env(cfg, "production")->store, want);
	snprintf(want, sizeof(want), "%s/etc/keymgr.yaml", fx->dir);
	assert_string_equal(km_config_path(cfg), want);
	km_config_free(cfg);
}

static void test_config_load_include(void **state)
{
	fx_t *fx = *state;
	write_file(fx, "policies/prod.yaml",
		"defaults:\n"
		"  policy: { max_token_ttl: 30m }\n"
		"environments:\n"
		"  production:\n"
		"    policy: { rotation_period: 45d }\n"
		"    keysets:\n"
		"      api: { policy: { purposes: [ id-token ] } }\n");
	assert_int_equal(load_text(fx, "version: 1\ninclude: policies/prod.yaml\n"
	                           "environments:\n" ENV_PROD
	                           "    keysets: { api: { issuer: https://i.example } }\n"
	                           ENV_STAGING), KM_EOK);
	const km_env_cfg_t *p = km_config_env(fx->cfg, "production");
	assert_int_equal(p->policy.rotation_period, 45 * 86400);
	assert_int_equal(p->policy.max_token_ttl, 30 * 60);
	assert_int_equal(km_config_env(fx->cfg, "staging")->policy.max_token_ttl, 30 * 60);
	const km_keyset_cfg_t *ks = km_config_keyset(fx->cfg, "production", "api");
	assert_non_null(ks);
	assert_string_equal(ks->issuer, "https://i.example");
	assert_int_equal(ks->policy.n_purposes, 1);
	assert_string_equal(ks->policy.purposes[0], "id-token");
	assert_int_equal(ks->policy.src[KM_POLICY_F_PURPOSES], KM_POLICY_SRC_KEYSET);

	/* the same field at the same level in two files: refused, naming both places */
	char inc[PATH_MAX + 32];
	snprintf(inc, sizeof(inc), "%s/policies/prod.yaml", fx->dir);
	assert_int_equal(load_text(fx, "version: 1\ninclude: [ policies/prod.yaml ]\n"
	                           "environments:\n" ENV_PROD
	                           "    policy: { rotation_period: 30d }\n"), KM_CONFIG_EINVAL);
	assert_contains(fx->err, inc);
	assert_contains(fx->err, "already set at");
	assert_contains(fx->err, fx->path);

	/* an include may only hold policies */
	write_file(fx, "policies/bad.yaml", "environments:\n  production:\n    store: x.db\n");
	assert_int_equal(load_text(fx, "version: 1\ninclude: policies/bad.yaml\n"
	                           "environments:\n" ENV_PROD), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "policies/bad.yaml:3:5: unknown key 'store'");

	/* ...for environments the main file defines */
	write_file(fx, "policies/qa.yaml", "environments:\n  qa:\n    policy: {}\n");
	assert_int_equal(load_text(fx, "version: 1\ninclude: policies/qa.yaml\n"
	                           "environments:\n" ENV_PROD ENV_STAGING), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "unknown environment 'qa' (known: production, staging)");

	/* a missing include is reported where it is included */
	assert_int_equal(load_text(fx, "version: 1\ninclude: [ nope.yaml ]\n"
	                           "environments:\n" ENV_PROD), KM_ENOENT);
	assert_at(fx, 2, 12);
	assert_contains(fx->err, "nope.yaml");

	/* no nesting, no self-inclusion */
	write_file(fx, "policies/nest.yaml", "include: other.yaml\n");
	assert_int_equal(load_text(fx, "version: 1\ninclude: policies/nest.yaml\n"
	                           "environments:\n" ENV_PROD), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "unknown key 'include'");
	assert_int_equal(load_text(fx, "version: 1\ninclude: keymgr.yaml\n"
	                           "environments:\n" ENV_PROD), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "cannot include itself");

	/* a syntax error inside an include names the included file */
	write_file(fx, "policies/broken.yaml", "defaults: { policy: [\n");
	assert_int_equal(load_text(fx, "version: 1\ninclude: policies/broken.yaml\n"
	                           "environments:\n" ENV_PROD), KM_CONFIG_EPARSE);
	snprintf(inc, sizeof(inc), "%s/policies/broken.yaml:", fx->dir);
	assert_true(strncmp(fx->err, inc, strlen(inc)) == 0);
}

/* --- lookups --- */

static void test_config_env_lookup_unknown(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD ENV_STAGING
		"  development:\n    token: { module: " MODULE ", label: d }\n    store: d.db\n"),
		KM_EOK);
	const km_env_cfg_t *env = NULL;
	char err[256];
	assert_int_equal(km_config_env_lookup(fx->cfg, "qa", &env, err, sizeof(err)), KM_ENOENT);
	assert_null(env);
	assert_string_equal(err,
	                    "unknown environment 'qa' (known: production, staging, development)");
	assert_int_equal(km_config_env_lookup(fx->cfg, "../prod", &env, err, sizeof(err)),
	                 KM_ENAME);
	assert_null(env);
	assert_contains(err, "invalid environment name");
	assert_int_equal(km_config_env_lookup(fx->cfg, "staging", &env, err, sizeof(err)), KM_EOK);
	assert_string_equal(env->name, "staging");

	char small[16];
	km_config_env_names(fx->cfg, small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_string_equal(small + sizeof(small) - 4, "...");
}

/* --- who may write the file --- */

static void test_config_file_mode_refused(void **state)
{
	fx_t *fx = *state;
	char cmd[2 * PATH_MAX], inc[PATH_MAX + 64];
	write_file(fx, "keymgr.yaml", HEAD ENV_PROD);
	km_config_t *cfg = NULL;
	static const mode_t modes[] = { 0620, 0602, 0666 };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		assert_int_equal(chmod(fx->path, modes[i]), 0);
		/* A security refusal for both loaders: nothing is read from the file. */
		assert_int_equal(km_config_load(fx->path, &cfg, fx->err, sizeof(fx->err)),
		                 KM_CONFIG_EPERM);
		assert_null(cfg);
		snprintf(cmd, sizeof(cmd), "chmod go-w %s", fx->path);
		assert_contains(fx->err, fx->path);
		assert_contains(fx->err, cmd);
		assert_contains(fx->err, "writable by");
		assert_int_equal(km_config_load_partial(fx->path, &cfg, fx->err, sizeof(fx->err)),
		                 KM_CONFIG_EPERM);
		assert_null(cfg);
		assert_contains(fx->err, cmd);
	}
	assert_int_equal(chmod(fx->path, 0644), 0);
	assert_int_equal(km_config_load(fx->path, &cfg, fx->err, sizeof(fx->err)), KM_EOK);
	km_config_free(cfg);
	cfg = NULL;

	/* an include counts the same, and is named */
	write_file(fx, "policies/team.yaml", "defaults:\n  policy: { clock_skew: 1m }\n");
	snprintf(inc, sizeof(inc), "%s/policies/team.yaml", fx->dir);
	assert_int_equal(chmod(inc, 0664), 0);
	write_file(fx, "keymgr.yaml", "version: 1\ninclude: policies/team.yaml\nenvironments:\n"
	           ENV_PROD);
	assert_int_equal(chmod(fx->path, 0600), 0);
	assert_int_equal(km_config_load_partial(fx->path, &cfg, fx->err, sizeof(fx->err)),
	                 KM_CONFIG_EPERM);
	snprintf(cmd, sizeof(cmd), "chmod go-w %s", inc);
	assert_contains(fx->err, cmd);
	assert_int_equal(chmod(inc, 0644), 0);

	if (geteuid() != 0) {
		print_message("not root: cannot give a file to another user, owner sub-case skipped\n");
		return;
	}
	/* owned by neither root nor the caller */
	assert_int_equal(chown(inc, 65534, 65534), 0);
	assert_int_equal(km_config_load(fx->path, &cfg, fx->err, sizeof(fx->err)),
	                 KM_CONFIG_EPERM);
	snprintf(cmd, sizeof(cmd), "chown root %s", inc);
	assert_contains(fx->err, cmd);
	assert_contains(fx->err, "owned by uid 65534");
	assert_int_equal(chown(inc, 0, 0), 0);
	assert_int_equal(km_config_load(fx->path, &cfg, fx->err, sizeof(fx->err)), KM_EOK);
	km_config_free(cfg);
}

/* --- partial loads (a configuration with errors, for emergency work) --- */

#define ENV_DEV                                                                                \
	"  development:\n"                                                                     \
	"    token: { module: " MODULE ", label: keymgr-development }\n"                       \
	"    store: development.db\n"

/* What a partial load of a file with errors never does: fill in a broken part. */
static void assert_env_refused(fx_t *fx, const char *env, const char *needle)
{
	const km_env_cfg_t *e = NULL;
	char err[2048];
	km_policy_t p;
	assert_null(km_config_env(fx->cfg, env));
	assert_int_equal(km_config_env_lookup(fx->cfg, env, &e, err, sizeof(err)),
	                 KM_CONFIG_EBROKEN);
	assert_null(e);
	assert_contains(err, "cannot be used");
	assert_contains(err, needle);
	assert_int_equal(km_config_check(fx->cfg, env, NULL, err, sizeof(err)), KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_keyset_policy(fx->cfg, env, "api", &p), KM_CONFIG_EBROKEN);
	for (size_t i = 0; i < km_config_env_count(fx->cfg); i++)
		assert_string_not_equal(km_config_env_at(fx->cfg, i)->name, env);
}

static void test_config_partial_other_env_broken(void **state)
{
	fx_t *fx = *state;
	/* staging's token has no label: staging is out, production and development work */
	const char *text = HEAD ENV_PROD
		"  staging:\n"
		"    token:\n"
		"      module: " MODULE "\n"
		"      pin: prompt\n"
		"    store: staging.db\n" ENV_DEV;
	assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
	char strict[1024];
	snprintf(strict, sizeof(strict), "%s", fx->err);
	assert_contains(strict, "environments.staging.token: give exactly one of 'label'");

	assert_int_equal(load_partial_text(fx, text), KM_EOK);
	assert_int_equal(km_config_error_count(fx->cfg), 1);
	assert_string_equal(km_config_error_at(fx->cfg, 0), strict);
	assert_null(km_config_error_at(fx->cfg, 1));
	assert_false(km_config_envs_complete(fx->cfg));
	assert_int_equal(km_config_env_count(fx->cfg), 2);
	assert_string_equal(km_config_env_at(fx->cfg, 0)->name, "production");
	assert_string_equal(km_config_env_at(fx->cfg, 1)->name, "development");
	assert_null(km_config_env_at(fx->cfg, 2));
	assert_env_refused(fx, "staging", "give exactly one of 'label'");
	char err[1024], names[128];
	assert_int_equal(km_config_check(fx->cfg, "production", "api", err, sizeof(err)), KM_EOK);
	assert_string_equal(km_config_env_names(fx->cfg, names, sizeof(names)),
	                    "production, development");
	const km_env_cfg_t *p = km_config_env(fx->cfg, "production");
	assert_non_null(p);
	assert_string_equal(p->token.token_label, "keymgr-production");
	km_policy_t pol;
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "api", &pol), KM_EOK);
	assert_int_equal(km_config_env_errors(fx->cfg, "production", err, sizeof(err)), 0);
	assert_int_equal(km_config_daemon_check(fx->cfg, err, sizeof(err)), KM_EOK);

	/* a file without errors: both loaders agree, nothing recorded */
	assert_int_equal(load_partial_text(fx, HEAD ENV_PROD ENV_DEV), KM_EOK);
	assert_int_equal(km_config_error_count(fx->cfg), 0);
	assert_true(km_config_envs_complete(fx->cfg));
}

static void test_config_partial_keyset_broken(void **state)
{
	fx_t *fx = *state;
	const char *text = HEAD ENV_PROD
		"    policy: { rotation_period: 60d }\n"
		"    keysets:\n"
		"      api: { issuer: https://a.example }\n"
		"      web:\n"
		"        issuer: https://w.example\n"
		"        polcy: { rotation_period: 10d }\n"
		"      id:\n"
		"        policy: { rotation_period: soon }\n";
	assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "unknown key 'polcy'");
	assert_int_equal(load_partial_text(fx, text), KM_EOK);
	assert_int_equal(km_config_error_count(fx->cfg), 2);
	assert_contains(km_config_error_at(fx->cfg, 0), "unknown key 'polcy'");
	assert_contains(km_config_error_at(fx->cfg, 1), "key set 'id'");
	assert_true(km_config_envs_complete(fx->cfg));

	char err[2048];
	km_policy_t pol;
	/* the environment and its intact key set are there */
	assert_int_equal(km_config_check(fx->cfg, "production", NULL, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_config_check(fx->cfg, "production", "api", err, sizeof(err)), KM_EOK);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "api", &pol), KM_EOK);
	assert_int_equal(pol.rotation_period, 60 * 86400);
	assert_non_null(km_config_keyset(fx->cfg, "production", "api"));
	/* a key set the config does not name gets the (intact) environment policy */
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "other", &pol), KM_EOK);
	assert_int_equal(pol.rotation_period, 60 * 86400);
	/* the broken ones: never the environment policy in their place */
	const char *broken[] = { "web", "id" };
	for (size_t i = 0; i < 2; i++) {
		assert_null(km_config_keyset(fx->cfg, "production", broken[i]));
		assert_int_equal(km_config_keyset_policy(fx->cfg, "production", broken[i], &pol),
		                 KM_CONFIG_EBROKEN);
		assert_int_equal(km_config_check(fx->cfg, "production", broken[i], err, sizeof(err)),
		                 KM_CONFIG_EBROKEN);
		assert_contains(err, broken[i]);
		assert_contains(err, fx->path);
	}
	const km_env_cfg_t *p = km_config_env(fx->cfg, "production");
	assert_int_equal(p->n_keysets, 1);
	assert_string_equal(p->keysets[0]->name, "api");
	assert_int_equal(km_config_env_errors(fx->cfg, "production", err, sizeof(err)), 2);
}

static void test_config_partial_policy_values(void **state)
{
	fx_t *fx = *state;
	/* staging's own policy value is bad; production's is fine */
	const char *text = HEAD ENV_PROD ENV_STAGING
		"    policy: { jwks_max_age: forever }\n"
		"    keysets: { api: { issuer: https://s.example } }\n";
	assert_int_equal(load_partial_text(fx, text), KM_EOK);
	char err[2048];
	km_policy_t pol;
	assert_int_equal(km_config_error_count(fx->cfg), 1);
	assert_contains(km_config_error_at(fx->cfg, 0), "environment 'staging'");
	/* staging's token and store are intact (revoke may use them), its policies are not */
	assert_int_equal(km_config_check(fx->cfg, "staging", NULL, err, sizeof(err)), KM_EOK);
	assert_non_null(km_config_env(fx->cfg, "staging"));
	assert_int_equal(km_config_check(fx->cfg, "staging", "api", err, sizeof(err)),
	                 KM_CONFIG_EBROKEN);
	assert_contains(err, "jwks_max_age");
	assert_int_equal(km_config_keyset_policy(fx->cfg, "staging", "api", &pol),
	                 KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "staging", "unnamed", &pol),
	                 KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_env_policy(fx->cfg, "staging", &pol), KM_CONFIG_EBROKEN);
	assert_null(km_config_keyset(fx->cfg, "staging", "api"));
	assert_int_equal(km_config_check(fx->cfg, "production", "api", err, sizeof(err)), KM_EOK);
	assert_int_equal(km_config_env_policy(fx->cfg, "production", &pol), KM_EOK);

	/* an unsafe policy is the same, and keeps its code in a strict load */
	text = HEAD ENV_PROD "    policy: { publish_lead: 10m }\n" ENV_STAGING;
	assert_int_equal(load_text(fx, text), KM_POLICY_EUNSAFE);
	assert_int_equal(load_partial_text(fx, text), KM_EOK);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "api", &pol),
	                 KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "staging", "api", &pol), KM_EOK);

	/* defaults.policy applies everywhere: every key set's policy is out, once reported */
	text = "version: 1\ndefaults:\n  policy: { clock_skew: lots }\nenvironments:\n"
	       ENV_PROD ENV_STAGING;
	assert_int_equal(load_partial_text(fx, text), KM_EOK);
	assert_int_equal(km_config_error_count(fx->cfg), 1);
	assert_int_equal(km_config_env_count(fx->cfg), 2);
	assert_int_equal(km_config_check(fx->cfg, "staging", NULL, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "api", &pol),
	                 KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "staging", "api", &pol),
	                 KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_check(fx->cfg, "staging", "api", err, sizeof(err)),
	                 KM_CONFIG_EBROKEN);
	assert_contains(err, "clock_skew");
}

static void test_config_partial_wall_and_daemon(void **state)
{
	fx_t *fx = *state;
	/* staging and development share a store: both out; the daemon section has a bad port */
	const char *text = HEAD ENV_PROD ENV_STAGING
		"  development:\n"
		"    token: { module: " MODULE ", label: keymgr-development }\n"
		"    store: staging.db\n"
		"daemon:\n  port: 99999\n";
	assert_int_equal(load_partial_text(fx, text), KM_EOK);
	char err[2048];
	assert_int_equal(km_config_env_count(fx->cfg), 1);
	assert_env_refused(fx, "staging", "share a file");
	assert_env_refused(fx, "development", "share a file");
	assert_int_equal(km_config_check(fx->cfg, "production", "api", err, sizeof(err)), KM_EOK);
	assert_int_equal(km_config_daemon_check(fx->cfg, err, sizeof(err)), KM_CONFIG_EBROKEN);
	assert_contains(err, "daemon.port");
	/* the strict load names the first error of the file: the daemon's, read first */
	assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "daemon.port");
}

/* The probe section: named environments and hosts, normalised; absent means nothing. */
static void test_config_probe_section(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(load_text(fx, HEAD ENV_PROD ENV_STAGING), KM_EOK);
	const km_probe_cfg_t *p = km_config_probe(fx->cfg);
	assert_int_equal(p->n_environments, 0);
	assert_int_equal(p->n_allowed_hosts, 0);
	assert_false(km_config_probe_env(fx->cfg, "staging"));
	/* before the environments in the file: they are known by the time it is read */
	assert_int_equal(load_text(fx, "version: 1\nprobe:\n  environments: [ staging ]\n"
	                           "  allowed_hosts: [ API.Staging.Example.com, 10.0.0.7, "
	                           "'2001:db8::1' ]\nenvironments:\n" ENV_PROD ENV_STAGING),
	                 KM_EOK);
	p = km_config_probe(fx->cfg);
	assert_int_equal(p->n_environments, 1);
	assert_string_equal(p->environments[0], "staging");
	assert_true(km_config_probe_env(fx->cfg, "staging"));
	assert_false(km_config_probe_env(fx->cfg, "production"));   /* never unless named */
	assert_int_equal(p->n_allowed_hosts, 3);
	assert_string_equal(p->allowed_hosts[0], "api.staging.example.com");
	assert_string_equal(p->allowed_hosts[1], "10.0.0.7");
	assert_string_equal(p->allowed_hosts[2], "2001:db8::1");
}

static void test_config_probe_section_refused(void **state)
{
	fx_t *fx = *state;
	static const struct { const char *probe, *words; } cases[] = {
		{ "  environments: [ qa ]\n", "probe.environments: unknown environment 'qa' "
		  "(known: production, staging)" },
		{ "  environments: [ '*' ]\n", "is not a valid environment name" },
		{ "  environments: [ staging, staging ]\n", "'staging' is listed twice" },
		{ "  environments: staging\n", "probe.environments" },
		{ "  allowed_hosts: [ 'https://api.example.com' ]\n", "is not a host name or an IP "
		  "address literal (no scheme, port or wildcard)" },
		{ "  allowed_hosts: [ '*.example.com' ]\n", "no scheme, port or wildcard" },
		{ "  allowed_hosts: [ 'api.example.com:443' ]\n", "no scheme, port or wildcard" },
		{ "  allowed_hosts: [ 'a..b' ]\n", "is not a host name" },
		{ "  allowed_hosts: [ '-a.example' ]\n", "is not a host name" },
		{ "  hosts: [ x ]\n", "unknown key 'hosts' in probe (expected one of: environments, "
		  "allowed_hosts)" },
	};
	char text[1024];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), HEAD ENV_PROD ENV_STAGING "probe:\n%s", cases[i].probe);
		assert_int_equal(load_text(fx, text), KM_CONFIG_EINVAL);
		assert_contains(fx->err, cases[i].words);
		assert_contains(fx->err, fx->path);
		/* a partial load keeps everything else, and nothing may be probed */
		assert_int_equal(load_partial_text(fx, text), KM_EOK);
		assert_int_equal(km_config_env_count(fx->cfg), 2);
		assert_int_equal(km_config_probe(fx->cfg)->n_environments, 0);
		assert_int_equal(km_config_probe(fx->cfg)->n_allowed_hosts, 0);
		assert_false(km_config_probe_env(fx->cfg, "staging"));
		assert_int_equal(km_config_error_count(fx->cfg), 1);
	}
	/* in an included file: refused like any unknown top-level key there */
	write_file(fx, "inc.yaml", "probe:\n  environments: [ staging ]\n");
	assert_int_equal(load_text(fx, HEAD ENV_PROD ENV_STAGING "include: inc.yaml\n"),
	                 KM_CONFIG_EINVAL);
	assert_contains(fx->err, "unknown key 'probe'");
}

static void test_config_partial_whole_file(void **state)
{
	fx_t *fx = *state;
	/* errors no part contains: nothing is usable, both loaders refuse with the same error */
	static const char *const texts[] = {
		HEAD ENV_PROD "  staging: [\n",                                   /* YAML syntax */
		"version: 2\nenvironments:\n" ENV_PROD,                            /* version */
		"version: 1\nenviroments:\n" ENV_PROD,                             /* top-level key */
		"version: 1\ninclude: nope.yaml\nenvironments:\n" ENV_PROD,         /* include */
		"version: 1\nenvironments: 3\n",                                   /* not a mapping */
	};
	static const int codes[] = { KM_CONFIG_EPARSE, KM_CONFIG_EINVAL, KM_CONFIG_EINVAL,
	                             KM_ENOENT, KM_CONFIG_EINVAL };
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char strict[1024];
		assert_int_equal(load_text(fx, texts[i]), codes[i]);
		snprintf(strict, sizeof(strict), "%s", fx->err);
		assert_int_equal(load_partial_text(fx, texts[i]), codes[i]);
		assert_string_equal(fx->err, strict);
	}
	/* an include naming an environment the main file does not have: which was meant? */
	write_file(fx, "policies/qa.yaml", "environments:\n  qa:\n    policy: {}\n");
	assert_int_equal(load_partial_text(fx, "version: 1\ninclude: policies/qa.yaml\n"
	                                   "environments:\n" ENV_PROD), KM_CONFIG_EINVAL);
	assert_contains(fx->err, "unknown environment 'qa'");
	/* an include's error inside an environment's policies: that environment's key sets */
	write_file(fx, "policies/p.yaml", "environments:\n  production:\n    store: x.db\n");
	assert_int_equal(load_partial_text(fx, "version: 1\ninclude: policies/p.yaml\n"
	                                   "environments:\n" ENV_PROD ENV_STAGING), KM_EOK);
	km_policy_t pol;
	char err[1024];
	assert_int_equal(km_config_check(fx->cfg, "production", NULL, err, sizeof(err)), KM_EOK);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "production", "api", &pol),
	                 KM_CONFIG_EBROKEN);
	assert_int_equal(km_config_keyset_policy(fx->cfg, "staging", "api", &pol), KM_EOK);
}

int main(int argc, char **argv)
{
	example_path = argc > 1 ? argv[1] : NULL;
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_config_load_round_trip),
		T(test_config_load_daemon_defaults),
		T(test_config_load_example),
		T(test_config_locate_order),
		T(test_config_load_missing_file),
		T(test_config_load_directory),
		T(test_config_load_unreadable_file),
		T(test_config_load_empty_and_multi_document),
		T(test_config_load_syntax_error),
		T(test_config_load_alias_expansion_bounded),
		T(test_config_load_unknown_key),
		T(test_config_load_wrong_type),
		T(test_config_load_missing_required),
		T(test_config_load_bad_env_name),
		T(test_config_load_bad_pin_source),
		T(test_config_wall_shared_token),
		T(test_config_audit_token),
		T(test_config_daemon_remove_unsafe_keys),
		T(test_config_wall_shared_store),
		T(test_config_wall_shared_postgresql_store),
		T(test_config_wall_shared_http),
		T(test_config_policy_unsafe),
		T(test_config_policy_keyset_precedence),
		T(test_config_load_relative_paths),
		T(test_config_load_include),
		T(test_config_env_lookup_unknown),
		T(test_config_file_mode_refused),
		T(test_config_partial_other_env_broken),
		T(test_config_partial_keyset_broken),
		T(test_config_partial_policy_values),
		T(test_config_partial_wall_and_daemon),
		T(test_config_partial_whole_file),
		T(test_config_probe_section),
		T(test_config_probe_section_refused),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
