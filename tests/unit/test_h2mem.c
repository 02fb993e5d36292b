/* Unit tests for gateway/net/h2mem.c: blocks come back from their class's
 * list, realloc keeps contents, big blocks go to malloc, the cache is
 * bounded, and sanitizer builds hand nghttp2 no allocator at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "h2mem.h"
#include "util.h"

static void test_reuse_and_contents(void **state)
{
	struct h2mem m;
	nghttp2_mem *mem;
	uint8_t *a, *b, *c;
	size_t before;

	(void)state;
	h2mem_init(&m);
	mem = &m.mem;
	a = mem->malloc(100, mem->mem_user_data);
	assert_non_null(a);
	assert_int_equal((uintptr_t)a % 16, 0);
	memset(a, 0xab, 100);
	mem->free(a, mem->mem_user_data);
	assert_true(m.cached > 0);
	b = mem->malloc(90, mem->mem_user_data);	/* same class: the same block */
	if (UTIL_RECYCLE)
		assert_ptr_equal(a, b);
	assert_int_equal(m.cached, 0);
	memset(b, 7, 90);
	b = mem->realloc(b, 100000, mem->mem_user_data);	/* beyond the classes */
	assert_non_null(b);
	for (int i = 0; i < 90; i++)
		assert_int_equal(b[i], 7);
	c = mem->calloc(10, 30, mem->mem_user_data);
	for (int i = 0; i < 300; i++)
		assert_int_equal(c[i], 0);
	c = mem->realloc(c, 10, mem->mem_user_data);	/* shrinking keeps the block */
	assert_non_null(c);
	before = m.cached;				/* b's old block, left by realloc */
	mem->free(b, mem->mem_user_data);		/* big: to malloc, not cached */
	assert_int_equal(m.cached, before);
	mem->free(c, mem->mem_user_data);
	mem->free(NULL, mem->mem_user_data);
	assert_null(mem->malloc(SIZE_MAX - 4, mem->mem_user_data));
	assert_null(mem->calloc(SIZE_MAX / 2, 4, mem->mem_user_data));
	h2mem_drain(&m);
	assert_int_equal(m.cached, 0);
	assert_true(h2mem_get(&m) == (UTIL_RECYCLE ? &m.mem : NULL));
}

static void test_cache_bounded(void **state)
{
	enum { N = 2 * H2MEM_CACHE / 1024 };
	static void *blk[N];
	struct h2mem m;

	(void)state;
	h2mem_init(&m);
	for (int i = 0; i < N; i++)
		blk[i] = m.mem.malloc(1000, &m);
	for (int i = 0; i < N; i++)
		m.mem.free(blk[i], &m);
	assert_true(m.cached <= H2MEM_CACHE);
	assert_true(m.cached >= H2MEM_CACHE - 1024);
	h2mem_drain(&m);
}

/* Each size is cached in the smallest class that holds it and h2mem.c's
 * 16-byte header (64, 128, ... 32768 bytes); beyond, nothing is cached. */
static void test_size_classes(void **state)
{
	struct h2mem m;

	(void)state;
	if (!UTIL_RECYCLE)
		skip();
	h2mem_init(&m);
	for (size_t size = 0; size <= 33000; size += size < 300 ? 1 : 61) {
		size_t want = 64;
		void *p = m.mem.malloc(size, &m);

		while (want < size + 16)
			want *= 2;
		assert_non_null(p);
		m.mem.free(p, &m);
		assert_int_equal(m.cached, want > 32768 ? 0 : want);
		h2mem_drain(&m);
	}
	for (int sh = 5; sh <= 15; sh++) {	/* both sides of every class edge */
		for (int d = -1; d <= 1; d++) {
			size_t total = ((size_t)1 << sh) + d, want = 64;
			void *p = m.mem.malloc(total - 16, &m);

			while (want < total)
				want *= 2;
			m.mem.free(p, &m);
			assert_int_equal(m.cached, want > 32768 ? 0 : want);
			h2mem_drain(&m);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuse_and_contents),
		cmocka_unit_test(test_cache_bounded),
		cmocka_unit_test(test_size_classes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
