/*
 * fuzz_mpcodec.c - libFuzzer target for the msgpack request decoder:
 * mp_parse_infer on the whole input (an exact-size
 * malloc'd copy), then mp_encode_infer on what mp_parse_infer accepts
 * (the answer must read back as one msgpack map); mp_parse_infer (its
 * one-walk reader, or its fallback) must give what the general reader
 * mp_parse_infer_general gives, on every input.
 */
#include <event2/buffer.h>
#include <msgpack.h>
#include <stdint.h>

#include "kserve.h"
#include "mpcodec.h"
#include "fuzz_model.h"

/*
 * The general reader on buf must give what mp_parse_infer gave (rc, ki,
 * err, name: name NULL when it was not asked for): the same status and
 * message, or the same request with the same values, bit for bit.
 */
static void fz_same_as_general(const struct model *m, const char *buf, size_t size, int rc,
			       const struct ks_infer *ki, const char *err, const char *name)
{
	char gname[KS_ID_MAX + 1], gerr[512];
	struct ks_infer g;
	int grc;

	memset(&g, 0, sizeof(g));
	grc = mp_parse_infer_general(m, buf, size, &g, name ? gname : NULL, gerr, sizeof(gerr));
	FZ_CHECK(grc == rc);
	if (rc) {
		FZ_CHECK(strcmp(gerr, err) == 0);
		return;
	}
	FZ_CHECK(!name || !strcmp(gname, name));
	FZ_CHECK(g.rows == ki->rows && g.has_id == ki->has_id && !strcmp(g.id, ki->id) &&
		 g.priority == ki->priority && g.timeout_us == ki->timeout_us &&
		 g.binary_output == ki->binary_output && g.variant == ki->variant &&
		 g.class_count == ki->class_count && !g.owned == !ki->owned);
	FZ_CHECK(!memcmp(g.data, ki->data, (size_t)ki->rows * m->in_dim * sizeof(float)));
	ks_infer_free(&g);
}

/* out holds one whole msgpack map and nothing after it. */
static void fz_check_answer(struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out), off = 0;
	msgpack_unpacked u;

	msgpack_unpacked_init(&u);
	FZ_CHECK(msgpack_unpack_next(&u, (const char *)evbuffer_pullup(out, -1), n, &off) ==
		 MSGPACK_UNPACK_SUCCESS);
	FZ_CHECK(off == n && u.data.type == MSGPACK_OBJECT_MAP);
	msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct model *m = fz_get_model();
	static float outv[FZ_MAX_BATCH * FZ_OUT_DIM];
	char *buf = fz_dup(data, size);
	char name[KS_ID_MAX + 1], err[512];
	struct ks_infer ki;
	int rc;

	memset(&ki, 0, sizeof(ki));
	err[0] = 0;
	rc = mp_parse_infer(m, buf, size, &ki, name, err, sizeof(err));
	FZ_CHECK(rc == 0 || rc == 400);
	if (rc == 0) {
		struct evbuffer *out = evbuffer_new();

		FZ_CHECK(strnlen(name, sizeof(name)) < sizeof(name));
		fz_check_parsed(&ki, outv);
		mp_encode_infer(out, m, ki.has_id ? ki.id : NULL, ki.rows, outv);
		fz_check_answer(out);
		evbuffer_free(out);
	} else {
		FZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err) && err[0]);
	}
	fz_same_as_general(m, buf, size, rc, &ki, err, name);
	ks_infer_free(&ki);
	/* The same body without a model_name out-parameter. */
	memset(&ki, 0, sizeof(ki));
	rc = mp_parse_infer(m, buf, size, &ki, NULL, err, sizeof(err));
	FZ_CHECK(rc == 0 || rc == 400);
	fz_same_as_general(m, buf, size, rc, &ki, err, NULL);
	ks_infer_free(&ki);
	free(buf);
	return 0;
}
