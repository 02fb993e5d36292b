/* loop.c - see loop.h. */
#include "loop.h"

#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "infer.h"

static void loop_wake(struct loop *l)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(l->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;
}

/* The loop this thread holds (loop_hold), or NULL. */
static __thread struct loop *loop_holding;

/* The event-loop sink's complete(): push, and wake the loop if it was
 * empty, unless the loop's own thread holds it (loop_release delivers). */
static void loop_sink_complete(struct front_sink *s, struct infer_req *r)
{
	struct loop *l = (struct loop *)((char *)s - offsetof(struct loop, sink));

	if (front_mpsc_push(&l->mailbox, r) && loop_holding != l)
		loop_wake(l);
}

bool loop_hold(struct loop *l)
{
	if (loop_holding == l)
		return false;
	loop_holding = l;
	return true;
}

void loop_release(struct loop *l, bool outer)
{
	if (!outer)
		return;
	loop_holding = NULL;
	loop_drain_mail(l);
}

bool loop_held(const struct loop *l)
{
	return loop_holding == l;
}

void loop_drain_mail(struct loop *l)
{
	struct infer_req *r, *next;

	for (r = front_mpsc_take(&l->mailbox); r; r = next) {
		next = r->next;
		r->next = NULL;
		front_deliver(r);
	}
}

void loop_post_task(struct loop *l, struct loop_task *t)
{
	struct loop_task *head = atomic_load_explicit(&l->tasks, memory_order_relaxed);

	do {
		t->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&l->tasks, &head, t, memory_order_release,
							memory_order_relaxed));
	loop_wake(l);
}

void loop_request_stop(struct loop *l)
{
	atomic_store(&l->stop_requested, true);
	loop_wake(l);
}

/* Drain the mailbox in arrival order and run each completion. */
static void loop_on_mail(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	loop_drain_mail(l);
	for (struct loop_task *t = atomic_exchange(&l->tasks, NULL), *tn; t; t = tn) {
		tn = t->next;	/* tasks are rare: order does not matter */
		t->fn(t);
	}
	if (atomic_exchange(&l->stop_requested, false) && l->on_stop)
		l->on_stop(l);
}

int loop_init(struct loop *l, int idx)
{
	memset(l, 0, sizeof(*l));
	l->idx = idx;
	l->sink.complete = loop_sink_complete;
	front_pool_init(&l->pool, 0);
	l->base = event_base_new();
	if (!l->base)
		return -ENOMEM;
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0)
		return -errno;
	l->ev_mail = event_new(l->base, l->efd, EV_READ | EV_PERSIST, loop_on_mail, l);
	if (!l->ev_mail || event_add(l->ev_mail, NULL))
		return -ENOMEM;
	return 0;
}

void loop_destroy(struct loop *l)
{
	if (l->ev_mail)
		event_free(l->ev_mail);
	if (l->efd > 0)
		close(l->efd);
	if (l->base)
		event_base_free(l->base);
	front_pool_destroy(&l->pool);
	memset(l, 0, sizeof(*l));
}
