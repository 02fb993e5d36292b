/* test_safetensors.c - st_parse / st_open / st_find and the dtype helpers. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

/* A malloc'd safetensors image: u64 header length, header, data. */
static void *mk(const char *hdr, const void *data, size_t dlen, size_t *len)
{
	size_t hl = strlen(hdr);
	unsigned char *b = malloc(8 + hl + dlen + 1);
	int i;

	assert_non_null(b);
	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, hdr, hl);
	if (dlen)
		memcpy(b + 8 + hl, data, dlen);
	*len = 8 + hl + dlen;
	return b;
}

/* st_parse must fail and the message contain every given substring. */
static void expect_fail(const char *hdr, const void *data, size_t dlen, const char *s1,
			const char *s2)
{
	char *err = NULL;
	size_t len;
	void *b = mk(hdr, data, dlen, &len);
	struct st_file *f = st_parse("bad.safetensors", b, len, &err);

	assert_null(f);
	assert_non_null(err);
	if (!strstr(err, "bad.safetensors") || !strstr(err, s1) || (s2 && !strstr(err, s2)))
		fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, s1, s2 ? s2 : "");
	free(err);
}

static const float vals[6] = { 1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f };

static void test_dtype_names(void **state)
{
	(void)state;
	assert_int_equal(dtype_from_kserve("FP32"), DT_FP32);
	assert_int_equal(dtype_from_kserve("INT64"), DT_INT64);
	assert_int_equal(dtype_from_kserve("BYTES"), DT_BYTES);
	assert_int_equal(dtype_from_kserve("F32"), DT_INVALID);
	assert_int_equal(dtype_from_kserve(NULL), DT_INVALID);
	assert_string_equal(dtype_kserve_name(DT_UINT16), "UINT16");
	assert_string_equal(dtype_kserve_name(DT_FP16), "FP16");
	assert_int_equal(dtype_from_safetensors("F32"), DT_FP32);
	assert_int_equal(dtype_from_safetensors("I64"), DT_INT64);
	assert_int_equal(dtype_from_safetensors("U8"), DT_UINT8);
	assert_int_equal(dtype_from_safetensors("BOOL"), DT_BOOL);
	assert_int_equal(dtype_from_safetensors("FP32"), DT_INVALID);
	assert_int_equal(dtype_from_safetensors("BF16"), DT_INVALID);
	assert_int_equal(dtype_size(DT_FP32), 4);
	assert_int_equal(dtype_size(DT_INT64), 8);
	assert_int_equal(dtype_size(DT_FP16), 2);
	assert_int_equal(dtype_size(DT_BOOL), 1);
	assert_int_equal(dtype_size(DT_BYTES), 0);
	assert_int_equal(dtype_size(DT_INVALID), 0);
}

static void test_roundtrip_parse(void **state)
{
	const char *hdr =
		"{\"__metadata__\":{\"format\":\"pt\"},"
		"\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
		"\"idx\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]},"
		"\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[40,40]}}";
	unsigned char data[40];
	int64_t idx[2] = { 7, -3 };
	const struct st_tensor *t;
	struct st_file *f;
	char *err = NULL;
	size_t len;
	void *b;
	int i;

	(void)state;
	memcpy(data, vals, 24);
	memcpy(data + 24, idx, 16);
	b = mk(hdr, data, sizeof(data), &len);
	f = st_parse("ok.safetensors", b, len, &err);
	assert_non_null(f);
	assert_null(err);
	assert_int_equal(f->n_tensors, 3);
	assert_string_equal(f->path, "ok.safetensors");
	assert_int_equal(f->len, len);

	t = st_find(f, "w");
	assert_non_null(t);
	assert_string_equal(t->name, "w");
	assert_int_equal(t->dtype, DT_FP32);
	assert_int_equal(t->ndim, 2);
	assert_int_equal(t->dims[0], 2);
	assert_int_equal(t->dims[1], 3);
	assert_int_equal(t->nbytes, 24);
	assert_int_equal((uintptr_t)t->data % 4, 0);
	for (i = 0; i < 6; i++)
		assert_true(((const float *)t->data)[i] == vals[i]);

	t = st_find(f, "idx");
	assert_non_null(t);
	assert_int_equal(t->dtype, DT_INT64);
	assert_int_equal(t->ndim, 1);
	assert_int_equal(t->dims[0], 2);
	assert_int_equal((uintptr_t)t->data % 8, 0);
	assert_int_equal(((const int64_t *)t->data)[0], 7);
	assert_int_equal(((const int64_t *)t->data)[1], -3);

	t = st_find(f, "empty");
	assert_non_null(t);
	assert_int_equal(t->nbytes, 0);
	assert_int_equal(t->dims[0], 0);

	assert_null(st_find(f, "__metadata__"));
	assert_null(st_find(f, "nope"));
	st_close(f);
}

