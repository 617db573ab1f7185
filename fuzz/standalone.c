/* fuzz/standalone.c -- replays fuzz inputs without libFuzzer.
 *
 * Usage: regress_<name> PATH...  Each PATH is a file, or a directory whose regular files are fed
 * one by one (in name order, so runs are repeatable) to LLVMFuzzerTestOneInput. A crash or abort
 * in the target ends the run, so the final line "<n> passed, 0 failed" is only printed when every
 * input went through; a path that cannot be read counts as failed.
 */
#include "fuzz/fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STANDALONE_MAX_INPUT (64u << 20) /* larger files are not fuzz inputs */

/* Optional libFuzzer hook, defined by targets that need one-time setup. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned long n_passed, n_failed;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        n_failed++;
        return;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 ||
        (unsigned long long)st.st_size > STANDALONE_MAX_INPUT) {
        fprintf(stderr, "%s: cannot size, or larger than %u bytes\n", path, STANDALONE_MAX_INPUT);
        fclose(f);
        n_failed++;
        return;
    }
    size_t size = (size_t)st.st_size;
    /* An exact-size heap copy, so ASan sees any read past the end of the input. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        fclose(f);
        n_failed++;
        return;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    n_passed++;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot open directory\n", dir);
        n_failed++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn)
                abort();
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n])
            abort();
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            run_file(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: no such file or directory\n", argv[i]);
            n_failed++;
        } else if (S_ISDIR(st.st_mode)) {
            run_dir(argv[i]);
        } else {
            run_file(argv[i]);
        }
    }
    printf("%lu passed, %lu failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
