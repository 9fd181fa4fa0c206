/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Time travel: more than a year of daemon ticks at random intervals (seconds to weeks),
 * applying the planner's actions to an in-memory key set, while modelled issuers mint tokens
 * and modelled verifiers check them through a JWKS cache. At every tick the invariants of
 * docs/timing.md are asserted:
 *   1. after bootstrap, exactly one active key;
 *   2. a key signs only once published >= publish_lead (except bootstrap and emergencies,
 *      flagged `early` by the planner);
 *   3. every token checked inside its lifetime (clock skew within S) is accepted, by verifiers
 *      whose caches obey jwks_max_age, with and without refetch on an unknown kid; the only
 *      rejections allowed are those of an early key's tokens by non-refetching verifiers,
 *      inside the gap the planner reported;
 *   4. no key leaves the JWKS while a token it signed is within exp + S;
 *   5. a revoked key is out of the JWKS at once, and out of every cache after jwks_max_age.
 * Also: one pass returns everything due (planning again at the same instant gives nothing),
 * also after an apply interrupted halfway. Rotations requested by hand (km_plan_rotate) at
 * random ticks keep every invariant, never add a waiting key while one is pending, and
 * their successor activates at the first tick at or after the time the request promised.
 *
 * test_timetravel_random_seed takes its seed from KEYMGR_TEST_SEED or the clock and prints
 * it; every failure message carries the seed to replay with.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "keymgr/common/error.h"
#include "policy/planner.h"

#define MIN_ 60
#define H 3600
#define DAY 86400
#define T0 ((int64_t)1800000000)
#define MAXK 4096
#define N_VERIFIERS 8
#define MAX_PENDING 200000

static uint64_t g_seed;
static const char *g_case = "";

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		char m_[512]; \
		snprintf(m_, sizeof(m_), __VA_ARGS__); \
		fail_msg("seed %" PRIu64 " (replay: KEYMGR_TEST_SEED=%" PRIu64 "), case %s: %s", \
		         g_seed, g_seed, g_case, m_); \
	} \
} while (0)

/* ------------------------------------------------------------------ randomness */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Uniform in [lo, hi]. */
static int64_t rnd_in(int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------------ the model */

typedef struct {
	int64_t phase;       /* periodic refresh every M, at phase + k*M */
	int64_t delta;       /* clock offset from ours, within [-S, S] */
	bool refetch;        /* refetches the JWKS on an unknown kid */
	int oldest;          /* 1: always holds the oldest copy allowed (age M - 1) */
} verifier_t;

typedef struct {
	size_t key;
	int64_t s;           /* minted (iat) */
	int64_t x;           /* checked at (real time) */
} check_t;

typedef struct {
	km_policy_t p;
	km_plan_key_t k[MAXK];
	bool early[MAXK];
	int64_t gap_end[MAXK];     /* early keys: non-refetching verifiers may fail before this */
	int64_t exposure_end[MAXK]; /* revoked keys: caches may hold them until this */
	int64_t last_signed[MAXK];
	int64_t promised[MAXK];    /* requested rotations: the successor's promised time, or 0 */
	int64_t request_at[64];    /* the latest requested rotations (a ring) */
	size_t n;
	verifier_t v[N_VERIFIERS];
	check_t *pending;
	size_t n_pending;
	km_plan_t *plan;
	/* statistics, so that a run can be shown to have exercised something */
	unsigned ticks, rotations, removals, destroys, emergencies, n_early, partial, requests,
	         requested_activations;
	unsigned long checks, gap_failures, revoked_rejections;
} model_t;

typedef struct {
	const char *name;
	km_policy_t p;
	int days;
	unsigned emergency_per_mille;  /* chance per tick */
	unsigned partial_percent;      /* chance an apply stops halfway */
	unsigned request_per_mille;    /* chance per tick of a rotation requested by hand */
} sim_cfg_t;

static void model_init(model_t *m, const km_policy_t *p)
{
	memset(m, 0, sizeof(*m));
	m->p = *p;
	m->pending = calloc(MAX_PENDING, sizeof(check_t));
	assert_non_null(m->pending);
	assert_int_equal(km_plan_create(&m->plan), KM_EOK);
	int64_t S = p->clock_skew, M = p->jwks_max_age;
	for (int i = 0; i < N_VERIFIERS; i++) {
		verifier_t *v = &m->v[i];
		v->phase = rnd_in(0, M - 1);
		v->refetch = i % 2 == 1;
		v->delta = i % 4 == 0 ? -S : i % 4 == 1 ? S : rnd_in(-S, S);
		v->oldest = i >= N_VERIFIERS - 2;
	}
}

static void model_free(model_t *m)
{
	free(m->pending);
	km_plan_free(m->plan);
}

/* Whether key k was in the JWKS served at time f: published before f, not yet removed or
 * revoked at f. Publication at f itself is not seen, removal at f is (the worst of both). */
static bool in_jwks_at(const model_t *m, size_t k, int64_t f)
{
	const km_plan_key_t *key = &m->k[k];
	int64_t pub = key->at[KM_STATE_PUBLISHED];
	if (pub == 0 || pub >= f)
		return false;
	int64_t rem = key->at[KM_STATE_REMOVED], rev = key->at[KM_STATE_REVOKED];
	int64_t des = key->at[KM_STATE_DESTROYED];
	if ((rem && rem <= f) || (rev && rev <= f) || (des && des <= f))
		return false;
	return true;
}

/* When verifier v, checking at x, last fetched the JWKS (without a refetch). */
static int64_t cache_time(const model_t *m, const verifier_t *v, int64_t x)
{
	int64_t M = m->p.jwks_max_age;
	if (v->oldest)
		return x - (M - 1);
	int64_t age = ((x - v->phase) % M + M) % M;
	return x - age;
}

static size_t count_state(const model_t *m, km_state_t s)
{
	size_t c = 0;
	for (size_t i = 0; i < m->n; i++)
		c += m->k[i].state == s;
	return c;
}

static bool ever_active(const model_t *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->k[i].at[KM_STATE_ACTIVE] != 0)
			return true;
	return false;
}

