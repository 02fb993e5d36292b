/* Unit tests for gateway/api/dgram.c: datagram request decode (views into
 * the datagram, every error naming its field), validation against the
 * model, answer and error encoding parsed back with msgpack-c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgram.h"
#include "kserve.h"
#include "model/model.h"
#include "tiny_model.h"

static struct model tm;

static int setup(void **state)
{
	tiny_model(&tm, 3);
	return 0;
}

/*
 * The request variants: each test names a defect; DEF_NONE is a valid
 * 2x4 request {id 42, model digits, priority 7, timeout_us 1500}.
 */
enum defect {
	DEF_NONE, DEF_ID_LAST, DEF_ID_STR, DEF_NO_ID, DEF_NO_MODEL, DEF_MODEL_INT,
	DEF_MODEL_LONG, DEF_INPUTS_MAP, DEF_INPUTS_EMPTY, DEF_INPUT_STR, DEF_NAME_INT,
	DEF_DTYPE_NIL, DEF_SHAPE_STR, DEF_SHAPE_FLOAT, DEF_SHAPE_9, DEF_DATA_ARRAY,
	DEF_NO_DATA, DEF_PRIO_NEG, DEF_PRIO_BIG, DEF_TIMEOUT_STR, DEF_DUP_MODEL,
	DEF_DUP_SHAPE, DEF_EXTRA_KEYS, DEF_TIMEOUT_HUGE, DEF_ROWS_MINUS1,
};

static void build(msgpack_sbuffer *sb, enum defect d)
{
	static const float v[8] = { 0.5f, 1, 1.5f, 2, -1, -2, 0, 1e-3f };
	msgpack_packer pk;
	int n = 5;

	if (d == DEF_NO_ID || d == DEF_NO_MODEL)
		n--;
	if (d == DEF_DUP_MODEL || d == DEF_EXTRA_KEYS)
		n++;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	if (d == DEF_EXTRA_KEYS) {
		tiny_mp_str(&pk, "comment");
		msgpack_pack_map(&pk, 1);
		tiny_mp_str(&pk, "nested");
		msgpack_pack_array(&pk, 2);
		msgpack_pack_nil(&pk);
		msgpack_pack_true(&pk);
	}
	if (d != DEF_ID_LAST && d != DEF_NO_ID) {
		tiny_mp_str(&pk, "id");
		if (d == DEF_ID_STR)
			tiny_mp_str(&pk, "42");
		else
			msgpack_pack_uint64(&pk, 42);
	}
	if (d != DEF_NO_MODEL) {
		tiny_mp_str(&pk, "model");
		if (d == DEF_MODEL_INT)
			msgpack_pack_int(&pk, 5);
		else if (d == DEF_MODEL_LONG)
			tiny_mp_str(&pk, "a-model-name-that-is-longer-than-sixty-four-bytes-which-is-the-limit");
		else
			tiny_mp_str(&pk, "digits");
	}
	if (d == DEF_DUP_MODEL) {
		tiny_mp_str(&pk, "model");
		tiny_mp_str(&pk, "other");
	}
	tiny_mp_str(&pk, "priority");
	if (d == DEF_PRIO_NEG)
		msgpack_pack_int(&pk, -1);
	else if (d == DEF_PRIO_BIG)
		msgpack_pack_int(&pk, 1000001);
	else
		msgpack_pack_int(&pk, 7);
	tiny_mp_str(&pk, "inputs");
	if (d == DEF_INPUTS_MAP) {
		msgpack_pack_map(&pk, 0);
	} else if (d == DEF_INPUTS_EMPTY) {
		msgpack_pack_array(&pk, 0);
	} else if (d == DEF_INPUT_STR) {
		msgpack_pack_array(&pk, 1);
		tiny_mp_str(&pk, "input");
	} else {
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, d == DEF_NO_DATA ? 3 : d == DEF_DUP_SHAPE ? 5 : 4);
		tiny_mp_str(&pk, "name");
		if (d == DEF_NAME_INT)
			msgpack_pack_int(&pk, 1);
		else
			tiny_mp_str(&pk, "input");
		tiny_mp_str(&pk, "datatype");
		if (d == DEF_DTYPE_NIL)
			msgpack_pack_nil(&pk);
		else
			tiny_mp_str(&pk, "FP32");
		tiny_mp_str(&pk, "shape");
		if (d == DEF_SHAPE_STR) {
			tiny_mp_str(&pk, "[2,4]");
		} else if (d == DEF_SHAPE_9) {
			msgpack_pack_array(&pk, 9);
			for (int i = 0; i < 9; i++)
				msgpack_pack_int(&pk, 1);
		} else {
			msgpack_pack_array(&pk, 2);
			if (d == DEF_ROWS_MINUS1)
				msgpack_pack_int(&pk, -1);
			else if (d == DEF_SHAPE_FLOAT)
				msgpack_pack_double(&pk, 2.0);
			else
				msgpack_pack_int(&pk, 2);
			msgpack_pack_int(&pk, 4);
		}
		if (d == DEF_DUP_SHAPE) {
			tiny_mp_str(&pk, "shape");
			msgpack_pack_array(&pk, 0);
		}
		if (d != DEF_NO_DATA) {
			tiny_mp_str(&pk, "data");
			if (d == DEF_DATA_ARRAY) {
				msgpack_pack_array(&pk, 8);
				for (int i = 0; i < 8; i++)
					msgpack_pack_float(&pk, v[i]);
			} else {
				msgpack_pack_bin(&pk, sizeof(v));
				msgpack_pack_bin_body(&pk, v, sizeof(v));
			}
		}
	}
	tiny_mp_str(&pk, "timeout_us");
	if (d == DEF_TIMEOUT_STR)
		tiny_mp_str(&pk, "1ms");
	else if (d == DEF_TIMEOUT_HUGE)
		msgpack_pack_uint64(&pk, UINT64_MAX);
	else
		msgpack_pack_uint64(&pk, 1500);
	if (d == DEF_ID_LAST) {
		tiny_mp_str(&pk, "id");
		msgpack_pack_uint64(&pk, 42);
	}
}

