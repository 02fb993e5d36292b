/* server.c - listeners, loop threads, connections (see server.h). */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#include "admin.h"
#include "api.h"
#include "config.h"
#include "grpc.h"
#include "infer.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "scheduler.h"
#include "tls.h"
#include "model/ytree.h"

static const char h2_preface[] = NGHTTP2_CLIENT_MAGIC;	/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */

static void conn_unlink(struct conn *c)
{
	struct srv_loop *sl = c->sl;

	if (c->prev)
		c->prev->next = c->next;
	else
		sl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	sl->n_conns--;
}

/* When draining and the last connection is gone, the loop may end. */
static void srv_loop_check_drained(struct srv_loop *sl)
{
	if (sl->draining && sl->n_conns == 0)
		event_base_loopexit(sl->loop.base, NULL);
}

void srv_loop_refresh(struct srv_loop *sl)
{
	struct runtime *rt = rt_lease_refresh(&sl->lease);

	sl->cfg = rt ? rt->cfg : NULL;
}

static void srv_loop_on_refresh(struct loop_task *t)
{
	struct srv_loop *sl = (struct srv_loop *)((char *)t - offsetof(struct srv_loop, refresh));

	atomic_store(&sl->refresh_pending, false);
	srv_loop_refresh(sl);
}

/* After a publish: every loop drops its old snapshot now, not at its next
 * connection, so removed backends can drain and close. */
static void srv_on_publish(void *arg)
{
	struct server *s = arg;

	for (int i = 0; i < s->n_loops; i++) {
		struct srv_loop *sl = &s->loops[i];

		if (!atomic_exchange(&sl->refresh_pending, true))
			loop_post_task(&sl->loop, &sl->refresh);
	}
}

static _Atomic uint64_t srv_closed[CLOSE_REASONS];
static _Atomic uint64_t srv_refused;
static _Atomic uint64_t srv_h2_sessions[2];	/* native, nghttp2 */

void srv_count_close(enum srv_close_reason reason)
{
	atomic_fetch_add_explicit(&srv_closed[reason], 1, memory_order_relaxed);
}

void srv_count_h2_session(bool nghttp2)
{
	atomic_fetch_add_explicit(&srv_h2_sessions[nghttp2], 1, memory_order_relaxed);
}

void srv_metrics(struct evbuffer *out)
{
	static const char *const names[CLOSE_REASONS] = {
		[CLOSE_HEADER_TIMEOUT] = "header_timeout", [CLOSE_WRITE_STALL] = "write_stall",
		[CLOSE_IDLE] = "idle", [CLOSE_PROTOCOL_ERROR] = "protocol_error",
		[CLOSE_H2_OFFENCES] = "h2_offences", [CLOSE_TLS_HANDSHAKE] = "tls_handshake",
	};

	evbuffer_add_printf(out, "# HELP infergw_connections_closed_total Connections the gateway closed, by reason.\n"
				 "# TYPE infergw_connections_closed_total counter\n");
	for (int i = 0; i < CLOSE_REASONS; i++)
		evbuffer_add_printf(out, "infergw_connections_closed_total{reason=\"%s\"} %llu\n", names[i],
				    (unsigned long long)atomic_load_explicit(&srv_closed[i],
									     memory_order_relaxed));
	evbuffer_add_printf(out, "# HELP infergw_connections_refused_total Connections refused at accept.\n"
				 "# TYPE infergw_connections_refused_total counter\n"
				 "infergw_connections_refused_total{reason=\"max_connections\"} %llu\n",
			    (unsigned long long)atomic_load_explicit(&srv_refused, memory_order_relaxed));
	evbuffer_add_printf(out, "# HELP infergw_http2_sessions_total HTTP/2 connections, by the engine that framed them (listen.http2_engine).\n"
				 "# TYPE infergw_http2_sessions_total counter\n"
				 "infergw_http2_sessions_total{engine=\"native\"} %llu\n"
				 "infergw_http2_sessions_total{engine=\"nghttp2\"} %llu\n",
			    (unsigned long long)atomic_load_explicit(&srv_h2_sessions[0], memory_order_relaxed),
			    (unsigned long long)atomic_load_explicit(&srv_h2_sessions[1], memory_order_relaxed));
}

void conn_close_why(struct conn *c, enum srv_close_reason reason)
{
	if (c->closing)
		return;
	srv_count_close(reason);
	conn_close(c);
}

void conn_close(struct conn *c)
{
	struct srv_loop *sl = c->sl;

	if (c->closing)
		return;
	c->closing = true;
	if (c->hdr_timer)
		event_free(c->hdr_timer);
	if (c->stall_timer)
		event_free(c->stall_timer);
	if (c->idle_timer)
		event_free(c->idle_timer);
	if (c->rd_ev)
		event_free(c->rd_ev);	/* before the bufferevent closes the fd */
	if (h2_on(c))
		h2_free(c);
	if (c->h1_call) {
		struct call *call = c->h1_call;

		c->h1_call = NULL;
		if (call->async && !call->responded)
			api_abandon(call);	/* inference or admin job in flight */
		else
			call_free(call);
	}
	if (c->bev) {
		if (c->tls)
			tls_close_notify(c->bev);
		bufferevent_free(c->bev);
	}
	if (c->in && !c->tls)
		evbuffer_free(c->in);
	conn_unlink(c);
	atomic_fetch_sub(&sl->srv->conns_open, 1);
	log_debug("peer=%s msg=\"connection closed\"", c->peer);
	free(c);
	srv_loop_check_drained(sl);
}

