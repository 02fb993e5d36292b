/* mpcodec.c - see mpcodec.h. */
#include "mpcodec.h"

#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbuf.h"
#include "kserve.h"
#include "model/model.h"
#include "mpread.h"

#define MP_ERR(...) (snprintf(err, errlen, __VA_ARGS__), 400)

static const char *mp_kind(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_MAP: return "a map";
	case MSGPACK_OBJECT_ARRAY: return "an array";
	case MSGPACK_OBJECT_STR: return "a string";
	case MSGPACK_OBJECT_BIN: return "bin";
	case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a number";
	default: return "an extension";
	}
}

/* The value of key in map o, or NULL. */
static const msgpack_object *mp_get(const msgpack_object *o, const char *key)
{
	size_t klen = strlen(key);

	if (!o || o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    !memcmp(k->via.str.ptr, key, klen))
			return &o->via.map.ptr[i].val;
	}
	return NULL;
}

static bool mp_is_int(const msgpack_object *o)
{
	return o && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		     o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
}

static bool mp_is_num(const msgpack_object *o)
{
	return mp_is_int(o) || o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64;
}

static double mp_num(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
	default: return o->via.f64;
	}
}

static int mp_str(const msgpack_object *o, const char **s, size_t *len)
{
	if (!o || o->type != MSGPACK_OBJECT_STR) {
		*s = NULL;
		*len = 0;
		return -1;
	}
	*s = o->via.str.ptr;
	*len = o->via.str.size;
	return 0;
}

static int mp_shape(const msgpack_object *o, int64_t *dims, int *ndim, char *err, size_t errlen)
{
	if (!o || o->type != MSGPACK_OBJECT_ARRAY)
		return MP_ERR("inputs[0].shape: expected an array of integers, got %s",
			      o ? mp_kind(o) : "nothing");
	if (o->via.array.size > MODEL_MAX_DIMS)
		return MP_ERR("inputs[0].shape: %u dimensions, at most %d", o->via.array.size,
			      MODEL_MAX_DIMS);
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *e = &o->via.array.ptr[i];

		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return MP_ERR("inputs[0].shape[%u]: expected a non-negative integer", i);
		dims[i] = (int64_t)e->via.u64;
	}
	*ndim = (int)o->via.array.size;
	return 0;
}

/* data: bin (a view) or an array of numbers (decoded). */
static int mp_data(const struct model *m, const msgpack_object *d, struct ks_infer *out,
		   char *err, size_t errlen)
{
	size_t want = (size_t)out->rows * m->in_dim;

	if (d && d->type == MSGPACK_OBJECT_BIN) {
		int rc = ks_check_bytes(m, "inputs[0].data", out->rows, d->via.bin.size, err, errlen);

		if (rc)
			return rc;
		out->data = (const float *)d->via.bin.ptr;
		return ks_check_finite(out->data, want, err, errlen);
	}
	if (!d || d->type != MSGPACK_OBJECT_ARRAY)
		return MP_ERR("inputs[0].data: expected bin or an array of numbers, got %s",
			      d ? mp_kind(d) : "nothing");
	if (d->via.array.size != want)
		return MP_ERR("inputs[0].data: expected %zu values for shape [%d, %d], got %u", want,
			      out->rows, m->in_dim, d->via.array.size);
	out->owned = inbuf_alloc(want);
	out->data = out->owned;
	if (!out->owned)
		return snprintf(err, errlen, "gateway out of memory"), 503;
	for (size_t i = 0; i < want; i++) {
		if (!mp_is_num(&d->via.array.ptr[i]))
			return MP_ERR("inputs[0].data[%zu]: expected a number, got %s", i,
				      mp_kind(&d->via.array.ptr[i]));
		out->owned[i] = (float)mp_num(&d->via.array.ptr[i]);
	}
	return ks_check_finite(out->owned, want, err, errlen);	/* 1e39 is Inf as FP32 */
}

/*
 * A parameters map at where: a map (or absent) whose keys are none of the
 * parameters infergw refuses (ks_check_param).  0 or 400.
 */
static int mp_check_params(const msgpack_object *p, const char *where, char *err, size_t errlen)
{
	int rc;

	if (!p)
		return 0;
	if (p->type != MSGPACK_OBJECT_MAP)
		return MP_ERR("%s: expected a map, got %s", where, mp_kind(p));
	for (uint32_t i = 0; i < p->via.map.size; i++) {
		const msgpack_object *k = &p->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR &&
		    (rc = ks_check_param(where, k->via.str.ptr, k->via.str.size, err, errlen)))
			return rc;
	}
	return 0;
}

