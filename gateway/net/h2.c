/*
 * h2.c - HTTP/2: h2c with prior knowledge or upgraded, and TLS h2.
 *
 * Two engines frame the bytes (listen.http2_engine, chosen as a
 * connection becomes HTTP/2): the gateway's own (h2w.h, "native", the
 * default) or an nghttp2 server session.  Either hands the request side
 * here in the same steps (a stream opens, each header field, DATA, the
 * end of a HEADERS block or DATA frame, the stream's close: h2_open,
 * h2_field_*, h2_data_in, h2_frame_in, h2_closed), and takes answers from
 * here (h2_respond, h2_stream_write).  A call per stream hangs off the
 * stream's user data; when the stream closes before its inference
 * finished, the call is detached and the request cancelled.
 *
 * Input is fed to the engine straight from the read buffer; output is
 * written into the bufferevent's output buffer (h2_send).
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
#include "h2w.h"
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
 * their stream closes, gRPC streams as they are taken: h2_data_in).
 */
#define H2_WINDOW (1 << 20)
#define H2_WINDOW_MAX (16 << 20)
#define H2_CONN_WINDOW (16 << 20)
/*
 * A request body whose content-length says it is larger than
 * CALL_RESERVE_MIN gets room for all of it at its first DATA.  Room is
 * reserved for declared lengths the client may never send, so a
 * connection's open streams hold at most h2_reserve_budget of it (half its
 * window, at least one whole body); past that, bodies grow piece by piece.
 */
/* Oversized header lists tolerated on one connection before GOAWAY. */
#define H2_MAX_OFFENCES 4
#define H2_NO_COPY (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
/* Answer fields at most: :status, content-length, the call's own,
 * grpc-status and grpc-message. */
#define H2_MAX_FIELDS (4 + CALL_MAX_RESP_HDRS)

/* ---- the engine seam: what the request side asks of either session ---- */

/* RST_STREAM(code) on sid. */
static void h2e_reset(struct conn *c, int32_t sid, uint32_t code)
{
	if (c->h2w)
		h2w_reset(c->h2w, sid, code);
	else
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, sid, code);
}

/* n DATA bytes received on sid given back to its stream's receive window
 * (stream) and to the connection's (conn). */
static void h2e_consume(struct conn *c, int32_t sid, size_t n, bool stream, bool conn)
{
	if (c->h2w) {
		if (stream)
			h2w_consume_stream(c->h2w, sid, n);
		if (conn)
			h2w_consume_conn(c->h2w, n);
	} else if (stream && conn) {
		nghttp2_session_consume(c->h2, sid, n);
	} else if (stream) {
		nghttp2_session_consume_stream(c->h2, sid, n);
	} else if (conn) {
		nghttp2_session_consume_connection(c->h2, n);
	}
}

void h2_terminate(struct conn *c, uint32_t code)
{
	if (c->h2w)
		h2w_goaway(c->h2w, code, true);
	else
		nghttp2_session_terminate_session(c->h2, code);
}

bool h2_want_read(const struct conn *c)
{
	return c->h2w ? h2w_want_read(c->h2w) : nghttp2_session_want_read(c->h2);
}

bool h2_want_write(const struct conn *c)
{
	return c->h2w ? h2w_want_write(c->h2w) : nghttp2_session_want_write(c->h2);
}

/* ---- calls on streams ---- */

/* The call of a stream (nghttp2: the native engine hands it over); the
 * last one attached is remembered, since a request's callbacks (each
 * header, the frame) come in a row and nghttp2's lookup is a hash-map
 * search (~250 instructions a request); so is the one whose last DATA
 * frame went out, closing next (h2_read_body). */
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
	if (c->h2w)
		h2w_set_user(c->h2w, stream_id, call);
	else
		nghttp2_session_set_stream_user_data(c->h2, stream_id, call);
}

/* Only as its stream closes (or the session goes): the engines hand a
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

/* ---- the request side, either engine ---- */

/* A client opened stream_id with a request: its call, or NULL (out of
 * memory: the session ends). */
static struct call *h2_open(struct conn *c, int32_t stream_id)
{
	struct call *call = call_new(c);

