/*
 * registry.c - the backend kinds this binary knows (backend.h be_kind_*).
 * config.c reads a backends[] entry's kind, then the kind's own keys
 * through its parse_conf; runtime.c opens it through its ops.  Adding a
 * kind is one line here and its own file: no if-chains elsewhere.
 */
#define _GNU_SOURCE	/* vasprintf */
#include "backend.h"
#include "remote/remote.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int be_cpu_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err);
int be_fake_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err);

static const char *const be_cpu_keys[] = { "threads_per_worker", "nice", "weights_layout",
					    "inline_us", NULL };
static const char *const be_gpu_keys[] = { "device", "streams", "math", "graphs", "max_batch",
						 NULL };
static const char *const be_fake_keys[] = { "latency_us", "fail_every", "down_after",
					    "fp32_only", NULL };

static const struct be_kind be_kinds[] = {
	{ "cpu", BE_CPU, &be_cpu_ops, NULL, be_cpu_keys, be_cpu_parse_conf, NULL },
	{ "gpu", BE_GPU, NULL, BE_GPU_LOAD, be_gpu_keys, be_gpu_parse_conf, NULL },
	{ "remote", BE_REMOTE, &be_remote_ops, NULL, be_remote_keys, be_remote_parse_conf,
	  be_remote_expand },
	/* test-only (backends/fake/fake.c): not listed in messages */
	{ "fake", BE_FAKE, &be_fake_ops, NULL, be_fake_keys, be_fake_parse_conf, NULL },
};

const struct be_kind *be_kind_find(const char *name)
{
	for (size_t i = 0; i < sizeof(be_kinds) / sizeof(be_kinds[0]); i++)
		if (!strcmp(be_kinds[i].name, name))
			return &be_kinds[i];
	return NULL;
}

const struct be_kind *be_kind_of(enum backend_kind k)
{
	for (size_t i = 0; i < sizeof(be_kinds) / sizeof(be_kinds[0]); i++)
		if (be_kinds[i].kind == k)
			return &be_kinds[i];
	return &be_kinds[0];
}

const struct backend_ops *be_kind_ops(const struct be_kind *k, char **err)
{
	if (k->ops)
		return k->ops;
	if (k->load)
		return k->load(err);
	*err = be_strdupf("backend kind %s not built into this binary", k->name);
	return NULL;
}

const char *be_kind_list(void)
{
	return "cpu, gpu or remote";
}

char *be_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

_Atomic uint64_t be_state_epoch;

static const char *const be_wlayout_names[] = { "auto", "packed", "plain" };

const char *be_wlayout_name(enum be_wlayout l)
{
	return (unsigned)l < 3 ? be_wlayout_names[l] : "?";
}

int be_wlayout_parse(const char *s, enum be_wlayout *out)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, be_wlayout_names[i])) {
			*out = (enum be_wlayout)i;
			return 0;
		}
	return -EINVAL;
}

static void (*_Atomic be_log_fn)(int level, const char *line);

void be_log_set(void (*fn)(int level, const char *line))
{
	be_log_fn = fn;
}

void be_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	void (*fn)(int, const char *) = be_log_fn;
	char line[1024];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n = 0;

	if (level < BE_LOG_DEBUG || level > BE_LOG_ERROR)
		level = BE_LOG_ERROR;
	if (!fn && level == BE_LOG_DEBUG)
		return;		/* no gateway threshold to ask: debug is off */
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (fn) {
		fn(level, line);
		return;
	}
	/* As log.c writes it, one write per line. */
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s %s\n",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec, (long)tv.tv_usec / 1000, names[level], line);
	(void)n;
}
