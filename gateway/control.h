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

struct config;

struct ctl_opts {
	const char *config_path;
	int port_override;		/* -1 = none */
	int admin_override;		/* -2 = none */
};

/*
 * ctl_init - load the config and build and publish the first runtime, and
 * install the control thread as the admin handlers' job runner (api/admin.h,
 * adm_set_jobs: with 64 jobs pending, or an untrusted job with 16 untrusted
 * ones pending, a job is answered at once with 503; the inference port
 * cannot lock the admin out).
 * Returns 0 or -errno with *err.  On success *cfg_out is that config.
 */
int ctl_init(const struct ctl_opts *o, const struct config **cfg_out, char **err);
/*
 * ctl_run - the control loop: returns when SIGTERM or SIGINT arrives (the
 * signal number).  SIGHUP reloads.  The caller must have blocked SIGTERM,
 * SIGINT and SIGHUP in every thread.  From its return on, admin jobs (queued
 * or submitted while the loops drain) are answered 503 without running.
 */
int ctl_run(void);
/* ctl_shutdown - free what ctl_init made (after the runtime was released). */
void ctl_shutdown(void);

#endif
