/* api.c - see api.h. */
#define _GNU_SOURCE
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "admin.h"
#include "config.h"
#include "front.h"
#include "grpc.h"
#include "metrics.h"
#include "backend.h"
#include "http.h"
#include "inbuf.h"
#include "infer.h"
#include "kserve.h"
#include "mpcodec.h"
#include "model/model.h"
#include "runtime.h"
#include "stats.h"
#include "util.h"
#include "version.h"

#define JSON "application/json"

struct api_infer {
	char id[KS_ID_MAX + 1];
	bool has_id;
	bool binary_output;	/* Triton binary extension response */
	bool msgpack_output;	/* Accept: application/msgpack */
	int class_count;	/* classification extension: top k, 0 = off */
};

/*
 * The Triton / KServe extensions GET /v2 lists: exactly those served on
 * this port.  The one list: add a name here when its endpoints land.
 */
static const char *const api_extensions[] = {
	"binary_tensor_data", "classification", "model_configuration", "statistics",
	"schedule_policy", "model_repository",
};

const char *const *api_extensions_list(size_t *n)
{
	*n = ARRAY_SIZE(api_extensions);
	return api_extensions;
}

static void api_server_meta(struct call *c)
{
	evbuffer_add_printf(c->resp, "{\"name\":\"infergw\",\"version\":");
	ks_put_str(c->resp, infergw_version);
	evbuffer_add_printf(c->resp, ",\"extensions\":[");
	for (size_t i = 0; i < ARRAY_SIZE(api_extensions); i++)
		evbuffer_add_printf(c->resp, "%s\"%s\"", i ? "," : "", api_extensions[i]);
	evbuffer_add_printf(c->resp, "]}");
	call_respond(c, 200, JSON);
}

void api_ready(struct call *c)
{
	const struct runtime *rt = c->rt;

	for (int i = 0; i < rt->n_models; i++)
		if (!rt_model_ready(rt, rt->models[i]->m)) {
			call_respond_json(c, 503, "{\"ready\":false}");
			return;
		}
	call_respond_json(c, 200, "{\"ready\":true}");
}

/* Count a finished inference in its series: outcome, latencies, SLO. */
void api_account(const struct infer_req *r, int status, uint64_t now)
{
	struct met_cnt *k;

	if (!r->met)
		return;
	k = met_cnt_of(r->met);
	met_count(k, status == 200 ? OUT_SUCCESS : status == 429 ? OUT_REJECTED :
		     status == 504 ? OUT_EXPIRED : status == 0 ? OUT_CANCELLED : OUT_ERROR);
	if (!now)
		now = now_ns();		/* cancelled: timed to now, for the statistics */
	met_finish(k, status == 200, r->rows, now - r->arrival_ns, now);
	if (status == 429)
		met_observe_ns(&k->reject, now - r->arrival_ns);
	if (status != 200)
		return;
	met_observe_ns(&k->queue, r->dequeue_ns - r->arrival_ns);
	met_observe_ns(&k->exec, r->exec_end_ns - r->exec_start_ns);
	met_observe_ns(&k->e2e, now - r->arrival_ns);
	if (r->deadline_ns)
		met_slo(k, now <= r->deadline_ns);
}

/* Count a request for m refused before it reached a backend (400, 503). */
void api_count_error(const struct call *c, const struct model *m)
{
	uint64_t now = now_ns();

	met_error(rt_none_series(c->rt, m), now - c->start_ns, now);
}

/* Answer an inference that did not produce output (rejected, expired, failed). */
static void api_infer_error(struct call *c, const struct infer_req *r, int status)
{
	if (status == 429) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%u", r->retry_after_s ? r->retry_after_s : 1);
		call_set_resp_header(c, "retry-after", ra);
	}
	api_account(r, status, now_ns());
	call_respond_error(c, status, "%s", r->errmsg);
}

