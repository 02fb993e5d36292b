/* grpc.c - see grpc.h. */
#include "grpc.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "api.h"
#include "front.h"
#include "grpc_service.pb-c.h"
#include "grpccodec.h"
#include "http.h"
#include "infer.h"
#include "kserve.h"
#include "model/model.h"
#include "runtime.h"
#include "stats.h"
#include "util.h"
#include "version.h"

#define GRPC_PREFIX "/inference.GRPCInferenceService/"
#define GRPC_FRAME_HDR GC_FRAME_HDR
#define GRPC_CODES 17		/* 0 OK .. 16 UNAUTHENTICATED */
#define GRPC_MSG_MAX 512	/* grpc-message before percent-encoding */
#define GRPC_ACCEPT_ENCODING "identity,gzip"	/* request messages; answers are identity */

enum grpc_method {
	GM_SERVER_LIVE, GM_SERVER_READY, GM_MODEL_READY, GM_SERVER_METADATA,
	GM_MODEL_METADATA, GM_MODEL_INFER, GM_STREAM_INFER, GM_MODEL_CONFIG, GM_MODEL_STATISTICS,
	GM_REPOSITORY_INDEX, GM_REPOSITORY_LOAD, GM_REPOSITORY_UNLOAD, GM_OTHER, GM_COUNT
};

static const char *const grpc_method_names[GM_COUNT] = {
	[GM_SERVER_LIVE] = "ServerLive", [GM_SERVER_READY] = "ServerReady",
	[GM_MODEL_READY] = "ModelReady", [GM_SERVER_METADATA] = "ServerMetadata",
	[GM_MODEL_METADATA] = "ModelMetadata", [GM_MODEL_INFER] = "ModelInfer",
	[GM_STREAM_INFER] = "ModelStreamInfer", [GM_MODEL_CONFIG] = "ModelConfig",
	[GM_MODEL_STATISTICS] = "ModelStatistics", [GM_REPOSITORY_INDEX] = "RepositoryIndex",
	[GM_REPOSITORY_LOAD] = "RepositoryModelLoad", [GM_REPOSITORY_UNLOAD] = "RepositoryModelUnload",
	[GM_OTHER] = "other",
};

/* Answers by method and code, every loop thread adding. */
static _Atomic unsigned long grpc_answers[GM_COUNT][GRPC_CODES];

/* A ModelInfer in flight: what the answer repeats (freed with the call). */
struct grpc_infer {
	char id[KS_ID_MAX + 1];
};

/* protobuf-c output straight into an evbuffer (no intermediate copy). */
struct grpc_evbuf {
	ProtobufCBuffer base;
	struct evbuffer *out;
};

static void grpc_evbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	struct grpc_evbuf *e = (struct grpc_evbuf *)b;

	evbuffer_add(e->out, data, len);
}

bool grpc_is_request(const struct call *c)
{
	const char *ct = call_hdr(c, CALL_H_CONTENT_TYPE);
	const char *rest = ct ? util_prefix(ct, "application/grpc") : NULL;

	return rest && (*rest == 0 || *rest == '+' || *rest == ';');
}

int grpc_code(int http_status)
{
	switch (http_status) {
	case 200: return GRPC_OK;
	case 400: return GRPC_INVALID_ARGUMENT;
	case 401: return GRPC_UNAUTHENTICATED;
	case 403: return GRPC_PERMISSION_DENIED;
	case 404: return GRPC_NOT_FOUND;
	case 405: case 501: return GRPC_UNIMPLEMENTED;
	case 413: case 429: case 431: return GRPC_RESOURCE_EXHAUSTED;
	case 500: return GRPC_INTERNAL;
	case 503: return GRPC_UNAVAILABLE;
	case 504: return GRPC_DEADLINE_EXCEEDED;
	default: return http_status >= 400 && http_status < 500 ? GRPC_INVALID_ARGUMENT : GRPC_UNKNOWN;
	}
}

/* The method path names (GM_OTHER for anything else, or no path). */
static enum grpc_method grpc_method_of(const char *path)
{
	if (!path || strncmp(path, GRPC_PREFIX, strlen(GRPC_PREFIX)))
		return GM_OTHER;
	path += strlen(GRPC_PREFIX);
	for (int i = 0; i < GM_OTHER; i++)
		if (path[0] == grpc_method_names[i][0] && !strcmp(path, grpc_method_names[i]))
			return i;
	return GM_OTHER;
}

/* c's method: grpc_method_of its path, looked up once a call (its
 * headers, its dispatch and its answer's count ask). */
static enum grpc_method grpc_call_method(struct call *c)
{
	if (!c->grpc_method)
		c->grpc_method = (uint8_t)(grpc_method_of(c->path) + 1);
	return (enum grpc_method)(c->grpc_method - 1);
}

/* grpc-message: percent-encode what is not printable ASCII, and '%'. */
static void grpc_percent(const char *msg, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *msg && n + 4 <= outlen; msg++) {
		unsigned char ch = (unsigned char)*msg;

		if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = 0;
}

/* Set c's gRPC status, count the answer, send it (c may be gone after). */
static void grpc_finish(struct call *c, int http_status, int code, const char *msg)
{
	char enc[3 * GRPC_MSG_MAX + 1];

	if (c->responded)
		return;
	c->grpc_status = code;
	if (msg && msg[0]) {
		grpc_percent(msg, enc, sizeof(enc));
		c->grpc_message = call_strndup(c, enc, strlen(enc));
	}
	if (!c->h2_streaming)	/* a stream's went with its headers */
		call_set_resp_header(c, "grpc-accept-encoding", GRPC_ACCEPT_ENCODING);
	if (code >= 0 && code < GRPC_CODES)
		atomic_fetch_add_explicit(&grpc_answers[grpc_call_method(c)][code], 1,
					  memory_order_relaxed);
	call_respond(c, http_status, "application/grpc");
}

void grpc_respond_status(struct call *c, int http_status, int code, const char *msg)
{
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	grpc_finish(c, http_status, code, msg);
}

