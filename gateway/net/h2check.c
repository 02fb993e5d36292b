/* h2check.c - RFC 9113 §8 request messaging rules (see h2check.h). */
#include "h2check.h"

#include <string.h>

#include "swar.h"

/* h2_msg.flags beyond H2_MSG_MALFORMED: fields seen, and what they said. */
#define F_METHOD	(1u << 1)
#define F_PATH		(1u << 2)
#define F_SCHEME	(1u << 3)
#define F_AUTHORITY	(1u << 4)
#define F_HOST		(1u << 5)
#define F_CLEN		(1u << 6)	/* content-length: m->clen */
#define F_REGULAR	(1u << 7)	/* a regular field came: no more pseudo-headers */
#define F_CONNECT	(1u << 8)	/* :method CONNECT */
#define F_OPTIONS	(1u << 9)
#define F_PATH_SLASH	(1u << 10)	/* :path starts with '/' */
#define F_PATH_STAR	(1u << 11)	/* :path is "*" */
#define F_SCHEME_HTTP	(1u << 12)	/* :scheme http or https (any case) */
#define F_REQ		(F_METHOD | F_PATH | F_SCHEME)

/* Character classes, one bit each. */
#define C_NAME	0x01	/* tchar, lower-case letters only (RFC 9110 §5.6.2, RFC 9113 §8.2.1) */
#define C_TOKEN	0x02	/* tchar (a method) */
#define C_VALUE	0x04	/* field-vchar, SP or HTAB */
#define C_AUTH	0x10	/* unreserved, sub-delims, ':', '@', '[', ']', '%' */

static uint8_t h2c_class[256];

__attribute__((constructor)) static void h2c_init_classes(void)
{
	static const char tspecial[] = "!#$%&'*+-.^_`|~";
	static const char auth[] = "-._~!$&'()*+,;=:@[]%";

	for (int ch = 0; ch < 256; ch++) {
		uint8_t k = 0;
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');
		bool tchar = alnum || (ch && strchr(tspecial, ch));

		if (tchar)
			k |= C_TOKEN;
		if (tchar && !(ch >= 'A' && ch <= 'Z'))
			k |= C_NAME;
		if (ch == '\t' || (ch >= 0x20 && ch != 0x7f))
			k |= C_VALUE;
		if (alnum || (ch && strchr(auth, ch)))
			k |= C_AUTH;
		h2c_class[ch] = k;
	}
}

static bool h2c_all(const uint8_t *s, size_t n, uint8_t cls)
{
	for (size_t i = 0; i < n; i++)
		if (!(h2c_class[s[i]] & cls))
			return false;
	return true;
}

/*
 * Most of a request's bytes are field names and values: checked eight at a
 * time (SWAR), the last word overlapping the one before it so that no byte
 * is left for a loop; shorter strings byte by byte.
 */
#define ONES SWAR_ONES
#define HIGHS SWAR_HIGHS
#define LOW7 SWAR_LOW7

/* No byte of x below lo (at most 128) or DEL (swar.h: exact as a yes/no
 * answer, whichever byte it is). */
static inline bool h2c_word_above(uint64_t x, uint8_t lo)
{
	return !swar_below_first(x, lo);
}

/* Every byte of x is 'a'..'z' or '-' (most names are): per byte, top bit
 * clear (so the sums below carry into no other byte), >= 'a' and not
 * > 'z', or equal to '-'. */
static inline bool h2c_word_lc(uint64_t x)
{
	uint64_t d = x ^ (ONES * '-');
	uint64_t dash = ~(((d & LOW7) + LOW7) | d) & HIGHS;

	return !(x & HIGHS) && (swar_in_range(x, 'a', 'z') | dash) == HIGHS;
}

/* No byte of s[0..n) is below lo (at most 128) or DEL. */
static bool h2c_above(const uint8_t *s, size_t n, uint8_t lo)
{
	if (n < 8) {
		for (size_t i = 0; i < n; i++)
			if (s[i] < lo || s[i] == 0x7f)
				return false;
		return true;
	}
	for (size_t i = 0; i + 8 < n; i += 8)
		if (!h2c_word_above(swar_load(s + i), lo))
			return false;
	return h2c_word_above(swar_load(s + n - 8), lo);
}

