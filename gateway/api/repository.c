/* repository.c - see repository.h. */
#define _GNU_SOURCE
#include "repository.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

#define REPO_LIST_MAX 4		/* refused names quoted in one message */
#define REPO_NAME_SHOWN 48	/* bytes of each refused name quoted */

/* Names of what is refused, collected over a whole body for one message;
 * bounded whatever the body holds (4 names of at most 48 + 38 bytes). */
struct repo_refused {
	char text[448];
	int n;
};

static int repo_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int repo_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void repo_refuse(struct repo_refused *r, const char *prefix, const char *key)
{
	size_t off = strlen(r->text);

	if (r->n++ < REPO_LIST_MAX)
		snprintf(r->text + off, sizeof(r->text) - off, "%s\"%s%.*s%s\"", r->n > 1 ? ", " : "",
			 prefix, REPO_NAME_SHOWN, key, strlen(key) > REPO_NAME_SHOWN ? "..." : "");
	else if (r->n == REPO_LIST_MAX + 1)
		snprintf(r->text + off, sizeof(r->text) - off, ", ...");
}

/*
 * Parse a request body: NULL (and 0) when there is none, else the JSON
 * object (-EINVAL with err when it is not one).  what names the request.
 */
static int repo_body(const char *what, const char *body, size_t len, json_t **out, char *err,
		     size_t errlen)
{
	json_error_t je;
	json_t *j;

	*out = NULL;
	if (len == 0)
		return 0;
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return repo_fail(err, errlen, "%s: the body is not JSON: %s (line %d, column %d)",
				 what, je.text, je.line, je.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return repo_fail(err, errlen, "%s: expected a JSON object as the body", what);
	}
	*out = j;
	return 0;
}

/*
 * An unsigned integer: a JSON integer, or a string of decimal digits (the
 * protobuf JSON mapping writes 64-bit integers as strings, and Triton's
 * model configuration has several).
 */
static int repo_uint(json_t *v, const char *key, long long min, long long max, long long *out,
		     char *err, size_t errlen)
{
	long long x = -1;

	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);

		for (size_t i = 0; i < n; i++)
			if (!isdigit((unsigned char)s[i]))
				n = 0;
		if (n == 0 || n > 18)
			return repo_fail(err, errlen, "%s: expected an integer %lld..%lld", key, min,
					 max);
		x = strtoll(s, NULL, 10);
	} else {
		return repo_fail(err, errlen, "%s: expected an integer %lld..%lld", key, min, max);
	}
	if (x < min || x > max)
		return repo_fail(err, errlen, "%s: expected an integer %lld..%lld, got %lld", key,
				 min, max, x);
	*out = x;
	return 0;
}

int repo_parse_index(const char *body, size_t len, bool *ready_only, char *err, size_t errlen)
{
	const char *key;
	json_t *j, *v;
	int rc;

	*ready_only = false;
	rc = repo_body("index", body, len, &j, err, errlen);
	if (rc || !j)
		return rc;
	json_object_foreach(j, key, v) {
		if (strcmp(key, "ready")) {
			rc = repo_fail(err, errlen, "index: unknown key \"%.*s\" (expected \"ready\")",
				       REPO_NAME_SHOWN, key);
			break;
		}
		if (!json_is_boolean(v)) {
			rc = repo_fail(err, errlen, "index: ready: expected true or false");
			break;
		}
		*ready_only = json_is_true(v);
	}
	json_decref(j);
	return rc;
}

/* The body's only key is "parameters", an object (returned, borrowed), or absent (NULL). */
static int repo_parameters(const char *what, json_t *j, json_t **params, char *err,
			   size_t errlen)
{
	const char *key;
	json_t *v;

	*params = NULL;
	json_object_foreach(j, key, v) {
		if (strcmp(key, "parameters"))
			return repo_fail(err, errlen, "%s: unknown key \"%.*s\" (expected \"parameters\")",
					 what, REPO_NAME_SHOWN, key);
		if (!json_is_object(v))
			return repo_fail(err, errlen, "%s: parameters: expected an object", what);
		*params = v;
	}
	return 0;
}

