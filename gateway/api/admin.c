/* admin.c - see admin.h. */
#define _GNU_SOURCE
#include "admin.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "api.h"
#include "autoscale.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "model/model.h"
#include "runtime.h"
#include "secret.h"
#include "util.h"

/* Take ownership of j and answer c with it (pretty JSON for people).  j
 * may be NULL (a json_pack that failed): 500, never a crash. */
static void adm_json(struct call *c, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;

	json_decref(j);
	if (!s) {
		call_respond_error(c, 500, "cannot encode the answer as JSON");
		return;
	}
	evbuffer_add(c->resp, s, strlen(s));
	evbuffer_add(c->resp, "\n", 1);
	free(s);
	call_respond(c, status, "application/json");
}

enum adm_stat { STAT_BATCHES, STAT_ROWS, STAT_BUSY, STAT_INLINE };

/* One counter family over every backend's stats. */
static void adm_backend_counter(struct call *c, enum adm_stat which, const char *what,
				const char *help)
{
	const struct runtime *rt = c->rt;

	evbuffer_add_printf(c->resp, "# HELP infergw_backend_%s_total %s\n"
				     "# TYPE infergw_backend_%s_total counter\n", what, help, what);
	for (int i = 0; i < rt->n_backends; i++) {
		const struct backend *be = &rt->backends[i]->be;
		struct backend_stats st = { 0 };
		double v;
		char *b;

		if (be->ops)
			be->ops->stats(be, &st);
		v = which == STAT_BATCHES ? (double)st.batches :
		    which == STAT_ROWS ? (double)st.rows :
		    which == STAT_INLINE ? (double)st.inline_batches : st.busy_ns / 1e9;
		b = met_label_escape(be->conf.name);
		if (b)
			evbuffer_add_printf(c->resp,
					    "infergw_backend_%s_total{backend=\"%s\"} %.17g\n",
					    what, b, v);
		free(b);
	}
}

/* Gauges read from the schedulers of the current snapshot. */
static void adm_queue_gauges(struct call *c)
{
	const struct runtime *rt = c->rt;

	evbuffer_add_printf(c->resp, "# HELP infergw_queue_depth Requests waiting.\n"
				     "# TYPE infergw_queue_depth gauge\n"
				     "# HELP infergw_batch_limit Effective max batch (adaptive).\n"
				     "# TYPE infergw_batch_limit gauge\n"
				     "# HELP infergw_service_time_seconds Predicted batch execution time.\n"
				     "# TYPE infergw_service_time_seconds gauge\n");
	for (int i = 0; i < rt->n_backends; i++) {
		struct rt_backend *rb = rt->backends[i];

		for (int q = 0; rb->started && q < rb->sched.n_q; q++) {
			struct sched_q *sq = &rb->sched.qs[q];
			char *b = met_label_escape(rb->be.conf.name);
			char *m = met_label_escape(sq->model->name);
			/* a model with variants has a queue per variant: its series says which */
			const char *var = sq->met && sq->met->variant ? sq->met->variant : NULL;
			char lv[48] = "";

			if (!b || !m) {
				free(b);
				free(m);
				continue;
			}
			if (var)
				snprintf(lv, sizeof(lv), ",variant=\"%s\"", var);
			evbuffer_add_printf(c->resp,
				"infergw_queue_depth{backend=\"%s\",model=\"%s\"%s} %d\n"
				"infergw_batch_limit{backend=\"%s\",model=\"%s\"%s} %d\n",
				b, m, lv, atomic_load(&sq->depth), b, m, lv,
				atomic_load(&sq->eff_max_batch));
			for (int rows = 1; rows <= sq->max_batch; rows *= 4) {
				struct router_cand v;

				sched_view(&rb->sched, q, rows, 1, 0, &v);
				evbuffer_add_printf(c->resp,
					"infergw_service_time_seconds{backend=\"%s\",model=\"%s\"%s,rows=\"%d\"} %.9f\n",
					b, m, lv, rows, v.exec_ns / 1e9);
			}
			free(b);
			free(m);
		}
	}
	evbuffer_add_printf(c->resp, "# HELP infergw_backend_up 1 when the backend takes requests.\n"
				     "# TYPE infergw_backend_up gauge\n");
	for (int i = 0; i < rt->n_backends; i++) {
		char *b = met_label_escape(rt->backends[i]->be.conf.name);

		if (b)
			evbuffer_add_printf(c->resp, "infergw_backend_up{backend=\"%s\"} %d\n", b,
					    be_state_get(&rt->backends[i]->be) == BE_UP &&
						    !atomic_load(&rt->backends[i]->draining));
		free(b);
	}
}

