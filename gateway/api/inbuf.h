/*
 * inbuf.h - the buffers a decoded input tensor's values live in
 * (jfast_req.vals, jfast_list.vals, ks_infer.owned): taken while the body
 * is parsed, given back when the request releases its input (front.h).
 *
 * Both ends run on the loop thread that owns the request (at shutdown, on
 * the thread that runs the loops' last completions), so a thread's own
 * free lists fit: evmem_install has these buffers come from the same
 * per-thread lists as libevent's blocks (a block given back on another
 * thread joins that thread's lists): a malloc and a free a request saved
 * while the lists have room (their cap is shared with libevent's blocks).
 * Until then, and in sanitizer builds, malloc and free.  A buffer from
 * inbuf_alloc goes back with inbuf_free, never with free().
 */
#ifndef INFERGW_INBUF_H
#define INFERGW_INBUF_H

#include <stddef.h>

/* inbuf_alloc - room for n floats (n > 0), or NULL when out of memory. */
float *inbuf_alloc(size_t n);
/* inbuf_free - give back what inbuf_alloc returned (NULL: nothing). */
void inbuf_free(float *p);
/*
 * inbuf_install - take buffers from alloc and give them back to release
 * from now on.  Call once at startup, before any inbuf_alloc, with no
 * other thread running.
 */
void inbuf_install(void *(*alloc)(size_t), void (*release)(void *));

#endif
