/*
 * test_agent.c - infergw-agent's pure parts: the command line, the FIFO
 * and credit accounting, deadlines and the slice verdicts that turn into
 * 0 / 499 / 504 answers.  Links build/libagent.a (no gateway).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "model/model.h"

static int parse(struct agt_opts *o, char *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = "infergw-agent";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return agt_opts_parse(o, argc, argv, err, 256);
}

static void test_args_defaults(void **state)
{
	struct agt_opts o;
	char err[256];
	const char *a[] = { "--listen", "127.0.0.1:9100", "--models", "config/models", NULL };

	assert_int_equal(parse(&o, err, a), AGT_ARGS_RUN);
	assert_string_equal(o.host, "127.0.0.1");
	assert_int_equal(o.port, 9100);
	assert_string_equal(o.models_dir, "config/models");
	assert_int_equal(o.threads, 1);
	assert_int_equal(o.max_inflight, 2);	/* 2 x threads */
	assert_int_equal(o.max_frame, AGT_MAX_FRAME_DEFAULT);
	assert_true(o.max_frame <= AGP_MAX_FRAME_DEFAULT);
	assert_int_equal(o.max_conns, 64);
	assert_int_equal(o.backend, BE_CPU);
	assert_int_equal(o.device, 0);
	assert_null(o.token_file);
	{
		const char *t[] = { "-l", "h:1", "-m", "m", "--token-file", "/run/tok", NULL };

		assert_int_equal(parse(&o, err, t), AGT_ARGS_RUN);
		assert_string_equal(o.token_file, "/run/tok");
	}
}

/* --backend gpu --device N: the GPU backend with --threads streams. */
static void test_args_backend(void **state)
{
	struct agt_opts o;
	char err[256];
	const char *gpu[] = { "-l", "h:1", "-m", "m", "--backend", "gpu", "--device", "3",
			      "-t", "16", NULL };
	const char *cpu[] = { "-l", "h:1", "-m", "m", "--backend", "cpu", NULL };
	const char *bad[] = { "-l", "h:1", "-m", "m", "--backend", "tpu", NULL };
	const char *dev[] = { "-l", "h:1", "-m", "m", "--backend", "gpu", "--device", "65", NULL };
	const char *streams[] = { "-l", "h:1", "-m", "m", "--backend", "gpu", "-t", "17", NULL };

	assert_int_equal(parse(&o, err, cpu), AGT_ARGS_RUN);
	assert_int_equal(o.backend, BE_CPU);
	assert_int_equal(parse(&o, err, bad), -EINVAL);
	assert_string_equal(err, "--backend: expected cpu or gpu, got \"tpu\"");
#ifdef USE_CUDA
	assert_int_equal(parse(&o, err, gpu), AGT_ARGS_RUN);
	assert_int_equal(o.backend, BE_GPU);
	assert_int_equal(o.device, 3);
	assert_int_equal(o.threads, 16);
	assert_int_equal(o.max_inflight, 32);
	assert_int_equal(parse(&o, err, dev), -EINVAL);
	assert_non_null(strstr(err, "--device"));
	assert_int_equal(parse(&o, err, streams), -EINVAL);
	assert_string_equal(err, "--threads: the GPU backend runs at most 16 streams, got 17");
#else
	assert_int_equal(parse(&o, err, gpu), -EINVAL);
	assert_string_equal(err, "--backend gpu: this infergw-agent was built without CUDA");
	(void)dev;
	(void)streams;
#endif
}

static void test_args_all(void **state)
{
	struct agt_opts o;
	char err[256];
	const char *a[] = { "--listen", "[::1]:0", "--models", "m", "--threads", "4",
			    "--max-frame", "65536", "--max-connections", "3",
			    "--frame-timeout-ms", "250", "--log-level", "warn", NULL };

	assert_int_equal(parse(&o, err, a), AGT_ARGS_RUN);
	assert_string_equal(o.host, "::1");
	assert_int_equal(o.port, 0);
	assert_int_equal(o.threads, 4);
	assert_int_equal(o.max_inflight, 8);
	assert_int_equal(o.max_frame, 65536);
	assert_int_equal(o.max_conns, 3);
	assert_int_equal(o.frame_timeout_ms, 250);
	assert_int_equal(o.log_level, 2);
	{
		const char *b[] = { "-l", "h:1", "-m", "m", "-t", "2", "-w", "5", NULL };

		assert_int_equal(parse(&o, err, b), AGT_ARGS_RUN);	/* parses twice */
		assert_int_equal(o.max_inflight, 5);
	}
}

