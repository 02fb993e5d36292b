/*
 * remote.c - the `remote` backend: one infergw-agent over TCP (remote.h,
 * proto.h, docs/architecture.md "The remote backend").
 *
 * Threads.  Each backend has one I/O thread running its own libevent
 * event_base: the connection, the timers (batch timeouts, pings, pong
 * timeouts, reconnects, the end of an ejection) and every done().  The
 * scheduler's threads only call submit, which encodes the infer frame on
 * the submitting thread, puts the credit's slot on a mutex-guarded list
 * and wakes the I/O thread through an eventfd: submit never blocks on the
 * network.  Connecting (resolve, connect, hello) is synchronous within
 * connect_timeout_ms: at open on the opening thread, then on the I/O
 * thread, which has nothing else to do while there is no connection.
 *
 * Credits.  One slot per credit (batch->slot indexes it): the batch, its
 * encoded frame, its id and timer.  credits = the window key, else the
 * agent's window from its hello (at most 64); 4 when unreachable at open.
 * A reconnect may meet a smaller window: batches above it wait in a local
 * FIFO until answers free the window.
 *
 * Every batch gets exactly one done(), from the I/O thread (close: from
 * the closing thread, after the I/O thread ended): answered, timed out
 * (BE_RETRY, a cancel goes to the agent, a late answer is ignored),
 * connection lost (BE_RETRY), or handed over while not connected
 * (BE_RETRY).  done() is called with no lock of ours held.
 *
 * State (be->state): EJECTED while outlier ejection (eject.h) holds the
 * agent out, else UP when connected with a hello whose models match, else
 * DOWN with the reason kept for /admin/backends.  Every change is logged.
 */
#define _GNU_SOURCE
#include "remote/remote.h"
#include "secret.h"

#include "model/model.h"
#include "remote/eject.h"
#include "remote/proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define RMT_MAX_CREDITS 64
#define RMT_DOWN_CREDITS 4		/* credits when the agent is unreachable at open */
#define RMT_MAX_HELLO (1u << 20)	/* payload bytes of the agent's hello */
#define RMT_MAX_FRAME AGP_MAX_FRAME_DEFAULT
#define RMT_MODELS_MAX AGP_MAX_MODELS

/* One credit: the batch it carries while we hold it. */
struct rmt_slot {
	struct be_rmt *r;
	struct batch *b;		/* NULL: free */
	uint64_t id;
	struct agp_buf frame;		/* the infer frame (submit encodes it) */
	struct agp_slice *sl;		/* encode scratch, cap_sl entries */
	const void **rows;
	int cap_sl;
	uint64_t expire_ns;		/* timeout_ms after submit, or the earliest deadline */
	bool by_deadline;		/* expire_ns is a slice's deadline */
	bool queued;			/* in the wait queue (the window is full) */
	bool sent;			/* on the wire: counts in the agent's window */
	_Atomic bool cancel;		/* ops->cancel: every slice dead, tell the agent */
	struct event *timer;
	struct rmt_slot *next;		/* submitted list / wait queue */
};

struct be_rmt {
	struct backend *be;
	struct be_remote_conf rc;	/* effective (defaults applied) */
	char host[256], port[8];
	bool addr_ok;
	int credits;

	pthread_t thread;
	bool thread_on;
	struct event_base *base;
	int wake_fd;
	struct event *wake_ev, *reconnect_ev, *ping_ev, *pong_ev, *eject_ev;

	pthread_mutex_t mu;		/* guards the fields down to "I/O thread only" */
	struct rmt_slot *submitted;	/* from submit, newest first */
	bool stop;
	char reason[160];		/* why down or ejected */
	const struct model **models;	/* loaded here (load_model) */
	int n_models, cap_models;
	struct agp_model *agent_models;	/* the agent's, from its last hello */
	int n_agent_models;
	bool have_hello;

	/* I/O thread only (and open before it starts, close after it ended) */
	struct bufferevent *bev;
	bool connected;			/* hello done, models match */
	struct rmt_slot *wq_head, *wq_tail;	/* not sent yet: the window is full */
	int on_wire, window;
	int attempt;			/* reconnect backoff exponent */
	uint64_t rng;
	uint64_t ping_id, ping_sent_ns;
	bool ping_out;
	struct be_rmt_ej ej;
	struct be_rmt_pool *pool;
	bool skip_logged;		/* the pool-cap skip was logged */
	struct agp_space sp;		/* decode room */
	char why[160];			/* scratch for messages */

	_Atomic uint64_t next_id;
	/* published for view and stats */
	_Atomic uint32_t q, qc, svc_us, threads;
	_Atomic uint64_t rtt_ns, batches, rows, busy_ns, ejections;

	struct rmt_slot slots[];
};

static const char *rmt_name(const struct be_rmt *r)
{
	return r->be->conf.name ? r->be->conf.name : "remote";
}

static const char *rmt_addr(const struct be_rmt *r)
{
	return r->be->conf.address ? r->be->conf.address : "?";
}

static const char *rmt_state_name(enum be_state s)
{
	static const char *const names[] = { "down", "up", "draining", "ejected" };

	return (unsigned)s < 4 ? names[s] : "?";
}

static struct timeval rmt_tv(uint64_t ns)
{
	return (struct timeval){ .tv_sec = (time_t)(ns / 1000000000ull),
				 .tv_usec = (suseconds_t)(ns % 1000000000ull / 1000) };
}

static void rmt_timer_in(struct event *ev, uint64_t ns)
{
	struct timeval tv = rmt_tv(ns);

	evtimer_add(ev, &tv);
}