/* The last decoded datagram: r's views point into it, so it lives until
 * the next decode (or the test's teardown). */
static msgpack_sbuffer kept;

static int decode(enum defect d, struct dg_req *r, char *err, size_t errlen)
{
	msgpack_sbuffer_destroy(&kept);
	build(&kept, d);
	return dg_decode((const uint8_t *)kept.data, kept.size, r, err, errlen);
}

static int teardown(void **state)
{
	msgpack_sbuffer_destroy(&kept);
	memset(&kept, 0, sizeof(kept));
	return 0;
}

/* dg_peek_id: the id at the head of a datagram cut short (a first fragment). */
static void test_peek_id(void **state)
{
	static const uint8_t cut[] = { 0x83, 0xa2, 'i', 'd', 0xcd, 0x07, 0xda, 0xa5, 'm', 'o' };
	static const uint8_t model_first[] = { 0x82, 0xa5, 'm', 'o', 'd', 'e', 'l', 0xa1, 'x' };
	static const uint8_t neg[] = { 0x81, 0xa2, 'i', 'd', 0xff };
	uint64_t id = 0;

	(void)state;
	assert_true(dg_peek_id(cut, sizeof(cut), &id));
	assert_int_equal(id, 2010);
	assert_false(dg_peek_id(cut, 4, &id));		/* the value cut off */
	assert_false(dg_peek_id(model_first, sizeof(model_first), &id));
	assert_false(dg_peek_id(neg, sizeof(neg), &id));
	assert_false(dg_peek_id((const uint8_t *)"\x90", 1, &id));	/* an array */
	assert_false(dg_peek_id(NULL, 0, &id));
}

static void test_decode_valid(void **state)
{
	msgpack_sbuffer sb;
	struct dg_req r;
	char err[256] = "";
	const float *data;
	int rows;

	build(&sb, DEF_NONE);
	assert_int_equal(dg_decode((const uint8_t *)sb.data, sb.size, &r, err, sizeof(err)), 0);
	assert_true(r.has_id);
	assert_int_equal(r.id, 42);
	assert_string_equal(r.model, "digits");
	assert_int_equal(r.priority, 7);
	assert_int_equal(r.timeout_us, 1500);
	assert_int_equal(r.n_inputs, 1);
	assert_int_equal(r.inputs[0].name_len, 5);
	assert_memory_equal(r.inputs[0].name, "input", 5);
	assert_memory_equal(r.inputs[0].datatype, "FP32", 4);
	assert_int_equal(r.inputs[0].ndim, 2);
	assert_int_equal(r.inputs[0].dims[0], 2);
	assert_int_equal(r.inputs[0].dims[1], 4);
	assert_int_equal(r.inputs[0].data_len, 32);
	/* a view: the bytes are the datagram's own */
	assert_true(r.inputs[0].data > (const uint8_t *)sb.data &&
		    r.inputs[0].data + 32 <= (const uint8_t *)sb.data + sb.size);
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 0);
	assert_int_equal(rows, 2);
	assert_ptr_equal(data, (const void *)r.inputs[0].data);
	float f[8];
	memcpy(f, data, sizeof(f));
	assert_true(f[0] == 0.5f && f[3] == 2.0f && f[5] == -2.0f && f[7] == 1e-3f);
	msgpack_sbuffer_destroy(&sb);

	/* unknown keys (nested) are skipped */
	assert_int_equal(decode(DEF_EXTRA_KEYS, &r, err, sizeof(err)), 0);
	assert_int_equal(r.id, 42);
	/* timeout saturates */
	assert_int_equal(decode(DEF_TIMEOUT_HUGE, &r, err, sizeof(err)), 0);
	assert_int_equal(r.timeout_us, KS_TIMEOUT_MAX_US);
	/* [-1, 4]: rows from the data length */
	assert_int_equal(decode(DEF_ROWS_MINUS1, &r, err, sizeof(err)), 0);
	assert_int_equal(r.inputs[0].dims[0], -1);
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 0);
	assert_int_equal(rows, 2);
}

