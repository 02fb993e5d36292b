/*
 * h2check.h - RFC 9113 §8 request messaging rules for HTTP/2 servers.
 *
 * nghttp2's own HTTP messaging checks are off (h2_start); these take their
 * place, with the same outcomes as nghttp2 1.52 gave (the cases are in
 * tests/attack/test_h2_messaging.py), where the gateway's header callback
 * looks at each field anyway: one pass per field instead of nghttp2's
 * name, value and semantic passes, and the field's kind comes back for the
 * caller's own use (:method, :path).  A malformed request is to be reset
 * with PROTOCOL_ERROR (RFC 9113 §8.1.1) and never served.
 *
 * The state is a struct h2_msg (http.h), all zero for a new stream: fed
 * each field (h2c_field), the end of each header block (h2c_headers_end),
 * each DATA chunk (h2c_data) and the end of the stream (h2c_end_stream).
 * Pure: no I/O, no allocation.
 */
#ifndef INFERGW_H2CHECK_H
#define INFERGW_H2CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* What h2c_field found a field to be: the caller keeps :method and :path,
 * stores regular fields, skips the other pseudo-header fields. */
enum h2c_kind {
	H2C_MALFORMED = -1,
	H2C_REGULAR,
	H2C_METHOD,
	H2C_PATH,
	H2C_PSEUDO,		/* :scheme, :authority */
};

/*
 * h2c_field - check one field (name[0..nlen), value[0..vlen)) of a
 * request's header block, or of its trailers (trailer true), against m.
 * Returns its kind, or H2C_MALFORMED (m remembers it: h2c_malformed).
 */
enum h2c_kind h2c_field(struct h2_msg *m, const uint8_t *name, size_t nlen,
			const uint8_t *value, size_t vlen, bool trailer);
/*
 * What a field's bytes alone say about it (h2c_classify): its kind, the
 * once-only field it is (its flag), the flags it sets, its content-length.
 * The same bytes give the same verdict, so a caller may keep one for a
 * field that comes again (an HPACK-indexed one) and only h2c_apply it.
 */
struct h2c_verdict {
	int8_t kind;		/* enum h2c_kind; H2C_MALFORMED whatever the message */
	bool pseudo;		/* a pseudo-header field */
	uint32_t once;		/* its flag when it may come once per message; 0 */
	uint32_t set;		/* flags it sets in the message */
	uint64_t clen;		/* a content-length's value */
};

/* h2c_classify - d: the verdict on field (name[0..nlen), value[0..vlen)),
 * of any message. */
void h2c_classify(struct h2c_verdict *d, const uint8_t *name, size_t nlen,
		  const uint8_t *value, size_t vlen);
/*
 * h2c_apply - a field with verdict d comes in m's header block (trailer
 * false) or trailers: h2c_field's answer for that field (its kind, or
 * H2C_MALFORMED, which m remembers).  h2c_field(m, ...) is
 * h2c_classify(&d, ...) then h2c_apply(m, &d, trailer).
 */
enum h2c_kind h2c_apply(struct h2_msg *m, const struct h2c_verdict *d, bool trailer);
/*
 * h2c_headers_end - a header block was received whole: the request's
 * (trailer false: the pseudo-header fields it needs are there) or its
 * trailers (which must end the stream).  end_stream: the block carried
 * END_STREAM.  false when the request is malformed.
 */
bool h2c_headers_end(struct h2_msg *m, bool trailer, bool end_stream);
/* h2c_data - len more DATA bytes: false past a content-length. */
bool h2c_data(struct h2_msg *m, size_t len);
/* h2c_end_stream - DATA with END_STREAM came: false when the bytes
 * received are not the content-length. */
bool h2c_end_stream(struct h2_msg *m);
/* h2c_content_length - the request's content-length in *clen when it
 * carried one (checked: digits only, fits in int64_t, once). */
bool h2c_content_length(const struct h2_msg *m, uint64_t *clen);
/* h2c_malformed - a check on m failed (it stays failed). */
static inline bool h2c_malformed(const struct h2_msg *m) { return m->flags & H2_MSG_MALFORMED; }

#endif
