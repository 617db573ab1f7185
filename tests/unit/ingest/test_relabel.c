/* tests/unit/ingest/test_relabel.c -- relabel actions, defaults, validation and MD5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "ingest/md5.h"
#include "ingest/relabel.h"

static tsdb_arena arena;

static int setup(void **state)
{
    (void)state;
    tsdb_arena_init(&arena, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsdb_arena_fini(&arena);
    return 0;
}

/* Builds a label builder from "a=1,b=2". */
static ingest_lb lb_from(const char *spec)
{
    ingest_lb lb = {0};
    char *copy = tsdb_arena_strndup(&arena, spec, strlen(spec));
    for (char *tok = copy; tok && *tok;) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = 0;
        char *eq = strchr(tok, '=');
        *eq = 0;
        ingest__lb_set(&lb, tsdb_str_c(tok), tsdb_str_c(eq + 1), &arena);
        tok = comma ? comma + 1 : NULL;
    }
    return lb;
}

static int lbl_cmp(const void *a, const void *b)
{
    return tsdb_str_cmp(((const tsdb_label *)a)->name, ((const tsdb_label *)b)->name);
}

/* Renders sorted "a=1,b=2". */
static const char *lb_str(ingest_lb *lb)
{
    qsort(lb->v, lb->n, sizeof *lb->v, lbl_cmp);
    static char out[512];
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < lb->n; i++)
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%.*s=%.*s", i ? "," : "",
                              (int)lb->v[i].name.len, lb->v[i].name.p, (int)lb->v[i].value.len,
                              lb->v[i].value.p);
    return out;
}

typedef struct rspec {
    enum ingest_relabel_action action;
    const char *src;    /* comma-separated, or NULL */
    const char *sep;    /* NULL = default */
    const char *target; /* NULL = unset */
    const char *regex;  /* NULL = default */
    const char *repl;   /* NULL = default */
    uint64_t modulus;
} rspec;

static tsdb_str opt(const char *s)
{
    return s ? tsdb_arena_str(&arena, tsdb_str_c(s)) : (tsdb_str){NULL, 0};
}

static int make_rule(const rspec *sp, ingest_relabel_rule *r, tsdb_err *err)
{
    memset(r, 0, sizeof *r);
    r->action = sp->action;
    if (sp->src) {
        r->source = tsdb_arena_calloc(&arena, 8, sizeof(tsdb_str));
        char *copy = tsdb_arena_strndup(&arena, sp->src, strlen(sp->src));
        for (char *tok = copy; tok;) {
            char *comma = strchr(tok, ',');
            if (comma)
                *comma = 0;
            r->source[r->n_source++] = tsdb_str_c(tok);
            tok = comma ? comma + 1 : NULL;
        }
    }
    r->separator = opt(sp->sep);
    r->target = opt(sp->target);
    r->regex = opt(sp->regex);
    r->replacement = opt(sp->repl);
    r->modulus = sp->modulus;
    return ingest__relabel_compile(r, &arena, err);
}

/* Applies one rule to input; returns the result string or "DROPPED". */
static const char *run(const rspec *sp, const char *input)
{
    ingest_relabel_rule r;
    tsdb_err err;
    int rc = make_rule(sp, &r, &err);
    if (rc != 0)
        fail_msg("compile failed: %s", err.msg);
    ingest_lb lb = lb_from(input);
    if (!ingest__relabel(&r, 1, &lb, &arena))
        return "DROPPED";
    return lb_str(&lb);
}

