/*
 * main.c - infergw: command line, startup, signals, shutdown.
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait, so handlers never run inside the event loops.
 */
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "autoscale.h"
#include "config.h"
#include "control.h"
#include "dpdk/dp.h"
#include "evmem.h"
#include "metrics.h"
#include "log.h"
#include "runtime.h"
#include "server.h"
#include "tls.h"
#include "version.h"

#define DEFAULT_CONFIG "config/gateway.yaml"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: infergw [--config FILE] [--check-config FILE] [--port N] [--admin-port N]\n"
		"\n"
		"A heterogeneous inference gateway: KServe v2 / Open Inference Protocol (with\n"
		"Triton's extensions) over HTTP/2 (h2c, or TLS with ALPN) and HTTP/1.1 on one\n"
		"port, batching onto CPU (oneDNN), GPU (CUDA) and remote agent backends.\n"
		"\n"
		"  -c, --config FILE        configuration file (default %s)\n"
		"      --check-config FILE  validate FILE (and load its models), print a summary, exit\n"
		"  -p, --port N             override listen.port (0 = pick a free port)\n"
		"      --admin-port N       override admin.port (0 = pick a free port, -1 = none)\n"
		"  -v, --version            print version and built-in features\n"
		"  -h, --help               this text\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting, finish in-flight requests, exit 0;\n"
		"SIGHUP reloads the configuration (so does POST /admin/reload on the admin port).\n"
		"Docs: README.md, docs/api.md, docs/config.md, docs/security.md.\n", DEFAULT_CONFIG);
}

static void version(void)
{
	printf("infergw %s\nfeatures: %s\n", infergw_version, infergw_features);
}

/* Validate path and load its models, then report. */
static int check_config(const char *path)
{
	char *err = NULL;
	struct config *cfg = cfg_load(path, &err);
	struct runtime *rt;
	char summary[512];

	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	log_set_level(LOG_WARN);
	snprintf(summary, sizeof(summary),
		 "%s: ok: %d model(s), %d backend(s), listen %s:%d, admin %s:%d%s, %d thread(s) (%s), "
		 "http2 %s\n",
		 path, cfg->n_models, cfg->n_backends, cfg->listen.address, cfg->listen.port,
		 cfg->admin.address, cfg->admin.port, cfg->admin.token ? " (bearer token)" : "",
		 cfg->listen.threads, cfg->listen.threads_from,
		 cfg->listen.http2_nghttp2 ? "nghttp2" : "native");
	rt = rt_build(cfg, NULL, &err);
	if (!rt) {
		fprintf(stderr, "%s\n", err);
		free(err);
		cfg_free(cfg);
		return 1;
	}
	fputs(summary, stdout);
	rt_put(rt);
	return 0;
}

static int serve(const struct ctl_opts *o)
{
	const struct config *cfg;
	struct server srv;
	char *err = NULL;
	sigset_t set;
	uint32_t grace_ms;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);	/* inherited by every thread */
	signal(SIGPIPE, SIG_IGN);
	if (ctl_init(o, &cfg, &err)) {
		log_error("msg=\"cannot start: %s\"", err);
		free(err);
		return 1;
	}
	access_enable(cfg->log.access);
	rt_reaper_start();
	if (srv_start(&srv, cfg, &err)) {
		log_error("msg=\"%s\"", err);
		free(err);
		rt_publish(NULL);
		rt_reaper_stop();
		return 1;
	}
	/* The fast path reads the published snapshot: after srv_start (its
	 * section is restart-only, so the first config's is the one). */
	if (dp_start(&cfg->dpdk, &err)) {
		log_error("msg=\"cannot start: %s\"", err);
		free(err);
		srv_stop(&srv);
		rt_stop_all();
		srv_destroy(&srv);
		rt_publish(NULL);
		rt_reaper_stop();
		return 1;
	}
	log_info("config=%s version=%s msg=\"ready\"", o->config_path, infergw_version);
	grace_ms = cfg->limits.shutdown_grace_ms;	/* cfg may be gone after a reload */
	sig = ctl_run();
	log_info("signal=%s msg=\"shutting down: draining in-flight requests\"",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	srv_stop(&srv);
	dp_stop(grace_ms);	/* before the backends stop */
	rt_stop_all();		/* late completions land in the loops' mailboxes */
	srv_destroy(&srv);	/* ... and run here */
	rt_publish(NULL);
	rt_reaper_stop();
	ctl_shutdown();
	met_free_all();
	asc_free_all();
	log_info("msg=\"stopped\"");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "port", required_argument, NULL, 'p' },
		{ "admin-port", required_argument, NULL, 'a' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct ctl_opts o = { .config_path = DEFAULT_CONFIG, .port_override = -1,
			      .admin_override = -2 };
	static const struct rt_tls_ops tls_ops = { tls_ctx_new, tls_ctx_ref, tls_ctx_put };
	int opt;
	char *end;

	evmem_install();	/* before any libevent call */
	rt_tls_ops(&tls_ops);	/* the listener's TLS context is net's */
	while ((opt = getopt_long(argc, argv, "c:p:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o.config_path = optarg;
			break;
		case 'C':
			return check_config(optarg);
		case 'p':
			o.port_override = (int)strtol(optarg, &end, 10);
			if (*end || o.port_override < 0 || o.port_override > 65535) {
				fprintf(stderr, "infergw: --port: expected 0..65535, got \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'a':
			o.admin_override = (int)strtol(optarg, &end, 10);
			if (*end || o.admin_override < -1 || o.admin_override > 65535) {
				fprintf(stderr, "infergw: --admin-port: expected -1..65535, got \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		case 'v':
			version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "infergw: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return serve(&o);
}
