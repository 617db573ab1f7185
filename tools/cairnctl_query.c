/* tools/cairnctl_query.c -- `cairnctl query instant|range|series|labels`: the HTTP API from a
 * shell, with promtool's argument shapes.
 *
 * Requests are POSTed form-encoded, as Grafana sends them. The answer is printed as a table
 * (promtool's "metric => value @[time]" lines) or, with --format json, as the server's JSON.
 * An error envelope prints "errorType: error" and exits 1.
 */
#include "tools/cairnctl.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cairn.h"

typedef struct form {
    tsdb_buf b;
    CURL *curl;
} form;

static void form_add(form *f, const char *name, const char *value)
{
    char *e = curl_easy_escape(f->curl, value, 0);
    if (f->b.len)
        tsdb_buf_putc(&f->b, '&');
    tsdb_buf_printf(&f->b, "%s=%s", name, e ? e : "");
    curl_free(e);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
    tsdb_buf_put(ctx, p, sz * n);
    return sz * n;
}

/* POSTs the form to base+path (or GETs base+path?form when get); returns the HTTP status (0 on
 * transport failure) and the body. */
static long http_post(CURL *c, const char *base, const char *path, const tsdb_buf *body, int get,
                      tsdb_buf *out)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    char url[2048];
    if (get) {
        tsdb_buf u;
        tsdb_buf_init(&u);
        tsdb_buf_printf(&u, "%.*s%s%s%.*s", (int)bl, base, path, body->len ? "?" : "",
                        (int)body->len, (const char *)body->p);
        tsdb_buf_putc(&u, '\0');
        snprintf(url, sizeof url, "%s", (const char *)u.p);
        curl_easy_setopt(c, CURLOPT_URL, (const char *)u.p);
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        tsdb_buf_fini(&u);
    } else {
        snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->len ? (const char *)body->p : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body->len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "cairnctl: %s: %s\n", url, curl_easy_strerror(rc));
        return 0;
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static void print_metric(const cJSON *metric)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(metric, "__name__");
    if (cJSON_IsString(name))
        fputs(name->valuestring, stdout);
    putchar('{');
    int first = 1;
    for (const cJSON *l = metric ? metric->child : NULL; l != NULL; l = l->next) {
        if (strcmp(l->string, "__name__") == 0 || !cJSON_IsString(l))
            continue;
        printf("%s%s=\"%s\"", first ? "" : ", ", l->string, l->valuestring);
        first = 0;
    }
    putchar('}');
}

static void print_point(const cJSON *pt)
{
    const cJSON *t = cJSON_GetArrayItem(pt, 0), *v = cJSON_GetArrayItem(pt, 1);
    if (cJSON_IsNumber(t) && cJSON_IsString(v))
        printf("%s @[%.3f]", v->valuestring, t->valuedouble);
}

/* Prints a success answer as a table; returns 0, or 1 for an error envelope. */
static int print_table(const cJSON *root)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
    if (!cJSON_IsString(status) || strcmp(status->valuestring, "success") != 0) {
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(root, "errorType");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
        fprintf(stderr, "%s: %s\n", cJSON_IsString(et) ? et->valuestring : "error",
                cJSON_IsString(e) ? e->valuestring : "malformed answer");
        return 1;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (cJSON_IsArray(data)) { /* series, labels, label values */
        for (const cJSON *it = data->child; it != NULL; it = it->next) {
            if (cJSON_IsString(it))
                puts(it->valuestring);
            else {
                print_metric(it);
                putchar('\n');
            }
        }
        return 0;
    }
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(data, "resultType");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(data, "result");
    if (!cJSON_IsString(rt)) {
        fprintf(stderr, "cairnctl: malformed answer\n");
        return 1;
    }
    if (strcmp(rt->valuestring, "scalar") == 0 || strcmp(rt->valuestring, "string") == 0) {
        print_point(res);
        putchar('\n');
        return 0;
    }
    for (const cJSON *s = res ? res->child : NULL; s != NULL; s = s->next) {
        print_metric(cJSON_GetObjectItemCaseSensitive(s, "metric"));
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value");
        if (v != NULL) {
            fputs(" => ", stdout);
            print_point(v);
            putchar('\n');
            continue;
        }
        fputs(" =>\n", stdout);
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(s, "values");
        for (const cJSON *p = vs ? vs->child : NULL; p != NULL; p = p->next) {
            print_point(p);
            putchar('\n');
        }
    }
    return 0;
}

static void query_usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  cairnctl query instant URL EXPR [--time=T] [--format=table|json]\n"
               "  cairnctl query range URL EXPR [--start=T] [--end=T] [--step=D] [--format=...]\n"
               "  cairnctl query series URL --match=SEL [--match=SEL]... [--start=T] [--end=T]\n"
               "  cairnctl query labels URL NAME [--match=SEL]... [--start=T] [--end=T]\n"
               "\n"
               "T is RFC 3339, Unix seconds or now[-D]; D is a duration (15s, 1h) or seconds.\n"
               "examples:\n"
               "  cairnctl query instant http://127.0.0.1:9090 'sum by (job) (up)'\n"
               "  cairnctl query range http://127.0.0.1:9090 'rate(x[5m])' --start=now-1h "
               "--step=1m\n"
               "  cairnctl query labels http://127.0.0.1:9090 job\n");
}

/* Converts a time option to the API's seconds form; returns 0 or prints and returns -1. */
static int time_param(form *f, const char *name, const char *val)
{
    int64_t ms;
    if (cairnctl_parse_time(val, &ms) != 0) {
        fprintf(stderr, "cairnctl: bad time for --%s: %s\n", name, val);
        return -1;
    }
    char s[64];
    snprintf(s, sizeof s, "%.3f", (double)ms / 1000.0);
    form_add(f, name, s);
    return 0;
}