/* Evaluates every pending check whose instant is now in the past (the JWKS history before
 * `now` is final). */
static void evaluate(model_t *m, int64_t now)
{
	const km_policy_t *p = &m->p;
	int64_t S = p->clock_skew, T = p->max_token_ttl;
	size_t keep = 0;
	for (size_t i = 0; i < m->n_pending; i++) {
		check_t c = m->pending[i];
		if (c.x >= now) {
			m->pending[keep++] = c;
			continue;
		}
		for (int vi = 0; vi < N_VERIFIERS; vi++) {
			const verifier_t *v = &m->v[vi];
			int64_t vx = c.x + v->delta;   /* the verifier's clock */
			if (vx < c.s - S || vx > c.s + T + S)
				continue;               /* outside the lifetime for this verifier */
			int64_t f = cache_time(m, v, c.x);
			bool ok = in_jwks_at(m, c.key, f);
			if (!ok && v->refetch)
				ok = in_jwks_at(m, c.key, c.x + 1);  /* fresh copy, taken at x */
			m->checks++;
			const km_plan_key_t *key = &m->k[c.key];
			int64_t rev = key->at[KM_STATE_REVOKED];
			if (rev != 0 && rev <= c.x) {
				/* Invariant 5: after the exposure window no verifier accepts it. */
				if (c.x >= m->exposure_end[c.key])
					CHECK(!ok, "revoked key #%zu accepted at +%llds after revocation by "
					      "verifier %d", c.key, (long long)(c.x - rev), vi);
				m->revoked_rejections += !ok;
				continue;
			}
			if (ok)
				continue;
			/* The only failures allowed: an early key, a non-refetching verifier, inside
			 * the reported gap. */
			CHECK(m->early[c.key] && !v->refetch && c.x < m->gap_end[c.key],
			      "verification failure: key #%zu (early %d) token minted %+llds after "
			      "activation, checked at +%llds, verifier %d (refetch %d, cache age %llds), "
			      "key published at %+llds, removed at %+llds", c.key, m->early[c.key],
			      (long long)(c.s - key->at[KM_STATE_ACTIVE]), (long long)(c.x - c.s), vi,
			      v->refetch, (long long)(c.x - f),
			      (long long)(key->at[KM_STATE_PUBLISHED] - c.s),
			      (long long)(key->at[KM_STATE_REMOVED] ? key->at[KM_STATE_REMOVED] - c.s
			                                             : 0));
			m->gap_failures++;
		}
	}
	m->n_pending = keep;
}

