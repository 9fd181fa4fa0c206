/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Refused PINs stay refused (pin_refusal.h). The record, one line of JSON:
 *
 *   {"v":1,"env":"production","source":"file:/etc/keymgr/pins/production.pin","kind":"file",
 *    "dev":2049,"ino":131842,"mtime_sec":1767225600,"mtime_nsec":123456789,"size":17,
 *    "refused_at":1767225601,"rv":"CKR_PIN_INCORRECT"}
 *
 * The gates live in a process-wide list, one per store, never freed (a process serves a
 * handful of environments), so that a token never outlives its gate and the scheduler's and
 * the signers' tokens of one environment share the refusals kept in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/atomic_file.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/common/timefmt.h"
#include "keymgr/core/pin_refusal.h"

#define RECORD_MAX 8192
#define SOURCE_MAX (PATH_MAX + 8)

/* A refusal: what the PIN was read from, when, and what the token said. */
typedef struct {
	char source[SOURCE_MAX];
	int kind;                       /* km_pin_kind_t */
	uint64_t dev, ino;
	int64_t mtime_sec, mtime_nsec, size;
	int64_t at;
	char rv[48];
} refusal_t;

typedef struct gate_entry {
	struct gate_entry *next;
	char store[PATH_MAX];
	char record[PATH_MAX];
	char env[KM_ENV_NAME_MAX + 1];
	km_pin_gate_t gate;             /* ctx: this entry */
	pthread_mutex_t lock;           /* guards the three below */
	bool in_memory;                 /* a refusal the record could not hold */
	refusal_t mem;
	char write_error[256];
} gate_entry_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static gate_entry_t *registry;

static const char *kind_name(int kind)
{
	return kind == KM_PIN_FROM_FILE ? "file" : kind == KM_PIN_FROM_ENV ? "env" : "prompt";
}

/* Whether the PIN read from id is the one r records as refused. */
static bool same_pin_source(const refusal_t *r, const km_pin_id_t *id)
{
	if ((int)id->kind != r->kind || strcmp(r->source, id->source) != 0)
		return false;
	if (id->kind != KM_PIN_FROM_FILE)
		return true;    /* env: only its name can be compared */
	return r->dev == id->dev && r->ino == id->ino && r->mtime_sec == id->mtime_sec &&
	       r->mtime_nsec == id->mtime_nsec && r->size == id->size;
}

static bool get_int(json_t *j, const char *key, int64_t *ret)
{
	json_t *v = json_object_get(j, key);
	if (!json_is_integer(v))
		return false;
	*ret = (int64_t)json_integer_value(v);
	return true;
}

/* Parses a record's JSON; false when something is missing or malformed. */
static bool parse(json_t *j, refusal_t *r)
{
	const char *source = json_string_value(json_object_get(j, "source"));
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *rv = json_string_value(json_object_get(j, "rv"));
	int64_t v = 0, dev = 0, ino = 0;
	if (!json_is_object(j) || !get_int(j, "v", &v) || v != 1 || source == NULL ||
	    kind == NULL || strlen(source) >= sizeof(r->source) || !get_int(j, "refused_at", &r->at))
		return false;
	snprintf(r->source, sizeof(r->source), "%s", source);
	snprintf(r->rv, sizeof(r->rv), "%s", rv != NULL ? rv : "refused");
	if (strcmp(kind, "env") == 0) {
		r->kind = KM_PIN_FROM_ENV;
		return true;
	}
	if (strcmp(kind, "file") != 0 || !get_int(j, "dev", &dev) || !get_int(j, "ino", &ino) ||
	    !get_int(j, "mtime_sec", &r->mtime_sec) || !get_int(j, "mtime_nsec", &r->mtime_nsec) ||
	    !get_int(j, "size", &r->size))
		return false;
	r->kind = KM_PIN_FROM_FILE;
	r->dev = (uint64_t)dev;
	r->ino = (uint64_t)ino;
	return true;
}

/*
 * Reads the record. KM_EOK and *r; KM_ENOENT when there is none; another code with why set
 * when one is there but cannot be used (then the caller refuses: fail closed).
 */
