/*
 * proto.h - the agent protocol (agp_): what the gateway's `remote` backend
 * and infergw-agent say to each other over TCP.  docs/agent-protocol.md is
 * the written form; AGP_VERSION is its version.
 *
 * A frame is a 4-byte big-endian payload length, then the payload: one
 * msgpack map.  Every map has "t" (the message type, a string) and, but
 * for hello, "id" (an unsigned integer the sender chooses).
 *
 *   gateway -> agent                       agent -> gateway
 *   hello  {v, sw}                         hello  {v, sw, window, threads, models, q, qc, svc_us}
 *   infer  {id, model, slices, input}      result {id, status, msg, slices, output,
 *                                                  queue_us, exec_us, q, qc, svc_us}
 *   ping   {id}                            pong   {id, q, qc, svc_us}
 *   cancel {id}  (the infer's id; its      error  {id, status, msg}  (a frame it could
 *                 result still comes)              not take; id 0 when it had none)
 *
 * infer carries a whole batch: slices[] = [{rows, timeout_us}] (timeout_us:
 * what is left of that slice's deadline when it was sent, 0 = none) and
 * input = one bin of sum(rows) x in_dim little-endian float32, slice after
 * slice.  result carries status (0 = every slice ran; else an HTTP status
 * for the whole batch with msg), slices[] = per slice status (0 ran, 504
 * its deadline passed before it started, 499 cancelled), output = one bin
 * of sum(rows) x out_dim float32 (rows of slices that did not run are
 * zero), queue_us and exec_us (the batch's time queued at the agent and
 * executing), and the agent's load: q (batches queued at the agent, all
 * connections), qc (those of this connection) and svc_us (its recent
 * service time of one batch).
 *
 * Decoding never trusts the peer: lengths are checked against the frame,
 * types against the schema, counts against the limits below; any mismatch
 * is an error naming the field.  Decoded strings and bins are views into
 * the caller's payload buffer (zero copy): they live as long as it does.
 */
#ifndef INFERGW_AGENT_PROTO_H
#define INFERGW_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGP_VERSION 1
#define AGP_HDR_BYTES 4
#define AGP_MAX_FRAME_DEFAULT (64u << 20)	/* payload bytes; either side may lower it */
#define AGP_MAX_MODELS 256			/* models in one hello */
#define AGP_MAX_SLICES 4096			/* slices in one infer/result */
#define AGP_NAME_MAX 64				/* model name bytes (as config names) */
#define AGP_MSG_MAX 160				/* error text bytes kept */
#define AGP_TOKEN_MAX 4096			/* a hello's token bytes (secret.h) */

enum agp_type {
	AGP_HELLO = 1,
	AGP_INFER,
	AGP_RESULT,
	AGP_PING,
	AGP_PONG,
	AGP_CANCEL,
	AGP_ERROR,
};

/* The agent's load, carried by hello, result and pong. */
struct agp_load {
	uint32_t q;		/* batches queued at the agent (all connections) */
	uint32_t qc;		/* of which this connection's */
	uint32_t svc_us;	/* recent service time of one batch; 0 = none yet */
};

/* One model an agent serves (hello). */
struct agp_model {
	char name[AGP_NAME_MAX + 1];
	uint32_t version;
	uint32_t in_dim, out_dim;
	uint32_t max_batch;	/* rows per batch the agent takes */
	char dtype[8];		/* KServe datatype of the input, "FP32" */
};

/* One slice of an infer (timeout_us) or of a result (status). */
struct agp_slice {
	uint32_t rows;
	uint64_t timeout_us;	/* infer: 0 = no deadline */
	int32_t status;		/* result: 0, 504, 499 */
};

/*
 * A decoded message.  Which fields are meaningful depends on type (see the
 * table above); the rest are zero.  models and slices point into arrays
 * the caller gave agp_decode; model, sw, msg and data point into the
 * payload (NUL-terminated copies for the short strings).
 */
struct agp_msg {
	enum agp_type type;
	uint64_t id;
	/* hello */
	uint32_t version;
	char sw[64];				/* software "infergw-agent 1.2" */
	const char *token;			/* the gateway's hello: a view, not a C string */
	size_t token_len;
	bool has_token;
	uint32_t window, threads;		/* the agent's (hello from the agent) */
	int n_models;
	struct agp_model *models;
	/* infer, result */
	char model[AGP_NAME_MAX + 1];
	int n_slices;
	struct agp_slice *slices;
	uint32_t rows;				/* sum of slices[].rows */
	const uint8_t *data;			/* infer: input; result: output */
	size_t data_len;
	/* result, error */
	int32_t status;
	char msg[AGP_MSG_MAX];
	uint64_t queue_us, exec_us;		/* result */
	struct agp_load load;			/* hello (agent), result, pong */
	bool has_load;
};

