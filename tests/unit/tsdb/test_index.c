/* Unit tests for tsdb/index.c: ids, reopen, select against brute force, names/values, delete,
 * long values, map growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/base.h"
#include "tsdb/index.h"
#include "tsdb/os.h"
#include "tsdb/tsdb.h"

/* ---- Fixtures ------------------------------------------------------------------------------ */

typedef struct fx {
    char dir[64];
    tsdb_index *ix;
    tsdb_arena a;
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/cairn-index-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    tsdb_arena_init(&f->a, 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    tsdb__index_close(f->ix);
    tsdb_arena_fini(&f->a);
    tsdb__os_remove_all(f->dir, NULL);
    free(f);
    return 0;
}

static void fx_open(fx *f, size_t map_bytes)
{
    tsdb_err err = {0};
    int rc = tsdb__index_open(f->dir, map_bytes, 0, &f->ix, &err);
    if (rc != 0)
        fail_msg("open: %s", err.msg);
}

static void fx_reopen(fx *f, size_t map_bytes)
{
    tsdb__index_close(f->ix);
    f->ix = NULL;
    fx_open(f, map_bytes);
}

/* Builds a sorted label set from "k=v,k=v" in the arena (values may not contain ',' or '='). */
static tsdb_labels L(tsdb_arena *a, const char *spec)
{
    tsdb_label *v = tsdb_arena_alloc(a, 16 * sizeof *v);
    size_t n = 0;
    const char *p = spec;
    while (*p) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        v[n].name = tsdb_arena_str(a, (tsdb_str){p, (size_t)(eq - p)});
        v[n].value = tsdb_arena_str(a, (tsdb_str){eq + 1, (size_t)(end - eq - 1)});
        n++;
        p = *end ? end + 1 : end;
    }
    tsdb_labels_sort(v, n);
    return (tsdb_labels){v, n};
}

static uint64_t resolve1(fx *f, tsdb_labels l, uint8_t *created)
{
    uint64_t id = 0;
    uint8_t c = 0;
    tsdb_err err = {0};
    int rc = tsdb__index_resolve(f->ix, &l, 1, &id, &c, &err);
    if (rc != 0)
        fail_msg("resolve: %s", err.msg);
    if (created)
        *created = c;
    return id;
}

static const tsdb_matcher *M(tsdb_arena *a, enum tsdb_match_op op, const char *name,
                             const char *value)
{
    tsdb_matcher *m = NULL;
    tsdb_err err = {0};
    int rc = tsdb_matcher_new(op, tsdb_str_c(name), tsdb_str_c(value), a, &m, &err);
    if (rc != 0)
        fail_msg("matcher: %s", err.msg);
    return m;
}

static size_t select_n(fx *f, const tsdb_matcher *const *ms, size_t n, uint64_t **ids)
{
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    size_t cnt = 0;
    tsdb_err err = {0};
    int rc = tsdb__index_rd_select(r, ms, n, &f->a, ids, &cnt, &err);
    tsdb__index_rd_end(r);
    if (rc != 0)
        fail_msg("select: %s", err.msg);
    return cnt;
}

/* ---- Basic behaviour ------------------------------------------------------------------------- */

static void test_resolve_idempotent_and_stable(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    tsdb_labels a = L(&f->a, "__name__=up,job=api,instance=h1");
    tsdb_labels b = L(&f->a, "__name__=up,job=api,instance=h2");
    uint8_t created;
    uint64_t ida = resolve1(f, a, &created);
    assert_int_equal(created, 1);
    uint64_t idb = resolve1(f, b, &created);
    assert_int_equal(created, 1);
    assert_int_not_equal(ida, idb);
    assert_int_equal(resolve1(f, a, &created), ida);
    assert_int_equal(created, 0);
    uint64_t next = tsdb__index_next_id(f->ix);
    assert_true(next > ida && next > idb);

    /* A batch with duplicates and known sets: one transaction, consistent ids. */
    tsdb_labels c = L(&f->a, "__name__=up,job=db");
    tsdb_labels batch[4] = {c, a, c, b};
    uint64_t ids[4];
    uint8_t cr[4];
    assert_int_equal(tsdb__index_resolve(f->ix, batch, 4, ids, cr, NULL), 0);
    assert_int_equal(ids[1], ida);
    assert_int_equal(ids[3], idb);
    assert_int_equal(ids[0], ids[2]);
    assert_int_equal(cr[0], 1);
    assert_int_equal(cr[1], 0);
    assert_int_equal(cr[2], 0);

    fx_reopen(f, 0);
    assert_int_equal(resolve1(f, a, &created), ida);
    assert_int_equal(created, 0);
    assert_int_equal(resolve1(f, c, &created), ids[0]);
    assert_int_equal(tsdb__index_next_id(f->ix), ids[0] + 1);
    uint64_t idd = resolve1(f, L(&f->a, "__name__=new"), &created);
    assert_int_equal(created, 1);
    assert_int_equal(idd, ids[0] + 1);

    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    uint64_t got = 0;
    assert_int_equal(tsdb__index_rd_lookup(r, b, &got), 0);
    assert_int_equal(got, idb);
    assert_int_equal(tsdb__index_rd_lookup(r, L(&f->a, "__name__=up"), &got), TSDB_ENOTFOUND);
    tsdb_labels back;
    assert_int_equal(tsdb__index_rd_labels(r, ida, &f->a, &back), 0);
    assert_true(tsdb_labels_equal(back, a));
    assert_int_equal(tsdb__index_rd_labels(r, 999999, &f->a, &back), TSDB_ENOTFOUND);
    tsdb__index_rd_end(r);
}

