/*
 * Unit tests for backends/remote/proto.c: the agent protocol codec.  Round
 * trips of every message with the values checked, msgpack-c reading what
 * the encoder wrote (another implementation agrees), and hostile payloads
 * built with msgpack-c: truncations, garbage, wrong types per field, over
 * the limits.  Every payload is decoded from a heap copy of exactly its
 * length, so an ASan build (make SANITIZE=1 BUILD=build-asan
 * build-asan/tests/test_agp) sees any read past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/proto.h"

static struct agp_model models_sp[AGP_MAX_MODELS];
static struct agp_slice slices_sp[AGP_MAX_SLICES];
static const struct agp_space sp = { models_sp, AGP_MAX_MODELS, slices_sp, AGP_MAX_SLICES };
static char err[256];

/* Decode payload p[0..n) from an exact-size heap copy. */
static int dec(const void *p, size_t n, const struct agp_space *space, struct agp_msg *m)
{
	uint8_t *c = malloc(n ? n : 1);
	int rc;

	assert_non_null(c);
	memcpy(c, p, n);
	rc = agp_decode(c, n, space, m, err, sizeof(err));
	if (rc)
		assert_true(err[0] != '\0');	/* every error says why */
	/* the views must not outlive c: the callers only check rc and scalars
	 * after this, but data is compared here while c lives */
	if (!rc && m->data) {
		assert_true(m->data >= c && m->data + m->data_len <= c + n);
		m->data = (const uint8_t *)p + (m->data - c);
	}
	free(c);
	return rc;
}

/* Decode the one frame in b, checking its header against its length. */
static int dec_frame(const struct agp_buf *b, struct agp_msg *m)
{
	assert_true(b->len >= AGP_HDR_BYTES);
	assert_int_equal(agp_frame_len(b->p), b->len - AGP_HDR_BYTES);
	return dec(b->p + AGP_HDR_BYTES, b->len - AGP_HDR_BYTES, &sp, m);
}

static const struct agp_load load1 = { 7, 3, 1234 };

