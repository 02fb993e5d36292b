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

/* Model and backend names: 1 to CFG_NAME_MAX characters of [A-Za-z0-9_.-],
 * not starting with '.' or '-' (docs/config.md): they go into URLs, metric
 * labels and logs. */
#define CFG_NAME_MAX 64

struct model_conf {
	char *name;
	char *path;		/* model directory, resolved against the config's directory */
	char *where;		/* "FILE:LINE:COL: models[i].path" for load errors */
	int max_batch;		/* rows per batch; 0 = the model's max_batch_size */
	uint32_t max_queue_delay_us;	/* wait this long for a fuller batch */
	int max_queue;		/* queued requests per backend before 429 */
	uint32_t slo_ms;	/* default objective; 0 = none */
	int priority;		/* default priority level (1 = highest) */
	int n_preferred;
	int preferred[8];	/* preferred batch sizes, ascending */
	bool adaptive;		/* AIMD max_batch to keep latency under slo_ms */
	double svc_base_us, svc_per_row_us;	/* service-time warm start; 0 = calibrate */
	/* variants.int8: an INT8 variant made by infergw-quantize (model.yaml
	 * variant: int8, variant_of this model), served beside this one (the
	 * fp32 variant, path); NULL = none.  Resolved like path. */
	char *int8_path;
	char *int8_where;	/* "FILE:LINE:COL: models[i].variants.int8" for load errors */
	int variant_policy;	/* enum cfg_variant_policy */
};

/* models[].variant_policy: which variant serves a request that names none
 * (parameters.variant).  accurate: fp32 unless no backend can meet the
 * request's deadline with it (then int8); fp32 / int8: always that one. */
enum cfg_variant_policy { CFG_VARPOL_ACCURATE, CFG_VARPOL_FP32, CFG_VARPOL_INT8 };
/* cfg_variant_policy_name - "accurate", "fp32" or "int8" (an unknown value: "accurate"). */
const char *cfg_variant_policy_name(int policy);

/* listen.tls: TLS on the main listener (tls.h builds the SSL_CTX). */
struct tls_conf {
	char *certificate;	/* PEM chain, resolved path; NULL = no TLS */
	char *key;		/* PEM private key, resolved path */
	char *client_ca;	/* PEM CA(s) client certificates must chain to; NULL = none asked */
	int min_version;	/* 12 (TLS 1.2) or 13 (TLS 1.3) */
	/* "FILE:LINE:COL: listen.tls.KEY", prefixed to errors found when the
	 * files are read (rt_build), like models[].where. */
	char *where_certificate, *where_key, *where_client_ca;
};

/*
 * dpdk: the UDP fast path (dpdk/dp.h, docs/config.md).  Absent: nothing of
 * DPDK starts.  Restart-only: a reload that changes it says so.
 */
#define CFG_DPDK_MAX_LCORES 64
#define CFG_DPDK_MAX_EAL 64
struct dpdk_conf {
	bool enabled;		/* the section is present */
	int n_eal;
	char **eal;		/* EAL arguments, in order (argv[0] not included) */
	int port;		/* ethdev port id */
	char *address;		/* IPv4, dotted quad, as written */
	uint32_t ip;		/* address in host byte order */
	int udp_port;
	int n_lcores;		/* packet lcores */
	bool lcore_list;	/* lcore_ids were given (else: a count) */
	int lcore_ids[CFG_DPDK_MAX_LCORES];
	int queues;		/* RX/TX queue pairs; 0 = one per lcore */
	int mbufs;		/* mempool size */
	int burst;		/* rx/tx burst */
	char *where;		/* "FILE:LINE:COL: dpdk", for errors found at start */
};

/* listen.http2_engine's default: the native engine (false) or nghttp2. */
#define CFG_HTTP2_NGHTTP2_DEFAULT false

/* backends[].inline_us's default (kind cpu): batches measured at up to 20
 * us run on the thread that submits them (docs/config.md). */
#define CFG_CPU_INLINE_US_DEFAULT 20

