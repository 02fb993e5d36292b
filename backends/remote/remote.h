/*
 * remote.h - the `remote` backend kind (be_rmt_): one backend is one
 * infergw-agent, reached over TCP with the agent protocol (proto.h).  The
 * ops table is be_remote_ops (backend.h); this header holds what the
 * registry and tests need besides it.
 */
#ifndef INFERGW_RMT_REMOTE_H
#define INFERGW_RMT_REMOTE_H

#include "backend.h"

/* The kind's own keys (registry), NULL-terminated. */
extern const char *const be_remote_keys[];

/* be_remote_conf_defaults - the defaults of every remote key (docs/config.md). */
void be_remote_conf_defaults(struct be_remote_conf *rc);

/*
 * be_remote_parse_conf - the registry's parse_conf for kind remote: the
 * keys above into conf->remote and conf->address (required: host:port,
 * [v6]:port).  0, or -EINVAL with *err naming the key.
 */
int be_remote_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err);

/*
 * be_remote_expand - the registry's expand for kind remote: in's address
 * resolved (getaddrinfo, blocking); one address (or none: the name does
 * not resolve now, the backend retries at every reconnect) -> 0 with *out
 * NULL (in stands for itself, by name); several -> be_rmt_expand_addrs.
 */
int be_remote_expand(const struct backend_conf *in, struct backend_conf **out, int *n,
		     char **err);

/*
 * be_rmt_expand_addrs - in as n_addrs agents at addrs ("ip:port" or
 * "[v6]:port", any order): sorted by address, duplicates dropped; one left
 * -> *out NULL (in unchanged); else *out = n entries (malloc'd, each deep:
 * free with the config's backend free, then the array) named NAME-1..NAME-n
 * in address order, address = that address, pool = in's pool (default:
 * in's name).  0, or -ENOMEM with *err.
 */
int be_rmt_expand_addrs(const struct backend_conf *in, const char *const *addrs, int n_addrs,
			struct backend_conf **out, int *n, char **err);

/*
 * be_rmt_split_addr - "host:port" or "[v6]:port" into host and port (the
 * caller's buffers).  0, or -EINVAL when there is no port, the port is
 * not 1..65535, or a part does not fit.
 */
int be_rmt_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

#endif
