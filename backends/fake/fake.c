/*
 * fake.c - the fake asynchronous backend (fake.h), test-only kind "fake".
 *
 * One completion thread per backend holds the submitted batches in due
 * order (submit time + latency_us) and completes each when due:
 * output[row][j] = (j + 1) * sum of the row's inputs, or, every
 * fail_every-th batch (and every batch once down_after batches ran), all
 * slices BE_RETRY with nothing written.
 */
#define _GNU_SOURCE
#include "fake.h"

#include "backend.h"
#include "model/model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct be_fake {
	struct backend *be;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool stop;
	struct batch *head;		/* due order; due time in exec_start_ns */
	struct be_fake_ctl ctl;
	struct be_fake_counts n;
	int inflight;
};

int be_fake_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err)
{
	int64_t lat = 0, every = 0, down = 0, fp32 = 0;

	if (src->get_int(src->ctx, "latency_us", 0, 10000000, &lat, err) ||
	    src->get_int(src->ctx, "fail_every", 0, 1000000, &every, err) ||
	    src->get_int(src->ctx, "down_after", 0, 1000000, &down, err) ||
	    src->get_int(src->ctx, "fp32_only", 0, 1, &fp32, err))
		return -EINVAL;
	conf->fake_fp32_only = (int)fp32;
	conf->fake_latency_us = (int)lat;
	conf->fake_fail_every = (int)every;
	conf->fake_down_after = (int)down;
	return 0;
}

/* Run (or fail) b; lock held.  true when b is given back. */
static bool be_fake_exec(struct be_fake *f, struct batch *b)
{
	const struct model *m = b->model;
	bool fail;

	f->n.batches++;
	if (b->rows > f->n.max_rows)
		f->n.max_rows = b->rows;
	fail = (f->ctl.fail_every && f->n.batches % (uint64_t)f->ctl.fail_every == 0) ||
	       (f->ctl.down_after && f->n.batches > (uint64_t)f->ctl.down_after);
	if (f->ctl.down_after && f->n.batches >= (uint64_t)f->ctl.down_after)
		be_state_set(f->be, BE_DOWN);
	b->exec_start_ns = be_now_ns();
	for (int i = 0; i < b->n_slices; i++) {
		struct infer_slice *sl = &b->slices[i];

		if (!be_slice_live(sl)) {
			f->n.cancelled_seen++;	/* skipped, as the contract allows */
			continue;
		}
		if (fail) {
			sl->status = BE_RETRY;
			continue;
		}
		for (int row = 0; row < sl->rows; row++) {
			const float *in = sl->input + (size_t)row * m->in_dim;
			double sum = 0;

			for (int k = 0; k < m->in_dim; k++)
				sum += in[k];
			for (int j = 0; j < m->out_dim; j++)
				sl->output[(size_t)row * m->out_dim + j] = (float)((j + 1) * sum);
		}
		sl->status = 0;
		f->n.rows += (uint64_t)sl->rows;
	}
	if (fail) {
		f->n.retried++;
		snprintf(b->errmsg, sizeof(b->errmsg), "fake backend %s: retryable failure",
			 f->be->conf.name ? f->be->conf.name : "fake");
	}
	b->exec_end_ns = be_now_ns();
	return fail;
}

/* Complete b: done() last, nothing of b touched after (backend.h). */
static void be_fake_complete(struct be_fake *f, struct batch *b)
{
	bool topup;

	pthread_mutex_lock(&f->mu);
	topup = f->ctl.topup;
	pthread_mutex_unlock(&f->mu);
	/* Not under f->mu: topup takes the scheduler's lock, which is held
	 * around caps (lock order: scheduler, then fake). */
	if (topup && b->topup)
		b->topup(b);
	pthread_mutex_lock(&f->mu);
	be_fake_exec(f, b);
	f->inflight--;
	pthread_mutex_unlock(&f->mu);
	b->done(b);
}

