/*
 * run.c - infergw-agent's life (agt_run): start, serve, drain on a signal.
 *
 * SIGTERM/SIGINT: stop accepting, let queued and running batches finish
 * and their results go out, close the connections, exit 0.  A second
 * signal, or --grace-ms without the drain finishing, ends the loop at once
 * (what is still running is waited for, its answers dropped).
 */
#include "agent.h"
#include "gateway/core/log.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct agt_life {
	struct event_base *base;
	struct agt_srv *srv;
	struct event *grace;
	struct timeval grace_tv;	/* --grace-ms */
	int signals;
};

static void agt_on_drained(void *arg)
{
	struct agt_life *l = arg;

	log_info("msg=\"drained: every batch answered, connections closed\"");
	event_base_loopbreak(l->base);
}

static void agt_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct agt_life *l = arg;

	log_warn("msg=\"grace period over: stopping with work still in flight\"");
	event_base_loopbreak(l->base);
}

static void agt_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct agt_life *l = arg;

	if (l->signals++) {
		log_warn("signal=%s msg=\"second signal: stopping now\"",
			 sig == SIGTERM ? "SIGTERM" : "SIGINT");
		event_base_loopbreak(l->base);
		return;
	}
	log_info("signal=%s msg=\"shutting down: finishing queued and running batches\"",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	evtimer_add(l->grace, &l->grace_tv);
	agt_srv_drain(l->srv, agt_on_drained, l);
}

int agt_run(const struct agt_opts *o)
{
	struct agt_life l = { 0 };
	struct event *ev_term = NULL, *ev_int = NULL;
	struct agt_exec *x = NULL;
	char *err = NULL;
	int port = 0, rc = 1;

	l.grace_tv = (struct timeval){ o->grace_ms / 1000, (o->grace_ms % 1000) * 1000 };
	log_set_level((enum log_level)o->log_level);
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads()) {	/* done() activates an event from a worker */
		log_error("msg=\"cannot start: libevent without pthreads support\"");
		return 1;
	}
	l.base = event_base_new();
	if (!l.base) {
		log_error("msg=\"cannot start: no event base\"");
		return 1;
	}
	x = agt_exec_open(l.base, o->models_dir, o, agt_srv_finish, &err);
	if (!x)
		goto out_err;
	l.srv = agt_srv_start(l.base, o, x, &port, &err);
	if (!l.srv)
		goto out_err;
	ev_term = evsignal_new(l.base, SIGTERM, agt_on_signal, &l);
	ev_int = evsignal_new(l.base, SIGINT, agt_on_signal, &l);
	l.grace = evtimer_new(l.base, agt_on_grace, &l);
	if (!ev_term || !ev_int || !l.grace || evsignal_add(ev_term, NULL) ||
	    evsignal_add(ev_int, NULL)) {
		err = be_strdupf("cannot set up signal handling");
		goto out_err;
	}
	{
		const struct agp_model *models;
		int n = agt_exec_models(x, &models);
		char names[512] = "";
		size_t off = 0;

		for (int i = 0; i < n && off < sizeof(names); i++)
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
						i ? "," : "", models[i].name);
		log_info("listen=%s:%d models=%s threads=%d window=%d max_frame=%u "
			 "max_connections=%d auth=%s version=%s protocol=%d msg=\"infergw-agent "
			 "ready\"", o->host, port, names, o->threads, o->max_inflight, o->max_frame,
			 o->max_conns, o->token_file ? "token" : "none", infergw_version,
			 AGP_VERSION);
	}
	event_base_dispatch(l.base);
	if (l.signals == 0)
		log_warn("msg=\"event loop ended without a signal\"");
	rc = 0;
	goto out_free;

out_err:
	log_error("msg=\"cannot start: %s\"", err ? err : "unknown error");
	free(err);
out_free:
	agt_srv_free(l.srv);		/* queued batches dropped, running ones orphaned */
	agt_exec_close(x);		/* waits for the running ones */
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	if (l.grace)
		event_free(l.grace);
	event_base_free(l.base);
	if (!rc)
		log_info("msg=\"stopped\"");
	return rc;
}
