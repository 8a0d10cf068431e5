// torchvision's two operators that its detection models call from TorchScript, so that a
// `torch.jit.script`ed Faster R-CNN, Mask R-CNN, RetinaNet, SSD, SSDlite or FCOS loads and runs
// without torchvision's C++ library (which Debian ships only inside its Python package):
//
//   torchvision::nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor
//   torchvision::roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height,
//                          int pooled_width, int sampling_ratio, bool aligned) -> Tensor
//
// Forward only (the server never trains), computed on the CPU in the inputs' floating-point
// type with torchvision's arithmetic (the same bilinear weights and summation order), so boxes
// agree with what the model gives in Python. Inputs on another device are copied to the CPU and
// the result copied back. The schemas are those of torchvision 0.14 to 0.26, which scripted
// models name. Errors are thrown as c10::Error (TORCH_CHECK) and reach the caller of forward,
// where the shim's entry points catch them.

#include <torch/library.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

template <typename T>
at::Tensor nms_kernel(const at::Tensor &dets, const at::Tensor &scores, double iou_threshold) {
    const int64_t count = dets.size(0);
    auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    const T *box = dets.data_ptr<T>();
    const int64_t *sorted = order.data_ptr<int64_t>();
    std::vector<T> area(count);
    for (int64_t i = 0; i < count; ++i) {
        area[i] = (box[4 * i + 2] - box[4 * i]) * (box[4 * i + 3] - box[4 * i + 1]);
    }
    std::vector<char> suppressed(count, 0);
    std::vector<int64_t> kept;
    for (int64_t position = 0; position < count; ++position) {
        const int64_t i = sorted[position];
        if (suppressed[i]) continue;
        kept.push_back(i);
        const T x1 = box[4 * i], y1 = box[4 * i + 1], x2 = box[4 * i + 2], y2 = box[4 * i + 3];
        for (int64_t later = position + 1; later < count; ++later) {
            const int64_t j = sorted[later];
            if (suppressed[j]) continue;
            const T width = std::max(static_cast<T>(0), std::min(x2, box[4 * j + 2]) - std::max(x1, box[4 * j]));
            const T height = std::max(static_cast<T>(0), std::min(y2, box[4 * j + 3]) - std::max(y1, box[4 * j + 1]));
            const T intersection = width * height;
            const T overlap = intersection / (area[i] + area[j] - intersection);
            if (overlap > iou_threshold) suppressed[j] = 1;
        }
    }
    return at::tensor(kept, at::TensorOptions().dtype(at::kLong));
}

at::Tensor nms(const at::Tensor &dets, const at::Tensor &scores, double iou_threshold) {
    TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4, "torchvision::nms: boxes must be [N, 4], got ", dets.sizes());
    TORCH_CHECK(scores.dim() == 1 && scores.size(0) == dets.size(0),
                "torchvision::nms: scores must be [N] for ", dets.size(0), " boxes, got ", scores.sizes());
    TORCH_CHECK(dets.scalar_type() == scores.scalar_type(), "torchvision::nms: boxes and scores must have the same type");
    const auto device = dets.device();
    auto boxes = dets.to(at::kCPU).contiguous();
    auto cpuScores = scores.to(at::kCPU).contiguous();
    if (boxes.numel() == 0) return at::empty({0}, at::TensorOptions().dtype(at::kLong).device(device));
    at::Tensor kept;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "torchvision::nms",
                                    [&] { kept = nms_kernel<scalar_t>(boxes, cpuScores, iou_threshold); });
    return kept.to(device);
}

/// Bilinear interpolation at (y, x) of one H×W plane, as torchvision's roi_align samples it:
/// 0 outside [-1, H]×[-1, W], coordinates clamped to the last row and column inside.
template <typename T>
T bilinear(const T *plane, int64_t height, int64_t width, T y, T x) {
    if (y < -1.0 || y > height || x < -1.0 || x > width) return 0;
    if (y <= 0) y = 0;
    if (x <= 0) x = 0;
    int64_t yLow = static_cast<int64_t>(y), xLow = static_cast<int64_t>(x), yHigh, xHigh;
    if (yLow >= height - 1) {
        yHigh = yLow = height - 1;
        y = static_cast<T>(yLow);
    } else {
        yHigh = yLow + 1;
    }
    if (xLow >= width - 1) {
        xHigh = xLow = width - 1;
        x = static_cast<T>(xLow);
    } else {
        xHigh = xLow + 1;
    }
    const T ly = y - yLow, lx = x - xLow, hy = 1. - ly, hx = 1. - lx;
    const T w1 = hy * hx, w2 = hy * lx, w3 = ly * hx, w4 = ly * lx;
    return w1 * plane[yLow * width + xLow] + w2 * plane[yLow * width + xHigh] + w3 * plane[yHigh * width + xLow]
        + w4 * plane[yHigh * width + xHigh];
}

