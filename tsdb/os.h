/* tsdb/os.h -- every system call the storage engine makes, behind one replaceable layer.
 *
 * The engine never calls open/pwrite/fsync/rename/mmap directly: it calls these wrappers, which
 * retry on EINTR, loop over short writes, map errno once (ENOSPC/EDQUOT -> TSDB_ENOSPC,
 * ENOENT -> TSDB_ENOTFOUND, anything else -> TSDB_EIO) and log the operation, path and errno.
 *
 * Fault injection (SQLite's test_syscall idea): tests arm a fault so that the Nth future call of
 * one operation fails with a chosen errno, optionally failing every call after it too (a disk
 * that stays broken). Counters are process-wide and atomic.
 */
#ifndef TSDB_OS_H
#define TSDB_OS_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

enum tsdb_os_op {
    TSDB_OS_OPEN,
    TSDB_OS_READ,  /* pread */
    TSDB_OS_WRITE, /* write and pwrite */
    TSDB_OS_FSYNC, /* fsync, fdatasync, directory fsync */
    TSDB_OS_RENAME,
    TSDB_OS_UNLINK,
    TSDB_OS_TRUNCATE,
    TSDB_OS_MMAP,
    TSDB_OS_MKDIR,
    TSDB_OS__N
};

/* Fails the nth (1-based) next call of op with errno_val; sticky: every later call fails too.
 * nth == 0 disarms. */
void tsdb__os_fault_arm(enum tsdb_os_op op, uint64_t nth, int errno_val, int sticky);
void tsdb__os_fault_clear(void);             /* disarms every op */
uint64_t tsdb__os_calls(enum tsdb_os_op op); /* calls made so far (for planning faults) */

/* Files. Paths are NUL-terminated. flags are open(2) flags; O_CLOEXEC is always added. */
int tsdb__os_open(const char *path, int flags, int mode, int *fd, tsdb_err *err);
void tsdb__os_close(int fd); /* ignores -1 */
/* Reads up to n bytes at off; *got is what was read (short only at end of file). */
int tsdb__os_pread(int fd, void *buf, size_t n, uint64_t off, size_t *got, tsdb_err *err);
int tsdb__os_pwrite(int fd, const void *p, size_t n, uint64_t off, tsdb_err *err); /* all */
int tsdb__os_write(int fd, const void *p, size_t n, tsdb_err *err);                /* all */
int tsdb__os_fsync(int fd, tsdb_err *err);
int tsdb__os_fdatasync(int fd, tsdb_err *err);
int tsdb__os_ftruncate(int fd, uint64_t len, tsdb_err *err);
int tsdb__os_fsize(int fd, uint64_t *size, tsdb_err *err);

/* Paths. */
int tsdb__os_rename(const char *from, const char *to, tsdb_err *err);
int tsdb__os_unlink(const char *path, tsdb_err *err); /* missing file is not an error */
int tsdb__os_mkdir_p(const char *path, tsdb_err *err);
int tsdb__os_fsync_dir(const char *dir, tsdb_err *err);
int tsdb__os_exists(const char *path);
int tsdb__os_path_size(const char *path, uint64_t *size); /* TSDB_ENOTFOUND if missing */
/* Sum of the sizes of regular files directly in dir whose names end with suffix ("" = all). */
uint64_t tsdb__os_dir_bytes(const char *dir, const char *suffix);
/* Sorted names of the entries in dir (no . and ..), in the arena. */
int tsdb__os_list_dir(const char *dir, tsdb_arena *a, const char ***names, size_t *n,
                      tsdb_err *err);
/* Removes a directory tree (for tests, snapshots and dropped temp folders). */
int tsdb__os_remove_all(const char *path, tsdb_err *err);

/* Whole-file helpers. */
int tsdb__os_read_file(const char *path, size_t max, tsdb_buf *out, tsdb_err *err);
/* Writes path.tmp, fsyncs, renames over path, fsyncs the directory. */
int tsdb__os_write_file_atomic(const char *path, const void *p, size_t n, tsdb_err *err);

/* Memory maps. */
int tsdb__os_mmap_ro(int fd, size_t len, const void **out, tsdb_err *err);
void tsdb__os_munmap(const void *p, size_t len);
/* Drops the resident pages of a read-only file map from this process (MADV_DONTNEED): they stay
 * in the page cache, and touching them again faults them back in. */
void tsdb__os_unmap_pages(const void *p, size_t len);

/* Exclusive lock on dir/LOCK (fcntl); TSDB_ELOCKED if another process holds it. */
int tsdb__os_lock_dir(const char *dir, int *fd, tsdb_err *err);
void tsdb__os_unlock_dir(int fd);

#endif