static int mp_input(const struct model *m, const msgpack_object *inputs, struct ks_infer *out,
		    char *err, size_t errlen)
{
	const msgpack_object *in;
	const char *name, *dt;
	size_t nlen, dlen;
	int64_t dims[MODEL_MAX_DIMS];
	int ndim = 0, rc;

	if (!inputs || inputs->type != MSGPACK_OBJECT_ARRAY)
		return MP_ERR("inputs: expected an array of input tensors, got %s",
			      inputs ? mp_kind(inputs) : "nothing");
	in = inputs->via.array.size ? &inputs->via.array.ptr[0] : NULL;
	if (in && in->type != MSGPACK_OBJECT_MAP)
		return MP_ERR("inputs[0]: expected a map, got %s", mp_kind(in));
	if (in && (rc = mp_shape(mp_get(in, "shape"), dims, &ndim, err, errlen)))
		return rc;
	mp_str(mp_get(in, "name"), &name, &nlen);
	mp_str(mp_get(in, "datatype"), &dt, &dlen);
	rc = ks_check_input(m, (int)inputs->via.array.size, name, nlen, dt, dlen, dims, ndim,
			    &out->rows, err, errlen);
	if (!rc)
		rc = mp_check_params(mp_get(in, "parameters"), "inputs[0].parameters", err, errlen);
	return rc ? rc : mp_data(m, mp_get(in, "data"), out, err, errlen);
}

static int mp_params(const msgpack_object *p, struct ks_infer *out, char *err, size_t errlen)
{
	const msgpack_object *prio = mp_get(p, "priority"), *tmo = mp_get(p, "timeout");
	const msgpack_object *var = mp_get(p, "variant");
	const char *vs;
	size_t vlen;
	int rc;

	if (!p)
		return 0;
	if ((rc = mp_check_params(p, "parameters", err, errlen)))
		return rc;
	if (prio && (prio->type != MSGPACK_OBJECT_POSITIVE_INTEGER || prio->via.u64 > 1000000))
		return MP_ERR("parameters.priority: expected a non-negative integer");
	if (tmo && tmo->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return MP_ERR("parameters.timeout: expected a non-negative integer (microseconds)");
	if (var) {
		mp_str(var, &vs, &vlen);	/* not a string: vs NULL, said so */
		if (ks_check_variant(vs, vlen, &out->variant, err, errlen))
			return 400;
	}
	out->priority = prio ? (int)prio->via.u64 : 0;
	out->timeout_us = tmo ? ks_clamp_timeout(tmo->via.u64) : 0;
	return 0;
}

/* classification (or class_count) in an output's parameters map p. 0 or 400. */
static int mp_output_classes(const msgpack_object *p, int idx, int *k, char *err, size_t errlen)
{
	const msgpack_object *c = mp_get(p, "classification"), *cc = mp_get(p, "class_count");
	const char *key = c ? "classification" : "class_count";

	if (c && cc)
		return MP_ERR("outputs[%d].parameters: classification and class_count both given "
			      "(they are one setting)", idx);
	if (!c)
		c = cc;
	if (!c)
		return 0;
	return ks_check_class_count(idx, key, mp_is_int(c),
				    c->type == MSGPACK_OBJECT_POSITIVE_INTEGER ?
				    (c->via.u64 > LLONG_MAX ? LLONG_MAX : (long long)c->via.u64) :
				    mp_is_int(c) ? c->via.i64 : 0, k, err, errlen);
}

static int mp_outputs(const struct model *m, const msgpack_object *o, struct ks_infer *out,
		      char *err, size_t errlen)
{
	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return MP_ERR("outputs: expected an array, got %s", mp_kind(o));
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		const msgpack_object *p = mp_get(&o->via.array.ptr[i], "parameters");
		const char *name;
		char where[48];
		size_t len;
		int rc;

		mp_str(mp_get(&o->via.array.ptr[i], "name"), &name, &len);
		snprintf(where, sizeof(where), "outputs[%u].parameters", i);
		if ((rc = ks_check_output_name(m, (int)i, name, len, err, errlen)) ||
		    (rc = mp_check_params(p, where, err, errlen)) ||
		    (rc = mp_output_classes(p, (int)i, &out->class_count, err, errlen)))
			return rc;
	}
	return 0;
}

