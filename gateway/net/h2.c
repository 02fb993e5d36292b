/*
 * h2.c - HTTP/2 over cleartext with prior knowledge (nghttp2 server session).
 *
 * Input is fed to nghttp2_session_mem_recv straight from the bufferevent;
 * output is pulled with nghttp2_session_mem_send into the bufferevent's
 * output buffer.  nghttp2 sends WINDOW_UPDATE as we consume DATA (automatic
 * flow control), and enforces SETTINGS_MAX_CONCURRENT_STREAMS.  A call per
 * stream hangs off the stream's user data; when the stream closes before
 * its inference finished, the call is detached and the request cancelled.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "grpc.h"
#include "h2check.h"
#include "infer.h"
#include "log.h"
#include "server.h"
#include "util.h"

/*
 * Receive windows.  A stream's is bigger than the 64 KiB default so that
 * one message of limits.max_body_bytes (gRPC's 4 MB tensors) fits in one
 * window (one round trip, not one per MiB): h2_stream_window.  The
 * connection's is at least H2_CONN_WINDOW and two streams' worth: it bounds
 * what a connection holds (request bodies are given back to it only when
 * their stream closes, gRPC streams as they are taken: h2_on_data).
 */
#define H2_WINDOW (1 << 20)
#define H2_WINDOW_MAX (16 << 20)
#define H2_CONN_WINDOW (16 << 20)
/* Oversized header lists tolerated on one connection before GOAWAY. */
#define H2_MAX_OFFENCES 4
#define H2_NO_COPY (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)

/* The call of a stream; the last one attached is remembered, since a
 * request's callbacks (each header, the frame) come in a row and
 * nghttp2's lookup is a hash-map search (~250 instructions a request);
 * so is the one whose last DATA frame went out, closing next
 * (h2_read_body). */
static struct call *h2_call(struct conn *c, int32_t stream_id)
{
	if (c->h2_last_call && c->h2_last_call->stream_id == stream_id)
		return c->h2_last_call;
	return nghttp2_session_get_stream_user_data(c->h2, stream_id);
}

/* A connection's calls are listed so closing it costs its open streams,
 * not every stream id it ever used (ids may jump to 2^31-1 at once). */
static void h2_attach(struct conn *c, struct call *call, int32_t stream_id)
{
	call->stream_id = stream_id;
	call->h2_prev = NULL;
	call->h2_next = c->h2_calls;
	if (c->h2_calls)
		c->h2_calls->h2_prev = call;
	c->h2_calls = call;
	c->h2_last_call = call;
	nghttp2_session_set_stream_user_data(c->h2, stream_id, call);
}

/* Only as its stream closes (or the session goes): nghttp2 hands a
 * closed stream's user data to no one, so it is left as it is. */
static void h2_detach(struct conn *c, struct call *call)
{
	if (call->h2_prev)
		call->h2_prev->h2_next = call->h2_next;
	else
		c->h2_calls = call->h2_next;
	if (call->h2_next)
		call->h2_next->h2_prev = call->h2_prev;
	call->h2_prev = call->h2_next = NULL;
	if (c->h2_last_call == call)
		c->h2_last_call = NULL;
}

static int h2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct conn *c = arg;
	struct call *call;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = call_new(c);
	if (!call)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	h2_attach(c, call, f->hd.stream_id);
	c->active++;
	return 0;
}

/*
 * A header list over limits.max_header_bytes: stop processing the stream
 * now (nghttp2 resets it and decodes the rest of the block without calling
 * us or validating it: references to a large table entry cost nothing
 * more), and end the session after H2_MAX_OFFENCES such streams.
 */