static void test_args_errors(void **state)
{
	struct agt_opts o;
	char err[256];
	const char *no_listen[] = { "--models", "m", NULL };
	const char *no_models[] = { "--listen", "h:1", NULL };
	const char *bad_port[] = { "--listen", "h:70000", "--models", "m", NULL };
	const char *no_port[] = { "--listen", "hostonly", "--models", "m", NULL };
	const char *bad_threads[] = { "--listen", "h:1", "--models", "m", "--threads", "0", NULL };
	const char *junk[] = { "--listen", "h:1", "--models", "m", "--threads", "2x", NULL };
	const char *small_frame[] = { "--listen", "h:1", "--models", "m", "--max-frame", "10",
				      NULL };
	const char *extra[] = { "--listen", "h:1", "--models", "m", "stray", NULL };
	const char *level[] = { "--listen", "h:1", "--models", "m", "--log-level", "loud", NULL };
	const char *help[] = { "--help", NULL };
	const char *version[] = { "-v", NULL };

	assert_int_equal(parse(&o, err, no_listen), -EINVAL);
	assert_non_null(strstr(err, "--listen"));
	assert_int_equal(parse(&o, err, no_models), -EINVAL);
	assert_non_null(strstr(err, "--models"));
	assert_int_equal(parse(&o, err, bad_port), -EINVAL);
	assert_non_null(strstr(err, "h:70000"));
	assert_int_equal(parse(&o, err, no_port), -EINVAL);
	assert_int_equal(parse(&o, err, bad_threads), -EINVAL);
	assert_non_null(strstr(err, "--threads"));
	assert_int_equal(parse(&o, err, junk), -EINVAL);
	assert_non_null(strstr(err, "\"2x\""));
	assert_int_equal(parse(&o, err, small_frame), -EINVAL);
	assert_non_null(strstr(err, "--max-frame"));
	assert_int_equal(parse(&o, err, extra), -EINVAL);
	assert_non_null(strstr(err, "stray"));
	assert_int_equal(parse(&o, err, level), -EINVAL);
	assert_non_null(strstr(err, "--log-level"));
	assert_int_equal(parse(&o, err, help), AGT_ARGS_HELP);
	assert_int_equal(parse(&o, err, version), AGT_ARGS_VERSION);
}

static void test_fifo(void **state)
{
	struct agt_job j[4];
	struct agt_fifo f = { 0 };

	memset(j, 0, sizeof(j));
	for (int i = 0; i < 4; i++)
		agt_fifo_push(&f, &j[i]);
	assert_int_equal(f.len, 4);
	agt_fifo_remove(&f, &j[2]);	/* a cancel from the middle */
	agt_fifo_remove(&f, &j[0]);	/* ... and the head */
	assert_int_equal(f.len, 2);
	assert_ptr_equal(agt_fifo_pop(&f), &j[1]);
	agt_fifo_push(&f, &j[0]);
	assert_ptr_equal(agt_fifo_pop(&f), &j[3]);
	agt_fifo_remove(&f, &j[0]);	/* the only one */
	assert_int_equal(f.len, 0);
	assert_null(f.head);
	assert_null(f.tail);
	assert_null(agt_fifo_pop(&f));
}

static void test_credits(void **state)
{
	struct agt_credits c;
	int a, b, d;

	assert_int_equal(agt_credits_init(&c, 3), 0);
	a = agt_credits_take(&c);
	b = agt_credits_take(&c);
	d = agt_credits_take(&c);
	assert_int_equal(a, 0);	/* slot 0 first */
	assert_true(a != b && b != d && a != d);
	assert_true(b >= 0 && b < 3 && d >= 0 && d < 3);
	assert_int_equal(agt_credits_take(&c), -1);	/* never more than n at once */
	agt_credits_put(&c, b);
	assert_int_equal(agt_credits_take(&c), b);
	agt_credits_put(&c, a);
	agt_credits_put(&c, b);
	agt_credits_put(&c, d);
	agt_credits_put(&c, d);	/* a double put does not mint a credit */
	assert_int_equal(c.n_free, 3);
	agt_credits_fini(&c);
}

static void test_deadlines(void **state)
{
	assert_int_equal(agt_deadline(1000, 0), 0);	/* none */
	assert_int_equal(agt_deadline(1000, 5), 6000);
	assert_true(agt_deadline(UINT64_MAX - 10, 5) == UINT64_MAX);	/* saturates */
	assert_true(agt_deadline(1, UINT64_MAX) == UINT64_MAX);
	assert_false(agt_expired(0, UINT64_MAX));
	assert_false(agt_expired(6000, 5999));
	assert_true(agt_expired(6000, 6000));
	assert_true(agt_expired(6000, 7000));
}

static void test_ewma(void **state)
{
	assert_int_equal(agt_ewma(0, 800), 800);	/* the first sample */
	assert_int_equal(agt_ewma(800, 1600), 900);	/* 1/8 of the step */
	assert_int_equal(agt_ewma(0, 0), 1);		/* 0 means "none yet" */
	assert_int_equal(agt_ewma(100, 1ull << 40), (uint32_t)((700 + (uint64_t)UINT32_MAX) / 8));
}

