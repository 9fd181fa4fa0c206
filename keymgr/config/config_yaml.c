/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libfyaml access for the config loader: reading a file into a document with syntax errors
 * captured as "FILE:LINE:COL: message" (nothing goes to stderr), and typed access to nodes
 * that reports the position of whatever is wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymgr/common/error.h"
#include "keymgr/config/config_int.h"

#define CFG_FILE_MAX (1024 * 1024)

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	(void)diag;
	(void)user;
	(void)buf;
	(void)len;
}

/* "uid N (name)" of uid, or "uid N" when it has no name. */
static const char *uid_text(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char pwbuf[1024];
	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL)
		snprintf(buf, len, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
	return buf;
}

/*
 * A configuration file chooses the PKCS#11 module keymgr loads and who may sign: only root
 * and the user keymgr runs as may own it, and nobody else may write it (as for PIN files).
 * An include counts the same: teams that own policy files change them through their
 * deployment, not by writing the live file. A security refusal, not a broken file: the
 * message says which file and the command that fixes it.
 */
static int check_owner_mode(const struct stat *st, const char *display, cfg_err_t *e)
{
	cfg_loc_t at = { display, 0, 0 };
	char owner[96], me[96];
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		cfg_errorf(e, at, "refused: the file is writable by %s (mode %04o), and whoever can "
		           "write it chooses the PKCS#11 module keymgr loads and who may sign; run "
		           "'chmod go-w %s'",
		           (st->st_mode & S_IWGRP) && (st->st_mode & S_IWOTH) ? "group and others"
		           : (st->st_mode & S_IWGRP) ? "its group" : "others",
		           (unsigned)(st->st_mode & 07777), display);
		return KM_CONFIG_EPERM;
	}
	uid_t self = geteuid();
	if (st->st_uid != 0 && st->st_uid != self) {
		cfg_errorf(e, at, "refused: the file is owned by %s, neither root nor the user keymgr "
		           "runs as (%s), and its owner chooses the PKCS#11 module keymgr loads and who "
		           "may sign; run 'chown root %s' (or give it to the user keymgr runs as)",
		           uid_text(st->st_uid, owner, sizeof(owner)), uid_text(self, me, sizeof(me)),
		           display);
		return KM_CONFIG_EPERM;
	}
	return KM_EOK;
}

