/*
 * safetensors.c - read and validate safetensors files (see model.h).
 *
 * Layout: u64 little-endian header length N, N bytes of a JSON object
 *   { "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *     "__metadata__": {"key": "string", ...} }
 * then the data section; offsets are relative to its start.
 *
 * The whole file lives in one malloc'd buffer (st_file.map).  Tensor pointers
 * must be usable as float* (and the CPU backend hands them to oneDNN), so the
 * data section is placed on a 64-byte boundary: st_open reads the file at an
 * offset inside an aligned allocation chosen so that header + 8 ends on a
 * cache line, and st_parse copies a caller's buffer once when one of its
 * tensors would be misaligned for its element type.  A tensor whose offset
 * inside the data section is itself misaligned (legal in the format, never
 * written by our tools) is copied on its own into a side buffer; then its
 * data pointer is the one thing that does not point into map.
 */
#define _GNU_SOURCE
#include "model/model.h"
#include "model/ytree.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_ALIGN 64

struct st_file_priv {
	struct st_file pub;
	void *alloc;		/* the allocation map lies in (map may start later) */
	void *odd;		/* aligned copies of tensors at misaligned offsets */
};

/* Offsets of one tensor while the header is being validated. */
struct st_span {
	uint64_t begin, end;
	int idx;
};

static uint64_t st_le64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static size_t st_round_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

/* Bytes to put in front of the file so that its data section is aligned. */
static size_t st_pad_for(uint64_t hlen)
{
	return (ST_ALIGN - (size_t)((8 + hlen % ST_ALIGN) % ST_ALIGN)) % ST_ALIGN;
}

static void st_free_tensors(struct st_file *f)
{
	int i;

	for (i = 0; i < f->n_tensors; i++)
		free(f->tensors[i].name);
	free(f->tensors);
	f->tensors = NULL;
	f->n_tensors = 0;
}

void st_close(struct st_file *f)
{
	struct st_file_priv *p;

	if (!f)
		return;
	p = (struct st_file_priv *)((char *)f - offsetof(struct st_file_priv, pub));
	st_free_tensors(f);
	free(p->alloc);
	p->alloc = NULL;
	free(p->odd);
	p->odd = NULL;
	free(f->path);
	f->path = NULL;
	free(p);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
	int i;

	if (!f || !name)
		return NULL;
	for (i = 0; i < f->n_tensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

static int st_span_cmp(const void *a, const void *b)
{
	const struct st_span *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->idx - y->idx;
}

/*
 * What is wrong with a header jansson refused, without jansson's text: it
 * quotes the bytes near the error ("invalid token near 'root:x:0'"), and
 * an error about a file must not echo a file that is not ours to show.
 */
static const char *st_json_problem(const json_error_t *e)
{
	switch (json_error_code(e)) {
	case json_error_invalid_utf8: return "invalid UTF-8";
	case json_error_premature_end_of_input: return "premature end";
	case json_error_end_of_input_expected: return "text after the object";
	case json_error_invalid_syntax: return "invalid syntax";
	case json_error_null_character:
	case json_error_null_byte_in_key: return "a NUL byte";
	case json_error_duplicate_key: return "duplicate key";
	case json_error_numeric_overflow: return "a number out of range";
	case json_error_stack_overflow: return "nested too deep";
	case json_error_out_of_memory: return "out of memory";
	default: return "malformed";
	}
}

/* A JSON integer >= 0, or -1. */
static int64_t st_json_uint(const json_t *v)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	return json_integer_value(v);
}

/* One tensor entry: fills t (except data) and its span; NULL or a message. */
static char *st_tensor_parse(const char *file, const char *key, json_t *e,
			     uint64_t dlen, struct st_tensor *t, struct st_span *sp)
{
	json_t *dt, *shape, *offs, *v;
	uint64_t nelem = 1, nbytes, begin, end;
	const char *k;
	size_t i;

	if (!json_is_object(e))
		return yt_strdupf("%s: tensor %s: entry is not a JSON object", file, key);
	json_object_foreach(e, k, v) {
		if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
			return yt_strdupf("%s: tensor %s: unknown field \"%s\" (allowed: dtype, shape, data_offsets)",
				      file, key, k);
	}
	dt = json_object_get(e, "dtype");
	if (!json_is_string(dt))
		return yt_strdupf("%s: tensor %s: dtype missing or not a string", file, key);
	t->dtype = dtype_from_safetensors(json_string_value(dt));
	if (t->dtype == DT_INVALID)
		return yt_strdupf("%s: tensor %s: unknown dtype \"%.16s\"", file, key,
			      json_string_value(dt));

	shape = json_object_get(e, "shape");
	if (!json_is_array(shape))
		return yt_strdupf("%s: tensor %s: shape missing or not a list", file, key);
	if (json_array_size(shape) > MODEL_MAX_DIMS)
		return yt_strdupf("%s: tensor %s: shape has %zu dimensions, at most %d supported",
			      file, key, json_array_size(shape), MODEL_MAX_DIMS);
	t->ndim = (int)json_array_size(shape);
	json_array_foreach(shape, i, v) {
		int64_t d = st_json_uint(v);

		if (d < 0)
			return yt_strdupf("%s: tensor %s: shape[%zu] is not a non-negative integer",
				      file, key, i);
		t->dims[i] = d;
		if (__builtin_mul_overflow(nelem, (uint64_t)d, &nelem))
			return yt_strdupf("%s: tensor %s: shape overflows", file, key);
	}

	offs = json_object_get(e, "data_offsets");
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    st_json_uint(json_array_get(offs, 0)) < 0 ||
	    st_json_uint(json_array_get(offs, 1)) < 0)
		return yt_strdupf("%s: tensor %s: data_offsets missing or not two non-negative integers",
			      file, key);
	begin = (uint64_t)st_json_uint(json_array_get(offs, 0));
	end = (uint64_t)st_json_uint(json_array_get(offs, 1));
	if (begin > end)
		return yt_strdupf("%s: tensor %s: data_offsets begin %llu > end %llu", file, key,
			      (unsigned long long)begin, (unsigned long long)end);
	if (end > dlen)
		return yt_strdupf("%s: tensor %s: data_offsets end %llu past data size %llu", file, key,
			      (unsigned long long)end, (unsigned long long)dlen);
	if (__builtin_mul_overflow(nelem, (uint64_t)dtype_size(t->dtype), &nbytes) ||
	    nbytes != end - begin)
		return yt_strdupf("%s: tensor %s: data_offsets span %llu bytes, shape x dtype needs %llu",
			      file, key, (unsigned long long)(end - begin),
			      (unsigned long long)nelem * dtype_size(t->dtype));
	t->nbytes = (size_t)nbytes;
	sp->begin = begin;
	sp->end = end;
	return NULL;
}