	if (!call)
		return NULL;
	h2_attach(c, call, stream_id);
	c->active++;
	return call;
}

/*
 * A header list over limits.max_header_bytes: stop processing the stream
 * now (the engine resets it and decodes the rest of the block without
 * calling us or validating it: references to a large table entry cost
 * nothing more), and end the session after H2_MAX_OFFENCES such streams.
 */
static void h2_header_offence(struct conn *c, struct call *call)
{
	call->hdr_too_large = true;
	if (++c->h2_offences == H2_MAX_OFFENCES) {	/* once: later ones are moot */
		log_info("peer=%s msg=\"closing: %d header lists over limits.max_header_bytes\"",
			 c->peer, c->h2_offences);
		srv_count_close(CLOSE_H2_OFFENCES);
		h2_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM);
	}
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
	h2e_reset(c, call->stream_id, NGHTTP2_PROTOCOL_ERROR);
}

/* A field of nlen + vlen bytes comes in call's header block (not its
 * trailers): false when the list is now over limits.max_header_bytes
 * (h2_header_offence: the caller has the stream reset). */
static bool h2_field_fits(struct conn *c, struct call *call, size_t nlen, size_t vlen)
{
	call->hdr_bytes += nlen + vlen + 32;	/* RFC 7541 entry size */
	if (call->hdr_bytes <= conn_cfg(c)->limits.max_header_bytes)
		return true;
	h2_header_offence(c, call);
	return false;
}

/* A field with verdict d (h2check.h) in call's header block or trailers:
 * keep what the call needs of it. */
static void h2_field_apply(struct conn *c, struct call *call, const struct h2c_verdict *d,
			   const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
			   bool trailer)
{
	size_t n;

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
}

static int32_t h2_stream_window(uint64_t max_body);

/* Room reserved for declared bodies a connection's open streams may hold. */
static uint64_t h2_reserve_budget(const struct config *cfg)
{
	uint64_t w = (uint64_t)h2_stream_window(cfg->limits.max_body_bytes);

	return w > H2_CONN_WINDOW / 2 ? w : H2_CONN_WINDOW / 2;
}

int h2_reserve(struct call *call, uint64_t n)
{
	struct conn *c = call->conn;

	if (n > conn_cfg(c)->limits.max_body_bytes ||
	    c->h2_reserved + n > h2_reserve_budget(conn_cfg(c)))
		return -1;
	c->h2_reserved += n;
	call->body_reserved += n;
	return 0;
}

void h2_unreserve(struct call *call, uint64_t n)
{
	if (n > call->body_reserved)	/* released already: the stream closed */
		n = call->body_reserved;
	call->conn->h2_reserved -= n;
	call->body_reserved -= n;
}

/* call's first DATA (data[0..len)) is in: room for its whole body in one
 * block when its length (content-length, or a unary gRPC message's
 * prefix: gRPC clients send no content-length) is large and its
 * connection's budget allows (h2_reserve). */
static void h2_body_reserve(struct call *call, const uint8_t *data, size_t len)
{
	uint64_t cl;

	if (!h2c_content_length(&call->h2msg, &cl) &&
	    !(call->grpc && (cl = grpc_body_size(data, len))))
		return;
	if (cl <= CALL_RESERVE_MIN || cl <= len || h2_reserve(call, cl))
		return;
	if (evbuffer_expand(call->body, (size_t)cl))
		h2_unreserve(call, cl);
}