/*
 * Would conn_on_write do anything for c, its output drained?  It resumes
 * reading, writes what the HTTP/2 engine still holds, writing is to be disabled, or
 * the connection may close now.  Otherwise (a kept-alive HTTP/1.1
 * answer, an HTTP/2 flush with nothing left) the deferred callback is
 * skipped: it cost ~600 instructions a request.  h2_send, the caller of
 * conn_flush there, itself watches the stall and closes a finished
 * session right after.
 */
static bool conn_drained_has_work(const struct conn *c)
{
	return c->read_paused || c->close_after_write || c->sl->draining ||
	       (bufferevent_get_enabled(c->bev) & EV_WRITE) || c->proto == PROTO_UNKNOWN ||
	       (c->proto == PROTO_H2 && h2_on(c) && h2_want_write(c));
}

/* After a write of c's output (out): what conn_on_write would do, asked
 * for, or writing enabled for what the socket did not take. */
static void conn_written(struct conn *c, struct evbuffer *out)
{
	/* The bufferevent only calls our write callback after writes of its
	 * own; when we emptied the buffer and the callback has work, ask for
	 * it (deferred, so nothing is freed under our callers). */
	if (evbuffer_get_length(out) == 0) {
		if (conn_drained_has_work(c))
			bufferevent_trigger(c->bev, EV_WRITE,
					    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	}
	/* Writing is enabled only while output waits for the socket (see
	 * conn_on_write): adding to the output then arms no write event, and
	 * a response the socket takes at once costs no epoll_ctl.  Enabled
	 * once, so the write-stall clock is not restarted by more output. */
	else if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
		bufferevent_enable(c->bev, EV_WRITE);
}

void conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	/* Write now rather than after the next epoll round: one round of
	 * latency less per response.  What the socket does not take stays
	 * queued and the bufferevent writes it when the socket drains. */
	/* Never on TLS: the fd takes ciphertext only; the TLS bufferevent
	 * encrypts and writes its output itself (in the next loop round). */
	if (c->tls || evbuffer_get_length(out) == 0)
		return;
	/* A socket bufferevent keeps its output's start frozen (only its own
	 * write callback drains it): unfrozen around our write, or
	 * evbuffer_write refuses and every answer waits an epoll round. */
	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, c->fd);	/* the bufferevent's (bufferevent_getfd: ~65 instructions) */
	evbuffer_freeze(out, 1);
	conn_written(c, out);
}

void conn_write_now(struct conn *c, const void *buf, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	ssize_t k;

	if (c->tls || evbuffer_get_length(out) != 0) {
		evbuffer_add(out, buf, n);
		conn_flush(c);
		return;
	}
	k = send(c->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	/* EAGAIN, or an error: the bufferevent's own write meets it again
	 * and reports it (conn_on_event), as after conn_flush */
	if (k < 0)
		k = 0;
	if ((size_t)k < n)
		evbuffer_add(out, (const char *)buf + k, n - (size_t)k);
	conn_written(c, out);
}

#define CONN_LINGER_MS 1000

/*
 * Lingering close (RFC 9112 §9.6): everything queued is in the socket; send
 * FIN, then read and discard what the client still sends (conn_on_sock_read),
 * for CONN_LINGER_MS from now, before closing.  Closing with unread input
 * would send a RST, and the client could lose the answer (a 400, 408,
 * GOAWAY) just sent.  The deadline is one timer armed once: input that
 * keeps trickling in does not extend it.
 */
static void conn_linger(struct conn *c)
{
	struct timeval tv = { CONN_LINGER_MS / 1000, (CONN_LINGER_MS % 1000) * 1000 };

	if (c->tls) {
		conn_close(c);	/* close_notify is sent by conn_close */
		return;
	}
	if (c->lingering)
		return;
	c->lingering = true;
	conn_disarm_header_timer(c);
	evtimer_del(c->stall_timer);
	shutdown(c->fd, SHUT_WR);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	bufferevent_disable(c->bev, EV_WRITE);
	evtimer_add(c->idle_timer, &tv);	/* conn_on_idle_timer closes */
	conn_set_reading(c, true);
}

void conn_maybe_close(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (evbuffer_get_length(out) > 0)
		return;		/* the write callback comes back here */
	if (c->proto == PROTO_H2 && h2_on(c) && !h2_want_read(c) && !h2_want_write(c)) {
		conn_linger(c);
		return;
	}
	if (c->close_after_write && c->active == 0)
		conn_linger(c);
}

void conn_close_soon(struct conn *c)
{
	c->close_after_write = true;
	c->h1_busy = true;
	conn_set_reading(c, false);
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

bool conn_output_full(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) >
	       conn_cfg(c)->limits.output_buffer_bytes;
}

void conn_set_reading(struct conn *c, bool on)
{
	if (c->tls) {	/* no cache: the bufferevent stops reading on its timeout */
		c->reading = on;
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
		return;
	}
	if (on)
		c->last_read_ns = now_ns();
	if (on == c->reading)
		return;
	c->reading = on;
	if (on && !c->rd_added && event_add(c->rd_ev, NULL) == 0)
		c->rd_added = true;
}

void conn_pause_reading(struct conn *c)
{
	c->read_paused = true;
	conn_set_reading(c, false);
	conn_flush(c);	/* writing enabled for what waits: conn_on_write resumes */
}

/*
 * Input waiting to be parsed is bounded: a head, plus one read's worth.
 * Enforced here rather than with a bufferevent read watermark, whose
 * callback re-adds the read event (a timer-heap update) on every add to
 * and drain from the input: ~650 instructions a request.  A bufferevent
 * reads at most 16 KiB a callback, and conn_on_read checks after each.
 */
static size_t conn_input_cap(const struct conn *c)
{
	return conn_cfg(c)->limits.max_header_bytes + 65536;
}

void conn_input_check(struct conn *c)
{
	size_t len = evbuffer_get_length(c->in);

	if (!c->input_full && len >= conn_input_cap(c)) {
		c->input_full = true;
		conn_set_reading(c, false);
	} else if (c->input_full && len < conn_input_cap(c)) {
		c->input_full = false;
		/* not when reading stopped for another reason */
		if (!c->read_paused && !c->close_after_write && !c->closing && !c->lingering)
			conn_set_reading(c, true);
	}
}

/*
 * Around serving what c's client sent: the scheduler dispatches once, at
 * the end (sched_defer_begin), and the answers this thread completes
 * meanwhile (batches run inline) are delivered at the end, or sooner by
 * conn_answers_now, without the mailbox's eventfd (loop_hold).
 * conn_serve_begin returns what conn_serve_end takes.
 */
static bool conn_serve_begin(struct srv_loop *sl)
{
	bool outer = loop_hold(&sl->loop);

	sched_defer_begin();
	return outer;
}

static void conn_serve_end(struct srv_loop *sl, bool outer)
{
	sched_defer_end();
	loop_release(&sl->loop, outer);	/* may close connections */
}

void conn_answers_now(struct conn *c)
{
	bool in_read = c->in_read;

	if (!loop_held(&c->sl->loop))
		return;
	c->in_read = true;	/* c's answers go out with the caller's send */
	sched_defer_flush();
	loop_drain_mail(&c->sl->loop);
	c->in_read = in_read;
}

/* The output drained: read again, and parse what is already buffered. */
static void conn_resume_reading(struct conn *c)
{
	struct srv_loop *sl = c->sl;	/* c may be gone after */
	bool outer;

	c->read_paused = false;
	if (!c->input_full)
		conn_set_reading(c, true);
	outer = conn_serve_begin(sl);
	if (c->proto == PROTO_H2)
		h2_on_read(c);	/* may close c */
	else
		h1_on_read(c);
	conn_serve_end(sl, outer);
}

static void conn_on_header_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	srv_loop_refresh(c->sl);
	c->hdr_timer_armed = false;
	srv_count_close(CLOSE_HEADER_TIMEOUT);
	log_debug("peer=%s msg=\"header timeout\"", c->peer);
	if (c->proto == PROTO_H2 && h2_on(c))
		h2_header_timeout(c);	/* may close c */
	else if (c->proto == PROTO_H1)
		h1_header_timeout(c);
	else
		conn_close(c);
}