static char *st_metadata_check(const char *file, json_t *meta)
{
	const char *k;
	json_t *v;

	if (!json_is_object(meta))
		return yt_strdupf("%s: __metadata__ is not a JSON object", file);
	json_object_foreach(meta, k, v) {
		if (!json_is_string(v))
			return yt_strdupf("%s: __metadata__.%s is not a string", file, k);
	}
	return NULL;
}

/*
 * st_build - validate the file in map[0..len) and build the st_file.
 * alloc is the allocation map lies in; it is freed on failure, owned by the
 * result on success (and may be replaced by an aligned copy).
 */
static struct st_file *st_build(const char *name, void *alloc, unsigned char *map,
				size_t len, char **err)
{
	struct st_file_priv *p = NULL;
	struct st_file *f;
	struct st_span *spans = NULL;
	json_t *hdr = NULL, *v;
	json_error_t jerr;
	uint64_t hlen, dlen;
	unsigned char *data;
	const char *k;
	char *msg = NULL;
	bool aligned = true;
	size_t n, i, odd_bytes = 0;

	if (len < 8) {
		msg = yt_strdupf("%s: file too short (%zu bytes) for the 8-byte header length",
			     name, len);
		goto out_fail;
	}
	hlen = st_le64(map);
	if (hlen > len - 8) {
		/* Not the number: for any other file it is 8 bytes of its content. */
		msg = yt_strdupf("%s: not a safetensors file: the header length in its first 8 "
			     "bytes is past the end of the file (%zu bytes)", name, len);
		goto out_fail;
	}
	dlen = len - 8 - hlen;
	hdr = json_loadb((const char *)map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!hdr) {
		msg = yt_strdupf("%s: not a safetensors file: header is not valid JSON (%s at "
			     "header byte %d)", name, st_json_problem(&jerr), jerr.position);
		goto out_fail;
	}
	if (!json_is_object(hdr)) {
		msg = yt_strdupf("%s: header is not a JSON object", name);
		goto out_fail;
	}

	p = calloc(1, sizeof(*p));
	if (!p)
		goto out_nomem;
	f = &p->pub;
	f->path = strdup(name);
	n = json_object_size(hdr);
	f->tensors = calloc(n ? n : 1, sizeof(*f->tensors));
	spans = calloc(n ? n : 1, sizeof(*spans));
	if (!f->path || !f->tensors || !spans)
		goto out_nomem;

	json_object_foreach(hdr, k, v) {
		struct st_tensor *t = &f->tensors[f->n_tensors];

		if (strcmp(k, "__metadata__") == 0) {
			msg = st_metadata_check(name, v);
			if (msg)
				goto out_fail;
			continue;
		}
		msg = st_tensor_parse(name, k, v, dlen, t, &spans[f->n_tensors]);
		if (msg)
			goto out_fail;
		t->name = strdup(k);
		if (!t->name)
			goto out_nomem;
		spans[f->n_tensors].idx = f->n_tensors;
		f->n_tensors++;
	}

	/* Overlaps: sort by begin; empty tensors occupy nothing. */
	qsort(spans, f->n_tensors, sizeof(*spans), st_span_cmp);
	for (i = 0; i < (size_t)f->n_tensors; i++) {
		size_t j;

		if (spans[i].begin == spans[i].end)
			continue;
		for (j = i + 1; j < (size_t)f->n_tensors && spans[j].begin < spans[i].end; j++) {
			if (spans[j].begin == spans[j].end)
				continue;
			msg = yt_strdupf("%s: tensor %s: data_offsets [%llu, %llu] overlap tensor %s [%llu, %llu]",
				     name, f->tensors[spans[j].idx].name,
				     (unsigned long long)spans[j].begin,
				     (unsigned long long)spans[j].end,
				     f->tensors[spans[i].idx].name,
				     (unsigned long long)spans[i].begin,
				     (unsigned long long)spans[i].end);
			goto out_fail;
		}
	}

	/*
	 * Each tensor must be aligned for its element type.  When only the
	 * data section's start is off, move the whole file once; tensors at
	 * offsets that are themselves misaligned get their own aligned copy.
	 */
	data = map + 8 + hlen;
	for (i = 0; i < (size_t)f->n_tensors; i++) {
		size_t es = dtype_size(f->tensors[spans[i].idx].dtype);

		if (es < 2 || spans[i].begin == spans[i].end)
			continue;
		if ((uintptr_t)(data + spans[i].begin) % es)
			aligned = false;
		if (spans[i].begin % es)
			odd_bytes += st_round_up(spans[i].end - spans[i].begin, ST_ALIGN);
	}
	if (!aligned && (uintptr_t)data % ST_ALIGN) {
		size_t pad = st_pad_for(hlen);
		void *copy = aligned_alloc(ST_ALIGN, st_round_up(pad + len + 1, ST_ALIGN));

		if (!copy)
			goto out_nomem;
		memcpy((char *)copy + pad, map, len);
		free(alloc);
		alloc = copy;
		map = (unsigned char *)copy + pad;
		data = map + 8 + hlen;
	}
	if (odd_bytes) {
		p->odd = aligned_alloc(ST_ALIGN, odd_bytes);
		if (!p->odd)
			goto out_nomem;
	}
	for (i = 0, odd_bytes = 0; i < (size_t)f->n_tensors; i++) {
		struct st_tensor *t = &f->tensors[spans[i].idx];
		size_t es = dtype_size(t->dtype);

		t->data = data + spans[i].begin;
		if (es > 1 && spans[i].begin % es && t->nbytes) {
			t->data = memcpy((char *)p->odd + odd_bytes, t->data, t->nbytes);
			odd_bytes += st_round_up(t->nbytes, ST_ALIGN);
		}
	}
	p->alloc = alloc;
	f->map = map;
	f->len = len;
	free(spans);
	json_decref(hdr);
	return f;

out_nomem:
	free(msg);
	msg = yt_strdupf("%s: out of memory", name);
out_fail:
	if (p) {
		free(p->odd);
		st_free_tensors(&p->pub);
		free(p->pub.path);
		free(p);
	}
	free(spans);
	json_decref(hdr);
	free(alloc);
	if (err)
		*err = msg;
	else
		free(msg);
	return NULL;
}

