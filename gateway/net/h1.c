/*
 * h1.c - HTTP/1.1 on a connection that did not start with the HTTP/2 preface.
 *
 * Why our own parser rather than libevent's evhttp: the protocol is decided
 * by sniffing the first bytes of a bufferevent we already own, and evhttp
 * can only serve connections it accepted itself (there is no public call
 * to hand it a live bufferevent); evhttp also buffers bodies in its own
 * structures, while we want the request body in the same evbuffer the
 * HTTP/2 path fills, so one API layer serves both.  The parser is small
 * because the grammar we accept is: request line, header lines, and a
 * Content-Length or chunked body (RFC 9112 §7.1; other codings get 501).
 * Requests on one connection are served one at a time, in order, which is
 * what pipelining requires.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "config.h"
#include "h1parse.h"
#include "server.h"
#include "util.h"

/* Body bytes read straight into that room while at least this many lack. */
#define H1_DIRECT_MIN (16 << 10)

/* Reply before a request was fully read, then close (framing is lost). */
static void h1_fail(struct conn *c, struct call *call, int status, const char *msg)
{
	c->h1_keepalive = false;
	c->close_after_write = true;
	c->h1_busy = true;
	conn_set_reading(c, false);
	if (!call->method[0])
		strcpy(call->method, "?");
	call_respond_error(call, status, "%s", msg);
}

struct h1_head {
	struct call *call;
	struct h1p_framing fr;
	/* The first value of each (as call_header would find it) and how
	 * many HTTP2-Settings fields, noted as the head is parsed: three
	 * call_header searches less a request (~220 instructions). */
	const char *connection, *upgrade, *expect;
	int h2_settings;
};

/* Whether the field name is lname (lower case, n = strlen(lname)) in any
 * case: reads name.p[0..n) only when name is n bytes long. */
static bool h1_name_is(struct h1p_span name, const char *lname, size_t n)
{
	return name.n == n && util_prefix_ci(name.p, lname);
}

/* h1_name_is with lit's length from the literal itself. */
#define H1_NAME_IS(name, lit) h1_name_is(name, lit, sizeof(lit) - 1)

/* The fields h1_apply_head and h1_wants_h2c look at; value is the copy
 * the call keeps. */
static void h1_note(struct h1_head *h, struct h1p_span name, const char *value)
{
	if (H1_NAME_IS(name, "connection")) {
		if (!h->connection)
			h->connection = value;
	} else if (H1_NAME_IS(name, "upgrade")) {
		if (!h->upgrade)
			h->upgrade = value;
	} else if (H1_NAME_IS(name, "expect")) {
		if (!h->expect)
			h->expect = value;
	} else if (H1_NAME_IS(name, "http2-settings")) {
		h->h2_settings++;
	}
}

static int h1_on_header(void *arg, struct h1p_span name, struct h1p_span value)
{
	struct h1_head *h = arg;
	struct call *call = h->call;

	h1p_framing_add(&h->fr, name, value);
	if (!call_add_header(call, name.p, name.n, value.p, value.n))
		return 503;
	h1_note(h, name, call->hdrs[call->n_hdrs - 1].value);
	return 0;
}

/* Is tok one of the comma-separated elements of list (case-insensitive)? */
static bool h1_has_token(const char *list, const char *tok)
{
	size_t n = strlen(tok);

	for (const char *p = list; *p;) {
		const char *e;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p + strcspn(p, ",");
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - p) == n && !strncasecmp(p, tok, n))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/*
 * RFC 7540 §3.2: an HTTP/1.1 request on a cleartext connection (on TLS,
 * ALPN decides) with "Upgrade: h2c" listed as a connection option and
 * exactly one HTTP2-Settings field (§3.2.1).
 */
static bool h1_wants_h2c(const struct conn *c, const struct h1_head *h, int minor)
{
	return !c->tls && minor == 1 && h->upgrade && h->connection &&
	       h1_has_token(h->upgrade, "h2c") && h1_has_token(h->connection, "upgrade") &&
	       h->h2_settings == 1;
}

/* Method, path, keep-alive and body framing from a parsed head.  0 or a status. */
static int h1_apply_head(struct conn *c, struct call *call, const struct h1p_reqline *rl,
			 struct h1_head *h, const char **why)
{
	const struct config *cfg = conn_cfg(c);
	const char *conn = h->connection, *expect = h->expect;
	int st;

