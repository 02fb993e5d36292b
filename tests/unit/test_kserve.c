/* Unit tests for gateway/api/kserve.c: infer request parsing, validation, encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "kserve.h"
#include "model/model.h"
#include "tiny_model.h"

static struct model tm;

static int setup(void **state)
{
	tiny_model(&tm, 1);
	tm.platform = "infergw-mlp";
	return 0;
}

static int parse(const char *body, struct ks_infer *ki, char *err)
{
	return ks_parse_infer(&tm, body, strlen(body), NULL, 0, ki, err, 512);
}

static void test_valid_flat_and_nested(void **state)
{
	struct ks_infer ki;
	char err[512];

	assert_int_equal(parse("{\"id\":\"r1\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
			       "\"shape\":[2,4],\"data\":[1,2,3,4,5,6,7,8.5]}]}", &ki, err), 0);
	assert_int_equal(ki.rows, 2);
	assert_true(ki.has_id);
	assert_string_equal(ki.id, "r1");
	assert_true(ki.data[0] == 1.0f && ki.data[7] == 8.5f);
	assert_ptr_equal(ki.data, ki.owned);
	ks_infer_free(&ki);
	assert_int_equal(parse("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
			       "\"shape\":[2,4],\"data\":[[1,2,3,4],[5,6,7,-8e-1]]}],"
			       "\"outputs\":[{\"name\":\"probabilities\"}],"
			       "\"parameters\":{\"priority\":2,\"timeout\":5000}}", &ki, err), 0);
	assert_false(ki.has_id);
	assert_true(ki.data[4] == 5.0f && ki.data[7] == -0.8f);
	assert_int_equal(ki.priority, 2);
	assert_int_equal(ki.timeout_us, 5000);
	ks_infer_free(&ki);
}

/* Each malformed body gets 400 and a message naming the field. */
static void test_errors_name_the_field(void **state)
{
	static const struct { const char *body, *msg; } cases[] = {
		{ "{\"inputs\":[", "malformed JSON at line 1 column" },
		{ "", "request body: empty" },
		{ "[1,2]", "request body: expected a JSON object, got a list" },
		{ "{}", "inputs: expected a list of input tensors, got nothing" },
		{ "{\"inputs\":[]}", "inputs: model digits takes 1 input, got 0" },
		{ "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}",
		  "inputs[0].name: model digits has no input \"x\"" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT32\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}",
		  "inputs[0].datatype: expected FP32, got INT32" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":[1,2,3,4,5,6]}]}",
		  "inputs[0].shape: expected [-1, 4], got [2, 3]" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[4],\"data\":[1,2,3,4]}]}",
		  "inputs[0].shape: expected [-1, 4], got [4]" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],\"data\":[1,2,3]}]}",
		  "inputs[0].data: expected 8 values for shape [2, 4], got 3" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,\"x\",4]}]}",
		  "inputs[0].data[2]: expected a number, got a string" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],\"data\":[[1,2,3,4],[3,true,1,1]]}]}",
		  "inputs[0].data[1][1]: expected a number, got a boolean" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],\"data\":[[1,2,3],[4,5,6,7,8]]}]}",
		  "inputs[0].data[0]: expected 4 elements (dimension 1 of shape [2, 4]), got 3" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],\"data\":[[1,2,3,4]]}]}",
		  "inputs[0].data: expected 2 elements (dimension 0 of shape [2, 4]), got 1" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[[[1],[2],[3],[4]]]}]}",
		  "inputs[0].data[0][0]: expected a number, got a list" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],\"data\":[[1,2,3,4],5]}]}",
		  "inputs[0].data[1]: expected a list, got an integer" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[9,4],\"data\":[]}]}",
		  "inputs[0].shape[0]: batch of 9 rows, expected 1 to 8" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}],"
		  "\"outputs\":[{\"name\":\"logits\"}]}", "outputs[0].name: model digits has no output \"logits\"" },
		{ "{\"id\":5,\"inputs\":[]}", "id: expected a string, got an integer" },
		{ "{\"parameters\":{\"timeout\":-1},\"inputs\":[]}", "parameters.timeout: expected a non-negative integer" },
		{ "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}],"
		  "\"inputs\":[]}", "malformed JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ks_infer ki;
		char err[512] = "";

		assert_int_equal(parse(cases[i].body, &ki, err), 400);
		if (!strstr(err, cases[i].msg))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].msg);
		assert_null(ki.data);
		assert_null(ki.owned);
	}
}

static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = 0;
	return s;
}