static void test_names_values_count(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    resolve1(f, L(&f->a, "__name__=up,job=api,zone=a"), NULL);
    resolve1(f, L(&f->a, "__name__=up,job=db"), NULL);
    resolve1(f, L(&f->a, "__name__=down,job=api,a_b=x"), NULL);
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    tsdb_str *v;
    size_t n;
    assert_int_equal(tsdb__index_rd_names(r, &f->a, &v, &n), 0);
    const char *want_names[] = {"__name__", "a_b", "job", "zone"};
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_true(tsdb_str_eq(v[i], tsdb_str_c(want_names[i])));
    assert_int_equal(tsdb__index_rd_values(r, TSDB_STR("job"), &f->a, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_true(tsdb_str_eq(v[0], TSDB_STR("api")));
    assert_true(tsdb_str_eq(v[1], TSDB_STR("db")));
    assert_int_equal(tsdb__index_rd_values(r, TSDB_STR("nope"), &f->a, &v, &n), 0);
    assert_int_equal(n, 0);
    uint64_t cnt = 0;
    assert_int_equal(tsdb__index_rd_count(r, TSDB_STR("job"), TSDB_STR("api"), &cnt), 0);
    assert_int_equal(cnt, 2);
    assert_int_equal(tsdb__index_rd_count(r, TSDB_STR("job"), TSDB_STR("x"), &cnt), 0);
    assert_int_equal(cnt, 0);
    tsdb__index_rd_end(r);
}

static void test_select_semantics(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    uint64_t up1 = resolve1(f, L(&f->a, "__name__=up,job=api"), NULL);
    uint64_t up2 = resolve1(f, L(&f->a, "__name__=up,job=db,env=prod"), NULL);
    uint64_t dn = resolve1(f, L(&f->a, "__name__=down,env=dev"), NULL);
    uint64_t *ids;
    const tsdb_matcher *ms[3];

    ms[0] = M(&f->a, TSDB_MATCH_EQ, "__name__", "up");
    assert_int_equal(select_n(f, ms, 1, &ids), 2);
    assert_int_equal(ids[0], up1);
    assert_int_equal(ids[1], up2);

    /* {env=""}: series without env. */
    ms[0] = M(&f->a, TSDB_MATCH_EQ, "env", "");
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    assert_int_equal(ids[0], up1);

    /* {env!="prod"} includes series without env. */
    ms[0] = M(&f->a, TSDB_MATCH_NE, "env", "prod");
    assert_int_equal(select_n(f, ms, 1, &ids), 2);
    assert_int_equal(ids[0], up1);
    assert_int_equal(ids[1], dn);

    /* {env=~"p.*"} anchored. */
    ms[0] = M(&f->a, TSDB_MATCH_RE, "env", "p.*");
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    assert_int_equal(ids[0], up2);
    ms[0] = M(&f->a, TSDB_MATCH_RE, "env", "ro");
    assert_int_equal(select_n(f, ms, 1, &ids), 0);

    /* {__name__="up", env!~"prod|"}: env must be set and not prod -> nothing among up. */
    ms[0] = M(&f->a, TSDB_MATCH_EQ, "__name__", "up");
    ms[1] = M(&f->a, TSDB_MATCH_NRE, "env", "prod|");
    assert_int_equal(select_n(f, ms, 2, &ids), 0);
    ms[1] = M(&f->a, TSDB_MATCH_NE, "env", "");
    assert_int_equal(select_n(f, ms, 2, &ids), 1);
    assert_int_equal(ids[0], up2);

    /* No matchers: every series. */
    assert_int_equal(select_n(f, ms, 0, &ids), 3);

    /* Names that can never be stored (too long, empty) select by Prometheus rules all the same. */
    char *longname = tsdb_arena_alloc(&f->a, 10001);
    memset(longname, 'n', 10000);
    longname[10000] = '\0';
    ms[0] = M(&f->a, TSDB_MATCH_EQ, longname, "x");
    assert_int_equal(select_n(f, ms, 1, &ids), 0);
    ms[0] = M(&f->a, TSDB_MATCH_RE, longname, "x|y");
    assert_int_equal(select_n(f, ms, 1, &ids), 0);
    ms[0] = M(&f->a, TSDB_MATCH_NE, longname, "x");
    assert_int_equal(select_n(f, ms, 1, &ids), 3);
    ms[0] = M(&f->a, TSDB_MATCH_EQ, "", "");
    assert_int_equal(select_n(f, ms, 1, &ids), 3);
    ms[0] = M(&f->a, TSDB_MATCH_NE, "", "");
    assert_int_equal(select_n(f, ms, 1, &ids), 0);
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    uint64_t cnt = 1;
    assert_int_equal(tsdb__index_rd_count(r, tsdb_str_c(longname), TSDB_STR("x"), &cnt), 0);
    assert_int_equal(cnt, 0);
    tsdb_str *vals;
    size_t n_vals = 1;
    assert_int_equal(tsdb__index_rd_values(r, tsdb_str_c(longname), &f->a, &vals, &n_vals), 0);
    assert_int_equal(n_vals, 0);
    tsdb__index_rd_end(r);
    /* ... and resolve refuses them with a message instead of truncating. */
    tsdb_label bad[1] = {{tsdb_str_c(longname), TSDB_STR("v")}};
    tsdb_labels bl = {bad, 1};
    uint64_t id;
    tsdb_err err = {0};
    assert_int_equal(tsdb__index_resolve(f->ix, &bl, 1, &id, NULL, &err), TSDB_EINVAL);
    assert_non_null(strstr(err.msg, "label name"));
}

/* ---- Brute force ------------------------------------------------------------------------------
 */

#define BF_SERIES 400

static const char *bf_names[] = {"__name__", "a", "b", "c"};
static const char *bf_values[] = {"x", "y", "xy", "yx", "foo", "foobar", "bar", "a.b", "1", "12"};
#define N_BF_NAMES  (sizeof bf_names / sizeof *bf_names)
#define N_BF_VALUES (sizeof bf_values / sizeof *bf_values)

static const char *bf_patterns[] = {
    "x",  "x|y",   ".*",       ".+",    "f.*",       "foo.*r", "",    "x|", "a\\.b", "[0-9]+",
    "y.", "(?i)X", "fo(o|x)b", ".*b.*", "1|foo|bar", "nope",   "a.b", ".",  "[^x]*"};
#define N_BF_PATTERNS (sizeof bf_patterns / sizeof *bf_patterns)

static void run_brute_force(fx *f, unsigned seed, size_t filter_max)
{
    srand(seed);
    tsdb__index_set_filter_max(f->ix, filter_max);
    tsdb_labels *sets = tsdb_arena_alloc(&f->a, BF_SERIES * sizeof *sets);
    uint64_t *ids = tsdb_arena_alloc(&f->a, BF_SERIES * sizeof *ids);
    for (size_t i = 0; i < BF_SERIES; i++) {
        tsdb_label *v = tsdb_arena_alloc(&f->a, N_BF_NAMES * sizeof *v);
        size_t n = 0;
        for (size_t k = 0; k < N_BF_NAMES; k++) {
            if (k > 0 && rand() % 3 == 0)
                continue;
            v[n].name = tsdb_str_c(bf_names[k]);
            v[n].value = tsdb_str_c(bf_values[rand() % N_BF_VALUES]);
            if (k == 0)
                v[n].value = tsdb_str_c(rand() % 2 ? "m1" : "m2");
            n++;
        }
        sets[i] = (tsdb_labels){v, n};
    }
    assert_int_equal(tsdb__index_resolve(f->ix, sets, BF_SERIES, ids, NULL, NULL), 0);
    /* Delete a few to make sure deleted series never come back. */
    uint64_t del[10];
    for (size_t i = 0; i < 10; i++)
        del[i] = ids[(size_t)rand() % BF_SERIES];
    assert_int_equal(tsdb__index_delete_series(f->ix, del, 10, NULL), 0);

    for (int q = 0; q < 300; q++) {
        size_t nm = 1 + (size_t)rand() % 3;
        const tsdb_matcher *ms[3];
        for (size_t j = 0; j < nm; j++) {
            enum tsdb_match_op op = (enum tsdb_match_op)(rand() % 4);
            const char *name = bf_names[1 + rand() % (N_BF_NAMES - 1)];
            if (rand() % 5 == 0)
                name = "__name__";
            const char *val;
            if (op == TSDB_MATCH_EQ || op == TSDB_MATCH_NE)
                val = rand() % 5 == 0 ? "" : bf_values[rand() % N_BF_VALUES];
            else
                val = bf_patterns[rand() % N_BF_PATTERNS];
            ms[j] = M(&f->a, op, name, val);
        }
        uint64_t *got;
        size_t n_got = select_n(f, ms, nm, &got);
        /* Expected: every live series whose labels satisfy the matchers, ids ascending. */
        size_t n_want = 0;
        uint64_t want[BF_SERIES];
        for (size_t i = 0; i < BF_SERIES; i++) {
            int dead = 0;
            for (size_t k = 0; k < 10; k++)
                dead |= del[k] == ids[i];
            if (dead || !tsdb_matchers_match(ms, nm, sets[i]))
                continue;
            int dup = 0;
            for (size_t k = 0; k < n_want; k++)
                dup |= want[k] == ids[i];
            if (!dup)
                want[n_want++] = ids[i];
        }
        for (size_t i = 1; i < n_want; i++) {
            for (size_t k = i; k > 0 && want[k - 1] > want[k]; k--) {
                uint64_t t = want[k];
                want[k] = want[k - 1];
                want[k - 1] = t;
            }
        }
        if (n_got != n_want || (n_want && memcmp(got, want, n_want * sizeof *want) != 0)) {
            char desc[256] = "";
            for (size_t j = 0; j < nm; j++) {
                static const char *ops[] = {"=", "!=", "=~", "!~"};
                size_t l = strlen(desc);
                snprintf(desc + l, sizeof desc - l, "%s%s\"%s\" ", tsdb_matcher_name(ms[j]).p,
                         ops[tsdb_matcher_op(ms[j])], tsdb_matcher_value(ms[j]).p);
            }
            fail_msg("seed %u filter_max %zu query %d {%s}: got %zu ids, want %zu", seed,
                     filter_max, q, desc, n_got, n_want);
        }
    }
}

static void test_select_brute_force(void **state)
{
    fx *f = *state;
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    /* Pure postings algebra, the default plan, and label filtering after the first list; a
     * fresh index for each so the brute-force reference sees every stored series. */
    size_t filter_max[3] = {0, 1024, 50};
    for (unsigned i = 0; i < 3; i++) {
        tsdb__index_close(f->ix);
        f->ix = NULL;
        assert_int_equal(tsdb__os_remove_all(f->dir, NULL), 0);
        fx_open(f, 0);
        run_brute_force(f, seed + i, filter_max[i]);
    }
}

/* ---- Delete, put, long values, growth ----------------------------------------------------------
 */

static void test_delete_and_put(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    tsdb_labels a = L(&f->a, "__name__=up,job=api");
    tsdb_labels b = L(&f->a, "__name__=up,job=db,only_b=1");
    uint64_t ida = resolve1(f, a, NULL), idb = resolve1(f, b, NULL);
    assert_int_equal(tsdb__index_delete_series(f->ix, &idb, 1, NULL), 0);
    /* Deleting an unknown id is not an error. */
    uint64_t unknown = 777;
    assert_int_equal(tsdb__index_delete_series(f->ix, &unknown, 1, NULL), 0);
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    uint64_t got;
    assert_int_equal(tsdb__index_rd_lookup(r, b, &got), TSDB_ENOTFOUND);
    tsdb_str *v;
    size_t n;
    assert_int_equal(tsdb__index_rd_names(r, &f->a, &v, &n), 0);
    assert_int_equal(n, 2); /* only_b is gone with its last series */
    assert_int_equal(tsdb__index_rd_values(r, TSDB_STR("job"), &f->a, &v, &n), 0);
    assert_int_equal(n, 1);
    tsdb__index_rd_end(r);
    uint64_t *ids;
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "__name__", "up")};
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    assert_int_equal(ids[0], ida);
    /* Ids are never reused. */
    uint8_t created;
    uint64_t idb2 = resolve1(f, b, &created);
    assert_int_equal(created, 1);
    assert_true(idb2 > idb);
    /* only_b=1 came back as a new term: the series reads back and is found again. */
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    tsdb_labels back;
    assert_int_equal(tsdb__index_rd_labels(r, idb2, &f->a, &back), 0);
    assert_true(tsdb_labels_equal(back, b));
    tsdb__index_rd_end(r);
    assert_int_equal(resolve1(f, b, &created), idb2);
    assert_int_equal(created, 0);

    /* put_series: idempotent, bumps next id, refuses a different label set for a known id. */
    tsdb_labels c = L(&f->a, "__name__=replayed");
    assert_int_equal(tsdb__index_put_series(f->ix, 100, c, NULL), 0);
    assert_int_equal(tsdb__index_put_series(f->ix, 100, c, NULL), 0);
    assert_int_equal(tsdb__index_next_id(f->ix), 101);
    assert_int_equal(tsdb__index_put_series(f->ix, 100, a, NULL), TSDB_ECORRUPT);
    assert_int_equal(resolve1(f, c, &created), 100);
    assert_int_equal(created, 0);
    fx_reopen(f, 0);
    assert_int_equal(tsdb__index_next_id(f->ix), 101);
}

