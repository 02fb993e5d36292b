/*
 * dp.c - see dp.h.  The packet lcores.
 *
 * One struct dp_lcore per packet lcore, touched only by that lcore but for
 * the counters (read by /metrics: written with relaxed atomic stores by the
 * one writer, which compile to plain moves) and `stop`.  Each lcore polls
 * its RX queues (queue q belongs to lcore q % n_lcores) and transmits on
 * its own TX queue (its index), so nothing on the packet path takes a lock
 * of ours: requests come from the lcore's front_pool, completions come back
 * through its front_poll_sink (a lock-free stack), the runtime snapshot is
 * re-read only when rt_generation() changes.
 *
 * A request's input is copied out of the mbuf (which is freed at once: a
 * small pool must not be pinned by queued requests) into one malloc'd
 * block that also holds what the answer needs (the sender's addresses,
 * the request id and a reference to the snapshot the model belongs to).
 */
#define _GNU_SOURCE
#include "dp.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "api.h"
#include "dgram.h"
#include "front.h"
#include "log.h"
#include "metrics.h"
#include "pkt.h"
#include "runtime.h"
#include "scheduler.h"
#include "util.h"

#define DP_RING_DESC	512	/* RX/TX descriptors asked per queue (adjusted to the port) */
#define DP_MAX_BURST	512
#define DP_ETH_MIN	60	/* shortest Ethernet frame without FCS */

/* Request outcomes counted on this path (infergw_dpdk_requests_total{code}). */
static const int dp_codes[] = { 200, 400, 404, 413, 429, 500, 503, 504 };
#define DP_N_CODES ((int)(sizeof(dp_codes) / sizeof(dp_codes[0])) + 1)	/* + other */

/* Stages timed with the TSC (infergw_dpdk_stage_*). */
enum dp_stage { DP_ST_RX, DP_ST_PARSE, DP_ST_ROUTE, DP_ST_ENCODE, DP_ST_TX, DP_ST_N };
static const char *const dp_stage_names[DP_ST_N] = { "rx", "parse", "route", "encode", "tx" };

/* One lcore's counters: one writer (the lcore), read by /metrics. */
struct dp_stats {
	uint64_t pkts_in, pkts_out, tx_drop, no_mbuf;
	uint64_t verdict[PKT_VERDICT_COUNT];
	uint64_t code[DP_N_CODES];
	uint64_t cycles[DP_ST_N];	/* TSC cycles spent per stage */
	uint64_t events[DP_ST_N];	/* what each stage's cycles were spent on:
					 * non-empty rx bursts, packets parsed,
					 * requests routed, answers encoded, tx bursts */
};

struct dp_lcore {
	int idx;
	unsigned lcore_id;
	uint16_t txq;
	int n_rxq;
	uint16_t rxq[64];
	struct front_pool pool;
	struct front_poll_sink sink;
	struct rt_lease lease;		/* the snapshot new requests borrow (rt: NULL, none) */
	int in_flight;			/* submitted, not yet answered */
	bool done;			/* the loop returned (release/acquire with dp_stop) */
	int n_tx;
	struct rte_mbuf *tx[DP_MAX_BURST];
	struct dp_stats st __attribute__((aligned(64)));
};

/* What a request needs for its answer, followed by its input floats. */
struct dp_req {
	struct dp_lcore *lc;
	struct runtime *rt;		/* borrowed from lc->lease: r->model lives in it */
	struct pkt_info to;		/* the request's addresses (payload unused) */
	uint64_t id;
	float input[];
};

static struct dp_state {
	bool eal_up, port_up, running;	/* main thread only */
	bool lcores_ready;		/* lcores and n_lcores set: /metrics may read */
	_Atomic bool stop;
	uint16_t port;
	int burst;
	struct pkt_self self;
	size_t frame_cap;		/* largest frame we send: MTU + Ethernet header */
	struct rte_mempool *pool;
	int n_lcores;
	struct dp_lcore *lcores;	/* n_lcores of them */
	uint64_t tsc_hz;
	uint64_t drain_deadline;	/* now_ns() bound of the drain; set before stop */
} dp;

/* ---- counters ---- */

#define DP_ADD(field, n) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define DP_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

static void dp_count_code(struct dp_lcore *lc, int code)
{
	int i;

	for (i = 0; i < DP_N_CODES - 1 && dp_codes[i] != code; i++)
		;
	DP_ADD(lc->st.code[i], 1);
}

static void dp_stage(struct dp_lcore *lc, enum dp_stage s, uint64_t t0, uint64_t n)
{
	DP_ADD(lc->st.cycles[s], rte_rdtsc() - t0);
	DP_ADD(lc->st.events[s], n);
}

