/* Unit tests for gateway/api/mpcodec.c: msgpack request decode (zero-copy bin) and response encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kserve.h"
#include "model/model.h"
#include "tiny_model.h"
#include "mpcodec.h"

static struct model tm;

/* ks_classes' callback for the reference answer: a str onto the packer arg. */
static void tiny_mp_class(void *arg, const char *s, int len)
{
	msgpack_pack_str(arg, (size_t)len);
	msgpack_pack_str_body(arg, s, (size_t)len);
}

static int setup(void **state)
{
	tiny_model(&tm, 1);
	return 0;
}

/*
 * A request map; data as bin when bin, else as an array; bad selects a
 * defect: 1 input name, 2 short bin, 3 a string value, 4 +Inf at [5] (bin),
 * 5 1e39 as float64 at [1] (FP32 overflow), 6 NaN at [0], 7 timeout 2^64-1.
 */
static void build(msgpack_sbuffer *sb, int rows, int cols, bool bin, const char *dtype, int bad)
{
	msgpack_packer pk;
	float v[64];

	for (int i = 0; i < rows * cols; i++)
		v[i] = (float)i * 0.5f;
	if (bad == 4)
		v[5] = INFINITY;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	tiny_mp_str(&pk, "model_name");
	tiny_mp_str(&pk, "digits");
	tiny_mp_str(&pk, "id");
	tiny_mp_str(&pk, "m1");
	tiny_mp_str(&pk, "parameters");
	msgpack_pack_map(&pk, bad == 7 ? 2 : 1);
	tiny_mp_str(&pk, "priority");
	msgpack_pack_int(&pk, 2);
	if (bad == 7) {
		tiny_mp_str(&pk, "timeout");
		msgpack_pack_uint64(&pk, UINT64_MAX);
	}
	tiny_mp_str(&pk, "inputs");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	tiny_mp_str(&pk, "name");
	tiny_mp_str(&pk, bad == 1 ? "x" : "input");
	tiny_mp_str(&pk, "datatype");
	tiny_mp_str(&pk, dtype);
	tiny_mp_str(&pk, "shape");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, rows);
	msgpack_pack_int(&pk, cols);
	tiny_mp_str(&pk, "data");
	if (bin) {
		size_t n = rows * cols * sizeof(float) - (bad == 2 ? 4 : 0);

		msgpack_pack_bin(&pk, n);
		msgpack_pack_bin_body(&pk, v, n);
	} else {
		msgpack_pack_array(&pk, rows * cols);
		for (int i = 0; i < rows * cols; i++)
			if (bad == 3 && i == 2)
				tiny_mp_str(&pk, "oops");
			else if (bad == 5 && i == 1)
				msgpack_pack_double(&pk, 1e39);
			else if (bad == 6 && i == 0)
				msgpack_pack_float(&pk, NAN);
			else
				msgpack_pack_float(&pk, v[i]);
	}
}

/* Value i of a decoded tensor: a view into the body may be unaligned
 * (struct ks_infer), so read it as bytes, not as a float lvalue. */
static float value_at(const float *data, size_t i)
{
	float v;

	memcpy(&v, (const char *)data + i * sizeof(v), sizeof(v));
	return v;
}

static void test_decode(void **state)
{
	msgpack_sbuffer sb;
	struct ks_infer ki;
	char err[512], name[KS_ID_MAX + 1];

	build(&sb, 2, 4, true, "FP32", 0);
	assert_int_equal(mp_parse_infer(&tm, sb.data, sb.size, &ki, name, err, sizeof(err)), 0);
	assert_string_equal(name, "digits");
	assert_string_equal(ki.id, "m1");
	assert_int_equal(ki.priority, 2);
	assert_int_equal(ki.rows, 2);
	assert_null(ki.owned);			/* bin is viewed, not copied */
	assert_true((const char *)ki.data > sb.data && (const char *)ki.data < sb.data + sb.size);
	assert_true(value_at(ki.data, 7) == 3.5f);
	msgpack_sbuffer_destroy(&sb);
	build(&sb, 1, 4, false, "FP32", 0);
	assert_int_equal(mp_parse_infer(&tm, sb.data, sb.size, &ki, NULL, err, sizeof(err)), 0);
	assert_non_null(ki.owned);
	assert_true(value_at(ki.data, 3) == 1.5f);
	ks_infer_free(&ki);
	msgpack_sbuffer_destroy(&sb);
}

