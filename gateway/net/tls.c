/* tls.c - TLS contexts and connections (see tls.h). */
#define _GNU_SOURCE
#include "tls.h"

#include <errno.h>
#include <stdbool.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "model/ytree.h"

/*
 * TLS 1.2 suites: ECDHE key exchange with AEAD only (forward secrecy, none
 * of RFC 7540 appendix A's blocked suites, so h2 may follow any of them).
 * TLS 1.3 keeps OpenSSL's defaults (all AEAD).
 */
#define TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
		      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
		      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_SESSION_CACHE 4096	/* TLS 1.2 sessions of clients without tickets */

/* ALPN wire format, in order of preference. */
static const unsigned char tls_protos[] = "\x02h2\x08http/1.1";

static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, tls_protos, sizeof(tls_protos) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;	/* no ALPN: the first bytes decide */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* Encrypted keys would make OpenSSL prompt on the terminal: refuse them. */
static int tls_no_password(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/* *err = "WHERE: what (openssl: reason)"; clears OpenSSL's error queue. */
static int tls_fail(char **err, const char *where, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	*err = yt_strdupf("%s: %s %s%s%s%s", where, what, path, reason ? " (openssl: " : "",
			  reason ? reason : "", reason ? ")" : "");
	ERR_clear_error();
	return -EINVAL;
}

/* The file must open for reading: its errno says more than OpenSSL would. */
static int tls_readable(const char *path, const char *where, char **err)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		*err = yt_strdupf("%s: cannot read %s: %s", where, path, strerror(errno));
		return -EINVAL;
	}
	fclose(f);
	return 0;
}

static void tls_ctx_defaults(SSL_CTX *ctx, int min_version)
{
	static const unsigned char sid_ctx[] = "infergw";

	SSL_CTX_set_min_proto_version(ctx, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
	/* Idle connections give their 34 KiB of record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE);
	/* Needed to resume sessions at all once client certificates are asked. */
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_password);
}

static int tls_load_cert(SSL_CTX *ctx, const struct tls_conf *tc, char **err)
{
	if (tls_readable(tc->certificate, tc->where_certificate, err))
		return -EINVAL;
	if (SSL_CTX_use_certificate_chain_file(ctx, tc->certificate) != 1)
		return tls_fail(err, tc->where_certificate, "no usable PEM certificate in",
				tc->certificate);
	return 0;
}

/* Did loading the key fail only because it is not the certificate's? */
static bool tls_key_mismatch(void)
{
	unsigned long e = ERR_peek_last_error();

	return ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
						  ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
}

static int tls_load_key(SSL_CTX *ctx, const struct tls_conf *tc, char **err)
{
	bool loaded;

	if (tls_readable(tc->key, tc->where_key, err))
		return -EINVAL;
	/* Loading checks the key against the certificate already. */
	loaded = SSL_CTX_use_PrivateKey_file(ctx, tc->key, SSL_FILETYPE_PEM) == 1;
	if (!loaded && !tls_key_mismatch())
		return tls_fail(err, tc->where_key, "no usable PEM private key (unencrypted) in",
				tc->key);
	if (!loaded || SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		*err = yt_strdupf("%s: does not match listen.tls.certificate (%s)", tc->where_key,
				  tc->certificate);
		return -EINVAL;
	}
	return 0;
}