static void test_long_values(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    size_t len = 10 * 1024;
    char *v1 = tsdb_arena_alloc(&f->a, len + 1), *v2 = tsdb_arena_alloc(&f->a, len + 1);
    for (size_t i = 0; i < len; i++)
        v1[i] = v2[i] = (char)('a' + i % 26);
    v1[len] = v2[len] = '\0';
    v2[len - 1] = 'Z';
    tsdb_label l1[2] = {{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("path"), {v1, len}}};
    tsdb_label l2[2] = {{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("path"), {v2, len}}};
    tsdb_labels s1 = {l1, 2}, s2 = {l2, 2};
    uint64_t id1 = resolve1(f, s1, NULL), id2 = resolve1(f, s2, NULL);
    uint64_t id3 = resolve1(f, L(&f->a, "__name__=m,path=short"), NULL);
    assert_int_not_equal(id1, id2);
    fx_reopen(f, 0);
    uint8_t created;
    assert_int_equal(resolve1(f, s2, &created), id2);
    assert_int_equal(created, 0);

    uint64_t *ids;
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "path", v1)};
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    assert_int_equal(ids[0], id1);
    ms[0] = M(&f->a, TSDB_MATCH_RE, "path", "abc.*Z");
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    assert_int_equal(ids[0], id2);
    ms[0] = M(&f->a, TSDB_MATCH_NE, "path", v2);
    assert_int_equal(select_n(f, ms, 1, &ids), 2);
    assert_int_equal(ids[0], id1);
    assert_int_equal(ids[1], id3);

    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    tsdb_str *vals;
    size_t n;
    assert_int_equal(tsdb__index_rd_values(r, TSDB_STR("path"), &f->a, &vals, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(vals[0].len, len);
    assert_int_equal(vals[1].len, len);
    assert_true(tsdb_str_eq(vals[2], TSDB_STR("short")));
    assert_true(memcmp(vals[0].p, v2, len) == 0); /* "...Z" < "...z" */
    uint64_t cnt;
    assert_int_equal(tsdb__index_rd_count(r, TSDB_STR("path"), (tsdb_str){v1, len}, &cnt), 0);
    assert_int_equal(cnt, 1);
    tsdb__index_rd_end(r);
    assert_int_equal(tsdb__index_delete_series(f->ix, &id1, 1, NULL), 0);
    ms[0] = M(&f->a, TSDB_MATCH_RE, "path", "abc.*");
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    assert_int_equal(ids[0], id2);
}

static void test_map_growth(void **state)
{
    fx *f = *state;
    fx_open(f, 64 * 1024);
    size_t total = 20000, batch = 2000;
    tsdb_label *lv = tsdb_arena_alloc(&f->a, batch * 3 * sizeof *lv);
    tsdb_labels *sets = tsdb_arena_alloc(&f->a, batch * sizeof *sets);
    uint64_t *ids = tsdb_arena_alloc(&f->a, batch * sizeof *ids);
    /* An open read handle during growth must not block it forever: end it first. */
    for (size_t done = 0; done < total; done += batch) {
        for (size_t i = 0; i < batch; i++) {
            tsdb_label *v = lv + i * 3;
            v[0] = (tsdb_label){TSDB_STR("__name__"), TSDB_STR("metric_with_a_long_name")};
            v[1] = (tsdb_label){TSDB_STR("instance"),
                                tsdb_str_c(tsdb_arena_sprintf(&f->a, "host-%zu", done + i))};
            v[2] = (tsdb_label){TSDB_STR("job"), TSDB_STR("node")};
            sets[i] = (tsdb_labels){v, 3};
        }
        tsdb_err err = {0};
        int rc = tsdb__index_resolve(f->ix, sets, batch, ids, NULL, &err);
        if (rc != 0)
            fail_msg("resolve at %zu: %s", done, err.msg);
    }
    uint64_t *got;
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "job", "node")};
    assert_int_equal(select_n(f, ms, 1, &got), total);
    assert_true(tsdb__index_disk_bytes(f->ix) > 64 * 1024);
    fx_reopen(f, 64 * 1024);
    assert_int_equal(select_n(f, ms, 1, &got), total);
}

