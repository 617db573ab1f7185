/* Unit tests for tsdb/crc32c.c and tsdb/siphash.c: published check values, and the hardware
 * and table paths agreeing on random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tsdb/base.h"

uint32_t tsdb__crc32c_sw(uint32_t crc, const void *p, size_t n);

static void test_crc32c_check_values(void **state)
{
    (void)state;
    assert_int_equal(tsdb_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tsdb__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tsdb_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA. */
    unsigned char z[32] = {0};
    assert_int_equal(tsdb_crc32c(0, z, 32), 0x8A9136AAu);
}

static void test_crc32c_incremental_and_paths_agree(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u\n", seed);
    srand(seed);
    unsigned char buf[4099];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)rand();
    for (int iter = 0; iter < 200; iter++) {
        size_t n = (size_t)rand() % sizeof buf, cut = n ? (size_t)rand() % n : 0;
        uint32_t whole = tsdb_crc32c(0, buf, n);
        assert_int_equal(whole, tsdb__crc32c_sw(0, buf, n));
        assert_int_equal(tsdb_crc32c(tsdb_crc32c(0, buf, cut), buf + cut, n - cut), whole);
    }
}

static void test_siphash_reference_vector(void **state)
{
    (void)state;
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* From the SipHash paper's reference vectors (vectors.h, 64-bit output). */
    assert_true(tsdb_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(tsdb_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(tsdb_siphash(key, msg, 8) == 0x93f5f5799a932462ULL);
}

static void test_hash_key_fixed(void **state)
{
    (void)state;
    uint8_t key[16] = {1, 2, 3};
    tsdb_hash_set_key(key);
    assert_true(tsdb_hash("abc", 3) == tsdb_siphash(key, "abc", 3));
    assert_true(tsdb_hash("abc", 3) != tsdb_hash("abd", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_values),
        cmocka_unit_test(test_crc32c_incremental_and_paths_agree),
        cmocka_unit_test(test_siphash_reference_vector),
        cmocka_unit_test(test_hash_key_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
