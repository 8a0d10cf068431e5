"""TorchServe handler equivalent to our built-in image_segmenter, for scripts/bench/torchserve.py.

The reference deployment's pipeline: PIL decode -> RGB -> Resize((H, W)) (bilinear, antialiased)
-> ToTensor -> Normalize(mean, std) -> forward under inference_mode -> argmax over classes ->
base64 of the uint8 mask, row-major -> {"base64_prediction": ...}. Batches of any size.

Settings come from bench_handler.json, packed next to the model as an extra file:
{"threads": 1, "inputSize": [96, 128], "mean": [...], "std": [...]}. `threads` is passed to
torch.set_num_threads before the model is loaded (TorchServe's workers default to one thread).
Runs inside TorchServe only; never part of the server or its tests.
"""
import base64
import io
import json
import os

import torch
from PIL import Image
from torchvision import transforms
from ts.torch_handler.base_handler import BaseHandler


class UNetSegmenter(BaseHandler):
    def initialize(self, context):
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, "bench_handler.json")) as f:
            settings = json.load(f)
        torch.set_num_threads(int(settings.get("threads", 1)))
        height, width = settings["inputSize"]
        self.transform = transforms.Compose([
            transforms.Resize((height, width)),
            transforms.ToTensor(),
            transforms.Normalize(settings["mean"], settings["std"]),
        ])
        super().initialize(context)

    def preprocess(self, data):
        tensors = []
        for row in data:
            body = row.get("data") or row.get("body")
            if isinstance(body, str):  # a base64 string in a JSON body
                body = base64.b64decode(body)
            image = Image.open(io.BytesIO(body)).convert("RGB")
            tensors.append(self.transform(image))
        return torch.stack(tensors)

    def inference(self, data, *args, **kwargs):
        with torch.inference_mode():
            output = self.model(data.to(self.device))
        if isinstance(output, dict):
            output = output["out"]
        elif isinstance(output, (tuple, list)):
            output = output[0]
        return output

    def postprocess(self, data):
        masks = data.argmax(dim=1).to(torch.uint8).contiguous()
        return [{"base64_prediction": base64.b64encode(mask.numpy().tobytes()).decode("ascii")} for mask in masks]
