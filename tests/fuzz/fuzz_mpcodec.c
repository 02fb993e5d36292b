/*
 * fuzz_mpcodec.c - libFuzzer target for the msgpack request decoder:
 * mp_peek_model and mp_parse_infer on the whole input (an exact-size
 * malloc'd copy), then mp_encode_infer on what mp_parse_infer accepts.
 */
#include <event2/buffer.h>
#include <stdint.h>

#include "kserve.h"
#include "mpcodec.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct model *m = fz_get_model();
	static float outv[FZ_MAX_BATCH * FZ_OUT_DIM];
	char *buf = fz_dup(data, size);
	char name[KS_ID_MAX + 1], small[8], err[512];
	struct ks_infer ki;
	int rc;

	if (mp_peek_model(buf, size, name, sizeof(name)) == 0)
		FZ_CHECK(strnlen(name, sizeof(name)) < sizeof(name));
	if (mp_peek_model(buf, size, small, sizeof(small)) == 0)
		FZ_CHECK(strnlen(small, sizeof(small)) < sizeof(small));

	memset(&ki, 0, sizeof(ki));
	err[0] = 0;
	rc = mp_parse_infer(m, buf, size, &ki, name, err, sizeof(err));
	FZ_CHECK(rc == 0 || rc == 400);
	if (rc == 0) {
		struct evbuffer *out = evbuffer_new();

		FZ_CHECK(strnlen(name, sizeof(name)) < sizeof(name));
		fz_check_parsed(&ki, outv);
		mp_encode_infer(out, m, ki.has_id ? ki.id : NULL, ki.rows, outv);
		FZ_CHECK(evbuffer_get_length(out) > 0);
		evbuffer_free(out);
	} else {
		FZ_CHECK(strnlen(err, sizeof(err)) < sizeof(err) && err[0]);
	}
	ks_infer_free(&ki);
	/* The same body without a model_name out-parameter. */
	memset(&ki, 0, sizeof(ki));
	rc = mp_parse_infer(m, buf, size, &ki, NULL, err, sizeof(err));
	FZ_CHECK(rc == 0 || rc == 400);
	ks_infer_free(&ki);
	free(buf);
	return 0;
}
