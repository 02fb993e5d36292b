/*
 * fuzz_kserve.c - libFuzzer target for ks_parse_infer (JSON infer bodies and
 * Triton's binary tensor extension), and ks_encode_infer on what it accepts.
 *
 * Input layout: byte 0 selects the binary section: 0 = none (bin NULL, as
 * without Inference-Header-Content-Length); k > 0 = the last min(k - 1,
 * rest) bytes are the binary section, the bytes before them the JSON header.
 * JSON and binary section each live in their own exact-size malloc'd buffer.
 * A request asking for classification also gets ks_encode_classes.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>

#include "inbuf.h"
#include "jsonfast.h"
#include "kserve.h"
#include "fuzz_model.h"

static bool fz_is_json(const unsigned char *p, size_t len)
{
	json_t *j = json_loadb((const char *)p, len, 0, NULL);

	json_decref(j);
	return j != NULL;
}

/*
 * A body jfast_read takes (ks_parse_infer's one-walk path, JSON data or
 * the binary section) must give what the general path gives.
 */
static void fz_same_as_general(const struct model *m, const char *json, size_t json_len,
			       const char *bin, size_t bin_len, int rc,
			       const struct ks_infer *ki, const char *err)
{
	struct jfast_req r;
	struct ks_infer g;
	char gerr[512];
	int grc;

	if (!jfast_read(json, json_len, &r))
		return;
	inbuf_free(r.vals);
	memset(&g, 0, sizeof(g));
	grc = ks_parse_infer_general(m, json, json_len, bin, bin_len, &g, gerr, sizeof(gerr));
	FZ_CHECK(grc == rc);
	if (rc) {
		FZ_CHECK(strcmp(gerr, err) == 0);
		return;
	}
	FZ_CHECK(g.rows == ki->rows && g.has_id == ki->has_id && !strcmp(g.id, ki->id) &&
		 g.priority == ki->priority && g.timeout_us == ki->timeout_us &&
		 g.binary_output == ki->binary_output && g.variant == ki->variant &&
		 g.class_count == ki->class_count);
	FZ_CHECK(!memcmp(g.data, ki->data, (size_t)ki->rows * m->in_dim * sizeof(float)));
	ks_infer_free(&g);
}

/*
 * jfast_float on the number after each of the first '[' and ',' bytes of
 * the body (its usual-token path relies on a non-digit ahead; this is where
 * the fuzzer's lists, cut bodies and odd tokens meet it): when it takes a
 * token, jansson reads the same text as a number, and (float) of it is the
 * same value, bit for bit.
 */
static void fz_floats_like_jansson(const char *json, size_t json_len)
{
	const char *end = json + json_len;
	int k = 0;

	for (const char *p = json; p < end && k < 16; p++) {
		const char *tok = p + 1, *q = tok;	/* the token: [tok, q) */
		json_t *j;
		float v, want;

		if (*p != '[' && *p != ',')
			continue;
		if (k++, !jfast_float(&q, end, &v))
			continue;
		j = json_loadb(tok, (size_t)(q - tok), JSON_DECODE_ANY, NULL);
		FZ_CHECK(j && json_is_number(j));
		want = (float)json_number_value(j);
		FZ_CHECK(!memcmp(&v, &want, sizeof(v)));
		json_decref(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct model *m = fz_get_model();
	static float outv[FZ_MAX_BATCH * FZ_OUT_DIM];
	struct ks_infer ki;
	char err[512];
	size_t json_len, bin_len = 0;
	char *json, *bin = NULL;
	int rc;

	if (size < 1)
		return 0;
	json_len = size - 1;
	if (data[0]) {
		bin_len = (size_t)data[0] - 1;
		if (bin_len > json_len)
			bin_len = json_len;
		json_len -= bin_len;
		bin = fz_dup(data + 1 + json_len, bin_len);
	}
	json = fz_dup(data + 1, json_len);

	memset(&ki, 0, sizeof(ki));
	err[0] = 0;
	rc = ks_parse_infer(m, json, json_len, bin, bin_len, &ki, err, sizeof(err));
	FZ_CHECK(rc == 0 || rc == 400);
	fz_same_as_general(m, json, json_len, bin, bin_len, rc, &ki, err);
	fz_floats_like_jansson(json, json_len);
	if (rc == 0) {
		struct evbuffer *out = evbuffer_new();
		size_t hdr;

		fz_check_parsed(&ki, outv);
		hdr = ks_encode_infer(out, m, ki.has_id ? ki.id : NULL, ki.rows, outv,
				      ki.binary_output);
		FZ_CHECK(hdr <= evbuffer_get_length(out));
		FZ_CHECK(!ki.binary_output || hdr + (size_t)ki.rows * FZ_OUT_DIM * sizeof(float) ==
						       evbuffer_get_length(out));
		/* the JSON answer (the header, with binary output) is JSON */
		FZ_CHECK(fz_is_json(evbuffer_pullup(out, -1), ki.binary_output ? hdr :
				    evbuffer_get_length(out)));
		if (ki.class_count) {	/* the classification extension's answer */
			size_t chdr = 0;

			evbuffer_drain(out, evbuffer_get_length(out));
			FZ_CHECK(ks_encode_classes(out, m, ki.has_id ? ki.id : NULL, ki.rows, outv,
						   ki.class_count, ki.binary_output, &chdr) == 0);
			FZ_CHECK(fz_is_json(evbuffer_pullup(out, -1), ki.binary_output ? chdr :
					    evbuffer_get_length(out)));
		}
		evbuffer_free(out);
	} else {
		FZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err) && err[0]);
	}
	ks_infer_free(&ki);
	free(json);
	free(bin);
	return 0;
}
