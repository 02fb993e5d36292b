/*
 * backend.h - the contract between the scheduler and a backend (ops v2).
 *
 * A backend executes batches of inference requests for the models it hosts.
 * The scheduler (gateway/sched/scheduler.c) owns the queues; the backend owns its
 * execution resources (CPU worker threads, GPU streams, an agent's socket).
 *
 * Credits.  open sets be->credits: how many batches the backend can have in
 * flight at once (CPU: worker threads; GPU: streams; agent: its window).
 * The scheduler never has more than that many batches submitted and not yet
 * done; each carries batch->slot, a credit index 0..credits-1 no other batch
 * in flight holds, which a backend may use to index per-slot state (the CPU
 * backend's buffers and oneDNN stream).
 *
 * submit(be, b) must not block on execution: it starts b (or queues it to
 * the backend's own threads) and returns.  It may also complete b before it
 * returns (a trivial backend, or a CPU batch measured to take no longer than
 * its inline_us: a few microseconds, less than the hand-off would cost).  Either way it calls b->done(b) exactly once,
 * after it has written every slice's output rows and status, from any
 * thread.  done() returns the credit and lets the scheduler hand out the
 * next batch at once, from that thread.  After calling done() the backend
 * never touches b, its slices or their requests again: they may be freed
 * or reused before done() returns.
 *
 * A batch is a list of slices: row ranges of requests.  A request larger
 * than the batch limit runs as several slices in several batches, possibly
 * at once on different slots, so a backend writes only its slices' output
 * rows (and reads only their input rows), and reports through the slice and
 * the batch: struct infer_req is the scheduler's, opaque to backends.  A
 * slice whose request was cancelled or expired when the backend starts it
 * (be_slice_live false) need not run (its status is then ignored).
 *
 * Slice status: 0 (rows written), an HTTP status (the batch's errmsg says
 * why), or BE_RETRY: the backend could not run it here (connection lost,
 * device error) and nothing was written: the scheduler gives the slice back
 * to the router, which places it on another backend with what is left of
 * its deadline, or answers 503/504 (failover).
 *
 * States.  be->state (enum be_state) is atomic: the backend or a health
 * check changes it with be_state_set, the router reads it per request.
 * Only BE_UP takes new requests; DRAINING finishes what it holds; EJECTED
 * (health checks) and DOWN take nothing; batches in flight still complete.
 */
#ifndef INFERGW_BACKEND_H
#define INFERGW_BACKEND_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <time.h>

struct model;
struct infer_req;

/*
 * Rows [row0, row0 + rows) of a request, executed in one batch: all a
 * backend sees of the request.  The scheduler points input and output at
 * the slice's first row before it hands the batch over (submit, topup).
 */
struct infer_slice {
	struct infer_req *r;		/* the scheduler's; opaque here (cancel's key) */
	int row0, rows;
	const float *input;		/* rows x model->in_dim; may be unaligned (a view
					 * into the request body): backends memcpy it */
	float *output;			/* rows x model->out_dim: the backend writes these */
	int status;			/* set by the backend: 0, an HTTP status
					 * (then the batch's errmsg says why), or
					 * BE_RETRY (run it elsewhere) */
	uint64_t deadline_ns;		/* the request's deadline (be_now_ns clock);
					 * 0 = none.  A remote backend carries
					 * what is left of it to the agent */
};

/* be_slice_live - false when sl's request was cancelled or expired: the
 * backend need not run it (the scheduler implements this). */
bool be_slice_live(const struct infer_slice *sl);

/* be_now_ns - the clock of every timestamp in the contract (exec_start_ns,
 * exec_end_ns, deadlines): CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t be_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* be_strdupf - a malloc'd printf (NULL when out of memory): backends' error
 * messages (*err of open/load_model). */
char *be_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

enum backend_kind { BE_CPU, BE_GPU, BE_REMOTE, BE_FAKE };

/*
 * Kind cpu's weights_layout: how a dense layer's weights are laid out for
 * its oneDNN matmul.  PACKED: reordered once into the layout the library
 * prefers; PLAIN: nn.Linear's [out][in] array read in place; AUTO (the
 * default): both timed at load on this machine, at batch 1 and at the
 * largest bucket, and the faster kept, per layer.
 */