static void expect(int rows, int cols, bool bin, const char *dt, int bad, size_t cut,
		   const char *msg)
{
	msgpack_sbuffer sb;
	struct ks_infer ki;
	char err[512] = "";

	build(&sb, rows, cols, bin, dt, bad);
	assert_int_equal(mp_parse_infer(&tm, sb.data, sb.size - cut, &ki, NULL, err, sizeof(err)), 400);
	if (!strstr(err, msg))
		fail_msg("got \"%s\", want \"%s\"", err, msg);
	assert_null(ki.owned);
	msgpack_sbuffer_destroy(&sb);
}

static void test_errors(void **state)
{
	expect(2, 4, true, "INT32", 0, 0, "inputs[0].datatype: expected FP32, got INT32");
	expect(2, 3, true, "FP32", 0, 0, "inputs[0].shape: expected [-1, 4], got [2, 3]");
	expect(2, 4, true, "FP32", 1, 0, "inputs[0].name: model digits has no input \"x\"");
	expect(2, 4, true, "FP32", 2, 0, "inputs[0].data: 28 bytes, expected 32 for shape [2, 4] FP32");
	expect(1, 4, false, "FP32", 3, 0, "inputs[0].data[2]: expected a number, got a string");
	expect(2, 4, true, "FP32", 0, 5, "malformed msgpack: body ends inside the map");
}

/* Inf, NaN, and numbers that overflow FP32 are refused, bin or array. */
static void test_nonfinite_refused(void **state)
{
	expect(2, 4, true, "FP32", 4, 0, "inputs[0].data[5]: not a finite FP32 value (+Inf)");
	expect(2, 4, false, "FP32", 5, 0, "inputs[0].data[1]: not a finite FP32 value (+Inf)");
	expect(1, 4, false, "FP32", 6, 0, "inputs[0].data[0]: not a finite FP32 value (NaN)");
}

/* parameters.timeout = 2^64-1 saturates (it used to wrap to a negative int64). */
static void test_timeout_saturates(void **state)
{
	msgpack_sbuffer sb;
	struct ks_infer ki;
	char err[512];

	build(&sb, 1, 4, true, "FP32", 7);
	assert_int_equal(mp_parse_infer(&tm, sb.data, sb.size, &ki, NULL, err, sizeof(err)), 0);
	assert_true(ki.timeout_us == KS_TIMEOUT_MAX_US);
	msgpack_sbuffer_destroy(&sb);
}

/* Headers that claim more elements than the body holds are refused before
 * msgpack-c allocates for them (5 bytes claiming 2^28 elements). */
static void test_huge_counts_refused(void **state)
{
	static const char arr32[] = "\xdd\x10\x00\x00\x00", map32[] = "\xdf\xdf\xdf\xdf\xdf";
	static const char never[] = "\x81\xc1\x00";
	struct ks_infer ki;
	char err[512];

	assert_int_equal(mp_parse_infer(&tm, arr32, 5, &ki, NULL, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "body ends inside the map (the value at byte 0"));
	assert_int_equal(mp_parse_infer(&tm, map32, 5, &ki, NULL, err, sizeof(err)), 400);
	assert_int_equal(mp_parse_infer(&tm, never, 3, &ki, NULL, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "malformed msgpack at byte 1"));
}

static void test_encode(void **state)
{
	struct evbuffer *b = evbuffer_new();
	float v[6] = { 0.1f, 0.2f, 0.7f, 1, 0, 0 };
	size_t n = 0;
	msgpack_unpacked u;
	char *buf;
	const msgpack_object *o;

	mp_encode_infer(b, &tm, "r9", 2, v);
	n = evbuffer_get_length(b);
	buf = malloc(n);
	evbuffer_remove(b, buf, n);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, buf, n, NULL), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
	assert_int_equal(u.data.via.map.size, 4);
	o = &u.data.via.map.ptr[3].val;	/* outputs */
	o = &o->via.array.ptr[0].via.map.ptr[3].val;	/* data */
	assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
	assert_int_equal(o->via.bin.size, sizeof(v));
	assert_memory_equal(o->via.bin.ptr, v, sizeof(v));
	msgpack_unpacked_destroy(&u);
	free(buf);
	evbuffer_free(b);
}


/*
 * A 1-row request with one integer parameter: at root (where 0), on
 * inputs[0] (1) or on outputs[0] (2); key NULL for none.
 */
