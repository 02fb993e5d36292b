/* call.c - the protocol-neutral HTTP exchange (see http.h). */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "config.h"
#include "front.h"
#include "grpc.h"
#include "infer.h"
#include "kserve.h"
#include "mpcodec.h"
#include "runtime.h"
#include "server.h"
#include "swar.h"
#include "util.h"
#include "zcodec.h"

/* Recycled calls kept per loop: as many as a few clients' worth of
 * in-flight HTTP/2 streams (32 connections x 32 streams), so a loop under
 * steady load takes its calls from the list, not from malloc and two
 * evbuffer_new; about 2 KiB each, kept only once that many were live. */
#define CALL_FREE_MAX 1024

struct call *call_new(struct conn *conn)
{
	struct srv_loop *sl = conn->sl;
	struct call *c = sl->free_calls;
	struct evbuffer *body, *resp;

	if (c) {
		sl->free_calls = c->next_free;
		sl->n_free_calls--;
		body = c->body;
		resp = c->resp;
	} else {
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
		body = evbuffer_new();
		resp = evbuffer_new();
	}
	/* Not the header arrays and the string arena: counts say what holds. */
	memset(c, 0, offsetof(struct call, hdrs_inline));
	c->body = body;
	c->resp = resp;
	c->hdrs = c->hdrs_inline;
	c->cap_hdrs = CALL_INLINE_HDRS;
	c->conn = conn;
	c->sl = sl;
	c->loop = &sl->loop;
	c->pool = &sl->loop.pool;
	c->sink = &sl->loop.sink;
	c->rt = rt_lease_borrow(&sl->lease);
	c->admin = conn->admin;
	c->start_ns = conn_arrival_ns(conn);	/* the deadline's clock runs from here */
	return c;
}

/* n bytes that live as long as c: from c->str, then from a spill block
 * ([next pointer][bytes]); NULL when out of memory. */
static char *call_alloc(struct call *c, size_t n)
{
	char *p, *blk;

	if (c->str_used + n <= sizeof(c->str)) {
		p = c->str + c->str_used;
		c->str_used += n;
		return p;
	}
	blk = malloc(sizeof(char *) + n);
	if (!blk)
		return NULL;
	memcpy(blk, &c->spill, sizeof(char *));
	c->spill = blk;
	return blk + sizeof(char *);
}

_Static_assert(offsetof(struct call, str) % 8 == 0, "call_api_new aligns within c->str");

void *call_api_new(struct call *c, size_t n)
{
	char *p;

	c->str_used = (c->str_used + 7) & ~(size_t)7;	/* c->str and spill blocks: 8-aligned */
	p = call_alloc(c, n);
	if (!p)
		return NULL;
	memset(p, 0, n);
	c->api = p;
	c->api_in_call = true;
	return p;
}

char *call_strndup(struct call *c, const char *s, size_t n)
{
	char *p = call_alloc(c, n + 1);

	if (!p)
		return NULL;
	swar_copy(p, s, n);
	p[n] = 0;
	return p;
}

static void call_release(struct call *c)
{
	while (c->spill) {
		char *next;

		memcpy(&next, c->spill, sizeof(char *));
		free(c->spill);
		c->spill = next;
	}
	front_req_put(c->req);	/* back to the loop's pool */
	c->req = NULL;
	if (!c->api_in_call)
		free(c->api);
	c->api = NULL;
	if (c->hdrs != c->hdrs_inline)
		free(c->hdrs);
	c->hdrs = NULL;
	rt_lease_return(&c->sl->lease, c->rt);
	c->rt = NULL;
}

static void call_destroy(struct call *c)
{
	if (c->body)
		evbuffer_free(c->body);
	if (c->resp)
		evbuffer_free(c->resp);
	free(c);
}

/* Empty b; an empty one (the usual by now: the answer went to the
 * connection, a GET had no body) is left alone, not locked and drained. */
static void call_drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	if (n)
		evbuffer_drain(b, n);
}