static int mp_root(const struct model *m, const msgpack_object *root, struct ks_infer *out,
		   char *model_name, char *err, size_t errlen)
{
	const msgpack_object *id = mp_get(root, "id");
	const char *s;
	size_t len;
	int rc;

	if (root->type != MSGPACK_OBJECT_MAP)
		return MP_ERR("request body: expected a msgpack map, got %s", mp_kind(root));
	if (id) {
		if (mp_str(id, &s, &len))
			return MP_ERR("id: expected a string, got %s", mp_kind(id));
		if (len > KS_ID_MAX)
			return MP_ERR("id: longer than %d bytes", KS_ID_MAX);
		memcpy(out->id, s, len);
		out->id[len] = 0;
		out->has_id = true;
	}
	if (model_name) {
		model_name[0] = 0;
		if (!mp_str(mp_get(root, "model_name"), &s, &len) && len <= KS_ID_MAX) {
			memcpy(model_name, s, len);
			model_name[len] = 0;
		}
	}
	rc = mp_params(mp_get(root, "parameters"), out, err, errlen);
	if (!rc)
		rc = mp_input(m, mp_get(root, "inputs"), out, err, errlen);
	if (!rc)
		rc = mp_outputs(m, mp_get(root, "outputs"), out, err, errlen);
	return rc;
}

/*
 * msgpack-c allocates room for every element an array or map header
 * claims before it checks that the bytes exist: 5 bytes claiming 2^32
 * elements cost gigabytes.  Walk the encoding first and refuse any header
 * that claims more elements or bytes than remain.  Returns the offset of
 * the first bad byte, or -1 when the buffer holds well-formed values.
 */
static long mp_check(const unsigned char *p, size_t len)
{
	size_t pos = 0, items = 1;	/* values still to read */

	while (items > 0) {
		size_t n = 0, skip = 0, start = pos, left;
		unsigned char t;

		if (pos >= len)
			return (long)pos;
		t = p[pos++];
		left = len - pos;
		if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
			skip = 0;			/* fixint, nil, bool */
		} else if (t >= 0x80 && t <= 0x8f) {
			n = 2 * (size_t)(t & 0x0f);	/* fixmap */
		} else if (t >= 0x90 && t <= 0x9f) {
			n = t & 0x0f;			/* fixarray */
		} else if (t >= 0xa0 && t <= 0xbf) {
			skip = t & 0x1f;		/* fixstr */
		} else {
			static const unsigned char fixed[] = {	/* 0xc4..0xdf: length bytes */
				1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8,
				2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4 };
			unsigned lb;
			uint64_t v = 0;

			if (t == 0xc1)
				return (long)start;	/* never used */
			lb = fixed[t - 0xc4];
			if (left < lb)
				return (long)start;
			if ((t >= 0xca && t <= 0xd3) || (t >= 0xd4 && t <= 0xd8)) {
				skip = lb;		/* numbers, fixext */
			} else {
				for (unsigned k = 0; k < lb; k++)	/* big-endian length */
					v = v << 8 | p[pos + k];
				pos += lb;
				left -= lb;
				if (t >= 0xc7 && t <= 0xc9)	/* ext: length, then a type byte */
					skip = (size_t)v + 1;
				else if (t == 0xdc || t == 0xdd)
					n = (size_t)v;		/* array16/32 */
				else if (t == 0xde || t == 0xdf)
					n = 2 * (size_t)v;	/* map16/32 */
				else
					skip = (size_t)v;	/* bin, str */
			}
		}
		if (skip > left || n > left)	/* every element needs a byte */
			return (long)start;
		pos += skip;
		items += n;
		if (items - 1 > len - pos)
			return (long)start;
		items--;
	}
	return -1;
}

/* ---- the one-walk reader of the usual request ----
 *
 * mp_fast_root reads a body in one pass with the bounded reader of
 * backends/mpread.h: no msgpack_object tree, no zone.  It takes only the
 * usual shape: known keys, each once, string keys, bin data; anything
 * else, and any failing check, makes it decline (false), and the general
 * reader below (msgpack-c's tree) answers, naming the field.  So what it
 * accepts it must fill exactly as the general reader would.
 */