/* /metrics: every lcore's counters summed. */
static void dp_metrics(struct evbuffer *out)
{
	struct dp_stats sum = { 0 };

	/* Published once (release) after the lcores exist; never cleared: the
	 * lcore array outlives the data path. */
	if (!__atomic_load_n(&dp.lcores_ready, __ATOMIC_ACQUIRE))
		return;
	for (int i = 0; i < dp.n_lcores; i++) {
		struct dp_stats *s = &dp.lcores[i].st;

		sum.pkts_in += DP_GET(s->pkts_in);
		sum.pkts_out += DP_GET(s->pkts_out);
		sum.tx_drop += DP_GET(s->tx_drop);
		sum.no_mbuf += DP_GET(s->no_mbuf);
		for (int v = 0; v < PKT_VERDICT_COUNT; v++)
			sum.verdict[v] += DP_GET(s->verdict[v]);
		for (int c = 0; c < DP_N_CODES; c++)
			sum.code[c] += DP_GET(s->code[c]);
		for (int k = 0; k < DP_ST_N; k++) {
			sum.cycles[k] += DP_GET(s->cycles[k]);
			sum.events[k] += DP_GET(s->events[k]);
		}
	}
	evbuffer_add_printf(out,
		"# HELP infergw_dpdk_packets_total Frames received and sent on the DPDK port.\n"
		"# TYPE infergw_dpdk_packets_total counter\n"
		"infergw_dpdk_packets_total{dir=\"in\"} %llu\n"
		"infergw_dpdk_packets_total{dir=\"out\"} %llu\n"
		"# HELP infergw_dpdk_drops_total Frames dropped, by reason (tx: the port did not take "
		"them; no_mbuf: no buffer for an answer).\n"
		"# TYPE infergw_dpdk_drops_total counter\n",
		(unsigned long long)sum.pkts_in, (unsigned long long)sum.pkts_out);
	for (int v = 0; v < PKT_VERDICT_COUNT; v++)
		if (pkt_verdict_is_drop(v))
			evbuffer_add_printf(out, "infergw_dpdk_drops_total{reason=\"%s\"} %llu\n",
					    pkt_verdict_name(v), (unsigned long long)sum.verdict[v]);
	evbuffer_add_printf(out,
		"infergw_dpdk_drops_total{reason=\"tx\"} %llu\n"
		"infergw_dpdk_drops_total{reason=\"no_mbuf\"} %llu\n"
		"# HELP infergw_dpdk_frames_total Frames accepted, by kind.\n"
		"# TYPE infergw_dpdk_frames_total counter\n",
		(unsigned long long)sum.tx_drop, (unsigned long long)sum.no_mbuf);
	for (int v = 0; v < PKT_VERDICT_COUNT; v++)
		if (!pkt_verdict_is_drop(v))
			evbuffer_add_printf(out, "infergw_dpdk_frames_total{kind=\"%s\"} %llu\n",
					    pkt_verdict_name(v), (unsigned long long)sum.verdict[v]);
	evbuffer_add_printf(out,
		"# HELP infergw_dpdk_requests_total Datagram requests answered, by code.\n"
		"# TYPE infergw_dpdk_requests_total counter\n");
	for (int c = 0; c < DP_N_CODES; c++) {
		char code[16];

		if (c < DP_N_CODES - 1)
			snprintf(code, sizeof(code), "%d", dp_codes[c]);
		else
			snprintf(code, sizeof(code), "other");
		evbuffer_add_printf(out, "infergw_dpdk_requests_total{code=\"%s\"} %llu\n", code,
				    (unsigned long long)sum.code[c]);
	}
	evbuffer_add_printf(out,
		"# HELP infergw_dpdk_stage_cycles_total TSC cycles spent per stage of the packet path.\n"
		"# TYPE infergw_dpdk_stage_cycles_total counter\n");
	for (int k = 0; k < DP_ST_N; k++)
		evbuffer_add_printf(out, "infergw_dpdk_stage_cycles_total{stage=\"%s\"} %llu\n",
				    dp_stage_names[k], (unsigned long long)sum.cycles[k]);
	evbuffer_add_printf(out,
		"# HELP infergw_dpdk_stage_events_total What each stage's cycles were spent on "
		"(rx: non-empty bursts, parse: frames, route: requests, encode: answers, tx: bursts).\n"
		"# TYPE infergw_dpdk_stage_events_total counter\n");
	for (int k = 0; k < DP_ST_N; k++)
		evbuffer_add_printf(out, "infergw_dpdk_stage_events_total{stage=\"%s\"} %llu\n",
				    dp_stage_names[k], (unsigned long long)sum.events[k]);
	evbuffer_add_printf(out,
		"# HELP infergw_dpdk_tsc_hz TSC frequency, to turn stage cycles into time.\n"
		"# TYPE infergw_dpdk_tsc_hz gauge\ninfergw_dpdk_tsc_hz %llu\n",
		(unsigned long long)dp.tsc_hz);
}

