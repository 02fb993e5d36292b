/* evmem.c - libevent's allocations through per-thread free lists (see evmem.h). */
#include "evmem.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "h2mem.h"
#include "inbuf.h"
#include "util.h"

static __thread struct h2mem evmem_lists;
static __thread bool evmem_registered;
static pthread_key_t evmem_key;
static pthread_once_t evmem_once = PTHREAD_ONCE_INIT;

/* Thread exit: what the exiting thread's lists hold goes back to malloc. */
static void evmem_thread_exit(void *arg)
{
	h2mem_drain(arg);
}

static void evmem_make_key(void)
{
	pthread_key_create(&evmem_key, evmem_thread_exit);
}

static struct h2mem *evmem_mine(void)
{
	if (!evmem_registered) {
		evmem_registered = true;
		pthread_once(&evmem_once, evmem_make_key);
		pthread_setspecific(evmem_key, &evmem_lists);
	}
	return &evmem_lists;
}

static void *evmem_malloc(size_t size)
{
	return h2mem_alloc(evmem_mine(), size);
}

static void *evmem_realloc(void *ptr, size_t size)
{
	return h2mem_resize(evmem_mine(), ptr, size);
}

static void evmem_free(void *ptr)
{
	h2mem_release(evmem_mine(), ptr);
}

void evmem_install(void)
{
	if (!UTIL_RECYCLE)
		return;
	event_set_mem_functions(evmem_malloc, evmem_realloc, evmem_free);
	inbuf_install(evmem_malloc, evmem_free);
}
