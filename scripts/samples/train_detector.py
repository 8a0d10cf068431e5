#!/usr/bin/python3
"""Train the sample object detector (`detector.mar`): cars and people in street scenes.

Run with Debian's interpreter (python3-torch 1.13, torchvision 0.14, CPU):

    /usr/bin/python3 scripts/samples/train_detector.py

What it does, all deterministic from the seeds below:

1. Draws street scenes with the generator of train_unet.py (imported, not copied), at
   96x128.  A quarter are plain scenes; the others get up to two extra cars and one to
   three extra people (make_scene's `extra`), so that both classes are common.  The
   ground-truth boxes come from the generator itself: while a scene is drawn, its `paint`,
   `draw_car` and `draw_person` are wrapped (nothing else changes, the scene is exactly
   what make_scene returns) so that every car and person pixel of the class mask is tagged
   with the object that painted it last (checked against the class mask).  One box per
   object, around its visible pixels (x1, y1, x2, y2 in pixel-edge coordinates, x2 = last
   column + 1); an object cut in two by a nearer one keeps one box around both parts.  Boxes under
   MIN_BOX_AREA (12 px^2, e.g. 3x4: far-away cars at the horizon) are dropped from the
   training targets; at evaluation they are "difficult" (VOC-style: a detection on one is
   neither a hit nor a false positive).  Training data lives in memory only (a cache of the
   generated set goes to scripts/samples/build/detector/, which is git-ignored).
2. Trains a small torchvision Faster R-CNN from scratch (no pretrained weights, nothing
   downloaded; 684 k parameters, a TorchScript file under 3 MB): a tiny backbone (eight
   3x3 conv layers with BatchNorm, widths 16-32-64-96, strides 4/8/16 into a 64-channel
   FPN plus its max-pool level), one anchor size per level (8-16-32-64 px of the scene)
   with aspect ratios 0.5/1/2, RoIAlign 7x7 into a two-layer 96-wide box head; labels
   0 background, 1 car, 2 person.  Normalisation (ImageNet mean/std) and resizing are the
   model's own GeneralizedRCNNTransform with min_size=144, max_size=192: a 96x128 scene is
   upscaled 1.5x inside the model (small objects gain more than the extra compute costs:
   in shorter trials, 2000 scenes and 1200 steps, held-out mAP 0.72 against 0.67 at 1x
   with a 128-wide head).  Images go in as 0...1 float
   (3, H, W) tensors at their own size; boxes come back in that size's coordinates.
   CPU, one thread, batch 8, AdamW + one-cycle, horizontal flips, mild brightness and
   contrast jitter, a fixed number of steps (1000 steps: 8-14 minutes on a shared 2-core
   machine; --max-train-minutes stops it early and metrics.json says so).
3. Scripts the trained model in eval mode (torch.jit.script: forward(List[Tensor]) ->
   (Dict[str, Tensor], List[Dict[str, Tensor]]) with boxes, labels, scores per image),
   checks that the scripted detections equal the eager ones on held-out scenes, and
   evaluates VOC-style AP at IoU 0.5 (all-point interpolation) per class and their mean on
   held-out scenes of another seed, through the scripted model.
4. Writes detector.pt, index_to_name.json, model-config.yaml and metrics.json into
   scripts/samples/build/detector/.
5. Writes committed samples model_store/samples/street_<n>.png (n = 1..3): the first scenes
   of SAMPLE_SEED with at least one car and one person of SAMPLE_MIN_AREA px^2 or more
   (chosen by content only, never by the model's answer), with
   Tests/Fixtures/expected/detector_street_<n>.json: the scripted model's detections with
   score >= THRESHOLD on the image decoded from that PNG (uint8 / 255), highest score first,
   as [{"car": [x1, y1, x2, y2], "score": 0.9812}, ...] (coordinates to 2 decimals,
   scores to 4), and
   detector_street_<n>_truth.json: the ground-truth boxes in the same form without score.
   Exits non-zero if the held-out mAP@0.5 is below MIN_MAP.
"""

import argparse
import contextlib
import json
import os
import sys
import time
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torch import Tensor
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_unet as scenes  # noqa: E402  (the scene generator)

H, W = scenes.H, scenes.W
LABELS = ["__background__", "car", "person"]          # torchvision convention: 0 is background
SOURCE_CLASS = {1: scenes.CAR, 2: scenes.PERSON}       # detector label -> generator class id
MEAN, STD = scenes.MEAN, scenes.STD
MIN_BOX_AREA = 12          # px^2; smaller boxes are not training targets, "difficult" at evaluation
IOU = 0.5
THRESHOLD = 0.5            # the handler's score threshold (model-config.yaml)
MAX_DETECTIONS = 100