/* Triton's binary extension: tensors after the JSON header, viewed in place. */
static void test_binary_inputs(void **state)
{
	static const char hdr[] = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
		"\"shape\":[2,4],\"parameters\":{\"binary_data_size\":32}}],"
		"\"outputs\":[{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":true}}]}";
	char body[sizeof(hdr) + 40], err[512];
	float v[8] = { 1, 2, 3, 4, 5, 6, 7, -8 };
	size_t hl = sizeof(hdr) - 1;
	struct ks_infer ki;

	memcpy(body, hdr, hl);
	memcpy(body + hl, v, sizeof(v));
	assert_int_equal(ks_parse_infer(&tm, body, hl, body + hl, 32, &ki, err, sizeof(err)), 0);
	assert_int_equal(ki.rows, 2);
	assert_ptr_equal(ki.data, body + hl);	/* not copied */
	assert_null(ki.owned);
	assert_true(ki.binary_output);
	assert_memory_equal(ki.data, v, sizeof(v));
	/* Trailing bytes, short binary section, wrong size, no section. */
	assert_int_equal(ks_parse_infer(&tm, body, hl, body + hl, 36, &ki, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "4 bytes after the last binary input"));
	assert_int_equal(ks_parse_infer(&tm, body, hl, body + hl, 16, &ki, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "runs past the end of the body"));
	assert_int_equal(ks_parse_infer(&tm, body, hl, NULL, 0, &ki, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "no Inference-Header-Content-Length header"));
	{
		char bad[sizeof(hdr) + 8];

		snprintf(bad, sizeof(bad), "%s", hdr);
		memcpy(strstr(bad, "32}"), "28}", 3);
		assert_int_equal(ks_parse_infer(&tm, bad, hl, body + hl, 28, &ki, err, sizeof(err)), 400);
		assert_non_null(strstr(err, "inputs[0].parameters.binary_data_size: 28 bytes, expected 32 for shape [2, 4] FP32"));
	}
}

static void test_encode_response(void **state)
{
	struct evbuffer *b = evbuffer_new();
	float v[6] = { 0.1f, 0.2f, 0.7f, 1.0f, 0.0f, 1e-8f };
	char *s;

	assert_int_equal(ks_encode_infer(b, &tm, "q\"1", 2, v, false), 0);
	s = drain(b);
	assert_string_equal(s, "{\"model_name\":\"digits\",\"model_version\":\"1\",\"id\":\"q\\\"1\","
			    "\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"FP32\","
			    "\"shape\":[2,3],\"data\":[0.100000001,0.200000003,0.699999988,1,0,9.99999994e-09]}]}");
	free(s);
	/* Binary output: JSON header with binary_data_size, then the raw floats. */
	{
		size_t hl = ks_encode_infer(b, &tm, NULL, 2, v, true);

		s = drain(b);
		assert_int_equal(hl, strlen("{\"model_name\":\"digits\",\"model_version\":\"1\","
					    "\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"FP32\","
					    "\"shape\":[2,3],\"parameters\":{\"binary_data_size\":24}}]}"));
		assert_memory_equal(s + hl, v, sizeof(v));
		free(s);
	}
	ks_encode_model(b, &tm);
	s = drain(b);
	assert_string_equal(s, "{\"name\":\"digits\",\"versions\":[\"1\"],\"platform\":\"infergw-mlp\","
			    "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,4]}],"
			    "\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],"
			    "\"max_batch_size\":8}");
	free(s);
	/* a model with variants lists them; one without (n <= 1) is as above */
	{
		struct ks_variants v = { .n = 2, .name = { "fp32", "int8" }, .hosts = { 2, 1 },
					 .policy = "accurate" };

		ks_encode_model_variants(b, &tm, &v);
		s = drain(b);
		assert_non_null(strstr(s, "\"max_batch_size\":8,\"variants\":[{\"name\":\"fp32\","
					  "\"backends\":2},{\"name\":\"int8\",\"backends\":1}],"
					  "\"variant_policy\":\"accurate\"}"));
		free(s);
		v.n = 1;
		ks_encode_model_variants(b, &tm, &v);
		s = drain(b);
		assert_null(strstr(s, "variants"));
		free(s);
	}
	evbuffer_free(b);
}