	c->h1_upgrade = false;
	if (rl->method.n >= sizeof(call->method)) {
		*why = "request method too long";
		return 501;
	}
	memcpy(call->method, rl->method.p, rl->method.n);
	call->method[rl->method.n] = 0;
	call->path = call_strndup(call, rl->path.p, rl->path.n);
	if (!call->path) {
		*why = "gateway out of memory";
		return 503;
	}
	c->h1_keepalive = rl->minor == 1;
	c->h1_10 = rl->minor == 0;
	if (conn && strcasestr(conn, "close"))
		c->h1_keepalive = false;
	else if (conn && strcasestr(conn, "keep-alive"))
		c->h1_keepalive = true;
	st = h1p_framing_end(&h->fr);
	if (st) {
		*why = h->fr.why;
		return st;
	}
	if (h->fr.length > cfg->limits.max_body_bytes) {
		*why = "request body exceeds limits.max_body_bytes";
		return 413;
	}
	c->h1_chunked = h->fr.chunked;
	c->h1_body_left = h->fr.chunked ? 0 : h->fr.length;
	/* a large body gets one block: the parser reads it where it landed
	 * (h1_body_in), no copy to gather it.  At most max_body_bytes, what
	 * the connection would hold once it came anyway. */
	if (c->h1_body_left > CALL_RESERVE_MIN && !evbuffer_expand(call->body, c->h1_body_left))
		call->body_reserved = c->h1_body_left;
	if (c->h1_chunked)
		h1p_chunked_init(&c->h1_ck, cfg->limits.max_body_bytes, cfg->limits.max_header_bytes);
	if (expect && !strcasecmp(expect, "100-continue") && (c->h1_chunked || c->h1_body_left))
		bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->h1_upgrade = h1_wants_h2c(c, h, rl->minor);
	return 0;
}

static void h1_on_chunk_data(void *arg, const char *p, size_t n)
{
	evbuffer_add(arg, p, n);
}

/*
 * Decode as much of a chunked body as has arrived into the call's body.
 * 1 = complete, 0 = need more, -1 = failed (answered, connection closing).
 */
static int h1_read_chunked(struct conn *c, struct evbuffer *in)
{
	struct call *call = c->h1_call;

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = h1p_chunked_feed(&c->h1_ck, v.iov_base, v.iov_len, &used, h1_on_chunk_data,
				      call->body);
		evbuffer_drain(in, used);
		if (rc == 1)
			return 1;
		if (rc > 1) {
			h1_fail(c, call, rc, c->h1_ck.why);
			return -1;
		}
	}
	return 0;
}

void h1_header_timeout(struct conn *c)
{
	struct call *call;

	if (c->h1_call || c->h1_busy || evbuffer_get_length(c->in) == 0) {
		conn_close(c);	/* nothing of a head arrived: nobody to answer */
		return;
	}
	c->h1_call = call = call_new(c);
	if (!call) {
		conn_close(c);
		return;
	}
	h1_fail(c, call, 408, "request head not complete within limits.header_timeout_ms");
	conn_flush(c);
}

/*
 * The call for the complete head at head[0..len) (its blank line
 * included): parsed and applied.  1 = ready for its body; 0 = answered
 * with an error, or out of memory (closing).
 */
static int h1_start_call(struct conn *c, const char *head, size_t len)
{
	struct h1p_reqline rl;
	struct h1_head h = { 0 };
	const char *why = NULL;
	int st;

	conn_disarm_header_timer(c);
	c->h1_call = h.call = call_new(c);
	if (!h.call) {
		conn_close_soon(c);
		return 0;
	}
	st = h1p_parse_head(head, len, &rl, h1_on_header, &h, &why);
	if (st == 503)
		why = "gateway out of memory";
	if (!st)
		st = h1_apply_head(c, h.call, &rl, &h, &why);	/* rl points into head */
	if (st) {
		h1_fail(c, h.call, st, why);
		return 0;
	}
	return 1;
}

/* Read a head if one is complete.  1 = call ready for its body, 0 = wait. */
static int h1_read_head(struct conn *c, struct evbuffer *in)
{
	const struct config *cfg = conn_cfg(c);
	struct evbuffer_ptr pos;
	size_t head_len;
	int st;

	if (evbuffer_get_length(in) == 0)
		return 0;
	pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (pos.pos < 0 || (size_t)pos.pos + 4 > cfg->limits.max_header_bytes) {
		/* The clock runs from a head's first byte; a head that came
		 * whole in one read never needs it (no timer add and delete). */
		conn_arm_header_timer(c);
		if (pos.pos < 0 && evbuffer_get_length(in) <= cfg->limits.max_header_bytes)
			return 0;
		c->h1_call = call_new(c);
		if (c->h1_call)
			h1_fail(c, c->h1_call, 431, "request header exceeds limits.max_header_bytes");
		else
			conn_close_soon(c);
		return 0;
	}
	head_len = pos.pos + 4;
	st = h1_start_call(c, (const char *)evbuffer_pullup(in, head_len), head_len);
	evbuffer_drain(in, head_len);
	return st;
}