static const char *adm_state(const struct rt_backend *rb);

/* The four states a backend exports (a drained one is still draining). */
static const char *const adm_states[] = { "up", "down", "draining", "ejected" };

/* A backend's stats, zeroed when it never opened. */
static void adm_stats(const struct rt_backend *rb, struct backend_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (rb->be.ops && rb->be.ops->stats)
		rb->be.ops->stats(&rb->be, st);
}

/* infergw_backend_state (one gauge per state, 1 for the current one),
 * infergw_backend_rtt_seconds (remote), infergw_backend_ejections_total. */
static void adm_state_gauges(struct call *c)
{
	const struct runtime *rt = c->rt;
	struct evbuffer *o = c->resp;
	struct backend_stats *st = calloc((size_t)rt->n_backends + 1, sizeof(*st));
	char **names = calloc((size_t)rt->n_backends + 1, sizeof(*names));

	if (!st || !names)
		goto out;
	for (int i = 0; i < rt->n_backends; i++) {
		names[i] = met_label_escape(rt->backends[i]->be.conf.name);
		adm_stats(rt->backends[i], &st[i]);
	}
	/* each family's samples together, as the exposition format wants */
	evbuffer_add_printf(o, "# HELP infergw_backend_state 1 for the backend's current state "
			       "(up, down, draining, ejected).\n# TYPE infergw_backend_state gauge\n");
	for (int i = 0; i < rt->n_backends; i++) {
		const char *now = adm_state(rt->backends[i]);

		if (!strcmp(now, "drained"))
			now = "draining";
		for (size_t k = 0; names[i] && k < sizeof(adm_states) / sizeof(adm_states[0]); k++)
			evbuffer_add_printf(o, "infergw_backend_state{backend=\"%s\",state=\"%s\"} "
					    "%d\n", names[i], adm_states[k], !strcmp(now, adm_states[k]));
	}
	evbuffer_add_printf(o, "# HELP infergw_backend_rtt_seconds Smoothed network round trip "
			       "to a remote agent.\n# TYPE infergw_backend_rtt_seconds gauge\n");
	for (int i = 0; i < rt->n_backends; i++)
		if (names[i] && st[i].has_rtt)
			evbuffer_add_printf(o, "infergw_backend_rtt_seconds{backend=\"%s\"} %.9f\n",
					    names[i], st[i].rtt_ns / 1e9);
	evbuffer_add_printf(o, "# HELP infergw_backend_ejections_total Outlier ejections.\n"
			       "# TYPE infergw_backend_ejections_total counter\n");
	for (int i = 0; i < rt->n_backends; i++)
		if (names[i])
			evbuffer_add_printf(o, "infergw_backend_ejections_total{backend=\"%s\"} "
					    "%llu\n", names[i], (unsigned long long)st[i].ejections);
out:
	for (int i = 0; names && i < rt->n_backends; i++)
		free(names[i]);
	free(names);
	free(st);
}

static void adm_metrics(struct call *c)
{
	int n;
	struct met_series **series = met_all(&n);

	if (!series) {
		call_respond_error(c, 503, "gateway out of memory");
		return;
	}
	access_metrics(c->resp);
	met_render_hooks(c->resp);
	met_render(c->resp, series, n);
	free(series);
	adm_queue_gauges(c);
	adm_state_gauges(c);
	asc_render(c->resp, c->rt, now_ns());	/* the autoscaling signal per pool */
	adm_backend_counter(c, STAT_BATCHES, "batches", "Batches executed.");
	adm_backend_counter(c, STAT_ROWS, "rows", "Rows (samples) executed.");
	adm_backend_counter(c, STAT_BUSY, "busy_seconds", "Seconds spent executing batches.");
	adm_backend_counter(c, STAT_INLINE, "inline_batches",
			    "Batches run on the thread that submitted them (cpu inline_us).");
	call_respond(c, 200, "text/plain; version=0.0.4");
}