/* parameters.variant: "fp32" | "int8", else a 400 naming it. */
static void test_check_variant(void **state)
{
	char err[160];
	int v = -1;

	assert_int_equal(ks_check_variant("int8", 4, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 1 + VARIANT_INT8);
	assert_int_equal(ks_check_variant("fp32", 4, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 1 + VARIANT_FP32);
	assert_int_equal(ks_check_variant("int8x", 5, &v, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "parameters.variant: unknown variant \"int8x\""));
	assert_int_equal(ks_check_variant("int", 3, &v, err, sizeof(err)), 400);
	assert_int_equal(ks_check_variant(NULL, 0, &v, err, sizeof(err)), 400);
	assert_non_null(strstr(err, "parameters.variant: expected a string"));
}

#define IN "\"name\":\"input\",\"datatype\":\"FP32\","

/*
 * Only the list at inputs[0].data is ever read fast: a "data" elsewhere
 * (an object beside inputs, an output's parameters) is not the input,
 * whatever spelling inputs[0] uses for its own key.
 */
static void test_data_only_from_inputs(void **state)
{
	struct ks_infer ki;
	char err[512] = "";

	/* The key spelled with an escape is jansson's "data", and it is empty. */
	assert_int_equal(parse("{\"inputs\":[{" IN "\"shape\":[1,4],\"d\\u0061ta\":[]}],"
			       "\"x\":{\"data\":[1,2,3,4]}}", &ki, err), 400);
	assert_string_equal(err, "inputs[0].data: expected 4 values for shape [1, 4], got 0");
	assert_int_equal(parse("{\"inputs\":[{" IN "\"shape\":[1,4],\"d\\u0061ta\":[]}],"
			       "\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
			       "{\"data\":[1,2,3,4]}}]}", &ki, err), 400);
	assert_string_equal(err, "inputs[0].data: expected 4 values for shape [1, 4], got 0");
	/* No data in inputs[0] at all. */
	assert_int_equal(parse("{\"x\":{\"data\":[1,2,3,4]},\"inputs\":[{" IN "\"shape\":[1,4]}]}",
			       &ki, err), 400);
	assert_string_equal(err, "inputs[0].data: expected a list of numbers, got nothing");
	/* The escaped spelling with values: those values, not x's. */
	assert_int_equal(parse("{\"inputs\":[{" IN "\"shape\":[1,4],\"d\\u0061ta\":[5,6,7,8]}],"
			       "\"x\":{\"data\":[1,2,3,4]}}", &ki, err), 0);
	assert_true(ki.data[0] == 5.0f && ki.data[3] == 8.0f);
	ks_infer_free(&ki);
	/* A "data" before inputs, then the real one. */
	assert_int_equal(parse("{\"x\":{\"data\":[9,9,9,9]},\"inputs\":[{" IN "\"shape\":[1,4],"
			       "\"data\":[1,2,3,4]}]}", &ki, err), 0);
	assert_true(ki.data[0] == 1.0f && ki.data[3] == 4.0f);
	ks_infer_free(&ki);
}

/* Inf/NaN never enter the model: 1e39 is Inf as FP32 (and finite as a double). */
static void test_nonfinite_refused(void **state)
{
	static const struct { const char *data, *msg; } cases[] = {
		{ "[1,2,1e39,4]", "inputs[0].data[2]: not a finite FP32 value (+Inf)" },
		{ "[-1e39,2,3,4]", "inputs[0].data[0]: not a finite FP32 value (-Inf)" },
		/* a 19-digit integer makes the fast scan decline: jansson's path */
		{ "[1234567890123456789,2,1e39,4]", "inputs[0].data[2]: not a finite FP32 value (+Inf)" },
		{ "[[1,2,3,4]]", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[256], err[512] = "";
		struct ks_infer ki;

		snprintf(body, sizeof(body), "{\"inputs\":[{" IN "\"shape\":[1,4],\"data\":%s}]}",
			 cases[i].data);
		if (!cases[i].msg) {
			assert_int_equal(parse(body, &ki, err), 0);
			ks_infer_free(&ki);
			continue;
		}
		assert_int_equal(parse(body, &ki, err), 400);
		assert_string_equal(err, cases[i].msg);
		assert_null(ki.owned);
	}
	{
		char err[512] = "";
		struct ks_infer ki;

		assert_int_equal(parse("{\"inputs\":[{" IN "\"shape\":[2,4],\"data\":"
				       "[[1,2,3,4],[5,1e39,7,8]]}]}", &ki, err), 400);
		assert_string_equal(err, "inputs[0].data[1][1]: not a finite FP32 value (+Inf)");
	}
}

/* The binary extension: raw +Inf / NaN bytes are refused too. */
static void test_binary_nonfinite_refused(void **state)
{
	static const char hdr[] = "{\"inputs\":[{" IN "\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16}}]}";
	char body[sizeof(hdr) + 16], err[512];
	size_t hl = sizeof(hdr) - 1;
	struct ks_infer ki;
	float v[4] = { 1, 2, 3, INFINITY };

	memcpy(body, hdr, hl);
	memcpy(body + hl, v, sizeof(v));
	assert_int_equal(ks_parse_infer(&tm, body, hl, body + hl, 16, &ki, err, sizeof(err)), 400);
	assert_string_equal(err, "inputs[0].data[3]: not a finite FP32 value (+Inf)");
	v[3] = 4;
	v[1] = NAN;
	memcpy(body + hl, v, sizeof(v));
	assert_int_equal(ks_parse_infer(&tm, body, hl, body + hl, 16, &ki, err, sizeof(err)), 400);
	assert_string_equal(err, "inputs[0].data[1]: not a finite FP32 value (NaN)");
}

/* A timeout too large for the clock saturates instead of wrapping. */
static void test_timeout_saturates(void **state)
{
	struct ks_infer ki;
	char err[512];

	assert_int_equal(parse("{\"parameters\":{\"timeout\":9223372036854775807},\"inputs\":[{" IN
			       "\"shape\":[1,4],\"data\":[1,2,3,4]}]}", &ki, err), 0);
	assert_true(ki.timeout_us == KS_TIMEOUT_MAX_US);
	ks_infer_free(&ki);
	assert_true(ks_clamp_timeout(UINT64_MAX) == KS_TIMEOUT_MAX_US);
	assert_true(ks_clamp_timeout(5000) == 5000);
	/* the objective in ns and a deadline on a monotonic clock cannot wrap */
	assert_true((uint64_t)KS_TIMEOUT_MAX_US * 1000 < (UINT64_C(1) << 62));
}

/* Outputs that are not finite: 500 for a JSON answer, and never a bare nan. */
static void test_nonfinite_output(void **state)
{
	struct evbuffer *b = evbuffer_new();
	float v[6] = { 0.1f, NAN, 0.7f, 1.0f, INFINITY, 0 };
	char err[256], *s;
	json_t *j;

	assert_int_equal(ks_check_output(&tm, 2, v, err, sizeof(err)), 500);
	assert_string_equal(err, "model digits produced NaN at outputs[0].data[1], which JSON "
			    "cannot carry (binary_data_output or msgpack can)");
	v[1] = 0.2f;
	assert_int_equal(ks_check_output(&tm, 1, v, err, sizeof(err)), 0);
	v[1] = NAN;
	ks_encode_infer(b, &tm, NULL, 2, v, false);
	s = drain(b);
	assert_non_null(strstr(s, "\"data\":[0.100000001,null,0.699999988,1,null,0]"));
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	free(s);
	evbuffer_free(b);
}

/* Any C string becomes valid JSON: escapes, and U+FFFD for bytes that are not UTF-8. */
static void test_put_str_always_json(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "\x01\x1f\n\x7f", "\"\\u0001\\u001f\\u000a\x7f\"" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "x\xffy", "\"x\\ufffdy\"" },			/* a lone 0xff */
		{ "\xc3", "\"\\ufffd\"" },			/* truncated sequence */
		{ "\xc0\xaf", "\"\\ufffd\\ufffd\"" },		/* overlong '/' */
		{ "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" },	/* overlong, 3 bytes */
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },	/* a surrogate */
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },	/* past U+10FFFF */
		{ "\x80", "\"\\ufffd\"" },			/* a lone continuation */
	};
	struct evbuffer *b = evbuffer_new();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s;
		json_t *j;

		ks_put_str(b, cases[i].in);
		s = drain(b);
		if (strcmp(s, cases[i].out))
			fail_msg("case %zu: got %s, want %s", i, s, cases[i].out);
		j = json_loads(s, JSON_DECODE_ANY, NULL);
		if (!j)
			fail_msg("case %zu: %s is not JSON", i, s);
		json_decref(j);
		free(s);
	}
	evbuffer_free(b);
	{
		json_t *j = ks_json_string("a\"\xff");

		assert_non_null(j);
		assert_string_equal(json_string_value(j), "a\"\xef\xbf\xbd");
		json_decref(j);
	}
}


