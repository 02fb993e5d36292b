/*
 * hpack.c - HPACK (RFC 7541): the decoder of request header blocks and the
 * stateless encoder of answers (contract: hpack.h).
 *
 * Decoder.  The dynamic table is a ring of entries (a power of two of them,
 * grown by doubling up to what the table size allows: an entry takes at
 * least 32 bytes), oldest at head, so dynamic index i is one masked add
 * away.  Each entry is a struct hpack_field whose name and value share one
 * malloc'd buffer, so an indexed field is handed to the callback as a
 * pointer to the static table or to the ring: no copy, no allocation.
 * Huffman strings are decoded four bits at a time through a 256-state
 * table built once from Appendix B's code (at load time, a constructor),
 * into a scratch buffer sized at most once per block for its worst case
 * (8 symbols per 5 bytes) and kept for the next blocks.
 *
 * Encoder.  Static name lookup through a small perfect hash of the name's
 * length, second and last bytes, also built at load time.
 */
#include <stdlib.h>
#include <string.h>

#include "hpack.h"
#include "swar.h"

#define HP_STATIC_N 61u
#define HP_ENTRY_OVERHEAD 32u	/* RFC 7541 §4.1 */
#define HP_RING_MIN 8u

/* A dynamic table entry: its field (id included) as handed to the
 * callback; name points at the entry's one allocation, value follows the
 * name in it. */
struct hpack_entry {
	struct hpack_field f;
};

/* --- The static table (RFC 7541 Appendix A) ---------------------------- */

