/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a control frame's JSON parse (keymgr/control/ctl_json.c) against
 * jansson's json_loadb with JSON_REJECT_DUPLICATES, which defines the protocol. Aborts when
 * the plain subset builds a tree on a text jansson refuses, or a tree that jansson's printer
 * prints otherwise (another member order, type or value), or when km_ctl_json_parse()
 * disagrees with jansson's verdict. The input is the frame's body as it is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keymgr/control/ctl_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Both NULL, or both printed alike (members in order, integers apart from reals). */
static int agree(const json_t *a, const json_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	char *ta = json_dumps(a, JSON_COMPACT), *tb = json_dumps(b, JSON_COMPACT);
	if (ta == NULL || tb == NULL)
		abort();
	int same = strcmp(ta, tb) == 0;
	free(ta);
	free(tb);
	return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	json_t *want = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
	if (want != NULL && !json_is_object(want)) {
		json_decref(want);
		want = NULL;
	}
	json_t *fast = km_ctl_json_parse_plain(buf, size);
	json_t *got = km_ctl_json_parse(buf, size);
	if ((fast != NULL && !agree(fast, want)) || !agree(got, want))
		abort();
	json_decref(want);
	json_decref(fast);
	json_decref(got);
	return 0;
}
