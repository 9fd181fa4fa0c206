/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key lifecycle: states and the one table of legal transitions.
 *
 *   generated -> published -> active -> retired -> removed -> destroyed
 *        \            \          \          \         \
 *         +------------+----------+----------+---------+--> revoked -> destroyed
 *
 * A published key that is withdrawn before it ever signed (an unused standby) may go straight
 * to removed. Destruction is allowed only from removed or revoked. The record of a destroyed
 * key is kept forever.
 */
#pragma once

#include <stdbool.h>

typedef enum {
	KM_STATE_GENERATED = 0,
	KM_STATE_PUBLISHED,
	KM_STATE_ACTIVE,
	KM_STATE_RETIRED,
	KM_STATE_REMOVED,
	KM_STATE_DESTROYED,
	KM_STATE_REVOKED,
	KM_STATE_COUNT
} km_state_t;

/* Lower-case name ("published"); "unknown" for an out-of-range value. */
const char *km_state_name(km_state_t s);

/* Parses a state name; returns KM_EOK or KM_EINVAL. */
int km_state_from_name(const char *name, km_state_t *ret);

/* True when the lifecycle allows from -> to. */
bool km_state_transition_ok(km_state_t from, km_state_t to);

/*
 * Returns KM_EOK when from -> to is legal, KM_ETRANSITION otherwise. With a buffer, writes a
 * message naming both states and the legal successors of from.
 */
int km_state_check_transition(km_state_t from, km_state_t to, char *msg, unsigned msg_len);

/* True for the states whose public key is served in the JWKS: published, active, retired. */
bool km_state_in_jwks(km_state_t s);

/* True while the token still holds the key's objects (every state but destroyed). */
bool km_state_in_token(km_state_t s);
