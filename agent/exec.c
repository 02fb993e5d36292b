/*
 * exec.c - the agent's execution (agt_exec_): models, one CPU backend, the
 * FIFO of batches waiting for a credit, deadlines and cancellation.
 *
 * Credits.  The CPU backend takes at most `threads` batches at once (one
 * per worker slot, backend.h); the agent keeps that accounting itself, as
 * the gateway's scheduler does: a batch is submitted only with a free slot,
 * the rest wait here in arrival order, all connections together.  Waiting
 * here rather than in the backend's own queue is what makes cancel exact
 * (a queued batch is unlinked and never runs) and the reported q honest.
 *
 * Completions.  done() runs on a CPU worker: it only links the job on a
 * mutex-guarded list and activates an event; the loop thread resolves the
 * statuses, returns the credit, answers and submits the next batches.
 *
 * Deadlines.  A slice carries timeout_us, what was left of its deadline
 * when the gateway sent it; the absolute deadline is counted from receipt
 * here (the network time is the gateway's to budget).  be_slice_live, which
 * the CPU backend calls as a batch starts, says no to a cancelled or
 * expired slice and records why; a batch all of whose slices expired in
 * the queue is answered without taking a credit.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "gateway/core/log.h"
#include "model/model.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct agt_exec {
	struct backend be;
	bool be_open;
	bool closing;			/* no more submits: the backend is closing */
	struct model **models;
	struct agp_model *descs;	/* models[i] as hello announces it */
	int n_models;
	int threads;
	struct agt_credits credits;
	struct agt_fifo fifo;
	int running;			/* submitted, done not yet handled */
	uint32_t svc_us;		/* EWMA of batch execution time */
	agt_finish_fn finish;
	struct event *ev_done;
	pthread_mutex_t done_mu;
	struct agt_job *done_head;	/* LIFO from the workers; reversed on the loop */
};

/* ------------------------------------------------------- pure parts ---- */

void agt_fifo_push(struct agt_fifo *f, struct agt_job *j)
{
	j->next = NULL;
	j->prev = f->tail;
	if (f->tail)
		f->tail->next = j;
	else
		f->head = j;
	f->tail = j;
	f->len++;
}

void agt_fifo_remove(struct agt_fifo *f, struct agt_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		f->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		f->tail = j->prev;
	j->prev = j->next = NULL;
	f->len--;
}

struct agt_job *agt_fifo_pop(struct agt_fifo *f)
{
	struct agt_job *j = f->head;

	if (j)
		agt_fifo_remove(f, j);
	return j;
}

int agt_credits_init(struct agt_credits *c, int n)
{
	c->free = calloc((size_t)n, sizeof(*c->free));
	if (!c->free)
		return -ENOMEM;
	c->n = c->n_free = n;
	/* slot 0 on top: a lightly loaded agent keeps using the same buffers */
	for (int i = 0; i < n; i++)
		c->free[i] = n - 1 - i;
	return 0;
}

void agt_credits_fini(struct agt_credits *c)
{
	free(c->free);
	c->free = NULL;
	c->n = c->n_free = 0;
}

int agt_credits_take(struct agt_credits *c)
{
	return c->n_free > 0 ? c->free[--c->n_free] : -1;
}

void agt_credits_put(struct agt_credits *c, int slot)
{
	if (c->n_free < c->n)
		c->free[c->n_free++] = slot;
}

uint64_t agt_deadline(uint64_t recv_ns, uint64_t timeout_us)
{
	if (!timeout_us)
		return 0;
	if (timeout_us > (UINT64_MAX - recv_ns) / 1000)
		return UINT64_MAX;
	return recv_ns + timeout_us * 1000;
}

bool agt_expired(uint64_t deadline_ns, uint64_t now_ns)
{
	return deadline_ns && now_ns >= deadline_ns;
}

uint32_t agt_ewma(uint32_t avg_us, uint64_t sample_us)
{
	if (sample_us > UINT32_MAX)
		sample_us = UINT32_MAX;
	if (!sample_us)
		sample_us = 1;	/* 0 means "none yet" on the wire */
	if (!avg_us)
		return (uint32_t)sample_us;
	/* 1/8 new: smooth enough for routing, a few batches to follow a change */
	return (uint32_t)(((uint64_t)avg_us * 7 + sample_us) / 8);
}

/*
 * be_slice_live - backend.h: the gateway's scheduler implements it there;
 * here a slice is live when its batch was not cancelled and its deadline
 * has not passed.  Runs on the worker that starts the batch; the verdict
 * is read on the loop after done (the completion list's mutex orders it).
 */
