/*
 * h2w.c - the gateway's own HTTP/2 server framing (RFC 9113); see h2w.h.
 *
 * Input: frames are parsed straight from the caller's bytes; a DATA frame
 * cut by the end of an h2w_recv call hands its payload on as it comes
 * (h2w_data_start); any other cut frame is copied (into ibuf, one frame at
 * most, allocated when a connection first needs it), and only a header
 * block split over CONTINUATIONs is gathered (hbuf, at most
 * max_header_block bytes).
 *
 * Output: three queues, written in this order by h2w_send: control frames
 * (ctl: SETTINGS, ACKs, RST_STREAM, WINDOW_UPDATE, GOAWAY, as queued),
 * answers' HEADERS (hout: their fields, in submit order, HPACK-encoded
 * when written: the encoder's dynamic table must see the blocks the peer
 * decodes, in its order, and the block of a stream reset meanwhile is
 * never encoded), then DATA and trailers of the streams
 * that have a body to send (the active list, round-robin, a frame per
 * stream per turn; trailers are encoded at submit time, so statelessly).
 * A stream's DATA never overtakes its HEADERS: hout is empty before any
 * DATA goes.
 *
 * Streams: structs recycled through a free list, found by id in an
 * open-addressing table (linear probing, backward-shift deletion) behind a
 * one-entry cache.  Closed streams are not kept: an id at most the highest
 * one seen that names no stream is a closed one.
 *
 * Token buckets (H2W_BUCKET_BURST frames, refilled at H2W_BUCKET_RATE a
 * second of CLOCK_MONOTONIC, read only when a bucket runs dry) bound the
 * streams a client resets, its SETTINGS and PINGs, and its empty DATA
 * frames without END_STREAM.
 */
#include "h2w.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* frame types */
#define T_DATA		0x0
#define T_HEADERS	0x1
#define T_PRIORITY	0x2
#define T_RST		0x3
#define T_SETTINGS	0x4
#define T_PUSH		0x5
#define T_PING		0x6
#define T_GOAWAY	0x7
#define T_WINUP		0x8
#define T_CONT		0x9

/* frame flags */
#define F_END_STREAM	0x1
#define F_ACK		0x1
#define F_END_HEADERS	0x4
#define F_PADDED	0x8
#define F_PRIORITY	0x20

#define H2W_FRAME_MAX	16384u		/* our SETTINGS_MAX_FRAME_SIZE (default) */
#define H2W_WIN_MAX	0x7fffffffLL
#define H2W_WIN_DEFAULT	65535u
#define H2W_MAX_CONT	8		/* CONTINUATIONs in one header block */
#define H2W_GATHER	16384		/* output reserved at a time */
#define H2W_MOVE_MIN	4096		/* DATA above this moves chains, not bytes */
#define H2W_BUCKET_BURST 1000
#define H2W_BUCKET_RATE	200		/* tokens a second */
#define H2W_TRAILER_IN	128		/* trailers up to this are kept in the stream */
#define H2W_CB_FAIL	(-100)		/* a callback failed inside hpack_decode */

static const uint8_t h2w_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const char h2w_oom[] = "out of memory";

/* struct h2w_stream.f */
#define S_REMOTE_END	0x001	/* the client's END_STREAM came */
#define S_LOCAL_END	0x002	/* ours was written */
#define S_RESET		0x004	/* RST_STREAM queued by us: no more callbacks */
#define S_ANSWERED	0x008	/* HEADERS submitted */
#define S_HDR_END	0x010	/* ... with END_STREAM */
#define S_DATA_END	0x020	/* h2w_data_end called */
#define S_DEFERRED	0x040	/* source drained, waiting for h2w_resume */
#define S_ACTIVE	0x080	/* on the active list */
#define S_TRAILERS	0x100	/* trailers to send after the body */

struct h2w_stream {
	int32_t id;
	uint32_t f;
	int64_t send_win;
	int64_t recv_win;		/* what the client may still send */
	uint32_t given;			/* given back, not yet announced */
	void *user;
	struct evbuffer *src;
	struct h2w_stream *anext, *aprev;	/* active list; anext: free list too */
	uint8_t *trl;			/* trailers' frames: trl_in or malloc'd */
	uint32_t trl_len;
	uint8_t trl_in[H2W_TRAILER_IN];
};

/* A growable byte queue: bytes [off, len) are pending. */
struct h2w_bytes {
	uint8_t *p;
	size_t off, len, cap;
};

struct h2w_bucket {
	uint32_t tokens;
	uint64_t t_ns;
};

/* what a received header block is for (hb_mode) */
enum { HB_NEW, HB_TRAILER, HB_IGNORE };

struct h2w {
	const struct h2w_callbacks *cb;
	void *arg;
	struct h2w_config cfg;
	struct hpack_dec dec;
	struct hpack_enc enc;		/* answers' HEADERS, in wire order */

	/* input */
	uint32_t pre;			/* preface bytes matched */
	bool got_settings;		/* the client's first SETTINGS came */
	bool dead;			/* connection error or terminate: input ignored */
	bool done;			/* nothing more to read or write */
	bool goaway_sent;		/* ours queued: no new streams */
	bool goaway_recv;
	bool term_goaway_out;		/* the terminating GOAWAY is written */
	int32_t max_seen;		/* highest client stream id seen */
	int32_t last_open;		/* highest one opened */
	uint32_t ilen;
	uint32_t dleft;			/* payload bytes the DATA being streamed lacks */
	int32_t dsid;			/* its stream; 0: its bytes are dropped */
	bool des;			/* it carries END_STREAM */
	int32_t hb_sid;			/* header block being gathered; 0: none */
	uint8_t hb_mode;
	bool hb_end_stream;
	uint32_t hb_ncont;
	struct h2w_bytes hbuf;

	/* flow control */
	int64_t conn_send_win;
	int64_t conn_recv_win;
	uint32_t conn_given;
	uint32_t peer_init_win;
	uint32_t peer_max_frame;

	/* output */
	struct h2w_bytes ctl, hout;
	uint32_t n_ctl;			/* ACKs and RST_STREAMs in ctl */
	struct h2w_stream *act_head, *act_tail;
	uint32_t n_active;

	/* streams */
	struct h2w_stream **tab;
	uint32_t tab_mask, n_streams;
	struct h2w_stream *last, *free_list;

	struct h2w_bucket b_reset, b_ctl, b_empty;
	const char *why;
	uint8_t *ibuf;			/* 9 + H2W_FRAME_MAX, at the first cut frame */
};

/* ------------------------------------------------------------ helpers -- */

static uint32_t h2w_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t h2w_get24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static void h2w_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A frame header at p. */
static void h2w_hdr(uint8_t *p, uint32_t len, uint8_t type, uint8_t flags, int32_t sid)
{
	p[0] = (uint8_t)(len >> 16);
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	p[3] = type;
	p[4] = flags;
	h2w_put32(p + 5, (uint32_t)sid);
}

/* Room for n more bytes at b->p + b->len (pending bytes moved to the
 * front first); NULL when out of memory. */
static uint8_t *h2w_bytes_room(struct h2w_bytes *b, size_t n)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->p && b->cap - b->len >= n)	/* n may be 0: never NULL + 0 */
		return b->p + b->len;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return b->p + b->len;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return NULL;
	b->p = p;
	b->cap = cap;
	return p + b->len;
}

static uint64_t h2w_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void h2w_bucket_init(struct h2w_bucket *b, uint64_t now)
{
	b->tokens = H2W_BUCKET_BURST;
	b->t_ns = now;
}