#define REQ1 "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4]," \
	     "\"data\":[1,2,3,4]%s}]%s}"

/* Body REQ1 with in (inside inputs[0]) and rest (after inputs): 0 or the status, err set. */
static int parse_with(const char *in, const char *rest, struct ks_infer *ki, char *err)
{
	char body[1024];
	int rc;

	snprintf(body, sizeof(body), REQ1, in, rest);
	rc = parse(body, ki, err);
	if (!rc)
		ks_infer_free(ki);
	return rc;
}

/* Parameters infergw does not implement are a 400 naming them, wherever they are. */
static void test_unsupported_params(void **state)
{
	static const char *const keys[] = { "sequence_id", "sequence_start", "sequence_end",
		"shared_memory_region", "shared_memory_byte_size", "shared_memory_offset" };
	struct ks_infer ki;
	char err[512], in[128], rest[256], want[128];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(rest, sizeof(rest), ",\"parameters\":{\"priority\":1,\"%s\":1}", keys[i]);
		assert_int_equal(parse_with("", rest, &ki, err), 400);
		snprintf(want, sizeof(want), "parameters.%s: not supported (", keys[i]);
		assert_non_null(strstr(err, want));
		assert_true(!strncmp(err, want, strlen(want)));

		snprintf(in, sizeof(in), ",\"parameters\":{\"%s\":\"r\"}", keys[i]);
		assert_int_equal(parse_with(in, "", &ki, err), 400);
		snprintf(want, sizeof(want), "inputs[0].parameters.%s: not supported", keys[i]);
		assert_true(!strncmp(err, want, strlen(want)));

		snprintf(rest, sizeof(rest), ",\"outputs\":[{\"name\":\"probabilities\"},{\"name\":"
			 "\"probabilities\",\"parameters\":{\"binary_data\":true,\"%s\":0}}]", keys[i]);
		assert_int_equal(parse_with("", rest, &ki, err), 400);
		snprintf(want, sizeof(want), "outputs[1].parameters.%s: not supported", keys[i]);
		assert_true(!strncmp(err, want, strlen(want)));
	}
	assert_non_null(strstr(err, "shared memory"));
	/* what is implemented (or harmless) still passes */
	assert_int_equal(parse_with(",\"parameters\":{\"x\":1}",
				    ",\"parameters\":{\"priority\":1,\"sequence\":2}", &ki, err), 0);
	assert_int_equal(parse_with("", ",\"outputs\":[{\"name\":\"probabilities\",\"parameters\":7}]",
				    &ki, err), 400);
	assert_string_equal(err, "outputs[0].parameters: expected an object, got an integer");
}

