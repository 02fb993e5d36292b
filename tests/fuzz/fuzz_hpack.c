/*
 * fuzz_hpack.c - libFuzzer target for the HPACK codec (gateway/net/hpack.c),
 * which replaces nghttp2's for the native HTTP/2 engine.
 *
 * The input: byte 0 sets the decoders' table limit (low 4 bits: that many
 * times 32 bytes, 15: 4096) and a field at which one decoder's emit says
 * HPACK_STOP (high 4 bits, 0: never); then up to 8 header blocks, each a
 * length byte (0xff: the rest of the input) and its bytes.  The blocks go,
 * each from an exact-size copy, through one decoder, as a connection's
 * would, through a second one that stops at that field, and through a
 * reference decoder written here: RFC 7541 read plainly (the static table
 * and the Huffman code lengths transcribed again, bits decoded one at a
 * time, the dynamic table an array with memmove).  Invariants:
 *  - the decoder and the reference agree on every block: valid or not, the
 *    fields handed over (bytes and ids), the table (size, max, entries);
 *  - an error is HPACK_ERR_COMPRESSION (or NOMEM), and ends the connection;
 *  - the same id always names the same name and value bytes, across blocks;
 *  - a static field (id 1-61) re-encoded alone is the one byte 0x80 | id;
 *  - where a block is valid, the stopping decoder takes it too, hands over
 *    exactly the first fields, and its table stays the same;
 *  - the fields of a valid block, encoded by hpack_encode (within
 *    hpack_encode_bound), decode with a fresh decoder to the same name and
 *    value bytes, none of them from a dynamic table;
 *  - and encoded by hpack_enc_block (within hpack_enc_bound) with one
 *    encoder for the whole input, told the decoders' limit as a peer's
 *    SETTINGS, they decode with one decoder of that limit, block after
 *    block, to the same bytes; the encoder's table stays within its size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "hpack.h"

#define FZ_BLOCKS 8
#define FZ_IDS (HPACK_ID_DYN + 4096)	/* an insertion takes 2 input bytes at least */
#define FZ_ROUNDTRIP_MAX (256u << 10)	/* bytes of fields: bigger blocks skip the round trip */

/* The fields a decode handed over, their bytes copied. */
struct fz_list {
	struct hpack_field *f;
	size_t n, cap;
	uint8_t *bytes;
	size_t used, bcap;
	size_t stop_at;			/* HPACK_STOP from that field (1-based) */
};

/* The bytes each id named, once seen: same id, same bytes. */
static struct {
	uint8_t *b;
	uint32_t nlen, vlen;
	bool seen;
} fz_ids[FZ_IDS];

static void *fz_grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	*cap = need * 2;
	p = realloc(p, *cap * size);
	FZ_CHECK(p);
	return p;
}

static int fz_collect(void *arg, const struct hpack_field *f)
{
	struct fz_list *l = arg;
	uint8_t *b;

	FZ_CHECK(f->id == 0 || (f->id >= 1 && f->id <= 61) || f->id >= HPACK_ID_DYN);
	l->f = fz_grow(l->f, &l->cap, l->n + 1, sizeof(*l->f));
	l->bytes = fz_grow(l->bytes, &l->bcap, l->used + f->nlen + f->vlen + 1, 1);
	b = l->bytes + l->used;
	if (f->nlen)
		memcpy(b, f->name, f->nlen);
	if (f->vlen)
		memcpy(b + f->nlen, f->value, f->vlen);
	/* offsets for now (bytes may move): fz_fix makes them pointers */
	l->f[l->n] = (struct hpack_field){ (const uint8_t *)(uintptr_t)l->used,
					   (const uint8_t *)(uintptr_t)(l->used + f->nlen),
					   f->nlen, f->vlen, f->id };
	l->used += f->nlen + f->vlen;
	l->n++;
	return l->n == l->stop_at ? HPACK_STOP : 0;
}

