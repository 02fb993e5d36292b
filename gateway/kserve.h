/*
 * kserve.h - KServe v2 / Open Inference Protocol JSON bodies.
 *
 * Parsing validates a request against the model it is for, and every
 * failure names the field: "inputs[0].shape: expected [-1, 64], got [2, 63]".
 */
#ifndef INFERGW_KSERVE_H
#define INFERGW_KSERVE_H

#include <stddef.h>
#include <stdint.h>

struct model;
struct evbuffer;

#define KS_ID_MAX 256

struct ks_infer {
	char id[KS_ID_MAX + 1];
	int has_id;
	int rows;
	float *data;		/* rows x in_dim, malloc'd: the caller frees */
	int priority;		/* parameters.priority, 0 = not given */
	int64_t timeout_us;	/* parameters.timeout, 0 = not given */
};

/*
 * ks_parse_infer - parse and validate an infer request body for model m.
 * Returns 0 (out filled, out->data owned by the caller) or 400 with a
 * message in err.
 */
int ks_parse_infer(const struct model *m, const char *body, size_t len, struct ks_infer *out,
		   char *err, size_t errlen);
/* ks_encode_infer - the response for rows x out_dim values of m. */
void ks_encode_infer(struct evbuffer *out, const struct model *m, const char *id,
		     int rows, const float *values);
/* ks_encode_model - model metadata: name, versions, platform, inputs, outputs. */
void ks_encode_model(struct evbuffer *out, const struct model *m);
/* ks_put_str - append s as a JSON string literal, escaped. */
void ks_put_str(struct evbuffer *out, const char *s);
/* ks_format_shape - "[-1, 64]" into buf. */
void ks_format_shape(char *buf, size_t len, const int64_t *dims, int ndim);

#endif