void conn_arm_header_timer(struct conn *c)
{
	uint32_t ms = conn_cfg(c)->limits.header_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (c->hdr_timer_armed)
		return;		/* from the head's first byte, not its latest */
	c->hdr_timer_armed = true;
	evtimer_add(c->hdr_timer, &tv);
}

void conn_disarm_header_timer(struct conn *c)
{
	if (!c->hdr_timer_armed)
		return;
	c->hdr_timer_armed = false;
	evtimer_del(c->hdr_timer);
}

static void conn_arm_stall_timer(struct conn *c)
{
	uint32_t ms = conn_cfg(c)->limits.write_stall_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	c->stall_mark = c->out_progress;
	evtimer_add(c->stall_timer, &tv);
}

/* Answers waited write_stall_timeout_ms: close unless some went out. */
static void conn_on_stall_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	srv_loop_refresh(c->sl);
	if (c->h2_blocked <= 0)
		return;
	if (c->out_progress != c->stall_mark) {
		conn_arm_stall_timer(c);
		return;
	}
	log_info("peer=%s blocked_streams=%d msg=\"closing: the client has not read its answers for limits.write_stall_timeout_ms\"",
		 c->peer, c->h2_blocked);
	conn_close_why(c, CLOSE_WRITE_STALL);
}

void conn_watch_stall(struct conn *c)
{
	bool pending = evtimer_pending(c->stall_timer, NULL);

	if (c->h2_blocked > 0 && !pending)
		conn_arm_stall_timer(c);
	else if (c->h2_blocked <= 0 && pending)
		evtimer_del(c->stall_timer);
}

void conn_transport_respond(struct call *call)
{
	if (call->conn->proto == PROTO_H2)
		h2_respond(call);
	else
		h1_respond(call);
}

/* The client meant HTTP/2 (ALPN h2, or "PRI * HTTP/2.0") but its preface
 * is wrong: GOAWAY(PROTOCOL_ERROR), then close (RFC 9113 §3.4).  c may be
 * gone on return. */
static void conn_bad_preface(struct conn *c)
{
	log_debug("peer=%s msg=\"bad HTTP/2 client preface\"", c->peer);
	srv_count_close(CLOSE_PROTOCOL_ERROR);
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	conn_set_reading(c, false);
	h2_terminate(c, NGHTTP2_PROTOCOL_ERROR);
	h2_send(c);		/* closes c once the GOAWAY is out */
}

/*
 * Decide the protocol: TLS ALPN "http/1.1" or "h2" when negotiated, else
 * the first bytes: the h2 client preface means h2 with prior knowledge, as
 * does a wrong one that starts "PRI * HTTP/2.0" (answered with GOAWAY).
 * 0 = need more, 1 = decided, -1 = c closed.
 */