static void *be_fake_main(void *arg)
{
	struct be_fake *f = arg;

	pthread_setname_np(pthread_self(), "igw-fake");
	pthread_mutex_lock(&f->mu);
	for (;;) {
		struct batch *b = f->head;
		uint64_t now = be_now_ns();

		if (!b) {
			if (f->stop)
				break;
			pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		if (b->exec_start_ns > now) {
			struct timespec ts = { .tv_sec = b->exec_start_ns / 1000000000ull,
					       .tv_nsec = b->exec_start_ns % 1000000000ull };

			pthread_cond_timedwait(&f->cv, &f->mu, &ts);
			continue;
		}
		f->head = b->be_next;
		pthread_mutex_unlock(&f->mu);
		be_fake_complete(f, b);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static int be_fake_open(struct backend *be, const struct backend_conf *conf, char **err)
{
	struct be_fake *f = calloc(1, sizeof(*f));
	pthread_condattr_t ca;

	if (!f)
		return -ENOMEM;
	f->be = be;
	f->ctl.latency_us = conf->fake_latency_us;
	f->ctl.fail_every = conf->fake_fail_every;
	f->ctl.down_after = conf->fake_down_after;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&f->thread, NULL, be_fake_main, f)) {
		pthread_cond_destroy(&f->cv);
		pthread_mutex_destroy(&f->mu);
		free(f);
		*err = strdup("fake backend: cannot start its thread");
		return -EAGAIN;
	}
	be->priv = f;
	be->credits = conf->slots > 0 ? conf->slots : 1;
	be_state_set(be, BE_UP);
	return 0;
}

static int be_fake_load_model(struct backend *be, const struct model *m, char **err)
{
	/* fp32_only: refuse INT8 as a GPU backend does when cuBLASLt cannot run a layer (variants' tests) */
	if (be->conf.fake_fp32_only && m->variant != VARIANT_FP32) {
		*err = be_strdupf("fake: model %s: variant %s not supported (fp32 only)", m->name,
				  model_variant_name(m->variant));
		return -ENOTSUP;
	}
	return 0;
}

static int be_fake_submit(struct backend *be, struct batch *b)
{
	struct be_fake *f = be->priv;
	struct batch **pp;
	bool sync;

	pthread_mutex_lock(&f->mu);
	if (f->ctl.refuse) {
		pthread_mutex_unlock(&f->mu);
		return -ENODEV;
	}
	if (++f->inflight > f->n.max_inflight)
		f->n.max_inflight = f->inflight;
	if (f->inflight > be->credits)
		f->n.violations++;
	sync = f->ctl.sync;
	if (!sync) {
		b->exec_start_ns = be_now_ns() + (uint64_t)f->ctl.latency_us * 1000;
		for (pp = &f->head; *pp && (*pp)->exec_start_ns <= b->exec_start_ns;
		     pp = &(*pp)->be_next)
			;
		b->be_next = *pp;
		*pp = b;
		pthread_cond_signal(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
	if (sync)
		be_fake_complete(f, b);
	return 0;
}

static void be_fake_caps(const struct backend *be, const struct model *m, struct be_caps *out)
{
	struct be_fake *f = be->priv;

	pthread_mutex_lock(&f->mu);
	out->max_batch = f->ctl.max_batch;
	out->n_preferred = f->ctl.n_preferred;
	for (int i = 0; i < f->ctl.n_preferred && i < 4; i++)
		out->preferred[i] = f->ctl.preferred[i];
	pthread_mutex_unlock(&f->mu);
}

static void be_fake_stats(const struct backend *be, struct backend_stats *out)
{
	struct be_fake *f = be->priv;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&f->mu);
	out->batches = f->n.batches;
	out->rows = f->n.rows;
	pthread_mutex_unlock(&f->mu);
	out->up = be_state_get(be) == BE_UP;
}

static int be_fake_view(const struct backend *be, struct be_load *out)
{
	struct be_fake *f = be->priv;

	/* Nothing queued that the scheduler cannot see: its batches in
	 * flight are the scheduler's own (be_load counts only hidden work). */
	pthread_mutex_lock(&f->mu);
	out->queue_depth = 0;
	out->service_ns = (uint64_t)f->ctl.latency_us * 1000;
	out->parallel = be->credits;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static void be_fake_close(struct backend *be)
{
	struct be_fake *f = be->priv;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
	be->priv = NULL;
	be_state_set(be, BE_DOWN);
}

void be_fake_set(struct backend *be, const struct be_fake_ctl *ctl)
{
	struct be_fake *f = be->priv;

	pthread_mutex_lock(&f->mu);
	f->ctl = *ctl;
	pthread_mutex_unlock(&f->mu);
}

void be_fake_counts(const struct backend *be, struct be_fake_counts *out)
{
	struct be_fake *f = be->priv;

	pthread_mutex_lock(&f->mu);
	*out = f->n;
	pthread_mutex_unlock(&f->mu);
}

const struct backend_ops be_fake_ops = {
	.kind = "fake",
	.open = be_fake_open,
	.load_model = be_fake_load_model,
	.caps = be_fake_caps,
	.submit = be_fake_submit,
	.view = be_fake_view,
	.parse_conf = be_fake_parse_conf,
	.stats = be_fake_stats,
	.close = be_fake_close,
};