static int h2_header_offence(struct conn *c, struct call *call)
{
	call->hdr_too_large = true;
	if (++c->h2_offences >= H2_MAX_OFFENCES) {
		log_info("peer=%s msg=\"closing: %d header lists over limits.max_header_bytes\"",
			 c->peer, c->h2_offences);
		srv_count_close(CLOSE_H2_OFFENCES);
		nghttp2_session_terminate_session(c->h2, NGHTTP2_ENHANCE_YOUR_CALM);
	}
	return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/*
 * A malformed request (h2check.h): its stream is reset with PROTOCOL_ERROR
 * (RFC 9113 §8.1.1), as nghttp2's own checks did, and never served.  Called
 * once, where a check first failed: every callback skips a malformed
 * stream's frames from there on (h2c_malformed).
 */
static void h2_malformed(struct conn *c, struct call *call)
{
	log_debug("peer=%s stream=%d msg=\"malformed request: stream reset\"", c->peer,
		  call->stream_id);
	nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id,
				  NGHTTP2_PROTOCOL_ERROR);
}

/*
 * Clients send the same fields in the same order request after request,
 * and HPACK hands an indexed field over as the same nghttp2_rcbuf each
 * time: h2check's verdict on the field at each position of a header block
 * is kept with a reference to its name's and value's buffers (so that no
 * other field can take their address), and a field found again at its
 * position is not read again (~60 instructions a field).  Fields up to
 * H2_MEMO_FIELD bytes at the first H2_MEMO positions: at most ~20 KiB
 * held per connection.
 */
#define H2_MEMO 16
#define H2_MEMO_FIELD 1024

struct h2_memo {
	nghttp2_rcbuf *name, *value;	/* NULL: empty */
	nghttp2_vec n, v;		/* their bytes */
	struct h2c_verdict d;
};

static void h2_memo_free(struct conn *c)
{
	if (!c->h2_memo)
		return;
	for (int i = 0; i < H2_MEMO; i++) {
		if (c->h2_memo[i].name) {
			nghttp2_rcbuf_decref(c->h2_memo[i].name);
			nghttp2_rcbuf_decref(c->h2_memo[i].value);
		}
	}
	free(c->h2_memo);
	c->h2_memo = NULL;
}

/* The slot of the field at position pos of a header block when it holds
 * these very buffers; NULL otherwise. */
static struct h2_memo *h2_memo_find(struct conn *c, unsigned pos, const nghttp2_rcbuf *name,
				    const nghttp2_rcbuf *value)
{
	struct h2_memo *e;

	if (pos >= H2_MEMO || !c->h2_memo)
		return NULL;
	e = &c->h2_memo[pos];
	return e->name == name && e->value == value ? e : NULL;
}

/* The verdict d on a field (not malformed, not too large) kept at pos in
 * place of the one there, unless that one has the same name: a new value
 * under the same name at the same place is one HPACK did not index (an
 * encoder never indexes :path or content-length, say), new each time.
 * Returns d's copy in the memo, or d. */
