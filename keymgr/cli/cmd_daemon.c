/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgr status | reload | tick: the client side of keymgrd's control socket
 * (docs/control-protocol.md). The socket is --socket PATH, else $KEYMGR_CONTROL_SOCKET, else
 * found without needing the configuration to be valid (keymgr/control/ctl_locate.h):
 * daemon.control_socket when that section is intact, keymgrd's records next to the stores
 * and in the state directory, the default path. Every other command works without a daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/control/control_proto.h"
#include "keymgr/control/ctl_locate.h"
#include "policy/policy.h"

#define CLIENT_TIMEOUT_MS 120000  /* a tick may generate keys: RSA-4096 takes seconds */

static const char status_help[] =
	"Usage: keymgr [-c FILE] status [ENV[/NAME]] [--socket PATH] [--json]\n"
	"\n"
	"Asks the running keymgrd what it is doing: per key set the active key, the next\n"
	"event and its time, failures and retries, and for every pending key (published, not\n"
	"active yet) which verifiers have fetched a JWKS holding it and which have not\n"
	"(propagation evidence, from the Keymgr-Verifier header or the client address).\n"
	"  --socket PATH   control socket (default: $KEYMGR_CONTROL_SOCKET, then\n"
	"                  daemon.control_socket of the configuration, then the socket\n"
	"                  keymgrd recorded next to its stores or in $KEYMGR_STATE_DIR\n"
	"                  (default /var/lib/keymgr), then /run/keymgr/control.sock)\n"
	"  --json          print keymgrd's status reply (docs/control-protocol.md); every time\n"
	"                  in it is RFC 3339 UTC (2026-12-07T05:03:21Z)\n"
	"The configuration may have errors, or not parse at all: the socket is still found.\n"
	"Exit status 1 if no daemon answers.\n";

static const char reload_help[] =
	"Usage: keymgr [-c FILE] reload [--retry-pin] [--socket PATH] [--json]\n"
	"\n"
	"Makes keymgrd load its configuration and policies again (like SIGHUP) and says\n"
	"whether it accepted them. A configuration with errors is refused, with the error, and\n"
	"the daemon keeps running the previous one (exit status 1).\n"
	"  --retry-pin  first forget the PINs the tokens refused, so that keymgrd presents each\n"
	"               environment's PIN once more, even from an unchanged source (only root\n"
	"               and keymgrd's own user may ask; each attempt may count against the\n"
	"               token's PIN). Without it, a refused PIN is not presented again until\n"
	"               its source changes.\n"
	"  --json   print keymgrd's reply: {\"ok\":true,\"config\":PATH} or {\"ok\":false,\"error\"}\n"
	"The socket is found as by 'keymgr status' (see its --help), also when the\n"
	"configuration has errors.\n";

static const char tick_help[] =
	"Usage: keymgr [-c FILE] tick [ENV[/NAME]] [--socket PATH] [--json]\n"
	"\n"
	"Wakes keymgrd at once: it reads the stores again (picking up changes made with the\n"
	"command line), plans every key set (or the one given) and applies what is due, retrying\n"
	"failed key sets without waiting for their backoff. Answers when done.\n"
	"  --json   print keymgrd's reply: {\"ok\",\"planned\",\"failed\"} (and \"error\")\n"
	"The socket is found as by 'keymgr status' (see its --help), also when the\n"
	"configuration has errors.\n"
	"Exit status 1 if a key set failed (see keymgr status).\n";

enum { OPT_SOCKET = 0x10, OPT_RETRY_PIN };

static const struct option socket_opts[] = {
	KM_CLI_OPTS_COMMON,
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ NULL, 0, NULL, 0 },
};

static const struct option reload_opts[] = {
	KM_CLI_OPTS_COMMON,
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "retry-pin", no_argument, NULL, OPT_RETRY_PIN },
	{ NULL, 0, NULL, 0 },
};

/* The options of status, reload and tick. */
typedef struct {
	const char *socket;
	bool retry_pin;
} ctl_opts_t;

static int take_option(const char *cmd, int opt, const char *arg, void *ctx)
{
	ctl_opts_t *o = ctx;
	(void)cmd;
	if (opt == OPT_SOCKET)
		o->socket = arg;
	else
		o->retry_pin = true;
	return 0;
}