struct config {
	char *file;
	struct {
		char *address;
		int port;
		int grpc_port;		/* Triton's gRPC port (8001): the same stack; -1 = none */
		int threads;		/* event loops; resolved: never 0 */
		bool http2_nghttp2;	/* http2_engine: nghttp2 (else native: h2w.h) */
		const char *threads_from; /* "config", or for 0 what cpus_usable() went by */
		struct tls_conf tls;
	} listen;
	struct {
		uint64_t max_body_bytes;
		uint32_t max_header_bytes;
		uint32_t max_concurrent_streams;
		uint32_t idle_timeout_ms;
		uint32_t shutdown_grace_ms;
		uint32_t header_timeout_ms;	/* a request head (h2: preface + HEADERS) must arrive in this */
		uint32_t write_stall_timeout_ms;	/* queued output unread this long: close */
		uint32_t output_buffer_bytes;	/* stop reading while more output than this is queued */
		uint32_t max_connections;	/* per process; over it: 503 and close */
	} limits;
	struct {
		int policy;		/* enum route_policy */
		uint32_t margin_us;	/* slack kept before a deadline */
		int priority_levels;
		int sheddable_levels;	/* the lowest this many levels may be shed */
		double shed_wait_fraction;	/* shed when predicted wait > this x objective */
		bool drop_hopeless;	/* 504 queued requests that can no longer finish in time */
		uint32_t probe_ms;	/* probe a service time unsampled this long; 0 = never */
	} routing;
	struct {
		char *address;
		int port;		/* 0 = pick one; -1 = no admin listener */
		bool repository_on_main;	/* repository load/unload on the inference port too */
		bool tls;		/* TLS with listen.tls's certificate (restart-only) */
		char *token_file;	/* admin.token_file, resolved; NULL: no token asked */
		char *token;		/* its bearer token, read at load (never printed) */
	} admin;
	struct {
		bool watch;		/* reload when the file changes (inotify) */
		uint32_t debounce_ms;
		uint32_t resolve_ms;	/* re-resolve remote DNS names this often; 0 = never */
	} reload;
	struct {
		int level;		/* enum log_level */
		bool access;
	} log;
	int n_models;
	struct model_conf *models;
	int n_backends;
	struct backend_conf *backends;
	struct dpdk_conf dpdk;
};

/*
 * cfg_load - read and validate path.
 * Returns a config (free with cfg_free) or NULL with *err set to a malloc'd
 * "FILE:LINE:COL: key.path: what is wrong" message.
 */
struct config *cfg_load(const char *path, char **err);
void cfg_free(struct config *c);
/* cfg_to_json - the effective configuration (defaults filled in) as a JSON
 * object (jansson json_t *, the caller decrefs). */
void *cfg_to_json(const struct config *c);
/* cfg_drop_model - remove model name from c and from every backend's list
 * (the repository API's unload).  true when it was there. */
bool cfg_drop_model(struct config *c, const char *name);
/* cfg_backend_dup / cfg_backend_free - a deep copy a backend can keep after
 * the config that described it is gone. */
void cfg_backend_dup(struct backend_conf *dst, const struct backend_conf *src);
void cfg_backend_free(struct backend_conf *b);
/*
 * cfg_expand_backends - replace each backends[] entry whose kind expands
 * (be_kind.expand: a remote DNS name with several addresses) by the
 * entries it stands for, in place, so that c->backends is what is opened
 * (rt_build).  0, or -EINVAL with *err (malloc'd) when an expanded name
 * collides with another backend's; -ENOMEM.  c is unchanged on error.
 */
int cfg_expand_backends(struct config *c, char **err);
/* cfg_backend_same - equal but for cost and batching (which apply live). */
bool cfg_backend_same(const struct backend_conf *a, const struct backend_conf *b);
/*
 * cfg_restart_diff - settings that differ between a and b and only take
 * effect on restart (listeners, thread count), as "key: old -> new; ...".
 * Returns a malloc'd string, or NULL when there are none.
 */
char *cfg_restart_diff(const struct config *a, const struct config *b);
/* cfg_find_model - the model_conf called name, or NULL. */
const struct model_conf *cfg_find_model(const struct config *c, const char *name);

#endif
