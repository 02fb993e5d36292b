/*
 * repository.h - the bodies of the KServe/Triton model repository
 * extension's requests, and the batching override a `load` with a Triton
 * model configuration sets.  Pure: parse and validate, no I/O, no threads
 * (the control thread calls it; the unit tests too).
 *
 * What Triton's clients (tritonclient.http) send:
 *   POST /v2/repository/index           ""  or  {"ready": true|false}
 *   POST /v2/repository/models/{m}/load {}  or  {"parameters": {"config": "<model
 *                                       config JSON>", "file:<path>": "<base64>"}}
 *   POST /v2/repository/models/{m}/unload  {"parameters": {"unload_dependents": bool}}
 *
 * A load's config may set Triton's batching keys, which map onto models[]
 * keys (docs/api.md "Model repository"):
 *   max_batch_size                                    -> max_batch
 *   dynamic_batching.max_queue_delay_microseconds     -> max_queue_delay_us
 *   dynamic_batching.preferred_batch_size             -> preferred_batch_sizes
 *   dynamic_batching.default_priority_level           -> priority
 *   dynamic_batching.priority_levels                  == routing.priority_levels
 *   dynamic_batching.default_queue_policy.default_timeout_microseconds -> slo_ms
 *   dynamic_batching.default_queue_policy.max_queue_size               -> max_queue
 * Everything else (and every file) is refused by name: a load never
 * answers 200 while ignoring part of what it was sent.
 */
#ifndef INFERGW_REPOSITORY_H
#define INFERGW_REPOSITORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

enum repo_field {
	REPO_MAX_BATCH = 1 << 0,
	REPO_DELAY = 1 << 1,
	REPO_PREFERRED = 1 << 2,
	REPO_PRIORITY = 1 << 3,
	REPO_LEVELS = 1 << 4,
	REPO_TIMEOUT = 1 << 5,
	REPO_MAX_QUEUE = 1 << 6,
};

/* The models[] keys a load's config sets; `set` says which (REPO_* bits). */
struct repo_override {
	unsigned set;
	int max_batch;
	uint32_t max_queue_delay_us;
	int n_preferred;
	int preferred[8];		/* ascending */
	int priority;
	int priority_levels;		/* only checked: routing.priority_levels is gateway-wide */
	uint32_t slo_ms;
	int max_queue;
};

/*
 * repo_parse_index - the body of an index request (len 0: none).
 * *ready_only: list only the models that are ready.  0, or -EINVAL with a
 * message naming the field in err.
 */
int repo_parse_index(const char *body, size_t len, bool *ready_only, char *err, size_t errlen);
/* repo_parse_unload - the body of an unload request (len 0: none); 0 or
 * -EINVAL with err.  unload_dependents is accepted (no model has any). */
int repo_parse_unload(const char *body, size_t len, char *err, size_t errlen);
/*
 * repo_parse_load - the body of a load of model `name` (len 0: none).
 * *has_config: the body carried a config, parsed into *ov; without one *ov
 * is cleared (a load without config goes back to the file's settings, as
 * Triton goes back to config.pbtxt).  0, or -EINVAL with err naming what
 * is not supported (files, keys, parameters) or malformed.
 */
int repo_parse_load(const char *name, const char *body, size_t len, struct repo_override *ov,
		    bool *has_config, char *err, size_t errlen);
/*
 * repo_apply - set ov's keys on cfg's model `name` and check them against
 * the rest of cfg (priority levels, adaptive batching).  A model cfg does
 * not have is left alone (0).  0, or -EINVAL with err.
 */
int repo_apply(struct config *cfg, const char *name, const struct repo_override *ov, char *err,
	       size_t errlen);
/* repo_override_json - the models[] keys ov sets, as a JSON object
 * (jansson json_t *, the caller decrefs). */
void *repo_override_json(const struct repo_override *ov);

#endif
