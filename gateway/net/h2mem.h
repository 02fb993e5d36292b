/*
 * h2mem.h - a loop's allocator for its nghttp2 sessions.
 *
 * nghttp2 allocates and frees a handful of small objects per stream (the
 * stream, its frames, header buffers): about five malloc/free pairs per
 * request, ~1,200 instructions through glibc.  Blocks up to H2MEM_MAX
 * bytes are kept on per-size-class free lists of the loop that runs the
 * sessions (one thread: no locking) and handed out again; larger ones go
 * to malloc.  At most H2MEM_CACHE bytes are kept per loop.  Sanitizer
 * builds (UTIL_RECYCLE 0) do not use it: nghttp2 then allocates with
 * malloc, so every use after free is the sanitizer's to see.
 */
#ifndef INFERGW_H2MEM_H
#define INFERGW_H2MEM_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>

#define H2MEM_CLASSES 10		/* 64, 128, ... 32768 bytes with the header */
/* What a loop keeps: an inference request in flight holds two evbuffer
 * chains of the 2 KiB class (its body, its answer), so 2 MiB was spent by
 * 512 requests and h2load -c 32 -m 32 (1,024) paid a malloc and a free of
 * ~500 instructions a request (callgrind, digits infer: 14,931 -> 14,418
 * at 8 MiB); 8 MiB covers 2,048 of them.  At most this much per loop stays
 * allocated after a peak. */
#define H2MEM_CACHE (8u << 20)

struct h2mem {
	void *free[H2MEM_CLASSES];	/* singly linked through the block */
	size_t cached;			/* bytes on the lists */
	nghttp2_mem mem;		/* what nghttp2_session_server_new3 takes */
};

/*
 * h2mem_init - an empty allocator at m (which must stay put: sessions keep
 * a pointer to m->mem).  h2mem_get(m) is then the nghttp2_mem to give a
 * session, or NULL (nghttp2's default allocator) in sanitizer builds.
 */
void h2mem_init(struct h2mem *m);
nghttp2_mem *h2mem_get(struct h2mem *m);
/*
 * h2mem_alloc, h2mem_release, h2mem_resize - malloc, free and realloc
 * through m's lists, for other single-thread users (evmem.h).  A block
 * goes back with h2mem_release or h2mem_resize of any h2mem (its class
 * is in its header), never with free().
 */
void *h2mem_alloc(struct h2mem *m, size_t size);
void h2mem_release(struct h2mem *m, void *ptr);
void *h2mem_resize(struct h2mem *m, void *ptr, size_t size);
/* h2mem_drain - free what the lists hold (after the loop's last session). */
void h2mem_drain(struct h2mem *m);

#endif
