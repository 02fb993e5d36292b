/*
 * fuzz_h2w.c - libFuzzer target for the native HTTP/2 server engine
 * (gateway/net/h2w.c) and its HPACK decoder (hpack.c).
 *
 * The input's first byte seeds how the rest is cut into h2w_recv calls
 * (1 to 64 bytes at a time, or all at once); the client preface is sent
 * first so the fuzzer starts at the frames.  The fake gateway answers
 * every request whose stream ended: HEADERS, a body of (stream id % 3000)
 * bytes from an evbuffer, trailers on every third stream; it resets every
 * fifth stream at its first field and gives received DATA back.  Output is
 * written with a small cap and thrown away between inputs, so flow control
 * and blocked streams are reached.
 *
 * Invariants checked (abort on failure): h2w_recv takes at most what it
 * was given; after a fatal error nothing more is fed; a stream's
 * callbacks come between its begin and its close, close comes once; no
 * callback names a stream the engine never began; a field's bytes are
 * readable (copied out).
 */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "h2w.h"

struct fz_stream {
	int32_t sid;
	struct evbuffer *body;
	bool closed;
	struct fz_stream *next;
};

struct fz_conn {
	struct h2w *s;
	struct fz_stream *streams;
	uint8_t sink[256];
};

static struct fz_stream *fz_find(struct fz_conn *c, int32_t sid)
{
	for (struct fz_stream *st = c->streams; st; st = st->next)
		if (st->sid == sid && !st->closed)
			return st;
	return NULL;
}

static int fz_begin(void *arg, int32_t sid)
{
	struct fz_conn *c = arg;
	struct fz_stream *st;

	FZ_CHECK(sid > 0 && !fz_find(c, sid));	/* ids are positive, begun once */
	st = calloc(1, sizeof(*st));
	if (!st)
		return -1;
	st->sid = sid;
	st->body = evbuffer_new();
	st->next = c->streams;
	c->streams = st;
	h2w_set_user(c->s, sid, st);
	return 0;
}

static int fz_field(void *arg, int32_t sid, void *user, const struct hpack_field *f, bool trailer)
{
	struct fz_conn *c = arg;
	struct fz_stream *st = user;

	FZ_CHECK(st && st->sid == sid && !st->closed);
	/* the bytes are readable */
	memcpy(c->sink, f->name, f->nlen < sizeof(c->sink) ? f->nlen : sizeof(c->sink));
	memcpy(c->sink, f->value, f->vlen < sizeof(c->sink) ? f->vlen : sizeof(c->sink));
	if (sid % 5 == 0)
		h2w_reset(c->s, sid, H2W_CANCEL);
	return 0;
}

static int fz_data(void *arg, int32_t sid, void *user, const uint8_t *p, size_t n)
{
	struct fz_conn *c = arg;
	struct fz_stream *st = user;

	FZ_CHECK(!st || (st->sid == sid && !st->closed));
	if (n)
		c->sink[0] = p[n - 1];
	h2w_consume_stream(c->s, sid, n);
	h2w_consume_conn(c->s, n);
	return 0;
}

static int fz_end(void *arg, int32_t sid, void *user, bool headers, bool trailer, bool end_stream)
{
	struct fz_conn *c = arg;
	struct fz_stream *st = user;
	struct hpack_field f[2] = {
		{ (const uint8_t *)":status", (const uint8_t *)"200", 7, 3, 0 },
		{ (const uint8_t *)"content-type", (const uint8_t *)"text/plain", 12, 10, 0 },
	};
	struct hpack_field t = { (const uint8_t *)"grpc-status", (const uint8_t *)"0", 11, 1, 0 };
	static const uint8_t fill[3000];
	size_t len = (size_t)sid % sizeof(fill);

	if (!st)
		return 0;
	FZ_CHECK(st->sid == sid && !st->closed);
	if (!end_stream)
		return 0;
	if (h2w_submit_headers(c->s, sid, f, 2, len == 0) || len == 0)
		return 0;
	evbuffer_add(st->body, fill, len);
	if (h2w_submit_data(c->s, sid, st->body) == 0)
		h2w_data_end(c->s, sid, &t, sid % 3 == 0 ? 1 : 0);
	return 0;
}

static int fz_close(void *arg, int32_t sid, void *user, uint32_t code)
{
	struct fz_stream *st = user;

	if (!st)
		return 0;
	FZ_CHECK(st->sid == sid && !st->closed);	/* closed once */
	st->closed = true;
	return 0;
}

static const struct h2w_callbacks fz_cb = {
	.begin = fz_begin, .field = fz_field, .data = fz_data, .end = fz_end, .close = fz_close,
};

static void fz_send(struct fz_conn *c, struct evbuffer *out)
{
	FZ_CHECK(h2w_send(c->s, out, 4096) >= 0);	/* out of memory only */
	evbuffer_drain(out, evbuffer_get_length(out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct h2w_config cfg = {
		.max_concurrent_streams = 8, .stream_window = 65535, .conn_window = 1 << 20,
		.max_header_list = 8192, .max_header_block = 32768,
	};
	struct fz_conn c = { 0 };
	struct evbuffer *out;
	unsigned seed;
	ssize_t n;

	if (size < 1 || !(out = evbuffer_new()))
		return 0;
	seed = data[0];
	data++, size--;
	c.s = h2w_new(&fz_cb, &c, &cfg);
	FZ_CHECK(c.s);
	n = h2w_recv(c.s, (const uint8_t *)preface, 24);
	FZ_CHECK(n == 24);
	while (size > 0) {
		size_t chunk = seed & 1 ? size : 1 + (seed >> 1) % 64;

		if (chunk > size)
			chunk = size;
		n = h2w_recv(c.s, data, chunk);
		FZ_CHECK(n <= (ssize_t)chunk);
		fz_send(&c, out);
		if (n < 0 || n < (ssize_t)chunk)
			break;	/* fatal, or the session ended */
		data += chunk, size -= chunk;
		seed = seed * 33 + 7;
	}
	fz_send(&c, out);
	h2w_free(c.s);
	while (c.streams) {
		struct fz_stream *st = c.streams;

		c.streams = st->next;
		evbuffer_free(st->body);
		free(st);
	}
	evbuffer_free(out);
	return 0;
}