/* An F32 tensor at data offset 1 must still be readable as float*. */
static void test_misaligned_copied(void **state)
{
	const char *hdr =
		"{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		"\"f\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[1,13]}} ";
	unsigned char data[13];
	const struct st_tensor *t;
	struct st_file *f;
	char *err = NULL;
	size_t len;
	void *b;

	(void)state;
	data[0] = 0xab;
	memcpy(data + 1, vals, 12);
	b = mk(hdr, data, sizeof(data), &len);
	/* malloc gives >= 8-byte alignment: "f" sits at an odd address in b */
	assert_int_equal((uintptr_t)b % 8, 0);
	assert_int_not_equal((8 + strlen(hdr) + 1) % 4, 0);
	f = st_parse("mis.safetensors", b, len, &err);
	assert_non_null(f);
	t = st_find(f, "f");
	assert_non_null(t);
	assert_int_equal((uintptr_t)t->data % 4, 0);
	assert_true(((const float *)t->data)[0] == 1.5f);
	assert_true(((const float *)t->data)[1] == -2.0f);
	assert_true(((const float *)t->data)[2] == 3.25f);
	assert_int_equal(*(const unsigned char *)st_find(f, "b")->data, 0xab);
	/* map is still the whole file */
	assert_int_equal(memcmp((const char *)f->map + 8, hdr, strlen(hdr)), 0);
	st_close(f);

	/* Aligned offsets, but the data section itself starts at an odd address. */
	b = mk("{\"f\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
	       vals, 12, &len);
	assert_int_not_equal((len - 12) % 4, 0);
	f = st_parse("mis2.safetensors", b, len, &err);
	assert_non_null(f);
	t = st_find(f, "f");
	assert_int_equal((uintptr_t)t->data % 64, 0);
	assert_ptr_equal(t->data, (const char *)f->map + len - 12);
	assert_true(((const float *)t->data)[2] == 3.25f);
	st_close(f);
}

static void test_open_file(void **state)
{
	char path[] = "/tmp/test_st_XXXXXX";
	const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}";
	const struct st_tensor *t;
	struct st_file *f;
	char *err = NULL;
	size_t len;
	void *b;
	int fd, i;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	b = mk(hdr, vals, 24, &len);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
	free(b);

	f = st_open(path, &err);
	assert_non_null(f);
	assert_string_equal(f->path, path);
	t = st_find(f, "x");
	assert_non_null(t);
	assert_int_equal((uintptr_t)t->data % 64, 0);	/* data section cache-line aligned */
	for (i = 0; i < 6; i++)
		assert_true(((const float *)t->data)[i] == vals[i]);
	st_close(f);

	/* Cut the data short: the tensor's end is past the data section. */
	assert_int_equal(truncate(path, (off_t)(len - 4)), 0);
	f = st_open(path, &err);
	assert_null(f);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "tensor x"));
	assert_non_null(strstr(err, "data_offsets end 24 past data size 20"));
	free(err);

	/* Shorter than the length prefix. */
	assert_int_equal(truncate(path, 5), 0);
	f = st_open(path, &err);
	assert_null(f);
	assert_non_null(strstr(err, "file too short (5 bytes)"));
	free(err);
	unlink(path);

	f = st_open(path, &err);
	assert_null(f);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
	free(err);
}

static void test_truncated(void **state)
{
	unsigned char *b;
	char *err = NULL;
	size_t len;

	(void)state;
	/* shorter than 8 */
	b = malloc(3);
	memset(b, 0, 3);
	assert_null(st_parse("bad.safetensors", b, 3, &err));
	assert_non_null(strstr(err, "bad.safetensors: file too short (3 bytes)"));
	free(err);

	/* header length past end of file */
	b = mk("{}", NULL, 0, &len);
	b[0] = 200;
	assert_null(st_parse("bad.safetensors", b, len, &err));
	assert_non_null(strstr(err, "bad.safetensors: not a safetensors file: the header length in "
				 "its first 8 bytes is past the end of the file (10 bytes)"));
	assert_null(strstr(err, "200"));
	free(err);

	/* an enormous header length must not overflow */
	b = mk("{}", NULL, 0, &len);
	memset(b, 0xff, 8);
	assert_null(st_parse("bad.safetensors", b, len, &err));
	assert_non_null(strstr(err, "past the end of the file"));
	free(err);

	/* data cut short */
	expect_fail("{\"t1\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}",
		    vals, 20, "tensor t1", "data_offsets end 24 past data size 20");

	/* empty header, no data: valid and empty */
	b = mk("{}", NULL, 0, &len);
	{
		struct st_file *f = st_parse("empty.safetensors", b, len, &err);

		assert_non_null(f);
		assert_int_equal(f->n_tensors, 0);
		st_close(f);
	}
}

