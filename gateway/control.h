/*
 * control.h - the control thread (the process's main thread): signals,
 * configuration reloads, the config file watch, and admin jobs that must
 * not run on an event loop (loading models, opening backends).
 *
 * Reload: read and validate the file, build a new runtime beside the
 * current one (unchanged models and backends carried over), publish it.
 * A failed reload keeps the current runtime serving.
 */
#ifndef INFERGW_CONTROL_H
#define INFERGW_CONTROL_H

#include <stdbool.h>

#include "loop.h"

struct config;

struct ctl_opts {
	const char *config_path;
	int port_override;		/* -1 = none */
	int admin_override;		/* -2 = none */
};

enum ctl_op { CTL_RELOAD, CTL_LOAD_MODEL, CTL_UNLOAD_MODEL, CTL_INDEX };

/* An admin request handed from a loop to the control thread and back. */
struct ctl_job {
	struct loop_task task;		/* posted back to `loop` when done */
	struct loop *loop;
	enum ctl_op op;
	char arg[256];			/* model name for load/unload */
	const char *req;		/* the request body: a view the requester keeps */
	size_t req_len;			/* unchanged until the job is posted back */
	bool untrusted;			/* from the inference port: a bounded share of the queue */
	int status;			/* HTTP status of the answer */
	char *body;			/* JSON answer, malloc'd (NULL: out of memory) */
	void *ctx;			/* the requester's */
};

/*
 * ctl_init - load the config and build and publish the first runtime.
 * Returns 0 or -errno with *err.  On success *cfg_out is that config.
 */
int ctl_init(const struct ctl_opts *o, const struct config **cfg_out, char **err);
/* ctl_submit - from any thread: run job on the control thread, then post
 * job->task to job->loop.  With 64 jobs pending, or an untrusted job with 16
 * untrusted ones pending, the job is answered at once with 503 (the poster
 * adds Retry-After): the inference port cannot lock the admin out. */
void ctl_submit(struct ctl_job *job);
/*
 * ctl_run - the control loop: returns when SIGTERM or SIGINT arrives (the
 * signal number).  SIGHUP reloads.  The caller must have blocked SIGTERM,
 * SIGINT and SIGHUP in every thread.
 */
int ctl_run(void);
/* ctl_shutdown - free what ctl_init made (after the runtime was released). */
void ctl_shutdown(void);

#endif