int repo_parse_unload(const char *body, size_t len, char *err, size_t errlen)
{
	struct repo_refused bad = { "", 0 };
	json_t *j, *params, *v;
	const char *key;
	int rc;

	rc = repo_body("unload", body, len, &j, err, errlen);
	if (rc || !j)
		return rc;
	rc = repo_parameters("unload", j, &params, err, errlen);
	if (!rc && params)
		json_object_foreach(params, key, v) {
			if (strcmp(key, "unload_dependents")) {
				repo_refuse(&bad, "", key);
			} else if (!json_is_boolean(v)) {
				rc = repo_fail(err, errlen, "unload: parameters.unload_dependents: "
					       "expected true or false");
				break;
			}
		}
	if (!rc && bad.n)
		rc = repo_fail(err, errlen, "unload: parameters not supported by infergw: %s "
			       "(only \"unload_dependents\")", bad.text);
	json_decref(j);
	return rc;
}

static int repo_cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* dynamic_batching.preferred_batch_size: up to 8 sizes, any order, no repeats. */
static int repo_preferred(json_t *v, struct repo_override *ov, char *err, size_t errlen)
{
	static const char *key = "config.dynamic_batching.preferred_batch_size";
	size_t i;
	json_t *e;

	if (!json_is_array(v) || json_array_size(v) > ARRAY_SIZE(ov->preferred))
		return repo_fail(err, errlen, "%s: expected a list of at most %zu sizes", key,
				 ARRAY_SIZE(ov->preferred));
	json_array_foreach(v, i, e) {
		long long x;
		char k[80];

		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		if (repo_uint(e, k, 1, 4096, &x, err, errlen))
			return -EINVAL;
		ov->preferred[i] = (int)x;
	}
	ov->n_preferred = (int)json_array_size(v);
	qsort(ov->preferred, ov->n_preferred, sizeof(int), repo_cmp_int);
	for (int k = 1; k < ov->n_preferred; k++)
		if (ov->preferred[k] == ov->preferred[k - 1])
			return repo_fail(err, errlen, "%s: size %d given twice", key, ov->preferred[k]);
	ov->set |= REPO_PREFERRED;
	return 0;
}

/* dynamic_batching.default_queue_policy */
static int repo_queue_policy(json_t *o, struct repo_override *ov, struct repo_refused *bad,
			     char *err, size_t errlen)
{
	static const char *prefix = "dynamic_batching.default_queue_policy.";
	const char *key;
	json_t *v;
	long long x;

	if (!json_is_object(o))
		return repo_fail(err, errlen, "config.dynamic_batching.default_queue_policy: "
				 "expected an object");
	json_object_foreach(o, key, v) {
		if (!strcmp(key, "default_timeout_microseconds")) {
			if (repo_uint(v, "config.dynamic_batching.default_queue_policy."
				      "default_timeout_microseconds", 0, 3600000000LL, &x, err, errlen))
				return -EINVAL;
			if (x % 1000)
				return repo_fail(err, errlen, "config.dynamic_batching.default_queue_policy."
						 "default_timeout_microseconds: %lld is not a whole "
						 "number of milliseconds (models[].slo_ms)", x);
			ov->slo_ms = (uint32_t)(x / 1000);
			ov->set |= REPO_TIMEOUT;
		} else if (!strcmp(key, "max_queue_size")) {
			if (repo_uint(v, "config.dynamic_batching.default_queue_policy.max_queue_size",
				      1, 1 << 20, &x, err, errlen))
				return -EINVAL;
			ov->max_queue = (int)x;
			ov->set |= REPO_MAX_QUEUE;
		} else if (!strcmp(key, "timeout_action")) {
			/* What infergw does (504 when the deadline passes in the queue). */
			if (!json_is_string(v) || strcmp(json_string_value(v), "REJECT"))
				return repo_fail(err, errlen, "config.dynamic_batching.default_queue_policy."
						 "timeout_action: only \"REJECT\" is supported");
		} else if (!strcmp(key, "allow_timeout_override")) {
			/* parameters.timeout always applies in infergw. */
			if (!json_is_true(v))
				return repo_fail(err, errlen, "config.dynamic_batching.default_queue_policy."
						 "allow_timeout_override: only true is supported");
		} else {
			repo_refuse(bad, prefix, key);
		}
	}
	return 0;
}

