/* cpus.h - how many CPUs this process may keep busy (for `threads: 0`). */
#ifndef INFERGW_CPUS_H
#define INFERGW_CPUS_H

/*
 * cpus_quota_milli - the tightest CPU bandwidth limit on the cgroup this
 * process is in and on its ancestors, in thousandths of a CPU: cgroup v2
 * `cpu.max` ("QUOTA PERIOD" or "max PERIOD"), else cgroup v1
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none).
 * proc_cgroup: the membership file (/proc/self/cgroup); root: where the
 * cgroup filesystems are mounted (/sys/fs/cgroup).  Both are parameters so
 * that tests can hand over a tree of their own.
 * Returns the limit (> 0), or 0 when there is none or nothing could be read
 * (an unreadable file means no limit known, never an error).
 */
long cpus_quota_milli(const char *proc_cgroup, const char *root);

/*
 * cpus_usable - CPUs this process may keep busy: those of its affinity mask
 * (sched_getaffinity; the online count if that fails), capped by the cgroup
 * quota rounded up (1.5 CPUs -> 2), at least 1.  A container limited to 2
 * CPUs on a 64-core node gets 2, not 64.  *why (when not NULL) is set to a
 * static word naming what decided: "affinity", "cgroup-quota" or "online".
 */
int cpus_usable(const char **why);

#endif