TRAIN_SEED = 21000
EVAL_SEED = 22000
SAMPLE_SEED = 23000
TORCH_SEED = 0
SAMPLE_COUNT = 3
SAMPLE_MIN_AREA = 150      # px^2: a sample shows at least one car and one person this large
MIN_MAP = 0.6

REPO = scenes.REPO
BUILD_DIR = os.path.join(REPO, "scripts", "samples", "build", "detector")
SAMPLES_DIR = scenes.SAMPLES_DIR
EXPECTED_DIR = os.path.join(REPO, "Tests", "Fixtures", "expected")


# --------------------------------------------------------------------------------------
# Scenes with instance boxes
# --------------------------------------------------------------------------------------

_recording = None   # while make_scene runs under instances(): {"inst", "labels", "current"}


def _paint(img, mask, region, color, cls=None):
    """train_unet.paint, also tagging the pixels whose class it sets with the current object."""
    rec = _recording
    if rec is not None and cls is not None:
        rec["inst"][region] = rec["current"] if cls in (scenes.CAR, scenes.PERSON) else 0
    _ORIGINAL["paint"](img, mask, region, color, cls)


def _drawer(name, label):
    def draw(*args, **kwargs):
        rec = _recording
        if rec is not None:
            rec["labels"].append(label)
            rec["current"] = len(rec["labels"])   # object ids start at 1
        try:
            return _ORIGINAL[name](*args, **kwargs)
        finally:
            if rec is not None:
                rec["current"] = 0
    return draw


_ORIGINAL = {"paint": scenes.paint, "draw_car": scenes.draw_car, "draw_person": scenes.draw_person}
_WRAPPED = {"paint": _paint, "draw_car": _drawer("draw_car", 1), "draw_person": _drawer("draw_person", 2)}


@contextlib.contextmanager
def instances():
    """While active, make_scene also fills rec["inst"] (HxW object id, 0 = none) and
    rec["labels"] (detector label of object id k at k - 1).  The scene itself is unchanged:
    the wrappers draw nothing and take no random numbers."""
    global _recording
    rec = {"inst": np.zeros((H, W), np.int32), "labels": [], "current": 0}
    _recording = rec
    for name, fn in _WRAPPED.items():
        setattr(scenes, name, fn)
    try:
        yield rec
    finally:
        for name, fn in _ORIGINAL.items():
            setattr(scenes, name, fn)
        _recording = None


def scene_extra(seed, index):
    """The extra objects of scene (seed, index): none for one scene in four, else up to two
    cars and one to three people anywhere from mid-image to close to the camera."""
    rng = np.random.default_rng([seed, index, 2])
    extra = []
    if index % 4:
        for _ in range(int(rng.integers(0, 3))):
            extra.append(("car", float(rng.uniform(H * 0.55, H + 30)), float(rng.uniform(-10, W + 10))))
        for _ in range(int(rng.integers(1, 4))):
            extra.append(("person", float(rng.uniform(H * 0.5, H + 15)), float(rng.uniform(-5, W + 5))))
    return extra


def make_example(seed, index):
    """(uint8 HxWx3 image, float32 Nx4 boxes, int64 N labels, float32 Mx4 difficult boxes,
    int64 M difficult labels); boxes are x1, y1, x2, y2 around each object's visible pixels."""
    with instances() as rec:
        img, mask = scenes.make_scene(seed, index, scene_extra(seed, index))
    inst = rec["inst"]
    if not np.array_equal(inst > 0, np.isin(mask, [scenes.CAR, scenes.PERSON])):
        raise RuntimeError(f"instance map disagrees with the class mask in scene {seed}/{index}")
    boxes, labels, hard, hard_labels = [], [], [], []
    ids = np.unique(inst)
    for k in ids[ids > 0]:
        ys, xs = np.nonzero(inst == k)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        label = rec["labels"][k - 1]
        if (box[2] - box[0]) * (box[3] - box[1]) < MIN_BOX_AREA:
            hard.append(box)
            hard_labels.append(label)
        else:
            boxes.append(box)
            labels.append(label)
    return (img, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
            np.array(hard, np.float32).reshape(-1, 4), np.array(hard_labels, np.int64))