static void test_hello_req(void **state)
{
	struct agp_buf b = { 0 };
	struct agp_msg m;

	assert_int_equal(agp_put_hello_req(&b, AGP_VERSION, "infergw 0.9", NULL), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_HELLO);
	assert_int_equal(m.version, AGP_VERSION);
	assert_string_equal(m.sw, "infergw 0.9");
	assert_int_equal(m.window, 0);
	assert_int_equal(m.n_models, 0);
	assert_false(m.has_load);
	agp_buf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

/* The gateway's hello with the agents' token: read back as a view of its
 * bytes; none without it; a token past AGP_TOKEN_MAX or not a str refused. */
static void test_hello_req_token(void **state)
{
	static char big[AGP_TOKEN_MAX + 2];
	struct agp_buf b = { 0 };
	struct agp_msg m;

	assert_int_equal(agp_put_hello_req(&b, AGP_VERSION, "gw", "0123456789abcdef-tok"), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_true(m.has_token);
	assert_int_equal(m.token_len, 20);
	assert_memory_equal(m.token, "0123456789abcdef-tok", 20);
	agp_buf_free(&b);
	assert_int_equal(agp_put_hello_req(&b, AGP_VERSION, "gw", NULL), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_false(m.has_token);
	assert_null(m.token);
	agp_buf_free(&b);
	memset(big, 'x', AGP_TOKEN_MAX);
	assert_int_equal(agp_put_hello_req(&b, AGP_VERSION, "gw", big), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.token_len, AGP_TOKEN_MAX);
	agp_buf_free(&b);
	big[AGP_TOKEN_MAX] = 'x';
	assert_int_equal(agp_put_hello_req(&b, AGP_VERSION, "gw", big), 0);
	assert_int_equal(dec_frame(&b, &m), -EINVAL);
	agp_buf_free(&b);
}

static void test_hello(void **state)
{
	struct agp_model mo[2] = {
		{ .name = "digits", .version = 3, .in_dim = 196, .out_dim = 10, .max_batch = 64,
		  .dtype = "FP32" },
		{ .name = "mlp-large", .version = 1, .in_dim = 4096, .out_dim = 1000,
		  .max_batch = 8, .dtype = "FP32" },
	};
	struct agp_buf b = { 0 };
	struct agp_msg m;

	assert_int_equal(agp_put_hello(&b, AGP_VERSION, "infergw-agent 1.2", 16, 8, mo, 2, &load1), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_HELLO);
	assert_int_equal(m.version, 1);
	assert_string_equal(m.sw, "infergw-agent 1.2");
	assert_int_equal(m.window, 16);
	assert_int_equal(m.threads, 8);
	assert_int_equal(m.n_models, 2);
	assert_ptr_equal(m.models, models_sp);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(m.models[i].name, mo[i].name);
		assert_int_equal(m.models[i].version, mo[i].version);
		assert_int_equal(m.models[i].in_dim, mo[i].in_dim);
		assert_int_equal(m.models[i].out_dim, mo[i].out_dim);
		assert_int_equal(m.models[i].max_batch, mo[i].max_batch);
		assert_string_equal(m.models[i].dtype, "FP32");
	}
	assert_true(m.has_load);
	assert_int_equal(m.load.q, 7);
	assert_int_equal(m.load.qc, 3);
	assert_int_equal(m.load.svc_us, 1234);
	agp_buf_free(&b);
}

/* An infer of three slices whose rows lie apart; returns the input written. */
static void put_infer3(struct agp_buf *b, uint64_t id, float *want, size_t *want_n)
{
	static float s0[2 * 3], s1[1 * 3], s2[4 * 3];
	const void *rows[3] = { s0, s1, s2 };
	struct agp_slice sl[3] = { { .rows = 2, .timeout_us = 5000 },
				   { .rows = 1, .timeout_us = 0 },
				   { .rows = 4, .timeout_us = UINT64_MAX } };
	size_t k = 0;

	for (int i = 0; i < 6; i++)
		s0[i] = (float)i;
	for (int i = 0; i < 3; i++)
		s1[i] = -1.5f * (float)i;
	for (int i = 0; i < 12; i++)
		s2[i] = 100.0f + (float)i;
	memcpy(want + k, s0, sizeof(s0)), k += 6;
	memcpy(want + k, s1, sizeof(s1)), k += 3;
	memcpy(want + k, s2, sizeof(s2)), k += 12;
	*want_n = k;
	assert_int_equal(agp_put_infer(b, id, "digits", sl, 3, rows, 3 * sizeof(float)), 0);
}

static void test_infer(void **state)
{
	struct agp_buf b = { 0 };
	struct agp_msg m;
	float want[32];
	size_t n;

	put_infer3(&b, 0x123456789abcdefull, want, &n);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_INFER);
	assert_true(m.id == 0x123456789abcdefull);
	assert_string_equal(m.model, "digits");
	assert_int_equal(m.n_slices, 3);
	assert_ptr_equal(m.slices, slices_sp);
	assert_int_equal(m.slices[0].rows, 2);
	assert_int_equal(m.slices[0].timeout_us, 5000);
	assert_int_equal(m.slices[1].rows, 1);
	assert_int_equal(m.slices[1].timeout_us, 0);
	assert_int_equal(m.slices[2].rows, 4);
	assert_true(m.slices[2].timeout_us == UINT64_MAX);
	assert_int_equal(m.rows, 7);
	assert_int_equal(m.data_len, n * sizeof(float));
	assert_memory_equal(m.data, want, n * sizeof(float));
	/* the encoder pads so the floats sit 4-aligned from the payload */
	assert_int_equal((m.data - (b.p + AGP_HDR_BYTES)) % 4, 0);
	assert_int_equal(agp_check_data(&m, 3, err, sizeof(err)), 0);
	assert_int_equal(agp_check_data(&m, 4, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "input: 84 bytes, expected 112 (7 rows x 4 x 4)");
	agp_buf_free(&b);
}

static void test_result(void **state)
{
	struct agp_slice sl[3] = { { .rows = 2, .status = 0 }, { .rows = 1, .status = 504 },
				   { .rows = 1, .status = 499 } };
	float out[4 * 2] = { 0.25f, 0.75f, 1, 2, 0, 0, 0, 0 };
	struct agp_buf b = { 0 };
	struct agp_msg m;

	assert_int_equal(agp_put_result(&b, 42, 0, NULL, sl, 3, out, 2 * sizeof(float), 150, 900,
					&load1), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_RESULT);
	assert_int_equal(m.id, 42);
	assert_int_equal(m.status, 0);
	assert_string_equal(m.msg, "");
	assert_int_equal(m.n_slices, 3);
	assert_int_equal(m.slices[0].rows, 2);
	assert_int_equal(m.slices[0].status, 0);
	assert_int_equal(m.slices[1].status, 504);
	assert_int_equal(m.slices[2].status, 499);
	assert_int_equal(m.rows, 4);
	assert_int_equal(m.data_len, sizeof(out));
	assert_memory_equal(m.data, out, sizeof(out));
	assert_int_equal((m.data - (b.p + AGP_HDR_BYTES)) % 4, 0);
	assert_int_equal(m.queue_us, 150);
	assert_int_equal(m.exec_us, 900);
	assert_true(m.has_load);
	assert_int_equal(m.load.q, 7);
	assert_int_equal(m.load.qc, 3);
	assert_int_equal(m.load.svc_us, 1234);
	assert_int_equal(agp_check_data(&m, 2, err, sizeof(err)), 0);
	assert_int_equal(agp_check_data(&m, 3, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "output: 32 bytes, expected 48 (4 rows x 3 x 4)");
	agp_buf_free(&b);

	/* a failed batch: msg, no output (zeros are not sent), still valid */
	assert_int_equal(agp_put_result(&b, 43, 503, "model \"x\" not loaded", sl, 3, NULL, 8, 0, 0,
					&load1), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.id, 43);
	assert_int_equal(m.status, 503);
	assert_string_equal(m.msg, "model \"x\" not loaded");
	assert_int_equal(m.data_len, 0);
	assert_int_equal(agp_check_data(&m, 2, err, sizeof(err)), 0);
	agp_buf_free(&b);

	/* and one with no slices at all (only with a status) */
	assert_int_equal(agp_put_result(&b, 44, 400, "bad", NULL, 0, NULL, 8, 0, 0, NULL), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.status, 400);
	assert_int_equal(m.n_slices, 0);
	assert_int_equal(m.load.q, 0);
	agp_buf_free(&b);
	assert_int_equal(agp_put_result(&b, 45, 0, NULL, NULL, 0, NULL, 8, 0, 0, NULL), 0);
	assert_int_equal(dec_frame(&b, &m), -EINVAL);
	assert_string_equal(err, "result: slices: empty");
	agp_buf_free(&b);
}

static void test_small_messages(void **state)
{
	struct agp_load l = { UINT32_MAX, 0, 77 };
	struct agp_buf b = { 0 };
	struct agp_msg m;

	assert_int_equal(agp_put_ping(&b, 1), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_PING);
	assert_int_equal(m.id, 1);
	agp_buf_free(&b);

	assert_int_equal(agp_put_pong(&b, UINT64_MAX, &l), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_PONG);
	assert_true(m.id == UINT64_MAX);
	assert_true(m.has_load);
	assert_int_equal(m.load.q, UINT32_MAX);
	assert_int_equal(m.load.qc, 0);
	assert_int_equal(m.load.svc_us, 77);
	agp_buf_free(&b);

	assert_int_equal(agp_put_cancel(&b, 300), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_CANCEL);
	assert_int_equal(m.id, 300);
	agp_buf_free(&b);

	assert_int_equal(agp_put_error(&b, 0, 413, "frame of 70000000 bytes, at most 67108864"), 0);
	assert_int_equal(dec_frame(&b, &m), 0);
	assert_int_equal(m.type, AGP_ERROR);
	assert_int_equal(m.id, 0);
	assert_int_equal(m.status, 413);
	assert_string_equal(m.msg, "frame of 70000000 bytes, at most 67108864");
	agp_buf_free(&b);
}

/* Frames appended to one buffer read back one after the other. */
static void test_stream(void **state)
{
	enum agp_type want[] = { AGP_HELLO, AGP_PING, AGP_INFER, AGP_CANCEL, AGP_PONG };
	struct agp_buf b = { 0 };
	struct agp_msg m;
	size_t off = 0, n;
	float in[32];

	assert_int_equal(agp_put_hello_req(&b, 1, "gw", NULL), 0);
	assert_int_equal(agp_put_ping(&b, 2), 0);
	put_infer3(&b, 3, in, &n);
	assert_int_equal(agp_put_cancel(&b, 3), 0);
	assert_int_equal(agp_put_pong(&b, 5, &load1), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint32_t len;

		assert_true(off + AGP_HDR_BYTES <= b.len);
		len = agp_frame_len(b.p + off);
		assert_true(off + AGP_HDR_BYTES + len <= b.len);
		assert_int_equal(dec(b.p + off + AGP_HDR_BYTES, len, &sp, &m), 0);
		assert_int_equal(m.type, want[i]);
		off += AGP_HDR_BYTES + len;
	}
	assert_int_equal(off, b.len);
	agp_buf_free(&b);
}

/* msgpack-c reads every frame the encoder writes as one map with "t". */
static void test_msgpack_c_reads_ours(void **state)
{
	struct agp_model mo = { .name = "m", .in_dim = 1, .out_dim = 1, .max_batch = 1,
				.dtype = "FP32" };
	struct agp_slice sl = { .rows = 1 };
	float one = 1;
	const void *rows[1] = { &one };
	struct agp_buf b = { 0 };
	size_t off = 0;
	int frames = 0;

	assert_int_equal(agp_put_hello_req(&b, 1, "gw", NULL), 0);
	assert_int_equal(agp_put_hello(&b, 1, "agent", 4, 2, &mo, 1, &load1), 0);
	assert_int_equal(agp_put_infer(&b, 9, "m", &sl, 1, rows, 4), 0);
	assert_int_equal(agp_put_result(&b, 9, 0, "ok", &sl, 1, &one, 4, 1, 2, &load1), 0);
	assert_int_equal(agp_put_ping(&b, 10), 0);
	assert_int_equal(agp_put_pong(&b, 10, &load1), 0);
	assert_int_equal(agp_put_cancel(&b, 9), 0);
	assert_int_equal(agp_put_error(&b, 11, 400, "no"), 0);
	while (off < b.len) {
		uint32_t len = agp_frame_len(b.p + off);
		msgpack_unpacked u;
		size_t at = 0;
		bool has_t = false;

		msgpack_unpacked_init(&u);
		assert_int_equal(msgpack_unpack_next(&u, (const char *)b.p + off + AGP_HDR_BYTES, len,
						     &at), MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(at, len);
		assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
		for (uint32_t i = 0; i < u.data.via.map.size; i++) {
			msgpack_object k = u.data.via.map.ptr[i].key;

			if (k.type == MSGPACK_OBJECT_STR && k.via.str.size == 1 && k.via.str.ptr[0] == 't')
				has_t = true;
		}
		assert_true(has_t);
		msgpack_unpacked_destroy(&u);
		off += AGP_HDR_BYTES + len;
		frames++;
	}
	assert_int_equal(frames, 8);
	agp_buf_free(&b);
}

/* Every proper prefix of every kind of frame fails cleanly. */
static void test_truncated(void **state)
{
	struct agp_model mo = { .name = "digits", .in_dim = 2, .out_dim = 2, .max_batch = 4,
				.dtype = "FP32" };
	struct agp_slice rs[3] = { { .rows = 2 }, { .rows = 1, .status = 504 }, { .rows = 4 } };
	float out[14] = { 0 };
	struct agp_buf b = { 0 };
	struct agp_msg m;
	float in[32];
	size_t off = 0, n;
	int frames = 0;

	assert_int_equal(agp_put_hello_req(&b, 1, "gw", NULL), 0);
	assert_int_equal(agp_put_hello(&b, 1, "agent", 4, 2, &mo, 1, &load1), 0);
	put_infer3(&b, 1000, in, &n);
	assert_int_equal(agp_put_result(&b, 1000, 0, "fine", rs, 3, out, 8, 5, 6, &load1), 0);
	assert_int_equal(agp_put_ping(&b, 70000), 0);
	assert_int_equal(agp_put_pong(&b, 70000, &load1), 0);
	assert_int_equal(agp_put_cancel(&b, 1000), 0);
	assert_int_equal(agp_put_error(&b, 1, 400, "x"), 0);
	while (off < b.len) {
		uint32_t len = agp_frame_len(b.p + off);
		const uint8_t *p = b.p + off + AGP_HDR_BYTES;

		assert_int_equal(dec(p, len, &sp, &m), 0);
		for (uint32_t cut = 0; cut < len; cut++)
			assert_int_equal(dec(p, cut, &sp, &m), -EBADMSG);
		off += AGP_HDR_BYTES + len;
		frames++;
	}
	assert_int_equal(frames, 8);
	agp_buf_free(&b);
}

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

/* Random bytes, and valid frames with bytes flipped: never a crash; an
 * accepted message still keeps its promises. */
static void test_garbage(void **state)
{
	struct agp_buf b = { 0 };
	struct agp_msg m;
	uint8_t buf[512];
	float in[32];
	size_t n;

	for (int it = 0; it < 20000; it++) {
		size_t len = next_rand() % sizeof(buf);
		int rc;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)next_rand();
		if (len && it % 2)
			buf[0] = 0x80 | (buf[0] & 0x0f);	/* a fixmap, to get further in */
		rc = dec(buf, len, &sp, &m);
		assert_true(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -EBADMSG);
	}
	put_infer3(&b, 5, in, &n);
	for (int it = 0; it < 20000; it++) {
		size_t len = b.len - AGP_HDR_BYTES;
		int rc;

		memcpy(buf, b.p + AGP_HDR_BYTES, len);
		for (int k = 0; k < 3; k++)
			buf[next_rand() % len] = (uint8_t)next_rand();
		rc = dec(buf, len, &sp, &m);
		assert_true(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -EBADMSG);
		if (!rc && m.type == AGP_INFER) {
			uint64_t sum = 0;

			assert_true(m.n_slices >= 1 && m.n_slices <= AGP_MAX_SLICES);
			for (int i = 0; i < m.n_slices; i++) {
				assert_true(m.slices[i].rows >= 1);
				sum += m.slices[i].rows;
			}
			assert_true(sum == m.rows);
			assert_true(m.model[0] != '\0');
		}
	}
	agp_buf_free(&b);
}

/* ---- hand-built payloads -------------------------------------------- */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void mp_begin(uint32_t pairs)
{
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, pairs);
}

static void mp_s(const char *s)
{
	msgpack_pack_str(&pk, strlen(s));
	msgpack_pack_str_body(&pk, s, strlen(s));
}

/* The pair (key, string value), and (key, integer value). */
static void mp_kv(const char *key, const char *val)
{
	mp_s(key);
	mp_s(val);
}

static void mp_ki(const char *key, int64_t val)
{
	mp_s(key);
	msgpack_pack_int64(&pk, val);
}

static int sb_dec(struct agp_msg *m)
{
	return dec(sb.data, sb.size, &sp, m);
}

static int setup(void **state)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	return 0;
}

static int teardown(void **state)
{
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

static void test_not_a_map(void **state)
{
	static const uint8_t cases[][3] = { { 0x91, 0x01 }, { 0x05 }, { 0xa1, 'x' }, { 0xc1 } };
	struct agp_msg m;

	assert_int_equal(dec("", 0, &sp, &m), -EBADMSG);
	assert_string_equal(err, "not a msgpack map");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(dec(cases[i], cases[i][1] ? 2 : 1, &sp, &m), -EBADMSG);
		assert_string_equal(err, "not a msgpack map");
	}
	/* a map followed by anything: one frame is one map */
	mp_begin(2);
	mp_kv("t", "ping");
	mp_s("id");
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_nil(&pk);
	assert_int_equal(sb_dec(&m), -EBADMSG);
	assert_string_equal(err, "1 bytes after the map");
	/* an array header that claims 2^32-1 elements in 10 bytes */
	{
		static const uint8_t huge[] = { 0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0, 0 };

		assert_int_equal(dec(huge, sizeof(huge), &sp, &m), -EBADMSG);
		assert_string_equal(err, "truncated or malformed msgpack");
	}
}

static void test_type_field(void **state)
{
	struct agp_msg m;

	mp_begin(2);
	mp_kv("t", "foo");
	mp_s("id");
	msgpack_pack_uint64(&pk, 9);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "unknown message type \"foo\"");
	assert_int_equal(m.id, 9);	/* set before the error: the answer carries it */

	mp_begin(1);
	mp_ki("t", 3);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "t: expected a string, got an integer");

	mp_begin(4);	/* a hello's token that is no string */
	mp_kv("t", "hello");
	mp_ki("v", AGP_VERSION);
	mp_kv("sw", "gw");
	mp_ki("token", 7);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "hello: token: expected a string, got an integer");

	mp_begin(1);
	mp_ki("id", 3);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "t: missing");

	mp_begin(1);
	mp_kv("t", "ping");
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "ping: id: missing");

	mp_begin(2);
	mp_kv("t", "ping");
	mp_ki("id", -1);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "ping: id: expected a non-negative integer, got a negative integer");

	/* hello carries no id: one sent is ignored (the fuzzer's round trip
	 * found it kept, and re-encoding lost it) */
	mp_begin(4);
	mp_kv("t", "hello");
	mp_ki("v", 1);
	mp_s("sw");
	mp_s("test");
	mp_ki("id", 7);
	assert_int_equal(sb_dec(&m), 0);
	assert_int_equal(m.type, AGP_HELLO);
	assert_int_equal(m.id, 0);

	/* a known key twice: which one? */
	mp_begin(3);
	mp_kv("t", "ping");
	mp_ki("id", 1);
	mp_ki("id", 2);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "id: duplicate key");

	assert_string_equal(agp_type_name(AGP_HELLO), "hello");
	assert_string_equal(agp_type_name(AGP_ERROR), "error");
	assert_string_equal(agp_type_name((enum agp_type)0), "?");
	assert_string_equal(agp_type_name((enum agp_type)99), "?");
}