static const char *adm_state(const struct rt_backend *rb)
{
	if (!rb->be.ops || !rb->started)
		return "down";
	if (atomic_load(&rb->draining)) {
		for (int q = 0; q < rb->sched.n_q; q++)
			if (atomic_load(&rb->sched.qs[q].depth))
				return "draining";
		return "drained";
	}
	switch (be_state_get(&rb->be)) {	/* set by the backend or health checks */
	case BE_DOWN: return "down";
	case BE_EJECTED: return "ejected";
	case BE_DRAINING: return "draining";
	default: return "up";
	}
}

static json_t *adm_backend_json(const struct runtime *rt, int i)
{
	struct rt_backend *rb = rt->backends[i];
	json_t *models = json_array();

	for (int q = 0; rb->started && q < rb->sched.n_q; q++) {
		struct sched_q *sq = &rb->sched.qs[q];
		struct router_cand v1, vn;
		json_t *cal = json_array();

		sched_view(&rb->sched, q, 1, 1, 0, &v1);
		sched_view(&rb->sched, q, sq->max_batch, 1, 0, &vn);
		for (int p = 1; p <= rt->cfg->routing.priority_levels; p++)
			json_array_append_new(cal, json_real(sched_wait_factor(&rb->sched, q, p)));
		json_t *mq = json_pack(
			"{s:s, s:i, s:i, s:i, s:{s:f, s:f}, s:o}", "model", sq->model->name,
			"queue_depth", atomic_load(&sq->depth), "max_batch", sq->max_batch,
			"batch_limit", atomic_load(&sq->eff_max_batch), "service_time_us",
			"batch_1", v1.exec_ns / 1e3, "batch_max", vn.exec_ns / 1e3,
			"wait_calibration", cal);

		/* a model with variants: one queue each, with its own service time */
		if (mq && sq->met && sq->met->variant)
			json_object_set_new(mq, "variant", json_string(sq->met->variant));
		json_array_append_new(models, mq);
	}
	struct backend_stats st;
	const char *state = adm_state(rb);
	const char *reason = NULL;

	adm_stats(rb, &st);
	if (rb->down_reason[0])
		reason = rb->down_reason;
	else if (st.reason[0] && (!strcmp(state, "down") || !strcmp(state, "ejected")))
		reason = st.reason;
	return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o, s:I, s:f, s:i, s:i, s:o}",
			 "name", rb->be.conf.name,
			 "kind", rb->be.ops ? rb->be.ops->kind : "unavailable",
			 "state", state, "reason", reason,
			 "address", st.address[0] ? st.address : rb->be.conf.address,
			 "rtt_us", st.has_rtt ? json_real(st.rtt_ns / 1e3) : json_null(),
			 "ejections", (json_int_t)st.ejections,
			 "cost", rt->cfg->backends[i].cost, "workers", rb->be.conf.slots,
			 "credits", rb->be.credits, "models", models);
}

static void adm_backends(struct call *c)
{
	json_t *arr = json_array();

	for (int i = 0; i < c->rt->n_backends; i++)
		json_array_append_new(arr, adm_backend_json(c->rt, i));
	adm_json(c, 200, json_pack("{s:I, s:o}", "generation", (json_int_t)c->rt->generation,
				   "backends", arr));
}

static void adm_drain(struct call *c, const char *name)
{
	struct rt_backend *rb = rt_find_backend(c->rt, name);

	if (!rb) {
		call_respond_error(c, 404, "unknown backend \"%s\"", name);
		return;
	}
	rt_drain(rb);
	log_info("backend=%s msg=\"draining: no new requests; queued ones finish\"", name);
	adm_json(c, 200, json_pack("{s:s, s:s}", "backend", name, "state", adm_state(rb)));
}

static const struct adm_jobs *adm_jobs;
/* The admin listener's port (-1: none), for the 403 that points there. */
static _Atomic int adm_port = -1;

void adm_set_port(int port)
{
	atomic_store_explicit(&adm_port, port, memory_order_relaxed);
}

void adm_set_jobs(const struct adm_jobs *jobs)
{
	adm_jobs = jobs;
}

