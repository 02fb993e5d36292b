/*
 * conn.c - the agent's listener and connections (agt_srv_, agt_conn_):
 * framing, the protocol's messages, limits against hostile peers.
 *
 * Every peer may be hostile.  What one connection can hold:
 *   - input: at most one frame (<= --max-frame payload bytes): the read
 *     high watermark stops reading there, and a frame announcing more is
 *     refused (error 413) and the connection closed before it is read;
 *   - work: at most --max-inflight unanswered batches (each with its frame
 *     and its output rows); an infer beyond that gets a 429 result;
 *   - output: reads pause while more than --out-cap bytes of answers wait
 *     (a peer that does not read stops being read), and a peer that takes
 *     none of them for --frame-timeout-ms is closed;
 *   - time: a frame begun must be complete within --frame-timeout-ms;
 *     an idle connection (between frames) may stay: the gateway pings.
 *
 * What closes a connection (docs/agent-protocol.md section 7, "the stream
 * cannot be trusted"): a frame over the limit (413), a payload that is not
 * one whole msgpack map (400: agp_decode's -EBADMSG), a first frame that is
 * not a valid hello (400) or speaks another version (426); and the
 * timeouts above, the connection cap.  A well-formed map with bad fields
 * (wrong types, missing keys, an unknown or unexpected type) is answered
 * with an error frame (400, the decoder's message naming the field) and
 * the connection stays.  An infer that decodes but cannot run here
 * (unknown model, too many rows, wrong input size) gets a result with the
 * status.
 *
 * A connection is freed only from its own events (EOF, error, timeout) or
 * from a deferred event: anything that decides to close it while one of
 * its callbacks runs marks it closing and lets the loop finish the job,
 * so no callback ever runs on a freed connection.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "gateway/core/log.h"
#include "model/model.h"
#include "secret.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AGT_WARN_PER_SEC 20	/* rejection lines per second; the rest are counted */

struct agt_conn {
	struct agt_conn *prev, *next;	/* the server's connections */
	struct agt_srv *s;
	struct bufferevent *bev;
	struct event *tmo;		/* frame timeout; also the deferred free */
	char peer[64];
	uint64_t serial;
	bool hello;			/* the gateway's hello was taken */
	bool closing;			/* answers flush, then it is freed */
	bool tmo_armed;
	bool paused;			/* reads paused: output over the cap */
	int inflight;			/* unanswered batches */
	int qc;				/* of which queued at the exec */
	uint64_t frames;
	struct agt_job *jobs;		/* unanswered, newest first */
};

/* A per-second budget of log lines (agt_rate_ok). */
struct agt_rate {
	uint64_t sec;
	int n;				/* lines in second sec */
	unsigned long dropped;		/* left out since the last one printed */
};

struct agt_srv {
	struct event_base *base;
	const struct agt_opts *o;
	struct agt_exec *x;
	struct evconnlistener *lis;
	struct agt_conn *conns;
	int n_conns;
	uint64_t serial;
	struct agp_buf out;		/* encoding scratch, reused */
	struct agp_space sp;		/* decoding room, reused (one loop thread) */
	struct event *ev_drain;
	struct event *ev_accept;	/* resumes accepts after an accept error */
	bool draining;
	void (*drained)(void *arg);
	void *drained_arg;
	struct agt_rate warn;		/* rejection lines */
	struct agt_rate connlog;	/* connection open / closed lines */
	char *token;			/* --token-file's, as last read; NULL: none asked */
};

/* The exec's finish callback has no context argument: one server per process. */
static struct agt_srv *agt_srv_self;

static void agt_conn_free(struct agt_conn *c, const char *why);
static void agt_conn_process(struct agt_conn *c);

/* --------------------------------------------------------- logging ---- */

/* Quotes in peer-chosen text would end logfmt's msg="..." early. */
static void agt_sanitize(char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			*s = '\'';
}

/* True when one more line fits r's budget for this second (per_sec);
 * false counts it as dropped (the next line that fits says how many). */
static bool agt_rate_ok(struct agt_rate *r, int per_sec)
{
	uint64_t sec = be_now_ns() / 1000000000ull;

	if (sec != r->sec) {
		r->sec = sec;
		r->n = 0;
	}
	if (++r->n > per_sec) {
		r->dropped++;
		return false;
	}
	return true;
}

