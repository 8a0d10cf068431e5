#include "ctorch.h"

#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>
#include <torch/csrc/jit/api/module.h>
#include <ATen/Parallel.h>

#if TORCH_VERSION_MAJOR >= 2 && __has_include(<torch/csrc/inductor/aoti_package/model_package_loader.h>)
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#define CTORCH_HAS_AOTI 1
#else
#define CTORCH_HAS_AOTI 0
#endif

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

struct ctorch_module {
    torch::jit::Module module;
    c10::Device device;
    int64_t weight_bytes;
};

struct ctorch_tensor {
    at::Tensor tensor;
};

struct ctorch_package {
#if CTORCH_HAS_AOTI
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
    std::unordered_map<std::string, std::string> metadata;
    int64_t weight_bytes = 0;
#endif
};

struct ctorch_value {
    c10::IValue value;
    std::string type_name;
};

namespace {

thread_local std::string last_error;

void set_error(const std::string &message) { last_error = message; }

// Every entry point runs its body through this guard, so no exception crosses the C ABI.
template <typename Body> ctorch_status guarded(Body &&body) {
    try {
        last_error.clear();
        body();
        return CTORCH_OK;
    } catch (const c10::Error &e) {
        set_error(e.what_without_backtrace());
    } catch (const std::exception &e) {
        set_error(e.what());
    } catch (...) {
        set_error("unknown C++ exception");
    }
    return CTORCH_ERROR;
}

c10::ScalarType to_scalar_type(ctorch_dtype dtype) {
    switch (dtype) {
    case CTORCH_FLOAT32: return at::kFloat;
    case CTORCH_FLOAT64: return at::kDouble;
    case CTORCH_FLOAT16: return at::kHalf;
    case CTORCH_BFLOAT16: return at::kBFloat16;
    case CTORCH_INT64: return at::kLong;
    case CTORCH_INT32: return at::kInt;
    case CTORCH_INT16: return at::kShort;
    case CTORCH_INT8: return at::kChar;
    case CTORCH_UINT8: return at::kByte;
    case CTORCH_BOOL: return at::kBool;
    default: throw std::invalid_argument("unsupported dtype code " + std::to_string(dtype));
    }
}

ctorch_dtype from_scalar_type(c10::ScalarType type) {
    switch (type) {
    case at::kFloat: return CTORCH_FLOAT32;
    case at::kDouble: return CTORCH_FLOAT64;
    case at::kHalf: return CTORCH_FLOAT16;
    case at::kBFloat16: return CTORCH_BFLOAT16;
    case at::kLong: return CTORCH_INT64;
    case at::kInt: return CTORCH_INT32;
    case at::kShort: return CTORCH_INT16;
    case at::kChar: return CTORCH_INT8;
    case at::kByte: return CTORCH_UINT8;
    case at::kBool: return CTORCH_BOOL;
    default: return CTORCH_OTHER_DTYPE;
    }
}

c10::Device to_device(ctorch_device_type type, int index) {
    switch (type) {
    case CTORCH_DEVICE_CPU: return c10::Device(c10::kCPU);
    case CTORCH_DEVICE_CUDA: return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    default: throw std::invalid_argument("unsupported device type code " + std::to_string(type));
    }
}

std::vector<int64_t> to_sizes(const int64_t *shape, size_t ndim) {
    std::vector<int64_t> sizes(shape, shape + ndim);
    for (auto size : sizes) {
        if (size < 0) throw std::invalid_argument("negative tensor dimension " + std::to_string(size));
    }
    return sizes;
}

ctorch_tensor *wrap(at::Tensor tensor) { return new ctorch_tensor{std::move(tensor)}; }

ctorch_value *wrap(c10::IValue value) {
    auto name = value.tagKind();
    return new ctorch_value{std::move(value), name};
}

std::vector<at::Tensor> unwrap(ctorch_tensor *const *tensors, size_t count) {
    std::vector<at::Tensor> result;
    result.reserve(count);
    for (size_t i = 0; i < count; i++) {
        if (tensors[i] == nullptr) throw std::invalid_argument("null tensor at position " + std::to_string(i));
        result.push_back(tensors[i]->tensor);
    }
    return result;
}

int64_t weight_bytes(const torch::jit::Module &module) {
    int64_t total = 0;
    for (const auto &p : module.parameters(/*recurse=*/true)) total += p.numel() * p.element_size();
    for (const auto &b : module.buffers(/*recurse=*/true)) total += b.numel() * b.element_size();
    return total;
}

} // namespace