static void test_class_count_parse(void **state)
{
	struct ks_infer ki;
	char err[512], body[1024];

	snprintf(body, sizeof(body), REQ1, "", ",\"outputs\":[{\"name\":\"probabilities\","
		 "\"parameters\":{\"classification\":2}}]");
	assert_int_equal(parse(body, &ki, err), 0);
	assert_int_equal(ki.class_count, 2);
	ks_infer_free(&ki);
	snprintf(body, sizeof(body), REQ1, "", ",\"outputs\":[{\"name\":\"probabilities\","
		 "\"parameters\":{\"class_count\":99999999999,\"binary_data\":true}}]");
	assert_int_equal(parse(body, &ki, err), 0);
	assert_int_equal(ki.class_count, 2147483647);	/* saturated; ks_class_k caps it */
	assert_true(ki.binary_output);
	assert_int_equal(ks_class_k(&tm, ki.class_count), 3);
	ks_infer_free(&ki);
	snprintf(body, sizeof(body), REQ1, "", ",\"outputs\":[{\"name\":\"probabilities\","
		 "\"parameters\":{\"classification\":0}}]");
	assert_int_equal(parse(body, &ki, err), 0);
	assert_int_equal(ki.class_count, 0);
	ks_infer_free(&ki);
	assert_int_equal(parse_with("", ",\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
				    "{\"classification\":-1}}]", &ki, err), 400);
	assert_string_equal(err, "outputs[0].parameters.classification: expected a non-negative "
			    "integer (the number of top classes to return)");
	assert_int_equal(parse_with("", ",\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
				    "{\"class_count\":1.5}}]", &ki, err), 400);
	assert_non_null(strstr(err, "outputs[0].parameters.class_count: expected a non-negative"));
	assert_int_equal(parse_with("", ",\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
				    "{\"class_count\":\"3\"}}]", &ki, err), 400);
	assert_int_equal(parse_with("", ",\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
				    "{\"class_count\":1,\"classification\":1}}]", &ki, err), 400);
	assert_non_null(strstr(err, "classification and class_count both given"));
}

struct collect {
	char s[16][KS_CLASS_STR_MAX];
	int n;
};

static void collect_fn(void *arg, const char *s, int len)
{
	struct collect *c = arg;

	assert_int_equal((int)strlen(s), len);
	snprintf(c->s[c->n++], KS_CLASS_STR_MAX, "%s", s);
}

