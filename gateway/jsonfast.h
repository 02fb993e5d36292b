/*
 * jsonfast.h - the bulk of a JSON inference request, parsed without a tree.
 *
 * A KServe JSON request is a dozen keys and one long flat list of numbers
 * ("data").  A general parser (jansson) builds one node per number and
 * calls strtod for each; jfast_list instead finds that list in the raw text
 * and converts it straight to floats.  The caller then cuts the list's
 * contents out and lets jansson parse what is left.
 *
 * Values are exactly what jansson would give: an integer token converts
 * as (double)(long long), a real one as strtod's correctly rounded double,
 * then (float).  Whenever jansson might answer differently (a nested list,
 * a string, true/null, a malformed number, an integer too large for it, a
 * real that overflows) jfast_list declines, and the caller parses the
 * untouched body the general way, which also gives the precise error.
 * Pure functions: no allocation but the returned values, no global state.
 */
#ifndef INFERGW_JSONFAST_H
#define INFERGW_JSONFAST_H

#include <stdbool.h>
#include <stddef.h>

struct jfast_list {
	float *vals;		/* malloc'd, n values; the caller frees it */
	size_t n;
	size_t begin, end;	/* the bytes strictly between '[' and ']' */
};

/*
 * jfast_list - the value of the one key "key" in json[0..len) (the key
 * appears once, outside strings, followed by ':' and '['), when it is a
 * flat list of JSON numbers.  true with *out filled; false (nothing
 * allocated) otherwise, including when the key appears more than once.
 */
bool jfast_list(const char *json, size_t len, const char *key, struct jfast_list *out);

/*
 * jfast_float - one JSON number at *p (before end), as (float) of the
 * double jansson reads.  true with *val set and *p past the number; false
 * when the text is not a JSON number or jansson would reject it (*p
 * unchanged).
 */
bool jfast_float(const char **p, const char *end, float *val);

#endif