/* ---- transmit ---- */

static void dp_tx_flush(struct dp_lcore *lc)
{
	uint64_t t0;
	uint16_t sent;

	if (!lc->n_tx)
		return;
	t0 = rte_rdtsc();
	sent = rte_eth_tx_burst(dp.port, lc->txq, lc->tx, (uint16_t)lc->n_tx);
	if (sent < lc->n_tx) {
		rte_pktmbuf_free_bulk(&lc->tx[sent], lc->n_tx - sent);
		DP_ADD(lc->st.tx_drop, lc->n_tx - sent);
	}
	DP_ADD(lc->st.pkts_out, sent);
	lc->n_tx = 0;
	dp_stage(lc, DP_ST_TX, t0, 1);
}

/* Queue frame m (len bytes at its start, padded to the Ethernet minimum) for tx. */
static void dp_tx(struct dp_lcore *lc, struct rte_mbuf *m, size_t len)
{
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);

	if (len < DP_ETH_MIN) {
		memset(p + len, 0, DP_ETH_MIN - len);
		len = DP_ETH_MIN;
	}
	m->data_len = (uint16_t)len;
	m->pkt_len = (uint32_t)len;
	m->nb_segs = 1;
	m->next = NULL;
	m->ol_flags = 0;
	lc->tx[lc->n_tx++] = m;
	if (lc->n_tx == dp.burst)
		dp_tx_flush(lc);
}

/* The frame room of a fresh mbuf, capped by what the port sends. */
static size_t dp_room(struct rte_mbuf *m)
{
	size_t room = rte_pktmbuf_tailroom(m) + rte_pktmbuf_data_len(m);

	return room < dp.frame_cap ? room : dp.frame_cap;
}

/* An error answer {id, error, code} to `to`; counted by code. */
static void dp_reply_error(struct dp_lcore *lc, const struct pkt_info *to, uint64_t id, int code,
			   const char *msg)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(dp.pool);
	size_t off = pkt_udp_payload_offset(), n, len;
	uint8_t *p;

	dp_count_code(lc, code);
	if (!m) {
		DP_ADD(lc->st.no_mbuf, 1);
		return;
	}
	p = rte_pktmbuf_mtod(m, uint8_t *);
	n = dg_encode_error(p + off, pkt_udp_payload_max(dp_room(m)), id, code, msg);
	len = n ? pkt_udp_reply(p, dp_room(m), &dp.self, to, n) : 0;
	if (!len) {
		rte_pktmbuf_free(m);
		DP_ADD(lc->st.no_mbuf, 1);
		return;
	}
	dp_tx(lc, m, len);
}

/* ---- requests ---- */

/* A request refused before it reached a backend (400, 413): its model's "none" series. */
static void dp_count_refused(struct runtime *rt, const struct model *m, uint64_t t0)
{
	uint64_t now = now_ns();

	met_error(rt_none_series(rt, m), now - t0, now);
}

/* Finish r: account, release, give everything back. */
static void dp_req_end(struct infer_req *r, int status)
{
	struct dp_req *q = r->ctx;

	api_account(r, status, now_ns());	/* as HTTP and gRPC count it */
	front_req_put(r);
	rt_lease_return(&q->lc->lease, q->rt);
	free(q);
}

/* on_done (front_deliver, on the owning lcore): the answer, or the error. */
static void dp_on_done(struct infer_req *r)
{
	struct dp_req *q = r->ctx;
	struct dp_lcore *lc = q->lc;
	uint64_t t0 = rte_rdtsc();
	struct rte_mbuf *m;
	size_t off = pkt_udp_payload_offset(), n = 0, len = 0;
	int status = r->status;

	lc->in_flight--;
	if (status) {
		dp_reply_error(lc, &q->to, q->id, status, r->errmsg);
		dp_req_end(r, status);
		return;
	}
	m = rte_pktmbuf_alloc(dp.pool);
	if (!m) {
		DP_ADD(lc->st.no_mbuf, 1);
		dp_count_code(lc, 200);
		dp_req_end(r, 200);
		return;
	}
	n = dg_encode_answer(rte_pktmbuf_mtod(m, uint8_t *) + off, pkt_udp_payload_max(dp_room(m)),
			     q->id, r->model, r->output, r->rows);
	if (n)
		len = pkt_udp_reply(rte_pktmbuf_mtod(m, uint8_t *), dp_room(m), &dp.self, &q->to, n);
	if (!len) {	/* dg_check_fits said it would: only a changed MTU gets here */
		rte_pktmbuf_free(m);
		dp_reply_error(lc, &q->to, q->id, 413,
			       "answer does not fit a datagram; use HTTP/2");
		dp_req_end(r, 413);
		return;
	}
	dp_tx(lc, m, len);
	dp_count_code(lc, 200);
	dp_stage(lc, DP_ST_ENCODE, t0, 1);
	dp_req_end(r, 200);
}