/* An error answer with a formatted message. */
static void grpc_fail(struct call *c, int http_status, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void grpc_fail(struct call *c, int http_status, int code, const char *fmt, ...)
{
	char msg[GRPC_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	grpc_respond_status(c, http_status, code, msg);
}

/* Append msg (len bytes packed: gc_pack_size) to c->resp as one
 * length-prefixed message. */
static void grpc_put_packed(struct call *c, const ProtobufCMessage *msg, size_t len)
{
	struct grpc_evbuf eb = { .base = { .append = grpc_evbuf_append }, .out = c->resp };
	uint8_t hdr[GRPC_FRAME_HDR];
	struct evbuffer_iovec v;

	gc_frame_head(hdr, len);
	/* Packed in place, in one piece: pack_to_buffer's append callback
	 * runs once per field (an evbuffer_add each). */
	if (evbuffer_reserve_space(c->resp, (ev_ssize_t)(sizeof(hdr) + len), &v, 1) == 1 &&
	    v.iov_len >= sizeof(hdr) + len) {
		memcpy(v.iov_base, hdr, sizeof(hdr));
		if (gc_pack(msg, (uint8_t *)v.iov_base + sizeof(hdr)) == len) {
			v.iov_len = sizeof(hdr) + len;
			evbuffer_commit_space(c->resp, &v, 1);
			return;
		}
	}
	evbuffer_add(c->resp, hdr, sizeof(hdr));
	protobuf_c_message_pack_to_buffer(msg, &eb.base);
}

/* Answer OK with msg as the one length-prefixed message. */
static void grpc_reply(struct call *c, const ProtobufCMessage *msg)
{
	size_t len = gc_pack_size(msg);

	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	if (len > UINT32_MAX) {
		grpc_respond_status(c, 500, GRPC_INTERNAL, "response too large for one gRPC message");
		return;
	}
	grpc_put_packed(c, msg, len);
	grpc_finish(c, 200, GRPC_OK, NULL);
}

/*
 * grpc-encoding of c's messages: identity (absent) or gzip.  true, or
 * false with c answered UNIMPLEMENTED (gRPC's rule for an encoding the
 * server does not support; the answer says what it does:
 * grpc-accept-encoding, as every answer does).
 */
static bool grpc_encoding_ok(struct call *c)
{
	const char *enc = call_hdr(c, CALL_H_GRPC_ENCODING);

	if (!enc || !strcmp(enc, "identity") || !strcmp(enc, "gzip"))
		return true;
	grpc_fail(c, 501, GRPC_UNIMPLEMENTED, "grpc-encoding \"%.64s\" is not supported "
		  "(grpc-accept-encoding: %s)", enc, GRPC_ACCEPT_ENCODING);
	return false;
}

/* c's messages may be gzip-compressed (grpc-encoding gzip). */
static bool grpc_gzip(const struct call *c)
{
	const char *enc = call_hdr(c, CALL_H_GRPC_ENCODING);

	return enc && !strcmp(enc, "gzip");
}

/* v in decimal into buf (room for 12), NUL-terminated: snprintf's "%d"
 * without its ~500 instructions, on every answer. */
static void grpc_int_str(char buf[12], int v)
{
	char tmp[12], *p = util_utoa(tmp + sizeof(tmp), v < 0 ? -(unsigned long long)v : (unsigned)v);
	size_t n = (size_t)(tmp + sizeof(tmp) - p);

	if (v < 0)
		*buf++ = '-';
	memcpy(buf, p, n);
	buf[n] = 0;
}

/* A request's id (checked: at most KS_ID_MAX bytes) into dst. */
static void grpc_copy_id(char dst[KS_ID_MAX + 1], const char *id)
{
	size_t n = strnlen(id, KS_ID_MAX);

	memcpy(dst, id, n);
	dst[n] = 0;
}

/*
 * An unpacked message's memory: protobuf-c allocates each field of a
 * message apart (~9 mallocs for a ModelInferRequest, and a walk of the
 * message to free them); from an arena, one block (more only when it runs
 * out) freed at once by grpc_msg_free.  The message is the arena's first
 * allocation (protobuf_c_message_unpack's own order, checked once at the
 * first use: grpc_arena_usable), so the arena's header sits right before
 * it.  Sanitizer builds keep protobuf-c's own allocator (UTIL_RECYCLE 0),
 * so that each field stays an object of its own to the sanitizer.
 */
struct grpc_arena_blk {
	struct grpc_arena_blk *next;
	_Alignas(16) char data[];
};

struct grpc_arena {
	ProtobufCAllocator pa;		/* allocator_data: this arena */
	struct grpc_arena_blk *more;	/* blocks after the first */
	char *cur;			/* free space of the current block */
	size_t left;
	size_t grow;			/* the next block's size, at least */
	_Alignas(16) char data[];	/* the first block: the message first */
};

#define GRPC_ARENA_ALIGN 16

static void *grpc_arena_alloc(void *ad, size_t size)
{
	struct grpc_arena *a = ad;
	struct grpc_arena_blk *b;
	size_t n = (size + GRPC_ARENA_ALIGN - 1) & ~(size_t)(GRPC_ARENA_ALIGN - 1);
	char *p;

	if (n < size)
		return NULL;
	if (n > a->left) {
		size_t cap = n > a->grow ? n : a->grow;

		if (cap > SIZE_MAX - sizeof(*b) || !(b = malloc(sizeof(*b) + cap)))
			return NULL;
		b->next = a->more;
		a->more = b;
		a->cur = b->data;
		a->left = cap;
		a->grow = cap * 2;
	}
	p = a->cur;
	a->cur += n;
	a->left -= n;
	return p;
}

/* What protobuf-c frees goes with the arena. */
static void grpc_arena_nofree(void *ad, void *p)
{
	(void)ad;
	(void)p;
}

/* An arena for a message of len bytes on the wire (NULL: out of memory). */
static struct grpc_arena *grpc_arena_new(size_t len)
{
	size_t cap = len > (SIZE_MAX - 1024) / 2 ? 0 : 1024 + 2 * len;
	struct grpc_arena *a = cap ? malloc(sizeof(*a) + cap) : NULL;

	if (!a)
		return NULL;
	a->pa = (ProtobufCAllocator){ grpc_arena_alloc, grpc_arena_nofree, a };
	a->more = NULL;
	a->cur = a->data;
	a->left = cap;
	a->grow = cap;
	return a;
}

static void grpc_arena_free(struct grpc_arena *a)
{
	while (a->more) {
		struct grpc_arena_blk *b = a->more;

		a->more = b->next;
		free(b);
	}
	free(a);
}

/* A message reader: protobuf_c_message_unpack, or grpc_plain_unpack. */
typedef ProtobufCMessage *(*grpc_unpacker)(const ProtobufCMessageDescriptor *d,
					   ProtobufCAllocator *a, size_t len, const uint8_t *p);

/* A plain ModelInferRequest (d) without protobuf-c's table walk
 * (gc_infer_unpack); NULL: not plain, for protobuf-c to unpack. */
static ProtobufCMessage *grpc_plain_unpack(const ProtobufCMessageDescriptor *d,
					   ProtobufCAllocator *a, size_t len, const uint8_t *p)
{
	Inference__ModelInferRequest *r;

	(void)d;
	return gc_infer_unpack(p, len, a, &r) ? NULL : &r->base;
}

/* d's message read by un from len bytes at p, into an arena (NULL: not a
 * valid message, or out of memory); with *first_ok false when the message
 * was not the arena's first allocation (it is then freed, and NULL). */
static ProtobufCMessage *grpc_arena_unpack(grpc_unpacker un, const ProtobufCMessageDescriptor *d,
					   size_t len, const uint8_t *p, bool *first_ok)
{
	struct grpc_arena *a = grpc_arena_new(len);
	ProtobufCMessage *m;

	*first_ok = true;
	if (!a)
		return NULL;
	m = un(d, &a->pa, len, p);
	if (m && (void *)m != (void *)a->data)
		*first_ok = false;
	if (!m || !*first_ok) {
		grpc_arena_free(a);
		return NULL;
	}
	return m;
}

static bool grpc_arena_ok;
static pthread_once_t grpc_arena_once = PTHREAD_ONCE_INIT;

/* Once: unpack a small ModelInferRequest into an arena and see that the
 * message is the arena's first allocation (else arenas stay unused). */
static void grpc_arena_check(void)
{
	Inference__ModelInferRequest r = INFERENCE__MODEL_INFER_REQUEST__INIT;
	uint8_t buf[64];
	size_t n;
	ProtobufCMessage *m;
	bool first_ok;

	r.model_name = "m";
	r.id = "i";
	n = protobuf_c_message_get_packed_size(&r.base);
	if (n > sizeof(buf))
		return;
	protobuf_c_message_pack(&r.base, buf);
	m = grpc_arena_unpack(protobuf_c_message_unpack, &inference__model_infer_request__descriptor,
			      n, buf, &first_ok);
	grpc_arena_ok = m && first_ok;
	if (m)
		grpc_arena_free((struct grpc_arena *)((char *)m - offsetof(struct grpc_arena, data)));
}

/* Whether grpc_decode's messages come from arenas. */
static bool grpc_arena_usable(void)
{
	if (!UTIL_RECYCLE)
		return false;
	pthread_once(&grpc_arena_once, grpc_arena_check);
	return grpc_arena_ok;
}

/* d's message read by un from len bytes at p: into an arena when arenas
 * are usable (grpc_msg_free frees either kind); NULL when it is not valid
 * (or out of memory; or, were protobuf-c to change the order it allocates
 * in after grpc_arena_check saw it, not the arena's first allocation). */
static ProtobufCMessage *grpc_unpack_by(grpc_unpacker un, const ProtobufCMessageDescriptor *d,
					size_t len, const uint8_t *p)
{
	bool first_ok;

	if (!grpc_arena_usable())
		return un(d, NULL, len, p);
	return grpc_arena_unpack(un, d, len, p, &first_ok);
}

/* d's message unpacked from len bytes at p (grpc_unpack_by): a plain
 * ModelInferRequest by gc_infer_unpack, anything else by protobuf-c. */
static ProtobufCMessage *grpc_unpack(const ProtobufCMessageDescriptor *d, size_t len,
				     const uint8_t *p)
{
	ProtobufCMessage *m;

	if (d == &inference__model_infer_request__descriptor &&
	    (m = grpc_unpack_by(grpc_plain_unpack, d, len, p)))
		return m;
	return grpc_unpack_by(protobuf_c_message_unpack, d, len, p);
}

/* Free a message grpc_decode (grpc_unpack) made. */
static void grpc_msg_free(ProtobufCMessage *m)
{
	if (!m)
		return;
	if (grpc_arena_usable())
		grpc_arena_free((struct grpc_arena *)((char *)m - offsetof(struct grpc_arena, data)));
	else
		protobuf_c_message_free_unpacked(m, NULL);
}

/*
 * One message of type d from a frame's compressed flag and len payload
 * bytes at p: 1 means gzip (with grpc-encoding gzip), inflated first, at
 * most limits.max_body_bytes.  The message (free with grpc_msg_free), or
 * NULL with *st (the HTTP-equivalent status), *code and err saying why.
 */
static ProtobufCMessage *grpc_decode(struct call *c, const ProtobufCMessageDescriptor *d,
				     uint8_t flag, const uint8_t *p, size_t len, int *st, int *code,
				     char *err, size_t errlen)
{
	const char *enc = call_hdr(c, CALL_H_GRPC_ENCODING), *why = "";
	struct evbuffer *z = NULL, *in = NULL;
	ProtobufCMessage *msg = NULL;
	size_t plain = len;
	int rc;

	*st = 400;
	*code = GRPC_INVALID_ARGUMENT;
	if (flag > 1) {
		snprintf(err, errlen, "gRPC frame: compressed flag %u, expected 0 or 1", flag);
		return NULL;
	}
	if (flag == 1 && !grpc_gzip(c)) {
		*st = 500;	/* gRPC: a compressed message without its encoding is INTERNAL */
		*code = GRPC_INTERNAL;
		snprintf(err, errlen, "gRPC frame: compressed flag set, but grpc-encoding is %s",
			 enc ? enc : "absent (identity)");
		return NULL;
	}
	if (flag == 1) {
		in = evbuffer_new();
		z = evbuffer_new();
		if (!in || !z || evbuffer_add_reference(in, p, len, NULL, NULL)) {
			*st = 503;
			*code = GRPC_UNAVAILABLE;
			snprintf(err, errlen, "gateway out of memory");
			goto out_free;
		}
		rc = call_gunzip(in, z, call_max_body(c), &why);
		if (rc == -EFBIG) {
			*st = 413;
			*code = GRPC_RESOURCE_EXHAUSTED;
			snprintf(err, errlen, "gzip message inflates past limits.max_body_bytes (%llu)",
				 (unsigned long long)call_max_body(c));
			goto out_free;
		}
		if (rc) {
			*st = rc == -ENOMEM ? 503 : 500;
			*code = rc == -ENOMEM ? GRPC_UNAVAILABLE : GRPC_INTERNAL;
			snprintf(err, errlen, "gzip message: %s", rc == -ENOMEM ? "out of memory" : why);
			goto out_free;
		}
		plain = evbuffer_get_length(z);
		p = evbuffer_pullup(z, -1);
	}
	msg = grpc_unpack(d, plain, p);
	if (!msg)
		snprintf(err, errlen, "%s: %zu bytes that are not a valid %s message", d->short_name,
			 plain, d->name);
out_free:
	if (z)
		evbuffer_free(z);
	if (in)
		evbuffer_free(in);
	return msg;
}

/*
 * A ModelInferRequest (unary, or one of a stream's) whose raw input views
 * the call's body instead of protobuf-c's copy of it (a memcpy and a block
 * the size of the tensor per request): the message's chain - not its
 * bytes - moves here and is freed with the message (grpc_held_free).
 */
struct grpc_held {
	Inference__ModelInferRequest *req;
	struct evbuffer *body;		/* the message, which req->raw_input_contents views */
	ProtobufCBinaryData raw;
};

/* A raw input under this many bytes is copied (as protobuf-c does): the
 * copy costs less than the holder. */
#define GRPC_HELD_MIN CALL_OWNED_SLICE

static void grpc_held_free(struct grpc_held *h)
{
	h->req->n_raw_input_contents = 0;	/* views: not protobuf-c's to free */
	h->req->raw_input_contents = NULL;
	grpc_msg_free(&h->req->base);
	evbuffer_free(h->body);
	free(h);
}

/* c->body's first chain holds its first n bytes and no more (so that
 * evbuffer_remove_buffer moves that chain rather than copying from it). */
static bool grpc_first_chain_is(struct call *c, size_t n)
{
	struct evbuffer_iovec v;

	return evbuffer_peek(c->body, -1, NULL, &v, 1) >= 1 && v.iov_len == n;
}

/*
 * The ModelInferRequest of len bytes at p, the message c->body starts with
 * (its 5-byte prefix, then p: pulled up), with its raw input viewing the
 * body, whose first chain - that message, and nothing else - moves into
 * the holder returned.  NULL (c->body untouched) unless it has one raw
 * input (the only valid count: a model has one input) of at least
 * GRPC_HELD_MIN bytes, when the chain holds more than the message (it
 * would be copied), when gc_split_raw does not read the bytes or they do
 * not unpack (the caller unpacks them whole, and says why), or when out of
 * memory.
 */
static struct grpc_held *grpc_held_unpack(struct call *c, const uint8_t *p, size_t len)
{
	size_t n, rest_len;
	struct grpc_held *h;
	uint8_t *rest;

	if (len < GRPC_HELD_MIN || !grpc_first_chain_is(c, GRPC_FRAME_HDR + len) ||
	    gc_split_raw(p, len, NULL, &n, NULL, &rest_len) || n != 1 ||
	    len - rest_len < GRPC_HELD_MIN)
		return NULL;
	h = malloc(sizeof(*h));
	rest = malloc(rest_len ? rest_len : 1);
	if (!h || !rest || !(h->body = evbuffer_new()))
		goto fail;
	gc_split_raw(p, len, &h->raw, &n, rest, &rest_len);
	h->req = (Inference__ModelInferRequest *)grpc_unpack(
		&inference__model_infer_request__descriptor, rest_len, rest);
	if (!h->req ||
	    evbuffer_remove_buffer(c->body, h->body, GRPC_FRAME_HDR + len) != (int)(GRPC_FRAME_HDR + len)) {
		grpc_msg_free(h->req ? &h->req->base : NULL);
		evbuffer_free(h->body);
		goto fail;
	}
	free(rest);
	h->req->n_raw_input_contents = 1;
	h->req->raw_input_contents = &h->raw;
	return h;
fail:
	free(rest);
	free(h);
	return NULL;
}

/*
 * The request's one message: c->body is exactly one gRPC frame (unary).
 * Returns it unpacked (free with grpc_msg_free), or
 * NULL with c answered.  The body is bounded by limits.max_body_bytes
 * before this runs (h2.c), so is the message (inflated, too).  With held
 * (a ModelInferRequest), an uncompressed one whose raw input is large
 * views the body (grpc_held_unpack): *held is then its holder (free that,
 * with grpc_held_free, not the message), else NULL.
 */
static ProtobufCMessage *grpc_unframe(struct call *c, const ProtobufCMessageDescriptor *d,
				      struct grpc_held **held)
{
	size_t len = evbuffer_get_length(c->body);
	const uint8_t *p = evbuffer_pullup(c->body, len);
	ProtobufCMessage *msg;
	char err[GRPC_MSG_MAX];
	int st, code;
	size_t mlen;

	if (len < GRPC_FRAME_HDR) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT,
			  "gRPC frame: %zu bytes, expected a 5-byte prefix and one %s", len, d->name);
		return NULL;
	}
	mlen = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
	if (mlen != len - GRPC_FRAME_HDR) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT,
			  "gRPC frame: prefix says %zu bytes, the stream carries %zu (one message per unary call)",
			  mlen, len - GRPC_FRAME_HDR);
		return NULL;
	}
	if (held && !p[0] && (*held = grpc_held_unpack(c, p + GRPC_FRAME_HDR, mlen)))
		return &(*held)->req->base;
	msg = grpc_decode(c, d, p[0], p + GRPC_FRAME_HDR, mlen, &st, &code, err, sizeof(err));
	if (!msg)
		grpc_fail(c, st, code, "%s", err);
	return msg;
}