static void add_check(model_t *m, size_t key, int64_t s, int64_t x)
{
	CHECK(m->n_pending < MAX_PENDING, "too many pending checks");
	m->pending[m->n_pending++] = (check_t){ key, s, x };
}

/* The issuers sign with the active key between two ticks; verifiers will check later. */
static void mint(model_t *m, int64_t from, int64_t to)
{
	const km_policy_t *p = &m->p;
	size_t active = SIZE_MAX;
	for (size_t i = 0; i < m->n; i++)
		if (m->k[i].state == KM_STATE_ACTIVE)
			active = i;
	if (active == SIZE_MAX)
		return;
	const km_plan_key_t *k = &m->k[active];
	/* The first and last instants, the last minute, and more the longer the interval. */
	int64_t extra = (to - from) / (2 * H);
	int count = 6 + (int)(extra > 200 ? 200 : extra);
	for (int i = 0; i < count; i++) {
		int64_t s = i == 0 ? from : i == 1 ? to - 1 : i == 2 ? rnd_in(to - 60, to - 1)
		                                               : rnd_in(from, to - 1);
		if (s < from)
			s = from;
		/* Invariant 2. */
		CHECK(m->early[active] || s - k->at[KM_STATE_PUBLISHED] >= p->publish_lead,
		      "key #%zu signs %llds after publication (publish_lead %llds)", active,
		      (long long)(s - k->at[KM_STATE_PUBLISHED]), (long long)p->publish_lead);
		if (s > m->last_signed[active])
			m->last_signed[active] = s;
		int64_t end = s + p->max_token_ttl + p->clock_skew;
		add_check(m, active, s, s);
		add_check(m, active, s, rnd_in(s, end));
		add_check(m, active, s, end);
	}
}

static const km_state_t op_to_state[KM_PLAN_OP_COUNT] = {
	KM_STATE_GENERATED, KM_STATE_PUBLISHED, KM_STATE_ACTIVE, KM_STATE_RETIRED,
	KM_STATE_REMOVED, KM_STATE_DESTROYED, KM_STATE_REVOKED,
	KM_STATE_PUBLISHED,   /* SCHEDULE: the key stays published */
};

