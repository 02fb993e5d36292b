/* batcher.c - see batcher.h. */
#include "batcher.h"

int batch_decide(const struct batch_policy *p, int queued_rows, uint64_t oldest_ns,
		 uint64_t now_ns, uint64_t *wake_ns)
{
	uint64_t due;

	*wake_ns = UINT64_MAX;
	if (queued_rows <= 0)
		return 0;
	if (queued_rows >= p->max_batch)
		return p->max_batch;
	due = oldest_ns + p->max_delay_ns;
	if (now_ns >= due)
		return queued_rows;
	*wake_ns = due;
	return 0;
}
