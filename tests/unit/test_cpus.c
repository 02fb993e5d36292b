/* Unit tests for gateway/core/cpus.c: the cgroup CPU limit behind
 * `listen.threads: 0`, read from trees the test writes itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpus.h"

static char root[256];

static void put(const char *rel, const char *text)
{
	char path[512], dir[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	for (p = dir + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static long quota(void)
{
	char pc[300];

	snprintf(pc, sizeof(pc), "%s/proc_cgroup", root);
	return cpus_quota_milli(pc, root);
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/test_cpus.XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

/* A pod's cgroup v2 limit (2.5 CPUs) on an ancestor, a looser one on the
 * container's own cgroup: the tightest wins. */
static void test_v2_ancestor_wins(void **state)
{
	put("proc_cgroup", "0::/kubepods/pod1/ctr\n");
	put("kubepods/pod1/cpu.max", "250000 100000\n");
	put("kubepods/pod1/ctr/cpu.max", "400000 100000\n");
	put("kubepods/cpu.max", "max 100000\n");
	assert_int_equal(quota(), 2500);
}

/* "max" everywhere, or no cpu.max files: no limit. */
static void test_v2_unlimited(void **state)
{
	put("proc_cgroup", "0::/a/b\n");
	put("a/b/cpu.max", "max 100000\n");
	assert_int_equal(quota(), 0);
	put("proc_cgroup", "0::/nothing/here\n");
	assert_int_equal(quota(), 0);
}

/* A container with its own cgroup namespace: "0::/", the limit on the
 * mount's root. */
static void test_v2_namespace_root(void **state)
{
	put("proc_cgroup", "0::/\n");
	put("cpu.max", "150000 100000\n");
	assert_int_equal(quota(), 1500);
}

/* cgroup v1: the cpu controller's mount named after its list; -1 is none. */
static void test_v1_quota(void **state)
{
	put("proc_cgroup", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n");
	put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
	put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
	put("cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n");
	put("cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
	assert_int_equal(quota(), 500);
	put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
	assert_int_equal(quota(), 0);
}

/* v1 in a container: the path shown is the host's, the mount the
 * container's own (its root carries the limit); a "cpu"-only mount. */
static void test_v1_host_path_in_container(void **state)
{
	put("proc_cgroup", "2:cpu:/docker/0123\n");
	put("cpu/cpu.cfs_quota_us", "300000\n");
	put("cpu/cpu.cfs_period_us", "100000\n");
	assert_int_equal(quota(), 3000);
}

/* Garbage and a missing membership file read as "no limit", never crash. */
static void test_garbage(void **state)
{
	put("proc_cgroup", "no colons at all\n::\n7:cpu\n0::/g\n");
	put("g/cpu.max", "banana\n");
	assert_int_equal(quota(), 0);
	assert_int_equal(cpus_quota_milli("/nonexistent/cgroup", root), 0);
}

/* The process's own answer: at least 1, never more than the affinity mask. */
static void test_usable(void **state)
{
	const char *why = NULL;
	int n = cpus_usable(&why);
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	assert_true(n >= 1);
	assert_true(n <= online);
	assert_non_null(why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v2_ancestor_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_unlimited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_namespace_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_host_path_in_container, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test(test_usable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
