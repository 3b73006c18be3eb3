/*
 * hc_xio.h -- protocol core: one cache operation driven by a transport
 * outside C (an OpenResty cosocket, a LuaSocket loop, a test feeding
 * bytes one at a time). No socket, no Lua state.
 *
 * How it works: the operation's C code is deterministic given its
 * arguments, the replies it gets and the tokens it draws, so it is simply
 * run again. Each run, every request the operation makes is formatted and
 * looked up in the log of rounds: a round already answered gives back its
 * reply bytes (parsed afresh), and the first request not in the log
 * becomes the pending round -- the run stops there with "pending" and the
 * transport sends its bytes, feeds the reply, and runs the operation once
 * more. The last run finishes the operation from its replies (decode,
 * status, stats) exactly as the blocking path does, in the same code.
 * Rounds are matched by their bytes, not their position, so a run that no
 * longer needs a round (a script whose SHA an earlier round loaded) skips
 * it. Random tokens are drawn once and replayed in order, so the bytes of
 * a request do not change between runs.
 *
 * Cost: an operation of k round trips is run k+1 times (k is 1 for get,
 * set, get_many...; 2 for a tagged read; +1 when a script must be loaded).
 */
#ifndef HC_XIO_H
#define HC_XIO_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "hc_cmd.h"

#define HC_XIO_ROUNDS 16

typedef struct hc_xio hc_xio;

hc_xio *hc_xio_new(void);
void hc_xio_free(hc_xio *x);

/* Makes x as new (hc_xio_new) for another operation, keeping its memory. */
void hc_xio_reset(hc_xio *x);

/* Starts a run: rounds are looked up from the first again, tokens
 * replayed from the first. */
void hc_xio_begin_run(hc_xio *x);

/* The operation's exec: 0 with replies (caller frees) when the request is
 * a round already answered; -1 with err "pending" when it is new (it is
 * then the pending round); -1 with err "too many round trips" past
 * HC_XIO_ROUNDS. timeout: the wait this round may need (BLPOP), 0 = the
 * transport's command timeout. */
int hc_xio_exec(hc_xio *x, int n, const hc_cmd *cmds, double timeout, redisReply **replies,
                char *err, size_t errlen);

/* 1 while a round waits for its reply. */
int hc_xio_pending(const hc_xio *x);

/* The pending round: its request bytes, how many replies it needs, its
 * wait. NULL when none. */
const char *hc_xio_request(const hc_xio *x, size_t *len, int *nreplies, double *timeout);

/* 1 when the pending round only reads (every command hc_cmd_idempotent)
 * and no byte of its reply came yet: a transport whose reused connection
 * turns out closed may send it again on another, as the C pool does. */
int hc_xio_idempotent(const hc_xio *x);

/* Feeds reply bytes of the pending round (any piece size). 1 once all its
 * replies are complete (the round is then answered), 0 for more, -1 on a
 * protocol error or out of memory. */
int hc_xio_feed(hc_xio *x, const char *buf, size_t n);

/* Answers the pending round with the transport's error (the connection
 * failed or timed out): on the next run its exec fails with err, so the
 * operation ends through its own error path (stats, on_event, nil, err)
 * as on the blocking path. 0, or -1 when no round waits / out of memory. */
int hc_xio_fail(hc_xio *x, const char *err);

/* The state a connection is left in by the rounds sent so far
 * (hc_cmd_track: MULTI, WATCH, or DIRTY for SELECT, SUBSCRIBE, ...),
 * starting from the state set with hc_xio_set_state (0 after new/reset).
 * A transport that pools connections must not pool one left with state. */
unsigned hc_xio_state(const hc_xio *x);
void hc_xio_set_state(hc_xio *x, unsigned state);

/* n random tokens as hex (hc_tokens_new's format), the same on every run. */
int hc_xio_tokens(hc_xio *x, char *hex, int n);

/* Two numbers an operation decided on its first run (an L1 fill's
 * ticket and epoch), kept for its later runs (until reset): _get loads
 * them (1) or finds none (0); _set keeps them. */
int hc_xio_memo_get(const hc_xio *x, unsigned long long *a, unsigned long long *b);
void hc_xio_memo_set(hc_xio *x, unsigned long long a, unsigned long long b);

/* hc_now() when the operation started (its first run; also after a reset). */
double hc_xio_t0(const hc_xio *x);

#endif
