/* The compute cap's rule (docs/interpose.md, "What the interposer does"): a window's budget
 * ends at its end plus the balance carried from the windows before; a kernel is launched when
 * it is expected to start before the budget's end and to end at most half its own length past
 * it (rounding to the nearer kernel boundary instead of always down); when the budget is spent
 * the work is drained and what it really took, by the clock, is carried: an overrun is paid
 * out of the next windows, a shortfall left by a kernel that did not fit is added to the next
 * one. Pure: no clock, no driver. */
#include "interpose/pace.h"

#define GM_PACE_LATE_DRAIN_NS 50000ull

void gm_pace_init(struct gm_pace_state *st)
{
    *st = (struct gm_pace_state){.k = GM_PACE_NONE};
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

static int64_t clamp_debt(int64_t b)
{
    return b < -GM_PACE_MAX_DEBT_NS ? -GM_PACE_MAX_DEBT_NS : b;
}

/* Window k is over for us; done is when its work ended (its start when nothing ran). A credit
 * is kept only when a launch was refused: a program that stopped launching left the rest of
 * its window unused, and a cap is a limit, not a reservation. */
static void settle(struct gm_pace_state *st, uint64_t done)
{
    int64_t b = st->be - (int64_t)done;
    if (!st->refused && b > 0)
        b = 0;
    st->balance = clamp_debt(b);
    st->launched = 0;
    st->settled = 1;
}

static struct gm_pace_step wait_until(uint64_t t)
{
    return (struct gm_pace_step){.act = GM_PACE_WAIT, .until = t};
}

struct gm_pace_step gm_pace_decide(const struct gm_pace_window *w, struct gm_pace_state *st,
                                   uint64_t now, uint64_t e)
{
    int64_t k;
    uint64_t ws, we;
    int in = gm_pace_window_at(w, now, &k, &ws, &we);
    if (st->k != GM_PACE_NONE && !st->settled && (k != st->k || !in)) {
        if (st->launched > 0)
            return (struct gm_pace_step){.act = GM_PACE_DRAIN};
        settle(st, st->ws);
    }
    if (!in)
        return wait_until(ws);
    if (k == st->k && st->settled)
        return wait_until(ws + w->period);
    if (k != st->k) {
        int64_t b = st->k == GM_PACE_NONE ? 0 : st->balance;
        if (st->k != GM_PACE_NONE && k - st->k > 1) {
            /* Windows we did not use at all pay debt, and end any credit. */
            uint64_t gap = (uint64_t)(k - st->k - 1);
            if (b > 0)
                b = 0;
            if (gap < (uint64_t)GM_PACE_MAX_DEBT_NS / (w->len > 0 ? w->len : 1))
                b += (int64_t)(gap * w->len);
            else
                b = 0;
            if (b > 0)
                b = 0;
        }
        st->k = k;
        st->ws = ws;
        st->we = we;
        st->be = (int64_t)we + b;
        st->balance = b;
        st->tail = ws;
        st->launched = 0;
        st->refused = 0;
        st->settled = 0;
    }
    uint64_t start = st->tail > now ? st->tail : now;
    if (e == 0 || (int64_t)(start + e / 2) <= st->be) {
        st->tail = start + e;
        st->launched++;
        return (struct gm_pace_step){.act = GM_PACE_LAUNCH};
    }
    st->refused = 1;
    if (st->launched > 0)
        return (struct gm_pace_step){.act = GM_PACE_DRAIN};
    settle(st, st->ws);
    return wait_until(ws + w->period);
}

void gm_pace_drained(struct gm_pace_state *st, uint64_t before, uint64_t after, uint64_t waited)
{
    if (st->k == GM_PACE_NONE || st->settled)
        return;
    uint64_t done = after;
    /* A window left long ago: its work may have ended any time since, so the clock says
     * nothing; the estimate stands in. */
    if (after - before < GM_PACE_LATE_DRAIN_NS && before > st->we)
        done = st->tail < before ? st->tail : before;
    else
        done = done - st->ws > waited ? done - waited : st->ws;
    if (done < st->ws)
        done = st->ws;
    settle(st, done);
}

void gm_pace_unlaunch(struct gm_pace_state *st, uint64_t e)
{
    if (st->launched == 0)
        return;
    st->launched--;
    st->tail = st->tail - st->ws >= e ? st->tail - e : st->ws;
}
