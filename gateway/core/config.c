/*
 * config.c - parse and validate gateway.yaml (see config.h, docs/config.md).
 *
 * Each section has its own parse function that reads keys from a ytree
 * mapping, applies defaults, and checks ranges; unknown keys are errors.
 */
#define _GNU_SOURCE
#include "config.h"
#include "cpus.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "route_policy.h"
#include "secret.h"
#include "util.h"
#include "model/ytree.h"

/* Read an optional integer key into *out (unchanged when absent). */
static int cfg_opt_int(struct ytree *t, yaml_node_t *m, const char *path, const char *key,
		       int64_t min, int64_t max, int64_t *out, char **err)
{
	yaml_node_t *n = yt_get(t, m, key);
	char p[256];

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.%s", path, key);
	return yt_int(t, n, p, min, max, out, err);
}

static int cfg_opt_str(struct ytree *t, yaml_node_t *m, const char *path, const char *key,
		       char **out, char **err)
{
	yaml_node_t *n = yt_get(t, m, key);
	char p[256];
	char *s;

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (yt_str(t, n, p, &s, err))
		return -EINVAL;
	free(*out);
	*out = s;
	return 0;
}

static int cfg_opt_bool(struct ytree *t, yaml_node_t *m, const char *path, const char *key,
			bool *out, char **err)
{
	yaml_node_t *n = yt_get(t, m, key);
	char p[256];

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.%s", path, key);
	return yt_bool(t, n, p, out, err);
}

/* Resolve a path (models[].path, listen.tls files) against the directory of
 * the config file. */
static char *cfg_resolve(const char *cfg_file, const char *p)
{
	char *dup, *dir, *out;

	if (p[0] == '/')
		return strdup(p);
	dup = strdup(cfg_file);
	dir = dirname(dup);
	out = yt_strdupf("%s/%s", dir, p);
	free(dup);
	return out;
}

/* "FILE:LINE:COL: path" of node n, for errors found after parsing. */
static char *cfg_where(const struct config *c, const yaml_node_t *n, const char *path)
{
	return yt_strdupf("%s:%zu:%zu: %s", c->file, n->start_mark.line + 1,
			  n->start_mark.column + 1, path);
}

/* The file name node n (key path p) holds, resolved against the config's
 * directory, into *path; an empty one is an error at n. */
static int cfg_file_name(struct ytree *t, yaml_node_t *n, const char *p, const struct config *c,
			 char **path, char **err)
{
	char *rel = NULL;

	if (yt_str(t, n, p, &rel, err))
		return -EINVAL;
	if (!rel[0]) {
		free(rel);
		return yt_error(t, n, p, err, "expected a file name, got an empty string");
	}
	*path = cfg_resolve(c->file, rel);
	free(rel);
	return 0;
}

/* listen.tls.<key>: a file name, resolved against the config's directory. */
static int cfg_tls_file(struct ytree *t, yaml_node_t *m, struct config *c, const char *key,
			bool required, char **path, char **where, char **err)
{
	yaml_node_t *n = yt_get(t, m, key);
	char p[64];

	snprintf(p, sizeof(p), "listen.tls.%s", key);
	if (!n)
		return required ? yt_error(t, m, "listen.tls", err,
					   "missing key \"%s\" (a PEM file)", key) : 0;
	if (cfg_file_name(t, n, p, c, path, err))
		return -EINVAL;
	*where = cfg_where(c, n, p);
	return 0;
}

static int cfg_tls(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "certificate", "key", "client_ca", "min_version",
		NULL };
	struct tls_conf *tc = &c->listen.tls;
	char *ver = NULL;

	if (!m)
		return 0;
	if (yt_expect_map(t, m, "listen.tls", err) ||
	    yt_check_keys(t, m, "listen.tls", keys, err) ||
	    cfg_tls_file(t, m, c, "certificate", true, &tc->certificate, &tc->where_certificate,
			 err) ||
	    cfg_tls_file(t, m, c, "key", true, &tc->key, &tc->where_key, err) ||
	    cfg_tls_file(t, m, c, "client_ca", false, &tc->client_ca, &tc->where_client_ca, err) ||
	    cfg_opt_str(t, m, "listen.tls", "min_version", &ver, err))
		goto fail;
	if (ver && strcmp(ver, "1.2") && strcmp(ver, "1.3")) {
		yt_error(t, yt_get(t, m, "min_version"), "listen.tls.min_version", err,
			 "expected \"1.2\" or \"1.3\", got \"%s\"", ver);
		goto fail;
	}
	tc->min_version = ver && !strcmp(ver, "1.3") ? 13 : 12;
	free(ver);
	return 0;
fail:
	free(ver);
	return -EINVAL;
}

/* Without listen.http2_engine, INFERGW_HTTP2_ENGINE (native or nghttp2)
 * when set chooses the engine (the test suites run both). */
static int cfg_http2_engine_env(struct config *c, char **err)
{
	const char *e = getenv("INFERGW_HTTP2_ENGINE");

	if (!e || !*e)
		return 0;
	if (strcmp(e, "native") && strcmp(e, "nghttp2")) {
		*err = yt_strdupf("%s: INFERGW_HTTP2_ENGINE: expected native or nghttp2, got \"%s\"",
				  c->file, e);
		return -1;
	}
	c->listen.http2_nghttp2 = !strcmp(e, "nghttp2");
	return 0;
}

static int cfg_listen(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "address", "port", "grpc_port", "threads", "tls",
		"http2_engine", NULL };
	int64_t port = c->listen.port, grpc_port = c->listen.grpc_port, threads = 0;
	char *engine = NULL;

	if (!m)
		goto defaults;
	if (yt_check_keys(t, m, "listen", keys, err) ||
	    cfg_opt_str(t, m, "listen", "address", &c->listen.address, err) ||
	    cfg_opt_int(t, m, "listen", "port", 0, 65535, &port, err) ||
	    cfg_opt_int(t, m, "listen", "grpc_port", -1, 65535, &grpc_port, err) ||
	    cfg_opt_int(t, m, "listen", "threads", 0, 256, &threads, err) ||
	    cfg_opt_str(t, m, "listen", "http2_engine", &engine, err) ||
	    cfg_tls(t, yt_get(t, m, "tls"), c, err))
		goto fail;
	if (engine && strcmp(engine, "native") && strcmp(engine, "nghttp2")) {
		yt_error(t, yt_get(t, m, "http2_engine"), "listen.http2_engine", err,
			 "expected native or nghttp2, got \"%s\"", engine);
		goto fail;
	}
	if (engine)
		c->listen.http2_nghttp2 = !strcmp(engine, "nghttp2");
	free(engine);
defaults:
	if (!engine && cfg_http2_engine_env(c, err))
		return -EINVAL;
	c->listen.port = (int)port;
	c->listen.grpc_port = (int)grpc_port;
	c->listen.threads_from = "config";
	if (threads == 0)	/* the CPUs we may use, not the machine's: cpus.h */
		threads = cpus_usable(&c->listen.threads_from);
	c->listen.threads = (int)threads;
	return 0;
fail:
	free(engine);
	return -EINVAL;
}

