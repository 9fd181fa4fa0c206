/* SPDX-License-Identifier: Apache-2.0 */
/* keymgrd's socket records, and how a client finds the socket (ctl_locate.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/atomic_file.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/control/ctl_locate.h"

#define MAX_CANDIDATES 32
#define MAX_DIRS (KM_CONFIG_MAX_ENVS + 1)

int km_ctl_record_write(const char *store, const char *env, const char *socket,
                        const char *config, char *err, size_t errlen)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s%s", store, KM_CTL_RECORD_SUFFIX) >=
	    sizeof(path)) {
		snprintf(err, errlen, "%s%s: path too long", store, KM_CTL_RECORD_SUFFIX);
		return KM_ERANGE;
	}
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:I}", "v", 1, "env", env, "control_socket",
	                      socket, "config", config, "pid", (json_int_t)getpid());
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL)
		return KM_ENOMEM;
	size_t len = strlen(text);
	/* Readable by all: it only says where the socket is (the socket has its own mode). */
	char *line = malloc(len + 2);
	int r = KM_ENOMEM;
	if (line != NULL) {
		memcpy(line, text, len);
		line[len] = '\n';
		r = km_file_write_atomic(path, line, len + 1, 0644);
		if (r != KM_EOK)
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
	}
	free(line);
	free(text);
	return r;
}

typedef struct {
	char path[KM_CTL_SOCKET_MAX];
	char from[PATH_MAX + 96];
	char env[KM_ENV_NAME_MAX + 1];   /* records only */
	bool record;
} cand_t;

typedef struct {
	cand_t c[MAX_CANDIDATES];
	size_t n;
} cands_t;

static void add(cands_t *cs, const char *path, const char *from, const char *env, bool record)
{
	if (cs->n == MAX_CANDIDATES || strlen(path) >= KM_CTL_SOCKET_MAX || path[0] != '/')
		return;
	for (size_t i = 0; i < cs->n; i++)
		if (strcmp(cs->c[i].path, path) == 0)
			return;
	cand_t *c = &cs->c[cs->n++];
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(c->from, sizeof(c->from), "%s", from);
	snprintf(c->env, sizeof(c->env), "%s", env ? env : "");
	c->record = record;
}

static bool is_socket(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* a and b name the same file: the same inode, or (when one does not exist) the same text. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	return strcmp(a, b) == 0;
}

/* Reads a record: a regular file nobody but its owner can write, at most
 * KM_CTL_RECORD_MAX bytes of JSON. New reference, or NULL. */
static json_t *read_record(const char *file)
{
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	struct stat st;
	char buf[KM_CTL_RECORD_MAX];
	ssize_t n = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && !(st.st_mode & (S_IWGRP | S_IWOTH)) &&
	    st.st_size < KM_CTL_RECORD_MAX)
		n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
}

/* Adds the sockets of the records in dir that name config_path (and env). */
static void scan_dir(cands_t *cs, const char *dir, const char *config_path, const char *env)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	const struct dirent *de;
	size_t slen = strlen(KM_CTL_RECORD_SUFFIX);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len <= slen || strcmp(de->d_name + len - slen, KM_CTL_RECORD_SUFFIX) != 0 ||
		    de->d_name[0] == '.')
			continue;
		char file[PATH_MAX], from[PATH_MAX + 96];
		if ((size_t)snprintf(file, sizeof(file), "%s/%s", dir, de->d_name) >= sizeof(file))
			continue;
		json_t *rec = read_record(file);
		const char *sock = json_string_value(json_object_get(rec, "control_socket"));
		const char *cfgp = json_string_value(json_object_get(rec, "config"));
		const char *renv = json_string_value(json_object_get(rec, "env"));
		if (sock != NULL && cfgp != NULL && renv != NULL && same_file(cfgp, config_path) &&
		    (env == NULL || strcmp(env, renv) == 0)) {
			snprintf(from, sizeof(from), "recorded by keymgrd for '%.32s' in %s", renv, file);
			add(cs, sock, from, renv, true);
		}
		json_decref(rec);
	}
	closedir(d);
}

static void add_dir(char dirs[][PATH_MAX], size_t *n, size_t max, const char *d)
{
	for (size_t j = 0; j < *n; j++)
		if (strcmp(dirs[j], d) == 0)
			return;
	if (*n < max)
		snprintf(dirs[(*n)++], PATH_MAX, "%s", d);
}