/*
 * One datagram request (in->payload, a view into the received frame, valid
 * until the mbuf is freed after this returns): decode, check, copy the
 * input out, submit.  Every failure is answered with its code.
 */
/* The first fragment of a request larger than one frame: 413 to its
 * sender, with the id when this fragment holds it. */
static void dp_oversize(struct dp_lcore *lc, const struct pkt_info *in)
{
	uint64_t id = 0;
	char err[160];

	dg_peek_id(in->payload, in->payload_len, &id);
	snprintf(err, sizeof(err), "request of %zu bytes does not fit one datagram (at most %zu); "
		 "use HTTP/2", in->udp_len - PKT_UDP_HLEN, pkt_udp_payload_max(dp.frame_cap));
	dp_reply_error(lc, in, id, 413, err);
}

static void dp_request(struct dp_lcore *lc, const struct pkt_info *in)
{
	struct runtime *rt = rt_lease_refresh(&lc->lease);
	struct front_hints h = { 0 };
	struct front_spec sp = { 0 };
	const struct model *m;
	struct infer_req *r;
	struct dg_req req;
	struct dp_req *q;
	const float *data;
	uint64_t t0 = now_ns(), objective;
	char err[256];
	int st, rows, prio;

	st = dg_decode(in->payload, in->payload_len, &req, err, sizeof(err));
	if (st) {
		dp_reply_error(lc, in, req.has_id ? req.id : 0, st, err);
		return;
	}
	if (!rt) {
		dp_reply_error(lc, in, req.id, 503, "gateway is shutting down");
		return;
	}
	m = rt_find_model(rt, req.model);
	if (!m) {
		snprintf(err, sizeof(err), "model: unknown model \"%s\"", req.model);
		dp_reply_error(lc, in, req.id, 404, err);
		return;
	}
	st = dg_check(m, &req, &rows, &data, err, sizeof(err));
	if (!st)
		st = dg_check_fits(m, req.id, rows, pkt_udp_payload_max(dp.frame_cap), err,
				   sizeof(err));
	h.priority = req.priority;
	h.timeout_us = req.timeout_us;
	if (!st)
		st = front_objective(rt_model_conf(rt, m), &h, &prio, &objective, err, sizeof(err));
	if (st) {
		dp_count_refused(rt, m, t0);
		dp_reply_error(lc, in, req.id, st, err);
		return;
	}
	q = malloc(sizeof(*q) + (size_t)rows * m->in_dim * sizeof(float));
	if (!q) {
		dp_reply_error(lc, in, req.id, 503, "gateway out of memory");
		return;
	}
	q->lc = lc;
	q->rt = rt_lease_borrow(&lc->lease);
	q->to = *in;
	q->to.payload = NULL;
	q->id = req.id;
	memcpy(q->input, data, (size_t)rows * m->in_dim * sizeof(float));
	sp.model = m;
	sp.in.rows = rows;
	sp.in.data = q->input;	/* freed with q (dp_req_end): no release callback */
	sp.priority = prio;
	sp.objective_ns = objective;
	sp.arrival_ns = t0;
	sp.sink = &lc->sink.sink;
	sp.on_done = dp_on_done;
	sp.ctx = q;
	r = front_req_new(&lc->pool, &sp);
	if (!r) {
		rt_lease_return(&lc->lease, q->rt);
		free(q);
		dp_reply_error(lc, in, req.id, 503, "gateway out of memory");
		return;
	}
	st = front_submit(rt, r, NULL, now_ns());
	if (st) {	/* 429 (admission), 503: answered now, not silence */
		dp_reply_error(lc, in, req.id, st, r->errmsg);
		dp_req_end(r, st);
		return;
	}
	lc->in_flight++;
}

/* ---- the lcore loop ---- */

