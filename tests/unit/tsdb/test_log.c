/* Unit tests for tsdb/log.c and tsdb/clock.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsdb/base.h"

/* Runs the log call with stderr redirected to a temp file; returns what was written. */
static char captured[4096];

static void capture_begin(FILE **tmp, int *saved)
{
    fflush(stderr);
    *tmp = tmpfile();
    *saved = dup(2);
    dup2(fileno(*tmp), 2);
}

static const char *capture_end(FILE *tmp, int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(captured, 1, sizeof captured - 1, tmp);
    captured[n] = '\0';
    fclose(tmp);
    return captured;
}

static void test_levels_and_logfmt(void **state)
{
    (void)state;
    enum tsdb_log_level lvl;
    assert_int_equal(tsdb_log_parse_level("WARN", &lvl), TSDB_OK);
    assert_int_equal(lvl, TSDB_LOG_WARN);
    assert_int_equal(tsdb_log_parse_level("loud", &lvl), TSDB_EINVAL);

    FILE *tmp;
    int saved;
    tsdb_log_set_level(TSDB_LOG_INFO);
    tsdb_log_set_json(0);
    capture_begin(&tmp, &saved);
    TSDB_LOG_DEBUG("wal", "hidden");
    TSDB_LOG_INFO("wal", "replayed %d \"segments\"", 3);
    const char *out = capture_end(tmp, saved);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "level=info component=wal msg=\"replayed 3 \\\"segments\\\"\"\n"));
    assert_memory_equal(out, "ts=", 3);

    tsdb_log_set_json(1);
    capture_begin(&tmp, &saved);
    TSDB_LOG_ERROR("db", "bad\nline");
    out = capture_end(tmp, saved);
    tsdb_log_set_json(0);
    assert_non_null(
        strstr(out, "\"level\":\"error\",\"component\":\"db\",\"msg\":\"bad\\nline\"}"));
}

static void test_clock_pin(void **state)
{
    (void)state;
    int64_t now = tsdb_now_ms();
    assert_true(now > 1600000000000LL);
    tsdb_clock_pin(12345);
    assert_int_equal(tsdb_now_ms(), 12345);
    tsdb_clock_pin(0);
    assert_true(tsdb_now_ms() >= now);
    int64_t a = tsdb_mono_ns(), b = tsdb_mono_ns();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_and_logfmt),
        cmocka_unit_test(test_clock_pin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