/* Every decode error names its field; the id survives when readable. */
static void test_decode_errors(void **state)
{
	static const struct {
		enum defect d;
		const char *want;
		bool has_id;
	} cases[] = {
		{ DEF_ID_STR, "id: expected an unsigned integer, got a string", false },
		{ DEF_NO_ID, "id: missing", false },
		{ DEF_NO_MODEL, "model: missing", true },
		{ DEF_MODEL_INT, "model: expected a string, got an integer", true },
		{ DEF_MODEL_LONG, "model: 68 bytes, model names have at most 64", true },
		{ DEF_INPUTS_MAP, "inputs: expected an array of input tensors, got a map", true },
		{ DEF_INPUTS_EMPTY, "inputs: empty", true },
		{ DEF_INPUT_STR, "inputs[0]: expected a map, got a string", true },
		{ DEF_NAME_INT, "inputs[0].name: expected a string, got an integer", true },
		{ DEF_DTYPE_NIL, "inputs[0].datatype: expected a string, got nil", true },
		{ DEF_SHAPE_STR, "inputs[0].shape: expected an array of integers, got a string", true },
		{ DEF_SHAPE_FLOAT, "inputs[0].shape[0]: expected an integer, got a float", true },
		{ DEF_SHAPE_9, "inputs[0].shape: 9 dimensions, at most 8", true },
		{ DEF_DATA_ARRAY, "inputs[0].data: expected bin (little-endian values), got an array", true },
		{ DEF_NO_DATA, "inputs[0].data: missing", true },
		{ DEF_PRIO_NEG, "priority: expected an integer 0 to 1000000", true },
		{ DEF_PRIO_BIG, "priority: expected an integer 0 to 1000000", true },
		{ DEF_TIMEOUT_STR, "timeout_us: expected a non-negative integer (microseconds), got a string", true },
		{ DEF_DUP_MODEL, "model: given twice", true },
		{ DEF_DUP_SHAPE, "inputs[0].shape: given twice", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dg_req r;
		char err[256] = "";

		assert_int_equal(decode(cases[i].d, &r, err, sizeof(err)), 400);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].want);
		assert_int_equal(r.has_id, cases[i].has_id);
		if (cases[i].has_id)
			assert_int_equal(r.id, 42);
	}
}