static const struct h2c_verdict *h2_memo_keep(struct conn *c, unsigned pos, nghttp2_rcbuf *name,
					      nghttp2_rcbuf *value, const nghttp2_vec *n,
					      const nghttp2_vec *v, const struct h2c_verdict *d)
{
	struct h2_memo *e;

	if (pos >= H2_MEMO || d->kind == H2C_MALFORMED || n->len + v->len > H2_MEMO_FIELD)
		return d;
	if (!c->h2_memo && !(c->h2_memo = calloc(H2_MEMO, sizeof(*c->h2_memo))))
		return d;
	e = &c->h2_memo[pos];
	if (e->name == name)
		return d;	/* a value that is never indexed (:path, content-length) */
	if (e->name) {
		nghttp2_rcbuf_decref(e->name);
		nghttp2_rcbuf_decref(e->value);
	}
	nghttp2_rcbuf_incref(name);
	nghttp2_rcbuf_incref(value);
	*e = (struct h2_memo){ .name = name, .value = value, .n = *n, .v = *v, .d = *d };
	return &e->d;
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *f, nghttp2_rcbuf *nbuf,
			nghttp2_rcbuf *vbuf, uint8_t flags, void *arg)
{
	struct conn *c = arg;
	struct call *call;
	struct h2_memo *e;
	struct h2c_verdict dv;
	const struct h2c_verdict *d;
	nghttp2_vec nv, vv;
	const uint8_t *name, *value;
	size_t nlen, vlen, n;
	unsigned pos;
	bool trailer;

	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	trailer = f->headers.cat != NGHTTP2_HCAT_REQUEST;
	call = h2_call(c, f->hd.stream_id);
	if (!call || h2c_malformed(&call->h2msg))
		return 0;
	pos = trailer ? H2_MEMO : call->h2_nfield++;	/* trailers: not kept */
	e = h2_memo_find(c, pos, nbuf, vbuf);
	if (e) {
		nv = e->n;
		vv = e->v;
	} else {
		nv = nghttp2_rcbuf_get_buf(nbuf);
		vv = nghttp2_rcbuf_get_buf(vbuf);
	}
	name = nv.base, nlen = nv.len, value = vv.base, vlen = vv.len;
	if (!trailer) {
		call->hdr_bytes += nlen + vlen + 32;	/* RFC 7541 entry size */
		if (call->hdr_bytes > conn_cfg(c)->limits.max_header_bytes)
			return h2_header_offence(c, call);
	}
	if (e) {
		d = &e->d;
	} else {
		h2c_classify(&dv, name, nlen, value, vlen);
		d = h2_memo_keep(c, pos, nbuf, vbuf, &nv, &vv, &dv);
	}
	switch (h2c_apply(&call->h2msg, d, trailer)) {
	case H2C_MALFORMED:
		h2_malformed(c, call);
		break;
	case H2C_METHOD:	/* a token: no NUL in it */
		n = vlen < sizeof(call->method) - 1 ? vlen : sizeof(call->method) - 1;
		memcpy(call->method, value, n);
		call->method[n] = 0;
		break;
	case H2C_PATH: {
		const uint8_t *q = memchr(value, '?', vlen);

		call->path = call_strndup(call, (const char *)value, q ? (size_t)(q - value) : vlen);
		break;
	}
	case H2C_REGULAR:	/* lower-case; the trailers' are checked, not kept */
		if (!trailer && !call_add_lc_header(call, (const char *)name, nlen,
						    (const char *)value, vlen))
			call->hdr_too_large = true;
		break;
	case H2C_PSEUDO:
		break;
	}
	return 0;
}

static int h2_on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id,
		      const uint8_t *data, size_t len, void *arg)
{
	struct conn *c = arg;
	struct call *call = h2_call(c, stream_id);

	if (call && !h2c_malformed(&call->h2msg) && !h2c_data(&call->h2msg, len))
		h2_malformed(c, call);	/* past its content-length */
	/* The stream's window reopens at once; the connection's only when the
	 * stream closes and its body is gone: no connection buffers more
	 * request bodies than its 16 MiB connection window. */
	if (!call || call->responded || h2c_malformed(&call->h2msg)) {
		nghttp2_session_consume(s, stream_id, len);
		return 0;
	}
	/* A gRPC stream: its bytes stay held against both windows until the
	 * gRPC layer has room for more requests (grpc_stream_data). */
	if (call->grpc_stream) {
		call->h2_rx += len;
		evbuffer_add(call->body, data, len);
		grpc_stream_data(call);
		return 0;
	}
	nghttp2_session_consume_stream(s, stream_id, len);
	call->h2_rx += len;
	if (evbuffer_get_length(call->body) + len > conn_cfg(c)->limits.max_body_bytes) {
		call->body_too_large = true;
		/* Answer now; nghttp2 resets the rest of the upload (NO_ERROR). */
		call_respond_error(call, 413, "request body exceeds limits.max_body_bytes (%llu)",
				   (unsigned long long)conn_cfg(c)->limits.max_body_bytes);
		return 0;
	}
	evbuffer_add(call->body, data, len);
	return 0;
}

