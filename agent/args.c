/*
 * args.c - infergw-agent's command line (agt_opts_parse).  Pure: no I/O but
 * the usage text, so the unit tests run it as often as they like.
 */
#include "agent.h"
#include "gateway/core/log.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agt_usage(void *fp)
{
	FILE *f = fp;

	fprintf(f,
		"Usage: infergw-agent --listen HOST:PORT --models DIR [options]\n"
		"\n"
		"The DPU-offload worker of infergw: serves the models under DIR with the\n"
		"CPU (oneDNN) engine to gateways speaking the agent protocol v%d over TCP\n"
		"(docs/agent-protocol.md; docs/agent.md for this program).\n"
		"\n"
		"  -l, --listen HOST:PORT     address to listen on ([v6]:port; port 0: the\n"
		"                             kernel picks, the startup log line says which)\n"
		"  -m, --models DIR           every subdirectory with a model.yaml is served\n"
		"  -t, --threads N            CPU workers (gpu: CUDA streams, at most 16) =\n"
		"                             batches executing at once (default 1)\n"
		"      --backend cpu|gpu      what executes: the CPU backend (default) or the\n"
		"                             GPU backend (builds with CUDA)\n"
		"      --device N             the CUDA device of --backend gpu (default 0)\n"
		"  -w, --max-inflight N       window: unanswered batches per connection\n"
		"                             (default 2 x threads); more get status 429\n"
		"      --max-frame BYTES      largest frame payload taken (default %u); a\n"
		"                             larger one gets error 413 and the connection closes\n"
		"      --max-connections N    connections at once (default 64)\n"
		"      --frame-timeout-ms MS  a frame begun must be complete within MS, and a\n"
		"                             peer must take our output within MS (default 30000)\n"
		"      --grace-ms MS          SIGTERM: longest wait for in-flight batches (10000)\n"
		"      --out-cap BYTES        reads pause while this much output waits (4 MiB)\n"
		"      --token-file FILE      a gateway's hello must carry the token in FILE\n"
		"                             (its backends[].token_file), or while a token\n"
		"                             rotates either of FILE's two lines; else error\n"
		"                             401 and the connection closes.  Read at start\n"
		"                             and at every hello (a rotated token applies to\n"
		"                             new connections); docs/agent.md\n"
		"      --log-level LEVEL      debug, info, warn or error (default info)\n"
		"  -v, --version              print the version and the protocol version\n"
		"  -h, --help                 this text\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting, finish queued and running batches,\n"
		"send their results, close connections and exit 0.\n",
		AGP_VERSION, AGT_MAX_FRAME_DEFAULT);
}

int agt_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long p;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen || !colon[1])
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