static int conn_sniff(struct conn *c)
{
	struct evbuffer *in = c->in;
	size_t have = evbuffer_get_length(in), n = have < 24 ? have : 24;
	enum tls_alpn alpn = c->tls ? tls_alpn(c->bev) : TLS_ALPN_NONE;
	unsigned char buf[24];
	bool preface, pri;

	evbuffer_copyout(in, buf, n);
	preface = memcmp(buf, h2_preface, n) == 0;
	pri = n >= 14 && memcmp(buf, h2_preface, 14) == 0;	/* "PRI * HTTP/2.0" */
	if (alpn == TLS_ALPN_HTTP11 || (alpn == TLS_ALPN_NONE && !preface && !pri)) {
		c->proto = PROTO_H1;
		return 1;
	}
	if (preface && n < 24)
		return 0;
	c->proto = PROTO_H2;
	if (h2_start(c)) {
		conn_close(c);
		return -1;
	}
	if (!preface) {
		conn_bad_preface(c);
		return -1;
	}
	return 1;
}

static void conn_parse(struct conn *c, const char *fresh, size_t n)
{
	if (n && c->proto != PROTO_UNKNOWN && evbuffer_get_length(c->in) == 0) {
		ssize_t used = c->proto == PROTO_H1 ? (ssize_t)h1_take(c, fresh, n)
						    : h2_take(c, fresh, n);

		if (used < 0)
			return;		/* h2 session failed: c closing or gone */
		fresh += used;
		n -= (size_t)used;
	}
	if (n && evbuffer_add(c->in, fresh, n)) {
		conn_close(c);	/* out of memory */
		return;
	}
	conn_input_check(c);
	if (c->proto == PROTO_UNKNOWN && conn_sniff(c) <= 0)
		return;
	if (c->proto == PROTO_H2) {
		h2_on_read(c);	/* may close c */
	} else {
		h1_on_read(c);
		if (c->sl->draining && !c->h1_busy && !c->h1_call &&
		    evbuffer_get_length(c->in) == 0) {
			c->close_after_write = true;	/* shutting down, nothing more asked */
			conn_maybe_close(c);
		}
	}
}

/*
 * New input: fresh[0..n), just read into the loop's buffer (plain), and
 * what c->in holds; or a reason to look at c->in again (n 0).  HTTP/1.1
 * requests are served from fresh while c->in is empty (h1_take); the rest
 * is kept in c->in and parsed there.  May close c.
 */
static void conn_on_input(struct conn *c, const char *fresh, size_t n)
{
	struct srv_loop *sl = c->sl;
	bool outer = conn_serve_begin(sl);

	conn_parse(c, fresh, n);	/* may close c */
	conn_serve_end(sl, outer);
}

/* TLS: its bufferevent decrypted more input. */
static void conn_on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	srv_loop_refresh(c->sl);
	conn_on_input(c, NULL, 0);
}

/* Plain: one read() of at most len bytes into buf.  >0 bytes read, 0 at
 * EOF, -1 with errno (EAGAIN: nothing there). */
static ssize_t conn_read_into(struct conn *c, void *buf, size_t len)
{
	ssize_t n = read(c->fd, buf, len);

	if (n > 0)
		c->last_read_ns = now_ns();
	return n;
}

/* conn_read_into the loop's buffer (c->sl->rbuf), valid until the next
 * read on this loop. */
static ssize_t conn_read_sock(struct conn *c)
{
	return conn_read_into(c, c->sl->rbuf, SRV_READ_BYTES);
}

/*
 * The client closed its side.  Requests in flight are abandoned (a client
 * that went away cancels them: they must not run), as is an idle
 * connection; answers already made but still queued for the socket go
 * out first (a client may send its requests, then shut down writing),
 * bounded by the write-stall clock.  May close c.
 */
static void conn_on_eof(struct conn *c)
{
	if (c->lingering || c->closing || c->active > 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_close(c);
		return;
	}
	c->close_after_write = true;
	c->h1_busy = true;
	conn_set_reading(c, false);
	conn_maybe_close(c);
}

/*
 * Plain connections read here rather than through the bufferevent: no
 * FIONREAD ioctl and evbuffer expansion per read, and no read timeout
 * re-armed on every read (the idle clock is a timestamp, conn_on_idle_timer).
 * EV_TIMEOUT is never a timeout: srv_drain_conn's "parse what is buffered".
 */
static void conn_on_sock_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer_iovec v;
	bool direct;
	ssize_t n;

	srv_loop_refresh(c->sl);
	if (what & EV_TIMEOUT) {
		conn_on_input(c, NULL, 0);
		return;
	}
	if (!c->reading) {	/* turned off lazily: now for real */
		event_del(c->rd_ev);
		c->rd_added = false;
		return;
	}
	/* a large request body's bytes: straight into its room (h1.c) */
	direct = c->proto == PROTO_H1 && !c->lingering && h1_body_room(c, &v);
	n = direct ? conn_read_into(c, v.iov_base, v.iov_len) : conn_read_sock(c);
	if (n == 0) {
		conn_on_eof(c);
	} else if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(c);
	} else if (direct) {
		struct srv_loop *sl = c->sl;	/* c may be gone after */
		bool outer = conn_serve_begin(sl);

		h1_body_landed(c, &v, (size_t)n);	/* may serve the call */
		conn_serve_end(sl, outer);
	} else if (!c->lingering) {	/* lingering: discarded */
		struct srv_loop *sl = c->sl;	/* c may be gone after */

		sl->fresh = c;
		conn_on_input(c, sl->rbuf, (size_t)n);
		sl->fresh = NULL;
	}
}