void call_free(struct call *c)
{
	struct srv_loop *sl;

	if (!c)
		return;
	if (c->pins > 0) {
		c->free_pending = true;
		c->conn = NULL;		/* whatever answers now is not sent */
		return;
	}
	sl = c->sl;
	call_release(c);
	if (!UTIL_RECYCLE || sl->n_free_calls >= CALL_FREE_MAX) {	/* sanitizers: never recycle */
		call_destroy(c);
		return;
	}
	call_drain(c->body);
	call_drain(c->resp);
	c->next_free = sl->free_calls;
	sl->free_calls = c;
	sl->n_free_calls++;
}

void call_pin(struct call *c)
{
	c->pins++;
}

void call_unpin(struct call *c)
{
	if (--c->pins == 0 && c->free_pending) {
		c->free_pending = false;
		call_free(c);
	}
}

void call_free_list(struct srv_loop *sl)
{
	while (sl->free_calls) {
		struct call *c = sl->free_calls;

		sl->free_calls = c->next_free;
		call_destroy(c);
	}
	sl->n_free_calls = 0;
}

/* Double the header array (the first growth leaves the inline one).  0 or -ENOMEM. */
static int call_grow_headers(struct call *c)
{
	int cap = c->cap_hdrs * 2;
	struct hdr *h = malloc(cap * sizeof(*h));

	if (!h)
		return -ENOMEM;
	memcpy(h, c->hdrs, c->n_hdrs * sizeof(*h));
	if (c->hdrs != c->hdrs_inline)
		free(c->hdrs);
	c->hdrs = h;
	c->cap_hdrs = cap;
	return 0;
}

/* k when name[0..sizeof(lit) - 1) is lit, else -1: a constant length, so
 * the compiler compares words in place of calling memcmp. */
#define CALL_HK_IS(name, lit, k) (memcmp((name), (lit), sizeof(lit) - 1) == 0 ? (k) : -1)

/* The enum call_hk of lower-case name[0..len), or -1: by length, then
 * (where two share one) by the first byte, then one comparison. */
static int call_hk_of(const char *name, size_t len)
{
	switch (len) {
	case 6:
		return name[0] == 'a' ? CALL_HK_IS(name, "accept", CALL_H_ACCEPT)
				      : CALL_HK_IS(name, "expect", CALL_H_EXPECT);
	case 7:
		return CALL_HK_IS(name, "upgrade", CALL_H_UPGRADE);
	case 8:
		return CALL_HK_IS(name, "x-slo-ms", CALL_H_X_SLO_MS);
	case 10:
		return name[0] == 'c' ? CALL_HK_IS(name, "connection", CALL_H_CONNECTION)
				      : CALL_HK_IS(name, "x-priority", CALL_H_X_PRIORITY);
	case 12:
		return name[0] == 'c' ? CALL_HK_IS(name, "content-type", CALL_H_CONTENT_TYPE)
				      : CALL_HK_IS(name, "grpc-timeout", CALL_H_GRPC_TIMEOUT);
	case 13:
		return CALL_HK_IS(name, "grpc-encoding", CALL_H_GRPC_ENCODING);
	case 14:
		return name[0] == 'c' ? CALL_HK_IS(name, "content-length", CALL_H_CONTENT_LENGTH)
				      : CALL_HK_IS(name, "http2-settings", CALL_H_HTTP2_SETTINGS);
	case 15:
		return CALL_HK_IS(name, "accept-encoding", CALL_H_ACCEPT_ENCODING);
	case 16:
		return CALL_HK_IS(name, "content-encoding", CALL_H_CONTENT_ENCODING);
	case 31:
		return CALL_HK_IS(name, "inference-header-content-length", CALL_H_IHCL);
	default:
		return -1;
	}
}

/* x with its bytes 'A'..'Z' made lower case, eight at a time: a byte
 * with its top bit set is not ASCII and stays as it is (as tolower in C). */