static void test_replace(void **state)
{
    (void)state;
    /* The Prometheus documentation's classic: host:port -> host. */
    rspec r1 = {INGEST_RELABEL_REPLACE, "__address__", NULL, "host", "(.+):(\\d+)", "${1}", 0};
    assert_string_equal(run(&r1, "__address__=node1:9100"), "__address__=node1:9100,host=node1");
    /* No match: unchanged. */
    assert_string_equal(run(&r1, "__address__=node1"), "__address__=node1");
    /* Defaults: regex (.*), replacement $1, separator ";". */
    rspec r2 = {INGEST_RELABEL_REPLACE, "a,b", NULL, "c", NULL, NULL, 0};
    assert_string_equal(run(&r2, "a=x,b=y"), "a=x,b=y,c=x;y");
    /* Anchored: "o" does not match "foo". */
    rspec r3 = {INGEST_RELABEL_REPLACE, "a", NULL, "b", "o", "hit", 0};
    assert_string_equal(run(&r3, "a=foo"), "a=foo");
    /* Empty result deletes the target. */
    rspec r4 = {INGEST_RELABEL_REPLACE, "a", NULL, "b", "(f)oo", "", 0};
    assert_string_equal(run(&r4, "a=foo,b=bar"), "a=foo");
    /* Templated target label; an invalid expanded name changes nothing. */
    rspec r5 = {INGEST_RELABEL_REPLACE, "a", NULL, "${1}_x", "(\\w+)-(\\w+)", "$2", 0};
    assert_string_equal(run(&r5, "a=left-right"), "a=left-right,left_x=right");
    assert_string_equal(run(&r5, "a=1-2"), "a=1-2");
    /* Custom separator, named group, $$. */
    rspec r6 = {INGEST_RELABEL_REPLACE, "a,b", "/", "c", "(?P<first>[^/]*)/(.*)", "$$${first}", 0};
    assert_string_equal(run(&r6, "a=p,b=q"), "a=p,b=q,c=$p");
    /* Missing source label joins as empty. */
    assert_string_equal(run(&r2, "b=y"), "b=y,c=;y");
}

static void test_keep_drop(void **state)
{
    (void)state;
    rspec keep = {INGEST_RELABEL_KEEP, "job", NULL, NULL, "node|api", NULL, 0};
    assert_string_equal(run(&keep, "job=node"), "job=node");
    assert_string_equal(run(&keep, "job=nodes"), "DROPPED");
    rspec drop = {INGEST_RELABEL_DROP, "__name__", NULL, NULL, "go_.*", NULL, 0};
    assert_string_equal(run(&drop, "__name__=go_goroutines"), "DROPPED");
    assert_string_equal(run(&drop, "__name__=up"), "__name__=up");
    rspec ke = {INGEST_RELABEL_KEEPEQUAL, "a", NULL, "b", NULL, NULL, 0};
    assert_string_equal(run(&ke, "a=1,b=1"), "a=1,b=1");
    assert_string_equal(run(&ke, "a=1,b=2"), "DROPPED");
    rspec de = {INGEST_RELABEL_DROPEQUAL, "a", NULL, "b", NULL, NULL, 0};
    assert_string_equal(run(&de, "a=1,b=1"), "DROPPED");
    assert_string_equal(run(&de, "a=1,b=2"), "a=1,b=2");
}

static void test_hashmod_matches_prometheus(void **state)
{
    (void)state;
    /* From Prometheus' relabel_test.go: md5("baz") % 1000 == 976. */
    rspec h = {INGEST_RELABEL_HASHMOD, "c", NULL, "d", NULL, NULL, 1000};
    assert_string_equal(run(&h, "a=foo,b=bar,c=baz"), "a=foo,b=bar,c=baz,d=976");
    /* and "foo\nbar" % 1000 == 734 (a value with a newline). */
    rspec h2 = {INGEST_RELABEL_HASHMOD, "a", NULL, "b", NULL, NULL, 1000};
    assert_string_equal(run(&h2, "a=foo\nbar"), "a=foo\nbar,b=734");
}

static void test_labelmap_drop_keep_case(void **state)
{
    (void)state;
    rspec m = {INGEST_RELABEL_LABELMAP, NULL, NULL, NULL, "(b.*)", "bar_${1}", 0};
    assert_string_equal(run(&m, "a=foo,b1=bar,b2=baz"),
                        "a=foo,b1=bar,b2=baz,bar_b1=bar,bar_b2=baz");
    rspec m2 = {INGEST_RELABEL_LABELMAP, NULL, NULL, NULL, "__meta_(.+)", NULL, 0};
    assert_string_equal(run(&m2, "__meta_zone=z1,x=1"), "__meta_zone=z1,x=1,zone=z1");
    rspec d = {INGEST_RELABEL_LABELDROP, NULL, NULL, NULL, "b.*", NULL, 0};
    assert_string_equal(run(&d, "a=1,b1=2,b2=3,c=4"), "a=1,c=4");
    rspec k = {INGEST_RELABEL_LABELKEEP, NULL, NULL, NULL, "a|c", NULL, 0};
    assert_string_equal(run(&k, "a=1,b1=2,b2=3,c=4"), "a=1,c=4");
    rspec lo = {INGEST_RELABEL_LOWERCASE, "a", NULL, "a_lower", NULL, NULL, 0};
    assert_string_equal(run(&lo, "a=AbC"), "a=AbC,a_lower=abc");
    rspec up = {INGEST_RELABEL_UPPERCASE, "a,b", NULL, "u", NULL, NULL, 0};
    assert_string_equal(run(&up, "a=x,b=Y"), "a=x,b=Y,u=X;Y");
}