/* Take a token; false when the bucket is dry even after its refill. */
static bool h2w_bucket_take(struct h2w_bucket *b)
{
	uint64_t now, add;

	if (b->tokens) {
		b->tokens--;
		return true;
	}
	now = h2w_now_ns();
	add = (now - b->t_ns) * H2W_BUCKET_RATE / 1000000000ull;
	if (!add)
		return false;
	b->tokens = (uint32_t)(add > H2W_BUCKET_BURST ? H2W_BUCKET_BURST : add) - 1;
	b->t_ns = now;
	return true;
}

/* ------------------------------------------------------------ streams -- */

static uint32_t h2w_hash(int32_t id)
{
	return (uint32_t)id * 0x9E3779B1u;
}

static struct h2w_stream *h2w_find(struct h2w *s, int32_t id)
{
	struct h2w_stream *st;
	uint32_t i;

	if (s->last && s->last->id == id)
		return s->last;
	for (i = h2w_hash(id) & s->tab_mask; (st = s->tab[i]); i = (i + 1) & s->tab_mask) {
		if (st->id == id) {
			s->last = st;
			return st;
		}
	}
	return NULL;
}

static void h2w_tab_put(struct h2w_stream **tab, uint32_t mask, struct h2w_stream *st)
{
	uint32_t i = h2w_hash(st->id) & mask;

	while (tab[i])
		i = (i + 1) & mask;
	tab[i] = st;
}

/* Double the table once it is half full: probes stay short. */
static int h2w_tab_grow(struct h2w *s)
{
	uint32_t cap = (s->tab_mask + 1) * 2;
	struct h2w_stream **tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -1;
	for (uint32_t i = 0; i <= s->tab_mask; i++)
		if (s->tab[i])
			h2w_tab_put(tab, cap - 1, s->tab[i]);
	free(s->tab);
	s->tab = tab;
	s->tab_mask = cap - 1;
	return 0;
}

static void h2w_tab_del(struct h2w *s, struct h2w_stream *st)
{
	uint32_t i = h2w_hash(st->id) & s->tab_mask, j, k;

	while (s->tab[i] != st)
		i = (i + 1) & s->tab_mask;
	/* backward shift: no tombstones */
	for (j = (i + 1) & s->tab_mask; s->tab[j]; j = (j + 1) & s->tab_mask) {
		k = h2w_hash(s->tab[j]->id) & s->tab_mask;
		/* entry j may fill hole i unless its home lies in (i, j] */
		if (((j - k) & s->tab_mask) >= ((j - i) & s->tab_mask)) {
			s->tab[i] = s->tab[j];
			i = j;
		}
	}
	s->tab[i] = NULL;
}

/* A new stream id (windows from the current settings); NULL: no memory. */
static struct h2w_stream *h2w_stream_new(struct h2w *s, int32_t id)
{
	struct h2w_stream *st = s->free_list;

	if ((s->n_streams + 1) * 2 > s->tab_mask + 1 && h2w_tab_grow(s))
		return NULL;
	if (st)
		s->free_list = st->anext;
	else if (!(st = malloc(sizeof(*st))))
		return NULL;
	st->id = id;
	st->f = 0;
	st->send_win = s->peer_init_win;
	st->recv_win = s->cfg.stream_window;
	st->given = 0;
	st->user = NULL;
	st->src = NULL;
	st->anext = st->aprev = NULL;
	st->trl = NULL;
	st->trl_len = 0;
	h2w_tab_put(s->tab, s->tab_mask, st);
	s->n_streams++;
	s->last = st;
	return st;
}

static void h2w_act_add(struct h2w *s, struct h2w_stream *st)
{
	if (st->f & S_ACTIVE)
		return;
	st->f |= S_ACTIVE;
	st->anext = NULL;
	st->aprev = s->act_tail;
	if (s->act_tail)
		s->act_tail->anext = st;
	else
		s->act_head = st;
	s->act_tail = st;
	s->n_active++;
}

static void h2w_act_del(struct h2w *s, struct h2w_stream *st)
{
	if (!(st->f & S_ACTIVE))
		return;
	st->f &= ~S_ACTIVE;
	if (st->aprev)
		st->aprev->anext = st->anext;
	else
		s->act_head = st->anext;
	if (st->anext)
		st->anext->aprev = st->aprev;
	else
		s->act_tail = st->aprev;
	st->anext = st->aprev = NULL;
	s->n_active--;
}

/* Forget st (its struct back to the free list); no callback. */
static void h2w_stream_drop(struct h2w *s, struct h2w_stream *st)
{
	h2w_act_del(s, st);
	h2w_tab_del(s, st);
	s->n_streams--;
	if (s->last == st)
		s->last = NULL;
	if (st->trl && st->trl != st->trl_in)
		free(st->trl);
	st->id = 0;
	st->f = 0;
	st->anext = s->free_list;
	s->free_list = st;
}

/* st closed: the close callback, then forgotten.  The callback's value. */
static int h2w_stream_close(struct h2w *s, struct h2w_stream *st, uint32_t code)
{
	int32_t id = st->id;
	void *user = st->user;

	h2w_stream_drop(s, st);
	return s->cb->close(s->arg, id, user, code);
}

/* ----------------------------------------------------- control frames -- */

/* A control frame appended to ctl; counted: an ACK or RST_STREAM the peer
 * made us queue.  0, or H2W_ERR_FATAL / H2W_ERR_NOMEM. */
static int h2w_conn_error(struct h2w *s, uint32_t code, const char *why);

static int h2w_ctl(struct h2w *s, uint8_t type, uint8_t flags, int32_t sid, const uint8_t *pl,
		   uint32_t len, bool counted)
{
	uint8_t *p;

	if (counted && s->n_ctl >= H2W_MAX_QUEUED_CONTROL)
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM,
				      "too many control frames queued (peer not reading)");
	if (!(p = h2w_bytes_room(&s->ctl, 9 + len)))
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, h2w_oom);
	h2w_hdr(p, len, type, flags, sid);
	if (len)
		memcpy(p + 9, pl, len);
	s->ctl.len += 9 + len;
	s->n_ctl += counted;
	return 0;
}

static int h2w_ctl_u32(struct h2w *s, uint8_t type, int32_t sid, uint32_t v, bool counted)
{
	uint8_t pl[4];

	h2w_put32(pl, v);
	return h2w_ctl(s, type, 0, sid, pl, 4, counted);
}

/* The GOAWAY frame itself. */
static int h2w_ctl_goaway(struct h2w *s, uint32_t code)
{
	uint8_t pl[8];

	h2w_put32(pl, (uint32_t)s->last_open);
	h2w_put32(pl + 4, code);
	return h2w_ctl(s, T_GOAWAY, 0, 0, pl, 8, false);
}

/* End the session: everything queued dropped, GOAWAY(code) alone left
 * to write. */
static void h2w_terminate(struct h2w *s, uint32_t code)
{
	if (s->dead)
		return;
	s->dead = true;
	s->goaway_sent = true;
	s->ctl.off = s->ctl.len = 0;
	s->n_ctl = 0;
	s->hout.off = s->hout.len = 0;
	while (s->act_head)
		h2w_act_del(s, s->act_head);
	if (h2w_ctl_goaway(s, code))
		s->done = true;	/* no memory even for 17 bytes: just close */
}

static int h2w_conn_error(struct h2w *s, uint32_t code, const char *why)
{
	s->why = why;
	h2w_terminate(s, code);
	return why == h2w_oom ? H2W_ERR_NOMEM : H2W_ERR_FATAL;
}

/* A stream error (RFC 9113 §5.4.2): RST_STREAM(code); a stream we hold
 * closes once that is written. */
static int h2w_stream_error(struct h2w *s, int32_t sid, uint32_t code)
{
	struct h2w_stream *st = h2w_find(s, sid);

	if (st) {
		if (st->f & S_RESET)
			return 0;
		st->f |= S_RESET;
		h2w_act_del(s, st);
	}
	return h2w_ctl_u32(s, T_RST, sid, code, true);
}

