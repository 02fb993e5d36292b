/*
 * stats.h - Triton's statistics extension (GET /v2/models/stats,
 * /v2/models/{m}[/versions/{v}]/stats): per model, the counters the
 * gateway keeps in its metric series (metrics.h), summed over the
 * backends that served it and the requests no backend took.  Counters
 * live as long as the process, across reloads, like /metrics.
 */
#ifndef INFERGW_STATS_H
#define INFERGW_STATS_H

struct evbuffer;
struct model;
struct runtime;

/*
 * stats_encode - {"model_stats":[...]} for model m, or for every model of
 * rt when m is NULL, in Triton's format: name, version, last_inference
 * (ms since the epoch), inference_count (rows answered 200),
 * execution_count (batches), inference_stats {success, fail, queue,
 * compute_input, compute_infer, compute_output, cache_hit, cache_miss}
 * as {count, ns}, batch_stats per batch size.
 */
void stats_encode(struct evbuffer *out, const struct runtime *rt, const struct model *m);

#endif
