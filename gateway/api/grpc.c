/* grpc.c - see grpc.h. */
#include "grpc.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "front.h"
#include "grpc_service.pb-c.h"
#include "http.h"
#include "infer.h"
#include "kserve.h"
#include "model/model.h"
#include "runtime.h"
#include "util.h"
#include "version.h"

#define GRPC_PREFIX "/inference.GRPCInferenceService/"
#define GRPC_FRAME_HDR 5	/* compressed flag, 4-byte big-endian length */
#define GRPC_CODES 17		/* 0 OK .. 16 UNAUTHENTICATED */
#define GRPC_MSG_MAX 512	/* grpc-message before percent-encoding */

enum grpc_method {
	GM_SERVER_LIVE, GM_SERVER_READY, GM_MODEL_READY, GM_SERVER_METADATA,
	GM_MODEL_METADATA, GM_MODEL_INFER, GM_OTHER, GM_COUNT
};

static const char *const grpc_method_names[GM_COUNT] = {
	[GM_SERVER_LIVE] = "ServerLive", [GM_SERVER_READY] = "ServerReady",
	[GM_MODEL_READY] = "ModelReady", [GM_SERVER_METADATA] = "ServerMetadata",
	[GM_MODEL_METADATA] = "ModelMetadata", [GM_MODEL_INFER] = "ModelInfer",
	[GM_OTHER] = "other",
};

/* Answers by method and code, every loop thread adding. */
static _Atomic unsigned long grpc_answers[GM_COUNT][GRPC_CODES];

/* A ModelInfer in flight: what the answer repeats (freed with the call). */
struct grpc_infer {
	char id[KS_ID_MAX + 1];
};

/* protobuf-c output straight into an evbuffer (no intermediate copy). */
struct grpc_evbuf {
	ProtobufCBuffer base;
	struct evbuffer *out;
};

static void grpc_evbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	struct grpc_evbuf *e = (struct grpc_evbuf *)b;

	evbuffer_add(e->out, data, len);
}

bool grpc_is_request(const struct call *c)
{
	const char *ct = call_header(c, "content-type");

	return ct && !strncmp(ct, "application/grpc", 16) &&
	       (ct[16] == 0 || ct[16] == '+' || ct[16] == ';');
}

int grpc_code(int http_status)
{
	switch (http_status) {
	case 200: return GRPC_OK;
	case 400: return GRPC_INVALID_ARGUMENT;
	case 401: return GRPC_UNAUTHENTICATED;
	case 403: return GRPC_PERMISSION_DENIED;
	case 404: return GRPC_NOT_FOUND;
	case 405: case 501: return GRPC_UNIMPLEMENTED;
	case 413: case 429: case 431: return GRPC_RESOURCE_EXHAUSTED;
	case 500: return GRPC_INTERNAL;
	case 503: return GRPC_UNAVAILABLE;
	case 504: return GRPC_DEADLINE_EXCEEDED;
	default: return http_status >= 400 && http_status < 500 ? GRPC_INVALID_ARGUMENT : GRPC_UNKNOWN;
	}
}

/* The method path names (GM_OTHER for anything else, or no path). */
static enum grpc_method grpc_method_of(const char *path)
{
	if (!path || strncmp(path, GRPC_PREFIX, strlen(GRPC_PREFIX)))
		return GM_OTHER;
	path += strlen(GRPC_PREFIX);
	for (int i = 0; i < GM_OTHER; i++)
		if (!strcmp(path, grpc_method_names[i]))
			return i;
	return GM_OTHER;
}

/* grpc-message: percent-encode what is not printable ASCII, and '%'. */
static void grpc_percent(const char *msg, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *msg && n + 4 <= outlen; msg++) {
		unsigned char ch = (unsigned char)*msg;

		if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = 0;
}

/* Set c's gRPC status, count the answer, send it (c may be gone after). */
static void grpc_finish(struct call *c, int http_status, int code, const char *msg)
{
	char enc[3 * GRPC_MSG_MAX + 1];

	if (c->responded)
		return;
	c->grpc_status = code;
	if (msg && msg[0]) {
		grpc_percent(msg, enc, sizeof(enc));
		c->grpc_message = call_strndup(c, enc, strlen(enc));
	}
	if (code >= 0 && code < GRPC_CODES)
		atomic_fetch_add_explicit(&grpc_answers[grpc_method_of(c->path)][code], 1,
					  memory_order_relaxed);
	call_respond(c, http_status, "application/grpc");
}

