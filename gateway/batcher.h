/*
 * batcher.h - when to cut a batch.  Pure logic: no I/O, no clock reads.
 *
 * Rule (issue 2): cut when the queued rows reach max_batch, or when the
 * oldest queued request has waited max_delay_ns.  Otherwise wait until
 * that moment.
 */
#ifndef INFERGW_BATCHER_H
#define INFERGW_BATCHER_H

#include <stdint.h>

struct batch_policy {
	int max_batch;		/* rows */
	uint64_t max_delay_ns;
};

/*
 * batch_decide - rows to cut now, or 0 with *wake_ns set to when to decide
 * again.  queued_rows = rows waiting, oldest_ns = arrival of the oldest
 * waiting request.  Returns 0 and *wake_ns = UINT64_MAX when nothing waits.
 */
int batch_decide(const struct batch_policy *p, int queued_rows, uint64_t oldest_ns,
		 uint64_t now_ns, uint64_t *wake_ns);

#endif
