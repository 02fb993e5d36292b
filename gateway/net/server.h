/*
 * server.h - listeners, event-loop threads and connections.
 *
 * One loop per thread, each with its own SO_REUSEPORT listener, so the
 * kernel spreads connections and a connection never changes thread.  The
 * admin listener has a loop of its own (the last of server.loops), so
 * admin work never stalls a loop that serves inference.  A connection
 * starts as PROTO_UNKNOWN; on TLS (tls.h) the ALPN protocol decides, else
 * its first bytes: the HTTP/2 client preface means h2 with prior
 * knowledge, anything else HTTP/1.1.  A cleartext HTTP/1.1 connection
 * becomes HTTP/2 when a request asks with Upgrade: h2c (h1.c, h2_upgrade).
 */
#ifndef INFERGW_SERVER_H
#define INFERGW_SERVER_H

#include <event2/buffer.h>	/* struct evbuffer_iovec (a macro for struct iovec) */
#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "h1parse.h"
#include "h2mem.h"
#include "http.h"
#include "loop.h"
#include "runtime.h"

struct config;
struct runtime;
struct bufferevent;
struct evconnlistener;
struct event;

/* One read's worth: what a plain connection's read() takes at most. */
#define SRV_READ_BYTES 16384

struct srv_loop {
	struct loop loop;
	struct server *srv;
	struct evconnlistener *lst;
	struct evconnlistener *admin_lst;	/* the admin loop only */
	struct evconnlistener *grpc_lst;	/* listen.grpc_port: the same stack as lst */
	bool admin_only;		/* the admin listener's own loop: no inference */
	struct conn *conns;		/* doubly linked */
	int n_conns;
	bool draining;
	struct event *grace;
	struct event *accept_resume;	/* accept paused on EMFILE until this fires */
	struct rt_lease lease;		/* the current runtime: rt, lent to each call */
	const struct config *cfg;	/* rt's, for conn_cfg (set with rt) */
	struct call *free_calls;	/* recycled calls (call.c) */
	int n_free_calls;
	struct h2mem h2mem;		/* its nghttp2 sessions' blocks (h2mem.h) */
	struct loop_task refresh;	/* posted on publish */
	_Atomic bool refresh_pending;
	/* The connection whose just-read bytes are being parsed (inside
	 * conn_on_sock_read), else NULL: conn_arrival_ns. */
	const struct conn *fresh;
	/* Plain connections read here, then keep what the parser left
	 * (conn_on_sock_read): no per-connection read buffer, no FIONREAD. */
	char rbuf[SRV_READ_BYTES];
};

struct server {
	const struct config *cfg;	/* the startup config: listeners, threads */
	int port;			/* bound port (resolved when config says 0) */
	int admin_port;			/* bound admin port; -1 when disabled */
	int grpc_port;			/* bound listen.grpc_port; -1 when disabled */
	bool admin_tls;			/* admin.tls as it was at start (restart-only; cfg
					 * may be retired by a reload, this stays) */
	int n_loops;
	struct srv_loop *loops;
	_Atomic uint64_t conns_total;
	_Atomic int conns_open;		/* across loops, for limits.max_connections */
};

/* Why a connection was closed by the gateway (or refused), for /metrics. */
enum srv_close_reason {
	CLOSE_HEADER_TIMEOUT,
	CLOSE_WRITE_STALL,
	CLOSE_IDLE,
	CLOSE_PROTOCOL_ERROR,
	CLOSE_H2_OFFENCES,
	CLOSE_TLS_HANDSHAKE,	/* error or EOF before the TLS handshake was done */
	CLOSE_REASONS
};

