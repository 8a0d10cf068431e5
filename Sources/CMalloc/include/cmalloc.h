#ifndef CMALLOC_H
#define CMALLOC_H

/// Which allocator serves `malloc` in this process. `serve` links jemalloc (Package.swift), whose
/// symbols then come before glibc's for every library it loads, libtorch included.

/// jemalloc's version (for example "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c") when
/// jemalloc serves `malloc`; NULL when glibc's malloc does (a build with SERVE_ALLOCATOR=glibc).
const char *cmalloc_jemalloc_version(void);

#endif