enum be_wlayout { BE_WLAYOUT_AUTO, BE_WLAYOUT_PACKED, BE_WLAYOUT_PLAIN };
/* be_wlayout_name - "auto", "packed" or "plain"; be_wlayout_parse - the
 * reverse: 0, or -EINVAL for any other string (*out untouched). */
const char *be_wlayout_name(enum be_wlayout l);
int be_wlayout_parse(const char *s, enum be_wlayout *out);

/* Batch sizes a backend prefers (be_caps), a config may name (be_batching). */
#define BE_MAX_PREFERRED 8

/* A slice status: retry this slice on another backend. */
#define BE_RETRY (-EAGAIN)

/* Kind remote's own keys (backends/remote/remote.c, docs/config.md). */
struct be_remote_conf {
	int window;			/* batches in flight; 0 = the agent's (hello) */
	int connect_timeout_ms;		/* resolve + connect + hello */
	int timeout_ms;			/* a batch (or pong) unanswered this long fails */
	int ping_ms;			/* health ping interval */
	int reconnect_ms, reconnect_max_ms;	/* backoff base and cap (full jitter) */
	char *pool;			/* ejection pool; NULL = the entry's name */
	int consecutive_failures;	/* failures in a row that eject */
	int ejection_ms, max_ejection_ms;	/* base period (x times ejected), cap */
	int max_ejection_percent;	/* of the pool ejected at once (at least one) */
	char *token_file;		/* the agents' token (secret.h): its file, resolved */
	char *token;			/* sent in the hello; NULL: none */
};

/* Kind gpu's own keys (backends/gpu/gpu.c, docs/config.md); streams are
 * backend_conf.slots, the device ordinal backend_conf.device. */
struct be_gpu_conf {
	bool tf32;			/* math: tf32 (TF32 tensor cores); false = FP32 */
	bool graphs;			/* CUDA Graphs per batch-size bucket; default true */
	int max_batch;			/* rows per batch; 0 = 256 */
};

/*
 * backends[].batching.MODEL: one (backend, model) pair's batching, over the
 * kind's defaults (be_caps.batching_defaults) and models[]'s settings.
 * Fields left unset: max_batch 0, n_preferred 0, delay_us -1.
 */
struct be_batching {
	char *model;
	int max_batch;
	int n_preferred;
	int preferred[BE_MAX_PREFERRED];
	int64_t delay_us;
};

struct backend_conf {
	char *name;
	enum backend_kind kind;
	int slots;		/* credits (CPU: worker threads); default 1 */
	int threads_per_slot;	/* CPU: OpenMP threads inside one batch; default 1 */
	double cost;		/* relative cost per request, for routing */
	char **models;		/* names of hosted models */
	int n_models;
	char *address;		/* remote: host:port */
	int device;		/* gpu: CUDA device ordinal */
	int nice;		/* worker threads' nice value (SCHED_BATCH); default 10 */
	enum be_wlayout weights_layout;	/* cpu: dense layers' weights; default AUTO */
	int inline_us;		/* cpu: run a batch on the submitting thread when its
				 * bucket's measured time is at most this; 0 = never */
	/* fake (test-only, backends/fake/fake.c) */
	int fake_latency_us;	/* per batch */
	int fake_fail_every;	/* every Nth batch fails retryably; 0 = never */
	int fake_down_after;	/* state DOWN after N batches; 0 = never */
	int fake_fp32_only;	/* refuse INT8 models at load, as a GPU backend does when cuBLASLt cannot run a layer */
	struct be_remote_conf remote;	/* remote: its keys (pool deep-copied) */
	struct be_gpu_conf gpu;		/* gpu: its keys */
	struct be_batching *batching;	/* per hosted model overrides (deep-copied) */
	int n_batching;
};

