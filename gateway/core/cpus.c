/*
 * cpus.c - the number of CPUs `listen.threads: 0` means.
 *
 * sysconf(_SC_NPROCESSORS_ONLN) counts the machine's cores: in a Kubernetes
 * pod limited to 2 CPUs on a 64-core node that would start 64 event loops
 * (and the CFS quota would then throttle all of them).  What a process may
 * really use is its affinity mask (taskset, cpusets) capped by the CPU
 * bandwidth limit of its cgroup or of any ancestor (a pod's limit sits on
 * the pod's cgroup, the container's on its own).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpus.h"

/* The first line of PATH as up to two integers, "max" read as -1.  The
 * count of numbers read (0 when the file is missing or empty). */
static int cpus_read_pair(const char *path, long long *a, long long *b)
{
	char w1[32] = "", w2[32] = "";
	FILE *f = fopen(path, "re");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%31s %31s", w1, w2);
	fclose(f);
	if (n < 1)
		return 0;
	*a = strcmp(w1, "max") ? strtoll(w1, NULL, 10) : -1;
	if (n == 2)
		*b = strtoll(w2, NULL, 10);
	return n;
}

/* The limit of one cgroup directory DIR in millicpus (0: none there). */
static long cpus_dir_limit(const char *dir, int v2)
{
	char path[PATH_MAX];
	long long quota = -1, period = 0, unused;

	if (v2) {
		snprintf(path, sizeof(path), "%s/cpu.max", dir);
		if (cpus_read_pair(path, &quota, &period) != 2)
			return 0;
	} else {
		snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
		if (cpus_read_pair(path, &quota, &unused) < 1)
			return 0;
		snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
		if (cpus_read_pair(path, &period, &unused) < 1)
			return 0;
	}
	if (quota <= 0 || period <= 0)
		return 0;
	quota = quota * 1000 / period;
	return quota > 0 ? (long)quota : 1;
}

/* The tightest limit of BASE/REL and its ancestors up to BASE (0: none). */
static long cpus_walk(const char *base, const char *rel, int v2)
{
	char dir[PATH_MAX];
	long best = 0, lim;
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s%s", base, rel) >= (int)sizeof(dir))
		return 0;
	for (;;) {
		lim = cpus_dir_limit(dir, v2);
		if (lim > 0 && (best == 0 || lim < best))
			best = lim;
		slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < strlen(base))
			break;
		*slash = '\0';
	}
	return best;
}

/* True when the comma-separated controller list LIST names "cpu". */
static int cpus_has_cpu(const char *list)
{
	const char *p = list;
	size_t n;

	while (*p) {
		n = strcspn(p, ",");
		if (n == 3 && !memcmp(p, "cpu", 3))
			return 1;
		p += n + (p[n] == ',');
	}
	return 0;
}

long cpus_quota_milli(const char *proc_cgroup, const char *root)
{
	char line[PATH_MAX + 64], base[PATH_MAX];
	FILE *f = fopen(proc_cgroup, "re");
	long best = 0, lim = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *rel = ctl ? strchr(ctl + 1, ':') : NULL;

		if (!rel)
			continue;
		*rel++ = '\0';
		rel[strcspn(rel, "\n")] = '\0';
		if (!strcmp(rel, "/"))
			rel[0] = '\0';
		if (!strcmp(ctl + 1, "")) {	/* "0::/path": cgroup v2 */
			lim = cpus_walk(root, rel, 1);
		} else if (cpus_has_cpu(ctl + 1)) {
			/* v1: the cpu controller's mount is named after its list
			 * ("cpu,cpuacct") or just "cpu"; in a container the path
			 * shown may be the host's while the mount is the
			 * container's own: then the mount's root is the answer. */
			snprintf(base, sizeof(base), "%s/%s", root, ctl + 1);
			if (access(base, F_OK))
				snprintf(base, sizeof(base), "%s/cpu", root);
			lim = cpus_walk(base, rel, 0);
			if (!lim)
				lim = cpus_dir_limit(base, 0);
		} else {
			continue;
		}
		if (lim > 0 && (best == 0 || lim < best))
			best = lim;
	}
	fclose(f);
	return best;
}

int cpus_usable(const char **why)
{
	const char *by = "online";
	cpu_set_t set;
	long n = sysconf(_SC_NPROCESSORS_ONLN), quota;

	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0) {
		n = CPU_COUNT(&set);
		by = "affinity";
	}
	if (n < 1)
		n = 1;
	quota = cpus_quota_milli("/proc/self/cgroup", "/sys/fs/cgroup");
	if (quota > 0 && (quota + 999) / 1000 < n) {
		n = (quota + 999) / 1000;
		by = "cgroup-quota";
	}
	if (why)
		*why = by;
	return (int)n;
}
