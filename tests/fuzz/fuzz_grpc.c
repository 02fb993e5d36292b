/*
 * fuzz_grpc.c - libFuzzer target for the gRPC codec's decode path
 * (gateway/api/grpccodec.c with protobuf-c's generated unpacker): the
 * 5-byte framing, protobuf decoding of every request message, and the
 * ModelInferRequest checks (gc_infer_params, gc_infer_input) against the
 * fuzz model, as a ModelStreamInfer stream would be read.
 *
 * Input layout: byte 0 picks the other request type each payload is also
 * decoded as (and its low bit whether a grpc-timeout is parsed from the
 * next bytes up to a NUL); the rest is a stream of frames, read until one
 * is not whole or is refused (flag > 1, length over 64 KiB).  Each payload
 * lives in its own exact-size malloc'd buffer.  Every message that
 * decodes must re-encode to bytes that decode and re-encode the same; a
 * ModelInferRequest split for the zero-copy unpack (gc_split_raw) must
 * decode as the whole does, and one the fast unpack (gc_infer_unpack)
 * takes must be protobuf-c's, as must gc_pack's bytes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "front.h"
#include "fuzz_model.h"
#include "grpccodec.h"

#define FZ_MAX_MSG (64 << 10)

static const ProtobufCMessageDescriptor *const fz_others[] = {
	&inference__server_live_request__descriptor,
	&inference__server_ready_request__descriptor,
	&inference__model_ready_request__descriptor,
	&inference__server_metadata_request__descriptor,
	&inference__model_metadata_request__descriptor,
	&inference__model_config_request__descriptor,
	&inference__model_statistics_request__descriptor,
	&inference__repository_index_request__descriptor,
	&inference__repository_model_load_request__descriptor,
	&inference__repository_model_unload_request__descriptor,
};

/* m or a message inside it kept unknown fields. */
static bool fz_has_unknown(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (m->n_unknown_fields)
		return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t k = 0; k < n; k++)
				if (v[k] && fz_has_unknown(v[k]))
					return true;
		} else {
			const ProtobufCMessage *v = *(const ProtobufCMessage *const *)(base + f->offset);

			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;	/* another member of the oneof is set */
			if (v && fz_has_unknown(v))
				return true;
		}
	}
	return false;
}

/*
 * m packs to bytes that unpack and pack to the same bytes.  One exception,
 * protobuf-c's and not the gateway's (which never re-packs a request): an
 * unknown field is kept as it came and packed back with a canonical tag,
 * and protobuf-c accepts field number 0 written over-long ("80 00") but
 * refuses it written short ("00") - so a message that kept unknown fields
 * may not unpack again.
 */
static void fz_round_trip(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m), n2;
	uint8_t *a = malloc(n ? n : 1), *b;
	ProtobufCMessage *again;

	FZ_CHECK(a && protobuf_c_message_pack(m, a) == n);
	again = protobuf_c_message_unpack(m->descriptor, NULL, n, a);
	if (!again && fz_has_unknown(m)) {
		free(a);
		return;
	}
	FZ_CHECK(again);
	n2 = protobuf_c_message_get_packed_size(again);
	b = malloc(n2 ? n2 : 1);
	FZ_CHECK(b && n2 == n && protobuf_c_message_pack(again, b) == n2 && !memcmp(a, b, n));
	protobuf_c_message_free_unpacked(again, NULL);
	free(a);
	free(b);
}

