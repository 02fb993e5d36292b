/*
 * http.h - one HTTP exchange ("call"), whatever the protocol underneath.
 *
 * Ownership (DESIGN.md §6.7): loop -> connection -> call -> infer_req.
 * HTTP/1.1 has at most one call per connection at a time; HTTP/2 has one
 * per stream.  When the client goes away while a call waits for its
 * inference, the transport sets call->conn = NULL ("detached") and tries
 * to cancel the request; the completion then frees the call.  Everything
 * here runs on the connection's loop thread.
 */
#ifndef INFERGW_HTTP_H
#define INFERGW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct srv_loop;
struct runtime;
struct evbuffer;
struct infer_req;
struct loop;
struct front_sink;
struct front_pool;

#define CALL_INLINE_HDRS 32	/* more spill to a heap array; max_header_bytes bounds them */
#define CALL_MAX_RESP_HDRS 6	/* content-type, vary, content-encoding, and the handler's */
#define CALL_STR_BYTES 1024	/* inline room for path and header strings */
#define CALL_GZIP_MIN 1024	/* smaller answers are sent as they are */

struct hdr {
	char *name;		/* lower-case */
	char *value;
};

enum http_proto { PROTO_UNKNOWN, PROTO_H1, PROTO_H2 };

/* The request headers the gateway reads: call_add_header notes where the
 * first of each is, so reading one (call_hdr) is not a walk over them all. */
enum call_hk {
	CALL_H_ACCEPT,			/* accept */
	CALL_H_ACCEPT_ENCODING,		/* accept-encoding */
	CALL_H_CONNECTION,		/* connection */
	CALL_H_CONTENT_ENCODING,	/* content-encoding */
	CALL_H_CONTENT_LENGTH,		/* content-length */
	CALL_H_CONTENT_TYPE,		/* content-type */
	CALL_H_EXPECT,			/* expect */
	CALL_H_GRPC_ENCODING,		/* grpc-encoding */
	CALL_H_GRPC_TIMEOUT,		/* grpc-timeout */
	CALL_H_HTTP2_SETTINGS,		/* http2-settings */
	CALL_H_IHCL,			/* inference-header-content-length */
	CALL_H_UPGRADE,			/* upgrade */
	CALL_H_X_PRIORITY,		/* x-priority */
	CALL_H_X_SLO_MS,		/* x-slo-ms */
	CALL_H_N
};

/* An HTTP/2 request's messaging state (RFC 9113 §8), kept by net's
 * h2check.c: zero for a new stream. */
#define H2_MSG_MALFORMED 1u	/* a check failed: the stream is reset, never served */
struct h2_msg {
	uint32_t flags;		/* H2_MSG_MALFORMED, and h2check.c's own */
	uint64_t clen;		/* content-length, when flags say one came */
	uint64_t rx;		/* DATA bytes received */
};