/* A read-only handle (another process, like cairnctl) adopts the map size the writing process
 * grew to. */
static void test_readonly_adopts_grown_map(void **state)
{
    fx *f = *state;
    fx_open(f, 64 * 1024);
    resolve1(f, L(&f->a, "__name__=first,job=node"), NULL);
    tsdb__index_close(f->ix);
    f->ix = NULL;
    assert_int_equal(tsdb__index_open(f->dir, 64 * 1024, 1, &f->ix, NULL), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tsdb_index *w = NULL;
        tsdb_arena a;
        tsdb_arena_init(&a, 0);
        if (tsdb__index_open(f->dir, 64 * 1024, 0, &w, NULL) != 0)
            _exit(2);
        for (int i = 0; i < 5000; i++) {
            tsdb_labels l = L(&a, tsdb_arena_sprintf(&a, "__name__=m,i=%d,job=node", i));
            uint64_t id;
            if (tsdb__index_resolve(w, &l, 1, &id, NULL, NULL) != 0)
                _exit(3);
        }
        tsdb__index_close(w);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    uint64_t *got;
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "job", "node")};
    assert_int_equal(select_n(f, ms, 1, &got), 5001);
}

static void test_open_errors(void **state)
{
    fx *f = *state;
    tsdb_index *ix = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/missing", f->dir);
    tsdb_err err = {0};
    assert_true(tsdb__index_open(path, 0, 1, &ix, &err) < 0);
    /* Read-only over an existing index works and refuses writes. */
    fx_open(f, 0);
    uint64_t id = resolve1(f, L(&f->a, "__name__=x"), NULL);
    tsdb__index_close(f->ix);
    f->ix = NULL;
    assert_int_equal(tsdb__index_open(f->dir, 0, 1, &f->ix, &err), 0);
    tsdb_labels l = L(&f->a, "__name__=y");
    uint64_t id2;
    assert_int_equal(tsdb__index_resolve(f->ix, &l, 1, &id2, NULL, NULL), TSDB_EINVAL);
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    uint64_t got;
    assert_int_equal(tsdb__index_rd_lookup(r, L(&f->a, "__name__=x"), &got), 0);
    assert_int_equal(got, id);
    tsdb__index_rd_end(r);
}

/* Map growth while reads run: a reader thread selects in a loop, and the writing thread holds
 * its own read handle open across the growth (as WAL replay does). */
struct reader_ctx {
    tsdb_index *ix;
    atomic_int stop;
    size_t n_selects, last_seen;
    int failed;
};

static void *reader_main(void *arg)
{
    struct reader_ctx *x = arg;
    tsdb_arena a, ma;
    tsdb_arena_init(&a, 0);
    tsdb_arena_init(&ma, 0);
    tsdb_matcher *m = NULL;
    if (tsdb_matcher_new(TSDB_MATCH_RE, TSDB_STR("job"), TSDB_STR("no.*"), &ma, &m, NULL) != 0)
        x->failed = 1;
    for (int i = 0; i < 200000 && !atomic_load(&x->stop) && !x->failed; i++) {
        tsdb_index_rd *r = NULL;
        if (tsdb__index_rd_begin(x->ix, &r, NULL) != 0) {
            x->failed = 1;
            break;
        }
        uint64_t *ids;
        size_t n = 0;
        const tsdb_matcher *ms[1] = {m};
        if (tsdb__index_rd_select(r, ms, 1, &a, &ids, &n, NULL) != 0 || n < x->last_seen)
            x->failed = 1;
        x->last_seen = n;
        tsdb_str *names;
        size_t nn;
        if (tsdb__index_rd_names(r, &a, &names, &nn) != 0)
            x->failed = 1;
        tsdb__index_rd_end(r);
        x->n_selects++;
        tsdb_arena_reset(&a);
    }
    tsdb_arena_fini(&a);
    tsdb_arena_fini(&ma);
    return NULL;
}