/* On the loop again: answer the call that started the job. */
static void adm_job_done(struct adm_job *j)
{
	struct call *c = j->ctx;

	c->async = false;
	if (call_detached(c)) {
		call_free(c);
	} else if (!j->body) {
		call_respond_error(c, 503, "gateway out of memory");	/* adds Retry-After */
	} else {
		if (j->status == 503)
			call_set_resp_header(c, "retry-after", "1");
		evbuffer_add(c->resp, j->body, strlen(j->body));
		call_respond(c, j->status, "application/json");
	}
	free(j->body);
	free(j);
}

/*
 * Hand op to the control thread; the answer comes on this loop.  The job
 * reads the body in place: c (and so c->body) lives until adm_job_done,
 * even when the client goes away (api_abandon detaches c), and nothing on
 * the loop touches a complete body.
 */
static bool adm_job_to(struct call *c, enum adm_op op, const char *arg,
		       void (*done)(struct adm_job *j))
{
	struct adm_job *j = calloc(1, sizeof(*j));

	if (!j) {
		call_respond_error(c, 503, "gateway out of memory");
		return false;
	}
	j->done = done;
	j->loop = c->loop;
	j->op = op;
	snprintf(j->arg, sizeof(j->arg), "%s", arg ? arg : "");
	j->req_len = evbuffer_get_length(c->body);
	j->req = (const char *)evbuffer_pullup(c->body, -1);
	j->untrusted = !c->admin;
	j->ctx = c;
	if (!adm_jobs || adm_jobs->submit(j)) {
		free(j);
		call_respond_error(c, 503, "gateway out of memory");
		return false;
	}
	c->async = true;
	return true;
}

static void adm_job(struct call *c, enum adm_op op, const char *arg)
{
	adm_job_to(c, op, arg, adm_job_done);
}

/* Refusal lines: one per 10 s at most, whoever keeps guessing; every
 * refusal counts in infergw_http_responses_total{code="401"}. */
static struct log_limit adm_refused;

/* Answer c 401 with answer (naming what is wrong), and log reason (a few
 * words, no quotes) unless a refusal was logged within 10 s. */
static void adm_refuse(struct call *c, const char *reason, const char *answer)
{
	uint64_t held;

	if (log_limit_ok(&adm_refused, now_ns(), 10000000000ull, &held))
		log_warn("method=%s path=\"%s\" listener=%s msg=\"refused (401): %s; more refusals "
			 "within 10 s are only counted (infergw_http_responses_total, code 401)\"",
			 c->method, c->path, c->admin ? "admin" : "main", reason);
	call_set_resp_header(c, "www-authenticate", "Bearer realm=\"infergw-admin\"");
	call_respond_error(c, 401, "%s", answer);
}

/*
 * With admin.token_file set, what changes or shows the configuration (the
 * /admin/ endpoints and the repository API on the admin listener,
 * load/unload on the inference port) asks for "Authorization: Bearer
 * <its token>" (the scheme in any case, RFC 9110 §11.1).  true when c may
 * go on (no token set, or c carries it); else c was answered 401 with
 * WWW-Authenticate.
 */
static bool adm_authorized(struct call *c)
{
	const char *want = c->rt->cfg->admin.token, *h = call_header(c, "authorization");

	if (!want)
		return true;
	if (!h) {
		adm_refuse(c, "no authorization header",
			   "this endpoint needs \"Authorization: Bearer <token>\", the token in "
			   "the file admin.token_file names");
		return false;
	}
	if (strncasecmp(h, "bearer ", 7)) {
		adm_refuse(c, "authorization not of the Bearer scheme",
			   "authorization: expected the Bearer scheme (\"Bearer <token>\")");
		return false;
	}
	for (h += 7; *h == ' '; h++)
		;
	if (!be_secret_accepts(want, h, strlen(h))) {
		adm_refuse(c, "wrong bearer token",
			   "authorization: wrong bearer token (not the one in admin.token_file)");
		return false;
	}
	return true;
}

/*
 * Load and unload on the inference port only where the operator allowed
 * it: anyone who reaches that port could otherwise change what is served.
 * true when c may go on; else c was answered 403, naming where to go.
 */
