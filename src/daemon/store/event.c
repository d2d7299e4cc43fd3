/* The events table: what `gpumux events` shows, newest GM_STORE_EVENTS_KEEP kept. */
#include "daemon/store/store.h"
#include "common/log.h"
#include "daemon/store/internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Trimming on every insert would double the cost of each event; every thousandth insert keeps
 * the table within 1% of its limit. */
#define EVENTS_TRIM_EVERY 1000

void gm_store_events_trim(struct gm_store *s)
{
    struct gm_error err = {0};
    s->events_since_trim = 0;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_EV_TRIM, &err);
    if (st != NULL) {
        /* Ids are never reused and grow by one, so the newest KEEP rows are a range of the
         * primary key and the delete is a range scan, not a sort. */
        gm_store_bind_i64(st, 1, GM_STORE_EVENTS_KEEP);
        gm_store_exec_stmt(s, st, NULL, &err, "trimming old events");
    }
    if (err.code != 0)
        gm_warn("%s", err.msg);
}

void gm_store_event(struct gm_store *s, enum gm_level level, const char *object, const char *fmt,
                    ...)
{
    if (s == NULL)
        return;
    struct gm_event ev;
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof(ev.message) + 8];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Stored at the sizes gm_event holds, so that what is read back is what was written. */
    gm_store_copy_text(ev.message, sizeof(ev.message), msg);
    ev.level = level;
    gm_store_copy_text(ev.object, sizeof(ev.object), object);

    struct gm_error err = {0};
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_EV_INSERT, &err);
    if (st != NULL) {
        gm_store_bind_i64(st, 1, gm_now_ms());
        gm_store_bind_text(st, 2, gm_level_name(ev.level));
        gm_store_bind_text(st, 3, ev.object);
        gm_store_bind_text(st, 4, ev.message);
        gm_store_exec_stmt(s, st, NULL, &err, "recording an event");
        sqlite3_clear_bindings(st);
    }
    if (err.code != 0) {
        gm_warn("%s (event %s %s: %s)", err.msg, gm_level_name(ev.level), ev.object, ev.message);
        return;
    }
    if (++s->events_since_trim >= EVENTS_TRIM_EVERY)
        gm_store_events_trim(s);
}

int gm_store_event_list(struct gm_store *s, int64_t since_id, int limit, struct gm_event **out,
                        size_t *n, struct gm_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = gm_store_stmt(s, GM_SQL_EV_LIST, err);
    if (st == NULL)
        return -err->code;
    gm_store_bind_i64(st, 1, since_id);
    gm_store_bind_i64(st, 2, limit > 0 ? limit : -1);
    struct gm_event *v = NULL;
    size_t len = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = gm_store_grow((void **)&v, &cap, len, sizeof(*v), 64, "events", err)) < 0)
            goto done;
        struct gm_event *e = &v[len++];
        e->id = sqlite3_column_int64(st, 0);
        e->time_ms = sqlite3_column_int64(st, 1);
        /* Text in the database, an enum inside: a level this version does not know reads as
         * a warning rather than being dropped. */
        char level[16];
        gm_store_col_text(st, 2, level, sizeof(level));
        if (gm_level_parse(level, &e->level) < 0)
            e->level = GM_LEVEL_WARNING;
        gm_store_col_text(st, 3, e->object, sizeof(e->object));
        gm_store_col_text(st, 4, e->message, sizeof(e->message));
    }
    if (rc != SQLITE_DONE)
        ret = gm_store_fail(s, rc, err, "listing events");
done:
    sqlite3_reset(st);
    if (ret < 0) {
        free(v);
        return ret;
    }
    *out = v;
    *n = len;
    return 0;
}
