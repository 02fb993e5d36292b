/*
 * fuzz_dgram.c - libFuzzer target for the datagram codec
 * (gateway/api/dgram.c).  The input is one UDP payload.  It is decoded
 * from an exact-size copy (ASan catches a read past the datagram); a
 * refusal must be a 400 with a message.  An accepted request must keep its
 * promises (views inside the datagram, model NUL-terminated, counts in
 * range), is packed again with msgpack-c from the decoded fields, and that
 * map must decode to the same request (the round trip).  Then dg_check
 * against the fuzz model; on success the answer is encoded into an exact
 * buffer and into one byte less (must refuse), parsed back with msgpack-c;
 * on failure the error answer is encoded into DG_ERROR_MIN bytes and parsed.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgram.h"
#include "fuzz_model.h"

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
	const uint8_t *b = p;

	return n == 0 || (b >= buf && b + n <= buf + len);
}

static void pk_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* The decoded request as a fresh map (keys in a fixed order). */
static void repack(msgpack_sbuffer *sb, const struct dg_req *r)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3 + (r->priority != 0) + (r->timeout_us != 0));
	pk_str(&pk, "id", 2);
	msgpack_pack_uint64(&pk, r->id);
	pk_str(&pk, "model", 5);
	pk_str(&pk, r->model, strlen(r->model));
	if (r->priority) {
		pk_str(&pk, "priority", 8);
		msgpack_pack_int(&pk, r->priority);
	}
	if (r->timeout_us) {
		pk_str(&pk, "timeout_us", 10);
		msgpack_pack_int64(&pk, r->timeout_us);
	}
	pk_str(&pk, "inputs", 6);
	msgpack_pack_array(&pk, (size_t)r->n_inputs);
	for (int i = 0; i < r->n_inputs; i++) {
		const struct dg_tensor *t = &r->inputs[i];

		msgpack_pack_map(&pk, 4);
		pk_str(&pk, "name", 4);
		pk_str(&pk, t->name, t->name_len);
		pk_str(&pk, "datatype", 8);
		pk_str(&pk, t->datatype, t->datatype_len);
		pk_str(&pk, "shape", 5);
		msgpack_pack_array(&pk, (size_t)t->ndim);
		for (int d = 0; d < t->ndim; d++)
			msgpack_pack_int64(&pk, t->dims[d]);
		pk_str(&pk, "data", 4);
		msgpack_pack_bin(&pk, t->data_len);
		msgpack_pack_bin_body(&pk, t->data, t->data_len);
	}
}

static bool same_view(const void *a, size_t an, const void *b, size_t bn)
{
	return an == bn && (an == 0 || !memcmp(a, b, an));
}

static void check_same(const struct dg_req *a, const struct dg_req *b)
{
	FZ_CHECK(a->has_id && b->has_id && a->id == b->id);
	FZ_CHECK(!strcmp(a->model, b->model));
	FZ_CHECK(a->priority == b->priority && a->timeout_us == b->timeout_us);
	FZ_CHECK(a->n_inputs == b->n_inputs);
	for (int i = 0; i < a->n_inputs; i++) {
		const struct dg_tensor *x = &a->inputs[i], *y = &b->inputs[i];

		FZ_CHECK(same_view(x->name, x->name_len, y->name, y->name_len));
		FZ_CHECK(same_view(x->datatype, x->datatype_len, y->datatype, y->datatype_len));
		FZ_CHECK(same_view(x->data, x->data_len, y->data, y->data_len));
		FZ_CHECK(x->ndim == y->ndim);
		FZ_CHECK(!memcmp(x->dims, y->dims, sizeof(int64_t) * (size_t)x->ndim));
	}
}