static inline uint64_t call_word_lower(uint64_t x)
{
	return x | ((swar_in_range(x & SWAR_LOW7, 'A', 'Z') & ~x) >> 2);
}

/* dst[0..n) = src[0..n) lower-cased (ASCII); a last word overlaps the one
 * before it, so no byte is left for a loop. */
static void call_lower_copy(char *dst, const char *src, size_t n)
{
	if (n < 8) {
		for (size_t i = 0; i < n; i++)
			dst[i] = (unsigned char)(src[i] - 'A') < 26 ? src[i] + ('a' - 'A') : src[i];
		return;
	}
	for (size_t i = 0; i + 8 < n; i += 8)
		swar_store(dst + i, call_word_lower(swar_load(src + i)));
	swar_store(dst + n - 8, call_word_lower(swar_load(src + n - 8)));
}

/* Store the header at the end (name and value in one stretch of c's
 * strings), the name lower-cased when lower says; false when out of memory. */
static bool call_store_header(struct call *c, const char *name, size_t nlen, const char *value,
			      size_t vlen, bool lower)
{
	char *n;
	int k;

	if (c->n_hdrs == c->cap_hdrs && call_grow_headers(c))
		return false;
	n = call_alloc(c, nlen + vlen + 2);
	if (!n)
		return false;
	if (lower)
		call_lower_copy(n, name, nlen);
	else
		swar_copy(n, name, nlen);
	n[nlen] = 0;
	swar_copy(n + nlen + 1, value, vlen);
	n[nlen + 1 + vlen] = 0;
	c->hdrs[c->n_hdrs].name = n;
	c->hdrs[c->n_hdrs].value = n + nlen + 1;
	c->n_hdrs++;
	k = call_hk_of(n, nlen);
	if (k >= 0 && !c->hk[k])
		c->hk[k] = c->n_hdrs;
	return true;
}

bool call_add_header(struct call *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
	return call_store_header(c, name, nlen, value, vlen, true);
}

bool call_add_lc_header(struct call *c, const char *name, size_t nlen, const char *value,
			size_t vlen)
{
	return call_store_header(c, name, nlen, value, vlen, false);
}

const char *call_header_n(const struct call *c, const char *lname, size_t len)
{
	int k = call_hk_of(lname, len);

	if (k >= 0)
		return call_hdr(c, k);
	for (int i = 0; i < c->n_hdrs; i++)
		if (util_streqn(c->hdrs[i].name, lname, len))
			return c->hdrs[i].value;
	return NULL;
}

/* A response header whose name and value both live as long as c (string
 * constants, or c's own copies); past CALL_MAX_RESP_HDRS, dropped. */
static void call_put_resp_header(struct call *c, const char *name, const char *value)
{
	if (c->n_resp_hdrs >= CALL_MAX_RESP_HDRS || !value)
		return;
	c->resp_hdrs[c->n_resp_hdrs].name = (char *)name;
	c->resp_hdrs[c->n_resp_hdrs].value = (char *)value;
	c->n_resp_hdrs++;
}

void call_set_resp_header(struct call *c, const char *name, const char *value)
{
	if (c->n_resp_hdrs < CALL_MAX_RESP_HDRS)
		call_put_resp_header(c, name, call_strndup(c, value, strlen(value)));
}

static const char *call_resp_header(const struct call *c, const char *lname)
{
	for (int i = 0; i < c->n_resp_hdrs; i++)
		if (strcmp(c->resp_hdrs[i].name, lname) == 0)
			return c->resp_hdrs[i].value;
	return NULL;
}

/*
 * Compress the answer for a client that accepts it.  Level 1: most of the
 * gain on JSON for a fraction of the CPU, which is the event loop's.  A
 * body that does not shrink (random tensor bytes) goes as it was.
 */
