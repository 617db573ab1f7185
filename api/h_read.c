/* api/h_read.c -- remote read, POST /api/v1/read (placeholder until the read codec lands). */
#include "api/http.h"

void api__h_read(api_ctx *c, api_req *r, api_resp *w)
{
    (void)c;
    (void)r;
    api__resp_text(w, 501, "text/plain; charset=utf-8", "remote read is not available\n");
}
