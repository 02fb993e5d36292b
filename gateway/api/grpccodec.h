/*
 * grpccodec.h - the pure parts of the gRPC codec (grpc.h): the 5-byte
 * message framing and the checks of a decoded ModelInferRequest against a
 * model, with HTTP's rules and messages (kserve.h).  No call, no runtime:
 * what grpc.c and the fuzz target (tests/fuzz/fuzz_grpc.c) share.
 */
#ifndef INFERGW_GRPCCODEC_H
#define INFERGW_GRPCCODEC_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc_service.pb-c.h"

#define GC_FRAME_HDR 5		/* compressed flag, 4-byte big-endian length */

struct model;
struct front_hints;

/*
 * gc_frame - the frame that starts at p (len bytes there): its compressed
 * flag and message length into *flag, *mlen.  1: the whole message is
 * there (GC_FRAME_HDR + *mlen bytes); 0: not yet (fewer than 5 bytes: flag
 * and mlen unset); -EPROTO: a flag other than 0 or 1; -EFBIG: a length
 * over max.
 */
int gc_frame(const uint8_t *p, size_t len, uint64_t max, uint8_t *flag, size_t *mlen);
/* gc_frame_head - the 5-byte prefix of an uncompressed message of len
 * (<= UINT32_MAX) bytes at out. */
void gc_frame_head(uint8_t *out, size_t len);
/*
 * gc_bytes_head - what protobuf writes before the value of a
 * length-delimited field number field (bytes, string, message) of n
 * bytes: its tag and length as varints, at out (room: GC_BYTES_HEAD_MAX).
 * How many bytes.  A message's last field can so be appended to its
 * packed rest without packing (copying) the value.
 */
#define GC_BYTES_HEAD_MAX 15
size_t gc_bytes_head(uint8_t *out, uint32_t field, uint64_t n);
/* ModelInferResponse.raw_output_contents (proto/grpc_service.proto), the
 * message's last field (test_grpccodec checks both against the
 * descriptor). */
#define GC_RAW_OUTPUT_FIELD 6
/* ModelStreamInferResponse.infer_response (test_grpccodec checks it). */
#define GC_STREAM_INFER_RESPONSE_FIELD 2
/* ModelInferRequest.raw_input_contents (repeated bytes; test_grpccodec
 * checks it against the descriptor). */
#define GC_RAW_INPUT_FIELD 7
/*
 * gc_split_raw - a ModelInferRequest's len bytes at p taken apart so that
 * its raw inputs need no copy: each raw_input_contents entry (field 7,
 * in order) as a view into p at raw[i] (raw NULL: only counted), every
 * other field copied, in order and as it came, to rest (room for len
 * bytes; NULL: only measured).  *n_raw and *rest_len: how many entries,
 * how many rest bytes.  Unpacking rest and adding the views gives the
 * message unpacking p gives.  0, or -1 when p is not what this reads
 * strictly (truncated, a group, a tag or a length written longer than
 * it needs, a length over INT_MAX): unpack p whole then, for
 * protobuf-c's own answer.
 */
int gc_split_raw(const uint8_t *p, size_t len, ProtobufCBinaryData *raw, size_t *n_raw,
		 uint8_t *rest, size_t *rest_len);
/*
 * gc_infer_unpack - the ModelInferRequest of len bytes at p as protobuf-c
 * would unpack it, without protobuf-c's table walk, for the plain request
 * clients send: model_name, model_version and id (each at most once),
 * inputs of name, datatype and a packed shape, outputs of a name, and
 * non-empty raw_input_contents (a few of each).  Allocated with a (NULL:
 * malloc, so that protobuf_c_message_free_unpacked frees it), into *out:
 * 0.  -1 for anything else (parameters, contents, unknown fields, a
 * field twice, a tag or length not written minimally, truncation) or out
 * of memory: unpack with protobuf-c then, for its own answer.  With an
 * allocator that does not free, what a declined call allocated stays
 * with it.
 */
int gc_infer_unpack(const uint8_t *p, size_t len, ProtobufCAllocator *a,
		    Inference__ModelInferRequest **out);
/*
 * gc_pack_size, gc_pack - protobuf_c_message_get_packed_size(m) and
 * protobuf_c_message_pack(m, out), byte for byte, for any message: a
 * plain ModelInferResponse (no parameters, outputs of name, datatype and
 * shape: what grpc.c answers an inference with) and a
 * ModelStreamInferResponse of an error message and / or a plain response
 * (a stream's answers) without protobuf-c's table walk, others by
 * protobuf-c.
 */
size_t gc_pack_size(const ProtobufCMessage *m);
size_t gc_pack(const ProtobufCMessage *m, uint8_t *out);
/*
 * gc_infer_params - req's parameters into h: priority in [0, 1000000],
 * timeout in µs (saturated at KS_TIMEOUT_MAX_US); those infergw refuses
 * (sequence, shared memory) on the request, the input or an output are
 * a 400 naming them; others are ignored, as over HTTP.  0 or 400 with err.
 */
int gc_infer_params(const Inference__ModelInferRequest *req, struct front_hints *h,
		    char *err, size_t errlen);
/*
 * gc_timeout_us - grpc-timeout (1 to 8 digits and a unit H M S m u n) in
 * µs, at least 1, saturated at KS_TIMEOUT_MAX_US; 0 when v is NULL, -1
 * when malformed.
 */
int64_t gc_timeout_us(const char *v);
/*
 * gc_infer_input - req's one input for m: *rows, and *data its FP32
 * values (raw_input_contents[0] or contents.fp32_contents: a view into
 * req, maybe unaligned).  Checks what HTTP checks (name, datatype, shape,
 * rows, byte or value counts, finite values, requested outputs).  0 or
 * 400 with err.
 */
int gc_infer_input(const struct model *m, const Inference__ModelInferRequest *req, int *rows,
		   const float **data, char *err, size_t errlen);

#endif