uint64_t conn_arrival_ns(const struct conn *c)
{
	return c->sl->fresh == c ? c->last_read_ns : now_ns();
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	srv_loop_refresh(c->sl);
	/* Drained: stop watching for writability until conn_flush leaves
	 * output again (every path that adds output ends in conn_flush). */
	if (!c->tls && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
	if (c->read_paused && !c->closing && !conn_output_full(c)) {
		conn_resume_reading(c);	/* may close c */
		return;
	}
	if (c->proto == PROTO_H1)
		h1_on_written(c);
	else if (c->proto == PROTO_H2 && h2_on(c) && !c->closing)
		/* h2_send stops at output_buffer_bytes with the rest still in
		 * the engine; nothing else pulls it when the response was made off
		 * the read path (a worker's answer) and the client's window
		 * is wide: a response larger than the cap stalled for good */
		h2_send(c);	/* may close c */
	else
		conn_maybe_close(c);
}

/* limits.idle_timeout_ms passed without a request: h2 GOAWAY, else close. */
static void conn_idle_close(struct conn *c)
{
	log_debug("peer=%s msg=\"idle timeout\"", c->peer);
	srv_count_close(CLOSE_IDLE);
	if (c->proto == PROTO_H2 && h2_on(c)) {
		c->close_after_write = true;
		conn_set_reading(c, true);
		h2_goaway(c);	/* may close c: nothing after it */
		return;
	}
	conn_close(c);
}

static void conn_arm_idle_timer(struct conn *c, uint64_t ns)
{
	struct timeval tv = { (time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000) };

	evtimer_add(c->idle_timer, &tv);
}

/*
 * Plain: the idle clock.  Armed for idle_timeout_ms at accept and, when it
 * fires early (something was read since), for what is left from the last
 * read: one timer add per idle period, not one per read.  Not idle while a
 * request is in flight or reading is off (output waits for the client: the
 * write-stall clock runs).  Lingering: the linger is over.
 */
static void conn_on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle, now, since;

	srv_loop_refresh(c->sl);
	if (c->lingering) {
		conn_close(c);
		return;
	}
	idle = (uint64_t)conn_cfg(c)->limits.idle_timeout_ms * 1000000u;
	now = now_ns();
	if (c->active > 0 || !c->reading)
		c->last_read_ns = now;
	since = now - c->last_read_ns;
	if (since + 1000000u < idle) {	/* (a millisecond early is on time) */
		conn_arm_idle_timer(c, idle - since);
		return;
	}
	conn_idle_close(c);	/* may close c */
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->tls && tls_on_event(bev, what, c->peer)) {
		c->tls_done = true;	/* logged */
		return;
	}
	/* Not TLS, a bad or refused hello, or gone half way: counted apart
	 * from other closes (a stalled handshake is the idle timeout's). */
	if (c->tls && !c->tls_done && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
		conn_close_why(c, CLOSE_TLS_HANDSHAKE);
		return;
	}

	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		log_info("peer=%s msg=\"closing: the client has not read for limits.write_stall_timeout_ms\"",
			 c->peer);
		conn_close_why(c, CLOSE_WRITE_STALL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		/* Idle timeout: a connection waiting on inference is not idle. */
		if (c->active > 0) {
			conn_set_reading(c, true);
			return;
		}
		conn_idle_close(c);	/* may close c */
		return;
	}
	conn_close(c);
}

static void conn_peer(struct conn *c, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
	}
	snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
}

static void srv_accept(struct srv_loop *sl, evutil_socket_t fd, struct sockaddr *sa, bool admin);

static void srv_on_accept(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa,
			  int salen, void *arg)
{
	srv_accept(arg, fd, sa, false);
}

static void srv_on_accept_admin(struct evconnlistener *lst, evutil_socket_t fd,
				struct sockaddr *sa, int salen, void *arg)
{
	srv_accept(arg, fd, sa, true);
}

static struct timeval srv_ms(uint32_t ms)
{
	return (struct timeval){ ms / 1000, (ms % 1000) * 1000 };
}

/* Rate-limited warnings: at most one a second per kind, with a count. */
static bool srv_ratelog_ok(struct log_limit *r, uint64_t *suppressed)
{
	return log_limit_ok(r, now_ns(), 1000000000ull, suppressed);
}

/* Over limits.max_connections: a best-effort 503 (the socket buffer of a
 * new connection always takes it) and close, without a struct conn. */