/* A field name: a lower-case token. */
static bool h2c_name_ok(const uint8_t *s, size_t n)
{
	if (n >= 8) {
		size_t i;

		for (i = 0; i + 8 < n && h2c_word_lc(swar_load(s + i)); i += 8)
			;
		if (i + 8 >= n && h2c_word_lc(swar_load(s + n - 8)))
			return true;
	}
	return h2c_all(s, n, C_NAME);	/* digits, other tchars, or bad */
}

/* A field value: field-vchars with SP/HTAB inside, none at either end. */
static bool h2c_value_ok(const uint8_t *v, size_t n)
{
	if (n == 0)
		return true;
	if (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t')
		return false;
	return h2c_above(v, n, 0x20) || h2c_all(v, n, C_VALUE);	/* HTAB: the slow way */
}

/* Only SP and HTAB (nothing counts as such): not a pseudo-header value. */
static bool h2c_blank(const uint8_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] != ' ' && v[i] != '\t')
			return false;
	return true;
}

/* A field that may come once, with a non-blank value: its flag for
 * h2c_apply to check and set; false when the value is blank. */
static bool h2c_once(struct h2c_verdict *d, uint32_t flag, const uint8_t *v, size_t n)
{
	if (h2c_blank(v, n))
		return false;
	d->once = flag;
	return true;
}

/* A content-length: decimal digits only, fits in int64_t. */
static bool h2c_clen(struct h2c_verdict *d, const uint8_t *v, size_t n)
{
	uint64_t x = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (uint64_t)(INT64_MAX - (v[i] - '0')) / 10)
			return false;
		x = x * 10 + (v[i] - '0');
	}
	d->clen = x;
	d->once = F_CLEN;
	return true;
}

static bool h2c_is(const uint8_t *s, size_t n, const char *lit, size_t litlen)
{
	return n == litlen && !memcmp(s, lit, n);
}

static bool h2c_is_ci(const uint8_t *s, size_t n, const char *lit, size_t litlen)
{
	if (n != litlen)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((s[i] | 0x20) != lit[i])
			return false;
	return true;
}

#define IS(s, n, lit) h2c_is(s, n, lit, sizeof(lit) - 1)
#define IS_CI(s, n, lit) h2c_is_ci(s, n, lit, sizeof(lit) - 1)

static bool h2c_method(struct h2c_verdict *d, const uint8_t *v, size_t n)
{
	if (!h2c_all(v, n, C_TOKEN) || !h2c_once(d, F_METHOD, v, n))
		return false;
	if (IS(v, n, "CONNECT"))
		d->set = F_CONNECT;
	else if (IS(v, n, "OPTIONS"))
		d->set = F_OPTIONS;
	d->kind = H2C_METHOD;
	return true;
}

static bool h2c_path(struct h2c_verdict *d, const uint8_t *v, size_t n)
{
	if (!h2c_above(v, n, 0x21) || !h2c_once(d, F_PATH, v, n))
		return false;
	if (v[0] == '/')
		d->set = F_PATH_SLASH;
	else if (n == 1 && v[0] == '*')
		d->set = F_PATH_STAR;
	d->kind = H2C_PATH;
	return true;
}

/* A pseudo-header field: only the four a request may carry (any other
 * name, a malformed one included, is malformed); where it may come is
 * h2c_apply's. */
static bool h2c_pseudo(struct h2c_verdict *d, const uint8_t *name, size_t nlen,
		       const uint8_t *v, size_t n)
{
	d->pseudo = true;
	d->kind = H2C_PSEUDO;
	if (IS(name, nlen, ":method"))
		return h2c_method(d, v, n);
	if (IS(name, nlen, ":path"))
		return h2c_path(d, v, n);
	if (IS(name, nlen, ":scheme")) {
		if (!h2c_value_ok(v, n) || !h2c_once(d, F_SCHEME, v, n))
			return false;
		if (IS_CI(v, n, "http") || IS_CI(v, n, "https"))
			d->set = F_SCHEME_HTTP;
		return true;
	}
	if (IS(name, nlen, ":authority"))
		return h2c_all(v, n, C_AUTH) && h2c_once(d, F_AUTHORITY, v, n);
	return false;	/* :status, :protocol (not enabled), unknown */
}

/* A regular field with rules of its own (RFC 9113 §8.2.2, §8.3.1 for host):
 * false when it breaks them. */