/* One more rejection line (AGT_WARN_PER_SEC a second). */
static bool agt_warn_ok(struct agt_srv *s)
{
	return agt_rate_ok(&s->warn, AGT_WARN_PER_SEC);
}

/* One more connection open / closed line (AGT_WARN_PER_SEC a second: a
 * peer connecting in a loop does not fill the log), with in more (len
 * bytes) " dropped_lines=N" when lines were left out since the last one. */
static bool agt_connlog_ok(struct agt_srv *s, char *more, size_t len)
{
	if (!agt_rate_ok(&s->connlog, AGT_WARN_PER_SEC))
		return false;
	more[0] = '\0';
	if (s->connlog.dropped)
		snprintf(more, len, " dropped_lines=%lu", s->connlog.dropped);
	s->connlog.dropped = 0;
	return true;
}

/* One warn line per rejection, rate-limited; the count of lines dropped
 * rides on the next one. */
static void agt_reject_log(struct agt_srv *s, const struct agt_conn *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (!agt_warn_ok(s))
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	agt_sanitize(why);
	if (s->warn.dropped) {
		log_warn("peer=%s conn=%llu msg=\"%s\" dropped_lines=%lu", c->peer,
			 (unsigned long long)c->serial, why, s->warn.dropped);
		s->warn.dropped = 0;
	} else {
		log_warn("peer=%s conn=%llu msg=\"%s\"", c->peer, (unsigned long long)c->serial,
			 why);
	}
}

/* ---------------------------------------------------------- output ---- */

/* Queue the frame encoded in s->out on c (then empty s->out); pause reads
 * when c's output is over the cap. */
static void agt_conn_send(struct agt_conn *c)
{
	struct agt_srv *s = c->s;
	struct evbuffer *ob = bufferevent_get_output(c->bev);

	if (s->out.len && evbuffer_add(ob, s->out.p, s->out.len))
		log_error("peer=%s msg=\"out of memory: an answer was dropped\"", c->peer);
	s->out.len = 0;
	if (!c->paused && evbuffer_get_length(ob) > s->o->out_cap) {
		c->paused = true;
		bufferevent_disable(c->bev, EV_READ);
		log_debug("peer=%s msg=\"reads paused: the peer does not take its answers\"",
			  c->peer);
	}
}

/* An error frame {id, status, msg}. */
static void agt_conn_error(struct agt_conn *c, uint64_t id, int32_t status, const char *msg)
{
	if (agp_put_error(&c->s->out, id, status, msg))
		return;
	agt_conn_send(c);
}

/*
 * Close c once its output is flushed: no more reads; the write callback
 * (low watermark 0) or, with nothing to flush, the timer event frees it.
 * A peer that never reads is bounded by the write timeout.
 */
static void agt_conn_close(struct agt_conn *c)
{
	struct timeval now = { 0, 0 };

	if (c->closing)
		return;
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
		evtimer_add(c->tmo, &now);
}

/* Refuse with an error frame, log, close after the flush. */
static void agt_conn_refuse(struct agt_conn *c, uint64_t id, int32_t status, const char *msg)
{
	agt_reject_log(c->s, c, "%d %s; closing", status, msg);
	agt_conn_error(c, id, status, msg);
	agt_conn_close(c);
}

static struct agp_load agt_conn_load(const struct agt_conn *c)
{
	return agt_exec_load(c->s->x, c->qc);
}

/* A result for infer m that will not run: status for the batch and every
 * slice, no output. */