/* A 200 whose output is JSON, or JSON then binary_data of hdr bytes' header. */
static void api_respond_json(struct call *c, bool binary, size_t hdr)
{
	char hl[24];

	if (!binary) {
		call_respond(c, 200, JSON);
		return;
	}
	hl[sizeof(hl) - 1] = 0;
	call_set_resp_header(c, "inference-header-content-length",
			     util_utoa(hl + sizeof(hl) - 1, hdr));
	call_respond(c, 200, "application/octet-stream");
}

/* The classification extension's answer: the top k of each row as BYTES. */
static void api_classes_respond(struct call *c, const struct api_infer *ai,
				const struct infer_req *r)
{
	const char *id = ai->has_id ? ai->id : NULL;
	size_t hdr = 0;
	int rc;

	if (ai->msgpack_output)
		rc = mp_encode_classes(c->resp, r->model, id, r->rows, r->output, ai->class_count);
	else
		rc = ks_encode_classes(c->resp, r->model, id, r->rows, r->output, ai->class_count,
				       ai->binary_output, &hdr);
	if (rc) {
		evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
		call_respond_error(c, 503, "gateway out of memory");
	} else if (ai->msgpack_output) {
		call_respond(c, 200, "application/msgpack");
	} else {
		api_respond_json(c, ai->binary_output, hdr);
	}
}

static size_t api_output_bytes(const struct infer_req *r)
{
	return (size_t)r->rows * r->model->out_dim * sizeof(float);
}

/* A large answer in binary (Triton's extension) or msgpack: what comes
 * before the tensor, then r's output buffer as it is (the answer frees it
 * once written; r gets a new one when next used). */
static void api_owned_respond(struct call *c, const struct api_infer *ai, struct infer_req *r,
			      const char *id)
{
	size_t hdr = 0;
	float *out = r->output;

	if (ai->msgpack_output ? mp_encode_infer_head(c->resp, r->model, id, r->rows) != 0 :
	    !(hdr = ks_encode_infer_head(c->resp, r->model, id, r->rows))) {
		call_respond_error(c, 500, "out of memory");
		return;
	}
	r->output = NULL;
	r->output_cap = 0;
	if (call_add_owned(c, out, api_output_bytes(r))) {
		call_respond_error(c, 500, "out of memory");
		return;
	}
	if (ai->msgpack_output)
		call_respond(c, 200, "application/msgpack");
	else
		api_respond_json(c, true, hdr);
}

/* The 200 answer in the format the client asked for. */
static void api_infer_respond(struct call *c, const struct api_infer *ai,
			      struct infer_req *r)
{
	const char *id = ai->has_id ? ai->id : NULL;
	size_t hdr;

	if (ai->class_count) {
		api_classes_respond(c, ai, r);
		return;
	}
	if ((ai->msgpack_output || ai->binary_output) && api_output_bytes(r) >= CALL_OWNED_SLICE) {
		api_owned_respond(c, ai, r, id);
		return;
	}
	if (ai->msgpack_output) {
		mp_encode_infer(c->resp, r->model, id, r->rows, r->output);
		call_respond(c, 200, "application/msgpack");
		return;
	}
	hdr = ks_encode_infer(c->resp, r->model, id, r->rows, r->output, ai->binary_output);
	api_respond_json(c, ai->binary_output, hdr);
}

/* Runs on the owner loop when the backend is done (or the request expired). */
static void api_infer_done(struct infer_req *r)
{
	struct call *c = r->ctx;
	struct api_infer *ai = c->api;

	c->async = false;
	if (call_detached(c)) {
		api_account(r, 0, 0);
		call_free(c);
		return;
	}
	/* Inf/NaN has no JSON token: 500 rather than a body that is not JSON. */
	if (!r->status && !ai->msgpack_output && !ai->binary_output && !ai->class_count &&
	    ks_check_output(r->model, r->rows, r->output, r->errmsg, sizeof(r->errmsg)))
		r->status = 500;
	call_pin(c);
	if (r->status) {
		api_infer_error(c, r, r->status);
	} else {
		api_account(r, 200, now_ns());
		api_infer_respond(c, ai, r);
	}
	call_unpin(c);
}