struct conn {
	struct srv_loop *sl;
	struct bufferevent *bev;	/* output (and TLS input) */
	int fd;
	struct evbuffer *in;		/* unparsed input; TLS: its bufferevent's */
	struct event *rd_ev;		/* plain: EV_READ on fd (conn_set_reading) */
	struct event *idle_timer;	/* plain: idle clock, then the linger's end */
	uint64_t last_read_ns;		/* plain: the idle clock runs from here */
	enum http_proto proto;
	bool admin;			/* accepted on the admin listener */
	bool tls;			/* bev is a TLS bufferevent (tls.h) */
	bool tls_done;			/* its handshake completed */
	nghttp2_session *h2;		/* h2, listen.http2_engine nghttp2 */
	struct h2w *h2w;		/* h2, the native engine (h2w.h) */
	struct call *h2_calls;		/* h2: calls attached to open streams (h2.c) */
	struct call *h2_last_call;	/* h2: attached, looked at first (h2_call) */
	struct h2_memo *h2_memo;	/* h2: verdicts on the last header block's fields (h2.c) */
	struct call *h1_call;		/* request being read or served */
	size_t h1_body_left;
	bool h1_chunked;		/* Transfer-Encoding: chunked body */
	struct h1p_chunked h1_ck;	/* its decoder */
	bool h1_busy;			/* response pending: stop parsing */
	bool h1_keepalive;
	bool h1_10;			/* the request is HTTP/1.0 */
	bool h1_upgrade;		/* Upgrade: h2c once its body is in (h1.c) */
	bool h1_last;			/* the request served took the read's last byte */
	bool in_read;			/* inside h1_on_read / h2_on_read */
	bool close_after_write;
	bool closing;
	bool reading;			/* conn_set_reading's last word */
	bool rd_added;			/* plain: rd_ev pending (may lag reading) */
	bool read_paused;		/* output above limits.output_buffer_bytes */
	bool input_full;		/* unparsed input at its cap: not reading */
	bool lingering;			/* answered and closing: discarding input */
	bool hdr_timer_armed;
	struct event *hdr_timer;	/* limits.header_timeout_ms */
	struct event *stall_timer;	/* h2: answers blocked by the client's window */
	uint64_t out_progress;		/* h2: bytes handed to the socket buffer so far */
	uint64_t stall_mark;		/* out_progress when stall_timer was armed */
	int h2_blocked;			/* h2: answered streams not yet fully sent */
	uint64_t h2_reserved;		/* h2: room reserved for its streams' bodies */
	int h2_offences;		/* h2: streams reset for oversized headers */
	int active;			/* calls waiting for a response */
	struct conn *prev, *next;
	char peer[64];
};

/*
 * srv_start - bind listeners and start cfg->listen.threads loop threads,
 * serving the current runtime (rt_publish before).  0 or -errno with *err;
 * on failure (a port in use, say) whatever it made is freed already.
 */
int srv_start(struct server *s, const struct config *cfg, char **err);
/*
 * srv_loop_refresh - pick up a newly published runtime.  Called at the top
 * of every event callback, so a config pointer read inside one callback
 * stays valid until it returns.
 */
void srv_loop_refresh(struct srv_loop *sl);
/* conn_cfg - the configuration in force for c's loop right now (inline:
 * read for every header of every request). */
static inline const struct config *conn_cfg(const struct conn *c);
/* srv_stop - stop accepting, GOAWAY, finish in-flight calls, join threads. */
void srv_stop(struct server *s);
/* srv_destroy - after srv_stop and rt_stop_all: run late completions, free. */
/* call_free_list - free a loop's recycled calls (shutdown). */
void call_free_list(struct srv_loop *sl);
void srv_destroy(struct server *s);

/* Connection internals shared by server.c, h1.c and h2.c. */
void conn_close(struct conn *c);
/* conn_arrival_ns - when what is being parsed for c arrived: the time of
 * the read being parsed (a plain connection's read callback; no clock
 * read), else now (TLS, input parsed later). */
uint64_t conn_arrival_ns(const struct conn *c);
/* conn_read_pending - take what the client already sent from the socket
 * into c's input now; the bytes of input.  For decisions at shutdown. */
size_t conn_read_pending(struct conn *c);
/* conn_close_soon - close from the loop, after the current callback (and
 * what is queued) is done: for paths whose callers still use c. */