/* An infer map: id 77, model, and the given slice entries; defect picks what is wrong. */
enum infer_defect {
	D_NONE, D_ROWS_STR, D_ROWS_NEG, D_ROWS_ZERO, D_ROWS_BIG, D_TIMEOUT_FLOAT, D_MODEL_BIN,
	D_MODEL_LONG, D_MODEL_EMPTY, D_MODEL_NUL, D_INPUT_STR, D_NO_INPUT, D_SLICES_MAP,
	D_SLICE_ARRAY, D_NO_SLICES, D_SLICES_EMPTY, D_EXTRA_KEYS, D_ROWS_SUM,
};

static void build_infer(enum infer_defect d)
{
	static const char bytes[48];
	int n = d == D_SLICES_EMPTY ? 0 : d == D_ROWS_SUM ? 2 : 4;

	mp_begin(d == D_NO_INPUT || d == D_NO_SLICES ? 4 : d == D_EXTRA_KEYS ? 7 : 5);
	if (d == D_EXTRA_KEYS) {	/* unknown keys, even odd ones, are skipped */
		msgpack_pack_int(&pk, 5);
		msgpack_pack_map(&pk, 1);
		mp_s("nested");
		msgpack_pack_array(&pk, 2);
		msgpack_pack_nil(&pk);
		msgpack_pack_float(&pk, 1.5f);
		mp_s("future");
		msgpack_pack_true(&pk);
	}
	mp_s("id");
	msgpack_pack_uint64(&pk, 77);
	mp_kv("t", "infer");
	mp_s("model");
	if (d == D_MODEL_BIN) {
		msgpack_pack_bin(&pk, 6);
		msgpack_pack_bin_body(&pk, "digits", 6);
	} else if (d == D_MODEL_LONG) {
		char name[AGP_NAME_MAX + 2];

		memset(name, 'a', AGP_NAME_MAX + 1);
		name[AGP_NAME_MAX + 1] = '\0';
		mp_s(name);
	} else if (d == D_MODEL_NUL) {
		msgpack_pack_str(&pk, 3);
		msgpack_pack_str_body(&pk, "a\0b", 3);
	} else {
		mp_s(d == D_MODEL_EMPTY ? "" : "digits");
	}
	if (d != D_NO_SLICES) {
		mp_s("slices");
		if (d == D_SLICES_MAP)
			msgpack_pack_map(&pk, 0);
		else
			msgpack_pack_array(&pk, n);
		for (int i = 0; d != D_SLICES_MAP && i < n; i++) {
			if (d == D_SLICE_ARRAY && i == 2) {
				msgpack_pack_array(&pk, 1);
				msgpack_pack_int(&pk, 1);
				continue;
			}
			msgpack_pack_map(&pk, d == D_EXTRA_KEYS ? 3 : 2);
			if (d == D_EXTRA_KEYS) {
				mp_ki("priority", 3);
			}
			mp_s("timeout_us");
			if (d == D_TIMEOUT_FLOAT && i == 1)
				msgpack_pack_double(&pk, 1.0);
			else
				msgpack_pack_uint64(&pk, 1000u * (unsigned)i);
			mp_s("rows");
			if (i == 3 && d == D_ROWS_STR)
				mp_s("3");
			else if (i == 3 && d == D_ROWS_NEG)
				msgpack_pack_int(&pk, -1);
			else if (i == 3 && d == D_ROWS_ZERO)
				msgpack_pack_int(&pk, 0);
			else if (i == 3 && d == D_ROWS_BIG)
				msgpack_pack_uint64(&pk, 1ull << 32);
			else if (d == D_ROWS_SUM)
				msgpack_pack_uint32(&pk, UINT32_MAX);
			else
				msgpack_pack_int(&pk, 1);
		}
	}
	if (d != D_NO_INPUT) {
		mp_s("input");
		if (d == D_INPUT_STR) {
			mp_s("AAAA");
		} else {
			msgpack_pack_bin(&pk, sizeof(bytes));
			msgpack_pack_bin_body(&pk, bytes, sizeof(bytes));
		}
	}
}