/* The request is complete: route it, or answer what was wrong with it. */
static void h2_dispatch(struct conn *c, struct call *call)
{
	if (call->responded)
		return;
	if (call->hdr_too_large) {
		call_respond_error(call, 431, "request header exceeds limits.max_header_bytes");
		return;
	}
	if (!call->path || !call->method[0]) {
		call_respond_error(call, 400, "missing :method or :path");
		return;
	}
	api_handle(call);
}

static int h2_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct conn *c = arg;
	struct call *call;

	/* Upgraded from HTTP/1.1 (stream 1 is the request): the client's
	 * preface and SETTINGS are what header_timeout_ms waits for. */
	if (f->hd.type == NGHTTP2_SETTINGS && nghttp2_session_get_last_proc_stream_id(s) > 0)
		conn_disarm_header_timer(c);
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	call = h2_call(c, f->hd.stream_id);
	if (!call || h2c_malformed(&call->h2msg))
		return 0;
	if (!(f->hd.type == NGHTTP2_HEADERS ?
	      h2c_headers_end(&call->h2msg, f->headers.cat != NGHTTP2_HCAT_REQUEST,
			      f->hd.flags & NGHTTP2_FLAG_END_STREAM) :
	      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) || h2c_end_stream(&call->h2msg))) {
		h2_malformed(c, call);
		return 0;
	}
	if (f->hd.type == NGHTTP2_HEADERS) {
		conn_disarm_header_timer(c);	/* a request came in time */
		/* before any answer (413 included), so every one is gRPC-shaped;
		 * the admin listener serves no gRPC */
		call->grpc = !call->admin && grpc_is_request(call);
		/* a stream is served as it arrives: open it now */
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST && grpc_is_stream(call)) {
			call->grpc_stream = true;
			h2_dispatch(c, call);
		}
	}
	if (call->grpc_stream) {
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
			grpc_stream_input_end(call);
		return 0;
	}
	if (f->hd.type == NGHTTP2_HEADERS && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		uint64_t cl;	/* h2check read it */

		if (h2c_content_length(&call->h2msg, &cl) && cl > conn_cfg(c)->limits.max_body_bytes)
			call_respond_error(call, 413, "request body exceeds limits.max_body_bytes (%llu)",
					   (unsigned long long)conn_cfg(c)->limits.max_body_bytes);
		return 0;
	}
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		h2_dispatch(c, call);
	return 0;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
			      void *arg)
{
	struct conn *c = arg;
	struct call *call = h2_call(c, stream_id);

	if (!call)
		return 0;
	h2_detach(c, call);
	if (call->h2_rx)
		nghttp2_session_consume_connection(s, call->h2_rx);
	if (c->active > 0)
		c->active--;
	if (call->h2_queued) {
		call->h2_queued = false;
		c->h2_blocked--;
	}
	if (call->async && !call->responded) {
		log_debug("stream=%d error=%u msg=\"client reset a stream in flight\"",
			  stream_id, error_code);
		api_abandon(call);
		return 0;
	}
	call_free(call);
	return 0;
}

/* grpc-status and grpc-message as name/value pairs for nva. */
static int h2_grpc_nv(struct call *call, nghttp2_nv *nva, char *code, size_t codelen)
{
	char *p = util_utoa(code + codelen - 1, call->grpc_status < 0 ? 0 : (unsigned)call->grpc_status);
	int n = 0;

	code[codelen - 1] = 0;
	memmove(code, p, (size_t)(code + codelen - p));	/* with the NUL */
	nva[n++] = (nghttp2_nv){ (uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code),
				 NGHTTP2_NV_FLAG_NO_COPY_NAME };
	if (call->grpc_message && call->grpc_message[0])
		nva[n++] = (nghttp2_nv){ (uint8_t *)"grpc-message", (uint8_t *)call->grpc_message,
					 12, strlen(call->grpc_message),
					 NGHTTP2_NV_FLAG_NO_COPY_NAME };
	return n;
}

/*
 * The last DATA frame of call's answer: EOF, and for gRPC the trailers
 * after it (nghttp2 copies them and sends them after this frame).
 */