bool be_slice_live(const struct infer_slice *sl)
{
	struct infer_req *r = sl->r;

	if (atomic_load_explicit(&r->job->cancelled, memory_order_acquire)) {
		r->why = 499;
		return false;
	}
	if (agt_expired(r->deadline_ns, be_now_ns())) {
		r->why = 504;
		return false;
	}
	r->why = 0;
	return true;
}

struct agt_job *agt_job_new(const struct agp_msg *m, const struct model *md,
			    uint8_t *payload, uint64_t recv_ns)
{
	size_t n = (size_t)m->n_slices;
	struct agt_job *j;
	size_t in_off = 0, out_off = 0;

	j = calloc(1, sizeof(*j) + n * (sizeof(*j->sl) + sizeof(*j->rq) + sizeof(*j->ps)));
	if (!j)
		goto out_free_payload;
	j->out = calloc((size_t)m->rows * (size_t)md->out_dim, sizeof(float));
	if (!j->out && m->rows)
		goto out_free_job;
	j->sl = (struct infer_slice *)(j + 1);
	j->rq = (struct infer_req *)(j->sl + n);
	j->ps = (struct agp_slice *)(j->rq + n);
	j->id = m->id;
	j->model = md;
	j->payload = payload;
	j->recv_ns = recv_ns;
	j->n_slices = m->n_slices;
	j->rows = (int)m->rows;
	atomic_init(&j->cancelled, false);
	for (size_t i = 0; i < n; i++) {
		uint32_t rows = m->slices[i].rows;

		j->rq[i] = (struct infer_req){ .job = j,
			.deadline_ns = agt_deadline(recv_ns, m->slices[i].timeout_us) };
		j->sl[i] = (struct infer_slice){
			.r = &j->rq[i], .row0 = 0, .rows = (int)rows,
			/* unaligned views into the frame: the backend memcpys */
			.input = (const float *)(m->data + in_off),
			.output = j->out + out_off,
			.status = AGT_SLICE_NOT_RUN,
		};
		j->ps[i] = (struct agp_slice){ .rows = rows };
		in_off += (size_t)rows * (size_t)md->in_dim * sizeof(float);
		out_off += (size_t)rows * (size_t)md->out_dim;
	}
	return j;

out_free_job:
	free(j);
out_free_payload:
	free(payload);
	return NULL;
}

void agt_job_free(struct agt_job *j)
{
	if (!j)
		return;
	free(j->payload);
	free(j->out);
	free(j);
}

void agt_job_resolve(struct agt_job *j)
{
	int failed = 0;

	for (int i = 0; i < j->n_slices; i++) {
		int st = j->sl[i].status;

		if (st == AGT_SLICE_NOT_RUN)
			st = j->rq[i].why ? j->rq[i].why : 500;
		else if (st != 0)
			failed = st;
		j->ps[i].status = st;
	}
	/* a slice the engine failed fails the batch: the gateway retries or
	 * answers it as a whole; skipped slices are per-slice answers */
	if (failed && !j->status) {
		j->status = failed;
		snprintf(j->msg, sizeof(j->msg), "%s",
			 j->b.errmsg[0] ? j->b.errmsg : "execution failed");
	}
}

/* ------------------------------------------------------- execution ---- */

/* Answer j now with status (for the batch and each slice) and msg. */
static void agt_exec_answer(struct agt_exec *x, struct agt_job *j, int32_t status,
			    const char *msg)
{
	j->status = status;
	snprintf(j->msg, sizeof(j->msg), "%s", msg ? msg : "");
	for (int i = 0; i < j->n_slices; i++)
		j->ps[i].status = status;
	j->state = AGT_JOB_DONE;
	x->finish(j);
}

/* True when every slice of j has a deadline that has passed at now. */
static bool agt_job_all_expired(const struct agt_job *j, uint64_t now)
{
	for (int i = 0; i < j->n_slices; i++)
		if (!agt_expired(j->rq[i].deadline_ns, now))
			return false;
	return true;
}

/* The exec a batch's backend belongs to (the backend is embedded). */
static struct agt_exec *agt_exec_of(struct backend *be)
{
	return (struct agt_exec *)((char *)be - offsetof(struct agt_exec, be));
}

/* batch->done, on a CPU worker: hand the job to the loop thread. */
static void agt_exec_done(struct batch *b)
{
	struct agt_exec *x = agt_exec_of(b->be);
	struct agt_job *j = b->owner;

	pthread_mutex_lock(&x->done_mu);
	j->dnext = x->done_head;
	x->done_head = j;
	pthread_mutex_unlock(&x->done_mu);
	event_active(x->ev_done, EV_READ, 0);
}

/* j left the FIFO: its connection stops counting it. */
static void agt_job_unqueued(struct agt_job *j)
{
	if (j->qc)
		(*j->qc)--;
	j->qc = NULL;
}