static void srv_refuse(evutil_socket_t fd, uint32_t max)
{
	static struct log_limit rl;
	static const char resp[] =
		"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
		"retry-after: 1\r\nconnection: close\r\ncontent-length: 63\r\n\r\n"
		"{\"error\":\"connection limit reached (limits.max_connections)\"}\n";
	uint64_t suppressed;
	char scratch[4096];
	ssize_t n;

	n = send(fd, resp, sizeof(resp) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	/* What the client already sent is read, so the close sends FIN, not
	 * a RST that could destroy the 503 before it is read. */
	while (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0)
		;
	evutil_closesocket(fd);
	atomic_fetch_add_explicit(&srv_refused, 1, memory_order_relaxed);
	if (srv_ratelog_ok(&rl, &suppressed))
		log_warn("max_connections=%u suppressed=%llu msg=\"connection refused: at limits.max_connections\"",
			 max, (unsigned long long)suppressed);
}

/* Plain: the input buffer, read event and idle timer of our own read path.
 * 0 or -ENOMEM (conn_close frees what was made). */
static int conn_plain_init(struct conn *c)
{
	struct event_base *base = c->sl->loop.base;

	if (c->tls)
		return 0;
	c->in = evbuffer_new();
	c->rd_ev = event_new(base, c->fd, EV_READ | EV_PERSIST, conn_on_sock_read, c);
	c->idle_timer = evtimer_new(base, conn_on_idle_timer, c);
	return c->in && c->rd_ev && c->idle_timer ? 0 : -ENOMEM;
}

static void srv_accept(struct srv_loop *sl, evutil_socket_t fd, struct sockaddr *sa, bool admin)
{
	const struct config *cfg;
	struct timeval idle, stall;
	struct conn *c;
	int one = 1;

	srv_loop_refresh(sl);
	cfg = sl->lease.rt->cfg;
	if (sl->draining) {
		evutil_closesocket(fd);
		return;
	}
	if (atomic_fetch_add(&sl->srv->conns_open, 1) >= (int)cfg->limits.max_connections) {
		atomic_fetch_sub(&sl->srv->conns_open, 1);
		srv_refuse(fd, cfg->limits.max_connections);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c) {
		atomic_fetch_sub(&sl->srv->conns_open, 1);
		evutil_closesocket(fd);
		return;
	}
	c->sl = sl;
	c->fd = fd;
	c->admin = admin;
	/* the admin listener: TLS only with admin.tls (as it was at start) */
	c->tls = sl->lease.rt->tls && (!admin || sl->srv->admin_tls);
	c->bev = c->tls ? tls_bufferevent_new(sl->loop.base, sl->lease.rt->tls, fd)
			: bufferevent_socket_new(sl->loop.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		log_warn("msg=\"cannot set up a connection: out of memory\"");
		atomic_fetch_sub(&sl->srv->conns_open, 1);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->hdr_timer = evtimer_new(sl->loop.base, conn_on_header_timer, c);
	c->stall_timer = evtimer_new(sl->loop.base, conn_on_stall_timer, c);
	conn_peer(c, sa);
	c->next = sl->conns;
	if (sl->conns)
		sl->conns->prev = c;
	sl->conns = c;
	sl->n_conns++;
	atomic_fetch_add(&sl->srv->conns_total, 1);
	if (!c->hdr_timer || !c->stall_timer || conn_plain_init(c)) {
		conn_close(c);
		return;
	}
	idle = srv_ms(cfg->limits.idle_timeout_ms);
	stall = srv_ms(cfg->limits.write_stall_timeout_ms);
	/* Input waiting to be parsed is bounded: conn_input_check. */
	/* TLS: its bufferevent reads, and writes the ciphertext; plain: we
	 * read (conn_on_sock_read), conn_flush writes and enables writing
	 * only for what the socket did not take. */
	if (c->tls) {
		c->in = bufferevent_get_input(c->bev);
		bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
		bufferevent_set_timeouts(c->bev, &idle, &stall);
		bufferevent_enable(c->bev, EV_WRITE);
	} else {	/* a new bufferevent starts with writing enabled */
		bufferevent_setcb(c->bev, NULL, conn_on_write, conn_on_event, c);
		bufferevent_set_timeouts(c->bev, NULL, &stall);
		bufferevent_disable(c->bev, EV_WRITE);
		conn_arm_idle_timer(c, (uint64_t)cfg->limits.idle_timeout_ms * 1000000u);
	}
	conn_set_reading(c, true);
	conn_arm_header_timer(c);
}

static void srv_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct srv_loop *sl = arg;

	log_warn("loop=%d open_connections=%d msg=\"shutdown grace period over; closing\"",
		 sl->loop.idx, sl->n_conns);
	event_base_loopexit(sl->loop.base, NULL);
}

size_t conn_read_pending(struct conn *c)
{
	/* (TLS: what was decrypted is in already; lingering: discarded) */
	if (!c->tls && !c->lingering && evbuffer_get_length(c->in) < conn_input_cap(c)) {
		ssize_t n = conn_read_sock(c);	/* EOF and errors: the read event sees them */

		if (n > 0)
			evbuffer_add(c->in, c->sl->rbuf, (size_t)n);
	}
	return evbuffer_get_length(c->in);
}

/*
 * Shutdown: HTTP/2 gets GOAWAY; an HTTP/1.1 request already sent is
 * answered (with Connection: close), even one still in the socket buffer;
 * idle connections close now.  May close c.
 */
static void srv_drain_conn(struct conn *c)
{
	struct evbuffer *in = c->in;

	if (c->lingering)
		return;		/* answered, closing on its own */
	if (c->proto == PROTO_H2 && h2_on(c)) {
		h2_goaway(c);
		return;
	}
	if (c->h1_busy)
		return;		/* h1_respond decides, with conn_read_pending */
	conn_read_pending(c);
	if (evbuffer_get_length(in) == 0 && !c->h1_call) {
		c->close_after_write = true;
		conn_maybe_close(c);	/* now, or once an answer still queued is out */
		return;
	}
	/* h1_respond sees the loop draining and answers with Connection: close. */
	if (c->tls)
		bufferevent_trigger(c->bev, EV_READ,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	else
		event_active(c->rd_ev, EV_TIMEOUT, 0);	/* conn_on_sock_read: parse */
}

/* On the loop thread: stop accepting, tell clients, close idle connections. */
static void srv_loop_on_stop(struct loop *l)
{
	struct srv_loop *sl = l->owner;
	struct conn *c, *next;

	uint32_t grace = sl->lease.rt->cfg->limits.shutdown_grace_ms;
	struct timeval tv = { grace / 1000, (grace % 1000) * 1000 };

	if (sl->draining)
		return;
	sl->draining = true;
	/* In-flight work gets shutdown_grace_ms; then the loop ends regardless. */
	sl->grace = evtimer_new(sl->loop.base, srv_on_grace, sl);
	evtimer_add(sl->grace, &tv);
	if (sl->lst) {
		evconnlistener_free(sl->lst);
		sl->lst = NULL;
	}
	if (sl->admin_lst) {
		evconnlistener_free(sl->admin_lst);
		sl->admin_lst = NULL;
	}
	if (sl->grpc_lst) {
		evconnlistener_free(sl->grpc_lst);
		sl->grpc_lst = NULL;
	}
	for (c = sl->conns; c; c = next) {
		next = c->next;
		srv_drain_conn(c);	/* may close c */
	}
	srv_loop_check_drained(sl);
}

static void *srv_loop_main(void *arg)
{
	struct srv_loop *sl = arg;
	char name[16];

	if (sl->admin_only)
		snprintf(name, sizeof(name), "igw-admin");
	else
		snprintf(name, sizeof(name), "igw-loop%d", (int)(sl - sl->srv->loops));
	pthread_setname_np(pthread_self(), name);	/* for top -H, perf, gdb */
	event_base_dispatch(sl->loop.base);
	return NULL;
}

/*
 * Listen on address:*port with SO_REUSEPORT.  When *port is 0 the kernel
 * picks one and *port is set to it, so later loops bind the same port.
 */
/*
 * SO_REUSEPORT would let a second gateway silently share our port; a plain
 * bind first tells "in use" apart.  Only for the first bind of a port.
 */
static int srv_port_free(const struct sockaddr *sa, int salen)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc = 0;

	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, sa, salen) < 0 && errno == EADDRINUSE)
		rc = -EADDRINUSE;
	close(fd);
	return rc;
}

