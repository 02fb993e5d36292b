/*
 * hpack.h - HPACK (RFC 7541) for an HTTP/2 server: a decoder for the
 * header blocks clients send, a stateless encoder for answers.
 *
 * Decoder: one struct hpack_dec per connection (its dynamic table).  A
 * header block (the HEADERS fragment and its CONTINUATIONs, concatenated
 * by the caller) is decoded whole by hpack_decode, which hands each field
 * to a callback as it is decoded.  Names and values are views valid only
 * during that callback (into the block, the dynamic table or the
 * decoder's scratch space for Huffman-coded strings).
 *
 * Each field carries an id that names its bytes for as long as the
 * connection lives: an indexed field from the static table has its index
 * (1-61); one from the dynamic table the serial number its entry got when
 * it was inserted (HPACK_ID_DYN + n, n counting insertions from 0 on this
 * connection, never reused), and a literal with incremental indexing the
 * serial of the entry it creates (0 when it is larger than the whole table,
 * which it then empties: nothing is kept).  A literal that is not indexed
 * has id 0, unless its name is the static table's or a literal, it is not
 * never-indexed, and it is one of the block's first HPACK_LIT_SLOTS
 * fields (at most 48 bytes as sent, 96 decoded): then the same
 * representation bytes at the same position of a later block are the
 * same field, and get the id the first got (HPACK_ID_LIT + n); such a
 * repeat is not decoded again (clients send :path, content-length and
 * the like as literals, Huffman-coded, request after request).
 * Same id on a connection, same name and value bytes: a caller may keep
 * what it concluded about a field under its id (h2.c's memo).
 *
 * Encoder: stateless (no dynamic table: the decoder on the other side
 * keeps its own at whatever size; we never insert).  A field whose name
 * and value are a static table entry is indexed (":status: 200" is one
 * byte); otherwise a literal without indexing, with the static table's
 * name index when it has the name.  Strings are never Huffman-coded.
 *
 * Pure: no I/O; the decoder allocates its table and scratch (bounded by
 * the table size and the block's length) with malloc.
 */
#ifndef INFERGW_HPACK_H
#define INFERGW_HPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPACK_ID_DYN 64u		/* ids of dynamic-table fields start here */
#define HPACK_ID_LIT 0x80000000u	/* ids of remembered literals start here */
#define HPACK_LIT_SLOTS 8		/* block positions whose literal is remembered */
#define HPACK_TABLE_DEFAULT 4096u	/* SETTINGS_HEADER_TABLE_SIZE's default */

struct hpack_field {
	const uint8_t *name, *value;
	uint32_t nlen, vlen;
	uint32_t id;			/* see above; 0: not indexed */
};

/* The dynamic table: a ring of entries, each name and value bytes kept
 * in one allocation.  Fields are private to hpack.c. */
struct hpack_dec {
	struct hpack_entry *ring;	/* cap entries, oldest at head */
	uint32_t cap, head, count;
	uint32_t size;			/* RFC 7541 §4.1 size of what it holds */
	uint32_t max;			/* the size the encoder last set (§6.3) */
	uint32_t limit;			/* ours: SETTINGS_HEADER_TABLE_SIZE */
	uint32_t serial;		/* insertions so far */
	uint8_t *scratch;		/* Huffman-decoded strings of one block */
	size_t scratch_cap;
	struct hpack_lit *lit;		/* HPACK_LIT_SLOTS, at the first literal */
	uint32_t lit_serial;		/* literals remembered so far */
};

/*
 * hpack_emit - called for each field of a block, in order.  Returns 0 to go
 * on, HPACK_STOP to have the rest of this block's fields decoded (the
 * table must stay in step) but not handed over, or any negative value to
 * abort hpack_decode with that value.
 */
#define HPACK_STOP 1
typedef int (*hpack_emit)(void *arg, const struct hpack_field *f);

/* Errors: a COMPRESSION_ERROR for the connection (RFC 9113 §4.3). */
#define HPACK_ERR_COMPRESSION (-1)
#define HPACK_ERR_NOMEM (-2)

