/* The time index of a workload's log: beside each log file NAME.log[.K] a file NAME.log[.K].t
 * with one text line "UNIX_MS OFFSET" for the first write of every new second, OFFSET being
 * where in the log file that write began. Every byte written between two lines was written
 * within the second after the first line's time, so a reader asking for the output since a
 * time finds where to start within one second (logs --since). The monitor writes it (logsink);
 * the daemon reads it (the logs route). */
#ifndef GM_COMMON_LOGINDEX_H
#define GM_COMMON_LOGINDEX_H

#include <stddef.h>
#include <stdint.h>

#define GM_LOGINDEX_SUFFIX ".t"
/* A line is written at most this often. */
#define GM_LOGINDEX_STEP_MS 1000

/* "NAME.log.3" -> "NAME.log.3.t"; -1 when it does not fit. */
int gm_logindex_name(const char *log_name, char *buf, size_t len);

/* Appends the line for a write at offset made at now_ms, when a second has passed since
 * *last_ms (then updates it); write errors are ignored: the index only narrows a search. */
void gm_logindex_note(int fd, uint64_t offset, int64_t now_ms, int64_t *last_ms);

/* Where, in the log file whose index is the open descriptor fd, output written at or after
 * since_ms can begin: 1 and *offset, or 0 when everything in the file is older. An index that
 * cannot be read or parsed counts as absent (-1): the caller decides from the file itself. */
int gm_logindex_find(int fd, int64_t since_ms, uint64_t *offset);

#endif