/* A key the one-walk reader knows; tables of them end with { NULL }. */
struct mp_key {
	const char *s;
	size_t len;
};

#define MP_KEY(s) { s, sizeof(s) - 1 }

/*
 * The next value of r as a key of a map: the index in keys of the string
 * it is, marked in *seen.  -1 for a key not in keys, not a string, or
 * seen before (the general reader takes the first of two).
 */
static int mp_fast_key(struct mpr *r, const struct mp_key *keys, unsigned *seen)
{
	struct mpr_val k;

	if (!mpr_next(r, &k) || k.kind != MPR_STR || !k.u)
		return -1;
	for (int i = 0; keys[i].s; i++) {
		if (k.u == keys[i].len && k.ptr[0] == (uint8_t)keys[i].s[0] &&
		    !memcmp(k.ptr, keys[i].s, k.u)) {
			if (*seen & 1u << i)
				return -1;
			*seen |= 1u << i;
			return i;
		}
	}
	return -1;
}

/* The next value of r into *v, which must be of kind want. */
static bool mp_fast_next(struct mpr *r, enum mpr_kind want, struct mpr_val *v)
{
	return mpr_next(r, v) && v->kind == want;
}

/* parameters at the root: priority, timeout, variant, as mp_params takes them. */
static bool mp_fast_params(struct mpr *r, struct ks_infer *out)
{
	static const struct mp_key keys[] = { MP_KEY("priority"), MP_KEY("timeout"),
					       MP_KEY("variant"), { NULL, 0 } };
	struct mpr_val map, v;
	unsigned seen = 0;
	char e[1];	/* the message comes from the general reader */

	if (!mp_fast_next(r, MPR_MAP, &map))
		return false;
	for (uint64_t i = 0; i < map.u; i++) {
		int key = mp_fast_key(r, keys, &seen);

		if (key < 0 || !mpr_next(r, &v))
			return false;
		if (key == 0 && (v.kind != MPR_UINT || v.u > 1000000))
			return false;
		if (key == 1 && v.kind != MPR_UINT)
			return false;
		if (key == 2 && (v.kind != MPR_STR ||
				 ks_check_variant((const char *)v.ptr, v.u, &out->variant, e, 1)))
			return false;
		if (key == 0)
			out->priority = (int)v.u;
		else if (key == 1)
			out->timeout_us = ks_clamp_timeout(v.u);
	}
	return true;
}

/* inputs[0].shape: at most MODEL_MAX_DIMS non-negative integers. */
static bool mp_fast_shape(struct mpr *r, int64_t *dims, int *ndim)
{
	struct mpr_val a, v;

	if (!mp_fast_next(r, MPR_ARRAY, &a) || a.u > MODEL_MAX_DIMS)
		return false;
	for (uint64_t i = 0; i < a.u; i++) {
		if (!mp_fast_next(r, MPR_UINT, &v))
			return false;
		dims[i] = (int64_t)v.u;
	}
	*ndim = (int)a.u;
	return true;
}

/*
 * inputs: one map of name, datatype, shape and bin data, checked as
 * mp_input checks it; out->rows and out->data (a view) set.
 */
static bool mp_fast_input(const struct model *m, struct mpr *r, struct ks_infer *out)
{
	static const struct mp_key keys[] = { MP_KEY("name"), MP_KEY("datatype"), MP_KEY("shape"),
					       MP_KEY("data"), { NULL, 0 } };
	struct mpr_val v, str[2] = { { .kind = MPR_NIL }, { .kind = MPR_NIL } }, data;
	int64_t dims[MODEL_MAX_DIMS];
	unsigned seen = 0;
	int ndim = 0;
	char e[1];

	if (!mp_fast_next(r, MPR_ARRAY, &v) || v.u != 1 || !mp_fast_next(r, MPR_MAP, &v))
		return false;
	for (uint64_t i = 0; i < v.u; i++) {
		int key = mp_fast_key(r, keys, &seen);

		if (key < 0 || (key < 2 && !mp_fast_next(r, MPR_STR, &str[key])) ||
		    (key == 2 && !mp_fast_shape(r, dims, &ndim)) ||
		    (key == 3 && !mp_fast_next(r, MPR_BIN, &data)))
			return false;
	}
	if (seen != 0xf ||
	    ks_check_input(m, 1, (const char *)str[0].ptr, str[0].u, (const char *)str[1].ptr,
			   str[1].u, dims, ndim, &out->rows, e, 1) ||
	    ks_check_bytes(m, "", out->rows, data.u, e, 1) ||
	    ks_check_finite(data.ptr, data.u / sizeof(float), e, 1))
		return false;
	out->data = (const float *)data.ptr;
	return true;
}