static int cfg_limits(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "max_body_bytes", "max_header_bytes",
		"max_concurrent_streams", "idle_timeout_ms", "shutdown_grace_ms",
		"header_timeout_ms", "write_stall_timeout_ms", "output_buffer_bytes",
		"max_connections", NULL };
	int64_t body = c->limits.max_body_bytes, hdr = c->limits.max_header_bytes;
	int64_t streams = c->limits.max_concurrent_streams, idle = c->limits.idle_timeout_ms;
	int64_t grace = c->limits.shutdown_grace_ms, head = c->limits.header_timeout_ms;
	int64_t stall = c->limits.write_stall_timeout_ms, out = c->limits.output_buffer_bytes;
	int64_t conns = c->limits.max_connections;

	if (!m)
		return 0;
	if (yt_check_keys(t, m, "limits", keys, err) ||
	    cfg_opt_int(t, m, "limits", "max_body_bytes", 1024, 1ll << 32, &body, err) ||
	    cfg_opt_int(t, m, "limits", "max_header_bytes", 1024, 1 << 20, &hdr, err) ||
	    cfg_opt_int(t, m, "limits", "max_concurrent_streams", 1, 1 << 16, &streams, err) ||
	    cfg_opt_int(t, m, "limits", "idle_timeout_ms", 100, 3600000, &idle, err) ||
	    cfg_opt_int(t, m, "limits", "shutdown_grace_ms", 0, 600000, &grace, err) ||
	    cfg_opt_int(t, m, "limits", "header_timeout_ms", 100, 600000, &head, err) ||
	    cfg_opt_int(t, m, "limits", "write_stall_timeout_ms", 100, 3600000, &stall, err) ||
	    cfg_opt_int(t, m, "limits", "output_buffer_bytes", 16384, 1 << 30, &out, err) ||
	    cfg_opt_int(t, m, "limits", "max_connections", 1, 1000000, &conns, err))
		return -EINVAL;
	c->limits.max_body_bytes = body;
	c->limits.max_header_bytes = hdr;
	c->limits.max_concurrent_streams = streams;
	c->limits.idle_timeout_ms = idle;
	c->limits.shutdown_grace_ms = grace;
	c->limits.header_timeout_ms = head;
	c->limits.write_stall_timeout_ms = stall;
	c->limits.output_buffer_bytes = out;
	c->limits.max_connections = conns;
	return 0;
}

static int cfg_routing(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "policy", "margin_us", "priority_levels",
		"sheddable_levels", "shed_wait_fraction", "drop_hopeless", "probe_ms", NULL };
	int64_t margin = c->routing.margin_us, levels = c->routing.priority_levels;
	int64_t shed = c->routing.sheddable_levels, probe = c->routing.probe_ms;
	char *policy = NULL;

	if (!m)
		return 0;
	if (yt_check_keys(t, m, "routing", keys, err) ||
	    cfg_opt_str(t, m, "routing", "policy", &policy, err) ||
	    cfg_opt_int(t, m, "routing", "margin_us", 0, 60000000, &margin, err) ||
	    cfg_opt_int(t, m, "routing", "priority_levels", 1, 16, &levels, err) ||
	    cfg_opt_int(t, m, "routing", "sheddable_levels", 0, 15, &shed, err) ||
	    cfg_opt_int(t, m, "routing", "probe_ms", 0, 3600000, &probe, err) ||
	    cfg_opt_bool(t, m, "routing", "drop_hopeless", &c->routing.drop_hopeless, err))
		goto fail;
	if (yt_get(t, m, "shed_wait_fraction") &&
	    yt_num(t, yt_get(t, m, "shed_wait_fraction"), "routing.shed_wait_fraction", 0, 100,
		   &c->routing.shed_wait_fraction, err))
		goto fail;
	if (policy && (c->routing.policy = router_policy_parse(policy)) < 0) {
		yt_error(t, yt_get(t, m, "policy"), "routing.policy", err,
			 "expected slo, least-queue or round-robin, got \"%s\"", policy);
		goto fail;
	}
	if (shed >= levels) {
		yt_error(t, yt_get(t, m, "sheddable_levels"), "routing.sheddable_levels", err,
			 "must be below priority_levels (%lld)", (long long)levels);
		goto fail;
	}
	free(policy);
	c->routing.margin_us = (uint32_t)margin;
	c->routing.priority_levels = (int)levels;
	c->routing.sheddable_levels = (int)shed;
	c->routing.probe_ms = (uint32_t)probe;
	return 0;
fail:
	free(policy);
	return -EINVAL;
}

/*
 * The secret file key names in map m (admin.token_file,
 * backends[i].token_file), resolved against the config's directory, into
 * *path, its token (be_secret_read) into *token; read now, so that a
 * reload takes a rotated one and a file that holds none fails the load,
 * naming the key, the file and why.  Absent: both left NULL.
 */
static int cfg_secret(struct ytree *t, yaml_node_t *m, const struct config *c, const char *at,
		      const char *key, char **path, char **token, char **err)
{
	yaml_node_t *n = yt_get(t, m, key);
	const char *why = NULL;
	char p[256];

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.%s", at, key);
	if (cfg_file_name(t, n, p, c, path, err))
		return -EINVAL;
	if (be_secret_read(*path, token, &why))
		return yt_error(t, n, p, err, "%s: %s", *path, why);
	return 0;
}

static int cfg_admin(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "address", "port", "repository_on_main", "token_file",
		"tls", NULL };
	int64_t port = c->admin.port;

	if (!m)
		return 0;
	if (yt_check_keys(t, m, "admin", keys, err) ||
	    cfg_opt_str(t, m, "admin", "address", &c->admin.address, err) ||
	    cfg_opt_int(t, m, "admin", "port", -1, 65535, &port, err) ||
	    cfg_opt_bool(t, m, "admin", "repository_on_main", &c->admin.repository_on_main, err) ||
	    cfg_secret(t, m, c, "admin", "token_file", &c->admin.token_file, &c->admin.token, err) ||
	    cfg_opt_bool(t, m, "admin", "tls", &c->admin.tls, err))
		return -EINVAL;
	if (c->admin.tls && !c->listen.tls.certificate)	/* listen is read first */
		return yt_error(t, yt_get(t, m, "tls"), "admin.tls", err,
				"needs listen.tls: the admin listener serves its certificate");
	c->admin.port = (int)port;
	return 0;
}

static int cfg_reload(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "watch", "debounce_ms", "resolve_ms", NULL };
	int64_t deb = c->reload.debounce_ms, res = c->reload.resolve_ms;

	if (!m)
		return 0;
	if (yt_check_keys(t, m, "reload", keys, err) ||
	    cfg_opt_bool(t, m, "reload", "watch", &c->reload.watch, err) ||
	    cfg_opt_int(t, m, "reload", "debounce_ms", 0, 60000, &deb, err) ||
	    cfg_opt_int(t, m, "reload", "resolve_ms", 0, 3600000, &res, err))
		return -EINVAL;
	c->reload.debounce_ms = (uint32_t)deb;
	c->reload.resolve_ms = (uint32_t)res;
	return 0;
}

static int cfg_log(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "level", "access", NULL };
	char *level = NULL;

	if (!m)
		return 0;
	if (yt_check_keys(t, m, "log", keys, err) ||
	    cfg_opt_bool(t, m, "log", "access", &c->log.access, err) ||
	    cfg_opt_str(t, m, "log", "level", &level, err))
		return -EINVAL;
	if (level) {
		c->log.level = log_level_parse(level);
		free(level);
		if (c->log.level < 0)
			return yt_error(t, yt_get(t, m, "level"), "log.level", err,
					"expected debug, info, warn or error");
	}
	return 0;
}

/* m's preferred_batch_sizes (models[i], backends[i].batching.MODEL):
 * at most 8 ascending positive integers into sizes, *n of them. */
static int cfg_sizes(struct ytree *t, yaml_node_t *m, const char *path, int *n_out, int *sizes,
		     char **err)
{
	yaml_node_t *n = yt_get(t, m, "preferred_batch_sizes");
	char p[160];

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.preferred_batch_sizes", path);
	if (yt_expect_seq(t, n, p, err))
		return -EINVAL;
	if (yt_seq_len(n) > 8)
		return yt_error(t, n, p, err, "at most 8 sizes");
	*n_out = 0;
	for (int i = 0; i < yt_seq_len(n); i++) {
		int64_t v;
		char ep[176];

		snprintf(ep, sizeof(ep), "%s[%d]", p, i);
		if (yt_int(t, yt_seq_at(t, n, i), ep, 1, 4096, &v, err))
			return -EINVAL;
		if (i && v <= sizes[i - 1])
			return yt_error(t, yt_seq_at(t, n, i), ep, err,
					"sizes must be ascending, got %lld after %d", (long long)v,
					sizes[i - 1]);
		sizes[(*n_out)++] = (int)v;
	}
	return 0;
}