/* The ModelInferRequest checks on what decoded. */
static void fz_infer(const Inference__ModelInferRequest *req)
{
	struct front_hints h = { 0 };
	const float *data = NULL;
	char err[512] = "";
	int rows = 0, rc;

	rc = gc_infer_params(req, &h, err, sizeof(err));
	FZ_CHECK(rc == 0 || (rc == 400 && err[0] && strnlen(err, sizeof(err)) < sizeof(err)));
	if (!rc) {
		FZ_CHECK(h.priority >= 0 && h.priority <= 1000000);
		FZ_CHECK(h.timeout_us >= 0 && h.timeout_us <= KS_TIMEOUT_MAX_US);
	}
	err[0] = 0;
	rc = gc_infer_input(fz_get_model(), req, &rows, &data, err, sizeof(err));
	FZ_CHECK(rc == 0 || (rc == 400 && err[0] && strnlen(err, sizeof(err)) < sizeof(err)));
	if (!rc) {
		volatile float sum = 0;

		FZ_CHECK(rows >= 1 && rows <= FZ_MAX_BATCH && data);
		for (int i = 0; i < rows * FZ_IN_DIM; i++) {	/* every promised value readable */
			float v;

			memcpy(&v, data + i, sizeof(v));	/* raw contents may be unaligned */
			FZ_CHECK(isfinite(v));			/* as over HTTP */
			sum += v;
		}
		(void)sum;
	}
}

/*
 * The gateway's zero-copy unpack of a ModelInferRequest (gc_split_raw, then
 * the rest unpacked and the raw views added) agrees with protobuf-c's
 * unpack of the whole (whole: that unpack, NULL when it refused p): both
 * refuse, or both give the same raw inputs (views inside p) and the same
 * other fields.
 */
