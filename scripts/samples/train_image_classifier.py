#!/usr/bin/python3
"""Train the sample image classifier (`scenes.mar`): which object dominates a street scene.

Run with Debian's interpreter (python3-torch 1.13, CPU):

    /usr/bin/python3 scripts/samples/train_image_classifier.py

What it does, all deterministic from the seeds below:

1. Draws street scenes with the generator of train_unet.py (imported, not copied), at
   96x128.  A quarter are plain scenes; the others get one to four extra cars, people or
   trees close to the camera (make_scene's `extra`), so that every label is common.
   The label of a scene is the class with the most pixels in its ground-truth mask among
   the four foreground classes LABELS (building, car, person, vegetation); sky, road,
   sidewalk and road markings do not count.  Training data lives in memory only.
2. Trains a small CNN (five conv blocks with BatchNorm, global average pooling, linear;
   135 k parameters) on CPU, one thread, input 48x64: the server's pre-processing is the
   image_classifier handler's Resize(48) (shorter side, bilinear, antialiased) +
   CenterCrop((48, 64)) + ToTensor + Normalize(ImageNet mean/std), which for a 96x128
   scene is a plain 2x downscale.  The generated training set is cached (downscaled) in
   scripts/samples/build/scenes/ so that a second run skips generation.
3. Evaluates top-1 accuracy on held-out scenes (another seed) through that pipeline from
   PNG files, and on plain held-out scenes (no extra objects) for information.
4. Exports TorchScript (torch.jit.trace) plus model-config.yaml, index_to_name.json and
   metrics.json into scripts/samples/build/scenes/.
5. Writes committed samples model_store/samples/dominant_<label>.png: for each label the
   first scene of SAMPLE_SEED whose dominant class is that label and leads the runner-up
   by at least SAMPLE_MARGIN x (chosen by content only, never by the model's answer).
   Exits non-zero if held-out top-1 accuracy is below MIN_ACCURACY.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_unet as scenes  # noqa: E402  (the scene generator)

H, W = scenes.H, scenes.W            # generated scene size
IH, IW = H // 2, W // 2              # model input: 48x64
LABEL_CLASSES = [scenes.BUILDING, scenes.CAR, scenes.PERSON, scenes.VEG]
LABELS = [scenes.CLASSES[c] for c in LABEL_CLASSES]   # building, car, person, vegetation
EXTRA_KIND = {"car": "car", "person": "person", "vegetation": "tree"}
MEAN, STD = scenes.MEAN, scenes.STD

TRAIN_SEED = 11000
EVAL_SEED = 12000
SAMPLE_SEED = 13000
TORCH_SEED = 0
SAMPLE_MARGIN = 1.5
MIN_ACCURACY = 0.85

REPO = scenes.REPO
BUILD_DIR = os.path.join(REPO, "scripts", "samples", "build", "scenes")
SAMPLES_DIR = scenes.SAMPLES_DIR


def make_example(seed, index):
    """(uint8 HxWx3 image, uint8 HxW class map, label index, pixel counts per label)."""
    rng = np.random.default_rng([seed, index, 1])
    target = ["none", "car", "person", "vegetation"][index % 4]
    extra = []
    if target == "person":    # people are thin: more of them, closer
        for _ in range(int(rng.integers(2, 5))):
            extra.append(("person", float(rng.uniform(H + 10, H + 70)), float(rng.uniform(-5, W + 5))))
    elif target != "none":
        for _ in range(int(rng.integers(1, 4))):
            extra.append((EXTRA_KIND[target], float(rng.uniform(H * 0.8, H + 40)), float(rng.uniform(-5, W + 5))))
    img, mask = scenes.make_scene(seed, index, extra)
    counts = np.bincount(mask.ravel(), minlength=len(scenes.CLASSES))[LABEL_CLASSES]
    return img, mask, int(counts.argmax()), counts


def make_plain(seed, index):
    """A scene exactly as unet.mar's generator draws it, with its label."""
    img, mask = scenes.make_scene(seed, index)
    counts = np.bincount(mask.ravel(), minlength=len(scenes.CLASSES))[LABEL_CLASSES]
    return img, mask, int(counts.argmax()), counts


def downscale(img):
    """What the served pipeline does to a 96x128 image: Resize(48) + CenterCrop((48, 64))."""
    return np.asarray(PIPELINE_RESIZE(Image.fromarray(img)))


PIPELINE_RESIZE = transforms.Compose([transforms.Resize(IH), transforms.CenterCrop((IH, IW))])
PIPELINE = transforms.Compose([
    transforms.Resize(IH),
    transforms.CenterCrop((IH, IW)),
    transforms.ToTensor(),
    transforms.Normalize(mean=MEAN, std=STD),
])
MEAN_T = torch.tensor(MEAN).view(1, 3, 1, 1)
STD_T = torch.tensor(STD).view(1, 3, 1, 1)


