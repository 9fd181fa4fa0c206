/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket (docs/control-protocol.md): a Unix stream socket, mode 0660 and the
 * configured group. Connections are served by threads (ctl_server.c): sign requests there,
 * at once, even during a pass; status, reload and tick are handed to the main thread and
 * answered here between passes (kd_control_dispatch). Every one of those is logged with the
 * peer's SO_PEERCRED identity, and state-changing ones (reload, tick) act in the store as
 * that peer (the audit log's actor).
 */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/control/ctl_locate.h"
#include "keymgr/core/keyops.h"
#include "keymgr/daemon/authz.h"
#include "keymgr/daemon/control.h"
#include "keymgr/daemon/log.h"
#include "keymgr/daemon/pass.h"
#include "keymgr/daemon/reload.h"
#include "keymgr/daemon/state.h"
#include "keymgr/daemon/status.h"

/* A socket file left by a daemon that died: nothing accepts on it. */
static bool stale_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool stale = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

int kd_control_open(kd_daemon_t *d, const char *path, const char *group, char *err,
                    size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	gid_t gid = (gid_t)-1;
	d->ctl_fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(d->ctl_path)) {
		snprintf(err, errlen, "control socket path %s is too long", path);
		return KM_EINVAL;
	}
	if (group != NULL) {
		struct group *g = getgrnam(group);
		if (g == NULL) {
			snprintf(err, errlen, "daemon.control_group: unknown group '%s'", group);
			return KM_EINVAL;
		}
		gid = g->gr_gid;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket: refusing to replace it", path);
			return KM_EEXIST;
		}
		if (!stale_socket(path)) {
			snprintf(err, errlen, "another keymgrd is listening on %s", path);
			return KM_EBUSY;
		}
		unlink(path);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return KM_EIO;
	}
	mode_t old = umask(0117);   /* never a moment with a wider mode than 0660 */
	int rb = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rb != 0 || chmod(path, 0660) != 0 ||
	    (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) || listen(fd, 16) != 0) {
		if (rb == 0)
			e = errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(e));
		if (rb == 0)
			unlink(path);
		close(fd);
		return KM_EIO;
	}
	d->ctl_fd = fd;
	snprintf(d->ctl_path, sizeof(d->ctl_path), "%s", path);
	return KM_EOK;
}

void kd_control_record(kd_daemon_t *d)
{
	for (size_t i = 0; i < d->n_envs && d->ctl_fd >= 0; i++) {
		char err[PATH_MAX + 128] = "";
		if (km_ctl_record_write(d->envs[i].cfg->local, d->envs[i].name, d->ctl_path,
		                        km_config_path(d->cfg), err, sizeof(err)) != KM_EOK)
			kd_log(KD_LOG_WARNING, "control", "env", d->envs[i].name, "result",
			       "not recorded", "error", err, "detail", "keymgr finds the socket only "
			       "through the configuration, KEYMGR_CONTROL_SOCKET or --socket", NULL);
	}
}

void kd_control_close(kd_daemon_t *d)
{
	if (d->ctl_fd < 0)
		return;
	close(d->ctl_fd);
	d->ctl_fd = -1;
	unlink(d->ctl_path);
}

__attribute__((format(printf, 1, 2)))
static json_t *error_reply(const char *fmt, ...)
{
	char msg[KD_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return km_ctl_refusal(msg, "bad_request", "bad request");
}

/* Optional string member; false (with *reply set) when present but not a valid name. */
static bool opt_name(json_t *req, const char *key, bool (*valid)(const char *), const char **ret,
                     json_t **reply)
{
	json_t *v = json_object_get(req, key);
	*ret = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_string(v) || !valid(json_string_value(v))) {
		*reply = error_reply("'%s' must be a valid name", key);
		return false;
	}
	*ret = json_string_value(v);
	return true;
}

/* Every store acts as the peer (via daemon) for a state-changing request, or as keymgrd. */
static void set_actors(kd_daemon_t *d, const kd_peer_t *p)
{
	km_store_actor_t a;
	if (p != NULL)
		kd_peer_actor(p, "daemon", &a);
	else
		km_store_actor_self(&a, "daemon");
	for (size_t i = 0; i < d->n_envs; i++)
		km_store_set_actor(km_env_store(d->envs[i].env), &a);
}