static uint64_t rmt_rand(struct be_rmt *r)
{
	/* xorshift64: jitter only, no need for better */
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

static void rmt_set_reason(struct be_rmt *r, const char *why)
{
	pthread_mutex_lock(&r->mu);
	snprintf(r->reason, sizeof(r->reason), "%s", why);
	pthread_mutex_unlock(&r->mu);
}

/* Publish the state the connection and ejection make; log a change. */
static void rmt_update_state(struct be_rmt *r, const char *why)
{
	enum be_state from = be_state_get(r->be), to;

	to = be_rmt_ej_is_ejected(&r->ej) ? BE_EJECTED : r->connected ? BE_UP : BE_DOWN;
	if (to != BE_UP && why)
		rmt_set_reason(r, why);
	if (to == BE_UP)
		rmt_set_reason(r, "");
	if (from == to)
		return;
	be_state_set(r->be, to);
	be_log(to == BE_UP ? BE_LOG_INFO : BE_LOG_WARN,
	       "backend=%s agent=%s from=%s to=%s reason=\"%s\"", rmt_name(r), rmt_addr(r),
	       rmt_state_name(from), rmt_state_name(to), why ? why : "");
}

/* ---- ejection ---- */

static void rmt_probe(struct be_rmt *r);

static void rmt_ej_event(struct be_rmt *r, enum be_rmt_ej_event ev, const char *why)
{
	uint64_t now = be_now_ns();
	char msg[200];

	if (ev != BE_RMT_EJ_SKIP && ev != BE_RMT_EJ_NONE)
		r->skip_logged = false;
	switch (ev) {
	case BE_RMT_EJ_EJECT:
	case BE_RMT_EJ_REEJECT:
		atomic_store(&r->ejections, r->ej.ejections);
		snprintf(msg, sizeof(msg), "%s after %s; ejected for %llu ms",
			 ev == BE_RMT_EJ_EJECT ? "ejected" : "probe failed",
			 why, (unsigned long long)((r->ej.until_ns - now + 999999) / 1000000));
		evtimer_del(r->eject_ev);
		rmt_timer_in(r->eject_ev, r->ej.until_ns > now ? r->ej.until_ns - now : 0);
		rmt_update_state(r, msg);
		break;
	case BE_RMT_EJ_SKIP:
		if (r->skip_logged)
			break;	/* once per run of skips: reconnects retry often */
		r->skip_logged = true;
		be_log(BE_LOG_WARN, "backend=%s agent=%s pool=%s msg=\"not ejected: the pool is "
		       "at max_ejection_percent (%d%%)\" reason=\"%s\"", rmt_name(r), rmt_addr(r),
		       r->rc.pool ? r->rc.pool : rmt_name(r), r->rc.max_ejection_percent, why);
		break;
	case BE_RMT_EJ_READMIT:
		rmt_update_state(r, "readmitted after a probe");
		break;
	default:
		break;
	}
}

static void rmt_failure(struct be_rmt *r, const char *why)
{
	rmt_ej_event(r, be_rmt_ej_failure(&r->ej, be_now_ns()), why);
}

static void rmt_success(struct be_rmt *r)
{
	rmt_ej_event(r, be_rmt_ej_success(&r->ej, be_now_ns()), "success");
}

static void rmt_eject_cb(evutil_socket_t fd, short what, void *arg)
{
	struct be_rmt *r = arg;
	uint64_t now = be_now_ns();

	if (be_rmt_ej_tick(&r->ej, now) == BE_RMT_EJ_PROBE) {
		be_log(BE_LOG_INFO, "backend=%s agent=%s msg=\"ejection period over: probing\"",
		       rmt_name(r), rmt_addr(r));
		rmt_probe(r);
	} else if (r->ej.ejected && !r->ej.probing && now < r->ej.until_ns) {
		/* a timer may fire a little early (clock granularity): again */
		rmt_timer_in(r->eject_ev, r->ej.until_ns - now + 1000000);
	}
}

/* ---- completing batches ---- */

static void rmt_wq_remove(struct be_rmt *r, struct rmt_slot *s)
{
	struct rmt_slot **pp, *prev = NULL;

	for (pp = &r->wq_head; *pp && *pp != s; pp = &(*pp)->next)
		prev = *pp;
	if (!*pp)
		return;
	*pp = s->next;
	if (r->wq_tail == s)
		r->wq_tail = prev;
	s->next = NULL;
	s->queued = false;
}

/* Take s's batch off its slot (the slot is free again) with every slice
 * at status st and errmsg; the caller calls done() later, lock-free. */
static struct batch *rmt_take(struct rmt_slot *s, int st, const char *errmsg)
{
	struct batch *b = s->b;

	evtimer_del(s->timer);
	if (s->sent)
		s->r->on_wire--;
	if (s->queued)
		rmt_wq_remove(s->r, s);
	pthread_mutex_lock(&s->r->mu);	/* ops->cancel reads b under it */
	s->b = NULL;
	pthread_mutex_unlock(&s->r->mu);
	s->sent = false;
	atomic_store(&s->cancel, false);
	if (st != 0) {
		for (int i = 0; i < b->n_slices; i++)
			b->slices[i].status = st;
		snprintf(b->errmsg, sizeof(b->errmsg), "%s", errmsg);
	}
	if (!b->exec_start_ns)
		b->exec_start_ns = be_now_ns();
	if (!b->exec_end_ns)
		b->exec_end_ns = be_now_ns();
	return b;
}


/* done() for a list linked through be_next: no lock held. */
static void rmt_done_list(struct batch *list)
{
	while (list) {
		struct batch *b = list;

		list = b->be_next;
		b->be_next = NULL;
		b->done(b);
	}
}

/* ---- the connection ---- */

static void rmt_schedule_reconnect(struct be_rmt *r, bool now)
{
	uint64_t cap = (uint64_t)r->rc.reconnect_max_ms * 1000000ull;
	uint64_t d = (uint64_t)r->rc.reconnect_ms * 1000000ull;

	for (int i = 0; i < r->attempt && d < cap; i++)
		d *= 2;		/* no shift overflow whatever the attempt */
	if (d > cap)
		d = cap;
	if (r->attempt < 64)
		r->attempt++;
	/* full jitter (AWS's "exponential backoff and jitter"): uniform in [0, d] */
	d = now ? 0 : rmt_rand(r) % (d + 1);
	evtimer_del(r->reconnect_ev);
	rmt_timer_in(r->reconnect_ev, d);
}

/*
 * The connection is gone (or unusable): every batch we hold goes back
 * BE_RETRY, the state goes DOWN with why, a reconnect is scheduled.
 * count: a failure for ejection.
 */
static void rmt_lost(struct be_rmt *r, const char *why, bool count)
{
	struct batch *list = NULL;
	char msg[sizeof(((struct batch *)0)->errmsg)];

	if (r->bev) {
		bufferevent_free(r->bev);
		r->bev = NULL;
	}
	r->connected = false;
	r->ping_out = false;
	evtimer_del(r->pong_ev);
	evtimer_del(r->ping_ev);
	snprintf(msg, sizeof(msg), "agent %s (backend %s): %.100s", rmt_addr(r), rmt_name(r), why);
	for (int i = 0; i < r->credits; i++) {
		struct rmt_slot *s = &r->slots[i];
		struct batch *b;

		if (!s->b || (!s->sent && !s->queued))
			continue;	/* free, or still on the submitted list: the wake fails it */
		b = rmt_take(s, BE_RETRY, msg);
		b->be_next = list;
		list = b;
	}
	r->wq_head = r->wq_tail = NULL;
	if (count)
		rmt_failure(r, why);
	rmt_update_state(r, why);
	rmt_schedule_reconnect(r, false);
	rmt_done_list(list);
}

/* Write as many waiting frames as the agent's window takes. */
static void rmt_pump(struct be_rmt *r)
{
	while (r->connected && r->wq_head && r->on_wire < r->window) {
		struct rmt_slot *s = r->wq_head;

		r->wq_head = s->next;
		if (!r->wq_head)
			r->wq_tail = NULL;
		s->next = NULL;
		s->queued = false;
		if (bufferevent_write(r->bev, s->frame.p, s->frame.len)) {
			rmt_lost(r, "write: out of memory", false);
			return;
		}
		s->sent = true;
		r->on_wire++;
		s->b->exec_start_ns = be_now_ns();
	}
}

static int rmt_send_small(struct be_rmt *r, int (*put)(struct agp_buf *, uint64_t), uint64_t id)
{
	struct agp_buf f = { 0 };
	int rc = put(&f, id);

	if (rc == 0 && bufferevent_write(r->bev, f.p, f.len))
		rc = -ENOMEM;
	agp_buf_free(&f);
	return rc;
}

static void rmt_load(struct be_rmt *r, const struct agp_msg *m)
{
	if (!m->has_load)
		return;
	atomic_store(&r->q, m->load.q);
	atomic_store(&r->qc, m->load.qc);
	atomic_store(&r->svc_us, m->load.svc_us);
}

/* The slot whose batch id is on the wire.  `sent` first: it is the I/O
 * thread's own, while a free slot's b and id are being written by a
 * submitting thread. */
static struct rmt_slot *rmt_find(struct be_rmt *r, uint64_t id)
{
	for (int i = 0; i < r->credits; i++)
		if (r->slots[i].sent && r->slots[i].id == id)
			return &r->slots[i];
	return NULL;
}

/* Fill b's slices from a result m that matches it (rmt_result_ok). */
static void rmt_apply(struct be_rmt *r, struct batch *b, const struct agp_msg *m)
{
	const struct model *mod = b->model;
	const float *out = (const float *)m->data;
	size_t off = 0;
	bool late = false, odd = false;

	for (int i = 0; i < b->n_slices; i++) {
		struct infer_slice *sl = &b->slices[i];
		int st = m->slices[i].status;
		size_t n = (size_t)sl->rows * (size_t)mod->out_dim;

		if (st == 0 && sl->output)
			memcpy(sl->output, (const uint8_t *)out + off * sizeof(float),
			       n * sizeof(float));	/* data may be unaligned */
		off += n;
		sl->status = st == 0 || st == 499 ? 0 : st == 504 ? 504 : 502;
		late |= st == 504;
		odd |= st != 0 && st != 499 && st != 504;
	}
	if (odd)
		snprintf(b->errmsg, sizeof(b->errmsg), "agent %s (backend %s) answered a slice "
			 "with an unexpected status", rmt_addr(r), rmt_name(r));
	else if (late)
		snprintf(b->errmsg, sizeof(b->errmsg), "deadline passed at agent %s (backend %s) "
			 "before the batch started", rmt_addr(r), rmt_name(r));
}

/* A result (or an error answer with an id) for slot s. */
static void rmt_answer(struct be_rmt *r, struct rmt_slot *s, const struct agp_msg *m)
{
	struct batch *b = s->b;
	uint64_t now = be_now_ns();
	int st = m->status;
	char msg[sizeof(b->errmsg)];

	b->exec_end_ns = now;
	rmt_load(r, m);
	if (st == 503 || st == 429) {
		/* busy or its window: not the agent failing, run it elsewhere */
		snprintf(msg, sizeof(msg), "agent %s (backend %s) busy: %d %.80s", rmt_addr(r),
			 rmt_name(r), st, m->msg);
		b = rmt_take(s, BE_RETRY, msg);
	} else if (st != 0) {
		snprintf(msg, sizeof(msg), "agent %s (backend %s): %.100s", rmt_addr(r), rmt_name(r),
			 m->msg[0] ? m->msg : "failed");
		b = rmt_take(s, st >= 400 && st <= 599 ? st : 502, msg);
		if (st >= 500 || st < 400)
			rmt_failure(r, "a batch failed");
		else
			rmt_success(r);		/* it answered: a 4xx is ours */
	} else {
		rmt_apply(r, b, m);
		b = rmt_take(s, 0, NULL);
		atomic_fetch_add(&r->batches, 1);
		atomic_fetch_add(&r->rows, (uint64_t)b->rows);
		atomic_fetch_add(&r->busy_ns, b->exec_end_ns - b->exec_start_ns);
		rmt_success(r);
	}
	rmt_pump(r);
	b->done(b);
}

/* A result whose shape does not match the batch: a broken peer. */
static bool rmt_result_ok(struct be_rmt *r, const struct rmt_slot *s, const struct agp_msg *m)
{
	const struct batch *b = s->b;

	if (m->status != 0)
		return true;
	if (m->n_slices != b->n_slices) {
		snprintf(r->why, sizeof(r->why), "protocol: result %llu: %d slices, expected %d",
			 (unsigned long long)m->id, m->n_slices, b->n_slices);
		return false;
	}
	for (int i = 0; i < b->n_slices; i++)
		if ((int)m->slices[i].rows != b->slices[i].rows) {
			snprintf(r->why, sizeof(r->why), "protocol: result %llu: slices[%d].rows: "
				 "%u, expected %d", (unsigned long long)m->id, i, m->slices[i].rows,
				 b->slices[i].rows);
			return false;
		}
	if (agp_check_data(m, (uint32_t)b->model->out_dim, r->why, sizeof(r->why))) {
		char tmp[sizeof(r->why)];

		snprintf(tmp, sizeof(tmp), "protocol: result %llu: %.110s", (unsigned long long)m->id,
			 r->why);
		memcpy(r->why, tmp, sizeof(tmp));
		return false;
	}
	return true;
}

static void rmt_pong(struct be_rmt *r, const struct agp_msg *m)
{
	uint64_t now = be_now_ns(), rtt, old;

	rmt_load(r, m);
	if (!r->ping_out || m->id != r->ping_id)
		return;		/* a pong after its timeout: counted already */
	r->ping_out = false;
	evtimer_del(r->pong_ev);
	rtt = now - r->ping_sent_ns;
	old = atomic_load(&r->rtt_ns);
	/* EWMA with 1/8 gain, as TCP's smoothed RTT */
	atomic_store(&r->rtt_ns, old ? old - old / 8 + rtt / 8 : rtt);
	rmt_success(r);
}

/* One frame from the agent; false when the connection was dropped. */
static bool rmt_frame(struct be_rmt *r, const uint8_t *p, size_t len)
{
	struct agp_msg m;
	char err[160];
	struct rmt_slot *s;

	if (agp_decode(p, len, &r->sp, &m, err, sizeof(err))) {
		snprintf(r->why, sizeof(r->why), "protocol: %.140s", err);
		rmt_lost(r, r->why, true);
		return false;
	}
	switch (m.type) {
	case AGP_RESULT:
	case AGP_ERROR:
		s = m.id ? rmt_find(r, m.id) : NULL;
		if (!s) {
			if (m.type == AGP_ERROR)
				be_log(BE_LOG_WARN, "backend=%s agent=%s id=%llu status=%d msg=\"agent "
				       "error: %s\"", rmt_name(r), rmt_addr(r),
				       (unsigned long long)m.id, m.status, m.msg);
			else
				be_log(BE_LOG_DEBUG, "backend=%s agent=%s id=%llu msg=\"answer for "
				       "no batch held (late, after its timeout): ignored\"",
				       rmt_name(r), rmt_addr(r), (unsigned long long)m.id);
			rmt_load(r, &m);
			return true;
		}
		if (m.type == AGP_ERROR && m.status == 0)
			m.status = 502;
		if (!rmt_result_ok(r, s, &m)) {
			rmt_lost(r, r->why, true);
			return false;
		}
		rmt_answer(r, s, &m);
		return true;
	case AGP_PONG:
		rmt_pong(r, &m);
		return true;
	default:
		snprintf(r->why, sizeof(r->why), "protocol: unexpected %s from the agent",
			 agp_type_name(m.type));
		rmt_lost(r, r->why, true);
		return false;
	}
}

static void rmt_read_cb(struct bufferevent *bev, void *arg)
{
	struct be_rmt *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (r->bev == bev) {
		uint8_t hdr[AGP_HDR_BYTES];
		size_t have = evbuffer_get_length(in);
		uint32_t flen;
		uint8_t *p;

		if (have < AGP_HDR_BYTES)
			return;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		flen = agp_frame_len(hdr);
		if (flen > RMT_MAX_FRAME) {
			snprintf(r->why, sizeof(r->why), "protocol: frame of %u bytes, over the "
				 "limit of %u", flen, (unsigned)RMT_MAX_FRAME);
			rmt_lost(r, r->why, true);
			return;
		}
		if (have < AGP_HDR_BYTES + (size_t)flen)
			return;
		p = evbuffer_pullup(in, AGP_HDR_BYTES + (ssize_t)flen);
		if (!p) {
			rmt_lost(r, "read: out of memory", false);
			return;
		}
		if (!rmt_frame(r, p + AGP_HDR_BYTES, flen))
			return;		/* the connection (and in) is gone */
		if (r->bev == bev)
			evbuffer_drain(in, AGP_HDR_BYTES + (size_t)flen);
	}
}

static void rmt_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct be_rmt *r = arg;

	if (what & BEV_EVENT_EOF)
		snprintf(r->why, sizeof(r->why), "connection closed by the agent");
	else if (what & BEV_EVENT_ERROR)
		snprintf(r->why, sizeof(r->why), "connection lost: %s",
			 strerror(EVUTIL_SOCKET_ERROR() ? EVUTIL_SOCKET_ERROR() : EIO));
	else
		return;
	rmt_lost(r, r->why, true);
}