/* len bytes of DATA for call (NULL: a stream without one) on stream_id. */
static void h2_data_in(struct conn *c, struct call *call, int32_t stream_id,
		       const uint8_t *data, size_t len)
{
	if (call && !h2c_malformed(&call->h2msg) && !h2c_data(&call->h2msg, len))
		h2_malformed(c, call);	/* past its content-length */
	/* The stream's window reopens at once; the connection's only when the
	 * stream closes and its body is gone: no connection buffers more
	 * request bodies than its 16 MiB connection window. */
	if (!call || call->responded || h2c_malformed(&call->h2msg)) {
		h2e_consume(c, stream_id, len, true, true);
		return;
	}
	/* A gRPC stream: its bytes stay held against both windows until the
	 * gRPC layer has room for more requests (grpc_stream_data). */
	if (call->grpc_stream) {
		call->h2_rx += len;
		grpc_stream_add(call, data, len);
		grpc_stream_data(call);
		return;
	}
	h2e_consume(c, stream_id, len, true, false);
	call->h2_rx += len;
	if (evbuffer_get_length(call->body) + len > conn_cfg(c)->limits.max_body_bytes) {
		call->body_too_large = true;
		/* Answer now; the engine resets the rest of the upload (NO_ERROR). */
		call_respond_error(call, 413, "request body exceeds limits.max_body_bytes (%llu)",
				   (unsigned long long)conn_cfg(c)->limits.max_body_bytes);
		return;
	}
	if (!call->body_reserved && !evbuffer_get_length(call->body))	/* its first DATA */
		h2_body_reserve(call, data, len);
	evbuffer_add(call->body, data, len);
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

/* A HEADERS block (headers; trailer: not the request's first) or a DATA
 * frame of call's stream was received whole; end_stream: it ended the
 * request. */
static void h2_frame_in(struct conn *c, struct call *call, bool headers, bool trailer,
			bool end_stream)
{
	if (!call || h2c_malformed(&call->h2msg))
		return;
	if (!(headers ? h2c_headers_end(&call->h2msg, trailer, end_stream) :
	      !end_stream || h2c_end_stream(&call->h2msg))) {
		h2_malformed(c, call);
		return;
	}
	if (headers) {
		conn_disarm_header_timer(c);	/* a request came in time */
		/* before any answer (413 included), so every one is gRPC-shaped;
		 * the admin listener serves no gRPC */
		call->grpc = !call->admin && grpc_is_request(call);
		/* a stream is served as it arrives: open it now */
		if (!trailer && grpc_is_stream(call)) {
			call->grpc_stream = true;
			h2_dispatch(c, call);
		}
	}
	if (call->grpc_stream) {
		if (end_stream)
			grpc_stream_input_end(call);
		return;
	}
	if (headers && !end_stream) {
		uint64_t cl;	/* h2check read it */

		if (h2c_content_length(&call->h2msg, &cl) && cl > conn_cfg(c)->limits.max_body_bytes)
			call_respond_error(call, 413, "request body exceeds limits.max_body_bytes (%llu)",
					   (unsigned long long)conn_cfg(c)->limits.max_body_bytes);
		return;
	}
	if (end_stream)
		h2_dispatch(c, call);
}

/* call's stream closed (error_code: its RST_STREAM's). */
static void h2_closed(struct conn *c, struct call *call, uint32_t error_code)
{
	h2_detach(c, call);
	if (call->h2_rx)
		h2e_consume(c, call->stream_id, call->h2_rx, false, true);
	c->h2_reserved -= call->body_reserved;
	call->body_reserved = 0;
	if (c->active > 0)
		c->active--;
	if (call->h2_queued) {
		call->h2_queued = false;
		c->h2_blocked--;
	}
	if (call->async && !call->responded) {
		log_debug("stream=%d error=%u msg=\"client reset a stream in flight\"",
			  call->stream_id, error_code);
		api_abandon(call);
		return;
	}
	call_free(call);
}

/*
 * Clients send the same fields in the same order request after request,
 * and HPACK hands an indexed field over as the same bytes each time:
 * h2check's verdict on the field at each position of a header block is
 * kept with what names those bytes (the native engine's field id; for
 * nghttp2 a reference to its name's and value's buffers, so that no
 * other field can take their address), and a field found again at its
 * position is not read again (~60 instructions a field).  Fields up to
 * H2_MEMO_FIELD bytes at the first H2_MEMO positions: at most ~20 KiB
 * held per connection.
 */
#define H2_MEMO 16
#define H2_MEMO_FIELD 1024

struct h2_memo {
	nghttp2_rcbuf *name, *value;	/* nghttp2; NULL: empty */
	nghttp2_vec n, v;		/* their bytes */
	uint32_t id;			/* native: the field's id (hpack.h); 0: empty */
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

/* The memo's slot for position pos of a header block, made on first use;
 * NULL past H2_MEMO or when out of memory. */
static struct h2_memo *h2_memo_slot(struct conn *c, unsigned pos)
{
	if (pos >= H2_MEMO)
		return NULL;
	if (!c->h2_memo && !(c->h2_memo = calloc(H2_MEMO, sizeof(*c->h2_memo))))
		return NULL;
	return &c->h2_memo[pos];
}

/* ---- nghttp2's callbacks ---- */

static int h2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	return h2_open(arg, f->hd.stream_id) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
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

	if (d->kind == H2C_MALFORMED || n->len + v->len > H2_MEMO_FIELD ||
	    !(e = h2_memo_slot(c, pos)))
		return d;
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
	/* nghttp2 resets the stream (and decodes the rest of the block
	 * without us) on a temporal failure */
	if (!trailer && !h2_field_fits(c, call, nv.len, vv.len))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (e) {
		d = &e->d;
	} else {
		h2c_classify(&dv, nv.base, nv.len, vv.base, vv.len);
		d = h2_memo_keep(c, pos, nbuf, vbuf, &nv, &vv, &dv);
	}
	h2_field_apply(c, call, d, nv.base, nv.len, vv.base, vv.len, trailer);
	return 0;
}

static int h2_on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id,
		      const uint8_t *data, size_t len, void *arg)
{
	h2_data_in(arg, h2_call(arg, stream_id), stream_id, data, len);
	return 0;
}

