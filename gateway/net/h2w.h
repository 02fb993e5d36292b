/*
 * h2w.h - the gateway's own HTTP/2 server framing (RFC 9113), HPACK by
 * hpack.h: the "native" engine (server.h2_engine), in place of nghttp2's
 * session for h2c and TLS h2 connections.
 *
 * One struct h2w per connection.  Bytes the client sent go in with
 * h2w_recv; the engine parses frames, keeps every stream's state and both
 * directions' flow-control windows, answers SETTINGS and PING, and calls
 * the gateway back (struct h2w_callbacks) for what a server acts on: a
 * request's header fields, its DATA, the end of each HEADERS block and
 * DATA frame, a stream's close.  Answers go in with h2w_submit_headers /
 * h2w_submit_data / h2w_data_end; h2w_send writes every frame that may go
 * now into an evbuffer (the connection's output).
 *
 * Each stream has a user pointer (h2w_set_user), handed to its callbacks.
 *
 * Errors follow RFC 9113 §5.4: a connection error queues GOAWAY with its
 * code and makes h2w_recv return H2W_ERR_FATAL (the caller then sends and
 * closes: h2w_want_write stays true until the GOAWAY is written, then
 * h2w_want_read and h2w_want_write are false); a stream error queues
 * RST_STREAM and closes the stream (its close callback comes from the
 * h2w_send that writes the RST_STREAM).
 *
 * Guards against hostile peers (h2w_strerror names the one that ended a
 * session): at most H2W_MAX_QUEUED_CONTROL control frames
 * (SETTINGS/PING ACKs, RST_STREAM) waiting to be written (the peer does
 * not read: ENHANCE_YOUR_CALM); a header block (HEADERS + CONTINUATION)
 * of at most max_header_block bytes and 8 CONTINUATIONs (then
 * ENHANCE_YOUR_CALM; CVE-2024-28182);
 * streams the peer resets, SETTINGS and PINGs, empty DATA frames
 * without END_STREAM limited by a token bucket (CVE-2023-44487,
 * CVE-2019-9512/9515/9518: ENHANCE_YOUR_CALM).
 *
 * Callbacks are made only from inside h2w_recv (request events, closes the
 * peer caused) and h2w_send (closes once a stream's last frame or its
 * RST_STREAM is written).  Inside a callback the gateway may call
 * h2w_submit_*, h2w_reset, h2w_consume_*, h2w_set_user and h2w_goaway;
 * never h2w_recv, h2w_send or h2w_free.
 *
 * Single-threaded: a connection's loop thread only.
 */
#ifndef INFERGW_H2W_H
#define INFERGW_H2W_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hpack.h"

struct evbuffer;
struct h2w;

/* RFC 9113 §7 error codes */
enum h2w_error {
	H2W_NO_ERROR = 0x0,
	H2W_PROTOCOL_ERROR = 0x1,
	H2W_INTERNAL_ERROR = 0x2,
	H2W_FLOW_CONTROL_ERROR = 0x3,
	H2W_SETTINGS_TIMEOUT = 0x4,
	H2W_STREAM_CLOSED = 0x5,
	H2W_FRAME_SIZE_ERROR = 0x6,
	H2W_REFUSED_STREAM = 0x7,
	H2W_CANCEL = 0x8,
	H2W_COMPRESSION_ERROR = 0x9,
	H2W_CONNECT_ERROR = 0xa,
	H2W_ENHANCE_YOUR_CALM = 0xb,
	H2W_INADEQUATE_SECURITY = 0xc,
	H2W_HTTP_1_1_REQUIRED = 0xd,
};

#define H2W_ERR_FATAL (-1)		/* h2w_recv: connection error, GOAWAY queued */
#define H2W_ERR_NOMEM (-2)		/* the same, out of memory (INTERNAL_ERROR) */
#define H2W_MAX_QUEUED_CONTROL 1000

/* What the gateway is told.  arg is h2w_new's; user is the stream's user
 * pointer (NULL until h2w_set_user).  A callback returning < 0 is a
 * connection error (INTERNAL_ERROR): h2w_recv returns H2W_ERR_FATAL. */
struct h2w_callbacks {
	/* A client opened stream sid with a request's HEADERS. */
	int (*begin)(void *arg, int32_t sid);
	/* One field of that request's header block (trailer false), or of
	 * its trailers (true), in order.  Not called once the stream was
	 * reset (h2w_reset, even from an earlier field's callback). */
	int (*field)(void *arg, int32_t sid, void *user, const struct hpack_field *f,
		     bool trailer);
	/* n bytes of DATA payload (padding removed) for sid.  They count
	 * against the stream's and the connection's receive windows until
	 * given back (h2w_consume_*).  A frame cut by the end of an h2w_recv
	 * call comes in several calls, as its bytes arrive; end follows its
	 * last. */
	int (*data)(void *arg, int32_t sid, void *user, const uint8_t *p, size_t n);
	/* A HEADERS block (with its CONTINUATIONs) was received whole
	 * (headers true; trailer: not the request's first block), or a DATA
	 * frame was (headers false).  end_stream: it carried END_STREAM. */
	int (*end)(void *arg, int32_t sid, void *user, bool headers, bool trailer,
		   bool end_stream);
	/* sid closed (both ends done, or reset by either side; code: the
	 * RST_STREAM's, else H2W_NO_ERROR).  The engine forgets sid and its
	 * user pointer after this.  Not called by h2w_free. */
	int (*close)(void *arg, int32_t sid, void *user, uint32_t code);
	/* A streaming answer's source (h2w_submit_data) was drained while
	 * its end is not set (h2w_data_end): the gateway may add to it (then
	 * h2w_resume) or end it.  May be NULL. */
	void (*drained)(void *arg, int32_t sid, void *user);
	/* The client's SETTINGS (not an ACK) was received.  May be NULL. */
	void (*settings)(void *arg);
};