static void srv_on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct srv_loop *sl = arg;

	if (sl->draining)
		return;
	if (sl->lst)
		evconnlistener_enable(sl->lst);
	if (sl->admin_lst)
		evconnlistener_enable(sl->admin_lst);
	if (sl->grpc_lst)
		evconnlistener_enable(sl->grpc_lst);
}

/*
 * accept() failed for want of descriptors or memory: the pending
 * connection stays in the backlog and the listener would fire again at
 * once, spinning.  Stop accepting for 100 ms instead, and say so at most
 * once a second.
 */
static void srv_on_accept_error(struct evconnlistener *lst, void *arg)
{
	static struct log_limit rl;
	struct srv_loop *sl = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { 0, 100000 };
	uint64_t suppressed;

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
		return;
	if (!sl->accept_resume)
		sl->accept_resume = evtimer_new(sl->loop.base, srv_on_accept_resume, sl);
	if (!sl->accept_resume)
		return;
	if (sl->lst)
		evconnlistener_disable(sl->lst);
	if (sl->admin_lst)
		evconnlistener_disable(sl->admin_lst);
	if (sl->grpc_lst)
		evconnlistener_disable(sl->grpc_lst);
	evtimer_add(sl->accept_resume, &pause);
	if (srv_ratelog_ok(&rl, &suppressed))
		log_warn("loop=%d err=\"%s\" suppressed=%llu msg=\"cannot accept connections (raise the file descriptor limit, ulimit -n); pausing accept for 100 ms\"",
			 sl->loop.idx, strerror(err), (unsigned long long)suppressed);
}

static struct evconnlistener *srv_listen(struct srv_loop *sl, const char *address, int *port,
					 evconnlistener_cb cb, char **err)
{
	struct evconnlistener *lst;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[128];

	snprintf(addr, sizeof(addr), strchr(address, ':') ? "[%s]:%d" : "%s:%d", address, *port);
	/* libevent's parser refuses port 0; parse the address alone, set the port. */
	if (evutil_parse_sockaddr_port(address, (struct sockaddr *)&ss, &sslen)) {
		*err = yt_strdupf("cannot parse listen address \"%s\"", address);
		return NULL;
	}
	if (ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)*port);
	else
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)*port);
	if (*port != 0 && (sl->loop.idx == 0 || sl->admin_only) &&
	    srv_port_free((struct sockaddr *)&ss, sslen)) {
		*err = yt_strdupf("cannot listen on %s: address already in use", addr);
		return NULL;
	}
	lst = evconnlistener_new_bind(sl->loop.base, cb, sl,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
				      LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
				      1024, (struct sockaddr *)&ss, sslen);
	if (!lst) {
		*err = yt_strdupf("cannot listen on %s: %s", addr, strerror(errno));
		return NULL;
	}
	evconnlistener_set_error_cb(lst, srv_on_accept_error);
	if (*port == 0) {
		struct sockaddr_storage b;
		socklen_t blen = sizeof(b);

		getsockname(evconnlistener_get_fd(lst), (struct sockaddr *)&b, &blen);
		*port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
						      : ((struct sockaddr_in *)&b)->sin_port);
	}
	return lst;
}

/* A data loop gets the main listener; the admin loop only the admin one. */
static int srv_bind(struct server *s, struct srv_loop *sl, char **err)
{
	const struct config *cfg = s->cfg;

	if (sl->admin_only) {
		sl->admin_lst = srv_listen(sl, cfg->admin.address, &s->admin_port,
					   srv_on_accept_admin, err);
		return sl->admin_lst ? 0 : -EADDRINUSE;
	}
	sl->lst = srv_listen(sl, cfg->listen.address, &s->port, srv_on_accept, err);
	if (!sl->lst)
		return -EADDRINUSE;
	/* Triton's gRPC port: one more listener into the same accept path
	 * (h2c or TLS, gRPC and HTTP alike), on the same loops. */
	if (s->grpc_port >= 0) {
		sl->grpc_lst = srv_listen(sl, cfg->listen.address, &s->grpc_port, srv_on_accept, err);
		if (!sl->grpc_lst)
			return -EADDRINUSE;
	}
	return 0;
}

