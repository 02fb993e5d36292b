/*
 * grpc.h - the KServe v2 gRPC API (inference.GRPCInferenceService, from
 * proto/grpc_service.proto) over the gateway's HTTP/2 server: one more
 * codec in front of the same request front, router and backends as HTTP.
 *
 * A call is gRPC when HTTP/2 sees content-type application/grpc (h2.c sets
 * call->grpc); api_handle then hands it to grpc_handle.  Unary methods
 * only: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
 * ModelInfer.  Each answer is HTTP 200 with one length-prefixed protobuf
 * message and the trailers grpc-status / grpc-message, or trailers-only
 * (no message, the status in the headers) for an error.  HTTP/1.1 never
 * carries gRPC.
 */
#ifndef INFERGW_GRPC_H
#define INFERGW_GRPC_H

#include <stdbool.h>

struct call;
struct evbuffer;

/* gRPC status codes (the ones the gateway answers). */
enum grpc_code {
	GRPC_OK = 0,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
};

/* grpc_is_request - c's content-type is application/grpc (alone, or
 * followed by '+' or ';': application/grpc+proto). */
bool grpc_is_request(const struct call *c);
/*
 * grpc_code - the gRPC code for an HTTP-equivalent status: 400 ->
 * INVALID_ARGUMENT, 404 -> NOT_FOUND, 413 and 429 -> RESOURCE_EXHAUSTED,
 * 503 -> UNAVAILABLE, 504 -> DEADLINE_EXCEEDED, 500 -> INTERNAL, 405 and
 * 501 -> UNIMPLEMENTED, other 4xx -> INVALID_ARGUMENT, else UNKNOWN.
 */
int grpc_code(int http_status);
/*
 * grpc_respond_status - answer c (a gRPC call) trailers-only with code and
 * msg (copied, percent-encoded as grpc-message asks); http_status is what
 * the access log records.  Drops anything in c->resp.  Once per call, as
 * call_respond; c may be freed before this returns.
 */
void grpc_respond_status(struct call *c, int http_status, int code, const char *msg);
/* grpc_handle - answer gRPC call c, now or when its inference completes. */
void grpc_handle(struct call *c);
/* grpc_metrics - /metrics: infergw_grpc_requests_total{method,code}. */
void grpc_metrics(struct evbuffer *out);

#endif