extern "C" {

const char *ctorch_last_error(void) { return last_error.c_str(); }

const char *ctorch_version(void) { return TORCH_VERSION; }

int ctorch_cuda_device_count(void) {
    try {
        return static_cast<int>(torch::cuda::device_count());
    } catch (...) {
        return 0;
    }
}

ctorch_status ctorch_set_num_threads(int n) {
    return guarded([&] {
        if (n < 1) throw std::invalid_argument("thread count must be at least 1, got " + std::to_string(n));
        // A thread's first parallel call sets its count to the one last set by any thread
        // (at::init_num_threads), which would undo this one once another worker set its own.
        // Done now, so the count set below stays this thread's.
#if TORCH_VERSION_MAJOR >= 2
        // libtorch 2 no longer exports lazy_init_num_threads, so the header's inline copy keeps
        // a per-thread flag of its own and the library's stays unset; get_num_threads runs the
        // library's.
        (void)at::get_num_threads();
#else
        at::internal::lazy_init_num_threads();
#endif
        at::set_num_threads(n);
        // OpenBLAS's pthread build keeps its own pool (one thread per core by default), which
        // oversubscribes the cores next to libtorch's threads. The pool is process-wide, so it
        // cannot follow each worker's count (the last one set would win for every model, and a
        // 2-thread model's count made the 1-thread workers of others collapse); BLAS calls run
        // on the calling thread. Absent with Debian's reference BLAS, so looked up, not linked.
        using SetThreads = void (*)(int);
        if (auto openblas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) openblas(1);
    });
}

int ctorch_get_num_threads(void) { return at::get_num_threads(); }

ctorch_status ctorch_stop_blas_threads(void) {
    return guarded([] {
        // OpenBLAS's own pthread_atfork handler; looked up like openblas_set_num_threads above.
        using Shutdown = int (*)();
        if (auto shutdown = reinterpret_cast<Shutdown>(dlsym(RTLD_DEFAULT, "blas_thread_shutdown_"))) {
            if (shutdown() != 0) throw std::runtime_error("OpenBLAS could not stop its threads");
        }
    });
}

ctorch_status ctorch_limit_malloc_arenas(int n) {
    return guarded([&] {
        if (n < 1) throw std::invalid_argument("arena count must be at least 1, got " + std::to_string(n));
#if defined(__GLIBC__)
        if (mallopt(M_ARENA_MAX, n) != 1) throw std::runtime_error("glibc refused M_ARENA_MAX " + std::to_string(n));
#endif
    });
}

ctorch_status ctorch_set_num_interop_threads(int n) {
    return guarded([&] {
        if (n < 1) throw std::invalid_argument("thread count must be at least 1, got " + std::to_string(n));
        at::set_num_interop_threads(n);
    });
}

ctorch_status ctorch_module_load(const char *path, ctorch_device_type device, int device_index,
                                 ctorch_module **out) {
    return guarded([&] {
        if (path == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        auto target = to_device(device, device_index);
        torch::NoGradGuard no_grad;
        auto module = torch::jit::load(std::string(path), target);
        module.eval();
        auto bytes = weight_bytes(module);
        *out = new ctorch_module{std::move(module), target, bytes};
    });
}

ctorch_status ctorch_module_optimized(const ctorch_module *module, ctorch_module **out) {
    return guarded([&] {
        if (module == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        torch::NoGradGuard no_grad;
        auto copy = module->module.clone();
        copy.eval();
        auto frozen = torch::jit::freeze(copy);
        torch::jit::optimize_for_inference(frozen);
        *out = new ctorch_module{std::move(frozen), module->device, module->weight_bytes};
    });
}

ctorch_status ctorch_module_converted(const ctorch_module *module, ctorch_dtype dtype, ctorch_module **out) {
    return guarded([&] {
        if (module == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        auto type = to_scalar_type(dtype);
        if (!c10::isFloatingType(type)) throw std::invalid_argument("a module converts to a floating-point type only");
        torch::NoGradGuard no_grad;
        auto copy = module->module.clone();
        copy.to(type);
        copy.eval();
        auto bytes = weight_bytes(copy);
        *out = new ctorch_module{std::move(copy), module->device, bytes};
    });
}

void ctorch_module_free(ctorch_module *module) { delete module; }

int64_t ctorch_module_weight_bytes(const ctorch_module *module) {
    return module == nullptr ? 0 : module->weight_bytes;
}

ctorch_status ctorch_module_forward(const ctorch_module *module, ctorch_tensor *const *inputs,
                                    size_t count, ctorch_value **out) {
    return guarded([&] {
        if (module == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        std::vector<c10::IValue> arguments;
        arguments.reserve(count);
        for (auto &tensor : unwrap(inputs, count)) arguments.emplace_back(std::move(tensor));
        // forward is const in spirit; Module is a handle, the copy shares the object.
        auto handle = module->module;
        *out = wrap(handle.forward(std::move(arguments)));
    });
}

ctorch_status ctorch_module_forward_list(const ctorch_module *module, ctorch_tensor *const *tensors,
                                         size_t count, ctorch_value **out) {
    return guarded([&] {
        if (module == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        c10::List<at::Tensor> list;
        list.reserve(count);
        for (auto &tensor : unwrap(tensors, count)) list.push_back(std::move(tensor));
        std::vector<c10::IValue> arguments;
        arguments.emplace_back(std::move(list));
        auto handle = module->module;
        *out = wrap(handle.forward(std::move(arguments)));
    });
}

int ctorch_aoti_available(void) { return CTORCH_HAS_AOTI; }

ctorch_status ctorch_package_load(const char *path, const char *model_name, size_t runners, int device_index,
                                  ctorch_package **out) {
    return guarded([&] {
        if (path == nullptr || model_name == nullptr || out == nullptr) throw std::invalid_argument("null argument");
#if CTORCH_HAS_AOTI
        const std::string file(path), name(model_name);
        auto metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(file, name);
        // A CPU package takes no device index; a CUDA one runs on the worker's GPU.
        const bool cpu = metadata["AOTI_DEVICE_KEY"] == "cpu";
        const auto index = static_cast<c10::DeviceIndex>(cpu ? -1 : device_index);
        auto package = std::make_unique<ctorch_package>();
        package->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
            file, name, /*run_single_threaded=*/false, std::max<size_t>(1, runners), index);
        package->metadata = package->loader->get_metadata();
        try {
            for (const auto &entry : package->loader->get_runner()->extract_constants_map(/*use_inactive=*/false)) {
                package->weight_bytes += entry.second.numel() * entry.second.element_size();
            }
        } catch (...) {
            package->weight_bytes = 0; // a package without readable constants only reports 0 bytes
        }
        *out = package.release();
#else
        (void)runners;
        (void)device_index;
        throw std::runtime_error("this build cannot load AOTInductor packages (libtorch " TORCH_VERSION
                                 " from Debian); build with scripts/setup --libtorch pytorch");
#endif
    });
}

void ctorch_package_free(ctorch_package *package) { delete package; }

ctorch_status ctorch_package_metadata(const ctorch_package *package, const char *key, char **out) {
    return guarded([&] {
        if (package == nullptr || key == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        *out = nullptr;
#if CTORCH_HAS_AOTI
        auto found = package->metadata.find(key);
        if (found == package->metadata.end()) return;
        *out = strdup(found->second.c_str());
        if (*out == nullptr) throw std::bad_alloc();
#endif
    });
}

int64_t ctorch_package_weight_bytes(const ctorch_package *package) {
#if CTORCH_HAS_AOTI
    return package == nullptr ? 0 : package->weight_bytes;
#else
    (void)package;
    return 0;
#endif
}

ctorch_status ctorch_package_run(const ctorch_package *package, ctorch_tensor *const *inputs, size_t count,
                                 ctorch_value **out) {
    return guarded([&] {
        if (package == nullptr || out == nullptr || (inputs == nullptr && count > 0)) throw std::invalid_argument("null argument");
#if CTORCH_HAS_AOTI
        c10::InferenceMode guard;
        // The generated code reads inputs as dense row-major memory.
        std::vector<at::Tensor> arguments;
        arguments.reserve(count);
        for (auto &tensor : unwrap(inputs, count)) arguments.push_back(tensor.contiguous());
        auto outputs = package->loader->run(arguments);
        if (outputs.size() == 1) {
            *out = wrap(c10::IValue(std::move(outputs[0])));
            return;
        }
        std::vector<c10::IValue> elements(outputs.begin(), outputs.end());
        *out = wrap(c10::IValue(c10::ivalue::Tuple::create(std::move(elements))));
#else
        throw std::runtime_error("this build cannot run AOTInductor packages");
#endif
    });
}

ctorch_status ctorch_tensor_empty(const int64_t *shape, size_t ndim, ctorch_dtype dtype,
                                  ctorch_tensor **out) {
    return guarded([&] {
        if (out == nullptr || (shape == nullptr && ndim > 0)) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(at::empty(to_sizes(shape, ndim), at::TensorOptions().dtype(to_scalar_type(dtype))));
    });
}

ctorch_status ctorch_tensor_from_blob(void *data, const int64_t *shape, size_t ndim,
                                      ctorch_dtype dtype, void (*deleter)(void *context),
                                      void *context, ctorch_tensor **out) {
    return guarded([&] {
        if (out == nullptr || data == nullptr || (shape == nullptr && ndim > 0))
            throw std::invalid_argument("null argument");
        auto options = at::TensorOptions().dtype(to_scalar_type(dtype));
        auto sizes = to_sizes(shape, ndim);
        if (deleter != nullptr) {
            *out = wrap(torch::from_blob(data, sizes, [deleter, context](void *) { deleter(context); }, options));
        } else {
            *out = wrap(torch::from_blob(data, sizes, options));
        }
    });
}

void ctorch_tensor_free(ctorch_tensor *tensor) { delete tensor; }

size_t ctorch_tensor_ndim(const ctorch_tensor *tensor) {
    return tensor == nullptr ? 0 : static_cast<size_t>(tensor->tensor.dim());
}

void ctorch_tensor_shape(const ctorch_tensor *tensor, int64_t *shape, size_t capacity) {
    if (tensor == nullptr || shape == nullptr) return;
    auto sizes = tensor->tensor.sizes();
    for (size_t i = 0; i < capacity && i < sizes.size(); i++) shape[i] = sizes[i];
}

ctorch_dtype ctorch_tensor_dtype(const ctorch_tensor *tensor) {
    return tensor == nullptr ? CTORCH_OTHER_DTYPE : from_scalar_type(tensor->tensor.scalar_type());
}

void ctorch_tensor_device(const ctorch_tensor *tensor, ctorch_device_type *type, int *index) {
    if (tensor == nullptr) return;
    auto device = tensor->tensor.device();
    if (type != nullptr) {
        *type = device.is_cpu() ? CTORCH_DEVICE_CPU : device.is_cuda() ? CTORCH_DEVICE_CUDA : CTORCH_DEVICE_OTHER;
    }
    if (index != nullptr) *index = device.has_index() ? device.index() : 0;
}

ctorch_status ctorch_tensor_data(const ctorch_tensor *tensor, void **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        if (!tensor->tensor.device().is_cpu()) throw std::invalid_argument("tensor is not on the CPU");
        if (!tensor->tensor.is_contiguous()) throw std::invalid_argument("tensor is not contiguous");
        *out = tensor->tensor.data_ptr();
    });
}

ctorch_status ctorch_tensor_to_device(const ctorch_tensor *tensor, ctorch_device_type device,
                                      int device_index, ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(tensor->tensor.to(to_device(device, device_index)));
    });
}

ctorch_status ctorch_tensor_contiguous_cpu(const ctorch_tensor *tensor, ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(tensor->tensor.to(c10::Device(c10::kCPU)).contiguous());
    });
}