static bool h2c_regular(struct h2c_verdict *d, const uint8_t *name, size_t nlen,
			const uint8_t *v, size_t n)
{
	switch (nlen) {
	case 2:
		return !IS(name, nlen, "te") || IS_CI(v, n, "trailers");
	case 4:
		return !IS(name, nlen, "host") || (h2c_all(v, n, C_AUTH) &&
						   h2c_once(d, F_HOST, v, n));
	case 7:
		return !IS(name, nlen, "upgrade");
	case 10:
		return !IS(name, nlen, "connection") && !IS(name, nlen, "keep-alive");
	case 14:
		return !IS(name, nlen, "content-length") || h2c_clen(d, v, n);
	case 16:
		return !IS(name, nlen, "proxy-connection");
	case 17:
		return !IS(name, nlen, "transfer-encoding");
	}
	return true;
}

void h2c_classify(struct h2c_verdict *d, const uint8_t *name, size_t nlen,
		  const uint8_t *value, size_t vlen)
{
	bool ok;

	*d = (struct h2c_verdict){ .kind = H2C_REGULAR };
	if (nlen == 0) {
		ok = false;
	} else if (name[0] == ':') {
		ok = h2c_pseudo(d, name, nlen, value, vlen);
	} else {
		d->set = F_REGULAR;	/* a malformed one too: no pseudo-header after it */
		ok = h2c_name_ok(name, nlen) && h2c_value_ok(value, vlen) &&
		     h2c_regular(d, name, nlen, value, vlen);
	}
	if (!ok) {
		d->kind = H2C_MALFORMED;
		d->set &= F_REGULAR;
		d->once = 0;
	}
}

enum h2c_kind h2c_apply(struct h2_msg *m, const struct h2c_verdict *d, bool trailer)
{
	if (d->kind == H2C_MALFORMED) {
		m->flags |= d->set;
		goto malformed;
	}
	if (d->pseudo && (trailer || (m->flags & F_REGULAR)))
		goto malformed;	/* only in the request's block, before any regular one */
	if (d->once) {
		if (m->flags & d->once)
			goto malformed;
		m->flags |= d->once;
		if (d->once == F_CLEN)
			m->clen = d->clen;
	}
	m->flags |= d->set;
	return (enum h2c_kind)d->kind;
malformed:
	m->flags |= H2_MSG_MALFORMED;
	return H2C_MALFORMED;
}

enum h2c_kind h2c_field(struct h2_msg *m, const uint8_t *name, size_t nlen,
			const uint8_t *value, size_t vlen, bool trailer)
{
	struct h2c_verdict d;

	h2c_classify(&d, name, nlen, value, vlen);
	return h2c_apply(m, &d, trailer);
}

/* The request's header block: what it needs (RFC 9113 §8.3.1, §8.5). */
static bool h2c_request_ok(const struct h2_msg *m)
{
	uint32_t f = m->flags;

	if (f & F_CONNECT)
		return !(f & (F_SCHEME | F_PATH)) && (f & F_AUTHORITY);
	if ((f & F_REQ) != F_REQ || !(f & (F_AUTHORITY | F_HOST)))
		return false;
	/* http(s): an absolute path, or "*" for OPTIONS */
	return !(f & F_SCHEME_HTTP) || (f & F_PATH_SLASH) ||
	       ((f & F_OPTIONS) && (f & F_PATH_STAR));
}

bool h2c_headers_end(struct h2_msg *m, bool trailer, bool end_stream)
{
	bool ok = !(m->flags & H2_MSG_MALFORMED);

	if (ok && !trailer && !h2c_request_ok(m))
		ok = false;
	if (ok && !trailer && (m->flags & F_CONNECT))
		m->flags &= ~F_CLEN;	/* a tunnel's bytes are not a body */
	if (ok && trailer && !end_stream)
		ok = false;
	if (ok && end_stream)
		return h2c_end_stream(m);
	if (!ok)
		m->flags |= H2_MSG_MALFORMED;
	return ok;
}

bool h2c_data(struct h2_msg *m, size_t len)
{
	m->rx += len;
	if ((m->flags & F_CLEN) && m->rx > m->clen)
		m->flags |= H2_MSG_MALFORMED;
	return !(m->flags & H2_MSG_MALFORMED);
}

bool h2c_content_length(const struct h2_msg *m, uint64_t *clen)
{
	if (!(m->flags & F_CLEN))
		return false;
	*clen = m->clen;
	return true;
}

bool h2c_end_stream(struct h2_msg *m)
{
	if ((m->flags & F_CLEN) && m->rx != m->clen)
		m->flags |= H2_MSG_MALFORMED;
	return !(m->flags & H2_MSG_MALFORMED);
}
