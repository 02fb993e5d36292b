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
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "infer.h"
#include "log.h"
#include "runtime.h"
#include "scheduler.h"
#include "ytree.h"

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
	struct runtime *rt;

	if (sl->rt && sl->rt->generation == rt_generation())
		return;
	rt = rt_current();
	if (!rt)
		return;
	rt_put(sl->rt);
	sl->rt = rt;
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

const struct config *conn_cfg(const struct conn *c)
{
	return c->sl->rt->cfg;
}

void conn_close(struct conn *c)
{
	struct srv_loop *sl = c->sl;

	if (c->closing)
		return;
	c->closing = true;
	if (c->h2)
		h2_free(c);
	if (c->h1_call) {
		struct call *call = c->h1_call;

		c->h1_call = NULL;
		if (call->async && !call->responded)
			api_abandon(call);	/* inference or admin job in flight */
		else
			call_free(call);
	}
	bufferevent_free(c->bev);
	conn_unlink(c);
	log_debug("peer=%s msg=\"connection closed\"", c->peer);
	free(c);
	srv_loop_check_drained(sl);
}

void conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	/* Write now rather than after the next epoll round: one round of
	 * latency less per response.  What the socket does not take stays
	 * queued and the bufferevent writes it when the socket drains. */
	if (evbuffer_get_length(out) == 0)
		return;
	evbuffer_write(out, bufferevent_getfd(c->bev));
	/* The bufferevent only calls our write callback after writes of its
	 * own; when we emptied the buffer, ask for it (deferred, so nothing
	 * is freed under our callers). */
	if (evbuffer_get_length(out) == 0)
		bufferevent_trigger(c->bev, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_maybe_close(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (evbuffer_get_length(out) > 0)
		return;		/* the write callback comes back here */
	if (c->proto == PROTO_H2 && c->h2 && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2)) {
		conn_close(c);
		return;
	}
	if (c->close_after_write && c->active == 0)
		conn_close(c);
}

void conn_transport_respond(struct call *call)
{
	if (call->conn->proto == PROTO_H2)
		h2_respond(call);
	else
		h1_respond(call);
}

/* Decide the protocol from the first bytes: 0 = need more, 1 = decided. */
static int conn_sniff(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t have = evbuffer_get_length(in), n = have < 24 ? have : 24;
	unsigned char buf[24];

	evbuffer_copyout(in, buf, n);
	if (memcmp(buf, h2_preface, n) != 0) {
		c->proto = PROTO_H1;
		return 1;
	}
	if (n < 24)
		return 0;
	c->proto = PROTO_H2;
	if (h2_start(c)) {
		conn_close(c);
		return -1;
	}
	return 1;
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	srv_loop_refresh(c->sl);
	if (c->proto == PROTO_UNKNOWN && conn_sniff(c) <= 0)
		return;
	sched_defer_begin();
	if (c->proto == PROTO_H2)
		h2_on_read(c);
	else
		h1_on_read(c);
	sched_defer_end();
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->proto == PROTO_H1)
		h1_on_written(c);
	else
		conn_maybe_close(c);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		/* Idle timeout: a connection waiting on inference is not idle. */
		if (c->active > 0) {
			bufferevent_enable(bev, EV_READ);
			return;
		}
		log_debug("peer=%s msg=\"idle timeout\"", c->peer);
		if (c->proto == PROTO_H2 && c->h2) {
			c->close_after_write = true;
			bufferevent_enable(bev, EV_READ);
			h2_goaway(c);	/* may close c: nothing after it */
			return;
		}
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