static int repo_dynamic_batching(json_t *o, struct repo_override *ov, struct repo_refused *bad,
				 char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	long long x;

	if (!json_is_object(o))
		return repo_fail(err, errlen, "config.dynamic_batching: expected an object");
	json_object_foreach(o, key, v) {
		if (!strcmp(key, "max_queue_delay_microseconds")) {
			if (repo_uint(v, "config.dynamic_batching.max_queue_delay_microseconds", 0,
				      10000000, &x, err, errlen))
				return -EINVAL;
			ov->max_queue_delay_us = (uint32_t)x;
			ov->set |= REPO_DELAY;
		} else if (!strcmp(key, "preferred_batch_size")) {
			if (repo_preferred(v, ov, err, errlen))
				return -EINVAL;
		} else if (!strcmp(key, "default_priority_level")) {
			if (repo_uint(v, "config.dynamic_batching.default_priority_level", 1, 1000000,
				      &x, err, errlen))
				return -EINVAL;
			ov->priority = (int)x;
			ov->set |= REPO_PRIORITY;
		} else if (!strcmp(key, "priority_levels")) {
			if (repo_uint(v, "config.dynamic_batching.priority_levels", 1, 1000000, &x, err,
				      errlen))
				return -EINVAL;
			ov->priority_levels = (int)x;
			ov->set |= REPO_LEVELS;
		} else if (!strcmp(key, "default_queue_policy")) {
			if (repo_queue_policy(v, ov, bad, err, errlen))
				return -EINVAL;
		} else {
			repo_refuse(bad, "dynamic_batching.", key);
		}
	}
	return 0;
}

/* The Triton model configuration given as parameters.config (a JSON string). */
static int repo_config(const char *name, json_t *str, struct repo_override *ov, char *err,
		       size_t errlen)
{
	struct repo_refused bad = { "", 0 };
	json_error_t je;
	const char *key;
	json_t *cfg, *v;
	long long x;
	int rc = 0;

	if (!json_is_string(str))
		return repo_fail(err, errlen, "load: parameters.config: expected a string holding "
				 "a Triton model configuration as JSON");
	cfg = json_loadb(json_string_value(str), json_string_length(str), JSON_REJECT_DUPLICATES,
			 &je);
	if (!cfg)
		return repo_fail(err, errlen, "load: parameters.config: not JSON: %s (line %d, "
				 "column %d)", je.text, je.line, je.column);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		return repo_fail(err, errlen, "load: parameters.config: expected a JSON object");
	}
	json_object_foreach(cfg, key, v) {
		if (!strcmp(key, "name")) {
			if (!json_is_string(v) || strcmp(json_string_value(v), name)) {
				rc = repo_fail(err, errlen, "load: config.name: expected \"%s\", the model "
					       "being loaded", name);
				break;
			}
		} else if (!strcmp(key, "max_batch_size")) {
			rc = repo_uint(v, "config.max_batch_size", 1, 4096, &x, err, errlen);
			if (rc)
				break;
			ov->max_batch = (int)x;
			ov->set |= REPO_MAX_BATCH;
		} else if (!strcmp(key, "dynamic_batching")) {
			rc = repo_dynamic_batching(v, ov, &bad, err, errlen);
			if (rc)
				break;
		} else {
			repo_refuse(&bad, "", key);
		}
	}
	if (!rc && bad.n)
		rc = repo_fail(err, errlen, "load: config keys not supported by infergw: %s (a load "
			       "applies only the batching keys: see docs/api.md, \"Model repository\")",
			       bad.text);
	json_decref(cfg);
	return rc;
}