static void build_param(msgpack_sbuffer *sb, int where, const char *key, int64_t val)
{
	float v[4] = { 1, 2, 3, 4 };
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, key && where == 0 ? 3 : 2);
	if (key && where == 0) {
		tiny_mp_str(&pk, "parameters");
		msgpack_pack_map(&pk, 1);
		tiny_mp_str(&pk, key);
		msgpack_pack_int64(&pk, val);
	}
	tiny_mp_str(&pk, "inputs");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, key && where == 1 ? 5 : 4);
	tiny_mp_str(&pk, "name");
	tiny_mp_str(&pk, "input");
	tiny_mp_str(&pk, "datatype");
	tiny_mp_str(&pk, "FP32");
	tiny_mp_str(&pk, "shape");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 4);
	tiny_mp_str(&pk, "data");
	msgpack_pack_bin(&pk, sizeof(v));
	msgpack_pack_bin_body(&pk, v, sizeof(v));
	if (key && where == 1) {
		tiny_mp_str(&pk, "parameters");
		msgpack_pack_map(&pk, 1);
		tiny_mp_str(&pk, key);
		msgpack_pack_int64(&pk, val);
	}
	tiny_mp_str(&pk, "outputs");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, key && where == 2 ? 2 : 1);
	tiny_mp_str(&pk, "name");
	tiny_mp_str(&pk, "probabilities");
	if (key && where == 2) {
		tiny_mp_str(&pk, "parameters");
		msgpack_pack_map(&pk, 1);
		tiny_mp_str(&pk, key);
		msgpack_pack_int64(&pk, val);
	}
}

static int parse_param(int where, const char *key, int64_t val, struct ks_infer *ki, char *err)
{
	msgpack_sbuffer sb;
	int rc;

	build_param(&sb, where, key, val);
	rc = mp_parse_infer(&tm, sb.data, sb.size, ki, NULL, err, 512);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* sequence_* and shared_memory_* are refused as in JSON, naming where they were. */
static void test_unsupported_params(void **state)
{
	static const char *const where[] = { "parameters", "inputs[0].parameters",
					     "outputs[0].parameters" };
	struct ks_infer ki;
	char err[512], want[128];

	for (int w = 0; w < 3; w++) {
		assert_int_equal(parse_param(w, "sequence_id", 5, &ki, err), 400);
		snprintf(want, sizeof(want), "%s.sequence_id: not supported (infergw has no "
			 "sequence batching)", where[w]);
		assert_string_equal(err, want);
		assert_int_equal(parse_param(w, "shared_memory_offset", 0, &ki, err), 400);
		snprintf(want, sizeof(want), "%s.shared_memory_offset: not supported", where[w]);
		assert_true(!strncmp(err, want, strlen(want)));
		assert_int_equal(parse_param(w, "harmless", 1, &ki, err), 0);
	}
	assert_int_equal(parse_param(-1, NULL, 0, &ki, err), 0);
}

static void test_class_count(void **state)
{
	struct ks_infer ki;
	char err[512];

	assert_int_equal(parse_param(2, "classification", 2, &ki, err), 0);
	assert_int_equal(ki.class_count, 2);
	assert_int_equal(parse_param(2, "class_count", 1, &ki, err), 0);
	assert_int_equal(ki.class_count, 1);
	assert_int_equal(parse_param(2, "class_count", INT64_MAX, &ki, err), 0);
	assert_int_equal(ki.class_count, 2147483647);
	assert_int_equal(parse_param(2, "classification", -3, &ki, err), 400);
	assert_string_equal(err, "outputs[0].parameters.classification: expected a non-negative "
			    "integer (the number of top classes to return)");
}

/* The classification answer: BYTES [rows, k], data an array of str. */
static void test_encode_classes(void **state)
{
	struct evbuffer *b = evbuffer_new();
	float v[6] = { 0.1f, 0.2f, 0.7f, 1, 0, 0 };
	char *labels[3] = { "a", "b", "c" };
	msgpack_unpacked u;
	const msgpack_object *o, *d;
	size_t n;
	char *buf;

	tm.labels = labels;
	assert_int_equal(mp_encode_classes(b, &tm, NULL, 2, v, 2), 0);
	tm.labels = NULL;
	n = evbuffer_get_length(b);
	buf = malloc(n);
	evbuffer_remove(b, buf, n);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, buf, n, NULL), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.via.map.size, 3);
	o = &u.data.via.map.ptr[2].val.via.array.ptr[0];	/* outputs[0] */
	assert_int_equal(o->via.map.ptr[1].val.via.str.size, 5);
	assert_memory_equal(o->via.map.ptr[1].val.via.str.ptr, "BYTES", 5);
	assert_int_equal(o->via.map.ptr[2].val.via.array.ptr[0].via.u64, 2);
	assert_int_equal(o->via.map.ptr[2].val.via.array.ptr[1].via.u64, 2);
	d = &o->via.map.ptr[3].val;
	assert_int_equal(d->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(d->via.array.size, 4);
	{
		static const char *const want[] = { "0.700000:2:c", "0.200000:1:b",
						    "1.000000:0:a", "0.000000:1:b" };

		for (int i = 0; i < 4; i++) {
			assert_int_equal(d->via.array.ptr[i].type, MSGPACK_OBJECT_STR);
			assert_int_equal(d->via.array.ptr[i].via.str.size, strlen(want[i]));
			assert_memory_equal(d->via.array.ptr[i].via.str.ptr, want[i], strlen(want[i]));
		}
	}
	msgpack_unpacked_destroy(&u);
	free(buf);
	evbuffer_free(b);
}