/* Parses options and [ENV[/NAME]]; returns KM_CLI_CONTINUE to go on, or an exit code. */
static int parse(int argc, char **argv, const char *cmd, const char *help,
                 const struct option *opts, bool takes_target, km_cli_common_t *c,
                 ctl_opts_t *o, char env[KM_ENV_NAME_MAX + 1], char name[KM_KEYSET_NAME_MAX + 1])
{
	const km_cli_args_t args = {
		.cmd = cmd, .help = help, .opts = opts, .option = take_option,
		.min_pos = 0, .max_pos = takes_target ? 1 : 0,
		.count_error = takes_target ? "expected at most one ENV or ENV/NAME"
		                            : "takes no arguments",
	};
	char *pos[KM_CLI_MAX_POSITIONAL];
	int npos, rc;
	*o = (ctl_opts_t){ NULL, false };
	env[0] = name[0] = '\0';
	if ((rc = km_cli_args_parse(&args, o, argc, argv, c, pos, &npos)) != KM_CLI_CONTINUE)
		return rc;
	if (npos == 1) {
		char err[256];
		if (km_name_split(pos[0], true, env, name, err, sizeof(err)) != KM_EOK)
			return km_cli_usage_error(cmd, "%s", err);
	}
	return KM_CLI_CONTINUE;
}

/*
 * The socket of the daemon serving env (NULL: any) when neither --socket nor
 * $KEYMGR_CONTROL_SOCKET gives it. The configuration is read as far as it can be; one that
 * cannot be trusted (its owner or mode) stops everything. Prints errors; returns an exit code.
 */
static int find_socket(const char *env, km_ctl_socket_t *ret)
{
	char err[2048] = "";
	const char *path = km_cli_config_located();
	km_config_t *cfg = NULL;
	if (path == NULL)
		return km_cli_usage_error("keymgr", "cannot locate the configuration file");
	int r = km_config_load_partial(path, &cfg, err, sizeof(err));
	if (r == KM_CONFIG_EPERM)
		return km_cli_fail(r, err);
	if (r != KM_EOK)
		km_cli_error("warning: %s; finding keymgrd without the configuration", err);
	else
		km_cli_config_warn(cfg);
	r = km_ctl_locate(cfg, path, env, ret, err, sizeof(err));
	km_config_free(cfg);
	return r == KM_EOK ? KM_CLI_EXIT_OK : km_cli_fail(r, err);
}

/* Sends {"op":op,...} and returns the reply, or prints the error and returns NULL. */
static json_t *call(const char *socket, const char *env, json_t *req, int *rc)
{
	char err[1024];
	km_ctl_socket_t found;
	if (socket == NULL)
		socket = secure_getenv("KEYMGR_CONTROL_SOCKET");
	if (socket == NULL || socket[0] == '\0') {
		if ((*rc = find_socket(env[0] ? env : NULL, &found)) != KM_CLI_EXIT_OK) {
			json_decref(req);
			return NULL;
		}
		socket = found.path;
	}
	json_t *reply = NULL;
	int r = km_ctl_call(socket, req, CLIENT_TIMEOUT_MS, &reply, err, sizeof(err));
	json_decref(req);
	if (r != KM_EOK) {
		km_cli_error("%s", err);
		*rc = KM_CLI_EXIT_REFUSED;
		return NULL;
	}
	*rc = KM_CLI_EXIT_OK;
	return reply;
}

static json_t *target_request(const char *op, const char *env, const char *name)
{
	json_t *req = json_pack("{s:s}", "op", op);
	if (env[0])
		json_object_set_new(req, "env", json_string(env));
	if (name[0])
		json_object_set_new(req, "keyset", json_string(name));
	return req;
}

static bool reply_ok(json_t *reply)
{
	if (json_is_true(json_object_get(reply, "ok")))
		return true;
	const char *e = json_string_value(json_object_get(reply, "error"));
	km_cli_error("keymgrd: %s", e ? e : "request refused");
	return false;
}

/* A time of the status reply (an RFC 3339 string, or null for never), as printed. */
static const char *when(json_t *t)
{
	return json_is_string(t) ? json_string_value(t) : "-";
}

static const char *dur(json_int_t s, char *buf, size_t len)
{
	return km_duration_format((int64_t)s, buf, len);
}

static void join(json_t *arr, char *buf, size_t len)
{
	size_t used = 0, i;
	json_t *v;
	buf[0] = '\0';
	json_array_foreach(arr, i, v) {
		int w = snprintf(buf + used, used < len ? len - used : 0, "%s%s", i ? ", " : "",
		                 json_string_value(v));
		if (w > 0)
			used += (size_t)w;
	}
	if (used == 0)
		snprintf(buf, len, "(none)");
}