struct call {
	struct conn *conn;		/* NULL once detached */
	struct srv_loop *sl;		/* the loop that owns it (and recycles it): net's */
	/* Set by the transport at call_new, for the API (opaque here): the loop
	 * a control job posts its answer back to, and the request pool and
	 * completion sink of its inference (front.h): the loop thread's. */
	struct loop *loop;
	struct front_pool *pool;
	struct front_sink *sink;
	struct call *next_free;
	int pins;			/* call_pin holders: call_free waits for the last */
	bool free_pending;		/* call_free came while pinned */
	struct runtime *rt;		/* the snapshot this call runs on (a reference) */
	int32_t stream_id;		/* HTTP/2 only */
	struct h2_msg h2msg;		/* HTTP/2 only */
	struct call *h2_prev, *h2_next;	/* HTTP/2: the connection's open streams */
	bool admin;			/* arrived on the admin listener */
	char method[16];
	char *path;			/* without the query string */
	int n_hdrs, cap_hdrs;
	struct hdr *hdrs;		/* hdrs_inline, or a malloc'd array past it */
	int hk[CALL_H_N];		/* 1 + the index in hdrs of the first such header; 0: none */
	size_t hdr_bytes;
	unsigned h2_nfield;		/* h2: fields of its header block so far */
	bool hdr_too_large;
	struct evbuffer *body;
	bool body_too_large;
	uint64_t start_ns;		/* arrival (conn_arrival_ns): deadlines and latency run from it */
	/* response */
	bool responded;
	bool h2_queued;			/* answer submitted, stream not closed yet */
	size_t h2_rx;			/* DATA bytes held against the connection window */
	uint64_t body_reserved;		/* room reserved for its body (h2_body_reserve, h1) */
	int status;
	struct evbuffer *resp;
	int n_resp_hdrs;		/* in resp_hdrs */
	char h2_vals[28];		/* h2: :status and content-length, until sent */
	/* gRPC (grpc.h): set by HTTP/2 when the request's content-type is
	 * application/grpc.  The answer is then HTTP 200 whatever status says
	 * (status stays the HTTP-equivalent, for the access log), never
	 * compressed, and ends with grpc-status / grpc-message: as trailers
	 * after a non-empty resp, as headers of a trailers-only answer when
	 * resp is empty. */
	bool grpc;
	bool grpc_stream;		/* ModelStreamInfer: dispatched at its headers */
	uint8_t grpc_method;		/* grpc.c's method of path, + 1; 0: not looked up */
	bool h2_streaming;		/* h2: response headers out, body written as it comes */
	int grpc_status;
	const char *grpc_message;	/* percent-encoded; lives as long as the call */
	/* inference (owned by the call) or admin job in flight */
	bool async;			/* an answer will come later: api_abandon on loss */
	struct infer_req *req;
	void *api;			/* api module's per-call state */
	bool api_in_call;		/* api came from call_api_new: not free()d apart */
	size_t str_used;		/* of str */
	char *spill;
	/* call_new clears everything before hdrs_inline: what follows is
	 * valid only as far as n_hdrs, n_resp_hdrs and str_used say */
	struct hdr hdrs_inline[CALL_INLINE_HDRS];
	struct hdr resp_hdrs[CALL_MAX_RESP_HDRS];	/* names: constants */
	/* strings (path, header names and values) live here, then in spill
	 * blocks */
	char str[CALL_STR_BYTES];
};

/* call_new / call_free - one pair per call; the call holds a reference to
 * its loop's current runtime; call_free frees an attached req.  Calls are
 * recycled through a per-loop free list with their (drained) body and
 * response buffers: c->body and c->resp always exist and start empty. */
struct call *call_new(struct conn *conn);
void call_free(struct call *c);
/*
 * call_pin / call_unpin - keep c alive while code runs that may answer it:
 * a call_free that comes while c is pinned (HTTP/1.1 frees a call as soon
 * as its answer is queued; a connection may close) only detaches c and
 * marks it; the last call_unpin frees it.  So a handler may still read c
 * (its runtime, headers, path) after it answered; it must check
 * c->responded before answering again (call_respond does).
 */
void call_pin(struct call *c);
void call_unpin(struct call *c);
/* call_api_new - n zeroed bytes (aligned for any object of alignment 8 or
 * less) that live as long as c, set as c->api: the API's per-call state
 * without a malloc of its own (call_free does not free() it apart).
 * NULL when out of memory.  Else c->api is malloc'd by its owner and
 * free()d by call_free. */
void *call_api_new(struct call *c, size_t n);
/* call_strndup - a NUL-terminated copy of s[0..n) that lives as long as c. */
char *call_strndup(struct call *c, const char *s, size_t n);
/* call_add_header - store a request header (name lower-cased); false when out of memory
 * (the transports bound the number by limits.max_header_bytes).
 * call_add_lc_header - the same for a name already in lower case (HTTP/2's). */
bool call_add_header(struct call *c, const char *name, size_t nlen, const char *value, size_t vlen);
bool call_add_lc_header(struct call *c, const char *name, size_t nlen, const char *value,
			size_t vlen);
/* call_header_n - value of the first request header lname[0..len)
 * (lower-case), or NULL.  call_header - the same for a C string (a
 * constant's length is then worked out by the compiler). */
const char *call_header_n(const struct call *c, const char *lname, size_t len);
static inline const char *call_header(const struct call *c, const char *lname)
{
	return call_header_n(c, lname, __builtin_strlen(lname));
}
/* call_hdr - call_header for one of the headers enum call_hk names, at once. */
static inline const char *call_hdr(const struct call *c, enum call_hk k)
{
	return c->hk[k] ? c->hdrs[c->hk[k] - 1].value : NULL;
}
/* A request body declared larger than this gets room for all of it in
 * one block as it begins (h1.c, h2.c): the parser reads it where it
 * landed, no copy to gather its pieces. */
#define CALL_RESERVE_MIN (32 << 10)
/*
 * call_add_owned - append p[0..n) (malloc'd) to c->resp without copying
 * it: p is the answer's from now on, freed once the last of it is written
 * or dropped.  In CALL_OWNED_SLICE pieces, the payload of an HTTP/2 DATA
 * frame each, so that the native engine moves them into frames uncopied
 * too.  0; -1 when out of memory: c->resp is then emptied (p freed).
 */