static void srv_accept(struct srv_loop *sl, evutil_socket_t fd, struct sockaddr *sa, bool admin)
{
	const struct config *cfg;
	struct timeval idle;
	struct conn *c;
	int one = 1;

	srv_loop_refresh(sl);
	cfg = sl->rt->cfg;
	idle = (struct timeval){ cfg->limits.idle_timeout_ms / 1000,
				 (cfg->limits.idle_timeout_ms % 1000) * 1000 };
	if (sl->draining) {
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	c->sl = sl;
	c->admin = admin;
	c->bev = bufferevent_socket_new(sl->loop.base, fd, BEV_OPT_CLOSE_ON_FREE);
	conn_peer(c, sa);
	c->next = sl->conns;
	if (sl->conns)
		sl->conns->prev = c;
	sl->conns = c;
	sl->n_conns++;
	atomic_fetch_add(&sl->srv->conns_total, 1);
	bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
	bufferevent_set_timeouts(c->bev, &idle, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void srv_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct srv_loop *sl = arg;

	log_warn("loop=%d open_connections=%d msg=\"shutdown grace period over; closing\"",
		 sl->loop.idx, sl->n_conns);
	event_base_loopexit(sl->loop.base, NULL);
}

/* On the loop thread: stop accepting, tell clients, close idle connections. */
static void srv_loop_on_stop(struct loop *l)
{
	struct srv_loop *sl = l->owner;
	struct conn *c, *next;

	uint32_t grace = sl->rt->cfg->limits.shutdown_grace_ms;
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
	for (c = sl->conns; c; c = next) {
		next = c->next;
		if (c->proto == PROTO_H2 && c->h2) {
			h2_goaway(c);	/* may close c */
		} else if (!c->h1_busy) {
			conn_close(c);
		} else {
			c->close_after_write = true;
		}
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
	return sl->lst ? 0 : -EADDRINUSE;
}

int srv_start(struct server *s, const struct config *cfg, char **err)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->port = cfg->listen.port;
	s->admin_port = cfg->admin.port;
	/* Admin work (repository, reloads, metrics) never shares a loop with
	 * inference: the admin listener has a loop thread of its own, last. */
	s->n_loops = cfg->listen.threads + (s->admin_port >= 0);
	s->loops = calloc(s->n_loops, sizeof(*s->loops));
	for (int i = 0; i < s->n_loops; i++) {
		struct srv_loop *sl = &s->loops[i];
		int rc = loop_init(&sl->loop, i);

		if (rc) {
			*err = yt_strdupf("cannot create event loop: %s", strerror(-rc));
			return rc;
		}
		sl->srv = s;
		sl->admin_only = s->admin_port >= 0 && i == cfg->listen.threads;
		sl->rt = rt_current();
		sl->refresh.fn = srv_loop_on_refresh;
		sl->loop.owner = sl;
		sl->loop.on_stop = srv_loop_on_stop;
		rc = srv_bind(s, sl, err);
		if (rc)
			return rc;
	}
	for (int i = 0; i < s->n_loops; i++)
		pthread_create(&s->loops[i].loop.thread, NULL, srv_loop_main, &s->loops[i]);
	rt_on_publish(srv_on_publish, s);
	log_info("listen=%s:%d threads=%d msg=\"serving HTTP/2 (h2c) and HTTP/1.1\"",
		 cfg->listen.address, s->port, cfg->listen.threads);
	if (s->admin_port >= 0)
		log_info("admin=%s:%d msg=\"admin listener (own loop thread): /metrics, /v2/health\"",
			 cfg->admin.address, s->admin_port);
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
		struct infer_req *r = atomic_exchange(&sl->loop.mailbox, NULL), *next;

		for (; r; r = next) {
			next = r->next;
			r->on_done(r);
		}
		while (sl->conns)
			conn_close(sl->conns);
		call_free_list(sl);
		if (sl->grace)
			event_free(sl->grace);
		if (sl->lst)
			evconnlistener_free(sl->lst);
		if (sl->admin_lst)
			evconnlistener_free(sl->admin_lst);
		loop_destroy(&sl->loop);
		rt_put(sl->rt);
		sl->rt = NULL;
	}
	free(s->loops);
	s->loops = NULL;
}
