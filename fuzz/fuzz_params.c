/* fuzz_params -- the API's input decoding (api/params.c) and number/string output (api/jsonw.c).
 *
 * The input is decoded as a query string or form body; every value is then tried as a Prometheus
 * time and duration (0 or TSDB_EINVAL, nothing else). The first 8 bytes, as a double, must format
 * to text that parses back to the same bits (NaN aside), and the input written as a JSON string
 * must parse back (cJSON) to the same bytes.
 */
#include "fuzz/fuzz.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"
#include "api/jsonw.h"
#include "api/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tsdb_arena a;
    tsdb_arena_init(&a, 0);
    api_params p = {0};
    tsdb_err err;
    int rc = api__params_parse(&p, &a, (const char *)data, size, &err);
    if (rc != TSDB_OK && rc != TSDB_EINVAL)
        abort();
    for (size_t i = 0; rc == TSDB_OK && i < p.n; i++) {
        int64_t ms;
        int r1 = api__parse_time(p.v[i].value, &ms, &err);
        int r2 = api__parse_duration(p.v[i].value, &ms, &err);
        if ((r1 != TSDB_OK && r1 != TSDB_EINVAL) || (r2 != TSDB_OK && r2 != TSDB_EINVAL))
            abort();
    }
    int64_t ms;
    int r3 = api__parse_time((tsdb_str){(const char *)data, size}, &ms, &err);
    if (r3 != TSDB_OK && r3 != TSDB_EINVAL)
        abort();

    if (size >= 8) {
        double v;
        memcpy(&v, data, 8);
        char out[32];
        size_t n = api__fmt_float(v, out);
        if (n == 0 || n >= 32 || strlen(out) != n)
            abort();
        if (!isnan(v)) {
            double back = !strcmp(out, "+Inf") ? INFINITY : strtod(out, NULL);
            if (memcmp(&back, &v, 8) != 0 && !(back == 0 && v == 0))
                abort();
        }
    }

    if (!memchr(data, 0, size)) {
        tsdb_buf b;
        tsdb_buf_init(&b);
        api_json j;
        api__json_init(&j, &b);
        api__json_strn(&j, (tsdb_str){(const char *)data, size});
        cJSON *parsed = cJSON_ParseWithLength((const char *)b.p, b.len);
        if (!parsed || !cJSON_IsString(parsed) || strlen(parsed->valuestring) != size ||
            memcmp(parsed->valuestring, data, size) != 0)
            abort();
        cJSON_Delete(parsed);
        tsdb_buf_fini(&b);
    }
    tsdb_arena_fini(&a);
    return 0;
}
