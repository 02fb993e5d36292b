/*
 * fuzz_safetensors.c - libFuzzer target for st_parse (the safetensors
 * header and data-section validation).  st_parse takes ownership of a
 * malloc'd buffer, so the input is copied into one of exactly its size.
 * On success every tensor must lie readable, be found by st_find, and hold
 * shape x dtype size bytes, as model.h promises.
 */
#include <stdint.h>

#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *err = NULL;
	char *buf = fz_dup(data, size);
	struct st_file *f = st_parse("fuzz.safetensors", buf, size, &err);
	volatile unsigned char sink = 0;

	if (!f) {
		FZ_CHECK(err != NULL && err[0]);
		free(err);
		return 0;
	}
	FZ_CHECK(f->n_tensors >= 0);
	for (int i = 0; i < f->n_tensors; i++) {
		const struct st_tensor *t = &f->tensors[i];
		size_t n = dtype_size(t->dtype);

		FZ_CHECK(t->name != NULL);
		FZ_CHECK(t->ndim >= 0 && t->ndim <= MODEL_MAX_DIMS);
		FZ_CHECK(n > 0);
		for (int d = 0; d < t->ndim; d++) {
			FZ_CHECK(t->dims[d] >= 0);
			FZ_CHECK(!__builtin_mul_overflow(n, (size_t)t->dims[d], &n));
		}
		FZ_CHECK(n == t->nbytes);
		FZ_CHECK(t->nbytes == 0 || t->data != NULL);
		/* Touch the first and last byte: ASan checks both lie inside. */
		if (t->nbytes) {
			sink ^= ((const unsigned char *)t->data)[0];
			sink ^= ((const unsigned char *)t->data)[t->nbytes - 1];
		}
		FZ_CHECK(st_find(f, t->name) != NULL);
	}
	(void)sink;
	st_close(f);
	return 0;
}