/*
 * The request that asked for h2c is complete: 101, then HTTP/2 with it as
 * stream 1 (answered there, as is everything after).  false: the
 * HTTP2-Settings were not usable; serve it as HTTP/1.1 (RFC 7540 §3.2
 * lets a server ignore the upgrade).
 */
static bool h1_switch_to_h2(struct conn *c)
{
	static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
				 "Upgrade: h2c\r\n\r\n";
	struct call *call = c->h1_call;

	c->h1_upgrade = false;
	if (h2_upgrade(c, call, call_header(call, "http2-settings")))
		return false;
	bufferevent_write(c->bev, sw, sizeof(sw) - 1);
	c->h1_call = NULL;
	c->h1_busy = false;
	c->h1_keepalive = false;
	conn_arm_header_timer(c);	/* until the client's preface and SETTINGS */
	api_handle(call);		/* answered on stream 1 */
	return true;
}

/* The output is over limits.output_buffer_bytes: stop reading until it drains. */
static bool h1_output_full(struct conn *c)
{
	if (!conn_output_full(c))
		return false;
	conn_pause_reading(c);
	return true;
}

/* The request is in: hand it to the API, or switch to HTTP/2 when it asked
 * to (true: c speaks h2 now). */
static bool h1_serve(struct conn *c)
{
	c->h1_busy = true;
	c->active++;
	if (c->h1_upgrade && h1_switch_to_h2(c))
		return true;
	api_handle(c->h1_call);
	return false;
}

/* n bytes of the call's body from in: copied into the room reserved for
 * it (h1_start_call), else its chains moved over. */
static void h1_body_in(struct call *call, struct evbuffer *in, size_t n)
{
	struct evbuffer_iovec v;

	if (call->body_reserved && evbuffer_reserve_space(call->body, n, &v, 1) == 1 &&
	    evbuffer_remove(in, v.iov_base, n) == (int)n) {
		v.iov_len = n;
		evbuffer_commit_space(call->body, &v, 1);
		return;
	}
	evbuffer_remove_buffer(in, call->body, n);
}

bool h1_body_room(struct conn *c, struct evbuffer_iovec *v)
{
	struct call *call = c->h1_call;

	if (!call || !call->body_reserved || c->h1_busy || c->h1_chunked || c->h1_upgrade ||
	    c->h1_body_left < H1_DIRECT_MIN || c->in_read || c->closing || c->sl->draining ||
	    evbuffer_get_length(c->in) ||
	    evbuffer_reserve_space(call->body, c->h1_body_left, v, 1) != 1)
		return false;
	if (v->iov_len > c->h1_body_left)
		v->iov_len = c->h1_body_left;
	return true;
}

void h1_body_landed(struct conn *c, struct evbuffer_iovec *v, size_t n)
{
	v->iov_len = n;
	evbuffer_commit_space(c->h1_call->body, v, 1);
	c->h1_body_left -= n;
	if (c->h1_body_left)
		return;
	c->in_read = true;
	h1_serve(c);	/* (no upgrade: never switches) */
	c->in_read = false;
	h1_on_read(c);	/* flushes; parses what may follow */
}

void h1_on_read(struct conn *c)
{
	struct evbuffer *in = c->in;

	if (c->in_read)
		return;		/* h1_respond inside api_handle: the loop below goes on */
	c->in_read = true;
	while (!c->h1_busy && !c->closing && !h1_output_full(c)) {
		if (!c->h1_call && h1_read_head(c, in) <= 0)
			break;
		if (c->h1_chunked) {
			if (h1_read_chunked(c, in) <= 0)
				break;
			c->h1_chunked = false;
		} else if (c->h1_body_left) {
			size_t n = evbuffer_get_length(in);

			if (n > c->h1_body_left)
				n = c->h1_body_left;
			h1_body_in(c->h1_call, in, n);
			c->h1_body_left -= n;
			if (c->h1_body_left)
				break;
		}
		if (h1_serve(c)) {
			c->in_read = false;
			h2_on_read(c);	/* the preface, if it came; sends; may close c */
			return;
		}
	}
	c->in_read = false;
	conn_input_check(c);	/* read again once parsed below the cap */
	conn_flush(c);
}

/* h1_serve for a request taken from a read (never an upgrade: those stop
 * the take); last: it took the read's last byte, so its answer, when made
 * now, goes out at once (h1_respond) with nothing behind it to wait for. */
static void h1_serve_taken(struct conn *c, bool last)
{
	c->h1_last = last;
	h1_serve(c);
	c->h1_last = false;
}

