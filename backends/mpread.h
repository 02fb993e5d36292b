/*
 * mpread.h - a bounded msgpack reader (mpr_) over a caller's buffer: the
 * agent protocol's decoder (backends/remote/proto.c) and the datagram
 * decoder (gateway/api/dgram.c) both walk their input with it.
 *
 * What it promises, for input from a hostile peer:
 *   - no allocation: a struct mpr is two pointers on the caller's stack;
 *   - views: a string's, bin's, ext's or float's bytes are pointers into
 *     the caller's buffer, valid as long as it is; nothing is copied;
 *   - bounded: every length and every array/map count is checked against
 *     the bytes left before it is believed (an element takes at least one
 *     byte), so a 6-byte input cannot claim 4 G elements and a caller may
 *     loop over a count it was given;
 *   - linear: mpr_skip steps over nested values without recursion, in
 *     time proportional to the bytes it steps over.
 * msgpack-c's unpacker does none of the first and third: it allocates an
 * array's objects from the count in its header before reading them.
 */
#ifndef INFERGW_MPREAD_H
#define INFERGW_MPREAD_H

#include <stdbool.h>
#include <stdint.h>

/* The bytes not yet read: [p, end).  Callers set both, then only read. */
struct mpr {
	const uint8_t *p, *end;
};

/* A value's kind as a decoder cares: integers by sign, not by encoding. */
enum mpr_kind {
	MPR_UINT,	/* any integer >= 0, whatever its encoding (int8..64 included) */
	MPR_NEG,	/* an integer < 0 */
	MPR_STR,
	MPR_BIN,
	MPR_ARRAY,
	MPR_MAP,
	MPR_FLOAT,
	MPR_BOOL,
	MPR_NIL,
	MPR_EXT,
};

/*
 * One value's head.  Scalars are whole; str/bin/ext point at their bytes;
 * an array or map gives the count of what follows (a map: pairs), which
 * the caller reads with further mpr_next/mpr_skip calls.
 */
struct mpr_val {
	enum mpr_kind kind;
	/* UINT: the value; NEG: the value as int64_t; BOOL: 0 or 1;
	 * STR/BIN/EXT: the body's length (ext: without its type byte);
	 * ARRAY: elements; MAP: pairs; FLOAT, NIL: 0 is not promised */
	uint64_t u;
	/* STR/BIN: the body; EXT: the type byte, then u bytes of body;
	 * FLOAT: 4 or 8 big-endian bytes; else NULL */
	const uint8_t *ptr;
};

/*
 * mpr_next - read one value's head at r->p into *v and move past it (past
 * a str/bin/ext/float body too; not past an array's or map's elements).
 * r: the reader (r->p <= r->end); v: the head (on failure written in
 * part or not at all: do not read it then).
 * Returns true; false when the input is truncated, is the never-used byte
 * 0xc1, or an array/map claims more elements than bytes are left (map:
 * 2 * pairs).  After false r->p is somewhere inside the value: the input
 * is not msgpack and nothing after it can be trusted.
 */
bool mpr_next(struct mpr *r, struct mpr_val *v);

/*
 * mpr_skip - step over one whole value at r->p, nested arrays and maps
 * included, without recursion and in time linear in the bytes stepped
 * over.  Returns true with r->p just past it; false as for mpr_next (then
 * r->p is somewhere inside it).  Skipping a whole buffer first proves it
 * well formed, so later mpr_next calls within it cannot fail.
 */
bool mpr_skip(struct mpr *r);

/*
 * mpr_kind_name - a kind in words for error texts ("an integer", "a map",
 * "bin", ...): static, never NULL (an unknown value reads "an extension").
 */
const char *mpr_kind_name(enum mpr_kind k);

/*
 * mpr_key_is - whether k is the string s (NUL-terminated): a map key
 * compared by length and bytes, so a key with a NUL in it never matches.
 * false for any other kind.
 */
bool mpr_key_is(const struct mpr_val *k, const char *s);

#endif