template <typename T>
void roi_align_kernel(const at::Tensor &input, const at::Tensor &rois, at::Tensor &output, double spatialScale,
                      int64_t pooledHeight, int64_t pooledWidth, int64_t samplingRatio, bool aligned) {
    const int64_t batch = input.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
    const T *data = input.data_ptr<T>();
    const T *roi = rois.data_ptr<T>();
    T *out = output.data_ptr<T>();
    const T offset = aligned ? static_cast<T>(0.5) : static_cast<T>(0);
    for (int64_t n = 0; n < rois.size(0); ++n) {
        const T *r = roi + 5 * n;
        const int64_t image = static_cast<int64_t>(r[0]);
        TORCH_CHECK(image >= 0 && image < batch, "torchvision::roi_align: box ", n, " names image ", image, " of ", batch);
        const T startW = r[1] * spatialScale - offset, startH = r[2] * spatialScale - offset;
        const T endW = r[3] * spatialScale - offset, endH = r[4] * spatialScale - offset;
        T roiWidth = endW - startW, roiHeight = endH - startH;
        if (!aligned) {
            roiWidth = std::max(roiWidth, static_cast<T>(1.));
            roiHeight = std::max(roiHeight, static_cast<T>(1.));
        }
        const T binHeight = roiHeight / static_cast<T>(pooledHeight), binWidth = roiWidth / static_cast<T>(pooledWidth);
        const int64_t gridH = samplingRatio > 0 ? samplingRatio : static_cast<int64_t>(std::ceil(roiHeight / pooledHeight));
        const int64_t gridW = samplingRatio > 0 ? samplingRatio : static_cast<int64_t>(std::ceil(roiWidth / pooledWidth));
        const T count = std::max<int64_t>(gridH * gridW, 1);
        for (int64_t c = 0; c < channels; ++c) {
            const T *plane = data + (image * channels + c) * height * width;
            T *bins = out + (n * channels + c) * pooledHeight * pooledWidth;
            for (int64_t ph = 0; ph < pooledHeight; ++ph) {
                for (int64_t pw = 0; pw < pooledWidth; ++pw) {
                    T sum = 0;
                    for (int64_t iy = 0; iy < gridH; ++iy) {
                        const T y = startH + ph * binHeight + static_cast<T>(iy + .5f) * binHeight / static_cast<T>(gridH);
                        for (int64_t ix = 0; ix < gridW; ++ix) {
                            const T x = startW + pw * binWidth + static_cast<T>(ix + .5f) * binWidth / static_cast<T>(gridW);
                            sum += bilinear(plane, height, width, y, x);
                        }
                    }
                    bins[ph * pooledWidth + pw] = sum / count;
                }
            }
        }
    }
}

at::Tensor roi_align(const at::Tensor &input, const at::Tensor &rois, double spatial_scale, int64_t pooled_height,
                     int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
    TORCH_CHECK(input.dim() == 4, "torchvision::roi_align: input must be [N, C, H, W], got ", input.sizes());
    TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "torchvision::roi_align: boxes must be [K, 5], got ", rois.sizes());
    TORCH_CHECK(pooled_height > 0 && pooled_width > 0, "torchvision::roi_align: the output size must be positive");
    TORCH_CHECK(input.scalar_type() == rois.scalar_type(), "torchvision::roi_align: input and boxes must have the same type");
    const auto device = input.device();
    auto cpuInput = input.to(at::kCPU).contiguous();
    auto cpuRois = rois.to(at::kCPU).contiguous();
    auto output = at::zeros({cpuRois.size(0), cpuInput.size(1), pooled_height, pooled_width}, cpuInput.options());
    if (output.numel() == 0) return output.to(device);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cpuInput.scalar_type(), "torchvision::roi_align", [&] {
        roi_align_kernel<scalar_t>(cpuInput, cpuRois, output, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    });
    return output.to(device);
}

}  // namespace

TORCH_LIBRARY(torchvision, library) {
    library.def("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor", &nms);
    library.def("roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, int pooled_width, "
                "int sampling_ratio, bool aligned) -> Tensor",
                &roi_align);
}