/* ---- connecting (synchronous, bounded by connect_timeout_ms) ---- */

static int rmt_poll(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		uint64_t now = be_now_ns();
		struct pollfd pfd = { .fd = fd, .events = ev };
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int rmt_write_all(int fd, const uint8_t *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		int rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((rc = rmt_poll(fd, POLLOUT, deadline)))
			return rc;
	}
	return 0;
}

static int rmt_read_all(int fd, uint8_t *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		int rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((rc = rmt_poll(fd, POLLIN, deadline)))
			return rc;
	}
	return 0;
}

/* Connect to one resolved address before deadline: the fd, or -errno. */
static int rmt_connect_one(const struct addrinfo *ai, uint64_t deadline)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol), one = 1, soerr = 0, rc;
	socklen_t sl = sizeof(soerr);

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		rc = -errno;
		goto out_close;
	}
	if ((rc = rmt_poll(fd, POLLOUT, deadline)))
		goto out_close;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
		rc = -(soerr ? soerr : errno);
		goto out_close;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
out_close:
	close(fd);
	return rc;
}

/* Resolve and connect: the fd, or -errno with r->why set. */
static int rmt_dial(struct be_rmt *r, uint64_t deadline)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res = NULL, *ai;
	int fd = -ECONNREFUSED, gai;

	if (!r->addr_ok) {
		snprintf(r->why, sizeof(r->why), "address \"%s\" is not host:port", rmt_addr(r));
		return -EINVAL;
	}
	gai = getaddrinfo(r->host, r->port, &hints, &res);
	if (gai || !res) {
		snprintf(r->why, sizeof(r->why), "resolve %.100s: %s", r->host, gai_strerror(gai));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if ((fd = rmt_connect_one(ai, deadline)) >= 0)
			break;
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(r->why, sizeof(r->why), "connect %s: %s", rmt_addr(r),
			 fd == -ETIMEDOUT ? "timed out" : strerror(-fd));
	return fd;
}