/* outputs[idx].parameters: classification or class_count, as mp_output_classes. */
static bool mp_fast_classes(struct mpr *r, int idx, int *k)
{
	static const struct mp_key keys[] = { MP_KEY("classification"), MP_KEY("class_count"),
					       { NULL, 0 } };
	struct mpr_val map, v;
	unsigned seen = 0;
	char e[1];
	int key;

	if (!mp_fast_next(r, MPR_MAP, &map) || map.u > 1)
		return false;	/* both given: the general reader says so */
	if (map.u == 0)
		return true;
	key = mp_fast_key(r, keys, &seen);
	return key >= 0 && mp_fast_next(r, MPR_UINT, &v) &&
	       !ks_check_class_count(idx, keys[key].s, true,
				     v.u > LLONG_MAX ? LLONG_MAX : (long long)v.u, k, e, 1);
}

/* outputs: maps of the model's output name and optional classification. */
static bool mp_fast_outputs(const struct model *m, struct mpr *r, struct ks_infer *out)
{
	static const struct mp_key keys[] = { MP_KEY("name"), MP_KEY("parameters"), { NULL, 0 } };
	struct mpr_val a, map, name;
	char e[1];

	if (!mp_fast_next(r, MPR_ARRAY, &a))
		return false;
	for (uint64_t i = 0; i < a.u; i++) {
		unsigned seen = 0;

		if (!mp_fast_next(r, MPR_MAP, &map))
			return false;
		for (uint64_t j = 0; j < map.u; j++) {
			int key = mp_fast_key(r, keys, &seen);

			if (key < 0 || (key == 0 && !mp_fast_next(r, MPR_STR, &name)) ||
			    (key == 1 && !mp_fast_classes(r, (int)i, &out->class_count)))
				return false;
		}
		if (!(seen & 1) ||
		    ks_check_output_name(m, (int)i, (const char *)name.ptr, name.u, e, 1))
			return false;
	}
	return true;
}

/* s (len bytes) into dst (KS_ID_MAX + 1 bytes) when it fits, else "". */
static void mp_fast_copy(char *dst, const struct mpr_val *s)
{
	size_t n = s->u <= KS_ID_MAX ? s->u : 0;

	memcpy(dst, s->ptr, n);
	dst[n] = 0;
}

/*
 * The whole body buf[0..len) as the usual request for m: true with out
 * (zeroed by the caller) and model_name filled as mp_root fills them,
 * false to leave it to the general reader (out then holds no allocation).
 */
static bool mp_fast_root(const struct model *m, const char *buf, size_t len,
			 struct ks_infer *out, char *model_name)
{
	static const struct mp_key keys[] = { MP_KEY("id"), MP_KEY("model_name"),
					       MP_KEY("parameters"), MP_KEY("inputs"),
					       MP_KEY("outputs"), { NULL, 0 } };
	struct mpr r = { (const uint8_t *)buf, (const uint8_t *)buf + len };
	struct mpr_val map, s;
	unsigned seen = 0;

	if (model_name)
		model_name[0] = 0;
	if (!mp_fast_next(&r, MPR_MAP, &map))
		return false;
	for (uint64_t i = 0; i < map.u; i++) {
		int key = mp_fast_key(&r, keys, &seen);

		if (key < 0 || (key < 2 && !mp_fast_next(&r, MPR_STR, &s)) ||
		    (key == 0 && s.u > KS_ID_MAX) ||
		    (key == 2 && !mp_fast_params(&r, out)) ||
		    (key == 3 && !mp_fast_input(m, &r, out)) ||
		    (key == 4 && !mp_fast_outputs(m, &r, out)))
			return false;
		if (key == 0) {
			mp_fast_copy(out->id, &s);
			out->has_id = true;
		} else if (key == 1 && model_name) {
			mp_fast_copy(model_name, &s);
		}
	}
	return (seen & 1u << 3) && r.p == r.end;
}

int mp_parse_infer(const struct model *m, const char *buf, size_t len, struct ks_infer *out,
		   char *model_name, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (mp_fast_root(m, buf, len, out, model_name))
		return 0;
	return mp_parse_infer_general(m, buf, len, out, model_name, err, errlen);
}