static int h2_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct conn *c = arg;

	/* Upgraded from HTTP/1.1 (stream 1 is the request): the client's
	 * preface and SETTINGS are what header_timeout_ms waits for. */
	if (f->hd.type == NGHTTP2_SETTINGS && nghttp2_session_get_last_proc_stream_id(s) > 0)
		conn_disarm_header_timer(c);
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	h2_frame_in(c, h2_call(c, f->hd.stream_id), f->hd.type == NGHTTP2_HEADERS,
		    f->hd.type == NGHTTP2_HEADERS && f->headers.cat != NGHTTP2_HCAT_REQUEST,
		    f->hd.flags & NGHTTP2_FLAG_END_STREAM);
	return 0;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
			      void *arg)
{
	struct call *call = h2_call(arg, stream_id);

	if (call)
		h2_closed(arg, call, error_code);
	return 0;
}

/* ---- the native engine's callbacks ---- */

static int h2n_on_begin(void *arg, int32_t sid)
{
	return h2_open(arg, sid) ? 0 : -1;
}

/* The memo's verdict on the field with this id at position pos; NULL. */
static const struct h2c_verdict *h2n_memo_find(struct conn *c, unsigned pos, uint32_t id)
{
	if (pos >= H2_MEMO || !c->h2_memo || !id || c->h2_memo[pos].id != id)
		return NULL;
	return &c->h2_memo[pos].d;
}

/* The verdict d on field f kept at pos (an indexed field, not malformed,
 * not too large); d's copy in the memo, or d. */
static const struct h2c_verdict *h2n_memo_keep(struct conn *c, unsigned pos,
					       const struct hpack_field *f,
					       const struct h2c_verdict *d)
{
	struct h2_memo *e;

	if (!f->id || d->kind == H2C_MALFORMED || f->nlen + f->vlen > H2_MEMO_FIELD ||
	    !(e = h2_memo_slot(c, pos)))
		return d;
	e->id = f->id;
	e->d = *d;
	return &e->d;
}

static int h2n_on_field(void *arg, int32_t sid, void *user, const struct hpack_field *f,
			bool trailer)
{
	struct conn *c = arg;
	struct call *call = user;
	struct h2c_verdict dv;
	const struct h2c_verdict *d;
	unsigned pos;

	if (!call || h2c_malformed(&call->h2msg))
		return 0;
	if (!trailer && !h2_field_fits(c, call, f->nlen, f->vlen)) {
		h2w_reset(c->h2w, sid, H2W_INTERNAL_ERROR);	/* as nghttp2 did */
		return 0;
	}
	pos = trailer ? H2_MEMO : call->h2_nfield++;	/* trailers: not kept */
	d = h2n_memo_find(c, pos, f->id);
	if (!d) {
		h2c_classify(&dv, f->name, f->nlen, f->value, f->vlen);
		d = h2n_memo_keep(c, pos, f, &dv);
	}
	h2_field_apply(c, call, d, f->name, f->nlen, f->value, f->vlen, trailer);
	return 0;
}

