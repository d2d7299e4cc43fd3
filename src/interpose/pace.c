/* The compute cap's rule (docs/interpose.md, "What the interposer does"). A window's budget
 * ends at its end plus the balance carried from the windows before; a kernel is launched when
 * it is expected to start before the budget's end and to end at most half its own length past
 * it (rounding to the nearer kernel boundary instead of always down). When the budget is spent
 * the work is drained and what it really took, by the clock, is carried: an overrun is paid
 * out of the next windows, a shortfall left by a kernel that did not fit is added to the next
 * one.
 *
 * Before a window's first kernel, the other capped workloads of the GPU (the peers the daemon
 * names) are asked whether their work is done: the kernel is held until it is (or a period has
 * passed), so that it does not queue behind a neighbour's overrun and pay for the switches
 * between them, and the window, its end and its budget's end move by the hold, which is not
 * charged. The workload's own work of the window before, when it ran into this one, moves the
 * window the same way.
 *
 * The state is the workload's (struct gm_region_pace in its region): every process of the
 * workload counts its launches on one tail, so four processes share one budget instead of
 * taking one each. Each drains its own work at the window's end; the window is settled when the
 * last one has (or, should one never come back, when the next window opens). A process's own
 * estimates of its kernels count the other processes' kernels that ran between its events, so
 * the expected times are scaled by a ratio learned from every window: the time its work really
 * took over the time the estimates gave it.
 *
 * Pure: no clock, no driver, no lock (the caller holds the region's). */
#include "interpose/pace.h"

#include <string.h>

#define GM_PACE_LATE_DRAIN_NS 50000ull
/* A claim to time a kernel alone lapses after this: its process may have died holding it. */
#define GM_PACE_TIMING_MAX_NS 2000000000ull
/* How often a process held back by another's timing looks again. */
#define GM_PACE_TIMING_POLL_NS 500000ull
/* Windows whose estimated work is shorter than this teach the ratio nothing. */
#define GM_PACE_LEARN_MIN_NS 1000000ull

void gm_pace_proc_init(struct gm_pace_proc *me)
{
    memset(me, 0, sizeof(*me));
}

int gm_pace_window_at(const struct gm_pace_window *w, uint64_t now, int64_t *k, uint64_t *ws,
                      uint64_t *we)
{
    int64_t rel = (int64_t)(now - w->epoch - w->offset);
    int64_t p = (int64_t)w->period;
    int64_t idx = rel >= 0 ? rel / p : -((-rel + p - 1) / p);
    uint64_t start = w->epoch + w->offset + (uint64_t)(idx * p);
    int in = now - start < w->len;
    if (!in) {
        idx++;
        start += w->period;
    }
    *k = idx;
    *ws = start;
    *we = start + w->len;
    return in;
}

static uint32_t ratio_of(const struct gm_region_pace *st)
{
    uint32_t r = st->ratio;
    if (r < GM_PACE_RATIO_ONE / 16 || r > GM_PACE_RATIO_ONE * 16)
        r = GM_PACE_RATIO_ONE;
    return r;
}

static uint64_t scaled(const struct gm_region_pace *st, uint64_t e)
{
    if (e == 0)
        return 0;
    uint64_t v = e / GM_PACE_RATIO_ONE * ratio_of(st) +
                 e % GM_PACE_RATIO_ONE * ratio_of(st) / GM_PACE_RATIO_ONE;
    return v == 0 ? 1 : v;
}

static int64_t clamp_debt(int64_t b)
{
    return b < -GM_PACE_MAX_DEBT_NS ? -GM_PACE_MAX_DEBT_NS : b;
}

/* The window's work ended at done (by the clock) while the estimates said tail: the ratio moves
 * a quarter of the way to what this window showed, by at most a factor of 4 at once. */
/* Where the window's work could start: its start, moved by its holds. */
static uint64_t work_from(const struct gm_region_pace *st)
{
    return st->ws + st->held;
}