/* The op's own check, which needs no daemon state: present, and status, reload or tick (a
 * sign request never comes here). NULL when it passes, else the refusal. */
static json_t *op_refusal(const char *op)
{
	if (op == NULL)
		return error_reply("%s", "missing \"op\" (expected sign, status, reload, tick or "
		                   "keys)");
	if (strcmp(op, "status") != 0 && strcmp(op, "tick") != 0 && strcmp(op, "reload") != 0 &&
	    strcmp(op, "keys") != 0) {
		char echo[33];
		return error_reply("unknown op '%s' (expected sign, status, reload, tick or keys)",
		                   km_name_echo(op, 32, echo, sizeof(echo)));
	}
	return NULL;
}

json_t *kd_control_check(const kd_daemon_t *d, json_t *req, const char **op_out,
                         const char **env_out, const char **keyset_out)
{
	json_t *reply = NULL;
	const char *op = json_string_value(json_object_get(req, "op"));
	const char *env = NULL, *keyset = NULL;
	*op_out = op ? op : "-";
	if ((reply = op_refusal(op)) != NULL)
		return reply;
	if (!opt_name(req, "env", km_name_env_valid, &env, &reply) ||
	    !opt_name(req, "keyset", km_name_keyset_valid, &keyset, &reply))
		return reply;
	if (env != NULL) {
		bool known = false;
		for (size_t i = 0; i < d->n_envs; i++)
			known = known || strcmp(d->envs[i].name, env) == 0;
		if (!known)
			return error_reply("environment '%s' is not served by this keymgrd", env);
	}
	*env_out = env;
	*keyset_out = keyset;
	return NULL;
}

/*
 * A reload's "retry_pin": true (keymgr reload --retry-pin): forgets the refusals of the
 * environments' PINs (keymgr/core/pin_refusal.h; only env's, when given), so that the
 * reload's pass presents each PIN once more. Only root and keymgrd's own user may ask: each
 * retry may count against the token's PIN. NULL to go on with the reload, else the refusal.
 */
static json_t *retry_pin(kd_daemon_t *d, json_t *req, const kd_peer_t *peer, const char *env)
{
	json_t *v = json_object_get(req, "retry_pin");
	char err[KD_ERROR_MAX] = "";
	if (v == NULL || json_is_false(v))
		return NULL;
	if (!json_is_true(v))
		return error_reply("%s", "\"retry_pin\" must be true or false");
	if (!peer->known || (peer->uid != 0 && peer->uid != geteuid()))
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "retry_pin: only root and "
		                 "keymgrd's own user may make keymgrd present a refused PIN again "
		                 "(each attempt may count against the token's PIN)", "code", "denied");
	for (size_t i = 0; i < d->n_envs; i++) {
		kd_env_t *e = &d->envs[i];
		if (env != NULL && strcmp(env, e->name) != 0)
			continue;
		if (km_env_pin_retry(e->env, err, sizeof(err)) != KM_EOK)
			return json_pack("{s:b, s:s}", "ok", 0, "error", err);
		kd_log(KD_LOG_INFO, "pin-retry", "env", e->name, "by", peer->who, NULL);
	}
	return NULL;
}

/*
 * "keys" (keymgr-k8s-signer's FetchKeys and Metadata; docs/kubernetes.md): the JWKS of a key
 * set served to kube-apiserver (kubernetes: true), as the store has it now (what keymgrd
 * serves, or a moment ahead of it), with the serial served, max_token_ttl and the refresh
 * hint. Public data: whoever may connect may ask.
 */
