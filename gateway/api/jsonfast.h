/*
 * jsonfast.h - the bulk of a JSON inference request, parsed without a tree.
 *
 * A KServe JSON request is a dozen keys and one long flat list of numbers
 * ("data").  A general parser (jansson) builds one node per number and
 * calls strtod for each; jfast_input_data instead finds that list in the
 * raw text and converts it straight to floats.  The caller then cuts the
 * list's contents out and lets jansson parse what is left.
 *
 * The list is found by walking the document's structure (root object ->
 * "inputs" -> its first element -> "data"), never by searching for a key:
 * a "data" anywhere else, or a key spelled with escapes ("d\u0061ta"),
 * is not it.  Keys are compared as raw bytes, so an escaped spelling of
 * "inputs" or "data" only makes the walk find nothing (jansson then reads
 * the body, or rejects it for a duplicate key).
 *
 * Values are exactly what jansson would give: an integer token converts
 * as (double)(long long), a real one as strtod's correctly rounded double,
 * then (float).  Whenever jansson might answer differently (a nested list,
 * a string, true/null, a malformed number, an integer too large for it, a
 * real that overflows) jfast_input_data declines, and the caller parses the
 * untouched body the general way, which also gives the precise error.
 * jfast_put_float is the way out: a float as "%.9g" text, without printf.
 * jfast_tree reads the small rest (all but that list) into a jansson tree.
 *
 * jfast_read goes further for the plain request most clients send (one
 * input with name/shape/datatype/data, a few parameters and outputs): one
 * walk over the text fills a struct jfast_req, no tree at all; anything
 * outside that shape declines, and the caller uses the pair above.
 * Pure functions: no allocation but the returned values (inbuf.h), no
 * global state.
 */
#ifndef INFERGW_JSONFAST_H
#define INFERGW_JSONFAST_H

#include <stdbool.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct jfast_list {
	float *vals;		/* inbuf_alloc'd, n values; the caller inbuf_frees it */
	size_t n;
	size_t begin, end;	/* the bytes strictly between '[' and ']' */
};

/*
 * jfast_input_data - the list at inputs[0].data of the JSON object in
 * json[0..len), when it is a flat list of JSON numbers: true with *out
 * filled (out->begin/end delimit the list's contents in json).  false,
 * with nothing allocated, otherwise: no such list, inputs[0] has "data"
 * twice, the text runs out, a value in the list jansson might read
 * differently.  What lies outside the list is not validated: the caller
 * has jansson parse the rest.
 */
bool jfast_input_data(const char *json, size_t len, struct jfast_list *out);

/*
 * jfast_float - one JSON number at *p (before end), as (float) of the
 * double jansson reads.  true with *val set and *p past the number; false
 * when the text is not a JSON number or jansson would reject it (*p
 * unchanged).
 */
bool jfast_float(const char **p, const char *end, float *val);

/* Room jfast_put_float needs: "-1.17549435e-38" and the NUL. */
#define JFAST_FLOAT_MAX 32

/*
 * jfast_put_float - v as snprintf(buf, JFAST_FLOAT_MAX, "%.9g", v) writes
 * it (the same bytes; nine digits round-trip every float32), at a fraction
 * of the cost.  buf holds JFAST_FLOAT_MAX bytes; returns the length written
 * before the NUL.  Inf and NaN as printf spells them (not JSON: callers
 * write null for those).
 */
int jfast_put_float(char *buf, float v);

/*
 * jfast_tree - the JSON object in json[0..len) as jansson's tree, read as
 * if the bytes [skip_begin, skip_end) (the contents of a list, as
 * jfast_input_data delimits them; skip_begin == skip_end: none) were not
 * there: what json_loadb(JSON_REJECT_DUPLICATES) of that text gives, at a
 * fraction of the cost.  NULL when the text is outside the subset taken
 * (printable ASCII strings without escapes, strict numbers, integers up to
 * 18 digits, finite reals, nesting up to 32, no duplicate key) or not
 * well-formed: the caller has jansson read it (and name the error).
 * Allocates through jansson's allocator; the caller json_decrefs the tree.
 */
json_t *jfast_tree(const char *json, size_t len, size_t skip_begin, size_t skip_end);

/* A string's bytes in the body (no escapes to decode); s NULL: absent. */
struct jfast_str {
	const char *s;
	size_t len;
};

#define JFAST_MAX_DIMS 8
#define JFAST_MAX_OUTPUTS 4

/* A plain KServe v2 JSON request, as jfast_read finds it (unchecked). */
struct jfast_req {
	struct jfast_str id;			/* "id" */
	bool has_input, has_shape, has_outputs;
	struct jfast_str name, datatype;	/* inputs[0] */
	int64_t dims[JFAST_MAX_DIMS];		/* inputs[0].shape */
	int ndim;
	float *vals;				/* inputs[0].data: inbuf_alloc'd, n finite; NULL: no data */
	size_t n;
	bool has_binary_size;			/* inputs[0].parameters.binary_data_size */
	long long binary_size;			/* (a non-negative integer) */
	bool has_priority, has_timeout;		/* parameters */
	long long priority, timeout;
	bool binary_data_output;
	struct jfast_str variant;
	int n_outputs;				/* outputs[] */
	struct jfast_str out_name[JFAST_MAX_OUTPUTS];
	signed char out_binary[JFAST_MAX_OUTPUTS];	/* parameters.binary_data:
							 * 0 absent, 1 false, 2 true */
};

/*
 * jfast_read - a plain KServe v2 JSON request in one walk, no tree: the
 * root object's keys among id, inputs (a list of exactly one object with
 * name, shape, datatype, data), parameters (priority, timeout,
 * binary_data_output, variant) and outputs (up to JFAST_MAX_OUTPUTS
 * objects with name and parameters.binary_data), each at most once;
 * strings, integers and numbers in jfast_tree's subset, data a flat list
 * read as jfast_input_data reads it, every value finite as a float (no
 * 1e39).  true with *r filled (the values checked for nothing more;
 * r->vals from inbuf_alloc, the caller inbuf_frees it); false with
 * nothing allocated when the text is anything else: the caller reads it
 * the general way, which gives the same request, or the error.
 */
bool jfast_read(const char *json, size_t len, struct jfast_req *r);

#endif