static void learn(struct gm_region_pace *st, uint64_t done)
{
    uint64_t from = work_from(st);
    uint64_t est = st->tail > from ? st->tail - from : 0;
    uint64_t real = done > from ? done - from : 0;
    if (est < GM_PACE_LEARN_MIN_NS || real == 0)
        return;
    double obs = (double)real / (double)est;
    if (obs > 4.0)
        obs = 4.0;
    if (obs < 0.25)
        obs = 0.25;
    double r = (double)ratio_of(st) * (3.0 + obs) / 4.0;
    if (r < GM_PACE_RATIO_ONE / 16.0)
        r = GM_PACE_RATIO_ONE / 16.0;
    if (r > GM_PACE_RATIO_ONE * 16.0)
        r = GM_PACE_RATIO_ONE * 16.0;
    st->ratio = (uint32_t)(r + 0.5);
}

/* The window is over for the workload. Its work ended at the latest end a drain saw (less the
 * wait for another workload's overrun, which is not ours), or at an estimate when that is all
 * there is, or at its start when nothing ran. forced: a process never drained (it died, or
 * sleeps): the estimated tail stands in, and the ratio learns nothing. A credit is kept only
 * when a launch was refused: a program that stopped launching left the rest of its window
 * unused, and a cap is a limit, not a reservation. */
static void settle(struct gm_region_pace *st, int forced)
{
    uint64_t from = work_from(st);
    uint64_t done = from;
    if (st->done > from)
        done = st->done - from > st->waited ? st->done - st->waited : from;
    if (!forced && st->done > 0 && done >= st->done_est)
        learn(st, done);
    if (st->done_est > done)
        done = st->done_est;
    if (forced && st->tail > done)
        done = st->tail;
    /* A process that drains after this is heard still: what its work took past done is
     * charged to the windows after (gm_pace_drained). */
    st->last_done = st->done > done ? st->done : done;
    st->prev_open = (uint32_t)forced;
    st->prev_k = st->k;
    st->prev_end = done;
    int64_t b = st->be - (int64_t)done;
    if (!st->refused && b > 0)
        b = 0;
    st->balance = clamp_debt(b);
    st->pending = 0;
    st->settled = 1;
}

static struct gm_pace_step wait_until(uint64_t t)
{
    return (struct gm_pace_step){.act = GM_PACE_WAIT, .until = t};
}

/* n windows' length, no more than a debt can be. */
static int64_t windows_ns(const struct gm_pace_window *w, uint64_t n)
{
    uint64_t most = (uint64_t)GM_PACE_MAX_DEBT_NS / (w->len > 0 ? w->len : 1);
    return n < most ? (int64_t)(n * w->len) : GM_PACE_MAX_DEBT_NS;
}

/* Opens window k (start ws, end we) with the balance the windows before left. */
static void open_window(const struct gm_pace_window *w, struct gm_region_pace *st, int64_t k,
                        uint64_t ws, uint64_t we)
{
    int64_t b = st->valid ? st->balance : 0;
    if (st->valid && k - st->k > 1) {
        /* The windows skipped since: those its own work of an earlier window ran through are
         * budgets like any other (that work was charged to the window it was launched in);
         * those nobody used at all pay debt, and end any credit. */
        uint64_t gap = (uint64_t)(k - st->k - 1), covered = 0;
        while (covered < gap && ws - (gap - covered) * w->period < st->last_done)
            covered++;
        b += windows_ns(w, covered);
        gap -= covered;
        if (gap > 0) {
            if (b > 0)
                b = 0;
            b += windows_ns(w, gap);
            if (b > 0)
                b = 0;
        }
    }
    struct gm_region_pace kept = *st;
    memset(st, 0, sizeof(*st));
    st->valid = 1;
    st->ratio = kept.ratio;
    st->timing = kept.timing;
    st->timing_until = kept.timing_until;
    st->prev_open = kept.prev_open && kept.prev_k == k - 1;
    st->prev_k = kept.prev_k;
    st->prev_end = kept.prev_end;
    st->k = k;
    st->ws = ws;
    st->we = we;
    st->be = (int64_t)we + b;
    st->balance = b;
    st->tail = ws;
    st->last_done = kept.last_done;
    if (kept.last_done > ws && kept.last_done - ws < w->period) {
        /* Its own work of the window before still ran into this one: that time was charged
         * there, so this window starts, and ends, that much later. */
        st->held = kept.last_done - ws;
        st->be += (int64_t)st->held;
        st->tail = kept.last_done;
    }
}

