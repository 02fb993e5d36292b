/* access.c - see access.h. */
#include "access.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* Set by the control thread on reload, read by the loops: atomic. */
static _Atomic bool access_on;
/* Responses by status code (100..599) and protocol, and their body bytes,
 * counted by each thread in its own shard (met_thread_shard: no cache line
 * written by two loops; one writer, so a plain add, but for the last,
 * shared shard), summed by access_metrics.  Untouched shards' pages are
 * never faulted in. */
struct access_shard {
	_Atomic uint64_t by_status[2][600];
	_Atomic uint64_t bytes_out;
} __attribute__((aligned(64)));
static struct access_shard access_shards[MET_SHARDS + 1];

static uint64_t access_sum(size_t off)
{
	uint64_t n = 0;

	for (int i = 0; i <= MET_SHARDS; i++)
		n += atomic_load_explicit((_Atomic uint64_t *)((char *)&access_shards[i] + off),
					  memory_order_relaxed);
	return n;
}

void access_enable(bool on)
{
	atomic_store_explicit(&access_on, on, memory_order_relaxed);
}

void access_record(const struct call *c)
{
	size_t bytes = c->resp ? evbuffer_get_length(c->resp) : 0;
	int h2 = c->stream_id != 0, i = met_thread_shard();
	struct access_shard *a = &access_shards[i];

	if (c->status >= 100 && c->status < 600)
		met_inc(&a->by_status[h2][c->status], 1, i < MET_SHARDS);
	met_inc(&a->bytes_out, bytes, i < MET_SHARDS);
	if (!atomic_load_explicit(&access_on, memory_order_relaxed))
		return;
	log_msg(LOG_INFO, "access method=%s path=\"%s\" proto=%s status=%d bytes=%zu us=%llu%s",
		c->method, c->path ? c->path : "", h2 ? "h2" : "http/1.1", c->status, bytes,
		(unsigned long long)((now_ns() - c->start_ns) / 1000),
		call_detached(c) ? " client_gone=1" : "");
}

void access_metrics(struct evbuffer *out)
{
	static const char *const proto[2] = { "http/1.1", "h2" };

	evbuffer_add_printf(out, "# HELP infergw_http_responses_total HTTP responses by status code.\n"
				 "# TYPE infergw_http_responses_total counter\n");
	for (int p = 0; p < 2; p++)
		for (int s = 100; s < 600; s++) {
			uint64_t v = access_sum(offsetof(struct access_shard, by_status[p][s]));

			if (v)
				evbuffer_add_printf(out,
					"infergw_http_responses_total{proto=\"%s\",code=\"%d\"} %llu\n",
					proto[p], s, (unsigned long long)v);
		}
	evbuffer_add_printf(out, "# HELP infergw_http_response_body_bytes_total Response body bytes.\n"
				 "# TYPE infergw_http_response_body_bytes_total counter\n"
				 "infergw_http_response_body_bytes_total %llu\n",
			    (unsigned long long)access_sum(offsetof(struct access_shard, bytes_out)));
}