/*
 * The model that name and version (may be empty) name into *m: 0, or 400
 * (no name) / 404 (unknown model or version) with err.
 */
static int grpc_lookup(const struct runtime *rt, const char *field, const char *name,
		       const char *version, const struct model **m, char *err, size_t errlen)
{
	*m = NULL;
	if (!name || !name[0]) {
		snprintf(err, errlen, "%s: expected a model name", field);
		return 400;
	}
	*m = rt_find_model(rt, name);
	if (!*m) {
		snprintf(err, errlen, "unknown model \"%.200s\"", name);
		return 404;
	}
	if (version && version[0] && (strspn(version, "0123456789") != strlen(version) ||
				      atoi(version) != (*m)->version)) {
		snprintf(err, errlen, "model \"%s\" has no version \"%.32s\" (serving %d)",
			 (*m)->name, version, (*m)->version);
		*m = NULL;
		return 404;
	}
	return 0;
}

/* grpc_lookup, or NULL with c answered NOT_FOUND / INVALID_ARGUMENT. */
static const struct model *grpc_model(struct call *c, const char *field, const char *name,
				       const char *version)
{
	const struct model *m;
	char err[GRPC_MSG_MAX];
	int st = grpc_lookup(c->rt, field, name, version, &m, err, sizeof(err));

	if (st)
		grpc_fail(c, st, grpc_code(st), "%s", err);
	return m;
}