static void test_infer_fields(void **state)
{
	static const struct {
		enum infer_defect d;
		const char *err;
	} cases[] = {
		{ D_ROWS_STR, "infer: slices[3].rows: expected a positive integer, got a string" },
		{ D_ROWS_NEG, "infer: slices[3].rows: expected a positive integer, got a negative integer" },
		{ D_ROWS_ZERO, "infer: slices[3].rows: expected a positive integer up to 4294967295, got 0" },
		{ D_ROWS_BIG, "infer: slices[3].rows: expected a positive integer up to 4294967295, got 4294967296" },
		{ D_TIMEOUT_FLOAT, "infer: slices[1].timeout_us: expected a non-negative integer, got a float" },
		{ D_MODEL_BIN, "infer: model: expected a string, got bin" },
		{ D_MODEL_LONG, "infer: model: 65 bytes, at most 64" },
		{ D_MODEL_EMPTY, "infer: model: empty" },
		{ D_MODEL_NUL, "infer: model: contains a NUL byte" },
		{ D_INPUT_STR, "infer: input: expected bin, got a string" },
		{ D_NO_INPUT, "infer: input: missing" },
		{ D_SLICES_MAP, "infer: slices: expected an array, got a map" },
		{ D_SLICE_ARRAY, "infer: slices[2]: expected a map, got an array" },
		{ D_NO_SLICES, "infer: slices: missing" },
		{ D_SLICES_EMPTY, "infer: slices: empty" },
		{ D_ROWS_SUM, "infer: slices: more than 4294967295 rows in all" },
	};
	struct agp_msg m;

	build_infer(D_NONE);
	assert_int_equal(sb_dec(&m), 0);
	assert_int_equal(m.id, 77);
	assert_int_equal(m.rows, 4);
	assert_int_equal(m.slices[2].timeout_us, 2000);
	assert_int_equal(agp_check_data(&m, 3, err, sizeof(err)), 0);
	assert_int_equal(agp_check_data(&m, 196, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "input: 48 bytes, expected 3136 (4 rows x 196 x 4)");
	/* width x rows past 64 bits is a mismatch, not a wrap to a match */
	m.rows = UINT32_MAX;
	assert_int_equal(agp_check_data(&m, UINT32_MAX, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "input: 48 bytes"));

	build_infer(D_EXTRA_KEYS);
	assert_int_equal(sb_dec(&m), 0);
	assert_int_equal(m.id, 77);
	assert_int_equal(m.n_slices, 4);
	assert_int_equal(m.data_len, 48);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		build_infer(cases[i].d);
		memset(&m, 0xa5, sizeof(m));
		assert_int_equal(sb_dec(&m), -EINVAL);
		assert_string_equal(err, cases[i].err);
		assert_int_equal(m.id, 77);
	}
}

