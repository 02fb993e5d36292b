/* inbuf.c - see inbuf.h. */
#include "inbuf.h"

#include <stdlib.h>

static void *(*inbuf_take)(size_t) = malloc;
static void (*inbuf_give)(void *) = free;

float *inbuf_alloc(size_t n)
{
	return inbuf_take(n * sizeof(float));
}

void inbuf_free(float *p)
{
	inbuf_give(p);
}

void inbuf_install(void *(*alloc)(size_t), void (*release)(void *))
{
	inbuf_take = alloc;
	inbuf_give = release;
}
