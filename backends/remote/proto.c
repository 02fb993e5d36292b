/*
 * proto.c - the agent protocol codec (see proto.h, docs/agent-protocol.md).
 *
 * Both directions are hand-written msgpack: the decoder walks the
 * caller's payload with the bounded reader of backends/mpread.h (no
 * allocation, strings and bins are views), the encoder writes straight
 * into an agp_buf.  msgpack-c's msgpack_unpack was not used because it
 * allocates an array's objects from the count in its header before
 * reading them: a 6-byte frame can ask it for 100 GB.  mpr_next checks a
 * count against the bytes left (every element takes at least one) before
 * anything is walked, so the work is linear in the frame and the memory
 * is the caller's.
 */
#include "remote/proto.h"
#include "mpread.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- decoding --------------------------------------------------------- */

/* The keys the decoder looks at; the position of each one's value. */
enum key {
	K_T, K_ID, K_V, K_SW, K_WINDOW, K_THREADS, K_MODELS, K_Q, K_QC, K_SVC_US,
	K_MODEL, K_SLICES, K_INPUT, K_OUTPUT, K_STATUS, K_MSG, K_QUEUE_US, K_EXEC_US,
	K_TOKEN, K_TOP_N
};
static const char *const top_keys[K_TOP_N] = {
	"t", "id", "v", "sw", "window", "threads", "models", "q", "qc", "svc_us",
	"model", "slices", "input", "output", "status", "msg", "queue_us", "exec_us",
	"token",
};

enum { MK_NAME, MK_VERSION, MK_IN_DIM, MK_OUT_DIM, MK_MAX_BATCH, MK_DTYPE, MODEL_KEYS_N };
static const char *const model_keys[MODEL_KEYS_N] = {
	"name", "version", "in_dim", "out_dim", "max_batch", "dtype",
};

enum { SK_ROWS, SK_TIMEOUT_US, SK_STATUS, SLICE_KEYS_N };
static const char *const slice_keys[SLICE_KEYS_N] = { "rows", "timeout_us", "status" };

/* A field's name for errors: "rows", or "slices[3].rows" (arr set). */
struct fld {
	const char *arr;
	int idx;
	const char *name;
};

struct dec {
	const char *tname;	/* the message type once known, for the error prefix */
	char *err;
	size_t errlen;
};