/* Best first, ties by lower index, NaN last; labels appended when the model has them. */
static void test_classes(void **state)
{
	float v[6] = { 0.25f, 0.5f, 0.25f, NAN, 0.125f, 2.0f };
	char *labels[3] = { "zero", "one", "t\"wo" };
	struct evbuffer *b = evbuffer_new();
	struct collect c = { .n = 0 };
	size_t hdr;
	char *s;

	assert_int_equal(ks_classes(&tm, 2, v, 3, collect_fn, &c), 0);
	assert_int_equal(c.n, 6);
	assert_string_equal(c.s[0], "0.500000:1");
	assert_string_equal(c.s[1], "0.250000:0");
	assert_string_equal(c.s[2], "0.250000:2");
	assert_string_equal(c.s[3], "2.000000:2");
	assert_string_equal(c.s[4], "0.125000:1");
	assert_string_equal(c.s[5], "nan:0");
	c.n = 0;
	tm.labels = labels;
	assert_int_equal(ks_classes(&tm, 1, v, 2, collect_fn, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.s[1], "0.250000:0:zero");

	assert_int_equal(ks_encode_classes(b, &tm, "i", 1, v, 50, false, &hdr), 0);
	assert_int_equal(hdr, 0);
	s = drain(b);
	assert_string_equal(s, "{\"model_name\":\"digits\",\"model_version\":\"1\",\"id\":\"i\","
			    "\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"BYTES\","
			    "\"shape\":[1,3],\"data\":[\"0.500000:1:one\",\"0.250000:0:zero\","
			    "\"0.250000:2:t\\\"wo\"]}]}");
	free(s);
	/* binary: 4-byte little-endian length, then the bytes, per element */
	assert_int_equal(ks_encode_classes(b, &tm, NULL, 1, v + 3, 1, true, &hdr), 0);
	s = drain(b);
	{
		const char *json = "{\"model_name\":\"digits\",\"model_version\":\"1\",\"outputs\":"
				   "[{\"name\":\"probabilities\",\"datatype\":\"BYTES\",\"shape\":[1,1],"
				   "\"parameters\":{\"binary_data_size\":19}}]}";

		assert_int_equal(hdr, strlen(json));
		assert_memory_equal(s, json, hdr);
		assert_memory_equal(s + hdr, "\x0f\0\0\0" "2.000000:2:t\"wo", 19);
	}
	free(s);
	tm.labels = NULL;
	evbuffer_free(b);
}

/* GET .../config: Triton's model configuration from model.yaml and gateway.yaml. */
static void test_encode_config(void **state)
{
	struct evbuffer *b = evbuffer_new();
	struct model_conf mc = { .name = "digits", .max_queue_delay_us = 250, .max_queue = 77,
				 .slo_ms = 40, .priority = 2, .n_preferred = 2,
				 .preferred = { 4, 8 } };
	struct backend_conf cpu = { .name = "cpu\"0", .kind = BE_CPU, .slots = 3 };
	struct backend_conf gpu = { .name = "gpu1", .kind = BE_GPU, .slots = 2, .device = 1 };
	const struct backend_conf *hosts[] = { &cpu, &gpu };
	char *s;

	ks_encode_config(b, &tm, &mc, 3, hosts, 2);
	s = drain(b);
	assert_string_equal(s, "{\"name\":\"digits\",\"platform\":\"infergw-mlp\",\"backend\":\"infergw\","
		"\"version_policy\":{\"specific\":{\"versions\":[1]}},\"max_batch_size\":8,"
		"\"input\":[{\"name\":\"input\",\"data_type\":\"TYPE_FP32\",\"format\":\"FORMAT_NONE\","
		"\"dims\":[4],\"is_shape_tensor\":false,\"allow_ragged_batch\":false,\"optional\":false}],"
		"\"output\":[{\"name\":\"probabilities\",\"data_type\":\"TYPE_FP32\",\"dims\":[3],"
		"\"is_shape_tensor\":false}],"
		"\"dynamic_batching\":{\"preferred_batch_size\":[4,8],\"max_queue_delay_microseconds\":250,"
		"\"preserve_ordering\":false,\"priority_levels\":3,\"default_priority_level\":2,"
		"\"default_queue_policy\":{\"timeout_action\":\"REJECT\",\"default_timeout_microseconds\":40000,"
		"\"allow_timeout_override\":true,\"max_queue_size\":77},\"priority_queue_policy\":{}},"
		"\"instance_group\":[{\"name\":\"cpu\\\"0\",\"kind\":\"KIND_CPU\",\"count\":3,\"gpus\":[]},"
		"{\"name\":\"gpu1\",\"kind\":\"KIND_GPU\",\"count\":2,\"gpus\":[1]}]}");
	free(s);
	assert_string_equal(dtype_triton_name(DT_INT8), "TYPE_INT8");
	assert_string_equal(dtype_triton_name(DT_BYTES), "TYPE_STRING");
	evbuffer_free(b);
}

/*
 * ks_parse_infer reads a plain body in one walk (jfast_read) and falls
 * back to the general path (jansson's tree, ks_parse_infer_general) for
 * anything else or any failing check: both must give the same request, or
 * the same status and message; with a binary section bin[0..bin_len) too.
 */
static void same_both_ways_bin(const char *body, const char *bin, size_t bin_len)
{
	struct ks_infer a, b;
	char ea[512] = "", eb[512] = "";
	int ra = ks_parse_infer(&tm, body, strlen(body), bin, bin_len, &a, ea, sizeof(ea));
	int rb = ks_parse_infer_general(&tm, body, strlen(body), bin, bin_len, &b, eb, sizeof(eb));

	if (ra != rb || (ra && strcmp(ea, eb)))
		fail_msg("%s (+%zu binary bytes): fast %d \"%s\", general %d \"%s\"", body, bin_len,
			 ra, ea, rb, eb);
	if (ra)
		return;
	assert_int_equal(a.rows, b.rows);
	assert_int_equal(a.has_id, b.has_id);
	assert_string_equal(a.id, b.id);
	assert_int_equal(a.priority, b.priority);
	assert_int_equal(a.timeout_us, b.timeout_us);
	assert_int_equal(a.binary_output, b.binary_output);
	assert_int_equal(a.variant, b.variant);
	assert_int_equal(a.class_count, b.class_count);
	assert_memory_equal(a.data, b.data, (size_t)a.rows * tm.in_dim * sizeof(float));
	ks_infer_free(&a);
	ks_infer_free(&b);
}

static void same_both_ways(const char *body)
{
	same_both_ways_bin(body, NULL, 0);
}

static void test_fast_path_same_as_general(void **state)
{
	static const char *const in = "{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],";
	static const char *const tails[] = {
		"\"data\":[1,2,3,4]}]}",
		"\"data\":[0.0,-0.0,12.5,-7]}]}",
		"\"data\":[1e3,2.5E-2,-0,123456789012345]}]}",
		"\"data\":[0.1,0.2,0.30000000000000004,3.4028235e38]}]}",
		"\"data\":[1e-46,1.17549435e-38,1.4e-45,99999999999999999999]}]}",
		"\"data\":[ 1 , 2 ,3\n,\t4 ]}]}",
		"\"data\":[1,2,3,4,]}]}",
		"\"data\":[1,2,3]}]}",
		"\"data\":[1,2,3,4,5]}]}",
		"\"data\":[1,2,3,1e39]}]}",
		"\"data\":[1,2,3,01]}]}",
		"\"data\":[1,2,3,1.]}]}",
		"\"data\":[1,2,3,\"4\"]}]}",
		"\"data\":[[1,2,3,4]]}]}",
		"\"data\":[1,2,3,4],\"data\":[1,2,3,4]}]}",
		"\"data\":[1,2,3,4]}],\"id\":\"abc\"}",
		"\"data\":[1,2,3,4]}],\"id\":\"a\\u0062c\"}",
		"\"data\":[1,2,3,4]}],\"id\":7}",
		"\"data\":[1,2,3,4]}],\"id\":\"x\",\"id\":\"y\"}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"priority\":3,\"timeout\":100}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"priority\":1000001}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"priority\":-1}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"priority\":1.0}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"timeout\":9999999999999999999}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"timeout\":999999999999999999}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"binary_data_output\":true}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"binary_data_output\":1}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"variant\":\"int8\"}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"variant\":\"fp16\"}}",
		"\"data\":[1,2,3,4]}],\"parameters\":{\"sequence_id\":1}}",
		"\"data\":[1,2,3,4]}],\"parameters\":null}",
		"\"data\":[1,2,3,4]}],\"outputs\":[{\"name\":\"probabilities\"}]}",
		"\"data\":[1,2,3,4]}],\"outputs\":[]}",
		"\"data\":[1,2,3,4]}],\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
		"{\"binary_data\":false}}],\"parameters\":{\"binary_data_output\":true}}",
		"\"data\":[1,2,3,4]}],\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
		"{\"binary_data\":true}},{\"name\":\"probabilities\"}]}",
		"\"data\":[1,2,3,4]}],\"outputs\":[{\"name\":\"logits\"}]}",
		"\"data\":[1,2,3,4]}],\"outputs\":[{\"name\":\"probabilities\",\"parameters\":"
		"{\"classification\":2}}]}",
		"\"data\":[1,2,3,4]}],\"outputs\":{}}",
		"\"data\":[1,2,3,4]}],\"other\":[1,{\"a\":null}]}",
		"\"data\":[1,2,3,4]}]} ",
		"\"data\":[1,2,3,4]}]}x",
		"\"data\":[1,2,3,4]}]",
		"\"data\":[1,2,3,4]},{}]}",
		"\"data\":[1,2,3,4],\"extra\":true}]}",
	};
	static const char *const whole[] = {
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],"
		"\"data\":[1,2,3,4,5,6,7,8]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[0,4],\"data\":[]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[9,4],\"data\":[]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4,1],"
		"\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
		"\"shape\":[1000000000000000000,4],\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
		"\"shape\":[1234567890123456789,4],\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,-4],"
		"\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1.0,4],"
		"\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP16\",\"shape\":[1,4],"
		"\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\\u0000\",\"shape\":[1,4],"
		"\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"img\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4]}]}",
		"{\"inputs\":[]}",
		"{\"inputs\":{}}",
		"{}",
		"[]",
		" {\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"data\":[1,2,3,4]}]}\n",
	};
	char body[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(body, sizeof(body), "{\"inputs\":[%s%s", in, tails[i]);
		same_both_ways(body);
	}
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		same_both_ways(whole[i]);
}

