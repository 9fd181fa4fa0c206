/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "Did you mean": the known word closest to a mistyped one (a verb, an option, a state name),
 * by edit distance with transpositions (optimal string alignment). Used by the keymgr command
 * line and by keymgrd's option parser.
 */
#pragma once

#include <getopt.h>
#include <stddef.h>

/* Collects candidates for one mistyped word; see km_suggest_add(). */
typedef struct {
	const char *typed;
	const char *best;   /* the closest candidate so far, NULL while none is close enough */
	size_t dist;        /* its distance */
} km_suggest_t;

/* Starts a search for the word closest to typed (borrowed until the search ends). */
void km_suggest_init(km_suggest_t *s, const char *typed);

/*
 * Offers candidate (borrowed). It is kept when it is closer than every earlier one and close
 * enough to be a plausible typo: at most 2 edits, and fewer edits than half its length (so
 * that "x" suggests nothing); a word that differs only in case counts as 1 edit. The first of
 * equally close candidates wins.
 */
void km_suggest_add(km_suggest_t *s, const char *candidate);

/* The closest candidate offered, or NULL when none was close enough. */
const char *km_suggest_best(const km_suggest_t *s);

/*
 * Explains why getopt_long refused the long option arg ("--name" or "--name=value"): writes
 * into msg one of "unknown option '--prot'; did you mean '--port'?", "unknown option '--x'",
 * "ambiguous option '--ver': --verbose, --version" or "option '--verbose' takes no value".
 * Never copies the "=value" part: a value could be a secret. Options of opts whose val is
 * hidden_val (e.g. a refused --pin) are neither suggested nor listed.
 */
void km_suggest_option(const char *arg, const struct option *opts, int hidden_val, char *msg,
                       size_t len);

/*
 * Edit distance between a and b (insertions, deletions, substitutions and transpositions of
 * two adjacent characters, each counting 1), computed on at most the first 64 characters of
 * each; longer words never match anything closely anyway.
 */
size_t km_edit_distance(const char *a, const char *b);