static int dec_fail(struct dec *d, int rc, const struct fld *f, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write "type: field: what" to d->err; returns rc. */
static int dec_fail(struct dec *d, int rc, const struct fld *f, const char *fmt, ...)
{
	size_t n = 0;
	va_list ap;
	int w;

	if (!d->err || !d->errlen)
		return rc;
	d->err[0] = '\0';
	if (d->tname) {
		w = snprintf(d->err, d->errlen, "%s: ", d->tname);
		n = w > 0 ? (size_t)w : 0;
	}
	if (f && n < d->errlen) {
		if (!f->arr)
			w = snprintf(d->err + n, d->errlen - n, "%s: ", f->name);
		else if (!f->name[0])	/* the element itself */
			w = snprintf(d->err + n, d->errlen - n, "%s[%d]: ", f->arr, f->idx);
		else
			w = snprintf(d->err + n, d->errlen - n, "%s[%d].%s: ", f->arr, f->idx, f->name);
		n += w > 0 ? (size_t)w : 0;
	}
	if (n < d->errlen) {
		va_start(ap, fmt);
		vsnprintf(d->err + n, d->errlen - n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/*
 * mp_index - walk a map of count pairs at r, recording where the value of
 * each of names[0..n) starts (pos[], NULL when absent).  Keys not in
 * names, and keys that are not strings, are skipped: forward
 * compatibility.  A known key twice is an error (which one is meant?).
 */
static int mp_index(struct dec *d, struct mpr *r, uint64_t count, const char *const *names, int n,
		    const uint8_t **pos, const struct fld *where)
{
	struct mpr_val k;

	for (int i = 0; i < n; i++)
		pos[i] = NULL;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *kstart = r->p;
		int j;

		if (!mpr_next(r, &k))
			goto bad;
		for (j = 0; j < n; j++)
			if (mpr_key_is(&k, names[j]))
				break;
		/* an array or map as a key: legal msgpack, never ours; step over it whole */
		if (k.kind == MPR_ARRAY || k.kind == MPR_MAP) {
			r->p = kstart;
			if (!mpr_skip(r))
				goto bad;
		}
		if (j < n) {
			if (pos[j]) {
				struct fld f = where ? (struct fld){ where->arr, where->idx, names[j] }
						     : (struct fld){ NULL, 0, names[j] };
				return dec_fail(d, -EINVAL, &f, "duplicate key");
			}
			pos[j] = r->p;
		}
		if (!mpr_skip(r))
			goto bad;
	}
	return 0;
bad:	/* the frame is no msgpack value: nothing in it can be trusted */
	return dec_fail(d, -EBADMSG, NULL, "truncated or malformed msgpack");
}

/* The value at pos (already validated by mp_index's skip). */
static void val_at(const uint8_t *pos, const uint8_t *end, struct mpr_val *v)
{
	struct mpr r = { pos, end };

	if (!mpr_next(&r, v))	/* cannot happen: mp_index stepped over it */
		v->kind = MPR_NIL;
}

/* An unsigned integer field in min..max; missing is an error. */
static int get_uint(struct dec *d, const uint8_t *pos, const uint8_t *end, const struct fld *f,
		    uint64_t min, uint64_t max, uint64_t *out)
{
	const char *want = min ? "a positive integer" : "a non-negative integer";
	struct mpr_val v;

	if (!pos)
		return dec_fail(d, -EINVAL, f, "missing");
	val_at(pos, end, &v);
	if (v.kind != MPR_UINT)
		return dec_fail(d, -EINVAL, f, "expected %s, got %s", want, mpr_kind_name(v.kind));
	if (v.u < min || v.u > max)
		return dec_fail(d, -EINVAL, f, "expected %s up to %llu, got %llu", want,
				(unsigned long long)max, (unsigned long long)v.u);
	*out = v.u;
	return 0;
}

static int get_u32(struct dec *d, const uint8_t *pos, const uint8_t *end, const struct fld *f,
		   uint32_t min, uint32_t *out)
{
	uint64_t v;
	int rc = get_uint(d, pos, end, f, min, UINT32_MAX, &v);

	if (!rc)
		*out = (uint32_t)v;
	return rc;
}

/* A status: 0 (ran) or an HTTP status. */
static int get_status(struct dec *d, const uint8_t *pos, const uint8_t *end, const struct fld *f,
		      int32_t *out)
{
	uint64_t v;
	int rc = get_uint(d, pos, end, f, 0, 999, &v);

	if (rc)
		return rc;
	if (v && v < 100)
		return dec_fail(d, -EINVAL, f, "expected 0 or an HTTP status (100..999), got %llu",
				(unsigned long long)v);
	*out = (int32_t)v;
	return 0;
}

/*
 * A string field copied NUL-terminated into out (cap bytes with the NUL).
 * strict: longer than cap-1 or holding a NUL is an error (names); else it
 * is cut (texts), and control bytes become '?' since texts reach logs.
 */
static int get_str(struct dec *d, const uint8_t *pos, const uint8_t *end, const struct fld *f,
		   bool strict, char *out, size_t cap)
{
	struct mpr_val v;
	size_t n;

	if (!pos)
		return dec_fail(d, -EINVAL, f, "missing");
	val_at(pos, end, &v);
	if (v.kind != MPR_STR)
		return dec_fail(d, -EINVAL, f, "expected a string, got %s", mpr_kind_name(v.kind));
	if (strict && v.u > cap - 1)
		return dec_fail(d, -EINVAL, f, "%llu bytes, at most %zu", (unsigned long long)v.u,
				cap - 1);
	if (strict && memchr(v.ptr, '\0', v.u))
		return dec_fail(d, -EINVAL, f, "contains a NUL byte");
	n = v.u < cap - 1 ? v.u : cap - 1;
	memcpy(out, v.ptr, n);
	out[n] = '\0';
	if (!strict)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
				out[i] = '?';
	return 0;
}

/* q, qc, svc_us: all three (the caller says whether they are required). */
static int get_load(struct dec *d, const uint8_t **pos, const uint8_t *end, struct agp_msg *m)
{
	int rc;

	if ((rc = get_u32(d, pos[K_Q], end, &(struct fld){ NULL, 0, "q" }, 0, &m->load.q)) ||
	    (rc = get_u32(d, pos[K_QC], end, &(struct fld){ NULL, 0, "qc" }, 0, &m->load.qc)) ||
	    (rc = get_u32(d, pos[K_SVC_US], end, &(struct fld){ NULL, 0, "svc_us" }, 0,
			  &m->load.svc_us)))
		return rc;
	m->has_load = true;
	return 0;
}

/* An array field: its count and where its first element starts. */
static int get_array(struct dec *d, const uint8_t *pos, const uint8_t *end, const struct fld *f,
		     struct mpr *elems, uint64_t *count)
{
	struct mpr_val v;

	if (!pos)
		return dec_fail(d, -EINVAL, f, "missing");
	elems->p = pos;
	elems->end = end;
	if (!mpr_next(elems, &v))
		return dec_fail(d, -EINVAL, f, "truncated");
	if (v.kind != MPR_ARRAY)
		return dec_fail(d, -EINVAL, f, "expected an array, got %s", mpr_kind_name(v.kind));
	*count = v.u;
	return 0;
}

/* Step to the next element of an array as a map; its keys indexed. */
static int get_elem_map(struct dec *d, struct mpr *elems, const struct fld *f,
			const char *const *names, int n, const uint8_t **pos)
{
	struct mpr_val v;
	const uint8_t *start = elems->p;

	if (!mpr_next(elems, &v))
		return dec_fail(d, -EINVAL, f, "truncated");
	if (v.kind != MPR_MAP) {
		elems->p = start;
		return dec_fail(d, -EINVAL, f, "expected a map, got %s", mpr_kind_name(v.kind));
	}
	return mp_index(d, elems, v.u, names, n, pos, f);
}

static int dec_models(struct dec *d, const uint8_t *pos, const uint8_t *end,
		      const struct agp_space *sp, struct agp_msg *m)
{
	int max = sp && sp->models ? sp->max_models : 0;
	const uint8_t *mp[MODEL_KEYS_N];
	struct fld f = { NULL, 0, "models" };
	uint64_t count;
	struct mpr r;
	int rc;

	if ((rc = get_array(d, pos, end, &f, &r, &count)))
		return rc;
	if (max > AGP_MAX_MODELS)
		max = AGP_MAX_MODELS;
	if (max < 0)
		max = 0;
	if (count > (uint64_t)max)
		return dec_fail(d, -E2BIG, &f, "%llu models, at most %d", (unsigned long long)count,
				max);
	m->models = sp ? sp->models : NULL;
	for (int i = 0; i < (int)count; i++) {
		struct agp_model *mo = &m->models[i];
		struct fld e = { "models", i, "" };

		memset(mo, 0, sizeof(*mo));
		if ((rc = get_elem_map(d, &r, &e, model_keys, MODEL_KEYS_N, mp)))
			return rc;
		if ((e.name = "name", rc = get_str(d, mp[MK_NAME], end, &e, true, mo->name,
						   sizeof(mo->name))))
			return rc;
		if (!mo->name[0])
			return dec_fail(d, -EINVAL, &e, "empty");
		if ((e.name = "version", rc = get_u32(d, mp[MK_VERSION], end, &e, 0, &mo->version)) ||
		    (e.name = "in_dim", rc = get_u32(d, mp[MK_IN_DIM], end, &e, 1, &mo->in_dim)) ||
		    (e.name = "out_dim", rc = get_u32(d, mp[MK_OUT_DIM], end, &e, 1, &mo->out_dim)) ||
		    (e.name = "max_batch",
		     rc = get_u32(d, mp[MK_MAX_BATCH], end, &e, 1, &mo->max_batch)) ||
		    (e.name = "dtype",
		     rc = get_str(d, mp[MK_DTYPE], end, &e, true, mo->dtype, sizeof(mo->dtype))))
			return rc;
		m->n_models = i + 1;
	}
	return 0;
}

/* slices[]: infer {rows, timeout_us}, result {rows, status}; sums rows. */
static int dec_slices(struct dec *d, const uint8_t *pos, const uint8_t *end,
		      const struct agp_space *sp, struct agp_msg *m)
{
	int max = sp && sp->slices ? sp->max_slices : 0;
	bool infer = m->type == AGP_INFER;
	const uint8_t *sk[SLICE_KEYS_N];
	struct fld f = { NULL, 0, "slices" };
	uint64_t count, rows = 0, v = 0;
	struct mpr r;
	int rc;

	if ((rc = get_array(d, pos, end, &f, &r, &count)))
		return rc;
	if (max > AGP_MAX_SLICES)
		max = AGP_MAX_SLICES;
	if (max < 0)
		max = 0;
	if (count > (uint64_t)max)
		return dec_fail(d, -E2BIG, &f, "%llu slices, at most %d", (unsigned long long)count,
				max);
	/* a result that failed as a whole may carry none; an infer never */
	if (!count && (infer || !m->status))
		return dec_fail(d, -EINVAL, &f, "empty");
	m->slices = sp ? sp->slices : NULL;
	for (int i = 0; i < (int)count; i++) {
		struct agp_slice *s = &m->slices[i];
		struct fld e = { "slices", i, "" };

		memset(s, 0, sizeof(*s));
		if ((rc = get_elem_map(d, &r, &e, slice_keys, SLICE_KEYS_N, sk)))
			return rc;
		if ((e.name = "rows", rc = get_u32(d, sk[SK_ROWS], end, &e, 1, &s->rows)))
			return rc;
		if (infer) {
			e.name = "timeout_us";
			if (sk[SK_TIMEOUT_US] &&
			    (rc = get_uint(d, sk[SK_TIMEOUT_US], end, &e, 0, UINT64_MAX, &v)))
				return rc;
			s->timeout_us = sk[SK_TIMEOUT_US] ? v : 0;
		} else if ((e.name = "status", rc = get_status(d, sk[SK_STATUS], end, &e, &s->status))) {
			return rc;
		}
		rows += s->rows;
		if (rows > UINT32_MAX)
			return dec_fail(d, -EINVAL, &f, "more than %u rows in all", UINT32_MAX);
		m->n_slices = i + 1;
	}
	m->rows = (uint32_t)rows;
	return 0;
}

/* input / output: one bin, a view into the payload. */
static int dec_data(struct dec *d, const uint8_t *pos, const uint8_t *end, const char *name,
		    struct agp_msg *m)
{
	struct fld f = { NULL, 0, name };
	struct mpr_val v;

	if (!pos)
		return dec_fail(d, -EINVAL, &f, "missing");
	val_at(pos, end, &v);
	if (v.kind != MPR_BIN)
		return dec_fail(d, -EINVAL, &f, "expected bin, got %s", mpr_kind_name(v.kind));
	m->data = v.ptr;
	m->data_len = v.u;
	return 0;
}

#define FLD(n) (&(struct fld){ NULL, 0, (n) })

/* The gateway's hello's token: a view of a str of at most AGP_TOKEN_MAX
 * bytes (its bytes are the agent's to judge); absent: none. */
static int dec_token(struct dec *d, const uint8_t *pos, const uint8_t *end, struct agp_msg *m)
{
	struct mpr_val v;

	if (!pos)
		return 0;
	val_at(pos, end, &v);
	if (v.kind != MPR_STR)
		return dec_fail(d, -EINVAL, FLD("token"), "expected a string, got %s",
				mpr_kind_name(v.kind));
	if (v.u > AGP_TOKEN_MAX)
		return dec_fail(d, -EINVAL, FLD("token"), "%llu bytes, at most %d",
				(unsigned long long)v.u, AGP_TOKEN_MAX);
	m->token = (const char *)v.ptr;
	m->token_len = (size_t)v.u;
	m->has_token = true;
	return 0;
}

static int dec_hello(struct dec *d, const uint8_t **pos, const uint8_t *end,
		     const struct agp_space *sp, struct agp_msg *m)
{
	int rc;

	if ((rc = get_u32(d, pos[K_V], end, FLD("v"), 0, &m->version)))
		return rc;
	/* Another version's hello may say anything else: the caller refuses
	 * it by m->version (426), so read no further than a name for logs. */
	if (m->version != AGP_VERSION) {
		if (get_str(d, pos[K_SW], end, FLD("sw"), false, m->sw, sizeof(m->sw)))
			m->sw[0] = '\0';
		if (d->err && d->errlen)
			d->err[0] = '\0';
		return 0;
	}
	if ((rc = get_str(d, pos[K_SW], end, FLD("sw"), false, m->sw, sizeof(m->sw))))
		return rc;
	if (!pos[K_WINDOW])	/* the gateway's hello: {v, sw[, token]} */
		return dec_token(d, pos[K_TOKEN], end, m);
	if ((rc = get_u32(d, pos[K_WINDOW], end, FLD("window"), 1, &m->window)) ||
	    (rc = get_u32(d, pos[K_THREADS], end, FLD("threads"), 0, &m->threads)) ||
	    (rc = dec_models(d, pos[K_MODELS], end, sp, m)))
		return rc;
	return get_load(d, pos, end, m);
}

static int dec_infer(struct dec *d, const uint8_t **pos, const uint8_t *end,
		     const struct agp_space *sp, struct agp_msg *m)
{
	int rc;

	if ((rc = get_str(d, pos[K_MODEL], end, FLD("model"), true, m->model, sizeof(m->model))))
		return rc;
	if (!m->model[0])
		return dec_fail(d, -EINVAL, FLD("model"), "empty");
	if ((rc = dec_slices(d, pos[K_SLICES], end, sp, m)))
		return rc;
	return dec_data(d, pos[K_INPUT], end, "input", m);
}

static int dec_result(struct dec *d, const uint8_t **pos, const uint8_t *end,
		      const struct agp_space *sp, struct agp_msg *m)
{
	int rc;

	if ((rc = get_status(d, pos[K_STATUS], end, FLD("status"), &m->status)))
		return rc;
	if (pos[K_MSG] && (rc = get_str(d, pos[K_MSG], end, FLD("msg"), false, m->msg,
					  sizeof(m->msg))))
		return rc;
	if ((rc = dec_slices(d, pos[K_SLICES], end, sp, m)) ||
	    (rc = dec_data(d, pos[K_OUTPUT], end, "output", m)) ||
	    (rc = get_uint(d, pos[K_QUEUE_US], end, FLD("queue_us"), 0, UINT64_MAX, &m->queue_us)) ||
	    (rc = get_uint(d, pos[K_EXEC_US], end, FLD("exec_us"), 0, UINT64_MAX, &m->exec_us)))
		return rc;
	return get_load(d, pos, end, m);
}

static int dec_error(struct dec *d, const uint8_t **pos, const uint8_t *end, struct agp_msg *m)
{
	int rc;

	if ((rc = get_status(d, pos[K_STATUS], end, FLD("status"), &m->status)))
		return rc;
	return get_str(d, pos[K_MSG], end, FLD("msg"), false, m->msg, sizeof(m->msg));
}

static const char *const type_names[] = {
	[AGP_HELLO] = "hello", [AGP_INFER] = "infer", [AGP_RESULT] = "result",
	[AGP_PING] = "ping",   [AGP_PONG] = "pong",   [AGP_CANCEL] = "cancel",
	[AGP_ERROR] = "error",
};

const char *agp_type_name(enum agp_type t)
{
	if ((int)t <= 0 || (size_t)t >= sizeof(type_names) / sizeof(type_names[0]))
		return "?";
	return type_names[t];
}

/* "t": a known type name; its enum in *t. */
static int dec_type(struct dec *d, const uint8_t *pos, const uint8_t *end, enum agp_type *t)
{
	char shown[AGP_NAME_MAX + 1];
	struct mpr_val v;
	size_t n;

	if (!pos)
		return dec_fail(d, -EINVAL, FLD("t"), "missing");
	val_at(pos, end, &v);
	if (v.kind != MPR_STR)
		return dec_fail(d, -EINVAL, FLD("t"), "expected a string, got %s",
				mpr_kind_name(v.kind));
	for (int i = AGP_HELLO; i <= AGP_ERROR; i++)
		if (mpr_key_is(&v, type_names[i])) {
			*t = (enum agp_type)i;
			return 0;
		}
	/* quoted, cut to a name's length, control bytes shown as '?' */
	n = v.u < AGP_NAME_MAX ? v.u : AGP_NAME_MAX;
	for (size_t i = 0; i < n; i++)
		shown[i] = v.ptr[i] < 0x20 || v.ptr[i] >= 0x7f || v.ptr[i] == '"' ? '?'
										  : (char)v.ptr[i];
	shown[n] = '\0';
	return dec_fail(d, -EINVAL, NULL, "unknown message type \"%s\"", shown);
}

int agp_decode(const uint8_t *payload, size_t len, const struct agp_space *sp,
	       struct agp_msg *m, char *err, size_t errlen)
{
	struct dec d = { NULL, err, errlen };
	struct mpr r = { payload, payload + len };
	const uint8_t *pos[K_TOP_N];
	const uint8_t *end = payload + len;
	struct mpr_val v;
	int rc;

	memset(m, 0, sizeof(*m));
	if (err && errlen)
		err[0] = '\0';
	if (!payload || !mpr_next(&r, &v) || v.kind != MPR_MAP)
		return dec_fail(&d, -EBADMSG, NULL, "not a msgpack map");
	if ((rc = mp_index(&d, &r, v.u, top_keys, K_TOP_N, pos, NULL)))
		return rc;
	if (r.p != r.end)
		return dec_fail(&d, -EBADMSG, NULL, "%zu bytes after the map", (size_t)(r.end - r.p));
	/* id first, so that even an unknown type can be answered with it */
	if (pos[K_ID]) {
		val_at(pos[K_ID], end, &v);
		if (v.kind == MPR_UINT)
			m->id = v.u;
	}
	if ((rc = dec_type(&d, pos[K_T], end, &m->type)))
		return rc;
	d.tname = type_names[m->type];
	if (m->type == AGP_HELLO)
		m->id = 0;	/* hello carries no id: one sent is ignored, as any unknown key */
	if (m->type != AGP_HELLO &&
	    (rc = get_uint(&d, pos[K_ID], end, FLD("id"), 0, UINT64_MAX, &m->id)))
		return rc;
	switch (m->type) {
	case AGP_HELLO: return dec_hello(&d, pos, end, sp, m);
	case AGP_INFER: return dec_infer(&d, pos, end, sp, m);
	case AGP_RESULT: return dec_result(&d, pos, end, sp, m);
	case AGP_PONG: return get_load(&d, pos, end, m);
	case AGP_ERROR: return dec_error(&d, pos, end, m);
	default: return 0;	/* ping, cancel: id only */
	}
}

uint32_t agp_frame_len(const uint8_t *hdr)
{
	/* AGP_HDR_BYTES (4), big-endian */
	return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
}

int agp_check_data(const struct agp_msg *m, uint32_t width, char *err, size_t errlen)
{
	const char *name = m->type == AGP_RESULT ? "output" : "input";
	uint64_t want;
	bool over = __builtin_mul_overflow((uint64_t)m->rows * sizeof(float), (uint64_t)width, &want);

	/* a failed batch may leave its output out (proto.h: zeros not sent) */
	if (m->type == AGP_RESULT && m->status && m->data_len == 0)
		return 0;
	if (!over && m->data_len == want)
		return 0;
	if (err && errlen)
		snprintf(err, errlen, "%s: %zu bytes, expected %llu (%u rows x %u x %zu)", name,
			 m->data_len, (unsigned long long)want, m->rows, width, sizeof(float));
	return -EINVAL;
}

/* ---- encoding --------------------------------------------------------- */

/* A frame being written: where it started, whether a write failed. */
struct wr {
	struct agp_buf *b;
	size_t start;
	bool oom;
};

/* Room for n more bytes, growing by doubling; false (and oom) when not. */
static bool wr_room(struct wr *w, size_t n)
{
	struct agp_buf *b = w->b;
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (w->oom)
		return false;
	if (n <= b->cap - b->len)
		return true;
	if (n > SIZE_MAX / 2 - b->len)
		goto fail;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		goto fail;
	b->p = p;
	b->cap = cap;
	return true;
fail:
	w->oom = true;
	return false;
}

static void wr_bytes(struct wr *w, const void *p, size_t n)
{
	if (!n || !wr_room(w, n))
		return;
	memcpy(w->b->p + w->b->len, p, n);
	w->b->len += n;
}

/* A type byte then v as an n-byte big-endian number. */
static void wr_head(struct wr *w, uint8_t type, uint64_t v, int n)
{
	uint8_t h[9];

	h[0] = type;
	for (int i = 0; i < n; i++)
		h[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	wr_bytes(w, h, (size_t)n + 1);
}

static void wr_uint(struct wr *w, uint64_t v)
{
	if (v <= 0x7f) {
		uint8_t b = (uint8_t)v;

		wr_bytes(w, &b, 1);
	} else if (v <= UINT8_MAX) {
		wr_head(w, 0xcc, v, 1);
	} else if (v <= UINT16_MAX) {
		wr_head(w, 0xcd, v, 2);
	} else if (v <= UINT32_MAX) {
		wr_head(w, 0xce, v, 4);
	} else {
		wr_head(w, 0xcf, v, 8);
	}
}

/* A status; a negative one (never valid) is written as int32 so the peer
 * sees and refuses it rather than a wrapped number. */
static void wr_int(struct wr *w, int32_t v)
{
	if (v >= 0)
		wr_uint(w, (uint64_t)v);
	else
		wr_head(w, 0xd2, (uint32_t)v, 4);
}

static void wr_str_n(struct wr *w, const char *s, size_t n)
{
	if (n <= 31) {
		uint8_t b = (uint8_t)(0xa0 | n);

		wr_bytes(w, &b, 1);
	} else if (n <= UINT8_MAX) {
		wr_head(w, 0xd9, n, 1);
	} else if (n <= UINT16_MAX) {
		wr_head(w, 0xda, n, 2);
	} else {
		wr_head(w, 0xdb, n, 4);
	}
	wr_bytes(w, s, n);
}

static void wr_str(struct wr *w, const char *s)
{
	wr_str_n(w, s ? s : "", s ? strlen(s) : 0);
}

static void wr_map(struct wr *w, uint32_t n)
{
	if (n <= 15) {
		uint8_t b = (uint8_t)(0x80 | n);

		wr_bytes(w, &b, 1);
	} else {
		wr_head(w, n <= UINT16_MAX ? 0xde : 0xdf, n, n <= UINT16_MAX ? 2 : 4);
	}
}

static void wr_array(struct wr *w, uint32_t n)
{
	if (n <= 15) {
		uint8_t b = (uint8_t)(0x90 | n);

		wr_bytes(w, &b, 1);
	} else {
		wr_head(w, n <= UINT16_MAX ? 0xdc : 0xdd, n, n <= UINT16_MAX ? 2 : 4);
	}
}

static void wr_kv_uint(struct wr *w, const char *k, uint64_t v)
{
	wr_str(w, k);
	wr_uint(w, v);
}

static void wr_kv_str(struct wr *w, const char *k, const char *v)
{
	wr_str(w, k);
	wr_str(w, v);
}

/*
 * The bin header of a data field of len bytes, after a "pad" entry that
 * puts the bytes at a multiple of 4 from the payload's start: a reader
 * whose payload is 4-aligned (malloc'd, after the 4-byte header) can then
 * use them as float32 in place.  Readers ignore "pad" like any unknown key.
 * Counts one map entry (the pad) in *pairs when written.
 */
static void wr_data_head(struct wr *w, const char *key, size_t len)
{
	/* offsets from the payload: "pad" (4 bytes) + fixstr(k) (1 + k), then key, bin32 head */
	size_t at = w->b->len - (w->start + AGP_HDR_BYTES) + 4 + 1 + 1 + strlen(key) + 5;
	size_t k = (4 - at % 4) % 4;

	wr_str(w, "pad");
	wr_str_n(w, "    ", k);
	wr_str(w, key);
	wr_head(w, 0xc6, len, 4);	/* always bin32: the padding above assumes 5 bytes */
}

static void wr_load(struct wr *w, const struct agp_load *load)
{
	static const struct agp_load none;

	if (!load)
		load = &none;
	wr_kv_uint(w, "q", load->q);
	wr_kv_uint(w, "qc", load->qc);
	wr_kv_uint(w, "svc_us", load->svc_us);
}

/* Start a frame: room for the header, filled in by wr_end. */
static void wr_begin(struct wr *w, struct agp_buf *b)
{
	static const uint8_t zero[AGP_HDR_BYTES];

	w->b = b;
	w->start = b->len;
	w->oom = false;
	wr_bytes(w, zero, sizeof(zero));
}

/* Finish a frame: its length in the header, or the buffer as it was. */
static int wr_end(struct wr *w)
{
	size_t n;

	if (w->oom) {
		w->b->len = w->start;
		return -ENOMEM;
	}
	n = w->b->len - w->start - AGP_HDR_BYTES;
	if (n > UINT32_MAX) {
		w->b->len = w->start;
		return -E2BIG;
	}
	for (int i = 0; i < AGP_HDR_BYTES; i++)
		w->b->p[w->start + i] = (uint8_t)(n >> (8 * (AGP_HDR_BYTES - 1 - i)));
	return 0;
}

void agp_buf_free(struct agp_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int agp_put_hello_req(struct agp_buf *b, uint32_t version, const char *sw, const char *token)
{
	struct wr w;

	wr_begin(&w, b);
	wr_map(&w, token ? 4 : 3);
	wr_kv_str(&w, "t", "hello");
	wr_kv_uint(&w, "v", version);
	wr_kv_str(&w, "sw", sw);
	if (token)
		wr_kv_str(&w, "token", token);
	return wr_end(&w);
}

int agp_put_hello(struct agp_buf *b, uint32_t version, const char *sw, uint32_t window,
		  uint32_t threads, const struct agp_model *models, int n,
		  const struct agp_load *load)
{
	struct wr w;

	wr_begin(&w, b);
	wr_map(&w, 9);
	wr_kv_str(&w, "t", "hello");
	wr_kv_uint(&w, "v", version);
	wr_kv_str(&w, "sw", sw);
	wr_kv_uint(&w, "window", window);
	wr_kv_uint(&w, "threads", threads);
	wr_str(&w, "models");
	wr_array(&w, n > 0 ? (uint32_t)n : 0);
	for (int i = 0; i < n; i++) {
		const struct agp_model *mo = &models[i];

		wr_map(&w, 6);
		wr_kv_str(&w, "name", mo->name);
		wr_kv_uint(&w, "version", mo->version);
		wr_kv_uint(&w, "in_dim", mo->in_dim);
		wr_kv_uint(&w, "out_dim", mo->out_dim);
		wr_kv_uint(&w, "max_batch", mo->max_batch);
		wr_kv_str(&w, "dtype", mo->dtype);
	}
	wr_load(&w, load);
	return wr_end(&w);
}

int agp_put_infer(struct agp_buf *b, uint64_t id, const char *model,
		  const struct agp_slice *slices, int n, const void *const *rows, size_t row_bytes)
{
	uint64_t total = 0;
	struct wr w;

	for (int i = 0; i < n; i++)
		total += slices[i].rows;
	if (row_bytes && total > UINT32_MAX / row_bytes)	/* over a frame: never sendable */
		return -E2BIG;
	wr_begin(&w, b);
	wr_map(&w, 6);
	wr_kv_str(&w, "t", "infer");
	wr_kv_uint(&w, "id", id);
	wr_kv_str(&w, "model", model);
	wr_str(&w, "slices");
	wr_array(&w, n > 0 ? (uint32_t)n : 0);
	for (int i = 0; i < n; i++) {
		wr_map(&w, 2);
		wr_kv_uint(&w, "rows", slices[i].rows);
		wr_kv_uint(&w, "timeout_us", slices[i].timeout_us);
	}
	wr_data_head(&w, "input", (size_t)(total * row_bytes));	/* 2 entries */
	for (int i = 0; i < n; i++)
		wr_bytes(&w, rows[i], (size_t)slices[i].rows * row_bytes);
	return wr_end(&w);
}

int agp_put_result(struct agp_buf *b, uint64_t id, int32_t status, const char *msg,
		   const struct agp_slice *slices, int n, const void *output, size_t out_bytes,
		   uint64_t queue_us, uint64_t exec_us, const struct agp_load *load)
{
	uint64_t total = 0;
	size_t len;
	struct wr w;

	for (int i = 0; i < n; i++)
		total += slices[i].rows;
	if (out_bytes && total > UINT32_MAX / out_bytes)
		return -E2BIG;
	len = output ? (size_t)(total * out_bytes) : 0;
	wr_begin(&w, b);
	wr_map(&w, msg ? 12 : 11);
	wr_kv_str(&w, "t", "result");
	wr_kv_uint(&w, "id", id);
	wr_str(&w, "status");
	wr_int(&w, status);
	if (msg)
		wr_kv_str(&w, "msg", msg);
	wr_str(&w, "slices");
	wr_array(&w, n > 0 ? (uint32_t)n : 0);
	for (int i = 0; i < n; i++) {
		wr_map(&w, 2);
		wr_kv_uint(&w, "rows", slices[i].rows);
		wr_str(&w, "status");
		wr_int(&w, slices[i].status);
	}
	wr_kv_uint(&w, "queue_us", queue_us);
	wr_kv_uint(&w, "exec_us", exec_us);
	wr_load(&w, load);
	wr_data_head(&w, "output", len);	/* 2 entries */
	wr_bytes(&w, output, len);
	return wr_end(&w);
}

static int put_id_only(struct agp_buf *b, const char *t, uint64_t id)
{
	struct wr w;

	wr_begin(&w, b);
	wr_map(&w, 2);
	wr_kv_str(&w, "t", t);
	wr_kv_uint(&w, "id", id);
	return wr_end(&w);
}

int agp_put_ping(struct agp_buf *b, uint64_t id)
{
	return put_id_only(b, "ping", id);
}

int agp_put_cancel(struct agp_buf *b, uint64_t id)
{
	return put_id_only(b, "cancel", id);
}

int agp_put_pong(struct agp_buf *b, uint64_t id, const struct agp_load *load)
{
	struct wr w;

	wr_begin(&w, b);
	wr_map(&w, 5);
	wr_kv_str(&w, "t", "pong");
	wr_kv_uint(&w, "id", id);
	wr_load(&w, load);
	return wr_end(&w);
}

int agp_put_error(struct agp_buf *b, uint64_t id, int32_t status, const char *msg)
{
	struct wr w;

	wr_begin(&w, b);
	wr_map(&w, 4);
	wr_kv_str(&w, "t", "error");
	wr_kv_uint(&w, "id", id);
	wr_str(&w, "status");
	wr_int(&w, status);
	wr_kv_str(&w, "msg", msg);
	return wr_end(&w);
}