static void agt_conn_refuse_infer(struct agt_conn *c, const struct agp_msg *m, int32_t status,
				  const char *fmt, ...)
{
	struct agp_load load = agt_conn_load(c);
	char msg[AGP_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agt_reject_log(c->s, c, "infer id=%llu: %d %s", (unsigned long long)m->id, status, msg);
	for (int i = 0; i < m->n_slices; i++)
		m->slices[i].status = status;
	if (agp_put_result(&c->s->out, m->id, status, msg, m->slices, m->n_slices, NULL, 0, 0, 0,
			   &load))
		return;
	agt_conn_send(c);
}

void agt_srv_finish(struct agt_job *j)
{
	struct agt_srv *s = agt_srv_self;
	struct agt_conn *c = j->conn;
	struct agt_job **pp;
	struct agp_load load;
	uint64_t queue_us, exec_us;
	size_t out_bytes;

	if (!c)
		goto out_free;
	for (pp = &c->jobs; *pp; pp = &(*pp)->cnext)
		if (*pp == j) {
			*pp = j->cnext;
			break;
		}
	c->inflight--;
	load = agt_conn_load(c);
	queue_us = j->start_ns > j->recv_ns ? (j->start_ns - j->recv_ns) / 1000 : 0;
	exec_us = j->end_ns > j->start_ns ? (j->end_ns - j->start_ns) / 1000 : 0;
	out_bytes = (size_t)j->model->out_dim * sizeof(float);	/* one row's, as proto wants */
	if (agp_put_result(&s->out, j->id, j->status, j->msg[0] ? j->msg : NULL, j->ps,
			   j->n_slices, j->status ? NULL : j->out, j->status ? 0 : out_bytes,
			   queue_us, exec_us, &load))
		log_error("peer=%s id=%llu msg=\"out of memory: result not sent\"", c->peer,
			  (unsigned long long)j->id);
	else
		agt_conn_send(c);
out_free:
	agt_job_free(j);
	if (s && s->draining)
		event_active(s->ev_drain, EV_READ, 0);
}

/* ------------------------------------------------------- messages ---- */

/*
 * With --token-file, the token a gateway's hello must carry: the file read
 * again now, so that a rotated Secret applies to new connections; when it
 * no longer holds one, the last good token stays (and the log says why).
 */
static const char *agt_srv_token(struct agt_srv *s)
{
	const char *why;
	char *fresh;

	if (!s->token)
		return NULL;
	if (!be_secret_read(s->o->token_file, &fresh, &why)) {
		be_secret_free(s->token);
		s->token = fresh;
	} else if (agt_warn_ok(s)) {
		log_error("token_file=%s msg=\"cannot read the token again (%s): the last one "
			  "read stays in force\"", s->o->token_file, why);
	}
	return s->token;
}

/* The hello m carries the token (when one is asked); else c was refused
 * 401 and closes: before the agent's hello, so its models stay unsaid. */
static bool agt_conn_authorized(struct agt_conn *c, const struct agp_msg *m)
{
	const char *want = agt_srv_token(c->s);

	if (!want)
		return true;
	if (!m->has_token) {
		agt_conn_refuse(c, 0, 401, "hello without a token: this agent asks for one "
				"(backends[].token_file)");
		return false;
	}
	if (!be_secret_accepts(want, m->token, m->token_len)) {
		agt_conn_refuse(c, 0, 401, "wrong token in the hello (backends[].token_file vs "
				"the agent's --token-file)");
		return false;
	}
	return true;
}

static void agt_conn_hello(struct agt_conn *c, const struct agp_msg *m)
{
	const struct agp_model *models;
	struct agp_load load = agt_conn_load(c);
	char sw[64], msg[AGP_MSG_MAX];
	int n = agt_exec_models(c->s->x, &models);

	if (m->version != AGP_VERSION) {
		snprintf(msg, sizeof(msg), "protocol version %u not supported; this agent "
			 "speaks %d", m->version, AGP_VERSION);
		agt_conn_refuse(c, 0, 426, msg);
		return;
	}
	if (!agt_conn_authorized(c, m))
		return;
	c->hello = true;
	snprintf(sw, sizeof(sw), "%s %s", AGT_SW_NAME, infergw_version);
	if (agp_put_hello(&c->s->out, AGP_VERSION, sw, (uint32_t)c->s->o->max_inflight,
			  (uint32_t)agt_exec_threads(c->s->x), models, n, &load)) {
		agt_conn_refuse(c, 0, 503, "agent out of memory");
		return;
	}
	agt_conn_send(c);
	log_debug("peer=%s conn=%llu gateway=\"%s\" msg=\"hello\"", c->peer,
		  (unsigned long long)c->serial, m->sw);
}

static struct agt_job *agt_conn_find(const struct agt_conn *c, uint64_t id)
{
	for (struct agt_job *j = c->jobs; j; j = j->cnext)
		if (j->id == id)
			return j;
	return NULL;
}

/* An infer: checked, then queued with payload (owned from here on). */
static void agt_conn_infer(struct agt_conn *c, const struct agp_msg *m, uint8_t *payload)
{
	struct agt_srv *s = c->s;
	uint64_t recv = be_now_ns();
	const struct model *md = agt_exec_find(s->x, m->model);
	struct agt_job *j;
	char err[256];

	if (!md) {
		agt_conn_refuse_infer(c, m, 404, "unknown model \"%s\"", m->model);
		goto out_free;
	}
	if (m->n_slices < 1) {
		agt_conn_refuse_infer(c, m, 400, "infer: slices: expected at least one slice");
		goto out_free;
	}
	if (m->rows > (uint32_t)md->max_batch_size) {
		agt_conn_refuse_infer(c, m, 400, "infer: slices: %u rows in all, over model %s's "
				      "max_batch %d", m->rows, md->name, md->max_batch_size);
		goto out_free;
	}
	if (agp_check_data(m, (uint32_t)md->in_dim, err, sizeof(err))) {
		agt_conn_refuse_infer(c, m, 400, "infer: %s", err);
		goto out_free;
	}
	if (s->draining) {
		agt_conn_refuse_infer(c, m, 503, "agent is shutting down");
		goto out_free;
	}
	if (c->inflight >= s->o->max_inflight) {
		agt_conn_refuse_infer(c, m, 429, "window full: %d batches in flight on this "
				      "connection (the agent's window)", c->inflight);
		goto out_free;
	}
	if (agt_conn_find(c, m->id)) {
		agt_reject_log(s, c, "infer id=%llu already in flight", (unsigned long long)m->id);
		snprintf(err, sizeof(err), "infer: id %llu is already in flight on this connection",
			 (unsigned long long)m->id);
		agt_conn_error(c, m->id, 400, err);
		goto out_free;
	}
	j = agt_job_new(m, md, payload, recv);	/* owns payload, even when it fails */
	if (!j) {
		agt_conn_refuse_infer(c, m, 503, "agent out of memory");
		return;
	}
	j->conn = c;
	j->cnext = c->jobs;
	c->jobs = j;
	c->inflight++;
	agt_exec_submit(s->x, j, &c->qc);	/* may answer it at once */
	return;

out_free:
	free(payload);
}

static void agt_conn_cancel(struct agt_conn *c, const struct agp_msg *m)
{
	struct agt_job *j = agt_conn_find(c, m->id);

	if (!j) {	/* answered already, or never sent: nothing to do */
		log_debug("peer=%s id=%llu msg=\"cancel of no batch in flight\"", c->peer,
			  (unsigned long long)m->id);
		return;
	}
	/* queued: answered 499 now (finish unlinks it); running: finishes */
	agt_exec_cancel(c->s->x, j, true);
}

/* One whole frame's payload (owned). */
static void agt_conn_frame(struct agt_conn *c, uint8_t *payload, size_t len)
{
	struct agp_msg m;
	char err[AGP_MSG_MAX - 32], msg[AGP_MSG_MAX];
	struct agp_load load;
	int rc;

	memset(&m, 0, sizeof(m));
	c->frames++;
	rc = agp_decode(payload, len, &c->s->sp, &m, err, sizeof(err));
	if (!c->hello) {
		/* nothing else makes sense before the versions agree */
		if (rc)
			snprintf(msg, sizeof(msg), "expected hello first: %s", err);
		else if (m.type != AGP_HELLO)
			snprintf(msg, sizeof(msg), "expected hello first, got %s",
				 agp_type_name(m.type));
		if (rc || m.type != AGP_HELLO)
			agt_conn_refuse(c, 0, 400, msg);
		else
			agt_conn_hello(c, &m);
		goto out_free;
	}
	if (rc == -EBADMSG) {
		/* not one whole msgpack map: the peer's stream cannot be trusted
		 * (docs/agent-protocol.md section 7) */
		agt_conn_refuse(c, 0, 400, err);
		goto out_free;
	}
	if (rc) {	/* a well-formed map with bad fields: answer, keep going */
		agt_reject_log(c->s, c, "400 %s", err);
		agt_conn_error(c, m.id, 400, err);
		goto out_free;
	}
	switch (m.type) {
	case AGP_INFER:
		agt_conn_infer(c, &m, payload);
		return;
	case AGP_PING:
		load = agt_conn_load(c);
		if (!agp_put_pong(&c->s->out, m.id, &load))
			agt_conn_send(c);
		break;
	case AGP_CANCEL:
		agt_conn_cancel(c, &m);
		break;
	case AGP_HELLO:
		agt_reject_log(c->s, c, "400 second hello");
		agt_conn_error(c, 0, 400, "hello: already done on this connection");
		break;
	default:
		snprintf(msg, sizeof(msg), "unexpected message type \"%s\": an agent takes hello, "
			 "infer, ping and cancel", agp_type_name(m.type));
		agt_reject_log(c->s, c, "400 %s", msg);
		agt_conn_error(c, m.id, 400, msg);
		break;
	}
out_free:
	free(payload);
}

/* ------------------------------------------------------ connection ---- */

/* Frames in c's input, as many as are whole (none while paused or closing). */
static void agt_conn_process(struct agt_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct agt_opts *o = c->s->o;
	uint8_t hdr[AGP_HDR_BYTES], *payload;
	uint32_t flen;
	char msg[AGP_MSG_MAX];

	while (!c->closing && !c->paused) {
		size_t have = evbuffer_get_length(in);

		if (have < AGP_HDR_BYTES)
			break;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		flen = agp_frame_len(hdr);
		if (flen > o->max_frame) {
			snprintf(msg, sizeof(msg), "frame of %u bytes over this agent's limit of %u "
				 "(--max-frame)", flen, o->max_frame);
			agt_conn_refuse(c, 0, 413, msg);
			break;
		}
		if (have < AGP_HDR_BYTES + (size_t)flen)
			break;
		payload = malloc(flen ? flen : 1);
		if (!payload) {
			agt_conn_refuse(c, 0, 503, "agent out of memory");
			break;
		}
		evbuffer_drain(in, AGP_HDR_BYTES);
		evbuffer_remove(in, payload, flen);
		if (c->tmo_armed) {	/* this frame made it in time */
			evtimer_del(c->tmo);
			c->tmo_armed = false;
		}
		agt_conn_frame(c, payload, flen);
	}
	if (c->closing)
		return;
	if (evbuffer_get_length(in) && !c->tmo_armed && !c->paused) {
		struct timeval tv = { o->frame_timeout_ms / 1000,
				      (o->frame_timeout_ms % 1000) * 1000 };

		evtimer_add(c->tmo, &tv);	/* a frame has begun: it must end in time */
		c->tmo_armed = true;
	}
}

static void agt_conn_on_read(struct bufferevent *bev, void *arg)
{
	agt_conn_process(arg);
}

/* Output drained to the low watermark: resume reads, or finish a close. */
static void agt_conn_on_write(struct bufferevent *bev, void *arg)
{
	struct agt_conn *c = arg;

	if (c->closing) {
		if (!evbuffer_get_length(bufferevent_get_output(bev)))
			agt_conn_free(c, "closed after its last answer");
		return;
	}
	if (c->paused) {
		c->paused = false;
		bufferevent_enable(bev, EV_READ);
		agt_conn_process(c);	/* frames that waited in the input */
	}
}

static void agt_conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct agt_conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		agt_reject_log(c->s, c, "the peer took no output for %d ms; closing",
			       c->s->o->frame_timeout_ms);
		agt_conn_free(c, "write timeout");
	} else if (what & BEV_EVENT_EOF) {
		agt_conn_free(c, "peer closed");
	} else if (what & BEV_EVENT_ERROR) {
		agt_conn_free(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
}

/* The timer: a frame that took too long, or a deferred free. */
static void agt_conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agt_conn *c = arg;

	if (c->closing) {
		agt_conn_free(c, "closed");
		return;
	}
	c->tmo_armed = false;
	agt_reject_log(c->s, c, "frame incomplete after %d ms (%zu bytes of it); closing",
		       c->s->o->frame_timeout_ms, evbuffer_get_length(bufferevent_get_input(c->bev)));
	agt_conn_free(c, "frame timeout");
}