/* ---- the small methods ---- */

static void grpc_server_live(struct call *c, ProtobufCMessage *in)
{
	Inference__ServerLiveResponse out = INFERENCE__SERVER_LIVE_RESPONSE__INIT;

	out.live = true;
	grpc_reply(c, &out.base);
}

static void grpc_server_ready(struct call *c, ProtobufCMessage *in)
{
	Inference__ServerReadyResponse out = INFERENCE__SERVER_READY_RESPONSE__INIT;

	out.ready = true;
	for (int i = 0; i < c->rt->n_models; i++)
		if (!rt_model_ready(c->rt, c->rt->models[i]->m))
			out.ready = false;
	grpc_reply(c, &out.base);
}

static void grpc_model_ready(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelReadyRequest *req = (Inference__ModelReadyRequest *)in;
	Inference__ModelReadyResponse out = INFERENCE__MODEL_READY_RESPONSE__INIT;
	const struct model *m = grpc_model(c, "name", req->name, req->version);

	if (!m)
		return;
	out.ready = rt_model_ready(c->rt, m);
	grpc_reply(c, &out.base);
}

static void grpc_server_metadata(struct call *c, ProtobufCMessage *in)
{
	Inference__ServerMetadataResponse out = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
	size_t n;
	const char *const *ext = api_extensions_list(&n);

	/* protobuf-c's fields are not const; packing only reads them */
	out.name = (char *)"infergw";
	out.version = (char *)infergw_version;
	out.n_extensions = n;
	out.extensions = (char **)ext;
	grpc_reply(c, &out.base);
}

/* A tensor_spec as TensorMetadata (shape points into dims: int64_t). */
static void grpc_tensor_meta(Inference__ModelMetadataResponse__TensorMetadata *t,
			     const struct tensor_spec *ts)
{
	inference__model_metadata_response__tensor_metadata__init(t);
	t->name = ts->name;
	t->datatype = (char *)dtype_kserve_name(ts->dtype);
	t->n_shape = ts->ndim;
	t->shape = (int64_t *)ts->dims;
}

static void grpc_model_metadata(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelMetadataRequest *req = (Inference__ModelMetadataRequest *)in;
	Inference__ModelMetadataResponse out = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
	Inference__ModelMetadataResponse__TensorMetadata ti, to, *pi = &ti, *po = &to;
	const struct model *m = grpc_model(c, "name", req->name, req->version);
	char ver[16], *vp = ver;

	if (!m)
		return;
	grpc_int_str(ver, m->version);
	grpc_tensor_meta(&ti, &m->input);
	grpc_tensor_meta(&to, &m->output);
	out.name = m->name;
	out.n_versions = 1;
	out.versions = &vp;
	out.platform = m->platform ? m->platform : (char *)"infergw-mlp";
	out.n_inputs = 1;
	out.inputs = &pi;
	out.n_outputs = 1;
	out.outputs = &po;
	grpc_reply(c, &out.base);
}

/* ---- ModelInfer ---- */


/* The input's release: the unpacked request the input views. */
static void grpc_release_msg(void *arg)
{
	grpc_msg_free(arg);
}

/* A ModelInferResponse for a finished request (its views live in g). */
struct grpc_infer_msg {
	Inference__ModelInferResponse out;
	Inference__ModelInferResponse__InferOutputTensor t, *pt;
	ProtobufCBinaryData raw;
	int64_t shape[2];
	char ver[16];
};

/* Fill g for r's output, id echoed (g must not move while packed). */
static void grpc_infer_msg(struct grpc_infer_msg *g, const struct infer_req *r, const char *id)
{
	inference__model_infer_response__init(&g->out);
	inference__model_infer_response__infer_output_tensor__init(&g->t);
	grpc_int_str(g->ver, r->model->version);
	g->shape[0] = r->rows;
	g->shape[1] = r->model->out_dim;
	g->t.name = r->model->output.name;
	g->t.datatype = (char *)dtype_kserve_name(r->model->output.dtype);
	g->t.n_shape = 2;
	g->t.shape = g->shape;
	g->pt = &g->t;
	g->raw.len = (size_t)r->rows * r->model->out_dim * sizeof(float);
	g->raw.data = (uint8_t *)r->output;	/* little-endian FP32, as raw contents are */
	g->out.model_name = r->model->name;
	g->out.model_version = g->ver;
	g->out.id = (char *)id;
	g->out.n_outputs = 1;
	g->out.outputs = &g->pt;
	g->out.n_raw_output_contents = 1;
	g->out.raw_output_contents = &g->raw;
}

/*
 * One gRPC message in a new evbuffer: msg's packed fields, then bytes
 * field number field (above every field of msg's type: protobuf-c packs
 * in field order, so these are the bytes it would pack) whose value is
 * p[0..n) (malloc'd), appended by reference (call_buf_add_owned) rather
 * than copied in; with outer (a field number, else 0) all of that the
 * value of that length-delimited field of an enclosing message, its only
 * field set (ModelStreamInferResponse.infer_response).  NULL (p freed,
 * *why saying why) when out of memory or over one gRPC message's size.
 */
static struct evbuffer *grpc_owned_msg(const ProtobufCMessage *msg, uint32_t field, void *p,
				       size_t n, uint32_t outer, const char **why)
{
	uint8_t head[GC_BYTES_HEAD_MAX], ohead[GC_BYTES_HEAD_MAX];
	size_t hl = gc_bytes_head(head, field, n);
	size_t m = gc_pack_size(msg), inner = m + hl + n;
	size_t ol = outer ? gc_bytes_head(ohead, outer, inner) : 0, len = ol + inner;
	size_t fixed = GRPC_FRAME_HDR + ol + m + hl;
	struct evbuffer *e = len <= UINT32_MAX ? evbuffer_new() : NULL;
	struct evbuffer_iovec v;
	uint8_t *w;

	*why = len > UINT32_MAX ? "response too large for one gRPC message" : "gateway out of memory";
	if (!e || evbuffer_reserve_space(e, (ev_ssize_t)fixed, &v, 1) != 1 || v.iov_len < fixed) {
		free(p);
		if (e)
			evbuffer_free(e);
		return NULL;
	}
	w = v.iov_base;
	gc_frame_head(w, len);
	memcpy(w + GRPC_FRAME_HDR, ohead, ol);
	gc_pack(msg, w + GRPC_FRAME_HDR + ol);
	memcpy(w + GRPC_FRAME_HDR + ol + m, head, hl);
	v.iov_len = fixed;
	evbuffer_commit_space(e, &v, 1);
	if (call_buf_add_owned(e, p, n)) {
		evbuffer_free(e);	/* frees p with the slices added */
		return NULL;
	}
	return e;
}

/* grpc_owned_msg's message appended to c->resp: NULL, or why not (p
 * freed, nothing appended). */
static const char *grpc_append_owned(struct call *c, const ProtobufCMessage *msg, uint32_t field,
				     void *p, size_t n, uint32_t outer)
{
	const char *why;
	struct evbuffer *e = grpc_owned_msg(msg, field, p, n, outer, &why);
	int rc;

	if (!e)
		return why;
	rc = evbuffer_add_buffer(c->resp, e);
	evbuffer_free(e);
	return rc ? "gateway out of memory" : NULL;
}

/* r's output, handed over (the request's pool makes a new buffer when next
 * used) and left out of g (n_raw_output_contents 0) when it is large
 * enough to go by reference; else NULL (g packs it in). */
static float *grpc_take_output(struct infer_req *r, struct grpc_infer_msg *g)
{
	float *out = r->output;

	if (g->raw.len < CALL_OWNED_SLICE)
		return NULL;
	g->out.n_raw_output_contents = 0;
	r->output = NULL;
	r->output_cap = 0;
	return out;
}