/* The agent's model called name in a hello's list, or NULL (lock held). */
static const struct agp_model *rmt_agent_model(const struct be_rmt *r, const char *name)
{
	for (int i = 0; i < r->n_agent_models; i++)
		if (!strcmp(r->agent_models[i].name, name))
			return &r->agent_models[i];
	return NULL;
}

/* Whether the agent serves m as we do (lock held); false with why. */
static bool rmt_model_matches(const struct be_rmt *r, const struct model *m, char *why,
			      size_t len)
{
	const struct agp_model *am = rmt_agent_model(r, m->name);

	if (!am) {
		snprintf(why, len, "agent %s does not serve model %s", rmt_addr(r), m->name);
		return false;
	}
	if ((int)am->in_dim != m->in_dim || (int)am->out_dim != m->out_dim) {
		snprintf(why, len, "model %s: the gateway's has in_dim %d, out_dim %d; agent %s's "
			 "has in_dim %u, out_dim %u", m->name, m->in_dim, m->out_dim, rmt_addr(r),
			 am->in_dim, am->out_dim);
		return false;
	}
	if ((int)am->version != m->version)	/* same shape: it can serve, but say so */
		be_log(BE_LOG_WARN, "backend=%s agent=%s model=%s msg=\"the agent serves version "
		       "%u, the gateway %d\"", rmt_name(r), rmt_addr(r), m->name, am->version,
		       m->version);
	return true;
}

/*
 * The token for a hello: token_file read again now (a rotated Secret
 * applies at the next connection, as the agent reads its own at every
 * hello), into *fresh (the caller frees it with be_secret_free); when the
 * file no longer holds one, the token the configuration loaded.  NULL:
 * none configured.
 */
static const char *rmt_token(const struct be_rmt *r, char **fresh)
{
	const char *why;

	*fresh = NULL;
	if (!r->rc.token_file)
		return NULL;
	return be_secret_read(r->rc.token_file, fresh, &why) ? r->rc.token : *fresh;
}