/* Free c now: its queued batches are dropped, its running ones orphaned. */
static void agt_conn_free(struct agt_conn *c, const char *why)
{
	struct agt_srv *s = c->s;
	struct agt_job *j, *next;
	char more[40];

	for (j = c->jobs; j; j = next) {
		next = j->cnext;
		j->conn = NULL;
		j->cnext = NULL;
		agt_exec_cancel(s->x, j, false);	/* frees a queued one */
	}
	c->jobs = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	if (agt_connlog_ok(s, more, sizeof(more)))
		log_info("peer=%s conn=%llu frames=%llu reason=\"%s\"%s msg=\"connection closed\"",
			 c->peer, (unsigned long long)c->serial, (unsigned long long)c->frames, why,
			 more);
	bufferevent_free(c->bev);
	event_free(c->tmo);
	free(c);
	if (s->draining)
		event_active(s->ev_drain, EV_READ, 0);
}

static void agt_peer_name(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "?");
	}
}

/* Over the connection cap: one error frame, best effort, then close. */
static void agt_srv_turn_away(struct agt_srv *s, evutil_socket_t fd, const char *peer)
{
	char msg[AGP_MSG_MAX];
	struct agp_buf b = { 0 };

	snprintf(msg, sizeof(msg), "connection limit reached (%d, --max-connections)",
		 s->o->max_conns);
	if (!agp_put_error(&b, 0, 503, msg)) {
		ssize_t n = send(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);

		(void)n;
	}
	agp_buf_free(&b);
	evutil_closesocket(fd);
	if (agt_warn_ok(s))
		log_warn("peer=%s msg=\"%s; refused\"", peer, msg);
}

