/* tsdb/postings.h -- algebra on sorted arrays of series ids. */
#ifndef TSDB_POSTINGS_H
#define TSDB_POSTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/base.h"

/* Each returns the result length; out must hold the stated capacity; inputs strictly ascending. */
size_t tsdb__postings_intersect(const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                                uint64_t *out); /* cap: min(na, nb) */
size_t tsdb__postings_merge(const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                            uint64_t *out); /* cap: na + nb */
size_t tsdb__postings_subtract(const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                               uint64_t *out); /* a minus b; cap: na */
/* Sorts and removes duplicates in place; returns the new length. */
size_t tsdb__postings_sort_unique(uint64_t *v, size_t n);

#endif