/* models[i].preferred_batch_sizes. */
static int cfg_preferred(struct ytree *t, yaml_node_t *m, const char *path,
			 struct model_conf *mc, char **err)
{
	return cfg_sizes(t, m, path, &mc->n_preferred, mc->preferred, err);
}

/* models[i].service_time_us: {base: µs, per_row: µs}, the warm start. */
static int cfg_svc(struct ytree *t, yaml_node_t *m, const char *path, struct model_conf *mc,
		   char **err)
{
	static const char *const keys[] = { "base", "per_row", NULL };
	yaml_node_t *n = yt_get(t, m, "service_time_us");
	char p[160], kp[176];

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.service_time_us", path);
	if (yt_check_keys(t, n, p, keys, err))
		return -EINVAL;
	snprintf(kp, sizeof(kp), "%s.base", p);
	if (yt_get(t, n, "base") && yt_num(t, yt_get(t, n, "base"), kp, 0, 1e9, &mc->svc_base_us, err))
		return -EINVAL;
	snprintf(kp, sizeof(kp), "%s.per_row", p);
	if (yt_get(t, n, "per_row") &&
	    yt_num(t, yt_get(t, n, "per_row"), kp, 0, 1e9, &mc->svc_per_row_us, err))
		return -EINVAL;
	return 0;
}

static const char *const cfg_varpol_names[] = { "accurate", "fp32", "int8" };

const char *cfg_variant_policy_name(int policy)
{
	return policy > 0 && policy <= CFG_VARPOL_INT8 ? cfg_varpol_names[policy]
						       : cfg_varpol_names[0];
}

/*
 * models[i].variants: {int8: DIR} (the fp32 variant is models[i].path) and
 * models[i].variant_policy: accurate | fp32 | int8.  A fixed int8 policy
 * needs an int8 variant.
 */
static int cfg_variants(struct ytree *t, yaml_node_t *m, const char *path, struct config *c,
			struct model_conf *mc, char **err)
{
	static const char *const keys[] = { "int8", NULL };
	yaml_node_t *n = yt_get(t, m, "variants"), *pn = yt_get(t, m, "variant_policy");
	char p[160], kp[176], *rel = NULL, *pol = NULL;
	int k;

	snprintf(p, sizeof(p), "%s.variants", path);
	snprintf(kp, sizeof(kp), "%s.fp32", p);
	if (n && n->type == YAML_MAPPING_NODE && yt_get(t, n, "fp32"))
		return yt_error(t, yt_get(t, n, "fp32"), kp, err, "the fp32 variant is %s.path, "
				"not a key of variants (variants: {int8: DIR})", path);
	if (n && (yt_expect_map(t, n, p, err) || yt_check_keys(t, n, p, keys, err)))
		return -EINVAL;
	snprintf(kp, sizeof(kp), "%s.int8", p);
	if (n && yt_get(t, n, "int8")) {
		if (yt_str(t, yt_get(t, n, "int8"), kp, &rel, err))
			return -EINVAL;
		if (!rel[0]) {
			free(rel);
			return yt_error(t, yt_get(t, n, "int8"), kp, err, "expected a model "
					"directory (infergw-quantize's output), got an empty string");
		}
		mc->int8_path = cfg_resolve(c->file, rel);
		mc->int8_where = cfg_where(c, yt_get(t, n, "int8"), kp);
		free(rel);
	}
	if (!pn)
		return 0;
	snprintf(kp, sizeof(kp), "%s.variant_policy", path);
	if (yt_str(t, pn, kp, &pol, err))
		return -EINVAL;
	for (k = 0; k <= CFG_VARPOL_INT8 && strcmp(pol, cfg_varpol_names[k]); k++)
		;
	free(pol);
	if (k > CFG_VARPOL_INT8)
		return yt_error(t, pn, kp, err, "expected accurate, fp32 or int8");
	if (k == CFG_VARPOL_INT8 && !mc->int8_path)
		return yt_error(t, pn, kp, err, "int8 needs %s.variants.int8 (an INT8 variant "
				"made by infergw-quantize)", path);
	mc->variant_policy = k;
	return 0;
}

/* Names go into URLs, metric labels and logs unescaped: a small character set. */
static bool cfg_name_char(char ch, bool first)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || (!first && (ch == '.' || ch == '-'));
}

/*
 * name (of what, at node n, key path) as a model or backend name: 1 to
 * CFG_NAME_MAX characters of [A-Za-z0-9_.-], not starting with '.' or '-'.
 */
static int cfg_check_name(struct ytree *t, yaml_node_t *n, const char *path, const char *what,
			  const char *name, char **err)
{
	size_t len = strlen(name);

	if (len == 0 || len > CFG_NAME_MAX)
		return yt_error(t, n, path, err, "%s name of %zu characters: expected 1 to %d",
				what, len, CFG_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		char shown[16];

		if (cfg_name_char((char)ch, i == 0))
			continue;
		if (ch > 0x20 && ch < 0x7f)
			snprintf(shown, sizeof(shown), "'%c'", ch);
		else
			snprintf(shown, sizeof(shown), "byte 0x%02x", ch);
		return yt_error(t, n, path, err, "%s name: character %zu is %s; names are 1 to %d "
				"characters of A-Z a-z 0-9 _ . - (not starting with . or -)", what,
				i + 1, shown, CFG_NAME_MAX);
	}
	return 0;
}

/* Every backend's name (defaults are valid: cpu0, gpu1, ...). */
static int cfg_backend_names(struct ytree *t, yaml_node_t *list, const struct config *c,
			     char **err)
{
	for (int i = 0; i < c->n_backends; i++) {
		yaml_node_t *e = yt_seq_at(t, list, i);
		char path[64];
		yaml_node_t *n = yt_get(t, e, "name") ? yt_get(t, e, "name") : e;

		snprintf(path, sizeof(path), "backends[%d].name", i);
		if (cfg_check_name(t, n, path, "backend", c->backends[i].name, err))
			return -EINVAL;
		if (!strcmp(c->backends[i].name, "none"))
			return yt_error(t, n, path, err, "backend name \"none\" is reserved (the "
					"metrics of requests no backend took)");
	}
	return 0;
}