/* fz_fix - the fields' offsets into their bytes made pointers. */
static void fz_fix(struct fz_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		l->f[i].name = l->bytes + (uintptr_t)l->f[i].name;
		l->f[i].value = l->bytes + (uintptr_t)l->f[i].value;
	}
}

static void fz_clear(struct fz_list *l)
{
	l->n = l->used = 0;
}

static bool fz_same(const struct hpack_field *a, const struct hpack_field *b)
{
	return a->nlen == b->nlen && a->vlen == b->vlen && !memcmp(a->name, b->name, a->nlen) &&
	       !memcmp(a->value, b->value, a->vlen);
}

/* --- The reference decoder ------------------------------------------------ */

/* RFC 7541 Appendix A, name then value. */
static const char *const fz_static[61 * 2] = {
	":authority", "", ":method", "GET", ":method", "POST", ":path", "/", ":path", "/index.html",
	":scheme", "http", ":scheme", "https", ":status", "200", ":status", "204", ":status", "206",
	":status", "304", ":status", "400", ":status", "404", ":status", "500", "accept-charset", "",
	"accept-encoding", "gzip, deflate", "accept-language", "", "accept-ranges", "", "accept", "",
	"access-control-allow-origin", "", "age", "", "allow", "", "authorization", "",
	"cache-control", "", "content-disposition", "", "content-encoding", "",
	"content-language", "", "content-length", "", "content-location", "", "content-range", "",
	"content-type", "", "cookie", "", "date", "", "etag", "", "expect", "", "expires", "",
	"from", "", "host", "", "if-match", "", "if-modified-since", "", "if-none-match", "",
	"if-range", "", "if-unmodified-since", "", "last-modified", "", "link", "", "location", "",
	"max-forwards", "", "proxy-authenticate", "", "proxy-authorization", "", "range", "",
	"referer", "", "refresh", "", "retry-after", "", "server", "", "set-cookie", "",
	"strict-transport-security", "", "transfer-encoding", "", "user-agent", "", "vary", "",
	"via", "", "www-authenticate", "",
};

/* RFC 7541 Appendix B: each symbol's code length; the code is canonical. */
static const uint8_t fz_huff_len[257] = {
	13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
	28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
	6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
	5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
	13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
	15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
	6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
	20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
	24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
	22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
	21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
	26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
	19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
	20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
	26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
	30,
};

/* Canonical decoding: codes of each length, the first of them, and the
 * symbols ordered by (length, symbol). */
static uint32_t fz_first[32];
static uint16_t fz_count[32], fz_offset[32], fz_sorted[257];

static void fz_huff_init(void)
{
	uint32_t code = 0;
	unsigned k = 0;

	for (unsigned len = 1; len <= 30; len++) {
		fz_first[len] = code;
		fz_offset[len] = (uint16_t)k;
		for (unsigned s = 0; s < 257; s++) {
			if (fz_huff_len[s] == len) {
				fz_sorted[k++] = (uint16_t)s;
				fz_count[len]++;
			}
		}
		code = (code + fz_count[len]) << 1;
	}
	FZ_CHECK(k == 257);
}

/* fz_ref_huff - decode in[0..n) bit by bit into out (room for 2n bytes);
 * its length, or -1 for EOS or a bad padding (over 7 bits, or not ones). */
static long fz_ref_huff(const uint8_t *in, size_t n, uint8_t *out)
{
	uint32_t code = 0;
	unsigned len = 0;
	long o = 0;

	for (size_t i = 0; i < n * 8; i++) {
		code = code << 1 | (in[i / 8] >> (7 - i % 8) & 1);
		len++;
		if (code - fz_first[len] < fz_count[len]) {
			unsigned s = fz_sorted[fz_offset[len] + code - fz_first[len]];

			if (s == 256)
				return -1;
			out[o++] = (uint8_t)s;
			code = 0;
			len = 0;
		}
		FZ_CHECK(len < 30);	/* a complete code: every 30 bits end one */
	}
	if (len > 7 || code != (1u << len) - 1)
		return -1;
	return o;
}