struct batch {
	const struct model *model;
	struct backend *be;
	int slot;			/* credit index, 0..be->credits-1 */
	int n_slices;
	struct infer_slice *slices;	/* each with rows >= 1 */
	int rows;			/* sum of slices[i].rows, <= the (backend, model) max_batch */
	uint64_t exec_start_ns, exec_end_ns;	/* set by the backend */
	char errmsg[160];		/* set by the backend when a slice fails */
	void (*done)(struct batch *b);
	/* topup - optional to call (NULL-safe: may be NULL): just before it
	 * starts b, a backend whose start lags its submit (a queue to its
	 * own threads) may let the scheduler add rows queued since the cut,
	 * up to the batch limit; returns b->rows.  slices/n_slices/rows
	 * change; nothing else does. */
	int (*topup)(struct batch *b);
	void *owner;			/* the scheduler's */
	struct batch *be_next;		/* the backend's link while it holds b */
};

/* What a backend can do with one model it loaded (ops->caps). */
struct be_caps {
	int max_batch;			/* rows per batch here; 0 = the model's */
	int n_preferred;		/* batch sizes that run best here */
	int preferred[BE_MAX_PREFERRED];
	uint32_t dtypes;		/* bit set of input datatypes (1 << model dtype); 0 = FP32 only */
	int n_variants;			/* compiled shapes/engines; informative */
	/* batching_defaults: this kind's max_batch, preferred sizes and
	 * delay_us replace models[]'s max_batch, preferred_batch_sizes and
	 * max_queue_delay_us on this backend (a GPU batches far larger, and
	 * waits far shorter, than a CPU-tuned model entry says); the
	 * backend's batching overrides still apply over them. */
	bool batching_defaults;
	uint32_t delay_us;		/* with batching_defaults: max queue delay */
};

/*
 * Load a backend reports beyond what the scheduler sees (ops->view): a
 * remote agent's queue holds other gateways' batches too.  The router
 * (runtime.c rt_view) adds queue_depth x service_ns / parallel to the
 * predicted wait of every request placed there.  The network round trip
 * is not added: a remote backend's batch time runs from send to answer,
 * so the learned service time already holds it (and rtt_ns is shown).
 */
struct be_load {
	int queue_depth;		/* batches waiting inside the backend that the
					 * scheduler cannot see (an agent's other clients) */
	uint64_t service_ns;		/* its own estimate of one batch's service time; 0 = none */
	int parallel;			/* batches it runs at once (an agent's threads); 0 = 1 */
	uint64_t rtt_ns;		/* network round trip (smoothed); 0 = none */
};

struct backend_stats {
	uint64_t batches;
	uint64_t rows;
	uint64_t busy_ns;
	uint64_t inline_batches;	/* run on the submitting thread (cpu inline_us) */
	bool up;
	/* health, for /admin/backends and /metrics (zero/empty: not applicable) */
	char reason[160];		/* why down or ejected */
	char address[128];		/* the peer (remote: the agent's host:port) */
	bool has_rtt;			/* rtt_ns is measured (remote) */
	uint64_t rtt_ns;		/* smoothed network round trip */
	uint64_t ejections;		/* times ejected (outlier detection) */
};

enum be_state { BE_DOWN = 0, BE_UP, BE_DRAINING, BE_EJECTED };

struct backend;

/*
 * Reads kind-specific keys of one backends[] entry for parse_conf; errors
 * come back with the config's FILE:LINE:COL.  Each returns 0, or -EINVAL
 * with *err set.  A missing key leaves *out unchanged.
 */
struct be_conf_src {
	void *ctx;
	int (*get_int)(void *ctx, const char *key, int64_t min, int64_t max, int64_t *out,
		       char **err);
	int (*get_str)(void *ctx, const char *key, char **out, char **err);
	int (*get_bool)(void *ctx, const char *key, bool *out, char **err);
	/* an error about the entry itself (a missing key) */
	int (*error)(void *ctx, char **err, const char *msg);
	/* a file name key: resolved against the config's directory into *path,
	 * the token it holds (secret.h) into *token, read now; both malloc'd */
	int (*get_secret)(void *ctx, const char *key, char **path, char **token, char **err);
};