int repo_parse_load(const char *name, const char *body, size_t len, struct repo_override *ov,
		    bool *has_config, char *err, size_t errlen)
{
	struct repo_refused files = { "", 0 }, other = { "", 0 };
	json_t *j, *params, *v, *config = NULL;
	const char *key;
	int rc;

	memset(ov, 0, sizeof(*ov));
	*has_config = false;
	rc = repo_body("load", body, len, &j, err, errlen);
	if (rc || !j)
		return rc;
	rc = repo_parameters("load", j, &params, err, errlen);
	if (!rc && params)
		json_object_foreach(params, key, v) {
			if (!strcmp(key, "config"))
				config = v;
			else if (!strncmp(key, "file:", 5))
				repo_refuse(&files, "", key);
			else
				repo_refuse(&other, "", key);
		}
	if (rc)
		goto out;
	if (files.n) {
		rc = repo_fail(err, errlen, "load: model files cannot be uploaded to infergw (it "
			       "loads models[].path of its configuration): %s", files.text);
	} else if (other.n) {
		rc = repo_fail(err, errlen, "load: parameters not supported by infergw: %s (only "
			       "\"config\")", other.text);
	} else if (config) {
		rc = repo_config(name, config, ov, err, errlen);
		*has_config = !rc;
	}
out:
	json_decref(j);
	return rc;
}

int repo_apply(struct config *cfg, const char *name, const struct repo_override *ov, char *err,
	       size_t errlen)
{
	struct model_conf *mc = NULL;
	int levels = cfg->routing.priority_levels;

	for (int i = 0; i < cfg->n_models && !mc; i++)
		if (!strcmp(cfg->models[i].name, name))
			mc = &cfg->models[i];
	if (!mc)
		return 0;
	if ((ov->set & REPO_LEVELS) && ov->priority_levels != levels)
		return repo_fail(err, errlen, "config.dynamic_batching.priority_levels: %d, but "
				 "priority levels are gateway-wide: routing.priority_levels is %d",
				 ov->priority_levels, levels);
	if ((ov->set & REPO_PRIORITY) && ov->priority > levels)
		return repo_fail(err, errlen, "config.dynamic_batching.default_priority_level: %d is "
				 "past routing.priority_levels (%d)", ov->priority, levels);
	if ((ov->set & REPO_TIMEOUT) && !ov->slo_ms && mc->adaptive)
		return repo_fail(err, errlen, "config.dynamic_batching.default_queue_policy."
				 "default_timeout_microseconds: 0 leaves model \"%s\" without the "
				 "slo_ms its adaptive_batching needs", name);
	if (ov->set & REPO_MAX_BATCH)
		mc->max_batch = ov->max_batch;
	if (ov->set & REPO_DELAY)
		mc->max_queue_delay_us = ov->max_queue_delay_us;
	if (ov->set & REPO_PREFERRED) {
		mc->n_preferred = ov->n_preferred;
		memcpy(mc->preferred, ov->preferred, sizeof(mc->preferred));
	}
	if (ov->set & REPO_PRIORITY)
		mc->priority = ov->priority;
	if (ov->set & REPO_TIMEOUT)
		mc->slo_ms = ov->slo_ms;
	if (ov->set & REPO_MAX_QUEUE)
		mc->max_queue = ov->max_queue;
	return 0;
}

void *repo_override_json(const struct repo_override *ov)
{
	json_t *o = json_object();

	if (ov->set & REPO_MAX_BATCH)
		json_object_set_new(o, "max_batch", json_integer(ov->max_batch));
	if (ov->set & REPO_DELAY)
		json_object_set_new(o, "max_queue_delay_us", json_integer(ov->max_queue_delay_us));
	if (ov->set & REPO_PREFERRED) {
		json_t *p = json_array();

		for (int i = 0; i < ov->n_preferred; i++)
			json_array_append_new(p, json_integer(ov->preferred[i]));
		json_object_set_new(o, "preferred_batch_sizes", p);
	}
	if (ov->set & REPO_PRIORITY)
		json_object_set_new(o, "priority", json_integer(ov->priority));
	if (ov->set & REPO_TIMEOUT)
		json_object_set_new(o, "slo_ms", json_integer(ov->slo_ms));
	if (ov->set & REPO_MAX_QUEUE)
		json_object_set_new(o, "max_queue", json_integer(ov->max_queue));
	return o;
}
