/*
 * fuzz_h1.c - libFuzzer target for the HTTP/1.1 grammar (gateway/net/h1parse.c).
 *
 * The input is a request: its head (up to the first CRLFCRLF) goes through
 * h1p_parse_head and the framing rules; what follows is decoded as a
 * chunked body twice, once whole and once split into pieces whose sizes
 * come from the first input byte, and both decodes must agree byte for
 * byte (a decoder whose answer depends on how TCP split the stream is a
 * smuggling vector).  Invariants: header names are tokens, values carry no
 * CR, LF or NUL, the path no byte below 0x21, bodies never exceed their
 * limit.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "h1parse.h"


#define MAX_BODY 4096

struct sink {
	char buf[MAX_BODY];
	size_t len;
};

static void fz_on_data(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	FZ_CHECK(s->len + n <= MAX_BODY);
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static int fz_on_header(void *arg, struct h1p_span name, struct h1p_span value)
{
	struct h1p_framing *fr = arg;

	FZ_CHECK(name.n > 0 && !memchr(name.p, ':', name.n) && !memchr(name.p, ' ', name.n));
	FZ_CHECK(!memchr(value.p, '\r', value.n) && !memchr(value.p, '\n', value.n) &&
		 !memchr(value.p, 0, value.n));
	FZ_CHECK(value.n == 0 || (value.p[0] != ' ' && value.p[value.n - 1] != ' '));
	h1p_framing_add(fr, name, value);
	return 0;
}

/* Decode body[0..len) in pieces of `step` bytes (0 = whole).  The status. */
static int fz_decode(const char *body, size_t len, size_t step, struct sink *out, size_t *used)
{
	struct h1p_chunked ck;
	size_t off = 0;
	int rc = 0;

	h1p_chunked_init(&ck, MAX_BODY, 1024);
	out->len = 0;
	while (off < len) {
		size_t n = step && len - off > step ? step : len - off, u = 0;

		rc = h1p_chunked_feed(&ck, body + off, n, &u, fz_on_data, out);
		FZ_CHECK(u <= n);
		off += u;
		if (rc)
			break;
		FZ_CHECK(u == n);
	}
	if (rc > 1)
		FZ_CHECK(ck.why != NULL);
	*used = off;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in, *end;
	struct h1p_reqline rl;
	struct h1p_framing fr;
	const char *why = NULL;
	static struct sink whole, split;
	size_t hlen, used1, used2, step;
	int st, r1, r2;

	if (size < 1)
		return 0;
	step = data[0] % 7 + 1;
	in = (const char *)data + 1;
	size--;
	end = memmem(in, size, "\r\n\r\n", 4);
	hlen = end ? (size_t)(end - in) + 4 : 0;
	if (hlen) {
		memset(&fr, 0, sizeof(fr));
		st = h1p_parse_head(in, hlen, &rl, fz_on_header, &fr, &why);
		FZ_CHECK(st == 0 || (st == 400 && why));
		if (st == 0) {
			FZ_CHECK(rl.method.n > 0 && rl.path.n > 0 &&
				 (rl.path.p[0] == '/' || (rl.path.n == 1 && rl.path.p[0] == '*')));
			for (size_t i = 0; i < rl.path.n; i++)
				FZ_CHECK((unsigned char)rl.path.p[i] > 0x20 && rl.path.p[i] != '?');
			FZ_CHECK(rl.minor == 0 || rl.minor == 1);
			st = h1p_framing_end(&fr);
			FZ_CHECK(st == 0 || ((st == 400 || st == 501) && fr.why));
			if (st == 0)
				FZ_CHECK(!(fr.chunked && fr.has_length));
		}
	}
	r1 = fz_decode(in + hlen, size - hlen, 0, &whole, &used1);
	r2 = fz_decode(in + hlen, size - hlen, step, &split, &used2);
	FZ_CHECK(r1 == r2 && used1 == used2);
	FZ_CHECK(whole.len == split.len && !memcmp(whole.buf, split.buf, whole.len));
	return 0;
}
