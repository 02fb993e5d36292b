/* ytree.c - see ytree.h. */
#define _GNU_SOURCE
#include "ytree.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int yt_error(struct ytree *t, yaml_node_t *n, const char *path, char **err,
	     const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (err) {
		if (n)
			*err = yt_strdupf("%s:%zu:%zu: %s: %s", t->file,
					  n->start_mark.line + 1, n->start_mark.column + 1,
					  path, msg ? msg : "error");
		else
			*err = yt_strdupf("%s: %s: %s", t->file, path, msg ? msg : "error");
	}
	free(msg);
	return -EINVAL;
}

static int yt_syntax_error(struct ytree *t, yaml_parser_t *p, char **err)
{
	*err = yt_strdupf("%s:%zu:%zu: YAML syntax error: %s%s%s", t->file,
			  p->problem_mark.line + 1, p->problem_mark.column + 1,
			  p->problem ? p->problem : "invalid document",
			  p->context ? " " : "", p->context ? p->context : "");
	return -EINVAL;
}

/*
 * A streaming pass over the events before the document is built: a file
 * of millions of tiny nodes (or one nested a million deep) is refused at
 * the node past the limit, before the tree would take gigabytes.
 */
static int yt_check_size(struct ytree *t, const char *buf, size_t len, char **err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	long nodes = 0, depth = 0;
	int rc = 0;

	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = yt_syntax_error(t, &p, err);
			break;
		}
		if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
			depth++;
		else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
			depth--;
		if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
		    ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
			nodes++;
		if (nodes > YT_MAX_NODES || depth > YT_MAX_DEPTH) {
			*err = yt_strdupf("%s:%zu:%zu: %s %d %s (the limit for a YAML file, see "
					  "docs/config.md)", t->file, ev.start_mark.line + 1,
					  ev.start_mark.column + 1,
					  nodes > YT_MAX_NODES ? "more than" : "nested more than",
					  nodes > YT_MAX_NODES ? YT_MAX_NODES : YT_MAX_DEPTH,
					  nodes > YT_MAX_NODES ? "nodes" : "levels deep");
			rc = -EFBIG;
		}
		if (ev.type == YAML_STREAM_END_EVENT || rc) {
			yaml_event_delete(&ev);
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}

static int yt_parse(struct ytree *t, const char *buf, size_t len, char **err)
{
	yaml_parser_t p;
	int rc = yt_check_size(t, buf, len, err);

	if (rc)
		return rc;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&p, &t->doc))
		rc = yt_syntax_error(t, &p, err);
	else
		t->loaded = true;
	yaml_parser_delete(&p);
	return rc;
}

/* The whole of f, at most YT_MAX_BYTES: 0, or -errno with *err. */
static int yt_read(struct ytree *t, FILE *f, char **buf, size_t *len, char **err)
{
	size_t cap = 64 << 10, n = 0;
	char *b = malloc(cap);

	while (b) {
		size_t got = fread(b + n, 1, cap - n, f);

		n += got;
		if (n > YT_MAX_BYTES) {
			free(b);
			*err = yt_strdupf("%s: larger than %d MiB (the limit for a YAML file, see "
					  "docs/config.md)", t->file, YT_MAX_BYTES >> 20);
			return -EFBIG;
		}
		if (got == 0) {
			if (ferror(f)) {
				free(b);
				*err = yt_strdupf("%s: read error", t->file);
				return -EIO;
			}
			*buf = b;
			*len = n;
			return 0;
		}
		if (n == cap) {
			char *nb = realloc(b, cap * 2);

			if (!nb)
				free(b);
			b = nb;
			cap *= 2;
		}
	}
	*err = yt_strdupf("%s: out of memory reading it", t->file);
	return -ENOMEM;
}

int yt_load(struct ytree *t, const char *path, char **err)
{
	size_t len = 0;
	char *buf = NULL;
	FILE *f;
	int rc;

	memset(t, 0, sizeof(*t));
	t->file = strdup(path);
	f = fopen(path, "rb");
	if (!f) {
		rc = -errno;
		*err = yt_strdupf("%s: %s", path, strerror(errno));
		return rc;
	}
	rc = yt_read(t, f, &buf, &len, err);
	fclose(f);
	if (!rc)
		rc = yt_parse(t, buf, len, err);
	free(buf);
	return rc;
}

int yt_load_string(struct ytree *t, const char *name, const char *buf, size_t len, char **err)
{
	memset(t, 0, sizeof(*t));
	t->file = strdup(name);
	if (len > YT_MAX_BYTES) {
		*err = yt_strdupf("%s: larger than %d MiB (the limit for a YAML file, see "
				  "docs/config.md)", name, YT_MAX_BYTES >> 20);
		return -EFBIG;
	}
	return yt_parse(t, buf, len, err);
}

void yt_free(struct ytree *t)
{
	if (t->loaded)
		yaml_document_delete(&t->doc);
	t->loaded = false;
	free(t->file);
	t->file = NULL;
}