static void h2_body_end(nghttp2_session *s, int32_t stream_id, struct call *call,
			uint32_t *flags)
{
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (call->grpc) {
		nghttp2_nv nva[2];
		char code[12];
		int nt = h2_grpc_nv(call, nva, code, sizeof(code));

		if (nghttp2_submit_trailer(s, stream_id, nva, nt) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
}

/*
 * A whole answer's body, DATA frame by frame.  The last frame's bytes are
 * copied, not removed: call_free empties call->resp anyway (a removal
 * here cost ~150 instructions a request).  Its stream closes right after
 * that frame is sent: call is made the one h2_call finds first.
 */
static ssize_t h2_read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct call *call = src->ptr;
	size_t have = evbuffer_get_length(call->resp);
	int n;

	if (have > len) {
		n = evbuffer_remove(call->resp, buf, len);
		return n < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : n;
	}
	if (evbuffer_copyout(call->resp, buf, have) != (ev_ssize_t)have)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	((struct conn *)arg)->h2_last_call = call;
	h2_body_end(s, stream_id, call, flags);
	return (ssize_t)have;
}

/*
 * Send what nghttp2 holds once the current callback returns (conn_on_write
 * -> h2_send), unless in the read path (which sends after the read):
 * answers produced off the read path (a worker's, delivered with others by
 * the loop's mail) then share a write instead of one writev each.
 */
static void h2_kick(struct conn *c)
{
	if (!c->in_read)
		bufferevent_trigger(c->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * A streaming answer's body: what call->resp holds, deferred while it is
 * empty and the answer goes on (h2_stream_write resumes it); once answered
 * (call->responded) the rest, then the gRPC trailers.  Emptying call->resp
 * lets the gRPC stream take more requests (its output bound): answers that
 * makes are sent by the send loop this runs in.
 */
static ssize_t h2_read_stream(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
			      uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct call *call = src->ptr;
	struct conn *c = arg;
	bool in_read = c->in_read;
	int n = 0;

	if (evbuffer_get_length(call->resp)) {
		n = evbuffer_remove(call->resp, buf, len);
		if (n < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (!evbuffer_get_length(call->resp) && !call->responded) {
			c->in_read = true;	/* no nested h2_send */
			grpc_stream_data(call);
			c->in_read = in_read;
		}
	}
	if (evbuffer_get_length(call->resp))
		return n;
	if (!call->responded)
		return n ? n : NGHTTP2_ERR_DEFERRED;
	h2_body_end(s, stream_id, call, flags);
	return n;
}

void h2_stream_write(struct call *call)
{
	struct conn *c = call->conn;
	nghttp2_data_provider prd = { .source.ptr = call, .read_callback = h2_read_stream };
	nghttp2_nv nva[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3,
		  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
		  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
		{ (uint8_t *)"grpc-accept-encoding", (uint8_t *)"identity,gzip", 20, 13,
		  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE },
	};

	if (!c->h2)
		return;
	if (!call->h2_streaming) {
		if (nghttp2_submit_response(c->h2, call->stream_id, nva, 3, &prd) != 0) {
			log_warn("stream=%d msg=\"cannot submit a streaming response\"",
				 call->stream_id);
			return;
		}
		call->h2_streaming = true;
	} else {
		/* an error when it is not deferred: it reads call->resp anyway */
		nghttp2_session_resume_data(c->h2, call->stream_id);
	}
	h2_kick(c);
}

void h2_stream_consume(struct call *call)
{
	struct conn *c = call->conn;

	if (!c->h2 || !call->h2_rx)
		return;
	nghttp2_session_consume(c->h2, call->stream_id, call->h2_rx);
	call->h2_rx = 0;
	h2_kick(c);	/* the WINDOW_UPDATEs */
}

/* A status code (100-999) in three digits and a NUL at buf; 3. */
static size_t h2_status(char *buf, int status)
{
	unsigned v = status < 100 || status > 999 ? 500 : (unsigned)status;

	buf[0] = (char)('0' + v / 100);
	buf[1] = (char)('0' + v / 10 % 10);
	buf[2] = (char)('0' + v % 10);
	buf[3] = 0;
	return 3;
}

/*
 * call's answer: its HEADERS (the body, if any, follows from h2_read_body).
 * Every name and value but grpc-status's lives until the HEADERS frame is
 * sent (string constants, call's own strings and call->h2_vals: the call
 * is freed at the stream's close, after that), so nghttp2 copies none.
 */
void h2_respond(struct call *call)
{
	struct conn *c = call->conn;
	nghttp2_nv nva[4 + CALL_MAX_RESP_HDRS];
	char *status = call->h2_vals, code[12];
	size_t slen;
	nghttp2_data_provider prd = { .source.ptr = call, .read_callback = h2_read_body };
	size_t len = evbuffer_get_length(call->resp);
	bool body = len && memcmp(call->method, "HEAD", 5) != 0;	/* method[16] */
	int n = 0;

	/* A streaming answer: its headers went out; the rest, then trailers. */
	if (call->h2_streaming) {
		call->h2_queued = true;
		c->h2_blocked++;
		nghttp2_session_resume_data(c->h2, call->stream_id);
		h2_kick(c);
		return;
	}
	/* gRPC answers 200 whatever went wrong: the code is grpc-status.
	 * A status has three digits (h2_vals: its first 4 bytes; the length is
	 * written backwards from its end, 20 digits at most). */
	slen = h2_status(status, call->grpc ? 200 : call->status);
	nva[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)status, 7, slen, H2_NO_COPY };
	if (!call->grpc) {
		char *end = call->h2_vals + sizeof(call->h2_vals), *clen = util_utoa(end, len);

		nva[n++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)clen, 14,
					 (size_t)(end - clen), H2_NO_COPY };
	}
	for (int i = 0; i < call->n_resp_hdrs; i++)
		nva[n++] = (nghttp2_nv){ (uint8_t *)call->resp_hdrs[i].name,
					 (uint8_t *)call->resp_hdrs[i].value,
					 strlen(call->resp_hdrs[i].name),
					 strlen(call->resp_hdrs[i].value), H2_NO_COPY };
	/* gRPC without a message: trailers-only, the status in the headers. */
	if (call->grpc && !body)
		n += h2_grpc_nv(call, nva + n, code, sizeof(code));
	/* HEAD: the headers (content-length included) but never a body. */
	if (nghttp2_submit_response(c->h2, call->stream_id, nva, n, body ? &prd : NULL) != 0) {
		log_warn("stream=%d msg=\"cannot submit response\"", call->stream_id);
		return;
	}
	call->h2_queued = true;	/* until its stream closes: all of it was sent */
	c->h2_blocked++;
	h2_kick(c);	/* sending later batches frames of many streams */
}

/* Space reserved in the output at a time: many small frames per add. */
#define H2_GATHER 16384

int h2_send(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint64_t cap = conn_cfg(c)->limits.output_buffer_bytes;
	struct evbuffer_iovec v = { 0 };
	size_t used = 0, queued = evbuffer_get_length(out);	/* only this adds to out */
	int rc = 0;

	/* nghttp2 hands out one frame at a time; they are copied into space
	 * reserved in the output and committed together, so the output's
	 * callbacks run once per flush rather than once per frame.  Above
	 * the output cap nghttp2 keeps what it has (its own flood guards
	 * then see a client that does not read); the write callback comes
	 * back here once the socket takes the rest. */
	while (queued + used <= cap) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);

		if (n < 0) {
			log_debug("peer=%s err=\"%s\" msg=\"h2 send failed\"", c->peer,
				  nghttp2_strerror((int)n));
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		if ((size_t)n > v.iov_len - used) {
			if (used) {
				v.iov_len = used;
				evbuffer_commit_space(out, &v, 1);
				queued += used;
			}
			used = 0;
			if (evbuffer_reserve_space(out, n > H2_GATHER ? n : H2_GATHER, &v, 1) < 1) {
				v.iov_len = 0;
				evbuffer_add(out, data, n);
				queued += (size_t)n;
				c->out_progress += (uint64_t)n;
				continue;
			}
		}
		memcpy((char *)v.iov_base + used, data, n);
		used += (size_t)n;
		c->out_progress += (uint64_t)n;
	}
	if (used) {
		v.iov_len = used;
		evbuffer_commit_space(out, &v, 1);
	}
	if (rc)
		return rc;
	conn_flush(c);
	conn_watch_stall(c);
	conn_maybe_close(c);
	return 0;
}

/*
 * nghttp2 gave up on the session (bad preface, flood, callback failure):
 * tell the client why with GOAWAY before closing, as RFC 9113 §5.4.1 asks.
 */
static void h2_fatal(struct conn *c, int rv)
{
	uint32_t code = rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM :
			rv == NGHTTP2_ERR_NOMEM || rv == NGHTTP2_ERR_CALLBACK_FAILURE ?
			NGHTTP2_INTERNAL_ERROR : NGHTTP2_PROTOCOL_ERROR;

	log_debug("peer=%s err=\"%s\" msg=\"h2 protocol error\"", c->peer, nghttp2_strerror(rv));
	srv_count_close(CLOSE_PROTOCOL_ERROR);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	conn_set_reading(c, false);
	c->close_after_write = true;
	if (nghttp2_session_terminate_session(c->h2, code) != 0 || h2_send(c) != 0)
		conn_close(c);
}

/*
 * p[0..n) to nghttp2: the bytes it took, or -1 when the session failed
 * (h2_fatal: c may be gone).  in_read doubles as "inside the read path"
 * so responses made while parsing are sent once, by h2_on_read, instead
 * of once per stream.
 */
static ssize_t h2_recv(struct conn *c, const uint8_t *p, size_t n)
{
	ssize_t used;

	c->in_read = true;
	used = nghttp2_session_mem_recv(c->h2, p, n);
	c->in_read = false;
	if (used < 0) {
		h2_fatal(c, (int)used);
		return -1;
	}
	return used;
}

ssize_t h2_take(struct conn *c, const char *p, size_t n)
{
	if (conn_output_full(c))
		return 0;	/* kept: h2_on_read pauses reading */
	return h2_recv(c, (const uint8_t *)p, n);
}

void h2_on_read(struct conn *c)
{
	struct evbuffer *in = c->in;
	size_t len = evbuffer_get_length(in);
	ssize_t n;

	if (conn_output_full(c)) {
		conn_pause_reading(c);	/* the write callback resumes here */
		return;
	}
	if (len) {
		n = h2_recv(c, evbuffer_pullup(in, len), len);
		if (n < 0)
			return;
		evbuffer_drain(in, n);
		conn_input_check(c);
	}
	h2_send(c);
}

void h2_header_timeout(struct conn *c)
{
	c->close_after_write = true;
	nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
	h2_send(c);	/* may close c */
}

void h2_goaway(struct conn *c)
{
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
			      NULL, 0);
	h2_send(c);
}

