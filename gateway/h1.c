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
#include "server.h"

/* Reply before a request was fully read, then close (framing is lost). */
static void h1_fail(struct conn *c, struct call *call, int status, const char *msg)
{
	c->h1_keepalive = false;
	c->close_after_write = true;
	c->h1_busy = true;
	bufferevent_disable(c->bev, EV_READ);
	call_respond_error(call, status, "%s", msg);
}

/* Trim spaces and tabs around [*s, *s + *len). */
static void h1_trim(const char **s, size_t *len)
{
	while (*len && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* "POST /path?q HTTP/1.1" -> method, path; sets keep-alive default.  0 or -1. */
static int h1_request_line(struct conn *c, struct call *call, const char *line, size_t len)
{
	const char *sp1 = memchr(line, ' ', len), *sp2, *q;
	size_t mlen;

	if (!sp1)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', len - (sp1 + 1 - line));
	if (!sp2)
		return -1;
	mlen = sp1 - line;
	if (mlen == 0 || mlen >= sizeof(call->method) || sp2 == sp1 + 1)
		return -1;
	memcpy(call->method, line, mlen);
	call->method[mlen] = 0;
	q = memchr(sp1 + 1, '?', sp2 - sp1 - 1);
	call->path = call_strndup(call, sp1 + 1, (q ? q : sp2) - sp1 - 1);
	if (len - (sp2 + 1 - line) == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8))
		c->h1_keepalive = true;
	else if (len - (sp2 + 1 - line) == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8))
		c->h1_keepalive = false;
	else
		return -1;
	return 0;
}

/*
 * Parse the head (request line + headers, CRLF-terminated lines, blank line
 * last) in buf[0..len).  0, or an HTTP status for a malformed head.
 */
static int h1_parse_head(struct conn *c, struct call *call, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *eol;

	eol = memmem(p, end - p, "\r\n", 2);
	if (!eol || h1_request_line(c, call, p, eol - p))
		return 400;
	for (p = eol + 2; p < end && !(p[0] == '\r' && p[1] == '\n'); p = eol + 2) {
		const char *colon, *v;
		size_t nlen, vlen;

		eol = memmem(p, end - p, "\r\n", 2);
		colon = eol ? memchr(p, ':', eol - p) : NULL;
		if (!colon || colon == p)
			return 400;
		nlen = colon - p;
		v = colon + 1;
		vlen = eol - v;
		h1_trim(&v, &vlen);
		if (!call_add_header(call, p, nlen, v, vlen))
			return 431;
	}
	return 0;
}

