/*
 * kserve.h - KServe v2 / Open Inference Protocol request and response
 * bodies: JSON, JSON with Triton's binary tensor extension, and the checks
 * every body format shares (gateway/api/mpcodec.c decodes msgpack into the
 * same struct ks_infer).
 *
 * Every failure names the field: "inputs[0].shape: expected [-1, 64], got [2, 63]".
 */
#ifndef INFERGW_KSERVE_H
#define INFERGW_KSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model;
struct evbuffer;
struct json_t;

#define KS_ID_MAX 256
/*
 * parameters.timeout (µs) saturates here: 10^15 µs is 31 years, no
 * deadline in practice, and timeout x 1000 plus a monotonic clock in ns
 * stays far below 2^63 (a larger value used to wrap into a tiny deadline).
 */
#define KS_TIMEOUT_MAX_US 1000000000000000LL

/* One parsed infer request, whatever its wire format. */
struct ks_infer {
	char id[KS_ID_MAX + 1];
	bool has_id;
	int rows;
	const float *data;	/* rows x in_dim little-endian FP32; may be unaligned */
	float *owned;		/* data's buffer when decoded (inbuf.h; ks_infer_free),
				 * NULL for a view */
	int priority;		/* parameters.priority, 0 = not given */
	int64_t timeout_us;	/* parameters.timeout, 0 = not given; <= KS_TIMEOUT_MAX_US */
	bool binary_output;	/* binary_data_output, or binary_data on the output */
	int variant;		/* parameters.variant: 0 = not given, else 1 + enum
				 * model_variant (ks_check_variant) */
	int class_count;	/* outputs[].parameters.classification (or class_count):
				 * answer the top k as BYTES "score:index[:label]";
				 * 0 = the tensor itself.  May exceed out_dim (ks_class_k). */
};

/* Largest "score:index:label" element the classification extension writes. */
#define KS_CLASS_STR_MAX 336

/*
 * ks_check_variant - parameters.variant's value s (len bytes, NULL: not a
 * string): "fp32" or "int8" into *out as 1 + enum model_variant.  0, or 400
 * with err naming parameters.variant.  Whether the model has that variant
 * is the router's to say (a 400 too).
 */
int ks_check_variant(const char *s, size_t len, int *out, char *err, size_t errlen);

/* ks_infer_free - free what the parse allocated (not the body it viewed). */
void ks_infer_free(struct ks_infer *ki);

/*
 * ks_parse_infer - parse and validate a JSON infer request for model m.
 * bin/bin_len is the binary section after the JSON header when the request
 * carried Inference-Header-Content-Length (NULL otherwise): inputs with
 * parameters.binary_data_size take their bytes from it, in input order,
 * without copying (ki->data then points into bin).  Every value must be
 * a finite FP32 (ks_check_finite).  Returns 0, or 400 with a message in
 * err (503 when out of memory).
 */
int ks_parse_infer(const struct model *m, const char *json, size_t json_len, const char *bin,
		   size_t bin_len, struct ks_infer *out, char *err, size_t errlen);
/*
 * ks_parse_infer_general - ks_parse_infer without its one-walk reading of
 * the usual body (jfast_read): the same answer, always through jansson's
 * tree.  For tests and fuzzers that hold the two to giving the same.
 */
int ks_parse_infer_general(const struct model *m, const char *json, size_t json_len,
			   const char *bin, size_t bin_len, struct ks_infer *out, char *err,
			   size_t errlen);

/*
 * ks_check_input - the checks shared by every format for input `idx` (of
 * n_inputs): the model takes exactly one input, name and datatype match,
 * shape matches the model's [-1, D] with 1..max_batch_size rows (*rows
 * set).  0 or 400 with err.
 */
int ks_check_input(const struct model *m, int n_inputs, const char *name, size_t name_len,
		   const char *datatype, size_t dt_len, const int64_t *dims, int ndim,
		   int *rows, char *err, size_t errlen);
/* ks_check_output_name - outputs[idx].name must be the model's output. 0 or 400. */
int ks_check_output_name(const struct model *m, int idx, const char *name, size_t len,
			 char *err, size_t errlen);
/* ks_check_bytes - raw tensor bytes for the input: size must be rows x D x 4. 0 or 400. */
int ks_check_bytes(const struct model *m, const char *field, int rows, size_t got,
		   char *err, size_t errlen);
/*
 * ks_check_finite - the n FP32 input values at data (any alignment) are
 * finite.  0, or 400 with "inputs[0].data[i]: not a finite FP32 value
 * (+Inf)" for the first that is not (Inf, NaN, or a number too large for
 * FP32 such as 1e39, which converts to Inf).
 */
int ks_check_finite(const void *data, size_t n, char *err, size_t errlen);
/* ks_check_finite_in - ks_check_finite for values another codec names
 * field: "FIELD[i]: not a finite FP32 value (NaN)" (gRPC's
 * raw_input_contents[0], inputs[0].contents.fp32_contents). */
int ks_check_finite_in(const char *field, const void *data, size_t n, char *err, size_t errlen);
/*
 * ks_check_output - the rows x out_dim output values of m can be written
 * as JSON numbers.  0, or 500 with a message naming the first Inf/NaN
 * (binary and msgpack answers carry them as raw FP32; JSON has no token).
 */
int ks_check_output(const struct model *m, int rows, const float *values, char *err,
		    size_t errlen);
