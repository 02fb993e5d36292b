/*
 * slice.c - the scheduler's side of backend.h's be_slice_live, alone so
 * that code linking the backends without the scheduler (the fuzz targets,
 * which parse configurations and never run a batch) links it too.
 */
#include <stdatomic.h>

#include "backend.h"
#include "infer.h"

bool be_slice_live(const struct infer_slice *sl)
{
	int st = atomic_load_explicit(&sl->r->state, memory_order_acquire);

	return st != REQ_CANCELLED && st != REQ_EXPIRED;
}
