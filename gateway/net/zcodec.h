/*
 * zcodec.h - HTTP content codings (RFC 9110 §8.4.1) with zlib: inflating
 * request bodies (Content-Encoding: gzip / deflate, as Triton's clients
 * send with request_compression_algorithm) and compressing responses
 * (Accept-Encoding).  Pure functions over evbuffers: no connection, no
 * config; the caller (call.c) gives the cap.
 *
 * Decompression is incremental and capped: output is produced a bounded
 * piece at a time and stops as soon as it passes the cap, so a body that
 * inflates 1000:1 (or 1,000,000:1 nested) costs at most the cap in memory
 * and the time to produce it, never what it claims to hold.
 */
#ifndef INFERGW_ZCODEC_H
#define INFERGW_ZCODEC_H

#include <stddef.h>

struct evbuffer;

enum zc_coding { ZC_IDENTITY, ZC_GZIP, ZC_DEFLATE };

/* zc_name - "identity", "gzip" or "deflate". */
const char *zc_name(enum zc_coding coding);

/*
 * zc_content_coding - fold one Content-Encoding field value (a comma list
 * of codings; "identity" entries count for nothing; "x-gzip" is gzip) into
 * *coding, which starts as ZC_IDENTITY and carries over between several
 * fields of one request.  0; -ENOTSUP for an unknown coding (*bad and
 * *badlen point at its name in value); -E2BIG when the request would have
 * more than one coding applied (stacked codings are not supported).
 */
int zc_content_coding(const char *value, enum zc_coding *coding, const char **bad,
		      size_t *badlen);

/*
 * zc_accept - the coding to answer with, given the request's
 * Accept-Encoding value (NULL: none): ZC_GZIP or ZC_DEFLATE when the
 * client accepts it with q > 0 (the higher q wins, gzip on a tie; "*"
 * stands for any coding not listed), else ZC_IDENTITY.
 */
enum zc_coding zc_accept(const char *value);

/*
 * zc_inflate - decode in (left unchanged) as coding and append the result
 * to out, never more than cap bytes.  ZC_GZIP: one or more gzip members
 * (RFC 1952), CRC-32 and length checked; ZC_DEFLATE: a zlib stream (RFC
 * 1950), or a raw deflate stream (RFC 1951) when in does not start with a
 * zlib header (some clients send that).  Returns 0; -EFBIG as soon as the
 * output would pass cap; -EINVAL when in is not a complete, valid stream
 * of that coding (*why: a constant string saying what, e.g. "incorrect
 * data check", "truncated", "data after the end of the stream"); -ENOMEM.
 * On error out may hold part of the output: the caller discards it.
 */
int zc_inflate(struct evbuffer *in, struct evbuffer *out, enum zc_coding coding, size_t cap,
	       const char **why);

/*
 * zc_deflate - compress in (left unchanged) as coding (ZC_GZIP or
 * ZC_DEFLATE, the zlib format HTTP calls deflate) at zlib level (1-9)
 * and append it to out.  0, -EINVAL (bad coding or level) or -ENOMEM.
 */
int zc_deflate(struct evbuffer *in, struct evbuffer *out, enum zc_coding coding, int level);

#endif