static int read_file(const char *file, const char *display, char **ret, size_t *ret_len,
                     cfg_err_t *e)
{
	cfg_loc_t at = { display, 0, 0 };
	char *buf = NULL;
	size_t len = 0;
	int r = KM_ERROR;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int err = errno;
		cfg_errorf(e, at, "cannot open: %s", strerror(err));
		r = err == ENOENT || err == ENOTDIR ? KM_ENOENT
		    : err == EACCES || err == EPERM ? KM_EACCES : KM_EIO;
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		cfg_errorf(e, at, "cannot stat: %s", strerror(errno));
		r = KM_EIO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_errorf(e, at, "not a regular file");
		r = KM_CONFIG_EINVAL;
		goto out;
	}
	if ((r = check_owner_mode(&st, display, e)) != KM_EOK)
		goto out;
	if (st.st_size > CFG_FILE_MAX) {
		cfg_errorf(e, at, "file too large (more than %d bytes)", CFG_FILE_MAX);
		r = KM_CONFIG_EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	while (len <= (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			cfg_errorf(e, at, "cannot read: %s", strerror(err));
			r = err == EACCES || err == EPERM ? KM_EACCES : KM_EIO;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > (size_t)st.st_size) {
		cfg_errorf(e, at, "file changed while being read");
		r = KM_EIO;
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		cfg_errorf(e, at, "file contains a NUL byte");
		r = KM_CONFIG_EPARSE;
		goto out;
	}
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	r = KM_EOK;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Only blank lines and comments: libfyaml reports no document (sometimes as an error). */
static bool only_comments(const char *s, size_t len)
{
	bool line_start = true, in_comment = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\n') {
			line_start = true;
			in_comment = false;
		} else if (in_comment || c == ' ' || c == '\t' || c == '\r') {
			continue;
		} else if (c == '#' && line_start) {
			in_comment = true;
		} else {
			return false;
		}
	}
	return true;
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..len) (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0. libfyaml 0.7.12 loops forever on a directive
 * ('%') followed by a malformed sequence (found by fuzz/fuzz_config), so the loader checks
 * the encoding itself before parsing.
 */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
	         : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (n == 0 || n > len)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

/* Checks that buf is UTF-8 text; otherwise reports where the first bad byte is. */
static int check_utf8(const char *buf, size_t len, const char *display, cfg_err_t *e)
{
	int line = 1, col = 1;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq((const unsigned char *)buf + i, len - i);
		if (n == 0) {
			cfg_loc_t at = { display, line, col };
			cfg_errorf(e, at, "not valid UTF-8 text (byte 0x%02x)", (unsigned char)buf[i]);
			return KM_CONFIG_EPARSE;
		}
		if (buf[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
		i += n;
	}
	return KM_EOK;
}

/*
 * Refuses YAML's explicit-key indicator ("? key"). keymgr.yaml never needs complex keys, and
 * libfyaml 0.7.12 dereferences NULL while cleaning up after some malformed complex keys
 * ("? ?:<TAB>:", found by fuzz/fuzz_config). A '?' counts as the indicator when a blank or
 * the end of the line follows it and nothing but blanks or one of { [ , - : ? precedes it
 * on its line; comments are skipped.
 */
static int check_no_complex_keys(const char *buf, size_t len, const char *display,
                                 cfg_err_t *e)
{
	int line = 1, col = 0;
	char prev = '\0';       /* last non-blank character of the line so far */
	bool comment = false;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		col++;
		if (c == '\n') {
			line++;
			col = 0;
			prev = '\0';
			comment = false;
			continue;
		}
		if (comment || c == ' ' || c == '\t' || c == '\r')
			continue;
		if (c == '#' && (i == 0 || buf[i - 1] == ' ' || buf[i - 1] == '\t' ||
		                 buf[i - 1] == '\n')) {
			comment = true;
			continue;
		}
		char next = i + 1 < len ? buf[i + 1] : '\n';
		if (c == '?' && (next == ' ' || next == '\t' || next == '\n' || next == '\r') &&
		    (prev == '\0' || strchr("{[,-:?", prev) != NULL)) {
			cfg_loc_t at = { display, line, col };
			cfg_errorf(e, at, "explicit mapping keys ('? KEY') are not supported");
			return KM_CONFIG_EPARSE;
		}
		prev = c;
	}
	return KM_EOK;
}

static void report_diag(struct fy_diag *diag, const char *display, cfg_err_t *e)
{
	void *it = NULL;
	struct fy_diag_error *de;
	while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
		if (de->type < FYET_ERROR)
			continue;
		cfg_loc_t at = { display, de->line > 0 ? de->line : 0, de->column };
		cfg_errorf(e, at, "YAML syntax error: %s", de->msg ? de->msg : "unknown");
		return;
	}
	cfg_loc_t at = { display, 0, 0 };
	cfg_errorf(e, at, "YAML syntax error");
}

/*
 * Anchors and aliases are counted before anything is resolved. Resolving them
 * (FYPCF_RESOLVE_DOCUMENT) copies every alias in full, so ten lines of nested aliases (a
 * "billion laughs") expand to gigabytes, and include files are often written by other
 * teams. The parser's events never expand an alias: from them the size of each anchored
 * node, and of the whole document once every alias is expanded, is known in advance, and a
 * document over KM_CONFIG_MAX_NODES nodes is refused where the limit is crossed. (Errors of
 * the YAML itself are left to the parse that follows.)
 */
#define MAX_ANCHORS 1024
#define MAX_DEPTH 64

#define ANCHOR_NAME_MAX 128

typedef struct {
	char name[ANCHOR_NAME_MAX];   /* a copy: the token's text goes with its event */
	size_t len;
	uint64_t nodes;               /* nodes of the anchored value, its own aliases expanded */
} anchor_t;

/* Copies a token's text (an anchor's name) into out; false when there is none or it does not
 * fit. Tokens are freed with their event: names are kept as copies. */
static bool token_name(struct fy_token *t, char out[ANCHOR_NAME_MAX], size_t *len)
{
	size_t l = 0;
	const char *text = t != NULL ? fy_token_get_text(t, &l) : NULL;
	if (text == NULL || l >= ANCHOR_NAME_MAX)
		return false;
	memcpy(out, text, l);
	*len = l;
	return true;
}