/* An integer flag in [min, max]; 0 or -EINVAL with err. */
static int agt_arg_int(const char *flag, const char *s, long long min, long long max,
		       long long *out, char *err, size_t errlen)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		snprintf(err, errlen, "%s: expected an integer %lld..%lld, got \"%s\"", flag, min,
			 max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

enum { OPT_MAX_FRAME = 256, OPT_MAX_CONNS, OPT_FRAME_TMO, OPT_GRACE, OPT_OUT_CAP, OPT_LOG,
       OPT_BACKEND, OPT_DEVICE, OPT_TOKEN_FILE };

#define AGT_MAX_STREAMS 16	/* the GPU backend's limit (docs/config.md, streams) */

int agt_opts_parse(struct agt_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "models", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-inflight", required_argument, NULL, 'w' },
		{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNS },
		{ "frame-timeout-ms", required_argument, NULL, OPT_FRAME_TMO },
		{ "grace-ms", required_argument, NULL, OPT_GRACE },
		{ "out-cap", required_argument, NULL, OPT_OUT_CAP },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *listen = NULL;
	long long v;
	int opt;

	*o = (struct agt_opts){
		.max_frame = AGT_MAX_FRAME_DEFAULT, .max_conns = 64, .frame_timeout_ms = 30000,
		.grace_ms = 10000, .out_cap = 4u << 20, .log_level = LOG_INFO, .threads = 1,
		.backend = BE_CPU,
	};
	optind = 0;	/* glibc: a full re-initialisation, so a second parse works */
	opterr = 0;	/* our own messages */
	while ((opt = getopt_long(argc, argv, ":l:m:t:w:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen = optarg;
			break;
		case 'm':
			o->models_dir = optarg;
			break;
		case 't':
			if (agt_arg_int("--threads", optarg, 1, AGT_MAX_THREADS, &v, err, errlen))
				return -EINVAL;
			o->threads = (int)v;
			break;
		case 'w':
			if (agt_arg_int("--max-inflight", optarg, 1, AGT_MAX_INFLIGHT, &v, err,
					errlen))
				return -EINVAL;
			o->max_inflight = (int)v;
			break;
		case OPT_MAX_FRAME:
			/* at least a hello and a small infer; at most what proto allows */
			if (agt_arg_int("--max-frame", optarg, 1024, AGP_MAX_FRAME_DEFAULT, &v, err,
					errlen))
				return -EINVAL;
			o->max_frame = (uint32_t)v;
			break;
		case OPT_MAX_CONNS:
			if (agt_arg_int("--max-connections", optarg, 1, 65536, &v, err, errlen))
				return -EINVAL;
			o->max_conns = (int)v;
			break;
		case OPT_FRAME_TMO:
			if (agt_arg_int("--frame-timeout-ms", optarg, 10, 3600000, &v, err, errlen))
				return -EINVAL;
			o->frame_timeout_ms = (int)v;
			break;
		case OPT_GRACE:
			if (agt_arg_int("--grace-ms", optarg, 0, 3600000, &v, err, errlen))
				return -EINVAL;
			o->grace_ms = (int)v;
			break;
		case OPT_OUT_CAP:
			if (agt_arg_int("--out-cap", optarg, 4096, 1ll << 30, &v, err, errlen))
				return -EINVAL;
			o->out_cap = (size_t)v;
			break;
		case OPT_LOG:
			o->log_level = log_level_parse(optarg);
			if (o->log_level < 0) {
				snprintf(err, errlen, "--log-level: expected debug, info, warn or "
					 "error, got \"%s\"", optarg);
				return -EINVAL;
			}
			break;
		case OPT_BACKEND:
			if (!strcmp(optarg, "cpu")) {
				o->backend = BE_CPU;
			} else if (!strcmp(optarg, "gpu")) {
				o->backend = BE_GPU;
			} else {
				snprintf(err, errlen, "--backend: expected cpu or gpu, got \"%s\"",
					 optarg);
				return -EINVAL;
			}
			break;
		case OPT_TOKEN_FILE:
			o->token_file = optarg;
			break;
		case OPT_DEVICE:
			if (agt_arg_int("--device", optarg, 0, 64, &v, err, errlen))
				return -EINVAL;
			o->device = (int)v;
			break;
		case 'v':
			return AGT_ARGS_VERSION;
		case 'h':
			return AGT_ARGS_HELP;
		case ':':
			snprintf(err, errlen, "%s: missing its value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, errlen, "unknown option \"%s\"", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\"", argv[optind]);
		return -EINVAL;
	}
	if (!listen) {
		snprintf(err, errlen, "--listen HOST:PORT is required");
		return -EINVAL;
	}
	if (agt_split_hostport(listen, o->host, sizeof(o->host), &o->port)) {
		snprintf(err, errlen, "--listen: expected HOST:PORT (port 0..65535), got \"%s\"",
			 listen);
		return -EINVAL;
	}
	if (!o->models_dir) {
		snprintf(err, errlen, "--models DIR is required");
		return -EINVAL;
	}
#ifndef USE_CUDA
	if (o->backend == BE_GPU) {
		snprintf(err, errlen, "--backend gpu: this infergw-agent was built without CUDA");
		return -EINVAL;
	}
#endif
	if (o->backend == BE_GPU && o->threads > AGT_MAX_STREAMS) {
		snprintf(err, errlen, "--threads: the GPU backend runs at most %d streams, got %d",
			 AGT_MAX_STREAMS, o->threads);
		return -EINVAL;
	}
	if (!o->max_inflight)
		o->max_inflight = 2 * o->threads;
	return AGT_ARGS_RUN;
}