static void test_result_fields(void **state)
{
	struct agp_msg m;

	/* status 42 is no HTTP status */
	mp_begin(3);
	mp_kv("t", "result");
	mp_ki("id", 5);
	mp_ki("status", 42);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "result: status: expected 0 or an HTTP status (100..999), got 42");
	assert_int_equal(m.id, 5);

	/* a slice's status as a string; msg as a number */
	mp_begin(4);
	mp_kv("t", "result");
	mp_ki("id", 5);
	mp_ki("status", 0);
	mp_s("slices");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	mp_ki("rows", 1);
	mp_s("status");
	mp_s("504");
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "result: slices[0].status: expected a non-negative integer, got a string");

	mp_begin(4);
	mp_kv("t", "result");
	mp_ki("id", 5);
	mp_ki("status", 500);
	mp_ki("msg", 1);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "result: msg: expected a string, got an integer");

	/* pong without svc_us */
	mp_begin(4);
	mp_kv("t", "pong");
	mp_ki("id", 5);
	mp_ki("q", 1);
	mp_ki("qc", 1);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "pong: svc_us: missing");

	/* error: a long text is cut, control bytes become '?' */
	{
		char text[400];

		memset(text, 'e', sizeof(text) - 1);
		text[sizeof(text) - 1] = '\0';
		text[1] = '\n';
		text[2] = 0x1b;
		mp_begin(4);
		mp_kv("t", "error");
		mp_ki("id", 0);
		mp_ki("status", 400);
		mp_s("msg");
		mp_s(text);
		assert_int_equal(sb_dec(&m), 0);
		assert_int_equal(strlen(m.msg), AGP_MSG_MAX - 1);
		assert_int_equal(m.msg[0], 'e');
		assert_int_equal(m.msg[1], '?');
		assert_int_equal(m.msg[2], '?');
	}
}