/* ------------------------------------------------------- flow control -- */

static int h2w_give_conn(struct h2w *s, size_t n)
{
	uint32_t half = s->cfg.conn_window / 2;

	s->conn_given += (uint32_t)n;
	if (s->conn_given < half || s->dead)
		return 0;
	s->conn_recv_win += s->conn_given;
	n = s->conn_given;
	s->conn_given = 0;
	return h2w_ctl_u32(s, T_WINUP, 0, (uint32_t)n, false);
}

static int h2w_give_stream(struct h2w *s, struct h2w_stream *st, size_t n)
{
	if (st->f & (S_REMOTE_END | S_RESET) || s->dead)
		return 0;	/* no more DATA wanted on it */
	st->given += (uint32_t)n;
	if (st->given < s->cfg.stream_window / 2)
		return 0;
	st->recv_win += st->given;
	n = st->given;
	st->given = 0;
	return h2w_ctl_u32(s, T_WINUP, st->id, (uint32_t)n, false);
}

/* ----------------------------------------------------------- settings -- */

#define SET_HEADER_TABLE_SIZE	0x1
#define SET_ENABLE_PUSH		0x2
#define SET_MAX_CONCURRENT	0x3
#define SET_INITIAL_WINDOW	0x4
#define SET_MAX_FRAME_SIZE	0x5
#define SET_MAX_HEADER_LIST	0x6
#define SET_CONNECT_PROTOCOL	0x8
#define SET_NO_RFC7540_PRIO	0x9

/* RFC 9113 §6.5.2: the error a SETTINGS payload's values make, or 0. */
static uint32_t h2w_settings_check(const uint8_t *p, size_t n, const char **why)
{
	if (n % 6) {
		*why = "SETTINGS length not a multiple of 6";
		return H2W_FRAME_SIZE_ERROR;
	}
	for (; n; p += 6, n -= 6) {
		uint16_t id = (uint16_t)(p[0] << 8 | p[1]);
		uint32_t v = h2w_get32(p + 2);

		if (id == SET_INITIAL_WINDOW && v > H2W_WIN_MAX) {
			*why = "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1";
			return H2W_FLOW_CONTROL_ERROR;
		}
		if (((id == SET_ENABLE_PUSH || id == SET_CONNECT_PROTOCOL ||
		      id == SET_NO_RFC7540_PRIO) && v > 1) ||
		    (id == SET_MAX_FRAME_SIZE && (v < 16384 || v > 16777215))) {
			*why = "SETTINGS value out of range";
			return H2W_PROTOCOL_ERROR;
		}
	}
	return 0;
}

/* Take a checked SETTINGS payload.  A new initial window moves every
 * stream's send window by the difference (§6.9.2). */
static int h2w_settings_apply(struct h2w *s, const uint8_t *p, size_t n)
{
	for (; n; p += 6, n -= 6) {
		uint16_t id = (uint16_t)(p[0] << 8 | p[1]);
		uint32_t v = h2w_get32(p + 2);
		int64_t delta;
		bool over = false;

		if (id == SET_MAX_FRAME_SIZE) {
			s->peer_max_frame = v;
		} else if (id == SET_HEADER_TABLE_SIZE) {
			hpack_enc_peer_limit(&s->enc, v);
		} else if (id == SET_INITIAL_WINDOW) {
			delta = (int64_t)v - s->peer_init_win;
			s->peer_init_win = v;
			for (uint32_t i = 0; delta && i <= s->tab_mask; i++) {
				struct h2w_stream *st = s->tab[i];

				if (st && (st->send_win += delta) > H2W_WIN_MAX)
					over = true;
			}
			if (over)
				return h2w_conn_error(s, H2W_FLOW_CONTROL_ERROR,
						      "stream window above 2^31-1 after SETTINGS");
		}
	}
	return 0;
}

/* -------------------------------------------------------------- input -- */

struct h2w_dctx {
	struct h2w *s;
	struct h2w_stream *st;	/* NULL: fields decoded, not handed over */
	bool trailer;
};

/* A field for the gateway, unless its stream was reset or the session
 * ended (both possibly by the callback itself, mid-block): then the rest of
 * the block is decoded without it.  A session the gateway terminated from
 * here (h2w_goaway) must not hear of the block's other fields: a block of
 * 12,000 references to a 4 KB entry was 12,000 calls of a callback that
 * had given up on the connection at the first. */
static int h2w_emit(void *arg, const struct hpack_field *f)
{
	struct h2w_dctx *d = arg;

	if (!d->st || d->st->f & S_RESET || d->s->dead)
		return HPACK_STOP;
	if (d->s->cb->field(d->s->arg, d->st->id, d->st->user, f, d->trailer) < 0)
		return H2W_CB_FAIL;
	return d->st->f & S_RESET || d->s->dead ? HPACK_STOP : 0;
}

/* The whole header block p[0..n) of stream hb_sid: decoded, and handed to
 * the gateway as hb_mode says. */
static int h2w_block_end(struct h2w *s, const uint8_t *p, size_t n)
{
	struct h2w_dctx d = { s, NULL, s->hb_mode == HB_TRAILER };
	int32_t sid = s->hb_sid;
	int rc;

	s->hb_sid = 0;
	if (s->hb_mode == HB_NEW) {
		if (!(d.st = h2w_stream_new(s, sid)))
			return h2w_conn_error(s, H2W_INTERNAL_ERROR, h2w_oom);
		s->last_open = sid;
		if (s->cb->begin(s->arg, sid) < 0)
			return h2w_conn_error(s, H2W_INTERNAL_ERROR, "callback failed");
	} else if (s->hb_mode == HB_TRAILER) {
		d.st = h2w_find(s, sid);
	}
	rc = hpack_decode(&s->dec, p, n, h2w_emit, &d);
	if (rc == H2W_CB_FAIL)
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, "callback failed");
	if (rc == HPACK_ERR_NOMEM)
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, h2w_oom);
	if (rc < 0)
		return h2w_conn_error(s, H2W_COMPRESSION_ERROR, "HPACK decoding failed");
	if (!d.st || d.st->f & S_RESET || s->dead)
		return 0;
	if (s->hb_end_stream)
		d.st->f |= S_REMOTE_END;
	if (s->cb->end(s->arg, sid, d.st->user, true, d.trailer, s->hb_end_stream) < 0)
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, "callback failed");
	return 0;
}

/* What a HEADERS frame on sid is for (sets hb_mode); < 0: conn error. */
static int h2w_headers_target(struct h2w *s, int32_t sid, bool self_dep)
{
	struct h2w_stream *st;

	s->hb_mode = HB_IGNORE;
	if (!(sid & 1))
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "HEADERS on an even stream id");
	if (sid > s->max_seen) {
		s->max_seen = sid;
		if (self_dep)
			return h2w_stream_error(s, sid, H2W_PROTOCOL_ERROR);
		if (s->goaway_sent || s->goaway_recv)
			return 0;	/* ignored, its block decoded */
		if (s->n_streams >= s->cfg.max_concurrent_streams)
			return h2w_stream_error(s, sid, H2W_REFUSED_STREAM);
		s->hb_mode = HB_NEW;
		return 0;
	}
	st = h2w_find(s, sid);
	if (st && st->f & S_RESET)
		return 0;
	if (!st || st->f & S_REMOTE_END)
		return h2w_stream_error(s, sid, H2W_STREAM_CLOSED);
	if (self_dep)
		return h2w_stream_error(s, sid, H2W_PROTOCOL_ERROR);
	s->hb_mode = HB_TRAILER;
	return 0;
}

