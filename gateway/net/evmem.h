/*
 * evmem.h - libevent's allocations through per-thread free lists.
 *
 * Each answer costs libevent an evbuffer chain (the response body) and
 * its input and output chains come and go with the traffic: ~400
 * instructions a request through glibc malloc/free.  With evmem_install,
 * libevent allocates through a thread-local struct h2mem (size classes up
 * to 32 KiB kept, at most H2MEM_CACHE (8 MiB) a thread, freed at thread
 * exit); a block freed on another thread joins that thread's lists.
 * Nothing in the gateway frees with free() what libevent allocated (no
 * evbuffer_readln, no evhttp), which replacing libevent's allocator
 * requires.  Sanitizer builds (UTIL_RECYCLE 0) keep libevent on malloc.
 *
 * The decoded input tensors (inbuf.h) come from the same lists: taken and
 * given back on the loop thread, a few KiB each, one malloc/free pair a
 * request otherwise.
 */
#ifndef INFERGW_EVMEM_H
#define INFERGW_EVMEM_H

/*
 * evmem_install - route libevent's allocations, and inbuf's, through
 * evmem.  Call first in main, before any libevent function
 * (event_set_mem_functions requires it) and any thread.  Nothing in
 * sanitizer builds.
 */
void evmem_install(void);

#endif