static void test_hello_fields(void **state)
{
	struct agp_msg m;

	/* another version: decoded only so far as to be refused (426) by the caller */
	mp_begin(4);
	mp_kv("t", "hello");
	mp_ki("v", 2);
	mp_s("sw");
	mp_s("gw 2.0");
	mp_s("window");
	mp_s("whatever v2 says");
	assert_int_equal(sb_dec(&m), 0);
	assert_int_equal(m.type, AGP_HELLO);
	assert_int_equal(m.version, 2);
	assert_string_equal(m.sw, "gw 2.0");

	/* the agent's hello with a model lacking in_dim */
	mp_begin(9);
	mp_kv("t", "hello");
	mp_ki("v", 1);
	mp_s("sw");
	mp_s("agent");
	mp_ki("window", 4);
	mp_ki("threads", 4);
	mp_ki("q", 0);
	mp_ki("qc", 0);
	mp_ki("svc_us", 0);
	mp_s("models");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	mp_s("name");
	mp_s("digits");
	mp_ki("out_dim", 10);
	mp_ki("max_batch", 8);
	mp_s("dtype");
	mp_s("FP32");
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "hello: models[0].version: missing");

	/* window 0: no credit at all */
	mp_begin(4);
	mp_kv("t", "hello");
	mp_ki("v", 1);
	mp_s("sw");
	mp_s("agent");
	mp_ki("window", 0);
	assert_int_equal(sb_dec(&m), -EINVAL);
	assert_string_equal(err, "hello: window: expected a positive integer up to 4294967295, got 0");
}