static int cfg_model(struct ytree *t, yaml_node_t *m, int i, struct config *c, char **err)
{
	static const char *const keys[] = { "name", "path", "max_batch",
		"max_queue_delay_us", "max_queue", "slo_ms", "priority",
		"preferred_batch_sizes", "adaptive_batching", "service_time_us", "variants",
		"variant_policy", NULL };
	struct model_conf *mc = &c->models[i];
	int64_t mb = 0, delay = 0, mq = 1024, slo = 0, prio = 1;
	char path[64], *rel = NULL;

	snprintf(path, sizeof(path), "models[%d]", i);
	if (yt_check_keys(t, m, path, keys, err) ||
	    cfg_opt_str(t, m, path, "name", &mc->name, err) ||
	    cfg_opt_str(t, m, path, "path", &rel, err) ||
	    cfg_opt_int(t, m, path, "max_batch", 0, 4096, &mb, err) ||
	    cfg_opt_int(t, m, path, "max_queue_delay_us", 0, 10000000, &delay, err) ||
	    cfg_opt_int(t, m, path, "max_queue", 1, 1 << 20, &mq, err) ||
	    cfg_opt_int(t, m, path, "slo_ms", 0, 3600000, &slo, err) ||
	    cfg_opt_int(t, m, path, "priority", 1, c->routing.priority_levels, &prio, err) ||
	    cfg_opt_bool(t, m, path, "adaptive_batching", &mc->adaptive, err) ||
	    cfg_preferred(t, m, path, mc, err) || cfg_svc(t, m, path, mc, err) ||
	    cfg_variants(t, m, path, c, mc, err))
		goto fail;
	if (mc->adaptive && slo == 0) {
		yt_error(t, yt_get(t, m, "adaptive_batching"), path, err,
			 "adaptive_batching needs slo_ms (the latency it keeps batches under)");
		goto fail;
	}
	if (!mc->name) {
		yt_error(t, m, path, err, "missing key \"name\"");
		goto fail;
	}
	{
		char np[80];

		snprintf(np, sizeof(np), "%s.name", path);
		if (cfg_check_name(t, yt_get(t, m, "name"), np, "model", mc->name, err))
			goto fail;
	}
	for (int j = 0; j < i; j++)
		if (strcmp(c->models[j].name, mc->name) == 0) {
			yt_error(t, yt_get(t, m, "name"), path, err, "duplicate model name \"%s\"",
				 mc->name);
			goto fail;
		}
	mc->path = cfg_resolve(c->file, rel ? rel : mc->name);
	{
		char wp[80];

		snprintf(wp, sizeof(wp), "%s.path", path);
		mc->where = cfg_where(c, yt_get(t, m, "path") ? yt_get(t, m, "path") : m, wp);
	}
	free(rel);
	mc->max_batch = (int)mb;
	mc->max_queue_delay_us = (uint32_t)delay;
	mc->max_queue = (int)mq;
	mc->slo_ms = (uint32_t)slo;
	mc->priority = (int)prio;
	return 0;
fail:
	free(rel);
	return -EINVAL;
}

static const struct be_kind *cfg_kind(struct ytree *t, yaml_node_t *m, const char *path,
				      struct backend_conf *b, char **err)
{
	yaml_node_t *n = yt_get(t, m, "kind");
	const struct be_kind *k = NULL;
	char p[96];

	snprintf(p, sizeof(p), "%s.kind", path);
	if (!n) {
		yt_error(t, m, path, err, "missing key \"kind\" (%s)", be_kind_list());
		return NULL;
	}
	if (n->type != YAML_SCALAR_NODE) {
		yt_error(t, n, p, err, "expected %s", be_kind_list());
		return NULL;
	}
	k = be_kind_find((const char *)n->data.scalar.value);
	if (!k) {
		yt_error(t, n, p, err, "expected %s, got \"%s\"", be_kind_list(),
			 (const char *)n->data.scalar.value);
		return NULL;
	}
	b->kind = k->kind;
	return k;
}

/* The be_conf_src a kind's parse_conf reads its keys through. */
struct cfg_be_src {
	struct ytree *t;
	yaml_node_t *m;
	const char *path;
	const struct config *c;
};

static int cfg_src_int(void *ctx, const char *key, int64_t min, int64_t max, int64_t *out,
		       char **err)
{
	struct cfg_be_src *x = ctx;

	return cfg_opt_int(x->t, x->m, x->path, key, min, max, out, err);
}

static int cfg_src_str(void *ctx, const char *key, char **out, char **err)
{
	struct cfg_be_src *x = ctx;

	return cfg_opt_str(x->t, x->m, x->path, key, out, err);
}

static int cfg_src_bool(void *ctx, const char *key, bool *out, char **err)
{
	struct cfg_be_src *x = ctx;

	return cfg_opt_bool(x->t, x->m, x->path, key, out, err);
}

static int cfg_src_error(void *ctx, char **err, const char *msg)
{
	struct cfg_be_src *x = ctx;

	return yt_error(x->t, x->m, x->path, err, "%s", msg);
}

static int cfg_src_secret(void *ctx, const char *key, char **path, char **token, char **err)
{
	struct cfg_be_src *x = ctx;

	return cfg_secret(x->t, x->m, x->c, x->path, key, path, token, err);
}

/* Common keys plus kind k's own: the keys a backends[] entry may have. */
static int cfg_backend_keys(struct ytree *t, yaml_node_t *m, const char *path,
			    const struct be_kind *k, char **err)
{
	static const char *const common[] = { "name", "kind", "workers", "cost", "models",
					      "batching", NULL };
	const char *keys[32];
	int n = 0;

	for (int i = 0; common[i]; i++)
		keys[n++] = common[i];
	for (int i = 0; k->keys && k->keys[i] && n < (int)ARRAY_SIZE(keys) - 1; i++)
		keys[n++] = k->keys[i];
	keys[n] = NULL;
	return yt_check_keys(t, m, path, keys, err);
}

static int cfg_backend_models(struct ytree *t, yaml_node_t *m, const char *path,
			      struct backend_conf *b, const struct config *c, char **err)
{
	yaml_node_t *n = yt_get(t, m, "models");
	char p[128];

	snprintf(p, sizeof(p), "%s.models", path);
	if (!n) {	/* default: every model */
		b->n_models = c->n_models;
		b->models = calloc(c->n_models + 1, sizeof(char *));
		for (int i = 0; i < c->n_models; i++)
			b->models[i] = strdup(c->models[i].name);
		return 0;
	}
	if (yt_expect_seq(t, n, p, err))
		return -EINVAL;
	b->n_models = yt_seq_len(n);
	b->models = calloc(b->n_models + 1, sizeof(char *));
	for (int i = 0; i < b->n_models; i++) {
		yaml_node_t *e = yt_seq_at(t, n, i);
		char ep[160];

		snprintf(ep, sizeof(ep), "%s[%d]", p, i);
		if (yt_str(t, e, ep, &b->models[i], err))
			return -EINVAL;
		if (!cfg_find_model(c, b->models[i]))
			return yt_error(t, e, ep, err, "no model named \"%s\" in models",
					b->models[i]);
	}
	return 0;
}

/*
 * backends[i].batching: {MODEL: {max_batch, preferred_batch_sizes,
 * max_queue_delay_us}} for models the backend hosts: this (backend, model)
 * pair's batching over the kind's defaults and models[]'s.
 */
static int cfg_batching(struct ytree *t, yaml_node_t *m, const char *path,
			struct backend_conf *b, char **err)
{
	static const char *const keys[] = { "max_batch", "preferred_batch_sizes",
		"max_queue_delay_us", NULL };
	yaml_node_t *n = yt_get(t, m, "batching");
	char p[96];

	if (!n)
		return 0;
	snprintf(p, sizeof(p), "%s.batching", path);
	/* its keys: the hosted models' names (b->models is NULL-terminated) */
	if (yt_check_keys(t, n, p, (const char *const *)b->models, err))
		return -EINVAL;
	b->batching = calloc(b->n_models ? b->n_models : 1, sizeof(*b->batching));
	if (!b->batching)
		return yt_error(t, n, p, err, "out of memory");
	for (int i = 0; i < b->n_models; i++) {
		yaml_node_t *e = yt_get(t, n, b->models[i]);
		struct be_batching *bb = &b->batching[b->n_batching];
		int64_t mb = 0, delay = -1;
		char ep[192];

		if (!e)
			continue;
		snprintf(ep, sizeof(ep), "%s.%s", p, b->models[i]);
		bb->delay_us = -1;
		if (yt_check_keys(t, e, ep, keys, err) ||
		    cfg_opt_int(t, e, ep, "max_batch", 1, 4096, &mb, err) ||
		    cfg_opt_int(t, e, ep, "max_queue_delay_us", 0, 10000000, &delay, err) ||
		    cfg_sizes(t, e, ep, &bb->n_preferred, bb->preferred, err))
			return -EINVAL;
		bb->model = strdup(b->models[i]);
		bb->max_batch = (int)mb;
		bb->delay_us = delay;
		b->n_batching++;
	}
	return 0;
}