static void test_validation(void **state)
{
    (void)state;
    static const struct {
        rspec r;
        const char *msg;
    } bad[] = {
        {{INGEST_RELABEL_HASHMOD, "a", NULL, "b", NULL, NULL, 0}, "requires non-zero modulus"},
        {{INGEST_RELABEL_REPLACE, "a", NULL, NULL, NULL, NULL, 0}, "requires 'target_label' value"},
        {{INGEST_RELABEL_REPLACE, "a", NULL, "1bad", NULL, NULL, 0}, "invalid 'target_label'"},
        {{INGEST_RELABEL_LOWERCASE, "a", NULL, "${1}", NULL, NULL, 0}, "invalid 'target_label'"},
        {{INGEST_RELABEL_LABELDROP, "a", NULL, NULL, "x", NULL, 0}, "requires only 'regex'"},
        {{INGEST_RELABEL_KEEPEQUAL, "a", NULL, "b", "x", NULL, 0}, "requires only"},
        {{INGEST_RELABEL_KEEP, "a", NULL, NULL, "(", NULL, 0}, "error parsing regexp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ingest_relabel_rule r;
        tsdb_err err;
        memset(&err, 0, sizeof err);
        int rc = make_rule(&bad[i].r, &r, &err);
        if (rc != TSDB_EINVAL || !strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: rc %d msg \"%s\", want \"%s\"", i, rc, err.msg, bad[i].msg);
    }
    assert_int_equal(ingest__relabel_action(TSDB_STR("LabelMap")), INGEST_RELABEL_LABELMAP);
    assert_int_equal(ingest__relabel_action(TSDB_STR("hashmodx")), -1);
}

static void test_chain(void **state)
{
    (void)state;
    ingest_relabel_rule r[3];
    tsdb_err err;
    rspec s0 = {INGEST_RELABEL_HASHMOD, "__address__", NULL, "__tmp_shard", NULL, NULL, 2};
    rspec s1 = {INGEST_RELABEL_KEEP, "__tmp_shard", NULL, NULL, "1", NULL, 0};
    rspec s2 = {INGEST_RELABEL_LABELDROP, NULL, NULL, NULL, "__tmp_.*", NULL, 0};
    assert_int_equal(make_rule(&s0, &r[0], &err), 0);
    assert_int_equal(make_rule(&s1, &r[1], &err), 0);
    assert_int_equal(make_rule(&s2, &r[2], &err), 0);
    /* Count how many of 100 addresses land on shard 1, against MD5 computed here. */
    int kept = 0, want = 0;
    for (int i = 0; i < 100; i++) {
        char spec[64], addr[32];
        snprintf(addr, sizeof addr, "10.0.0.%d:9100", i);
        snprintf(spec, sizeof spec, "__address__=%s", addr);
        ingest_lb lb = lb_from(spec);
        int k = ingest__relabel(r, 3, &lb, &arena);
        unsigned char d[16];
        ingest__md5(addr, strlen(addr), d);
        int shard = (int)(tsdb_get_u64be(d + 8) % 2);
        want += shard == 1;
        kept += k;
        assert_int_equal(k, shard == 1);
        if (k)
            assert_string_equal(lb_str(&lb), spec); /* __tmp_shard was dropped again */
    }
    assert_int_equal(kept, want);
    assert_true(kept > 20 && kept < 80);
}

static void test_md5_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
        /* 55 and 56 bytes: the padding boundary. */
        {"0123456789012345678901234567890123456789012345678901234",
         "6e7a4fc92eb1c3f6e652425bcc8d44b5"},
        {"01234567890123456789012345678901234567890123456789012345",
         "8af270b2847610e742b0791b53648c09"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char d[16];
        char hex[33];
        ingest__md5(v[i].in, strlen(v[i].in), d);
        for (int k = 0; k < 16; k++)
            snprintf(hex + 2 * k, 3, "%02x", d[k]);
        assert_string_equal(hex, v[i].hex);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hashmod_matches_prometheus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labelmap_drop_keep_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_md5_vectors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
