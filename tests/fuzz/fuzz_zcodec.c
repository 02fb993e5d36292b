/*
 * fuzz_zcodec.c - libFuzzer target for the request-body inflater
 * (gateway/net/zcodec.c).  Byte 0 picks the coding and the cap, byte 1 where
 * the input is split into two evbuffer chains; the rest is the body.
 * Invariants: the only results are 0, -EFBIG and -EINVAL (with a reason);
 * the output never passes the cap (by more than the one byte that tells
 * "more" apart); and what inflates compresses and inflates back to itself.
 * The Content-Encoding / Accept-Encoding parsers get the bytes as text.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "zcodec.h"

static void fz_headers(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	enum zc_coding c = ZC_IDENTITY;
	const char *bad = NULL;
	size_t badlen = 0;
	int rc;

	memcpy(s, data, size);
	s[size] = 0;
	rc = zc_content_coding(s, &c, &bad, &badlen);
	FZ_CHECK(rc == 0 || rc == -ENOTSUP || rc == -E2BIG);
	if (rc == -ENOTSUP)
		FZ_CHECK(bad >= s && bad + badlen <= s + strlen(s));
	c = zc_accept(s);
	FZ_CHECK(c == ZC_IDENTITY || c == ZC_GZIP || c == ZC_DEFLATE);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 0, 1, 100, 4096, 65536, 1 << 20 };
	enum zc_coding coding;
	struct evbuffer *in, *out;
	const char *why = NULL;
	size_t cap, split;
	int rc;

	fz_headers(data, size);
	if (size < 2)
		return 0;
	coding = data[0] & 1 ? ZC_DEFLATE : ZC_GZIP;
	cap = caps[(data[0] >> 1) % (sizeof(caps) / sizeof(caps[0]))];
	split = data[1] % (size - 1);
	data += 2;
	size -= 2;
	in = evbuffer_new();
	out = evbuffer_new();
	/* two chains: evbuffer_add would merge them into one */
	evbuffer_add_reference(in, data, split, NULL, NULL);
	evbuffer_add_reference(in, data + split, size - split, NULL, NULL);
	rc = zc_inflate(in, out, coding, cap, &why);
	FZ_CHECK(rc == 0 || rc == -EFBIG || rc == -EINVAL);
	FZ_CHECK(evbuffer_get_length(in) == size);
	FZ_CHECK(evbuffer_get_length(out) <= cap + 1);
	if (rc == -EINVAL)
		FZ_CHECK(why && why[0]);
	if (rc == 0) {
		struct evbuffer *z = evbuffer_new(), *back = evbuffer_new();
		size_t n = evbuffer_get_length(out);

		FZ_CHECK(n <= cap);
		FZ_CHECK(zc_deflate(out, z, coding, 1) == 0);
		FZ_CHECK(zc_inflate(z, back, coding, n, &why) == 0);
		FZ_CHECK(evbuffer_get_length(back) == n);
		FZ_CHECK(n == 0 || !memcmp(evbuffer_pullup(back, -1), evbuffer_pullup(out, -1), n));
		evbuffer_free(z);
		evbuffer_free(back);
	}
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