static void agt_srv_on_accept(struct evconnlistener *lis, evutil_socket_t fd,
			      struct sockaddr *sa, int salen, void *arg)
{
	struct agt_srv *s = arg;
	struct agt_conn *c;
	char peer[64], more[40];
	int one = 1;

	agt_peer_name(sa, peer, sizeof(peer));
	if (s->draining) {
		evutil_closesocket(fd);
		return;
	}
	if (s->n_conns >= s->o->max_conns) {
		agt_srv_turn_away(s, fd, peer);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out_close;
	c->s = s;
	c->serial = ++s->serial;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto out_free_conn;
	c->tmo = evtimer_new(s->base, agt_conn_on_timer, c);
	if (!c->tmo)
		goto out_free_bev;
	bufferevent_setcb(c->bev, agt_conn_on_read, agt_conn_on_write, agt_conn_on_event, c);
	/* reads stop with one whole frame buffered; the write callback runs
	 * when the output has drained to half the cap (resume reads) */
	bufferevent_setwatermark(c->bev, EV_READ, 0, (size_t)s->o->max_frame + AGP_HDR_BYTES);
	bufferevent_setwatermark(c->bev, EV_WRITE, s->o->out_cap / 2, 0);
	{
		struct timeval wt = { s->o->frame_timeout_ms / 1000,
				      (s->o->frame_timeout_ms % 1000) * 1000 };

		bufferevent_set_timeouts(c->bev, NULL, &wt);
	}
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE))
		goto out_free_tmo;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	if (agt_connlog_ok(s, more, sizeof(more)))
		log_info("peer=%s conn=%llu conns=%d%s msg=\"connection open\"", c->peer,
			 (unsigned long long)c->serial, s->n_conns, more);
	return;

