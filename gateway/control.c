/* control.c - see control.h. */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "access.h"
#include "admin.h"
#include "config.h"
#include "kserve.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "repository.h"
#include "runtime.h"
#include "util.h"
#include "model/ytree.h"

#define CTL_MAX_UNTRUSTED 16	/* pending jobs from the inference port */
#define CTL_STOPPING_MSG "the gateway is shutting down: not run; retry against another replica"

/* A load's Triton config, applied to every config read until the next load. */
struct ctl_override {
	char *name;
	struct repo_override ov;
};

/* An admin job (api/admin.h) on its way: posted back to its loop when done. */
struct ctl_job {
	struct loop_task task;
	struct adm_job *job;
};

static struct {
	struct ctl_opts o;
	int sfd, efd, ifd, wd;
	char *watch_dir, *watch_name;
	pthread_mutex_t lock;
	struct ctl_job *jobs[64];	/* FIFO ring, guarded by lock */
	int head, n;
	int n_untrusted;		/* of n: from the inference port */
	bool stopping;			/* ctl_run returned: jobs answered 503 (lock) */
	/* What the repository API changed, kept across reloads (control thread only). */
	char **unloaded;		/* models unloaded through the API */
	int n_unloaded;
	struct ctl_override *overrides;
	int n_overrides;
	uint64_t watch_due_ns;		/* debounced file-change reload */
	uint64_t resolve_due_ns;	/* next DNS check (reload.resolve_ms); 0 = off */
} ctl = { .sfd = -1, .efd = -1, .ifd = -1, .wd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

/* Read the config file and apply the command line and API overrides. */
static struct config *ctl_load_config(char **err)
{
	struct config *cfg = cfg_load(ctl.o.config_path, err);

	if (!cfg)
		return NULL;
	if (ctl.o.port_override >= 0)
		cfg->listen.port = ctl.o.port_override;
	if (ctl.o.admin_override >= -1)
		cfg->admin.port = ctl.o.admin_override;
	for (int i = 0; i < ctl.n_unloaded; i++)
		cfg_drop_model(cfg, ctl.unloaded[i]);
	for (int i = 0; i < ctl.n_overrides; i++) {
		const struct ctl_override *o = &ctl.overrides[i];
		char msg[640];

		if (repo_apply(cfg, o->name, &o->ov, msg, sizeof(msg))) {
			*err = yt_strdupf("model \"%s\": the config of a repository load: %s", o->name, msg);
			cfg_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

/* Names of what rt carried over from prev (1) or made new (0). */
static void ctl_report_parts(json_t *out, const struct runtime *rt, const struct runtime *prev)
{
	json_t *mc = json_array(), *ml = json_array(), *bc = json_array(), *bo = json_array();

	for (int i = 0; i < rt->n_models; i++) {
		bool carried = false;

		for (int k = 0; prev && k < prev->n_models; k++)
			carried |= prev->models[k] == rt->models[i];
		json_array_append_new(carried ? mc : ml, ks_json_string(rt->models[i]->name));
	}
	for (int i = 0; i < rt->n_backends; i++) {
		bool carried = false;

		for (int k = 0; prev && k < prev->n_backends; k++)
			carried |= prev->backends[k] == rt->backends[i];
		json_array_append_new(carried ? bc : bo, ks_json_string(rt->backends[i]->be.conf.name));
	}
	json_object_set_new(out, "models_carried", mc);
	json_object_set_new(out, "models_loaded", ml);
	json_object_set_new(out, "backends_carried", bc);
	json_object_set_new(out, "backends_opened", bo);
}

/*
 * Build and publish a runtime from the file.  Returns an HTTP status and a
 * JSON body describing the result (malloc'd); on success the body also has
 * "config_applied": applied, when not NULL (taken either way).
 */
static int ctl_reload(const char *why, json_t *applied, char **body)
{
	uint64_t t0 = now_ns();
	struct runtime *prev = rt_current(), *rt;
	json_t *out = json_object();
	char *err = NULL, *restart = NULL;
	struct config *cfg = ctl_load_config(&err);
	int status = 200;

	rt = cfg ? rt_build(cfg, prev, &err) : NULL;
	if (!rt) {
		cfg_free(cfg);
		met_reload(false);
		log_error("trigger=%s msg=\"reload failed; still serving the previous configuration: %s\"",
			  why, err);
		json_object_set_new(out, "result", json_string("failure"));
		json_object_set_new(out, "error", ks_json_string(err));
		status = 400;
		goto out;
	}
	if (prev)
		restart = cfg_restart_diff(prev->cfg, rt->cfg);
	ctl_report_parts(out, rt, prev);
	json_object_set_new(out, "result", json_string("success"));
	if (applied)
		json_object_set_new(out, "config_applied", json_incref(applied));
	json_object_set_new(out, "generation", json_integer((json_int_t)rt->generation));
	json_object_set_new(out, "restart_required", restart ? json_string(restart) : json_null());
	json_object_set_new(out, "duration_ms", json_real((now_ns() - t0) / 1e6));
	log_set_level(rt->cfg->log.level);
	access_enable(rt->cfg->log.access);
	rt_publish(rt);
	met_reload(true);
	log_info("trigger=%s generation=%llu duration_ms=%.2f msg=\"configuration reloaded\"%s%s%s",
		 why, (unsigned long long)rt->generation, (now_ns() - t0) / 1e6,
		 restart ? " restart_required=\"" : "", restart ? restart : "", restart ? "\"" : "");
out:
	rt_put(prev);
	json_decref(applied);
	*body = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(out);
	free(err);
	free(restart);
	return status;
}

static bool ctl_is_unloaded(const char *name)
{
	for (int i = 0; i < ctl.n_unloaded; i++)
		if (!strcmp(ctl.unloaded[i], name))
			return true;
	return false;
}

/* Mark name unloaded (or not) for every later config read.  0 or -ENOMEM. */
static int ctl_set_unloaded(const char *name, bool unloaded)
{
	char **grown, *dup;

	for (int i = 0; i < ctl.n_unloaded; i++)
		if (!strcmp(ctl.unloaded[i], name)) {
			if (!unloaded) {
				free(ctl.unloaded[i]);
				ctl.unloaded[i] = ctl.unloaded[--ctl.n_unloaded];
			}
			return 0;
		}
	if (!unloaded)
		return 0;
	grown = realloc(ctl.unloaded, (ctl.n_unloaded + 1) * sizeof(*grown));
	if (grown)
		ctl.unloaded = grown;
	dup = strdup(name);
	if (!grown || !dup) {
		free(dup);
		return -ENOMEM;
	}
	ctl.unloaded[ctl.n_unloaded++] = dup;
	return 0;
}

static struct ctl_override *ctl_override_find(const char *name)
{
	for (int i = 0; i < ctl.n_overrides; i++)
		if (!strcmp(ctl.overrides[i].name, name))
			return &ctl.overrides[i];
	return NULL;
}

/* Keep ov as name's override (NULL: drop it).  0 or -ENOMEM. */
static int ctl_override_set(const char *name, const struct repo_override *ov)
{
	struct ctl_override *o = ctl_override_find(name), *grown;
	char *dup;

	if (o && ov) {
		o->ov = *ov;
	} else if (o) {
		free(o->name);
		*o = ctl.overrides[--ctl.n_overrides];
	} else if (ov) {
		grown = realloc(ctl.overrides, (ctl.n_overrides + 1) * sizeof(*grown));
		if (grown)
			ctl.overrides = grown;
		dup = strdup(name);
		if (!grown || !dup) {
			free(dup);
			return -ENOMEM;
		}
		ctl.overrides[ctl.n_overrides++] = (struct ctl_override){ dup, *ov };
	}
	return 0;
}

/* Is name a model of the repository (the config file's models)? */
static bool ctl_in_repository(const char *name)
{
	char *err = NULL;
	struct config *cfg = cfg_load(ctl.o.config_path, &err);
	bool found = cfg && cfg_find_model(cfg, name);

	free(err);
	cfg_free(cfg);
	return found;
}

/* {"error": message}, compact, any bytes in it escaped (malloc'd; NULL without memory). */
static char *ctl_error_body(const char *fmt, ...)
{
	json_t *o;
	char *msg = NULL, *body;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)	/* whole: a long config path or error */
		msg = NULL;
	va_end(ap);
	o = msg ? json_pack("{s:o?}", "error", ks_json_string(msg)) : NULL;
	free(msg);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return body;
}

/*
 * Repository index: every model of the config file, loaded or not (only
 * the ready ones with ready_only).  Here, on the control thread, because
 * it reads and parses the file (which may be large): never on an event loop.
 */
static int ctl_index(bool ready_only, char **body)
{
	char *err = NULL;
	struct config *file = cfg_load(ctl.o.config_path, &err);
	struct runtime *rt = rt_current();
	json_t *arr = json_array();

	if (!file) {
		*body = ctl_error_body("cannot read the repository: %s", err);
		free(err);
		json_decref(arr);
		rt_put(rt);
		return 500;
	}
	for (int i = 0; i < file->n_models; i++) {
		const char *name = file->models[i].name;
		struct model *m = rt ? rt_find_model(rt, name) : NULL;
		bool ready = m && rt_model_ready(rt, m);

		if (ready_only && !ready)
			continue;
		json_array_append_new(arr, json_pack("{s:o, s:s, s:s, s:s}", "name",
						     ks_json_string(name), "version", m ? "1" : "",
						     "state", ready ? "READY" : "UNAVAILABLE",
						     "reason", m ? "" : "unloaded"));
	}
	cfg_free(file);
	rt_put(rt);
	*body = json_dumps(arr, JSON_INDENT(2));
	json_decref(arr);
	return 200;
}

static void ctl_job_error(struct adm_job *j, int status, const char *msg)
{
	j->status = status;
	j->body = ctl_error_body("%s", msg);
}

/*
 * Load or unload j->arg: unloaded models and load overrides are kept for
 * every later reload; a load or unload whose reload fails changes neither.
 */
static void ctl_load_unload(struct adm_job *j)
{
	bool load = j->op == ADM_LOAD_MODEL, has_config = false, was_unloaded;
	struct ctl_override *o = ctl_override_find(j->arg);
	struct repo_override ov, prev = o ? o->ov : (struct repo_override){ 0 };
	bool had_override = o != NULL;
	char msg[768];
	int rc;

	rc = load ? repo_parse_load(j->arg, j->req, j->req_len, &ov, &has_config, msg, sizeof(msg))
		  : repo_parse_unload(j->req, j->req_len, msg, sizeof(msg));
	if (rc) {
		ctl_job_error(j, 400, msg);
		return;
	}
	if (!ctl_in_repository(j->arg)) {
		j->status = 404;
		j->body = ctl_error_body("model \"%s\" is not in the model repository (the models of %s)",
					 j->arg, ctl.o.config_path);
		return;
	}
	was_unloaded = ctl_is_unloaded(j->arg);
	/* A load without config goes back to the file's settings, as Triton's
	 * goes back to config.pbtxt; an unload keeps the override. */
	if (ctl_set_unloaded(j->arg, !load) ||
	    (load && ctl_override_set(j->arg, has_config ? &ov : NULL))) {
		ctl_set_unloaded(j->arg, was_unloaded);
		ctl_job_error(j, 503, "gateway out of memory");
		return;
	}
	j->status = ctl_reload(load ? "repository-load" : "repository-unload",
			       has_config ? repo_override_json(&ov) : NULL, &j->body);
	if (j->status != 200) {
		ctl_set_unloaded(j->arg, was_unloaded);
		ctl_override_set(j->arg, had_override ? &prev : NULL);
	}
}

/* On the requester's loop: hand the answered job back. */
static void ctl_job_posted(struct loop_task *t)
{
	struct ctl_job *cj = (struct ctl_job *)t;
	struct adm_job *j = cj->job;

	free(cj);
	j->done(j);
}

static void ctl_run_job(struct ctl_job *cj)
{
	struct adm_job *j = cj->job;
	char msg[768];
	bool ready_only;

	if (j->op == ADM_INDEX) {
		if (repo_parse_index(j->req, j->req_len, &ready_only, msg, sizeof(msg)))
			ctl_job_error(j, 400, msg);
		else
			j->status = ctl_index(ready_only, &j->body);
	} else if (j->op == ADM_RELOAD) {
		j->status = ctl_reload("admin", NULL, &j->body);
	} else {
		ctl_load_unload(j);
	}
	loop_post_task(j->loop, &cj->task);
}

/* adm_jobs.submit: run job on the control thread, then post it back to
 * job->loop (at once with 503 when too many are pending). */
static int ctl_submit(struct adm_job *job)
{
	struct ctl_job *cj = calloc(1, sizeof(*cj));
	uint64_t one = 1;

	if (!cj)
		return -ENOMEM;
	cj->task.fn = ctl_job_posted;
	cj->job = job;
	pthread_mutex_lock(&ctl.lock);
	if (ctl.stopping || ctl.n == (int)ARRAY_SIZE(ctl.jobs) ||
	    (job->untrusted && ctl.n_untrusted >= CTL_MAX_UNTRUSTED)) {
		bool stopping = ctl.stopping, all = ctl.n == (int)ARRAY_SIZE(ctl.jobs);

		pthread_mutex_unlock(&ctl.lock);
		job->status = 503;
		if (stopping)
			job->body = ctl_error_body(CTL_STOPPING_MSG);
		else if (all)
			job->body = ctl_error_body("too many admin jobs pending (%d); retry later",
						   (int)ARRAY_SIZE(ctl.jobs));
		else
			job->body = ctl_error_body("too many repository jobs pending from the "
						   "inference port (%d); retry later",
						   CTL_MAX_UNTRUSTED);
		loop_post_task(job->loop, &cj->task);
		return 0;
	}
	ctl.jobs[(ctl.head + ctl.n++) % ARRAY_SIZE(ctl.jobs)] = cj;
	ctl.n_untrusted += job->untrusted;
	pthread_mutex_unlock(&ctl.lock);
	if (write(ctl.efd, &one, sizeof(one)) < 0)
		log_warn("msg=\"cannot wake the control thread\"");
	return 0;
}

/* The oldest queued job, taken off the queue, or NULL; with stop, no more
 * are queued from now on (ctl_submit answers them). */
static struct ctl_job *ctl_take_job(bool stop)
{
	struct ctl_job *cj = NULL;

	pthread_mutex_lock(&ctl.lock);
	ctl.stopping |= stop;
	if (ctl.n) {
		cj = ctl.jobs[ctl.head];
		ctl.head = (ctl.head + 1) % ARRAY_SIZE(ctl.jobs);
		ctl.n--;
		ctl.n_untrusted -= cj->job->untrusted;
	}
	pthread_mutex_unlock(&ctl.lock);
	return cj;
}

static void ctl_drain_jobs(void)
{
	struct ctl_job *cj;
	uint64_t v;

	if (read(ctl.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	while ((cj = ctl_take_job(false)))
		ctl_run_job(cj);
}

/*
 * Watch the config file's directory: editors replace files by rename, and
 * a Kubernetes ConfigMap swaps the "..data" symlink, so events on either
 * name count.
 */
static void ctl_watch_start(void)
{
	char *a = strdup(ctl.o.config_path), *b = strdup(ctl.o.config_path);

	ctl.watch_dir = strdup(dirname(a));
	ctl.watch_name = strdup(basename(b));
	free(a);
	free(b);
	ctl.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ctl.ifd >= 0)
		ctl.wd = inotify_add_watch(ctl.ifd, ctl.watch_dir, IN_CLOSE_WRITE | IN_MOVED_TO |
					   IN_CREATE | IN_DELETE | IN_ATTRIB);
	if (ctl.ifd < 0 || ctl.wd < 0)
		log_warn("dir=%s msg=\"cannot watch the config directory: %s\"", ctl.watch_dir,
			 strerror(errno));
	else
		log_info("dir=%s file=%s msg=\"watching the configuration for changes\"",
			 ctl.watch_dir, ctl.watch_name);
}

static void ctl_watch_read(uint32_t debounce_ms)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(ctl.ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->len && (!strcmp(ev->name, ctl.watch_name) || !strcmp(ev->name, "..data")))
				ctl.watch_due_ns = now_ns() + (uint64_t)debounce_ms * 1000000;
			p += sizeof(*ev) + ev->len;
		}
	}
}

static bool ctl_streq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/*
 * Do the remote backends' DNS names stand for other agents than in the
 * running snapshot (a Kubernetes headless Service whose pods came or
 * went)?  Reads the file again with the API's changes and expands it as a
 * reload would: true when the expanded backends' names or addresses
 * differ.  false when the file does not load now: the file watcher or the
 * next reload reports that, not a timer every few seconds.
 */
static bool ctl_agents_changed(const struct runtime *rt)
{
	char *err = NULL;
	struct config *cfg = ctl_load_config(&err);
	bool changed = false;

	if (!cfg || cfg_expand_backends(cfg, &err)) {
		log_debug("msg=\"DNS check skipped: the configuration does not load: %s\"", err);
		goto out;
	}
	changed = cfg->n_backends != rt->cfg->n_backends;
	for (int i = 0; !changed && i < cfg->n_backends; i++)
		changed = !ctl_streq(cfg->backends[i].name, rt->cfg->backends[i].name) ||
			  !ctl_streq(cfg->backends[i].address, rt->cfg->backends[i].address);
out:
	cfg_free(cfg);
	free(err);
	return changed;
}

/* reload.resolve_ms: when due, reload if the agents behind the DNS names
 * changed; returns the poll timeout (ms) until the next check, or -1. */
static int ctl_resolve_tick(void)
{
	struct runtime *rt = rt_current();
	uint64_t every = rt ? (uint64_t)rt->cfg->reload.resolve_ms * 1000000 : 0, now = now_ns();
	bool changed = false;

	if (!every) {
		ctl.resolve_due_ns = 0;
		rt_put(rt);
		return -1;
	}
	if (!ctl.resolve_due_ns || ctl.resolve_due_ns > now + every)
		ctl.resolve_due_ns = now + every;
	if (now >= ctl.resolve_due_ns) {
		changed = ctl_agents_changed(rt);
		ctl.resolve_due_ns = now + every;
	}
	rt_put(rt);
	if (changed) {
		char *body = NULL;

		ctl_reload("dns", NULL, &body);
		free(body);
	}
	return (int)((ctl.resolve_due_ns - now) / 1000000) + 1;
}

static int ctl_signalfd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int ctl_init(const struct ctl_opts *o, const struct config **cfg_out, char **err)
{
	struct config *cfg;
	struct runtime *rt;

	static const struct adm_jobs jobs = { ctl_submit };

	ctl.o = *o;
	adm_set_jobs(&jobs);
	cfg = ctl_load_config(err);
	if (!cfg)
		return -EINVAL;
	log_set_level(cfg->log.level);
	rt = rt_build(cfg, NULL, err);
	if (!rt) {
		cfg_free(cfg);
		return -EINVAL;
	}
	rt_publish(rt);
	*cfg_out = rt->cfg;
	ctl.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ctl.sfd = ctl_signalfd();
	if (rt->cfg->reload.watch)
		ctl_watch_start();
	return 0;
}

/* One signal; returns it when it ends the loop, else 0. */
static int ctl_on_signal(void)
{
	struct signalfd_siginfo si;
	char *body = NULL;

	if (read(ctl.sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	if (si.ssi_signo != SIGHUP)
		return (int)si.ssi_signo;
	ctl_reload("SIGHUP", NULL, &body);
	free(body);
	return 0;
}

/*
 * The control thread stops taking jobs: those queued (a signal and a job can
 * wake the same poll, and the signal goes first) and any submitted later,
 * while the loops drain, are answered 503 on their loops at once, rather
 * than holding their streams open until shutdown_grace_ms and leaking.
 */
static void ctl_refuse_jobs(void)
{
	struct ctl_job *cj;

	while ((cj = ctl_take_job(true))) {
		ctl_job_error(cj->job, 503, CTL_STOPPING_MSG);
		loop_post_task(cj->job->loop, &cj->task);
	}
}

/* ctl_run's loop: the signal that ends it. */
static int ctl_run_until_signal(void)
{
	for (;;) {
		struct pollfd p[3] = { { ctl.sfd, POLLIN, 0 }, { ctl.efd, POLLIN, 0 },
				       { ctl.ifd, POLLIN, 0 } };
		int timeout = ctl_resolve_tick(), sig;

		if (ctl.watch_due_ns) {
			uint64_t now = now_ns();
			int w = ctl.watch_due_ns > now ? (int)((ctl.watch_due_ns - now) / 1000000) + 1 : 0;

			timeout = timeout < 0 || w < timeout ? w : timeout;
		}
		if (poll(p, ctl.ifd >= 0 ? 3 : 2, timeout) < 0 && errno != EINTR)
			return SIGTERM;
		if ((p[0].revents & POLLIN) && (sig = ctl_on_signal()))
			return sig;
		if (p[1].revents & POLLIN)
			ctl_drain_jobs();
		if (ctl.ifd >= 0 && (p[2].revents & POLLIN)) {
			struct runtime *rt = rt_current();

			ctl_watch_read(rt ? rt->cfg->reload.debounce_ms : 200);
			rt_put(rt);
		}
		if (ctl.watch_due_ns && now_ns() >= ctl.watch_due_ns) {
			char *body = NULL;

			ctl.watch_due_ns = 0;
			ctl_reload("file-watch", NULL, &body);
			free(body);
		}
	}
}

int ctl_run(void)
{
	int sig = ctl_run_until_signal();

	ctl_refuse_jobs();
	return sig;
}

void ctl_shutdown(void)
{
	for (int i = 0; i < ctl.n_unloaded; i++)
		free(ctl.unloaded[i]);
	free(ctl.unloaded);
	ctl.unloaded = NULL;
	ctl.n_unloaded = 0;
	for (int i = 0; i < ctl.n_overrides; i++)
		free(ctl.overrides[i].name);
	free(ctl.overrides);
	ctl.overrides = NULL;
	ctl.n_overrides = 0;
	if (ctl.ifd >= 0)
		close(ctl.ifd);
	if (ctl.efd >= 0)
		close(ctl.efd);
	if (ctl.sfd >= 0)
		close(ctl.sfd);
	free(ctl.watch_dir);
	free(ctl.watch_name);
}