/* Where decoded arrays go: the caller's, sized as it likes (<= the limits). */
struct agp_space {
	struct agp_model *models;
	int max_models;
	struct agp_slice *slices;
	int max_slices;
};

/*
 * agp_frame_len - the payload length announced by a frame's first 4 bytes
 * (hdr must hold AGP_HDR_BYTES).  A reader checks it against its limit
 * before buffering the payload.
 */
uint32_t agp_frame_len(const uint8_t *hdr);

/*
 * agp_decode - parse one payload (without its 4-byte header) into *m.
 * sp gives room for hello's models and infer/result's slices; more than
 * it holds is an error.  Returns 0; -EBADMSG when the payload is not one
 * whole msgpack map (not msgpack, truncated, bytes after it: the stream
 * cannot be trusted, close the connection after an error answer);
 * -EINVAL / -E2BIG for a well-formed map with a bad or missing field or
 * over a limit (answer it, the connection stays).  err (errlen bytes)
 * says what is wrong and names the field ("infer: slices[3].rows:
 * expected a positive integer", "not a msgpack map", "unknown message type
 * \"foo\"", "input: 1200 bytes, expected 3136 (4 rows x 196 x 4)").  The
 * infer/result data length is checked against the rows only when the
 * caller knows the width (agp_check_data).  m->id is set as soon as it is
 * read, so an error answer can carry it.  Keys it does not know are
 * skipped (forward compatibility).  A hello whose v is not AGP_VERSION
 * returns 0 with only version (and sw, when readable) set: the receiver
 * refuses it by m->version (426), whatever else it holds.
 */
int agp_decode(const uint8_t *payload, size_t len, const struct agp_space *sp,
	       struct agp_msg *m, char *err, size_t errlen);

/* agp_check_data - 0 when m's data holds m->rows x width float32, else
 * -EINVAL with err naming the field ("input" or "output") and the sizes. */
int agp_check_data(const struct agp_msg *m, uint32_t width, char *err, size_t errlen);

/* agp_type_name - "hello", "infer", ...; "?" when unknown. */
const char *agp_type_name(enum agp_type t);

/*
 * Encoding: every agp_put_* appends one whole frame (header and payload)
 * to a growable buffer.  Each returns 0, or -ENOMEM (the buffer is then
 * as it was before the call), or -E2BIG when the payload would pass
 * 2^32-1 bytes (nothing written).  input/output bins are padded (an
 * ignored "pad" key) to start 4-aligned from the payload's start.
 */
struct agp_buf {
	uint8_t *p;
	size_t len, cap;
};

void agp_buf_free(struct agp_buf *b);	/* frees p; the buffer is empty again */

/* hello from the gateway: the version it speaks, its software name and
 * the agents' token (backends[].token_file; NULL: none). */
int agp_put_hello_req(struct agp_buf *b, uint32_t version, const char *sw, const char *token);
/* hello from the agent: models[0..n), its window and threads, its load. */
int agp_put_hello(struct agp_buf *b, uint32_t version, const char *sw, uint32_t window,
		  uint32_t threads, const struct agp_model *models, int n,
		  const struct agp_load *load);
/*
 * infer: the batch id, model name, slices[0..n) (rows, timeout_us) and
 * their input rows: rows[i] points at slices[i].rows x row_bytes bytes
 * (a slice's rows are contiguous, slices need not be).
 */
int agp_put_infer(struct agp_buf *b, uint64_t id, const char *model,
		  const struct agp_slice *slices, int n, const void *const *rows, size_t row_bytes);
/*
 * result: status and msg (msg may be NULL) for the batch, slices[0..n)
 * (rows, status), output of sum(rows) x out_bytes bytes, out_bytes being
 * ONE output row's bytes (out_dim x 4), like agp_put_infer's row_bytes
 * (NULL: zeros are not sent, the bin is empty; only with a nonzero
 * status), times, load.
 */
int agp_put_result(struct agp_buf *b, uint64_t id, int32_t status, const char *msg,
		   const struct agp_slice *slices, int n, const void *output, size_t out_bytes,
		   uint64_t queue_us, uint64_t exec_us, const struct agp_load *load);
int agp_put_ping(struct agp_buf *b, uint64_t id);
int agp_put_pong(struct agp_buf *b, uint64_t id, const struct agp_load *load);
int agp_put_cancel(struct agp_buf *b, uint64_t id);
int agp_put_error(struct agp_buf *b, uint64_t id, int32_t status, const char *msg);

#endif
