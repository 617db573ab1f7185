/* ingest/md5.h -- MD5 digest (folder-internal), used by the hashmod relabel action. */
#ifndef INGEST_MD5_H
#define INGEST_MD5_H

#include <stddef.h>

/* Writes the 16-byte MD5 digest of data[0..len) to out. */
void ingest__md5(const void *data, size_t len, unsigned char out[16]);

#endif