static void test_growth_with_readers(void **state)
{
    fx *f = *state;
    fx_open(f, 64 * 1024);
    struct reader_ctx x = {.ix = f->ix};
    atomic_init(&x.stop, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &x), 0);
    tsdb_index_rd *held = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &held, NULL), 0);
    size_t total = 6000, batch = 200;
    tsdb_label *lv = tsdb_arena_alloc(&f->a, batch * 2 * sizeof *lv);
    tsdb_labels *sets = tsdb_arena_alloc(&f->a, batch * sizeof *sets);
    uint64_t *ids = tsdb_arena_alloc(&f->a, batch * sizeof *ids);
    for (size_t done = 0; done < total; done += batch) {
        for (size_t i = 0; i < batch; i++) {
            tsdb_label *v = lv + i * 2;
            v[0] = (tsdb_label){TSDB_STR("instance"),
                                tsdb_str_c(tsdb_arena_sprintf(&f->a, "h%zu", done + i))};
            v[1] = (tsdb_label){TSDB_STR("job"), TSDB_STR("node")};
            sets[i] = (tsdb_labels){v, 2};
        }
        tsdb_err err = {0};
        if (tsdb__index_resolve(f->ix, sets, batch, ids, NULL, &err) != 0)
            fail_msg("resolve at %zu: %s", done, err.msg);
        /* The held handle keeps answering from its snapshot (no series yet). */
        uint64_t cnt = 1;
        assert_int_equal(tsdb__index_rd_count(held, TSDB_STR("job"), TSDB_STR("node"), &cnt), 0);
        assert_int_equal(cnt, 0);
    }
    tsdb__index_rd_end(held);
    atomic_store(&x.stop, 1);
    pthread_join(th, NULL);
    assert_false(x.failed);
    print_message("reader ran %zu selects during growth\n", x.n_selects);
    uint64_t *got;
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "job", "node")};
    assert_int_equal(select_n(f, ms, 1, &got), total);
}

/* A data file that is not an LMDB environment is refused with an error, never a crash. */
static void test_garbage_file(void **state)
{
    fx *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 64 * 1024; i++)
        fputc((i * 7919) & 0xff, fp);
    fclose(fp);
    tsdb_err err = {0};
    int rc = tsdb__index_open(f->dir, 0, 0, &f->ix, &err);
    assert_true(rc == TSDB_ECORRUPT || rc == TSDB_EIO);
    assert_null(f->ix);
    assert_true(strlen(err.msg) > 0);
}

static int each_count(void *ctx, uint64_t id, tsdb_labels l)
{
    (void)id;
    (void)l;
    (*(size_t *)ctx)++;
    return 0;
}

static int each_stop_at_10(void *ctx, uint64_t id, tsdb_labels l)
{
    (void)id;
    (void)l;
    return ++*(size_t *)ctx == 10 ? 1 : 0;
}

static int each_fail(void *ctx, uint64_t id, tsdb_labels l)
{
    (void)ctx;
    (void)id;
    (void)l;
    return TSDB_EIO;
}

static void test_each(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    for (int i = 0; i < 50; i++)
        resolve1(f, L(&f->a, tsdb_arena_sprintf(&f->a, "__name__=m,i=%d,l%02d=x", i, i)), NULL);
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    size_t n = 0;
    assert_int_equal(tsdb__index_rd_each(r, &f->a, each_count, &n), 0);
    assert_int_equal(n, 50);
    n = 0;
    assert_int_equal(tsdb__index_rd_each(r, &f->a, each_stop_at_10, &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(tsdb__index_rd_each(r, &f->a, each_fail, NULL), TSDB_EIO);
    /* 52 names: __name__, i, l00..l49, listed in order through several array growths. */
    tsdb_str *names;
    assert_int_equal(tsdb__index_rd_names(r, &f->a, &names, &n), 0);
    assert_int_equal(n, 52);
    assert_true(tsdb_str_eq(names[0], TSDB_STR("__name__")));
    assert_true(tsdb_str_eq(names[1], TSDB_STR("i")));
    assert_true(tsdb_str_eq(names[2], TSDB_STR("l00")));
    assert_true(tsdb_str_eq(names[51], TSDB_STR("l49")));
    tsdb__index_rd_end(r);

    /* A regex whose literal prefix is longer than a key still selects correctly. */
    char *pat = tsdb_arena_alloc(&f->a, 700);
    memset(pat, 'q', 600);
    strcpy(pat + 600, ".*|1");
    uint64_t *ids;
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_RE, "i", pat)};
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    strcpy(pat + 600, ".*");
    ms[0] = M(&f->a, TSDB_MATCH_RE, "i", pat);
    assert_int_equal(select_n(f, ms, 1, &ids), 0);
    ms[0] = M(&f->a, TSDB_MATCH_NRE, "i", pat);
    assert_int_equal(select_n(f, ms, 1, &ids), 50);
}

/* ---- Postings chunks, term counts, damage, collisions, the term cache ----------------------- */

/* Ids of series (in model order) that have label name=value, ascending. */
typedef struct model {
    size_t n;
    uint64_t *id;
    int *alive;
    int *run, *stride, *rnd; /* label values; rnd < 0 = label absent */
} model;

static tsdb_labels model_labels(tsdb_arena *a, const model *m, size_t i)
{
    /* k makes every set unique: (run, stride, k) differ within a run of 150. */
    size_t k = (i / 7) % 22;
    if (m->rnd[i] < 0)
        return L(a, tsdb_arena_sprintf(a, "__name__=m,k=%zu,run=r%d,stride=s%d", k, m->run[i],
                                       m->stride[i]));
    return L(a, tsdb_arena_sprintf(a, "__name__=m,k=%zu,rnd=x%d,run=r%d,stride=s%d", k, m->rnd[i],
                                   m->run[i], m->stride[i]));
}