static void check_answer(const struct model *m, uint64_t id, const float *outv, int rows)
{
	size_t n = dg_answer_size(m, id, rows), off = 0;
	uint8_t *buf = malloc(n);
	msgpack_unpacked u;
	char err[160];

	FZ_CHECK(buf);
	FZ_CHECK(dg_encode_answer(buf, n, id, m, outv, rows) == n);
	FZ_CHECK(dg_encode_answer(buf, n - 1, id, m, outv, rows) == 0);
	FZ_CHECK(dg_check_fits(m, id, rows, n, err, sizeof(err)) == 0);
	FZ_CHECK(dg_check_fits(m, id, rows, n - 1, err, sizeof(err)) == 413);
	msgpack_unpacked_init(&u);
	FZ_CHECK(msgpack_unpack_next(&u, (const char *)buf, n, &off) == MSGPACK_UNPACK_SUCCESS);
	FZ_CHECK(off == n && u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 4);
	FZ_CHECK(u.data.via.map.ptr[0].val.via.u64 == id);
	msgpack_unpacked_destroy(&u);
	free(buf);
}

static void check_error(uint64_t id, const char *msg)
{
	uint8_t buf[DG_ERROR_MIN];
	size_t n = dg_encode_error(buf, sizeof(buf), id, 400, msg), off = 0;
	msgpack_unpacked u;
	const msgpack_object *e;

	FZ_CHECK(n > 0 && n <= sizeof(buf));
	msgpack_unpacked_init(&u);
	FZ_CHECK(msgpack_unpack_next(&u, (const char *)buf, n, &off) == MSGPACK_UNPACK_SUCCESS);
	FZ_CHECK(off == n && u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 3);
	e = &u.data.via.map.ptr[1].val;
	FZ_CHECK(e->type == MSGPACK_OBJECT_STR && e->via.str.size <= strlen(msg));
	FZ_CHECK(!memcmp(e->via.str.ptr, msg, e->via.str.size));
	msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct model *m = fz_get_model();
	uint8_t *buf = (uint8_t *)fz_dup(data, size);
	struct dg_req r, again;
	char err[256], small[8];
	msgpack_sbuffer sb;
	const float *in;
	int rc, rows;

	rc = dg_decode(buf, size, &r, err, sizeof(err));
	if (rc) {
		FZ_CHECK(rc == 400 && err[0]);
		FZ_CHECK(dg_decode(buf, size, &r, small, sizeof(small)) == 400);	/* tiny err: no overflow */
		check_error(r.has_id ? r.id : 0, err);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "refused: %s\n", err);
		goto out;
	}
	FZ_CHECK(r.has_id && memchr(r.model, 0, sizeof(r.model)) && r.model[0]);
	FZ_CHECK(r.n_inputs >= 1 && r.n_inputs <= DG_MAX_INPUTS);
	FZ_CHECK(r.priority >= 0 && r.priority <= DG_PRIORITY_MAX);
	FZ_CHECK(r.timeout_us >= 0 && r.timeout_us <= KS_TIMEOUT_MAX_US);
	for (int i = 0; i < r.n_inputs; i++) {
		const struct dg_tensor *t = &r.inputs[i];

		FZ_CHECK(inside(t->name, t->name_len, buf, size));
		FZ_CHECK(inside(t->datatype, t->datatype_len, buf, size));
		FZ_CHECK(inside(t->data, t->data_len, buf, size));
		FZ_CHECK(t->ndim >= 0 && t->ndim <= MODEL_MAX_DIMS);
	}
	repack(&sb, &r);
	rc = dg_decode((const uint8_t *)sb.data, sb.size, &again, err, sizeof(err));
	FZ_CHECK(rc == 0);
	check_same(&r, &again);
	msgpack_sbuffer_destroy(&sb);

	rc = dg_check(m, &r, &rows, &in, err, sizeof(err));
	if (rc) {
		FZ_CHECK(rc == 400 && err[0]);
		check_error(r.id, err);
	} else {
		float outv[FZ_MAX_BATCH * FZ_OUT_DIM];

		FZ_CHECK(rows >= 1 && rows <= FZ_MAX_BATCH);
		FZ_CHECK(inside(in, (size_t)rows * FZ_IN_DIM * 4, buf, size));
		for (int i = 0; i < rows * FZ_OUT_DIM; i++) {
			float v;

			memcpy(&v, (const uint8_t *)in + 4 * (i % (rows * FZ_IN_DIM)), 4);
			FZ_CHECK(isfinite(v));
			outv[i] = v;
		}
		check_answer(m, r.id, outv, rows);
	}
out:
	free(buf);
	return 0;
}
