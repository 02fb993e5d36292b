/*
 * Unit tests for backends/remote/remote.c: the remote backend against a
 * fake agent inside the test (a loopback TCP listener on its own thread
 * speaking proto.h through agp_decode / agp_put_*).  Timeouts in the
 * confs are short; every wait is bounded (a hang fails, never blocks).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "infer.h"
#include "model/model.h"
#include "remote/proto.h"
#include "remote/remote.h"

#define IN_DIM 4
#define OUT_DIM 2
#define MAX_RX 64
#define MAX_ROWS 8

/* ---- the fake agent ---- */

struct rx {
	uint64_t id;
	int n_slices;
	uint32_t rows[MAX_ROWS];
	uint64_t timeout_us[MAX_ROWS];
	float in[MAX_ROWS * IN_DIM];
	uint32_t total;
};

struct fagent {
	int lfd, port;
	pthread_t th;
	pthread_mutex_t mu, wmu;
	pthread_cond_t cv;
	int cfd;		/* the connection, -1 when none */
	int conns;		/* hellos answered */
	bool stop;
	/* behaviour */
	uint32_t window, threads;
	int in_dim;		/* the model's in its hello */
	bool hold;		/* keep infers for the test to answer */
	bool pong;		/* answer pings */
	bool refuse;		/* close connections at once */
	struct agp_load load;
	/* seen */
	struct rx rx[MAX_RX];
	int n_rx;
	uint64_t cancels[MAX_RX];
	int n_cancel, pings;
};

