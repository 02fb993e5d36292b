/*
 * ytree.h - typed access to a YAML document, with file:line:column errors.
 *
 * Wraps libyaml's document API (yaml_document_t is already a node tree that
 * remembers marks).  Every getter that fails writes a malloc'd message to
 * *err of the form "FILE:LINE:COL: PATH: expected X, got Y" and returns -EINVAL.
 * Lines and columns are 1-based.
 */
#ifndef INFERGW_YTREE_H
#define INFERGW_YTREE_H

#include <stdbool.h>
#include <stdint.h>
#include <yaml.h>

#include "backend.h"	/* be_strdupf */

struct ytree {
	char *file;
	yaml_document_t doc;
	bool loaded;
};

/*
 * What a YAML file may hold (docs/config.md): bigger files, more nodes
 * (scalars, lists, mappings, aliases) or deeper nesting are refused with
 * -EFBIG and a message naming the limit, before the document is built, so
 * a hostile or broken file cannot make the parse take gigabytes.
 */
#define YT_MAX_BYTES (16 << 20)
#define YT_MAX_NODES 250000
#define YT_MAX_DEPTH 64

/* yt_load - parse path.  0, or -errno with *err (syntax errors carry line:col). */
int yt_load(struct ytree *t, const char *path, char **err);
/* yt_load_string - parse buf; name is used in messages. */
int yt_load_string(struct ytree *t, const char *name, const char *buf, size_t len, char **err);
void yt_free(struct ytree *t);
/* The root node, or NULL for an empty document. */
yaml_node_t *yt_root(struct ytree *t);

/* yt_get - value of key in mapping node m, or NULL when absent. */
yaml_node_t *yt_get(struct ytree *t, yaml_node_t *m, const char *key);
/* yt_seq_len / yt_seq_at - sequence access; -1 / NULL when n is no sequence. */
int yt_seq_len(yaml_node_t *n);
yaml_node_t *yt_seq_at(struct ytree *t, yaml_node_t *n, int i);

/* Typed reads of node n; path names it in messages ("models[0].max_batch"). */
int yt_expect_map(struct ytree *t, yaml_node_t *n, const char *path, char **err);
int yt_expect_seq(struct ytree *t, yaml_node_t *n, const char *path, char **err);
int yt_str(struct ytree *t, yaml_node_t *n, const char *path, char **out, char **err);
int yt_int(struct ytree *t, yaml_node_t *n, const char *path, int64_t min, int64_t max,
	   int64_t *out, char **err);
int yt_num(struct ytree *t, yaml_node_t *n, const char *path, double min, double max,
	   double *out, char **err);
int yt_bool(struct ytree *t, yaml_node_t *n, const char *path, bool *out, char **err);

/*
 * yt_check_keys - reject keys of mapping m not in the NULL-terminated list
 * allowed ("FILE:L:C: PATH: unknown key \"foo\" (allowed: a, b)").
 */
int yt_check_keys(struct ytree *t, yaml_node_t *m, const char *path,
		  const char *const *allowed, char **err);

/* yt_error - format "FILE:LINE:COL: PATH: <fmt>" for node n into *err; returns -EINVAL. */
int yt_error(struct ytree *t, yaml_node_t *n, const char *path, char **err,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* yt_strdupf - malloc'd formatted string (NULL when out of memory), used
 * across config code: the backend contract's be_strdupf. */
#define yt_strdupf be_strdupf

#endif