/* Over the caller's room (sp) or the protocol's limits: -E2BIG. */
static void test_limits(void **state)
{
	struct agp_slice sl[AGP_MAX_SLICES + 1];
	struct agp_slice small_sl[4];
	struct agp_model small_mo[2], mo[3];
	struct agp_space small = { small_mo, 2, small_sl, 4 };
	struct agp_space big = { NULL, 0, malloc(sizeof(struct agp_slice) * (AGP_MAX_SLICES + 1)),
				 AGP_MAX_SLICES + 1 };
	const void **rows = calloc(AGP_MAX_SLICES + 1, sizeof(*rows));
	struct agp_buf b = { 0 };
	struct agp_msg m;
	float one = 0;

	assert_non_null(big.slices);
	assert_non_null(rows);
	for (int i = 0; i <= AGP_MAX_SLICES; i++) {
		sl[i] = (struct agp_slice){ .rows = 1, .timeout_us = 1 };
		rows[i] = &one;
	}
	/* 5 slices where the caller has room for 4 */
	assert_int_equal(agp_put_infer(&b, 8, "m", sl, 5, rows, 4), 0);
	assert_int_equal(dec(b.p + 4, b.len - 4, &small, &m), -E2BIG);
	assert_string_equal(err, "infer: slices: 5 slices, at most 4");
	assert_int_equal(m.id, 8);
	assert_int_equal(dec(b.p + 4, b.len - 4, &sp, &m), 0);
	agp_buf_free(&b);
	/* AGP_MAX_SLICES + 1 even where the caller has room for more */
	assert_int_equal(agp_put_infer(&b, 8, "m", sl, AGP_MAX_SLICES + 1, rows, 4), 0);
	assert_int_equal(dec(b.p + 4, b.len - 4, &big, &m), -E2BIG);
	assert_string_equal(err, "infer: slices: 4097 slices, at most 4096");
	assert_int_equal(agp_put_infer(&b, 8, "m", sl, AGP_MAX_SLICES, rows, 4), 0);
	assert_int_equal(dec(b.p + 4 + agp_frame_len(b.p) + 4, agp_frame_len(b.p + 4 + agp_frame_len(b.p)),
			     &big, &m), 0);
	assert_int_equal(m.n_slices, AGP_MAX_SLICES);
	assert_int_equal(m.rows, AGP_MAX_SLICES);
	agp_buf_free(&b);
	/* 3 models where the caller has room for 2; none (NULL space) for any */
	for (int i = 0; i < 3; i++)
		mo[i] = (struct agp_model){ .name = "m", .in_dim = 1, .out_dim = 1, .max_batch = 1,
					    .dtype = "FP32" };
	assert_int_equal(agp_put_hello(&b, 1, "a", 1, 1, mo, 3, NULL), 0);
	assert_int_equal(dec(b.p + 4, b.len - 4, &small, &m), -E2BIG);
	assert_string_equal(err, "hello: models: 3 models, at most 2");
	assert_int_equal(dec(b.p + 4, b.len - 4, NULL, &m), -E2BIG);
	assert_int_equal(dec(b.p + 4, b.len - 4, &sp, &m), 0);
	assert_int_equal(m.n_models, 3);
	agp_buf_free(&b);
	free(big.slices);
	free(rows);
}

