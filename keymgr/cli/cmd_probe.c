/* SPDX-License-Identifier: Apache-2.0 */
/* keymgr probe: audit a live verifier for the checks it skips (keymgr/probe/, docs/probe.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/cli/args.h"
#include "keymgr/cli/cli.h"
#include "keymgr/cli/commands.h"
#include "keymgr/cli/envcmd.h"
#include "keymgr/common/atomic_file.h"
#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/probe/probe.h"
#include "policy/policy.h"

static const char probe_help[] =
	"Usage: keymgr probe ENV/NAME --url URL [--header 'Authorization: Bearer {token}']...\n"
	"                    [--method GET|HEAD|POST] [--accept 2xx] [--aud AUD]\n"
	"                    [--claims JSON|@FILE] [--timeout 5s] [--json] [--output FILE]\n"
	"\n"
	"Sends tokens of key set ENV/NAME to the endpoint URL and reports which it accepted:\n"
	"a genuine one (it must be accepted, or the probe stops), tokens with the key set's\n"
	"real signature that are wrong for the endpoint (expired, not yet valid, wrong iss or\n"
	"aud, another class's typ, too long a lifetime, crit, a duplicate claim), and\n"
	"forgeries signed by keys made for the run (alg none, HS256 with the public key,\n"
	"jku/x5u/jwk keys, kid injections, the wrong key, ECDSA r or s zero, PSS/PKCS#1).\n"
	"Real-signature tokens are valid for at most 60 s, their jti start with keymgr-probe-,\n"
	"and every run is recorded in the audit log (probe.run, probe.result) with them.\n"
	"  --url URL       http:// or https://; its host must be loopback or listed in\n"
	"                  probe.allowed_hosts, and ENV in probe.environments (keymgr.yaml)\n"
	"  --header H      a request header; {token} is replaced by the token (repeatable;\n"
	"                  default 'Authorization: Bearer {token}')\n"
	"  --method M      GET (default), HEAD or POST: point it at an endpoint that only reads\n"
	"  --accept LIST   the statuses that mean accepted (default 2xx; e.g. 200,204)\n"
	"  --aud AUD       the audience the endpoint expects (default: the key set's first)\n"
	"  --claims JSON   more claims for every token, such as a scope (JSON object or @FILE)\n"
	"  --timeout DUR   per request (default 5s, at most 60s)\n"
	"  --json          print the report as JSON instead of a table\n"
	"  --output FILE   also write the report as an HTML page (mode 0644)\n"
	"Exit status: 0 every check passed; 1 a hostile token was accepted, the genuine one\n"
	"refused, a check could not be graded, or the probe was refused (nothing sent);\n"
	"2 usage error.\n";

enum { OPT_URL = 0x10, OPT_HEADER, OPT_METHOD, OPT_ACCEPT, OPT_AUD, OPT_CLAIMS, OPT_TIMEOUT,
       OPT_OUTPUT };

#define CLAIMS_MAX (64 * 1024)

typedef struct {
	km_probe_opts_t o;
	const char *claims, *timeout, *output;
	bool too_many_headers;
} probe_args_t;

static int probe_option(const char *cmd, int opt, const char *arg, void *ctx)
{
	probe_args_t *a = ctx;
	(void)cmd;
	switch (opt) {
	case OPT_URL: a->o.url = arg; break;
	case OPT_METHOD: a->o.method = arg; break;
	case OPT_ACCEPT: a->o.accept = arg; break;
	case OPT_AUD: a->o.aud = arg; break;
	case OPT_CLAIMS: a->claims = arg; break;
	case OPT_TIMEOUT: a->timeout = arg; break;
	case OPT_OUTPUT: a->output = arg; break;
	default:
		if (a->o.n_headers == KM_PROBE_MAX_HEADERS)
			a->too_many_headers = true;
		else
			a->o.headers[a->o.n_headers++] = arg;
		break;
	}
	return 0;
}

static void print_table(const km_probe_report_t *r)
{
	char got[32];
	printf("probe %s/%s (kid %s, %s) -> %s %s (aud %s, accepted: %s)\n", r->env, r->keyset,
	       r->kid, r->alg, r->method, r->url, r->aud, r->accept);
	printf("%-22s %-9s %-15s %-7s %s\n", "CHECK", "EXPECTED", "GOT", "VERDICT", "NOTE");
	for (size_t i = 0; i < r->n_results; i++) {
		const km_probe_result_t *x = &r->results[i];
		if (x->sent)
			snprintf(got, sizeof(got), "%s %ld", x->accepted ? "accepted" : "refused",
			         x->status);
		else
			snprintf(got, sizeof(got), "-");
		printf("%-22s %-9s %-15s %-7s %s\n", x->check->name,
		       x->check->expect_accept ? "accepted" : "refused", got,
		       km_probe_verdict_name(x->verdict), x->note);
	}
	printf("%zu pass, %zu FAIL, %zu warn, %zu error, %zu n/a; audit event %lld\n", r->n_pass,
	       r->n_fail, r->n_warn, r->n_error, r->n_na, (long long)r->audit_seq);
}

/* The lines on stderr that say why the exit status is 1, and the warnings. */
static void explain(const km_probe_report_t *r)
{
	for (size_t i = 0; i < r->n_results; i++)
		if (r->results[i].verdict == KM_PROBE_WARN)
			km_cli_error("%s: refused, but %s: an SSRF signal (%s)",
			             r->results[i].check->name, r->results[i].note,
			             r->results[i].check->standard);
	if (!km_probe_report_failed(r))
		return;
	if (r->stopped)
		km_cli_error("the probe stopped: %s", r->stop_reason);
	for (size_t i = 0; i < r->n_results; i++) {
		const km_probe_result_t *x = &r->results[i];
		if (x->verdict == KM_PROBE_FAIL && !x->check->expect_accept)
			km_cli_error("%s: the endpoint accepted a hostile token (%s; %s)",
			             x->check->name, x->check->tests, x->check->standard);
		else if (x->verdict == KM_PROBE_FAIL)
			km_cli_error("%s: the endpoint refused a genuine token", x->check->name);
		else if (x->verdict == KM_PROBE_ERROR && !r->stopped)
			km_cli_error("%s: not graded: %s", x->check->name, x->note);
	}
}