/* srv_start failed with rc after initializing loops [0, n) (no thread
 * started yet): free them and what they hold (listeners bound so far, the
 * snapshot reference), as srv_destroy does.  rc. */
static int srv_start_undo(struct server *s, int n, int rc)
{
	s->n_loops = n;
	srv_destroy(s);
	s->n_loops = 0;
	return rc;
}

/* address is a loopback one (127.0.0.0/8, ::1, localhost). */
static bool srv_loopback(const char *address)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!strcmp(address, "localhost"))
		return true;
	if (inet_pton(AF_INET, address, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, address, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* The admin listener's line at start, and a warning when anyone off the
 * host may reach it without a token. */
static void srv_log_admin(const struct config *cfg, int port)
{
	log_info("admin=%s:%d auth=%s tls=%s msg=\"admin listener (own loop thread): /metrics, "
		 "/v2/health, /admin%s\"", cfg->admin.address, port,
		 cfg->admin.token ? "bearer" : "none", cfg->admin.tls ? "on" : "off",
		 cfg->admin.token ? " (a bearer token: admin.token_file)" : "");
	if (!cfg->admin.token && !srv_loopback(cfg->admin.address))
		log_warn("admin=%s:%d msg=\"the admin listener is off loopback and admin.token_file "
			 "is not set: anyone who reaches it can reload the configuration, drain "
			 "backends and unload models (docs/security.md)\"", cfg->admin.address, port);
}

int srv_start(struct server *s, const struct config *cfg, char **err)
{
	bool tls;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->admin_tls = cfg->admin.tls;
	s->port = cfg->listen.port;
	s->admin_port = cfg->admin.port;
	s->grpc_port = cfg->listen.grpc_port;
	/* Admin work (repository, reloads, metrics) never shares a loop with
	 * inference: the admin listener has a loop thread of its own, last. */
	s->n_loops = cfg->listen.threads + (s->admin_port >= 0);
	s->loops = calloc(s->n_loops, sizeof(*s->loops));
	if (!s->loops) {
		s->n_loops = 0;
		*err = yt_strdupf("cannot create event loops: out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < s->n_loops; i++) {
		struct srv_loop *sl = &s->loops[i];
		int rc = loop_init(&sl->loop, i);

		if (rc) {
			*err = yt_strdupf("cannot create event loop: %s", strerror(-rc));
			return srv_start_undo(s, i, rc);
		}
		sl->srv = s;
		h2mem_init(&sl->h2mem);
		sl->admin_only = s->admin_port >= 0 && i == cfg->listen.threads;
		srv_loop_refresh(sl);
		sl->refresh.fn = srv_loop_on_refresh;
		sl->loop.owner = sl;
		sl->loop.on_stop = srv_loop_on_stop;
		rc = srv_bind(s, sl, err);
		if (rc)
			return srv_start_undo(s, i + 1, rc);
	}
	adm_set_port(s->admin_port);	/* the API's 403 names the admin listener */
	met_on_render(srv_metrics);	/* /metrics: the connection counters */
	met_on_render(grpc_metrics);	/* and the gRPC answers */
	/* read before the loops run: each refreshes its own lease */
	tls = s->loops[0].lease.rt->tls != NULL;
	for (int i = 0; i < s->n_loops; i++)
		pthread_create(&s->loops[i].loop.thread, NULL, srv_loop_main, &s->loops[i]);
	rt_on_publish(srv_on_publish, s);
	log_info("listen=%s:%d threads=%d threads_from=%s tls=%s http2_engine=%s msg=\"serving %s\"",
		 cfg->listen.address, s->port, cfg->listen.threads, cfg->listen.threads_from,
		 tls ? "on" : "off", cfg->listen.http2_nghttp2 ? "nghttp2" : "native",
		 tls ? "HTTP/2 and HTTP/1.1 over TLS (ALPN)" : "HTTP/2 (h2c) and HTTP/1.1");
	if (s->grpc_port >= 0)
		log_info("grpc_listen=%s:%d msg=\"Triton's gRPC port: the same HTTP/2 stack (gRPC and HTTP)\"",
			 cfg->listen.address, s->grpc_port);
	if (s->admin_port >= 0)
		srv_log_admin(cfg, s->admin_port);
	return 0;
}

void srv_stop(struct server *s)
{
	rt_on_publish(NULL, NULL);
	for (int i = 0; i < s->n_loops; i++)
		loop_request_stop(&s->loops[i].loop);
	for (int i = 0; i < s->n_loops; i++)
		pthread_join(s->loops[i].loop.thread, NULL);
}

/* Run completions that arrived after the loops ended, then free everything. */
void srv_destroy(struct server *s)
{
	for (int i = 0; i < s->n_loops; i++) {
		struct srv_loop *sl = &s->loops[i];

		loop_drain_mail(&sl->loop);
		while (sl->conns)
			conn_close(sl->conns);
		call_free_list(sl);
		h2mem_drain(&sl->h2mem);
		if (sl->grace)
			event_free(sl->grace);
		if (sl->accept_resume)
			event_free(sl->accept_resume);
		if (sl->lst)
			evconnlistener_free(sl->lst);
		if (sl->admin_lst)
			evconnlistener_free(sl->admin_lst);
		if (sl->grpc_lst)
			evconnlistener_free(sl->grpc_lst);
		loop_destroy(&sl->loop);
		rt_lease_drop(&sl->lease);
		sl->cfg = NULL;
	}
	free(s->loops);
	s->loops = NULL;
}