static int fa_read(int fd, void *p, size_t n)
{
	uint8_t *q = p;

	while (n) {
		ssize_t k = recv(fd, q, n, 0);

		if (k <= 0)
			return -1;
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

static void fa_send(struct fagent *a, const struct agp_buf *f)
{
	pthread_mutex_lock(&a->wmu);
	if (a->cfd >= 0 && send(a->cfd, f->p, f->len, MSG_NOSIGNAL) != (ssize_t)f->len)
		fprintf(stderr, "fake agent: short send\n");
	pthread_mutex_unlock(&a->wmu);
}

/* Answer rx with status (batch) and per-slice statuses (NULL: all 0);
 * output[row][j] = (j + 1) * sum(row). */
static void fa_answer(struct fagent *a, const struct rx *x, int status, const int *slice_st)
{
	struct agp_slice sl[MAX_ROWS];
	float out[MAX_ROWS * OUT_DIM] = { 0 };
	struct agp_buf f = { 0 };
	struct agp_load ld;

	for (uint32_t row = 0; row < x->total; row++) {
		double sum = 0;

		for (int k = 0; k < IN_DIM; k++)
			sum += x->in[row * IN_DIM + k];
		for (int j = 0; j < OUT_DIM; j++)
			out[row * OUT_DIM + j] = (float)((j + 1) * sum);
	}
	for (int i = 0; i < x->n_slices; i++)
		sl[i] = (struct agp_slice){ .rows = x->rows[i], .status = slice_st ? slice_st[i] : 0 };
	pthread_mutex_lock(&a->mu);
	ld = a->load;
	pthread_mutex_unlock(&a->mu);
	assert_int_equal(agp_put_result(&f, x->id, status, status ? "agent says no" : NULL, sl,
					x->n_slices, status ? NULL : out, OUT_DIM * sizeof(float),
					10, 20, &ld), 0);
	fa_send(a, &f);
	agp_buf_free(&f);
}

static void fa_hello(struct fagent *a, int fd)
{
	struct agp_model m = { .name = "m", .version = 1, .in_dim = (uint32_t)a->in_dim,
			       .out_dim = OUT_DIM, .max_batch = MAX_ROWS, .dtype = "FP32" };
	struct agp_buf f = { 0 };

	/* the agent's thread: no cmocka asserts here (they jump) */
	if (agp_put_hello(&f, AGP_VERSION, "fake-agent", a->window, a->threads, &m, 1, &a->load))
		fprintf(stderr, "fake agent: cannot encode hello\n");
	pthread_mutex_lock(&a->wmu);
	a->cfd = fd;
	if (send(fd, f.p, f.len, MSG_NOSIGNAL) != (ssize_t)f.len)
		fprintf(stderr, "fake agent: short hello\n");
	pthread_mutex_unlock(&a->wmu);
	agp_buf_free(&f);
}

/* One frame from the gateway; false when the connection should end. */
static bool fa_frame(struct fagent *a, const uint8_t *p, uint32_t len, struct agp_space *sp)
{
	struct agp_msg m;
	char err[160];

	if (agp_decode(p, len, sp, &m, err, sizeof(err))) {
		fprintf(stderr, "fake agent: %s\n", err);
		return false;
	}
	if (m.type == AGP_HELLO) {
		fa_hello(a, a->cfd);
		pthread_mutex_lock(&a->mu);
		a->conns++;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
	} else if (m.type == AGP_INFER) {
		struct rx x = { .id = m.id, .n_slices = m.n_slices, .total = m.rows };
		bool hold;

		if (m.n_slices > MAX_ROWS || m.rows > MAX_ROWS ||
		    agp_check_data(&m, IN_DIM, err, sizeof(err))) {
			fprintf(stderr, "fake agent: bad infer\n");
			return false;
		}
		for (int i = 0; i < m.n_slices; i++) {
			x.rows[i] = m.slices[i].rows;
			x.timeout_us[i] = m.slices[i].timeout_us;
		}
		memcpy(x.in, m.data, m.data_len);
		pthread_mutex_lock(&a->mu);
		if (a->n_rx < MAX_RX)
			a->rx[a->n_rx++] = x;
		hold = a->hold;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		if (!hold)
			fa_answer(a, &x, 0, NULL);
	} else if (m.type == AGP_PING) {
		struct agp_buf f = { 0 };
		bool pong;

		pthread_mutex_lock(&a->mu);
		a->pings++;
		pong = a->pong;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
		if (pong) {
			agp_put_pong(&f, m.id, &a->load);
			fa_send(a, &f);
			agp_buf_free(&f);
		}
	} else if (m.type == AGP_CANCEL) {
		pthread_mutex_lock(&a->mu);
		if (a->n_cancel < MAX_RX)
			a->cancels[a->n_cancel++] = m.id;
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	return true;
}

static void *fa_main(void *arg)
{
	struct fagent *a = arg;
	struct agp_model models[4];
	struct agp_slice slices[64];
	struct agp_space sp = { models, 4, slices, 64 };

	for (;;) {
		int fd = accept(a->lfd, NULL, NULL);
		uint8_t hdr[4], *p;
		bool refuse;

		if (fd < 0)
			break;
		pthread_mutex_lock(&a->mu);
		refuse = a->refuse;
		pthread_mutex_unlock(&a->mu);
		if (refuse) {
			close(fd);
			continue;
		}
		pthread_mutex_lock(&a->wmu);
		a->cfd = fd;
		pthread_mutex_unlock(&a->wmu);
		while (fa_read(fd, hdr, 4) == 0) {
			uint32_t len = agp_frame_len(hdr);
			bool ok;

			p = malloc(len ? len : 1);
			ok = p && fa_read(fd, p, len) == 0 && fa_frame(a, p, len, &sp);
			free(p);
			if (!ok)
				break;
		}
		pthread_mutex_lock(&a->wmu);
		if (a->cfd == fd)
			a->cfd = -1;
		pthread_mutex_unlock(&a->wmu);
		close(fd);
	}
	return NULL;
}

static struct fagent *fa_start(uint32_t window, uint32_t threads)
{
	struct fagent *a = calloc(1, sizeof(*a));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	a->window = window;
	a->threads = threads;
	a->in_dim = IN_DIM;
	a->pong = true;
	a->cfd = -1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->wmu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(a->lfd >= 0);
	assert_int_equal(bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(a->lfd, 8), 0);
	getsockname(a->lfd, (struct sockaddr *)&sa, &sl);
	a->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&a->th, NULL, fa_main, a), 0);
	return a;
}

/* Drop the current connection (the agent died). */
static void fa_drop(struct fagent *a)
{
	pthread_mutex_lock(&a->wmu);
	if (a->cfd >= 0)
		shutdown(a->cfd, SHUT_RDWR);
	pthread_mutex_unlock(&a->wmu);
}

static void fa_stop(struct fagent *a)
{
	shutdown(a->lfd, SHUT_RDWR);
	fa_drop(a);
	pthread_join(a->th, NULL);
	close(a->lfd);
	free(a);
}

static uint64_t ms_now(void)
{
	return be_now_ns() / 1000000;
}

/* Wait (bounded: 3 s) until *counter (under a->mu) reaches n. */
static bool fa_wait(struct fagent *a, const int *counter, int n)
{
	uint64_t end = ms_now() + 3000;
	bool ok;

	pthread_mutex_lock(&a->mu);
	while (*counter < n && ms_now() < end) {
		pthread_mutex_unlock(&a->mu);
		usleep(2000);
		pthread_mutex_lock(&a->mu);
	}
	ok = *counter >= n;
	pthread_mutex_unlock(&a->mu);
	return ok;
}

/* ---- the backend side ---- */

struct tbatch {
	struct batch b;
	struct infer_slice sl[MAX_ROWS];
	float in[MAX_ROWS * IN_DIM], out[MAX_ROWS * OUT_DIM];
	_Atomic int done;
};

static void t_done(struct batch *b)
{
	struct tbatch *t = (struct tbatch *)b;

	atomic_fetch_add(&t->done, 1);
}

static struct model test_model = { .name = "m", .version = 1, .in_dim = IN_DIM,
				   .out_dim = OUT_DIM, .max_batch_size = MAX_ROWS };

/* A batch of slices with rows[i] rows each, inputs seed + row index. */
static void t_batch(struct tbatch *t, struct backend *be, int slot, const int *rows, int n,
		    float seed)
{
	int off = 0;

	memset(t, 0, sizeof(*t));
	t->b.model = &test_model;
	t->b.be = be;
	t->b.slot = slot;
	t->b.n_slices = n;
	t->b.slices = t->sl;
	t->b.done = t_done;
	for (int i = 0; i < n; i++) {
		t->sl[i] = (struct infer_slice){ .row0 = 0, .rows = rows[i],
						 .input = t->in + off * IN_DIM,
						 .output = t->out + off * OUT_DIM };
		off += rows[i];
	}
	t->b.rows = off;
	for (int i = 0; i < off * IN_DIM; i++)
		t->in[i] = seed + (float)(i / IN_DIM);
	for (int i = 0; i < off * OUT_DIM; i++)
		t->out[i] = -1;
}

static bool t_wait_done(struct tbatch *t, int n)
{
	uint64_t end = ms_now() + 3000;

	while (atomic_load(&t->done) < n && ms_now() < end)
		usleep(1000);
	return atomic_load(&t->done) >= n;
}

static bool wait_state(struct backend *be, enum be_state st, int ms)
{
	uint64_t end = ms_now() + (uint64_t)ms;

	while (be_state_get(be) != st && ms_now() < end)
		usleep(2000);
	return be_state_get(be) == st;
}

/* The expected output of row `row` of a batch made with seed. */
static float expect_out(float seed, int row, int j)
{
	return (float)((j + 1) * IN_DIM * (seed + (float)row));
}

static char addr_buf[64];

static void t_open(struct backend *be, struct fagent *a, int port, int window)
{
	char *err = NULL;

	memset(be, 0, sizeof(*be));
	be->ops = &be_remote_ops;
	snprintf(addr_buf, sizeof(addr_buf), "127.0.0.1:%d", a ? a->port : port);
	be->conf.name = "r0";
	be->conf.kind = BE_REMOTE;
	be->conf.address = addr_buf;
	be_remote_conf_defaults(&be->conf.remote);
	be->conf.remote.window = window;
	be->conf.remote.connect_timeout_ms = 500;
	be->conf.remote.timeout_ms = 150;
	be->conf.remote.ping_ms = 30;
	be->conf.remote.reconnect_ms = 10;
	be->conf.remote.reconnect_max_ms = 40;
	be->conf.remote.consecutive_failures = 3;
	be->conf.remote.ejection_ms = 150;
	be->conf.remote.max_ejection_ms = 300;
	be->conf.remote.max_ejection_percent = 100;
	assert_int_equal(be->ops->open(be, &be->conf, &err), 0);
	assert_null(err);
}

static void t_load(struct backend *be)
{
	char *err = NULL;

	assert_int_equal(be->ops->load_model(be, &test_model, &err), 0);
}

static void check_rows(const struct tbatch *t, float seed, int first, int n)
{
	for (int row = first; row < first + n; row++)
		for (int j = 0; j < OUT_DIM; j++)
			assert_float_equal(t->out[row * OUT_DIM + j], expect_out(seed, row, j), 1e-4);
}

/* ---- tests ---- */

static void test_open_window_view(void **state)
{
	struct fagent *a = fa_start(3, 2);
	struct backend be;
	struct be_load ld = { 0 };
	struct backend_stats st;
	struct be_caps caps = { 0 };

	a->load = (struct agp_load){ .q = 7, .qc = 2, .svc_us = 300 };
	t_open(&be, a, 0, 0);
	assert_int_equal(be.credits, 3);	/* the agent's window */
	assert_int_equal(be_state_get(&be), BE_UP);
	t_load(&be);
	assert_int_equal(be.ops->view(&be, &ld), 0);
	assert_int_equal(ld.queue_depth, 5);	/* q - qc: other clients' batches */
	assert_int_equal(ld.service_ns, 300000);
	assert_int_equal(ld.parallel, 2);
	be.ops->caps(&be, &test_model, &caps);
	assert_int_equal(caps.max_batch, 0);	/* the agent's 8 = the model's */
	/* Pings measure the round trip. */
	assert_true(fa_wait(a, &a->pings, 2));
	for (uint64_t end = ms_now() + 2000; !ld.rtt_ns && ms_now() < end; usleep(2000))
		be.ops->view(&be, &ld);
	assert_true(ld.rtt_ns > 0);
	be.ops->stats(&be, &st);
	assert_true(st.up);
	assert_true(st.has_rtt);
	assert_string_equal(st.address, addr_buf);
	assert_string_equal(st.reason, "");
	be.ops->close(&be);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	/* The window key wins over the agent's. */
	t_open(&be, a, 0, 5);
	assert_int_equal(be.credits, 5);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_model_mismatch(void **state)
{
	struct fagent *a = fa_start(2, 1);
	struct model other = test_model;
	struct backend be;
	char *err = NULL;

	t_open(&be, a, 0, 0);
	other.in_dim = 9;
	assert_int_equal(be.ops->load_model(&be, &other, &err), -EINVAL);
	assert_non_null(err);
	/* Names both sides' shapes. */
	assert_non_null(strstr(err, "in_dim 9"));
	assert_non_null(strstr(err, "in_dim 4"));
	free(err);
	err = NULL;
	other = test_model;
	other.name = "nope";
	assert_int_equal(be.ops->load_model(&be, &other, &err), -EINVAL);
	assert_non_null(strstr(err, "does not serve model nope"));
	free(err);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_results_land_in_slices(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t;
	int rows[] = { 1, 2, 3 };
	struct backend_stats st;

	t_open(&be, a, 0, 0);
	t_load(&be);
	t_batch(&t, &be, 0, rows, 3, 1.5f);
	assert_int_equal(be.ops->submit(&be, &t.b), 0);
	assert_true(t_wait_done(&t, 1));
	for (int i = 0; i < 3; i++)
		assert_int_equal(t.sl[i].status, 0);
	check_rows(&t, 1.5f, 0, 6);
	assert_true(t.b.exec_end_ns >= t.b.exec_start_ns && t.b.exec_start_ns > 0);
	be.ops->stats(&be, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.rows, 6);
	/* The agent saw the slices as sent, without deadlines. */
	assert_int_equal(a->n_rx, 1);
	assert_int_equal(a->rx[0].n_slices, 3);
	assert_int_equal(a->rx[0].rows[2], 3);
	assert_int_equal(a->rx[0].timeout_us[0], 0);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_out_of_order_and_504(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t1, t2;
	int rows1[] = { 2 }, rows2[] = { 1, 1 }, st2[] = { 0, 504 };

	a->hold = true;
	t_open(&be, a, 0, 0);
	t_load(&be);
	t_batch(&t1, &be, 0, rows1, 1, 10.0f);
	t_batch(&t2, &be, 1, rows2, 2, 20.0f);
	/* A deadline travels as what is left of it. */
	t2.sl[0].deadline_ns = be_now_ns() + 5000000000ull;
	assert_int_equal(be.ops->submit(&be, &t1.b), 0);
	assert_int_equal(be.ops->submit(&be, &t2.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 2));
	assert_true(a->rx[1].timeout_us[0] > 4000000 && a->rx[1].timeout_us[0] <= 5000000);
	assert_int_equal(a->rx[1].timeout_us[1], 0);
	/* The second answered first: each result finds its batch by id. */
	fa_answer(a, &a->rx[1], 0, st2);
	assert_true(t_wait_done(&t2, 1));
	assert_int_equal(atomic_load(&t1.done), 0);
	assert_int_equal(t2.sl[0].status, 0);
	check_rows(&t2, 20.0f, 0, 1);
	assert_int_equal(t2.sl[1].status, 504);
	assert_non_null(strstr(t2.b.errmsg, "deadline"));
	assert_float_equal(t2.out[2], -1, 0);	/* not written */
	fa_answer(a, &a->rx[0], 0, NULL);
	assert_true(t_wait_done(&t1, 1));
	assert_int_equal(t1.sl[0].status, 0);
	check_rows(&t1, 10.0f, 0, 2);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_batch_status(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t;
	int rows[] = { 1, 1 };

	a->hold = true;
	t_open(&be, a, 0, 0);
	t_load(&be);
	/* 503 from the agent (busy): run it elsewhere. */
	t_batch(&t, &be, 0, rows, 2, 1);
	assert_int_equal(be.ops->submit(&be, &t.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 1));
	fa_answer(a, &a->rx[0], 503, NULL);
	assert_true(t_wait_done(&t, 1));
	assert_int_equal(t.sl[0].status, BE_RETRY);
	assert_int_equal(t.sl[1].status, BE_RETRY);
	/* 400: every slice answered 400 with the agent's message. */
	t_batch(&t, &be, 0, rows, 2, 1);
	assert_int_equal(be.ops->submit(&be, &t.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 2));
	fa_answer(a, &a->rx[1], 400, NULL);
	assert_true(t_wait_done(&t, 1));
	assert_int_equal(t.sl[0].status, 400);
	assert_int_equal(t.sl[1].status, 400);
	assert_non_null(strstr(t.b.errmsg, "agent says no"));
	assert_int_equal(be_state_get(&be), BE_UP);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_timeout_once_late_ignored(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t, t2;
	int rows[] = { 1 };

	a->hold = true;
	t_open(&be, a, 0, 0);
	t_load(&be);
	t_batch(&t, &be, 0, rows, 1, 3);
	assert_int_equal(be.ops->submit(&be, &t.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 1));
	/* Unanswered for timeout_ms: BE_RETRY, and a cancel to the agent. */
	assert_true(t_wait_done(&t, 1));
	assert_int_equal(t.sl[0].status, BE_RETRY);
	assert_non_null(strstr(t.b.errmsg, "no answer within 150 ms"));
	assert_true(fa_wait(a, &a->n_cancel, 1));
	assert_int_equal(a->cancels[0], a->rx[0].id);
	/* The slot is reused by the next batch; the late answer of the
	 * first is ignored: no second done, the new batch untouched. */
	t_batch(&t2, &be, 0, rows, 1, 4);
	assert_int_equal(be.ops->submit(&be, &t2.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 2));
	fa_answer(a, &a->rx[0], 0, NULL);
	fa_answer(a, &a->rx[1], 0, NULL);
	assert_true(t_wait_done(&t2, 1));
	check_rows(&t2, 4, 0, 1);
	usleep(20000);
	assert_int_equal(atomic_load(&t.done), 1);
	assert_int_equal(atomic_load(&t2.done), 1);
	be.ops->close(&be);
	fa_stop(a);
}

/* ops->cancel: a batch whose every request is gone is cancelled at the
 * agent; one that still carries a live request is not. */
static void test_cancel_tells_agent(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t, t2;
	static struct infer_req gone, live;
	int rows[] = { 1 }, two[] = { 1, 1 }, st499[] = { 499 };

	a->hold = true;
	t_open(&be, a, 0, 0);
	t_load(&be);
	atomic_store(&gone.state, REQ_RUNNING);
	atomic_store(&live.state, REQ_RUNNING);
	t_batch(&t, &be, 0, rows, 1, 3);
	t.sl[0].r = &gone;
	t_batch(&t2, &be, 1, two, 2, 5);
	t2.sl[0].r = &gone;
	t2.sl[1].r = &live;
	assert_int_equal(be.ops->submit(&be, &t.b), 0);
	assert_int_equal(be.ops->submit(&be, &t2.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 2));
	atomic_store(&gone.state, REQ_CANCELLED);
	be.ops->cancel(&be, &gone);
	assert_true(fa_wait(a, &a->n_cancel, 1));
	usleep(20000);
	assert_int_equal(a->n_cancel, 1);	/* t2 still has a live request */
	assert_int_equal(a->cancels[0], a->rx[0].id);
	/* The agent answers the cancelled batch 499 and the other normally:
	 * one done() each, the live request's rows written. */
	fa_answer(a, &a->rx[0], 0, st499);
	fa_answer(a, &a->rx[1], 0, NULL);
	assert_true(t_wait_done(&t, 1));
	assert_true(t_wait_done(&t2, 1));
	assert_int_equal(t2.sl[1].status, 0);
	usleep(20000);
	assert_int_equal(atomic_load(&t.done), 1);
	assert_int_equal(atomic_load(&t2.done), 1);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_drop_retry_reconnect(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t1, t2, t3;
	int rows[] = { 1 };
	struct backend_stats st;

	a->hold = true;
	t_open(&be, a, 0, 0);
	t_load(&be);
	t_batch(&t1, &be, 0, rows, 1, 1);
	t_batch(&t2, &be, 1, rows, 1, 2);
	assert_int_equal(be.ops->submit(&be, &t1.b), 0);
	assert_int_equal(be.ops->submit(&be, &t2.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 2));
	pthread_mutex_lock(&a->mu);
	a->refuse = true;	/* the agent is gone for a while */
	pthread_mutex_unlock(&a->mu);
	fa_drop(a);
	/* Every batch in flight comes back BE_RETRY, exactly once. */
	assert_true(t_wait_done(&t1, 1));
	assert_true(t_wait_done(&t2, 1));
	assert_int_equal(t1.sl[0].status, BE_RETRY);
	assert_int_equal(t2.sl[0].status, BE_RETRY);
	assert_true(wait_state(&be, BE_DOWN, 1000) || be_state_get(&be) == BE_EJECTED);
	be.ops->stats(&be, &st);
	assert_false(st.up);
	assert_true(st.reason[0]);
	/* Down: submit refuses, the scheduler fails over. */
	t_batch(&t3, &be, 0, rows, 1, 3);
	assert_int_equal(be.ops->submit(&be, &t3.b), -ENODEV);
	/* Back: reconnect + hello -> up (after any ejection's probe). */
	pthread_mutex_lock(&a->mu);
	a->refuse = false;
	a->hold = false;
	pthread_mutex_unlock(&a->mu);
	assert_true(wait_state(&be, BE_UP, 3000));
	assert_int_equal(be.ops->submit(&be, &t3.b), 0);
	assert_true(t_wait_done(&t3, 1));
	check_rows(&t3, 3, 0, 1);
	assert_int_equal(atomic_load(&t1.done), 1);
	assert_int_equal(atomic_load(&t2.done), 1);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_unreachable(void **state)
{
	struct fagent *a = fa_start(4, 1);
	int port = a->port;
	struct backend be;
	static struct tbatch t;
	int rows[] = { 1 };
	struct backend_stats st;
	char want[64];

	fa_stop(a);	/* nothing listens there now */
	t_open(&be, NULL, port, 0);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	assert_int_equal(be.credits, 4);
	t_load(&be);	/* models are checked when the agent says hello */
	t_batch(&t, &be, 0, rows, 1, 1);
	assert_int_equal(be.ops->submit(&be, &t.b), -ENODEV);
	assert_int_equal(atomic_load(&t.done), 0);
	be.ops->stats(&be, &st);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%d: Connection refused", port);
	assert_non_null(strstr(st.reason, want));
	be.ops->close(&be);
}

static void test_eject_and_probe(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;
	static struct tbatch t;
	int rows[] = { 1 };
	struct backend_stats st;

	a->hold = true;
	a->pong = false;	/* no pong successes between the failures */
	t_open(&be, a, 0, 0);
	t_load(&be);
	/* consecutive_failures = 3 batches answered 500 */
	for (int i = 0; i < 3; i++) {
		t_batch(&t, &be, 0, rows, 1, 1);
		assert_int_equal(be.ops->submit(&be, &t.b), 0);
		assert_true(fa_wait(a, &a->n_rx, i + 1));
		fa_answer(a, &a->rx[i], 500, NULL);
		assert_true(t_wait_done(&t, 1));
		assert_int_equal(t.sl[0].status, 500);
	}
	assert_true(wait_state(&be, BE_EJECTED, 1000));
	t_batch(&t, &be, 0, rows, 1, 1);
	assert_int_equal(be.ops->submit(&be, &t.b), -ENODEV);
	be.ops->stats(&be, &st);
	assert_int_equal(st.ejections, 1);
	assert_non_null(strstr(st.reason, "ejected"));
	/* After ejection_ms the probe (a ping, answered) readmits it. */
	pthread_mutex_lock(&a->mu);
	a->pong = true;
	pthread_mutex_unlock(&a->mu);
	assert_true(wait_state(&be, BE_UP, 3000));
	pthread_mutex_lock(&a->mu);
	a->hold = false;
	pthread_mutex_unlock(&a->mu);
	assert_int_equal(be.ops->submit(&be, &t.b), 0);
	assert_true(t_wait_done(&t, 1));
	check_rows(&t, 1, 0, 1);
	be.ops->close(&be);
	fa_stop(a);
}

/* An agent that hangs (SIGSTOP: the connection stays, nothing answers):
 * late pongs are failures, and enough of them eject it. */
static void test_hung_agent_ejected(void **state)
{
	struct fagent *a = fa_start(4, 1);
	struct backend be;

	a->pong = false;
	t_open(&be, a, 0, 0);
	t_load(&be);
	/* ping_ms 30, timeout_ms 150, consecutive_failures 3 */
	assert_true(wait_state(&be, BE_EJECTED, 3000));
	assert_true(fa_wait(a, &a->pings, 3));
	be.ops->close(&be);
	fa_stop(a);
}

static void test_small_window_queues(void **state)
{
	struct fagent *a = fa_start(1, 1);	/* the agent takes one at a time */
	struct backend be;
	static struct tbatch t1, t2;
	int rows[] = { 1 };

	a->hold = true;
	t_open(&be, a, 0, 2);			/* two credits by the window key */
	assert_int_equal(be.credits, 2);
	t_load(&be);
	t_batch(&t1, &be, 0, rows, 1, 1);
	t_batch(&t2, &be, 1, rows, 1, 2);
	assert_int_equal(be.ops->submit(&be, &t1.b), 0);
	assert_int_equal(be.ops->submit(&be, &t2.b), 0);
	assert_true(fa_wait(a, &a->n_rx, 1));
	usleep(30000);
	assert_int_equal(a->n_rx, 1);		/* the second waits for the window */
	fa_answer(a, &a->rx[0], 0, NULL);
	assert_true(fa_wait(a, &a->n_rx, 2));
	fa_answer(a, &a->rx[1], 0, NULL);
	assert_true(t_wait_done(&t1, 1));
	assert_true(t_wait_done(&t2, 1));
	check_rows(&t1, 1, 0, 1);
	check_rows(&t2, 2, 0, 1);
	be.ops->close(&be);
	fa_stop(a);
}

static void test_expand_addrs(void **state)
{
	struct backend_conf in = { .name = "dpu", .kind = BE_REMOTE, .address = "dpu.svc:9100" };
	const char *three[] = { "10.0.0.9:9100", "10.0.0.10:9100", "[fd00::1]:9100",
				"10.0.0.9:9100" };
	const char *one[] = { "10.0.0.9:9100" };
	char *models[] = { "m", NULL };
	struct backend_conf *out = NULL;
	char *err = NULL, host[64], port[8];
	int n = -1;

	in.models = models;
	in.n_models = 1;
	assert_int_equal(be_rmt_expand_addrs(&in, one, 1, &out, &n, &err), 0);
	assert_null(out);
	assert_int_equal(be_rmt_expand_addrs(&in, three, 4, &out, &n, &err), 0);
	assert_int_equal(n, 3);		/* duplicates dropped */
	/* Sorted by address (as strings: stable across resolutions). */
	assert_string_equal(out[0].address, "10.0.0.10:9100");
	assert_string_equal(out[1].address, "10.0.0.9:9100");
	assert_string_equal(out[2].address, "[fd00::1]:9100");
	for (int i = 0; i < n; i++) {
		char want[16];

		snprintf(want, sizeof(want), "dpu-%d", i + 1);
		assert_string_equal(out[i].name, want);
		assert_string_equal(out[i].remote.pool, "dpu");
		assert_string_equal(out[i].models[0], "m");
		free(out[i].name);
		free(out[i].address);
		free(out[i].remote.pool);
		free(out[i].models[0]);
		free(out[i].models);
	}
	free(out);
	/* Numeric addresses stand for themselves. */
	in.address = "127.0.0.1:9100";
	assert_int_equal(be_remote_expand(&in, &out, &n, &err), 0);
	assert_null(out);
	assert_int_equal(be_rmt_split_addr("[::1]:80", host, sizeof(host), port, sizeof(port)), 0);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "80");
	assert_int_equal(be_rmt_split_addr("::1:80", host, sizeof(host), port, sizeof(port)),
			 -EINVAL);
	assert_int_equal(be_rmt_split_addr("h:0", host, sizeof(host), port, sizeof(port)), -EINVAL);
	assert_int_equal(be_rmt_split_addr("h", host, sizeof(host), port, sizeof(port)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_window_view),
		cmocka_unit_test(test_model_mismatch),
		cmocka_unit_test(test_results_land_in_slices),
		cmocka_unit_test(test_out_of_order_and_504),
		cmocka_unit_test(test_batch_status),
		cmocka_unit_test(test_timeout_once_late_ignored),
		cmocka_unit_test(test_cancel_tells_agent),
		cmocka_unit_test(test_drop_retry_reconnect),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_eject_and_probe),
		cmocka_unit_test(test_hung_agent_ejected),
		cmocka_unit_test(test_small_window_queues),
		cmocka_unit_test(test_expand_addrs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