static void fz_split(const uint8_t *p, size_t len, const Inference__ModelInferRequest *whole)
{
	size_t n, n2, rest_len, rest_len2;
	ProtobufCBinaryData *raw;
	Inference__ModelInferRequest *r, w;
	uint8_t *rest, *a, *b;
	size_t pa, pb;

	if (gc_split_raw(p, len, NULL, &n, NULL, &rest_len))
		return;		/* the gateway unpacks it whole */
	FZ_CHECK(rest_len <= len && n <= len / 2);
	raw = malloc((n ? n : 1) * sizeof(*raw));
	rest = malloc(rest_len ? rest_len : 1);
	FZ_CHECK(raw && rest);
	FZ_CHECK(!gc_split_raw(p, len, raw, &n2, rest, &rest_len2));
	FZ_CHECK(n2 == n && rest_len2 == rest_len);
	r = (Inference__ModelInferRequest *)protobuf_c_message_unpack(
		&inference__model_infer_request__descriptor, NULL, rest_len, rest);
	FZ_CHECK(!r == !whole);
	if (r) {
		FZ_CHECK(!r->n_raw_input_contents && whole->n_raw_input_contents == n);
		for (size_t i = 0; i < n; i++) {
			FZ_CHECK(raw[i].data >= p && raw[i].len <= len &&
				 raw[i].data + raw[i].len <= p + len);
			FZ_CHECK(raw[i].len == whole->raw_input_contents[i].len);
			FZ_CHECK(!raw[i].len ||	/* protobuf-c: data NULL when empty */
				 !memcmp(raw[i].data, whole->raw_input_contents[i].data, raw[i].len));
		}
		w = *whole;
		w.n_raw_input_contents = 0;
		pa = protobuf_c_message_get_packed_size(&r->base);
		pb = protobuf_c_message_get_packed_size(&w.base);
		a = malloc(pa ? pa : 1);
		b = malloc(pb ? pb : 1);
		FZ_CHECK(a && b && pa == pb);
		protobuf_c_message_pack(&r->base, a);
		protobuf_c_message_pack(&w.base, b);
		FZ_CHECK(!memcmp(a, b, pa));
		free(a);
		free(b);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	free(raw);
	free(rest);
}

/* m packed by protobuf-c into a malloc'd buffer of *n bytes. */
static uint8_t *fz_pack(const ProtobufCMessage *m, size_t *n)
{
	uint8_t *b = malloc(protobuf_c_message_get_packed_size(m) + 1);

	FZ_CHECK(b);
	*n = protobuf_c_message_pack(m, b);
	return b;
}

/* gc_pack_size and gc_pack of m give protobuf-c's size and bytes. */
static void fz_pack_agrees(const ProtobufCMessage *m)
{
	size_t na, nb = gc_pack_size(m);
	uint8_t *a = fz_pack(m, &na), *b = malloc(nb + 1);

	FZ_CHECK(b && nb == na && gc_pack(m, b) == na && !memcmp(a, b, na));
	free(a);
	free(b);
}

/*
 * The gateway's fast unpack (gc_infer_unpack) agrees with protobuf-c's
 * (whole: NULL when protobuf-c refused p): what it takes, protobuf-c takes
 * too, and both pack to the same bytes; and gc_pack / gc_pack_size give
 * protobuf-c's bytes for a response made of its fields, alone and as a
 * stream's answer (its id as the error message).
 */
static void fz_fast(const uint8_t *p, size_t len, const Inference__ModelInferRequest *whole)
{
	Inference__ModelInferRequest *r = NULL;
	Inference__ModelInferResponse resp = INFERENCE__MODEL_INFER_RESPONSE__INIT;
	Inference__ModelStreamInferResponse sr = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
	Inference__ModelInferResponse__InferOutputTensor t =
		INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT, *pt = &t;
	uint8_t *a, *b;
	size_t na, nb;

	if (gc_infer_unpack(p, len, NULL, &r))
		return;
	FZ_CHECK(whole);
	a = fz_pack(&r->base, &na);
	b = fz_pack(&whole->base, &nb);
	FZ_CHECK(na == nb && !memcmp(a, b, na));
	free(a);
	free(b);
	resp.model_name = r->model_name;
	resp.model_version = r->model_version;
	resp.id = r->id;
	if (r->n_inputs) {
		t.name = r->inputs[0]->name;
		t.datatype = r->inputs[0]->datatype;
		t.n_shape = r->inputs[0]->n_shape;
		t.shape = r->inputs[0]->shape;
		resp.n_outputs = 1;
		resp.outputs = &pt;
	}
	resp.n_raw_output_contents = r->n_raw_input_contents;
	resp.raw_output_contents = r->raw_input_contents;
	fz_pack_agrees(&resp.base);
	sr.error_message = r->id;
	sr.infer_response = &resp;
	fz_pack_agrees(&sr.base);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *other;
	size_t off = 1;

	if (size < 1)
		return 0;
	other = fz_others[data[0] % (sizeof(fz_others) / sizeof(fz_others[0]))];
	if (data[0] & 0x80) {	/* a grpc-timeout value up to a NUL (at most 15 bytes) */
		char v[16];
		size_t n = 0;
		int64_t us;

		while (off < size && n < sizeof(v) - 1 && data[off])
			v[n++] = (char)data[off++];
		v[n] = 0;
		off++;
		us = gc_timeout_us(v);
		FZ_CHECK(us == -1 || (us >= 1 && us <= KS_TIMEOUT_MAX_US));
	}
	while (off < size) {
		uint8_t flag;
		size_t mlen;
		int rc = gc_frame(data + off, size - off, FZ_MAX_MSG, &flag, &mlen);
		ProtobufCMessage *m;
		uint8_t *payload;

		FZ_CHECK(rc == 1 || rc == 0 || rc == -EPROTO || rc == -EFBIG);
		if (rc != 1)
			break;
		FZ_CHECK(flag <= 1 && mlen <= FZ_MAX_MSG && GC_FRAME_HDR + mlen <= size - off);
		payload = (uint8_t *)fz_dup(data + off + GC_FRAME_HDR, mlen);
		off += GC_FRAME_HDR + mlen;
		m = protobuf_c_message_unpack(&inference__model_infer_request__descriptor, NULL,
					      mlen, payload);
		fz_split(payload, mlen, (const Inference__ModelInferRequest *)m);
		fz_fast(payload, mlen, (const Inference__ModelInferRequest *)m);
		if (m) {
			fz_infer((const Inference__ModelInferRequest *)m);
			fz_round_trip(m);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		m = protobuf_c_message_unpack(other, NULL, mlen, payload);
		if (m) {
			fz_round_trip(m);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		free(payload);
	}
	return 0;
}