/*
 * a and b are the same request: the same values, bit for bit, both viewed
 * or both decoded, and every other field the same (both parsers zero the
 * struct first, so the bytes compare).
 */
static void assert_same_request(const struct ks_infer *a, const struct ks_infer *b)
{
	struct ks_infer x = *a, y = *b;

	assert_int_equal(a->rows, b->rows);
	assert_memory_equal(a->data, b->data, (size_t)a->rows * tm.in_dim * sizeof(float));
	assert_true(!a->owned == !b->owned);
	x.data = y.data = NULL;
	x.owned = y.owned = NULL;
	assert_memory_equal(&x, &y, sizeof(x));
}

/*
 * mp_parse_infer reads the usual body in one walk and falls back to the
 * general reader (msgpack-c's tree, mp_parse_infer_general) for anything
 * else or any failing check: both must give the same request, values bit
 * for bit, or the same status and message; with and without model_name.
 */
static void same_both_ways(const char *buf, size_t len)
{
	for (int with_name = 0; with_name < 2; with_name++) {
		struct ks_infer a, b;
		char ea[512] = "", eb[512] = "", na[KS_ID_MAX + 1] = "x", nb[KS_ID_MAX + 1] = "y";
		int ra = mp_parse_infer(&tm, buf, len, &a, with_name ? na : NULL, ea, sizeof(ea));
		int rb = mp_parse_infer_general(&tm, buf, len, &b, with_name ? nb : NULL, eb,
						sizeof(eb));

		if (ra != rb || (ra && strcmp(ea, eb)))
			fail_msg("%zu bytes: fast %d \"%s\", general %d \"%s\"", len, ra, ea, rb, eb);
		if (ra)
			continue;
		if (with_name)
			assert_string_equal(na, nb);
		assert_same_request(&a, &b);
		ks_infer_free(&a);
		ks_infer_free(&b);
	}
}

/*
 * The usual body with every key the one-walk reader takes; dup repeats a
 * root key ("id"), extra adds an unknown one, both_cls gives
 * classification and class_count together.
 */
static void build_usual(msgpack_sbuffer *sb, bool dup, bool extra, bool both_cls)
{
	float v[8] = { 1, -2, 3.5f, 0, 1e-30f, 7, 8, 9 };
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5 + dup + extra);
	tiny_mp_str(&pk, "model_name");
	tiny_mp_str(&pk, "digits");
	tiny_mp_str(&pk, "id");
	tiny_mp_str(&pk, "req-1");
	if (dup) {
		tiny_mp_str(&pk, "id");
		tiny_mp_str(&pk, "req-2");
	}
	if (extra) {
		tiny_mp_str(&pk, "extra");
		msgpack_pack_nil(&pk);
	}
	tiny_mp_str(&pk, "parameters");
	msgpack_pack_map(&pk, 3);
	tiny_mp_str(&pk, "priority");
	msgpack_pack_int(&pk, 3);
	tiny_mp_str(&pk, "timeout");
	msgpack_pack_uint32(&pk, 250000);
	tiny_mp_str(&pk, "variant");
	tiny_mp_str(&pk, "fp32");
	tiny_mp_str(&pk, "inputs");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	tiny_mp_str(&pk, "shape");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_int(&pk, 4);
	tiny_mp_str(&pk, "name");
	tiny_mp_str(&pk, "input");
	tiny_mp_str(&pk, "datatype");
	tiny_mp_str(&pk, "FP32");
	tiny_mp_str(&pk, "data");
	msgpack_pack_bin(&pk, sizeof(v));
	msgpack_pack_bin_body(&pk, v, sizeof(v));
	tiny_mp_str(&pk, "outputs");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1);
	tiny_mp_str(&pk, "name");
	tiny_mp_str(&pk, "probabilities");
	msgpack_pack_map(&pk, 2);
	tiny_mp_str(&pk, "name");
	tiny_mp_str(&pk, "probabilities");
	tiny_mp_str(&pk, "parameters");
	msgpack_pack_map(&pk, both_cls ? 2 : 1);
	tiny_mp_str(&pk, "classification");
	msgpack_pack_int(&pk, 2);
	if (both_cls) {
		tiny_mp_str(&pk, "class_count");
		msgpack_pack_int(&pk, 1);
	}
}