void grpc_respond_status(struct call *c, int http_status, int code, const char *msg)
{
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	grpc_finish(c, http_status, code, msg);
}

/* An error answer with a formatted message. */
static void grpc_fail(struct call *c, int http_status, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void grpc_fail(struct call *c, int http_status, int code, const char *fmt, ...)
{
	char msg[GRPC_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	grpc_respond_status(c, http_status, code, msg);
}

/* Answer OK with msg as the one length-prefixed message. */
static void grpc_reply(struct call *c, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	struct grpc_evbuf eb = { .base = { .append = grpc_evbuf_append }, .out = c->resp };
	uint8_t hdr[GRPC_FRAME_HDR] = { 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
					(uint8_t)(len >> 8), (uint8_t)len };

	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	if (len > UINT32_MAX) {
		grpc_respond_status(c, 500, GRPC_INTERNAL, "response too large for one gRPC message");
		return;
	}
	evbuffer_add(c->resp, hdr, sizeof(hdr));
	protobuf_c_message_pack_to_buffer(msg, &eb.base);
	grpc_finish(c, 200, GRPC_OK, NULL);
}

/*
 * The request's one message: c->body is exactly one gRPC frame (unary).
 * Returns it unpacked (free with protobuf_c_message_free_unpacked), or
 * NULL with c answered.  The body is bounded by limits.max_body_bytes
 * before this runs (h2.c), so is the message.
 */
static ProtobufCMessage *grpc_unframe(struct call *c, const ProtobufCMessageDescriptor *d)
{
	size_t len = evbuffer_get_length(c->body);
	const uint8_t *p = evbuffer_pullup(c->body, len);
	const char *enc = call_header(c, "grpc-encoding");
	ProtobufCMessage *msg;
	size_t mlen;

	if (len < GRPC_FRAME_HDR) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT,
			  "gRPC frame: %zu bytes, expected a 5-byte prefix and one %s", len, d->name);
		return NULL;
	}
	if (p[0] == 1) {
		grpc_fail(c, 501, GRPC_UNIMPLEMENTED,
			  "gRPC frame: compressed messages are not supported (grpc-encoding %s): send identity",
			  enc ? enc : "absent");
		return NULL;
	}
	if (p[0] != 0) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT,
			  "gRPC frame: compressed flag %u, expected 0", p[0]);
		return NULL;
	}
	mlen = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
	if (mlen != len - GRPC_FRAME_HDR) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT,
			  "gRPC frame: prefix says %zu bytes, the stream carries %zu (one message per unary call)",
			  mlen, len - GRPC_FRAME_HDR);
		return NULL;
	}
	msg = protobuf_c_message_unpack(d, NULL, mlen, p + GRPC_FRAME_HDR);
	if (!msg)
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT, "%s: %zu bytes that are not a valid %s message",
			  d->short_name, mlen, d->name);
	return msg;
}

/*
 * The model that name and version (may be empty) name, or NULL with c
 * answered NOT_FOUND / INVALID_ARGUMENT.
 */
static const struct model *grpc_model(struct call *c, const char *field, const char *name,
				       const char *version)
{
	const struct model *m;

	if (!name || !name[0]) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT, "%s: expected a model name", field);
		return NULL;
	}
	m = rt_find_model(c->rt, name);
	if (!m) {
		grpc_fail(c, 404, GRPC_NOT_FOUND, "unknown model \"%.200s\"", name);
		return NULL;
	}
	if (version && version[0] && (strspn(version, "0123456789") != strlen(version) ||
				      atoi(version) != m->version)) {
		grpc_fail(c, 404, GRPC_NOT_FOUND, "model \"%s\" has no version \"%.32s\" (serving %d)",
			  m->name, version, m->version);
		return NULL;
	}
	return m;
}

/* ---- the small methods ---- */

static void grpc_server_live(struct call *c, ProtobufCMessage *in)
{
	Inference__ServerLiveResponse out = INFERENCE__SERVER_LIVE_RESPONSE__INIT;

	out.live = true;
	grpc_reply(c, &out.base);
}

