#ifndef CTORCH_H
#define CTORCH_H

/*
 * A plain C boundary over libtorch. Handles are opaque; every function that can fail
 * returns a ctorch_status and leaves the reason in a thread-local message that
 * ctorch_last_error() reads. No C++ exception ever crosses this boundary.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctorch_module ctorch_module;
typedef struct ctorch_tensor ctorch_tensor;
typedef struct ctorch_value ctorch_value;
typedef struct ctorch_package ctorch_package;

typedef enum {
    CTORCH_OK = 0,
    CTORCH_ERROR = 1,
} ctorch_status;

typedef enum {
    CTORCH_FLOAT32 = 0,
    CTORCH_FLOAT64 = 1,
    CTORCH_FLOAT16 = 2,
    CTORCH_BFLOAT16 = 3,
    CTORCH_INT64 = 4,
    CTORCH_INT32 = 5,
    CTORCH_INT16 = 6,
    CTORCH_INT8 = 7,
    CTORCH_UINT8 = 8,
    CTORCH_BOOL = 9,
    CTORCH_OTHER_DTYPE = 99,
} ctorch_dtype;

typedef enum {
    CTORCH_DEVICE_CPU = 0,
    CTORCH_DEVICE_CUDA = 1,
    CTORCH_DEVICE_OTHER = 99,
} ctorch_device_type;

typedef enum {
    CTORCH_VALUE_NONE = 0,
    CTORCH_VALUE_TENSOR = 1,
    CTORCH_VALUE_TUPLE = 2,
    CTORCH_VALUE_LIST = 3,
    CTORCH_VALUE_DICT = 4,
    CTORCH_VALUE_OTHER = 99,
} ctorch_value_kind;

/* Errors */

/** The message of the last failed call on this thread ("" if none). Valid until the next call. */
const char *ctorch_last_error(void);

/* Library and devices */

/** The libtorch version the shim was compiled against, e.g. "1.13.1". */
const char *ctorch_version(void);
/** Number of visible CUDA devices (0 when libtorch has no CUDA or there is no GPU). */
int ctorch_cuda_device_count(void);
/** Sets libtorch's intra-op thread count for the calling thread (and for threads that have not
 *  run parallel work yet). OpenBLAS, where it is the BLAS, is kept to the calling thread: its
 *  pool is process-wide and cannot follow each thread's count. */
ctorch_status ctorch_set_num_threads(int n);
int ctorch_get_num_threads(void);
/** Sets the inter-op thread count; only valid before any inter-op work started. */
ctorch_status ctorch_set_num_interop_threads(int n);
/** Stops the worker threads the BLAS keeps (OpenBLAS's pthread build starts them when it is
 *  loaded); it starts them again at its next threaded call. OpenBLAS does the same before a
 *  fork. Nothing to do with a BLAS without such a pool. */
ctorch_status ctorch_stop_blas_threads(void);
/** Caps glibc's malloc at `n` arenas (mallopt M_ARENA_MAX), where tensors are allocated; for a
 *  process about to start its threads. Nothing to do with another C library. */
ctorch_status ctorch_limit_malloc_arenas(int n);

/* Modules */

/** Loads a TorchScript file onto a device, in eval mode. */
ctorch_status ctorch_module_load(const char *path, ctorch_device_type device, int device_index,
                                 ctorch_module **out);
/**
 * A frozen copy of the module with libtorch's inference optimisations
 * (torch::jit::freeze + torch::jit::optimize_for_inference). The original is untouched.
 */
ctorch_status ctorch_module_optimized(const ctorch_module *module, ctorch_module **out);
/**
 * A copy of the module with its floating-point parameters and buffers converted to `dtype`
 * (e.g. bfloat16); its forward then takes inputs of that type. The original is untouched.
 */
ctorch_status ctorch_module_converted(const ctorch_module *module, ctorch_dtype dtype, ctorch_module **out);
void ctorch_module_free(ctorch_module *module);
/** Bytes of the module's parameters and buffers as loaded (before any freezing). */
int64_t ctorch_module_weight_bytes(const ctorch_module *module);
/** Runs forward(inputs...) under inference mode. */
ctorch_status ctorch_module_forward(const ctorch_module *module, ctorch_tensor *const *inputs,
                                    size_t count, ctorch_value **out);

/** Runs forward(list) under inference mode, with the tensors as one List[Tensor] argument
 *  (torchvision's detection models take their images so, each at its own size). */
ctorch_status ctorch_module_forward_list(const ctorch_module *module, ctorch_tensor *const *tensors,
                                         size_t count, ctorch_value **out);

/* AOTInductor packages (.pt2 from torch._inductor.aoti_compile_and_package) */

/** 1 when this build can load AOTInductor packages (libtorch 2 with the package loader), else 0. */
int ctorch_aoti_available(void);
/**
 * Loads an AOTInductor package: the model `model_name` ("model" unless the package was made with
 * another) with `runners` instances, so that many calls of ctorch_package_run can run at once.
 * A CUDA package runs on cuda:`device_index`, a CPU one on the CPU. Fails on a build without
 * AOTInductor, saying which build can load it.
 */
ctorch_status ctorch_package_load(const char *path, const char *model_name, size_t runners, int device_index,
                                  ctorch_package **out);