void api_abandon(struct call *c)
{
	struct infer_req *r = c->req;

	if (c->grpc_stream) {	/* many requests in flight on one call */
		grpc_stream_abandon(c);
		return;
	}

	if (r && front_cancel(r)) {
		api_account(r, 0, 0);
		call_free(c);
		return;
	}
	c->conn = NULL;		/* running (or an admin job): the completion frees c */
}

/*
 * Priority and objective (front_objective): the body's parameters win over
 * the x-priority / x-slo-ms headers, which win over the model's defaults.
 * 0, or 400 answered.
 */
static int api_objective(struct call *c, const struct model *m, const struct ks_infer *ki,
			 int *prio, uint64_t *objective_ns)
{
	struct front_hints h = { .priority = ki->priority, .timeout_us = ki->timeout_us,
				 .x_priority = call_hdr(c, CALL_H_X_PRIORITY),
				 .x_slo_ms = call_hdr(c, CALL_H_X_SLO_MS) };
	char err[512];

	if (!front_objective(rt_model_conf(c->rt, m), &h, prio, objective_ns, err, sizeof(err)))
		return 0;
	call_respond_error(c, 400, "%s", err);
	return 400;
}

/* The input's release for a decoded (owned) buffer (inbuf.h). */
static void api_release_owned(void *buf)
{
	inbuf_free(buf);
}

/* The input's release for a view into the call's body: the body's bytes
 * are no longer needed (the response has its own buffer). */
static void api_release_body(void *arg)
{
	struct call *c = arg;

	evbuffer_drain(c->body, evbuffer_get_length(c->body));
}

/* A request for ki's input (the request takes it over) from this loop's pool. */
static struct infer_req *api_new_req(struct call *c, const struct model *m, struct ks_infer *ki,
				     int prio, uint64_t objective_ns)
{
	struct front_spec sp = {
		.model = m,
		.in = { .rows = ki->rows, .data = ki->data,
			.release = ki->owned ? api_release_owned : api_release_body,
			.arg = ki->owned ? (void *)ki->owned : (void *)c },
		.priority = prio, .objective_ns = objective_ns, .arrival_ns = c->start_ns,
		.sink = c->sink, .on_done = api_infer_done, .ctx = c, .variant = ki->variant,
	};

	ki->owned = NULL;
	ki->data = NULL;
	return front_req_new(c->pool, &sp);
}


/* Content-Type application/msgpack or application/x-msgpack (any case,
 * parameters after). */
static bool api_is_msgpack(const char *ctype)
{
	const char *sub = ctype ? util_prefix_ci(ctype, "application/") : NULL;

	return sub && (util_prefix_ci(sub, "msgpack") || util_prefix_ci(sub, "x-msgpack"));
}

/*
 * Decode the body by its framing: msgpack by Content-Type; JSON followed by
 * raw tensors when Inference-Header-Content-Length is present (header names
 * match in any case, Content-Type may be absent, as Triton's clients send);
 * else JSON (whatever the Content-Type: curl -d sends form-urlencoded).
 * Tensor bytes stay in c->body: the request views them.  0 or 400.
 */
static int api_parse_body(struct call *c, const struct model *m, struct ks_infer *ki, char *err,
			  size_t errlen)
{
	size_t len = evbuffer_get_length(c->body);
	const char *body = (const char *)evbuffer_pullup(c->body, len);
	const char *ihcl = call_hdr(c, CALL_H_IHCL);
	char *end;
	unsigned long long hl;

	if (api_is_msgpack(call_hdr(c, CALL_H_CONTENT_TYPE)))
		return mp_parse_infer(m, body, len, ki, NULL, err, errlen);
	if (!ihcl)
		return ks_parse_infer(m, body, len, NULL, 0, ki, err, errlen);
	errno = 0;
	hl = strtoull(ihcl, &end, 10);
	memset(ki, 0, sizeof(*ki));
	/* Digits only: strtoull would take "-5" and cap "9999...9" silently. */
	if (*end || end == ihcl || !isdigit((unsigned char)ihcl[0]) || errno) {
		snprintf(err, errlen, "Inference-Header-Content-Length: expected a byte count, got \"%s\"",
			 ihcl);
		return 400;
	}
	if (hl > len) {
		snprintf(err, errlen, "Inference-Header-Content-Length: %llu is past the end of the "
			 "%zu-byte body", hl, len);
		return 400;
	}
	return ks_parse_infer(m, body, hl, body + hl, len - hl, ki, err, errlen);
}