/* Applies the first `limit` actions of the current plan at time t, checking each. */
static void apply(model_t *m, int64_t t, size_t limit, bool emergency)
{
	const km_policy_t *p = &m->p;
	bool bootstrap = !ever_active(m);
	size_t n_act = km_plan_n_actions(m->plan);
	if (limit > n_act)
		limit = n_act;
	for (size_t i = 0; i < limit; i++) {
		const km_plan_action_t *a = km_plan_action(m->plan, i);
		CHECK(a->at <= t, "action %s due in the future (%lld > %lld)", km_plan_op_name(a->op),
		      (long long)a->at, (long long)t);
		size_t idx = a->key;
		if (a->op == KM_PLAN_GENERATE) {
			CHECK(idx == m->n, "GENERATE numbers its key %zu, expected %zu", idx, m->n);
			CHECK(m->n < MAXK, "too many keys");
			memset(&m->k[m->n], 0, sizeof(m->k[0]));
			m->k[m->n].id = m->n;
			m->n++;
		} else {
			CHECK(idx < m->n, "action on unknown key %zu", idx);
			CHECK(a->op == KM_PLAN_SCHEDULE ||
			      km_state_transition_ok(m->k[idx].state, op_to_state[a->op]),
			      "illegal transition %s -> %s", km_state_name(m->k[idx].state),
			      km_state_name(op_to_state[a->op]));
		}
		km_plan_key_t *k = &m->k[idx];
		switch (a->op) {
		case KM_PLAN_ACTIVATE: {
			int64_t age = t - k->at[KM_STATE_PUBLISHED];
			CHECK(a->early == (age < p->publish_lead), "early flag %d for a key published "
			      "%llds ago", a->early, (long long)age);
			/* Invariant 2: early only at bootstrap or in an emergency. */
			CHECK(!a->early || bootstrap || emergency, "key #%zu activated %llds after "
			      "publication outside bootstrap/emergency", idx, (long long)age);
			if (a->early) {
				m->early[idx] = true;
				m->gap_end[idx] = t + km_plan_gap(m->plan);
				CHECK(km_plan_gap(m->plan) <= p->jwks_max_age, "gap %lld > jwks_max_age",
				      (long long)km_plan_gap(m->plan));
				m->n_early++;
			}
			m->rotations++;
			break;
		}
		case KM_PLAN_REMOVE:
			/* Invariant 4. */
			CHECK(k->at[KM_STATE_RETIRED] + p->max_token_ttl + p->clock_skew <= t &&
			      m->last_signed[idx] + p->max_token_ttl + p->clock_skew < t,
			      "key #%zu removed %llds after retirement, last signed %llds before",
			      idx, (long long)(t - k->at[KM_STATE_RETIRED]),
			      (long long)(t - m->last_signed[idx]));
			m->removals++;
			break;
		case KM_PLAN_DESTROY:
			m->destroys++;
			break;
		case KM_PLAN_REVOKE:
			m->exposure_end[idx] = t + p->jwks_max_age;
			break;
		case KM_PLAN_SCHEDULE:
			CHECK(k->state == KM_STATE_PUBLISHED && a->activate_at >= k->at[KM_STATE_PUBLISHED] +
			      p->publish_lead, "key #%zu scheduled at %+llds, published at %+llds",
			      idx, (long long)(a->activate_at - T0),
			      (long long)(k->at[KM_STATE_PUBLISHED] - T0));
			k->activate_at = a->activate_at;
			m->promised[idx] = a->activate_at;
			continue;   /* no state change */
		default:
			break;
		}
		/* An emergency may activate a requested successor before its time (it activates
		 * the oldest published key at once); nothing else may. */
		if (a->op == KM_PLAN_ACTIVATE && m->promised[idx] != 0) {
			CHECK(emergency || t >= m->promised[idx], "key #%zu activated %llds before its "
			      "requested time (%s)", idx, (long long)(m->promised[idx] - t), a->reason);
			m->requested_activations++;
		}
		k->state = op_to_state[a->op];
		k->at[k->state] = t;
		if (a->op == KM_PLAN_REVOKE)   /* invariant 5: out of the JWKS at once */
			CHECK(!in_jwks_at(m, idx, t + 1) && !km_state_in_jwks(k->state),
			      "revoked key still served");
	}
}

static void plan(model_t *m, int64_t t)
{
	int r = km_plan_compute(m->plan, m->k, m->n, &m->p, t);
	CHECK(r == KM_EOK, "km_plan_compute: %d", r);
}

static void check_state(model_t *m, int64_t t)
{
	/* Invariant 1 (the model ticks after bootstrap, so always). */
	CHECK(count_state(m, KM_STATE_ACTIVE) == 1, "%zu active keys at %+llds",
	      count_state(m, KM_STATE_ACTIVE), (long long)(t - T0));
	size_t jwks = 0;
	for (size_t i = 0; i < m->n; i++)
		jwks += km_state_in_jwks(m->k[i].state);
	/* Requested rotations retire keys early: each adds at most one retired key to the
	 * steady-state bound while it is within retire_retention (+ the period it cut short). */
	unsigned extra = 0;
	for (size_t i = 0; i < sizeof(m->request_at) / sizeof(m->request_at[0]); i++)
		if (m->request_at[i] != 0 && m->request_at[i] > t - m->p.retire_retention -
		    m->p.rotation_period - m->p.publish_lead)
			extra++;
	CHECK(jwks <= km_policy_jwks_keys(&m->p) + extra, "JWKS holds %zu keys, policy bound %u "
	      "+ %u requested rotations", jwks, km_policy_jwks_keys(&m->p), extra);
	/* A requested rotation never adds a waiting key while one is pending. */
	CHECK(count_state(m, KM_STATE_PUBLISHED) <= (m->p.standby ? 2u : 1u), "%zu published keys",
	      count_state(m, KM_STATE_PUBLISHED));
	/* A promised activation happens at the first tick at or after its time. */
	for (size_t i = 0; i < m->n; i++)
		CHECK(m->promised[i] == 0 || m->promised[i] > t ||
		      m->k[i].state != KM_STATE_PUBLISHED, "key #%zu still waits %llds after the time "
		      "its requested rotation promised", i, (long long)(t - m->promised[i]));
}

