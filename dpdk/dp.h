/*
 * dp.h - the DPDK fast path: poll-mode lcores that take one inference
 * request per UDP datagram off a DPDK port (docs/udp-protocol.md), route it
 * through the request front (front.h) like HTTP does, and answer from the
 * same lcore.  ARP for the configured address and ICMP echo are answered
 * too.  Configured by the `dpdk:` section (config.h, docs/config.md); with
 * the section absent nothing of DPDK starts (not even EAL).
 *
 * Lifecycle: dp_start once after the runtime is published (the lcores read
 * rt_current); dp_stop once at shutdown, before rt_stop_all.  Both run on
 * the main thread.  The section is restart-only: a reload never touches a
 * running data path.
 *
 * Built when the Makefile finds libdpdk (USE_DPDK); otherwise the stubs
 * below refuse a configured dpdk: section.
 */
#ifndef INFERGW_DP_H
#define INFERGW_DP_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#ifdef USE_DPDK
/*
 * dp_start - initialise EAL with d->eal (plus --in-memory unless a
 * --file-prefix or --in-memory is given, and an lcore map for d->lcores
 * unless -l/-c/--lcores is given), set up port d->port with d->queues
 * queue pairs (RSS on IPv4/UDP when more than one and the port can), and
 * launch the packet lcores.  The calling thread's CPU affinity is kept
 * (EAL would pin it to the main lcore).  0 when d is disabled or all is
 * running; else -errno with *err (malloc'd, the caller frees; prefixed
 * with d->where) and nothing left running.
 */
int dp_start(const struct dpdk_conf *d, char **err);
/*
 * dp_stop - stop receiving, wait for the requests in flight to be answered
 * (at most grace_ms), stop the lcores, close the port and clean up EAL;
 * logs the per-stage cycle averages.  No-op when dp_start did not start
 * anything.  Requests still in flight after grace_ms are abandoned: their
 * lcore state is kept (never freed) so a late completion lands safely.
 */
void dp_stop(uint32_t grace_ms);
#else
static inline int dp_start(const struct dpdk_conf *d, char **err)
{
	if (!d->enabled)
		return 0;
	*err = malloc(strlen(d->where) + 64);
	if (*err)
		sprintf(*err, "%s: this binary was built without DPDK", d->where);
	return -ENOTSUP;
}

static inline void dp_stop(uint32_t grace_ms)
{
	(void)grace_ms;
}
#endif

#endif