static int record_read(const char *path, refusal_t *r, char *why, size_t len)
{
	char buf[RECORD_MAX];
	struct stat st;
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return KM_ENOENT;
		snprintf(why, len, "%s", strerror(errno));
		return KM_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, len, "not a regular file");
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "writable by group or others");
	} else if (st.st_size >= RECORD_MAX) {
		snprintf(why, len, "larger than %d bytes", RECORD_MAX);
	} else if ((n = read(fd, buf, sizeof(buf))) < 0) {
		snprintf(why, len, "%s", strerror(errno));
	}
	close(fd);
	if (n < 0)
		return KM_EIO;
	json_t *j = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	bool ok = j != NULL && parse(j, r);
	json_decref(j);
	if (!ok) {
		snprintf(why, len, "malformed");
		return KM_EMALFORMED;
	}
	return KM_EOK;
}

/* Writes the record (mode 0600). Written by root next to a store that is not root's, it is
 * given to the store's owner, so that the daemon running as that user reads it. */
static int record_write(const gate_entry_t *e, const refusal_t *r)
{
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "v", 1,
	                      "env", e->env, "source", r->source, "kind", kind_name(r->kind),
	                      "dev", (json_int_t)r->dev, "ino", (json_int_t)r->ino,
	                      "mtime_sec", (json_int_t)r->mtime_sec,
	                      "mtime_nsec", (json_int_t)r->mtime_nsec, "size", (json_int_t)r->size,
	                      "refused_at", (json_int_t)r->at, "rv", r->rv);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL)
		return KM_ENOMEM;
	int rc = km_file_write_atomic(e->record, text, strlen(text), 0600);
	free(text);
	struct stat st;
	if (rc == KM_EOK && geteuid() == 0 && stat(e->store, &st) == 0 && st.st_uid != 0 &&
	    chown(e->record, st.st_uid, st.st_gid) != 0) {
		/* Left to root: a daemon running as the store's owner then cannot read it, and
		 * refuses the PIN (fail closed) until `keymgr env login`. */
	}
	return rc;
}

/* The message of a refusal found for e (the token layer puts the token's name before it). */
static void refused_message(const gate_entry_t *e, const refusal_t *r, bool in_memory,
                            const char *write_error, char *msg, size_t len)
{
	char when[KM_TIME_TEXT_MAX], kept[PATH_MAX + 400] = "";
	km_time_rfc3339(r->at, when, sizeof(when));
	if (in_memory)
		snprintf(kept, sizeof(kept), "; kept in this process's memory only, %s could not be "
		         "written: %s", e->record, write_error);
	if (r->kind == KM_PIN_FROM_FILE)
		snprintf(msg, len, "the PIN in %s was refused by the token at %s (C_Login: %s) and is "
		         "not presented again while that file is unchanged (a token that counts wrong "
		         "PINs would lock): put the right PIN in the file, or run `keymgr env login "
		         "%s` to try this one once more%s", r->source + 5, when, r->rv, e->env, kept);
	else
		snprintf(msg, len, "the PIN in environment variable %s was refused by the token at %s "
		         "(C_Login: %s) and is not presented again (a token that counts wrong PINs "
		         "would lock): set the right PIN, then run `keymgr env login %s`%s",
		         r->source + 4, when, r->rv, e->env, kept);
}

static int gate_check(void *ctx, const km_pin_id_t *id, char *msg, size_t len)
{
	gate_entry_t *e = ctx;
	refusal_t r;
	char why[128] = "", write_error[sizeof(e->write_error)] = "";
	bool in_memory = false;
	if (id->kind == KM_PIN_FROM_PROMPT)
		return KM_EOK;      /* a PIN typed now is a new attempt by a person */
	int rc = record_read(e->record, &r, why, sizeof(why));
	if (rc == KM_ENOENT) {
		pthread_mutex_lock(&e->lock);
		in_memory = e->in_memory;
		if (in_memory) {
			r = e->mem;
			snprintf(write_error, sizeof(write_error), "%s", e->write_error);
		}
		pthread_mutex_unlock(&e->lock);
		if (!in_memory)
			return KM_EOK;
	} else if (rc != KM_EOK) {
		snprintf(msg, len, "a refusal of this environment's PIN is recorded in %s, which "
		         "cannot be used (%s): the PIN is not presented; run `keymgr env login %s` "
		         "to try it once more", e->record, why, e->env);
		return KM_P11_ELOGIN;
	}
	if (!same_pin_source(&r, id))
		return KM_EOK;      /* another source, or the file changed: a new PIN */
	refused_message(e, &r, in_memory, write_error, msg, len);
	return KM_P11_ELOGIN;
}

