/* tsdb/os.c -- the storage engine's system calls, with errno mapping and fault injection.
 *
 * This is the only file of tsdb/ that reads errno or may use Linux-specific calls. See
 * tsdb/os.h for the contract. Every failure is logged once here, with operation, path (when
 * known) and strerror, and turned into a TSDB_E* code plus a message in the caller's tsdb_err.
 */
#define _GNU_SOURCE
#include "tsdb/os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Fault injection ------------------------------------------------------------------------ */

static _Atomic uint64_t os_calls[TSDB_OS__N];
static _Atomic uint64_t os_fail_at[TSDB_OS__N]; /* call number that fails; 0 = disarmed */
static _Atomic int os_fail_errno[TSDB_OS__N];
static _Atomic int os_fail_sticky[TSDB_OS__N];

void tsdb__os_fault_arm(enum tsdb_os_op op, uint64_t nth, int errno_val, int sticky)
{
    os_fail_errno[op] = errno_val ? errno_val : EIO;
    os_fail_sticky[op] = sticky;
    os_fail_at[op] = nth ? atomic_load(&os_calls[op]) + nth : 0;
}

void tsdb__os_fault_clear(void)
{
    for (int i = 0; i < TSDB_OS__N; i++)
        os_fail_at[i] = 0;
}

uint64_t tsdb__os_calls(enum tsdb_os_op op)
{
    return atomic_load(&os_calls[op]);
}

/* Counts a call of op; returns 0 to proceed or the errno to fail with. */
static int os_fault(enum tsdb_os_op op)
{
    uint64_t n = atomic_fetch_add(&os_calls[op], 1) + 1;
    uint64_t at = atomic_load(&os_fail_at[op]);
    if (at == 0)
        return 0;
    if (n == at || (n > at && os_fail_sticky[op]))
        return os_fail_errno[op];
    return 0;
}

/* ---- Errors ------------------------------------------------------------------------------- */

static int os_err(tsdb_err *err, int e, const char *op, const char *path)
{
    int code = TSDB_EIO;
    if (e == ENOSPC || e == EDQUOT)
        code = TSDB_ENOSPC;
    else if (e == ENOENT)
        code = TSDB_ENOTFOUND;
    else if (e == ENOMEM)
        code = TSDB_ENOMEM;
    if (code != TSDB_ENOTFOUND)
        tsdb_log(TSDB_LOG_ERROR, "os", "%s %s: %s", op, path ? path : "", strerror(e));
    return tsdb_errf(err, code, -1, "%s %s: %s", op, path ? path : "", strerror(e));
}

static const char *fd_name(int fd, char *buf, size_t cap)
{
    snprintf(buf, cap, "fd %d", fd);
    return buf;
}

/* ---- Files ---------------------------------------------------------------------------------- */

int tsdb__os_open(const char *path, int flags, int mode, int *fd, tsdb_err *err)
{
    int e = os_fault(TSDB_OS_OPEN);
    if (e)
        return os_err(err, e, "open", path);
    int f;
    do {
        f = open(path, flags | O_CLOEXEC, mode);
    } while (f < 0 && errno == EINTR);
    if (f < 0)
        return os_err(err, errno, "open", path);
    *fd = f;
    return TSDB_OK;
}

void tsdb__os_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

int tsdb__os_pread(int fd, void *buf, size_t n, uint64_t off, size_t *got, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_READ);
    if (e)
        return os_err(err, e, "read", fd_name(fd, nb, sizeof nb));
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return os_err(err, errno, "read", fd_name(fd, nb, sizeof nb));
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return TSDB_OK;
}

int tsdb__os_pwrite(int fd, const void *p, size_t n, uint64_t off, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_WRITE);
    if (e)
        return os_err(err, e, "write", fd_name(fd, nb, sizeof nb));
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return os_err(err, errno, "write", fd_name(fd, nb, sizeof nb));
        }
        done += (size_t)r;
    }
    return TSDB_OK;
}

int tsdb__os_write(int fd, const void *p, size_t n, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_WRITE);
    if (e)
        return os_err(err, e, "write", fd_name(fd, nb, sizeof nb));
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, (const char *)p + done, n - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return os_err(err, errno, "write", fd_name(fd, nb, sizeof nb));
        }
        done += (size_t)r;
    }
    return TSDB_OK;
}