ctorch_status ctorch_tensor_to_dtype(const ctorch_tensor *tensor, ctorch_dtype dtype,
                                     ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(tensor->tensor.to(to_scalar_type(dtype)));
    });
}

ctorch_status ctorch_tensor_argmax(const ctorch_tensor *tensor, int64_t dim, ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        // max(dim) gives the same indices (the first maximum; NaN counts as the maximum) and,
        // in libtorch 1.13 on the CPU, is ~8x faster than argmax over a non-innermost dimension
        // (0.2 vs 1.55 ms for [1, 8, 96, 128] logits over dim 1, one thread).
        *out = wrap(std::get<1>(tensor->tensor.max(dim)));
    });
}

ctorch_status ctorch_tensor_class_map(const ctorch_tensor *tensor, ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        const auto &scores = tensor->tensor;
        if (scores.dim() < 2) throw std::invalid_argument("class map needs (N, C, ...) scores, got " + std::to_string(scores.dim()) + " dimensions");
        const int64_t classes = scores.size(1);
        if (classes < 1 || classes > 256) throw std::invalid_argument("class map holds 1 to 256 classes, got " + std::to_string(classes));
        if (!scores.is_cpu() || scores.scalar_type() != at::kFloat) {
            *out = wrap(std::get<1>(scores.max(1)).to(at::kByte));
            return;
        }
        auto sizes = scores.sizes().vec();
        sizes.erase(sizes.begin() + 1);
        auto map = at::empty(sizes, at::TensorOptions().dtype(at::kByte));
        const auto dense = scores.contiguous();
        const float *in = dense.data_ptr<float>();
        uint8_t *result = map.data_ptr<uint8_t>();
        const int64_t rows = dense.size(0);
        const int64_t positions = rows == 0 ? 0 : dense.numel() / (rows * classes);
        // Class by class over all positions: contiguous reads, one running maximum per position.
        std::vector<float> best(static_cast<size_t>(positions));
        for (int64_t row = 0; row < rows; ++row) {
            const float *first = in + row * classes * positions;
            uint8_t *mask = result + row * positions;
            std::copy(first, first + positions, best.begin());
            std::fill(mask, mask + positions, uint8_t{0});
            for (int64_t c = 1; c < classes; ++c) {
                const float *score = first + c * positions;
                const auto index = static_cast<uint8_t>(c);
                for (int64_t i = 0; i < positions; ++i) {
                    const float value = score[i];
                    const float current = best[i];
                    // Strictly greater keeps the first maximum; a NaN beats any number.
                    const bool take = value > current || (value != value && current == current);
                    best[i] = take ? value : current;
                    mask[i] = take ? index : mask[i];
                }
            }
        }
        *out = wrap(std::move(map));
    });
}

