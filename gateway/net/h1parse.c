/* h1parse.c - see h1parse.h. */
#define _GNU_SOURCE
#include "h1parse.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar; a table, as names are checked byte by byte (the
 * strchr for punctuation cost ~300 instructions a request). */
static const bool h1p_tchars[256] = {
	['0' ... '9'] = true, ['A' ... 'Z'] = true, ['a' ... 'z'] = true,
	['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true,
	['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true, ['^'] = true, ['_'] = true,
	['`'] = true, ['|'] = true, ['~'] = true,
};

static bool h1p_tchar(unsigned char ch)
{
	return h1p_tchars[ch];
}

/* field-value bytes: HTAB, SP, VCHAR, obs-text; never NUL, CR, LF or DEL. */
static bool h1p_vchar(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static int h1p_hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool h1p_span_eq(struct h1p_span s, const char *lit)
{
	return s.n == strlen(lit) && !strncasecmp(s.p, lit, s.n);
}

/* "METHOD SP target SP HTTP/1.x" in line[0..len) (no CRLF).  0 or -1. */
static int h1p_request_line(const char *line, size_t len, struct h1p_reqline *rl,
			    const char **why)
{
	const char *p = line, *end = line + len, *t;

	while (p < end && h1p_tchar(*p))
		p++;
	rl->method = (struct h1p_span){ line, p - line };
	if (rl->method.n == 0 || p == end || *p != ' ') {
		*why = "malformed request line (method)";
		return -1;
	}
	t = ++p;
	/* The target: visible ASCII only (a NUL would truncate the path). */
	while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
		p++;
	/* origin-form, or the asterisk-form of OPTIONS * (RFC 9112 §3.2.4:
	 * nghttp -u sends it to upgrade to h2c before a request with a body) */
	if (p == t || p == end || *p != ' ' ||
	    (*t != '/' && !(p - t == 1 && *t == '*' && h1p_span_eq(rl->method, "OPTIONS")))) {
		*why = "malformed request line (target)";
		return -1;
	}
	rl->path.p = t;
	rl->path.n = p - t;
	{
		const char *q = memchr(t, '?', p - t);

		if (q)
			rl->path.n = q - t;
	}
	p++;
	if (end - p != 8 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1')) {
		*why = "malformed request line (version: HTTP/1.0 or HTTP/1.1)";
		return -1;
	}
	rl->minor = p[7] - '0';
	return 0;
}

/* "name: OWS value OWS" in line[0..len).  0 or -1. */
static int h1p_header_line(const char *line, size_t len, struct h1p_span *name,
			   struct h1p_span *value, const char **why)
{
	const char *p = line, *end = line + len, *v;

	while (p < end && h1p_tchar(*p))
		p++;
	if (p == line || p == end || *p != ':') {
		/* covers obs-fold (a leading SP/HT), "Name : v" and "Na me: v" */
		*why = "malformed header field (the name must be a token followed by ':')";
		return -1;
	}
	*name = (struct h1p_span){ line, p - line };
	for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	v = p;
	for (; p < end; p++)
		if (!h1p_vchar(*p)) {
			*why = "malformed header field (control character in the value)";
			return -1;
		}
	while (p > v && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	*value = (struct h1p_span){ v, p - v };
	return 0;
}

/* The first "\r\n" in [p, end), or NULL: memchr for the '\r' is a
 * fraction of what memmem costs on these short lines. */
static const char *h1p_crlf(const char *p, const char *end)
{
	while (p < end) {
		const char *r = memchr(p, '\r', (size_t)(end - p));

		if (!r || r + 1 >= end)
			return NULL;
		if (r[1] == '\n')
			return r;
		p = r + 1;
	}
	return NULL;
}

const char *h1p_head_end(const char *p, size_t len)
{
	const char *end = p + len, *r;

	/* From one CRLF to the next: the first one followed by another is
	 * the first "\r\n\r\n" (none can start inside a CRLF skipped). */
	while ((r = h1p_crlf(p, end)) != NULL) {
		if (end - r >= 4 && r[2] == '\r' && r[3] == '\n')
			return r + 4;
		p = r + 2;
	}
	return NULL;
}

int h1p_parse_head(const char *buf, size_t len, struct h1p_reqline *rl,
		   h1p_header_cb on_header, void *arg, const char **why)
{
	const char *p = buf, *end = buf + len, *eol;
	int rc;

	eol = h1p_crlf(p, end);
	if (!eol) {
		*why = "malformed request line";
		return 400;
	}
	if (h1p_request_line(p, eol - p, rl, why))
		return 400;
	for (p = eol + 2; p < end; p = eol + 2) {
		struct h1p_span name, value;

		eol = h1p_crlf(p, end);
		if (!eol) {
			*why = "malformed request head (lines end in CRLF)";
			return 400;
		}
		if (eol == p)
			return p + 2 == end ? 0 : (*why = "data after the request head", 400);
		if (h1p_header_line(p, eol - p, &name, &value, why))
			return 400;
		rc = on_header(arg, name, value);
		if (rc)
			return rc;
	}
	*why = "request head without its empty line";
	return 400;
}

bool h1p_content_length(struct h1p_span v, uint64_t *n)
{
	uint64_t x = 0;

	if (v.n == 0 || v.n > 19)
		return false;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(v.p[i] - '0');
	}
	*n = x;
	return true;
}

static void h1p_framing_fail(struct h1p_framing *f, int status, const char *why)
{
	if (!f->status) {
		f->status = status;
		f->why = why;
	}
}

void h1p_framing_add(struct h1p_framing *f, struct h1p_span name, struct h1p_span value)
{
	uint64_t n = 0;

	if (h1p_span_eq(name, "content-length")) {
		if (!h1p_content_length(value, &n))
			h1p_framing_fail(f, 400, "Content-Length: not a number");
		else if (f->has_length && n != f->length)
			h1p_framing_fail(f, 400, "Content-Length: several different values");
		f->has_length = true;
		f->length = n;
	} else if (h1p_span_eq(name, "transfer-encoding")) {
		if (++f->n_te > 1)
			h1p_framing_fail(f, 400, "Transfer-Encoding: sent more than once");
		else if (!h1p_span_eq(value, "chunked"))
			h1p_framing_fail(f, 501, "Transfer-Encoding: only chunked is supported");
		f->chunked = true;
	}
}

int h1p_framing_end(struct h1p_framing *f)
{
	if (f->status)
		return f->status;
	if (f->chunked && f->has_length) {
		f->why = "both Transfer-Encoding and Content-Length";
		return f->status = 400;
	}
	return 0;
}

bool h1p_chunk_size(const char *line, size_t len, uint64_t *size)
{
	uint64_t x = 0;
	size_t i = 0;

	for (; i < len && i < 17 && h1p_hexval(line[i]) >= 0; i++)
		x = x << 4 | (uint64_t)h1p_hexval(line[i]);
	if (i == 0 || i > 16)
		return false;
	if (i < len) {
		if (line[i] != ';')
			return false;
		for (i++; i < len; i++)
			if (!h1p_vchar(line[i]))
				return false;
	}
	*size = x;
	return true;
}

enum {
	CK_SIZE,	/* hex digits */
	CK_EXT,		/* after ';' until CR */
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER,	/* a trailer line (or the final empty one) */
	CK_TRAILER_LF,
	CK_DONE,
};

void h1p_chunked_init(struct h1p_chunked *ck, uint64_t max_body, uint32_t max_trailer)
{
	memset(ck, 0, sizeof(*ck));
	ck->max_body = max_body;
	ck->max_trailer = max_trailer;
}

static int h1p_ck_fail(struct h1p_chunked *ck, int status, const char *why)
{
	ck->why = why;
	return status;
}

/* The size line is complete: check the size against what is left. */
static int h1p_ck_sized(struct h1p_chunked *ck)
{
	if (ck->left > ck->max_body - ck->body)		/* never wraps: body <= max */
		return h1p_ck_fail(ck, 413, "request body exceeds limits.max_body_bytes");
	ck->state = ck->left ? CK_DATA : CK_TRAILER;
	ck->line = 0;
	return 0;
}

/* One byte of a size line, trailer or CRLF.  0 or a status. */
static int h1p_ck_byte(struct h1p_chunked *ck, unsigned char ch)
{
	int h;

	if (++ck->line > H1P_LINE_MAX && ck->state != CK_TRAILER)
		return h1p_ck_fail(ck, 400, "malformed chunked body (size line too long)");
	switch (ck->state) {
	case CK_SIZE:
		h = h1p_hexval(ch);
		if (h >= 0 && ck->digits < 16) {
			ck->left = ck->left << 4 | (uint64_t)h;
			ck->digits++;
			return 0;
		}
		if (ck->digits == 0 || h >= 0)
			return h1p_ck_fail(ck, 400, "malformed chunked body (chunk size: 1-16 hex digits)");
		if (ch == ';') {
			ck->state = CK_EXT;
			return 0;
		}
		if (ch == '\r') {
			ck->state = CK_SIZE_LF;
			return 0;
		}
		return h1p_ck_fail(ck, 400, "malformed chunked body (chunk size: 1-16 hex digits)");
	case CK_EXT:
		if (ch == '\r')
			ck->state = CK_SIZE_LF;
		else if (!h1p_vchar(ch))
			return h1p_ck_fail(ck, 400, "malformed chunked body (chunk extension)");
		return 0;
	case CK_SIZE_LF:
		if (ch != '\n')
			return h1p_ck_fail(ck, 400, "malformed chunked body (CRLF after the size)");
		return h1p_ck_sized(ck);
	case CK_DATA_CR:
		if (ch != '\r')
			return h1p_ck_fail(ck, 400, "malformed chunked body (CRLF after the data)");
		ck->state = CK_DATA_LF;
		return 0;
	case CK_DATA_LF:
		if (ch != '\n')
			return h1p_ck_fail(ck, 400, "malformed chunked body (CRLF after the data)");
		ck->state = CK_SIZE;
		ck->digits = 0;
		ck->left = 0;
		ck->line = 0;
		return 0;
	case CK_TRAILER:
		if (++ck->trailer > ck->max_trailer)
			return h1p_ck_fail(ck, 431, "chunked trailer exceeds limits.max_header_bytes");
		if (ch == '\r')
			ck->state = CK_TRAILER_LF;
		else if (!h1p_vchar(ch))
			return h1p_ck_fail(ck, 400, "malformed chunked body (trailer field)");
		return 0;
	case CK_TRAILER_LF:
		if (ch != '\n')
			return h1p_ck_fail(ck, 400, "malformed chunked body (CRLF after a trailer)");
		ck->state = ck->line == 2 ? CK_DONE : CK_TRAILER;	/* "\r\n" alone ends it */
		ck->line = 0;
		return 0;
	}
	return h1p_ck_fail(ck, 400, "malformed chunked body");
}

int h1p_chunked_feed(struct h1p_chunked *ck, const char *in, size_t len, size_t *used,
		     h1p_data_cb on_data, void *arg)
{
	size_t i = 0;
	int rc;

	while (i < len && ck->state != CK_DONE) {
		if (ck->state == CK_DATA) {
			size_t n = len - i < ck->left ? len - i : (size_t)ck->left;

			on_data(arg, in + i, n);
			i += n;
			ck->left -= n;
			ck->body += n;
			if (!ck->left)
				ck->state = CK_DATA_CR;
			continue;
		}
		rc = h1p_ck_byte(ck, (unsigned char)in[i++]);
		if (rc) {
			*used = i;
			return rc;
		}
	}
	*used = i;
	return ck->state == CK_DONE;
}
