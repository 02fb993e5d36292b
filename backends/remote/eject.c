/* eject.c - see eject.h. */
#include "eject.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct be_rmt_pool {
	char *name;
	int refs;			/* members; under be_rmt_pools_mu */
	pthread_mutex_t mu;		/* guards ejected and the percent check */
	int ejected;
	struct be_rmt_pool *next;
};

/* The registry: few pools, looked up at open only: a list. */
static pthread_mutex_t be_rmt_pools_mu = PTHREAD_MUTEX_INITIALIZER;
static struct be_rmt_pool *be_rmt_pools;

struct be_rmt_pool *be_rmt_pool_get(const char *name)
{
	struct be_rmt_pool *p;

	pthread_mutex_lock(&be_rmt_pools_mu);
	for (p = be_rmt_pools; p && strcmp(p->name, name); p = p->next)
		;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p || !(p->name = strdup(name))) {
			free(p);
			pthread_mutex_unlock(&be_rmt_pools_mu);
			return NULL;
		}
		pthread_mutex_init(&p->mu, NULL);
		p->next = be_rmt_pools;
		be_rmt_pools = p;
	}
	p->refs++;
	pthread_mutex_unlock(&be_rmt_pools_mu);
	return p;
}

void be_rmt_pool_put(struct be_rmt_pool *p)
{
	struct be_rmt_pool **pp;

	if (!p)
		return;
	pthread_mutex_lock(&be_rmt_pools_mu);
	if (--p->refs > 0) {
		pthread_mutex_unlock(&be_rmt_pools_mu);
		return;
	}
	for (pp = &be_rmt_pools; *pp && *pp != p; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = p->next;
	pthread_mutex_unlock(&be_rmt_pools_mu);
	pthread_mutex_destroy(&p->mu);
	free(p->name);
	free(p);
}

void be_rmt_pool_counts(struct be_rmt_pool *p, int *members, int *ejected)
{
	pthread_mutex_lock(&be_rmt_pools_mu);
	*members = p->refs;
	pthread_mutex_unlock(&be_rmt_pools_mu);
	pthread_mutex_lock(&p->mu);
	*ejected = p->ejected;
	pthread_mutex_unlock(&p->mu);
}

int be_rmt_pool_cap(int members, int percent)
{
	int cap = (int)((int64_t)members * percent / 100);

	return cap < 1 ? 1 : cap;	/* Envoy: at least one may always go */
}

/* Take one of p's ejection places; false when the pool is at its cap. */
static bool be_rmt_pool_take(struct be_rmt_pool *p, int percent)
{
	int members;
	bool ok;

	if (!p)
		return true;	/* a pool of one: the cap is 1 */
	pthread_mutex_lock(&be_rmt_pools_mu);
	members = p->refs;
	pthread_mutex_unlock(&be_rmt_pools_mu);
	pthread_mutex_lock(&p->mu);
	ok = p->ejected < be_rmt_pool_cap(members, percent);
	if (ok)
		p->ejected++;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

static void be_rmt_pool_give(struct be_rmt_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->ejected--;
	pthread_mutex_unlock(&p->mu);
}

uint64_t be_rmt_ej_period(const struct be_rmt_ej_conf *conf, int n)
{
	uint64_t t = conf->ejection_ns;

	/* base x n, capped, without overflowing on a long-failing agent */
	if (n > 1 && t > conf->max_ejection_ns / (uint64_t)n)
		return conf->max_ejection_ns;
	t *= (uint64_t)(n < 1 ? 1 : n);
	return t > conf->max_ejection_ns ? conf->max_ejection_ns : t;
}

void be_rmt_ej_init(struct be_rmt_ej *e, const struct be_rmt_ej_conf *conf,
		    struct be_rmt_pool *pool)
{
	memset(e, 0, sizeof(*e));
	e->conf = *conf;
	if (e->conf.consecutive_failures < 1)
		e->conf.consecutive_failures = 1;
	if (e->conf.max_ejection_ns < e->conf.ejection_ns)
		e->conf.max_ejection_ns = e->conf.ejection_ns;
	e->pool = pool;
}

void be_rmt_ej_fini(struct be_rmt_ej *e)
{
	if (e->ejected)
		be_rmt_pool_give(e->pool);
	e->ejected = e->probing = false;
}

/* (Re)start a period at now: the times-th ejection. */
static void be_rmt_ej_start(struct be_rmt_ej *e, uint64_t now)
{
	e->times++;
	e->ejections++;
	e->ejected = true;
	e->probing = false;
	e->failures = 0;
	e->until_ns = now + be_rmt_ej_period(&e->conf, e->times);
}

enum be_rmt_ej_event be_rmt_ej_failure(struct be_rmt_ej *e, uint64_t now)
{
	if (e->ejected) {
		if (!e->probing)
			return BE_RMT_EJ_NONE;
		be_rmt_ej_start(e, now);	/* keeps its pool place */
		return BE_RMT_EJ_REEJECT;
	}
	if (++e->failures < e->conf.consecutive_failures)
		return BE_RMT_EJ_NONE;
	if (!be_rmt_pool_take(e->pool, e->conf.max_ejection_percent))
		return BE_RMT_EJ_SKIP;
	be_rmt_ej_start(e, now);
	return BE_RMT_EJ_EJECT;
}

enum be_rmt_ej_event be_rmt_ej_success(struct be_rmt_ej *e, uint64_t now)
{
	if (e->ejected) {
		if (!e->probing)
			return BE_RMT_EJ_NONE;
		e->ejected = e->probing = false;
		e->failures = 0;
		be_rmt_pool_give(e->pool);
		return BE_RMT_EJ_READMIT;
	}
	e->failures = 0;
	return BE_RMT_EJ_NONE;
}

enum be_rmt_ej_event be_rmt_ej_tick(struct be_rmt_ej *e, uint64_t now)
{
	if (!e->ejected || e->probing || now < e->until_ns)
		return BE_RMT_EJ_NONE;
	e->probing = true;
	return BE_RMT_EJ_PROBE;
}

bool be_rmt_ej_is_ejected(const struct be_rmt_ej *e)
{
	return e->ejected;
}

const char *be_rmt_ej_event_name(enum be_rmt_ej_event ev)
{
	static const char *const names[] = { "none", "eject", "skip", "probe", "readmit",
					     "reeject" };

	return (unsigned)ev < sizeof(names) / sizeof(names[0]) ? names[ev] : "?";
}