/* r's answer (g): its output packed in, or a large one by reference. */
static void grpc_infer_reply(struct call *c, struct infer_req *r, struct grpc_infer_msg *g)
{
	float *out = grpc_take_output(r, g);
	const char *why;

	if (!out) {
		grpc_reply(c, &g->out.base);
		return;
	}
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	why = grpc_append_owned(c, &g->out.base, GC_RAW_OUTPUT_FIELD, out, g->raw.len, 0);
	if (why)
		grpc_respond_status(c, 500, GRPC_INTERNAL, why);
	else
		grpc_finish(c, 200, GRPC_OK, NULL);
}

/* Runs on the owner loop when the backend is done (or the request expired). */
static void grpc_infer_done(struct infer_req *r)
{
	struct call *c = r->ctx;
	struct grpc_infer *gi = c->api;
	struct grpc_infer_msg g;

	c->async = false;
	if (call_detached(c)) {
		api_account(r, 0, 0);
		call_free(c);
		return;
	}
	call_pin(c);
	if (r->status) {
		api_account(r, r->status, now_ns());
		grpc_fail(c, r->status, grpc_code(r->status), "%s", r->errmsg);
		goto out_unpin;
	}
	api_account(r, 200, now_ns());
	grpc_infer_msg(&g, r, gi->id);
	grpc_infer_reply(c, r, &g);
out_unpin:
	call_unpin(c);
}

/*
 * Priority and objective from parameters, then grpc-timeout (deadline
 * true: a unary call's deadline is its request's), then x-* headers.
 */
static int grpc_objective(struct call *c, const struct model *m,
			  const Inference__ModelInferRequest *req, bool deadline, int *prio,
			  uint64_t *objective_ns, int *variant, char *err, size_t errlen)
{
	struct front_hints h = { .x_priority = call_hdr(c, CALL_H_X_PRIORITY),
				 .x_slo_ms = call_hdr(c, CALL_H_X_SLO_MS) };
	const char *gt = deadline ? call_hdr(c, CALL_H_GRPC_TIMEOUT) : NULL;
	int64_t tmo = gc_timeout_us(gt);

	if (gc_infer_params(req, &h, err, errlen))
		return 400;
	*variant = h.variant;
	if (tmo < 0) {
		snprintf(err, errlen, "grpc-timeout: expected 1 to 8 digits and a unit (H M S m u n), "
			 "got \"%.32s\"", gt);
		return 400;
	}
	if (!h.timeout_us)
		h.timeout_us = tmo;	/* the client's deadline is the objective */
	return front_objective(rt_model_conf(c->rt, m), &h, prio, objective_ns, err, errlen);
}

/*
 * Check req and fill sp (model, input viewing req, priority, objective;
 * the caller adds release, sink, on_done and ctx).  0, or an HTTP status
 * with err; *m is the model when it was found (for counting errors).
 */
static int grpc_infer_spec(struct call *c, const Inference__ModelInferRequest *req, bool deadline,
			   const struct model **m, struct front_spec *sp, char *err, size_t errlen)
{
	int rows, prio, st, variant = 0;
	uint64_t objective;
	const float *data;

	st = grpc_lookup(c->rt, "model_name", req->model_name, req->model_version, m, err, errlen);
	if (st)
		return st;
	if (strlen(req->id) > KS_ID_MAX) {
		snprintf(err, errlen, "id: %zu bytes, at most %d", strlen(req->id), KS_ID_MAX);
		return 400;
	}
	st = gc_infer_input(*m, req, &rows, &data, err, errlen);
	if (!st)
		st = grpc_objective(c, *m, req, deadline, &prio, &objective, &variant, err, errlen);
	if (st)
		return st;
	*sp = (struct front_spec){
		.model = *m, .in = { .rows = rows, .data = data },
		.priority = prio, .objective_ns = objective, .arrival_ns = c->start_ns,
		.sink = c->sink, .variant = variant,
	};
	return 0;
}

/* The input's release for a request whose raw inputs view its body. */
static void grpc_release_held(void *arg)
{
	grpc_held_free(arg);
}

/* The front request's input release: held when req views its message
 * (held->req is req), else req. */
static void grpc_set_release(struct front_spec *sp, Inference__ModelInferRequest *req,
			     struct grpc_held *held)
{
	sp->in.release = held ? grpc_release_held : grpc_release_msg;
	sp->in.arg = held ? (void *)held : req;
}

/* req freed, or held with it (req not submitted). */
static void grpc_req_free(Inference__ModelInferRequest *req, struct grpc_held *held)
{
	if (held)
		grpc_held_free(held);
	else
		grpc_msg_free(&req->base);
}

/* Submit req (viewing held's body when held is not NULL; either is
 * freed, at once or with the request) or answer why not. */
static void grpc_model_infer(struct call *c, Inference__ModelInferRequest *req,
			     struct grpc_held *held)
{
	const struct model *m;
	struct front_spec sp;
	struct grpc_infer *gi;
	char err[GRPC_MSG_MAX];
	int st;

	st = grpc_infer_spec(c, req, true, &m, &sp, err, sizeof(err));
	if (st)
		goto out_err;
	gi = call_api_new(c, sizeof(*gi));
	if (!gi) {
		st = 503;
		snprintf(err, sizeof(err), "gateway out of memory");
		goto out_err;
	}
	grpc_copy_id(gi->id, req->id);
	grpc_set_release(&sp, req, held);
	sp.on_done = grpc_infer_done;
	sp.ctx = c;
	c->req = front_req_new(c->pool, &sp);	/* owns req from here on */
	if (!c->req) {
		api_count_error(c, m);
		grpc_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
		return;
	}
	st = front_submit(c->rt, c->req, NULL, now_ns());
	if (st) {
		api_account(c->req, st, now_ns());
		grpc_fail(c, st, grpc_code(st), "%s", c->req->errmsg);
		return;
	}
	c->async = true;
	return;
out_err:
	if (m)
		api_count_error(c, m);
	grpc_fail(c, st, grpc_code(st), "%s", err);
	grpc_req_free(req, held);
}

/* ModelInfer: the body's one message, submitted. */
static void grpc_model_infer_unary(struct call *c)
{
	struct grpc_held *held = NULL;
	ProtobufCMessage *in = grpc_unframe(c, &inference__model_infer_request__descriptor, &held);

	if (!in)
		return;
	if (!held)	/* the message holds copies: the body's bytes are no longer needed */
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
	grpc_model_infer(c, (Inference__ModelInferRequest *)in, held);
}

/* ---- ModelStreamInfer ---- */

/*
 * One bidirectional stream: ModelInferRequest messages arrive as DATA and
 * each is submitted as soon as it is whole (h2.c calls grpc_stream_data);
 * each answer (ModelStreamInferResponse) is written as it completes.
 * Bounded: at most GRPC_STREAM_INFLIGHT requests in flight; while that many
 * are (or GRPC_STREAM_OUT_MAX answer bytes wait for the client to read),
 * no more messages are parsed and the received bytes are not given back to
 * the client's flow-control windows, so the client stops sending at its
 * window (h2.c: room for one message of limits.max_body_bytes, at least
 * 1 MiB); a message is at most limits.max_body_bytes.
 */
#define GRPC_STREAM_INFLIGHT 64
#define GRPC_STREAM_OUT_MAX (1 << 20)

struct grpc_sreq;

/* The call's stream state (c->api; plain free()d with the call, so it owns
 * nothing when the call goes: the call is freed with no request in flight). */
struct grpc_stream {
	bool ended;			/* the client half-closed */
	bool failed;			/* a framing error: finish once in_flight drains */
	/* where messages start in what arrives (grpc_stream_add) */
	bool own_chain;			/* the next message starts a chain of its own */
	bool unframed;			/* a refused prefix: the rest goes in as it comes */
	uint8_t npfx;			/* the next message's prefix, as far as it came */
	uint8_t pfx[GRPC_FRAME_HDR];
	size_t msg_left;		/* bytes of the current message still to come */
	uint64_t msg_room;		/* its block's room, counted (call_reserve) */
	int fail_http, fail_code;
	char fail_msg[GRPC_MSG_MAX];
	int in_flight;
	struct grpc_sreq *slot[GRPC_STREAM_INFLIGHT];	/* for cancellation */
};