ctorch_status ctorch_tensor_softmax(const ctorch_tensor *tensor, int64_t dim, ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(tensor->tensor.softmax(dim, at::kFloat));
    });
}

ctorch_status ctorch_tensor_topk(const ctorch_tensor *tensor, int64_t k, int64_t dim,
                                 ctorch_tensor **values, ctorch_tensor **indices) {
    return guarded([&] {
        if (tensor == nullptr || values == nullptr || indices == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        auto result = tensor->tensor.topk(k, dim, /*largest=*/true, /*sorted=*/true);
        *values = wrap(std::get<0>(result));
        *indices = wrap(std::get<1>(result));
    });
}

ctorch_status ctorch_tensor_stack(ctorch_tensor *const *tensors, size_t count, int64_t dim,
                                  ctorch_tensor **out) {
    return guarded([&] {
        if (out == nullptr || (tensors == nullptr && count > 0)) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(at::stack(unwrap(tensors, count), dim));
    });
}

ctorch_status ctorch_tensor_cat(ctorch_tensor *const *tensors, size_t count, int64_t dim,
                                ctorch_tensor **out) {
    return guarded([&] {
        if (out == nullptr || (tensors == nullptr && count > 0)) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(at::cat(unwrap(tensors, count), dim));
    });
}

ctorch_status ctorch_tensor_select(const ctorch_tensor *tensor, int64_t dim, int64_t index,
                                   ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(tensor->tensor.select(dim, index));
    });
}

