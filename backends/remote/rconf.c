/*
 * rconf.c - kind remote's configuration (remote.h): its keys, their
 * defaults and ranges, and the expansion of a DNS name that stands for
 * several agents (a Kubernetes headless service) into one backend each.
 */
#define _GNU_SOURCE
#include "remote/remote.h"
#include "secret.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

const char *const be_remote_keys[] = {
	"address", "window", "connect_timeout_ms", "timeout_ms", "ping_ms", "reconnect_ms",
	"reconnect_max_ms", "pool", "consecutive_failures", "ejection_ms", "max_ejection_ms",
	"max_ejection_percent", "token_file", NULL,
};

void be_remote_conf_defaults(struct be_remote_conf *rc)
{
	*rc = (struct be_remote_conf){
		.window = 0, .connect_timeout_ms = 1000, .timeout_ms = 1000, .ping_ms = 1000,
		.reconnect_ms = 100, .reconnect_max_ms = 5000, .pool = NULL,
		.consecutive_failures = 5, .ejection_ms = 30000, .max_ejection_ms = 300000,
		.max_ejection_percent = 10,
	};
}

int be_rmt_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *h = addr;
	size_t hl;
	char *end;
	long p;

	if (addr[0] == '[') {	/* [v6]:port */
		const char *rb = strchr(addr, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL;	/* none, or a bare v6 address */
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostlen || strlen(colon + 1) >= portlen)
		return -EINVAL;
	p = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end || p < 1 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	snprintf(port, portlen, "%ld", p);
	return 0;
}

/* One ranged int key into *out (left as is when missing). */
static int be_rmt_key(const struct be_conf_src *src, const char *key, int64_t min, int64_t max,
		      int *out, char **err)
{
	int64_t v = *out;

	if (src->get_int(src->ctx, key, min, max, &v, err))
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int be_remote_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err)
{
	struct be_remote_conf *rc = &conf->remote;
	char host[256], port[8], msg[160];

	be_remote_conf_defaults(rc);
	if (src->get_str(src->ctx, "address", &conf->address, err) ||
	    src->get_str(src->ctx, "pool", &rc->pool, err) ||
	    be_rmt_key(src, "window", 0, 64, &rc->window, err) ||
	    be_rmt_key(src, "connect_timeout_ms", 1, 600000, &rc->connect_timeout_ms, err) ||
	    be_rmt_key(src, "timeout_ms", 1, 3600000, &rc->timeout_ms, err) ||
	    be_rmt_key(src, "ping_ms", 1, 3600000, &rc->ping_ms, err) ||
	    be_rmt_key(src, "reconnect_ms", 1, 600000, &rc->reconnect_ms, err) ||
	    be_rmt_key(src, "reconnect_max_ms", 1, 3600000, &rc->reconnect_max_ms, err) ||
	    be_rmt_key(src, "consecutive_failures", 1, 1000000, &rc->consecutive_failures, err) ||
	    be_rmt_key(src, "ejection_ms", 1, 86400000, &rc->ejection_ms, err) ||
	    be_rmt_key(src, "max_ejection_ms", 1, 86400000, &rc->max_ejection_ms, err) ||
	    be_rmt_key(src, "max_ejection_percent", 0, 100, &rc->max_ejection_percent, err) ||
	    src->get_secret(src->ctx, "token_file", &rc->token_file, &rc->token, err))
		return -EINVAL;
	if (!conf->address)
		return src->error(src->ctx, err,
				  "missing key \"address\" (host:port) for a remote backend");
	if (be_rmt_split_addr(conf->address, host, sizeof(host), port, sizeof(port))) {
		snprintf(msg, sizeof(msg), "address: expected host:port or [v6]:port with a port "
			 "of 1 to 65535, got \"%.80s\"", conf->address);
		return src->error(src->ctx, err, msg);
	}
	if (rc->reconnect_max_ms < rc->reconnect_ms)
		return src->error(src->ctx, err, "reconnect_max_ms: must be at least reconnect_ms");
	if (rc->max_ejection_ms < rc->ejection_ms)
		return src->error(src->ctx, err, "max_ejection_ms: must be at least ejection_ms");
	return 0;
}

