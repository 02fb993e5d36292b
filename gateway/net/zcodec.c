/* zcodec.c - see zcodec.h. */
#include "zcodec.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Output is produced in pieces of this size, so the cap is checked often. */
#define ZC_PIECE (64 * 1024)

const char *zc_name(enum zc_coding coding)
{
	return coding == ZC_GZIP ? "gzip" : coding == ZC_DEFLATE ? "deflate" : "identity";
}

static bool zc_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* The next element of a comma list at *p: [*s, *s + *n), trimmed; *p
 * moves past it.  false at the end of the list. */
static bool zc_next_elem(const char **p, const char **s, size_t *n)
{
	const char *q = *p, *e;

	while (*q == ',' || zc_ows(*q))
		q++;
	if (!*q)
		return false;
	e = strchr(q, ',');
	if (!e)
		e = q + strlen(q);
	*p = e;
	while (e > q && zc_ows(e[-1]))
		e--;
	*s = q;
	*n = (size_t)(e - q);
	return true;
}

static bool zc_is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && !strncasecmp(s, lit, n);
}

/* A coding name, or -1 when not one of ours (identity is ZC_IDENTITY). */
static int zc_lookup(const char *s, size_t n)
{
	if (zc_is(s, n, "gzip") || zc_is(s, n, "x-gzip"))
		return ZC_GZIP;
	if (zc_is(s, n, "deflate"))
		return ZC_DEFLATE;
	if (zc_is(s, n, "identity"))
		return ZC_IDENTITY;
	return -1;
}

int zc_content_coding(const char *value, enum zc_coding *coding, const char **bad,
		      size_t *badlen)
{
	const char *p = value, *s;
	size_t n;

	while (zc_next_elem(&p, &s, &n)) {
		int k = zc_lookup(s, n);

		if (k < 0) {
			*bad = s;
			*badlen = n;
			return -ENOTSUP;
		}
		if (k == ZC_IDENTITY)
			continue;
		if (*coding != ZC_IDENTITY)
			return -E2BIG;
		*coding = (enum zc_coding)k;
	}
	return 0;
}