/* Classify one received frame and act on it; m is consumed. */
static void dp_frame(struct dp_lcore *lc, struct rte_mbuf *m)
{
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	uint64_t t0 = rte_rdtsc();
	struct pkt_info info;
	enum pkt_verdict v;
	size_t len = 0;

	/* Chained mbufs (a jumbo frame over several segments) are not ours. */
	if (m->nb_segs != 1)
		v = PKT_DROP_SHORT;
	else
		v = pkt_parse(p, rte_pktmbuf_data_len(m), &dp.self, &info);
	DP_ADD(lc->st.verdict[v], 1);
	dp_stage(lc, DP_ST_PARSE, t0, 1);
	switch (v) {
	case PKT_ARP_REQ:	/* answered in place: the request's mbuf is the reply's */
		len = pkt_arp_reply(p, dp_room(m), &dp.self, &info);
		break;
	case PKT_ICMP_ECHO:
		len = pkt_icmp_echo_reply(p, dp_room(m), &dp.self, &info);
		break;
	case PKT_UDP_REQ:
		t0 = rte_rdtsc();
		dp_request(lc, &info);
		dp_stage(lc, DP_ST_ROUTE, t0, 1);
		break;
	case PKT_UDP_OVERSIZE:
		dp_oversize(lc, &info);
		break;
	default:
		break;
	}
	if (len)
		dp_tx(lc, m, len);
	else
		rte_pktmbuf_free(m);
}

/* Deliver what the backends finished (each answer is queued for tx). */
static int dp_poll_done(struct dp_lcore *lc)
{
	struct infer_req *done[DP_MAX_BURST];
	int n = front_sink_poll(&lc->sink, done, dp.burst);

	for (int i = 0; i < n; i++)
		front_deliver(done[i]);
	return n;
}

static int dp_lcore_main(void *arg)
{
	struct dp_lcore *lc = arg;
	struct rte_mbuf *rx[DP_MAX_BURST];
	uint64_t t0, routed = 0;

	/* Pairs with dp_start's release: EAL's launch handshake is its own
	 * (uninstrumented) sync, this one makes the order explicit. */
	(void)__atomic_load_n(&dp.lcores_ready, __ATOMIC_ACQUIRE);

	log_info("lcore=%u queues=%d txq=%u msg=\"dpdk lcore polling\"", lc->lcore_id, lc->n_rxq,
		 lc->txq);
	while (!atomic_load_explicit(&dp.stop, memory_order_relaxed)) {
		/* The requests of one pass over the queues go to the backends
		 * as batches, each backend dispatched once at the end (as an
		 * event loop does per read), not one batch per request. */
		sched_defer_begin();
		for (int k = 0; k < lc->n_rxq; k++) {
			uint16_t n;

			t0 = rte_rdtsc();
			n = rte_eth_rx_burst(dp.port, lc->rxq[k], rx, (uint16_t)dp.burst);
			if (!n)
				continue;
			dp_stage(lc, DP_ST_RX, t0, 1);
			DP_ADD(lc->st.pkts_in, n);
			for (uint16_t i = 0; i < n; i++) {
				if (i + 1 < n)
					rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
				dp_frame(lc, rx[i]);
			}
		}
		if (DP_GET(lc->st.events[DP_ST_ROUTE]) != routed) {
			t0 = rte_rdtsc();
			sched_defer_end();	/* may run the batch here (inline_us) */
			dp_stage(lc, DP_ST_ROUTE, t0, 0);	/* route's, per request routed */
			routed = DP_GET(lc->st.events[DP_ST_ROUTE]);
		} else {
			sched_defer_end();	/* nothing was queued: nothing to time */
		}
		dp_poll_done(lc);
		dp_tx_flush(lc);
	}
	/* Stopping: nothing more is received; answer what is in flight, until
	 * the deadline dp_stop set before raising the flag. */
	while (lc->in_flight > 0 && now_ns() < dp.drain_deadline) {
		if (!dp_poll_done(lc))
			rte_pause();
		dp_tx_flush(lc);
	}
	dp_tx_flush(lc);
	if (lc->in_flight)
		log_warn("lcore=%u in_flight=%d msg=\"dpdk: requests still in flight at the end of "
			 "the grace period are abandoned\"", lc->lcore_id, lc->in_flight);
	rt_lease_drop(&lc->lease);
	__atomic_store_n(&lc->done, true, __ATOMIC_RELEASE);	/* dp_stop acquires */
	return 0;
}

/* ---- start and stop ---- */

/* Does the EAL argument list already have opt (as "opt", "opt=..." or "optX")? */
static bool dp_has_arg(const struct dpdk_conf *d, const char *opt, bool prefix)
{
	size_t n = strlen(opt);

	for (int i = 0; i < d->n_eal; i++)
		if (!strncmp(d->eal[i], opt, n) &&
		    (prefix || d->eal[i][n] == 0 || d->eal[i][n] == '='))
			return true;
	return false;
}

