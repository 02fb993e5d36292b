/*
 * dgram.h - the datagram protocol of the DPDK fast path (docs/udp-protocol.md):
 * one msgpack map per UDP datagram each way.
 *
 * Request:  {"id": uint, "model": str,
 *            "inputs": [{"name": str, "datatype": str, "shape": [int...],
 *                        "data": bin (little-endian values)}],
 *            "priority"?: int (0..1000000), "timeout_us"?: uint}
 * Answer:   {"id": uint, "model": str, "model_version": str,
 *            "outputs": [{"name": str, "datatype": str, "shape": [rows, D],
 *                         "data": bin}]}
 * Error:    {"id": uint, "error": str, "code": int}
 *           code is the HTTP status the same failure gets over HTTP: 400
 *           malformed (the message names the field), 404 unknown model, 413
 *           answer too large for a datagram, 429 admission, 503, 504.
 *
 * Keys other than these are ignored (room to grow); a key given twice is a
 * 400.  The request map must be the whole datagram (no trailing bytes).
 *
 * The lcore's sequence for one PKT_UDP_REQ payload:
 *   dg_decode(payload)        400 -> dg_encode_error(req.id, 400, err)
 *   rt_find_model(req.model)  NULL -> 404 "model: unknown model \"name\""
 *   dg_check(m, &req, ...)    400 -> error answer; else rows + data view
 *   dg_check_fits(m, ...)     413 -> error answer before running anything
 *   front_req_new / front_submit with priority = req.priority,
 *     timeout_us = req.timeout_us (front_hints), input = the data view
 *   on completion: dg_encode_answer at pkt_udp_payload_offset() of a fresh
 *     mbuf, then pkt_udp_reply.
 *
 * Buffers: nothing here allocates.  dg_decode keeps views into the
 * datagram (tensor names, datatypes and data are pointers into it; only
 * the model name is copied, NUL-terminated, for rt_find_model).  The
 * datagram must therefore stay valid and unchanged for as long as the
 * dg_req or dg_check's data pointer is used: the expected way is that the
 * request pins the received mbuf (front_input.release = the mbuf free, no
 * copy), or the lcore copies rows x in_dim x 4 bytes before freeing it.
 * The data pointer may be unaligned (front_input allows it).
 *
 * Thread-safe: no state; any lcore may call anything concurrently.
 */
#ifndef INFERGW_DGRAM_H
#define INFERGW_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define DG_MODEL_MAX	64	/* model name bytes (as CFG_NAME_MAX) */
#define DG_MAX_INPUTS	4	/* input tensors decoded; more is a 400 */
#define DG_ERROR_MIN	96	/* dg_encode_error always fits this many bytes */
#define DG_PRIORITY_MAX	1000000

/* One input tensor as sent: views into the datagram. */
struct dg_tensor {
	const char *name;		/* not NUL-terminated */
	size_t name_len;
	const char *datatype;		/* "FP32" ..., not NUL-terminated */
	size_t datatype_len;
	int ndim;
	int64_t dims[MODEL_MAX_DIMS];	/* as sent; -1 allowed (rows from the data length) */
	const uint8_t *data;		/* the bin's bytes */
	size_t data_len;
};

/* A decoded request. */
struct dg_req {
	uint64_t id;
	bool has_id;			/* id was read (also set when decode fails later) */
	char model[DG_MODEL_MAX + 1];	/* NUL-terminated */
	int n_inputs;
	struct dg_tensor inputs[DG_MAX_INPUTS];
	int priority;			/* 0 = not given */
	int64_t timeout_us;		/* 0 = not given; saturated at KS_TIMEOUT_MAX_US */
};

/*
 * dg_decode - decode the request map in p[0 .. len) into out (the caller's,
 * overwritten).  Bounded: reads nothing outside p, allocates nothing, work
 * linear in len.  Returns 0, or 400 with a message naming the field in err
 * ("inputs[0].shape: expected an array of integers, got a string").  On a
 * 400, out->has_id and out->id still say whether the id could be read
 * (the id is looked for first, wherever it is in the map), so the error
 * answer carries it.
 */
int dg_decode(const uint8_t *p, size_t len, struct dg_req *out, char *err, size_t errlen);

/*
 * dg_peek_id - the request's id from the first bytes of a datagram that
 * did not arrive whole (the first IPv4 fragment): true with *id when the
 * map's first key is "id" with an unsigned value, as clients write it;
 * false otherwise.  Reads nothing outside p.
 */
bool dg_peek_id(const uint8_t *p, size_t len, uint64_t *id);

/*
 * dg_check - validate req's input against model m, the same checks as the
 * HTTP path (ks_check_input, ks_check_bytes, ks_check_finite): exactly one
 * input, its name, datatype FP32, shape [rows, in_dim] or [-1, in_dim]
 * with 1..max_batch_size rows, data length rows x in_dim x 4, finite
 * values.  0 with *rows and *data (a view into the datagram, maybe
 * unaligned) set, or 400 with err.
 */
int dg_check(const struct model *m, const struct dg_req *req, int *rows, const float **data,
	     char *err, size_t errlen);

/* dg_answer_size - the exact bytes dg_encode_answer writes for (id, m, rows). */
size_t dg_answer_size(const struct model *m, uint64_t id, int rows);
/*
 * dg_check_fits - the answer for rows rows fits cap bytes (the payload
 * room of one datagram, pkt_udp_payload_max).  0, or 413 with "answer of
 * N bytes does not fit a datagram (at most C); use HTTP/2" in err.  Lets
 * the lcore refuse before the model runs.
 */
int dg_check_fits(const struct model *m, uint64_t id, int rows, size_t cap, char *err,
		  size_t errlen);
/*
 * dg_encode_answer - the answer map for rows x m->out_dim values of
 * out (FP32, sent as little-endian bin) into buf.  Returns bytes written,
 * or 0 when it does not fit cap (buf then holds garbage).
 */
size_t dg_encode_answer(uint8_t *buf, size_t cap, uint64_t id, const struct model *m,
			const float *out, int rows);
/*
 * dg_encode_error - {"id", "error": msg, "code": code} into buf.  msg is
 * cut (at a UTF-8 character boundary) to fit; with cap >= DG_ERROR_MIN it
 * always fits.  id is 0 when the request's could not be read.  Returns
 * bytes written, 0 only when cap < DG_ERROR_MIN and even an empty message
 * does not fit.
 */
size_t dg_encode_error(uint8_t *buf, size_t cap, uint64_t id, int code, const char *msg);

#endif