static void call_compress(struct call *c)
{
	size_t len = evbuffer_get_length(c->resp);
	enum zc_coding coding;
	struct evbuffer *z;

	if (c->grpc || len < CALL_GZIP_MIN || c->status < 200 || c->status == 204 ||
	    call_resp_header(c, "content-encoding"))
		return;
	call_put_resp_header(c, "vary", "Accept-Encoding");
	coding = zc_accept(call_hdr(c, CALL_H_ACCEPT_ENCODING));
	if (coding == ZC_IDENTITY)
		return;
	z = evbuffer_new();
	if (z && !zc_deflate(c->resp, z, coding, 1) && evbuffer_get_length(z) < len) {
		evbuffer_drain(c->resp, len);
		evbuffer_add_buffer(c->resp, z);
		call_put_resp_header(c, "content-encoding", zc_name(coding));
	}
	if (z)
		evbuffer_free(z);
}

void call_respond(struct call *c, int status, const char *ctype)
{
	if (c->responded)
		return;
	c->responded = true;
	c->status = status;
	if (ctype)
		call_put_resp_header(c, "content-type", ctype);
	if (!call_detached(c))
		call_compress(c);
	access_record(c);
	if (!call_detached(c))
		conn_transport_respond(c);
}

/* Whether a has "application/msgpack" or "application/x-msgpack" in it,
 * in any case: every "msgpack" found, then what comes before it (as two
 * strcasestr's would say, at a few instructions a byte, not hundreds). */
static bool call_names_msgpack(const char *a)
{
	for (size_t i = 0; a[i]; i++) {
		if ((a[i] | 0x20) != 'm' || !util_prefix_ci(a + i, "msgpack"))
			continue;
		if ((i >= 12 && util_prefix_ci(a + i - 12, "application/")) ||
		    (i >= 14 && util_prefix_ci(a + i - 14, "application/x-")))
			return true;
	}
	return false;
}

bool call_accepts_msgpack(const struct call *c)
{
	const char *a = call_hdr(c, CALL_H_ACCEPT);

	return a && call_names_msgpack(a);
}

void call_respond_error(struct call *c, int status, const char *fmt, ...)
{
	bool mp = call_accepts_msgpack(c);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	if (c->grpc) {		/* a trailers-only answer with the mapped code */
		grpc_respond_status(c, status, grpc_code(status), msg);
		return;
	}
	if (mp) {
		mp_encode_error(c->resp, msg);
	} else {
		evbuffer_add(c->resp, "{\"error\":", 9);
		ks_put_str(c->resp, msg);
		evbuffer_add(c->resp, "}", 1);
	}
	if (status == 503)
		call_put_resp_header(c, "retry-after", "1");
	call_respond(c, status, mp ? "application/msgpack" : "application/json");
}

/* The request's codings, from every Content-Encoding field.  0 or answered. */
static int call_content_coding(struct call *c, enum zc_coding *coding)
{
	*coding = ZC_IDENTITY;
	/* from the first (none: nothing to walk) */
	for (int i = c->hk[CALL_H_CONTENT_ENCODING] - 1; i >= 0 && i < c->n_hdrs; i++) {
		const char *v = c->hdrs[i].value, *bad = NULL;
		size_t badlen = 0;
		int rc;

		if (strcmp(c->hdrs[i].name, "content-encoding") != 0)
			continue;
		rc = zc_content_coding(v, coding, &bad, &badlen);
		if (rc == -ENOTSUP) {
			call_respond_error(c, 415, "Content-Encoding: \"%.*s\" is not supported "
					   "(gzip, deflate or identity)", (int)(badlen > 64 ? 64 : badlen), bad);
			return 415;
		}
		if (rc) {
			call_respond_error(c, 415, "Content-Encoding: one coding at most is supported "
					   "(gzip or deflate), got \"%.64s\"", v);
			return 415;
		}
	}
	return 0;
}