/*
 * Weights pointed at some other readable file: the message says what is
 * wrong and never shows the file's bytes (the header length used to be
 * printed, i.e. its first 8 bytes, and jansson's text quotes the bytes
 * near a syntax error).
 */
static void test_other_files_not_echoed(void **state)
{
	static const char *const secrets[] = {
		"root:x:0:0:root:/root:/bin/bash\n",			/* length past the end */
		"\x10\0\0\0\0\0\0\0SECRET=hunter2 and more text",	/* not JSON */
		"\x0f\0\0\0\0\0\0\0{\"SECRET\":\"hunt",		/* premature end */
	};
	static const char *const want[] = {
		"not a safetensors file: the header length in its first 8 bytes is past the end",
		"not a safetensors file: header is not valid JSON (invalid syntax at header byte",
		"not a safetensors file: header is not valid JSON (premature end at header byte",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++) {
		size_t len = (i ? strlen(secrets[i] + 8) + 8 : strlen(secrets[i]));
		unsigned char *b = malloc(len);
		char *err = NULL;

		memcpy(b, secrets[i], len);
		assert_null(st_parse("/etc/passwd", b, len, &err));
		if (!strstr(err, want[i]))
			fail_msg("case %zu: %s", i, err);
		assert_null(strstr(err, "root:"));
		assert_null(strstr(err, "SECRET"));
		assert_null(strstr(err, "hunt"));
		free(err);
	}
}

static void test_bad_header(void **state)
{
	(void)state;
	expect_fail("{\"a\":{\"dtype\":\"F32\",", NULL, 0, "header is not valid JSON", NULL);
	expect_fail("", NULL, 0, "header is not valid JSON", NULL);
	expect_fail("[1,2]", NULL, 0, "header is not a JSON object", NULL);
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
		    vals, 8, "not valid JSON", "duplicate");
	expect_fail("{\"__metadata__\":[1]}", NULL, 0, "__metadata__ is not a JSON object", NULL);
	expect_fail("{\"__metadata__\":{\"k\":1}}", NULL, 0, "__metadata__.k is not a string", NULL);
	expect_fail("{\"t\":5}", NULL, 0, "tensor t", "not a JSON object");
	expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
		    vals, 4, "tensor t", "unknown field \"x\"");
}

static void test_bad_tensor(void **state)
{
	(void)state;
	expect_fail("{\"fc1.weight\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
		    vals, 4, "tensor fc1.weight", "unknown dtype \"F33\"");
	expect_fail("{\"fc1.weight\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
		    vals, 4, "tensor fc1.weight", "dtype missing");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
		    vals, 4, "tensor w", "shape[0] is not a non-negative integer");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
		    vals, 4, "tensor w", "shape[0] is not a non-negative integer");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}",
		    vals, 4, "tensor w", "shape missing or not a list");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
		    vals, 4, "tensor w", "9 dimensions");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}",
		    vals, 4, "tensor w", "data_offsets missing or not two non-negative integers");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
		    vals, 4, "tensor w", "data_offsets missing");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
		    vals, 8, "tensor w", "data_offsets begin 8 > end 4");
	expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,400]}}",
		    vals, 8, "tensor w", "data_offsets end 400 past data size 8");
	/* size mismatch: [2,3] F32 needs 24 bytes, offsets give 20 */
	expect_fail("{\"fc2.bias\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
		    vals, 24, "tensor fc2.bias", "span 20 bytes, shape x dtype needs 24");
	/* overlap */
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
		    vals, 24, "tensor b: data_offsets [12, 20] overlap tensor a [0, 16]", NULL);
	/* overlap hidden behind an empty tensor in sort order */
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		    "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
		    "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
		    vals, 24, "tensor c", "overlap tensor a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dtype_names),
		cmocka_unit_test(test_roundtrip_parse),
		cmocka_unit_test(test_misaligned_copied),
		cmocka_unit_test(test_open_file),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_other_files_not_echoed),
		cmocka_unit_test(test_bad_tensor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