/* Padding (PADDED: p[0] is its length) off p[0..*n), skip more bytes
 * after the pad length; the payload's start, or NULL (a conn error). */
static const uint8_t *h2w_unpad(struct h2w *s, const uint8_t *p, uint32_t *n, uint8_t flags,
				uint32_t skip, int *rc)
{
	uint32_t pad = 0, off = skip;

	if (flags & F_PADDED) {
		if (*n < 1 + skip) {
			*rc = h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "frame too short");
			return NULL;
		}
		pad = p[0];
		off++;
	} else if (*n < skip) {
		*rc = h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "frame too short");
		return NULL;
	}
	if (pad > *n - off) {
		*rc = h2w_conn_error(s, H2W_PROTOCOL_ERROR, "padding exceeds the payload");
		return NULL;
	}
	*n -= off + pad;
	return p + off;
}

static int h2w_on_headers(struct h2w *s, const uint8_t *p, uint32_t n, uint8_t flags, int32_t sid)
{
	const uint8_t *frag;
	bool prio = flags & F_PRIORITY;
	int rc = 0;

	if (!sid)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "HEADERS on stream 0");
	if (!(frag = h2w_unpad(s, p, &n, flags, prio ? 5 : 0, &rc)))
		return rc;
	if (n > s->cfg.max_header_block)
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM, "header block too large");
	rc = h2w_headers_target(s, sid,
				prio && (int32_t)(h2w_get32(frag - 5) & 0x7fffffff) == sid);
	if (rc < 0 || s->dead)
		return rc;
	s->hb_sid = sid;
	s->hb_end_stream = flags & F_END_STREAM;
	if (flags & F_END_HEADERS)
		return h2w_block_end(s, frag, n);	/* straight from the input */
	s->hb_ncont = 0;
	s->hbuf.off = s->hbuf.len = 0;
	if (!h2w_bytes_room(&s->hbuf, n))
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, h2w_oom);
	memcpy(s->hbuf.p, frag, n);
	s->hbuf.len = n;
	return 0;
}

static int h2w_on_cont(struct h2w *s, const uint8_t *p, uint32_t n, uint8_t flags)
{
	uint8_t *q;

	if (++s->hb_ncont > H2W_MAX_CONT || s->hbuf.len + n > s->cfg.max_header_block)
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM, "header block too large");
	if (!(q = h2w_bytes_room(&s->hbuf, n)))
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, h2w_oom);
	memcpy(q, p, n);
	s->hbuf.len += n;
	if (!(flags & F_END_HEADERS))
		return 0;
	return h2w_block_end(s, s->hbuf.p, s->hbuf.len);
}

/* The stream sid names, for DATA: NULL and *rc set when it is not one
 * to deliver to (idle: conn error; closed or half-closed: STREAM_CLOSED;
 * reset by us: ignored). */
static struct h2w_stream *h2w_data_stream(struct h2w *s, int32_t sid, int *rc)
{
	struct h2w_stream *st;

	*rc = 0;
	if (!(sid & 1) || sid > s->max_seen) {
		*rc = h2w_conn_error(s, H2W_PROTOCOL_ERROR, "DATA on an idle stream");
		return NULL;
	}
	st = h2w_find(s, sid);
	if (st && st->f & S_RESET)
		return NULL;
	if (!st || st->f & S_REMOTE_END) {
		*rc = h2w_stream_error(s, sid, H2W_STREAM_CLOSED);
		return NULL;
	}
	return st;
}

/*
 * A DATA frame of len payload bytes (padding included) on sid: the checks
 * and window accounting made before any of its payload is handed on.  The
 * stream that takes the payload, or NULL: its bytes are dropped (*rc 0,
 * the connection window given back) or a connection error (*rc < 0).
 */
static struct h2w_stream *h2w_data_begin(struct h2w *s, uint32_t len, int32_t sid, int *rc)
{
	struct h2w_stream *st;

	if (len > s->conn_recv_win) {
		*rc = h2w_conn_error(s, H2W_FLOW_CONTROL_ERROR, "connection window exceeded");
		return NULL;
	}
	s->conn_recv_win -= len;
	if (!(st = h2w_data_stream(s, sid, rc))) {
		if (*rc >= 0)
			*rc = h2w_give_conn(s, len);	/* nobody takes them */
		return NULL;
	}
	if (len > st->recv_win) {
		if ((*rc = h2w_give_conn(s, len)) >= 0)
			*rc = h2w_stream_error(s, sid, H2W_FLOW_CONTROL_ERROR);
		return NULL;
	}
	st->recv_win -= len;
	return st;
}

/* d[0..n) of st's DATA payload to the gateway (none once st was reset). */
static int h2w_data_give(struct h2w *s, struct h2w_stream *st, const uint8_t *d, size_t n)
{
	if (n && !(st->f & S_RESET) && s->cb->data(s->arg, st->id, st->user, d, n) < 0)
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, "callback failed");
	return 0;
}

/* st's DATA frame is in (es: with END_STREAM). */
static int h2w_data_done(struct h2w *s, struct h2w_stream *st, bool es)
{
	if (st->f & S_RESET)
		return 0;
	if (es)
		st->f |= S_REMOTE_END;
	if (s->cb->end(s->arg, st->id, st->user, false, false, es) < 0)
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, "callback failed");
	return 0;
}

static int h2w_on_data(struct h2w *s, const uint8_t *p, uint32_t n, uint8_t flags, int32_t sid)
{
	struct h2w_stream *st;
	const uint8_t *d;
	uint32_t len = n;
	bool es = flags & F_END_STREAM;
	int rc = 0;

	if (!sid)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "DATA on stream 0");
	if (!(d = h2w_unpad(s, p, &n, flags, 0, &rc)))
		return rc;
	if (!(st = h2w_data_begin(s, len, sid, &rc)))
		return rc;
	if (!n && !es && !h2w_bucket_take(&s->b_empty))
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM, "empty DATA frames flood");
	if (len > n && ((rc = h2w_give_conn(s, len - n)) < 0 ||
			(rc = h2w_give_stream(s, st, len - n)) < 0))
		return rc;	/* padding: given back at once */
	if ((rc = h2w_data_give(s, st, d, n)) < 0)
		return rc;
	return h2w_data_done(s, st, es);
}

/*
 * A DATA frame cut by the end of the input is not copied whole into ibuf:
 * its payload is handed on as it comes (a large upload is ~16 KiB frames
 * straddling ~16 KiB reads).  Only unpadded DATA, outside a header block,
 * after the client's SETTINGS; anything else goes through ibuf.
 */
static bool h2w_can_stream(const struct h2w *s, const uint8_t *h)
{
	return h[3] == T_DATA && !(h[4] & F_PADDED) && !s->hb_sid && s->got_settings &&
	       (h2w_get32(h + 5) & 0x7fffffff) && h2w_get24(h);
}

/* Payload bytes p[0..n) of the DATA frame being streamed: how many were
 * taken (at most what it still lacks), or < 0. */
static ssize_t h2w_data_more(struct h2w *s, const uint8_t *p, size_t n)
{
	struct h2w_stream *st = s->dsid ? h2w_find(s, s->dsid) : NULL;
	int rc;

	if (n > s->dleft)
		n = s->dleft;
	s->dleft -= (uint32_t)n;
	/* st may be gone since the frame began: reset and closed by an
	 * h2w_send between two h2w_recv calls (its bytes are then dropped) */
	if (st && (rc = h2w_data_give(s, st, p, n)) < 0)
		return rc;
	if (!s->dleft && st && (rc = h2w_data_done(s, st, s->des)) < 0)
		return rc;
	return (ssize_t)n;
}

