/*
 * config.h - the gateway's configuration, read from one YAML file.
 *
 * cfg_load parses and validates; every error names FILE:LINE:COLUMN and the
 * key path.  A struct config is immutable once loaded.  Documented key by
 * key in docs/config.md.
 */
#ifndef INFERGW_CONFIG_H
#define INFERGW_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

struct model_conf {
	char *name;
	char *path;		/* model directory, resolved against the config's directory */
	int max_batch;		/* rows per batch; 0 = the model's max_batch_size */
	uint32_t max_queue_delay_us;	/* wait this long for a fuller batch */
	int max_queue;		/* queued requests per backend before 429 */
};

struct config {
	char *file;
	struct {
		char *address;
		int port;
		int threads;		/* event loops; resolved: never 0 */
	} listen;
	struct {
		uint64_t max_body_bytes;
		uint32_t max_header_bytes;
		uint32_t max_concurrent_streams;
		uint32_t idle_timeout_ms;
		uint32_t shutdown_grace_ms;
	} limits;
	struct {
		int level;		/* enum log_level */
		bool access;
	} log;
	int n_models;
	struct model_conf *models;
	int n_backends;
	struct backend_conf *backends;
};

/*
 * cfg_load - read and validate path.
 * Returns a config (free with cfg_free) or NULL with *err set to a malloc'd
 * "FILE:LINE:COL: key.path: what is wrong" message.
 */
struct config *cfg_load(const char *path, char **err);
void cfg_free(struct config *c);
/* cfg_find_model - the model_conf called name, or NULL. */
const struct model_conf *cfg_find_model(const struct config *c, const char *name);

#endif