/* One request of a stream in flight (ctx of its infer_req). */
struct grpc_sreq {
	struct call *c;
	int slot;
	struct infer_req *r;
	char id[KS_ID_MAX + 1];
};

bool grpc_is_stream(struct call *c)
{
	return c->grpc && c->path && grpc_call_method(c) == GM_STREAM_INFER;
}

/* Append msg to c->resp as one length-prefixed message. */
static void grpc_put(struct call *c, const ProtobufCMessage *msg)
{
	grpc_put_packed(c, msg, gc_pack_size(msg));
}

/* An answer on the stream that says what went wrong with one request. */
static void grpc_stream_error(struct call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void grpc_stream_error(struct call *c, const char *fmt, ...)
{
	Inference__ModelStreamInferResponse out = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
	char msg[GRPC_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	out.error_message = msg;
	grpc_put(c, &out.base);
	call_stream_write(c);
}

/*
 * A message's 5-byte prefix (st->pfx) is in: it goes into c->body, and
 * the message after it - if large (>= GRPC_HELD_MIN, uncompressed, within
 * limits.max_body_bytes, and the connection's budget for declared bodies
 * allows: call_reserve) - into a chain of its own with room for all of
 * it, so that it leaves the body without a copy (grpc_held_unpack).  A
 * message after such a block starts a chain of its own too (the block's
 * spare room would take it).  A prefix gc_frame refuses goes in as it is:
 * grpc_stream_next fails the stream on it.
 */
static void grpc_stream_begin(struct call *c, struct grpc_stream *st)
{
	uint8_t flag;
	size_t mlen = 0, room = 0;
	int rc = gc_frame(st->pfx, GRPC_FRAME_HDR, call_max_body(c), &flag, &mlen);
	struct evbuffer *t;

	st->npfx = 0;
	st->unframed = rc < 0;
	st->msg_left = st->unframed ? 0 : mlen;
	if (rc >= 0 && !flag && mlen >= GRPC_HELD_MIN && !call_reserve(c, GRPC_FRAME_HDR + mlen))
		room = GRPC_FRAME_HDR + mlen;
	st->msg_room = room;
	if ((room || st->own_chain) && (t = evbuffer_new())) {
		if (!evbuffer_expand(t, room ? room : GRPC_FRAME_HDR) &&
		    !evbuffer_add(t, st->pfx, GRPC_FRAME_HDR) && !evbuffer_add_buffer(c->body, t)) {
			evbuffer_free(t);
			st->own_chain = room != 0;
			return;
		}
		evbuffer_free(t);
	}
	evbuffer_add(c->body, st->pfx, GRPC_FRAME_HDR);
	if (room)
		call_unreserve(c, room);	/* no block after all */
	st->msg_room = 0;
	st->own_chain = false;
}

void grpc_stream_add(struct call *c, const uint8_t *p, size_t n)
{
	struct grpc_stream *st = c->api;
	size_t k;

	if (!st || !c->grpc_stream || st->failed) {	/* as it comes */
		evbuffer_add(c->body, p, n);
		return;
	}
	while (n) {
		if (st->unframed) {	/* a prefix refused: the rest as it comes */
			evbuffer_add(c->body, p, n);
			return;
		}
		if (st->msg_left) {
			k = n < st->msg_left ? n : st->msg_left;
			evbuffer_add(c->body, p, k);	/* into the block, when it has one */
			st->msg_left -= k;
			if (!st->msg_left && st->msg_room) {
				call_unreserve(c, st->msg_room);	/* filled */
				st->msg_room = 0;
			}
		} else {
			k = GRPC_FRAME_HDR - st->npfx;
			if (k > n)
				k = n;
			memcpy(st->pfx + st->npfx, p, k);
			st->npfx += k;
			if (st->npfx == GRPC_FRAME_HDR)
				grpc_stream_begin(c, st);
		}
		p += k;
		n -= k;
	}
}

/* Stop reading the stream: finish with this status once nothing is in flight. */
static void grpc_stream_fail(struct call *c, int http_status, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void grpc_stream_fail(struct call *c, int http_status, int code, const char *fmt, ...)
{
	struct grpc_stream *st = c->api;
	va_list ap;

	if (st->failed)
		return;
	st->failed = true;
	st->fail_http = http_status;
	st->fail_code = code;
	va_start(ap, fmt);
	vsnprintf(st->fail_msg, sizeof(st->fail_msg), fmt, ap);
	va_end(ap);
}

/* q leaves the stream's in-flight set (nothing cancels it after this). */
static void grpc_sreq_unslot(struct grpc_stream *st, struct grpc_sreq *q)
{
	st->slot[q->slot] = NULL;
	st->in_flight--;
}

static void grpc_sreq_free(struct grpc_sreq *q)
{
	front_req_put(q->r);
	free(q);
}

/* r's answer (g) on the stream: as grpc_infer_reply's, wrapped in a
 * ModelStreamInferResponse. */
static void grpc_stream_answer(struct call *c, struct infer_req *r, struct grpc_infer_msg *g)
{
	Inference__ModelStreamInferResponse out = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
	float *o = grpc_take_output(r, g);
	const char *why;

	if (!o) {
		out.infer_response = &g->out;
		grpc_put(c, &out.base);
	} else {
		why = grpc_append_owned(c, &g->out.base, GC_RAW_OUTPUT_FIELD, o, g->raw.len,
					GC_STREAM_INFER_RESPONSE_FIELD);
		if (why) {
			grpc_stream_error(c, "%s", why);	/* writes it */
			return;
		}
	}
	call_stream_write(c);
}

/* A request of the stream is done: write its answer, take more. */
static void grpc_stream_done(struct infer_req *r)
{
	struct grpc_sreq *q = r->ctx;
	struct call *c = q->c;
	struct grpc_stream *st = c->api;
	struct grpc_infer_msg g;

	grpc_sreq_unslot(st, q);
	if (call_detached(c)) {
		api_account(r, 0, 0);
		grpc_sreq_free(q);
		if (!st->in_flight)
			call_free(c);	/* the last one frees the abandoned call */
		return;
	}
	call_pin(c);
	if (r->status) {
		api_account(r, r->status, now_ns());
		grpc_stream_error(c, "%s", r->errmsg);
	} else {
		api_account(r, 200, now_ns());
		grpc_infer_msg(&g, r, q->id);
		grpc_stream_answer(c, r, &g);
	}
	grpc_sreq_free(q);
	grpc_stream_data(c);
	call_unpin(c);
}

/* Submit one request of the stream (owns req), or answer why not. */
static void grpc_stream_submit(struct call *c, struct grpc_stream *st,
			       Inference__ModelInferRequest *req, struct grpc_held *held)
{
	const struct model *m;
	struct front_spec sp;
	struct grpc_sreq *q;
	char err[GRPC_MSG_MAX];
	int rc, slot = 0;

	rc = grpc_infer_spec(c, req, false, &m, &sp, err, sizeof(err));
	if (rc)
		goto out_err;
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, sizeof(err), "gateway out of memory");
		goto out_err;
	}
	while (st->slot[slot])
		slot++;		/* in_flight < GRPC_STREAM_INFLIGHT: one is free */
	q->c = c;
	q->slot = slot;
	grpc_copy_id(q->id, req->id);
	grpc_set_release(&sp, req, held);
	sp.on_done = grpc_stream_done;
	sp.ctx = q;
	q->r = front_req_new(c->pool, &sp);	/* owns req from here on */
	if (!q->r) {
		free(q);
		api_count_error(c, m);
		grpc_stream_error(c, "gateway out of memory");
		return;
	}
	rc = front_submit(c->rt, q->r, NULL, now_ns());
	if (rc) {
		api_account(q->r, rc, now_ns());
		grpc_stream_error(c, "%s", q->r->errmsg);
		front_req_put(q->r);
		free(q);
		return;
	}
	st->slot[slot] = q;
	st->in_flight++;
	return;
out_err:
	if (m)
		api_count_error(c, m);
	grpc_stream_error(c, "%s", err);
	grpc_req_free(req, held);
}

/*
 * The next whole message of c->body, unpacked into *req (NULL when its
 * bytes are not a ModelInferRequest: answered on the stream), *held its
 * holder when it views its bytes (grpc_held_unpack), else NULL.  1 when
 * one was taken, 0 when none is whole yet, -1 when the framing is broken
 * (the stream failed).
 */
static int grpc_stream_next(struct call *c, Inference__ModelInferRequest **req,
			    struct grpc_held **held)
{
	uint64_t max = call_max_body(c);
	size_t len = evbuffer_get_length(c->body), mlen = 0;
	uint8_t hdr[GRPC_FRAME_HDR], flag = 0;
	char err[GRPC_MSG_MAX];
	const uint8_t *p;
	int rc, st, code;

	*req = NULL;
	*held = NULL;
	evbuffer_copyout(c->body, hdr, sizeof(hdr));
	rc = gc_frame(hdr, len, max, &flag, &mlen);
	if (rc == -EPROTO) {
		grpc_stream_fail(c, 400, GRPC_INVALID_ARGUMENT,
				 "gRPC frame: compressed flag %u, expected 0 or 1", flag);
		return -1;
	}
	if (rc == -EFBIG) {
		grpc_stream_fail(c, 413, GRPC_RESOURCE_EXHAUSTED,
				 "gRPC message of %zu bytes exceeds limits.max_body_bytes (%llu)",
				 mlen, (unsigned long long)max);
		return -1;
	}
	if (rc == 0)
		return 0;
	if (flag == 1 && !grpc_gzip(c)) {	/* so would every message be */
		grpc_stream_fail(c, 500, GRPC_INTERNAL,
				 "gRPC frame: compressed flag set, but grpc-encoding is not gzip");
		return -1;
	}
	p = evbuffer_pullup(c->body, GRPC_FRAME_HDR + mlen);
	if (!p) {
		grpc_stream_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
		return -1;
	}
	if (!flag && (*held = grpc_held_unpack(c, p + GRPC_FRAME_HDR, mlen))) {
		*req = (*held)->req;	/* its bytes left c->body with it */
		return 1;
	}
	*req = (Inference__ModelInferRequest *)grpc_decode(
		c, &inference__model_infer_request__descriptor, flag, p + GRPC_FRAME_HDR, mlen,
		&st, &code, err, sizeof(err));
	evbuffer_drain(c->body, GRPC_FRAME_HDR + mlen);
	if (!*req)
		grpc_stream_error(c, "%s", err);	/* the stream goes on */
	return 1;
}

uint64_t grpc_body_size(const uint8_t *p, size_t n)
{
	uint8_t flag;
	size_t mlen;

	if (n < GRPC_FRAME_HDR || gc_frame(p, n, UINT64_MAX, &flag, &mlen) < 0)
		return 0;
	return GRPC_FRAME_HDR + (uint64_t)mlen;
}

/* Answer the end of the stream: OK, or why it failed (c may be freed). */
static void grpc_stream_finish(struct call *c, struct grpc_stream *st)
{
	size_t left = evbuffer_get_length(c->body);

	c->async = false;
	if (!st->failed && left)
		grpc_stream_fail(c, 400, GRPC_INVALID_ARGUMENT,
				 "the stream ended inside a message (%zu bytes of it)", left);
	if (st->failed)
		grpc_finish(c, st->fail_http, st->fail_code, st->fail_msg);
	else
		grpc_finish(c, 200, GRPC_OK, NULL);
}

void grpc_stream_data(struct call *c)
{
	struct grpc_stream *st = c->api;
	Inference__ModelInferRequest *req;
	struct grpc_held *held;

	if (!st || c->responded || call_detached(c) || !c->grpc_stream)
		return;
	call_pin(c);
	while (!st->failed && st->in_flight < GRPC_STREAM_INFLIGHT &&
	       evbuffer_get_length(c->resp) < GRPC_STREAM_OUT_MAX) {
		int rc = grpc_stream_next(c, &req, &held);

		if (rc <= 0)
			break;
		if (req)
			grpc_stream_submit(c, st, req, held);
	}
	if (st->failed)		/* what comes after a broken frame is dropped */
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
	/* Room for more: give what arrived back to the client's windows. */
	if (st->failed || (st->in_flight < GRPC_STREAM_INFLIGHT &&
			   evbuffer_get_length(c->resp) < GRPC_STREAM_OUT_MAX))
		call_stream_consume(c);
	if ((st->ended || st->failed) && !st->in_flight &&
	    evbuffer_get_length(c->resp) < GRPC_STREAM_OUT_MAX)
		grpc_stream_finish(c, st);
	call_unpin(c);
}

void grpc_stream_input_end(struct call *c)
{
	struct grpc_stream *st = c->api;

	if (!st || c->responded || !c->grpc_stream)
		return;
	st->ended = true;
	evbuffer_add(c->body, st->pfx, st->npfx);	/* a cut prefix: grpc_stream_next says so */
	st->npfx = 0;
	grpc_stream_data(c);
}

void grpc_stream_abandon(struct call *c)
{
	struct grpc_stream *st = c->api;

	c->conn = NULL;		/* nothing more is sent; completions free c */
	for (int i = 0; st && i < GRPC_STREAM_INFLIGHT; i++) {
		struct grpc_sreq *q = st->slot[i];

		if (q && front_cancel(q->r)) {
			api_account(q->r, 0, 0);
			grpc_sreq_unslot(st, q);
			grpc_sreq_free(q);
		}
	}
	if (!st || !st->in_flight)
		call_free(c);
}

/* Open the stream (headers in): the messages come with grpc_stream_data. */
static void grpc_stream_open(struct call *c)
{
	struct grpc_stream *st = calloc(1, sizeof(*st));

	if (!st) {
		grpc_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
		return;
	}
	c->api = st;
	c->async = true;	/* answers come later; a reset abandons it */
	/* bytes that came before: where their messages start is not tracked */
	st->unframed = evbuffer_get_length(c->body) > 0;
	grpc_stream_data(c);	/* a body that came with the headers */
}

/* ---- Triton's extensions: configuration, statistics, repository ---- */

/*
 * These answer what the HTTP endpoints answer, from the same encoders: the
 * JSON they write is turned into the method's message by field name
 * (protobuf-c's descriptors), so there is one source for each and the
 * field names are Triton's in both.  JSON keys the message does not have
 * are skipped, as are objects for map fields (always empty here).
 */
static ProtobufCMessage *grpc_from_json(const ProtobufCMessageDescriptor *d, json_t *obj);

/* The size of one value of field f in its repeated array. */
static size_t grpc_field_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 8;
	}
}