/* A DATA frame with header h (h2w_can_stream) begins; p[0..n): the part
 * of its payload there is.  How many of p were taken, or < 0. */
static ssize_t h2w_data_start(struct h2w *s, const uint8_t *h, const uint8_t *p, size_t n)
{
	int32_t sid = (int32_t)(h2w_get32(h + 5) & 0x7fffffff);
	struct h2w_stream *st;
	int rc = 0;

	if (!(st = h2w_data_begin(s, h2w_get24(h), sid, &rc)) && rc < 0)
		return rc;
	s->dsid = st ? sid : 0;
	s->dleft = h2w_get24(h);
	s->des = h[4] & F_END_STREAM;
	return h2w_data_more(s, p, n);
}

static int h2w_on_priority(struct h2w *s, const uint8_t *p, uint32_t n, int32_t sid)
{
	if (!sid)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "PRIORITY on stream 0");
	if (n != 5)
		return h2w_stream_error(s, sid, H2W_FRAME_SIZE_ERROR);
	if ((int32_t)(h2w_get32(p) & 0x7fffffff) == sid)
		return h2w_stream_error(s, sid, H2W_PROTOCOL_ERROR);
	return 0;	/* no priority tree */
}

static int h2w_on_rst(struct h2w *s, const uint8_t *p, uint32_t n, int32_t sid)
{
	struct h2w_stream *st;

	if (n != 4)
		return h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "RST_STREAM length not 4");
	if (!sid || !(sid & 1) || sid > s->max_seen)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "RST_STREAM on stream 0 or idle");
	st = h2w_find(s, sid);
	if (!st || st->f & S_RESET)
		return 0;	/* closed, or closing with our RST_STREAM */
	if (!h2w_bucket_take(&s->b_reset))
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM, "too many streams reset");
	if (h2w_stream_close(s, st, h2w_get32(p)) < 0)
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, "callback failed");
	return 0;
}

static int h2w_on_settings(struct h2w *s, const uint8_t *p, uint32_t n, uint8_t flags, int32_t sid)
{
	const char *why = NULL;
	uint32_t code;
	int rc;

	if (sid)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "SETTINGS on a stream");
	if (flags & F_ACK)
		return n ? h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "SETTINGS ACK with a payload") : 0;
	if ((code = h2w_settings_check(p, n, &why)))
		return h2w_conn_error(s, code, why);
	if (!h2w_bucket_take(&s->b_ctl))
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM, "SETTINGS/PING flood");
	if ((rc = h2w_settings_apply(s, p, n)) < 0 ||
	    (rc = h2w_ctl(s, T_SETTINGS, F_ACK, 0, NULL, 0, true)) < 0)
		return rc;
	if (s->cb->settings)
		s->cb->settings(s->arg);
	return 0;
}

static int h2w_on_ping(struct h2w *s, const uint8_t *p, uint32_t n, uint8_t flags, int32_t sid)
{
	if (sid)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "PING on a stream");
	if (n != 8)
		return h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "PING length not 8");
	if (flags & F_ACK)
		return 0;
	if (!h2w_bucket_take(&s->b_ctl))
		return h2w_conn_error(s, H2W_ENHANCE_YOUR_CALM, "SETTINGS/PING flood");
	return h2w_ctl(s, T_PING, F_ACK, 0, p, 8, true);
}

static int h2w_on_winup(struct h2w *s, const uint8_t *p, uint32_t n, int32_t sid)
{
	uint32_t inc;
	struct h2w_stream *st;

	if (n != 4)
		return h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4");
	inc = h2w_get32(p) & 0x7fffffff;
	if (!sid) {
		if (!inc)
			return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
		if ((s->conn_send_win += inc) > H2W_WIN_MAX)
			return h2w_conn_error(s, H2W_FLOW_CONTROL_ERROR,
					      "connection window above 2^31-1");
		return 0;
	}
	if (!(sid & 1) || sid > s->max_seen)
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
	if (!(st = h2w_find(s, sid)) || st->f & S_RESET)
		return 0;
	if (!inc)
		return h2w_stream_error(s, sid, H2W_PROTOCOL_ERROR);
	if ((st->send_win += inc) > H2W_WIN_MAX)
		return h2w_stream_error(s, sid, H2W_FLOW_CONTROL_ERROR);
	return 0;
}

/* One whole frame: header h, payload p. */
static int h2w_frame(struct h2w *s, const uint8_t *h, const uint8_t *p)
{
	uint32_t n = h2w_get24(h);
	uint8_t type = h[3], flags = h[4];
	int32_t sid = (int32_t)(h2w_get32(h + 5) & 0x7fffffff);

	if (s->hb_sid && (type != T_CONT || sid != s->hb_sid))
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "header block interrupted");
	if (!s->got_settings) {
		if (type != T_SETTINGS || flags & F_ACK)
			return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "first frame not SETTINGS");
		s->got_settings = true;
	}
	switch (type) {
	case T_DATA:
		return h2w_on_data(s, p, n, flags, sid);
	case T_HEADERS:
		return h2w_on_headers(s, p, n, flags, sid);
	case T_PRIORITY:
		return h2w_on_priority(s, p, n, sid);
	case T_RST:
		return h2w_on_rst(s, p, n, sid);
	case T_SETTINGS:
		return h2w_on_settings(s, p, n, flags, sid);
	case T_PUSH:
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "PUSH_PROMISE from a client");
	case T_PING:
		return h2w_on_ping(s, p, n, flags, sid);
	case T_GOAWAY:
		if (sid)
			return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "GOAWAY on a stream");
		if (n < 8)
			return h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "GOAWAY too short");
		s->goaway_recv = true;
		return 0;
	case T_WINUP:
		return h2w_on_winup(s, p, n, sid);
	case T_CONT:
		if (!s->hb_sid)
			return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "CONTINUATION out of a block");
		return h2w_on_cont(s, p, n, flags);
	default:
		return 0;	/* unknown types are ignored (§4.1) */
	}
}

/* The preface's bytes from p[0..n); how many were taken, or < 0. */
static ssize_t h2w_on_preface(struct h2w *s, const uint8_t *p, size_t n)
{
	size_t k = sizeof(h2w_preface) - s->pre;

	if (k > n)
		k = n;
	if (memcmp(p, h2w_preface + s->pre, k))
		return h2w_conn_error(s, H2W_PROTOCOL_ERROR, "bad client preface");
	s->pre += (uint32_t)k;
	return (ssize_t)k;
}

static int h2w_check_len(struct h2w *s, const uint8_t *h)
{
	if (h2w_get24(h) > H2W_FRAME_MAX)
		return h2w_conn_error(s, H2W_FRAME_SIZE_ERROR, "frame larger than 16384");
	return 0;
}

/* The header in ibuf was completed by the last k bytes taken; its payload
 * is all in p[0..n) (processed from there), or it is DATA to stream.  How
 * many bytes were taken (k included), or < 0. */
static ssize_t h2w_after_header(struct h2w *s, const uint8_t *p, size_t n, size_t k)
{
	uint32_t len = h2w_get24(s->ibuf);
	ssize_t rc;

	s->ilen = 0;
	if (len > n)
		rc = h2w_data_start(s, s->ibuf, p, n);
	else if ((rc = h2w_frame(s, s->ibuf, p)) >= 0)
		rc = len;
	return rc < 0 ? rc : (ssize_t)k + rc;
}

/* Bytes towards the frame in ibuf; a frame it completes is processed.
 * How many bytes were taken, or < 0. */