int tsdb__os_fsync(int fd, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_FSYNC);
    if (e || fsync(fd) != 0)
        return os_err(err, e ? e : errno, "fsync", fd_name(fd, nb, sizeof nb));
    return TSDB_OK;
}

int tsdb__os_fdatasync(int fd, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_FSYNC);
    if (e || fdatasync(fd) != 0)
        return os_err(err, e ? e : errno, "fdatasync", fd_name(fd, nb, sizeof nb));
    return TSDB_OK;
}

int tsdb__os_ftruncate(int fd, uint64_t len, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_TRUNCATE);
    if (e || ftruncate(fd, (off_t)len) != 0)
        return os_err(err, e ? e : errno, "truncate", fd_name(fd, nb, sizeof nb));
    return TSDB_OK;
}

int tsdb__os_fsize(int fd, uint64_t *size, tsdb_err *err)
{
    char nb[32];
    struct stat st;
    if (fstat(fd, &st) != 0)
        return os_err(err, errno, "stat", fd_name(fd, nb, sizeof nb));
    *size = (uint64_t)st.st_size;
    return TSDB_OK;
}

/* ---- Paths ---------------------------------------------------------------------------------- */

int tsdb__os_rename(const char *from, const char *to, tsdb_err *err)
{
    int e = os_fault(TSDB_OS_RENAME);
    if (e || rename(from, to) != 0)
        return os_err(err, e ? e : errno, "rename", from);
    return TSDB_OK;
}

int tsdb__os_unlink(const char *path, tsdb_err *err)
{
    int e = os_fault(TSDB_OS_UNLINK);
    if (e)
        return os_err(err, e, "unlink", path);
    if (unlink(path) != 0 && errno != ENOENT)
        return os_err(err, errno, "unlink", path);
    return TSDB_OK;
}

int tsdb__os_mkdir_p(const char *path, tsdb_err *err)
{
    int e = os_fault(TSDB_OS_MKDIR);
    if (e)
        return os_err(err, e, "mkdir", path);
    size_t n = strlen(path);
    char *p = xstrndup(path, n);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = os_err(err, errno, "mkdir", p);
            free(p);
            return rc;
        }
        p[i] = c;
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0)
        return os_err(err, errno, "stat", path);
    if (!S_ISDIR(st.st_mode))
        return os_err(err, ENOTDIR, "mkdir", path);
    return TSDB_OK;
}

int tsdb__os_fsync_dir(const char *dir, tsdb_err *err)
{
    int fd;
    int rc = tsdb__os_open(dir, O_RDONLY | O_DIRECTORY, 0, &fd, err);
    if (rc != TSDB_OK)
        return rc;
    rc = tsdb__os_fsync(fd, err);
    close(fd);
    return rc;
}

int tsdb__os_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int tsdb__os_path_size(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return TSDB_ENOTFOUND;
    *size = (uint64_t)st.st_size;
    return TSDB_OK;
}

uint64_t tsdb__os_dir_bytes(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    uint64_t total = 0;
    size_t sl = strlen(suffix);
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < sl || strcmp(de->d_name + nl - sl, suffix) != 0)
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int tsdb__os_list_dir(const char *dir, tsdb_arena *a, const char ***names, size_t *n, tsdb_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return os_err(err, errno, "opendir", dir);
    size_t cap = 16, len = 0;
    const char **v = tsdb_arena_alloc(a, cap * sizeof(*v));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (len == cap) {
            v = tsdb_arena_realloc(a, v, cap * sizeof(*v), cap * 2 * sizeof(*v));
            cap *= 2;
        }
        v[len++] = tsdb_arena_strndup(a, de->d_name, strlen(de->d_name));
    }
    closedir(d);
    qsort(v, len, sizeof(*v), cmp_name);
    *names = v;
    *n = len;
    return TSDB_OK;
}