static int be_rmt_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *be_rmt_strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A deep copy of in named name at address addr (free as the config frees). */
static int be_rmt_conf_copy(struct backend_conf *dst, const struct backend_conf *in,
			    const char *name, const char *addr)
{
	*dst = *in;
	dst->name = strdup(name);
	dst->address = strdup(addr);
	dst->remote.pool = strdup(in->remote.pool ? in->remote.pool : in->name);
	dst->remote.token_file = be_rmt_strdup0(in->remote.token_file);
	dst->remote.token = be_secret_dup(in->remote.token);
	dst->models = calloc((size_t)in->n_models + 1, sizeof(char *));
	if (!dst->name || !dst->address || !dst->remote.pool || !dst->models ||
	    !dst->remote.token_file != !in->remote.token_file ||
	    !dst->remote.token != !in->remote.token)
		return -ENOMEM;
	for (int i = 0; i < in->n_models; i++)
		if (!(dst->models[i] = be_rmt_strdup0(in->models[i])))
			return -ENOMEM;
	return 0;
}

static void be_rmt_conf_free(struct backend_conf *b)
{
	for (int i = 0; b->models && i < b->n_models; i++)
		free(b->models[i]);
	free(b->models);
	free(b->name);
	free(b->address);
	free(b->remote.pool);
	free(b->remote.token_file);
	be_secret_free(b->remote.token);
}

int be_rmt_expand_addrs(const struct backend_conf *in, const char *const *addrs, int n_addrs,
			struct backend_conf **out, int *n, char **err)
{
	const char **sorted = calloc((size_t)(n_addrs ? n_addrs : 1), sizeof(*sorted));
	struct backend_conf *res = NULL;
	int k = 0, rc = 0;

	*out = NULL;
	*n = 0;
	if (!sorted)
		goto oom;
	memcpy(sorted, addrs, sizeof(*sorted) * (size_t)n_addrs);
	qsort(sorted, (size_t)n_addrs, sizeof(*sorted), be_rmt_cmp);
	for (int i = 0; i < n_addrs; i++)	/* unique, in order */
		if (k == 0 || strcmp(sorted[k - 1], sorted[i]))
			sorted[k++] = sorted[i];
	if (k <= 1) {
		free(sorted);
		return 0;
	}
	res = calloc((size_t)k, sizeof(*res));
	if (!res)
		goto oom;
	for (int i = 0; i < k && !rc; i++) {
		char name[256];

		snprintf(name, sizeof(name), "%s-%d", in->name, i + 1);
		rc = be_rmt_conf_copy(&res[i], in, name, sorted[i]);
	}
	if (rc) {
		for (int i = 0; i < k; i++)
			be_rmt_conf_free(&res[i]);
		free(res);
		goto oom;
	}
	free(sorted);
	*out = res;
	*n = k;
	return 0;
oom:
	free(sorted);
	*err = be_strdupf("backend %s: out of memory expanding %s", in->name, in->address);
	return -ENOMEM;
}

int be_remote_expand(const struct backend_conf *in, struct backend_conf **out, int *n,
		     char **err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res = NULL, *ai;
	char host[256], port[8];
	char **addrs = NULL;
	int k = 0, rc;

	*out = NULL;
	*n = 0;
	if (!in->address || be_rmt_split_addr(in->address, host, sizeof(host), port, sizeof(port)))
		return 0;	/* parse_conf said so already; opened, it stays down */
	if (getaddrinfo(host, port, &hints, &res) || !res)
		return 0;	/* down now, resolved again at every reconnect */
	for (ai = res; ai; ai = ai->ai_next)
		k++;
	addrs = calloc((size_t)k, sizeof(*addrs));
	k = 0;
	for (ai = res; addrs && ai; ai = ai->ai_next) {
		char ip[INET6_ADDRSTRLEN];
		const void *a = ai->ai_family == AF_INET6 ?
			(const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr :
			(const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    !inet_ntop(ai->ai_family, a, ip, sizeof(ip)))
			continue;
		addrs[k] = be_strdupf(ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, port);
		if (addrs[k])
			k++;
	}
	freeaddrinfo(res);
	if (!addrs) {
		*err = be_strdupf("backend %s: out of memory resolving %s", in->name, in->address);
		return -ENOMEM;
	}
	rc = be_rmt_expand_addrs(in, (const char *const *)addrs, k, out, n, err);
	for (int i = 0; i < k; i++)
		free(addrs[i]);
	free(addrs);
	return rc;
}
