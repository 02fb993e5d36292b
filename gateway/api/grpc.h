/*
 * grpc.h - the KServe v2 gRPC API (inference.GRPCInferenceService, from
 * proto/grpc_service.proto) over the gateway's HTTP/2 server: one more
 * codec in front of the same request front, router and backends as HTTP.
 *
 * A call is gRPC when HTTP/2 sees content-type application/grpc (h2.c sets
 * call->grpc); api_handle then hands it to grpc_handle.  Unary methods:
 * ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
 * ModelInfer, and Triton's ModelConfig, ModelStatistics, RepositoryIndex,
 * RepositoryModelLoad/Unload (answers built from the HTTP endpoints' own
 * JSON).  Each answer is HTTP 200 with one length-prefixed protobuf
 * message and the trailers grpc-status / grpc-message, or trailers-only
 * (no message, the status in the headers) for an error.  HTTP/1.1 never
 * carries gRPC.  Request messages may be gzip (grpc-encoding), inflated
 * within limits.max_body_bytes; answers are identity.
 *
 * ModelStreamInfer (bidirectional streaming) is dispatched when its
 * headers arrive (call->grpc_stream); h2.c then hands it every DATA chunk
 * (grpc_stream_data) and the client's half-close (grpc_stream_input_end);
 * answers are written as they complete (call_stream_write), the trailers
 * once the client half-closed and everything was answered.
 */
#ifndef INFERGW_GRPC_H
#define INFERGW_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* grpc_handle - answer gRPC call c, now or when its inference completes;
 * a ModelStreamInfer call is opened (its messages come later). */
void grpc_handle(struct call *c);
/* grpc_is_stream - c is a gRPC call of ModelStreamInfer (by its path). */
bool grpc_is_stream(struct call *c);
/*
 * grpc_stream_data - more of stream call c's body is in c->body: submit
 * the whole messages (up to the in-flight cap), give the bytes back to the
 * client's windows when there is room (call_stream_consume), finish the
 * call when the client half-closed and all is answered.  No-op for a call
 * not opened as a stream, answered, or detached.  c may be freed (h2 owns
 * it; callers hold it pinned or do not touch it after).
 */
void grpc_stream_data(struct call *c);
/*
 * grpc_stream_add - n bytes of stream call c's DATA into c->body, a large
 * message into a block of its own (room for it counted against the
 * connection's budget for declared bodies until it is filled), so that
 * grpc_stream_data reads it in place.  Then call grpc_stream_data.
 */
void grpc_stream_add(struct call *c, const uint8_t *p, size_t n);
/* grpc_stream_input_end - the client half-closed stream call c. */
void grpc_stream_input_end(struct call *c);
/*
 * grpc_stream_abandon - the client of stream call c is gone (api_abandon):
 * c is detached, its queued requests cancelled; c is freed now when none
 * is running, else by the last completion.
 */
void grpc_stream_abandon(struct call *c);
/* grpc_metrics - /metrics: infergw_grpc_requests_total{method,code}. */
void grpc_metrics(struct evbuffer *out);
/* grpc_body_size - a unary request's whole body (its one message's 5-byte
 * prefix and the length that prefix says) from the first n bytes at p;
 * 0 when n < 5 or the prefix is not one. */
uint64_t grpc_body_size(const uint8_t *p, size_t n);

#endif