static void test_decode_malformed(void **state)
{
	msgpack_sbuffer sb;
	struct dg_req r;
	char err[256];
	uint8_t buf[512];

	assert_int_equal(dg_decode(NULL, 0, &r, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "empty datagram"));
	build(&sb, DEF_NONE);
	/* every truncation is refused, never read past */
	for (size_t n = 1; n < sb.size; n++) {
		uint8_t *copy = malloc(n);	/* exact size: ASan sees an overread */

		memcpy(copy, sb.data, n);
		assert_int_equal(dg_decode(copy, n, &r, err, sizeof(err)), 400);
		assert_non_null(strstr(err, "malformed msgpack"));
		free(copy);
	}
	/* trailing bytes */
	memcpy(buf, sb.data, sb.size);
	buf[sb.size] = 0xc0;
	assert_int_equal(dg_decode(buf, sb.size + 1, &r, err, sizeof(err)), 400);
	assert_string_equal(err, "request: 1 bytes after the msgpack map");
	msgpack_sbuffer_destroy(&sb);
	/* not a map */
	assert_int_equal(dg_decode((const uint8_t *)"\x93\x01\x02\x03", 4, &r, err, sizeof(err)), 400);
	assert_string_equal(err, "request: expected a msgpack map, got an array");
	/* not msgpack at all: 0xc1 is never used */
	assert_int_equal(dg_decode((const uint8_t *)"\xc1", 1, &r, err, sizeof(err)), 400);
	/* plain text (JSON): a fixstr-ish byte soup that does not parse as one map */
	assert_int_equal(dg_decode((const uint8_t *)"{\"id\":1}", 8, &r, err, sizeof(err)), 400);
	/* an array32 header claiming 2^32-1 elements: refused by count, not walked */
	assert_int_equal(dg_decode((const uint8_t *)"\x81\xa1x\xdd\xff\xff\xff\xff\x00", 9, &r, err,
				   sizeof(err)), 400);
	assert_non_null(strstr(err, "malformed msgpack"));
	/* a map16 claiming 65535 pairs with 2 bytes left */
	assert_int_equal(dg_decode((const uint8_t *)"\xde\xff\xff\x01\x02", 5, &r, err, sizeof(err)),
			 400);
	/* deep nesting is linear and fine: 400 levels of [[[...]]] under an unknown key */
	size_t n = 0;
	buf[n++] = 0x81;
	buf[n++] = 0xa1;
	buf[n++] = 'z';
	for (int i = 0; i < 400; i++)
		buf[n++] = 0x91;
	buf[n++] = 0xc0;
	assert_int_equal(dg_decode(buf, n, &r, err, sizeof(err)), 400);
	assert_string_equal(err, "id: missing");
}

static void test_check(void **state)
{
	struct dg_req r;
	char err[256];
	const float *data;
	int rows;

	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	/* the HTTP path's checks, the HTTP path's words */
	r.inputs[0].name = "pixels";
	r.inputs[0].name_len = 6;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].name: model digits has no input \"pixels\""));

	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	r.inputs[0].datatype = "INT64";
	r.inputs[0].datatype_len = 5;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].datatype: expected FP32, got INT64"));

	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	r.inputs[0].dims[1] = 5;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].shape: expected [-1, 4], got [2, 5]"));

	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	r.inputs[0].dims[0] = 9;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].shape[0]: batch of 9 rows, expected 1 to 8"));

	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	r.inputs[0].dims[0] = 1;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].data: 32 bytes, expected 16 for shape [1, 4] FP32"));

	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	r.n_inputs = 2;
	r.inputs[1] = r.inputs[0];
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs: model digits takes 1 input, got 2"));

	/* [-1, 4] with a length that is not whole rows */
	assert_int_equal(decode(DEF_ROWS_MINUS1, &r, err, sizeof(err)), 0);
	r.inputs[0].data_len = 30;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].data: 30 bytes is not a whole number of rows"));
	r.inputs[0].data_len = 0;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "batch of 0 rows"));
	/* -1 anywhere else is the HTTP path's refusal */
	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	r.inputs[0].dims[1] = -1;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].shape[1]: expected a non-negative integer"));

	/* a non-finite value */
	uint8_t bad[32];
	float inf = INFINITY;
	assert_int_equal(decode(DEF_NONE, &r, err, sizeof(err)), 0);
	memset(bad, 0, sizeof(bad));
	memcpy(bad + 12, &inf, 4);
	r.inputs[0].data = bad;
	assert_int_equal(dg_check(&tm, &r, &rows, &data, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "inputs[0].data[3]"));
}

/* msgpack-c's view of an encoded map: the value of key, or NULL. */
static const msgpack_object *get(const msgpack_object *o, const char *key)
{
	for (uint32_t i = 0; o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
		    !memcmp(k->via.str.ptr, key, k->via.str.size))
			return &o->via.map.ptr[i].val;
	}
	return NULL;
}