/* Start queued jobs while credits last. */
static void agt_exec_dispatch(struct agt_exec *x)
{
	struct agt_job *j;
	int slot, rc;

	while (!x->closing && x->credits.n_free > 0 && (j = x->fifo.head)) {
		uint64_t now = be_now_ns();

		agt_fifo_remove(&x->fifo, j);
		agt_job_unqueued(j);
		if (agt_job_all_expired(j, now)) {
			/* nothing to run: answer without taking a credit */
			for (int i = 0; i < j->n_slices; i++)
				j->rq[i].why = 504;
			j->start_ns = j->end_ns = now;
			j->state = AGT_JOB_DONE;
			agt_job_resolve(j);
			x->finish(j);
			continue;
		}
		slot = agt_credits_take(&x->credits);
		j->b = (struct batch){
			.model = j->model, .be = &x->be, .slot = slot, .n_slices = j->n_slices,
			.slices = j->sl, .rows = j->rows, .done = agt_exec_done, .topup = NULL,
			.owner = j,
		};
		j->state = AGT_JOB_RUNNING;
		j->start_ns = now;
		x->running++;
		rc = x->be.ops->submit(&x->be, &j->b);
		if (rc) {
			x->running--;
			agt_credits_put(&x->credits, slot);
			log_error("id=%llu model=%s msg=\"cannot start batch: %s\"",
				  (unsigned long long)j->id, j->model->name, strerror(-rc));
			agt_exec_answer(x, j, 500, "agent: cannot start the batch");
		}
	}
}

/* The loop's side of done: resolve, answer, give the credit back. */
static void agt_exec_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct agt_exec *x = arg;
	struct agt_job *list, *rev = NULL, *j;

	pthread_mutex_lock(&x->done_mu);
	list = x->done_head;
	x->done_head = NULL;
	pthread_mutex_unlock(&x->done_mu);
	while (list) {		/* completion order */
		j = list;
		list = j->dnext;
		j->dnext = rev;
		rev = j;
	}
	while ((j = rev)) {
		rev = j->dnext;
		x->running--;
		agt_credits_put(&x->credits, j->b.slot);
		j->start_ns = j->b.exec_start_ns ? j->b.exec_start_ns : j->start_ns;
		j->end_ns = j->b.exec_end_ns ? j->b.exec_end_ns : be_now_ns();
		if (j->b.exec_end_ns > j->b.exec_start_ns)
			x->svc_us = agt_ewma(x->svc_us,
					     (j->b.exec_end_ns - j->b.exec_start_ns) / 1000);
		j->state = AGT_JOB_DONE;
		agt_job_resolve(j);
		x->finish(j);
	}
	agt_exec_dispatch(x);
}

void agt_exec_submit(struct agt_exec *x, struct agt_job *j, int *qc)
{
	j->state = AGT_JOB_QUEUED;
	j->qc = qc;
	(*qc)++;
	agt_fifo_push(&x->fifo, j);
	agt_exec_dispatch(x);
}

void agt_exec_cancel(struct agt_exec *x, struct agt_job *j, bool answer)
{
	if (j->state == AGT_JOB_QUEUED) {
		agt_fifo_remove(&x->fifo, j);
		agt_job_unqueued(j);
		if (answer)
			agt_exec_answer(x, j, 499, "cancelled before it started");
		else
			agt_job_free(j);
		return;
	}
	/* running: the slices the worker has not started yet are skipped */
	atomic_store_explicit(&j->cancelled, true, memory_order_release);
}

struct agp_load agt_exec_load(const struct agt_exec *x, int qc)
{
	return (struct agp_load){ .q = (uint32_t)x->fifo.len, .qc = (uint32_t)qc,
				  .svc_us = x->svc_us };
}

int agt_exec_busy(const struct agt_exec *x)
{
	return x->fifo.len + x->running;
}

int agt_exec_models(const struct agt_exec *x, const struct agp_model **out)
{
	*out = x->descs;
	return x->n_models;
}

const struct model *agt_exec_find(const struct agt_exec *x, const char *name)
{
	for (int i = 0; i < x->n_models; i++)
		if (!strcmp(x->descs[i].name, name))
			return x->models[i];
	return NULL;
}

int agt_exec_threads(const struct agt_exec *x)
{
	return x->threads;
}

/* ------------------------------------------------------------ setup ---- */

/* Load dir/<name> when it holds a model.yaml; a failure is logged and the
 * model skipped (0: loaded or skipped, -ENOMEM: give up). */