/* A job of three slices (1, 2, 1 rows) of a 2 -> 3 model. */
static struct agt_job *mk_job(struct model *md, const uint64_t *timeouts, uint64_t recv)
{
	static struct agp_slice sl[3];
	struct agp_msg m = { .type = AGP_INFER, .id = 42, .n_slices = 3, .slices = sl, .rows = 4 };
	static float in[4 * 2] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	*md = (struct model){ .name = "t", .in_dim = 2, .out_dim = 3, .max_batch_size = 8 };
	sl[0] = (struct agp_slice){ .rows = 1, .timeout_us = timeouts[0] };
	sl[1] = (struct agp_slice){ .rows = 2, .timeout_us = timeouts[1] };
	sl[2] = (struct agp_slice){ .rows = 1, .timeout_us = timeouts[2] };
	m.data = (const uint8_t *)in;
	m.data_len = sizeof(in);
	return agt_job_new(&m, md, malloc(1), recv);
}

static void test_job_views(void **state)
{
	struct model md;
	uint64_t t[3] = { 0, 10, 0 };
	struct agt_job *j = mk_job(&md, t, 5000);

	assert_non_null(j);
	assert_int_equal(j->n_slices, 3);
	assert_int_equal(j->rows, 4);
	/* inputs: the frame's rows, slice after slice */
	assert_true(j->sl[1].input[0] == 3.0f && j->sl[2].input[1] == 8.0f);
	/* outputs: rows x out_dim, zeroed */
	assert_ptr_equal(j->sl[1].output, j->out + 3);
	assert_ptr_equal(j->sl[2].output, j->out + 9);
	assert_true(j->out[11] == 0.0f);
	assert_int_equal(j->rq[0].deadline_ns, 0);
	assert_int_equal(j->rq[1].deadline_ns, 5000 + 10000);
	assert_int_equal(j->ps[1].rows, 2);
	agt_job_free(j);
}

/* be_slice_live's verdicts become the answer's slice statuses. */
static void test_slice_verdicts(void **state)
{
	struct model md;
	uint64_t t[3] = { 0, 1, 0 };	/* slice 1: 1 µs from "long ago" */
	struct agt_job *j = mk_job(&md, t, 1000);

	assert_true(be_slice_live(&j->sl[0]));
	assert_false(be_slice_live(&j->sl[1]));	/* expired */
	assert_true(be_slice_live(&j->sl[2]));
	j->sl[0].status = 0;	/* what the backend writes for the live ones */
	j->sl[2].status = 0;
	agt_job_resolve(j);
	assert_int_equal(j->status, 0);	/* per-slice answers, not a batch failure */
	assert_int_equal(j->ps[0].status, 0);
	assert_int_equal(j->ps[1].status, 504);
	assert_int_equal(j->ps[2].status, 0);
	agt_job_free(j);

	j = mk_job(&md, (uint64_t[3]){ 0, 0, 0 }, be_now_ns());
	atomic_store(&j->cancelled, true);
	for (int i = 0; i < 3; i++)
		assert_false(be_slice_live(&j->sl[i]));
	agt_job_resolve(j);
	for (int i = 0; i < 3; i++)
		assert_int_equal(j->ps[i].status, 499);
	agt_job_free(j);

	/* an engine failure fails the batch, with the backend's message */
	j = mk_job(&md, (uint64_t[3]){ 0, 0, 0 }, be_now_ns());
	for (int i = 0; i < 3; i++)
		j->sl[i].status = 500;
	snprintf(j->b.errmsg, sizeof(j->b.errmsg), "cpu backend: oneDNN failed");
	agt_job_resolve(j);
	assert_int_equal(j->status, 500);
	assert_string_equal(j->msg, "cpu backend: oneDNN failed");
	agt_job_free(j);
}

static void test_split_hostport(void **state)
{
	char h[64];
	int p;

	assert_int_equal(agt_split_hostport("a.b:80", h, sizeof(h), &p), 0);
	assert_string_equal(h, "a.b");
	assert_int_equal(p, 80);
	assert_int_equal(agt_split_hostport("[fe80::1]:9", h, sizeof(h), &p), 0);
	assert_string_equal(h, "fe80::1");
	assert_int_equal(agt_split_hostport(":80", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(agt_split_hostport("h:", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(agt_split_hostport("h:-1", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(agt_split_hostport("[::1]80", h, sizeof(h), &p), -EINVAL);
	assert_int_equal(agt_split_hostport("h:1", h, 1, &p), -EINVAL);	/* too long */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args_defaults),
		cmocka_unit_test(test_args_all),
		cmocka_unit_test(test_args_backend),
		cmocka_unit_test(test_args_errors),
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test(test_fifo),
		cmocka_unit_test(test_credits),
		cmocka_unit_test(test_deadlines),
		cmocka_unit_test(test_ewma),
		cmocka_unit_test(test_job_views),
		cmocka_unit_test(test_slice_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