/* Drops destroyed keys from the model once there are many (short periods make thousands).
 * Their tokens expired before their removal, so no pending check names them. */
static void compact(model_t *m)
{
	static size_t map[MAXK];
	if (m->n < MAXK / 4)
		return;
	size_t j = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->k[i].state == KM_STATE_DESTROYED) {
			map[i] = SIZE_MAX;
			continue;
		}
		map[i] = j;
		m->k[j] = m->k[i];
		m->early[j] = m->early[i];
		m->gap_end[j] = m->gap_end[i];
		m->exposure_end[j] = m->exposure_end[i];
		m->last_signed[j] = m->last_signed[i];
		m->promised[j] = m->promised[i];
		j++;
	}
	for (size_t i = 0; i < m->n_pending; i++) {
		CHECK(map[m->pending[i].key] != SIZE_MAX, "a pending check names destroyed key #%zu",
		      m->pending[i].key);
		m->pending[i].key = map[m->pending[i].key];
	}
	m->n = j;
}

/* One tick: plan, apply (maybe interrupted, then planned again), check convergence. */
static void tick(model_t *m, const sim_cfg_t *cfg, int64_t t)
{
	m->ticks++;
	plan(m, t);
	size_t n = km_plan_n_actions(m->plan);
	if (n > 1 && rnd_in(0, 99) < cfg->partial_percent) {
		apply(m, t, (size_t)rnd_in(0, (int64_t)n - 1), false);
		m->partial++;
		plan(m, t);
	}
	apply(m, t, SIZE_MAX, false);
	plan(m, t);
	CHECK(km_plan_n_actions(m->plan) == 0, "plan at the same instant after applying is not "
	      "empty: %s %s", km_plan_op_name(km_plan_action(m->plan, 0)->op),
	      km_plan_action(m->plan, 0)->reason);
	CHECK(km_plan_next_wake(m->plan) > t, "next wake not in the future");
}

static void emergency(model_t *m, int64_t t)
{
	const km_policy_t *p = &m->p;
	size_t active = SIZE_MAX;
	bool ready = false, any_pub = false;
	for (size_t i = 0; i < m->n; i++) {
		if (m->k[i].state == KM_STATE_ACTIVE)
			active = i;
		if (m->k[i].state == KM_STATE_PUBLISHED) {
			any_pub = true;
			ready |= t - m->k[i].at[KM_STATE_PUBLISHED] >= p->publish_lead;
		}
	}
	int r = km_plan_emergency(m->plan, m->k, m->n, p, t, active);
	CHECK(r == KM_EOK, "km_plan_emergency: %d", r);
	const km_plan_action_t *a0 = km_plan_action(m->plan, 0);
	CHECK(a0 && a0->op == KM_PLAN_REVOKE && a0->key == active, "emergency does not revoke "
	      "first");
	CHECK(km_plan_exposure_until(m->plan) == t + p->jwks_max_age, "exposure window");
	if (ready)
		CHECK(km_plan_gap(m->plan) == 0, "a ready standby existed but the gap is %lld",
		      (long long)km_plan_gap(m->plan));
	else if (!any_pub)
		CHECK(km_plan_gap(m->plan) == p->jwks_max_age, "no key published: gap %lld != M",
		      (long long)km_plan_gap(m->plan));
	else
		CHECK(km_plan_gap(m->plan) <= p->jwks_max_age, "gap above M");
	apply(m, t, SIZE_MAX, true);
	plan(m, t);
	apply(m, t, SIZE_MAX, false);  /* the regular plan adds nothing early */
	m->emergencies++;
}