void conn_close_soon(struct conn *c);
/* conn_close_why - conn_close, counted under reason in /metrics. */
void conn_close_why(struct conn *c, enum srv_close_reason reason);
/* srv_count_close - count a close the transport does itself (h2 GOAWAY). */
void srv_count_close(enum srv_close_reason reason);
/* srv_count_h2_session - an HTTP/2 session began, framed by nghttp2 or
 * the native engine (infergw_http2_sessions_total). */
void srv_count_h2_session(bool nghttp2);
/* conn_arm_header_timer - start limits.header_timeout_ms unless running. */
void conn_arm_header_timer(struct conn *c);
void conn_disarm_header_timer(struct conn *c);
/*
 * conn_set_reading - the one switch for reading c's socket, whatever the
 * reason (backpressure, a request in flight, closing).  Plain: turning
 * off is lazy (the event stays until it next fires), so an off/on pair
 * between two reads costs no epoll_ctl; turning on restarts the idle
 * clock.  TLS: its bufferevent's reading.
 */
void conn_set_reading(struct conn *c, bool on);
/* conn_pause_reading - stop reading (output above the cap); the write
 * callback resumes reading and parsing once the output has drained. */
void conn_pause_reading(struct conn *c);
/* conn_input_check - stop reading while the unparsed input is at its cap
 * (a head's limit plus 64 KiB); read again once the parser took it below.
 * Called after each read and after each parse. */
void conn_input_check(struct conn *c);
/* conn_output_full - more than limits.output_buffer_bytes queued. */
bool conn_output_full(const struct conn *c);
/* conn_watch_stall - h2: start the write-stall clock while answers wait on
 * the client's flow-control window; stop it when none do. */
void conn_watch_stall(struct conn *c);
/* srv_metrics - the connection counters in Prometheus text format. */
void srv_metrics(struct evbuffer *out);
/*
 * conn_answers_now - inside a read of c (conn_on_input): dispatch the
 * requests parsed so far and deliver the answers this thread completed,
 * so that c's go out with the send that ends the read.  Answers for other
 * connections are delivered too (their writes come a loop round later, as
 * from the mailbox).  May close connections other than c; c stays.
 */
void conn_answers_now(struct conn *c);
/* conn_flush - write what is queued now, without waiting a loop round. */
void conn_flush(struct conn *c);
/*
 * conn_write_now - buf[0..n) out to c now: one send straight from buf
 * when c is plain TCP and nothing is queued before it (an HTTP/1.1
 * answer's evbuffer add, write and drain cost ~650 instructions more),
 * what the socket does not take queued for the bufferevent; otherwise
 * queued, then conn_flush.  For a connection's last answer of a read
 * (answers before it would each cost a send).  Never closes c.
 */
void conn_write_now(struct conn *c, const void *buf, size_t n);
/* conn_maybe_close - close when nothing is left to read or write. */
void conn_maybe_close(struct conn *c);
void conn_transport_respond(struct call *call);

static inline const struct config *conn_cfg(const struct conn *c)
{
	return c->sl->cfg;
}

/* HTTP/1.1 (h1.c). */
void h1_on_read(struct conn *c);
/*
 * h1_take - for a plain connection whose c->in is empty: serve the
 * complete requests at the start of p[0..n) (just read) straight from
 * there, their content-length bodies copied once into the call's body,
 * sparing their copy into c->in and its search and drain.  Stops at
 * anything else (a partial or oversized head, a chunked body, an upgrade,
 * output at its cap, a request not answered at once); a head taken has
 * its call set up, and h1_on_read goes on with it.  The bytes used: the
 * caller appends the rest to c->in, then calls h1_on_read (which
 * flushes).  Never closes c.
 */
size_t h1_take(struct conn *c, const char *p, size_t n);
/*
 * h1_body_room - where the next bytes of a plain connection's request body
 * may be read to directly: a content-length body with room reserved for
 * all of it, at least H1_DIRECT_MIN bytes still to come, nothing else
 * unparsed.  *v: that room, at most what the body lacks (so that a read
 * never takes the next request's bytes).  false: read the usual way.
 */
