/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the keymgr.yaml loader (YAML, schema, includes, layered policies and their
 * timing validation, the environment wall) and the policy duration parser.
 *
 * The input is written to an anonymous in-memory file (memfd, mode 0600 like a real
 * configuration: the loader refuses one others can write) and loaded through its
 * /proc/self/fd path, exactly as km_config_load() reads a real file, then again with
 * km_config_load_partial() and every question a caller asks of what that hands out. The
 * first line of the input is also fed to km_duration_parse_err().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_duration(const uint8_t *data, size_t size)
{
	char line[128];
	size_t n = 0;
	while (n < size && n < sizeof(line) - 1 && data[n] != '\n')
		n++;
	memcpy(line, data, n);
	line[n] = '\0';
	int64_t v = 0;
	char err[256];
	km_duration_parse_err(line, &v, err, sizeof(err));
}

/* Walks what a caller walks: environments, key set policies, the daemon section, and (after a
 * partial load) the errors and the checks. */
static void walk(km_config_t *cfg)
{
	char names[256], err[2048];
	for (size_t i = 0; i < km_config_env_count(cfg); i++) {
		const km_env_cfg_t *e = km_config_env_at(cfg, i);
		km_policy_t pol;
		for (size_t j = 0; j < e->n_keysets; j++) {
			km_config_keyset_policy(cfg, e->name, e->keysets[j]->name, &pol);
			km_config_check(cfg, e->name, e->keysets[j]->name, err, sizeof(err));
		}
		km_config_keyset_policy(cfg, e->name, "unconfigured", &pol);
		km_config_env_policy(cfg, e->name, &pol);
		km_config_env_errors(cfg, e->name, err, sizeof(err));
	}
	for (size_t i = 0; i < km_config_error_count(cfg); i++)
		if (km_config_error_at(cfg, i) == NULL)
			abort();
	km_config_check(cfg, "production", "api", err, sizeof(err));
	km_config_daemon_check(cfg, err, sizeof(err));
	km_config_envs_complete(cfg);
	km_config_env_names(cfg, names, sizeof(names));
	(void)km_config_daemon(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_duration(data, size);
	int fd = memfd_create("keymgr-fuzz-config", MFD_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0600) != 0)
		abort();
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	km_config_t *cfg = NULL, *part = NULL;
	char err[1024] = "", perr[1024] = "";
	int r = km_config_load(path, &cfg, err, sizeof(err));
	if (r == KM_EOK)
		walk(cfg);
	else if (err[0] == '\0')
		abort(); /* every failure must come with a message */
	int pr = km_config_load_partial(path, &part, perr, sizeof(perr));
	if (pr == KM_EOK)
		walk(part);
	else if (perr[0] == '\0')
		abort();
	/* A file without errors loads the same both ways; a partial load never succeeds where
	 * nothing could be read, and records at least one error where the strict load failed. */
	if ((r == KM_EOK && (pr != KM_EOK || km_config_error_count(part) != 0)) ||
	    (r != KM_EOK && pr == KM_EOK && km_config_error_count(part) == 0))
		abort();
	km_config_free(cfg);
	km_config_free(part);
	close(fd);
	return 0;
}