#define FZ_REF_MAX (4096 / 32)

/* The reference's remembered literals (hpack.h): per block position, the
 * last plain literal's bytes as sent and the id they got. */
struct fz_ref_lit {
	uint8_t raw[48];
	size_t rawlen;
	uint32_t id;
};

struct fz_ref {
	struct hpack_field e[FZ_REF_MAX];	/* newest first; bytes malloc'd */
	uint32_t n, size, max, limit, serial;
	struct fz_ref_lit lit[HPACK_LIT_SLOTS];
	uint32_t lit_serial;
};

/* fz_ref_int - §5.1, at most five continuation bytes, at most 2^32 - 1. */
static bool fz_ref_int(const uint8_t *p, size_t n, size_t *i, unsigned bits, uint32_t *out)
{
	uint32_t mask = (1u << bits) - 1;
	uint64_t v;

	if (*i >= n)
		return false;
	v = p[(*i)++] & mask;
	if (v == mask) {
		for (unsigned k = 0;; k++) {
			uint8_t b;

			if (k == 5 || *i >= n)
				return false;
			b = p[(*i)++];
			v += (uint64_t)(b & 0x7f) << (7 * k);
			if (!(b & 0x80))
				break;
		}
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* fz_ref_str - §5.2: a malloc'd copy of the string's bytes (decoded). */
static bool fz_ref_str(const uint8_t *p, size_t n, size_t *i, uint8_t **s, uint32_t *len)
{
	bool huff;
	uint32_t l;
	long dl;

	if (*i >= n)
		return false;
	huff = p[*i] & 0x80;
	if (!fz_ref_int(p, n, i, 7, &l) || l > n - *i)
		return false;
	*s = malloc(2 * (size_t)l + 1);
	FZ_CHECK(*s);
	if (!huff) {
		memcpy(*s, p + *i, l);
		*len = l;
	} else if ((dl = fz_ref_huff(p + *i, l, *s)) >= 0) {
		*len = (uint32_t)dl;
	} else {
		free(*s);
		return false;
	}
	*i += l;
	return true;
}

/* fz_ref_get - the field at index i, or NULL. */
static const struct hpack_field *fz_ref_get(const struct fz_ref *t, uint32_t i, struct hpack_field *tmp)
{
	if (i >= 1 && i <= 61) {
		const char *nm = fz_static[2 * (i - 1)], *v = fz_static[2 * (i - 1) + 1];

		*tmp = (struct hpack_field){ (const uint8_t *)nm, (const uint8_t *)v,
					     (uint32_t)strlen(nm), (uint32_t)strlen(v), i };
		return tmp;
	}
	if (i >= 62 && i - 62 < t->n)
		return &t->e[i - 62];
	return NULL;
}

static void fz_ref_evict(struct fz_ref *t, uint64_t size)
{
	while (t->size > size) {
		struct hpack_field *e = &t->e[--t->n];

		t->size -= e->nlen + e->vlen + 32;
		free((void *)e->name);
	}
}

/* fz_ref_decode - the block p[0..n) into l, the table updated: 0 or -1. */
/* fz_ref_lit_id - the id of the plain literal p[start..end) with name
 * index idx, decoded to f, at block position pos: remembered when its name
 * is static or literal, it is not never-indexed, at most 48 bytes as sent
 * and 96 decoded, at one of the first HPACK_LIT_SLOTS positions. */
static uint32_t fz_ref_lit_id(struct fz_ref *t, const uint8_t *p, size_t start, size_t end,
			      uint32_t idx, const struct hpack_field *f, uint32_t pos)
{
	struct fz_ref_lit *k;

	if (pos >= HPACK_LIT_SLOTS || idx > 61 || (p[start] & 0x10) || end - start > 48 ||
	    f->nlen + f->vlen > 96)
		return 0;
	k = &t->lit[pos];
	if (k->rawlen == end - start && !memcmp(k->raw, p + start, k->rawlen))
		return k->id;
	memcpy(k->raw, p + start, end - start);
	k->rawlen = end - start;
	k->id = HPACK_ID_LIT + t->lit_serial++;
	return k->id;
}

static int fz_ref_decode(struct fz_ref *t, const uint8_t *p, size_t n, struct fz_list *l)
{
	bool fields = false;
	uint32_t pos = 0;
	size_t i = 0;

	while (i < n) {
		struct hpack_field tmp, f = { 0 };
		const struct hpack_field *e;
		size_t start = i;
		uint8_t c = p[i], *name = NULL, *value = NULL;
		uint32_t idx;
		bool inc = (c & 0xc0) == 0x40;

		if ((c & 0xe0) == 0x20) {
			if (fields || !fz_ref_int(p, n, &i, 5, &idx) || idx > t->limit)
				return -1;
			t->max = idx;
			fz_ref_evict(t, idx);
			continue;
		}
		fields = true;
		pos++;
		if (c & 0x80) {
			if (!fz_ref_int(p, n, &i, 7, &idx) || !(e = fz_ref_get(t, idx, &tmp)))
				return -1;
			fz_collect(l, e);
			continue;
		}
		if (!fz_ref_int(p, n, &i, inc ? 6 : 4, &idx))
			return -1;
		if (idx) {
			if (!(e = fz_ref_get(t, idx, &tmp)))
				return -1;
			name = malloc(e->nlen + 1);
			FZ_CHECK(name);
			memcpy(name, e->name, e->nlen);
			f.nlen = e->nlen;
		} else if (!fz_ref_str(p, n, &i, &name, &f.nlen)) {
			return -1;
		}
		if (!fz_ref_str(p, n, &i, &value, &f.vlen)) {
			free(name);
			return -1;
		}
		f.name = name;
		f.value = value;
		if (inc && (uint64_t)f.nlen + f.vlen + 32 <= t->max) {
			uint8_t *b = malloc(f.nlen + f.vlen + 1);

			FZ_CHECK(b);
			memcpy(b, name, f.nlen);
			memcpy(b + f.nlen, value, f.vlen);
			fz_ref_evict(t, t->max - (f.nlen + f.vlen + 32));
			FZ_CHECK(t->n < FZ_REF_MAX);
			memmove(t->e + 1, t->e, t->n * sizeof(t->e[0]));
			t->e[0] = (struct hpack_field){ b, b + f.nlen, f.nlen, f.vlen,
							HPACK_ID_DYN + t->serial++ };
			t->n++;
			t->size += f.nlen + f.vlen + 32;
			fz_collect(l, &t->e[0]);
		} else {
			if (!inc)
				f.id = fz_ref_lit_id(t, p, start, i, idx, &f, pos - 1);
			fz_collect(l, &f);		/* id 0 unless remembered */
			if (inc)
				fz_ref_evict(t, 0);	/* larger than the table */
		}
		free(name);
		free(value);
	}
	return 0;
}

/* fz_same_as_ref - d's table is t's: read back by index. */
static void fz_same_as_ref(struct hpack_dec *d, const struct fz_ref *t)
{
	struct fz_list l = { 0 };

	FZ_CHECK(d->size == t->size && d->count == t->n && d->max == t->max);
	for (uint32_t k = 0; k < t->n; k++) {
		uint8_t blk[8];
		size_t n = 0;
		uint32_t i = 62 + k, v = i - 127;

		if (i < 127) {
			blk[n++] = (uint8_t)(0x80 | i);
		} else {
			blk[n++] = 0xff;
			for (; v >= 0x80; v >>= 7)
				blk[n++] = (uint8_t)(0x80 | (v & 0x7f));
			blk[n++] = (uint8_t)v;
		}
		fz_clear(&l);
		FZ_CHECK(hpack_decode(d, blk, n, fz_collect, &l) == 0);
		FZ_CHECK(l.n == 1);
		fz_fix(&l);
		FZ_CHECK(fz_same(&l.f[0], &t->e[k]) && l.f[0].id == t->e[k].id);
	}
	free(l.f);
	free(l.bytes);
}

/* fz_check_id - f's id names the bytes it named before; a static one is
 * also what the encoder finds for them. */
static void fz_check_id(const struct hpack_field *f)
{
	uint8_t out[1];

	if (f->id == 0 || f->id >= FZ_IDS)
		return;
	if (!fz_ids[f->id].seen) {
		fz_ids[f->id].b = malloc(f->nlen + f->vlen + 1);
		FZ_CHECK(fz_ids[f->id].b);
		memcpy(fz_ids[f->id].b, f->name, f->nlen);
		memcpy(fz_ids[f->id].b + f->nlen, f->value, f->vlen);
		fz_ids[f->id].nlen = f->nlen;
		fz_ids[f->id].vlen = f->vlen;
		fz_ids[f->id].seen = true;
	} else {
		FZ_CHECK(fz_ids[f->id].nlen == f->nlen && fz_ids[f->id].vlen == f->vlen);
		FZ_CHECK(!memcmp(fz_ids[f->id].b, f->name, f->nlen));
		FZ_CHECK(!memcmp(fz_ids[f->id].b + f->nlen, f->value, f->vlen));
	}
	if (f->id <= 61) {
		FZ_CHECK(hpack_encode_bound(f, 1) >= 1);
		/* out has one byte: an indexed field needs no more */
		FZ_CHECK(hpack_encode(out, f, 1) == 1 && out[0] == (0x80 | f->id));
	}
}

/* fz_roundtrip - l's fields encoded, then decoded by a fresh decoder. */
static void fz_roundtrip(const struct fz_list *l)
{
	struct fz_list back = { 0 };
	struct hpack_dec d;
	size_t bound = hpack_encode_bound(l->f, l->n), len;
	uint8_t *out = malloc(bound ? bound : 1);
	int r;

	FZ_CHECK(out);
	len = hpack_encode(out, l->f, l->n);
	FZ_CHECK(len <= bound);
	hpack_dec_init(&d, 0);		/* the encoder never inserts */
	r = hpack_decode(&d, out, len, fz_collect, &back);
	FZ_CHECK(r == 0);
	FZ_CHECK(back.n == l->n);
	fz_fix(&back);
	for (size_t i = 0; i < l->n; i++) {
		FZ_CHECK(fz_same(&back.f[i], &l->f[i]));
		FZ_CHECK(back.f[i].id < HPACK_ID_DYN || back.f[i].id >= HPACK_ID_LIT);
	}
	hpack_dec_free(&d);
	free(out);
	free(back.f);
	free(back.bytes);
}

/* fz_roundtrip_dyn - l's fields encoded with the connection's encoder e,
 * then decoded by the peer's decoder pd (its state carried across blocks). */
static void fz_roundtrip_dyn(struct hpack_enc *e, struct hpack_dec *pd, const struct fz_list *l)
{
	struct fz_list back = { 0 };
	size_t bound = hpack_enc_bound(l->f, l->n), len;
	uint8_t *out = malloc(bound);
	int r;

	FZ_CHECK(out);
	len = hpack_enc_block(e, out, l->f, l->n);
	FZ_CHECK(len <= bound);
	FZ_CHECK(e->size <= e->max && e->max <= HPACK_ENC_SIZE && e->count <= HPACK_ENC_SLOTS);
	r = hpack_decode(pd, out, len, fz_collect, &back);
	FZ_CHECK(r == 0);
	FZ_CHECK(back.n == l->n);
	fz_fix(&back);
	for (size_t i = 0; i < l->n; i++)
		FZ_CHECK(fz_same(&back.f[i], &l->f[i]));
	free(out);
	free(back.f);
	free(back.bytes);
}

static void fz_ref_free(struct fz_ref *t)
{
	fz_ref_evict(t, 0);
	free(t);
}

/* fz_same_lists - the decoder handed over what the reference did. */
static void fz_same_lists(const struct fz_list *a, const struct fz_list *b)
{
	FZ_CHECK(a->n == b->n);
	for (size_t i = 0; i < a->n; i++)
		FZ_CHECK(fz_same(&a->f[i], &b->f[i]) && a->f[i].id == b->f[i].id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz_list all = { 0 }, part = { 0 }, want = { 0 };
	struct hpack_dec d, ds, pd;
	struct hpack_enc enc;
	struct fz_ref *ref;
	uint32_t limit;
	size_t off = 1;

	if (!init) {
		fz_huff_init();
		init = true;
	}
	if (size < 1)
		return 0;
	limit = (data[0] & 15) == 15 ? 4096 : (data[0] & 15) * 32u;
	part.stop_at = data[0] >> 4;
	hpack_dec_init(&d, limit);
	hpack_dec_init(&ds, limit);
	hpack_dec_init(&pd, limit);
	hpack_enc_init(&enc);
	hpack_enc_peer_limit(&enc, limit);
	ref = calloc(1, sizeof(*ref));
	FZ_CHECK(ref);
	ref->max = ref->limit = limit;
	for (int k = 0; k < FZ_BLOCKS && off < size; k++) {
		size_t len = data[off++];
		uint8_t *blk;
		int r, rs, rr;

		if (len == 0xff || len > size - off)
			len = size - off;
		blk = malloc(len ? len : 1);
		FZ_CHECK(blk);
		memcpy(blk, data + off, len);
		off += len;
		fz_clear(&all);
		fz_clear(&part);
		fz_clear(&want);
		r = hpack_decode(&d, blk, len, fz_collect, &all);
		rs = hpack_decode(&ds, blk, len, fz_collect, &part);
		rr = fz_ref_decode(ref, blk, len, &want);
		free(blk);
		FZ_CHECK(r == 0 || r == HPACK_ERR_COMPRESSION || r == HPACK_ERR_NOMEM);
		FZ_CHECK(rs == 0 || rs == HPACK_ERR_COMPRESSION || rs == HPACK_ERR_NOMEM);
		if (r == HPACK_ERR_NOMEM || rs == HPACK_ERR_NOMEM)
			break;
		fz_fix(&all);
		fz_fix(&part);
		fz_fix(&want);
		FZ_CHECK((r == 0) == (rr == 0));
		fz_same_lists(&all, &want);
		for (size_t i = 0; i < all.n; i++)
			fz_check_id(&all.f[i]);
		if (r)
			break;		/* the connection ends */
		FZ_CHECK(d.max <= limit && d.size <= d.max && (uint64_t)d.count * 32 <= d.size);
		fz_same_as_ref(&d, ref);
		/* the stopping decoder: the same block valid, the first fields */
		FZ_CHECK(rs == 0);
		FZ_CHECK(part.n == (part.stop_at && part.stop_at < all.n ? part.stop_at : all.n));
		for (size_t i = 0; i < part.n; i++)
			/* a remembered literal's id is the decoder's own: the
			 * stopping one skipped literals the other kept */
			FZ_CHECK(fz_same(&part.f[i], &all.f[i]) &&
				 (part.f[i].id == all.f[i].id ||
				  (part.f[i].id >= HPACK_ID_LIT && all.f[i].id >= HPACK_ID_LIT)));
		fz_same_as_ref(&ds, ref);
		if (all.used <= FZ_ROUNDTRIP_MAX) {
			fz_roundtrip(&all);
			fz_roundtrip_dyn(&enc, &pd, &all);
		}
	}
	hpack_dec_free(&d);
	hpack_dec_free(&ds);
	hpack_dec_free(&pd);
	fz_ref_free(ref);
	free(all.f);
	free(all.bytes);
	free(part.f);
	free(part.bytes);
	free(want.f);
	free(want.bytes);
	for (size_t i = 0; i < FZ_IDS; i++) {
		if (fz_ids[i].seen) {
			free(fz_ids[i].b);
			fz_ids[i].b = NULL;
			fz_ids[i].seen = false;
		}
	}
	return 0;
}
