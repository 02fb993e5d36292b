/*
 * tiny_model.h - the 4-in, 3-out "digits" model the codec unit tests
 * (test_kserve, test_mpcodec, test_dgram) check requests against, and a
 * msgpack string helper for building their bodies.
 */
#ifndef INFERGW_TINY_MODEL_H
#define INFERGW_TINY_MODEL_H

#include <msgpack.h>
#include <string.h>

#include "model/model.h"

/* m = model "digits" of the given version: input [-1, 4], output
 * "probabilities" [-1, 3], FP32, at most 8 rows; everything else zero. */
static inline void tiny_model(struct model *m, int version)
{
	memset(m, 0, sizeof(*m));
	m->name = "digits";
	m->version = version;
	m->input = (struct tensor_spec){ .name = "input", .dtype = DT_FP32, .ndim = 2,
					 .dims = { -1, 4 } };
	m->output = (struct tensor_spec){ .name = "probabilities", .dtype = DT_FP32, .ndim = 2,
					  .dims = { -1, 3 } };
	m->in_dim = 4;
	m->out_dim = 3;
	m->max_batch_size = 8;
}

/* s as a msgpack str. */
static inline void tiny_mp_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

#endif