static int cfg_backend(struct ytree *t, yaml_node_t *m, int i, struct config *c, char **err)
{
	struct backend_conf *b = &c->backends[i];
	int64_t workers = 0;
	double cost = 1.0;
	char path[64];
	struct cfg_be_src x = { t, m, path, c };
	struct be_conf_src src = { &x, cfg_src_int, cfg_src_str, cfg_src_bool, cfg_src_error,
				   cfg_src_secret };
	const struct be_kind *k;

	snprintf(path, sizeof(path), "backends[%d]", i);
	if (yt_expect_map(t, m, path, err) || !(k = cfg_kind(t, m, path, b, err)))
		return -EINVAL;
	/* Defaults a kind's parse_conf may change. */
	b->threads_per_slot = 1;
	b->nice = 10;
	b->inline_us = CFG_CPU_INLINE_US_DEFAULT;
	if (cfg_backend_keys(t, m, path, k, err) ||
	    cfg_opt_str(t, m, path, "name", &b->name, err) ||
	    cfg_opt_int(t, m, path, "workers", 1, 256, &workers, err))
		return -EINVAL;
	b->slots = (int)workers;	/* 0 = the kind's default (a gpu's streams) */
	if ((k->parse_conf && k->parse_conf(b, &src, err)) ||
	    cfg_backend_models(t, m, path, b, c, err) ||
	    cfg_batching(t, m, path, b, err))
		return -EINVAL;
	if (yt_get(t, m, "cost")) {
		char p[96];

		snprintf(p, sizeof(p), "%s.cost", path);
		if (yt_num(t, yt_get(t, m, "cost"), p, 0, 1e9, &cost, err))
			return -EINVAL;
	}
	if (!b->name)
		b->name = yt_strdupf("%s%d", k->name, i);
	for (int j = 0; j < i; j++)
		if (strcmp(c->backends[j].name, b->name) == 0)
			return yt_error(t, yt_get(t, m, "name"), path, err,
					"duplicate backend name \"%s\"", b->name);
	if (b->slots < 1)
		b->slots = 1;
	b->cost = cost;
	return 0;
}

/* dpdk.eal: a list of strings (EAL's command line, argv[0] excluded). */
static int cfg_dpdk_eal(struct ytree *t, yaml_node_t *n, struct dpdk_conf *d, char **err)
{
	if (!n)
		return 0;
	if (yt_expect_seq(t, n, "dpdk.eal", err))
		return -EINVAL;
	if (yt_seq_len(n) > CFG_DPDK_MAX_EAL)
		return yt_error(t, n, "dpdk.eal", err, "at most %d arguments, got %d",
				CFG_DPDK_MAX_EAL, yt_seq_len(n));
	d->eal = calloc(yt_seq_len(n) + 1, sizeof(char *));
	if (!d->eal)
		return yt_error(t, n, "dpdk.eal", err, "out of memory");
	for (int i = 0; i < yt_seq_len(n); i++) {
		char p[32];

		snprintf(p, sizeof(p), "dpdk.eal[%d]", i);
		if (yt_str(t, yt_seq_at(t, n, i), p, &d->eal[i], err))
			return -EINVAL;
		d->n_eal = i + 1;
	}
	return 0;
}

/* dpdk.lcores: a count of packet lcores, or a list of EAL lcore ids. */
static int cfg_dpdk_lcores(struct ytree *t, yaml_node_t *n, struct dpdk_conf *d, char **err)
{
	int64_t v;

	if (!n)
		return 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		if (yt_int(t, n, "dpdk.lcores", 1, CFG_DPDK_MAX_LCORES, &v, err))
			return -EINVAL;
		d->n_lcores = (int)v;
		return 0;
	}
	if (yt_seq_len(n) < 1 || yt_seq_len(n) > CFG_DPDK_MAX_LCORES)
		return yt_error(t, n, "dpdk.lcores", err, "expected 1 to %d lcore ids, got %d",
				CFG_DPDK_MAX_LCORES, yt_seq_len(n));
	d->lcore_list = true;
	d->n_lcores = yt_seq_len(n);
	for (int i = 0; i < d->n_lcores; i++) {
		char p[32];

		snprintf(p, sizeof(p), "dpdk.lcores[%d]", i);
		if (yt_int(t, yt_seq_at(t, n, i), p, 0, 1023, &v, err))
			return -EINVAL;
		for (int k = 0; k < i; k++)
			if (d->lcore_ids[k] == v)
				return yt_error(t, yt_seq_at(t, n, i), p, err,
						"lcore %d is listed twice", (int)v);
		d->lcore_ids[i] = (int)v;
	}
	return 0;
}

/* dpdk: the UDP fast path.  Absent: disabled. */
static int cfg_dpdk(struct ytree *t, yaml_node_t *m, struct config *c, char **err)
{
	static const char *const keys[] = { "eal", "port", "address", "udp_port", "lcores",
		"queues", "mbufs", "burst", NULL };
	struct dpdk_conf *d = &c->dpdk;
	int64_t port = 0, udp = 9200, queues = 0, mbufs = 4095, burst = 32;
	struct in_addr a;
	yaml_node_t *an;

	if (!m)
		return 0;
	if (yt_expect_map(t, m, "dpdk", err) || yt_check_keys(t, m, "dpdk", keys, err) ||
	    cfg_dpdk_eal(t, yt_get(t, m, "eal"), d, err) ||
	    cfg_opt_int(t, m, "dpdk", "port", 0, 1023, &port, err) ||
	    cfg_opt_str(t, m, "dpdk", "address", &d->address, err) ||
	    cfg_opt_int(t, m, "dpdk", "udp_port", 1, 65535, &udp, err) ||
	    cfg_dpdk_lcores(t, yt_get(t, m, "lcores"), d, err) ||
	    cfg_opt_int(t, m, "dpdk", "queues", 1, 64, &queues, err) ||
	    cfg_opt_int(t, m, "dpdk", "mbufs", 255, 1 << 22, &mbufs, err) ||
	    cfg_opt_int(t, m, "dpdk", "burst", 1, 512, &burst, err))
		return -EINVAL;
	an = yt_get(t, m, "address");
	if (!an)
		return yt_error(t, m, "dpdk", err,
				"missing key \"address\" (the IPv4 address the port answers on)");
	if (inet_pton(AF_INET, d->address, &a) != 1)
		return yt_error(t, an, "dpdk.address", err,
				"expected an IPv4 address (a.b.c.d), got \"%s\"", d->address);
	d->ip = ntohl(a.s_addr);
	if (!d->n_lcores)
		d->n_lcores = 1;
	if (queues && queues < d->n_lcores)
		return yt_error(t, yt_get(t, m, "queues"), "dpdk.queues", err,
				"%d queue pair(s) for %d lcore(s): each lcore needs its own queue",
				(int)queues, d->n_lcores);
	d->enabled = true;
	d->port = (int)port;
	d->udp_port = (int)udp;
	d->queues = queues ? (int)queues : d->n_lcores;
	d->mbufs = (int)mbufs;
	d->burst = (int)burst;
	d->where = cfg_where(c, m, "dpdk");
	return 0;
}

/* Parse a list section with one callback per element. */
static int cfg_list(struct ytree *t, yaml_node_t *n, const char *name, struct config *c,
		    int (*each)(struct ytree *, yaml_node_t *, int, struct config *, char **),
		    char **err)
{
	for (int i = 0; i < yt_seq_len(n); i++) {
		yaml_node_t *e = yt_seq_at(t, n, i);
		char p[64];

		snprintf(p, sizeof(p), "%s[%d]", name, i);
		if (yt_expect_map(t, e, p, err) || each(t, e, i, c, err))
			return -EINVAL;
	}
	return 0;
}

