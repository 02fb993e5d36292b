/* Unit tests for gateway/api/mpcodec.c: msgpack request decode (zero-copy bin) and response encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <event2/buffer.h>
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
	assert_true(ki.data[7] == 3.5f);
	assert_int_equal(mp_peek_model(sb.data, sb.size, name, sizeof(name)), 0);
	assert_string_equal(name, "digits");
	msgpack_sbuffer_destroy(&sb);
	build(&sb, 1, 4, false, "FP32", 0);
	assert_int_equal(mp_parse_infer(&tm, sb.data, sb.size, &ki, NULL, err, sizeof(err)), 0);
	assert_non_null(ki.owned);
	assert_true(ki.data[3] == 1.5f);
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
	char err[512], name[16];

	assert_int_equal(mp_parse_infer(&tm, arr32, 5, &ki, NULL, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "body ends inside the map (the value at byte 0"));
	assert_int_equal(mp_parse_infer(&tm, map32, 5, &ki, NULL, err, sizeof(err)), 400);
	assert_int_equal(mp_peek_model(arr32, 5, name, sizeof(name)), -EINVAL);
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
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