void ctorch_package_free(ctorch_package *package);
/** A value of the package's metadata (e.g. "AOTI_DEVICE_KEY": "cpu" or "cuda"), or NULL when it
 *  has no such key; free with ctorch_string_free. */
ctorch_status ctorch_package_metadata(const ctorch_package *package, const char *key, char **out);
/** Bytes of the package's constants (its weights). */
int64_t ctorch_package_weight_bytes(const ctorch_package *package);
/** Runs the package on its flattened inputs under inference mode; the outputs come back as one
 *  tensor when there is one, else as a tuple. */
ctorch_status ctorch_package_run(const ctorch_package *package, ctorch_tensor *const *inputs, size_t count,
                                 ctorch_value **out);

/* Tensors */

/** A new uninitialised CPU tensor. */
ctorch_status ctorch_tensor_empty(const int64_t *shape, size_t ndim, ctorch_dtype dtype,
                                  ctorch_tensor **out);
/**
 * A CPU tensor over caller memory, without copying. `deleter(context)` is called once
 * libtorch no longer needs the memory (possibly on another thread).
 */
ctorch_status ctorch_tensor_from_blob(void *data, const int64_t *shape, size_t ndim,
                                      ctorch_dtype dtype, void (*deleter)(void *context),
                                      void *context, ctorch_tensor **out);
void ctorch_tensor_free(ctorch_tensor *tensor);

size_t ctorch_tensor_ndim(const ctorch_tensor *tensor);
/** Writes min(ndim, capacity) sizes into `shape`. */
void ctorch_tensor_shape(const ctorch_tensor *tensor, int64_t *shape, size_t capacity);
ctorch_dtype ctorch_tensor_dtype(const ctorch_tensor *tensor);
void ctorch_tensor_device(const ctorch_tensor *tensor, ctorch_device_type *type, int *index);
/** The data of a contiguous CPU tensor; fails for other tensors. */
ctorch_status ctorch_tensor_data(const ctorch_tensor *tensor, void **out);

/** The tensor on a device (the same storage when already there). */
ctorch_status ctorch_tensor_to_device(const ctorch_tensor *tensor, ctorch_device_type device,
                                      int device_index, ctorch_tensor **out);
/** A contiguous CPU tensor with the same values (the same storage when already one). */
ctorch_status ctorch_tensor_contiguous_cpu(const ctorch_tensor *tensor, ctorch_tensor **out);
ctorch_status ctorch_tensor_to_dtype(const ctorch_tensor *tensor, ctorch_dtype dtype,
                                     ctorch_tensor **out);
ctorch_status ctorch_tensor_argmax(const ctorch_tensor *tensor, int64_t dim, ctorch_tensor **out);
/** The class map of (N, C, ...) scores: uint8 (N, ...), at each position the index of the first
 *  maximum over dimension 1 (NaN counts as the maximum, as in argmax). At most 256 classes. One
 *  pass over float32 scores on the CPU; other tensors go through max and a conversion. */
ctorch_status ctorch_tensor_class_map(const ctorch_tensor *tensor, ctorch_tensor **out);
ctorch_status ctorch_tensor_softmax(const ctorch_tensor *tensor, int64_t dim, ctorch_tensor **out);
ctorch_status ctorch_tensor_topk(const ctorch_tensor *tensor, int64_t k, int64_t dim,
                                 ctorch_tensor **values, ctorch_tensor **indices);
ctorch_status ctorch_tensor_stack(ctorch_tensor *const *tensors, size_t count, int64_t dim,
                                  ctorch_tensor **out);
ctorch_status ctorch_tensor_cat(ctorch_tensor *const *tensors, size_t count, int64_t dim,
                                ctorch_tensor **out);
ctorch_status ctorch_tensor_select(const ctorch_tensor *tensor, int64_t dim, int64_t index,
                                   ctorch_tensor **out);
ctorch_status ctorch_tensor_narrow(const ctorch_tensor *tensor, int64_t dim, int64_t start,
                                   int64_t length, ctorch_tensor **out);
/** Largest absolute elementwise difference, as double. */
ctorch_status ctorch_tensor_max_abs_diff(const ctorch_tensor *a, const ctorch_tensor *b,
                                         double *out);

/* Values returned by forward */

ctorch_value_kind ctorch_value_kind_of(const ctorch_value *value);
/** The IValue's type as libtorch names it (for error messages). Valid until the next call. */
const char *ctorch_value_type_name(const ctorch_value *value);
ctorch_status ctorch_value_tensor(const ctorch_value *value, ctorch_tensor **out);
/** Elements of a tuple or list, entries of a dict. */
size_t ctorch_value_count(const ctorch_value *value);
/** Element i of a tuple or list, or the value of dict entry i. */
ctorch_status ctorch_value_element(const ctorch_value *value, size_t index, ctorch_value **out);
/** The key of dict entry i as a string (string keys, or others printed); free with ctorch_string_free. */
ctorch_status ctorch_value_dict_key(const ctorch_value *value, size_t index, char **out);
void ctorch_value_free(ctorch_value *value);
void ctorch_string_free(char *string);

#ifdef __cplusplus
}
#endif

#endif