static void grpc_server_ready(struct call *c, ProtobufCMessage *in)
{
	Inference__ServerReadyResponse out = INFERENCE__SERVER_READY_RESPONSE__INIT;

	out.ready = true;
	for (int i = 0; i < c->rt->n_models; i++)
		if (!rt_model_ready(c->rt, c->rt->models[i]->m))
			out.ready = false;
	grpc_reply(c, &out.base);
}

static void grpc_model_ready(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelReadyRequest *req = (Inference__ModelReadyRequest *)in;
	Inference__ModelReadyResponse out = INFERENCE__MODEL_READY_RESPONSE__INIT;
	const struct model *m = grpc_model(c, "name", req->name, req->version);

	if (!m)
		return;
	out.ready = rt_model_ready(c->rt, m);
	grpc_reply(c, &out.base);
}

static void grpc_server_metadata(struct call *c, ProtobufCMessage *in)
{
	Inference__ServerMetadataResponse out = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
	size_t n;
	const char *const *ext = api_extensions_list(&n);

	/* protobuf-c's fields are not const; packing only reads them */
	out.name = (char *)"infergw";
	out.version = (char *)infergw_version;
	out.n_extensions = n;
	out.extensions = (char **)ext;
	grpc_reply(c, &out.base);
}

/* A tensor_spec as TensorMetadata (shape points into dims: int64_t). */
static void grpc_tensor_meta(Inference__ModelMetadataResponse__TensorMetadata *t,
			     const struct tensor_spec *ts)
{
	inference__model_metadata_response__tensor_metadata__init(t);
	t->name = ts->name;
	t->datatype = (char *)dtype_kserve_name(ts->dtype);
	t->n_shape = ts->ndim;
	t->shape = (int64_t *)ts->dims;
}

static void grpc_model_metadata(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelMetadataRequest *req = (Inference__ModelMetadataRequest *)in;
	Inference__ModelMetadataResponse out = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
	Inference__ModelMetadataResponse__TensorMetadata ti, to, *pi = &ti, *po = &to;
	const struct model *m = grpc_model(c, "name", req->name, req->version);
	char ver[16], *vp = ver;

	if (!m)
		return;
	snprintf(ver, sizeof(ver), "%d", m->version);
	grpc_tensor_meta(&ti, &m->input);
	grpc_tensor_meta(&to, &m->output);
	out.name = m->name;
	out.n_versions = 1;
	out.versions = &vp;
	out.platform = m->platform ? m->platform : (char *)"infergw-mlp";
	out.n_inputs = 1;
	out.inputs = &pi;
	out.n_outputs = 1;
	out.outputs = &po;
	grpc_reply(c, &out.base);
}

/* ---- ModelInfer ---- */

/* The input's release: the unpacked request the input views. */
static void grpc_release_msg(void *arg)
{
	protobuf_c_message_free_unpacked(arg, NULL);
}

/* Runs on the owner loop when the backend is done (or the request expired). */
static void grpc_infer_done(struct infer_req *r)
{
	struct call *c = r->ctx;
	struct grpc_infer *gi = c->api;
	Inference__ModelInferResponse out = INFERENCE__MODEL_INFER_RESPONSE__INIT;
	Inference__ModelInferResponse__InferOutputTensor t, *pt = &t;
	ProtobufCBinaryData raw;
	int64_t shape[2] = { r->rows, r->model->out_dim };
	char ver[16];

	c->async = false;
	if (call_detached(c)) {
		api_account(r, 0, 0);
		call_free(c);
		return;
	}
	call_pin(c);
	if (r->status) {
		api_account(r, r->status, now_ns());
		grpc_fail(c, r->status, grpc_code(r->status), "%s", r->errmsg);
		goto out_unpin;
	}
	api_account(r, 200, now_ns());
	snprintf(ver, sizeof(ver), "%d", r->model->version);
	inference__model_infer_response__infer_output_tensor__init(&t);
	t.name = r->model->output.name;
	t.datatype = (char *)dtype_kserve_name(r->model->output.dtype);
	t.n_shape = 2;
	t.shape = shape;
	raw.len = (size_t)r->rows * r->model->out_dim * sizeof(float);
	raw.data = (uint8_t *)r->output;	/* little-endian FP32, as raw contents are */
	out.model_name = r->model->name;
	out.model_version = ver;
	out.id = gi->id;
	out.n_outputs = 1;
	out.outputs = &pt;
	out.n_raw_output_contents = 1;
	out.raw_output_contents = &raw;
	grpc_reply(c, &out.base);
out_unpin:
	call_unpin(c);
}