static void print_keyset(const char *env, json_t *ks)
{
	char d[32], list[1024];
	printf("%s/%s\n", env, json_string_value(json_object_get(ks, "name")));
	json_t *a = json_object_get(ks, "active");
	if (json_is_object(a))
		printf("  active   %s (since %s, %s)\n", json_string_value(json_object_get(a, "kid")),
		       when(json_object_get(a, "since")),
		       dur(json_integer_value(json_object_get(a, "age")), d, sizeof(d)));
	else
		printf("  active   (none)\n");
	json_t *ne = json_object_get(ks, "next_event");
	if (json_is_object(ne)) {
		json_int_t in = json_integer_value(json_object_get(ne, "in"));
		const char *kid = json_string_value(json_object_get(ne, "kid"));
		printf("  next     %s %s at %s (%s%s)\n", json_string_value(json_object_get(ne, "action")),
		       kid && kid[0] ? kid : "a new key", when(json_object_get(ne, "at")),
		       in <= 0 ? "due" : "in ", in <= 0 ? "" : dur(in, d, sizeof(d)));
	} else {
		printf("  next     nothing scheduled\n");
	}
	const char *err = json_string_value(json_object_get(ks, "error"));
	if (err != NULL)
		printf("  FAILING  %s (%lld failures, retry at %s)\n", err,
		       (long long)json_integer_value(json_object_get(ks, "failures")),
		       when(json_object_get(ks, "retry_at")));
	if (json_is_true(json_object_get(ks, "deferred")))
		printf("  waiting  activation held back until the verifiers have the key\n");
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(ks, "pending"), i, p) {
		printf("  pending  %s (published %s, first served in JWKS serial %lld)\n",
		       json_string_value(json_object_get(p, "kid")),
		       when(json_object_get(p, "published_at")),
		       (long long)json_integer_value(json_object_get(p, "first_serial")));
		join(json_object_get(p, "required"), list, sizeof(list));
		if (json_array_size(json_object_get(p, "required")) > 0)
			printf("           required:    %s\n", list);
		join(json_object_get(p, "seen_by"), list, sizeof(list));
		printf("           seen by:     %s\n", list);
		join(json_object_get(p, "not_seen_by"), list, sizeof(list));
		printf("           not seen by: %s\n", list);
	}
}

static int status(int argc, char **argv)
{
	const char *cmd = "keymgr status";
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1];
	km_cli_common_t c;
	ctl_opts_t o;
	int rc = parse(argc, argv, cmd, status_help, socket_opts, true, &c, &o, env, name);
	if (rc >= 0)
		return rc;
	json_t *reply = call(o.socket, env, target_request("status", env, name), &rc);
	if (reply == NULL)
		return rc;
	if (!reply_ok(reply)) {
		json_decref(reply);
		return KM_CLI_EXIT_REFUSED;
	}
	if (c.json) {
		rc = km_cli_print_json(reply);
		json_decref(reply);
		return rc;
	}
	printf("keymgrd pid %lld, %s, last successful tick %s\n",
	       (long long)json_integer_value(json_object_get(reply, "pid")),
	       json_is_true(json_object_get(reply, "healthy")) ? "healthy" : "UNHEALTHY",
	       when(json_object_get(reply, "last_tick_ok")));
	const char *why = json_string_value(json_object_get(reply, "health_reason"));
	if (why != NULL)
		printf("unhealthy: %s\n", why);
	json_t *l = json_object_get(reply, "listener");
	if (json_is_object(l)) {
		json_int_t lpid = json_integer_value(json_object_get(l, "pid"));
		json_int_t ap = json_integer_value(json_object_get(l, "admin_port"));
		if (lpid > 0)
			printf("listener pid %lld", (long long)lpid);
		else
			printf("listener not running (restarting)");
		printf(", HTTP port %lld", (long long)json_integer_value(json_object_get(l, "port")));
		if (ap > 0)
			printf(", admin port %lld", (long long)ap);
		printf(", seccomp %s, %lld restarts\n",
		       json_is_true(json_object_get(l, "seccomp")) ? "on" : "off",
		       (long long)json_integer_value(json_object_get(l, "restarts")));
	}
	size_t i, j;
	json_t *e, *ks;
	json_array_foreach(json_object_get(reply, "environments"), i, e) {
		const char *en = json_string_value(json_object_get(e, "name"));
		const char *te = json_string_value(json_object_get(e, "token_error"));
		const char *re = json_string_value(json_object_get(e, "refresh_error"));
		printf("\n== %s: JWKS %s (serial %lld)%s%s\n", en,
		       json_string_value(json_object_get(e, "jwks_path")),
		       (long long)json_integer_value(json_object_get(e, "serial")),
		       te ? ", token: " : "", te ? te : "");
		if (re != NULL)
			printf("   publishing: %s\n", re);
		json_t *lease = json_object_get(e, "lease");
		if (json_is_object(lease))
			printf("   lease: %s (node %s); holder %s, epoch %lld, expires %s; %lld fenced "
			       "writes\n",
			       json_is_true(json_object_get(lease, "leader")) ? "this node leads" :
			       "this node follows",
			       json_string_value(json_object_get(lease, "node")),
			       json_string_value(json_object_get(lease, "holder"))[0] ?
			       json_string_value(json_object_get(lease, "holder")) : "nobody",
			       (long long)json_integer_value(json_object_get(lease, "epoch")),
			       json_is_string(json_object_get(lease, "expires")) ?
			       json_string_value(json_object_get(lease, "expires")) : "-",
			       (long long)json_integer_value(json_object_get(lease, "fenced_writes")));
		json_array_foreach(json_object_get(e, "keysets"), j, ks)
			print_keyset(en, ks);
	}
	json_decref(reply);
	return KM_CLI_EXIT_OK;
}