/* `keymgr rotate` at t: the planner's outcome agrees with the key set, nothing signs early. */
static void request(model_t *m, int64_t t)
{
	const km_policy_t *p = &m->p;
	size_t pending = SIZE_MAX, waiting = 0, ready = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->k[i].state != KM_STATE_PUBLISHED)
			continue;
		waiting++;
		ready += t - m->k[i].at[KM_STATE_PUBLISHED] >= p->publish_lead;
		if (m->k[i].activate_at != 0 && m->promised[i] > t)
			pending = i;
	}
	km_plan_rotation_t rot;
	int r = km_plan_rotate(m->plan, m->k, m->n, p, t, KM_PLAN_ROTATE_NORMAL, &rot);
	CHECK(r == KM_EOK, "km_plan_rotate: %d", r);
	switch (rot.outcome) {
	case KM_PLAN_ROTATED_PENDING:
		CHECK(pending != SIZE_MAX && rot.key == pending && rot.at == m->promised[pending] &&
		      km_plan_n_actions(m->plan) == 0, "pending outcome without a pending rotation");
		break;
	case KM_PLAN_ROTATED_PROMOTED:
		CHECK(pending == SIZE_MAX && ready > 0 && rot.at == t, "promoted without a ready key");
		m->requested_activations++;
		break;
	case KM_PLAN_ROTATED_SCHEDULED:
		CHECK(pending == SIZE_MAX && waiting > 0 && rot.key < m->n && rot.at ==
		      m->k[rot.key].at[KM_STATE_PUBLISHED] + p->publish_lead && rot.at > t,
		      "scheduled a key that does not wait");
		break;
	case KM_PLAN_ROTATED_NEW:
		CHECK(pending == SIZE_MAX && waiting == 0 && rot.key >= m->n &&
		      rot.at == t + p->publish_lead, "new key while one waits");
		break;
	default:
		CHECK(false, "outcome %d in steady state", (int)rot.outcome);
	}
	apply(m, t, SIZE_MAX, false);
	plan(m, t);
	CHECK(km_plan_n_actions(m->plan) == 0, "plan after a requested rotation is not empty: %s",
	      km_plan_action(m->plan, 0)->reason);
	if (rot.outcome != KM_PLAN_ROTATED_PENDING)
		m->request_at[m->requests % (sizeof(m->request_at) / sizeof(m->request_at[0]))] = t;
	m->requests++;
}

static void simulate(model_t *m, const sim_cfg_t *cfg, int64_t forced_emergency)
{
	const km_policy_t *p = &m->p;
	int64_t t = T0, end = T0 + (int64_t)cfg->days * DAY;
	tick(m, cfg, t);
	while (t < end) {
		int64_t wake = km_plan_next_wake(m->plan);
		int64_t next;
		int64_t r = rnd_in(0, 99);
		int64_t nap = t + rnd_in(1, 6 * H);
		if (r < 70)                                    /* a daemon with a maximum sleep */
			next = nap < wake ? nap : wake;
		else if (r < 80)
			next = wake;                               /* on time */
		else if (r < 93)
			next = t + rnd_in(1, 2 * H);               /* an extra tick (CLI, restart) */
		else if (r < 99)
			next = t + rnd_in(H, 3 * DAY);             /* a late tick */
		else
			next = t + rnd_in(7 * DAY, 28 * DAY);      /* down for weeks */
		if (forced_emergency > t && next > forced_emergency)
			next = forced_emergency;
		if (next <= t)
			next = t + 1;
		if (next > end)
			next = end;
		mint(m, t, next);
		t = next;
		evaluate(m, t);
		tick(m, cfg, t);
		if (t == forced_emergency ||
		    (cfg->emergency_per_mille && rnd_in(0, 999) < cfg->emergency_per_mille))
			emergency(m, t);
		else if (cfg->request_per_mille && rnd_in(0, 999) < cfg->request_per_mille)
			request(m, t);
		check_state(m, t);
		compact(m);
	}
	/* Let every outstanding token expire, then check the rest. */
	int64_t drain = t + p->max_token_ttl + 2 * p->clock_skew + 2;
	mint(m, t, t + 1);
	tick(m, cfg, drain);
	evaluate(m, drain + 1);
	CHECK(m->n_pending == 0 || m->pending[0].x > drain, "checks left unevaluated");
}