static ssize_t h2w_fill(struct h2w *s, const uint8_t *p, size_t n)
{
	size_t k, want;
	int rc;

	/* most connections never see a frame cut: ~16 KiB spared each */
	if (!s->ibuf && !(s->ibuf = malloc(9 + H2W_FRAME_MAX)))
		return h2w_conn_error(s, H2W_INTERNAL_ERROR, h2w_oom);
	if (s->ilen < 9) {
		k = 9 - s->ilen < n ? 9 - s->ilen : n;
		memcpy(s->ibuf + s->ilen, p, k);
		s->ilen += (uint32_t)k;
		if (s->ilen < 9)
			return (ssize_t)k;
		if ((rc = h2w_check_len(s, s->ibuf)) < 0)
			return rc;
		if (h2w_get24(s->ibuf) <= n - k || h2w_can_stream(s, s->ibuf))
			return h2w_after_header(s, p + k, n - k, k);
		p += k;
		n -= k;
	} else {
		k = 0;
	}
	want = 9 + h2w_get24(s->ibuf) - s->ilen;
	if (want > n)
		want = n;
	memcpy(s->ibuf + s->ilen, p, want);
	s->ilen += (uint32_t)want;
	if (s->ilen < 9 + h2w_get24(s->ibuf))
		return (ssize_t)(k + want);
	s->ilen = 0;
	rc = h2w_frame(s, s->ibuf, s->ibuf + 9);
	return rc < 0 ? rc : (ssize_t)(k + want);
}

ssize_t h2w_recv(struct h2w *s, const uint8_t *p, size_t n)
{
	size_t n0 = n;
	ssize_t k;
	int rc;

	while (n && !s->dead) {
		if (s->pre < sizeof(h2w_preface))
			k = h2w_on_preface(s, p, n);
		else if (s->dleft)
			k = h2w_data_more(s, p, n);
		else if (s->ilen || n < 9)
			k = h2w_fill(s, p, n);
		else if ((rc = h2w_check_len(s, p)) < 0)
			k = rc;
		else if (9 + h2w_get24(p) > n && h2w_can_stream(s, p)) {
			if ((k = h2w_data_start(s, p, p + 9, n - 9)) >= 0)
				k += 9;
		} else if (9 + h2w_get24(p) > n)
			k = h2w_fill(s, p, n);	/* the rest comes later */
		else if ((rc = h2w_frame(s, p, p + 9)) < 0)
			k = rc;	/* the common case: straight from p */
		else
			k = 9 + (ssize_t)h2w_get24(p);
		if (k < 0)
			return k;
		p += k;
		n -= (size_t)k;
	}
	return (ssize_t)n0;
}

/* ------------------------------------------------------------- output -- */

/* Space reserved in out, committed in one piece per run of frames. */
struct h2w_wr {
	struct evbuffer *out;
	struct evbuffer_iovec v;
	size_t used, added, start, cap;
	bool err;
};

static void h2w_wr_commit(struct h2w_wr *w)
{
	if (w->v.iov_base && w->used) {
		w->v.iov_len = w->used;
		evbuffer_commit_space(w->out, &w->v, 1);
	}
	w->v.iov_base = NULL;
	w->v.iov_len = w->used = 0;
}

/* n contiguous bytes to write at; NULL when out of memory. */
static uint8_t *h2w_wr_room(struct h2w_wr *w, size_t n)
{
	if (w->v.iov_base && w->v.iov_len - w->used >= n)
		return (uint8_t *)w->v.iov_base + w->used;
	h2w_wr_commit(w);
	if (evbuffer_reserve_space(w->out, n > H2W_GATHER ? n : H2W_GATHER, &w->v, 1) < 1) {
		w->v.iov_base = NULL;
		w->err = true;
		return NULL;
	}
	return w->v.iov_base;
}

static void h2w_wr_put(struct h2w_wr *w, size_t n)
{
	w->used += n;
	w->added += n;
}

static bool h2w_wr_full(const struct h2w_wr *w)
{
	return w->start + w->added > w->cap || w->err;
}

static bool h2w_wr_bytes(struct h2w_wr *w, const uint8_t *p, size_t n)
{
	uint8_t *q = h2w_wr_room(w, n);

	if (!q)
		return false;
	memcpy(q, p, n);
	h2w_wr_put(w, n);
	return true;
}

/* Our END_STREAM is written: the stream closes, with RST_STREAM(NO_ERROR)
 * first when the client is still sending (RFC 9113 §8.1). */
static void h2w_local_end(struct h2w *s, struct h2w_wr *w, struct h2w_stream *st)
{
	uint8_t rst[13];

	st->f |= S_LOCAL_END;
	if (!(st->f & S_REMOTE_END)) {
		h2w_hdr(rst, 4, T_RST, 0, st->id);
		h2w_put32(rst + 9, H2W_NO_ERROR);
		h2w_wr_bytes(w, rst, sizeof(rst));
	}
	h2w_stream_close(s, st, H2W_NO_ERROR);
}

/* Control frames, in order; an RST_STREAM written closes its stream. */
static void h2w_out_ctl(struct h2w *s, struct h2w_wr *w)
{
	struct h2w_bytes *b = &s->ctl;

	while (b->off < b->len && (!h2w_wr_full(w) || s->dead)) {
		const uint8_t *f = b->p + b->off;
		size_t n = 9 + h2w_get24(f);
		int32_t sid = (int32_t)h2w_get32(f + 5);
		struct h2w_stream *st;

		if (!h2w_wr_bytes(w, f, n))
			return;
		b->off += n;
		if (f[3] == T_RST || (f[3] == T_PING && f[4]) || (f[3] == T_SETTINGS && f[4]))
			s->n_ctl--;
		if (f[3] == T_GOAWAY && s->dead) {
			s->term_goaway_out = s->done = true;
			return;
		}
		if (f[3] == T_RST && (st = h2w_find(s, sid)) && st->f & S_RESET)
			h2w_stream_close(s, st, h2w_get32(f + 9));
	}
}

/* An encoded header block at p + 9 (blen bytes) framed in place: HEADERS
 * then CONTINUATIONs of at most 16384 bytes; p has room for
 * h2w_block_room.  The frames' length. */
static size_t h2w_frame_block(uint8_t *p, size_t blen, int32_t sid, uint8_t flags)
{
	size_t k = blen ? (blen + H2W_FRAME_MAX - 1) / H2W_FRAME_MAX : 1;

	for (size_t i = k; i-- > 1;) {
		size_t len = i == k - 1 ? blen - i * H2W_FRAME_MAX : H2W_FRAME_MAX;
		uint8_t *dst = p + 9 * (i + 1) + i * H2W_FRAME_MAX;

		memmove(dst, p + 9 + i * H2W_FRAME_MAX, len);
		h2w_hdr(dst - 9, (uint32_t)len, T_CONT, i == k - 1 ? F_END_HEADERS : 0, sid);
	}
	h2w_hdr(p, (uint32_t)(k == 1 ? blen : H2W_FRAME_MAX), T_HEADERS,
		(uint8_t)(flags | (k == 1 ? F_END_HEADERS : 0)), sid);
	return blen + 9 * k;
}

static size_t h2w_block_room(size_t bound)
{
	return bound + 9 * (bound / H2W_FRAME_MAX + 1);
}

/*
 * hout's records: an answer's HEADERS, encoded when written.  struct
 * h2w_hrec, then its n fields (struct hpack_field, unaligned: copied out
 * before use); their bytes are the caller's (h2w_submit_headers).
 */
struct h2w_hrec {
	int32_t sid;
	uint16_t n;
	bool end_stream;
};

#define H2W_HREC_FIELDS 64	/* fields in one answer's HEADERS */

/* One record's block encoded and framed into w; false when w has no room
 * (out of memory: the connection ends). */