/* Triton's binary tensor extension read fast: every shape of header below
 * gives what the general path gives, with binary sections that fit, fall
 * short, run over, hold a NaN, or are missing. */
static void test_fast_binary_same_as_general(void **state)
{
	static const char *const heads[] = {
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\","
		"\"parameters\":{\"binary_data_size\":16}}],\"outputs\":[{\"name\":\"probabilities\","
		"\"parameters\":{\"binary_data\":true}}],\"id\":\"t1\"}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,4],"
		"\"parameters\":{\"binary_data_size\":32}}],\"parameters\":{\"binary_data_output\":true,"
		"\"priority\":2}}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":12}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":20}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16.0}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":-16}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16,\"binary_data_size\":16}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16},\"data\":[1,2,3,4]}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"data\":[1,2,3,4],\"parameters\":{\"binary_data_size\":16}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16,\"shared_memory_region\":\"x\"}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":null}]}",
		"{\"inputs\":[{\"name\":\"img\",\"datatype\":\"FP32\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":16}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT8\",\"shape\":[1,4],"
		"\"parameters\":{\"binary_data_size\":4}}]}",
		"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[0,4],"
		"\"parameters\":{\"binary_data_size\":0}}]}",
	};
	float vals[8] = { 1, 2.5f, -3, 4e-3f, 5, 6, 7, 8 }, nan[8];
	char sect[40];

	(void)state;
	memcpy(nan, vals, sizeof(vals));
	nan[2] = NAN;
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		for (size_t len = 0; len <= 36; len += 4) {
			memcpy(sect, vals, sizeof(vals));
			memset(sect + sizeof(vals), 0, sizeof(sect) - sizeof(vals));
			same_both_ways_bin(heads[i], sect, len);
		}
		same_both_ways_bin(heads[i], (const char *)nan, 16);
		same_both_ways_bin(heads[i], (const char *)nan, 32);
		same_both_ways_bin(heads[i], NULL, 0);
	}
}

