/*
 * access.h - per-response accounting: the access log line (when enabled)
 * and the HTTP counters behind /metrics.
 */
#ifndef INFERGW_ACCESS_H
#define INFERGW_ACCESS_H

#include <stdbool.h>

struct call;
struct evbuffer;

/* access_enable - switch the access log on or off (config log.access). */
void access_enable(bool on);
/* access_record - count c's response and log it; call once per response. */
void access_record(const struct call *c);
/* access_metrics - append the HTTP counters in Prometheus text format. */
void access_metrics(struct evbuffer *out);

#endif