/* Detach every call still attached to a stream, then free the session. */
void h2_free(struct conn *c)
{
	nghttp2_session *s = c->h2;

	c->h2 = NULL;		/* what the calls' owners see from here on */
	while (c->h2_calls) {
		struct call *call = c->h2_calls;

		h2_detach(c, call);
		if (call->async && !call->responded)
			api_abandon(call);
		else
			call_free(call);
	}
	h2_memo_free(c);
	nghttp2_session_del(s);
}

/* A stream's receive window: a whole message of max_body_bytes (plus
 * framing), at least H2_WINDOW, at most H2_WINDOW_MAX. */
static int32_t h2_stream_window(uint64_t max_body)
{
	uint64_t w = max_body + 16384;

	return (int32_t)(w < H2_WINDOW ? H2_WINDOW : w > H2_WINDOW_MAX ? H2_WINDOW_MAX : w);
}

int h2_start(struct conn *c)
{
	const struct config *cfg = conn_cfg(c);
	int32_t win = h2_stream_window(cfg->limits.max_body_bytes);
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->limits.max_concurrent_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)win },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->limits.max_header_bytes },
	};
	int rc;

	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback2(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
	rc = nghttp2_option_new(&opt);
	if (!rc) {
		nghttp2_option_set_no_auto_window_update(opt, 1);	/* see h2_on_data */
		nghttp2_option_set_no_http_messaging(opt, 1);	/* h2check.h's instead */
		/* A closed stream is freed at once, not kept (up to
		 * max_concurrent_streams of them) for RFC 7540 priorities
		 * that name it as a parent: such a PRIORITY then makes the
		 * stream depend on the root, as for an unknown parent. */
		nghttp2_option_set_no_closed_streams(opt, 1);
		rc = nghttp2_session_server_new3(&c->h2, cb, c, opt, h2mem_get(&c->sl->h2mem));
		nghttp2_option_del(opt);
	}
	nghttp2_session_callbacks_del(cb);
	if (rc)
		return -1;
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
					      2 * win > H2_CONN_WINDOW ? 2 * win : H2_CONN_WINDOW);
	return 0;
}