/* Every cut and many one-byte changes of the usual body, both ways. */
static void same_mutated(const char *body, size_t len)
{
	static const unsigned char vals[] = { 0x00, 0x01, 0x7f, 0x80, 0x81, 0x90, 0x91, 0xa0,
					      0xa5, 0xc0, 0xc1, 0xc4, 0xca, 0xcc, 0xcf, 0xd0,
					      0xd9, 0xdc, 0xde, 0xff };
	char *b = malloc(len + 1);

	memcpy(b, body, len);
	for (size_t cut = 0; cut <= len; cut++)
		same_both_ways(b, cut);
	b[len] = 0;
	same_both_ways(b, len + 1);	/* a byte after the map */
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < sizeof(vals) + 2; k++) {
			b[i] = (char)(k < sizeof(vals) ? vals[k] : body[i] ^ (k == sizeof(vals) ? 1 : 0x20));
			same_both_ways(b, len);
		}
		b[i] = body[i];
	}
	free(b);
}

static void test_fast_same_as_general(void **state)
{
	msgpack_sbuffer sb;
	struct ks_infer ki;
	char err[512], name[KS_ID_MAX + 1];

	build_usual(&sb, false, false, false);
	assert_int_equal(mp_parse_infer(&tm, sb.data, sb.size, &ki, name, err, sizeof(err)), 0);
	assert_string_equal(name, "digits");
	assert_int_equal(ki.class_count, 2);
	assert_true(ki.timeout_us == 250000);
	same_mutated(sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	for (int i = 1; i < 8; i++) {
		build_usual(&sb, i & 1, i & 2, i & 4);
		same_both_ways(sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	for (int bad = 0; bad <= 7; bad++) {
		for (int bin = 0; bin < 2; bin++) {
			build(&sb, bin ? 2 : 1, 4, bin, bad == 1 ? "INT32" : "FP32", bad);
			same_mutated(sb.data, sb.size);
			msgpack_sbuffer_destroy(&sb);
		}
	}
}

/* Parameters anywhere, classification, long and odd ids and model names. */
static void test_fast_same_params_names(void **state)
{
	static const char *const keys[] = { "sequence_id", "shared_memory_region", "harmless",
					    "classification", "class_count", "priority",
					    "timeout", "variant", NULL };
	static const int64_t vals[] = { 0, 1, 3, 1000000, 1000001, -1, INT64_MAX, INT64_MIN };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char id[300];

	for (int w = -1; w < 3; w++) {
		for (int k = 0; keys[k]; k++) {
			for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
				build_param(&sb, w, keys[k], vals[v]);
				same_both_ways(sb.data, sb.size);
				msgpack_sbuffer_destroy(&sb);
			}
		}
	}
	memset(id, 'a', sizeof(id));
	for (size_t n = 254; n <= 258; n++) {	/* KS_ID_MAX is 256 */
		for (int as_name = 0; as_name < 3; as_name++) {
			build_param(&sb, -1, NULL, 0);
			/* the map's head said 2 pairs: a third goes on the end as 0x83 */
			sb.data[0] = (char)0x83;
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			tiny_mp_str(&pk, as_name ? "model_name" : "id");
			if (as_name == 2) {
				msgpack_pack_int(&pk, 7);
			} else {
				msgpack_pack_str(&pk, n);
				msgpack_pack_str_body(&pk, id, n);
			}
			same_both_ways(sb.data, sb.size);
			msgpack_sbuffer_destroy(&sb);
		}
	}
}

/* What msgpack-c's packer writes for the answer's head (mpcodec.c used it):
 * the reference the encoder's own bytes are held to. */
static void ref_head(msgpack_packer *pk, const struct model *m, const char *id, int rows,
		     const char *datatype, int cols)
{
	char ver[16];

	msgpack_pack_map(pk, id ? 4 : 3);
	tiny_mp_str(pk, "model_name");
	tiny_mp_str(pk, m->name);
	tiny_mp_str(pk, "model_version");
	snprintf(ver, sizeof(ver), "%d", m->version);
	tiny_mp_str(pk, ver);
	if (id) {
		tiny_mp_str(pk, "id");
		tiny_mp_str(pk, id);
	}
	tiny_mp_str(pk, "outputs");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 4);
	tiny_mp_str(pk, "name");
	tiny_mp_str(pk, m->output.name);
	tiny_mp_str(pk, "datatype");
	tiny_mp_str(pk, datatype);
	tiny_mp_str(pk, "shape");
	msgpack_pack_array(pk, 2);
	msgpack_pack_int(pk, rows);
	msgpack_pack_int(pk, cols);
	tiny_mp_str(pk, "data");
}

/* b's bytes (then drained) must be sb's. */
static void assert_same_bytes(struct evbuffer *b, msgpack_sbuffer *sb)
{
	size_t n = evbuffer_get_length(b);

	assert_int_equal(n, sb->size);
	assert_memory_equal(evbuffer_pullup(b, -1), sb->data, n);
	evbuffer_drain(b, n);
	msgpack_sbuffer_clear(sb);
}

/*
 * The answers are the bytes msgpack-c's packer wrote, at each size where a
 * head changes form: strings of 31/32 and 255/256 and 65535/65536 bytes,
 * counts of 15/16, integers of 127/128, 255/256, 65535/65536, bin of
 * 255/256 and 65535/65536 bytes, versions of every width and sign.
 */
static void test_encode_same_as_packer(void **state)
{
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
	static const int rows[] = { 1, 5, 8, 21, 22, 42, 43, 85, 86, 127, 128, 255, 256, 5461,
				    5462, 21845, 21846, 65535, 65536 };
	static const int versions[] = { 0, 1, 9, 10, 12345, -7, INT_MAX, INT_MIN };
	struct evbuffer *b = evbuffer_new();
	float *v = calloc((size_t)65536 * 3, sizeof(float));
	char *s = malloc(65537), *labels[3] = { "a", "b", "c" };
	struct model m = tm;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	for (int i = 0; i < 65536 * 3; i++)
		v[i] = (float)i / 7;
	memset(s, 'n', 65536);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		for (int w = 0; w < 8; w++) {	/* which of name, output name, id is long */
			const char *id = w & 4 ? s + 65536 - lens[l] : (w & 1) ? "r1" : NULL;
			int r = rows[(l * 8 + w) % (sizeof(rows) / sizeof(rows[0]))];

			s[65536] = 0;
			m.name = w & 1 ? s + 65536 - lens[l] : "digits";
			m.output.name = w & 2 ? s + 65536 - lens[l] : "probabilities";
			m.version = versions[w];
			mp_encode_infer(b, &m, id, r, v);
			ref_head(&pk, &m, id, r, "FP32", m.out_dim);
			msgpack_pack_bin(&pk, (size_t)r * 3 * sizeof(float));
			msgpack_pack_bin_body(&pk, v, (size_t)r * 3 * sizeof(float));
			assert_same_bytes(b, &sb);
			m.labels = w & 1 ? labels : NULL;
			assert_int_equal(mp_encode_classes(b, &m, id, r % 300, v, 2 + w % 2), 0);
			ref_head(&pk, &m, id, r % 300, "BYTES", 2 + w % 2);
			msgpack_pack_array(&pk, (size_t)(r % 300) * (2 + w % 2));
			ks_classes(&m, r % 300, v, 2 + w % 2, tiny_mp_class, &pk);
			assert_same_bytes(b, &sb);
			m.labels = NULL;
		}
		mp_encode_error(b, s + 65536 - lens[l]);
		msgpack_pack_map(&pk, 1);
		tiny_mp_str(&pk, "error");
		tiny_mp_str(&pk, s + 65536 - lens[l]);
		assert_same_bytes(b, &sb);
	}
	msgpack_sbuffer_destroy(&sb);
	free(s);
	free(v);
	evbuffer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nonfinite_refused),
		cmocka_unit_test(test_timeout_saturates),
		cmocka_unit_test(test_huge_counts_refused),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_unsupported_params),
		cmocka_unit_test(test_class_count),
		cmocka_unit_test(test_encode_classes),
		cmocka_unit_test(test_fast_same_as_general),
		cmocka_unit_test(test_fast_same_params_names),
		cmocka_unit_test(test_encode_same_as_packer),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
