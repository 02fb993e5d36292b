/* h1parse.c - see h1parse.h. */
#define _GNU_SOURCE
#include "h1parse.h"

#include <string.h>
#include <strings.h>

#include "swar.h"

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

/*
 * The scans below read eight bytes at a time (swar.h) while eight are
 * left before end, then byte by byte: a head ends in "\r\n\r\n", so a
 * target or a value rarely reaches the byte loop.
 */

/* The first byte of [p, end) that may not be in a field value (a control
 * other than HTAB: the CR of a line's end, say); end if none. */
static const char *h1p_value_stop(const char *p, const char *end)
{
	for (;;) {
		for (; end - p >= 8; p += 8) {
			uint64_t m = swar_below_first(swar_load(p), 0x20);

			if (m) {
				p += swar_first(m);
				break;
			}
		}
		while (p < end && h1p_vchar(*p))
			p++;
		if (p == end || *p != '\t')
			return p;
		p++;		/* HTAB: a value byte, the scan goes on */
	}
}

/* The end of the request target starting at p: its first byte that is not
 * visible ASCII, or end; *q is its first '?', or NULL. */
static const char *h1p_target_stop(const char *p, const char *end, const char **q)
{
	*q = NULL;
	for (; end - p >= 8; p += 8) {
		uint64_t x = swar_load(p), stop = swar_nonvis_first(x);
		uint64_t qm = *q ? 0 : swar_eq_first(x, '?');

		if (qm && (!stop || swar_first(qm) < swar_first(stop)))
			*q = p + swar_first(qm);
		if (stop)
			return p + swar_first(stop);
	}
	for (; p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f; p++)
		if (*p == '?' && !*q)
			*q = p;
	return p;
}

/* "\r\n" at p (before end)? */
static bool h1p_is_crlf(const char *p, const char *end)
{
	return end - p >= 2 && p[0] == '\r' && p[1] == '\n';
}

/* "METHOD SP target SP HTTP/1.x CRLF" from buf: the byte after its CRLF,
 * or NULL with *why. */
static const char *h1p_request_line(const char *buf, const char *end, struct h1p_reqline *rl,
				    const char **why)
{
	const char *p = buf, *t, *q;

	while (p < end && h1p_tchar(*p))
		p++;
	rl->method = (struct h1p_span){ buf, p - buf };
	if (rl->method.n == 0 || p == end || *p != ' ') {
		*why = "malformed request line (method)";
		return NULL;
	}
	t = ++p;
	/* The target: visible ASCII only (a NUL would truncate the path). */
	p = h1p_target_stop(t, end, &q);
	/* origin-form, or the asterisk-form of OPTIONS * (RFC 9112 §3.2.4:
	 * nghttp -u sends it to upgrade to h2c before a request with a body) */
	if (p == t || p == end || *p != ' ' ||
	    (*t != '/' && !(p - t == 1 && *t == '*' && h1p_span_eq(rl->method, "OPTIONS")))) {
		*why = "malformed request line (target)";
		return NULL;
	}
	rl->path = (struct h1p_span){ t, (q ? q : p) - t };
	p++;
	if (end - p < 8 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') ||
	    !h1p_is_crlf(p + 8, end)) {
		*why = "malformed request line (version: HTTP/1.0 or HTTP/1.1)";
		return NULL;
	}
	rl->minor = p[7] - '0';
	return p + 10;
}

/* "name: OWS value OWS CRLF" from line: the byte after its CRLF, or NULL
 * with *why. */
static const char *h1p_header_line(const char *line, const char *end, struct h1p_span *name,
				   struct h1p_span *value, const char **why)
{
	const char *p = line, *v, *e;

	while (p < end && h1p_tchar(*p))
		p++;
	if (p == line || p == end || *p != ':') {
		/* covers obs-fold (a leading SP/HT), "Name : v" and "Na me: v" */
		*why = "malformed header field (the name must be a token followed by ':')";
		return NULL;
	}
	*name = (struct h1p_span){ line, p - line };
	for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	v = p;
	e = h1p_value_stop(p, end);
	if (!h1p_is_crlf(e, end)) {
		*why = e == end || (e + 1 == end && *e == '\r')
			       ? "malformed request head (lines end in CRLF)"
			       : "malformed header field (control character in the value)";
		return NULL;
	}
	for (p = e; p > v && (p[-1] == ' ' || p[-1] == '\t'); p--)
		;
	*value = (struct h1p_span){ v, p - v };
	return e + 2;
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

/* Each line is checked as it is read, in one pass: a line ends at the
 * first CR of a CRLF, and any other control byte before it is an error. */
int h1p_parse_head(const char *buf, size_t len, struct h1p_reqline *rl,
		   h1p_header_cb on_header, void *arg, const char **why)
{
	const char *p, *end = buf + len;
	int rc;

	p = h1p_request_line(buf, end, rl, why);
	if (!p)
		return 400;
	while (p < end) {
		struct h1p_span name, value;

		if (*p == '\r') {	/* the empty line, or a control where a name starts */
			if (!h1p_is_crlf(p, end))
				break;
			return p + 2 == end ? 0 : (*why = "data after the request head", 400);
		}
		p = h1p_header_line(p, end, &name, &value, why);
		if (!p)
			return 400;
		rc = on_header(arg, name, value);
		if (rc)
			return rc;
	}
	*why = p < end ? "malformed request head (lines end in CRLF)"
		       : "request head without its empty line";
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