/* The directories that may hold records: those of cfg's stores, then the state directory. */
static size_t record_dirs(const km_config_t *cfg, char dirs[][PATH_MAX], size_t max)
{
	size_t n = 0;
	char d[PATH_MAX];
	for (size_t i = 0; cfg != NULL && i < km_config_env_count(cfg); i++) {
		snprintf(d, sizeof(d), "%s", km_config_env_at(cfg, i)->local);
		char *slash = strrchr(d, '/');
		if (slash == NULL)
			continue;
		slash[slash == d ? 1 : 0] = '\0';   /* "/x.db" is in "/" */
		add_dir(dirs, &n, max, d);
	}
	const char *state = secure_getenv(KM_CTL_STATE_DIR_ENV);
	add_dir(dirs, &n, max, state != NULL && state[0] != '\0' ? state : KM_CTL_STATE_DIR);
	return n;
}

/* "A (from), B (from)" of the candidates that pass (live or all). */
static void list(const cands_t *cs, bool live_records_only, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cs->n && used < len; i++) {
		if (live_records_only && (!cs->c[i].record || !is_socket(cs->c[i].path)))
			continue;
		int w = snprintf(buf + used, len - used, "%s%s (%s)", used ? ", " : "",
		                 cs->c[i].path, cs->c[i].from);
		if (w > 0)
			used += (size_t)w;
	}
}

static void pick(const cand_t *c, km_ctl_socket_t *ret)
{
	snprintf(ret->path, sizeof(ret->path), "%s", c->path);
	snprintf(ret->from, sizeof(ret->from), "%s", c->from);
}

int km_ctl_locate(const km_config_t *cfg, const char *config_path, const char *env,
                  km_ctl_socket_t *ret, char *err, size_t errlen)
{
	cands_t *cs = calloc(1, sizeof(*cs));
	char (*dirs)[PATH_MAX] = calloc(MAX_DIRS, PATH_MAX);
	char from[PATH_MAX + 96];
	int r = KM_ENOENT;
	if (cs == NULL || dirs == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	bool cfg_says = cfg != NULL && km_config_daemon_check(cfg, NULL, 0) == KM_EOK;
	if (cfg_says) {
		snprintf(from, sizeof(from), "daemon.control_socket of %s", km_config_path(cfg));
		add(cs, km_config_daemon(cfg)->control_socket, from, NULL, false);
	}
	size_t nd = record_dirs(cfg, dirs, MAX_DIRS);
	for (size_t i = 0; i < nd; i++)
		scan_dir(cs, dirs[i], config_path, env);
	if (!cfg_says)
		add(cs, KM_CONFIG_DEFAULT_CONTROL_SOCKET, "the default", NULL, false);

	size_t live_records = 0;
	for (size_t i = 0; i < cs->n; i++)
		live_records += cs->c[i].record && is_socket(cs->c[i].path);
	for (size_t i = 0; i < cs->n; i++) {
		const cand_t *c = &cs->c[i];
		if (!is_socket(c->path))
			continue;
		if (c->record && env == NULL && live_records > 1) {
			char names[2048];
			list(cs, true, names, sizeof(names));
			snprintf(err, errlen, "several keymgrd serve %s: %s; name an environment or give "
			         "--socket PATH", config_path, names);
			r = KM_EEXIST;
			goto out;
		}
		pick(c, ret);
		r = KM_EOK;
		goto out;
	}
	char tried[2048], where[1024] = "";
	list(cs, false, tried, sizeof(tried));
	for (size_t i = 0, used = 0; i < nd && used < sizeof(where); i++) {
		int w = snprintf(where + used, sizeof(where) - used, "%s%s", i ? ", " : "", dirs[i]);
		if (w > 0)
			used += (size_t)w;
	}
	snprintf(err, errlen, "no keymgrd listening on %s (nor on a socket keymgrd recorded "
	         "for %s in %s); give --socket PATH, or set KEYMGR_CONTROL_SOCKET, or "
	         "KEYMGR_STATE_DIR to the directory of keymgrd's stores",
	         tried[0] ? tried : "any known socket", config_path, where);
out:
	free(dirs);
	free(cs);
	return r;
}
