/*
 * fuzz_agentframe.c - libFuzzer target for the agent protocol codec
 * (backends/remote/proto.c).  The input is a byte stream as a connection
 * would deliver it: frames of a 4-byte big-endian length then the payload.
 * Like a reader, it stops at a length over its frame limit (the
 * connection would be closed) or at a frame cut short.  Each payload is
 * decoded from an exact-size copy; an accepted message is checked against
 * what agp_decode promises, encoded again with the agp_put_* of its type,
 * and the new frame must decode to the same message.  A refused one must
 * say why (-EBADMSG/-EINVAL/-E2BIG and a message), also into a tiny err buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "remote/proto.h"

#define FZ_MAX_FRAME (1u << 16)	/* inputs are far smaller: any bigger length stops */
#define FZ_MAX_MODELS 16	/* below the protocol's limits, so -E2BIG is reachable */
#define FZ_MAX_SLICES 64

static struct agp_model fz_models[2][FZ_MAX_MODELS];
static struct agp_slice fz_slices[2][FZ_MAX_SLICES];
static const struct agp_space fz_sp[2] = {
	{ fz_models[0], FZ_MAX_MODELS, fz_slices[0], FZ_MAX_SLICES },
	{ fz_models[1], FZ_MAX_MODELS, fz_slices[1], FZ_MAX_SLICES },
};

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* What agp_decode promises about an accepted message. */
static void check_msg(const struct agp_msg *m, const uint8_t *p, size_t len,
		      const struct agp_space *sp)
{
	uint64_t rows = 0;

	FZ_CHECK(m->type >= AGP_HELLO && m->type <= AGP_ERROR);
	FZ_CHECK(strcmp(agp_type_name(m->type), "?") != 0);
	FZ_CHECK(terminated(m->sw, sizeof(m->sw)) && terminated(m->msg, sizeof(m->msg)));
	FZ_CHECK(terminated(m->model, sizeof(m->model)));
	FZ_CHECK(m->n_models >= 0 && m->n_models <= sp->max_models);
	FZ_CHECK(m->n_slices >= 0 && m->n_slices <= sp->max_slices);
	FZ_CHECK(!m->n_models || m->models == sp->models);
	FZ_CHECK(!m->n_slices || m->slices == sp->slices);
	for (int i = 0; i < m->n_models; i++) {
		const struct agp_model *mo = &m->models[i];

		FZ_CHECK(terminated(mo->name, sizeof(mo->name)) && mo->name[0]);
		FZ_CHECK(terminated(mo->dtype, sizeof(mo->dtype)));
		FZ_CHECK(mo->in_dim >= 1 && mo->out_dim >= 1 && mo->max_batch >= 1);
	}
	for (int i = 0; i < m->n_slices; i++) {
		FZ_CHECK(m->slices[i].rows >= 1);
		rows += m->slices[i].rows;
		if (m->type == AGP_RESULT)
			FZ_CHECK(m->slices[i].status == 0 ||
				 (m->slices[i].status >= 100 && m->slices[i].status <= 999));
	}
	FZ_CHECK(rows == m->rows);
	if (m->data_len)
		FZ_CHECK(m->data >= p && m->data + m->data_len <= p + len);
	switch (m->type) {
	case AGP_INFER:
		FZ_CHECK(m->n_slices >= 1 && m->model[0] && m->data);
		break;
	case AGP_RESULT:
		FZ_CHECK(m->has_load && m->data && (m->n_slices >= 1 || m->status));
		break;
	case AGP_PONG:
		FZ_CHECK(m->has_load);
		break;
	case AGP_HELLO:
		FZ_CHECK(m->version != AGP_VERSION || !m->window == !m->has_load);
		break;
	default:
		FZ_CHECK(!m->has_load && !m->n_slices && !m->n_models);
	}
	/* agp_check_data agrees with the sizes whatever the width */
	if (m->rows && m->data_len % ((size_t)m->rows * 4) == 0) {
		uint32_t w = (uint32_t)(m->data_len / ((size_t)m->rows * 4));
		char err[128];

		FZ_CHECK(agp_check_data(m, w, err, sizeof(err)) == 0);
		if (!(m->type == AGP_RESULT && m->status && !m->data_len))
			FZ_CHECK(agp_check_data(m, w + 1, err, sizeof(err)) == -EINVAL && err[0]);
	}
}

/* Encode m again; false when it cannot be said with agp_put_* (data not
 * a whole number of rows). */