/* "0", "0.5", "1.000" (RFC 9110 §12.4.2 qvalue) in thousandths, or -1. */
static int zc_qnumber(const char *p, const char *end)
{
	int q, scale = 100;

	if (p == end || (*p != '0' && *p != '1'))
		return -1;
	q = (*p++ - '0') * 1000;
	if (p < end && *p++ != '.')
		return -1;
	for (; p < end; p++, scale /= 10) {
		if (*p < '0' || *p > '9' || scale == 0)
			return -1;
		q += (*p - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

/* The q of an element "coding;q=0.5;x=y" in thousandths: 1000 when it has
 * none, -1 when it is malformed. */
static int zc_qvalue(const char *s, size_t n)
{
	const char *end = s + n, *p = memchr(s, ';', n);

	while (p) {
		const char *e;

		for (p++; p < end && zc_ows(*p); p++)
			;
		e = memchr(p, ';', (size_t)(end - p));
		if (!e)
			e = end;
		if (e - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			while (e > p + 2 && zc_ows(e[-1]))
				e--;
			return zc_qnumber(p + 2, e);
		}
		p = e < end ? e : NULL;
	}
	return 1000;
}

enum zc_coding zc_accept(const char *value)
{
	int qg = -1, qd = -1, qstar = -1;
	const char *p = value, *s;
	size_t n;

	if (!value)
		return ZC_IDENTITY;
	while (zc_next_elem(&p, &s, &n)) {
		const char *semi = memchr(s, ';', n);
		size_t name = semi ? (size_t)(semi - s) : n;
		int q = zc_qvalue(s, n);

		while (name > 0 && zc_ows(s[name - 1]))
			name--;
		if (q < 0)
			q = 0;	/* a q we cannot read: do not rely on that coding */
		if (zc_is(s, name, "*"))
			qstar = q;
		else if (zc_lookup(s, name) == ZC_GZIP)
			qg = q;
		else if (zc_lookup(s, name) == ZC_DEFLATE)
			qd = q;
	}
	if (qg < 0)
		qg = qstar;
	if (qd < 0)
		qd = qstar;
	if (qg <= 0 && qd <= 0)
		return ZC_IDENTITY;
	return qg >= qd ? ZC_GZIP : ZC_DEFLATE;
}

/* Walks the chains of an evbuffer, handing zlib one at a time. */
struct zc_src {
	struct evbuffer *buf;
	struct evbuffer_ptr pos;	/* start of the next chain to hand out */
	size_t len, handed;
};

static void zc_src_init(struct zc_src *src, struct evbuffer *buf)
{
	src->buf = buf;
	src->len = evbuffer_get_length(buf);
	src->handed = 0;
	evbuffer_ptr_set(buf, &src->pos, 0, EVBUFFER_PTR_SET);
}

/* Point z at the next piece of input when it has used the last. */
static void zc_src_feed(struct zc_src *src, z_stream *z)
{
	struct evbuffer_iovec v;

	if (z->avail_in > 0 || src->handed >= src->len)
		return;
	if (evbuffer_peek(src->buf, -1, &src->pos, &v, 1) < 1 || v.iov_len == 0)
		return;
	if (v.iov_len > src->len - src->handed)
		v.iov_len = src->len - src->handed;
	if (v.iov_len > UINT32_MAX)
		v.iov_len = UINT32_MAX;
	z->next_in = v.iov_base;
	z->avail_in = (uInt)v.iov_len;
	src->handed += v.iov_len;
	evbuffer_ptr_set(src->buf, &src->pos, v.iov_len, EVBUFFER_PTR_ADD);
}

/* Bytes of input zlib has not consumed yet. */
static size_t zc_src_left(const struct zc_src *src, const z_stream *z)
{
	return src->len - src->handed + z->avail_in;
}

/* Is the next unconsumed input the start of another gzip member? */
static bool zc_gzip_follows(const struct zc_src *src, const z_stream *z)
{
	struct evbuffer_ptr at;
	unsigned char magic[2];

	if (evbuffer_ptr_set(src->buf, &at, src->handed - z->avail_in, EVBUFFER_PTR_SET) ||
	    evbuffer_copyout_from(src->buf, &at, magic, 2) != 2)
		return false;
	return magic[0] == 0x1f && magic[1] == 0x8b;
}

/* RFC 1950 §2.2: CM 8, CINFO <= 7, and the check bits. */
static bool zc_zlib_header(struct evbuffer *in)
{
	unsigned char h[2];

	if (evbuffer_copyout(in, h, 2) != 2)
		return false;
	return (h[0] & 0x0f) == 8 && (h[0] >> 4) <= 7 && ((h[0] << 8) | h[1]) % 31 == 0;
}

/* One inflate step into a piece of out of at most room bytes.  The zlib
 * status; *made is what it produced. */
static int zc_inflate_piece(z_stream *z, struct evbuffer *out, size_t room, size_t *made)
{
	struct evbuffer_iovec v;
	int rc;

	*made = 0;
	if (evbuffer_reserve_space(out, (ev_ssize_t)room, &v, 1) < 1)
		return Z_MEM_ERROR;
	if (v.iov_len > room)
		v.iov_len = room;
	z->next_out = v.iov_base;
	z->avail_out = (uInt)v.iov_len;
	rc = inflate(z, Z_NO_FLUSH);
	*made = v.iov_len - z->avail_out;
	v.iov_len = *made;
	evbuffer_commit_space(out, &v, 1);
	return rc;
}

static int zc_inflate_loop(z_stream *z, struct zc_src *src, struct evbuffer *out,
			   enum zc_coding coding, size_t cap, const char **why)
{
	size_t total = 0;

	for (;;) {
		/* One byte of room past the cap tells "exactly cap" from "more". */
		size_t room = cap - total < ZC_PIECE ? cap - total + 1 : ZC_PIECE, made;
		int rc;

		zc_src_feed(src, z);
		rc = zc_inflate_piece(z, out, room, &made);
		total += made;
		if (total > cap)
			return -EFBIG;
		switch (rc) {
		case Z_OK:
			continue;
		case Z_STREAM_END:
			zc_src_feed(src, z);
			if (zc_src_left(src, z) == 0)
				return 0;
			if (coding == ZC_GZIP && zc_gzip_follows(src, z) && inflateReset(z) == Z_OK)
				continue;	/* RFC 1952 §2.2: a series of members */
			*why = "data after the end of the stream";
			return -EINVAL;
		case Z_BUF_ERROR:	/* no progress: out of input (room is never 0) */
			*why = "truncated";
			return -EINVAL;
		case Z_NEED_DICT:
			*why = "preset dictionaries are not supported";
			return -EINVAL;
		case Z_MEM_ERROR:
			return -ENOMEM;
		default:
			*why = z->msg ? z->msg : "corrupt data";
			return -EINVAL;
		}
	}
}

int zc_inflate(struct evbuffer *in, struct evbuffer *out, enum zc_coding coding, size_t cap,
	       const char **why)
{
	z_stream z;
	struct zc_src src;
	int wbits, rc;

	if (coding == ZC_IDENTITY)
		return evbuffer_get_length(in) > cap ? -EFBIG :
		       evbuffer_add_buffer_reference(out, in) ? -ENOMEM : 0;
	if (cap >= SIZE_MAX - ZC_PIECE)
		cap = SIZE_MAX - ZC_PIECE;	/* room = cap - total + 1 never wraps */
	/* 15 + 16: gzip only; 15: zlib; -15: raw deflate. */
	wbits = coding == ZC_GZIP ? 15 + 16 : zc_zlib_header(in) ? 15 : -15;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, wbits) != Z_OK)
		return -ENOMEM;
	zc_src_init(&src, in);
	rc = zc_inflate_loop(&z, &src, out, coding, cap, why);
	inflateEnd(&z);
	return rc;
}

/* Compress all of src into out with flush mode Z_FINISH at the end. */
static int zc_deflate_loop(z_stream *z, struct zc_src *src, struct evbuffer *out)
{
	for (;;) {
		struct evbuffer_iovec v;
		int rc, flush;

		zc_src_feed(src, z);
		flush = zc_src_left(src, z) == z->avail_in ? Z_FINISH : Z_NO_FLUSH;
		if (evbuffer_reserve_space(out, ZC_PIECE, &v, 1) < 1)
			return -ENOMEM;
		if (v.iov_len > ZC_PIECE)
			v.iov_len = ZC_PIECE;
		z->next_out = v.iov_base;
		z->avail_out = (uInt)v.iov_len;
		rc = deflate(z, flush);
		v.iov_len -= z->avail_out;
		evbuffer_commit_space(out, &v, 1);
		if (rc == Z_STREAM_END)
			return 0;
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return -ENOMEM;
	}
}

int zc_deflate(struct evbuffer *in, struct evbuffer *out, enum zc_coding coding, int level)
{
	z_stream z;
	struct zc_src src;
	int rc;

	if ((coding != ZC_GZIP && coding != ZC_DEFLATE) || level < 1 || level > 9)
		return -EINVAL;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, level, Z_DEFLATED, coding == ZC_GZIP ? 15 + 16 : 15, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	zc_src_init(&src, in);
	rc = zc_deflate_loop(&z, &src, out);
	deflateEnd(&z);
	return rc;
}