/* Store JSON value v as field f's value at p.  0, or -1 (left unset). */
static int grpc_json_value(const ProtobufCFieldDescriptor *f, json_t *v, void *p)
{
	json_int_t i = json_is_integer(v) ? json_integer_value(v) :
		       json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		*(int32_t *)p = (int32_t)i;
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev = json_is_string(v) ?
			protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
								     json_string_value(v)) : NULL;

		*(int32_t *)p = ev ? ev->value : (int32_t)i;
		return 0;
	}
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		*(int64_t *)p = (int64_t)i;
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = (float)json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_STRING:
		if (!json_is_string(v) || !(*(char **)p = strdup(json_string_value(v))))
			return -1;
		return 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		if (!json_is_object(v) || !(*(void **)p = grpc_from_json(f->descriptor, v)))
			return -1;
		return 0;
	default:		/* bytes: none in these answers */
		return -1;
	}
}

/* A repeated field from a JSON array. */
static void grpc_json_array(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *arr)
{
	size_t *n = (size_t *)((char *)m + f->quantifier_offset), sz = grpc_field_size(f);
	char *vals = json_array_size(arr) ? calloc(json_array_size(arr), sz) : NULL;
	size_t i;
	json_t *v;

	if (!vals)
		return;
	*(void **)((char *)m + f->offset) = vals;
	json_array_foreach(arr, i, v)
		if (!grpc_json_value(f, v, vals + *n * sz))
			(*n)++;
}

/*
 * A message of type d from JSON object obj, every part malloc'd (free it
 * with protobuf_c_message_free_unpacked(m, NULL)); NULL when out of memory.
 */
static ProtobufCMessage *grpc_from_json(const ProtobufCMessageDescriptor *d, json_t *obj)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	const char *key;
	json_t *v;

	if (!m)
		return NULL;
	d->message_init(m);
	json_object_foreach(obj, key, v) {
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(d, key);

		if (!f)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (json_is_array(v))
				grpc_json_array(m, f, v);
			continue;
		}
		if (grpc_json_value(f, v, (char *)m + f->offset))
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			*(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
	}
	return m;
}

