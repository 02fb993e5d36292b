/*
 * loop.h - one event loop per thread, with a mailbox for completions.
 *
 * Each loop is a front end's thread (front.h): it has a request pool and
 * the event-loop completion sink.  Other threads hand finished requests
 * back through the sink (infer_complete); the loop thread runs
 * front_deliver on each (input released, on_done).  The mailbox is a
 * lock-free stack (front_mpsc_push: producers push with compare-and-swap,
 * the loop takes the whole stack at once), and an eventfd wakes the loop
 * only when the stack was empty.
 */
#ifndef INFERGW_LOOP_H
#define INFERGW_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "front.h"

struct event_base;
struct event;
/* Work for a loop thread from another thread (e.g. an admin job's answer). */
struct loop_task {
	struct loop_task *next;
	void (*fn)(struct loop_task *t);	/* runs on the loop thread */
};

struct loop {
	int idx;
	struct event_base *base;
	pthread_t thread;
	_Atomic(struct infer_req *) mailbox;
	struct front_sink sink;		/* completions: pushes onto mailbox, wakes */
	struct front_pool pool;		/* this thread's requests */
	_Atomic(struct loop_task *) tasks;
	_Atomic bool stop_requested;
	int efd;
	struct event *ev_mail;
	void (*on_stop)(struct loop *l);	/* runs on the loop thread after loop_request_stop */
	void *owner;				/* the server's per-loop state */
};

/* loop_init - create the base, eventfd and mailbox event. 0 or -errno. */
int loop_init(struct loop *l, int idx);
/* loop_drain_mail - deliver what the mailbox holds (front_deliver, in
 * completion order), on the loop's thread or after it ended. */
void loop_drain_mail(struct loop *l);
/*
 * loop_hold / loop_release - around one callback of l's own thread that
 * may complete requests there (a batch run inline): completions posted
 * from this thread in between do not wake l through the eventfd (two
 * syscalls and a loop round each), loop_release delivers them, and what
 * other threads posted meanwhile, before it returns.  loop_hold returns
 * whether this call is the outermost; pass it to loop_release (an inner
 * pair delivers nothing).  Loop thread only.
 */
bool loop_hold(struct loop *l);
void loop_release(struct loop *l, bool outer);
/* loop_held - whether l's thread is between loop_hold and loop_release:
 * a loop_drain_mail now is as good as at loop_release. */
bool loop_held(const struct loop *l);
/* loop_post_task - run t->fn on l's thread; any thread; never blocks. */
void loop_post_task(struct loop *l, struct loop_task *t);
/* loop_request_stop - ask the loop (from any thread) to run on_stop. */
void loop_request_stop(struct loop *l);
/* loop_destroy - free the loop and its pool: every request of the pool
 * must have been put back. */
void loop_destroy(struct loop *l);

#endif