/* Checks equality selects and counts of every value of every label against the model. */
static void model_check(fx *f, const model *m, const char *stage)
{
    struct {
        const char *name;
        int *vals;
        int n_vals;
    } lbl[3] = {{"run", m->run, 40}, {"stride", m->stride, 7}, {"rnd", m->rnd, 5}};
    uint64_t *want = malloc(m->n * sizeof *want);
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    for (int l = 0; l < 3; l++) {
        for (int v = 0; v < lbl[l].n_vals; v++) {
            size_t nw = 0;
            for (size_t i = 0; i < m->n; i++)
                if (m->alive[i] && lbl[l].vals[i] == v)
                    want[nw++] = m->id[i];
            char val[16];
            snprintf(val, sizeof val, "%c%d", l == 0 ? 'r' : l == 1 ? 's' : 'x', v);
            const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, lbl[l].name, val)};
            uint64_t *got;
            size_t ng = select_n(f, ms, 1, &got);
            if (ng != nw)
                fail_msg("%s: %s=%s: %zu ids, want %zu", stage, lbl[l].name, val, ng, nw);
            for (size_t i = 0; i < ng; i++)
                if (got[i] != want[i])
                    fail_msg("%s: %s=%s: id %zu is %llu, want %llu", stage, lbl[l].name, val, i,
                             (unsigned long long)got[i], (unsigned long long)want[i]);
            uint64_t cnt = 0;
            assert_int_equal(
                tsdb__index_rd_count(r, tsdb_str_c(lbl[l].name), tsdb_str_c(val), &cnt), 0);
            if (cnt != nw)
                fail_msg("%s: count %s=%s is %llu, want %zu", stage, lbl[l].name, val,
                         (unsigned long long)cnt, nw);
        }
    }
    /* Every live series reads back and is found by its labels. */
    for (size_t i = 0; i < m->n; i += 7) {
        tsdb_labels back;
        int rc = tsdb__index_rd_labels(r, m->id[i], &f->a, &back);
        if (!m->alive[i]) {
            assert_int_equal(rc, TSDB_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(tsdb_labels_equal(back, model_labels(&f->a, m, i)));
        uint64_t id = 0;
        assert_int_equal(tsdb__index_rd_lookup(r, back, &id), 0);
        assert_int_equal(id, m->id[i]);
    }
    tsdb__index_rd_end(r);
    free(want);
    tsdb_arena_reset(&f->a);
}

/* Runs (consecutive ids), strides and random members, then deletions in batches and put_series
 * of deleted ids back (inserts in the middle of lists): postings, counts and labels must always
 * match the model. Chunks fill and split (thousands of ids, random gaps). */
static void test_postings_model(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    unsigned seed = (unsigned)time(NULL);
    printf("seed %u\n", seed);
    srand(seed);
    model m;
    m.n = 6000;
    m.id = calloc(m.n, sizeof *m.id);
    m.alive = calloc(m.n, sizeof *m.alive);
    m.run = calloc(m.n, sizeof *m.run);
    m.stride = calloc(m.n, sizeof *m.stride);
    m.rnd = calloc(m.n, sizeof *m.rnd);
    tsdb_arena la;
    tsdb_arena_init(&la, 0);
    size_t batch = 500;
    tsdb_labels *sets = malloc(batch * sizeof *sets);
    for (size_t b = 0; b < m.n; b += batch) {
        for (size_t i = b; i < b + batch; i++) {
            m.run[i] = (int)(i / 150);
            m.stride[i] = (int)(i % 7);
            m.rnd[i] = rand() % 3 == 0 ? -1 : rand() % 5;
            sets[i - b] = model_labels(&la, &m, i);
        }
        assert_int_equal(tsdb__index_resolve(f->ix, sets, batch, m.id + b, NULL, NULL), 0);
        for (size_t i = b; i < b + batch; i++)
            m.alive[i] = 1;
    }
    for (size_t i = 1; i < m.n; i++)
        assert_true(m.id[i] == m.id[i - 1] + 1);
    model_check(f, &m, "created");
    fx_reopen(f, 0);
    model_check(f, &m, "reopened");

    /* Delete about a third, in batches, including whole runs. */
    uint64_t *del = malloc(m.n * sizeof *del);
    for (int round = 0; round < 3; round++) {
        size_t nd = 0;
        for (size_t i = 0; i < m.n; i++) {
            int whole_run = m.run[i] % 9 == round;
            if (m.alive[i] && (whole_run || rand() % 8 == 0)) {
                del[nd++] = m.id[i];
                m.alive[i] = 0;
            }
        }
        assert_int_equal(tsdb__index_delete_series(f->ix, del, nd, NULL), 0);
        model_check(f, &m, "deleted");
    }
    /* Put some back under their old ids (WAL replay). */
    for (size_t i = 0; i < m.n; i++) {
        if (!m.alive[i] && rand() % 3 == 0) {
            assert_int_equal(
                tsdb__index_put_series(f->ix, m.id[i], model_labels(&f->a, &m, i), NULL), 0);
            m.alive[i] = 1;
        }
    }
    model_check(f, &m, "put back");
    fx_reopen(f, 0);
    model_check(f, &m, "put back, reopened");
    /* Delete everything: terms go, lists empty. */
    size_t nd = 0;
    for (size_t i = 0; i < m.n; i++)
        if (m.alive[i]) {
            del[nd++] = m.id[i];
            m.alive[i] = 0;
        }
    assert_int_equal(tsdb__index_delete_series(f->ix, del, nd, NULL), 0);
    model_check(f, &m, "emptied");
    tsdb_index_rd *r = NULL;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    tsdb_str *names;
    size_t n;
    assert_int_equal(tsdb__index_rd_names(r, &f->a, &names, &n), 0);
    assert_int_equal(n, 0);
    tsdb__index_rd_end(r);
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_NE, "run", "r1")};
    uint64_t *ids;
    assert_int_equal(select_n(f, ms, 1, &ids), 0);
    free(del);
    free(sets);
    tsdb_arena_fini(&la);
    free(m.id);
    free(m.alive);
    free(m.run);
    free(m.stride);
    free(m.rnd);
}

