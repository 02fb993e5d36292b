/*
 * tls.h - TLS on the main listener (OpenSSL 3 through libevent_openssl).
 *
 * A runtime snapshot owns one SSL_CTX built from its config's listen.tls
 * (rt_build); a reload builds a new one, so new connections get the new
 * certificate while each existing connection keeps the context its SSL
 * object references.  Connections are server-side TLS bufferevents; after
 * the handshake, ALPN says which protocol the connection speaks ("h2"
 * preferred, then "http/1.1"; none: the first bytes decide, as on h2c).
 */
#ifndef INFERGW_TLS_H
#define INFERGW_TLS_H

#include <event2/util.h>

struct bufferevent;
struct event_base;
struct ssl_ctx_st;
struct tls_conf;

enum tls_alpn {
	TLS_ALPN_NONE,		/* no ALPN: sniff the first bytes */
	TLS_ALPN_H2,
	TLS_ALPN_HTTP11,
};

/*
 * tls_ctx_new - an SSL_CTX for tc: TLS 1.2+ (tc->min_version), AEAD ECDHE
 * ciphers for TLS 1.2, no renegotiation or compression, session tickets
 * and a server session cache, ALPN h2 / http/1.1, and when tc->client_ca
 * is set, required client certificates chaining to it.  Every context has
 * its own session ticket keys: sessions do not resume across a reload.
 * Returns 0 with *out (one reference), or -EINVAL with
 * *err = "FILE:L:C: listen.tls.KEY: what is wrong" (malloc'd).
 */
int tls_ctx_new(const struct tls_conf *tc, struct ssl_ctx_st **out, char **err);
/* tls_ctx_ref / tls_ctx_put - take / drop a reference (put accepts NULL). */
struct ssl_ctx_st *tls_ctx_ref(struct ssl_ctx_st *ctx);
void tls_ctx_put(struct ssl_ctx_st *ctx);

/*
 * tls_bufferevent_new - a server-side TLS bufferevent on fd (accepting; it
 * frees the SSL and closes fd when freed).  Callbacks are deferred so that
 * writing into its output never calls back into the caller.  NULL on
 * failure; fd is then still the caller's.
 */
struct bufferevent *tls_bufferevent_new(struct event_base *base, struct ssl_ctx_st *ctx,
					evutil_socket_t fd);
/* tls_alpn - the protocol bev's peer negotiated (after the handshake). */
enum tls_alpn tls_alpn(struct bufferevent *bev);
/*
 * tls_on_event - log a TLS bufferevent's event for peer: the handshake's
 * version, cipher and ALPN when what has BEV_EVENT_CONNECTED, the OpenSSL
 * reason of an error.  Returns 1 when the event is the handshake's end
 * (nothing else to do), 0 otherwise.
 */
int tls_on_event(struct bufferevent *bev, short what, const char *peer);
/* tls_close_notify - send close_notify before the connection is freed
 * (best effort, never blocks). */
void tls_close_notify(struct bufferevent *bev);

#endif