/* RFC 4648 §5 base64url without padding (trailing '=' tolerated) into
 * out (room for len * 3 / 4 bytes).  The decoded length, or -1. */
static ssize_t h2_base64url(const char *in, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char ch = in[i];
		int v = ch >= 'A' && ch <= 'Z' ? ch - 'A' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26 :
			ch >= '0' && ch <= '9' ? ch - '0' + 52 : ch == '-' ? 62 : ch == '_' ? 63 : -1;

		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	return (ssize_t)n;
}

/*
 * RFC 9113 §6.5.2: values a SETTINGS frame may not carry.  nghttp2 would
 * take them and end the session with GOAWAY right after our 101; checked
 * first so such a request is served as HTTP/1.1 instead.
 */
static bool h2_settings_ok(const uint8_t *p, size_t len)
{
	if (len % 6 || len / 6 > NGHTTP2_DEFAULT_MAX_SETTINGS)
		return false;
	for (; len; p += 6, len -= 6) {
		uint16_t id = (uint16_t)(p[0] << 8 | p[1]);
		uint32_t v = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];

		if ((id == NGHTTP2_SETTINGS_ENABLE_PUSH && v > 1) ||
		    (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE && v > (uint32_t)NGHTTP2_MAX_WINDOW_SIZE) ||
		    (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE &&
		     (v < (1u << 14) || v > (1u << 24) - 1)) ||
		    (id == NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL && v > 1))
			return false;
	}
	return true;
}

int h2_upgrade(struct conn *c, struct call *call, const char *settings)
{
	size_t len = settings ? strlen(settings) : 0;
	uint8_t *raw = settings ? malloc(len * 3 / 4 + 3) : NULL;
	ssize_t n = raw ? h2_base64url(settings, len, raw) : -1;
	int rc = -1;

	if (n < 0 || !h2_settings_ok(raw, (size_t)n) || h2_start(c))
		goto out_free_raw;
	if (nghttp2_session_upgrade2(c->h2, raw, (size_t)n, strcmp(call->method, "HEAD") == 0,
				     NULL) != 0) {
		nghttp2_session_del(c->h2);
		c->h2 = NULL;
		goto out_free_raw;
	}
	/* nghttp2 keeps no user data for a server's stream 1: set it here.
	 * Listed like any stream's call, so a connection that closes before
	 * its answer abandons it (h2_free), and its close unlinks nothing
	 * else (h2_detach). */
	h2_attach(c, call, 1);
	c->proto = PROTO_H2;
	rc = 0;
out_free_raw:
	free(raw);
	return rc;
}
