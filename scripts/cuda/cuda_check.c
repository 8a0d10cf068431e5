/*
 * Exercises the CTorch C shim on a CUDA device, through the same C API the Swift `Torch`
 * target calls. Built and run by scripts/cuda/check-cuda against a CUDA libtorch (the
 * `torch/` folder of a CUDA PyTorch wheel); needs no Swift toolchain.
 *
 * Checks: the shim sees the GPU; the fixture U-Net loads onto cuda:0 and gives the same
 * logits as on the CPU and as the committed Python reference; the frozen, optimised module
 * does too; tuple and dict outputs come back from the GPU; a batch of 8 runs; and it
 * prints the forward time on CPU and GPU for each model given.
 *
 * usage: cuda_check FIXTURES_DIR [EXTRA_MODEL.pt ...]
 */
#define _POSIX_C_SOURCE 200809L
#include "ctorch.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(call)                                                                      \
    do {                                                                                 \
        if ((call) != CTORCH_OK) {                                                       \
            fprintf(stderr, "FAIL %s:%d %s: %s\n", __FILE__, __LINE__, #call,             \
                    ctorch_last_error());                                                \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static void expect(int condition, const char *what) {
    printf("%s %s\n", condition ? "ok  " : "FAIL", what);
    if (!condition) failures++;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *read_floats(const char *path, size_t count) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    float *data = malloc(count * sizeof(float));
    if (!data || fread(data, sizeof(float), count, f) != count) {
        fprintf(stderr, "FAIL short read %s\n", path);
        exit(1);
    }
    fclose(f);
    return data;
}

/* forward(input) on a module; returns the first tensor output, copied to a contiguous CPU tensor. */
static ctorch_tensor *forward_cpu_result(const ctorch_module *module, ctorch_tensor *input,
                                         ctorch_device_type device) {
    ctorch_tensor *on_device = NULL;
    CHECK(ctorch_tensor_to_device(input, device, 0, &on_device));
    ctorch_value *value = NULL;
    CHECK(ctorch_module_forward(module, &on_device, 1, &value));
    ctorch_tensor *out = NULL;
    ctorch_value_kind kind = ctorch_value_kind_of(value);
    if (kind == CTORCH_VALUE_TENSOR) {
        CHECK(ctorch_value_tensor(value, &out));
    } else {
        ctorch_value *first = NULL;
        CHECK(ctorch_value_element(value, 0, &first));
        CHECK(ctorch_value_tensor(first, &out));
        ctorch_value_free(first);
    }
    ctorch_device_type type; int index;
    ctorch_tensor_device(out, &type, &index);
    if (device == CTORCH_DEVICE_CUDA && type != CTORCH_DEVICE_CUDA)
        expect(0, "  output tensor lives on cuda");
    ctorch_tensor *cpu = NULL;
    CHECK(ctorch_tensor_contiguous_cpu(out, &cpu));
    ctorch_tensor_free(out);
    ctorch_tensor_free(on_device);
    ctorch_value_free(value);
    return cpu;
}

static double max_diff(ctorch_tensor *a, ctorch_tensor *b) {
    double d = 0;
    CHECK(ctorch_tensor_max_abs_diff(a, b, &d));
    return d;
}

/* Fraction of pixels whose argmax over dim 1 agrees. */
static double argmax_agreement(ctorch_tensor *a, ctorch_tensor *b) {
    ctorch_tensor *ia = NULL, *ib = NULL;
    CHECK(ctorch_tensor_argmax(a, 1, &ia));
    CHECK(ctorch_tensor_argmax(b, 1, &ib));
    int64_t shape[8]; size_t nd = ctorch_tensor_ndim(ia);
    ctorch_tensor_shape(ia, shape, 8);
    size_t n = 1; for (size_t i = 0; i < nd; i++) n *= (size_t)shape[i];
    int64_t *pa, *pb;
    CHECK(ctorch_tensor_data(ia, (void **)&pa));
    CHECK(ctorch_tensor_data(ib, (void **)&pb));
    size_t same = 0; for (size_t i = 0; i < n; i++) same += pa[i] == pb[i];
    ctorch_tensor_free(ia); ctorch_tensor_free(ib);
    return (double)same / (double)n;
}

struct shared_run {
    const ctorch_module *module;
    ctorch_tensor *input;
    ctorch_tensor *last;
    double worst;
};

static void *run_shared(void *arg) {
    struct shared_run *run = arg;
    ctorch_tensor *first = forward_cpu_result(run->module, run->input, CTORCH_DEVICE_CUDA);
    for (int i = 0; i < 19; i++) {
        ctorch_tensor *next = forward_cpu_result(run->module, run->input, CTORCH_DEVICE_CUDA);
        double d = max_diff(first, next);
        if (d > run->worst) run->worst = d;
        ctorch_tensor_free(next);
    }
    run->last = first;
    return NULL;
}

static ctorch_tensor *random_input(int64_t batch, int64_t h, int64_t w) {
    int64_t shape[4] = {batch, 3, h, w};
    ctorch_tensor *t = NULL;
    CHECK(ctorch_tensor_empty(shape, 4, CTORCH_FLOAT32, &t));
    float *p; CHECK(ctorch_tensor_data(t, (void **)&p));
    srand(7);
    for (int64_t i = 0; i < batch * 3 * h * w; i++) p[i] = (float)rand() / RAND_MAX * 4.0f - 2.0f;
    return t;
}

static double time_forward(const ctorch_module *module, ctorch_tensor *input,
                           ctorch_device_type device, int iterations) {
    /* Includes host->device copy of the input and device->host copy of the output, as the server does. */
    for (int i = 0; i < 3; i++) ctorch_tensor_free(forward_cpu_result(module, input, device));
    double start = now_ms();
    for (int i = 0; i < iterations; i++) ctorch_tensor_free(forward_cpu_result(module, input, device));
    return (now_ms() - start) / iterations;
}

static void time_model(const char *path, int64_t batch) {
    ctorch_module *cpu = NULL, *gpu = NULL, *gpu_opt = NULL;
    CHECK(ctorch_module_load(path, CTORCH_DEVICE_CPU, 0, &cpu));
    CHECK(ctorch_module_load(path, CTORCH_DEVICE_CUDA, 0, &gpu));
    CHECK(ctorch_module_optimized(gpu, &gpu_opt));
    ctorch_tensor *input = random_input(batch, 96, 128);
    ctorch_tensor *a = forward_cpu_result(cpu, input, CTORCH_DEVICE_CPU);
    ctorch_tensor *b = forward_cpu_result(gpu_opt, input, CTORCH_DEVICE_CUDA);
    printf("     %s batch %ld: cpu vs cuda-optimised max |diff| %.2e, argmax agreement %.5f\n",
           path, (long)batch, max_diff(a, b), argmax_agreement(a, b));
    expect(argmax_agreement(a, b) > 0.999, "  argmax on cuda agrees with cpu on > 99.9 % of pixels");
    double t_cpu = time_forward(cpu, input, CTORCH_DEVICE_CPU, 5);
    double t_gpu = time_forward(gpu, input, CTORCH_DEVICE_CUDA, 30);
    double t_opt = time_forward(gpu_opt, input, CTORCH_DEVICE_CUDA, 30);
    printf("     forward ms per batch of %ld (intra-op threads %d): cpu %.2f, cuda %.2f, cuda optimised %.2f\n",
           (long)batch, ctorch_get_num_threads(), t_cpu, t_gpu, t_opt);
    ctorch_tensor_free(a); ctorch_tensor_free(b); ctorch_tensor_free(input);
    ctorch_module_free(cpu); ctorch_module_free(gpu); ctorch_module_free(gpu_opt);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s FIXTURES_DIR [MODEL.pt ...]\n", argv[0]); return 2; }
    char path[4096];
    printf("libtorch %s, cuda devices %d\n", ctorch_version(), ctorch_cuda_device_count());
    expect(ctorch_cuda_device_count() > 0, "the shim sees a CUDA device");
    if (ctorch_cuda_device_count() == 0) return 1;

    /* Errors from the device path come back as statuses, not exceptions. */
    ctorch_module *bad = NULL;
    snprintf(path, sizeof path, "%s/models/unet_tiny.pt", argv[1]);
    expect(ctorch_module_load(path, CTORCH_DEVICE_CUDA, 64, &bad) == CTORCH_ERROR,
           "loading onto cuda:64 fails with a status");
    printf("     message: %.160s\n", ctorch_last_error());

    /* The fixture U-Net against the committed Python reference. */
    int64_t shape[4] = {1, 3, 96, 128};
    size_t n_in = 3 * 96 * 128, n_out = 5 * 96 * 128;
    snprintf(path, sizeof path, "%s/models/unet_input.f32", argv[1]);
    float *in_data = read_floats(path, n_in);
    snprintf(path, sizeof path, "%s/models/unet_output.f32", argv[1]);
    float *ref_data = read_floats(path, n_out);
    int64_t out_shape[4] = {1, 5, 96, 128};
    ctorch_tensor *input = NULL, *reference = NULL;
    CHECK(ctorch_tensor_from_blob(in_data, shape, 4, CTORCH_FLOAT32, NULL, NULL, &input));
    CHECK(ctorch_tensor_from_blob(ref_data, out_shape, 4, CTORCH_FLOAT32, NULL, NULL, &reference));

    snprintf(path, sizeof path, "%s/models/unet_tiny.pt", argv[1]);
    ctorch_module *cpu = NULL, *gpu = NULL, *gpu_opt = NULL;
    CHECK(ctorch_module_load(path, CTORCH_DEVICE_CPU, 0, &cpu));
    CHECK(ctorch_module_load(path, CTORCH_DEVICE_CUDA, 0, &gpu));
    CHECK(ctorch_module_optimized(gpu, &gpu_opt));
    ctorch_tensor *out_cpu = forward_cpu_result(cpu, input, CTORCH_DEVICE_CPU);
    ctorch_tensor *out_gpu = forward_cpu_result(gpu, input, CTORCH_DEVICE_CUDA);
    ctorch_tensor *out_opt = forward_cpu_result(gpu_opt, input, CTORCH_DEVICE_CUDA);
    double d_cpu = max_diff(out_cpu, reference), d_gpu = max_diff(out_gpu, reference),
           d_opt = max_diff(out_opt, reference);
    printf("     unet_tiny max |diff| vs Python reference: cpu %.2e, cuda %.2e, cuda optimised %.2e\n",
           d_cpu, d_gpu, d_opt);
    expect(d_cpu < 1e-4, "unet_tiny on cpu equals the reference (1e-4)");
    expect(d_gpu < 1e-3, "unet_tiny on cuda equals the reference (1e-3, TF32/cuDNN)");
    expect(d_opt < 1e-3, "unet_tiny frozen+optimised on cuda equals the reference (1e-3)");
    expect(argmax_agreement(out_gpu, reference) > 0.999, "unet_tiny cuda argmax equals the reference's");
    ctorch_tensor_free(out_cpu); ctorch_tensor_free(out_gpu); ctorch_tensor_free(out_opt);

    /* Four threads share the one CUDA module, as the server's workers do. */
    struct shared_run runs[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        runs[i] = (struct shared_run){gpu_opt, input, NULL, 0};
        pthread_create(&threads[i], NULL, run_shared, &runs[i]);
    }
    ctorch_tensor *single = forward_cpu_result(gpu_opt, input, CTORCH_DEVICE_CUDA);
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (runs[i].worst > worst) worst = runs[i].worst;
        ctorch_tensor *d = runs[i].last;
        if (d) { double x = max_diff(d, single); if (x > worst) worst = x; ctorch_tensor_free(d); }
    }
    printf("     4 threads x 20 forwards on one cuda module: max |diff| vs single-thread %.2e\n", worst);
    expect(worst < 1e-5, "concurrent forwards on one shared cuda module give the single-thread output");
    ctorch_tensor_free(single);
    ctorch_module_free(cpu); ctorch_module_free(gpu); ctorch_module_free(gpu_opt);

    /* Tuple and dict outputs from the GPU. */
    const char *shaped[2] = {"tuple_out.pt", "dict_out.pt"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/models/%s", argv[1], shaped[i]);
        ctorch_module *m = NULL;
        CHECK(ctorch_module_load(path, CTORCH_DEVICE_CUDA, 0, &m));
        ctorch_tensor *on = NULL; ctorch_value *v = NULL;
        CHECK(ctorch_tensor_to_device(input, CTORCH_DEVICE_CUDA, 0, &on));
        CHECK(ctorch_module_forward(m, &on, 1, &v));
        ctorch_value_kind kind = ctorch_value_kind_of(v);
        char what[128];
        snprintf(what, sizeof what, "%s on cuda returns a %s with %zu entries", shaped[i],
                 i == 0 ? "tuple" : "dict", ctorch_value_count(v));
        expect(kind == (i == 0 ? CTORCH_VALUE_TUPLE : CTORCH_VALUE_DICT) && ctorch_value_count(v) == 2, what);
        if (kind == CTORCH_VALUE_DICT) {
            char *key = NULL; CHECK(ctorch_value_dict_key(v, 0, &key));
            expect(strcmp(key, "out") == 0, "  first dict key is \"out\"");
            ctorch_string_free(key);
        }
        ctorch_value_free(v); ctorch_tensor_free(on); ctorch_module_free(m);
    }
    ctorch_tensor_free(input); ctorch_tensor_free(reference);
    free(in_data); free(ref_data);

    /* Extra models: agreement and timing at batch 1 and 8. */
    for (int i = 2; i < argc; i++) {
        time_model(argv[i], 1);
        time_model(argv[i], 8);
    }
    printf(failures ? "%d check(s) FAILED\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