static int write_html(const char *path, const km_probe_report_t *r)
{
	char *html = NULL;
	int e = km_probe_report_html(r, &html);
	if (e == KM_EOK)
		e = km_file_write_atomic(path, html, strlen(html), 0644);
	free(html);
	if (e != KM_EOK) {
		km_cli_error("cannot write %s: %s", path, km_strerror(e));
		return KM_CLI_EXIT_REFUSED;
	}
	return KM_CLI_EXIT_OK;
}

static int probe(int argc, char **argv)
{
	static const struct option opts[] = {
		KM_CLI_OPTS_COMMON,
		{ "url", required_argument, NULL, OPT_URL },
		{ "header", required_argument, NULL, OPT_HEADER },
		{ "method", required_argument, NULL, OPT_METHOD },
		{ "accept", required_argument, NULL, OPT_ACCEPT },
		{ "aud", required_argument, NULL, OPT_AUD },
		{ "claims", required_argument, NULL, OPT_CLAIMS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ NULL, 0, NULL, 0 },
	};
	static const km_cli_args_t args = {
		.cmd = "keymgr probe", .help = probe_help, .opts = opts, .option = probe_option,
		.min_pos = 1, .max_pos = 1, .count_error = "expected exactly one ENV/NAME",
	};
	const char *cmd = args.cmd;
	char *pos[KM_CLI_MAX_POSITIONAL], env[KM_ENV_NAME_MAX + 1], name[KM_KEYSET_NAME_MAX + 1];
	char err[1024] = "", *claims = NULL;
	km_cli_common_t c;
	probe_args_t a = { .o = { .n_headers = 0 } };
	int64_t timeout = 0;
	int npos, rc = km_cli_args_parse(&args, &a, argc, argv, &c, pos, &npos);
	if (rc != KM_CLI_CONTINUE)
		return rc;
	if (km_name_split(pos[0], false, env, name, err, sizeof(err)) != KM_EOK)
		return km_cli_usage_error(cmd, "%s", err);
	if (a.o.url == NULL)
		return km_cli_usage_error(cmd, "missing --url URL: the endpoint to probe");
	if (a.too_many_headers)
		return km_cli_usage_error(cmd, "at most %d --header options", KM_PROBE_MAX_HEADERS);
	if (a.timeout != NULL &&
	    (km_duration_parse_err(a.timeout, &timeout, err, sizeof(err)) != KM_EOK ||
	     timeout <= 0 || timeout > KM_PROBE_TIMEOUT_MS_MAX / 1000))
		return km_cli_usage_error(cmd, "--timeout: %s", err[0] ? err :
		                          "from 1s to 60s");
	a.o.env = env;
	a.o.keyset = name;
	a.o.timeout_ms = (unsigned)timeout * 1000;
	if (a.claims != NULL) {
		int r = km_cli_read_arg(a.claims, CLAIMS_MAX, &claims, err, sizeof(err));
		if (r != KM_EOK)
			return km_cli_fail(r, err);
		a.o.claims = claims;
	}

	km_config_t *cfg = NULL;
	km_probe_report_t *rep = NULL;
	if ((rc = km_cli_config_load(&cfg)) != KM_CLI_EXIT_OK)
		goto out;
	int r = km_probe_run(cfg, &a.o, &rep, err, sizeof(err));
	if (r == KM_EINVAL) {
		rc = km_cli_usage_error(cmd, "%s", err);
		goto out;
	}
	if (r != KM_EOK) {
		rc = km_cli_fail(r, err);
		goto out;
	}
	if (c.json) {
		json_t *j = km_probe_report_json(rep);
		rc = j != NULL ? km_cli_print_json(j) : km_cli_fail(KM_ENOMEM, NULL);
		json_decref(j);
	} else {
		print_table(rep);
		rc = KM_CLI_EXIT_OK;
	}
	if (a.output != NULL && write_html(a.output, rep) != KM_CLI_EXIT_OK)
		rc = KM_CLI_EXIT_REFUSED;
	explain(rep);
	if (km_probe_report_failed(rep))
		rc = KM_CLI_EXIT_REFUSED;
out:
	km_probe_report_free(rep);
	km_config_free(cfg);
	free(claims);
	return rc;
}

int km_cmd_probe(int argc, char **argv)
{
	return probe(argc, argv);
}