int tsdb__os_remove_all(const char *path, tsdb_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? TSDB_OK : os_err(err, errno, "stat", path);
    if (!S_ISDIR(st.st_mode))
        return tsdb__os_unlink(path, err);
    DIR *d = opendir(path);
    if (d == NULL)
        return os_err(err, errno, "opendir", path);
    struct dirent *de;
    int rc = TSDB_OK;
    while (rc == TSDB_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t len = strlen(path) + strlen(de->d_name) + 2;
        char *child = xmalloc(len);
        snprintf(child, len, "%s/%s", path, de->d_name);
        rc = tsdb__os_remove_all(child, err);
        free(child);
    }
    closedir(d);
    if (rc == TSDB_OK && rmdir(path) != 0)
        rc = os_err(err, errno, "rmdir", path);
    return rc;
}

/* ---- Whole files ------------------------------------------------------------------------------
 */

int tsdb__os_read_file(const char *path, size_t max, tsdb_buf *out, tsdb_err *err)
{
    int fd;
    int rc = tsdb__os_open(path, O_RDONLY, 0, &fd, err);
    if (rc != TSDB_OK)
        return rc;
    uint64_t size;
    rc = tsdb__os_fsize(fd, &size, err);
    if (rc == TSDB_OK && size > max)
        rc = tsdb_errf(err, TSDB_ELIMIT, -1, "%s: %llu bytes exceeds the limit of %zu", path,
                       (unsigned long long)size, max);
    if (rc == TSDB_OK && size > 0) {
        tsdb_buf_reserve(out, (size_t)size);
        size_t got = 0;
        rc = tsdb__os_pread(fd, out->p + out->len, (size_t)size, 0, &got, err);
        if (rc == TSDB_OK)
            out->len += got;
    }
    close(fd);
    return rc;
}

int tsdb__os_write_file_atomic(const char *path, const void *p, size_t n, tsdb_err *err)
{
    size_t pl = strlen(path);
    char *tmp = xmalloc(pl + 5);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    char *dir = xstrndup(path, pl);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int fd = -1;
    int rc = tsdb__os_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_write(fd, p, n, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync(fd, err);
    tsdb__os_close(fd);
    if (rc == TSDB_OK)
        rc = tsdb__os_rename(tmp, path, err);
    if (rc == TSDB_OK)
        rc = tsdb__os_fsync_dir(dir, err);
    if (rc != TSDB_OK)
        unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

/* ---- Maps and locks -----------------------------------------------------------------------------
 */

int tsdb__os_mmap_ro(int fd, size_t len, const void **out, tsdb_err *err)
{
    char nb[32];
    int e = os_fault(TSDB_OS_MMAP);
    if (e)
        return os_err(err, e, "mmap", fd_name(fd, nb, sizeof nb));
    if (len == 0) {
        *out = NULL;
        return TSDB_OK;
    }
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return os_err(err, errno, "mmap", fd_name(fd, nb, sizeof nb));
    *out = p;
    return TSDB_OK;
}

void tsdb__os_munmap(const void *p, size_t len)
{
    if (p != NULL && len > 0)
        munmap((void *)(uintptr_t)p, len);
}

void tsdb__os_unmap_pages(const void *p, size_t len)
{
    if (p != NULL && len > 0)
        madvise((void *)(uintptr_t)p, len, MADV_DONTNEED);
}

int tsdb__os_lock_dir(const char *dir, int *fd, tsdb_err *err)
{
    size_t len = strlen(dir) + 6;
    char *path = xmalloc(len);
    snprintf(path, len, "%s/LOCK", dir);
    int f;
    int rc = tsdb__os_open(path, O_RDWR | O_CREAT, 0644, &f, err);
    if (rc != TSDB_OK) {
        free(path);
        return rc;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(f, F_SETLK, &fl) != 0) {
        int e = errno;
        close(f);
        if (e == EACCES || e == EAGAIN)
            rc = tsdb_errf(err, TSDB_ELOCKED, -1, "%s is locked by another process", path);
        else
            rc = os_err(err, e, "lock", path);
        free(path);
        return rc;
    }
    free(path);
    *fd = f;
    return TSDB_OK;
}

void tsdb__os_unlock_dir(int fd)
{
    if (fd >= 0)
        close(fd); /* closing releases the fcntl lock */
}