/*
 * st_parse - see model.h.  buf is owned by this call from the start: it is
 * kept (or replaced by an aligned copy) on success and freed on failure, so
 * the caller never frees it.
 */
struct st_file *st_parse(const char *name, void *buf, size_t len, char **err)
{
	return st_build(name, buf, buf, len, err);
}

/* Read exactly len bytes at offset off; 0 or -errno (-EIO when the file shrank). */
static int st_pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		got += (size_t)r;
	}
	return 0;
}

/*
 * st_open - see model.h.  Reads the file into an allocation positioned so
 * the data section starts on a 64-byte boundary, then validates it.
 */
struct st_file *st_open(const char *path, char **err)
{
	unsigned char head[8];
	struct stat st;
	size_t len, pad = 0;
	void *alloc;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno;
		*err = yt_strdupf("%s: %s", path, strerror(rc));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err = yt_strdupf("%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	len = (size_t)st.st_size;
	if (len >= 8) {
		rc = st_pread_all(fd, head, 8, 0);
		if (rc) {
			*err = yt_strdupf("%s: read: %s", path, strerror(-rc));
			close(fd);
			return NULL;
		}
		pad = st_pad_for(st_le64(head));
	}
	alloc = aligned_alloc(ST_ALIGN, st_round_up(pad + len + 1, ST_ALIGN));
	if (!alloc) {
		*err = yt_strdupf("%s: out of memory (%zu bytes)", path, len);
		close(fd);
		return NULL;
	}
	rc = st_pread_all(fd, (char *)alloc + pad, len, 0);
	close(fd);
	if (rc) {
		*err = yt_strdupf("%s: read: %s", path, rc == -EIO ? "file shrank while reading" :
			      strerror(-rc));
		free(alloc);
		return NULL;
	}
	return st_build(path, alloc, (unsigned char *)alloc + pad, len, err);
}