static void gate_outcome(void *ctx, const km_pin_id_t *id, int code, const char *rv_name)
{
	gate_entry_t *e = ctx;
	if (id->kind == KM_PIN_FROM_PROMPT)
		return;
	if (code == KM_EOK) {
		(void)unlink(e->record);   /* a refusal of another PIN, if any: moot now */
		pthread_mutex_lock(&e->lock);
		e->in_memory = false;
		pthread_mutex_unlock(&e->lock);
		return;
	}
	if (code != KM_P11_ELOGIN)
		return;     /* a locked PIN, a device error: not a verdict on this PIN */
	refusal_t r = { .kind = (int)id->kind, .dev = id->dev, .ino = id->ino,
	                .mtime_sec = id->mtime_sec, .mtime_nsec = id->mtime_nsec,
	                .size = id->size, .at = (int64_t)time(NULL) };
	snprintf(r.source, sizeof(r.source), "%s", id->source);
	snprintf(r.rv, sizeof(r.rv), "%s", rv_name != NULL ? rv_name : "refused");
	int rc = record_write(e, &r);
	pthread_mutex_lock(&e->lock);
	e->in_memory = rc != KM_EOK;
	if (rc != KM_EOK) {
		e->mem = r;
		snprintf(e->write_error, sizeof(e->write_error), "%s", km_strerror(rc));
	}
	pthread_mutex_unlock(&e->lock);
}

/* The entry of store, or NULL (registry_lock held). */
static gate_entry_t *find(const char *store)
{
	for (gate_entry_t *e = registry; e != NULL; e = e->next)
		if (strcmp(e->store, store) == 0)
			return e;
	return NULL;
}

int km_pin_refusal_gate(const char *store, const char *env, const km_pin_gate_t **ret)
{
	int rc = KM_EOK;
	if (strlen(store) + strlen(KM_PIN_REFUSAL_SUFFIX) >= PATH_MAX)
		return KM_ERANGE;
	pthread_mutex_lock(&registry_lock);
	gate_entry_t *e = find(store);
	if (e == NULL && (e = calloc(1, sizeof(*e))) == NULL) {
		rc = KM_ENOMEM;
	} else if (e->gate.ctx == NULL) {
		snprintf(e->store, sizeof(e->store), "%s", store);
		snprintf(e->record, sizeof(e->record), "%s%s", store, KM_PIN_REFUSAL_SUFFIX);
		snprintf(e->env, sizeof(e->env), "%s", env);
		e->gate = (km_pin_gate_t){ gate_check, gate_outcome, e };
		pthread_mutex_init(&e->lock, NULL);
		e->next = registry;
		registry = e;
	}
	pthread_mutex_unlock(&registry_lock);
	if (rc == KM_EOK)
		*ret = &e->gate;
	return rc;
}

int km_pin_refusal_forget(const char *store, char *err, size_t errlen)
{
	char record[PATH_MAX];
	if ((size_t)snprintf(record, sizeof(record), "%s%s", store, KM_PIN_REFUSAL_SUFFIX) >=
	    sizeof(record)) {
		snprintf(err, errlen, "%s%s: path too long", store, KM_PIN_REFUSAL_SUFFIX);
		return KM_ERANGE;
	}
	if (unlink(record) != 0 && errno != ENOENT) {
		int e = errno;
		snprintf(err, errlen, "cannot remove %s: %s", record, strerror(e));
		return -e;
	}
	pthread_mutex_lock(&registry_lock);
	gate_entry_t *e = find(store);
	pthread_mutex_unlock(&registry_lock);
	if (e != NULL) {
		pthread_mutex_lock(&e->lock);
		e->in_memory = false;
		pthread_mutex_unlock(&e->lock);
	}
	return KM_EOK;
}
