/*
 * h1parse.h - the HTTP/1.1 request grammar, as pure functions over bytes.
 *
 * No connection, no allocation, no I/O: h1.c feeds these what arrived and
 * acts on the result, and tests/fuzz/fuzz_h1.c feeds them anything.  The
 * grammar is RFC 9112's, strictly: CRLF line ends, header names are tokens
 * followed directly by ':', no obs-fold, no control bytes in values or in
 * the request target, chunk sizes of 1-16 hex digits and nothing else.
 * Everything ambiguous is an error, never a guess: a server that guesses
 * differently from a proxy in front of it is a request-smuggling vector.
 */
#ifndef INFERGW_H1PARSE_H
#define INFERGW_H1PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h1p_span {
	const char *p;
	size_t n;
};

struct h1p_reqline {
	struct h1p_span method;
	struct h1p_span path;		/* the target up to '?' */
	int minor;			/* HTTP/1.<minor>: 0 or 1 */
};

/* Called for each header field of a head; non-zero stops the parse with it. */
typedef int (*h1p_header_cb)(void *arg, struct h1p_span name, struct h1p_span value);

/*
 * h1p_parse_head - a request head buf[0..len): the request line, header
 * lines, each ending in CRLF, then the empty line (len includes it).
 * Returns 0; 400 for bad syntax (*why says what); or what on_header
 * returned when it stopped the parse.
 */
int h1p_parse_head(const char *buf, size_t len, struct h1p_reqline *rl,
		   h1p_header_cb on_header, void *arg, const char **why);

/*
 * h1p_head_end - the end of the first "\r\n\r\n" in p[0..len) (the
 * byte after it: a head's length is the result minus p), or NULL.
 */
const char *h1p_head_end(const char *p, size_t len);

/* h1p_content_length - a Content-Length value: 1-19 digits, nothing else. */
bool h1p_content_length(struct h1p_span v, uint64_t *n);

/*
 * Framing of a request body from its Content-Length and Transfer-Encoding
 * fields, fed one field at a time (h1p_framing_add), then decided
 * (h1p_framing_end).  RFC 9112 §6.3: both fields, several Transfer-Encoding
 * fields, Content-Length values that differ or do not parse: 400; a coding
 * other than chunked: 501.
 */
struct h1p_framing {
	bool chunked;
	bool has_length;
	uint64_t length;
	int n_te;
	int status;			/* first error seen (400/501), 0 = none */
	const char *why;
};
void h1p_framing_add(struct h1p_framing *f, struct h1p_span name, struct h1p_span value);
/* h1p_framing_end - 0 (f->chunked / f->length say how to read the body) or a status. */
int h1p_framing_end(struct h1p_framing *f);

/* h1p_chunk_size - a chunk-size line without its CRLF: 1-16 hex digits,
 * then nothing or ';' and extensions of visible characters. */
bool h1p_chunk_size(const char *line, size_t len, uint64_t *size);

/*
 * The chunked body decoder: a state machine fed any split of the bytes.
 * Data goes to on_data; the body may not exceed max_body bytes (413),
 * nor the trailer section max_trailer bytes (431), nor one size line
 * H1P_LINE_MAX bytes (400).
 */
#define H1P_LINE_MAX 4096
struct h1p_chunked {
	int state;
	uint64_t left;			/* data bytes left in the current chunk */
	uint64_t body;			/* data bytes so far */
	uint64_t max_body;
	uint32_t max_trailer;
	uint32_t line;			/* bytes of the current line so far */
	uint32_t trailer;		/* trailer bytes so far */
	int digits;
	const char *why;		/* set with an error */
};
typedef void (*h1p_data_cb)(void *arg, const char *p, size_t n);
/* h1p_chunked_init - a decoder at the start of a chunked body. */
void h1p_chunked_init(struct h1p_chunked *ck, uint64_t max_body, uint32_t max_trailer);
/*
 * h1p_chunked_feed - decode in[0..len).  Sets *used to the bytes consumed.
 * Returns 1 when the body (with its trailers) is complete (bytes after
 * it are left unconsumed), 0 when more is needed (all of in was used), or
 * an HTTP status (400, 413, 431) with ck->why set.
 */
int h1p_chunked_feed(struct h1p_chunked *ck, const char *in, size_t len, size_t *used,
		     h1p_data_cb on_data, void *arg);

#endif