/* An integer parameter (int64 or uint64) in [0, max] into *v.  0 or 400. */
static int grpc_int_param(const Inference__InferParameter *p, const char *key, int64_t max,
			  int64_t *v, char *err, size_t errlen)
{
	if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM &&
	    p->int64_param >= 0) {
		*v = p->int64_param < max ? p->int64_param : max;
		return 0;
	}
	if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM) {
		*v = p->uint64_param < (uint64_t)max ? (int64_t)p->uint64_param : max;
		return 0;
	}
	snprintf(err, errlen, "parameters.%s: expected a non-negative int64_param", key);
	return 400;
}

/*
 * Keys of a parameters map (entries of any map type: key first) that
 * infergw refuses, as HTTP does (ks_check_param).  0 or 400.
 */
static int grpc_check_keys(const char *where, size_t n, void *const *entries, char *err,
			   size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const Inference__ModelInferRequest__ParametersEntry *e = entries[i];

		if (ks_check_param(where, e->key, strlen(e->key), err, errlen))
			return 400;
	}
	return 0;
}

/*
 * Request parameters: priority in [0, 1000000], timeout in µs (saturated
 * at KS_TIMEOUT_MAX_US); the ones infergw refuses (sequence, shared
 * memory) on the request, the input or an output are a 400 naming them;
 * others are ignored, as over HTTP.  0 or 400.
 */
static int grpc_params(const Inference__ModelInferRequest *req, struct front_hints *h,
		       char *err, size_t errlen)
{
	char where[48];

	if (grpc_check_keys("parameters", req->n_parameters, (void *const *)req->parameters,
			    err, errlen))
		return 400;
	for (size_t i = 0; i < req->n_inputs; i++)
		if (grpc_check_keys("inputs[0].parameters", req->inputs[i]->n_parameters,
				    (void *const *)req->inputs[i]->parameters, err, errlen))
			return 400;
	for (size_t i = 0; i < req->n_outputs; i++) {
		snprintf(where, sizeof(where), "outputs[%zu].parameters", i);
		if (grpc_check_keys(where, req->outputs[i]->n_parameters,
				    (void *const *)req->outputs[i]->parameters, err, errlen))
			return 400;
	}
	for (size_t i = 0; i < req->n_parameters; i++) {
		const Inference__ModelInferRequest__ParametersEntry *e = req->parameters[i];
		int64_t v;

		if (!strcmp(e->key, "priority")) {
			if (grpc_int_param(e->value, "priority", 1000000 + 1, &v, err, errlen))
				return 400;
			if (v > 1000000) {
				snprintf(err, errlen, "parameters.priority: at most 1000000");
				return 400;
			}
			h->priority = (int)v;
		} else if (!strcmp(e->key, "timeout")) {
			if (grpc_int_param(e->value, "timeout", KS_TIMEOUT_MAX_US, &v, err, errlen))
				return 400;
			h->timeout_us = v;
		} else if (!strcmp(e->key, "variant")) {
			const char *s = e->value && e->value->parameter_choice_case ==
				INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM ?
				e->value->string_param : NULL;

			if (ks_check_variant(s, s ? strlen(s) : 0, &h->variant, err, errlen))
				return 400;
		}
	}
	return 0;
}

/*
 * grpc-timeout (gRPC's deadline: 1 to 8 digits and a unit H M S m u n) in
 * µs, at least 1; 0 when absent, -1 when malformed.
 */
static int64_t grpc_timeout_us(const char *v)
{
	static const struct { char unit; int64_t num, den; } units[] = {
		{ 'H', 3600000000LL, 1 }, { 'M', 60000000LL, 1 }, { 'S', 1000000, 1 },
		{ 'm', 1000, 1 }, { 'u', 1, 1 }, { 'n', 1, 1000 },
	};
	size_t nd;
	int64_t n = 0, us;

	if (!v)
		return 0;
	nd = strspn(v, "0123456789");
	if (nd < 1 || nd > 8 || !v[nd] || v[nd + 1])
		return -1;
	for (size_t i = 0; i < nd; i++)
		n = n * 10 + (v[i] - '0');
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (units[i].unit == v[nd]) {
			us = n * units[i].num / units[i].den;
			return us > KS_TIMEOUT_MAX_US ? KS_TIMEOUT_MAX_US : us < 1 ? 1 : us;
		}
	return -1;
}