/*
 * The lcore map EAL gets when the config gives none: the main lcore (the
 * thread calling rte_eal_init, which keeps serving the control plane) may
 * run on any allowed CPU; packet lcore i is pinned to an allowed CPU.
 * Count mode: lcores 1..N, main 0.  List mode: the listed ids, main the
 * smallest id not listed.  0, or -E2BIG.
 */
static int dp_lcore_map(const struct dpdk_conf *d, char *buf, size_t len, int *main_id)
{
	cpu_set_t set;
	int cpus[CPU_SETSIZE], n_cpus = 0, ids[CFG_DPDK_MAX_LCORES], m = 0;
	size_t o;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[n_cpus++] = c;
	for (int i = 0; i < d->n_lcores; i++)
		ids[i] = d->lcore_list ? d->lcore_ids[i] : i + 1;
	for (bool taken = true; taken; m += taken) {
		taken = false;
		for (int i = 0; i < d->n_lcores; i++)
			taken |= ids[i] == m;
	}
	*main_id = m;
	o = (size_t)snprintf(buf, len, "--lcores=%d@(", m);
	for (int c = 0; c < n_cpus && o < len; c++)
		o += (size_t)snprintf(buf + o, len - o, "%s%d", c ? "," : "", cpus[c]);
	for (int i = 0; i < d->n_lcores && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s,%d@%d", i ? "" : ")", ids[i],
				      cpus[ids[i] % n_cpus]);
	return o < len ? 0 : -E2BIG;
}

/* rte_eal_init with d's arguments and ours; the caller's CPU affinity is kept. */
static int dp_eal_init(const struct dpdk_conf *d, char **err)
{
	char *argv[CFG_DPDK_MAX_EAL + 8], map[4096], mainarg[32];
	int argc = 0, rc, main_id = 0;
	pthread_t self = pthread_self();
	bool nohuge = dp_has_arg(d, "--no-huge", false);
	cpu_set_t keep;

	argv[argc++] = "infergw";
	/*
	 * Tests and side-by-side instances never share EAL files: --in-memory
	 * unless a --file-prefix is given.  --no-huge implies legacy memory,
	 * which EAL refuses together with --in-memory: there, --no-shconf
	 * (no shared config, no IPC socket) is the same isolation, and a
	 * given --in-memory is replaced by it.
	 */
	for (int i = 0; i < d->n_eal; i++)
		if (!nohuge || strcmp(d->eal[i], "--in-memory"))
			argv[argc++] = d->eal[i];
	if (nohuge && !dp_has_arg(d, "--file-prefix", false) && !dp_has_arg(d, "--no-shconf", false))
		argv[argc++] = "--no-shconf";
	else if (!nohuge && !dp_has_arg(d, "--file-prefix", false) &&
		 !dp_has_arg(d, "--in-memory", false))
		argv[argc++] = "--in-memory";
	if (!dp_has_arg(d, "--telemetry", false) && !dp_has_arg(d, "--no-telemetry", false))
		argv[argc++] = "--no-telemetry";
	if (!dp_has_arg(d, "-l", true) && !dp_has_arg(d, "-c", true) &&
	    !dp_has_arg(d, "--lcores", false)) {
		if (dp_lcore_map(d, map, sizeof(map), &main_id)) {
			*err = be_strdupf("%s: cannot build the lcore map", d->where);
			return -E2BIG;
		}
		snprintf(mainarg, sizeof(mainarg), "--main-lcore=%d", main_id);
		argv[argc++] = map;
		argv[argc++] = mainarg;
	}
	argv[argc] = NULL;
	pthread_getaffinity_np(self, sizeof(keep), &keep);
	rc = rte_eal_init(argc, argv);
	pthread_setaffinity_np(self, sizeof(keep), &keep);
	if (rc < 0) {
		*err = be_strdupf("%s: EAL initialisation failed: %s (check dpdk.eal)", d->where,
				  rte_strerror(rte_errno));
		return -(rte_errno ? rte_errno : EINVAL);
	}
	dp.eal_up = true;
	return 0;
}