/*
 * Connect, say hello and read the agent's, within connect_timeout_ms.
 * The connected fd with the agent's models and load taken in, or -errno
 * with r->why.  Runs on the opener's thread at open, then on the I/O
 * thread.
 */
static int rmt_connect(struct be_rmt *r, uint32_t *window)
{
	uint64_t deadline = be_now_ns() + (uint64_t)r->rc.connect_timeout_ms * 1000000ull;
	struct agp_buf hello = { 0 };
	uint8_t hdr[AGP_HDR_BYTES], *payload = NULL;
	struct agp_msg m;
	char err[160], *token = NULL;
	uint32_t len;
	int fd, rc;

	fd = rmt_dial(r, deadline);
	if (fd < 0)
		return fd;
	rc = agp_put_hello_req(&hello, AGP_VERSION, "infergw", rmt_token(r, &token));
	be_secret_free(token);
	if (rc ||
	    (rc = rmt_write_all(fd, hello.p, hello.len, deadline)) ||
	    (rc = rmt_read_all(fd, hdr, sizeof(hdr), deadline))) {
		snprintf(r->why, sizeof(r->why), "hello with %s: %s", rmt_addr(r),
			 rc == -ETIMEDOUT ? "no answer in time" : strerror(-rc));
		goto out_close;
	}
	len = agp_frame_len(hdr);
	rc = -EPROTO;
	if (len > RMT_MAX_HELLO) {
		snprintf(r->why, sizeof(r->why), "hello from %s: frame of %u bytes, over %u",
			 rmt_addr(r), len, RMT_MAX_HELLO);
		goto out_close;
	}
	payload = malloc(len ? len : 1);
	if (!payload || (rc = rmt_read_all(fd, payload, len, deadline))) {
		rc = payload ? rc : -ENOMEM;
		snprintf(r->why, sizeof(r->why), "hello from %s: %s", rmt_addr(r),
			 rc == -ETIMEDOUT ? "no answer in time" : strerror(-rc));
		goto out_close;
	}
	rc = -EPROTO;
	if (agp_decode(payload, len, &r->sp, &m, err, sizeof(err))) {
		snprintf(r->why, sizeof(r->why), "hello from %s: %.120s", rmt_addr(r), err);
		goto out_close;
	}
	if (m.type == AGP_ERROR) {
		snprintf(r->why, sizeof(r->why), "agent %s refused the hello: %.100s", rmt_addr(r),
			 m.msg);
		goto out_close;
	}
	if (m.type != AGP_HELLO) {
		snprintf(r->why, sizeof(r->why), "hello from %s: got %s", rmt_addr(r),
			 agp_type_name(m.type));
		goto out_close;
	}
	if (m.version != AGP_VERSION) {
		snprintf(r->why, sizeof(r->why), "agent %s speaks protocol version %u, the "
			 "gateway %d", rmt_addr(r), m.version, AGP_VERSION);
		goto out_close;
	}
	pthread_mutex_lock(&r->mu);
	memcpy(r->agent_models, m.models, sizeof(*m.models) * (size_t)m.n_models);
	r->n_agent_models = m.n_models;
	r->have_hello = true;
	pthread_mutex_unlock(&r->mu);
	rmt_load(r, &m);
	atomic_store(&r->threads, m.threads);
	*window = m.window;
	free(payload);
	agp_buf_free(&hello);
	return fd;
out_close:
	free(payload);
	agp_buf_free(&hello);
	close(fd);
	return rc;
}

/* Whether every model loaded here is the agent's too; false with why. */
static bool rmt_models_ok(struct be_rmt *r)
{
	bool ok = true;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; ok && i < r->n_models; i++)
		ok = rmt_model_matches(r, r->models[i], r->why, sizeof(r->why));
	pthread_mutex_unlock(&r->mu);
	return ok;
}

static void rmt_ping_cb(evutil_socket_t fd, short what, void *arg);

/* Use connected fd (window: the agent's): the bufferevent, pings. */
static int rmt_attach(struct be_rmt *r, int fd, uint32_t window)
{
	r->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!r->bev) {
		close(fd);
		snprintf(r->why, sizeof(r->why), "out of memory");
		return -ENOMEM;
	}
	bufferevent_setcb(r->bev, rmt_read_cb, NULL, rmt_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	r->window = window && (int)window < r->credits ? (int)window : r->credits;
	r->connected = true;
	r->attempt = 0;
	r->on_wire = 0;
	rmt_timer_in(r->ping_ev, (uint64_t)r->rc.ping_ms * 1000000ull);
	return 0;
}

static void rmt_reconnect_cb(evutil_socket_t unused, short what, void *arg)
{
	struct be_rmt *r = arg;
	uint32_t window = 0;
	int fd;

	if (r->connected)
		return;
	fd = rmt_connect(r, &window);
	if (fd < 0) {
		be_log(BE_LOG_DEBUG, "backend=%s agent=%s msg=\"reconnect failed: %s\"",
		       rmt_name(r), rmt_addr(r), r->why);
		rmt_failure(r, r->why);
		rmt_update_state(r, r->why);
		rmt_schedule_reconnect(r, false);
		return;
	}
	if (!rmt_models_ok(r)) {
		/* not the agent's fault: no ejection, but no traffic either */
		close(fd);
		rmt_update_state(r, r->why);
		r->attempt = 64;	/* the agent must be redeployed: try slowly */
		rmt_schedule_reconnect(r, false);
		return;
	}
	if (rmt_attach(r, fd, window)) {
		rmt_update_state(r, r->why);
		rmt_schedule_reconnect(r, false);
		return;
	}
	be_log(BE_LOG_INFO, "backend=%s agent=%s window=%d msg=\"connected\"", rmt_name(r),
	       rmt_addr(r), r->window);
	rmt_success(r);
	rmt_update_state(r, NULL);
}

/* ---- health ---- */

static void rmt_send_ping(struct be_rmt *r)
{
	if (!r->connected || r->ping_out)
		return;
	r->ping_id = atomic_fetch_add(&r->next_id, 1) + 1;
	if (rmt_send_small(r, agp_put_ping, r->ping_id)) {
		rmt_lost(r, "write: out of memory", false);
		return;
	}
	r->ping_out = true;
	r->ping_sent_ns = be_now_ns();
	rmt_timer_in(r->pong_ev, (uint64_t)r->rc.timeout_ms * 1000000ull);
}

static void rmt_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct be_rmt *r = arg;

	if (!r->connected)
		return;
	rmt_send_ping(r);
	if (r->connected)
		rmt_timer_in(r->ping_ev, (uint64_t)r->rc.ping_ms * 1000000ull);
}

static void rmt_pong_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct be_rmt *r = arg;
	char why[96];

	if (!r->ping_out)
		return;
	r->ping_out = false;
	snprintf(why, sizeof(why), "no pong within %d ms", r->rc.timeout_ms);
	rmt_failure(r, why);
}

