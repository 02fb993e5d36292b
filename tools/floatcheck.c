/*
 * tools/floatcheck.c - every float32 bit pattern through the JSON number
 * paths of gateway/api/jsonfast.c, against libc: what test_jsonfast
 * samples (a stride of 997), here for all 2^32 patterns.
 *
 * For each pattern v in [FIRST, LAST]:
 *   - jfast_put_float(v) must write the bytes snprintf "%.9g" writes;
 *   - finite v: that text, 64 values to a request, read back by
 *     jfast_read (the list loop a request's data goes through: the short
 *     form, the word reader, the byte-wise and general readers) must give
 *     v exactly (nine digits round-trip a float), and so must jfast_float
 *     on the text alone at the very end of its buffer (the readers that
 *     may not look ahead).  Their contract is jansson's reading, so a
 *     value other than v passes only where it is (float) of what jansson
 *     reads: "-0" is JSON's integer 0 there, +0.0f;
 *   - every STRIDE17-th finite v also as "%.17g" (a float widened to a
 *     double and printed as clients that hold doubles print it), both
 *     ways, again v exactly.
 * Stops at the first mismatch, printing it; exit 1.  Exit 0 with a
 * summary line when every pattern agreed.
 *
 * usage: floatcheck [FIRST [LAST [STRIDE17]]]   (hex or decimal bit patterns;
 *        defaults 0, 0xffffffff, 61), split over one thread an online CPU
 *        (up to FC_THREADS).  `make floatcheck` runs all of them: about
 *        30 minutes on this 2-CPU machine.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/inbuf.h"
#include "api/jsonfast.h"

#define FC_ROWS 64
#define FC_THREADS 64
#define FC_HEAD "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":["
#define FC_TAIL "]}]}"

struct fc_batch {
	char text[sizeof(FC_HEAD) + FC_ROWS * 32 + sizeof(FC_TAIL)];
	size_t len;
	float want[FC_ROWS];
	char tok[FC_ROWS][32];	/* each value's text */
	int n;
};

static float fc_float(uint32_t bits)
{
	float v;

	memcpy(&v, &bits, sizeof(v));
	return v;
}

static uint32_t fc_bits(float v)
{
	uint32_t b;

	memcpy(&b, &v, sizeof(b));
	return b;
}

static _Atomic uint64_t fc_as_jansson;	/* values other than v that jansson reads too */

/* got (not v) for text: a failure unless it is (float) of jansson's value. */
static void fc_fail(const char *what, float v, const char *text, float got)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	bool jansson_too = j && json_is_number(j) && fc_bits((float)json_number_value(j)) == fc_bits(got);

	json_decref(j);
	if (jansson_too) {
		fc_as_jansson++;
		return;
	}
	fprintf(stderr, "floatcheck: %s: 0x%08" PRIx32 " (%a) as \"%s\" gave 0x%08" PRIx32
		" (%a)\n", what, fc_bits(v), (double)v, text, fc_bits(got), (double)got);
	exit(1);
}

/* jfast_put_float against printf for v (any pattern); its text in buf. */
static void fc_put(float v, char *buf)
{
	char want[JFAST_FLOAT_MAX];
	int len = jfast_put_float(buf, v);

	snprintf(want, sizeof(want), "%.9g", (double)v);
	if (strcmp(buf, want) != 0 || len != (int)strlen(want)) {
		fprintf(stderr, "floatcheck: jfast_put_float: 0x%08" PRIx32 " (%a) gave \"%s\" (%d), "
			"printf \"%s\"\n", fc_bits(v), (double)v, buf, len, want);
		exit(1);
	}
}

/* text (NUL-ended) alone in a buffer of its own length, read to its end. */
static void fc_read_alone(float v, const char *text)
{
	size_t len = strlen(text);
	char *own = malloc(len);	/* nothing past the last byte: ASan sees overreads */
	const char *p = own;
	float got = NAN;

	if (!own) {
		perror("floatcheck");
		exit(2);
	}
	memcpy(own, text, len);
	if (!jfast_float(&p, own + len, &got) || p != own + len) {
		fprintf(stderr, "floatcheck: jfast_float declined \"%s\" or stopped short\n", text);
		exit(1);
	}
	if (fc_bits(got) != fc_bits(v))
		fc_fail("jfast_float", v, text, got);
	free(own);
}

