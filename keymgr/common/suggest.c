/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keymgr/common/suggest.h"

#define WORD_MAX 64

size_t km_edit_distance(const char *a, const char *b)
{
	size_t la = strnlen(a, WORD_MAX), lb = strnlen(b, WORD_MAX);
	/* Three rows of the dynamic-programming table: i - 2, i - 1 and i. */
	size_t rows[3][WORD_MAX + 1];
	for (size_t j = 0; j <= lb; j++)
		rows[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t *cur = rows[i % 3], *prev = rows[(i + 2) % 3], *prev2 = rows[(i + 1) % 3];
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t d = prev[j] + 1;                   /* deletion */
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;               /* insertion */
			if (prev[j - 1] + cost < d)
				d = prev[j - 1] + cost;           /* substitution */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < d)
				d = prev2[j - 2] + 1;             /* transposition */
			cur[j] = d;
		}
	}
	return rows[la % 3][lb];
}

void km_suggest_init(km_suggest_t *s, const char *typed)
{
	s->typed = typed;
	s->best = NULL;
	s->dist = (size_t)-1;
}

void km_suggest_add(km_suggest_t *s, const char *candidate)
{
	if (s->typed == NULL || candidate == NULL || candidate[0] == '\0')
		return;
	/* A slip of case ("es256" for "ES256") is one mistake, whatever the number of letters. */
	size_t d = strcmp(s->typed, candidate) == 0 ? 0 :
	           strcasecmp(s->typed, candidate) == 0 ? 1 : km_edit_distance(s->typed, candidate);
	if (d == 0 || d > 2 || 2 * d >= strlen(candidate) || d >= s->dist)
		return;
	s->best = candidate;
	s->dist = d;
}

const char *km_suggest_best(const km_suggest_t *s)
{
	return s->best;
}

void km_suggest_option(const char *arg, const struct option *opts, int hidden_val, char *msg,
                       size_t len)
{
	const char *name = arg + 2;
	size_t n = strcspn(name, "="), used = 0, matches = 0;
	char typed[WORD_MAX + 1], list[512];
	km_suggest_t sg;
	snprintf(typed, sizeof(typed), "%.*s", (int)(n > WORD_MAX ? WORD_MAX : n), name);
	list[0] = '\0';
	km_suggest_init(&sg, typed);
	for (const struct option *o = opts; o->name != NULL; o++) {
		if (o->val == hidden_val)
			continue;
		if (strcmp(o->name, typed) == 0 && name[n] == '=' && o->has_arg == no_argument) {
			snprintf(msg, len, "option '--%s' takes no value", o->name);
			return;
		}
		if (n > 0 && strncmp(o->name, typed, n) == 0) {
			int w = snprintf(list + used, used < sizeof(list) ? sizeof(list) - used : 0,
			                 "%s--%s", matches ? ", " : "", o->name);
			if (w > 0)
				used += (size_t)w;
			matches++;
		}
		km_suggest_add(&sg, o->name);
	}
	if (matches > 0)
		snprintf(msg, len, "ambiguous option '--%s': %s", typed, list);
	else if (km_suggest_best(&sg) != NULL)
		snprintf(msg, len, "unknown option '--%s'; did you mean '--%s'?", typed,
		         km_suggest_best(&sg));
	else
		snprintf(msg, len, "unknown option '--%s'", typed);
}
