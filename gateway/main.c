/*
 * main.c - infergw: command line, startup, signals, shutdown.
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait, so handlers never run inside the event loops.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "config.h"
#include "log.h"
#include "runtime.h"
#include "server.h"

#define DEFAULT_CONFIG "config/gateway.yaml"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: infergw [--config FILE] [--check-config FILE] [--port N] [--admin-port N]\n"
		"\n"
		"A heterogeneous inference gateway: KServe v2 / Open Inference Protocol over\n"
		"HTTP/2 (h2c) and HTTP/1.1 on one port, batching onto CPU (oneDNN) backends.\n"
		"\n"
		"  -c, --config FILE        configuration file (default %s)\n"
		"      --check-config FILE  validate FILE (and load its models), print a summary, exit\n"
		"  -p, --port N             override listen.port (0 = pick a free port)\n"
		"      --admin-port N       override admin.port (0 = pick a free port, -1 = none)\n"
		"  -v, --version            print version and built-in features\n"
		"  -h, --help               this text\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting, finish in-flight requests, exit 0.\n"
		"Docs: README.md, docs/config.md.\n", DEFAULT_CONFIG);
}

static void version(void)
{
	printf("infergw %s\nfeatures: %s\n", INFERGW_VERSION, INFERGW_FEATURES);
}

/* Load and validate; with check_only also load models, then report. */
static int check_config(const char *path)
{
	char *err = NULL;
	struct config *cfg = cfg_load(path, &err);
	struct runtime *rt;

	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	log_set_level(LOG_WARN);
	rt = rt_build(cfg, &err);
	if (!rt) {
		fprintf(stderr, "%s\n", err);
		free(err);
		cfg_free(cfg);
		return 1;
	}
	printf("%s: ok: %d model(s), %d backend(s), listen %s:%d, %d thread(s)\n", path,
	       cfg->n_models, cfg->n_backends, cfg->listen.address, cfg->listen.port,
	       cfg->listen.threads);
	rt_destroy(rt);
	cfg_free(cfg);
	return 0;
}

static int serve(const char *path, int port_override, int admin_override)
{
	struct server srv;
	struct runtime *rt;
	struct config *cfg;
	char *err = NULL;
	sigset_t set;
	int sig;

	cfg = cfg_load(path, &err);
	if (!cfg) {
		log_error("msg=\"invalid configuration: %s\"", err);
		free(err);
		return 1;
	}
	if (port_override >= 0)
		cfg->listen.port = port_override;
	if (admin_override >= -1)
		cfg->admin.port = admin_override;
	log_set_level(cfg->log.level);
	access_enable(cfg->log.access);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);	/* inherited by every thread */
	signal(SIGPIPE, SIG_IGN);
	rt = rt_build(cfg, &err);
	if (!rt) {
		log_error("msg=\"%s\"", err);
		free(err);
		cfg_free(cfg);
		return 1;
	}
	if (srv_start(&srv, cfg, rt, &err)) {
		log_error("msg=\"%s\"", err);
		free(err);
		rt_destroy(rt);
		cfg_free(cfg);
		return 1;
	}
	log_info("config=%s version=%s msg=\"ready\"", path, INFERGW_VERSION);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGHUP) {
			log_warn("msg=\"SIGHUP: configuration reload is not implemented yet; ignored\"");
			continue;
		}
		break;
	}
	log_info("signal=%s msg=\"shutting down: draining in-flight requests\"",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	srv_stop(&srv);
	rt_stop(rt);		/* late completions land in the loops' mailboxes */
	srv_destroy(&srv);	/* ... and are run here, before the metrics go */
	rt_destroy(rt);
	cfg_free(cfg);
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
	const char *config = DEFAULT_CONFIG;
	int opt, port = -1, admin_port = -2;
	char *end;

	while ((opt = getopt_long(argc, argv, "c:p:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'C':
			return check_config(optarg);
		case 'p':
			port = (int)strtol(optarg, &end, 10);
			if (*end || port < 0 || port > 65535) {
				fprintf(stderr, "infergw: --port: expected 0..65535, got \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'a':
			admin_port = (int)strtol(optarg, &end, 10);
			if (*end || admin_port < -1 || admin_port > 65535) {
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
	return serve(config, port, admin_port);
}