static bool h2w_out_block(struct h2w *s, struct h2w_wr *w, const struct h2w_hrec *rec,
			  const uint8_t *q)
{
	struct hpack_field f[H2W_HREC_FIELDS];
	size_t blen;
	uint8_t *p;

	memcpy(f, q, rec->n * sizeof(f[0]));
	if (!(p = h2w_wr_room(w, h2w_block_room(hpack_enc_bound(f, rec->n)))))
		return false;
	blen = hpack_enc_block(&s->enc, p + 9, f, rec->n);
	h2w_wr_put(w, h2w_frame_block(p, blen, rec->sid, rec->end_stream ? F_END_STREAM : 0));
	return true;
}

/* Answers' HEADERS, whole blocks at a time (nothing may come between a
 * HEADERS and its CONTINUATIONs); those of streams gone are dropped
 * unencoded. */
static void h2w_out_headers(struct h2w *s, struct h2w_wr *w)
{
	struct h2w_bytes *b = &s->hout;

	while (b->off < b->len && !h2w_wr_full(w)) {
		struct h2w_hrec rec;
		struct h2w_stream *st;

		memcpy(&rec, b->p + b->off, sizeof(rec));
		st = h2w_find(s, rec.sid);
		if (st && !(st->f & S_RESET)) {
			if (!h2w_out_block(s, w, &rec, b->p + b->off + sizeof(rec)))
				return;
			if (rec.end_stream)
				h2w_local_end(s, w, st);
		}
		b->off += sizeof(rec) + rec.n * sizeof(struct hpack_field);
	}
}

/* n, or fewer so that the frame ends where one of src's first chains
 * does: a chain wholly inside a frame moves to the output, a chain the
 * frame's end cuts is copied, so an answer made of frame-sized blocks
 * (call_add_owned) goes out uncopied.  n when one chain covers it all. */
static size_t h2w_chain_cut(struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec v[8];
	int k = evbuffer_peek(src, (ev_ssize_t)n, NULL, v, 8);
	size_t sum = 0;

	if (k < 2 || k > 8)
		return n;
	for (int i = 0; i < k; i++)
		sum += v[i].iov_len;
	return sum > n ? sum - v[k - 1].iov_len : n;
}

/* n bytes of st's source in a DATA frame. */
static bool h2w_out_chunk(struct h2w_wr *w, struct h2w_stream *st, size_t n, uint8_t flags)
{
	uint8_t *q = h2w_wr_room(w, 9 + (n > H2W_MOVE_MIN ? 0 : n));

	if (!q)
		return false;
	h2w_hdr(q, (uint32_t)n, T_DATA, flags, st->id);
	if (n <= H2W_MOVE_MIN) {
		if (n && evbuffer_remove(st->src, q + 9, n) != (int)n)
			return !(w->err = true);
		h2w_wr_put(w, 9 + n);
		return true;
	}
	h2w_wr_put(w, 9);
	h2w_wr_commit(w);
	if (evbuffer_remove_buffer(st->src, w->out, n) != (int)n)
		return !(w->err = true);
	w->added += n;
	return true;
}

/* The end of st's answer: trailers, or an empty DATA with END_STREAM. */
static void h2w_out_end(struct h2w *s, struct h2w_wr *w, struct h2w_stream *st)
{
	if (st->f & S_TRAILERS) {
		if (!h2w_wr_bytes(w, st->trl, st->trl_len))
			return;
	} else {
		uint8_t *q = h2w_wr_room(w, 9);

		if (!q)
			return;
		h2w_hdr(q, 0, T_DATA, F_END_STREAM, st->id);
		h2w_wr_put(w, 9);
	}
	h2w_local_end(s, w, st);
}

/* One frame of st's answer, if one may go: whether one went (or the
 * stream changed state). */
static bool h2w_out_stream(struct h2w *s, struct h2w_wr *w, struct h2w_stream *st)
{
	size_t have = st->src ? evbuffer_get_length(st->src) : 0;
	int64_t n;
	bool last;

	if (st->f & S_DEFERRED)
		return false;
	if (!have && !(st->f & S_DATA_END)) {
		st->f |= S_DEFERRED;
		if (s->cb->drained)
			s->cb->drained(s->arg, st->id, st->user);
		/* progress only if it added bytes or ended: no spinning on a
		 * resume without bytes */
		return (st->src && evbuffer_get_length(st->src)) || st->f & S_DATA_END ||
		       !(st->f & S_ACTIVE);
	}
	if (!have) {
		h2w_out_end(s, w, st);
		return true;
	}
	n = st->send_win < s->conn_send_win ? st->send_win : s->conn_send_win;
	if (n > s->peer_max_frame)
		n = s->peer_max_frame;
	if (n > (int64_t)have)
		n = (int64_t)have;
	if (n <= 0)
		return false;
	if (n > H2W_MOVE_MIN)
		n = (int64_t)h2w_chain_cut(st->src, (size_t)n);
	last = n == (int64_t)have && (st->f & (S_DATA_END | S_TRAILERS)) == S_DATA_END;
	if (!h2w_out_chunk(w, st, (size_t)n, last ? F_END_STREAM : 0))
		return false;
	st->send_win -= n;
	s->conn_send_win -= n;
	if (last)
		h2w_local_end(s, w, st);
	return true;
}

/* DATA of the active streams, a frame each in turn, until none may go. */
static void h2w_out_data(struct h2w *s, struct h2w_wr *w)
{
	uint32_t idle = 0;

	while (s->act_head && idle < s->n_active && !h2w_wr_full(w)) {
		struct h2w_stream *st = s->act_head;
		bool moved = h2w_out_stream(s, w, st);

		if (s->act_head == st && st->f & S_ACTIVE && s->n_active > 1) {
			h2w_act_del(s, st);
			h2w_act_add(s, st);
		}
		idle = moved ? 0 : idle + 1;
	}
}

ssize_t h2w_send(struct h2w *s, struct evbuffer *out, size_t cap)
{
	struct h2w_wr w = { .out = out, .start = evbuffer_get_length(out), .cap = cap };

	if (s->done)
		return 0;
	h2w_out_ctl(s, &w);
	if (!s->dead) {
		if (s->ctl.off == s->ctl.len)
			h2w_out_headers(s, &w);
		if (s->hout.off == s->hout.len)
			h2w_out_data(s, &w);
	}
	h2w_wr_commit(&w);
	if (w.err)
		return -1;
	return (ssize_t)w.added;
}

/* ------------------------------------------------------------ answers -- */

/* A stream an answer may go on: held, not reset. */
static struct h2w_stream *h2w_answerable(struct h2w *s, int32_t sid)
{
	struct h2w_stream *st = h2w_find(s, sid);

	return st && !(st->f & (S_RESET | S_LOCAL_END)) && !s->dead ? st : NULL;
}

int h2w_submit_headers(struct h2w *s, int32_t sid, const struct hpack_field *f, size_t n,
		       bool end_stream)
{
	struct h2w_stream *st = h2w_answerable(s, sid);
	struct h2w_hrec rec = { .sid = sid, .n = (uint16_t)n, .end_stream = end_stream };
	size_t len = sizeof(rec) + n * sizeof(*f);
	uint8_t *p;

	if (!st || st->f & S_ANSWERED || n > H2W_HREC_FIELDS)
		return -1;
	if (!(p = h2w_bytes_room(&s->hout, len)))
		return -1;
	memcpy(p, &rec, sizeof(rec));
	memcpy(p + sizeof(rec), f, n * sizeof(*f));
	s->hout.len += len;
	st->f |= S_ANSWERED | (end_stream ? S_HDR_END : 0);
	return 0;
}

int h2w_submit_data(struct h2w *s, int32_t sid, struct evbuffer *src)
{
	struct h2w_stream *st = h2w_answerable(s, sid);

	if (!st || !(st->f & S_ANSWERED) || st->f & S_HDR_END)
		return -1;
	st->src = src;
	h2w_act_add(s, st);
	return 0;
}