/* Clients must present a certificate that chains to client_ca. */
static int tls_load_client_ca(SSL_CTX *ctx, const struct tls_conf *tc, char **err)
{
	STACK_OF(X509_NAME) *names;

	if (tls_readable(tc->client_ca, tc->where_client_ca, err))
		return -EINVAL;
	if (SSL_CTX_load_verify_locations(ctx, tc->client_ca, NULL) != 1)
		return tls_fail(err, tc->where_client_ca, "no usable PEM CA certificate in",
				tc->client_ca);
	names = SSL_load_client_CA_file(tc->client_ca);
	if (!names)
		return tls_fail(err, tc->where_client_ca, "no usable PEM CA certificate in",
				tc->client_ca);
	SSL_CTX_set_client_CA_list(ctx, names);	/* takes names */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

/* One line naming the certificate served: what a reload changed shows. */
static void tls_log_cert(SSL_CTX *ctx, const struct tls_conf *tc)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	char subject[256] = "?", until[32] = "?";
	struct tm tm;

	if (!x)
		return;
	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		log_warn("certificate=%s subject=\"%s\" not_after=%s msg=\"tls certificate has expired\"",
			 tc->certificate, subject, until);
	else
		log_info("certificate=%s subject=\"%s\" not_after=%s client_ca=%s min_version=1.%d "
			 "msg=\"tls context ready\"", tc->certificate, subject, until,
			 tc->client_ca ? tc->client_ca : "none", tc->min_version - 10);
	ERR_clear_error();
}

int tls_ctx_new(const struct tls_conf *tc, SSL_CTX **out, char **err)
{
	SSL_CTX *ctx;

	ERR_clear_error();	/* the reasons read below are ours */
	ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		ERR_clear_error();
		*err = yt_strdupf("%s: cannot create a TLS context", tc->where_certificate);
		return -ENOMEM;
	}
	tls_ctx_defaults(ctx, tc->min_version);
	if (tls_load_cert(ctx, tc, err) || tls_load_key(ctx, tc, err) ||
	    (tc->client_ca && tls_load_client_ca(ctx, tc, err))) {
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	tls_log_cert(ctx, tc);
	*out = ctx;
	return 0;
}

SSL_CTX *tls_ctx_ref(SSL_CTX *ctx)
{
	if (ctx)
		SSL_CTX_up_ref(ctx);
	return ctx;
}

void tls_ctx_put(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);	/* accepts NULL */
}

struct bufferevent *tls_bufferevent_new(struct event_base *base, SSL_CTX *ctx,
					evutil_socket_t fd)
{
	SSL *ssl = SSL_new(ctx);
	struct bufferevent *bev;

	if (!ssl) {
		ERR_clear_error();
		return NULL;
	}
	/* Deferred callbacks: depending on the libevent release, adding to
	 * the output or enabling reads may encrypt or decrypt at once, and
	 * would then run our callbacks (which may close the connection)
	 * inside the caller's evbuffer_add or bufferevent_enable. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);		/* its socket BIO does not close fd */
		return NULL;
	}
	/* A client that closes without close_notify is an EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

enum tls_alpn tls_alpn(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	const unsigned char *p = NULL;
	unsigned int n = 0;

	if (ssl)
		SSL_get0_alpn_selected(ssl, &p, &n);
	if (n == 2 && !memcmp(p, "h2", 2))
		return TLS_ALPN_H2;
	if (n == 8 && !memcmp(p, "http/1.1", 8))
		return TLS_ALPN_HTTP11;
	return TLS_ALPN_NONE;
}

int tls_on_event(struct bufferevent *bev, short what, const char *peer)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long e;

	if (!ssl)
		return 0;
	if (what & BEV_EVENT_CONNECTED) {
		const unsigned char *p = NULL;
		unsigned int n = 0;

		SSL_get0_alpn_selected(ssl, &p, &n);
		log_debug("peer=%s tls=%s cipher=%s alpn=%.*s resumed=%d client_cert=%d "
			  "msg=\"tls handshake done\"", peer, SSL_get_version(ssl),
			  SSL_get_cipher_name(ssl), n ? (int)n : 4, n ? (const char *)p : "none",
			  SSL_session_reused(ssl), SSL_get0_peer_certificate(ssl) != NULL);
		return 1;
	}
	if ((what & BEV_EVENT_ERROR) && (e = bufferevent_get_openssl_error(bev)) != 0) {
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		log_debug("peer=%s err=\"%s\" msg=\"tls error\"", peer, buf);
	}
	return 0;
}

void tls_close_notify(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(ssl);
	ERR_clear_error();
}