static json_t *keys_reply(kd_daemon_t *d, const char *env, const char *keyset)
{
	if (env == NULL || keyset == NULL)
		return error_reply("%s", "keys: \"env\" and \"keyset\" are required");
	kd_env_t *e = NULL;
	for (size_t i = 0; i < d->n_envs && e == NULL; i++)
		if (strcmp(d->envs[i].name, env) == 0)
			e = &d->envs[i];
	const km_keyset_cfg_t *kc = km_config_keyset(d->cfg, env, keyset);
	if (e == NULL || kc == NULL || !kc->kubernetes)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "this key set is not served to "
		                 "kube-apiserver (environments.ENV.keysets.NAME.kubernetes: true)",
		                 "code", "not_served");
	km_policy_t p;
	char err[1024] = "", *body = NULL;
	size_t len = 0;
	int r = km_env_keyset_policy(e->env, keyset, &p);
	if (r == KM_EOK)
		r = km_env_jwks(e->env, keyset, &body, &len, err, sizeof(err));
	if (r != KM_EOK)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", err[0] ? err : km_strerror(r),
		                 "code", r == KM_ENOENT ? "unknown_keyset" : "store_error");
	json_error_t je;
	json_t *jwks = json_loadb(body, len, 0, &je);
	free(body);
	if (jwks == NULL)
		return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "JWKS unreadable", "code",
		                 "internal");
	return json_pack("{s:b, s:o, s:I, s:I, s:I, s:I}", "ok", 1, "jwks", jwks, "serial",
	                 (json_int_t)e->serial, "max_token_ttl", (json_int_t)p.max_token_ttl,
	                 "refresh_hint", (json_int_t)km_config_k8s_refresh_hint(p.publish_lead,
	                                                                      p.clock_skew),
	                 "now", (json_int_t)time(NULL));
}

static json_t *dispatch(kd_daemon_t *d, json_t *req, const kd_peer_t *peer, const char **op_out)
{
	const char *who = peer->who;
	const char *env = NULL, *keyset = NULL;
	json_t *reply = kd_control_check(d, req, op_out, &env, &keyset);
	const char *op = *op_out;
	if (reply != NULL)
		return reply;
	if (strcmp(op, "status") == 0)
		return kd_status_json(d, env, keyset, (int64_t)time(NULL));
	if (strcmp(op, "keys") == 0)
		return keys_reply(d, env, keyset);
	if (strcmp(op, "tick") == 0) {
		size_t failed = 0;
		set_actors(d, peer);
		size_t planned = kd_run_once(d, true, env, keyset, &failed);
		set_actors(d, NULL);
		reply = json_pack("{s:b, s:I, s:I}", "ok", failed == 0, "planned",
		                  (json_int_t)planned, "failed", (json_int_t)failed);
		if (reply != NULL && failed > 0)
			json_object_set_new(reply, "error", json_string("some key sets failed: see "
			                    "`keymgr status` and the daemon's log"));
		return reply;
	}
	/* reload */
	char err[2048] = "";
	if ((reply = retry_pin(d, req, peer, env)) != NULL)
		return reply;
	if (kd_reload(d, who, peer, err, sizeof(err)) != KM_EOK)
		return json_pack("{s:b, s:s}", "ok", 0, "error", err);
	return json_pack("{s:b, s:s}", "ok", 1, "config", km_config_path(d->cfg));
}

/* Logs the answer to a control request of peer (op "-" when missing); gives a refusal
 * without a code the code bad_request. Returns reply. */
static json_t *logged(json_t *reply, const char *op, const kd_peer_t *peer)
{
	bool ok = reply != NULL && json_is_true(json_object_get(reply, "ok"));
	const char *why = reply ? json_string_value(json_object_get(reply, "error")) : "out of memory";
	char uid[16], gid[16], pid[16];
	snprintf(uid, sizeof(uid), "%d", (int)peer->uid);
	snprintf(gid, sizeof(gid), "%d", (int)peer->gid);
	snprintf(pid, sizeof(pid), "%d", (int)peer->pid);
	kd_log(ok ? KD_LOG_INFO : KD_LOG_WARNING, "control", "op", op, "peer_uid", uid, "peer_gid",
	       gid, "peer_pid", pid, "result", ok ? "ok" : "refused", "error", ok ? NULL : why,
	       NULL);
	if (reply != NULL && !ok && json_object_get(reply, "code") == NULL)
		json_object_set_new(reply, "code", json_string("bad_request"));
	return reply;
}

json_t *kd_control_dispatch(kd_daemon_t *d, json_t *req, const kd_peer_t *peer)
{
	const char *op = "-";
	json_t *reply = dispatch(d, req, peer, &op);
	return logged(reply, op, peer);
}

json_t *kd_control_refuse_early(json_t *req, const kd_peer_t *peer)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *reply = op_refusal(op);
	return reply != NULL ? logged(reply, op ? op : "-", peer) : NULL;
}