static int agt_exec_load_one(struct agt_exec *x, const char *dir, const char *name)
{
	char path[PATH_MAX], yaml[PATH_MAX + 16];
	struct agp_model *d;
	struct model *m;
	struct stat st;
	char *err = NULL;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return 0;
	snprintf(yaml, sizeof(yaml), "%s/model.yaml", path);
	if (stat(yaml, &st) || !S_ISREG(st.st_mode))
		return 0;
	m = model_load(path, &err);
	if (!m) {
		log_error("model_dir=%s msg=\"skipped: %s\"", path, err ? err : "cannot load");
		free(err);
		return 0;
	}
	if (strlen(m->name) > AGP_NAME_MAX || agt_exec_find(x, m->name)) {
		log_error("model_dir=%s model=%s msg=\"skipped: %s\"", path, m->name,
			  agt_exec_find(x, m->name) ? "a model of that name is already served"
						    : "name too long for the protocol");
		model_free(m);
		return 0;
	}
	if (x->be.ops->load_model(&x->be, m, &err)) {
		log_error("model_dir=%s model=%s msg=\"skipped: %s\"", path, m->name,
			  err ? err : "the CPU backend cannot load it");
		free(err);
		model_free(m);
		return 0;
	}
	x->models[x->n_models] = m;
	d = &x->descs[x->n_models++];
	snprintf(d->name, sizeof(d->name), "%s", m->name);
	d->version = (uint32_t)m->version;
	d->in_dim = (uint32_t)m->in_dim;
	d->out_dim = (uint32_t)m->out_dim;
	d->max_batch = (uint32_t)m->max_batch_size;
	snprintf(d->dtype, sizeof(d->dtype), "%s", dtype_kserve_name(m->input.dtype));
	log_info("model=%s version=%d in_dim=%d out_dim=%d max_batch=%d msg=\"loaded\"",
		 m->name, m->version, m->in_dim, m->out_dim, m->max_batch_size);
	return 0;
}

struct agt_exec *agt_exec_open(void *base, const char *dir, const struct agt_opts *o,
			       agt_finish_fn finish, char **err)
{
	int threads = o->threads;
	struct backend_conf conf = {
		.name = "agent", .kind = o->backend, .slots = threads, .threads_per_slot = 1,
		.nice = 0, .device = o->device,
		.gpu = { .graphs = true },	/* max_batch 0: the backend's default */
	};
	const struct backend_ops *ops;
	struct dirent **ents = NULL;
	struct agt_exec *x;
	int n, i;

	x = calloc(1, sizeof(*x));
	if (!x)
		goto out_oom;
	x->threads = threads;
	x->finish = finish;
	pthread_mutex_init(&x->done_mu, NULL);
	x->ev_done = event_new(base, -1, 0, agt_exec_on_done, x);
	if (!x->ev_done || agt_credits_init(&x->credits, threads))
		goto out_oom_close;
	/* gpu: the plugin's (args.c refuses gpu in a build without CUDA) */
	ops = be_kind_ops(be_kind_of(o->backend), err);
	if (!ops)
		goto out_close;
	x->be.ops = ops;
	x->be.conf = conf;
	if (x->be.ops->open(&x->be, &x->be.conf, err))
		goto out_close;
	x->be_open = true;
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		*err = be_strdupf("--models %s: %s", dir, strerror(errno));
		goto out_close;
	}
	x->models = calloc((size_t)n + 1, sizeof(*x->models));
	x->descs = calloc((size_t)n + 1, sizeof(*x->descs));
	for (i = 0; i < n && x->models && x->descs; i++)
		if (ents[i]->d_name[0] != '.' && x->n_models < AGP_MAX_MODELS)
			agt_exec_load_one(x, dir, ents[i]->d_name);
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	if (!x->models || !x->descs)
		goto out_oom_close;
	if (!x->n_models) {
		*err = be_strdupf("--models %s: no model could be loaded (each model is a "
				  "subdirectory with a model.yaml; see the errors above)", dir);
		goto out_close;
	}
	return x;

out_oom_close:
	*err = be_strdupf("agent: out of memory");
out_close:
	agt_exec_close(x);
	return NULL;
out_oom:
	*err = be_strdupf("agent: out of memory");
	return NULL;
}

void agt_exec_close(struct agt_exec *x)
{
	struct agt_job *j;

	if (!x)
		return;
	x->closing = true;
	if (x->be_open)
		x->be.ops->close(&x->be);	/* joins the workers: every done() has run */
	if (x->ev_done)
		agt_exec_on_done(-1, 0, x);	/* answers go to connections still there */
	while ((j = agt_fifo_pop(&x->fifo)))
		agt_job_free(j);
	for (int i = 0; i < x->n_models; i++)
		model_free(x->models[i]);
	free(x->models);
	free(x->descs);
	agt_credits_fini(&x->credits);
	if (x->ev_done)
		event_free(x->ev_done);
	pthread_mutex_destroy(&x->done_mu);
	free(x);
}
