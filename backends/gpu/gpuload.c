/*
 * gpuload.c - kind gpu's ops from the GPU plugin (be_gpu_load, backend.h).
 *
 * The GPU backend (gpu.c, its kernels, cudart, cuBLAS and cuBLASLt) is a
 * shared object of its own, infergw-gpu.so, loaded the first time a gpu
 * backend opens.  Linked into the programs, cuBLASLt alone cost every
 * process about 150 MB resident and 80 ms at exec (its initializers),
 * also on machines and configs with no GPU backend at all.
 *
 * The plugin is looked for at $INFERGW_GPU_PLUGIN, else next to the
 * running program (/proc/self/exe's directory).  It takes the few host
 * functions it calls (be_log, be_strdupf, be_state_epoch, ...) from the
 * program, which exports its symbols for it (make: -rdynamic).  Loaded
 * once per process (RTLD_NOW: an unresolved symbol is a load error, not a
 * crash later) and never unloaded; one built with another version of
 * the program (its be_gpu_stamp) is refused, naming both.  After a
 * failure each open tries again,
 * so a plugin installed later is taken at the next reload.  Built only
 * with CUDA (make: HAVE_CUDA), as the plugin is.
 */
#define _GNU_SOURCE
#include "backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GPU_PLUGIN_NAME "infergw-gpu.so"

static pthread_mutex_t gpu_load_mu = PTHREAD_MUTEX_INITIALIZER;
static const struct backend_ops *gpu_loaded;	/* under gpu_load_mu */

/* The plugin's path into buf: $INFERGW_GPU_PLUGIN, else next to the
 * program.  false when neither can be told. */
static bool gpu_plugin_path(char *buf, size_t n)
{
	const char *env = getenv("INFERGW_GPU_PLUGIN");
	char exe[PATH_MAX];
	ssize_t len;
	char *slash;

	if (env && *env)
		return (size_t)snprintf(buf, n, "%s", env) < n;
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		return false;
	exe[len] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return false;
	slash[1] = 0;
	return (size_t)snprintf(buf, n, "%s%s", exe, GPU_PLUGIN_NAME) < n;
}

#ifndef IGW_BUILD_VERSION
#error "IGW_BUILD_VERSION: the Makefile defines it (the build's version)"
#endif

/* Whether the plugin h at path was built with this program (its
 * be_gpu_stamp, backend.h); false with *err naming both builds. */
static bool gpu_stamp_ok(void *h, const char *path, char **err)
{
	const struct be_plugin_stamp *st = dlsym(h, "be_gpu_stamp");

	if (!st) {
		*err = be_strdupf("gpu: %s carries no build stamp (be_gpu_stamp): a plugin older "
				  "than this program's check, or not an infergw GPU plugin; install "
				  "the infergw-gpu.so built with infergw %s", path, IGW_BUILD_VERSION);
		return false;
	}
	if (st->layout != BE_PLUGIN_LAYOUT || !st->version ||
	    strcmp(st->version, IGW_BUILD_VERSION)) {
		*err = be_strdupf("gpu: %s is from another build (infergw %.64s, layout %llx); this "
				  "program is infergw %s (layout %llx): install the infergw-gpu.so "
				  "built with it", path, st->version ? st->version : "?",
				  st->layout, IGW_BUILD_VERSION, BE_PLUGIN_LAYOUT);
		return false;
	}
	return true;
}

/* The plugin's ops, or NULL with *err (see be_gpu_load). */
static const struct backend_ops *gpu_load(char **err)
{
	char path[PATH_MAX];
	const struct backend_ops *ops;
	void *h;

	if (!gpu_plugin_path(path, sizeof(path))) {
		*err = be_strdupf("gpu: cannot tell where the GPU plugin is (set "
				  "INFERGW_GPU_PLUGIN to the path of %s)", GPU_PLUGIN_NAME);
		return NULL;
	}
	if (access(path, F_OK)) {
		*err = be_strdupf("gpu: the GPU plugin %s is missing (install it next to the "
				  "program, or set INFERGW_GPU_PLUGIN)", path);
		return NULL;
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		*err = be_strdupf("gpu: cannot load the GPU plugin: %s", dlerror());
		return NULL;
	}
	if (!gpu_stamp_ok(h, path, err)) {
		dlclose(h);
		return NULL;
	}
	ops = dlsym(h, "be_gpu_ops");
	if (!ops || !ops->kind || strcmp(ops->kind, "gpu")) {
		*err = be_strdupf("gpu: %s has no be_gpu_ops of kind gpu (not an infergw GPU "
				  "plugin?)", path);
		dlclose(h);
		return NULL;
	}
	return ops;	/* the handle stays open for the process's life */
}

const struct backend_ops *be_gpu_load(char **err)
{
	const struct backend_ops *ops;

	pthread_mutex_lock(&gpu_load_mu);
	if (!gpu_loaded)
		gpu_loaded = gpu_load(err);
	ops = gpu_loaded;
	pthread_mutex_unlock(&gpu_load_mu);
	return ops;
}