/* Answer c with the message of type d the JSON in buf makes (buf drained). */
static void grpc_reply_json(struct call *c, const ProtobufCMessageDescriptor *d,
			    struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	json_t *obj = json_loadb((const char *)evbuffer_pullup(buf, len), len, 0, NULL);
	ProtobufCMessage *m = obj ? grpc_from_json(d, obj) : NULL;

	evbuffer_drain(buf, len);
	json_decref(obj);
	if (!m) {
		grpc_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
		return;
	}
	grpc_reply(c, m);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void grpc_model_config(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelConfigRequest *req = (Inference__ModelConfigRequest *)in;
	const struct model *m = grpc_model(c, "name", req->name, req->version);

	if (!m)
		return;
	evbuffer_add_printf(c->body, "{\"config\":");
	api_encode_config(c->body, c->rt, m);
	evbuffer_add_printf(c->body, "}");
	grpc_reply_json(c, &inference__model_config_response__descriptor, c->body);
}

static void grpc_model_statistics(struct call *c, ProtobufCMessage *in)
{
	Inference__ModelStatisticsRequest *req = (Inference__ModelStatisticsRequest *)in;
	const struct model *m = NULL;

	if (req->name[0] && !(m = grpc_model(c, "name", req->name, req->version)))
		return;
	if (!req->name[0] && req->version[0]) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT, "version: needs a model name");
		return;
	}
	stats_encode(c->body, c->rt, m);
	grpc_reply_json(c, &inference__model_statistics_response__descriptor, c->body);
}

/* A repository job is done (on c's loop): its JSON answer as the method's. */
static void grpc_repo_done(struct adm_job *j)
{
	struct call *c = j->ctx;
	json_t *doc = j->body ? json_loads(j->body, 0, NULL) : NULL;
	const char *err = json_string_value(json_object_get(doc, "error"));

	c->async = false;
	if (call_detached(c)) {
		call_free(c);
		goto out_free;
	}
	call_pin(c);
	if (!j->body) {
		grpc_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
	} else if (j->status != 200) {
		grpc_fail(c, j->status, grpc_code(j->status), "%s", err ? err : j->body);
	} else if (j->op == ADM_INDEX) {
		evbuffer_add_printf(c->resp, "{\"models\":%s}", j->body);
		grpc_reply_json(c, &inference__repository_index_response__descriptor, c->resp);
	} else {
		Inference__RepositoryModelLoadResponse load = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
		Inference__RepositoryModelUnloadResponse unload =
			INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;

		grpc_reply(c, j->op == ADM_LOAD_MODEL ? &load.base : &unload.base);
	}
	call_unpin(c);
out_free:
	json_decref(doc);
	free(j->body);
	free(j);
}

static void grpc_repository_index(struct call *c, ProtobufCMessage *in)
{
	Inference__RepositoryIndexRequest *req = (Inference__RepositoryIndexRequest *)in;

	evbuffer_add_printf(c->body, "{\"ready\":%s}", req->ready ? "true" : "false");
	adm_repository_job(c, ADM_INDEX, NULL, grpc_repo_done);
}

/*
 * Load / unload: parameters as the HTTP body's {"parameters": {...}}
 * (string, bool, int64; bytes, tritonclient's model files, as a string
 * so the HTTP path's check names the key), checked there.
 */
static void grpc_repository_model(struct call *c, enum adm_op op, const char *name, size_t n,
				  Inference__RepositoryModelLoadRequest__ParametersEntry **params)
{
	json_t *body = json_object(), *ps = json_object();
	char *text;

	for (size_t i = 0; i < n; i++) {
		const Inference__ModelRepositoryParameter *v = params[i]->value;
		json_t *jv;

		switch (v ? v->parameter_choice_case : 0) {
		case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
			jv = json_boolean(v->bool_param);
			break;
		case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
			jv = json_integer(v->int64_param);
			break;
		case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
			jv = json_string(v->string_param);
			break;
		default:
			jv = json_string("(bytes)");
		}
		json_object_set_new(ps, params[i]->key, jv);
	}
	json_object_set_new(body, "parameters", ps);
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text) {
		grpc_fail(c, 503, GRPC_UNAVAILABLE, "gateway out of memory");
		return;
	}
	evbuffer_add(c->body, text, strlen(text));
	free(text);
	if (!name[0]) {
		grpc_fail(c, 400, GRPC_INVALID_ARGUMENT, "model_name: expected a model name");
		return;
	}
	adm_repository_job(c, op, name, grpc_repo_done);
}

static void grpc_repository_load(struct call *c, ProtobufCMessage *in)
{
	Inference__RepositoryModelLoadRequest *req = (Inference__RepositoryModelLoadRequest *)in;

	grpc_repository_model(c, ADM_LOAD_MODEL, req->model_name, req->n_parameters,
			      req->parameters);
}

static void grpc_repository_unload(struct call *c, ProtobufCMessage *in)
{
	Inference__RepositoryModelUnloadRequest *req = (Inference__RepositoryModelUnloadRequest *)in;

	/* the entry types are the same message shape (key, value) */
	grpc_repository_model(c, ADM_UNLOAD_MODEL, req->model_name, req->n_parameters,
			      (Inference__RepositoryModelLoadRequest__ParametersEntry **)req->parameters);
}

/* ---- dispatch ---- */

/* The methods whose request is one small message, which fn reads and
 * which is freed when fn returns (ModelInfer and ModelStreamInfer are
 * grpc_handle's own). */
struct grpc_route {
	const ProtobufCMessageDescriptor *req;
	void (*fn)(struct call *c, ProtobufCMessage *in);
};

static const struct grpc_route grpc_routes[GM_OTHER] = {
	[GM_SERVER_LIVE] = { &inference__server_live_request__descriptor, grpc_server_live },
	[GM_SERVER_READY] = { &inference__server_ready_request__descriptor, grpc_server_ready },
	[GM_MODEL_READY] = { &inference__model_ready_request__descriptor, grpc_model_ready },
	[GM_SERVER_METADATA] = { &inference__server_metadata_request__descriptor,
				 grpc_server_metadata },
	[GM_MODEL_METADATA] = { &inference__model_metadata_request__descriptor,
				grpc_model_metadata },
	[GM_MODEL_CONFIG] = { &inference__model_config_request__descriptor, grpc_model_config },
	[GM_MODEL_STATISTICS] = { &inference__model_statistics_request__descriptor,
				  grpc_model_statistics },
	[GM_REPOSITORY_INDEX] = { &inference__repository_index_request__descriptor,
				  grpc_repository_index },
	[GM_REPOSITORY_LOAD] = { &inference__repository_model_load_request__descriptor,
				 grpc_repository_load },
	[GM_REPOSITORY_UNLOAD] = { &inference__repository_model_unload_request__descriptor,
				   grpc_repository_unload },
};

void grpc_handle(struct call *c)
{
	enum grpc_method gm = grpc_call_method(c);
	const struct grpc_route *rt;
	ProtobufCMessage *in;

	if (strcmp(c->method, "POST")) {
		grpc_fail(c, 405, GRPC_UNIMPLEMENTED, "gRPC calls are POST, got %s", c->method);
		return;
	}
	if (gm == GM_OTHER) {
		grpc_fail(c, 404, GRPC_UNIMPLEMENTED, "unknown method %.200s", c->path);
		return;
	}
	if (!grpc_encoding_ok(c))
		return;
	if (gm == GM_STREAM_INFER) {
		grpc_stream_open(c);
		return;
	}
	if (gm == GM_MODEL_INFER) {
		grpc_model_infer_unary(c);
		return;
	}
	rt = &grpc_routes[gm];
	in = grpc_unframe(c, rt->req, NULL);
	if (!in)
		return;
	/* the message holds copies: the body's bytes are no longer needed */
	evbuffer_drain(c->body, evbuffer_get_length(c->body));
	rt->fn(c, in);
	grpc_msg_free(in);
}

void grpc_metrics(struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP infergw_grpc_requests_total gRPC calls answered, by method and grpc-status.\n"
				 "# TYPE infergw_grpc_requests_total counter\n");
	for (int m = 0; m < GM_COUNT; m++)
		for (int k = 0; k < GRPC_CODES; k++) {
			unsigned long n = atomic_load_explicit(&grpc_answers[m][k],
							       memory_order_relaxed);

			if (n)
				evbuffer_add_printf(out, "infergw_grpc_requests_total{method=\"%s\",code=\"%d\"} %lu\n",
						    grpc_method_names[m], k, n);
		}
}