/*
 * Admission before parsing, at now: when the body sets no `parameters` (so the
 * headers and the model decide priority and deadline), a request that even
 * as one row could not be admitted is answered 429 without spending a JSON
 * parse on it -- under overload most of the loop's CPU would otherwise go to
 * requests that are turned away.  true when c was answered; else adm holds
 * the decision for front_submit (one admission pass if nothing changed),
 * and e the priority and objective of a body without parameters
 * (e->known), which api_infer reuses rather than work them out again.
 */
struct api_early {
	bool known;
	int prio;
	uint64_t objective;
};

/*
 * Whether the body holds "parameters" anywhere.  A body in one piece (the
 * usual) is scanned with memchr for its 'm', the rarest of its bytes in
 * KServe JSON ("name"), each hit checked in place; else evbuffer_search.
 */
static bool api_body_has_parameters(struct evbuffer *body, size_t len)
{
	static const char key[] = "parameters";
	enum { KLEN = sizeof(key) - 1, AT = 4 };	/* key[AT] == 'm' */
	struct evbuffer_iovec v;
	const char *p, *end, *q;

	if (evbuffer_peek(body, -1, NULL, &v, 1) != 1 || v.iov_len != len)
		return evbuffer_search(body, key, KLEN, NULL).pos >= 0;
	p = v.iov_base;
	end = p + len;
	for (q = p + AT; q < end && (q = memchr(q, 'm', (size_t)(end - q))); q++)
		if ((size_t)(end - q) >= KLEN - AT && !memcmp(q - AT, key, KLEN))
			return true;
	return false;
}

/*
 * Bodies up to this size are read in microseconds (~3 ns a byte of JSON
 * numbers): the clock read before reading one still stands when it is
 * queued.  One vDSO clock read (~30 ns in a VM) is ~1% of a small
 * request's CPU.  A larger body reads the clock again.
 */
#define API_CLOCK_BODY_BYTES 16384

static bool api_reject_early(struct call *c, const struct model *m, struct rt_admission *adm,
			     struct api_early *e, uint64_t now)
{
	size_t len = evbuffer_get_length(c->body);
	struct ks_infer none = { 0 };
	struct infer_req r;
	int st;

	if (len == 0 || api_body_has_parameters(c->body, len))
		return false;	/* the body may change priority or deadline */
	if (api_objective(c, m, &none, &e->prio, &e->objective)) {
		api_count_error(c, m);
		return true;	/* a bad x-priority / x-slo-ms: answered 400 */
	}
	e->known = true;
	st = front_precheck(c->rt, &r, m, e->prio, c->start_ns, e->objective, now, adm);
	if (st != 429)
		return false;	/* 503 and friends: let the full path say it */
	api_infer_error(c, &r, st);
	return true;
}