static const uint32_t ks_bad_bits[] = { 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffffffffu,
					0x7f800001u };
static const uint32_t ks_fine_bits[] = { 0x7f7fffffu, 0xff7fffffu, 0x00000001u, 0x80000000u,
					 0x3f800000u, 0x00800000u };

/* n finite values at p, then a non-finite one at every step-th position
 * (a later one too): ks_check_finite names it. */
static void check_finite_at(unsigned char *p, size_t n, size_t step)
{
	char err[512], want[128];

	for (size_t i = 0; i < n; i++)
		memcpy(p + 4 * i, &ks_fine_bits[i % 6], 4);
	assert_int_equal(ks_check_finite(p, n, err, sizeof(err)), 0);
	for (size_t at = 0; at < n; at += step) {
		uint32_t b = ks_bad_bits[(n + at) % 5], keep;

		memcpy(&keep, p + 4 * at, 4);
		memcpy(p + 4 * at, &b, 4);
		if (at + 1 < n)
			memcpy(p + 4 * (n - 1), &ks_bad_bits[0], 4);	/* a later one too */
		assert_int_equal(ks_check_finite(p, n, err, sizeof(err)), 400);
		snprintf(want, sizeof(want), "inputs[0].data[%zu]: not a finite FP32 value", at);
		assert_memory_equal(err, want, strlen(want));
		memcpy(p + 4 * at, &keep, 4);
		memcpy(p + 4 * (n - 1), &ks_fine_bits[(n - 1) % 6], 4);
	}
}

/* ks_check_finite names the first non-finite value wherever it lies (16
 * values a step, then 4, then one), at every byte alignment, in 1..70
 * values and in 1,000 and 65,536 (a mlp-large batch), and passes the
 * largest finite ones. */
static void test_check_finite_positions(void **state)
{
	static const size_t big[] = { 1000, 65536 };
	unsigned char *buf = malloc(65536 * 4 + 3);

	(void)state;
	assert_non_null(buf);
	for (size_t k = 1; k <= 72; k++)
		for (size_t off = 0; off < 4; off++)
			check_finite_at(buf + off, k <= 70 ? k : big[k - 71], k <= 70 ? 1 : 997);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_variant),
		cmocka_unit_test(test_valid_flat_and_nested),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_binary_inputs),
		cmocka_unit_test(test_encode_response),
		cmocka_unit_test(test_data_only_from_inputs),
		cmocka_unit_test(test_nonfinite_refused),
		cmocka_unit_test(test_binary_nonfinite_refused),
		cmocka_unit_test(test_timeout_saturates),
		cmocka_unit_test(test_nonfinite_output),
		cmocka_unit_test(test_check_finite_positions),
		cmocka_unit_test(test_put_str_always_json),
		cmocka_unit_test(test_unsupported_params),
		cmocka_unit_test(test_class_count_parse),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_encode_config),
		cmocka_unit_test(test_fast_path_same_as_general),
		cmocka_unit_test(test_fast_binary_same_as_general),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
