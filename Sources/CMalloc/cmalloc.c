#define _GNU_SOURCE
#include "cmalloc.h"

#include <dlfcn.h>
#include <stddef.h>

typedef int (*mallctl_function)(const char *, void *, size_t *, void *, size_t);

const char *cmalloc_jemalloc_version(void) {
    // Looked up, not called by name, so that a build without jemalloc links and answers NULL.
    mallctl_function mallctl = (mallctl_function)dlsym(RTLD_DEFAULT, "mallctl");
    if (mallctl == NULL) return NULL;
    const char *version = NULL;
    size_t length = sizeof(version);
    if (mallctl("version", &version, &length, NULL, 0) != 0) return NULL;
    return version;
}