static int h2n_on_data(void *arg, int32_t sid, void *user, const uint8_t *p, size_t n)
{
	h2_data_in(arg, user, sid, p, n);
	return 0;
}

static int h2n_on_end(void *arg, int32_t sid, void *user, bool headers, bool trailer,
		      bool end_stream)
{
	h2_frame_in(arg, user, headers, trailer, end_stream);
	return 0;
}

static int h2n_on_close(void *arg, int32_t sid, void *user, uint32_t code)
{
	if (user)
		h2_closed(arg, user, code);
	return 0;
}

/* Upgraded from HTTP/1.1 (stream 1 is the request): the client's preface
 * and SETTINGS are what header_timeout_ms waits for. */
static void h2n_on_settings(void *arg)
{
	struct conn *c = arg;

	if (h2w_last_stream(c->h2w) > 0)
		conn_disarm_header_timer(c);
}

static void h2n_on_drained(void *arg, int32_t sid, void *user);

static const struct h2w_callbacks h2n_callbacks = {
	.begin = h2n_on_begin,
	.field = h2n_on_field,
	.data = h2n_on_data,
	.end = h2n_on_end,
	.close = h2n_on_close,
	.drained = h2n_on_drained,
	.settings = h2n_on_settings,
};

/* ---- answers ---- */

/* Field f[n] = name: value (both living until the frame is encoded). */
static void h2_put(struct hpack_field *f, int n, const char *name, size_t nlen,
		   const char *value, size_t vlen)
{
	f[n] = (struct hpack_field){ .name = (const uint8_t *)name, .value = (const uint8_t *)value,
				     .nlen = (uint32_t)nlen, .vlen = (uint32_t)vlen };
}

/* grpc-status and grpc-message at f; how many.  The status's digits are
 * written at the end of call->h2_vals (a gRPC answer has no
 * content-length there), so they live as long as the call. */
static int h2_grpc_fields(struct call *call, struct hpack_field *f)
{
	char *end = call->h2_vals + sizeof(call->h2_vals);
	char *p = util_utoa(end, call->grpc_status < 0 ? 0 : (unsigned)call->grpc_status);
	int n = 0;

	h2_put(f, n++, "grpc-status", 11, p, (size_t)(end - p));
	if (call->grpc_message && call->grpc_message[0])
		h2_put(f, n++, "grpc-message", 12, call->grpc_message, strlen(call->grpc_message));
	return n;
}