static bool reencode(const struct agp_msg *m, struct agp_buf *b)
{
	const void *rows[FZ_MAX_SLICES];
	char token[AGP_TOKEN_MAX + 1];
	size_t row_bytes = 0, off = 0;
	int rc = 0;

	if ((m->type == AGP_INFER || m->type == AGP_RESULT) && m->data_len) {
		if (!m->rows || m->data_len % m->rows)
			return false;
		row_bytes = m->data_len / m->rows;
	}
	switch (m->type) {
	case AGP_HELLO:
		if (m->window) {
			rc = agp_put_hello(b, m->version, m->sw, m->window, m->threads, m->models,
					   m->n_models, &m->load);
		} else {
			/* a token with a NUL byte cannot be said as a C string */
			if (m->has_token && memchr(m->token, '\0', m->token_len))
				return false;
			if (m->has_token)
				memcpy(token, m->token, m->token_len);
			token[m->has_token ? m->token_len : 0] = '\0';
			rc = agp_put_hello_req(b, m->version, m->sw, m->has_token ? token : NULL);
		}
		break;
	case AGP_INFER:
		for (int i = 0; i < m->n_slices; i++) {
			rows[i] = m->data + off;
			off += (size_t)m->slices[i].rows * row_bytes;
		}
		rc = agp_put_infer(b, m->id, m->model, m->slices, m->n_slices, rows, row_bytes);
		break;
	case AGP_RESULT:
		rc = agp_put_result(b, m->id, m->status, m->msg[0] ? m->msg : NULL, m->slices,
				    m->n_slices, m->data_len ? m->data : NULL, row_bytes, m->queue_us,
				    m->exec_us, &m->load);
		break;
	case AGP_PING: rc = agp_put_ping(b, m->id); break;
	case AGP_PONG: rc = agp_put_pong(b, m->id, &m->load); break;
	case AGP_CANCEL: rc = agp_put_cancel(b, m->id); break;
	case AGP_ERROR: rc = agp_put_error(b, m->id, m->status, m->msg); break;
	}
	FZ_CHECK(rc == 0);
	return true;
}

static void check_same(const struct agp_msg *a, const struct agp_msg *b)
{
	FZ_CHECK(a->type == b->type && a->id == b->id && a->version == b->version);
	FZ_CHECK(!strcmp(a->sw, b->sw) && !strcmp(a->model, b->model) && !strcmp(a->msg, b->msg));
	FZ_CHECK(a->window == b->window && a->threads == b->threads);
	FZ_CHECK(a->has_token == b->has_token && a->token_len == b->token_len &&
		 (!a->token_len || !memcmp(a->token, b->token, a->token_len)));
	FZ_CHECK(a->n_models == b->n_models && a->n_slices == b->n_slices && a->rows == b->rows);
	for (int i = 0; i < a->n_models; i++) {
		const struct agp_model *x = &a->models[i], *y = &b->models[i];

		FZ_CHECK(!strcmp(x->name, y->name) && !strcmp(x->dtype, y->dtype));
		FZ_CHECK(x->version == y->version && x->in_dim == y->in_dim &&
			 x->out_dim == y->out_dim && x->max_batch == y->max_batch);
	}
	for (int i = 0; i < a->n_slices; i++)
		FZ_CHECK(a->slices[i].rows == b->slices[i].rows &&
			 a->slices[i].timeout_us == b->slices[i].timeout_us &&
			 a->slices[i].status == b->slices[i].status);
	FZ_CHECK(a->data_len == b->data_len);
	FZ_CHECK(!a->data_len || !memcmp(a->data, b->data, a->data_len));
	FZ_CHECK(a->status == b->status && a->queue_us == b->queue_us && a->exec_us == b->exec_us);
	FZ_CHECK(a->has_load == b->has_load && a->load.q == b->load.q &&
		 a->load.qc == b->load.qc && a->load.svc_us == b->load.svc_us);
}

static void one_frame(const uint8_t *data, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	struct agp_buf b = { 0 };
	struct agp_msg m, m2;
	char err[256], tiny[8];
	int rc;

	FZ_CHECK(p != NULL);
	memcpy(p, data, len);
	rc = agp_decode(p, len, &fz_sp[0], &m, err, sizeof(err));
	if (rc) {
		FZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -EBADMSG);
		FZ_CHECK(err[0] && terminated(err, sizeof(err)));
		FZ_CHECK(agp_decode(p, len, &fz_sp[1], &m2, tiny, sizeof(tiny)) == rc);
		FZ_CHECK(terminated(tiny, sizeof(tiny)));
		FZ_CHECK(agp_decode(p, len, &fz_sp[1], &m2, NULL, 0) == rc);
		goto out_p;
	}
	check_msg(&m, p, len, &fz_sp[0]);
	if (!reencode(&m, &b))
		goto out_p;
	FZ_CHECK(b.len >= AGP_HDR_BYTES && agp_frame_len(b.p) == b.len - AGP_HDR_BYTES);
	rc = agp_decode(b.p + AGP_HDR_BYTES, b.len - AGP_HDR_BYTES, &fz_sp[1], &m2, err, sizeof(err));
	if (rc)
		fprintf(stderr, "re-encoded %s refused: %s\n", agp_type_name(m.type), err);
	FZ_CHECK(rc == 0);
	check_same(&m, &m2);
	agp_buf_free(&b);
out_p:
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= AGP_HDR_BYTES) {
		uint32_t len = agp_frame_len(data + off);

		if (len > FZ_MAX_FRAME || len > size - off - AGP_HDR_BYTES)
			break;	/* the reader closes the connection / waits for more */
		one_frame(data + off + AGP_HDR_BYTES, len);
		off += AGP_HDR_BYTES + len;
	}
	/* the whole input as one payload too: no framing luck needed */
	one_frame(data, size);
	return 0;
}