out_free_tmo:
	event_free(c->tmo);
out_free_bev:
	bufferevent_free(c->bev);	/* closes fd */
	free(c);
	return;
out_free_conn:
	free(c);
out_close:
	evutil_closesocket(fd);
	log_error("peer=%s msg=\"out of memory: connection refused\"", peer);
}

static void agt_srv_on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct agt_srv *s = arg;

	if (!s->draining)
		evconnlistener_enable(s->lis);
}

/*
 * EMFILE and friends: the pending connection stays in the backlog, so the
 * listener would wake again at once; pause it a moment and keep serving
 * the connections we have.
 */
static void agt_srv_on_accept_error(struct evconnlistener *lis, void *arg)
{
	struct agt_srv *s = arg;
	struct timeval pause = { 0, 100 * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	if (agt_warn_ok(s))
		log_warn("msg=\"accept failed: %s; pausing accepts 100 ms\"",
			 evutil_socket_error_to_string(err));
	evconnlistener_disable(lis);
	evtimer_add(s->ev_accept, &pause);
}

/* ---------------------------------------------------------- server ---- */

static void agt_srv_on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct agt_srv *s = arg;
	struct agt_conn *c, *next;
	void (*done)(void *);

	if (!s->draining)
		return;
	if (agt_exec_busy(s->x) == 0)
		for (c = s->conns; c; c = next) {
			next = c->next;
			agt_conn_close(c);	/* frees later, from its own events */
		}
	if (s->n_conns == 0 && s->drained) {
		done = s->drained;
		s->drained = NULL;
		done(s->drained_arg);
	}
}