static bool str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static void test_encode_answer(void **state)
{
	float out[6] = { 0.1f, 0.2f, 0.7f, 1e-8f, 0.5f, -3.25f };
	uint8_t buf[256];
	msgpack_unpacked u;
	size_t n, off = 0;
	const msgpack_object *o, *t;

	n = dg_encode_answer(buf, sizeof(buf), 1234567890123ULL, &tm, out, 2);
	assert_int_equal(n, dg_answer_size(&tm, 1234567890123ULL, 2));
	assert_true(n > 24);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, n, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, n);
	o = &u.data;
	assert_int_equal(o->via.map.size, 4);
	assert_int_equal(get(o, "id")->via.u64, 1234567890123ULL);
	assert_true(str_is(get(o, "model"), "digits"));
	assert_true(str_is(get(o, "model_version"), "3"));
	assert_int_equal(get(o, "outputs")->via.array.size, 1);
	t = &get(o, "outputs")->via.array.ptr[0];
	assert_true(str_is(get(t, "name"), "probabilities"));
	assert_true(str_is(get(t, "datatype"), "FP32"));
	assert_int_equal(get(t, "shape")->via.array.size, 2);
	assert_int_equal(get(t, "shape")->via.array.ptr[0].via.i64, 2);
	assert_int_equal(get(t, "shape")->via.array.ptr[1].via.i64, 3);
	assert_int_equal(get(t, "data")->type, MSGPACK_OBJECT_BIN);
	assert_int_equal(get(t, "data")->via.bin.size, 24);
	/* little-endian FP32, bit for bit */
	const uint8_t *b = (const uint8_t *)get(t, "data")->via.bin.ptr;
	for (int i = 0; i < 6; i++) {
		uint32_t want, got = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
				     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;

		memcpy(&want, &out[i], 4);
		assert_int_equal(got, want);
	}
	msgpack_unpacked_destroy(&u);

	/* one byte short: nothing */
	assert_int_equal(dg_encode_answer(buf, n - 1, 1234567890123ULL, &tm, out, 2), 0);
	assert_int_equal(dg_encode_answer(buf, n, 1234567890123ULL, &tm, out, 2), n);
	/* the size grows with the id's encoding and the rows */
	assert_int_equal(dg_answer_size(&tm, 1, 2) + 8, dg_answer_size(&tm, 1ULL << 40, 2));
	assert_int_equal(dg_answer_size(&tm, 1, 3), dg_answer_size(&tm, 1, 2) + 12);
}

static void test_check_fits(void **state)
{
	char err[256];
	size_t n = dg_answer_size(&tm, 7, 8);

	assert_int_equal(dg_check_fits(&tm, 7, 8, n, err, sizeof(err)), 0);
	assert_int_equal(dg_check_fits(&tm, 7, 8, n - 1, err, sizeof(err)), 413);
	char want[160];
	snprintf(want, sizeof(want),
		 "answer of %zu bytes does not fit a datagram (at most %zu); use HTTP/2", n, n - 1);
	assert_string_equal(err, want);
}

static void test_encode_error(void **state)
{
	uint8_t buf[2048];
	msgpack_unpacked u;
	size_t n, off = 0;
	char longmsg[1200];

	n = dg_encode_error(buf, sizeof(buf), 99, 404, "model: unknown model \"nope\"");
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, n, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, n);
	assert_int_equal(u.data.via.map.size, 3);
	assert_int_equal(get(&u.data, "id")->via.u64, 99);
	assert_int_equal(get(&u.data, "code")->via.i64, 404);
	assert_true(str_is(get(&u.data, "error"), "model: unknown model \"nope\""));
	msgpack_unpacked_destroy(&u);

	/* a long message is cut to fit DG_ERROR_MIN, at a UTF-8 boundary */
	for (size_t i = 0; i + 2 < sizeof(longmsg); i += 2)
		memcpy(longmsg + i, "\xc3\xa9", 2);	/* é */
	longmsg[sizeof(longmsg) - 2] = 0;
	for (size_t cap = DG_ERROR_MIN; cap < DG_ERROR_MIN + 300; cap++) {
		n = dg_encode_error(buf, cap, UINT64_MAX, 413, longmsg);
		assert_true(n > 0 && n <= cap);
		off = 0;
		msgpack_unpacked_init(&u);
		assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, n, &off),
				 MSGPACK_UNPACK_SUCCESS);
		const msgpack_object *e = get(&u.data, "error");
		assert_int_equal(e->via.str.size % 2, 0);	/* whole characters */
		assert_true(e->via.str.size + 8 >= cap - 30);	/* and not cut much more */
		assert_memory_equal(e->via.str.ptr, longmsg, e->via.str.size);
		assert_int_equal(get(&u.data, "id")->via.u64, UINT64_MAX);
		msgpack_unpacked_destroy(&u);
	}
	/* far too small: nothing */
	assert_int_equal(dg_encode_error(buf, 8, 1, 400, "x"), 0);
	/* the empty message fits in its fixed part */
	n = dg_encode_error(buf, DG_ERROR_MIN, 0, 400, NULL);
	assert_true(n > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek_id),
		cmocka_unit_test_setup_teardown(test_decode_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_fits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_error, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
