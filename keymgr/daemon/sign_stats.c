/* SPDX-License-Identifier: Apache-2.0 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/common/error.h"
#include "keymgr/common/name.h"
#include "keymgr/daemon/sign_stats.h"

/* Upper bounds of the latency buckets, in seconds (then +Inf). */
static const double bucket_s[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25, 0.5, 1, 2.5, 5 };
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))

/* The refusal codes of the control protocol (keymgr/control/control_proto.c) a sign request
 * can get; anything else counts as "internal". */
static const char *const reasons[] = {
	"denied", "policy_denied", "malformed", "bad_request", "invalid_name", "unknown_keyset",
	"no_active_key", "wrong_env", "not_served", "busy", "store_error", "internal",
};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

struct kd_sign_stat {
	char env[KM_ENV_NAME_MAX + 1];
	char keyset[KM_KEYSET_NAME_MAX + 1];
	atomic_uint_fast64_t signed_n, token_errors;
	atomic_uint_fast64_t refused[N_REASONS];
	atomic_uint_fast64_t bucket[N_BUCKETS + 1];   /* not cumulative; the last is +Inf */
	atomic_uint_fast64_t sum_ns;
	struct kd_sign_stat *next;
};

struct kd_sign_stats {
	kd_sign_stat_t *head, *tail;   /* in order of creation */
};

int kd_sign_stats_create(kd_sign_stats_t **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? KM_EOK : KM_ENOMEM;
}

void kd_sign_stats_free(kd_sign_stats_t *s)
{
	if (s == NULL)
		return;
	for (kd_sign_stat_t *e = s->head, *n; e != NULL; e = n) {
		n = e->next;
		free(e);
	}
	free(s);
}

kd_sign_stat_t *kd_sign_stats_entry(kd_sign_stats_t *s, const char *env, const char *keyset)
{
	if (s == NULL)
		return NULL;
	for (kd_sign_stat_t *e = s->head; e != NULL; e = e->next)
		if (strcmp(e->env, env) == 0 && strcmp(e->keyset, keyset) == 0)
			return e;
	if (strlen(env) > KM_ENV_NAME_MAX || strlen(keyset) > KM_KEYSET_NAME_MAX)
		return NULL;
	kd_sign_stat_t *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	memcpy(e->env, env, strlen(env) + 1);
	memcpy(e->keyset, keyset, strlen(keyset) + 1);
	if (s->tail != NULL)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	return e;
}

void kd_sign_stat_record(kd_sign_stat_t *e, kd_sign_result_t result, const char *code,
                         uint64_t elapsed_ns)
{
	if (e == NULL)
		return;
	if (result == KD_SIGN_TOKEN_ERROR) {
		atomic_fetch_add_explicit(&e->token_errors, 1, memory_order_relaxed);
		return;
	}
	if (result == KD_SIGN_REFUSED) {
		size_t i = 0;
		while (i < N_REASONS - 1 && (code == NULL || strcmp(code, reasons[i]) != 0))
			i++;
		atomic_fetch_add_explicit(&e->refused[i], 1, memory_order_relaxed);
		return;
	}
	double s = (double)elapsed_ns / 1e9;
	size_t b = 0;
	while (b < N_BUCKETS && s > bucket_s[b])
		b++;
	atomic_fetch_add_explicit(&e->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->sum_ns, elapsed_ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->signed_n, 1, memory_order_relaxed);
}

static void labels(FILE *f, const kd_sign_stat_t *e)
{
	/* names are [A-Za-z0-9._-] (keymgr/common/name.h): nothing to escape */
	fprintf(f, "env=\"%s\",keyset=\"%s\"", e->env, e->keyset);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
	return (uint64_t)atomic_load_explicit(v, memory_order_relaxed);
}

/* The catch-all entries (a key set or environment not signed for) are shown once used. */
static bool shown(kd_sign_stat_t *e)
{
	if (e->keyset[0] != '\0' || load(&e->token_errors) > 0)
		return true;
	for (size_t i = 0; i < N_REASONS; i++)
		if (load(&e->refused[i]) > 0)
			return true;
	return false;
}

void kd_sign_stats_render(kd_sign_stats_t *s, FILE *f)
{
	if (s == NULL)
		return;
	fprintf(f, "# HELP keymgr_sign_requests_total Signing requests by key set and result "
	           "(signed, refused, token_error).\n# TYPE keymgr_sign_requests_total counter\n");
	for (kd_sign_stat_t *e = s->head; e != NULL; e = e->next) {
		if (!shown(e))
			continue;
		uint64_t refused = 0;
		for (size_t i = 0; i < N_REASONS; i++)
			refused += load(&e->refused[i]);
		static const char *const res[] = { "signed", "refused", "token_error" };
		uint64_t v[] = { load(&e->signed_n), refused, load(&e->token_errors) };
		for (size_t i = 0; i < 3; i++) {
			fputs("keymgr_sign_requests_total{", f);
			labels(f, e);
			fprintf(f, ",result=\"%s\"} %llu\n", res[i], (unsigned long long)v[i]);
		}
	}
	fprintf(f, "# HELP keymgr_sign_refusals_total Signing requests refused, by key set and "
	           "reason (the refusal code the caller got).\n"
	           "# TYPE keymgr_sign_refusals_total counter\n");
	for (kd_sign_stat_t *e = s->head; e != NULL; e = e->next)
		for (size_t i = 0; i < N_REASONS; i++) {
			uint64_t v = load(&e->refused[i]);
			if (v == 0)
				continue;   /* a family of many zeros helps nobody */
			fputs("keymgr_sign_refusals_total{", f);
			labels(f, e);
			fprintf(f, ",reason=\"%s\"} %llu\n", reasons[i], (unsigned long long)v);
		}
	fprintf(f, "# HELP keymgr_sign_token_errors_total Signing requests the token failed, by "
	           "key set.\n# TYPE keymgr_sign_token_errors_total counter\n");
	for (kd_sign_stat_t *e = s->head; e != NULL; e = e->next) {
		if (!shown(e))
			continue;
		fputs("keymgr_sign_token_errors_total{", f);
		labels(f, e);
		fprintf(f, "} %llu\n", (unsigned long long)load(&e->token_errors));
	}
	fprintf(f, "# HELP keymgr_sign_duration_seconds Time to sign a request (claims check, "
	           "signature, token), for the requests signed.\n"
	           "# TYPE keymgr_sign_duration_seconds histogram\n");
	for (kd_sign_stat_t *e = s->head; e != NULL; e = e->next) {
		if (e->keyset[0] == '\0')
			continue;   /* nothing is signed there */
		uint64_t cum = 0;
		for (size_t b = 0; b <= N_BUCKETS; b++) {
			cum += load(&e->bucket[b]);
			fputs("keymgr_sign_duration_seconds_bucket{", f);
			labels(f, e);
			if (b < N_BUCKETS)
				fprintf(f, ",le=\"%g\"} %llu\n", bucket_s[b], (unsigned long long)cum);
			else
				fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
		}
		fputs("keymgr_sign_duration_seconds_sum{", f);
		labels(f, e);
		fprintf(f, "} %.9f\n", (double)load(&e->sum_ns) / 1e9);
		fputs("keymgr_sign_duration_seconds_count{", f);
		labels(f, e);
		fprintf(f, "} %llu\n", (unsigned long long)cum);
	}
}
