/*
 * gpuconf.c - kind gpu's own keys of a backends[] entry (be_gpu_parse_conf,
 * backend.h).  Built in every binary, CUDA or not, so a config naming a
 * gpu backend stays valid where the kind is not built in (it is then left
 * down with a reason).
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

/*
 * be_gpu_parse_conf - see backend.h: device (CUDA ordinal, 0..64), streams
 * (credits, 1..16, default 4; the common key workers means the same and
 * streams wins), math (fp32 | tf32, default fp32), graphs (bool, default
 * true), max_batch (rows per batch, 1..4096; default 256).  0 or -EINVAL.
 */
int be_gpu_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err)
{
	int64_t dev = conf->device, streams = conf->slots > 0 ? conf->slots : 4;
	int64_t mb = conf->gpu.max_batch;
	char *math = NULL;
	bool graphs = true;

	if (src->get_int(src->ctx, "device", 0, 64, &dev, err) ||
	    src->get_int(src->ctx, "streams", 1, 16, &streams, err) ||
	    src->get_int(src->ctx, "max_batch", 1, 4096, &mb, err) ||
	    (src->get_bool && src->get_bool(src->ctx, "graphs", &graphs, err)) ||
	    src->get_str(src->ctx, "math", &math, err))
		return -EINVAL;
	if (math && strcmp(math, "fp32") && strcmp(math, "tf32")) {
		free(math);
		return src->error(src->ctx, err, "math: expected fp32 or tf32");
	}
	conf->device = (int)dev;
	conf->slots = (int)streams;
	conf->gpu.max_batch = (int)mb;
	conf->gpu.graphs = graphs;
	conf->gpu.tf32 = math && !strcmp(math, "tf32");
	free(math);
	return 0;
}
