/*
 * api.h - the KServe v2 HTTP API: routes a complete request to its handler.
 *
 *   GET  /v2/health/live            GET /v2/health/ready        GET /v2
 *   GET  /v2/models/{m}[/versions/{v}]        GET .../ready
 *   POST /v2/models/{m}[/versions/{v}]/infer  GET /metrics
 */
#ifndef INFERGW_API_H
#define INFERGW_API_H

struct call;

/*
 * api_handle - answer c, now or when its inference completes (on the same
 * loop thread).  Every path ends in exactly one call_respond.
 */
void api_handle(struct call *c);

#endif