static void test_frame_len(void **state)
{
	static const uint8_t h1[4] = { 0xff, 0xff, 0xff, 0xff }, h2[4] = { 0x80, 0, 0, 1 },
			     h3[4] = { 0, 0, 1, 0 }, h4[4] = { 0x04, 0, 0, 0 };
	struct agp_buf b = { 0 };
	size_t cap;

	assert_true(agp_frame_len(h1) == 4294967295u);
	assert_true(agp_frame_len(h2) == 0x80000001u);
	assert_int_equal(agp_frame_len(h3), 256);
	assert_int_equal(agp_frame_len(h4), AGP_MAX_FRAME_DEFAULT);
	/* a buffer grows for big frames and keeps what it held */
	assert_int_equal(agp_put_ping(&b, 1), 0);
	cap = b.cap;
	{
		size_t n = 100000;
		float *big = calloc(n, 4);
		struct agp_slice s = { .rows = (uint32_t)n };
		const void *rows[1] = { big };
		struct agp_msg m;
		size_t first = b.len;

		assert_non_null(big);
		big[n - 1] = 3.5f;
		assert_int_equal(agp_put_infer(&b, 2, "m", &s, 1, rows, 4), 0);
		assert_true(b.cap > cap);
		assert_int_equal(agp_frame_len(b.p), first - 4);
		assert_true(agp_frame_len(b.p + first) > n * 4);
		assert_int_equal(dec(b.p + 4, first - 4, &sp, &m), 0);
		assert_int_equal(m.type, AGP_PING);
		assert_int_equal(dec(b.p + first + 4, agp_frame_len(b.p + first), &sp, &m), 0);
		assert_int_equal(m.rows, n);
		assert_int_equal(agp_check_data(&m, 1, err, sizeof(err)), 0);
		assert_memory_equal(m.data + (n - 1) * 4, &big[n - 1], 4);
		free(big);
	}
	/* a batch that could never fit a frame is refused before any write */
	{
		struct agp_slice s = { .rows = 1u << 30 };
		const void *rows[1] = { NULL };
		size_t before = b.len;

		assert_int_equal(agp_put_infer(&b, 3, "m", &s, 1, rows, 16), -E2BIG);
		assert_int_equal(b.len, before);
	}
	agp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_req),
		cmocka_unit_test(test_hello_req_token),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_infer),
		cmocka_unit_test(test_result),
		cmocka_unit_test(test_small_messages),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_msgpack_c_reads_ours),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_not_a_map),
		cmocka_unit_test(test_type_field),
		cmocka_unit_test(test_infer_fields),
		cmocka_unit_test(test_result_fields),
		cmocka_unit_test(test_hello_fields),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_frame_len),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