struct backend_ops {
	const char *kind;
	/* open - prepare per-slot state from conf, set be->credits and state
	 * BE_UP. 0 or -errno with *err. */
	int (*open)(struct backend *be, const struct backend_conf *conf, char **err);
	/* load_model - make m executable here (e.g. create oneDNN primitives
	 * for each batch-size bucket, for every slot). 0 or -errno with *err. */
	int (*load_model)(struct backend *be, const struct model *m, char **err);
	/* unload_model - optional: forget m (no batch of m in flight). */
	void (*unload_model)(struct backend *be, const struct model *m);
	/* caps - optional: fill *out for m, loaded (zeroed first by the caller:
	 * what is left 0 means "the model's"). */
	void (*caps)(const struct backend *be, const struct model *m, struct be_caps *out);
	/* submit - start b (see the comment at the top). 0, or -errno when the
	 * batch could not be started (then done is NOT called). */
	int (*submit)(struct backend *be, struct batch *b);
	/* cancel - optional, best effort: r (in a batch this backend holds) was
	 * cancelled; its slices may be skipped.  done still comes, but never
	 * from inside cancel: it runs under the scheduler's lock. */
	void (*cancel)(struct backend *be, struct infer_req *r);
	/* view - optional: the load this backend reports. 0 or -errno. */
	int (*view)(const struct backend *be, struct be_load *out);
	/* alloc_input / free_input - optional: per-slot input buffers (a GPU
	 * backend decodes into pinned memory); NULL: malloc'd by the front. */
	void *(*alloc_input)(struct backend *be, size_t bytes);
	void (*free_input)(struct backend *be, void *p);
	/* parse_conf - optional: read this kind's own keys of one backends[]
	 * entry into conf.  0 or -EINVAL with *err. */
	int (*parse_conf)(struct backend_conf *conf, const struct be_conf_src *src, char **err);
	void (*stats)(const struct backend *be, struct backend_stats *out);
	/* close - no batch in flight; frees everything open made. */
	void (*close)(struct backend *be);
};

struct backend {
	const struct backend_ops *ops;
	struct backend_conf conf;	/* owned copy */
	void *priv;			/* the backend's own state */
	int credits;			/* batches in flight at most; set by open */
	_Atomic int state;		/* enum be_state */
};

static inline enum be_state be_state_get(const struct backend *be)
{
	return (enum be_state)atomic_load_explicit(&((struct backend *)be)->state,
						   memory_order_acquire);
}

/*
 * be_state_epoch - changes after every change of any backend's state
 * (be_state_set) and of anything else that decides which backends take new
 * requests (be_state_bump: the gateway's drain).  Read (acquire) before
 * looking at states and again later, the same value says none of them
 * changed in between: routing then reuses what it found (one admission
 * pass, runtime.h rt_admission).  Defined in registry.c.
 */
extern _Atomic uint64_t be_state_epoch;

/* be_state_bump - after changing what decides eligibility outside be->state. */
static inline void be_state_bump(void)
{
	atomic_fetch_add_explicit(&be_state_epoch, 1, memory_order_release);
}

static inline void be_state_set(struct backend *be, enum be_state st)
{
	atomic_store_explicit(&be->state, st, memory_order_release);
	be_state_bump();	/* after the store: whoever sees the new epoch sees st */
}

/* The kind registry: every backend kind the binary knows (backends/registry.c). */
struct be_kind {
	const char *name;
	enum backend_kind kind;
	const struct backend_ops *ops;	/* NULL: loaded (load), or not built in */
	/* load - optional: the ops from a plugin, loaded on first use (gpu),
	 * or NULL with *err; see be_kind_ops */
	const struct backend_ops *(*load)(char **err);
	const char *const *keys;	/* its own keys, NULL-terminated */
	int (*parse_conf)(struct backend_conf *conf, const struct be_conf_src *src, char **err);
	/*
	 * expand - optional: one config entry as the backends it stands for
	 * (remote: a DNS name with several addresses is several agents).
	 * 0 with *out = NULL when in stands for itself; else *out, *n (>= 1)
	 * malloc'd confs the caller owns (free each with the config's
	 * backend free, then the array).  -errno with *err on failure.
	 */
	int (*expand)(const struct backend_conf *in, struct backend_conf **out, int *n,
		      char **err);
};