/* The ejection period is over: probe with a ping, or with a reconnect. */
static void rmt_probe(struct be_rmt *r)
{
	if (r->connected) {
		rmt_send_ping(r);	/* an outstanding ping is the probe too */
		return;
	}
	r->attempt = 0;
	rmt_schedule_reconnect(r, true);
}

/* ---- batches ---- */

static void rmt_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rmt_slot *s = arg;
	struct be_rmt *r = s->r;
	char msg[sizeof(((struct batch *)0)->errmsg)];
	struct batch *b;
	bool sent = s->sent;

	if (!s->b)
		return;
	if (s->by_deadline)
		snprintf(msg, sizeof(msg), "deadline passed waiting for agent %s (backend %s)",
			 rmt_addr(r), rmt_name(r));
	else
		snprintf(msg, sizeof(msg), "agent %s (backend %s): no answer within %d ms",
			 rmt_addr(r), rmt_name(r), r->rc.timeout_ms);
	if (sent && r->connected && rmt_send_small(r, agp_put_cancel, s->id))
		be_log(BE_LOG_WARN, "backend=%s msg=\"cannot send cancel: out of memory\"",
		       rmt_name(r));
	b = rmt_take(s, BE_RETRY, msg);
	if (!s->by_deadline) {
		snprintf(r->why, sizeof(r->why), "a batch timed out (%d ms)", r->rc.timeout_ms);
		rmt_failure(r, r->why);
	}
	rmt_pump(r);
	b->done(b);
}

/*
 * The batches ops->cancel flagged (every slice's request gone): one still
 * waiting for the window is answered here without going out (onto list,
 * returned); one on the wire gets a cancel frame, and the agent answers
 * it 499 if it had not started it (its result still comes: one done()).
 */
static struct batch *rmt_cancels(struct be_rmt *r, struct batch *list)
{
	for (int i = 0; i < r->credits; i++) {
		struct rmt_slot *s = &r->slots[i];
		struct batch *b;

		if (!atomic_exchange(&s->cancel, false) || !s->b)
			continue;
		if (s->sent && r->connected) {
			if (rmt_send_small(r, agp_put_cancel, s->id))
				be_log(BE_LOG_WARN, "backend=%s msg=\"cannot send cancel: out of "
				       "memory\"", rmt_name(r));
		} else if (s->queued) {
			b = rmt_take(s, 503, "cancelled before it was sent");
			b->be_next = list;
			list = b;
		}
	}
	return list;
}

