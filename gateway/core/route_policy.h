/*
 * route_policy.h - the routing policies the configuration names (routing.policy,
 * docs/config.md) and the router (sched/router.h) implements.  Kept in core so
 * the configuration parses them without depending on the scheduler.
 */
#ifndef INFERGW_ROUTE_POLICY_H
#define INFERGW_ROUTE_POLICY_H

#include <string.h>

enum route_policy { ROUTE_SLO, ROUTE_LEAST_QUEUE, ROUTE_ROUND_ROBIN };

#define ROUTE_POLICY_NAMES { "slo", "least-queue", "round-robin" }

/* router_policy_parse - "slo" | "least-queue" | "round-robin"; -1 when unknown. */
static inline int router_policy_parse(const char *s)
{
	static const char *const names[] = ROUTE_POLICY_NAMES;

	for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* router_policy_name - the configuration name of policy p (a valid enum value). */
static inline const char *router_policy_name(enum route_policy p)
{
	static const char *const names[] = ROUTE_POLICY_NAMES;

	return names[p];
}

#endif