struct agt_srv *agt_srv_start(void *base, const struct agt_opts *o, struct agt_exec *x,
			      int *port, char **err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct agt_srv *s;
	const char *why;
	char portstr[16];
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		goto out_oom;
	s->base = base;
	s->o = o;
	s->x = x;
	s->sp.max_models = AGP_MAX_MODELS;
	s->sp.models = calloc(AGP_MAX_MODELS, sizeof(*s->sp.models));
	s->sp.max_slices = AGP_MAX_SLICES;
	s->sp.slices = calloc(AGP_MAX_SLICES, sizeof(*s->sp.slices));
	s->ev_drain = event_new(base, -1, 0, agt_srv_on_drain, s);
	s->ev_accept = evtimer_new(base, agt_srv_on_accept_resume, s);
	if (!s->sp.models || !s->sp.slices || !s->ev_drain || !s->ev_accept)
		goto out_oom_free;
	if (o->token_file && be_secret_read(o->token_file, &s->token, &why)) {
		*err = be_strdupf("--token-file %s: %s", o->token_file, why);
		goto out_free;
	}
	snprintf(portstr, sizeof(portstr), "%d", o->port);
	rc = getaddrinfo(o->host, portstr, &hints, &ai);
	if (rc) {
		*err = be_strdupf("--listen %s:%d: %s", o->host, o->port, gai_strerror(rc));
		goto out_free;
	}
	s->lis = evconnlistener_new_bind(base, agt_srv_on_accept, s,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
					 ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (!s->lis) {
		*err = be_strdupf("--listen %s:%d: cannot listen: %s", o->host, o->port,
				  strerror(errno));
		goto out_free;
	}
	evconnlistener_set_error_cb(s->lis, agt_srv_on_accept_error);
	*port = o->port;
	if (!getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&ss, &sl)) {
		if (ss.ss_family == AF_INET)
			*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	agt_srv_self = s;
	return s;

out_oom_free:
	*err = be_strdupf("agent: out of memory");
out_free:
	agt_srv_free(s);
	return NULL;
out_oom:
	*err = be_strdupf("agent: out of memory");
	return NULL;
}

void agt_srv_drain(struct agt_srv *s, void (*done)(void *arg), void *arg)
{
	s->draining = true;
	s->drained = done;
	s->drained_arg = arg;
	if (s->lis)
		evconnlistener_disable(s->lis);
	event_active(s->ev_drain, EV_READ, 0);
}

void agt_srv_free(struct agt_srv *s)
{
	if (!s)
		return;
	s->draining = false;	/* no drain callbacks from here on */
	while (s->conns)
		agt_conn_free(s->conns, "agent stopping");
	if (s->lis)
		evconnlistener_free(s->lis);
	if (s->ev_drain)
		event_free(s->ev_drain);
	if (s->ev_accept)
		event_free(s->ev_accept);
	agp_buf_free(&s->out);
	free(s->sp.models);
	free(s->sp.slices);
	be_secret_free(s->token);
	if (agt_srv_self == s)
		agt_srv_self = NULL;
	free(s);
}