/* f[0..n) as nghttp2's name/value pairs (flags: what it need not copy). */
static void h2_to_nv(nghttp2_nv *nva, const struct hpack_field *f, int n, uint8_t flags)
{
	for (int i = 0; i < n; i++)
		nva[i] = (nghttp2_nv){ (uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].nlen,
				       f[i].vlen, flags };
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
		struct hpack_field f[2];
		nghttp2_nv nva[2];
		int nt = h2_grpc_fields(call, f);

		h2_to_nv(nva, f, nt, H2_NO_COPY);
		if (nghttp2_submit_trailer(s, stream_id, nva, nt) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
}

/* The native engine: once call->resp is sent, the stream ends, with the
 * gRPC trailers for gRPC. */
static void h2n_body_end(struct conn *c, struct call *call)
{
	struct hpack_field f[2];
	int nt = call->grpc ? h2_grpc_fields(call, f) : 0;

	h2w_data_end(c->h2w, call->stream_id, f, (size_t)nt);
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
 * Send what the engine holds once the current callback returns
 * (conn_on_write -> h2_send), unless in the read path (which sends after
 * the read): answers produced off the read path (a worker's, delivered
 * with others by the loop's mail) then share a write instead of one
 * writev each.
 */
static void h2_kick(struct conn *c)
{
	if (!c->in_read)
		bufferevent_trigger(c->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* A streaming answer's call->resp was emptied while the answer goes on:
 * the gRPC stream may take more requests (its output bound), answers
 * that adds are sent by the send loop this runs in. */
static void h2_stream_drained(struct conn *c, struct call *call)
{
	bool in_read = c->in_read;

	c->in_read = true;	/* no nested h2_send */
	grpc_stream_data(call);
	c->in_read = in_read;
}

/*
 * A streaming answer's body: what call->resp holds, deferred while it is
 * empty and the answer goes on (h2_stream_write resumes it); once answered
 * (call->responded) the rest, then the gRPC trailers.
 */
static ssize_t h2_read_stream(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
			      uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct call *call = src->ptr;
	int n = 0;

	if (evbuffer_get_length(call->resp)) {
		n = evbuffer_remove(call->resp, buf, len);
		if (n < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (!evbuffer_get_length(call->resp) && !call->responded)
			h2_stream_drained(arg, call);
	}
	if (evbuffer_get_length(call->resp))
		return n;
	if (!call->responded)
		return n ? n : NGHTTP2_ERR_DEFERRED;
	h2_body_end(s, stream_id, call, flags);
	return n;
}

/* The native engine drained a streaming answer's call->resp (its end not
 * set yet: h2_respond sets it). */
static void h2n_on_drained(void *arg, int32_t sid, void *user)
{
	struct call *call = user;

	if (!call || call->responded)
		return;
	h2_stream_drained(arg, call);
	if (evbuffer_get_length(call->resp))
		h2w_resume(((struct conn *)arg)->h2w, sid);
}

/* Submit answer headers f[0..n) on call's stream, a body from call->resp
 * when body (read by nghttp2 with read, or sent by the native engine);
 * ends: the native engine ends the stream after the body (h2n_body_end).
 * 0 or -1. */
static int h2_submit(struct conn *c, struct call *call, const struct hpack_field *f, int n,
		     bool body, nghttp2_data_source_read_callback read, bool ends)
{
	if (c->h2w) {
		if (h2w_submit_headers(c->h2w, call->stream_id, f, (size_t)n, !body))
			return -1;
		if (!body)
			return 0;
		if (h2w_submit_data(c->h2w, call->stream_id, call->resp))
			return -1;
		if (ends)
			h2n_body_end(c, call);
		return 0;
	} else {
		nghttp2_data_provider prd = { .source.ptr = call, .read_callback = read };
		nghttp2_nv nva[H2_MAX_FIELDS];

		h2_to_nv(nva, f, n, H2_NO_COPY);
		return nghttp2_submit_response(c->h2, call->stream_id, nva, (size_t)n,
					       body ? &prd : NULL) ? -1 : 0;
	}
}

/* The rest of a streaming answer may go (more in call->resp, or its end). */
static void h2_resume(struct conn *c, struct call *call)
{
	if (c->h2w)
		h2w_resume(c->h2w, call->stream_id);
	else	/* an error when it is not deferred: it reads call->resp anyway */
		nghttp2_session_resume_data(c->h2, call->stream_id);
}

void h2_stream_write(struct call *call)
{
	struct conn *c = call->conn;
	struct hpack_field f[3];

	if (!h2_on(c))
		return;
	if (!call->h2_streaming) {
		h2_put(f, 0, ":status", 7, "200", 3);
		h2_put(f, 1, "content-type", 12, "application/grpc", 16);
		h2_put(f, 2, "grpc-accept-encoding", 20, "identity,gzip", 13);
		if (h2_submit(c, call, f, 3, true, h2_read_stream, false)) {
			log_warn("stream=%d msg=\"cannot submit a streaming response\"",
				 call->stream_id);
			return;
		}
		call->h2_streaming = true;
	} else {
		h2_resume(c, call);
	}
	h2_kick(c);
}

void h2_stream_consume(struct call *call)
{
	struct conn *c = call->conn;

	if (!h2_on(c) || !call->h2_rx)
		return;
	h2e_consume(c, call->stream_id, call->h2_rx, true, true);
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
 * call's answer: its HEADERS, then its body.  Every name and value but
 * grpc-status's lives until the HEADERS frame is sent (string constants,
 * call's own strings and call->h2_vals: the call is freed at the stream's
 * close, after that), so nghttp2 copies none; the native engine encodes
 * them at once.
 */
void h2_respond(struct call *call)
{
	struct conn *c = call->conn;
	struct hpack_field f[H2_MAX_FIELDS];
	char *status = call->h2_vals;
	size_t len = evbuffer_get_length(call->resp);
	bool body = len && memcmp(call->method, "HEAD", 5) != 0;	/* method[16] */
	int n = 0;

	/* A streaming answer: its headers went out; the rest, then trailers. */
	if (call->h2_streaming) {
		call->h2_queued = true;
		c->h2_blocked++;
		if (c->h2w)
			h2n_body_end(c, call);
		h2_resume(c, call);
		h2_kick(c);
		return;
	}
	/* gRPC answers 200 whatever went wrong: the code is grpc-status.
	 * A status has three digits (h2_vals: its first 4 bytes; the length is
	 * written backwards from its end, 20 digits at most). */
	h2_put(f, n++, ":status", 7, status, h2_status(status, call->grpc ? 200 : call->status));
	if (!call->grpc) {
		char *end = call->h2_vals + sizeof(call->h2_vals), *clen = util_utoa(end, len);

		h2_put(f, n++, "content-length", 14, clen, (size_t)(end - clen));
	}
	for (int i = 0; i < call->n_resp_hdrs; i++)
		h2_put(f, n++, call->resp_hdrs[i].name, strlen(call->resp_hdrs[i].name),
		       call->resp_hdrs[i].value, strlen(call->resp_hdrs[i].value));
	/* gRPC without a message: trailers-only, the status in the headers. */
	if (call->grpc && !body)
		n += h2_grpc_fields(call, f + n);
	/* HEAD: the headers (content-length included) but never a body. */
	if (h2_submit(c, call, f, n, body, h2_read_body, true)) {
		log_warn("stream=%d msg=\"cannot submit response\"", call->stream_id);
		return;
	}
	call->h2_queued = true;	/* until its stream closes: all of it was sent */
	c->h2_blocked++;
	h2_kick(c);	/* sending later batches frames of many streams */
}

/* Space reserved in the output at a time: many small frames per add. */
#define H2_GATHER 16384

/* nghttp2's frames into out, up to cap bytes queued there: 0, -1. */
static int h2_send_nghttp2(struct conn *c, struct evbuffer *out, uint64_t cap)
{
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
	return rc;
}

int h2_send(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint64_t cap = conn_cfg(c)->limits.output_buffer_bytes;
	int rc = 0;

	/* Above the output cap the engine keeps what it has (its flood
	 * guards then see a client that does not read); the write callback
	 * comes back here once the socket takes the rest. */
	if (c->h2w) {
		ssize_t n = h2w_send(c->h2w, out, cap);

		if (n < 0) {
			log_debug("peer=%s msg=\"h2 send failed: out of memory\"", c->peer);
			rc = -1;
		} else {
			c->out_progress += (uint64_t)n;
		}
	} else {
		rc = h2_send_nghttp2(c, out, cap);
	}
	if (rc)
		return rc;
	conn_flush(c);
	conn_watch_stall(c);
	conn_maybe_close(c);
	return 0;
}

/*
 * The engine gave up on the session (bad preface, flood, protocol error):
 * tell the client why with GOAWAY before closing, as RFC 9113 §5.4.1 asks
 * (the native engine queued it already; nghttp2's code is from rv).
 */
static void h2_fatal(struct conn *c, int rv, const char *why)
{
	log_debug("peer=%s err=\"%s\" msg=\"h2 protocol error\"", c->peer, why);
	srv_count_close(CLOSE_PROTOCOL_ERROR);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	conn_set_reading(c, false);
	c->close_after_write = true;
	if (!c->h2w) {
		uint32_t code = rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM :
				rv == NGHTTP2_ERR_NOMEM || rv == NGHTTP2_ERR_CALLBACK_FAILURE ?
				NGHTTP2_INTERNAL_ERROR : NGHTTP2_PROTOCOL_ERROR;

		if (nghttp2_session_terminate_session(c->h2, code) != 0) {
			conn_close(c);
			return;
		}
	}
	if (h2_send(c) != 0)
		conn_close(c);
}

/*
 * p[0..n) to the engine: the bytes it took, or -1 when the session failed
 * (h2_fatal: c may be gone).  in_read doubles as "inside the read path"
 * so responses made while parsing are sent once, by h2_on_read, instead
 * of once per stream.
 */
static ssize_t h2_recv(struct conn *c, const uint8_t *p, size_t n)
{
	ssize_t used;

	c->in_read = true;
	used = c->h2w ? h2w_recv(c->h2w, p, n) : nghttp2_session_mem_recv(c->h2, p, n);
	c->in_read = false;
	if (used < 0) {
		h2_fatal(c, (int)used, c->h2w ? h2w_strerror(c->h2w) : nghttp2_strerror((int)used));
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
	conn_answers_now(c);	/* inline batches' answers in this send */
	h2_send(c);
}

void h2_header_timeout(struct conn *c)
{
	c->close_after_write = true;
	h2_terminate(c, NGHTTP2_NO_ERROR);
	h2_send(c);	/* may close c */
}

void h2_goaway(struct conn *c)
{
	if (c->h2w)
		h2w_goaway(c->h2w, H2W_NO_ERROR, false);
	else
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(c->h2),
				      NGHTTP2_NO_ERROR, NULL, 0);
	h2_send(c);
}

/* Detach every call still attached to a stream, then free the session. */
void h2_free(struct conn *c)
{
	nghttp2_session *s = c->h2;
	struct h2w *w = c->h2w;

	c->h2 = NULL;		/* what the calls' owners see from here on */
	c->h2w = NULL;
	while (c->h2_calls) {
		struct call *call = c->h2_calls;

		h2_detach(c, call);
		if (call->async && !call->responded)
			api_abandon(call);
		else
			call_free(call);
	}
	h2_memo_free(c);
	if (w)
		h2w_free(w);
	else
		nghttp2_session_del(s);
}

/* A stream's receive window: a whole message of max_body_bytes (plus
 * framing), at least H2_WINDOW, at most H2_WINDOW_MAX. */
static int32_t h2_stream_window(uint64_t max_body)
{
	uint64_t w = max_body + 16384;

	return (int32_t)(w < H2_WINDOW ? H2_WINDOW : w > H2_WINDOW_MAX ? H2_WINDOW_MAX : w);
}

/* The native engine's session for c, as limits say: 0 or -1. */
static int h2n_start(struct conn *c)
{
	const struct config *cfg = conn_cfg(c);
	int32_t win = h2_stream_window(cfg->limits.max_body_bytes);
	struct h2w_config wc = {
		.max_concurrent_streams = cfg->limits.max_concurrent_streams,
		.stream_window = (uint32_t)win,
		.conn_window = 2 * win > H2_CONN_WINDOW ? 2 * (uint32_t)win : H2_CONN_WINDOW,
		.max_header_list = cfg->limits.max_header_bytes,
		/* what nghttp2 allowed: its 64 KiB of HPACK buffer, or more */
		.max_header_block = cfg->limits.max_header_bytes > 65536 ?
				    cfg->limits.max_header_bytes : 65536,
	};

	c->h2w = h2w_new(&h2n_callbacks, c, &wc);
	if (!c->h2w)
		return -1;
	srv_count_h2_session(false);
	return 0;
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

	if (!cfg->listen.http2_nghttp2)
		return h2n_start(c);
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
	srv_count_h2_session(true);
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
	bool head;
	int rc = -1;

	if (n < 0 || !h2_settings_ok(raw, (size_t)n) || h2_start(c))
		goto out_free_raw;
	head = strcmp(call->method, "HEAD") == 0;
	if (c->h2w ? h2w_upgrade(c->h2w, raw, (size_t)n, head) != 0 :
	    nghttp2_session_upgrade2(c->h2, raw, (size_t)n, head, NULL) != 0) {
		if (c->h2w)
			h2w_free(c->h2w);
		else
			nghttp2_session_del(c->h2);
		c->h2 = NULL;
		c->h2w = NULL;
		goto out_free_raw;
	}
	/* The engines keep no user data for a server's stream 1: set it here.
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