/* ------------------------------------------------------------------ policies */

static km_policy_t pol(const char *env, int64_t R, int64_t M, int64_t T, int64_t S, int64_t P,
                       int64_t Ret, int64_t D, bool standby)
{
	km_policy_t p;
	km_policy_defaults(&p, env);
	if (R) {
		p.rotation_period = R;
		p.jwks_max_age = M;
		p.max_token_ttl = T;
		p.clock_skew = S;
		p.publish_lead = P;
		p.retire_retention = Ret;
		p.destroy_after = D;
	}
	p.standby = standby;
	char err[256] = "";
	if (km_policy_validate(&p, err, sizeof(err)) != KM_EOK)
		fail_msg("test policy invalid: %s", err);
	return p;
}

static size_t policies(sim_cfg_t *out)
{
	size_t n = 0;
	out[n++] = (sim_cfg_t){ "production", pol("production", 0, 0, 0, 0, 0, 0, 0, true),
	                        400, 4, 10, 20 };
	out[n++] = (sim_cfg_t){ "production-no-standby",
	                        pol("production", 0, 0, 0, 0, 0, 0, 0, false), 400, 4, 10, 20 };
	out[n++] = (sim_cfg_t){ "development", pol("staging", 0, 0, 0, 0, 0, 0, 0, false),
	                        400, 2, 10, 20 };
	/* Short periods: many rotations, a year of them. */
	out[n++] = (sim_cfg_t){ "short-standby",
	                        pol("staging", 1 * DAY, 10 * MIN_, 30 * MIN_, 1 * MIN_, 15 * MIN_,
	                            1 * H, 2 * H, true), 380, 3, 15, 10 };
	/* Every rule at its boundary: P = M + S, Ret = T + M + S, R = P + 1s; no skew. */
	out[n++] = (sim_cfg_t){ "tight-no-skew",
	                        pol("staging", 3 * H + 1, 3 * H, 2 * H, 0, 3 * H, 5 * H, 0, false),
	                        370, 2, 15, 10 };
	out[n++] = (sim_cfg_t){ "tight-skew-standby",
	                        pol("staging", 3 * H + 1, 2 * H, 2 * H, 1 * H, 3 * H,
	                            5 * H, 1 * H, true), 370, 2, 15, 10 };
	/* A security team that rotates by hand all the time, with and without a standby. */
	out[n++] = (sim_cfg_t){ "by-hand-standby",
	                        pol("staging", 1 * DAY, 10 * MIN_, 30 * MIN_, 1 * MIN_, 15 * MIN_,
	                            1 * H, 2 * H, true), 90, 2, 10, 300 };
	out[n++] = (sim_cfg_t){ "by-hand-no-standby",
	                        pol("staging", 1 * DAY, 10 * MIN_, 30 * MIN_, 1 * MIN_, 15 * MIN_,
	                            1 * H, 2 * H, false), 90, 2, 10, 300 };
	return n;
}

static void run_all(uint64_t seed, bool verbose)
{
	sim_cfg_t cfg[12];
	size_t n = policies(cfg);
	for (size_t i = 0; i < n; i++) {
		model_t *m = calloc(1, sizeof(*m));
		assert_non_null(m);
		g_seed = seed;
		g_case = cfg[i].name;
		rng_state = seed * 0x9E3779B97F4A7C15ull + i + 1;
		model_init(m, &cfg[i].p);
		simulate(m, &cfg[i], 0);
		if (verbose)
			printf("  %-22s ticks %u rotations %u removals %u destroys %u emergencies %u "
			       "early %u partial %u requests %u (activated %u) checks %lu "
			       "gap-failures %lu revoked-rejected %lu\n",
			       cfg[i].name, m->ticks, m->rotations, m->removals, m->destroys,
			       m->emergencies, m->n_early, m->partial, m->requests,
			       m->requested_activations, m->checks, m->gap_failures,
			       m->revoked_rejections);
		/* The run must have exercised the machinery, not idled. */
		CHECK(m->rotations >= 3 && m->removals >= 2 && m->checks > 10000,
		      "run exercised too little");
		CHECK(cfg[i].request_per_mille < 300 ||
		      (m->requests >= 5 && m->requested_activations >= 3), "requested rotations "
		      "exercised too little (%u requests, %u activations)", m->requests,
		      m->requested_activations);
		model_free(m);
		free(m);
	}
}

