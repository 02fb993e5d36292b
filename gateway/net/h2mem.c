/* h2mem.c - a loop's size-class free lists for nghttp2 (see h2mem.h). */
#include "h2mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Each block starts with a 16-byte header holding its class (BIG: from
 * malloc, freed to it), so free needs no size and the user part keeps
 * malloc's 16-byte alignment.  On a free list the link is the header's
 * second word: the class byte stays as it was written at the block's
 * malloc, once. */
#define H2MEM_HDR 16
#define H2MEM_LINK 8
#define H2MEM_BIG 0xff
#define H2MEM_MIN_SHIFT 6
#define H2MEM_MAX ((size_t)1 << (H2MEM_MIN_SHIFT + H2MEM_CLASSES - 1))

static size_t h2mem_class_size(int k)
{
	return (size_t)1 << (H2MEM_MIN_SHIFT + k);
}

/* A block of class k (or BIG: size bytes for the user) from malloc, its
 * header written.  NULL when malloc has none. */
static uint8_t *h2mem_new(int k, size_t size)
{
	uint8_t *b = malloc(k == H2MEM_BIG ? size + H2MEM_HDR : h2mem_class_size(k));

	if (!b)
		return NULL;
	b[0] = (uint8_t)k;
	return b + H2MEM_HDR;
}

/* The smallest class k with 2^(H2MEM_MIN_SHIFT + k) >= size + H2MEM_HDR,
 * from the highest bit of size + H2MEM_HDR - 1 (was a loop over the
 * classes: a dozen instructions more on each of a request's ~6
 * allocations); size is at most H2MEM_MAX - H2MEM_HDR. */
static int h2mem_class(size_t size)
{
	if (size <= ((size_t)1 << H2MEM_MIN_SHIFT) - H2MEM_HDR)
		return 0;
	return 64 - __builtin_clzll((unsigned long long)(size + H2MEM_HDR - 1)) - H2MEM_MIN_SHIFT;
}

static void *h2mem_malloc(size_t size, void *arg)
{
	struct h2mem *m = arg;
	uint8_t *b;
	int k;

	if (size > H2MEM_MAX - H2MEM_HDR)	/* (SIZE_MAX - H2MEM_HDR < size too) */
		return size > SIZE_MAX - H2MEM_HDR ? NULL : h2mem_new(H2MEM_BIG, size);
	k = h2mem_class(size);
	b = m->free[k];
	if (!b)
		return h2mem_new(k, size);
	memcpy(&m->free[k], b + H2MEM_LINK, sizeof(void *));
	m->cached -= h2mem_class_size(k);
	return b + H2MEM_HDR;
}

static void h2mem_free(void *ptr, void *arg)
{
	struct h2mem *m = arg;
	uint8_t *b;
	int k;

	if (!ptr)
		return;
	b = (uint8_t *)ptr - H2MEM_HDR;
	k = b[0];
	if (k == H2MEM_BIG || m->cached + h2mem_class_size(k) > H2MEM_CACHE) {
		free(b);
		return;
	}
	memcpy(b + H2MEM_LINK, &m->free[k], sizeof(void *));
	m->free[k] = b;
	m->cached += h2mem_class_size(k);
}

static void *h2mem_calloc(size_t nmemb, size_t size, void *arg)
{
	void *p;

	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	p = h2mem_malloc(nmemb * size, arg);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

static void *h2mem_realloc(void *ptr, size_t size, void *arg)
{
	uint8_t *b;
	size_t have;
	void *p;
	int k;

	if (!ptr)
		return h2mem_malloc(size, arg);
	b = (uint8_t *)ptr - H2MEM_HDR;
	k = b[0];
	if (k == H2MEM_BIG) {	/* stays big or shrinks: malloc's own realloc */
		if (size > SIZE_MAX - H2MEM_HDR)
			return NULL;
		b = realloc(b, size + H2MEM_HDR);
		return b ? b + H2MEM_HDR : NULL;
	}
	have = h2mem_class_size(k) - H2MEM_HDR;
	if (size <= have)
		return ptr;
	p = h2mem_malloc(size, arg);
	if (!p)
		return NULL;
	memcpy(p, ptr, have);
	h2mem_free(ptr, arg);
	return p;
}

void *h2mem_alloc(struct h2mem *m, size_t size)
{
	return h2mem_malloc(size, m);
}

void h2mem_release(struct h2mem *m, void *ptr)
{
	h2mem_free(ptr, m);
}

void *h2mem_resize(struct h2mem *m, void *ptr, size_t size)
{
	return h2mem_realloc(ptr, size, m);
}

void h2mem_init(struct h2mem *m)
{
	memset(m, 0, sizeof(*m));
	m->mem = (nghttp2_mem){ .mem_user_data = m, .malloc = h2mem_malloc, .free = h2mem_free,
				.calloc = h2mem_calloc, .realloc = h2mem_realloc };
}

nghttp2_mem *h2mem_get(struct h2mem *m)
{
	return UTIL_RECYCLE ? &m->mem : NULL;
}

void h2mem_drain(struct h2mem *m)
{
	for (int k = 0; k < H2MEM_CLASSES; k++) {
		while (m->free[k]) {
			uint8_t *b = m->free[k];

			memcpy(&m->free[k], b + H2MEM_LINK, sizeof(void *));
			free(b);
		}
	}
	m->cached = 0;
}
