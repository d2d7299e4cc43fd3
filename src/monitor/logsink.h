/* The writer of a workload's log: the monitor reads the workload's output from a pipe and hands
 * it here. The log is bounded: the current file NAME.log grows to max_size bytes, then becomes
 * NAME.log.1 (NAME.log.1 becomes NAME.log.2, and so on); at most max_files rotated files are
 * kept, so a workload's log never takes more than max_size x (max_files + 1) bytes.
 *
 * Beside each file its time index (NAME.log.t, NAME.log.1.t, ...) says where each second's
 * output begins, for logs --since; it rotates with its file.
 *
 * Writing never waits for space: when the disk is full (ENOSPC, EDQUOT, EFBIG) the bytes are
 * dropped and counted, and once a write succeeds again one line says how many were lost. Files
 * are opened under a descriptor of their directory, without following links, and only regular
 * files are written. */
#ifndef GM_MONITOR_LOGSINK_H
#define GM_MONITOR_LOGSINK_H

#include "common/error.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

struct gm_logsink {
    int dfd; /* the log's directory */
    int fd;  /* NAME.log, -1 while it cannot be opened */
    char name[NAME_MAX + 1];
    uint64_t max_size;
    int max_files;
    uint64_t size;    /* of NAME.log */
    uint64_t dropped; /* bytes lost since the last note */
    int drop_errno;   /* why the last of them were lost */
    int mirror_fd;    /* >= 0: made a duplicate of fd after every (re)open (the monitor's stderr) */
    int index_fd;     /* NAME.log.t, the time index of NAME.log (common/logindex.h), or -1 */
    int64_t index_ms; /* when its last line was written; 0: none in this file yet */
};

/* Opens (creating, mode 0640) the log at path with its limits; max_size >= 1, 0 <= max_files <=
 * GM_LOG_FILES_MAX. Rotated files above max_files (left by a larger setting) are removed. */
int gm_logsink_open(struct gm_logsink *s, const char *path, uint64_t max_size, int max_files,
                    int mirror_fd, struct gm_error *err);
/* Appends len bytes, rotating as needed; what cannot be written is dropped and counted. Never
 * fails and never blocks for space. */
void gm_logsink_write(struct gm_logsink *s, const void *buf, size_t len);
void gm_logsink_close(struct gm_logsink *s);

#endif
