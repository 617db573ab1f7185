/* Unit tests for tsdb/os.c: wrappers, errno mapping, atomic file writes, locks, fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tsdb/os.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cairn-test-os-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsdb__os_fault_clear();
    return tsdb__os_remove_all(dir, NULL);
}

static void test_write_read_atomic(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(tsdb__os_mkdir_p(path, NULL), TSDB_OK);
    assert_int_equal(tsdb__os_mkdir_p(path, NULL), TSDB_OK); /* idempotent */
    snprintf(path, sizeof path, "%s/a/b/c/file", dir);
    assert_int_equal(tsdb__os_write_file_atomic(path, "hello", 5, NULL), TSDB_OK);
    tsdb_buf b;
    tsdb_buf_init(&b);
    assert_int_equal(tsdb__os_read_file(path, 100, &b, NULL), TSDB_OK);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "hello", 5);
    b.len = 0;
    tsdb_err e;
    assert_int_equal(tsdb__os_read_file(path, 4, &b, &e), TSDB_ELIMIT);
    tsdb_buf_fini(&b);
    uint64_t sz = 0;
    assert_int_equal(tsdb__os_path_size(path, &sz), TSDB_OK);
    assert_int_equal(sz, 5);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(tsdb__os_exists(tmp));
    snprintf(path, sizeof path, "%s/missing", dir);
    int fd;
    assert_int_equal(tsdb__os_open(path, O_RDONLY, 0, &fd, &e), TSDB_ENOTFOUND);
    assert_non_null(strstr(e.msg, "missing"));
}

static void test_pread_pwrite_truncate_list(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/f", dir);
    int fd;
    assert_int_equal(tsdb__os_open(path, O_RDWR | O_CREAT, 0644, &fd, NULL), TSDB_OK);
    assert_int_equal(tsdb__os_pwrite(fd, "0123456789", 10, 0, NULL), TSDB_OK);
    assert_int_equal(tsdb__os_ftruncate(fd, 4, NULL), TSDB_OK);
    char buf[16];
    size_t got;
    assert_int_equal(tsdb__os_pread(fd, buf, sizeof buf, 0, &got, NULL), TSDB_OK);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "0123", 4);
    assert_int_equal(tsdb__os_fsync(fd, NULL), TSDB_OK);
    const void *m;
    assert_int_equal(tsdb__os_mmap_ro(fd, 4, &m, NULL), TSDB_OK);
    assert_memory_equal(m, "0123", 4);
    tsdb__os_munmap(m, 4);
    tsdb__os_close(fd);
    snprintf(path, sizeof path, "%s/e", dir);
    assert_int_equal(tsdb__os_write_file_atomic(path, "x", 1, NULL), TSDB_OK);
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    const char **names;
    size_t n;
    assert_int_equal(tsdb__os_list_dir(dir, &a, &names, &n, NULL), TSDB_OK);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "e");
    assert_string_equal(names[1], "f");
    assert_int_equal(tsdb__os_dir_bytes(dir, ""), 5);
    tsdb_arena_fini(&a);
}

static void test_fault_injection(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/g", dir);
    int fd;
    assert_int_equal(tsdb__os_open(path, O_RDWR | O_CREAT, 0644, &fd, NULL), TSDB_OK);
    tsdb__os_fault_arm(TSDB_OS_WRITE, 2, ENOSPC, 0);
    assert_int_equal(tsdb__os_write(fd, "a", 1, NULL), TSDB_OK);
    tsdb_err e;
    assert_int_equal(tsdb__os_write(fd, "b", 1, &e), TSDB_ENOSPC);
    assert_int_equal(e.code, TSDB_ENOSPC);
    assert_int_equal(tsdb__os_write(fd, "c", 1, NULL), TSDB_OK); /* not sticky */
    tsdb__os_fault_arm(TSDB_OS_FSYNC, 1, EIO, 1);
    assert_int_equal(tsdb__os_fsync(fd, NULL), TSDB_EIO);
    assert_int_equal(tsdb__os_fsync(fd, NULL), TSDB_EIO); /* sticky */
    tsdb__os_fault_clear();
    assert_int_equal(tsdb__os_fsync(fd, NULL), TSDB_OK);
    uint64_t before = tsdb__os_calls(TSDB_OS_RENAME);
    tsdb__os_fault_arm(TSDB_OS_RENAME, 1, EIO, 0);
    snprintf(path, sizeof path, "%s/h", dir);
    assert_int_equal(tsdb__os_write_file_atomic(path, "x", 1, NULL), TSDB_EIO);
    assert_false(tsdb__os_exists(path));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(tsdb__os_exists(tmp)); /* the half-written file is cleaned up */
    assert_int_equal(tsdb__os_calls(TSDB_OS_RENAME), before + 1);
    tsdb__os_close(fd);
}

static void test_lock_excludes_other_process(void **state)
{
    (void)state;
    int fd;
    assert_int_equal(tsdb__os_lock_dir(dir, &fd, NULL), TSDB_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd2;
        _exit(tsdb__os_lock_dir(dir, &fd2, NULL) == TSDB_ELOCKED ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tsdb__os_unlock_dir(fd);
}

int main(void)
{
    tsdb_log_set_level(TSDB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_read_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pread_pwrite_truncate_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_excludes_other_process, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
