/*
 * backend.h - the table of operations every backend implements.
 *
 * A backend executes batches of inference requests for the models it hosts.
 * The scheduler (gateway/scheduler.c) owns the queues and `slots` threads per
 * backend; each thread cuts a batch and calls ops->submit(be, batch) with
 * batch->slot set to its own index, then waits for batch->done before it
 * cuts the next one.  submit may complete the batch before it returns (the
 * CPU backend computes in the calling thread) or later from another thread
 * (GPU stream callback, remote agent reply).  Either way it must call
 * batch->done(batch) exactly once, after it has written every slice's
 * output rows and status.
 *
 * A batch is a list of slices: row ranges of requests.  A request larger
 * than the batch limit runs as several slices in several batches, possibly
 * at once on different slots, so a backend writes only its slices' rows of
 * r->output (and reads only their rows of r->input), and reports through
 * the slice and the batch, never the request's own fields.
 */
#ifndef INFERGW_BACKEND_H
#define INFERGW_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct model;
struct infer_req;
struct infer_slice;

enum backend_kind { BE_CPU, BE_GPU, BE_REMOTE };

struct backend_conf {
	char *name;
	enum backend_kind kind;
	int slots;		/* concurrent batches (CPU: worker threads); default 1 */
	int threads_per_slot;	/* CPU: OpenMP threads inside one batch; default 1 */
	double cost;		/* relative cost per request, for routing */
	char **models;		/* names of hosted models */
	int n_models;
	char *address;		/* remote: host:port */
	int device;		/* gpu: CUDA device ordinal */
	int nice;		/* worker threads' nice value (SCHED_BATCH); default 10 */
};

struct batch {
	const struct model *model;
	struct backend *be;
	int slot;			/* scheduler thread index, 0..slots-1 */
	int n_slices;
	struct infer_slice *slices;	/* each with rows >= 1 */
	int rows;			/* sum of slices[i].rows, <= the backend's max_batch */
	uint64_t exec_start_ns, exec_end_ns;	/* set by the backend */
	char errmsg[160];		/* set by the backend when a slice fails */
	void (*done)(struct batch *b);
	void *owner;			/* the scheduler's */
};

struct backend_stats {
	uint64_t batches;
	uint64_t rows;
	uint64_t busy_ns;
	bool up;
};

struct backend;

struct backend_ops {
	const char *kind;
	/* open - prepare per-slot state from conf. 0 or -errno with *err. */
	int (*open)(struct backend *be, const struct backend_conf *conf, char **err);
	/* load_model - make m executable here (e.g. create oneDNN primitives
	 * for each batch-size bucket, for every slot). 0 or -errno with *err. */
	int (*load_model)(struct backend *be, const struct model *m, char **err);
	/* submit - execute b (see the comment at the top). 0, or -errno when
	 * the batch could not be started (then done is NOT called). */
	int (*submit)(struct backend *be, struct batch *b);
	/* max_batch - optional: the most rows of m one batch here may hold
	 * (the scheduler slices larger requests); NULL: m->max_batch_size. */
	int (*max_batch)(const struct backend *be, const struct model *m);
	void (*stats)(const struct backend *be, struct backend_stats *out);
	void (*close)(struct backend *be);
};

struct backend {
	const struct backend_ops *ops;
	struct backend_conf conf;	/* owned copy */
	void *priv;			/* the backend's own state */
	_Atomic bool up;		/* written by the control thread, read by loops */
};

extern const struct backend_ops be_cpu_ops;

#endif