static int check_expansion(const char *buf, size_t len, const char *display, cfg_err_t *e)
{
	struct fy_parse_cfg pc = { .flags = FYPCF_QUIET | FYPCF_DISABLE_MMAP_OPT };
	struct fy_parser *fyp = fy_parser_create(&pc);
	anchor_t *anchors = calloc(MAX_ANCHORS, sizeof(*anchors));
	anchor_t *stack = calloc(MAX_DEPTH, sizeof(*stack));   /* open collections */
	bool named[MAX_DEPTH];
	size_t depth = 0, n_anchors = 0;
	uint64_t total = 0;
	int r = KM_EOK;
	if (fyp == NULL || anchors == NULL || stack == NULL ||
	    fy_parser_set_string(fyp, buf, len) != 0) {
		fy_parser_destroy(fyp);
		free(anchors);
		free(stack);
		return KM_ENOMEM;
	}
	struct fy_event *ev;
	while (r == KM_EOK && (ev = fy_parser_parse(fyp)) != NULL) {
		uint64_t add = 0;
		anchor_t done = { .len = 0 };
		bool anchored = false;
		switch (ev->type) {
		case FYET_SCALAR:
			add = 1;
			anchored = token_name(ev->scalar.anchor, done.name, &done.len);
			break;
		case FYET_ALIAS:
			add = 1;
			if (token_name(ev->alias.anchor, done.name, &done.len))
				for (size_t i = n_anchors; i-- > 0;)
					if (anchors[i].len == done.len &&
					    memcmp(anchors[i].name, done.name, done.len) == 0) {
						add = anchors[i].nodes;
						break;
					}
			break;
		case FYET_SEQUENCE_START:
		case FYET_MAPPING_START:
			if (depth < MAX_DEPTH) {
				stack[depth].nodes = 1;
				named[depth] = token_name(ev->type == FYET_SEQUENCE_START
				                          ? ev->sequence_start.anchor
				                          : ev->mapping_start.anchor,
				                          stack[depth].name, &stack[depth].len);
			}
			depth++;
			break;
		case FYET_SEQUENCE_END:
		case FYET_MAPPING_END:
			if (depth > 0 && --depth < MAX_DEPTH) {
				add = stack[depth].nodes;
				anchored = named[depth];
				done = stack[depth];
			}
			break;
		default:
			break;
		}
		if (anchored && n_anchors < MAX_ANCHORS) {
			anchors[n_anchors] = done;
			anchors[n_anchors++].nodes = add;
		}
		uint64_t *into = depth == 0 || depth > MAX_DEPTH ? &total : &stack[depth - 1].nodes;
		if (ev->type != FYET_SEQUENCE_START && ev->type != FYET_MAPPING_START)
			*into += add;
		if (*into > KM_CONFIG_MAX_NODES || depth > MAX_DEPTH) {
			const struct fy_mark *m = fy_event_start_mark(ev);
			cfg_loc_t at = { display, m ? m->line + 1 : 0, m ? m->column + 1 : 0 };
			if (depth > MAX_DEPTH)
				cfg_errorf(e, at, "nested more than %d levels deep", MAX_DEPTH);
			else
				cfg_errorf(e, at, "the configuration expands to more than %d YAML nodes "
				           "(its aliases copy what their anchors hold): refused; repeat "
				           "fewer values, or drop the aliases", KM_CONFIG_MAX_NODES);
			r = KM_CONFIG_EPARSE;
		}
		fy_parser_event_free(fyp, ev);
	}
	fy_parser_destroy(fyp);
	free(anchors);
	free(stack);
	return r;
}