#define HP_S(i, n, v) \
	[i] = { (const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, i }

static const struct hpack_field hp_static[HP_STATIC_N + 1] = {
	HP_S(1, ":authority", ""),
	HP_S(2, ":method", "GET"),
	HP_S(3, ":method", "POST"),
	HP_S(4, ":path", "/"),
	HP_S(5, ":path", "/index.html"),
	HP_S(6, ":scheme", "http"),
	HP_S(7, ":scheme", "https"),
	HP_S(8, ":status", "200"),
	HP_S(9, ":status", "204"),
	HP_S(10, ":status", "206"),
	HP_S(11, ":status", "304"),
	HP_S(12, ":status", "400"),
	HP_S(13, ":status", "404"),
	HP_S(14, ":status", "500"),
	HP_S(15, "accept-charset", ""),
	HP_S(16, "accept-encoding", "gzip, deflate"),
	HP_S(17, "accept-language", ""),
	HP_S(18, "accept-ranges", ""),
	HP_S(19, "accept", ""),
	HP_S(20, "access-control-allow-origin", ""),
	HP_S(21, "age", ""),
	HP_S(22, "allow", ""),
	HP_S(23, "authorization", ""),
	HP_S(24, "cache-control", ""),
	HP_S(25, "content-disposition", ""),
	HP_S(26, "content-encoding", ""),
	HP_S(27, "content-language", ""),
	HP_S(28, "content-length", ""),
	HP_S(29, "content-location", ""),
	HP_S(30, "content-range", ""),
	HP_S(31, "content-type", ""),
	HP_S(32, "cookie", ""),
	HP_S(33, "date", ""),
	HP_S(34, "etag", ""),
	HP_S(35, "expect", ""),
	HP_S(36, "expires", ""),
	HP_S(37, "from", ""),
	HP_S(38, "host", ""),
	HP_S(39, "if-match", ""),
	HP_S(40, "if-modified-since", ""),
	HP_S(41, "if-none-match", ""),
	HP_S(42, "if-range", ""),
	HP_S(43, "if-unmodified-since", ""),
	HP_S(44, "last-modified", ""),
	HP_S(45, "link", ""),
	HP_S(46, "location", ""),
	HP_S(47, "max-forwards", ""),
	HP_S(48, "proxy-authenticate", ""),
	HP_S(49, "proxy-authorization", ""),
	HP_S(50, "range", ""),
	HP_S(51, "referer", ""),
	HP_S(52, "refresh", ""),
	HP_S(53, "retry-after", ""),
	HP_S(54, "server", ""),
	HP_S(55, "set-cookie", ""),
	HP_S(56, "strict-transport-security", ""),
	HP_S(57, "transfer-encoding", ""),
	HP_S(58, "user-agent", ""),
	HP_S(59, "vary", ""),
	HP_S(60, "via", ""),
	HP_S(61, "www-authenticate", ""),
};

/* --- The Huffman code (RFC 7541 Appendix B) ------------------------------ */

/* Symbol s's code: its bits (right-aligned) and their number; 256 is EOS. */
static const struct {
	uint32_t code;
	uint8_t bits;
} hp_huff_code[257] = {
	/*   0 */ {0x1ff8, 13}, {0x7fffd8, 23}, {0xfffffe2, 28}, {0xfffffe3, 28},
	/*   4 */ {0xfffffe4, 28}, {0xfffffe5, 28}, {0xfffffe6, 28}, {0xfffffe7, 28},
	/*   8 */ {0xfffffe8, 28}, {0xffffea, 24}, {0x3ffffffc, 30}, {0xfffffe9, 28},
	/*  12 */ {0xfffffea, 28}, {0x3ffffffd, 30}, {0xfffffeb, 28}, {0xfffffec, 28},
	/*  16 */ {0xfffffed, 28}, {0xfffffee, 28}, {0xfffffef, 28}, {0xffffff0, 28},
	/*  20 */ {0xffffff1, 28}, {0xffffff2, 28}, {0x3ffffffe, 30}, {0xffffff3, 28},
	/*  24 */ {0xffffff4, 28}, {0xffffff5, 28}, {0xffffff6, 28}, {0xffffff7, 28},
	/*  28 */ {0xffffff8, 28}, {0xffffff9, 28}, {0xffffffa, 28}, {0xffffffb, 28},
	/*  32 */ {0x14, 6}, {0x3f8, 10}, {0x3f9, 10}, {0xffa, 12},
	/*  36 */ {0x1ff9, 13}, {0x15, 6}, {0xf8, 8}, {0x7fa, 11},
	/*  40 */ {0x3fa, 10}, {0x3fb, 10}, {0xf9, 8}, {0x7fb, 11},
	/*  44 */ {0xfa, 8}, {0x16, 6}, {0x17, 6}, {0x18, 6},
	/*  48 */ {0x0, 5}, {0x1, 5}, {0x2, 5}, {0x19, 6},
	/*  52 */ {0x1a, 6}, {0x1b, 6}, {0x1c, 6}, {0x1d, 6},
	/*  56 */ {0x1e, 6}, {0x1f, 6}, {0x5c, 7}, {0xfb, 8},
	/*  60 */ {0x7ffc, 15}, {0x20, 6}, {0xffb, 12}, {0x3fc, 10},
	/*  64 */ {0x1ffa, 13}, {0x21, 6}, {0x5d, 7}, {0x5e, 7},
	/*  68 */ {0x5f, 7}, {0x60, 7}, {0x61, 7}, {0x62, 7},
	/*  72 */ {0x63, 7}, {0x64, 7}, {0x65, 7}, {0x66, 7},
	/*  76 */ {0x67, 7}, {0x68, 7}, {0x69, 7}, {0x6a, 7},
	/*  80 */ {0x6b, 7}, {0x6c, 7}, {0x6d, 7}, {0x6e, 7},
	/*  84 */ {0x6f, 7}, {0x70, 7}, {0x71, 7}, {0x72, 7},
	/*  88 */ {0xfc, 8}, {0x73, 7}, {0xfd, 8}, {0x1ffb, 13},
	/*  92 */ {0x7fff0, 19}, {0x1ffc, 13}, {0x3ffc, 14}, {0x22, 6},
	/*  96 */ {0x7ffd, 15}, {0x3, 5}, {0x23, 6}, {0x4, 5},
	/* 100 */ {0x24, 6}, {0x5, 5}, {0x25, 6}, {0x26, 6},
	/* 104 */ {0x27, 6}, {0x6, 5}, {0x74, 7}, {0x75, 7},
	/* 108 */ {0x28, 6}, {0x29, 6}, {0x2a, 6}, {0x7, 5},
	/* 112 */ {0x2b, 6}, {0x76, 7}, {0x2c, 6}, {0x8, 5},
	/* 116 */ {0x9, 5}, {0x2d, 6}, {0x77, 7}, {0x78, 7},
	/* 120 */ {0x79, 7}, {0x7a, 7}, {0x7b, 7}, {0x7ffe, 15},
	/* 124 */ {0x7fc, 11}, {0x3ffd, 14}, {0x1ffd, 13}, {0xffffffc, 28},
	/* 128 */ {0xfffe6, 20}, {0x3fffd2, 22}, {0xfffe7, 20}, {0xfffe8, 20},
	/* 132 */ {0x3fffd3, 22}, {0x3fffd4, 22}, {0x3fffd5, 22}, {0x7fffd9, 23},
	/* 136 */ {0x3fffd6, 22}, {0x7fffda, 23}, {0x7fffdb, 23}, {0x7fffdc, 23},
	/* 140 */ {0x7fffdd, 23}, {0x7fffde, 23}, {0xffffeb, 24}, {0x7fffdf, 23},
	/* 144 */ {0xffffec, 24}, {0xffffed, 24}, {0x3fffd7, 22}, {0x7fffe0, 23},
	/* 148 */ {0xffffee, 24}, {0x7fffe1, 23}, {0x7fffe2, 23}, {0x7fffe3, 23},
	/* 152 */ {0x7fffe4, 23}, {0x1fffdc, 21}, {0x3fffd8, 22}, {0x7fffe5, 23},
	/* 156 */ {0x3fffd9, 22}, {0x7fffe6, 23}, {0x7fffe7, 23}, {0xffffef, 24},
	/* 160 */ {0x3fffda, 22}, {0x1fffdd, 21}, {0xfffe9, 20}, {0x3fffdb, 22},
	/* 164 */ {0x3fffdc, 22}, {0x7fffe8, 23}, {0x7fffe9, 23}, {0x1fffde, 21},
	/* 168 */ {0x7fffea, 23}, {0x3fffdd, 22}, {0x3fffde, 22}, {0xfffff0, 24},
	/* 172 */ {0x1fffdf, 21}, {0x3fffdf, 22}, {0x7fffeb, 23}, {0x7fffec, 23},
	/* 176 */ {0x1fffe0, 21}, {0x1fffe1, 21}, {0x3fffe0, 22}, {0x1fffe2, 21},
	/* 180 */ {0x7fffed, 23}, {0x3fffe1, 22}, {0x7fffee, 23}, {0x7fffef, 23},
	/* 184 */ {0xfffea, 20}, {0x3fffe2, 22}, {0x3fffe3, 22}, {0x3fffe4, 22},
	/* 188 */ {0x7ffff0, 23}, {0x3fffe5, 22}, {0x3fffe6, 22}, {0x7ffff1, 23},
	/* 192 */ {0x3ffffe0, 26}, {0x3ffffe1, 26}, {0xfffeb, 20}, {0x7fff1, 19},
	/* 196 */ {0x3fffe7, 22}, {0x7ffff2, 23}, {0x3fffe8, 22}, {0x1ffffec, 25},
	/* 200 */ {0x3ffffe2, 26}, {0x3ffffe3, 26}, {0x3ffffe4, 26}, {0x7ffffde, 27},
	/* 204 */ {0x7ffffdf, 27}, {0x3ffffe5, 26}, {0xfffff1, 24}, {0x1ffffed, 25},
	/* 208 */ {0x7fff2, 19}, {0x1fffe3, 21}, {0x3ffffe6, 26}, {0x7ffffe0, 27},
	/* 212 */ {0x7ffffe1, 27}, {0x3ffffe7, 26}, {0x7ffffe2, 27}, {0xfffff2, 24},
	/* 216 */ {0x1fffe4, 21}, {0x1fffe5, 21}, {0x3ffffe8, 26}, {0x3ffffe9, 26},
	/* 220 */ {0xffffffd, 28}, {0x7ffffe3, 27}, {0x7ffffe4, 27}, {0x7ffffe5, 27},
	/* 224 */ {0xfffec, 20}, {0xfffff3, 24}, {0xfffed, 20}, {0x1fffe6, 21},
	/* 228 */ {0x3fffe9, 22}, {0x1fffe7, 21}, {0x1fffe8, 21}, {0x7ffff3, 23},
	/* 232 */ {0x3fffea, 22}, {0x3fffeb, 22}, {0x1ffffee, 25}, {0x1ffffef, 25},
	/* 236 */ {0xfffff4, 24}, {0xfffff5, 24}, {0x3ffffea, 26}, {0x7ffff4, 23},
	/* 240 */ {0x3ffffeb, 26}, {0x7ffffe6, 27}, {0x3ffffec, 26}, {0x3ffffed, 26},
	/* 244 */ {0x7ffffe7, 27}, {0x7ffffe8, 27}, {0x7ffffe9, 27}, {0x7ffffea, 27},
	/* 248 */ {0x7ffffeb, 27}, {0xffffffe, 28}, {0x7ffffec, 27}, {0x7ffffed, 27},
	/* 252 */ {0x7ffffee, 27}, {0x7ffffef, 27}, {0x7fffff0, 27}, {0x3ffffee, 26},
	/* 256 */ {0x3fffffff, 30},
};

/* --- Tables built once, at load time ------------------------------------- */

/* One step of the Huffman decoder: from a state (an internal node of the
 * code's tree; 0 is the root) on four input bits.  Four bits complete at
 * most one symbol, every code being five bits or more. */
struct hp_step {
	uint8_t next;			/* the state after the four bits */
	uint8_t sym;			/* the symbol they completed, if HP_SYM */
	uint8_t flags;
	uint8_t pad;
};

#define HP_SYM 1u			/* a symbol was completed */
#define HP_FAIL 2u			/* EOS, or bits that no code starts with */
#define HP_ACCEPT 4u			/* the string may end here (§5.2 padding) */

#define HP_KID_NONE INT16_MIN

static struct hp_step hp_huff_dec[256][16];
static uint8_t hp_name_slot[128];		/* name hash -> its first index */
static uint8_t hp_name_span[HP_STATIC_N + 1];	/* entries from i with i's name */

/*
 * hp_huff_tree - the code's tree: kid[node][bit] is a node (>= 0), the leaf
 * of symbol s (-1 - s) or HP_KID_NONE.  accept[node]: a string may end at
 * node, which its padding reaches: at most 7 bits, all ones (§5.2).  257
 * codes make exactly 256 internal nodes; a malformed code would only leave
 * bits that fail.
 */
static void hp_huff_tree(int16_t kid[256][2], bool accept[256])
{
	unsigned nodes = 1;

	for (unsigned i = 0; i < 256; i++) {
		kid[i][0] = kid[i][1] = HP_KID_NONE;
		accept[i] = false;
	}
	accept[0] = true;
	for (unsigned s = 0; s < 257; s++) {
		uint32_t code = hp_huff_code[s].code;
		unsigned bits = hp_huff_code[s].bits, node = 0, k;

		for (k = bits - 1; k > 0; k--) {
			unsigned b = code >> k & 1;

			if (kid[node][b] == HP_KID_NONE && nodes < 256) {
				kid[node][b] = (int16_t)nodes;
				accept[nodes++] = accept[node] && b && bits - k <= 7;
			}
			if (kid[node][b] < 0)
				break;
			node = (unsigned)kid[node][b];
		}
		if (k == 0)
			kid[node][code & 1] = (int16_t)(-1 - (int)s);
	}
}

/* hp_huff_steps - hp_huff_dec from the tree: each state's walk on each
 * nibble, most significant bit first. */
static void hp_huff_steps(int16_t kid[256][2], const bool accept[256])
{
	for (unsigned s = 0; s < 256; s++) {
		for (unsigned x = 0; x < 16; x++) {
			unsigned node = s, flags = 0, sym = 0;

			for (int k = 3; k >= 0; k--) {
				int c = kid[node][x >> k & 1];

				if (c >= 0) {
					node = (unsigned)c;
					continue;
				}
				if (c == HP_KID_NONE || c == -1 - 256)
					flags |= HP_FAIL;
				else {
					sym = (unsigned)(-1 - c);
					flags |= HP_SYM;
				}
				node = 0;
			}
			if (accept[node])
				flags |= HP_ACCEPT;
			hp_huff_dec[s][x] = (struct hp_step){ (uint8_t)node, (uint8_t)sym, (uint8_t)flags, 0 };
		}
	}
}

/* hp_name_hash - a perfect hash of the static table's 52 names into 128
 * slots (constants found by search); n >= 2. */
static inline unsigned hp_name_hash(const uint8_t *s, size_t n)
{
	return ((unsigned)n * 244u + s[1] * 35u + s[n - 1] * 3u) >> 3 & 127u;
}

static bool hp_same_name(const struct hpack_field *a, const struct hpack_field *b)
{
	return a->nlen == b->nlen && !memcmp(a->name, b->name, a->nlen);
}

__attribute__((constructor)) static void hp_tables_init(void)
{
	int16_t kid[256][2];
	bool accept[256];

	hp_huff_tree(kid, accept);
	hp_huff_steps(kid, accept);
	for (unsigned i = HP_STATIC_N; i >= 1; i--) {
		const struct hpack_field *f = &hp_static[i];

		hp_name_slot[hp_name_hash(f->name, f->nlen)] = (uint8_t)i;
		hp_name_span[i] = 1;
		if (i < HP_STATIC_N && hp_same_name(f, f + 1))
			hp_name_span[i] += hp_name_span[i + 1];
	}
}

/* --- Decoder --------------------------------------------------------------- */

/* The block being decoded. */
struct hp_blk {
	const uint8_t *p, *end;
	uint32_t nfield;		/* fields before this one */
	const uint8_t *field;		/* where the field being decoded starts */
	hpack_emit emit;
	void *arg;
	size_t sc_used;			/* scratch bytes this field's strings use */
	bool sc_sized;			/* the scratch holds the rest of the block's worst case */
	bool stopped;			/* emit said HPACK_STOP */
	bool fields;			/* a field came: no more size updates */
};

/*
 * hp_int - the integer with an N-bit prefix (mask = 2^N - 1) at *pp (<
 * end), RFC 7541 §5.1, moving *pp past it.  False when end cuts it short or
 * it does not fit 32 bits: at most five continuation bytes (35 bits), the
 * sum checked.
 */
static inline bool hp_int(const uint8_t **pp, const uint8_t *end, uint8_t mask, uint32_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = *p++ & mask;

	if (v == mask) {
		unsigned shift = 0;
		uint8_t b;

		do {
			if (p == end || shift > 28)
				return false;
			b = *p++;
			v += (uint64_t)(b & 0x7f) << shift;
			shift += 7;
		} while (b & 0x80);
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	*pp = p;
	return true;
}

/* hp_scratch - room for the Huffman strings of any one field in the n
 * bytes left of a block (fields further on have fewer): at most 8 symbols
 * per 5 input bytes, plus the byte the decoder writes past its last
 * symbol.  Nothing in the scratch is kept. */
static int hp_scratch(struct hpack_dec *d, size_t n)
{
	size_t need = (n / 5 + 1) * 8 + 8;

	if (d->scratch_cap >= need)
		return 0;
	free(d->scratch);
	d->scratch = malloc(need);
	d->scratch_cap = d->scratch ? need : 0;
	return d->scratch ? 0 : HPACK_ERR_NOMEM;
}

/*
 * hp_huff - decode the Huffman string in[0..n) (§5.2) after this field's
 * other strings in the scratch: *s, *len.  HPACK_ERR_COMPRESSION for EOS,
 * or padding longer than 7 bits or with a zero bit.  Branch-free per
 * nibble: the step's symbol is always stored and the output moves on only
 * when there is one.
 */
static int hp_huff(struct hpack_dec *d, struct hp_blk *b, const uint8_t *in, uint32_t n,
		   const uint8_t **s, uint32_t *len)
{
	unsigned st = 0, seen = 0, last = HP_ACCEPT;
	uint8_t *o0, *o;
	int r;

	if (!b->sc_sized) {
		if ((r = hp_scratch(d, (size_t)(b->end - b->field))))
			return r;
		b->sc_sized = true;
	}
	o0 = o = d->scratch + b->sc_used;
	for (uint32_t i = 0; i < n; i++) {
		const struct hp_step *e = &hp_huff_dec[st][in[i] >> 4];

		*o = e->sym;
		o += e->flags & HP_SYM;
		seen |= e->flags;
		e = &hp_huff_dec[e->next][in[i] & 15];
		*o = e->sym;
		o += e->flags & HP_SYM;
		seen |= e->flags;
		st = e->next;
		last = e->flags;
	}
	if ((seen & HP_FAIL) || !(last & HP_ACCEPT) || o - o0 > UINT32_MAX)
		return HPACK_ERR_COMPRESSION;
	*s = o0;
	*len = (uint32_t)(o - o0);
	b->sc_used += *len;
	return 0;
}

/*
 * hp_string - the string literal at b->p (§5.2): its bytes *s, *len, in the
 * block or (Huffman-coded) the scratch.  With skip it is only stepped over
 * (*s, *len untouched).  0 or HPACK_ERR_*.
 */
static int hp_string(struct hpack_dec *d, struct hp_blk *b, bool skip, const uint8_t **s,
		     uint32_t *len)
{
	const uint8_t *raw;
	uint32_t n;
	bool huff;

	if (b->p == b->end)
		return HPACK_ERR_COMPRESSION;
	huff = *b->p & 0x80;
	if (!hp_int(&b->p, b->end, 0x7f, &n) || n > (size_t)(b->end - b->p))
		return HPACK_ERR_COMPRESSION;
	raw = b->p;
	b->p += n;
	if (skip)
		return 0;
	if (huff)
		return hp_huff(d, b, raw, n, s, len);
	*s = raw;
	*len = n;
	return 0;
}

/* hp_lookup - the field at index i (§2.3.3: static 1-61, then the dynamic
 * table newest first); NULL for 0 or past the table. */
static inline const struct hpack_field *hp_lookup(const struct hpack_dec *d, uint32_t i)
{
	if (i - 1 < HP_STATIC_N)
		return &hp_static[i];
	i -= HP_STATIC_N + 1;		/* 0: the newest; 0 itself wraps past count */
	if (i >= d->count)
		return NULL;
	return &d->ring[(d->head + d->count - 1 - i) & (d->cap - 1)].f;
}

/* hp_evict - drop the oldest entries until the table's size is at most
 * size (§4.3). */
static void hp_evict(struct hpack_dec *d, uint32_t size)
{
	while (d->size > size) {
		struct hpack_entry *e = &d->ring[d->head];

		d->size -= e->f.nlen + e->f.vlen + HP_ENTRY_OVERHEAD;
		free((void *)e->f.name);
		e->f.name = e->f.value = NULL;
		d->head = (d->head + 1) & (d->cap - 1);
		d->count--;
	}
}

/* hp_ring_grow - twice the ring's entries (HP_RING_MIN at first), oldest
 * moved to 0.  Only when it is full, so the ring stays within twice what
 * the table's size allows (an entry is 32 bytes or more). */
static int hp_ring_grow(struct hpack_dec *d)
{
	uint32_t cap = d->cap ? d->cap * 2 : HP_RING_MIN;
	struct hpack_entry *r = malloc(cap * sizeof(*r));

	if (!r)
		return HPACK_ERR_NOMEM;
	for (uint32_t k = 0; k < d->count; k++)
		r[k] = d->ring[(d->head + k) & (d->cap - 1)];
	free(d->ring);
	d->ring = r;
	d->cap = cap;
	d->head = 0;
	return 0;
}

/* hp_next_id - the id of a new entry: HPACK_ID_DYN + its serial.  Ids are
 * never reused: after 2^32 - 65 insertions on one connection new entries
 * get none (0). */
static uint32_t hp_next_id(struct hpack_dec *d)
{
	if (d->serial >= HPACK_ID_LIT - HPACK_ID_DYN)
		return 0;
	return HPACK_ID_DYN + d->serial++;
}

/*
 * hp_insert - f's name and value as the newest entry (§4.4), older ones
 * evicted to make room: *out its field.  The bytes are copied before any
 * eviction, since f's name may be an entry about to go.  *out NULL when the
 * entry is larger than the whole table: nothing inserted nor evicted yet
 * (the caller empties the table once done with f).
 */
static int hp_insert(struct hpack_dec *d, const struct hpack_field *f, const struct hpack_field **out)
{
	uint64_t size = (uint64_t)f->nlen + f->vlen + HP_ENTRY_OVERHEAD;
	struct hpack_entry *e;
	uint8_t *buf;

	*out = NULL;
	if (size > d->max)
		return 0;
	buf = malloc((size_t)f->nlen + f->vlen + 1);
	if (!buf)
		return HPACK_ERR_NOMEM;
	memcpy(buf, f->name, f->nlen);
	memcpy(buf + f->nlen, f->value, f->vlen);
	hp_evict(d, d->max - (uint32_t)size);
	if (d->count == d->cap && hp_ring_grow(d)) {
		free(buf);
		return HPACK_ERR_NOMEM;
	}
	e = &d->ring[(d->head + d->count) & (d->cap - 1)];
	e->f = (struct hpack_field){ buf, buf + f->nlen, f->nlen, f->vlen, hp_next_id(d) };
	d->count++;
	d->size += (uint32_t)size;
	*out = &e->f;
	return 0;
}

/* hp_emit - hand f over unless emit said stop: 0, or emit's error. */
static inline int hp_emit(struct hp_blk *b, const struct hpack_field *f)
{
	int r;

	if (b->stopped || !(r = b->emit(b->arg, f)))
		return 0;
	if (r < 0)
		return r;
	b->stopped = true;
	return 0;
}

/* hp_indexed - an indexed field (§6.1): a pointer into a table, no copy. */
static inline int hp_indexed(struct hpack_dec *d, struct hp_blk *b)
{
	const struct hpack_field *f;
	uint32_t i;

	if (!hp_int(&b->p, b->end, 0x7f, &i) || !(f = hp_lookup(d, i)))
		return HPACK_ERR_COMPRESSION;
	return hp_emit(b, f);
}

/*
 * hp_literal - a literal field (§6.2), its name indexed (a prefix of mask's
 * bits) or a literal.  index: with incremental indexing, so its strings are
 * decoded even once emit said stop; otherwise they are then only stepped
 * over.
 */
/*
 * Remembered literals (hpack.h): per block position, the last plain
 * literal's representation bytes and what they decoded to.  Never one
 * whose name is a dynamic-table entry (the same bytes may name another
 * entry later), nor a never-indexed one (§7.1.3: a sensitive value, kept
 * no longer than its block).
 */
#define HP_LIT_RAW 48			/* representation bytes at most */
#define HP_LIT_DEC 96			/* decoded name and value bytes at most */

struct hpack_lit {
	uint8_t rawlen;			/* 0: empty */
	uint8_t raw[HP_LIT_RAW];
	uint8_t dec[HP_LIT_DEC];
	struct hpack_field f;		/* into dec */
};

/* hp_lit_find - the remembered field when the plain literal starting at
 * b->field repeats, byte for byte, the one kept for its position; b->p is
 * then moved past it.  NULL otherwise (b->p kept).  Only eligible literals
 * are kept (hp_lit_keep), and their bytes hold the representation's type
 * and name index, so equal bytes are an eligible literal ending where the
 * kept one did: nothing more to check. */
static const struct hpack_field *hp_lit_find(const struct hpack_dec *d, struct hp_blk *b)
{
	const struct hpack_lit *l;

	if (!d->lit || b->nfield >= HPACK_LIT_SLOTS)
		return NULL;
	l = &d->lit[b->nfield];
	if (!l->rawlen || (size_t)(b->end - b->field) < l->rawlen ||
	    !swar_equal(b->field, l->raw, l->rawlen))
		return NULL;
	b->p = b->field + l->rawlen;
	return &l->f;
}

/* hp_lit_keep - f, the plain literal b->field..b->p with static or literal
 * name index i, remembered for its position when it is small enough; the
 * kept copy (with its new id), or f. */
static const struct hpack_field *hp_lit_keep(struct hpack_dec *d, const struct hp_blk *b,
					     uint32_t i, const struct hpack_field *f)
{
	size_t raw = (size_t)(b->p - b->field);
	struct hpack_lit *l;

	if (b->nfield >= HPACK_LIT_SLOTS || i > HP_STATIC_N || (*b->field & 0x10) ||
	    raw > HP_LIT_RAW || f->nlen + f->vlen > HP_LIT_DEC ||
	    d->lit_serial >= HPACK_ID_LIT - 1)
		return f;
	if (!d->lit && !(d->lit = calloc(HPACK_LIT_SLOTS, sizeof(*d->lit))))
		return f;
	l = &d->lit[b->nfield];
	memcpy(l->raw, b->field, raw);
	l->rawlen = (uint8_t)raw;
	memcpy(l->dec, f->name, f->nlen);
	memcpy(l->dec + f->nlen, f->value, f->vlen);
	l->f = (struct hpack_field){ l->dec, l->dec + f->nlen, f->nlen, f->vlen,
				     HPACK_ID_LIT + d->lit_serial++ };
	return &l->f;
}

static int hp_literal(struct hpack_dec *d, struct hp_blk *b, uint8_t mask, bool index)
{
	struct hpack_field f = { 0 };
	const struct hpack_field *e;
	bool skip = b->stopped && !index;
	uint32_t i;
	int r;

	if (!hp_int(&b->p, b->end, mask, &i))
		return HPACK_ERR_COMPRESSION;
	if (!index && !skip && (e = hp_lit_find(d, b)))
		return hp_emit(b, e);	/* a repeat: not decoded again */
	if (i) {
		if (!(e = hp_lookup(d, i)))
			return HPACK_ERR_COMPRESSION;
		f.name = e->name;
		f.nlen = e->nlen;
	} else if ((r = hp_string(d, b, skip, &f.name, &f.nlen))) {
		return r;
	}
	if ((r = hp_string(d, b, skip, &f.value, &f.vlen)) || skip)
		return r;
	if (!index)
		return hp_emit(b, hp_lit_keep(d, b, i, &f));
	if ((r = hp_insert(d, &f, &e)))
		return r;
	if (e)
		return hp_emit(b, e);
	r = hp_emit(b, &f);		/* larger than the table: not kept, id 0 */
	hp_evict(d, 0);
	return r;
}

/* hp_size_update - a dynamic table size update (§6.3): only before the
 * block's first field, at most our limit. */
static int hp_size_update(struct hpack_dec *d, struct hp_blk *b)
{
	uint32_t max;

	if (b->fields || !hp_int(&b->p, b->end, 0x1f, &max) || max > d->limit)
		return HPACK_ERR_COMPRESSION;
	d->max = max;
	hp_evict(d, max);
	return 0;
}

void hpack_dec_init(struct hpack_dec *d, uint32_t limit)
{
	memset(d, 0, sizeof(*d));
	d->max = d->limit = limit;
}

void hpack_dec_free(struct hpack_dec *d)
{
	hp_evict(d, 0);
	free(d->ring);
	free(d->scratch);
	free(d->lit);
	hpack_dec_init(d, d->limit);
}

int hpack_decode(struct hpack_dec *d, const uint8_t *p, size_t n, hpack_emit emit, void *arg)
{
	struct hp_blk b = { .p = p, .end = p + n, .emit = emit, .arg = arg };
	int r;

	if (n == 0)
		return 0;		/* p may be NULL */
	while (b.p < b.end) {
		uint8_t c = *b.p;

		if (c > 0x80 && c < 0xff) {	/* indexed, one byte: most fields */
			const struct hpack_field *f = hp_lookup(d, c & 0x7f);

			if (!f)
				return HPACK_ERR_COMPRESSION;
			b.p++;
			b.fields = true;
			b.nfield++;
			if ((r = hp_emit(&b, f)))
				return r;
			continue;
		}
		b.field = b.p;
		b.sc_used = 0;
		if ((c & 0xe0) == 0x20) {
			r = hp_size_update(d, &b);
		} else {
			b.fields = true;
			if (c & 0x80)
				r = hp_indexed(d, &b);
			else if (c & 0x40)
				r = hp_literal(d, &b, 0x3f, true);
			else
				r = hp_literal(d, &b, 0x0f, false);	/* 0000, or 0001: never indexed */
			b.nfield++;
		}
		if (r)
			return r;
	}
	return 0;
}

/* --- Encoder ---------------------------------------------------------------- */

/* hp_put_int - v with an N-bit prefix (mask 2^N - 1) under the bits first
 * (§5.1); past it. */
static uint8_t *hp_put_int(uint8_t *o, uint8_t first, uint8_t mask, uint32_t v)
{
	if (v < mask) {
		*o++ = first | (uint8_t)v;
		return o;
	}
	*o++ = first | mask;
	v -= mask;
	while (v >= 0x80) {
		*o++ = 0x80 | (v & 0x7f);
		v >>= 7;
	}
	*o++ = (uint8_t)v;
	return o;
}

/* hp_put_str - s[0..n) as a string literal, never Huffman-coded. */
static uint8_t *hp_put_str(uint8_t *o, const uint8_t *s, uint32_t n)
{
	o = hp_put_int(o, 0, 0x7f, n);
	if (n)
		memcpy(o, s, n);
	return o + n;
}

/* hp_status_index - the static index of ":status: v", or 0. */
static unsigned hp_status_index(const uint8_t *v, uint32_t n)
{
#define HP_3(a, b, c) ((unsigned)(a) << 16 | (unsigned)(b) << 8 | (unsigned)(c))
	if (n != 3)
		return 0;
	switch (HP_3(v[0], v[1], v[2])) {
	case HP_3('2', '0', '0'): return 8;
	case HP_3('2', '0', '4'): return 9;
	case HP_3('2', '0', '6'): return 10;
	case HP_3('3', '0', '4'): return 11;
	case HP_3('4', '0', '0'): return 12;
	case HP_3('4', '0', '4'): return 13;
	case HP_3('5', '0', '0'): return 14;
	default: return 0;
	}
#undef HP_3
}

/* hp_static_find - the static index of f's name and value, or 0;
 * *name_idx: the first with its name, or 0. */
static unsigned hp_static_find(const struct hpack_field *f, unsigned *name_idx)
{
	unsigned i, end;

	*name_idx = 0;
	if (f->nlen < 3 || f->nlen > 27)	/* "age" .. "access-control-allow-origin" */
		return 0;
	i = hp_name_slot[hp_name_hash(f->name, f->nlen)];
	if (!i || !hp_same_name(&hp_static[i], f))
		return 0;
	*name_idx = i;
	if (i == 8)
		return hp_status_index(f->value, f->vlen);
	for (end = i + hp_name_span[i]; i < end; i++)
		if (hp_static[i].vlen == f->vlen &&
		    (!f->vlen || !memcmp(hp_static[i].value, f->value, f->vlen)))
			return i;
	return 0;
}

size_t hpack_encode_bound(const struct hpack_field *f, size_t n)
{
	size_t room = 0;

	/* first byte, two lengths of up to 6 bytes each (§5.1, 32 bits) */
	for (size_t i = 0; i < n; i++)
		room += 13 + (size_t)f[i].nlen + f[i].vlen;
	return room;
}

/* hp_put_literal - f as a literal (§6.2) of the kind first says (its
 * prefix mask: 0x3f with indexing, 0x0f without), its name by the static
 * index name_idx or, when 0, as a string; past it. */
static uint8_t *hp_put_literal(uint8_t *o, uint8_t first, uint8_t mask, unsigned name_idx,
			       const struct hpack_field *f)
{
	if (name_idx) {
		o = hp_put_int(o, first, mask, name_idx);
	} else {
		*o++ = first;
		o = hp_put_str(o, f->name, f->nlen);
	}
	return hp_put_str(o, f->value, f->vlen);
}

size_t hpack_encode(uint8_t *out, const struct hpack_field *f, size_t n)
{
	uint8_t *o = out;

	for (size_t i = 0; i < n; i++) {
		unsigned name_idx, idx = hp_static_find(&f[i], &name_idx);

		if (idx)
			*o++ = 0x80 | (uint8_t)idx;
		else
			o = hp_put_literal(o, 0x00, 0x0f, name_idx, &f[i]);
	}
	return (size_t)(o - out);
}

/* --- Encoder with a dynamic table ------------------------------------------ */

_Static_assert(HPACK_ENC_SLOTS * 32 >= HPACK_ENC_SIZE, "every entry HPACK_ENC_SIZE holds has a slot");

void hpack_enc_init(struct hpack_enc *e)
{
	memset(e, 0, offsetof(struct hpack_enc, e));
	e->peer = HPACK_TABLE_DEFAULT;
	e->max = HPACK_ENC_SIZE < e->peer ? HPACK_ENC_SIZE : e->peer;
	e->low = UINT32_MAX;
}

void hpack_enc_peer_limit(struct hpack_enc *e, uint32_t v)
{
	e->peer = v;
	if (v < e->low)
		e->low = v;
}

/* Oldest entries out until the table holds at most lim bytes. */
static void hp_enc_evict(struct hpack_enc *e, uint32_t lim)
{
	while (e->size > lim && e->count) {
		const struct hpack_enc_entry *x = &e->e[e->head];

		e->size -= 32u + x->nlen + x->vlen;
		e->head = (e->head + 1) % HPACK_ENC_SLOTS;
		e->count--;
	}
}

/* The size update(s) owed since the last block (§4.2: the smallest value
 * the peer set, then the one in use now); past them. */
static uint8_t *hp_enc_resize(struct hpack_enc *e, uint8_t *o)
{
	uint32_t want = e->peer < HPACK_ENC_SIZE ? e->peer : HPACK_ENC_SIZE;

	if (e->low == UINT32_MAX)
		return o;
	if (e->low < want) {
		o = hp_put_int(o, 0x20, 0x1f, e->low);
		hp_enc_evict(e, e->low);
	}
	o = hp_put_int(o, 0x20, 0x1f, want);
	hp_enc_evict(e, want);
	e->max = want;
	e->low = UINT32_MAX;
	return o;
}

/* The index of the entry holding f, or 0. */
static unsigned hp_enc_find(const struct hpack_enc *e, const struct hpack_field *f)
{
	for (uint32_t k = 0; k < e->count; k++) {
		const struct hpack_enc_entry *x = &e->e[(e->head + e->count - 1 - k) % HPACK_ENC_SLOTS];

		if (x->nlen == f->nlen && x->vlen == f->vlen &&
		    swar_equal(x->b, f->name, f->nlen) && swar_equal(x->b + f->nlen, f->value, f->vlen))
			return 62 + k;	/* the newest is 62 (§2.3.3) */
	}
	return 0;
}

/* Whether f is named the n-byte lower-case lit (a constant: the compare
 * is inlined). */
#define HP_NAMED(f, lit) ((f)->nlen == sizeof(lit) - 1 && !memcmp((f)->name, lit, sizeof(lit) - 1))

/* Whether f is worth an entry: short, and not a field whose value changes
 * with every answer (content-length never gets here). */
static bool hp_enc_worth(const struct hpack_enc *e, const struct hpack_field *f)
{
	if (f->nlen + f->vlen > HPACK_ENC_FIELD_MAX || 32u + f->nlen + f->vlen > e->max)
		return false;
	return !HP_NAMED(f, "grpc-message");	/* content-length: hp_enc_field */
}

/* f into the table, as the peer's decoder will put it (§4.4). */
static void hp_enc_insert(struct hpack_enc *e, const struct hpack_field *f)
{
	struct hpack_enc_entry *x;

	hp_enc_evict(e, e->max - (32u + f->nlen + f->vlen));
	x = &e->e[(e->head + e->count) % HPACK_ENC_SLOTS];
	x->nlen = (uint8_t)f->nlen;
	x->vlen = (uint8_t)f->vlen;
	memcpy(x->b, f->name, f->nlen);
	if (f->vlen)
		memcpy(x->b + f->nlen, f->value, f->vlen);
	e->size += 32u + f->nlen + f->vlen;
	e->count++;
}

size_t hpack_enc_bound(const struct hpack_field *f, size_t n)
{
	return hpack_encode_bound(f, n) + 12;	/* two size updates of 6 bytes */
}

/* One field of hpack_enc_block at o; past it.  Every answer starts with
 * :status and content-length: those skip the table searches. */
static uint8_t *hp_enc_field(struct hpack_enc *e, uint8_t *o, const struct hpack_field *f)
{
	unsigned idx, name_idx = 0;
	bool worth;

	if (HP_NAMED(f, ":status") && (idx = hp_status_index(f->value, f->vlen)))
		return hp_put_int(o, 0x80, 0x7f, idx);
	if (HP_NAMED(f, "content-length"))	/* static name 28, never indexed */
		return hp_put_literal(o, 0x00, 0x0f, 28, f);
	worth = hp_enc_worth(e, f);
	if ((worth && (idx = hp_enc_find(e, f))) || (idx = hp_static_find(f, &name_idx)))
		return hp_put_int(o, 0x80, 0x7f, idx);
	if (worth) {			/* 01: with incremental indexing */
		o = hp_put_literal(o, 0x40, 0x3f, name_idx, f);
		hp_enc_insert(e, f);
		return o;
	}
	return hp_put_literal(o, 0x00, 0x0f, name_idx, f);	/* 0000: without */
}

size_t hpack_enc_block(struct hpack_enc *e, uint8_t *out, const struct hpack_field *f, size_t n)
{
	uint8_t *o = hp_enc_resize(e, out);

	for (size_t i = 0; i < n; i++)
		o = hp_enc_field(e, o, &f[i]);
	return (size_t)(o - out);
}
