/* call.c - the protocol-neutral HTTP exchange (see http.h). */
#define _GNU_SOURCE
#include "http.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "infer.h"
#include "kserve.h"
#include "runtime.h"
#include "server.h"
#include "util.h"

struct call *call_new(struct conn *conn)
{
	struct call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->conn = conn;
	c->rt = rt_get(conn->sl->rt);
	c->admin = conn->admin;
	c->body = evbuffer_new();
	c->start_ns = now_ns();
	return c;
}

void call_free(struct call *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_hdrs; i++) {
		free(c->hdrs[i].name);
		free(c->hdrs[i].value);
	}
	for (int i = 0; i < c->n_resp_hdrs; i++) {
		free(c->resp_hdrs[i].name);
		free(c->resp_hdrs[i].value);
	}
	if (c->req) {
		free(c->req->output);
		free(c->req->input_buf);
		free(c->req);
	}
	free(c->api);
	free(c->path);
	rt_put(c->rt);
	if (c->body)
		evbuffer_free(c->body);
	if (c->resp)
		evbuffer_free(c->resp);
	free(c);
}

bool call_add_header(struct call *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
	char *n;

	if (c->n_hdrs >= CALL_MAX_HDRS)
		return false;
	n = strndup(name, nlen);
	for (char *p = n; *p; p++)
		*p = tolower((unsigned char)*p);
	c->hdrs[c->n_hdrs].name = n;
	c->hdrs[c->n_hdrs].value = strndup(value, vlen);
	c->n_hdrs++;
	return true;
}

const char *call_header(const struct call *c, const char *lname)
{
	for (int i = 0; i < c->n_hdrs; i++)
		if (strcmp(c->hdrs[i].name, lname) == 0)
			return c->hdrs[i].value;
	return NULL;
}

void call_set_resp_header(struct call *c, const char *name, const char *value)
{
	if (c->n_resp_hdrs >= CALL_MAX_RESP_HDRS)
		return;
	c->resp_hdrs[c->n_resp_hdrs].name = strdup(name);
	c->resp_hdrs[c->n_resp_hdrs].value = strdup(value);
	c->n_resp_hdrs++;
}

void call_respond(struct call *c, int status, const char *ctype)
{
	if (c->responded)
		return;
	c->responded = true;
	c->status = status;
	if (!c->resp)
		c->resp = evbuffer_new();
	if (ctype)
		call_set_resp_header(c, "content-type", ctype);
	access_record(c);
	if (!call_detached(c))
		conn_transport_respond(c);
}

void call_respond_error(struct call *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!c->resp)
		c->resp = evbuffer_new();
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	evbuffer_add(c->resp, "{\"error\":", 9);
	ks_put_str(c->resp, msg);
	evbuffer_add(c->resp, "}", 1);
	if (status == 503)
		call_set_resp_header(c, "retry-after", "1");
	call_respond(c, status, "application/json");
}

void call_respond_json(struct call *c, int status, const char *json)
{
	c->resp = c->resp ? c->resp : evbuffer_new();
	evbuffer_add(c->resp, json, strlen(json));
	call_respond(c, status, "application/json");
}

bool call_allow(struct call *c, const char *allowed)
{
	if (strcmp(c->method, allowed) == 0 ||
	    (strcmp(allowed, "GET") == 0 && strcmp(c->method, "HEAD") == 0))
		return true;
	call_set_resp_header(c, "allow", allowed);
	call_respond_error(c, 405, "method %s not allowed on %s (use %s)", c->method, c->path,
			   allowed);
	return false;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}
