/* cairn.h -- the one header a program embedding Cairn includes.
 *
 * Link with libcairn.a and: -llmdb -lzstd -lpcre2-8 -lsnappy -lprotobuf-c -lcurl -lyaml
 * -lpthread -lm. See tsdb/tsdb.h for storage and query/query.h for PromQL.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include "tsdb/base.h"
#include "tsdb/tsdb.h"
#include "query/query.h"

#define CAIRN_VERSION "0.1.0"

#endif