static void cfg_defaults(struct config *c)
{
	c->listen.address = strdup("0.0.0.0");
	c->listen.port = 8000;
	c->listen.grpc_port = -1;	/* Triton's 8001 only when asked for */
	c->listen.tls.min_version = 12;
	c->listen.http2_nghttp2 = CFG_HTTP2_NGHTTP2_DEFAULT;
	c->limits.max_body_bytes = 4 << 20;
	c->limits.max_header_bytes = 16384;
	c->limits.max_concurrent_streams = 128;
	c->limits.idle_timeout_ms = 60000;
	c->limits.shutdown_grace_ms = 10000;
	c->limits.header_timeout_ms = 10000;
	c->limits.write_stall_timeout_ms = 30000;
	c->limits.output_buffer_bytes = 256 << 10;
	c->limits.max_connections = 10000;
	c->log.level = LOG_INFO;
	c->routing.policy = ROUTE_SLO;
	c->routing.margin_us = 1000;
	c->routing.priority_levels = 3;
	c->routing.sheddable_levels = 1;
	c->routing.shed_wait_fraction = 0.5;
	c->routing.drop_hopeless = true;
	c->routing.probe_ms = 1000;
	c->admin.address = strdup("127.0.0.1");
	c->admin.port = 8002;		/* Triton's metrics port; 8001 stays free for gRPC */
	c->reload.debounce_ms = 200;
}

static int cfg_root(struct ytree *t, struct config *c, char **err)
{
	static const char *const keys[] = { "listen", "admin", "limits", "routing", "reload",
		"log", "models", "backends", "dpdk", NULL };
	yaml_node_t *root = yt_root(t), *models, *backends;

	if (!root)
		return yt_error(t, NULL, "(root)", err, "empty configuration");
	if (yt_check_keys(t, root, "(root)", keys, err) ||
	    cfg_listen(t, yt_get(t, root, "listen"), c, err) ||
	    cfg_admin(t, yt_get(t, root, "admin"), c, err) ||
	    cfg_limits(t, yt_get(t, root, "limits"), c, err) ||
	    cfg_routing(t, yt_get(t, root, "routing"), c, err) ||
	    cfg_reload(t, yt_get(t, root, "reload"), c, err) ||
	    cfg_log(t, yt_get(t, root, "log"), c, err) ||
	    cfg_dpdk(t, yt_get(t, root, "dpdk"), c, err))
		return -EINVAL;
	models = yt_get(t, root, "models");
	if (!models || yt_seq_len(models) < 1)
		return yt_error(t, models ? models : root, "models", err,
				"expected a list of at least one model");
	c->n_models = yt_seq_len(models);
	c->models = calloc(c->n_models, sizeof(*c->models));
	if (cfg_list(t, models, "models", c, cfg_model, err))
		return -EINVAL;
	backends = yt_get(t, root, "backends");
	if (!backends || yt_seq_len(backends) < 1)
		return yt_error(t, backends ? backends : root, "backends", err,
				"expected a list of at least one backend");
	c->n_backends = yt_seq_len(backends);
	c->backends = calloc(c->n_backends, sizeof(*c->backends));
	if (cfg_list(t, backends, "backends", c, cfg_backend, err))
		return -EINVAL;
	return cfg_backend_names(t, backends, c, err);
}

struct config *cfg_load(const char *path, char **err)
{
	struct ytree t;
	struct config *c;

	if (yt_load(&t, path, err)) {
		yt_free(&t);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	c->file = strdup(path);
	cfg_defaults(c);
	if (cfg_root(&t, c, err)) {
		cfg_free(c);
		c = NULL;
	}
	yt_free(&t);
	return c;
}

const struct model_conf *cfg_find_model(const struct config *c, const char *name)
{
	for (int i = 0; i < c->n_models; i++)
		if (c->models[i].name && strcmp(c->models[i].name, name) == 0)
			return &c->models[i];
	return NULL;
}

static json_t *cfg_model_json(const struct model_conf *m)
{
	json_t *pref = json_array();

	for (int i = 0; i < m->n_preferred; i++)
		json_array_append_new(pref, json_integer(m->preferred[i]));
	json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:o, s:b, s:{s:f, s:f}}",
			      "name", m->name, "path", m->path, "max_batch", m->max_batch,
			      "max_queue_delay_us", (int)m->max_queue_delay_us, "max_queue",
			      m->max_queue, "slo_ms", (int)m->slo_ms, "priority", m->priority,
			      "preferred_batch_sizes", pref, "adaptive_batching", m->adaptive,
			      "service_time_us", "base", m->svc_base_us, "per_row",
			      m->svc_per_row_us);

	/* Only for a model with variants: other models' entries stay as they were. */
	if (o && m->int8_path) {
		json_object_set_new(o, "variants", json_pack("{s:s}", "int8", m->int8_path));
		json_object_set_new(o, "variant_policy",
				    json_string(cfg_variant_policy_name(m->variant_policy)));
	}
	return o;
}

static json_t *cfg_remote_json(const struct backend_conf *b)
{
	const struct be_remote_conf *r = &b->remote;

	if (b->kind != BE_REMOTE)
		return NULL;
	return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:i, s:i, s:i, s:i, s:s?}",
			 "window", r->window, "connect_timeout_ms", r->connect_timeout_ms,
			 "timeout_ms", r->timeout_ms, "ping_ms", r->ping_ms,
			 "reconnect_ms", r->reconnect_ms, "reconnect_max_ms", r->reconnect_max_ms,
			 "pool", r->pool ? r->pool : b->name,
			 "consecutive_failures", r->consecutive_failures,
			 "ejection_ms", r->ejection_ms, "max_ejection_ms", r->max_ejection_ms,
			 "max_ejection_percent", r->max_ejection_percent, "token_file", r->token_file);
}

static json_t *cfg_gpu_json(const struct backend_conf *b)
{
	if (b->kind != BE_GPU)
		return NULL;
	return json_pack("{s:i, s:i, s:s, s:b, s:i}", "device", b->device, "streams", b->slots,
			 "math", b->gpu.tf32 ? "tf32" : "fp32", "graphs", b->gpu.graphs,
			 "max_batch", b->gpu.max_batch ? b->gpu.max_batch : 256);
}

/* backends[].batching as JSON: what was set (unset fields left out). */
static json_t *cfg_batching_json(const struct backend_conf *b)
{
	json_t *o;

	if (!b->n_batching)
		return NULL;
	o = json_object();
	for (int i = 0; i < b->n_batching; i++) {
		const struct be_batching *bb = &b->batching[i];
		json_t *e = json_object();

		if (bb->max_batch)
			json_object_set_new(e, "max_batch", json_integer(bb->max_batch));
		if (bb->n_preferred) {
			json_t *pref = json_array();

			for (int j = 0; j < bb->n_preferred; j++)
				json_array_append_new(pref, json_integer(bb->preferred[j]));
			json_object_set_new(e, "preferred_batch_sizes", pref);
		}
		if (bb->delay_us >= 0)
			json_object_set_new(e, "max_queue_delay_us", json_integer(bb->delay_us));
		json_object_set_new(o, bb->model, e);
	}
	return o;
}