size_t h1_take(struct conn *c, const char *p, size_t n)
{
	size_t max = conn_cfg(c)->limits.max_header_bytes, used = 0;

	/* Draining: h1_respond reads the socket (conn_read_pending) into the
	 * loop's buffer, which p may be. */
	if (c->in_read || c->sl->draining)
		return 0;
	c->in_read = true;
	while (used < n && !c->h1_busy && !c->closing && !conn_output_full(c)) {
		const char *e;
		size_t len;

		if (c->h1_call) {	/* its content-length body, straight in */
			if (c->h1_chunked || c->h1_upgrade || !c->h1_body_left)
				break;
			len = n - used < c->h1_body_left ? n - used : c->h1_body_left;
			if (evbuffer_add(c->h1_call->body, p + used, len))
				break;
			used += len;
			c->h1_body_left -= len;
			if (c->h1_body_left)
				break;
			h1_serve_taken(c, used == n);
			continue;
		}
		e = h1p_head_end(p + used, n - used);
		len = e ? (size_t)(e - (p + used)) : 0;
		if (!e || len > max)
			break;		/* h1_on_read: the header clock, or 431 */
		used += len;
		if (!h1_start_call(c, p + used - len, len) || c->h1_chunked || c->h1_upgrade)
			break;		/* answered, or h1_on_read goes on with the call */
		if (!c->h1_body_left)
			h1_serve_taken(c, used == n);
	}
	c->in_read = false;
	return used;
}

/*
 * The response head (and a small body) is gathered here and handed to the
 * bufferevent in one evbuffer_add: each add to its output runs its
 * callbacks, and printf-style adds format through vsnprintf.
 */
struct h1_out {
	struct evbuffer *out;
	size_t n;
	char buf[2048];
};

static inline void h1_put(struct h1_out *w, const char *s, size_t len)
{
	if (w->n + len > sizeof(w->buf)) {
		evbuffer_add(w->out, w->buf, w->n);
		w->n = 0;
		if (len > sizeof(w->buf)) {
			evbuffer_add(w->out, s, len);
			return;
		}
	}
	memcpy(w->buf + w->n, s, len);
	w->n += len;
}

static void h1_put_str(struct h1_out *w, const char *s)
{
	h1_put(w, s, strlen(s));
}

static void h1_put_uint(struct h1_out *w, unsigned long long v)
{
	char d[24], *p = d + sizeof(d);

	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	h1_put(w, p, (size_t)(d + sizeof(d) - p));
}

void h1_respond(struct call *call)
{
	struct conn *c = call->conn;
	struct h1_out w;	/* not zeroed: buf is 2 KiB (~270 instructions) */
	size_t len = evbuffer_get_length(call->resp);
	bool body = memcmp(call->method, "HEAD", 5) != 0;	/* method[16] */

	w.out = bufferevent_get_output(c->bev);
	w.n = 0;

	/* Shutting down: every request already sent is answered; the last
	 * answer says Connection: close. */
	if (c->sl->draining && conn_read_pending(c) == 0)
		c->h1_keepalive = false;
	h1_put(&w, "HTTP/1.1 ", 9);
	h1_put_uint(&w, (unsigned)call->status);
	h1_put(&w, " ", 1);
	h1_put_str(&w, http_reason(call->status));
	h1_put(&w, "\r\nContent-Length: ", 18);
	h1_put_uint(&w, len);
	h1_put(&w, "\r\n", 2);
	for (int i = 0; i < call->n_resp_hdrs; i++) {
		h1_put_str(&w, call->resp_hdrs[i].name);
		h1_put(&w, ": ", 2);
		h1_put_str(&w, call->resp_hdrs[i].value);
		h1_put(&w, "\r\n", 2);
	}
	if (!c->h1_keepalive) {
		h1_put(&w, "Connection: close\r\n", 19);
		c->close_after_write = true;
	} else if (c->h1_10) {
		/* HTTP/1.0 closes unless told otherwise (RFC 9112 §9.3). */
		h1_put(&w, "Connection: keep-alive\r\n", 24);
	}
	h1_put(&w, "\r\n", 2);
	/* A small body is copied along (copied, not removed: call_free
	 * empties call->resp); a large one moves by reference. */
	if (body && len && w.n + len <= sizeof(w.buf)) {
		evbuffer_copyout(call->resp, w.buf + w.n, len);
		w.n += len;
		body = false;
	}
	if (!body && (!c->in_read || c->h1_last))
		conn_write_now(c, w.buf, w.n);	/* nothing else is coming to wait for */
	else
		evbuffer_add(w.out, w.buf, w.n);
	if (body)
		evbuffer_add_buffer(w.out, call->resp);
	/* The call is finished: free it and read the next request. */
	if (c->h1_call == call) {
		c->h1_call = NULL;
		c->h1_busy = c->close_after_write;
		if (c->active > 0)
			c->active--;
		call_free(call);
	}
	if (!c->close_after_write)
		h1_on_read(c);
	if (!c->in_read)
		conn_flush(c);
}

void h1_on_written(struct conn *c)
{
	conn_maybe_close(c);
}