/* Configure, set up and start the port; read its MAC and MTU. */
static int dp_port_init(const struct dpdk_conf *d, char **err)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	struct rte_ether_addr mac;
	uint16_t nrx = DP_RING_DESC, ntx = DP_RING_DESC, q = (uint16_t)d->queues, mtu = 1500;
	int rc, socket;
	unsigned cache;

	dp.port = (uint16_t)d->port;
	if (!rte_eth_dev_is_valid_port(dp.port)) {
		*err = be_strdupf("%s.port: no DPDK port %d (EAL found %u; a vdev or an allowed "
				  "PCI device in dpdk.eal makes one)", d->where, d->port,
				  rte_eth_dev_count_avail());
		return -ENODEV;
	}
	rc = rte_eth_dev_info_get(dp.port, &info);
	if (rc)
		goto fail;
	if (q > info.max_rx_queues || q > info.max_tx_queues) {
		*err = be_strdupf("%s.queues: port %d (%s) has at most %u RX / %u TX queues, not %u",
				  d->where, d->port, info.driver_name, info.max_rx_queues,
				  info.max_tx_queues, q);
		return -EINVAL;
	}
	if (q > 1 && (info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP))) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
			info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	} else if (q > 1) {
		log_info("port=%d driver=%s msg=\"dpdk: no RSS on this port; the driver spreads "
			 "the %u queues its own way\"", d->port, info.driver_name, q);
	}
	socket = rte_eth_dev_socket_id(dp.port);
	cache = (unsigned)d->mbufs / 8 < 256 ? (unsigned)d->mbufs / 8 : 256;
	dp.pool = rte_pktmbuf_pool_create("infergw_dp", (unsigned)d->mbufs, cache, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE,
					  socket < 0 ? (int)rte_socket_id() : socket);
	if (!dp.pool) {
		*err = be_strdupf("%s.mbufs: cannot make a pool of %d mbufs: %s (more EAL memory: "
				  "-m)", d->where, d->mbufs, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	rc = rte_eth_dev_configure(dp.port, q, q, &conf);
	if (!rc)
		rc = rte_eth_dev_adjust_nb_rx_tx_desc(dp.port, &nrx, &ntx);
	for (uint16_t i = 0; !rc && i < q; i++) {
		rc = rte_eth_rx_queue_setup(dp.port, i, nrx, (unsigned)socket, NULL, dp.pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup(dp.port, i, ntx, (unsigned)socket, NULL);
	}
	if (!rc)
		rc = rte_eth_dev_start(dp.port);
	if (rc)
		goto fail;
	dp.port_up = true;
	rte_eth_promiscuous_disable(dp.port);	/* -ENOTSUP on some vdevs: harmless */
	rc = rte_eth_macaddr_get(dp.port, &mac);
	if (rc)
		goto fail;
	memcpy(dp.self.mac, mac.addr_bytes, 6);
	if (rte_eth_dev_get_mtu(dp.port, &mtu) || mtu < 576)
		mtu = 1500;
	dp.frame_cap = (size_t)mtu + PKT_ETH_HLEN;
	log_info("port=%d driver=%s mac=%02x:%02x:%02x:%02x:%02x:%02x mtu=%u queues=%u rxd=%u "
		 "txd=%u mbufs=%d rss=%s msg=\"dpdk port started\"", d->port, info.driver_name,
		 mac.addr_bytes[0], mac.addr_bytes[1], mac.addr_bytes[2], mac.addr_bytes[3],
		 mac.addr_bytes[4], mac.addr_bytes[5], mtu, q, nrx, ntx, d->mbufs,
		 conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? "on" : "off");
	return 0;
fail:
	*err = be_strdupf("%s: port %d: %s", d->where, d->port, rte_strerror(rc < 0 ? -rc : rc));
	return rc < 0 ? rc : -rc;
}

/* Pick the packet lcores, give each its queues, pool and sink. */
static int dp_lcores_init(const struct dpdk_conf *d, char **err)
{
	unsigned id;
	int n = 0;

	/* Plain memory, not EAL's: it outlives rte_eal_cleanup (see dp_teardown). */
	if (posix_memalign((void **)&dp.lcores, 64, sizeof(*dp.lcores) * d->n_lcores))
		dp.lcores = NULL;
	if (dp.lcores)
		memset(dp.lcores, 0, sizeof(*dp.lcores) * d->n_lcores);
	if (!dp.lcores) {
		*err = be_strdupf("%s: out of memory", d->where);
		return -ENOMEM;
	}
	if (d->lcore_list) {
		for (int i = 0; i < d->n_lcores; i++) {
			id = (unsigned)d->lcore_ids[i];
			if (!rte_lcore_is_enabled(id) || id == rte_get_main_lcore()) {
				*err = be_strdupf("%s.lcores[%d]: lcore %u is not a worker lcore of "
						  "this EAL (see -l / --lcores in dpdk.eal)", d->where,
						  i, id);
				return -EINVAL;
			}
			dp.lcores[n++].lcore_id = id;
		}
	} else {
		RTE_LCORE_FOREACH_WORKER(id) {
			if (n == d->n_lcores)
				break;
			dp.lcores[n++].lcore_id = id;
		}
		if (n < d->n_lcores) {
			*err = be_strdupf("%s.lcores: %d packet lcores asked, EAL has %d workers "
					  "(see -l / --lcores in dpdk.eal)", d->where, d->n_lcores, n);
			return -EINVAL;
		}
	}
	dp.n_lcores = n;
	for (int i = 0; i < n; i++) {
		struct dp_lcore *lc = &dp.lcores[i];

		lc->idx = i;
		lc->txq = (uint16_t)i;
		for (int q = i; q < d->queues; q += n)
			lc->rxq[lc->n_rxq++] = (uint16_t)q;
		front_pool_init(&lc->pool, 0);
		front_poll_sink_init(&lc->sink);
	}
	return 0;
}

/* Undo whatever dp_start got to. */
static void dp_teardown(void)
{
	if (dp.port_up) {
		rte_eth_dev_stop(dp.port);
		dp.port_up = false;
	}
	if (dp.eal_up) {
		rte_eth_dev_close(dp.port);
		rte_mempool_free(dp.pool);
		dp.pool = NULL;
	}
	/* The lcore array stays: /metrics may still render it, and a request
	 * abandoned in flight still points at its lcore's sink.  The pools'
	 * requests are plain malloc: freed here when nothing is in flight. */
	for (int i = 0; dp.lcores && i < dp.n_lcores; i++)
		if (!dp.lcores[i].in_flight)
			front_pool_destroy(&dp.lcores[i].pool);
	if (dp.eal_up) {
		rte_eal_cleanup();
		dp.eal_up = false;
	}
}

int dp_start(const struct dpdk_conf *d, char **err)
{
	int rc;

	if (!d->enabled)
		return 0;
	if (d->burst > DP_MAX_BURST) {
		*err = be_strdupf("%s.burst: at most %d", d->where, DP_MAX_BURST);
		return -EINVAL;
	}
	dp.burst = d->burst;
	memcpy(dp.self.ip, (uint8_t[4]){ d->ip >> 24, d->ip >> 16, d->ip >> 8, d->ip }, 4);
	dp.self.udp_port = (uint16_t)d->udp_port;
	rc = dp_eal_init(d, err);
	if (!rc)
		rc = dp_port_init(d, err);
	if (!rc)
		rc = dp_lcores_init(d, err);
	if (rc) {
		dp_teardown();
		return rc;
	}
	dp.tsc_hz = rte_get_tsc_hz();
	__atomic_store_n(&dp.lcores_ready, true, __ATOMIC_RELEASE);
	atomic_store(&dp.stop, false);
	met_on_render(dp_metrics);
	for (int i = 0; i < dp.n_lcores; i++) {
		rc = rte_eal_remote_launch(dp_lcore_main, &dp.lcores[i], dp.lcores[i].lcore_id);
		if (rc) {
			*err = be_strdupf("%s: cannot launch lcore %u: %s", d->where,
					  dp.lcores[i].lcore_id, rte_strerror(-rc));
			dp.drain_deadline = 0;
			atomic_store(&dp.stop, true);
			rte_eal_mp_wait_lcore();
			dp_teardown();
			return rc;
		}
	}
	dp.running = true;
	log_info("address=%s udp_port=%d lcores=%d queues=%d msg=\"dpdk fast path serving\"",
		 d->address, d->udp_port, dp.n_lcores, d->queues);
	return 0;
}

/* Log where the cycles went, per event of each stage, over the whole run. */
static void dp_log_stages(void)
{
	char line[512];
	size_t o = 0;

	for (int k = 0; k < DP_ST_N; k++) {
		uint64_t c = 0, e = 0;

		for (int i = 0; i < dp.n_lcores; i++) {
			c += DP_GET(dp.lcores[i].st.cycles[k]);
			e += DP_GET(dp.lcores[i].st.events[k]);
		}
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s_cycles=%.0f %s_events=%llu ",
				      dp_stage_names[k], e ? (double)c / e : 0.0, dp_stage_names[k],
				      (unsigned long long)e);
		if (o >= sizeof(line))
			break;
	}
	log_info("%stsc_hz=%llu msg=\"dpdk: average cycles per event of each stage\"", line,
		 (unsigned long long)dp.tsc_hz);
}

void dp_stop(uint32_t grace_ms)
{
	if (!dp.running)
		return;
	dp.drain_deadline = now_ns() + (uint64_t)grace_ms * 1000000;
	atomic_store(&dp.stop, true);	/* seq_cst: the deadline is seen with it */
	rte_eal_mp_wait_lcore();
	for (int i = 0; i < dp.n_lcores; i++)
		(void)__atomic_load_n(&dp.lcores[i].done, __ATOMIC_ACQUIRE);
	dp.running = false;
	dp_log_stages();
	dp_teardown();
	log_info("msg=\"dpdk fast path stopped\"");
}