struct gm_pace_step gm_pace_decide(const struct gm_pace_window *w, struct gm_region_pace *st,
                                   struct gm_pace_proc *me, uint64_t now, uint64_t e)
{
    int64_t k;
    uint64_t ws, we;
    int in = gm_pace_window_at(w, now, &k, &ws, &we);
    /* A window whose first launch is held for a peer's work stays the window until the hold
     * ends, past its end if need be (the launch was decided in it), and then as much longer
     * as it was held: the hold moves the window, its end and its budget's end alike. */
    int holding = st->hold_from != 0 && st->launches == 0;
    if (st->valid && !st->settled && !st->refused && (holding || now < st->we + st->held) &&
        (k != st->k || !in)) {
        k = st->k;
        ws = st->ws;
        we = st->we;
        in = 1;
    }
    /* This process's work of a window that is over, or closed, is drained first. */
    int mine_open = st->valid && st->k == me->k && !st->settled && !st->refused;
    if (me->launched > 0 && (me->k != k || !in || !mine_open))
        return (struct gm_pace_step){.act = GM_PACE_DRAIN};
    /* The workload's window is over: settled once every process with work in it drained, or
     * when the next window opens whatever is left. */
    if (st->valid && !st->settled && (k != st->k || !in)) {
        if (st->pending == 0)
            settle(st, 0);
        else if (k != st->k && in)
            settle(st, 1);
    }
    if (!in)
        return wait_until(ws);
    if (st->valid && k == st->k && (st->settled || st->refused))
        return wait_until(ws + w->period);
    if (!st->valid || k != st->k)
        open_window(w, st, k, ws, we);
    if (me->k != k) {
        uint32_t timing = me->timing;
        gm_pace_proc_init(me);
        me->timing = timing;
    }
    me->k = k;
    /* A kernel never measured is timed alone: one process at a time, after the workload's
     * work launched before it, with the other processes' launches held back meanwhile. Else
     * its first time would count their kernels (four processes starting together measured 1,
     * 2, 3 and 4 kernels' time, and the one that measured four never fit a window again). */
    int held = st->timing && now < st->timing_until;
    if (held && !me->timing)
        return wait_until(now + GM_PACE_TIMING_POLL_NS < st->timing_until
                              ? now + GM_PACE_TIMING_POLL_NS
                              : st->timing_until);
    if (e == 0) {
        if (!held) {
            st->timing = 1;
            st->timing_until = now + GM_PACE_TIMING_MAX_NS;
            me->timing = 1;
        }
        if (st->tail > now)
            return wait_until(st->tail);
    }
    uint64_t es = scaled(st, e);
    uint64_t start = st->tail > now ? st->tail : now;
    /* What moves the window: its holds so far, and the one under way. */
    uint64_t moved = st->held + (st->hold_from != 0 ? now - st->hold_from : 0);
    int fits = e == 0 || ((int64_t)(start + es / 2) <= st->be + (int64_t)(moved - st->held) &&
                          start < st->we + moved);
    if (fits && st->launches == 0 && w->peers > 0) {
        /* The window's first kernel waits for the peers' work (a neighbour's overrun), so that
         * it does not queue behind it and pay for the switches between them; the wait is not
         * charged: the budget's end moves by it. */
        if (!me->peers_read) {
            me->peers_ws = st->ws;
            return (struct gm_pace_step){.act = GM_PACE_PEERS};
        }
        uint64_t until = me->peers_until;
        me->peers_read = 0;
        if (st->hold_from == 0 && until > now)
            st->hold_from = now;
        uint64_t limit = st->hold_from + w->period;
        if (until > now && now < limit) {
            uint64_t t = until < now + GM_PACE_HOLD_POLL_NS ? until : now + GM_PACE_HOLD_POLL_NS;
            return wait_until(t < limit ? t : limit);
        }
        if (st->hold_from != 0) {
            st->held += now - st->hold_from;
            st->be += (int64_t)(now - st->hold_from);
            st->hold_from = 0;
        }
    }
    if (fits) {
        st->tail = start + es;
        if (me->launched++ == 0)
            st->pending++;
        int first = st->launches++ == 0;
        if (first)
            me->first = 1;
        me->last_e = es;
        me->end_est = st->tail;
        return (struct gm_pace_step){.act = GM_PACE_LAUNCH, .first = first, .e = es};
    }
    st->refused = 1;
    if (me->launched > 0)
        return (struct gm_pace_step){.act = GM_PACE_DRAIN};
    if (st->pending == 0)
        settle(st, 0);
    return wait_until(ws + w->period);
}

