/*
 * mpcodec.h - inference requests and responses as msgpack maps: the
 * `application/msgpack` HTTP body, and (later) the DPDK datagram and the
 * agent protocol, which carry the same map.
 *
 * Request:  {"model_name"?: str, "id"?: str,
 *            "parameters"?: {"priority": int, "timeout": int (µs, saturating)},
 *            "inputs": [{"name": str, "datatype": "FP32", "shape": [int...],
 *                        "data": bin (raw little-endian) | [numbers...]}],
 *            "outputs"?: [{"name": str,
 *                          "parameters"?: {"classification": int}}]}
 * Response: {"model_name": str, "model_version": str, "id"?: str,
 *            "outputs": [{"name", "datatype", "shape", "data": bin}]}
 *           with classification: datatype "BYTES", shape [rows, k], data an
 *           array of str "score:index[:label]".
 * Parameters infergw does not implement (sequence_*, shared_memory_*) are a
 * 400 wherever they appear (ks_check_param), as in JSON.
 * Tensor bytes in a request are not copied: ki->data points into the buffer.
 */
#ifndef INFERGW_MPCODEC_H
#define INFERGW_MPCODEC_H

#include <stddef.h>

struct model;
struct evbuffer;
struct ks_infer;

/*
 * mp_parse_infer - decode and validate buf for model m.  model_name, when
 * not NULL, receives the map's model_name (or "" when absent; size
 * KS_ID_MAX+1) for transports without a URL.  Values must be finite FP32;
 * parameters.timeout saturates at KS_TIMEOUT_MAX_US.  0 or 400 with err
 * (503 when out of memory).  The usual body (bin data, known keys once
 * each) is read in one walk over its bytes; anything else, or any failing
 * check, goes to mp_parse_infer_general, which names the field.
 */
int mp_parse_infer(const struct model *m, const char *buf, size_t len, struct ks_infer *out,
		   char *model_name, char *err, size_t errlen);
/*
 * mp_parse_infer_general - mp_parse_infer without its one-walk reading of
 * the usual body: the same answer, always through msgpack-c's tree.  For
 * tests and fuzzers that hold the two to giving the same.
 */
int mp_parse_infer_general(const struct model *m, const char *buf, size_t len,
			   struct ks_infer *out, char *model_name, char *err, size_t errlen);
/* mp_encode_infer_head - mp_encode_infer up to its last bytes: the caller
 * appends the rows x out_dim FP32 values (the data bin's contents).
 * -ENOMEM or 0. */
int mp_encode_infer_head(struct evbuffer *out, const struct model *m, const char *id, int rows);
/* mp_encode_infer - the response map for rows x out_dim values of m. */
void mp_encode_infer(struct evbuffer *out, const struct model *m, const char *id, int rows,
		     const float *values);
/* mp_encode_classes - the response map of the classification extension
 * (ks_classes).  0, or -ENOMEM (out then holds a partial map: drain it). */
int mp_encode_classes(struct evbuffer *out, const struct model *m, const char *id, int rows,
		      const float *values, int class_count);
/* mp_encode_error - {"error": msg}: an error answer for a client that
 * accepts msgpack. */
void mp_encode_error(struct evbuffer *out, const char *msg);

#endif
