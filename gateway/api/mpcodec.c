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

int mp_parse_infer(const struct model *m, const char *buf, size_t len, struct ks_infer *out,
		   char *model_name, char *err, size_t errlen)
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

int mp_peek_model(const char *buf, size_t len, char *name, size_t name_len)
{
	msgpack_unpacked u;
	size_t off = 0, n;
	const char *s;
	int rc = -EINVAL;

	if (mp_check((const unsigned char *)buf, len) >= 0)
		return -EINVAL;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    !mp_str(mp_get(&u.data, "model_name"), &s, &n) && n < name_len) {
		memcpy(name, s, n);
		name[n] = 0;
		rc = 0;
	}
	msgpack_unpacked_destroy(&u);
	return rc;
}

static int mp_write(void *data, const char *buf, size_t len)
{
	return evbuffer_add(data, buf, len);
}

static void mp_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* The response map up to the output's data: the caller packs "data" next. */
static void mp_encode_head(msgpack_packer *pk, const struct model *m, const char *id, int rows,
			   const char *datatype, int cols)
{
	char ver[16];

	msgpack_pack_map(pk, id ? 4 : 3);
	mp_pack_str(pk, "model_name");
	mp_pack_str(pk, m->name);
	mp_pack_str(pk, "model_version");
	snprintf(ver, sizeof(ver), "%d", m->version);
	mp_pack_str(pk, ver);
	if (id) {
		mp_pack_str(pk, "id");
		mp_pack_str(pk, id);
	}
	mp_pack_str(pk, "outputs");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 4);
	mp_pack_str(pk, "name");
	mp_pack_str(pk, m->output.name);
	mp_pack_str(pk, "datatype");
	mp_pack_str(pk, datatype);
	mp_pack_str(pk, "shape");
	msgpack_pack_array(pk, 2);
	msgpack_pack_int(pk, rows);
	msgpack_pack_int(pk, cols);
	mp_pack_str(pk, "data");
}

void mp_encode_infer(struct evbuffer *out, const struct model *m, const char *id, int rows,
		     const float *values)
{
	size_t bytes = (size_t)rows * m->out_dim * sizeof(float);
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, mp_write);
	mp_encode_head(&pk, m, id, rows, dtype_kserve_name(m->output.dtype), m->out_dim);
	msgpack_pack_bin(&pk, bytes);
	msgpack_pack_bin_body(&pk, values, bytes);
}

static void mp_pack_class(void *arg, const char *s, int len)
{
	msgpack_pack_str(arg, (size_t)len);
	msgpack_pack_str_body(arg, s, (size_t)len);
}

int mp_encode_classes(struct evbuffer *out, const struct model *m, const char *id, int rows,
		      const float *values, int class_count)
{
	int k = ks_class_k(m, class_count);
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, mp_write);
	mp_encode_head(&pk, m, id, rows, "BYTES", k);
	msgpack_pack_array(&pk, (size_t)rows * k);
	return ks_classes(m, rows, values, class_count, mp_pack_class, &pk);
}

void mp_encode_error(struct evbuffer *out, const char *msg)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, mp_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_str(&pk, "error");
	mp_pack_str(&pk, msg);
}