int cairnctl_query(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        query_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    const char *pos[2] = {NULL, NULL};
    size_t n_pos = 0;
    const char *fmt = "table", *step = NULL, *start = NULL, *end = NULL, *tm = NULL;
    const char *matches[64];
    size_t n_match = 0;
    for (int i = 2; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cairnctl_opt(argc, argv, &i, "format", &v)) != 0)
            fmt = v;
        else if ((r = cairnctl_opt(argc, argv, &i, "time", &v)) != 0)
            tm = v;
        else if ((r = cairnctl_opt(argc, argv, &i, "start", &v)) != 0)
            start = v;
        else if ((r = cairnctl_opt(argc, argv, &i, "end", &v)) != 0)
            end = v;
        else if ((r = cairnctl_opt(argc, argv, &i, "step", &v)) != 0)
            step = v;
        else if ((r = cairnctl_opt(argc, argv, &i, "match", &v)) != 0) {
            if (r > 0 && n_match < 64)
                matches[n_match++] = v;
        } else if (strcmp(argv[i], "--help") == 0) {
            query_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "cairnctl: unknown option %s\n", argv[i]);
            return 2;
        } else if (n_pos < 2) {
            pos[n_pos++] = argv[i];
            continue;
        } else {
            fprintf(stderr, "cairnctl: unexpected argument %s\n", argv[i]);
            return 2;
        }
        if (r < 0)
            return 2;
    }
    if (strcmp(fmt, "table") != 0 && strcmp(fmt, "json") != 0) {
        fprintf(stderr, "cairnctl: --format must be table or json\n");
        return 2;
    }
    int is_instant = strcmp(sub, "instant") == 0, is_range = strcmp(sub, "range") == 0;
    int is_series = strcmp(sub, "series") == 0, is_labels = strcmp(sub, "labels") == 0;
    if (!is_instant && !is_range && !is_series && !is_labels) {
        fprintf(stderr, "cairnctl: unknown query command %s\n", sub);
        query_usage(stderr);
        return 2;
    }
    size_t need = is_series ? 1 : 2;
    if (n_pos != need) {
        query_usage(stderr);
        return 2;
    }
    if (is_series && n_match == 0) {
        fprintf(stderr, "cairnctl: query series needs at least one --match\n");
        return 2;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    form f;
    tsdb_buf_init(&f.b);
    f.curl = curl_easy_init();
    char path[512];
    int rc = 0;
    if (is_instant) {
        snprintf(path, sizeof path, "/api/v1/query");
        form_add(&f, "query", pos[1]);
        if (tm != NULL)
            rc = time_param(&f, "time", tm);
    } else if (is_range) {
        snprintf(path, sizeof path, "/api/v1/query_range");
        form_add(&f, "query", pos[1]);
        rc = time_param(&f, "start", start ? start : "now-1h");
        if (rc == 0)
            rc = time_param(&f, "end", end ? end : "now");
        int64_t step_ms = 0;
        if (rc == 0 && step != NULL && cairnctl_parse_duration(step, &step_ms) != 0) {
            fprintf(stderr, "cairnctl: bad --step %s\n", step);
            rc = -1;
        }
        if (rc == 0) {
            if (step == NULL) { /* promtool's default: about 250 points */
                int64_t s0, e0;
                cairnctl_parse_time(start ? start : "now-1h", &s0);
                cairnctl_parse_time(end ? end : "now", &e0);
                step_ms = (e0 - s0) / 250;
                if (step_ms < 1000)
                    step_ms = 1000;
            }
            char sv[64];
            snprintf(sv, sizeof sv, "%.3f", (double)step_ms / 1000.0);
            form_add(&f, "step", sv);
        }
    } else if (is_series) {
        snprintf(path, sizeof path, "/api/v1/series");
    } else {
        char *e = curl_easy_escape(f.curl, pos[1], 0);
        snprintf(path, sizeof path, "/api/v1/label/%s/values", e ? e : "");
        curl_free(e);
    }
    if (rc == 0 && (is_series || is_labels)) {
        for (size_t i = 0; i < n_match; i++)
            form_add(&f, "match[]", matches[i]);
        if (start != NULL)
            rc = time_param(&f, "start", start);
        if (rc == 0 && end != NULL)
            rc = time_param(&f, "end", end);
    }
    int status = 1;
    if (rc == 0) {
        tsdb_buf out;
        tsdb_buf_init(&out);
        tsdb_buf_putc(&f.b, '\0');
        f.b.len--;
        /* Prometheus serves label values on GET only. */
        long code = http_post(f.curl, pos[0], path, &f.b, is_labels, &out);
        if (code != 0) {
            tsdb_buf_putc(&out, '\0');
            if (strcmp(fmt, "json") == 0) {
                fwrite(out.p, 1, out.len - 1, stdout);
                putchar('\n');
                status = code == 200 ? 0 : 1;
            } else {
                cJSON *root = cJSON_Parse((const char *)out.p);
                if (root == NULL) {
                    fprintf(stderr, "cairnctl: HTTP %ld, not JSON: %.200s\n", code,
                            (const char *)out.p);
                } else {
                    status = print_table(root);
                    cJSON_Delete(root);
                }
            }
        }
        tsdb_buf_fini(&out);
    }
    tsdb_buf_fini(&f.b);
    curl_easy_cleanup(f.curl);
    curl_global_cleanup();
    return rc != 0 ? 2 : status;
}