static void rmt_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct be_rmt *r = arg;
	struct rmt_slot *list, *rev = NULL, *s;
	struct batch *failed = NULL;
	uint64_t v, now = be_now_ns();
	bool stop;
	char msg[sizeof(((struct batch *)0)->errmsg)];

	if (read(r->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		be_log(BE_LOG_WARN, "backend=%s msg=\"wake-up read: %s\"", rmt_name(r),
		       strerror(errno));
	pthread_mutex_lock(&r->mu);
	list = r->submitted;
	r->submitted = NULL;
	stop = r->stop;
	snprintf(msg, sizeof(msg), "agent %s (backend %s) not connected: %.100s", rmt_addr(r),
		 rmt_name(r), r->reason);
	pthread_mutex_unlock(&r->mu);
	for (; list; list = s) {	/* oldest first */
		s = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = s) {
		s = rev->next;
		rev->next = NULL;
		if (!r->connected || stop) {
			struct batch *b = rmt_take(rev, BE_RETRY, msg);

			b->be_next = failed;
			failed = b;
			continue;
		}
		rmt_timer_in(rev->timer, rev->expire_ns > now ? rev->expire_ns - now : 0);
		rev->queued = true;
		if (r->wq_tail)
			r->wq_tail->next = rev;
		else
			r->wq_head = rev;
		r->wq_tail = rev;
	}
	failed = rmt_cancels(r, failed);
	rmt_pump(r);
	if (stop)
		event_base_loopbreak(r->base);
	rmt_done_list(failed);
}

static void *rmt_main(void *arg)
{
	struct be_rmt *r = arg;

	pthread_setname_np(pthread_self(), "igw-remote");
	event_base_dispatch(r->base);
	return NULL;
}

static void rmt_wake(struct be_rmt *r)
{
	uint64_t one = 1;

	if (write(r->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		be_log(BE_LOG_WARN, "backend=%s msg=\"wake-up write: %s\"", rmt_name(r),
		       strerror(errno));
}

/* Encode b into its slot's frame; 0 or -errno. */
static int rmt_encode(struct be_rmt *r, struct rmt_slot *s, struct batch *b, uint64_t now)
{
	const struct model *m = b->model;
	uint64_t expire = now + (uint64_t)r->rc.timeout_ms * 1000000ull;

	if (b->n_slices > s->cap_sl) {
		int cap = b->n_slices > 2 * s->cap_sl ? b->n_slices : 2 * s->cap_sl;
		struct agp_slice *sl = realloc(s->sl, sizeof(*sl) * (size_t)cap);
		const void **rows;

		if (!sl)
			return -ENOMEM;
		s->sl = sl;
		rows = realloc(s->rows, sizeof(*rows) * (size_t)cap);
		if (!rows)
			return -ENOMEM;
		s->rows = rows;
		s->cap_sl = cap;
	}
	s->by_deadline = false;
	for (int i = 0; i < b->n_slices; i++) {
		const struct infer_slice *sl = &b->slices[i];
		uint64_t dl = sl->deadline_ns;

		if (!sl->input || sl->rows < 1)
			return -EINVAL;
		s->sl[i] = (struct agp_slice){ .rows = (uint32_t)sl->rows };
		/* what is left of its deadline; one already passed still goes,
		 * with 1 us: the agent answers that slice 504 */
		if (dl)
			s->sl[i].timeout_us = dl > now ? (dl - now + 999) / 1000 : 1;
		if (dl && dl < expire) {
			expire = dl;
			s->by_deadline = true;
		}
		s->rows[i] = sl->input;
	}
	s->expire_ns = expire;
	s->id = atomic_fetch_add(&r->next_id, 1) + 1;
	s->frame.len = 0;
	return agp_put_infer(&s->frame, s->id, m->name, s->sl, b->n_slices, s->rows,
			     (size_t)m->in_dim * sizeof(float));
}

/*
 * submit: -ENODEV unless UP (the scheduler gives the batch back to the
 * router).  b->exec_start_ns is when the frame is written, exec_end_ns
 * when the answer arrives: the scheduler's learned service time of a
 * remote backend includes the network round trip and the agent's queue.
 */
static int rmt_submit(struct backend *be, struct batch *b)
{
	struct be_rmt *r = be->priv;
	struct rmt_slot *s;
	int rc;

	if (be_state_get(be) != BE_UP)
		return -ENODEV;
	if (b->slot < 0 || b->slot >= r->credits || r->slots[b->slot].b)
		return -EINVAL;
	s = &r->slots[b->slot];
	b->exec_start_ns = b->exec_end_ns = 0;
	if ((rc = rmt_encode(r, s, b, be_now_ns())))
		return rc;
	pthread_mutex_lock(&r->mu);
	if (r->stop) {
		pthread_mutex_unlock(&r->mu);
		return -ENODEV;
	}
	s->b = b;		/* s->sent is false: the slot is free (rmt_take) */
	s->next = r->submitted;
	r->submitted = s;
	pthread_mutex_unlock(&r->mu);
	rmt_wake(r);
	return 0;
}

/*
 * cancel (under the scheduler's lock, any thread): flag the slots whose
 * batch holds req and no live slice any more; the I/O thread tells the
 * agent (rmt_cancels).  A batch with a slice of another, live request
 * runs on: a cancel is per batch in the protocol.
 */
static void rmt_cancel(struct backend *be, struct infer_req *req)
{
	struct be_rmt *r = be->priv;
	bool any = false;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->credits; i++) {
		const struct batch *b = r->slots[i].b;
		bool holds = false, live = false;

		for (int j = 0; b && j < b->n_slices && !live; j++) {
			holds |= b->slices[j].r == req;
			live = be_slice_live(&b->slices[j]);
		}
		if (holds && !live) {
			atomic_store(&r->slots[i].cancel, true);
			any = true;
		}
	}
	pthread_mutex_unlock(&r->mu);
	if (any)
		rmt_wake(r);
}

/* ---- open, close and the rest of the ops ---- */

static void rmt_free(struct be_rmt *r)
{
	for (int i = 0; i < RMT_MAX_CREDITS; i++) {
		if (r->slots[i].timer)
			event_free(r->slots[i].timer);
		agp_buf_free(&r->slots[i].frame);
		free(r->slots[i].sl);
		free(r->slots[i].rows);
	}
	if (r->bev)
		bufferevent_free(r->bev);
	struct event *evs[] = { r->wake_ev, r->reconnect_ev, r->ping_ev, r->pong_ev, r->eject_ev };

	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (r->base)
		event_base_free(r->base);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	be_rmt_ej_fini(&r->ej);
	be_rmt_pool_put(r->pool);
	free(r->sp.models);
	free(r->sp.slices);
	free(r->agent_models);
	free(r->models);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Defaults for keys a hand-made conf (tests, a config without parse_conf) left 0. */
static void rmt_effective_conf(struct be_remote_conf *rc, const struct be_remote_conf *in)
{
	struct be_remote_conf d;

	be_remote_conf_defaults(&d);
	*rc = *in;
#define RMT_DEF(f) do { if (rc->f <= 0) rc->f = d.f; } while (0)
	RMT_DEF(connect_timeout_ms);
	RMT_DEF(timeout_ms);
	RMT_DEF(ping_ms);
	RMT_DEF(reconnect_ms);
	RMT_DEF(reconnect_max_ms);
	RMT_DEF(consecutive_failures);
	RMT_DEF(ejection_ms);
	RMT_DEF(max_ejection_ms);
#undef RMT_DEF
	if (rc->reconnect_max_ms < rc->reconnect_ms)
		rc->reconnect_max_ms = rc->reconnect_ms;
	if (rc->window > RMT_MAX_CREDITS)
		rc->window = RMT_MAX_CREDITS;
}

/* Room for the most credits: they are known only after the hello. */
static struct be_rmt *rmt_alloc(struct backend *be, const struct backend_conf *conf)
{
	struct be_rmt *r = calloc(1, sizeof(*r) + sizeof(struct rmt_slot) * RMT_MAX_CREDITS);

	if (!r)
		return NULL;
	r->be = be;
	r->wake_fd = -1;
	pthread_mutex_init(&r->mu, NULL);
	rmt_effective_conf(&r->rc, &conf->remote);
	r->addr_ok = conf->address && !be_rmt_split_addr(conf->address, r->host, sizeof(r->host),
							 r->port, sizeof(r->port));
	r->rng = be_now_ns() ^ (uint64_t)(uintptr_t)r;
	if (!r->rng)
		r->rng = 1;
	r->sp.max_models = RMT_MODELS_MAX;
	r->sp.models = calloc(RMT_MODELS_MAX, sizeof(*r->sp.models));
	r->sp.max_slices = AGP_MAX_SLICES;
	r->sp.slices = calloc(AGP_MAX_SLICES, sizeof(*r->sp.slices));
	r->agent_models = calloc(RMT_MODELS_MAX, sizeof(*r->agent_models));
	if (!r->sp.models || !r->sp.slices || !r->agent_models) {
		rmt_free(r);
		return NULL;
	}
	return r;
}

/* The event base, its events and the wake-up; 0 or -errno. */
static int rmt_events(struct be_rmt *r)
{
	struct event_config *cfg = event_config_new();

	/* timers to the millisecond: timeouts of a few ms are configurable */
	if (cfg)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	r->base = cfg ? event_base_new_with_config(cfg) : NULL;
	if (cfg)
		event_config_free(cfg);
	r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!r->base || r->wake_fd < 0)
		return -ENOMEM;
	r->wake_ev = event_new(r->base, r->wake_fd, EV_READ | EV_PERSIST, rmt_wake_cb, r);
	r->reconnect_ev = evtimer_new(r->base, rmt_reconnect_cb, r);
	r->ping_ev = evtimer_new(r->base, rmt_ping_cb, r);
	r->pong_ev = evtimer_new(r->base, rmt_pong_timeout_cb, r);
	r->eject_ev = evtimer_new(r->base, rmt_eject_cb, r);
	if (!r->wake_ev || !r->reconnect_ev || !r->ping_ev || !r->pong_ev || !r->eject_ev)
		return -ENOMEM;
	for (int i = 0; i < r->credits; i++) {
		r->slots[i].r = r;
		r->slots[i].timer = evtimer_new(r->base, rmt_timeout_cb, &r->slots[i]);
		if (!r->slots[i].timer)
			return -ENOMEM;
	}
	return event_add(r->wake_ev, NULL) ? -ENOMEM : 0;
}

/*
 * open: connect and read the agent's hello within connect_timeout_ms to
 * learn its window (credits) and models.  Unreachable is not an error:
 * the backend opens DOWN with the reason and reconnects in the background.
 */
static int rmt_open(struct backend *be, const struct backend_conf *conf, char **err)
{
	struct be_rmt *r = rmt_alloc(be, conf);
	struct be_rmt_ej_conf ec;
	uint32_t window = 0;
	int fd, rc;
	char why[160];

	if (!r)
		return -ENOMEM;
	fd = rmt_connect(r, &window);
	snprintf(why, sizeof(why), "%s", r->why);
	if (fd >= 0)
		r->credits = r->rc.window ? r->rc.window :
			     window ? (window > RMT_MAX_CREDITS ? RMT_MAX_CREDITS : (int)window) : 1;
	else
		r->credits = r->rc.window ? r->rc.window : RMT_DOWN_CREDITS;
	be->priv = r;
	be->credits = r->credits;
	if ((rc = rmt_events(r))) {
		if (fd >= 0)
			close(fd);
		goto out_free;
	}
	r->pool = be_rmt_pool_get(r->rc.pool ? r->rc.pool : rmt_name(r));
	if (!r->pool) {
		rc = -ENOMEM;
		goto out_free;
	}
	ec = (struct be_rmt_ej_conf){
		.consecutive_failures = r->rc.consecutive_failures,
		.ejection_ns = (uint64_t)r->rc.ejection_ms * 1000000ull,
		.max_ejection_ns = (uint64_t)r->rc.max_ejection_ms * 1000000ull,
		.max_ejection_percent = r->rc.max_ejection_percent,
	};
	be_rmt_ej_init(&r->ej, &ec, r->pool);
	be_state_set(be, BE_DOWN);
	if (fd >= 0 && (rc = rmt_attach(r, fd, window)))
		goto out_free;
	if (fd < 0) {
		be_log(BE_LOG_WARN, "backend=%s agent=%s credits=%d msg=\"agent unreachable; "
		       "down, reconnecting in the background\" reason=\"%s\"", rmt_name(r),
		       rmt_addr(r), r->credits, why);
		rmt_set_reason(r, why);
		rmt_schedule_reconnect(r, false);
	} else {
		be_log(BE_LOG_INFO, "backend=%s agent=%s credits=%d window=%u threads=%u "
		       "msg=\"connected\"", rmt_name(r), rmt_addr(r), r->credits, window,
		       atomic_load(&r->threads));
		rmt_update_state(r, NULL);
	}
	if (pthread_create(&r->thread, NULL, rmt_main, r)) {
		rc = -EAGAIN;
		goto out_free;
	}
	r->thread_on = true;
	return 0;
out_free:
	*err = be_strdupf("remote backend %s: cannot start (%s)", rmt_name(r), strerror(-rc));
	rmt_free(r);
	be->priv = NULL;
	be_state_set(be, BE_DOWN);
	return rc;
}

/* load_model: m must be the agent's too, when its hello is known. */
static int rmt_load_model(struct backend *be, const struct model *m, char **err)
{
	struct be_rmt *r = be->priv;
	char why[200];
	int rc = 0;

	pthread_mutex_lock(&r->mu);
	if (r->have_hello && !rmt_model_matches(r, m, why, sizeof(why))) {
		*err = be_strdupf("remote backend %s: %s", rmt_name(r), why);
		rc = -EINVAL;
	} else if (r->n_models == r->cap_models) {
		int cap = r->cap_models ? 2 * r->cap_models : 8;
		const struct model **mm = realloc(r->models, sizeof(*mm) * (size_t)cap);

		if (!mm) {
			rc = -ENOMEM;
			*err = be_strdupf("remote backend %s: out of memory", rmt_name(r));
		} else {
			r->models = mm;
			r->cap_models = cap;
		}
	}
	if (!rc)
		r->models[r->n_models++] = m;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static void rmt_unload_model(struct backend *be, const struct model *m)
{
	struct be_rmt *r = be->priv;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n_models; i++)
		if (r->models[i] == m) {
			r->models[i] = r->models[--r->n_models];
			break;
		}
	pthread_mutex_unlock(&r->mu);
}

/* caps: the agent's rows per batch for m when it said, else the model's. */
static void rmt_caps(const struct backend *be, const struct model *m, struct be_caps *out)
{
	struct be_rmt *r = be->priv;
	const struct agp_model *am;

	pthread_mutex_lock(&r->mu);
	am = rmt_agent_model(r, m->name);
	if (am && am->max_batch > 0 && (int)am->max_batch < m->max_batch_size)
		out->max_batch = (int)am->max_batch;
	pthread_mutex_unlock(&r->mu);
}

/* view: the agent's queue that is not ours (q - qc), its service time and threads. */
static int rmt_view(const struct backend *be, struct be_load *out)
{
	struct be_rmt *r = be->priv;
	uint32_t q = atomic_load(&r->q), qc = atomic_load(&r->qc);

	out->queue_depth = q > qc ? (int)(q - qc) : 0;
	out->service_ns = (uint64_t)atomic_load(&r->svc_us) * 1000;
	out->parallel = (int)atomic_load(&r->threads);
	out->rtt_ns = atomic_load(&r->rtt_ns);
	return 0;
}

static void rmt_stats(const struct backend *be, struct backend_stats *out)
{
	struct be_rmt *r = be->priv;

	memset(out, 0, sizeof(*out));
	out->up = be_state_get(be) == BE_UP;
	snprintf(out->address, sizeof(out->address), "%s", be->conf.address ? be->conf.address : "");
	if (!r)
		return;
	out->batches = atomic_load(&r->batches);
	out->rows = atomic_load(&r->rows);
	out->busy_ns = atomic_load(&r->busy_ns);
	out->has_rtt = true;
	out->rtt_ns = atomic_load(&r->rtt_ns);
	out->ejections = atomic_load(&r->ejections);
	pthread_mutex_lock(&r->mu);
	if (!out->up)
		snprintf(out->reason, sizeof(out->reason), "%s", r->reason);
	pthread_mutex_unlock(&r->mu);
}

/* close: stop the I/O thread, then (by contract nothing is in flight, but
 * to be safe) give back whatever it still held. */
static void rmt_close(struct backend *be)
{
	struct be_rmt *r = be->priv;
	struct batch *list = NULL;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_mutex_unlock(&r->mu);
	if (r->thread_on) {
		rmt_wake(r);
		pthread_join(r->thread, NULL);
	}
	r->submitted = NULL;	/* its slots are among those below */
	for (int i = 0; i < r->credits; i++)
		if (r->slots[i].b) {
			struct batch *b = rmt_take(&r->slots[i], BE_RETRY, "remote backend closed");

			b->be_next = list;
			list = b;
		}
	rmt_free(r);
	be->priv = NULL;
	be_state_set(be, BE_DOWN);
	rmt_done_list(list);
}

const struct backend_ops be_remote_ops = {
	.kind = "remote",
	.open = rmt_open,
	.load_model = rmt_load_model,
	.unload_model = rmt_unload_model,
	.caps = rmt_caps,
	.submit = rmt_submit,
	.cancel = rmt_cancel,
	.view = rmt_view,
	.parse_conf = be_remote_parse_conf,
	.stats = rmt_stats,
	.close = rmt_close,
};
