/*
 * loop.h - one event loop per thread, with a mailbox for completions.
 *
 * Other threads hand finished requests back with loop_post(); the loop
 * thread runs each request's on_done.  The mailbox is a lock-free stack
 * (producers push with compare-and-swap, the loop takes the whole stack at
 * once), and an eventfd wakes the loop only when the stack was empty.
 */
#ifndef INFERGW_LOOP_H
#define INFERGW_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct event_base;
struct event;
struct infer_req;

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
	_Atomic(struct loop_task *) tasks;
	_Atomic bool stop_requested;
	int efd;
	struct event *ev_mail;
	void (*on_stop)(struct loop *l);	/* runs on the loop thread after loop_request_stop */
	void *owner;				/* the server's per-loop state */
};

/* loop_init - create the base, eventfd and mailbox event. 0 or -errno. */
int loop_init(struct loop *l, int idx);
/* loop_post - hand r back to its owner loop; any thread; never blocks. */
void loop_post(struct loop *l, struct infer_req *r);
/* loop_post_task - run t->fn on l's thread; any thread; never blocks. */
void loop_post_task(struct loop *l, struct loop_task *t);
/* loop_request_stop - ask the loop (from any thread) to run on_stop. */
void loop_request_stop(struct loop *l);
void loop_destroy(struct loop *l);

#endif