yaml_node_t *yt_root(struct ytree *t)
{
	yaml_node_t *n = yaml_document_get_root_node(&t->doc);

	if (n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0)
		return NULL;
	return n;
}

static const char *yt_scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

yaml_node_t *yt_get(struct ytree *t, yaml_node_t *m, const char *key)
{
	yaml_node_pair_t *p;

	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		const char *k = yt_scalar(yaml_document_get_node(&t->doc, p->key));

		if (k && strcmp(k, key) == 0)
			return yaml_document_get_node(&t->doc, p->value);
	}
	return NULL;
}

int yt_seq_len(yaml_node_t *n)
{
	if (!n || n->type != YAML_SEQUENCE_NODE)
		return -1;
	return (int)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *yt_seq_at(struct ytree *t, yaml_node_t *n, int i)
{
	if (i < 0 || i >= yt_seq_len(n))
		return NULL;
	return yaml_document_get_node(&t->doc, n->data.sequence.items.start[i]);
}

/* What a node is, for "got ..." in messages. */
static const char *yt_describe(yaml_node_t *n, char *buf, size_t len)
{
	if (!n)
		return "nothing";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	snprintf(buf, len, "\"%.60s\"", yt_scalar(n) ? yt_scalar(n) : "");
	return buf;
}

int yt_expect_map(struct ytree *t, yaml_node_t *n, const char *path, char **err)
{
	char b[80];

	if (n && n->type == YAML_MAPPING_NODE)
		return 0;
	return yt_error(t, n, path, err, "expected a mapping, got %s", yt_describe(n, b, sizeof(b)));
}

int yt_expect_seq(struct ytree *t, yaml_node_t *n, const char *path, char **err)
{
	char b[80];

	if (n && n->type == YAML_SEQUENCE_NODE)
		return 0;
	return yt_error(t, n, path, err, "expected a list, got %s", yt_describe(n, b, sizeof(b)));
}

int yt_str(struct ytree *t, yaml_node_t *n, const char *path, char **out, char **err)
{
	char b[80];
	const char *s = yt_scalar(n);

	if (!s)
		return yt_error(t, n, path, err, "expected a string, got %s",
				yt_describe(n, b, sizeof(b)));
	*out = strdup(s);
	return 0;
}

int yt_int(struct ytree *t, yaml_node_t *n, const char *path, int64_t min, int64_t max,
	   int64_t *out, char **err)
{
	char b[80], *end;
	const char *s = yt_scalar(n);
	long long v;

	if (!s || !*s)
		return yt_error(t, n, path, err, "expected an integer, got %s",
				yt_describe(n, b, sizeof(b)));
	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || *end)
		return yt_error(t, n, path, err, "expected an integer, got \"%s\"", s);
	if (v < min || v > max)
		return yt_error(t, n, path, err, "expected an integer in [%lld, %lld], got %lld",
				(long long)min, (long long)max, v);
	*out = v;
	return 0;
}

int yt_num(struct ytree *t, yaml_node_t *n, const char *path, double min, double max,
	   double *out, char **err)
{
	char b[80], *end;
	const char *s = yt_scalar(n);
	double v;

	if (!s || !*s)
		return yt_error(t, n, path, err, "expected a number, got %s",
				yt_describe(n, b, sizeof(b)));
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || isnan(v))
		return yt_error(t, n, path, err, "expected a number, got \"%s\"", s);
	if (v < min || v > max)
		return yt_error(t, n, path, err, "expected a number in [%g, %g], got %g",
				min, max, v);
	*out = v;
	return 0;
}

int yt_bool(struct ytree *t, yaml_node_t *n, const char *path, bool *out, char **err)
{
	char b[80];
	const char *s = yt_scalar(n);

	if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))) {
		*out = true;
		return 0;
	}
	if (s && (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))) {
		*out = false;
		return 0;
	}
	return yt_error(t, n, path, err, "expected true or false, got %s",
			yt_describe(n, b, sizeof(b)));
}

int yt_check_keys(struct ytree *t, yaml_node_t *m, const char *path,
		  const char *const *allowed, char **err)
{
	yaml_node_pair_t *p;

	if (yt_expect_map(t, m, path, err))
		return -EINVAL;
	for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(&t->doc, p->key);
		const char *k = yt_scalar(kn);
		const char *const *a;
		char list[512] = "";
		size_t off = 0;

		for (a = allowed; k && *a; a++)
			if (strcmp(*a, k) == 0)
				break;
		if (k && *a)
			continue;
		for (a = allowed; *a && off < sizeof(list); a++)
			off += snprintf(list + off, sizeof(list) - off, "%s%s",
					a == allowed ? "" : ", ", *a);
		return yt_error(t, kn, path, err, "unknown key \"%s\" (allowed: %s)",
				k ? k : "?", list);
	}
	return 0;
}