/* What we announce in our SETTINGS, and our limits. */
struct h2w_config {
	uint32_t max_concurrent_streams;	/* more open: REFUSED_STREAM */
	uint32_t stream_window;		/* SETTINGS_INITIAL_WINDOW_SIZE we announce */
	uint32_t conn_window;		/* the connection's receive window */
	uint32_t max_header_list;	/* SETTINGS_MAX_HEADER_LIST_SIZE (advisory) */
	uint32_t max_header_block;	/* bytes of HEADERS + CONTINUATIONs at most */
};

/* h2w_new - a server session: its SETTINGS (and the connection window's
 * WINDOW_UPDATE) queued; the client's preface expected first.  NULL when
 * out of memory. */
struct h2w *h2w_new(const struct h2w_callbacks *cb, void *arg, const struct h2w_config *cfg);
/* h2w_free - the session and every stream's state; no callbacks. */
void h2w_free(struct h2w *s);

/*
 * h2w_upgrade - an HTTP/1.1 request upgraded (Upgrade: h2c): settings[0..n)
 * is its decoded HTTP2-Settings payload, taken as the client's SETTINGS;
 * stream 1 is open, half-closed (remote), for the request's answer (head:
 * it was a HEAD request).  The client's preface is still expected.  0, or
 * -1 when the payload is not valid SETTINGS.
 */
int h2w_upgrade(struct h2w *s, const uint8_t *settings, size_t n, bool head);

/* h2w_recv - the client's bytes p[0..n): how many were taken (all of them
 * unless the session is ending: then what is left is ignored), or
 * H2W_ERR_FATAL / H2W_ERR_NOMEM (GOAWAY queued).  A partial frame at the
 * end is kept by the engine (bounded by the frame size limit). */
ssize_t h2w_recv(struct h2w *s, const uint8_t *p, size_t n);

/*
 * h2w_send - append to out every frame that may go now: control frames,
 * answers' HEADERS, DATA as far as the peer's windows allow (DATA chunks
 * of at most its SETTINGS_MAX_FRAME_SIZE), trailers; stops once out holds
 * more than cap bytes.  Close callbacks for streams whose last frame was
 * written come from here.  Returns the bytes appended, or -1 when out of
 * memory.
 */
ssize_t h2w_send(struct h2w *s, struct evbuffer *out, size_t cap);

/*
 * h2w_submit_headers - an answer's HEADERS on sid (f[0..n), ":status"
 * first), END_STREAM when end_stream (no body).  The array f is copied
 * now; the names' and values' bytes are read when h2w_send writes the
 * block (HPACK-encoded then, with the connection's dynamic table): they
 * must stay as they are until then or until the stream closes, whichever
 * comes first (what nghttp2's NO_COPY fields ask too).  0, or -1 (sid not
 * open for an answer, more than 64 fields, or out of memory).
 */
int h2w_submit_headers(struct h2w *s, int32_t sid, const struct hpack_field *f, size_t n,
		       bool end_stream);
/* h2w_submit_data - the answer's body comes from src (the gateway's
 * evbuffer, which must live until the stream closes): sent as windows
 * allow, bytes removed from src as they go. */
int h2w_submit_data(struct h2w *s, int32_t sid, struct evbuffer *src);
/* h2w_data_end - once src is drained the stream ends: with trailers
 * f[0..n) (encoded now) in a HEADERS frame with END_STREAM, or, n == 0,
 * END_STREAM on the last DATA frame (an empty one if need be). */
int h2w_data_end(struct h2w *s, int32_t sid, const struct hpack_field *f, size_t n);
/* h2w_resume - src has more bytes (a streaming answer). */
void h2w_resume(struct h2w *s, int32_t sid);

/* h2w_reset - RST_STREAM(code) on sid; no more callbacks for it but its
 * close (from h2w_send). */
void h2w_reset(struct h2w *s, int32_t sid, uint32_t code);
/* h2w_consume_stream, h2w_consume_conn - give n received DATA bytes back
 * to sid's / the connection's receive window (WINDOW_UPDATE once what was
 * given back reaches half the window). */
void h2w_consume_stream(struct h2w *s, int32_t sid, size_t n);
void h2w_consume_conn(struct h2w *s, size_t n);

/*
 * h2w_goaway - GOAWAY(code) naming the last stream we processed.  terminate:
 * the session ends once it is written (every stream dropped, no close
 * callbacks: h2w_free's owner cleans up); else (graceful, NO_ERROR) streams
 * open now are served to their end, new ones are refused, and the session
 * ends when none is left.
 */
void h2w_goaway(struct h2w *s, uint32_t code, bool terminate);

void h2w_set_user(struct h2w *s, int32_t sid, void *user);
void *h2w_get_user(struct h2w *s, int32_t sid);
/* The highest stream id the client opened (GOAWAY's last stream id). */
int32_t h2w_last_stream(const struct h2w *s);
/* The session still reads / has something to write. */
bool h2w_want_read(const struct h2w *s);
bool h2w_want_write(const struct h2w *s);
/* Why the last H2W_ERR_FATAL: a short text for the log (static). */
const char *h2w_strerror(const struct h2w *s);

#endif