/*
 * The input tensor's rows and FP32 data (raw_input_contents[0], or
 * contents.fp32_contents), pointing into req.  0 or 400 with err.
 */
static int grpc_input(const struct model *m, const Inference__ModelInferRequest *req, int *rows,
		      const float **data, char *err, size_t errlen)
{
	const Inference__ModelInferRequest__InferInputTensor *in;
	const Inference__InferTensorContents *tc;
	size_t want;
	int rc;

	if (req->n_inputs != 1) {
		snprintf(err, errlen, "inputs: model %s takes 1 input, got %zu", m->name, req->n_inputs);
		return 400;
	}
	in = req->inputs[0];
	if (in->n_shape > MODEL_MAX_DIMS) {
		snprintf(err, errlen, "inputs[0].shape: %zu dimensions, at most %d", in->n_shape,
			 MODEL_MAX_DIMS);
		return 400;
	}
	rc = ks_check_input(m, 1, in->name, strlen(in->name), in->datatype, strlen(in->datatype),
			    in->shape, (int)in->n_shape, rows, err, errlen);
	if (rc)
		return rc;
	for (size_t i = 0; i < req->n_outputs; i++)
		if ((rc = ks_check_output_name(m, (int)i, req->outputs[i]->name,
					       strlen(req->outputs[i]->name), err, errlen)))
			return rc;
	tc = in->contents;
	want = (size_t)*rows * m->in_dim;
	if (req->n_raw_input_contents) {
		if (req->n_raw_input_contents != 1) {
			snprintf(err, errlen, "raw_input_contents: %zu entries for 1 input",
				 req->n_raw_input_contents);
			return 400;
		}
		if (tc) {
			snprintf(err, errlen, "inputs[0].contents: not allowed with raw_input_contents");
			return 400;
		}
		rc = ks_check_bytes(m, "raw_input_contents[0]", *rows, req->raw_input_contents[0].len,
				    err, errlen);
		*data = (const float *)req->raw_input_contents[0].data;
		return rc;
	}
	if (!tc || tc->n_fp32_contents != want || tc->n_bool_contents || tc->n_int_contents ||
	    tc->n_int64_contents || tc->n_uint_contents || tc->n_uint64_contents ||
	    tc->n_fp64_contents || tc->n_bytes_contents) {
		snprintf(err, errlen, "inputs[0].contents.fp32_contents: %zu values, expected %zu for "
			 "shape [%d, %d] FP32 (and no other contents), or use raw_input_contents",
			 tc ? tc->n_fp32_contents : 0, want, *rows, m->in_dim);
		return 400;
	}
	*data = tc->fp32_contents;
	return 0;
}

/* Priority and objective from parameters, then grpc-timeout, then x-* headers. */
static int grpc_objective(struct call *c, const struct model *m,
			  const Inference__ModelInferRequest *req, int *prio,
			  uint64_t *objective_ns, int *variant, char *err, size_t errlen)
{
	struct front_hints h = { .x_priority = call_header(c, "x-priority"),
				 .x_slo_ms = call_header(c, "x-slo-ms") };
	const char *gt = call_header(c, "grpc-timeout");
	int64_t tmo = grpc_timeout_us(gt);

	if (grpc_params(req, &h, err, errlen))
		return 400;
	*variant = h.variant;
	if (tmo < 0) {
		snprintf(err, errlen, "grpc-timeout: expected 1 to 8 digits and a unit (H M S m u n), "
			 "got \"%.32s\"", gt);
		return 400;
	}
	if (!h.timeout_us)
		h.timeout_us = tmo;	/* the client's deadline is the objective */
	return front_objective(rt_model_conf(c->rt, m), &h, prio, objective_ns, err, errlen);
}