def to_input(imgs_u8):
    x = imgs_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - MEAN_T) / STD_T


def conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SceneNet(nn.Module):
    def __init__(self, classes, widths=(16, 32, 64, 128)):
        super().__init__()
        a, b, c, d = widths
        self.features = nn.Sequential(
            conv(3, a), nn.MaxPool2d(2),          # 24x32
            conv(a, b), nn.MaxPool2d(2),          # 12x16
            conv(b, c), conv(c, c), nn.MaxPool2d(2),   # 6x8
            conv(c, d))
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(d, classes)

    def forward(self, x):
        x = self.features(x).mean(dim=(2, 3))
        return self.fc(self.drop(x))


def generate(maker, seed, n):
    imgs = np.empty((n, IH, IW, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        img, _, label, _ = maker(seed, i)
        imgs[i] = downscale(img)
        labels[i] = label
    return imgs, labels


def evaluate_files(model, maker, seed, n, tmp):
    """Top-1 accuracy and confusion (truth x predicted) through PNG files and PIPELINE."""
    conf = np.zeros((len(LABELS), len(LABELS)), np.int64)
    with torch.no_grad():
        for s in range(0, n, 64):
            xs, ys = [], []
            for i in range(s, min(n, s + 64)):
                img, _, label, _ = maker(seed, i)
                p = os.path.join(tmp, "eval.png")
                Image.fromarray(img).save(p)
                with Image.open(p) as im:
                    xs.append(PIPELINE(im.convert("RGB")))
                ys.append(label)
            pred = model(torch.stack(xs)).argmax(1).numpy()
            for t, q in zip(ys, pred):
                conf[t, q] += 1
    return float(np.trace(conf) / conf.sum()), conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-scenes", type=int, default=8000)
    ap.add_argument("--eval-scenes", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tmp", default="/tmp/scenes-samples")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(TORCH_SEED)
    t_all = time.time()
    os.makedirs(args.tmp, exist_ok=True)

    t0 = time.time()
    cache = os.path.join(BUILD_DIR, f"train_{TRAIN_SEED}_{args.train_scenes}.npz")  # gitignored
    if os.path.exists(cache):
        with np.load(cache) as z:
            imgs, labels = z["imgs"], z["labels"]
    else:
        imgs, labels = generate(make_example, TRAIN_SEED, args.train_scenes)
        os.makedirs(BUILD_DIR, exist_ok=True)
        np.savez(cache, imgs=imgs, labels=labels)
    t_gen = time.time() - t0
    freq = np.bincount(labels, minlength=len(LABELS)) / len(labels)
    print(f"generated {args.train_scenes} training scenes in {t_gen:.1f}s; labels "
          + ", ".join(f"{n} {f:.1%}" for n, f in zip(LABELS, freq)), flush=True)
    imgs_t = torch.from_numpy(imgs)
    labels_t = torch.from_numpy(labels)

    model = SceneNet(len(LABELS))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"SceneNet: {n_params} parameters", flush=True)
    cw = torch.tensor(np.clip(freq, 1e-3, None) ** -0.5, dtype=torch.float32)
    cw = cw / (cw * torch.tensor(freq, dtype=torch.float32)).sum()
    steps_per_epoch = args.train_scenes // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.2)
    g = torch.Generator().manual_seed(TORCH_SEED)

    model.train()
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(imgs_t), generator=g)
        run_loss = correct = seen = 0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            x = to_input(imgs_t[idx])
            y = labels_t[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
            # mild photometric jitter: brightness and contrast per image
            gain = 1 + 0.15 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            x = x * gain + 0.15 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=cw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += loss.item()
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}  loss {run_loss / steps_per_epoch:.4f}  "
              f"train acc {correct / seen:.4f}  {time.time() - t0:.0f}s", flush=True)
    t_train = time.time() - t0
    del imgs_t, labels_t, imgs

    # ---- export -------------------------------------------------------------------
    model.eval()
    traced = torch.jit.trace(model, torch.zeros(1, 3, IH, IW))
    os.makedirs(BUILD_DIR, exist_ok=True)
    pt_path = os.path.join(BUILD_DIR, "scenes.pt")
    traced.save(pt_path)
    loaded = torch.jit.load(pt_path)
    check = torch.randn(8, 3, IH, IW, generator=g)
    with torch.no_grad():
        max_diff = float((model(check) - loaded(check)).abs().max())
    print(f"traced vs eager: max |diff| {max_diff:.3g}", flush=True)
    if max_diff > 1e-4:
        sys.exit("traced module differs from the eager model")

    # ---- held-out evaluation through the real pipeline ------------------------------
    t0 = time.time()
    acc, conf = evaluate_files(loaded, make_example, EVAL_SEED, args.eval_scenes, args.tmp)
    plain_acc, plain_conf = evaluate_files(loaded, make_plain, EVAL_SEED, args.eval_scenes // 2, args.tmp)
    print(f"held-out ({args.eval_scenes} scenes, seed {EVAL_SEED}) in {time.time() - t0:.0f}s: "
          f"top-1 accuracy {acc:.4f}; plain scenes without extra objects ({args.eval_scenes // 2}): "
          f"{plain_acc:.4f}", flush=True)
    per_class = {}
    for k, name in enumerate(LABELS):
        n = int(conf[k].sum())
        per_class[name] = {"scenes": n, "recall": round(float(conf[k, k] / n), 4) if n else None}
        print(f"  {name:<10} {n:4d} scenes  recall {per_class[name]['recall']}  predicted as "
              + ", ".join(f"{LABELS[j]} {conf[k, j]}" for j in range(len(LABELS))))
    majority = float(conf.sum(1).max() / conf.sum())

    # ---- committed samples ----------------------------------------------------------
    os.makedirs(SAMPLES_DIR, exist_ok=True)
    samples = []
    for k, name in enumerate(LABELS):
        i = 0
        while True:
            img, _, label, counts = make_example(SAMPLE_SEED, i)
            i += 1
            runner_up = np.sort(counts)[-2]
            if label == k and counts[k] >= SAMPLE_MARGIN * max(runner_up, 1):
                break
        path = os.path.join(SAMPLES_DIR, f"dominant_{name}.png")
        Image.fromarray(img).save(path, optimize=True)
        with Image.open(path) as im, torch.no_grad():
            probs = F.softmax(loaded(PIPELINE(im.convert("RGB"))[None]), 1)[0]
        entry = {"file": os.path.relpath(path, REPO), "scene": [SAMPLE_SEED, i - 1], "label": name,
                 "pixels": {LABELS[j]: int(c) for j, c in enumerate(counts)},
                 "predicted": LABELS[int(probs.argmax())], "probability": round(float(probs.max()), 4),
                 "bytes": os.path.getsize(path)}
        print(f"  sample {entry}")
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
  kind: image_classifier
  resizeShorter: {IH}
  cropSize: [{IH}, {IW}]
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  topk: {len(LABELS)}
  labels: index_to_name.json
""")
    metrics = {
        "model": "scenes",
        "labels": LABELS,
        "label_rule": "class with the most pixels in the ground-truth mask among " + ", ".join(LABELS),
        "input": [1, 3, IH, IW],
        "heldout": {
            "seed": EVAL_SEED, "scenes": args.eval_scenes,
            "pipeline": f"PNG -> PIL -> Resize({IH}) -> CenterCrop(({IH}, {IW})) -> ToTensor -> Normalize "
                        "-> traced model -> argmax",
            "top1_accuracy": round(acc, 4), "majority_class_rate": round(majority, 4),
            "per_class": per_class, "confusion_truth_by_predicted": conf.tolist(),
            "plain_scenes": args.eval_scenes // 2, "plain_top1_accuracy": round(plain_acc, 4),
            "plain_label_counts": {n: int(c) for n, c in zip(LABELS, plain_conf.sum(1))},
        },
        "samples": samples,
        "parameters": n_params,
        "torchscript_bytes": os.path.getsize(pt_path),
        "training": {
            "seed": TRAIN_SEED, "scenes": args.train_scenes, "epochs": args.epochs, "batch": args.batch,
            "optimizer": "AdamW + OneCycle", "max_lr": args.lr, "threads": args.threads,
            "label_frequency": {n: round(float(f), 4) for n, f in zip(LABELS, freq)},
            "class_weights": [round(v, 3) for v in cw.tolist()],
            "generation_seconds": round(t_gen, 1), "training_seconds": round(t_train, 1),
        },
        "sample_seed": SAMPLE_SEED, "sample_margin": SAMPLE_MARGIN, "torch_seed": TORCH_SEED,
        "traced_vs_eager_max_abs_diff": max_diff,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "total_seconds": round(time.time() - t_all, 1),
    }
    with open(os.path.join(BUILD_DIR, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics, indent=2))
    if acc < MIN_ACCURACY:
        sys.exit(f"held-out top-1 accuracy {acc:.4f} is below {MIN_ACCURACY}")


if __name__ == "__main__":
    main()