def generate(seed, n):
    """n scenes as one uint8 array plus concatenated boxes / labels with per-scene offsets."""
    imgs = np.empty((n, H, W, 3), np.uint8)
    boxes, labels, offsets = [], [], [0]
    dropped = 0
    for i in range(n):
        img, b, lab, hard, _ = make_example(seed, i)
        imgs[i] = img
        boxes.append(b)
        labels.append(lab)
        offsets.append(offsets[-1] + len(b))
        dropped += len(hard)
    return dict(imgs=imgs, boxes=np.concatenate(boxes), labels=np.concatenate(labels),
                offsets=np.array(offsets, np.int64), dropped=np.int64(dropped))


def to_tensor(img_u8):
    """uint8 HxWx3 -> float (3, H, W) in 0...1: what the model takes."""
    return torch.from_numpy(np.array(img_u8, np.uint8)).permute(2, 0, 1).float().div_(255.0)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

def conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TinyBackbone(nn.Module):
    """Eight 3x3 conv layers (strides 2, 4, 8, 16) and an FPN over strides 4, 8, 16 (+ 32)."""

    def __init__(self, widths=(16, 32, 64, 96), out_channels=64):
        super().__init__()
        a, b, c, d = widths
        self.stage1 = nn.Sequential(conv(3, a, 2), conv(a, a))
        self.stage2 = nn.Sequential(conv(a, b, 2), conv(b, b))
        self.stage3 = nn.Sequential(conv(b, c, 2), conv(c, c))
        self.stage4 = nn.Sequential(conv(c, d, 2), conv(d, d))
        self.fpn = FeaturePyramidNetwork([b, c, d], out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        c2 = self.stage2(self.stage1(x))
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        feats: Dict[str, Tensor] = OrderedDict()
        feats["0"] = c2
        feats["1"] = c3
        feats["2"] = c4
        return self.fpn(feats)


def build_model(args):
    backbone = TinyBackbone(out_channels=args.fpn)
    scale = args.min_size / H    # anchors in the model's resized coordinates: 8-16-32-64 px of the scene
    anchors = AnchorGenerator(sizes=tuple((int(round(8 * scale * 2 ** k)),) for k in range(4)),
                              aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=args.sampling)
    box_head = TwoMLPHead(args.fpn * 7 * 7, args.head)
    return FasterRCNN(
        backbone, num_classes=None,
        min_size=args.min_size, max_size=args.max_size, image_mean=MEAN, image_std=STD,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=args.rpn_pre, rpn_post_nms_top_n_train=args.rpn_post,
        rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_test=300,
        box_roi_pool=roi_pool, box_head=box_head, box_predictor=FastRCNNPredictor(args.head, len(LABELS)),
        box_score_thresh=0.05, box_nms_thresh=0.5, box_detections_per_img=MAX_DETECTIONS,
        box_batch_size_per_image=args.box_batch)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------

def iou_matrix(a, b):
    """IoU of every box in a (Nx4) with every box in b (Mx4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def average_precision(detections, truths, label, iou=IOU):
    """VOC-style AP of one class at IoU >= iou, all-point interpolated.

    detections: per image (boxes Nx4, scores N, labels N); truths: per image (boxes, labels,
    difficult boxes, difficult labels).  Detections are taken in descending score over all
    images; each is a hit if its best-overlapping unmatched true box of the class has
    IoU >= iou, ignored if it instead overlaps a difficult box that much, else a false
    positive.  Returns (AP, number of true boxes)."""
    entries = []   # (score, image, box)
    for i, (boxes, scores, labels) in enumerate(detections):
        for box, score in zip(boxes[labels == label], scores[labels == label]):
            entries.append((float(score), i, box))
    entries.sort(key=lambda e: -e[0])
    gts = [t[0][t[1] == label] for t in truths]
    hards = [t[2][t[3] == label] for t in truths]
    used = [np.zeros(len(g), bool) for g in gts]
    n_true = sum(len(g) for g in gts)
    tp, fp = [], []
    for _, i, box in entries:
        ious = iou_matrix(box[None], gts[i])[0]
        ious[used[i]] = -1
        j = int(ious.argmax()) if len(ious) else -1
        if j >= 0 and ious[j] >= iou:
            used[i][j] = True
            tp.append(1)
            fp.append(0)
        elif len(hards[i]) and iou_matrix(box[None], hards[i]).max() >= iou:
            continue
        else:
            tp.append(0)
            fp.append(1)
    if n_true == 0:
        return float("nan"), 0
    tp = np.cumsum(tp, dtype=np.float64)
    fp = np.cumsum(fp, dtype=np.float64)
    recall = tp / n_true
    precision = tp / np.maximum(tp + fp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for k in range(len(mpre) - 2, -1, -1):
        mpre[k] = max(mpre[k], mpre[k + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])), n_true


def detect(model, tensors, batch=16):
    """Runs an eager or scripted detector on a list of (3, H, W) tensors."""
    out = []
    with torch.no_grad():
        for s in range(0, len(tensors), batch):
            res = model(tensors[s:s + batch])
            if isinstance(res, tuple):   # scripted detectors return (losses, detections)
                res = res[1]
            out.extend(res)
    return out


def as_numpy(dets):
    return [(d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy()) for d in dets]


def evaluate(model, examples):
    dets = as_numpy(detect(model, [to_tensor(e[0]) for e in examples]))
    truths = [e[1:] for e in examples]
    per_class = {}
    for label in (1, 2):
        ap, n = average_precision(dets, truths, label)
        per_class[LABELS[label]] = {"ap50": round(ap, 4), "boxes": n,
                                    "difficult": int(sum((t[3] == label).sum() for t in truths))}
    return float(np.mean([per_class[LABELS[k]]["ap50"] for k in (1, 2)])), per_class


def detections_json(det, threshold=THRESHOLD):
    """The handler's answer: detections scoring >= threshold, highest first (ties: model order)."""
    scores = det["scores"].tolist()
    order = sorted((k for k in range(len(scores)) if scores[k] >= threshold), key=lambda k: (-scores[k], k))
    return [{LABELS[int(det["labels"][k])]: [round(float(v), 2) for v in det["boxes"][k].tolist()],
             "score": round(scores[k], 4)} for k in order[:MAX_DETECTIONS]]


def write_rows(path, rows):
    """A JSON array, one object per line."""
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(" " + json.dumps(r) for r in rows) + ("\n" if rows else "") + "]\n")


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-scenes", type=int, default=4000)
    ap.add_argument("--eval-scenes", type=int, default=300)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--fpn", type=int, default=64, help="FPN channels")
    ap.add_argument("--head", type=int, default=96, help="box head width")
    ap.add_argument("--sampling", type=int, default=2, help="RoIAlign sampling ratio")
    ap.add_argument("--box-batch", type=int, default=64, help="RoIs sampled per training image")
    ap.add_argument("--rpn-pre", type=int, default=500, help="RPN proposals per level before NMS (training)")
    ap.add_argument("--rpn-post", type=int, default=300, help="RPN proposals kept after NMS (training)")
    ap.add_argument("--min-size", type=int, default=144, help="GeneralizedRCNNTransform min_size")
    ap.add_argument("--max-size", type=int, default=192, help="GeneralizedRCNNTransform max_size")
    ap.add_argument("--max-train-minutes", type=float, default=15.0,
                    help="stop training early (and say so in metrics.json) after this long")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(TORCH_SEED)
    t_all = time.time()
    os.makedirs(BUILD_DIR, exist_ok=True)

    # ---- training data --------------------------------------------------------------
    t0 = time.time()
    cache = os.path.join(BUILD_DIR, f"train_{TRAIN_SEED}_{args.train_scenes}.npz")  # gitignored
    if os.path.exists(cache):
        with np.load(cache) as z:
            data = {k: z[k] for k in z.files}
    else:
        data = generate(TRAIN_SEED, args.train_scenes)
        np.savez(cache, **data)
    t_gen = time.time() - t0
    offsets = data["offsets"]
    dropped = int(data["dropped"])
    counts = np.bincount(data["labels"], minlength=len(LABELS))
    print(f"{args.train_scenes} training scenes ({t_gen:.0f}s): {counts[1]} cars, {counts[2]} people, "
          f"{dropped} boxes under {MIN_BOX_AREA} px^2 dropped", flush=True)
    imgs_t = torch.from_numpy(data["imgs"])
    boxes_t = torch.from_numpy(data["boxes"])
    labels_t = torch.from_numpy(data["labels"])

    t0 = time.time()
    held_out = [make_example(EVAL_SEED, i) for i in range(args.eval_scenes)]
    print(f"{args.eval_scenes} held-out scenes (seed {EVAL_SEED}) in {time.time() - t0:.0f}s", flush=True)

    # ---- training -------------------------------------------------------------------
    model = build_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"Faster R-CNN: {n_params} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(TORCH_SEED)
    model.train()
    t0 = time.time()
    cpu0 = time.process_time()
    perm = torch.randperm(args.train_scenes, generator=g)
    pos = 0
    steps_done = 0
    stopped_early = False
    running = {}
    for step in range(args.steps):
        if pos + args.batch > len(perm):
            perm = torch.randperm(args.train_scenes, generator=g)
            pos = 0
        idx = perm[pos:pos + args.batch].tolist()
        pos += args.batch
        images, targets = [], []
        flips = torch.rand(len(idx), generator=g) < 0.5
        gains = 1 + 0.3 * (torch.rand(len(idx), generator=g) - 0.5)
        shifts = 0.1 * (torch.rand(len(idx), generator=g) - 0.5)
        for k, i in enumerate(idx):
            x = imgs_t[i].permute(2, 0, 1).float().div_(255.0)
            b = boxes_t[offsets[i]:offsets[i + 1]].clone()
            if flips[k]:
                x = x.flip(-1)
                b = torch.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], 1) if len(b) else b
            x = (x * gains[k] + shifts[k]).clamp_(0, 1)
            images.append(x)
            targets.append({"boxes": b, "labels": labels_t[offsets[i]:offsets[i + 1]]})
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        steps_done += 1
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v)
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}/{args.steps}  " + "  ".join(f"{k[5:]} {v / 100:.4f}" for k, v in running.items())
                  + f"  {time.time() - t0:.0f}s", flush=True)
            running = {}
        if step + 1 < args.steps and time.time() - t0 > args.max_train_minutes * 60:
            stopped_early = True
            print(f"stopped after {steps_done} steps: --max-train-minutes {args.max_train_minutes}", flush=True)
            break
    t_train = time.time() - t0
    cpu_train = time.process_time() - cpu0
    print(f"trained {steps_done} steps in {t_train:.0f}s wall, {cpu_train:.0f}s CPU", flush=True)
    del imgs_t, boxes_t, labels_t, data

    # ---- export ---------------------------------------------------------------------
    model.eval()
    scripted = torch.jit.script(model)
    pt_path = os.path.join(BUILD_DIR, "detector.pt")
    scripted.save(pt_path)
    loaded = torch.jit.load(pt_path)
    check = [to_tensor(e[0]) for e in held_out[:16]]
    eager_dets = detect(model, check)
    script_dets = detect(loaded, check)
    max_diff = 0.0
    for e, s in zip(eager_dets, script_dets):
        if not torch.equal(e["labels"], s["labels"]) or e["boxes"].shape != s["boxes"].shape:
            sys.exit("scripted detections differ from the eager ones")
        if len(e["boxes"]):
            max_diff = max(max_diff, float((e["boxes"] - s["boxes"]).abs().max()),
                           float((e["scores"] - s["scores"]).abs().max()))
    print(f"scripted vs eager on {len(check)} held-out scenes: same labels and counts, "
          f"max |diff| of boxes and scores {max_diff:.3g}", flush=True)
    if max_diff > 1e-4:
        sys.exit("scripted detections differ from the eager ones")
    graph = str(loaded.graph)
    print("scripted graph inputs: " + " ".join(graph[:graph.index("):") + 2].split()), flush=True)
    with torch.no_grad():
        out = loaded([torch.rand(3, H, W, generator=g), torch.rand(3, 80, 100, generator=g)])
    print(f"scripted output on [3x{H}x{W}, 3x80x100]: {type(out).__name__}({type(out[0]).__name__} "
          f"{sorted(out[0])}, {type(out[1]).__name__} of {len(out[1])} "
          + ", ".join(f"{type(d).__name__} {{{', '.join(f'{k}: {tuple(v.shape)} {v.dtype}' for k, v in d.items())}}}"
                      for d in out[1]) + ")", flush=True)

    # ---- held-out evaluation --------------------------------------------------------
    t0 = time.time()
    mean_ap, per_class = evaluate(loaded, held_out)
    t_eval = time.time() - t0
    print(f"held-out ({args.eval_scenes} scenes, seed {EVAL_SEED}) in {t_eval:.0f}s: mAP@{IOU} {mean_ap:.4f}  "
          + "  ".join(f"{k} AP {v['ap50']:.4f} ({v['boxes']} boxes)" for k, v in per_class.items()), flush=True)

    # ---- committed samples ----------------------------------------------------------
    os.makedirs(SAMPLES_DIR, exist_ok=True)
    os.makedirs(EXPECTED_DIR, exist_ok=True)
    samples = []
    i = 0
    while len(samples) < SAMPLE_COUNT:
        img, boxes, labels, _, _ = make_example(SAMPLE_SEED, i)
        i += 1
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        if not all(((labels == k) & (areas >= SAMPLE_MIN_AREA)).any() for k in (1, 2)):
            continue
        n = len(samples) + 1
        path = os.path.join(SAMPLES_DIR, f"street_{n}.png")
        Image.fromarray(img).save(path, optimize=True)
        with Image.open(path) as im:
            decoded = np.asarray(im.convert("RGB"))
        if not np.array_equal(decoded, img):
            sys.exit(f"{path} does not decode to the scene")
        det = detect(loaded, [to_tensor(decoded)])[0]
        rows = detections_json(det)
        truth = [{LABELS[int(lab)]: [round(float(v), 2) for v in box]} for box, lab in zip(boxes, labels)]
        expected = os.path.join(EXPECTED_DIR, f"detector_street_{n}.json")
        truth_path = os.path.join(EXPECTED_DIR, f"detector_street_{n}_truth.json")
        write_rows(expected, rows)
        write_rows(truth_path, truth)
        entry = {"file": os.path.relpath(path, REPO), "scene": [SAMPLE_SEED, i - 1], "bytes": os.path.getsize(path),
                 "expected": os.path.relpath(expected, REPO), "truth": os.path.relpath(truth_path, REPO),
                 "true_boxes": len(truth), "detections_at_threshold": len(rows)}
        print(f"  sample {entry}", flush=True)
        samples.append(entry)

    with open(os.path.join(BUILD_DIR, "index_to_name.json"), "w") as f:
        json.dump({str(i): n for i, n in enumerate(LABELS)}, f, indent=2)
        f.write("\n")
    with open(os.path.join(BUILD_DIR, "model-config.yaml"), "w") as f:
        f.write(f"""minWorkers: 1
maxWorkers: 1
batchSize: 1
maxBatchDelay: 10
responseTimeout: 120
handler:
  kind: object_detector
  threshold: {THRESHOLD}
  maxDetections: {MAX_DETECTIONS}
  labels: index_to_name.json
""")
    metrics = {
        "model": "detector",
        "labels": LABELS,
        "architecture": "torchvision FasterRCNN, TinyBackbone (8 conv, widths 16-32-64-96) + FPN "
                        f"{args.fpn}, anchors 8/16/32/64 x (0.5, 1, 2), RoIAlign 7x7, box head {args.head}",
        "input": "List[Tensor (3, H, W)] 0...1; model transform: ImageNet mean/std, "
                 f"min_size {args.min_size}, max_size {args.max_size}",
        "heldout": {
            "seed": EVAL_SEED, "scenes": args.eval_scenes, "iou": IOU,
            "metric": "VOC-style AP (all-point interpolation) through the scripted model; boxes under "
                      f"{MIN_BOX_AREA} px^2 are difficult (ignored)",
            "map50": round(mean_ap, 4), "per_class": per_class, "seconds": round(t_eval, 1),
        },
        "samples": samples, "sample_threshold": THRESHOLD,
        "parameters": n_params,
        "torchscript_bytes": os.path.getsize(pt_path),
        "scripted_vs_eager_max_abs_diff": max_diff,
        "training": {
            "seed": TRAIN_SEED, "scenes": args.train_scenes, "boxes": {"car": int(counts[1]), "person": int(counts[2])},
            "steps": args.steps, "steps_done": steps_done, "stopped_early": stopped_early,
            "batch": args.batch, "optimizer": "AdamW + OneCycle", "max_lr": args.lr, "threads": args.threads,
            "min_box_area": MIN_BOX_AREA, "dropped_boxes": dropped,
            "generation_seconds": round(t_gen, 1), "training_seconds": round(t_train, 1),
            "training_cpu_seconds": round(cpu_train, 1),
        },
        "sample_seed": SAMPLE_SEED, "torch_seed": TORCH_SEED,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "total_seconds": round(time.time() - t_all, 1),
    }
    with open(os.path.join(BUILD_DIR, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics, indent=2))
    if not mean_ap >= MIN_MAP:
        sys.exit(f"held-out mAP@{IOU} {mean_ap:.4f} is below {MIN_MAP}")


if __name__ == "__main__":
    main()
