/*
 * Unit tests for gateway/api/grpccodec.c's framing helpers: gc_frame on
 * every cut of a prefix, and gc_bytes_head against protobuf-c itself (a
 * ModelInferResponse packed with its raw output, and the same packed
 * without it with the head and the bytes appended, are the same bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grpccodec.h"

static void test_frame(void **state)
{
	uint8_t p[5 + 300] = { 0, 0, 0, 1, 44 };	/* 300 bytes follow */
	uint8_t flag = 9;
	size_t mlen = 0;

	for (size_t n = 0; n < 5; n++)
		assert_int_equal(gc_frame(p, n, 1000, &flag, &mlen), 0);
	assert_int_equal(gc_frame(p, 5, 1000, &flag, &mlen), 0);
	assert_int_equal(flag, 0);
	assert_int_equal(mlen, 300);
	assert_int_equal(gc_frame(p, 304, 1000, &flag, &mlen), 0);
	assert_int_equal(gc_frame(p, 305, 1000, &flag, &mlen), 1);
	assert_int_equal(gc_frame(p, 305, 299, &flag, &mlen), -EFBIG);
	p[0] = 2;
	assert_int_equal(gc_frame(p, 305, 1000, &flag, &mlen), -EPROTO);
	/* gc_frame_head writes what gc_frame reads */
	for (size_t len = 0; len < 0xffffffffu; len = len * 3 + 7) {
		gc_frame_head(p, len);
		assert_int_equal(gc_frame(p, 5, UINT32_MAX, &flag, &mlen), len == 0);
		assert_int_equal(flag, 0);
		assert_int_equal(mlen, len);
	}
}

/* Every length class of the varint: the head is what protobuf-c writes. */
static void test_bytes_head_is_protobufs(void **state)
{
	static const size_t sizes[] = { 0, 1, 127, 128, 16383, 16384, 262144, 2097151, 2097152,
					5000000 };
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
		&inference__model_infer_response__descriptor, "raw_output_contents");
	uint8_t *raw = malloc(5000000);

	assert_non_null(f);
	assert_int_equal(f->id, GC_RAW_OUTPUT_FIELD);
	for (unsigned i = 0; i < inference__model_infer_response__descriptor.n_fields; i++)
		assert_true(inference__model_infer_response__descriptor.fields[i].id <= f->id);
	for (size_t i = 0; i < 5000000; i++)
		raw[i] = (uint8_t)(i * 7 + 3);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		Inference__ModelInferResponse m = INFERENCE__MODEL_INFER_RESPONSE__INIT;
		Inference__ModelInferResponse__InferOutputTensor t =
			INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
		Inference__ModelInferResponse__InferOutputTensor *pt = &t;
		ProtobufCBinaryData bd = { sizes[k], raw };
		int64_t shape[2] = { 64, 1024 };
		uint8_t head[GC_BYTES_HEAD_MAX];
		size_t full, rest, hl;
		uint8_t *a, *b;

		m.model_name = "mlp-large";
		m.model_version = "1";
		m.id = "req-7";
		t.name = "probabilities";
		t.datatype = "FP32";
		t.n_shape = 2;
		t.shape = shape;
		m.n_outputs = 1;
		m.outputs = &pt;
		m.n_raw_output_contents = 1;
		m.raw_output_contents = &bd;
		full = protobuf_c_message_get_packed_size(&m.base);
		a = malloc(full);
		assert_int_equal(protobuf_c_message_pack(&m.base, a), full);
		m.n_raw_output_contents = 0;
		rest = protobuf_c_message_get_packed_size(&m.base);
		hl = gc_bytes_head(head, GC_RAW_OUTPUT_FIELD, sizes[k]);
		assert_int_equal(rest + hl + sizes[k], full);
		b = malloc(full);
		protobuf_c_message_pack(&m.base, b);
		memcpy(b + rest, head, hl);
		memcpy(b + rest + hl, raw, sizes[k]);
		assert_memory_equal(a, b, full);
		free(a);
		free(b);
	}
	free(raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_bytes_head_is_protobufs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