static void api_infer(struct call *c, const struct model *m)
{
	struct rt_admission adm = { 0 };	/* the precheck's decision, if it ran */
	struct api_early early = { 0 };
	struct api_infer *ai;
	struct ks_infer ki;
	uint64_t objective;
	/* One clock read for the admission and the queue; a body that takes
	 * long to read (API_CLOCK_BODY_BYTES) reads it again for the queue. */
	uint64_t now = now_ns();
	size_t body_len = evbuffer_get_length(c->body);
	char err[512];
	int st, prio;

	if (api_reject_early(c, m, &adm, &early, now))
		return;
	st = api_parse_body(c, m, &ki, err, sizeof(err));
	if (st) {
		api_count_error(c, m);
		call_respond_error(c, st, "%s", err);
		return;
	}
	/* Decoded input (JSON, msgpack): the body's bytes are spent.  Its
	 * chain goes back to the loop's lists now, warm for the next body,
	 * rather than held (a 2 KiB block) while the request waits. */
	if (ki.owned)
		evbuffer_drain(c->body, body_len);
	/* The body set neither (a "parameters" spelled with escapes may have):
	 * the same hints as the early pass, the same answer. */
	if (early.known && !ki.priority && !ki.timeout_us) {
		prio = early.prio;
		objective = early.objective;
	} else if (api_objective(c, m, &ki, &prio, &objective)) {
		api_count_error(c, m);
		ks_infer_free(&ki);
		return;
	}
	ai = call_api_new(c, sizeof(*ai));
	if (!ai) {
		api_count_error(c, m);
		ks_infer_free(&ki);
		call_respond_error(c, 503, "gateway out of memory");
		return;
	}
	memcpy(ai->id, ki.id, sizeof(ai->id));
	ai->has_id = ki.has_id;
	ai->binary_output = ki.binary_output;
	ai->msgpack_output = call_accepts_msgpack(c);
	ai->class_count = ki.class_count;
	c->req = api_new_req(c, m, &ki, prio, objective);
	if (!c->req) {
		api_count_error(c, m);
		call_respond_error(c, 503, "gateway out of memory");
		return;
	}
	if (body_len > API_CLOCK_BODY_BYTES)
		now = now_ns();
	st = front_submit(c->rt, c->req, &adm, now);
	if (st)
		api_infer_error(c, c->req, st);
	else
		c->async = true;
}

/* The variants m serves, for its metadata and config (issue 15). */
static void api_variants(const struct runtime *rt, const struct model *m, struct ks_variants *v)
{
	const struct model_conf *mc = rt_model_conf(rt, m);
	int vs[KS_VARIANTS_MAX];

	v->n = rt_variants(rt, m, vs, NULL, v->hosts);
	for (int i = 0; i < v->n; i++)
		v->name[i] = model_variant_name(vs[i]);
	v->policy = cfg_variant_policy_name(mc ? mc->variant_policy : CFG_VARPOL_ACCURATE);
}

void api_encode_config(struct evbuffer *out, const struct runtime *rt, const struct model *m)
{
	const struct backend_conf *hosts[64];
	int n = 0;

	for (int i = 0; i < rt->n_backends && n < (int)ARRAY_SIZE(hosts); i++) {
		const struct rt_backend *rb = rt->backends[i];

		for (int k = 0; k < rb->n_models; k++)
			if (rb->models[k]->m == m) {
				hosts[n++] = &rb->be.conf;
				break;
			}
	}
	struct ks_variants v;

	api_variants(rt, m, &v);
	ks_encode_config_variants(out, m, rt_model_conf(rt, m),
				  rt->cfg->routing.priority_levels, hosts, n, &v);
}

/* Triton's model configuration extension: GET /v2/models/{m}/config. */
static void api_model_config(struct call *c, const struct model *m)
{
	api_encode_config(c->resp, c->rt, m);
	call_respond(c, 200, JSON);
}

/*
 * The per-model endpoints of Triton's extensions (action after the model
 * and version): /config, /stats.  false when action is none of them.
 */
static bool api_model_extension(struct call *c, const struct model *m, const char *action)
{
	if (util_streq(action, "/config")) {
		if (call_allow(c, "GET"))
			api_model_config(c, m);
	} else if (util_streq(action, "/stats")) {
		if (call_allow(c, "GET")) {
			stats_encode(c->resp, c->rt, m);
			call_respond(c, 200, JSON);
		}
	} else {
		return false;
	}
	return true;
}