static void grpc_model_infer(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelInferRequest *req = (Inference__ModelInferRequest *)in;
	const struct model *m = grpc_model(c, "model_name", req->model_name, req->model_version);
	struct front_spec sp = { 0 };
	struct grpc_infer *gi;
	uint64_t objective;
	const float *data;
	char err[GRPC_MSG_MAX];
	int rows, prio, st, variant = 0;

	if (!m)
		goto out_free;
	if (strlen(req->id) > KS_ID_MAX) {
		st = 400;
		snprintf(err, sizeof(err), "id: %zu bytes, at most %d", strlen(req->id), KS_ID_MAX);
		goto out_err;
	}
	st = grpc_input(m, req, &rows, &data, err, sizeof(err));
	if (!st)
		st = grpc_objective(c, m, req, &prio, &objective, &variant, err, sizeof(err));
	if (st)
		goto out_err;
	gi = calloc(1, sizeof(*gi));
	if (!gi) {
		st = 503;
		snprintf(err, sizeof(err), "gateway out of memory");
		goto out_err;
	}
	snprintf(gi->id, sizeof(gi->id), "%s", req->id);
	c->api = gi;
	sp = (struct front_spec){
		.model = m,
		.in = { .rows = rows, .data = data, .release = grpc_release_msg, .arg = req },
		.priority = prio, .objective_ns = objective, .arrival_ns = c->start_ns,
		.sink = c->sink, .on_done = grpc_infer_done, .ctx = c, .variant = variant,
	};
	c->req = front_req_new(c->pool, &sp);	/* owns req from here on */
	if (!c->req) {
		api_count_error(c, m);
		grpc_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
		return;
	}
	st = front_submit(c->rt, c->req, NULL, now_ns());
	if (st) {
		api_account(c->req, st, now_ns());
		grpc_fail(c, st, grpc_code(st), "%s", c->req->errmsg);
		return;
	}
	c->async = true;
	return;
out_err:
	api_count_error(c, m);
	grpc_fail(c, st, grpc_code(st), "%s", err);
out_free:
	protobuf_c_message_free_unpacked(in, NULL);
}

/* ---- dispatch ---- */

struct grpc_route {
	const ProtobufCMessageDescriptor *req;
	void (*fn)(struct call *c, ProtobufCMessage *in);
	bool owns;	/* fn frees the request (ModelInfer: the request front does) */
};

static const struct grpc_route grpc_routes[GM_OTHER] = {
	[GM_SERVER_LIVE] = { &inference__server_live_request__descriptor, grpc_server_live },
	[GM_SERVER_READY] = { &inference__server_ready_request__descriptor, grpc_server_ready },
	[GM_MODEL_READY] = { &inference__model_ready_request__descriptor, grpc_model_ready },
	[GM_SERVER_METADATA] = { &inference__server_metadata_request__descriptor,
				 grpc_server_metadata },
	[GM_MODEL_METADATA] = { &inference__model_metadata_request__descriptor,
				grpc_model_metadata },
	[GM_MODEL_INFER] = { &inference__model_infer_request__descriptor, grpc_model_infer, true },
};

void grpc_handle(struct call *c)
{
	enum grpc_method gm = grpc_method_of(c->path);
	const struct grpc_route *rt;
	ProtobufCMessage *in;

	if (strcmp(c->method, "POST")) {
		grpc_fail(c, 405, GRPC_UNIMPLEMENTED, "gRPC calls are POST, got %s", c->method);
		return;
	}
	if (gm == GM_OTHER) {
		grpc_fail(c, 404, GRPC_UNIMPLEMENTED, "unknown method %.200s", c->path);
		return;
	}
	rt = &grpc_routes[gm];
	in = grpc_unframe(c, rt->req);
	if (!in)
		return;
	/* the message holds copies: the body's bytes are no longer needed */
	evbuffer_drain(c->body, evbuffer_get_length(c->body));
	rt->fn(c, in);
	if (!rt->owns)
		protobuf_c_message_free_unpacked(in, NULL);
}

void grpc_metrics(struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP infergw_grpc_requests_total gRPC calls answered, by method and grpc-status.\n"
				 "# TYPE infergw_grpc_requests_total counter\n");
	for (int m = 0; m < GM_COUNT; m++)
		for (int k = 0; k < GRPC_CODES; k++) {
			unsigned long n = atomic_load_explicit(&grpc_answers[m][k],
							       memory_order_relaxed);

			if (n)
				evbuffer_add_printf(out, "infergw_grpc_requests_total{method=\"%s\",code=\"%d\"} %lu\n",
						    grpc_method_names[m], k, n);
		}
}