static json_t *cfg_backend_json(const struct backend_conf *b)
{
	json_t *models = json_array();

	for (int i = 0; i < b->n_models; i++)
		json_array_append_new(models, json_string(b->models[i]));
	return json_pack("{s:s, s:s, s:i, s:i, s:f, s:o, s:s?, s:i, s:i, s:s?, s:o*, s:o*, s:o*, "
			 "s:o*}",
			 "name", b->name,
			 "kind", be_kind_of(b->kind)->name, "workers", b->slots,
			 "threads_per_worker", b->threads_per_slot, "cost", b->cost,
			 "models", models, "address", b->address, "device", b->device,
			 "nice", b->nice, "weights_layout",
			 b->kind == BE_CPU ? be_wlayout_name(b->weights_layout) : NULL,
			 "inline_us", b->kind == BE_CPU ? json_integer(b->inline_us) : NULL,
			 "remote", cfg_remote_json(b), "gpu", cfg_gpu_json(b),
			 "batching", cfg_batching_json(b));
}

/* The dpdk section in one line, to tell that it changed (it is restart-only). */
static const char *cfg_dpdk_sig(const struct dpdk_conf *d, char *buf, size_t len)
{
	size_t n;

	if (!d->enabled)
		return "off";
	n = (size_t)snprintf(buf, len, "port=%d address=%s udp_port=%d lcores=%d queues=%d "
			     "mbufs=%d burst=%d", d->port, d->address, d->udp_port, d->n_lcores,
			     d->queues, d->mbufs, d->burst);
	for (int i = 0; d->lcore_list && i < d->n_lcores && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : " ids=", d->lcore_ids[i]);
	for (int i = 0; i < d->n_eal && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " " : " eal=", d->eal[i]);
	return buf;
}

/* dpdk as JSON: null when the section is absent. */
static json_t *cfg_dpdk_json(const struct dpdk_conf *d)
{
	json_t *eal = json_array(), *lc;

	if (!d->enabled) {
		json_decref(eal);
		return json_null();
	}
	for (int i = 0; i < d->n_eal; i++)
		json_array_append_new(eal, json_string(d->eal[i]));
	if (d->lcore_list) {
		lc = json_array();
		for (int i = 0; i < d->n_lcores; i++)
			json_array_append_new(lc, json_integer(d->lcore_ids[i]));
	} else {
		lc = json_integer(d->n_lcores);
	}
	return json_pack("{s:o, s:i, s:s, s:i, s:o, s:i, s:i, s:i}", "eal", eal, "port", d->port,
			 "address", d->address, "udp_port", d->udp_port, "lcores", lc,
			 "queues", d->queues, "mbufs", d->mbufs, "burst", d->burst);
}

/* listen.tls as JSON: null when TLS is off. */
static json_t *cfg_tls_json(const struct tls_conf *tc)
{
	if (!tc->certificate)
		return json_null();
	return json_pack("{s:s, s:s, s:s?, s:s}", "certificate", tc->certificate, "key", tc->key,
			 "client_ca", tc->client_ca, "min_version",
			 tc->min_version == 13 ? "1.3" : "1.2");
}

void *cfg_to_json(const struct config *c)
{
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	json_t *models = json_array(), *backends = json_array();

	for (int i = 0; i < c->n_models; i++)
		json_array_append_new(models, cfg_model_json(&c->models[i]));
	for (int i = 0; i < c->n_backends; i++)
		json_array_append_new(backends, cfg_backend_json(&c->backends[i]));
	return json_pack("{s:s, s:{s:s, s:i, s:i, s:i, s:s, s:o}, s:{s:s, s:i, s:b, s:s?, s:b}, s:{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
			 " s:{s:s, s:i, s:i, s:i, s:f, s:b, s:i}, s:{s:b, s:i, s:i}, s:{s:s, s:b}, s:o, s:o, s:o}",
			 "file", c->file,
			 "listen", "address", c->listen.address, "port", c->listen.port,
			 "grpc_port", c->listen.grpc_port, "threads", c->listen.threads,
			 "http2_engine", c->listen.http2_nghttp2 ? "nghttp2" : "native",
			 "tls", cfg_tls_json(&c->listen.tls),
			 "admin", "address", c->admin.address, "port", c->admin.port,
			 "repository_on_main", c->admin.repository_on_main,
			 "token_file", c->admin.token_file, "tls", c->admin.tls,
			 "limits", "max_body_bytes", (json_int_t)c->limits.max_body_bytes,
			 "max_header_bytes", (int)c->limits.max_header_bytes,
			 "max_concurrent_streams", (int)c->limits.max_concurrent_streams,
			 "idle_timeout_ms", (int)c->limits.idle_timeout_ms,
			 "shutdown_grace_ms", (int)c->limits.shutdown_grace_ms,
			 "header_timeout_ms", (int)c->limits.header_timeout_ms,
			 "write_stall_timeout_ms", (int)c->limits.write_stall_timeout_ms,
			 "output_buffer_bytes", (int)c->limits.output_buffer_bytes,
			 "max_connections", (int)c->limits.max_connections,
			 "routing", "policy", router_policy_name(c->routing.policy),
			 "margin_us", (int)c->routing.margin_us,
			 "priority_levels", c->routing.priority_levels,
			 "sheddable_levels", c->routing.sheddable_levels,
			 "shed_wait_fraction", c->routing.shed_wait_fraction,
			 "drop_hopeless", c->routing.drop_hopeless,
			 "probe_ms", (int)c->routing.probe_ms,
			 "reload", "watch", c->reload.watch, "debounce_ms", (int)c->reload.debounce_ms,
			 "resolve_ms", (int)c->reload.resolve_ms,
			 "log", "level", levels[c->log.level], "access", c->log.access,
			 "models", models, "backends", backends, "dpdk", cfg_dpdk_json(&c->dpdk));
}

bool cfg_drop_model(struct config *c, const char *name)
{
	int i;

	for (i = 0; i < c->n_models && strcmp(c->models[i].name, name); i++)
		;
	if (i == c->n_models)
		return false;
	free(c->models[i].name);
	free(c->models[i].path);
	free(c->models[i].where);
	free(c->models[i].int8_path);
	free(c->models[i].int8_where);
	memmove(&c->models[i], &c->models[i + 1], (c->n_models - i - 1) * sizeof(c->models[0]));
	c->n_models--;
	for (int b = 0; b < c->n_backends; b++) {
		struct backend_conf *bc = &c->backends[b];

		for (int j = 0; j < bc->n_models; j++)
			if (!strcmp(bc->models[j], name)) {
				free(bc->models[j]);
				memmove(&bc->models[j], &bc->models[j + 1],
					(bc->n_models - j) * sizeof(char *));
				bc->n_models--;
				break;
			}
	}
	return true;
}

static char *cfg_strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* dst's own copy of src's batching overrides (none when out of memory). */
static void cfg_batching_dup(struct backend_conf *dst, const struct backend_conf *src)
{
	dst->batching = NULL;
	dst->n_batching = 0;
	if (!src->n_batching)
		return;
	dst->batching = calloc(src->n_batching, sizeof(*dst->batching));
	for (int i = 0; dst->batching && i < src->n_batching; i++) {
		dst->batching[i] = src->batching[i];
		dst->batching[i].model = cfg_strdup0(src->batching[i].model);
	}
	dst->n_batching = dst->batching ? src->n_batching : 0;
}

void cfg_backend_dup(struct backend_conf *dst, const struct backend_conf *src)
{
	*dst = *src;
	dst->name = cfg_strdup0(src->name);
	dst->address = cfg_strdup0(src->address);
	dst->remote.pool = cfg_strdup0(src->remote.pool);
	dst->remote.token_file = cfg_strdup0(src->remote.token_file);
	dst->remote.token = be_secret_dup(src->remote.token);
	dst->models = calloc(src->n_models + 1, sizeof(char *));
	for (int i = 0; i < src->n_models; i++)
		dst->models[i] = cfg_strdup0(src->models[i]);
	cfg_batching_dup(dst, src);
}