static void be32_put(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

/* Damaged entries of each database are reported as TSDB_ECORRUPT, never a crash. */
static void test_corruption_detected(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    uint64_t id1 = resolve1(f, L(&f->a, "__name__=a,job=x"), NULL);
    resolve1(f, L(&f->a, "__name__=a,job=y"), NULL);
    /* Term ids: 1 = __name__=a, 2 = job=x, 3 = job=y (allocated in label order). */
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "job", "x")};
    uint64_t *ids;
    assert_int_equal(select_n(f, ms, 1, &ids), 1);
    tsdb_index_rd *r = NULL;
    size_t cnt = 0;
    tsdb_labels l;
    unsigned char key[12], val[16];

    /* A postings chunk whose count disagrees with its tokens. */
    be32_put(key, 2);
    be64_put(key + 4, id1);
    val[0] = 5; /* five ids, no tokens */
    assert_int_equal(tsdb__index_poke(f->ix, "postings", key, 12, val, 1), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_select(r, ms, 1, &f->a, &ids, &cnt, NULL), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);
    /* A truncated token. */
    val[0] = 2;
    val[1] = 0x80;
    assert_int_equal(tsdb__index_poke(f->ix, "postings", key, 12, val, 2), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_select(r, ms, 1, &f->a, &ids, &cnt, NULL), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);
    /* A run far past the last allocated id (it must not be expanded). */
    unsigned char big[32];
    size_t nb = 0;
    uint64_t huge = (uint64_t)1 << 40;
    for (uint64_t x = huge;; x >>= 7) {
        big[nb++] = (unsigned char)(x < 0x80 ? x : (x & 0x7f) | 0x80);
        if (x < 0x80)
            break;
    }
    big[nb++] = 0;
    for (uint64_t x = huge - 2;; x >>= 7) {
        big[nb++] = (unsigned char)(x < 0x80 ? x : (x & 0x7f) | 0x80);
        if (x < 0x80)
            break;
    }
    assert_int_equal(tsdb__index_poke(f->ix, "postings", key, 12, big, nb), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_select(r, ms, 1, &f->a, &ids, &cnt, NULL), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);
    /* A key of the wrong size in the postings. */
    assert_int_equal(tsdb__index_poke(f->ix, "postings", key, 11, val, 1), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_select(r, ms, 1, &f->a, &ids, &cnt, NULL), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);

    /* A series record with an entry running past its end. */
    size_t rkey = (size_t)(id1 >> 4); /* series records: native size_t keys */
    memcpy(key, &rkey, sizeof rkey);
    val[0] = (unsigned char)(id1 & 15);
    val[1] = 9;
    val[2] = 1;
    assert_int_equal(tsdb__index_poke(f->ix, "series", key, 8, val, 3), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_labels(r, id1, &f->a, &l), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);
    /* Refs naming a term that does not exist, and refs out of name order. */
    val[1] = 2;
    val[2] = 1;
    val[3] = 0x7f;
    assert_int_equal(tsdb__index_poke(f->ix, "series", key, 8, val, 4), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_labels(r, id1, &f->a, &l), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);
    val[2] = 2;
    val[3] = 1;
    assert_int_equal(tsdb__index_poke(f->ix, "series", key, 8, val, 4), 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_labels(r, id1, &f->a, &l), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);

    /* A term string with an empty name (checked before the cache holds it: reopen). The
     * record gets its two entries back first: refs (1, 2) and (1, 3). */
    unsigned char rec[8] = {(unsigned char)(id1 & 15),       2, 1, 2,
                            (unsigned char)((id1 + 1) & 15), 2, 1, 3};
    assert_int_equal(tsdb__index_poke(f->ix, "series", key, 8, rec, 8), 0);
    fx_reopen(f, 0);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_labels(r, id1, &f->a, &l), 0);
    assert_true(tsdb_labels_equal(l, L(&f->a, "__name__=a,job=x")));
    tsdb__index_rd_end(r);
    unsigned int tkey = 3; /* term strings: native unsigned int keys */
    memcpy(key, &tkey, sizeof tkey);
    val[0] = 0;
    val[1] = 'y';
    assert_int_equal(tsdb__index_poke(f->ix, "tstr", key, 4, val, 2), 0);
    uint64_t id2 = id1 + 1;
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_labels(r, id2, &f->a, &l), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);
    /* A terms record of the wrong size. */
    assert_int_equal(tsdb__index_poke(f->ix, "terms", "job\0y", 5, val, 5), 0);
    const tsdb_matcher *my[1] = {M(&f->a, TSDB_MATCH_EQ, "job", "y")};
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_select(r, my, 1, &f->a, &ids, &cnt, NULL), TSDB_ECORRUPT);
    tsdb__index_rd_end(r);

    /* An index of another format version is refused with a message naming it. */
    be32_put(val, 1);
    assert_int_equal(tsdb__index_poke(f->ix, "meta", "version", 7, val, 4), 0);
    tsdb__index_close(f->ix);
    f->ix = NULL;
    tsdb_err err = {0};
    assert_int_equal(tsdb__index_open(f->dir, 0, 0, &f->ix, &err), TSDB_ECORRUPT);
    assert_non_null(strstr(err.msg, "version 1"));
    assert_int_equal(tsdb__index_open(f->dir, 0, 1, &f->ix, &err), TSDB_ECORRUPT);
    assert_null(f->ix);
}

/* Long values share one hashed key when every hash collides: each term keeps its own id,
 * count and postings, found by comparing the stored strings. */
static void test_hash_collisions(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    tsdb__index_set_weak_hash(f->ix, 1);
    size_t len = 2000, nv = 5;
    char *vals[5];
    uint64_t ids[5][3];
    for (size_t i = 0; i < nv; i++) {
        vals[i] = tsdb_arena_alloc(&f->a, len + 1);
        memset(vals[i], 'a' + (int)i, len);
        vals[i][len] = 0;
        for (int k = 0; k < 3; k++) {
            tsdb_label lb[3] = {{TSDB_STR("__name__"), TSDB_STR("m")},
                                {TSDB_STR("k"), tsdb_str_c(k == 0   ? "0"
                                                           : k == 1 ? "1"
                                                                    : "2")},
                                {TSDB_STR("long"), {vals[i], len}}};
            ids[i][k] = resolve1(f, (tsdb_labels){lb, 3}, NULL);
        }
    }
    /* A value starting with 0xff is hashed too (and collides with the others). */
    char odd[4] = {(char)0xff, 'z', 0, 0};
    tsdb_label lo[2] = {{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("long"), {odd, 2}}};
    uint64_t id_odd = resolve1(f, (tsdb_labels){lo, 2}, NULL);
    tsdb_index_rd *r = NULL;
    for (size_t i = 0; i < nv; i++) {
        const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_EQ, "long", vals[i])};
        uint64_t *got;
        assert_int_equal(select_n(f, ms, 1, &got), 3);
        for (int k = 0; k < 3; k++)
            assert_int_equal(got[k], ids[i][k]);
        assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
        uint64_t cnt = 0;
        assert_int_equal(tsdb__index_rd_count(r, TSDB_STR("long"), (tsdb_str){vals[i], len}, &cnt),
                         0);
        assert_int_equal(cnt, 3);
        tsdb_labels back;
        assert_int_equal(tsdb__index_rd_labels(r, ids[i][1], &f->a, &back), 0);
        uint64_t id = 0;
        assert_int_equal(tsdb__index_rd_lookup(r, back, &id), 0);
        assert_int_equal(id, ids[i][1]);
        tsdb__index_rd_end(r);
    }
    const tsdb_matcher *ms[1] = {M(&f->a, TSDB_MATCH_RE, "long", "c+")};
    uint64_t *got;
    assert_int_equal(select_n(f, ms, 1, &got), 3);
    assert_int_equal(got[0], ids[2][0]);
    ms[0] = M(&f->a, TSDB_MATCH_EQ, "long", odd);
    assert_int_equal(select_n(f, ms, 1, &got), 1);
    assert_int_equal(got[0], id_odd);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    tsdb_str *v;
    size_t n;
    assert_int_equal(tsdb__index_rd_values(r, TSDB_STR("long"), &f->a, &v, &n), 0);
    assert_int_equal(n, nv + 1);
    for (size_t i = 0; i < nv; i++)
        assert_true(v[i].len == len && v[i].p[0] == 'a' + (int)i);
    assert_true(tsdb_str_eq(v[nv], (tsdb_str){odd, 2}));
    tsdb__index_rd_end(r);
    /* Deleting every series of one term removes only that term from the shared key. */
    assert_int_equal(tsdb__index_delete_series(f->ix, ids[1], 3, NULL), 0);
    ms[0] = M(&f->a, TSDB_MATCH_EQ, "long", vals[1]);
    assert_int_equal(select_n(f, ms, 1, &got), 0);
    ms[0] = M(&f->a, TSDB_MATCH_EQ, "long", vals[3]);
    assert_int_equal(select_n(f, ms, 1, &got), 3);
    assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
    assert_int_equal(tsdb__index_rd_values(r, TSDB_STR("long"), &f->a, &v, &n), 0);
    assert_int_equal(n, nv);
    tsdb__index_rd_end(r);
    uint8_t created;
    tsdb_label lb[2] = {{TSDB_STR("__name__"), TSDB_STR("m")}, {TSDB_STR("long"), {vals[1], len}}};
    resolve1(f, (tsdb_labels){lb, 2}, &created);
    assert_int_equal(created, 1);
}