/*
 * ks_check_param - refuse a request parameter the gateway does not
 * implement (sequence_id, sequence_start, sequence_end, shared_memory_*)
 * rather than ignore it: key (len bytes) of the parameters object at
 * where ("parameters", "inputs[0].parameters", ...).  0, or 400 naming
 * it.  The one list every body format checks against.
 */
int ks_check_param(const char *where, const char *key, size_t len, char *err, size_t errlen);
/*
 * ks_check_class_count - a requested classification count k, from
 * outputs[idx].parameters.<key>: 0 (no classification) to INT_MAX, as an
 * integer (is_int false for any other kind).  0 with *out set, or 400.
 */
int ks_check_class_count(int idx, const char *key, bool is_int, long long k, int *out,
			 char *err, size_t errlen);
/* ks_class_k - the classes answered per row for a requested k: min(k, out_dim). */
int ks_class_k(const struct model *m, int class_count);
/*
 * ks_classes - the classification extension: for each of rows rows of
 * rows x out_dim values, the k = ks_class_k(m, class_count) best classes,
 * best first (equal scores by lower index; NaN last), each as the string
 * "score:index" or "score:index:label" (m->labels; score printed %f, as
 * Triton's std::to_string).  fn(arg, s, len) gets each in order, s
 * NUL-terminated.  0, or -ENOMEM.
 */
int ks_classes(const struct model *m, int rows, const float *values, int class_count,
	       void (*fn)(void *arg, const char *s, int len), void *arg);
/*
 * ks_encode_classes - the JSON response for ks_classes: output datatype
 * BYTES, shape [rows, k], data a list of strings; with binary, the
 * strings go after the JSON as Triton serializes BYTES (each a 4-byte
 * little-endian length, then the bytes) and *hdr is the JSON's length
 * (else 0).  0, or -ENOMEM (out then holds a partial answer: drain it).
 */
int ks_encode_classes(struct evbuffer *out, const struct model *m, const char *id, int rows,
		      const float *values, int class_count, bool binary, size_t *hdr);
/*
 * ks_encode_config - Triton's model configuration (GET .../config) for m:
 * mc its gateway.yaml entry, priority_levels routing's, hosts[0..n) the
 * backends that host it (the instance groups).
 */
struct model_conf;
struct backend_conf;
void ks_encode_config(struct evbuffer *out, const struct model *m, const struct model_conf *mc,
		      int priority_levels, const struct backend_conf *const *hosts, int n);
/* ks_clamp_timeout - a parameters.timeout in µs, saturated at KS_TIMEOUT_MAX_US. */
int64_t ks_clamp_timeout(uint64_t us);

/*
 * ks_encode_infer - the JSON response for rows x out_dim values of m.  With
 * binary, the output's data goes raw after the JSON (Triton's binary
 * extension) and the JSON's length is returned (for
 * Inference-Header-Content-Length); else 0.  Never writes a token that is
 * not JSON: a non-finite value is written as null (check with
 * ks_check_output first to answer 500 instead).
 */
size_t ks_encode_infer(struct evbuffer *out, const struct model *m, const char *id, int rows,
		       const float *values, bool binary);
/* ks_encode_infer_head - ks_encode_infer's binary answer without its data:
 * the caller adds the rows x out_dim values after it.  Its length; 0 when
 * out of memory. */
size_t ks_encode_infer_head(struct evbuffer *out, const struct model *m, const char *id, int rows);
/* ks_encode_model - model metadata: name, versions, platform, inputs, outputs. */
void ks_encode_model(struct evbuffer *out, const struct model *m);

/* The variants a model with models[].variants serves (issue 15). */
#define KS_VARIANTS_MAX 2
struct ks_variants {
	int n;					/* variants; 0 or 1: none to list */
	const char *name[KS_VARIANTS_MAX];	/* "fp32", "int8" */
	int hosts[KS_VARIANTS_MAX];		/* backends hosting each */
	const char *policy;			/* models[].variant_policy */
};
/*
 * ks_encode_model_variants - ks_encode_model, plus for a model with
 * variants (v->n > 1) "variants": [{"name", "backends"}...] and
 * "variant_policy".  v NULL: ks_encode_model.
 */
void ks_encode_model_variants(struct evbuffer *out, const struct model *m,
			      const struct ks_variants *v);
/*
 * ks_encode_config_variants - ks_encode_config, plus for a model with
 * variants its "parameters" (Triton's string map): variants "fp32,int8",
 * variant_policy, and per variant the backends hosting it.
 */
void ks_encode_config_variants(struct evbuffer *out, const struct model *m,
			       const struct model_conf *mc, int priority_levels,
			       const struct backend_conf *const *hosts, int n,
			       const struct ks_variants *v);
/*
 * ks_put_str - append s as a JSON string literal: '"', '\\' and control
 * characters escaped, bytes that are not well-formed UTF-8 replaced by
 * U+FFFD, so any C string gives valid JSON.
 */
void ks_put_str(struct evbuffer *out, const char *s);
/*
 * ks_json_string - s as a new jansson string, like json_string, but any C
 * string works: bytes that are not UTF-8 become U+FFFD (json_string
 * refuses them).  The caller owns the reference; NULL only without memory.
 */
struct json_t *ks_json_string(const char *s);
/* ks_format_shape - "[-1, 64]" into buf. */
void ks_format_shape(char *buf, size_t len, const int64_t *dims, int ndim);

#endif