ctorch_status ctorch_tensor_narrow(const ctorch_tensor *tensor, int64_t dim, int64_t start,
                                   int64_t length, ctorch_tensor **out) {
    return guarded([&] {
        if (tensor == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        *out = wrap(tensor->tensor.narrow(dim, start, length));
    });
}

ctorch_status ctorch_tensor_max_abs_diff(const ctorch_tensor *a, const ctorch_tensor *b,
                                         double *out) {
    return guarded([&] {
        if (a == nullptr || b == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        c10::InferenceMode guard;
        auto difference = (a->tensor.to(at::kDouble) - b->tensor.to(at::kDouble)).abs();
        *out = difference.numel() == 0 ? 0.0 : difference.max().item<double>();
    });
}

ctorch_value_kind ctorch_value_kind_of(const ctorch_value *value) {
    if (value == nullptr) return CTORCH_VALUE_NONE;
    const auto &v = value->value;
    if (v.isNone()) return CTORCH_VALUE_NONE;
    if (v.isTensor()) return CTORCH_VALUE_TENSOR;
    if (v.isTuple()) return CTORCH_VALUE_TUPLE;
    if (v.isList()) return CTORCH_VALUE_LIST;
    if (v.isGenericDict()) return CTORCH_VALUE_DICT;
    return CTORCH_VALUE_OTHER;
}

const char *ctorch_value_type_name(const ctorch_value *value) {
    return value == nullptr ? "null" : value->type_name.c_str();
}

ctorch_status ctorch_value_tensor(const ctorch_value *value, ctorch_tensor **out) {
    return guarded([&] {
        if (value == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        *out = wrap(value->value.toTensor());
    });
}

size_t ctorch_value_count(const ctorch_value *value) {
    if (value == nullptr) return 0;
    const auto &v = value->value;
    if (v.isTuple()) return v.toTupleRef().elements().size();
    if (v.isList()) return v.toListRef().size();
    if (v.isGenericDict()) return v.toGenericDict().size();
    return 0;
}

ctorch_status ctorch_value_element(const ctorch_value *value, size_t index, ctorch_value **out) {
    return guarded([&] {
        if (value == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        const auto &v = value->value;
        if (index >= ctorch_value_count(value)) throw std::out_of_range("element index out of range");
        if (v.isTuple()) {
            *out = wrap(v.toTupleRef().elements()[index]);
        } else if (v.isList()) {
            *out = wrap(v.toListRef()[index]);
        } else if (v.isGenericDict()) {
            auto dict = v.toGenericDict();
            auto it = dict.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(index));
            *out = wrap(it->value());
        } else {
            throw std::invalid_argument("value of type " + value->type_name + " has no elements");
        }
    });
}

ctorch_status ctorch_value_dict_key(const ctorch_value *value, size_t index, char **out) {
    return guarded([&] {
        if (value == nullptr || out == nullptr) throw std::invalid_argument("null argument");
        if (!value->value.isGenericDict()) throw std::invalid_argument("value is not a dict");
        auto dict = value->value.toGenericDict();
        if (index >= dict.size()) throw std::out_of_range("dict index out of range");
        auto it = dict.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(index));
        std::string key;
        if (it->key().isString()) {
            key = it->key().toStringRef();
        } else {
            std::ostringstream stream;
            stream << it->key();
            key = stream.str();
        }
        *out = strdup(key.c_str());
        if (*out == nullptr) throw std::bad_alloc();
    });
}

void ctorch_value_free(ctorch_value *value) { delete value; }

void ctorch_string_free(char *string) { std::free(string); }

} // extern "C"