int h2w_data_end(struct h2w *s, int32_t sid, const struct hpack_field *f, size_t n)
{
	struct h2w_stream *st = h2w_answerable(s, sid);
	size_t room;

	if (!st || !(st->f & S_ANSWERED) || st->f & (S_HDR_END | S_DATA_END))
		return -1;
	if (n) {
		room = h2w_block_room(hpack_encode_bound(f, n));
		st->trl = room <= H2W_TRAILER_IN ? st->trl_in : malloc(room);
		if (!st->trl)
			return -1;
		st->trl_len = (uint32_t)h2w_frame_block(st->trl, hpack_encode(st->trl + 9, f, n),
							 sid, F_END_STREAM);
		st->f |= S_TRAILERS;
	}
	st->f = (st->f | S_DATA_END) & ~S_DEFERRED;
	h2w_act_add(s, st);
	return 0;
}

void h2w_resume(struct h2w *s, int32_t sid)
{
	struct h2w_stream *st = h2w_find(s, sid);

	if (st)
		st->f &= ~S_DEFERRED;
}

/* ------------------------------------------------------------ session -- */

/* Our SETTINGS and the connection window's WINDOW_UPDATE. */
static int h2w_preamble(struct h2w *s)
{
	uint8_t pl[24];
	const uint16_t id[4] = { SET_MAX_CONCURRENT, SET_INITIAL_WINDOW, SET_MAX_HEADER_LIST,
				 SET_ENABLE_PUSH };
	const uint32_t v[4] = { s->cfg.max_concurrent_streams, s->cfg.stream_window,
				s->cfg.max_header_list, 0 };

	for (int i = 0; i < 4; i++) {
		pl[i * 6] = (uint8_t)(id[i] >> 8);
		pl[i * 6 + 1] = (uint8_t)id[i];
		h2w_put32(pl + i * 6 + 2, v[i]);
	}
	if (h2w_ctl(s, T_SETTINGS, 0, 0, pl, sizeof(pl), false))
		return -1;
	if (s->cfg.conn_window > H2W_WIN_DEFAULT &&
	    h2w_ctl_u32(s, T_WINUP, 0, s->cfg.conn_window - H2W_WIN_DEFAULT, false))
		return -1;
	return 0;
}

struct h2w *h2w_new(const struct h2w_callbacks *cb, void *arg, const struct h2w_config *cfg)
{
	struct h2w *s = calloc(1, sizeof(*s));
	uint64_t now = h2w_now_ns();

	if (!s)
		return NULL;
	s->cb = cb;
	s->arg = arg;
	s->cfg = *cfg;
	if (!s->cfg.max_header_block)
		s->cfg.max_header_block = 4 * H2W_FRAME_MAX;
	if (s->cfg.stream_window > H2W_WIN_MAX)
		s->cfg.stream_window = (uint32_t)H2W_WIN_MAX;
	if (s->cfg.conn_window < H2W_WIN_DEFAULT)
		s->cfg.conn_window = H2W_WIN_DEFAULT;	/* it cannot shrink */
	if (s->cfg.conn_window > H2W_WIN_MAX)
		s->cfg.conn_window = (uint32_t)H2W_WIN_MAX;
	s->conn_send_win = H2W_WIN_DEFAULT;
	s->conn_recv_win = s->cfg.conn_window;
	s->peer_init_win = H2W_WIN_DEFAULT;
	s->peer_max_frame = H2W_FRAME_MAX;
	s->why = "no error";
	h2w_bucket_init(&s->b_reset, now);
	h2w_bucket_init(&s->b_ctl, now);
	h2w_bucket_init(&s->b_empty, now);
	hpack_dec_init(&s->dec, HPACK_TABLE_DEFAULT);
	hpack_enc_init(&s->enc);
	s->tab_mask = 15;
	if (!(s->tab = calloc(16, sizeof(*s->tab))) || h2w_preamble(s)) {
		h2w_free(s);
		return NULL;
	}
	return s;
}

void h2w_free(struct h2w *s)
{
	struct h2w_stream *st;

	if (!s)
		return;
	for (uint32_t i = 0; s->tab && i <= s->tab_mask; i++) {
		if ((st = s->tab[i])) {
			if (st->trl && st->trl != st->trl_in)
				free(st->trl);
			free(st);
		}
	}
	while ((st = s->free_list)) {
		s->free_list = st->anext;
		free(st);
	}
	hpack_dec_free(&s->dec);
	free(s->tab);
	free(s->ctl.p);
	free(s->hout.p);
	free(s->hbuf.p);
	free(s->ibuf);
	free(s);
}

int h2w_upgrade(struct h2w *s, const uint8_t *settings, size_t n, bool head)
{
	const char *why;
	struct h2w_stream *st;

	if (h2w_settings_check(settings, n, &why) || s->max_seen ||
	    h2w_settings_apply(s, settings, n) < 0)
		return -1;
	if (!(st = h2w_stream_new(s, 1)))
		return -1;
	st->f |= S_REMOTE_END;
	s->max_seen = s->last_open = 1;
	return 0;
}

void h2w_reset(struct h2w *s, int32_t sid, uint32_t code)
{
	struct h2w_stream *st = h2w_find(s, sid);

	if (st && !s->dead)
		h2w_stream_error(s, sid, code);
}

void h2w_consume_stream(struct h2w *s, int32_t sid, size_t n)
{
	struct h2w_stream *st = h2w_find(s, sid);

	if (st && n)
		h2w_give_stream(s, st, n);
}

void h2w_consume_conn(struct h2w *s, size_t n)
{
	if (n)
		h2w_give_conn(s, n);
}

void h2w_goaway(struct h2w *s, uint32_t code, bool terminate)
{
	if (s->dead)
		return;
	if (terminate) {
		h2w_terminate(s, code);
		return;
	}
	if (s->goaway_sent)
		return;
	s->goaway_sent = true;
	h2w_ctl_goaway(s, code);
}

void h2w_set_user(struct h2w *s, int32_t sid, void *user)
{
	struct h2w_stream *st = h2w_find(s, sid);

	if (st)
		st->user = user;
}

void *h2w_get_user(struct h2w *s, int32_t sid)
{
	struct h2w_stream *st = h2w_find(s, sid);

	return st ? st->user : NULL;
}

int32_t h2w_last_stream(const struct h2w *s)
{
	return s->last_open;
}

bool h2w_want_read(const struct h2w *s)
{
	if (s->dead)
		return false;
	return s->n_streams || !(s->goaway_sent || s->goaway_recv);
}

/* A stream on the active list that could send a frame now. */
/* Whether h2w_out_stream has work for st: a frame, the answer's end, or -
 * its source drained and the answer going on - the drained callback
 * (which may add more or end it; a send that stopped at its cap right
 * after the last bytes left that to the next one). */
static bool h2w_can_send(const struct h2w *s, const struct h2w_stream *st)
{
	size_t have = st->src ? evbuffer_get_length(st->src) : 0;

	if (st->f & S_DEFERRED)
		return false;
	if (!have)
		return true;
	return st->send_win > 0 && s->conn_send_win > 0;
}

bool h2w_want_write(const struct h2w *s)
{
	if (s->done)
		return false;
	if (s->ctl.off < s->ctl.len)
		return true;
	if (s->dead)
		return false;
	if (s->hout.off < s->hout.len)
		return true;
	for (const struct h2w_stream *st = s->act_head; st; st = st->anext)
		if (h2w_can_send(s, st))
			return true;
	return false;
}

const char *h2w_strerror(const struct h2w *s)
{
	return s->why;
}