int call_decode_body(struct call *c)
{
	uint64_t cap = c->rt->cfg->limits.max_body_bytes;
	enum zc_coding coding;
	struct evbuffer *out;
	const char *why = NULL;
	int rc;

	rc = call_content_coding(c, &coding);
	if (rc || coding == ZC_IDENTITY || evbuffer_get_length(c->body) == 0)
		return rc;
	out = evbuffer_new();
	rc = out ? zc_inflate(c->body, out, coding, cap > SIZE_MAX ? SIZE_MAX : (size_t)cap, &why)
		 : -ENOMEM;
	if (!rc) {
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
		evbuffer_add_buffer(c->body, out);
	}
	if (out)
		evbuffer_free(out);
	switch (rc) {
	case 0:
		return 0;
	case -EFBIG:
		call_respond_error(c, 413, "request body exceeds limits.max_body_bytes (%llu) "
				   "once decompressed (Content-Encoding: %s)",
				   (unsigned long long)cap, zc_name(coding));
		return 413;
	case -EINVAL:
		call_respond_error(c, 400, "Content-Encoding: %s: the body does not decompress (%s)",
				   zc_name(coding), why);
		return 400;
	default:
		call_respond_error(c, 503, "gateway out of memory");
		return 503;
	}
}

void call_respond_json(struct call *c, int status, const char *json)
{
	evbuffer_add_reference(c->resp, json, strlen(json), NULL, NULL);	/* a constant */
	call_respond(c, status, "application/json");
}

bool call_allow(struct call *c, const char *allowed)
{
	if (util_streq(c->method, allowed) ||
	    (util_streq(allowed, "GET") && util_streq(c->method, "HEAD")))
		return true;
	call_set_resp_header(c, "allow", allowed);
	call_respond_error(c, 405, "method %s not allowed on %s (use %s)", c->method, c->path,
			   allowed);
	return false;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

/* A block an answer holds by reference: freed with its last slice. */
struct call_owned {
	void *p;
	int refs;
};

static void call_owned_unref(struct call_owned *o)
{
	if (__atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(o->p);
		free(o);
	}
}

static void call_owned_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	call_owned_unref(arg);
}

int call_buf_add_owned(struct evbuffer *b, void *p, size_t n)
{
	struct call_owned *o = malloc(sizeof(*o));
	size_t off;
	int rc = 0;

	if (!o) {
		free(p);
		return -1;
	}
	o->p = p;
	o->refs = 1;	/* ours until every slice is in */
	for (off = 0; off < n && !rc; off += CALL_OWNED_SLICE) {
		size_t k = n - off < CALL_OWNED_SLICE ? n - off : CALL_OWNED_SLICE;

		__atomic_add_fetch(&o->refs, 1, __ATOMIC_RELAXED);
		rc = evbuffer_add_reference(b, (const char *)p + off, k, call_owned_release, o);
		if (rc)
			call_owned_unref(o);	/* that slice's, never added */
	}
	call_owned_unref(o);
	return rc ? -1 : 0;
}

int call_add_owned(struct call *c, void *p, size_t n)
{
	if (!call_buf_add_owned(c->resp, p, n))
		return 0;
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	return -1;
}

void call_stream_write(struct call *c)
{
	if (!call_detached(c) && c->conn->proto == PROTO_H2)
		h2_stream_write(c);
}

int call_reserve(struct call *c, uint64_t n)
{
	return !call_detached(c) && c->conn->proto == PROTO_H2 ? h2_reserve(c, n) : -1;
}

void call_unreserve(struct call *c, uint64_t n)
{
	if (!call_detached(c) && c->conn->proto == PROTO_H2)
		h2_unreserve(c, n);
}

void call_stream_consume(struct call *c)
{
	if (!call_detached(c) && c->conn->proto == PROTO_H2)
		h2_stream_consume(c);
}

uint64_t call_max_body(const struct call *c)
{
	return call_detached(c) ? 0 : conn_cfg(c->conn)->limits.max_body_bytes;
}

int call_gunzip(struct evbuffer *in, struct evbuffer *out, size_t cap, const char **why)
{
	return zc_inflate(in, out, ZC_GZIP, cap, why);
}