void gm_pace_drained(struct gm_region_pace *st, struct gm_pace_proc *me, uint64_t before,
                     uint64_t after, uint64_t waited)
{
    uint32_t had = me->launched;
    int first = me->first;
    me->launched = 0;
    me->first = 0;
    if (had == 0 || !st->valid)
        return;
    if (st->prev_open && me->k == st->prev_k && after - before >= GM_PACE_LATE_DRAIN_NS &&
        after > st->prev_end) {
        /* Work of the window settled on an estimate ended later than charged: the rest is a
         * debt of the window now. */
        int64_t extra = (int64_t)(after - st->prev_end);
        st->prev_end = after;
        if (st->settled || st->k == st->prev_k)
            st->balance = clamp_debt(st->balance - extra);
        else
            st->be -= extra;
        return;
    }
    if (st->settled || st->k != me->k)
        return;
    if (after - before < GM_PACE_LATE_DRAIN_NS && before > st->we + st->held) {
        /* A window left long ago: this process's work may have ended any time since, so the
         * clock says nothing; the estimate of its own last kernel's end stands in (the other
         * processes' work is theirs to report). */
        uint64_t done = me->end_est < before ? me->end_est : before;
        if (done > st->done_est)
            st->done_est = done;
    } else if (after > st->done) {
        st->done = after;
    }
    if (first)
        st->waited = waited;
    if (st->pending > 0)
        st->pending--;
    if (st->pending == 0 && (st->refused || after >= st->we + st->held))
        settle(st, 0);
}

uint64_t gm_pace_peer_busy(const struct gm_region_pace *peer, uint64_t ws, uint64_t period,
                           uint64_t now)
{
    if (!peer->valid || peer->settled)
        return 0;
    if (peer->launches == 0) {
        /* Holding too, for a window that began before ours: it goes first. */
        int holds = peer->hold_from != 0 && !peer->refused && now < peer->hold_from + period;
        return holds && peer->ws < ws ? now + GM_PACE_HOLD_POLL_NS : 0;
    }
    if (peer->pending == 0)
        return 0;
    uint64_t work = peer->tail > peer->ws ? peer->tail - peer->ws : 0;
    uint64_t until = peer->tail + work / 4 + GM_PACE_HOLD_POLL_NS;
    return until > now ? until : 0;
}

static void release_timing(struct gm_region_pace *st, struct gm_pace_proc *me)
{
    if (me->timing)
        st->timing = 0;
    me->timing = 0;
}

void gm_pace_timed(struct gm_region_pace *st, struct gm_pace_proc *me, uint64_t t)
{
    release_timing(st, me);
    if (me->launched > 0 && t > me->end_est)
        me->end_est = t;
    if (!st->valid || st->settled || st->k != me->k)
        return;
    /* Its end is known by the clock: the window is charged for it even should the drain come
     * too late to tell. */
    if (st->tail < t)
        st->tail = t;
    if (st->done < t)
        st->done = t;
}

void gm_pace_unlaunch(struct gm_region_pace *st, struct gm_pace_proc *me)
{
    release_timing(st, me);
    if (me->launched == 0)
        return;
    if (--me->launched == 0 && st->valid && st->k == me->k && st->pending > 0)
        st->pending--;
    if (!st->valid || st->k != me->k)
        return;
    if (st->launches > 0)
        st->launches--;
    st->tail = st->tail - st->ws >= me->last_e ? st->tail - me->last_e : st->ws;
}