void cfg_backend_free(struct backend_conf *b)
{
	for (int j = 0; j < b->n_models; j++)
		free(b->models[j]);
	free(b->models);
	free(b->name);
	free(b->address);
	free(b->remote.pool);
	free(b->remote.token_file);
	be_secret_free(b->remote.token);
	for (int j = 0; b->batching && j < b->n_batching; j++)
		free(b->batching[j].model);
	free(b->batching);
	memset(b, 0, sizeof(*b));
}

static bool cfg_streq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* The token compared is the first (a C string): the one a hello shows; a
 * second line, accepted only by agents, changes nothing here. */
static bool cfg_remote_same(const struct be_remote_conf *a, const struct be_remote_conf *b)
{
	return a->window == b->window && a->connect_timeout_ms == b->connect_timeout_ms &&
	       a->timeout_ms == b->timeout_ms && a->ping_ms == b->ping_ms &&
	       a->reconnect_ms == b->reconnect_ms && a->reconnect_max_ms == b->reconnect_max_ms &&
	       cfg_streq(a->pool, b->pool) &&
	       a->consecutive_failures == b->consecutive_failures &&
	       a->ejection_ms == b->ejection_ms && a->max_ejection_ms == b->max_ejection_ms &&
	       a->max_ejection_percent == b->max_ejection_percent &&
	       cfg_streq(a->token_file, b->token_file) && cfg_streq(a->token, b->token);
}

bool cfg_backend_same(const struct backend_conf *a, const struct backend_conf *b)
{
	if (!cfg_streq(a->name, b->name) || a->kind != b->kind || a->slots != b->slots ||
	    a->threads_per_slot != b->threads_per_slot || !cfg_streq(a->address, b->address) ||
	    a->device != b->device || a->nice != b->nice || a->n_models != b->n_models ||
	    a->weights_layout != b->weights_layout || a->inline_us != b->inline_us ||
	    a->fake_latency_us != b->fake_latency_us || a->fake_fail_every != b->fake_fail_every ||
	    a->fake_down_after != b->fake_down_after || a->fake_fp32_only != b->fake_fp32_only ||
	    !cfg_remote_same(&a->remote, &b->remote) ||
	    a->gpu.tf32 != b->gpu.tf32 || a->gpu.graphs != b->gpu.graphs ||
	    a->gpu.max_batch != b->gpu.max_batch)
		return false;
	for (int i = 0; i < a->n_models; i++)
		if (!cfg_streq(a->models[i], b->models[i]))
			return false;
	return true;
}

int cfg_expand_backends(struct config *c, char **err)
{
	struct backend_conf *all = NULL, *out;
	int n_all = 0, n, rc = 0;

	for (int i = 0; i < c->n_backends && !rc; i++) {
		const struct be_kind *k = be_kind_of(c->backends[i].kind);
		struct backend_conf *grown;

		out = NULL;
		n = 0;
		if (k->expand && (rc = k->expand(&c->backends[i], &out, &n, err)))
			break;
		/* a kind copies the entry shallowly: the overrides become each
		 * expansion's own, so every conf frees only what it holds */
		for (int j = 0; out && j < n; j++)
			cfg_batching_dup(&out[j], &c->backends[i]);
		grown = realloc(all, sizeof(*all) * (size_t)(n_all + (out ? n : 1)));
		if (!grown) {
			for (int j = 0; j < n; j++)
				cfg_backend_free(&out[j]);
			free(out);
			rc = -ENOMEM;
			*err = yt_strdupf("%s: backends: out of memory", c->file);
			break;
		}
		all = grown;
		if (!out) {
			cfg_backend_dup(&all[n_all++], &c->backends[i]);
			continue;
		}
		memcpy(&all[n_all], out, sizeof(*out) * (size_t)n);	/* taken over */
		n_all += n;
		free(out);
	}
	for (int i = 0; !rc && i < n_all; i++)
		for (int j = 0; !rc && j < i; j++)
			if (!strcmp(all[i].name, all[j].name)) {
				*err = yt_strdupf("%s: backends: duplicate backend name \"%s\" (a "
						  "remote address that resolves to several agents is "
						  "named NAME-1..NAME-N)", c->file, all[i].name);
				rc = -EINVAL;
			}
	if (rc) {
		for (int i = 0; i < n_all; i++)
			cfg_backend_free(&all[i]);
		free(all);
		return rc;
	}
	for (int i = 0; i < c->n_backends; i++)
		cfg_backend_free(&c->backends[i]);
	free(c->backends);
	c->backends = all;
	c->n_backends = n_all;
	return 0;
}

/* Append "key: x -> y" to *out (malloc'd, "; "-separated); false when out of memory. */
static bool cfg_diff_add(char **out, const char *key, const char *x, const char *y)
{
	char *s = yt_strdupf("%s%s%s: %s -> %s", *out ? *out : "", *out ? "; " : "", key, x, y);

	if (!s)
		return false;
	free(*out);
	*out = s;
	return true;
}

static bool cfg_diff_int(char **out, const char *key, int x, int y)
{
	char a[16], b[16];

	if (x == y)
		return true;
	snprintf(a, sizeof(a), "%d", x);
	snprintf(b, sizeof(b), "%d", y);
	return cfg_diff_add(out, key, a, b);
}

static bool cfg_diff_str(char **out, const char *key, const char *x, const char *y)
{
	return cfg_streq(x, y) || cfg_diff_add(out, key, x ? x : "", y ? y : "");
}

char *cfg_restart_diff(const struct config *a, const struct config *b)
{
	char *out = NULL, sa[1024], sb[1024];
	/* TLS on or off is the listener's mode; certificates reload live. */
	bool ok = cfg_diff_str(&out, "listen.address", a->listen.address, b->listen.address) &&
		  cfg_diff_int(&out, "listen.port", a->listen.port, b->listen.port) &&
		  cfg_diff_int(&out, "listen.grpc_port", a->listen.grpc_port, b->listen.grpc_port) &&
		  cfg_diff_int(&out, "listen.threads", a->listen.threads, b->listen.threads) &&
		  cfg_diff_str(&out, "listen.tls", a->listen.tls.certificate ? "on" : "off",
			       b->listen.tls.certificate ? "on" : "off") &&
		  cfg_diff_str(&out, "admin.address", a->admin.address, b->admin.address) &&
		  cfg_diff_int(&out, "admin.port", a->admin.port, b->admin.port) &&
		  cfg_diff_str(&out, "admin.tls", a->admin.tls ? "on" : "off",
			       b->admin.tls ? "on" : "off") &&
		  cfg_diff_str(&out, "dpdk", cfg_dpdk_sig(&a->dpdk, sa, sizeof(sa)),
			       cfg_dpdk_sig(&b->dpdk, sb, sizeof(sb)));

	if (!ok) {
		free(out);
		return strdup("restart-only settings changed (out of memory describing them)");
	}
	return out;
}

void cfg_free(struct config *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_models; i++) {
		free(c->models[i].name);
		free(c->models[i].path);
		free(c->models[i].where);
		free(c->models[i].int8_path);
		free(c->models[i].int8_where);
	}
	free(c->models);
	for (int i = 0; i < c->n_backends; i++)
		cfg_backend_free(&c->backends[i]);
	free(c->backends);
	free(c->listen.address);
	free(c->listen.tls.certificate);
	free(c->listen.tls.key);
	free(c->listen.tls.client_ca);
	free(c->listen.tls.where_certificate);
	free(c->listen.tls.where_key);
	free(c->listen.tls.where_client_ca);
	free(c->admin.address);
	free(c->admin.token_file);
	be_secret_free(c->admin.token);
	for (int i = 0; i < c->dpdk.n_eal; i++)
		free(c->dpdk.eal[i]);
	free(c->dpdk.eal);
	free(c->dpdk.address);
	free(c->dpdk.where);
	free(c->file);
	free(c);
}
