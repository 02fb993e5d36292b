/*
 * api.h - the KServe v2 HTTP API: routes a complete request to its handler.
 *
 *   GET  /v2/health/live            GET /v2/health/ready        GET /v2
 *   GET  /v2/models/{m}[/versions/{v}]        GET .../ready
 *   POST /v2/models/{m}[/versions/{v}]/infer
 * and on the admin listener: GET /metrics, GET /v2/health/{live,ready}
 */
#ifndef INFERGW_API_H
#define INFERGW_API_H

#include <stddef.h>
#include <stdint.h>

struct call;
struct infer_req;
struct evbuffer;
struct runtime;
struct model;

/*
 * api_handle - answer c, now or when its inference completes (on the same
 * loop thread).  Every path ends in exactly one call_respond.
 */
void api_handle(struct call *c);
/*
 * api_abandon - the client of c went away (stream reset, connection
 * closed) while its inference (or admin job) is queued or running.  A queued request is
 * removed and c freed now; a running one detaches c, which its completion
 * frees.  Either way it counts as cancelled.  c must not be used after.
 */
void api_abandon(struct call *c);
/* api_ready - GET /v2/health/ready: 200 when every model has a backend up. */
void api_ready(struct call *c);
/*
 * api_account - count a finished inference r in its series: outcome by
 * status (200, 429, 504, other errors; 0 = cancelled), latencies, SLO;
 * now = 0 times it to now.  Every front end's completion calls it once.
 */
void api_account(const struct infer_req *r, int status, uint64_t now);
/* api_count_error - count a request for m refused before a backend took it (400, 503). */
void api_count_error(const struct call *c, const struct model *m);
/* api_encode_config - Triton's model configuration of m (the JSON GET
 * /v2/models/{m}/config answers) into out: the one encoder for every codec. */
void api_encode_config(struct evbuffer *out, const struct runtime *rt, const struct model *m);
/* api_extensions_list - the extensions GET /v2 lists (static strings); *n gets how many. */
const char *const *api_extensions_list(size_t *n);

#endif