/* Connection, Content-Length, Transfer-Encoding, Expect.  0 or a status. */
static int h1_framing(struct conn *c, struct call *call, const char **why)
{
	const struct config *cfg = conn_cfg(c);
	const char *conn = call_header(call, "connection");
	const char *cl = call_header(call, "content-length");
	const char *te = call_header(call, "transfer-encoding");
	const char *expect = call_header(call, "expect");
	char *endp;
	unsigned long long n = 0;

	if (conn && strcasestr(conn, "close"))
		c->h1_keepalive = false;
	else if (conn && strcasestr(conn, "keep-alive"))
		c->h1_keepalive = true;
	c->h1_chunked = false;
	if (te && strcasecmp(te, "chunked") != 0) {
		*why = "Transfer-Encoding: only chunked is supported";
		return 501;
	}
	if (te && cl) {		/* ambiguous framing: the classic smuggling vector */
		*why = "both Transfer-Encoding and Content-Length";
		return 400;
	}
	if (te) {
		c->h1_chunked = true;
		c->h1_chunk_state = 0;
		if (expect && !strcasecmp(expect, "100-continue"))
			bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	if (cl) {
		errno = 0;
		n = strtoull(cl, &endp, 10);
		if (errno || *endp || !isdigit((unsigned char)cl[0])) {
			*why = "Content-Length: not a number";
			return 400;
		}
	}
	if (n > cfg->limits.max_body_bytes) {
		*why = "request body exceeds limits.max_body_bytes";
		return 413;
	}
	c->h1_body_left = n;
	if (expect && !strcasecmp(expect, "100-continue") && n > 0)
		bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return 0;
}

enum { H1_CHUNK_SIZE, H1_CHUNK_DATA, H1_CHUNK_CRLF, H1_CHUNK_TRAILER };

/* One CRLF-terminated line of a chunked body: 1 = *line set (free it), 0 =
 * wait, -1 = too long. */
static int h1_chunk_line(struct evbuffer *in, char **line)
{
	size_t n;

	*line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
	if (*line)
		return 1;
	return evbuffer_get_length(in) > 4096 ? -1 : 0;
}

/*
 * Decode as much of a chunked body as has arrived into the call's body.
 * 1 = complete, 0 = need more, -1 = failed (answered, connection closing).
 */
static int h1_read_chunked(struct conn *c, struct evbuffer *in)
{
	uint64_t max = conn_cfg(c)->limits.max_body_bytes;
	struct call *call = c->h1_call;
	char *line, *end;
	int r;

	for (;;) {
		switch (c->h1_chunk_state) {
		case H1_CHUNK_SIZE:
			if ((r = h1_chunk_line(in, &line)) <= 0)
				goto line_wait;
			c->h1_chunk_left = strtoull(line, &end, 16);
			r = end == line || (*end && *end != ';' && *end != ' ');
			free(line);
			if (r)
				goto bad;
			if (evbuffer_get_length(call->body) + c->h1_chunk_left > max) {
				h1_fail(c, call, 413, "request body exceeds limits.max_body_bytes");
				return -1;
			}
			c->h1_chunk_state = c->h1_chunk_left ? H1_CHUNK_DATA : H1_CHUNK_TRAILER;
			break;
		case H1_CHUNK_DATA: {
			size_t n = evbuffer_get_length(in);

			if (n > c->h1_chunk_left)
				n = c->h1_chunk_left;
			evbuffer_remove_buffer(in, call->body, n);
			c->h1_chunk_left -= n;
			if (c->h1_chunk_left)
				return 0;
			c->h1_chunk_state = H1_CHUNK_CRLF;
			break;
		}
		case H1_CHUNK_CRLF: {
			char crlf[2];

			if (evbuffer_get_length(in) < 2)
				return 0;
			evbuffer_remove(in, crlf, 2);
			if (crlf[0] != '\r' || crlf[1] != '\n')
				goto bad;
			c->h1_chunk_state = H1_CHUNK_SIZE;
			break;
		}
		default:	/* trailer fields until the empty line; ignored */
			if ((r = h1_chunk_line(in, &line)) <= 0)
				goto line_wait;
			r = line[0] == 0;
			free(line);
			if (r)
				return 1;
			break;
		}
	}
line_wait:
	if (r == 0)
		return 0;
bad:
	h1_fail(c, call, 400, "malformed chunked request body");
	return -1;
}

/* Read a head if one is complete.  1 = call ready for its body, 0 = wait. */
static int h1_read_head(struct conn *c, struct evbuffer *in)
{
	const struct config *cfg = conn_cfg(c);
	struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	size_t head_len;
	const char *why = NULL;
	char *head;
	int st;

	if (pos.pos < 0) {
		if (evbuffer_get_length(in) > cfg->limits.max_header_bytes) {
			c->h1_call = call_new(c);
			strcpy(c->h1_call->method, "?");
			h1_fail(c, c->h1_call, 431, "request header exceeds limits.max_header_bytes");
		}
		return 0;
	}
	head_len = pos.pos + 4;
	c->h1_call = call_new(c);
	if (head_len > cfg->limits.max_header_bytes) {
		strcpy(c->h1_call->method, "?");
		h1_fail(c, c->h1_call, 431, "request header exceeds limits.max_header_bytes");
		return 0;
	}
	head = (char *)evbuffer_pullup(in, head_len);
	st = h1_parse_head(c, c->h1_call, head, head_len);
	evbuffer_drain(in, head_len);
	if (st) {
		if (!c->h1_call->method[0])
			strcpy(c->h1_call->method, "?");
		h1_fail(c, c->h1_call, st, st == 431 ? "too many request headers"
						      : "malformed HTTP/1.1 request head");
		return 0;
	}
	st = h1_framing(c, c->h1_call, &why);
	if (st) {
		h1_fail(c, c->h1_call, st, why);
		return 0;
	}
	return 1;
}

void h1_on_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->in_read)
		return;		/* h1_respond inside api_handle: the loop below goes on */
	c->in_read = true;
	while (!c->h1_busy && !c->closing) {
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
			evbuffer_remove_buffer(in, c->h1_call->body, n);
			c->h1_body_left -= n;
			if (c->h1_body_left)
				break;
		}
		c->h1_busy = true;
		c->active++;
		api_handle(c->h1_call);
	}
	c->in_read = false;
	conn_flush(c);
}

void h1_respond(struct call *call)
{
	struct conn *c = call->conn;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = evbuffer_get_length(call->resp);

	if (c->sl->draining)
		c->h1_keepalive = false;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", call->status,
			    http_reason(call->status), len);
	for (int i = 0; i < call->n_resp_hdrs; i++)
		evbuffer_add_printf(out, "%s: %s\r\n", call->resp_hdrs[i].name,
				    call->resp_hdrs[i].value);
	if (!c->h1_keepalive) {
		evbuffer_add(out, "Connection: close\r\n", 19);
		c->close_after_write = true;
	}
	evbuffer_add(out, "\r\n", 2);
	if (strcmp(call->method, "HEAD") != 0)
		evbuffer_add_buffer(out, call->resp);
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