/* hpack_dec_init - an empty decoder whose table may hold up to limit
 * bytes (what our SETTINGS_HEADER_TABLE_SIZE says; 4096 by default). */
void hpack_dec_init(struct hpack_dec *d, uint32_t limit);
void hpack_dec_free(struct hpack_dec *d);

/*
 * hpack_decode - decode the header block p[0..n) into fields, calling
 * emit(arg, field) for each.  0 when the whole block was valid; else
 * HPACK_ERR_COMPRESSION (bad integer or string, index out of range,
 * Huffman padding or EOS, a table size update above the limit or not at
 * the block's start), HPACK_ERR_NOMEM, or emit's negative value.  After an
 * error the decoder is unusable: the connection is to end with GOAWAY.
 * Cost: linear in n plus the table's evictions; an indexed field is not
 * copied.
 */
int hpack_decode(struct hpack_dec *d, const uint8_t *p, size_t n, hpack_emit emit, void *arg);

/*
 * The encoder's dynamic table (RFC 7541 §2.3.2, §4): our copy of what the
 * peer's decoder holds of what we inserted.  We use at most HPACK_ENC_SIZE
 * bytes of it (less when the peer's SETTINGS_HEADER_TABLE_SIZE is lower),
 * so HPACK_ENC_SLOTS entries (each at least 32 bytes) always suffice and
 * size, not slots, decides every eviction, as in the peer's decoder.  An
 * entry's index is 62 + the number of entries newer than it: an entry the
 * peer still holds but we evicted is older than all ours, so it never
 * shifts an index, and is merely never referenced.
 * Fields indexed: name + value at most HPACK_ENC_FIELD_MAX bytes, not
 * content-length or grpc-message (their values change per answer).
 */
#define HPACK_ENC_SIZE 512
#define HPACK_ENC_SLOTS (HPACK_ENC_SIZE / 32)
#define HPACK_ENC_FIELD_MAX 64

struct hpack_enc_entry {
	uint8_t nlen, vlen;
	uint8_t b[HPACK_ENC_FIELD_MAX];	/* name then value */
};

struct hpack_enc {
	uint32_t max;			/* size in use: min(HPACK_ENC_SIZE, peer's) */
	uint32_t peer;			/* the peer's SETTINGS_HEADER_TABLE_SIZE */
	uint32_t low;			/* smallest peer value since the last block;
					 * UINT32_MAX: no change to signal */
	uint32_t size;			/* §4.1 size of the entries held */
	uint32_t head, count;		/* ring: e[head] is the oldest */
	struct hpack_enc_entry e[HPACK_ENC_SLOTS];
};

/* hpack_enc_init - an empty table; the peer's limit the default 4096. */
void hpack_enc_init(struct hpack_enc *e);

/* hpack_enc_peer_limit - the peer's SETTINGS_HEADER_TABLE_SIZE is now v:
 * the next block starts with the size update(s) §4.2 asks for. */
void hpack_enc_peer_limit(struct hpack_enc *e, uint32_t v);

/*
 * hpack_enc_bound - room hpack_enc_block may need for these fields.
 * hpack_enc_block - the header block for f[0..n) at out, using and
 * updating e: the peer must decode the blocks in the order they were
 * encoded, every one of them (encode a block only when it is sure to be
 * sent).  Its length.  Names must be lower case.
 */
size_t hpack_enc_bound(const struct hpack_field *f, size_t n);
size_t hpack_enc_block(struct hpack_enc *e, uint8_t *out, const struct hpack_field *f, size_t n);

/*
 * hpack_encode_bound - room hpack_encode may need for these fields.
 * hpack_encode - the header block for fields f[0..n) written at out (room
 * for hpack_encode_bound(f, n) bytes); its length.  Names must be lower
 * case (the caller's to ensure).  Stateless (static table and literals
 * only): for a block encoded ahead of its turn on the wire (trailers).
 */
size_t hpack_encode_bound(const struct hpack_field *f, size_t n);
size_t hpack_encode(uint8_t *out, const struct hpack_field *f, size_t n);

#endif
