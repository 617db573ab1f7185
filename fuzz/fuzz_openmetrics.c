/* Fuzz target: the OpenMetrics 1.0 parser, with the invariants of fuzz_textparse.c (samples are
 * written back in the text format, so OpenMetrics timestamps must survive as whole ms). */
#define FUZZ_TEXT_FORMAT INGEST_TEXT_OPENMETRICS
#include "fuzz/fuzz_textparse.c"