int mp_parse_infer_general(const struct model *m, const char *buf, size_t len,
			   struct ks_infer *out, char *model_name, char *err, size_t errlen)
{
	msgpack_unpacked u;
	size_t off = 0;
	long bad;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return MP_ERR("request body: empty, expected a msgpack map with \"inputs\"");
	bad = mp_check((const unsigned char *)buf, len);
	if (bad >= 0 && (size_t)bad < len && (unsigned char)buf[bad] == 0xc1)
		return MP_ERR("malformed msgpack at byte %ld", bad);
	if (bad >= 0)
		return MP_ERR("malformed msgpack: body ends inside the map (the value at byte %ld "
			      "needs more than the %zu bytes sent)", bad, len);
	msgpack_unpacked_init(&u);
	switch (msgpack_unpack_next(&u, buf, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		rc = off != len ? MP_ERR("request body: %zu bytes after the msgpack map", len - off)
				: mp_root(m, &u.data, out, model_name, err, errlen);
		break;
	case MSGPACK_UNPACK_CONTINUE:
		rc = MP_ERR("malformed msgpack: body ends inside the map (%zu bytes)", len);
		break;
	default:
		rc = MP_ERR("malformed msgpack at byte %zu", off);
		break;
	}
	msgpack_unpacked_destroy(&u);
	if (rc)
		ks_infer_free(out);
	return rc;
}

/* ---- encoding: straight into reserved space of out ----
 *
 * Each head in its smallest form, as msgpack-c's packer writes it, so the
 * bytes are the packer's (tests/unit/test_mpcodec.c holds them to it),
 * without a call into out per value.
 */

/*
 * A msgpack head for the count or length n at p: fix | n when n < fix_lim;
 * else code8 and a byte when code8 (not 0) and n < 256; else code16 and
 * two bytes when n < 65536; else code16 + 1 and four, big-endian.
 * Returns the end (at most 5 bytes on).
 */
static char *mp_put_head(char *p, unsigned fix, uint32_t fix_lim, unsigned code8,
			 unsigned code16, uint32_t n)
{
	int bytes = n < fix_lim ? 0 : code8 && n < 256 ? 1 : n < 65536 ? 2 : 4;

	*p++ = (char)(bytes == 0 ? fix | n : bytes == 1 ? code8 : bytes == 2 ? code16 : code16 + 1);
	for (int i = bytes - 1; i >= 0; i--)
		*p++ = (char)(n >> 8 * i);
	return p;
}

#define MP_PUT_UINT(p, n) mp_put_head(p, 0x00, 128, 0xcc, 0xcd, n)	/* n <= INT_MAX */
#define MP_PUT_ARRAY(p, n) mp_put_head(p, 0x90, 16, 0, 0xdc, n)
#define MP_PUT_MAP(p, n) mp_put_head(p, 0x80, 16, 0, 0xde, n)
#define MP_PUT_BIN(p, n) mp_put_head(p, 0, 0, 0xc4, 0xc5, n)
#define MP_STR_MAX(n) ((n) + 5)	/* room mp_put_str takes for n bytes */

/* The str s (n bytes) at p; the end. */
static char *mp_put_str(char *p, const char *s, size_t n)
{
	p = mp_put_head(p, 0xa0, 32, 0xd9, 0xda, (uint32_t)n);
	memcpy(p, s, n);
	return p + n;
}

static char *mp_put_cstr(char *p, const char *s)
{
	return mp_put_str(p, s, strlen(s));
}

/* v in decimal as a str at p (snprintf costs ~600 instructions); the end. */
static char *mp_put_decimal(char *p, int v)
{
	char d[12], *q = d + sizeof(d);
	unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;

	do
		*--q = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--q = '-';
	return mp_put_str(p, q, (size_t)(d + sizeof(d) - q));
}

/* Room mp_encode_head needs: keys, heads, an integer, four strings. */
static size_t mp_head_max(const struct model *m, const char *id, const char *datatype)
{
	return 160 + strlen(m->name) + strlen(m->output.name) + strlen(datatype) +
	       (id ? strlen(id) : 0);
}

/* The response map up to the output's data, at p (room: mp_head_max): the
 * caller puts "data"'s value next.  Returns the end. */
static char *mp_encode_head(char *p, const struct model *m, const char *id, int rows,
			    const char *datatype, int cols)
{
	p = MP_PUT_MAP(p, id ? 4 : 3);
	p = mp_put_cstr(p, "model_name");
	p = mp_put_cstr(p, m->name);
	p = mp_put_cstr(p, "model_version");
	p = mp_put_decimal(p, m->version);
	if (id) {
		p = mp_put_cstr(p, "id");
		p = mp_put_cstr(p, id);
	}
	p = mp_put_cstr(p, "outputs");
	p = MP_PUT_ARRAY(p, 1);
	p = MP_PUT_MAP(p, 4);
	p = mp_put_cstr(p, "name");
	p = mp_put_cstr(p, m->output.name);
	p = mp_put_cstr(p, "datatype");
	p = mp_put_cstr(p, datatype);
	p = mp_put_cstr(p, "shape");
	p = MP_PUT_ARRAY(p, 2);
	p = MP_PUT_UINT(p, (uint32_t)rows);
	p = MP_PUT_UINT(p, (uint32_t)cols);
	return mp_put_cstr(p, "data");
}

/* Room for max bytes at the end of out, described in *v: NULL without memory. */
static char *mp_room(struct evbuffer *out, size_t max, struct evbuffer_iovec *v)
{
	return evbuffer_reserve_space(out, (ev_ssize_t)max, v, 1) < 1 ? NULL : v->iov_base;
}

/* Add what was written in mp_room's space, up to end, to out. */
static void mp_done(struct evbuffer *out, struct evbuffer_iovec *v, char *end)
{
	v->iov_len = (size_t)(end - (char *)v->iov_base);
	evbuffer_commit_space(out, v, 1);
}

/* The whole answer goes into one reserved space: one call into out. */
int mp_encode_infer_head(struct evbuffer *out, const struct model *m, const char *id, int rows)
{
	size_t bytes = (size_t)rows * m->out_dim * sizeof(float);
	const char *dt = dtype_kserve_name(m->output.dtype);
	struct evbuffer_iovec v;
	char *p = mp_room(out, mp_head_max(m, id, dt) + 5, &v);

	if (!p)
		return -ENOMEM;
	p = mp_encode_head(p, m, id, rows, dt, m->out_dim);
	mp_done(out, &v, MP_PUT_BIN(p, (uint32_t)bytes));
	return 0;
}

void mp_encode_infer(struct evbuffer *out, const struct model *m, const char *id, int rows,
		     const float *values)
{
	size_t bytes = (size_t)rows * m->out_dim * sizeof(float);
	const char *dt = dtype_kserve_name(m->output.dtype);
	struct evbuffer_iovec v;
	char *p = mp_room(out, mp_head_max(m, id, dt) + 5 + bytes, &v);

	if (!p)
		return;
	p = mp_encode_head(p, m, id, rows, dt, m->out_dim);
	p = MP_PUT_BIN(p, (uint32_t)bytes);
	memcpy(p, values, bytes);
	mp_done(out, &v, p + bytes);
}

/* ks_classes' callback: one string s (len bytes) onto the evbuffer arg. */
static void mp_pack_class(void *arg, const char *s, int len)
{
	struct evbuffer_iovec v;
	char *p = mp_room(arg, MP_STR_MAX((size_t)len), &v);

	if (p)
		mp_done(arg, &v, mp_put_str(p, s, (size_t)len));
}

int mp_encode_classes(struct evbuffer *out, const struct model *m, const char *id, int rows,
		      const float *values, int class_count)
{
	int k = ks_class_k(m, class_count);
	struct evbuffer_iovec v;
	char *p = mp_room(out, mp_head_max(m, id, "BYTES") + 5, &v);

	if (!p)
		return -ENOMEM;
	p = mp_encode_head(p, m, id, rows, "BYTES", k);
	mp_done(out, &v, MP_PUT_ARRAY(p, (uint32_t)((size_t)rows * k)));
	return ks_classes(m, rows, values, class_count, mp_pack_class, out);
}

void mp_encode_error(struct evbuffer *out, const char *msg)
{
	struct evbuffer_iovec v;
	char *p = mp_room(out, 16 + MP_STR_MAX(strlen(msg)), &v);

	if (!p)
		return;
	p = MP_PUT_MAP(p, 1);
	p = mp_put_cstr(p, "error");
	mp_done(out, &v, mp_put_cstr(p, msg));
}