/* The end of the path segment at s: its '/' or the path's NUL. */
static const char *api_segment_end(const char *s)
{
	while (*s && *s != '/')
		s++;
	return s;
}

/*
 * /v2/models/{m}[/versions/{v}][/ready|/infer|/config|/stats]: split rest (after
 * "/v2/models/") into the model and the action.
 */
static void api_models(struct call *c, const char *rest)
{
	char name[256], ver[32] = "";
	const char *slash = api_segment_end(rest), *action, *v;
	struct model *m;

	if ((size_t)(slash - rest) >= sizeof(name) || slash == rest)
		goto not_found;
	memcpy(name, rest, slash - rest);
	name[slash - rest] = 0;
	action = slash;
	if ((v = util_prefix(action, "/versions/"))) {
		const char *e = api_segment_end(v);

		if (e == v || (size_t)(e - v) >= sizeof(ver))
			goto not_found;	/* "/versions//..." names no version */
		memcpy(ver, v, e - v);
		ver[e - v] = 0;
		action = e;
	}
	m = rt_find_model(c->rt, name);
	if (!m) {
		call_respond_error(c, 404, "unknown model \"%s\"", name);
		return;
	}
	if (ver[0] && atoi(ver) != m->version) {
		call_respond_error(c, 404, "model \"%s\" has no version \"%s\" (serving %d)", name,
				   ver, m->version);
		return;
	}
	if (!*action) {
		if (!call_allow(c, "GET"))
			return;
		struct ks_variants v;

		api_variants(c->rt, m, &v);
		ks_encode_model_variants(c->resp, m, &v);
		call_respond(c, 200, JSON);
	} else if (util_streq(action, "/ready")) {
		bool ok;

		if (!call_allow(c, "GET"))
			return;
		ok = rt_model_ready(c->rt, m);
		evbuffer_add_printf(c->resp, "{\"name\":");
		ks_put_str(c->resp, m->name);
		evbuffer_add_printf(c->resp, ",\"ready\":%s}", ok ? "true" : "false");
		call_respond(c, ok ? 200 : 503, JSON);
	} else if (util_streq(action, "/infer")) {
		if (call_allow(c, "POST"))
			api_infer(c, m);
	} else if (!api_model_extension(c, m, action)) {
		goto not_found;
	}
	return;
not_found:
	call_respond_error(c, 404, "no route for %s %s", c->method, c->path);
}

static void api_route(struct call *c)
{
	const char *p = c->path, *rest;

	if (c->admin) {
		adm_handle(c);
		return;
	}
	if (c->grpc) {		/* HTTP/2 with content-type application/grpc */
		grpc_handle(c);
		return;
	}
	/* inference first: most requests are */
	if ((rest = util_prefix(p, "/v2/models/")) && !util_streq(rest, "stats")) {
		api_models(c, rest);
	} else if (util_streq(p, "/v2/health/live")) {
		if (call_allow(c, "GET"))
			call_respond_json(c, 200, "{\"live\":true}");
	} else if (util_streq(p, "/v2/health/ready")) {
		if (call_allow(c, "GET"))
			api_ready(c);
	} else if (util_streq(p, "/v2") || util_streq(p, "/v2/")) {
		if (call_allow(c, "GET"))
			api_server_meta(c);
	} else if (util_streq(p, "/v2/models/stats")) {
		/* Triton's statistics extension, every model (not a model's name) */
		if (call_allow(c, "GET")) {
			stats_encode(c->resp, c->rt, NULL);
			call_respond(c, 200, JSON);
		}
	} else if (util_prefix(p, "/v2/repository/")) {
		adm_repository(c);	/* a control-thread job, answered on this loop */
	} else {
		call_respond_error(c, 404, "no route for %s %s", c->method, p);
	}
}

/* Route c; pinned, so handlers may read c after answering it. */
void api_handle(struct call *c)
{
	call_pin(c);
	if (call_decode_body(c) == 0)	/* Content-Encoding: gzip, deflate */
		api_route(c);
	call_unpin(c);
}
