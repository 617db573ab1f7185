/* tsdb/postings.c -- algebra on sorted arrays of series ids.
 *
 * A postings list is a strictly ascending array of 64-bit series ids. Intersect is the AND of
 * matchers, merge the OR of the values a regex selects, subtract the removal of what a negative
 * matcher excludes. When one input is much shorter than the other, intersect and subtract
 * gallop (exponential then binary search) through the longer one, so their cost is about
 * |short| * log(|long| / |short|) instead of |a| + |b|.
 *
 * Invariants: inputs strictly ascending (not checked); outputs strictly ascending. Intersect
 * and subtract may write in place over their first input (out == a): every output index is at
 * most the index it was read from. Merge needs a separate out.
 */
#include "tsdb/postings.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tsdb/base.h"

#define GALLOP_RATIO 16 /* gallop when the longer input is this many times the shorter */

/* First index i in [lo, n) with v[i] >= x (n if none), searching forward from lo. */
static size_t gallop(const uint64_t *v, size_t lo, size_t n, uint64_t x)
{
    if (lo >= n || v[lo] >= x)
        return lo;
    /* v[lo] < x: double the step until overshooting, then binary search the last step. */
    size_t step = 1, prev = lo;
    size_t hi = lo + step;
    while (hi < n && v[hi] < x) {
        prev = hi;
        step <<= 1;
        hi = prev + step;
    }
    if (hi > n)
        hi = n;
    /* v[prev] < x, and hi == n or v[hi] >= x */
    size_t l = prev + 1, r = hi;
    while (l < r) {
        size_t mid = l + (r - l) / 2;
        if (v[mid] < x)
            l = mid + 1;
        else
            r = mid;
    }
    return l;
}

size_t tsdb__postings_intersect(const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                                uint64_t *out)
{
    if (na > nb) {
        const uint64_t *t = a;
        a = b;
        b = t;
        size_t tn = na;
        na = nb;
        nb = tn;
    }
    size_t k = 0;
    if (na == 0)
        return 0;
    if (nb / na >= GALLOP_RATIO) {
        size_t j = 0;
        for (size_t i = 0; i < na && j < nb; i++) {
            j = gallop(b, j, nb, a[i]);
            if (j < nb && b[j] == a[i])
                out[k++] = a[i];
        }
        return k;
    }
    size_t i = 0, j = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) {
            i++;
        } else if (a[i] > b[j]) {
            j++;
        } else {
            out[k++] = a[i];
            i++;
            j++;
        }
    }
    return k;
}

size_t tsdb__postings_merge(const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                            uint64_t *out)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) {
            out[k++] = a[i++];
        } else if (a[i] > b[j]) {
            out[k++] = b[j++];
        } else {
            out[k++] = a[i];
            i++;
            j++;
        }
    }
    if (i < na) {
        memmove(out + k, a + i, (na - i) * sizeof *a);
        k += na - i;
    }
    if (j < nb) {
        memmove(out + k, b + j, (nb - j) * sizeof *b);
        k += nb - j;
    }
    return k;
}

size_t tsdb__postings_subtract(const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                               uint64_t *out)
{
    size_t k = 0, j = 0;
    int gal = na > 0 && nb / na >= GALLOP_RATIO;
    for (size_t i = 0; i < na; i++) {
        if (gal) {
            j = gallop(b, j, nb, a[i]);
        } else {
            while (j < nb && b[j] < a[i])
                j++;
        }
        if (j < nb && b[j] == a[i])
            continue;
        out[k++] = a[i];
    }
    return k;
}

static int u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

size_t tsdb__postings_sort_unique(uint64_t *v, size_t n)
{
    if (n < 2)
        return n;
    /* Already ascending is the common case (ids fetched in order): check before sorting. */
    size_t i = 1;
    while (i < n && v[i - 1] <= v[i])
        i++;
    if (i < n)
        qsort(v, n, sizeof *v, u64_cmp);
    size_t k = 1;
    for (i = 1; i < n; i++) {
        if (v[i] != v[k - 1])
            v[k++] = v[i];
    }
    return k;
}