static int simple(int argc, char **argv, const char *op, const char *cmd, const char *help,
                  const struct option *opts, bool takes_target)
{
	char env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1];
	km_cli_common_t c;
	ctl_opts_t o;
	int rc = parse(argc, argv, cmd, help, opts, takes_target, &c, &o, env, name);
	if (rc >= 0)
		return rc;
	json_t *req = target_request(op, env, name);
	if (req != NULL && o.retry_pin)
		json_object_set_new(req, "retry_pin", json_true());
	json_t *reply = call(o.socket, env, req, &rc);
	if (reply == NULL)
		return rc;
	if (c.json) {
		km_cli_print_json(reply);
		rc = json_is_true(json_object_get(reply, "ok")) ? KM_CLI_EXIT_OK : KM_CLI_EXIT_REFUSED;
	} else if (!reply_ok(reply)) {
		rc = KM_CLI_EXIT_REFUSED;
	} else if (strcmp(op, "reload") == 0) {
		printf("keymgrd reloaded %s\n", json_string_value(json_object_get(reply, "config")));
	} else {
		printf("keymgrd planned %lld key set(s); none failed\n",
		       (long long)json_integer_value(json_object_get(reply, "planned")));
	}
	json_decref(reply);
	return rc;
}

int km_cmd_status(int argc, char **argv)
{
	return status(argc, argv);
}

int km_cmd_reload(int argc, char **argv)
{
	return simple(argc, argv, "reload", "keymgr reload", reload_help, reload_opts, false);
}

int km_cmd_tick(int argc, char **argv)
{
	return simple(argc, argv, "tick", "keymgr tick", tick_help, socket_opts, true);
}

void km_cli_wake_daemon(const km_config_t *cfg, const char *env, const char *keyset)
{
	const char *socket = secure_getenv("KEYMGR_CONTROL_SOCKET");
	km_ctl_socket_t found;
	char err[2048];
	struct stat st;
	if (socket == NULL || socket[0] == '\0') {
		/* The daemon of this configuration and environment, even if the file has errors. */
		if (km_ctl_locate(cfg, km_config_path(cfg), env, &found, err, sizeof(err)) != KM_EOK)
			return; /* no daemon here: nothing serves a stale JWKS */
		socket = found.path;
	}
	if (stat(socket, &st) != 0 || !S_ISSOCK(st.st_mode))
		return;
	json_t *reply = NULL, *req = target_request("tick", env, keyset ? keyset : "");
	int r = req ? km_ctl_call(socket, req, CLIENT_TIMEOUT_MS, &reply, err, sizeof(err))
	            : KM_ENOMEM;
	json_decref(req);
	if (r != KM_EOK && r != KM_ENOENT)
		fprintf(stderr, "keymgr: note: keymgrd was not told of this change (%s); it "
		        "notices within its poll interval, or run 'keymgr tick'\n",
		        r == KM_ENOMEM ? "out of memory" : err);
	json_decref(reply);
}