int cfg_yaml_load(const char *file, const char *display, struct fy_document **ret, cfg_err_t *e)
{
	struct fy_diag *diag = NULL;
	struct fy_parser *fyp = NULL;
	struct fy_document *doc = NULL, *extra = NULL;
	char *buf = NULL;
	size_t len = 0;
	cfg_loc_t at = { display, 0, 0 };
	int r = read_file(file, display, &buf, &len, e);
	if (r != KM_EOK)
		goto out;

	if ((r = check_utf8(buf, len, display, e)) != KM_EOK)
		goto out;
	if ((r = check_no_complex_keys(buf, len, display, e)) != KM_EOK)
		goto out;
	if ((r = check_expansion(buf, len, display, e)) != KM_EOK)
		goto out;
	if (only_comments(buf, len)) {
		cfg_errorf(e, at, "empty configuration (no YAML document)");
		r = KM_CONFIG_EINVAL;
		goto out;
	}

	struct fy_diag_cfg dc;
	fy_diag_cfg_default(&dc);
	dc.fp = NULL;
	dc.output_fn = diag_discard;
	dc.colorize = false;
	diag = fy_diag_create(&dc);
	if (diag == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	fy_diag_set_collect_errors(diag, true);

	struct fy_parse_cfg pc = {
		.flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT | FYPCF_DISABLE_MMAP_OPT,
		.diag = diag,
	};
	/* A document built by a parser has to be destroyed before the parser; building from a
	 * string through fy_document_build_from_malloc_string() avoids that coupling, and a
	 * second parser pass below detects extra documents. */
	char *copy = malloc(len + 1);
	if (copy == NULL) {
		r = KM_ENOMEM;
		goto out;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	doc = fy_document_build_from_malloc_string(&pc, copy, len);
	if (doc == NULL) {
		if (fy_diag_got_error(diag)) {
			report_diag(diag, display, e);
			r = KM_CONFIG_EPARSE;
		} else {
			cfg_errorf(e, at, "empty configuration (no YAML document)");
			r = KM_CONFIG_EINVAL;
		}
		goto out;
	}
	if (fy_document_root(doc) == NULL) {
		cfg_errorf(e, at, "empty configuration (no YAML document)");
		r = KM_CONFIG_EINVAL;
		goto out;
	}

	/* More than one document ("---"): the rest would be silently ignored. */
	fyp = fy_parser_create(&pc);
	if (fyp == NULL || fy_parser_set_malloc_string(fyp, buf, len) != 0) {
		r = KM_ENOMEM;
		goto out;
	}
	buf = NULL;      /* owned by the parser now */
	struct fy_document *first = fy_parse_load_document(fyp);
	if (first != NULL) {
		extra = fy_parse_load_document(fyp);
		fy_parse_document_destroy(fyp, first);
	}
	if (extra != NULL) {
		struct fy_node *root = fy_document_root(extra);
		cfg_loc_t xat = cfg_yaml_loc(root, at);
		cfg_errorf(e, xat, "more than one YAML document ('---'); keymgr reads exactly one");
		fy_parse_document_destroy(fyp, extra);
		r = KM_CONFIG_EINVAL;
		goto out;
	}

	*ret = doc;
	doc = NULL;
	r = KM_EOK;
out:
	fy_document_destroy(doc);
	fy_parser_destroy(fyp);
	if (diag != NULL)
		fy_diag_destroy(diag);
	free(buf);
	return r;
}

cfg_loc_t cfg_yaml_loc(struct fy_node *n, cfg_loc_t fallback)
{
	if (n == NULL || fy_node_get_type(n) != FYNT_SCALAR)
		return fallback;
	struct fy_token *t = fy_node_get_scalar_token(n);
	const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
	if (m == NULL)
		return fallback;
	cfg_loc_t at = { fallback.file, m->line + 1, m->column + 1 };
	return at;
}

static const char *type_name(struct fy_node *n)
{
	switch (fy_node_get_type(n)) {
	case FYNT_SCALAR: return "a scalar";
	case FYNT_SEQUENCE: return "a list";
	case FYNT_MAPPING: return "a mapping";
	}
	return "something else";
}

static bool scalar_is_null(struct fy_node *n, const char *s)
{
	if (fy_node_get_style(n) != FYNS_PLAIN)
		return false;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int check_tag(struct fy_node *n, cfg_loc_t at, const char *what, cfg_err_t *e)
{
	if (fy_node_get_tag(n, NULL) != NULL) {
		cfg_errorf(e, at, "%s: YAML tags are not supported (use the top-level 'include' to "
		           "read another file)", what);
		return KM_CONFIG_EINVAL;
	}
	return KM_EOK;
}

int cfg_yaml_scalar(struct fy_node *n, cfg_loc_t at, const char *what, const char **ret,
                    cfg_err_t *e)
{
	at = cfg_yaml_loc(n, at);
	if (n == NULL) {
		cfg_errorf(e, at, "%s: missing value", what);
		return KM_CONFIG_EINVAL;
	}
	if (check_tag(n, at, what, e) != KM_EOK)
		return KM_CONFIG_EINVAL;
	if (fy_node_get_type(n) != FYNT_SCALAR) {
		cfg_errorf(e, at, "%s: expected a scalar, got %s", what, type_name(n));
		return KM_CONFIG_EINVAL;
	}
	size_t len = 0;
	const char *raw = fy_node_get_scalar(n, &len);
	const char *s = fy_node_get_scalar0(n);
	if (raw == NULL || s == NULL) {
		cfg_errorf(e, at, "%s: missing value", what);
		return KM_CONFIG_EINVAL;
	}
	if (strlen(s) != len) {
		cfg_errorf(e, at, "%s: value contains a NUL character", what);
		return KM_CONFIG_EINVAL;
	}
	if (scalar_is_null(n, s)) {
		cfg_errorf(e, at, "%s: missing value", what);
		return KM_CONFIG_EINVAL;
	}
	*ret = s;
	return KM_EOK;
}

static int expect_type(struct fy_node *n, enum fy_node_type want, const char *want_name,
                       cfg_loc_t at, const char *what, cfg_err_t *e)
{
	at = cfg_yaml_loc(n, at);
	if (n == NULL) {
		cfg_errorf(e, at, "%s: missing value (expected %s)", what, want_name);
		return KM_CONFIG_EINVAL;
	}
	if (check_tag(n, at, what, e) != KM_EOK)
		return KM_CONFIG_EINVAL;
	if (fy_node_get_type(n) != want) {
		const char *s = fy_node_get_type(n) == FYNT_SCALAR ? fy_node_get_scalar0(n) : NULL;
		if (s != NULL && scalar_is_null(n, s))
			cfg_errorf(e, at, "%s: missing value (expected %s)", what, want_name);
		else
			cfg_errorf(e, at, "%s: expected %s, got %s", what, want_name, type_name(n));
		return KM_CONFIG_EINVAL;
	}
	return KM_EOK;
}

int cfg_yaml_expect_map(struct fy_node *n, cfg_loc_t at, const char *what, cfg_err_t *e)
{
	return expect_type(n, FYNT_MAPPING, "a mapping", at, what, e);
}

int cfg_yaml_expect_seq(struct fy_node *n, cfg_loc_t at, const char *what, cfg_err_t *e)
{
	return expect_type(n, FYNT_SEQUENCE, "a list", at, what, e);
}

/* Copies s for an error message: at most 64 characters, control characters as '?'. */
static const char *printable(const char *s, char buf[80])
{
	size_t i = 0;
	for (; s[i] != '\0' && i < 64; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	if (s[i] != '\0') {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

int cfg_yaml_next_pair(struct fy_node *map, void **iter, cfg_loc_t map_loc, const char **key,
                       cfg_loc_t *key_loc, struct fy_node **val, cfg_err_t *e)
{
	struct fy_node_pair *p = fy_node_mapping_iterate(map, iter);
	if (p == NULL)
		return 0;
	struct fy_node *k = fy_node_pair_key(p);
	cfg_loc_t at = cfg_yaml_loc(k, map_loc);
	if (k == NULL || fy_node_get_type(k) != FYNT_SCALAR) {
		cfg_errorf(e, at, "keys must be plain names, not %s", k ? type_name(k) : "empty");
		return KM_CONFIG_EINVAL;
	}
	const char *s = NULL;
	int r = cfg_yaml_scalar(k, at, "key", &s, e);
	if (r != KM_EOK)
		return r;
	*key = s;
	*key_loc = at;
	*val = fy_node_pair_value(p);
	return 1;
}

int cfg_yaml_unknown_key(cfg_err_t *e, cfg_loc_t at, const char *key, const char *where,
                         const char *expected)
{
	char buf[80];
	cfg_errorf(e, at, "unknown key '%s' in %s (expected one of: %s)", printable(key, buf),
	           where, expected);
	return KM_CONFIG_EINVAL;
}
