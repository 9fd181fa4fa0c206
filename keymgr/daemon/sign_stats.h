/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing figures per key set for /metrics (sign_stats.c): requests by result, refusals by
 * reason (the control protocol's refusal codes), and a latency histogram of the requests
 * signed. Entries are made by the main thread (when the signer resolves a key set) and kept
 * until keymgrd exits, so counters survive a refresh or a reload; the signing threads only
 * add to an entry they hold, with relaxed atomics (no lock on the signing path).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

typedef struct kd_sign_stats kd_sign_stats_t;
typedef struct kd_sign_stat kd_sign_stat_t;

typedef enum {
	KD_SIGN_SIGNED,
	KD_SIGN_REFUSED,       /* by a rule: the caller, the claims, the key set's state */
	KD_SIGN_TOKEN_ERROR,   /* the token failed */
} kd_sign_result_t;

/* KM_EOK or KM_ENOMEM. */
int kd_sign_stats_create(kd_sign_stats_t **ret);
void kd_sign_stats_free(kd_sign_stats_t *s);   /* NULL ok */

/*
 * The entry of env/keyset, made on first use (keyset "" : requests for a key set the
 * environment does not sign for; env "" too : for an environment not signed for). Main
 * thread only. NULL when out of memory (recording into NULL does nothing).
 */
kd_sign_stat_t *kd_sign_stats_entry(kd_sign_stats_t *s, const char *env, const char *keyset);

/* Any thread. code: the refusal code sent to the client (ignored when signed). */
void kd_sign_stat_record(kd_sign_stat_t *e, kd_sign_result_t result, const char *code,
                         uint64_t elapsed_ns);

/* Writes the metric families (Prometheus text format). Main thread only. */
void kd_sign_stats_render(kd_sign_stats_t *s, FILE *f);