/* Label sets read correctly whatever the term cache budget; the cache stays within it. */
static void test_term_cache_budget(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    size_t n = 3000;
    tsdb_labels *sets = tsdb_arena_alloc(&f->a, n * sizeof *sets);
    uint64_t *ids = tsdb_arena_alloc(&f->a, n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        sets[i] = L(
            &f->a, tsdb_arena_sprintf(&f->a, "__name__=metric_%zu,inst=host-%zu,job=j", i % 13, i));
    assert_int_equal(tsdb__index_resolve(f->ix, sets, n, ids, NULL, NULL), 0);
    size_t budgets[3] = {0, 100 * 1024, 64 << 20};
    for (int b = 0; b < 3; b++) {
        tsdb__index_set_cache_max(f->ix, budgets[b]);
        for (int pass = 0; pass < 2; pass++) {
            tsdb_index_rd *r = NULL;
            assert_int_equal(tsdb__index_rd_begin(f->ix, &r, NULL), 0);
            for (size_t i = 0; i < n; i++) {
                tsdb_labels back;
                assert_int_equal(tsdb__index_rd_labels(r, ids[i], &f->a, &back), 0);
                assert_true(tsdb_labels_equal(back, sets[i]));
                assert_true(tsdb__index_cache_bytes(f->ix) <= budgets[b]);
            }
            tsdb__index_rd_end(r);
        }
        if (b == 2)
            assert_true(tsdb__index_cache_bytes(f->ix) > 0);
    }
}

/* Readers on several threads while the term cache keeps filling up and being emptied (a small
 * budget): every label set must read back exactly. */
struct cache_reader {
    tsdb_index *ix;
    const tsdb_labels *sets;
    const uint64_t *ids;
    size_t n;
    unsigned seed;
    int failed;
};

static void *cache_reader_main(void *arg)
{
    struct cache_reader *x = arg;
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    for (int round = 0; round < 40 && !x->failed; round++) {
        tsdb_index_rd *r = NULL;
        if (tsdb__index_rd_begin(x->ix, &r, NULL) != 0) {
            x->failed = 1;
            break;
        }
        for (size_t k = 0; k < 200; k++) {
            size_t i = (size_t)rand_r(&x->seed) % x->n;
            tsdb_labels back;
            if (tsdb__index_rd_labels(r, x->ids[i], &a, &back) != 0 ||
                !tsdb_labels_equal(back, x->sets[i])) {
                x->failed = 1;
                break;
            }
        }
        tsdb__index_rd_end(r);
        tsdb_arena_reset(&a);
    }
    tsdb_arena_fini(&a);
    return NULL;
}

static void test_term_cache_threads(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    size_t n = 4000;
    tsdb_labels *sets = tsdb_arena_alloc(&f->a, n * sizeof *sets);
    uint64_t *ids = tsdb_arena_alloc(&f->a, n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        sets[i] =
            L(&f->a, tsdb_arena_sprintf(&f->a, "__name__=m%zu,inst=h%zu,v=%zu", i % 17, i / 3, i));
    assert_int_equal(tsdb__index_resolve(f->ix, sets, n, ids, NULL, NULL), 0);
    /* Room for a page or two of slots: fills, refuses, is emptied, again and again. */
    tsdb__index_set_cache_max(f->ix, 80 * 1024);
    struct cache_reader rd[3];
    pthread_t th[3];
    for (int t = 0; t < 3; t++) {
        rd[t] = (struct cache_reader){f->ix, sets, ids, n, (unsigned)(t + 1) * 7919u, 0};
        assert_int_equal(pthread_create(&th[t], NULL, cache_reader_main, &rd[t]), 0);
    }
    for (int t = 0; t < 3; t++) {
        pthread_join(th[t], NULL);
        assert_false(rd[t].failed);
    }
    assert_true(tsdb__index_cache_bytes(f->ix) <= 80 * 1024);
}

/* The value decoders behind fuzz_index: a run, a stride and a run after a gap decode as
 * postings; a zero count, a run past the count, ids reaching the limit and a truncated code
 * are refused; a series record with ascending offsets decodes, one with a repeated offset or a
 * length past its end does not. */
static void test_value_decoders(void **state)
{
    (void)state;
    static const unsigned char run[] = {100, 0, 98};          /* 1..100 */
    static const unsigned char stride[] = {4, 2, 2, 2};       /* 5 8 11 14 */
    static const unsigned char gap[] = {6, 0, 1, 10, 0, 1};   /* 7 8 9 20 21 22 */
    static const unsigned char zero[] = {0};                  /* no ids */
    static const unsigned char over[] = {3, 0, 5};            /* a run longer than the count */
    static const unsigned char cut[] = {3, 0x80};             /* a truncated varint */
    static const unsigned char rec[] = {0, 2, 1, 2, 3, 1, 5}; /* offsets 0 and 3 */
    static const unsigned char rep[] = {3, 1, 5, 3, 1, 6};    /* offset 3 twice */
    static const unsigned char long_[] = {0, 9, 1};           /* refs past the end */
    assert_int_equal(tsdb__index_fuzz_decode(1, 1000, run, sizeof run) & 1, 1);
    assert_int_equal(tsdb__index_fuzz_decode(1, 100, run, sizeof run) & 1, 0); /* 100 >= limit */
    assert_int_equal(tsdb__index_fuzz_decode(5, 1000, stride, sizeof stride) & 1, 1);
    assert_int_equal(tsdb__index_fuzz_decode(7, 1000, gap, sizeof gap) & 1, 1);
    assert_int_equal(tsdb__index_fuzz_decode(7, 1000, gap, sizeof gap - 1) & 1, 0);
    assert_int_equal(tsdb__index_fuzz_decode(1, 1000, zero, sizeof zero) & 1, 0);
    assert_int_equal(tsdb__index_fuzz_decode(1, 1000, over, sizeof over) & 1, 0);
    assert_int_equal(tsdb__index_fuzz_decode(1, 1000, cut, sizeof cut), 0);
    assert_int_equal(tsdb__index_fuzz_decode(16, 1000, rec, sizeof rec) & 2, 2);
    assert_int_equal(tsdb__index_fuzz_decode(16, 1000, rep, sizeof rep) & 2, 0);
    assert_int_equal(tsdb__index_fuzz_decode(16, 1000, long_, sizeof long_) & 2, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resolve_idempotent_and_stable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_names_values_count, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_select_semantics, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_select_brute_force, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_put, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_long_values, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_growth_with_readers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_readonly_adopts_grown_map, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_each, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_postings_model, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_corruption_detected, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hash_collisions, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_term_cache_budget, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_term_cache_threads, fx_setup, fx_teardown),
        cmocka_unit_test(test_value_decoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
