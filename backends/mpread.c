/*
 * mpread.c - the bounded msgpack reader (see mpread.h).
 *
 * Every take of n bytes is checked against end - p first, in 64 bits, so
 * a 32-bit length from the input cannot wrap a pointer; every array or map
 * count is checked against the bytes left the same way.  That check is
 * what lets mpr_skip keep a plain counter of values still to step over:
 * the counter never exceeds the bytes left, so the walk is linear and
 * needs no stack.
 */
#include "mpread.h"

#include <string.h>

/* Take n bytes from r into *p; false when fewer are left. */
static bool rd_take(struct mpr *r, uint64_t n, const uint8_t **p)
{
	if (n > (uint64_t)(r->end - r->p))
		return false;
	*p = r->p;
	r->p += n;
	return true;
}

/* An n-byte big-endian unsigned integer (n <= 8). */
static bool rd_be(struct mpr *r, int n, uint64_t *v)
{
	const uint8_t *p;

	if (!rd_take(r, (uint64_t)n, &p))
		return false;
	*v = 0;
	for (int i = 0; i < n; i++)
		*v = *v << 8 | p[i];
	return true;
}

/* An n-byte two's complement integer: MPR_UINT when >= 0, else MPR_NEG. */
static bool rd_sint(struct mpr *r, int n, struct mpr_val *v)
{
	uint64_t u;
	int64_t s;

	if (!rd_be(r, n, &u))
		return false;
	/* sign-extend the n-byte two's complement value */
	s = n == 8 ? (int64_t)u : (int64_t)(u << (64 - 8 * n)) >> (64 - 8 * n);
	v->kind = s < 0 ? MPR_NEG : MPR_UINT;
	v->u = (uint64_t)s;
	return true;
}

/* A str/bin/ext body of len bytes (ext: plus its type byte). */
static bool rd_body(struct mpr *r, enum mpr_kind kind, uint64_t len, struct mpr_val *v)
{
	v->kind = kind;
	v->u = len;
	return rd_take(r, kind == MPR_EXT ? len + 1 : len, &v->ptr);
}

/* A str/bin/ext whose length is an n-byte big-endian prefix. */
static bool rd_lenbody(struct mpr *r, int n, enum mpr_kind kind, struct mpr_val *v)
{
	uint64_t len;

	return rd_be(r, n, &len) && rd_body(r, kind, len, v);
}

bool mpr_next(struct mpr *r, struct mpr_val *v)
{
	uint64_t n;
	uint8_t b;

	if (r->p >= r->end)
		return false;
	b = *r->p++;
	v->ptr = NULL;
	if (b <= 0x7f || b >= 0xe0) {	/* positive and negative fixint */
		v->kind = b <= 0x7f ? MPR_UINT : MPR_NEG;
		v->u = b <= 0x7f ? b : (uint64_t)(int64_t)(int8_t)b;
		return true;
	}
	if (b >= 0xa0 && b <= 0xbf)	/* fixstr */
		return rd_body(r, MPR_STR, b & 0x1f, v);
	if (b <= 0x9f || (b >= 0xdc && b <= 0xdf)) {	/* fixmap, fixarray, array/map 16/32 */
		v->kind = (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd ? MPR_ARRAY : MPR_MAP;
		if (b <= 0x9f)
			n = b & 0x0f;
		else if (!rd_be(r, b == 0xdc || b == 0xde ? 2 : 4, &n))
			return false;
		v->u = n;
		/* a map's count is pairs: two values each, each at least a byte */
		return (v->kind == MPR_MAP ? 2 * n : n) <= (uint64_t)(r->end - r->p);
	}
	switch (b) {
	case 0xc0: v->kind = MPR_NIL; return true;
	case 0xc2:
	case 0xc3: v->kind = MPR_BOOL; v->u = b & 1; return true;
	case 0xcc: v->kind = MPR_UINT; return rd_be(r, 1, &v->u);
	case 0xcd: v->kind = MPR_UINT; return rd_be(r, 2, &v->u);
	case 0xce: v->kind = MPR_UINT; return rd_be(r, 4, &v->u);
	case 0xcf: v->kind = MPR_UINT; return rd_be(r, 8, &v->u);
	case 0xd0: return rd_sint(r, 1, v);
	case 0xd1: return rd_sint(r, 2, v);
	case 0xd2: return rd_sint(r, 4, v);
	case 0xd3: return rd_sint(r, 8, v);
	case 0xca: v->kind = MPR_FLOAT; return rd_take(r, 4, &v->ptr);
	case 0xcb: v->kind = MPR_FLOAT; return rd_take(r, 8, &v->ptr);
	case 0xd9: return rd_lenbody(r, 1, MPR_STR, v);
	case 0xda: return rd_lenbody(r, 2, MPR_STR, v);
	case 0xdb: return rd_lenbody(r, 4, MPR_STR, v);
	case 0xc4: return rd_lenbody(r, 1, MPR_BIN, v);
	case 0xc5: return rd_lenbody(r, 2, MPR_BIN, v);
	case 0xc6: return rd_lenbody(r, 4, MPR_BIN, v);
	case 0xd4: return rd_body(r, MPR_EXT, 1, v);	/* fixext 1..16 */
	case 0xd5: return rd_body(r, MPR_EXT, 2, v);
	case 0xd6: return rd_body(r, MPR_EXT, 4, v);
	case 0xd7: return rd_body(r, MPR_EXT, 8, v);
	case 0xd8: return rd_body(r, MPR_EXT, 16, v);
	case 0xc7: return rd_lenbody(r, 1, MPR_EXT, v);
	case 0xc8: return rd_lenbody(r, 2, MPR_EXT, v);
	case 0xc9: return rd_lenbody(r, 4, MPR_EXT, v);
	default: return false;	/* 0xc1: never used */
	}
}

/*
 * left counts the values still to step over.  Every turn reads a byte or
 * more, so the loop runs at most end - p times.  Each value takes at least
 * a byte, so with more of them pending than bytes left the walk can only
 * end in a failing mpr_next: left is capped there (the same turns follow,
 * the same byte fails; callers report r->p), so the sum cannot wrap.
 */
bool mpr_skip(struct mpr *r)
{
	uint64_t left = 1;
	struct mpr_val v;

	while (left) {
		left--;
		if (!mpr_next(r, &v))
			return false;
		if (v.kind == MPR_ARRAY)
			left += v.u;
		else if (v.kind == MPR_MAP)
			left += 2 * v.u;
		if (left > (uint64_t)(r->end - r->p))
			left = (uint64_t)(r->end - r->p) + 1;
	}
	return true;
}

const char *mpr_kind_name(enum mpr_kind k)
{
	switch (k) {
	case MPR_UINT: return "an integer";
	case MPR_NEG: return "a negative integer";
	case MPR_STR: return "a string";
	case MPR_BIN: return "bin";
	case MPR_ARRAY: return "an array";
	case MPR_MAP: return "a map";
	case MPR_FLOAT: return "a float";
	case MPR_BOOL: return "a boolean";
	case MPR_NIL: return "nil";
	default: return "an extension";
	}
}

bool mpr_key_is(const struct mpr_val *k, const char *s)
{
	size_t n = strlen(s);

	return k->kind == MPR_STR && k->u == n && !memcmp(k->ptr, s, n);
}