/* be_kind_find - the registry entry called name, or NULL. */
const struct be_kind *be_kind_find(const char *name);
/* be_kind_of - the registry entry of kind k (never NULL for a valid k). */
const struct be_kind *be_kind_of(enum backend_kind k);
/* be_kind_list - "cpu, gpu, remote or fake", for messages. */
const char *be_kind_list(void);
/*
 * be_kind_ops - kind k's ops: built in, or loaded from its plugin the
 * first time (gpu: gpuload.c).  NULL with *err (malloc'd, what is missing
 * and where it was looked for) when the kind is not built into this binary
 * or its plugin does not load.
 */
const struct backend_ops *be_kind_ops(const struct be_kind *k, char **err);

extern const struct backend_ops be_cpu_ops;
/*
 * be_cpu_vnni - whether oneDNN runs INT8 on VNNI here (AVX512-VNNI or
 * AVX-VNNI): exact u8 x s8 dot products.  Without it the CPU backend feeds
 * an INT8 layer whose input may be negative as two u8 halves (docs/int8.md).
 * INFERGW_CPU_NO_VNNI=1 says no whatever the CPU (tests: the split path on
 * every machine).
 */
bool be_cpu_vnni(void);
extern const struct backend_ops be_fake_ops;
extern const struct backend_ops be_remote_ops;
/*
 * The GPU backend (backends/gpu/gpu.c, kind "gpu"): built only with CUDA
 * (make: USE_CUDA, HAVE_CUDA), into the plugin infergw-gpu.so (and the
 * tests that drive it directly), never into the programs: be_gpu_load
 * (gpuload.c) loads it and returns its be_gpu_ops.  BE_GPU_LOAD is what the
 * registry lists: be_gpu_load, or NULL (kind known, not built in).
 */
#ifdef USE_CUDA
extern const struct backend_ops be_gpu_ops;
/*
 * What a plugin was built with: the program refuses one whose stamp is not
 * its own, naming both, instead of calling into a stale one (an upgrade
 * that left the old infergw-gpu.so beside the new program, a copy from
 * another build).  version: the build's (infergw --version, make's
 * IGW_BUILD_VERSION); layout: BE_PLUGIN_LAYOUT, the sizes of what they
 * share.  The plugin exports its stamp as be_gpu_stamp.
 */
struct be_plugin_stamp {
	unsigned long long layout;
	const char *version;
};
#define BE_PLUGIN_LAYOUT                                                                     \
	((unsigned long long)sizeof(struct backend_ops) << 48 ^                               \
	 (unsigned long long)sizeof(struct backend) << 36 ^                                   \
	 (unsigned long long)sizeof(struct batch) << 26 ^                                     \
	 (unsigned long long)sizeof(struct infer_slice) << 18 ^                               \
	 (unsigned long long)sizeof(struct backend_conf) << 8 ^                               \
	 (unsigned long long)sizeof(struct be_caps) ^ (unsigned long long)sizeof(struct backend_stats) << 4)
extern const struct be_plugin_stamp be_gpu_stamp;
const struct backend_ops *be_gpu_load(char **err);
#define BE_GPU_LOAD be_gpu_load
#else
#define BE_GPU_LOAD NULL
#endif
/* be_gpu_parse_conf - kind gpu's keys (device, streams, math, graphs,
 * max_batch): built in every binary so a config stays valid without CUDA. */
int be_gpu_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err);

/*
 * Logging from backends in the gateway's format (log.h's levels: 0 debug,
 * 1 info, 2 warn, 3 error), without including the gateway: the gateway
 * installs its logger with be_log_set; before that (tests) lines go to
 * stderr with the same timestamp and level prefix.
 */
enum { BE_LOG_DEBUG, BE_LOG_INFO, BE_LOG_WARN, BE_LOG_ERROR };
void be_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* be_log_set - where be_log goes: fn(level, line without newline); NULL = stderr. */
void be_log_set(void (*fn)(int level, const char *line));

#endif