static void fc_batch_add(struct fc_batch *b, float v, const char *text)
{
	if (b->n == 0) {
		memcpy(b->text, FC_HEAD, sizeof(FC_HEAD) - 1);
		b->len = sizeof(FC_HEAD) - 1;
	} else {
		b->text[b->len++] = ',';
	}
	b->len += (size_t)sprintf(b->text + b->len, "%s", text);
	snprintf(b->tok[b->n], sizeof(b->tok[b->n]), "%s", text);
	b->want[b->n++] = v;
}

/* The batch as one request through jfast_read: every value back exactly. */
static void fc_batch_check(struct fc_batch *b)
{
	struct jfast_req r;

	if (!b->n)
		return;
	memcpy(b->text + b->len, FC_TAIL, sizeof(FC_TAIL));
	if (!jfast_read(b->text, b->len + sizeof(FC_TAIL) - 1, &r) || r.n != (size_t)b->n) {
		fprintf(stderr, "floatcheck: jfast_read declined or miscounted:\n%s\n", b->text);
		exit(1);
	}
	for (int i = 0; i < b->n; i++)
		if (fc_bits(r.vals[i]) != fc_bits(b->want[i]))
			fc_fail("jfast_read", b->want[i], b->tok[i], r.vals[i]);
	inbuf_free(r.vals);
	b->n = 0;
}

/* One thread's share: the patterns first..last, and what it counted. */
struct fc_part {
	uint64_t first, last, stride17;
	uint64_t n, n17;	/* finite values read back from %.9g, from %.17g */
	pthread_t tid;
};

static void *fc_run(void *arg)
{
	struct fc_part *pt = arg;
	struct fc_batch *b9 = calloc(1, sizeof(*b9)), *b17 = calloc(1, sizeof(*b17));
	char text[JFAST_FLOAT_MAX], t17[40];

	if (!b9 || !b17) {
		perror("floatcheck");
		exit(2);
	}
	for (uint64_t bits = pt->first; bits <= pt->last; bits++) {
		float v = fc_float((uint32_t)bits);

		fc_put(v, text);
		if (!isfinite(v))
			continue;
		pt->n++;
		fc_read_alone(v, text);
		fc_batch_add(b9, v, text);
		if (b9->n == FC_ROWS)
			fc_batch_check(b9);
		if (bits % pt->stride17)
			continue;
		pt->n17++;
		snprintf(t17, sizeof(t17), "%.17g", (double)v);
		fc_read_alone(v, t17);
		fc_batch_add(b17, v, t17);
		if (b17->n == FC_ROWS)
			fc_batch_check(b17);
	}
	fc_batch_check(b9);
	fc_batch_check(b17);
	free(b9);
	free(b17);
	return NULL;
}

static uint64_t fc_arg(int argc, char **argv, int i, uint64_t dflt)
{
	return argc > i ? strtoull(argv[i], NULL, 0) : dflt;
}

int main(int argc, char **argv)
{
	uint64_t first = fc_arg(argc, argv, 1, 0), last = fc_arg(argc, argv, 2, UINT32_MAX);
	uint64_t stride17 = fc_arg(argc, argv, 3, 61), n = 0, n17 = 0, span;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = cpus < 1 ? 1 : cpus > FC_THREADS ? FC_THREADS : (int)cpus;
	struct fc_part pt[FC_THREADS];

	if (argc > 4 || last > UINT32_MAX || first > last || !stride17) {
		fprintf(stderr, "usage: floatcheck [FIRST [LAST [STRIDE17]]]  (bit patterns, "
			"FIRST <= LAST <= 0xffffffff, STRIDE17 >= 1)\n");
		return 2;
	}
	span = last - first + 1;
	if (span < (uint64_t)nt)
		nt = 1;
	for (int i = 0; i < nt; i++) {
		pt[i] = (struct fc_part){ .first = first + span * i / nt,
					  .last = first + span * (i + 1) / nt - 1, .stride17 = stride17 };
		if (pthread_create(&pt[i].tid, NULL, fc_run, &pt[i])) {
			fprintf(stderr, "floatcheck: cannot start a thread\n");
			return 2;
		}
	}
	for (int i = 0; i < nt; i++) {	/* a mismatch exits the process from its thread */
		pthread_join(pt[i].tid, NULL);
		n += pt[i].n;
		n17 += pt[i].n17;
	}
	printf("floatcheck: 0x%08" PRIx64 "..0x%08" PRIx64 ": %" PRIu64 " patterns printed as "
	       "printf does, %" PRIu64 " finite read back from \"%%.9g\" and %" PRIu64
	       " from \"%%.17g\": all agree (%" PRIu64 " reads not v, each as jansson reads it; "
	       "%d threads)\n", first, last, span, n, n17, atomic_load(&fc_as_jansson), nt);
	return 0;
}