static void test_timetravel_fixed_seeds(void **state)
{
	for (uint64_t seed = 1; seed <= 3; seed++)
		run_all(seed, seed == 1);
}

static void test_timetravel_random_seed(void **state)
{
	const char *env = getenv("KEYMGR_TEST_SEED");
	uint64_t seed = env && *env ? strtoull(env, NULL, 10)
	                            : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
	printf("time-travel seed: %" PRIu64 " (replay with KEYMGR_TEST_SEED=%" PRIu64 ")\n", seed,
	       seed);
	fflush(stdout);
	run_all(seed, true);
}

/* An emergency in steady state with a standby: the model proves no verifier fails, not even
 * those that never refetch and hold the oldest cache allowed. */
static void test_timetravel_emergency_with_standby_no_failure(void **state)
{
	sim_cfg_t cfg = { "emergency-standby", pol("production", 0, 0, 0, 0, 0, 0, 0, true),
	                  120, 0, 0, 0 };
	model_t *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	g_seed = 42;
	g_case = cfg.name;
	rng_state = 42;
	model_init(m, &cfg.p);
	simulate(m, &cfg, T0 + 30 * DAY);
	CHECK(m->emergencies == 1, "emergency not run");
	CHECK(m->n_early == 1, "only the bootstrap key may be early (got %u)", m->n_early);
	/* The bootstrap key's gap failures aside, the promoted standby's tokens all verified:
	 * evaluate() fails the test on any failure outside an early key's gap. */
	for (size_t i = 0; i < m->n; i++)
		if (m->k[i].at[KM_STATE_ACTIVE] > T0)
			CHECK(!m->early[i], "key #%zu activated early", i);
	model_free(m);
	free(m);
}

/* Without a standby: the gap equals M; refetching verifiers never fail, non-refetching ones
 * fail only inside the gap, and do fail there (the gap is real, not a reporting artefact). */
static void test_timetravel_emergency_without_standby_gap_is_m(void **state)
{
	km_policy_t p = pol("production", 0, 0, 0, 0, 0, 0, 0, false);
	model_t *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	g_seed = 7;
	g_case = "emergency-no-standby";
	rng_state = 7;
	model_init(m, &p);
	sim_cfg_t cfg = { g_case, p, 60, 0, 0, 0 };
	/* Get past bootstrap and its own gap first. */
	int64_t t = T0;
	tick(m, &cfg, t);
	for (; t < T0 + 10 * DAY; t += 3 * H) {
		mint(m, t, t + 3 * H);
		evaluate(m, t + 3 * H);
		tick(m, &cfg, t + 3 * H);
	}
	unsigned long before = m->gap_failures;
	emergency(m, t);
	size_t fresh = m->n - 1;
	CHECK(m->early[fresh] && m->gap_end[fresh] == t + p.jwks_max_age,
	      "gap end %+llds, want jwks_max_age", (long long)(m->gap_end[fresh] - t));
	for (int64_t u = t; u < t + 2 * DAY; u += 5 * MIN_) {
		mint(m, u, u + 5 * MIN_);
		evaluate(m, u + 5 * MIN_);
		tick(m, &cfg, u + 5 * MIN_);
	}
	CHECK(m->gap_failures > before, "no verifier failed inside the gap: the model is blind");
	model_free(m);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timetravel_fixed_seeds),
		cmocka_unit_test(test_timetravel_random_seed),
		cmocka_unit_test(test_timetravel_emergency_with_standby_no_failure),
		cmocka_unit_test(test_timetravel_emergency_without_standby_gap_is_m),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