#define CALL_OWNED_SLICE 16384
int call_add_owned(struct call *c, void *p, size_t n);
/* call_buf_add_owned - call_add_owned into any evbuffer b; when out of
 * memory (-1) b may hold some of p's slices: the caller drops b's
 * contents, which frees p. */
int call_buf_add_owned(struct evbuffer *b, void *p, size_t n);
/* call_set_resp_header - add a response header: name is a lower-case
 * string constant (kept as it is: the transports send it as it is), value
 * is copied.  Past CALL_MAX_RESP_HDRS, dropped. */
void call_set_resp_header(struct call *c, const char *name, const char *value);

/*
 * call_respond - send status with c->resp as the body (created on demand)
 * and ctype as Content-Type (NULL for none): a string constant (it is
 * kept, not copied, until the answer is sent).  Once per call.  A body of
 * CALL_GZIP_MIN bytes or more gets Vary: Accept-Encoding, and is sent
 * compressed (Content-Encoding: gzip or deflate) when the client's
 * Accept-Encoding allows and it comes out smaller; headers such as
 * Inference-Header-Content-Length still describe the uncompressed body,
 * as Triton's do.  When the call
 * is detached, only accounts and returns.  c may be freed before this
 * returns (HTTP/1.1 frees the call once its response is queued): do not
 * touch c, or anything it owns (its path, headers), afterwards.
 */
void call_respond(struct call *c, int status, const char *ctype);
/*
 * call_decode_body - undo the request's Content-Encoding (gzip, deflate;
 * identity and none leave the body as it is) in c->body, before any
 * handler reads it: one place for HTTP/1.1 and HTTP/2.  The inflated body
 * is capped by limits.max_body_bytes like a plain one.  Returns 0 when
 * c->body is the plain body; else the status c was answered with: 413
 * (inflates past the cap: decoding stops there), 415 (unknown coding, or
 * more than one), 400 (corrupt, truncated or trailing data), 503.
 */
int call_decode_body(struct call *c);
/*
 * Streaming answers (gRPC ModelStreamInfer over HTTP/2; no-ops when c is
 * detached or not HTTP/2):
 * call_stream_write - c->resp has more of the answer: the first call sends
 *   the headers (200, content-type application/grpc), each sends what
 *   c->resp holds as the client's window allows.  call_respond ends the
 *   answer (trailers after the rest of c->resp).
 * call_stream_consume - give the request bytes received so far back to the
 *   client's flow-control windows (until then they are held: the client
 *   stops sending at its window).
 * call_max_body - limits.max_body_bytes of c's connection (0 when detached).
 */
/*
 * call_gunzip - inflate gzip in (left unchanged) into out, at most cap
 * bytes (zlib, bounded as call_decode_body): 0; -EFBIG past cap; -EINVAL
 * (not a complete gzip stream: *why says what); -ENOMEM.
 */
int call_gunzip(struct evbuffer *in, struct evbuffer *out, size_t cap, const char **why);
void call_stream_write(struct call *c);
void call_stream_consume(struct call *c);
/*
 * call_reserve - may c's body get a block of n more bytes of room (an
 * HTTP/2 stream's, within its connection's budget for declared bodies:
 * h2_reserve)?  0 (counted from now on), or -1: append as usual.
 * call_unreserve - that block is filled: n bytes of the count back.
 */
int call_reserve(struct call *c, uint64_t n);
void call_unreserve(struct call *c, uint64_t n);
uint64_t call_max_body(const struct call *c);
/* call_accepts_msgpack - the client's Accept names application/msgpack. */
bool call_accepts_msgpack(const struct call *c);
/* call_respond_error - {"error": msg} with status; a msgpack map when the
 * client accepts msgpack (call_accepts_msgpack), else JSON. */
void call_respond_error(struct call *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* call_respond_json - a constant JSON body: a string constant (referred
 * to, not copied, until the answer is sent). */
void call_respond_json(struct call *c, int status, const char *json);
/*
 * call_allow - true when c's method is `allowed` (HEAD counts as GET);
 * otherwise answers 405 with an Allow header and returns false.
 */
bool call_allow(struct call *c, const char *allowed);
/* call_detached - the client is gone. */
static inline bool call_detached(const struct call *c) { return c->conn == NULL; }

/* Status reason phrases for HTTP/1.1. */
const char *http_reason(int status);

#endif