bool h1_body_room(struct conn *c, struct evbuffer_iovec *v);
/* h1_body_landed - n (> 0) bytes were read into h1_body_room's v: the
 * body grows; once whole the call is served.  Never closes c. */
void h1_body_landed(struct conn *c, struct evbuffer_iovec *v, size_t n);
void h1_respond(struct call *call);
void h1_on_written(struct conn *c);
/* h1_header_timeout - 408 when part of a head came, else close. */
void h1_header_timeout(struct conn *c);
/* HTTP/2 (h2.c): either engine, as listen.http2_engine chose when the
 * connection became HTTP/2. */
int h2_start(struct conn *c);
/* h2_on - c speaks HTTP/2 and its session is there. */
static inline bool h2_on(const struct conn *c) { return c->h2 || c->h2w; }
/* h2_want_read, h2_want_write - the session reads on / has frames to
 * write (h2_on(c) only). */
bool h2_want_read(const struct conn *c);
bool h2_want_write(const struct conn *c);
/* h2_terminate - GOAWAY(code) and end the session once it is written
 * (h2_send then closes c). */
void h2_terminate(struct conn *c, uint32_t code);
/*
 * h2_on_read - parse what c->in holds (nothing: send only), then send
 * what the HTTP/2 engine has; with the output above its cap, pause reading instead
 * (the write callback comes back here).  May close c.
 */
void h2_on_read(struct conn *c);
/*
 * h2_take - for a plain connection whose c->in is empty: feed p[0..n)
 * (just read) to the HTTP/2 engine straight from there, sparing its copy into
 * c->in, pullup and drain.  Sends nothing; takes nothing while the
 * output is above its cap.  The bytes used (the caller appends the rest
 * to c->in, then calls h2_on_read, which sends), or -1 when the session
 * failed: c is closing, or gone.
 */
ssize_t h2_take(struct conn *c, const char *p, size_t n);
void h2_respond(struct call *call);
/* h2_send - flush what the engine wants to write, then close c when the
 * session is done: callers must not touch c afterwards.  0 or -1. */
int h2_send(struct conn *c);
/* h2_goaway - GOAWAY(NO_ERROR) and send; may close c like h2_send. */
void h2_goaway(struct conn *c);
void h2_free(struct conn *c);
/*
 * h2_upgrade - switch c to HTTP/2 for an HTTP/1.1 request that asked to
 * (Upgrade: h2c, RFC 7540 §3.2), its body read: a server session that
 * takes settings (the HTTP2-Settings value, base64url) as the client's
 * SETTINGS and call as stream 1, half-closed.  Queues our SETTINGS, sends
 * nothing: the caller writes the 101 first.  0; -1 when settings is
 * missing or malformed (not base64url, not 6-byte entries, too many, a
 * value SETTINGS may not carry) or the engine refuses: c is as it was.
 */
int h2_upgrade(struct conn *c, struct call *call, const char *settings);
/*
 * h2_stream_write - a streaming answer (call->h2_streaming): the first
 * call submits the response headers with a body that is read from
 * call->resp as it fills (deferred while empty); later ones resume it.
 * h2_respond then ends it (trailers for gRPC).  Sends unless in the read
 * path (which sends once at its end).
 */
void h2_stream_write(struct call *call);
/*
 * h2_reserve - n bytes of room for call's body, held against its
 * connection's budget for declared bodies (the one h2_body_reserve keeps:
 * what a connection's open streams may have reserved and not filled):
 * 0, or -1 when n is over limits.max_body_bytes or the budget.  Released
 * by h2_unreserve, or when the stream closes.
 */
int h2_reserve(struct call *call, uint64_t n);
/* h2_unreserve - n bytes of h2_reserve's back (at most what call holds). */
void h2_unreserve(struct call *call, uint64_t n);
/* h2_stream_consume - give call's held DATA bytes (call->h2_rx) back to
 * the client's stream and connection windows (streamed requests hold them
 * until the gRPC layer has room, h2_on_data). */
void h2_stream_consume(struct call *call);
/* h2_header_timeout - GOAWAY and close: no request came in time. */
void h2_header_timeout(struct conn *c);

#endif