static bool adm_repository_allowed(struct call *c)
{
	const struct config *cfg = c->rt->cfg;
	int port = atomic_load_explicit(&adm_port, memory_order_relaxed);

	if (c->admin)
		return true;	/* adm_handle asked for the token */
	if (cfg->admin.repository_on_main)
		return adm_authorized(c);
	if (port < 0)
		call_respond_error(c, 403, "model load/unload is served on the admin listener, "
				   "which is disabled (admin.port: -1); set "
				   "admin.repository_on_main: true to allow it here");
	else
		call_respond_error(c, 403, strchr(cfg->admin.address, ':') ?
				   "model load/unload is served on the admin listener [%s]:%d; set "
				   "admin.repository_on_main: true to allow it here" :
				   "model load/unload is served on the admin listener %s:%d; set "
				   "admin.repository_on_main: true to allow it here",
				   cfg->admin.address, port);
	return false;
}

/* /v2/repository/models/{m}/load|unload */
static void adm_repository_model(struct call *c, const char *rest)
{
	const char *slash = strrchr(rest, '/');
	char name[256];

	if (!slash || slash == rest || (size_t)(slash - rest) >= sizeof(name)) {
		call_respond_error(c, 404, "no route for %s %s", c->method, c->path);
		return;
	}
	memcpy(name, rest, slash - rest);
	name[slash - rest] = 0;
	if (strcmp(slash, "/load") && strcmp(slash, "/unload")) {
		call_respond_error(c, 404, "no route for %s %s", c->method, c->path);
		return;
	}
	if (call_allow(c, "POST") && adm_repository_allowed(c))
		adm_job(c, strcmp(slash, "/load") ? ADM_UNLOAD_MODEL : ADM_LOAD_MODEL, name);
}

bool adm_repository_job(struct call *c, enum adm_op op, const char *name,
			void (*done)(struct adm_job *j))
{
	if (op != ADM_INDEX && !adm_repository_allowed(c))
		return false;
	return adm_job_to(c, op, name, done);
}

void adm_repository(struct call *c)
{
	const char *p = c->path;

	if (!strcmp(p, "/v2/repository/index")) {
		if (call_allow(c, "POST"))
			adm_job(c, ADM_INDEX, NULL);
	} else if (!strncmp(p, "/v2/repository/models/", 22)) {
		adm_repository_model(c, p + 22);
	} else {
		call_respond_error(c, 404, "no route for %s %s", c->method, p);
	}
}

/* /admin/backends/{name}/drain */
static void adm_backend_action(struct call *c, const char *rest)
{
	const char *slash = strchr(rest, '/');
	char name[256];

	if (!slash || strcmp(slash, "/drain") || (size_t)(slash - rest) >= sizeof(name)) {
		call_respond_error(c, 404, "no route for %s %s", c->method, c->path);
		return;
	}
	memcpy(name, rest, slash - rest);
	name[slash - rest] = 0;
	if (call_allow(c, "POST"))
		adm_drain(c, name);
}

/* What the admin listener serves to anyone who reaches it, token or not:
 * Prometheus's scrape and the kubelet's probes (nothing changes, no
 * configuration shows). */
static bool adm_open_path(const char *p)
{
	return !strcmp(p, "/metrics") || !strcmp(p, "/v2/health/live") ||
	       !strcmp(p, "/v2/health/ready");
}

void adm_handle(struct call *c)
{
	const char *p = c->path;

	if (!adm_open_path(p) && !adm_authorized(c))
		return;
	if (!strcmp(p, "/metrics")) {
		if (call_allow(c, "GET"))
			adm_metrics(c);
	} else if (!strcmp(p, "/v2/health/live")) {
		if (call_allow(c, "GET"))
			call_respond_json(c, 200, "{\"live\":true}");
	} else if (!strcmp(p, "/v2/health/ready")) {
		if (call_allow(c, "GET"))
			api_ready(c);
	} else if (!strcmp(p, "/admin/config")) {
		if (call_allow(c, "GET"))
			adm_json(c, 200, cfg_to_json(c->rt->cfg));
	} else if (!strcmp(p, "/admin/backends")) {
		if (call_allow(c, "GET"))
			adm_backends(c);
	} else if (!strncmp(p, "/admin/backends/", 16)) {
		adm_backend_action(c, p + 16);
	} else if (!strcmp(p, "/admin/reload")) {
		if (call_allow(c, "POST"))
			adm_job(c, ADM_RELOAD, NULL);
	} else if (!strncmp(p, "/v2/repository/", 15)) {
		adm_repository(c);
	} else {
		call_respond_error(c, 404, "no route for %s %s on the admin listener", c->method, p);
	}
}
