#!/usr/bin/python3
"""Train the sample U-Net segmenter (`unet.mar`) on synthetic street scenes.

Run with Debian's interpreter (python3-torch 1.13, CPU):

    /usr/bin/python3 scripts/samples/train_unet.py

What it does, all deterministic from the seeds below:

1. Generates street-like scenes procedurally at 96x128 (height x width) RGB with a
   per-pixel class map.  Classes (see CLASSES):
       0 sky          gradient (clear / overcast / sunset / dusk) with clouds
       1 building     far facades and side facades in perspective, windows, doors
       2 road         asphalt trapezoid to a vanishing point, patches and shadows
       3 sidewalk     paving with perspective joints, kerb
       4 car          body, cabin, windows, wheels, lights; any colour incl. grey
       5 person       head, torso, arms, legs; on the sidewalk or crossing
       6 vegetation   trees (canopy + trunk), hedges, grass verges
       7 marking      dashed centre line, edge lines, zebra crossings
   Colours, textures (noise, stripes, windows, tiles), lighting, tint, shadows,
   horizon height, vanishing point, object counts, sizes and occlusion vary; sensor
   noise, blur and JPEG artefacts are added to the image only.
   Training data lives in memory only.
2. Trains a small U-Net (five levels, widths 16-24-48-96-128, BatchNorm, skip connections,
   ~0.83 M parameters) on CPU with 2 threads, AdamW + one-cycle, batch 8, horizontal flips,
   cross-entropy weighted by class frequency ** -0.25 and x3 on pixels next to a class
   boundary.  Input normalisation is the reference deployment's: ToTensor() then
   Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).
3. Evaluates on held-out scenes (another seed) through the real inference pipeline:
   PNG file -> PIL -> Resize((96, 128)) -> ToTensor -> Normalize -> forward -> argmax.
4. Exports TorchScript (torch.jit.trace) plus model-config.yaml, index_to_name.json
   and metrics.json into scripts/samples/build/unet/.
5. Writes committed samples model_store/samples/scene_<k>.png, scene_<k>.mask.png
   (8-bit gray, value = class id) and scene_0.jpg: the first scenes of SAMPLE_SEED that
   show a car and a person, chosen by content only (never by how the model scores on
   them).  Exits non-zero if held-out pixel accuracy is below 95 %.
"""

import argparse
import io
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

H, W = 96, 128
CLASSES = ["sky", "building", "road", "sidewalk", "car", "person", "vegetation", "marking"]
SKY, BUILDING, ROAD, SIDEWALK, CAR, PERSON, VEG, MARKING = range(len(CLASSES))
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

TRAIN_SEED = 1000
EVAL_SEED = 2000
SAMPLE_SEED = 3000
TORCH_SEED = 0

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.path.join(REPO, "scripts", "samples", "build", "unet")
SAMPLES_DIR = os.path.join(REPO, "model_store", "samples")

YY, XX = np.mgrid[0:H, 0:W].astype(np.float32)
# A fixed bank of unit Gaussian noise; scenes take random windows of it (much faster than
# drawing fresh normals for every texture, and just as deterministic).
_BANK = np.random.default_rng(12345).standard_normal((2 * H, 2 * W, 3)).astype(np.float32)


def grain(rng, sigma, channels=1):
    """HxWxchannels Gaussian grain with standard deviation sigma."""
    y = int(rng.integers(0, H))
    x = int(rng.integers(0, W))
    c = int(rng.integers(0, 4 - channels))
    return _BANK[y:y + H, x:x + W, c:c + channels] * np.float32(sigma)


# --------------------------------------------------------------------------------------
# Scene generator
# --------------------------------------------------------------------------------------

def smooth_noise(rng, gh, gw):
    """Low-frequency noise in [0, 1]: a random gh x gw grid bilinearly upsampled."""
    g = rng.random((gh + 1, gw + 1)).astype(np.float32)
    ys = np.linspace(0, gh, H, dtype=np.float32)
    xs = np.linspace(0, gw, W, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), gh - 1)
    x0 = np.minimum(xs.astype(int), gw - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    a = g[y0][:, x0]
    b = g[y0][:, x0 + 1]
    c = g[y0 + 1][:, x0]
    d = g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def jitter(rng, color, amount):
    return np.clip(np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def paint(img, mask, region, color, cls=None):
    """Paint region (bool HxW) with color (3,) or an HxWx3 array; set class if given."""
    if cls is not None:
        mask[region] = cls
    if np.ndim(color) == 1:
        img[region] = color
    else:
        img[region] = color[region]


def textured(rng, base, amp_fine, amp_coarse, grid=(6, 8)):
    """HxWx3 colour field: base colour with coarse blotches and fine grain."""
    base = np.asarray(base, np.float32)
    coarse = (smooth_noise(rng, *grid) - 0.5)[..., None] * amp_coarse
    fine = grain(rng, amp_fine)
    return base[None, None, :] + coarse + fine


def line_x(x0, y0, x1, y1, y):
    """x on the line through (x0, y0), (x1, y1) at row y."""
    return x0 + (x1 - x0) * (y - y0) / (y1 - y0)


def draw_sky(rng, img, mask, horizon):
    kind = rng.choice(["clear", "overcast", "sunset", "dusk", "hazy"], p=[0.35, 0.25, 0.15, 0.1, 0.15])
    if kind == "clear":
        top, bot = jitter(rng, (55, 115, 200), 30), jitter(rng, (165, 200, 235), 25)
    elif kind == "overcast":
        g = rng.uniform(150, 215)
        top, bot = jitter(rng, (g - 10, g - 5, g), 10), jitter(rng, (g + 15, g + 15, g + 18), 10)
    elif kind == "sunset":
        top, bot = jitter(rng, (80, 90, 160), 25), jitter(rng, (240, 160, 90), 25)
    elif kind == "dusk":
        top, bot = jitter(rng, (25, 35, 75), 15), jitter(rng, (110, 90, 120), 25)
    else:
        top, bot = jitter(rng, (150, 175, 200), 20), jitter(rng, (215, 215, 210), 15)
    t = np.clip(YY / max(horizon, 1), 0, 1)[..., None]
    sky = top * (1 - t) + bot * t
    # clouds
    if rng.random() < 0.7:
        n = smooth_noise(rng, int(rng.integers(2, 5)), int(rng.integers(3, 9)))
        thr = rng.uniform(0.45, 0.75)
        cl = np.clip((n - thr) / (1 - thr), 0, 1)[..., None] * rng.uniform(0.4, 1.0)
        cloud_col = jitter(rng, (235, 235, 240), 20) if kind != "dusk" else jitter(rng, (90, 80, 100), 20)
        sky = sky * (1 - cl) + cloud_col * cl
    sky = sky + grain(rng, 1.5)
    region = YY < horizon
    paint(img, mask, region, sky, SKY)
    return kind


BUILDING_COLORS = [(150, 75, 60), (185, 160, 130), (120, 120, 125), (200, 195, 185),
                   (90, 95, 110), (170, 140, 100), (215, 210, 200), (110, 80, 70),
                   (150, 165, 175), (225, 200, 160), (95, 120, 110), (60, 60, 65)]


def window_pattern(rng, u, v, nu, nv, fill_u, fill_v):
    """Boolean windows from facade coordinates u, v in [0, 1]."""
    fu = (u * nu) % 1.0
    fv = (v * nv) % 1.0
    return (np.abs(fu - 0.5) < fill_u / 2) & (np.abs(fv - 0.5) < fill_v / 2)


def building_texture(rng, region, u, v, img, mask, dark):
    col = jitter(rng, BUILDING_COLORS[rng.integers(len(BUILDING_COLORS))], 25)
    tex = textured(rng, col, rng.uniform(2, 9), rng.uniform(10, 40))
    style = rng.random()
    if style < 0.3:  # horizontal bands (floors / brick courses)
        period = rng.uniform(0.03, 0.12)
        tex = tex - ((v % period) < period * 0.2)[..., None] * rng.uniform(10, 35)
    elif style < 0.45:  # vertical panels
        period = rng.uniform(0.05, 0.2)
        tex = tex - ((u % period) < period * 0.15)[..., None] * rng.uniform(10, 35)
    paint(img, mask, region, tex, BUILDING)
    if rng.random() < 0.9:
        nu = rng.uniform(2, 9)
        nv = rng.uniform(3, 12)
        win = window_pattern(rng, u, v, nu, nv, rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
        win &= region & (v < rng.uniform(0.75, 0.95))
        if rng.random() < 0.5 or dark:
            wcol = jitter(rng, (40, 50, 65), 20)
        else:
            wcol = jitter(rng, (150, 180, 200), 40)
        wtex = wcol + grain(rng, 6)
        if dark and rng.random() < 0.7:  # some lit windows
            lit = smooth_noise(rng, 4, 8) > 0.6
            wtex = np.where(lit[..., None], jitter(rng, (235, 200, 120), 20), wtex)
        paint(img, mask, win, wtex)
    # door at the bottom
    if rng.random() < 0.4:
        du = rng.uniform(0.1, 0.8)
        door = region & (np.abs(u - du) < rng.uniform(0.03, 0.08)) & (v > 0.85)
        paint(img, mask, door, jitter(rng, (60, 45, 35), 25))


def draw_buildings(rng, img, mask, horizon, vp_x, dark):
    # far row of rectangular facades along the horizon
    x = -rng.uniform(0, 20)
    bottom = horizon + rng.uniform(0, 3)
    while x < W:
        bw = rng.uniform(14, 45)
        if rng.random() < 0.15:  # gap
            x += bw * 0.6
            continue
        top = rng.uniform(max(-5, horizon - 45), horizon - 6)
        region = (XX >= x) & (XX < x + bw) & (YY >= top) & (YY < bottom)
        u = (XX - x) / bw
        v = (YY - top) / max(bottom - top, 1)
        building_texture(rng, region, u, v, img, mask, dark)
        x += bw
    # side facades in perspective
    for side in (-1, 1):
        if rng.random() < 0.65:
            edge_x = 0.0 if side < 0 else W - 1.0
            y_bot = horizon + rng.uniform(8, 40)           # facade foot at the image edge
            y_top = rng.uniform(-40, horizon - 12)          # facade top at the image edge
            end_x = line_x(edge_x, 0, vp_x, 1, rng.uniform(0.45, 0.9))  # stop before vp
            top_y = line_x(y_top, edge_x, horizon, vp_x, XX)
            bot_y = line_x(y_bot, edge_x, horizon, vp_x, XX)
            if side < 0:
                inside = (XX < end_x)
                u = XX / max(end_x, 1)
            else:
                inside = (XX > end_x)
                u = (W - 1 - XX) / max(W - 1 - end_x, 1)
            region = inside & (YY >= top_y) & (YY < bot_y)
            v = (YY - top_y) / np.maximum(bot_y - top_y, 1)
            # perspective-compressed horizontal coordinate: more windows towards vp
            up = np.log1p(4 * np.clip(u, 0, 1)) / np.log(5)
            building_texture(rng, region, up, v, img, mask, dark)


def draw_ground(rng, img, mask, horizon, vp_x):
    """Road trapezoid, sidewalks either side, optional grass verges. Returns geometry."""
    depth = np.clip((YY - horizon) / (H - horizon), 0, 1)
    ground = YY >= horizon
    # road edges: lines through the vanishing point
    half_top = rng.uniform(0.5, 4)
    xl_bot = rng.uniform(-70, 35)
    xr_bot = rng.uniform(95, 200)
    if xr_bot - xl_bot < 70:
        xr_bot = xl_bot + 70
    xl = line_x(vp_x - half_top, horizon, xl_bot, H, YY)
    xr = line_x(vp_x + half_top, horizon, xr_bot, H, YY)
    road = ground & (XX >= xl) & (XX < xr)
    # sidewalk, then sometimes grass beyond it
    # asphalt brightness first: paving is always noticeably lighter than the road
    g = rng.uniform(55, 125)
    sw_level = min(g + rng.uniform(35, 90), 215)
    hue = np.array([(0, 0, 2), (14, 8, -8), (18, -4, -8), (-4, 0, 6)][rng.integers(4)], np.float32)
    sw_col = jitter(rng, sw_level + hue, 10)
    sw = textured(rng, sw_col, rng.uniform(2, 6), rng.uniform(8, 25))
    # perspective paving joints: rows spaced ~ by depth, and columns through vp
    if rng.random() < 0.8:
        rows = (np.log(np.maximum(YY - horizon, 0.5)) * rng.uniform(4, 9)) % 1.0 < 0.18
        cols = ((XX - vp_x) / np.maximum(YY - horizon, 0.5) * rng.uniform(1.2, 3)) % 1.0 < 0.12
        joints = (rows | cols) & (YY - horizon > 6)  # only where they are resolvable
        sw = sw - joints[..., None] * rng.uniform(8, 25)
    paint(img, mask, ground & ~road, sw, SIDEWALK)
    for side in (-1, 1):
        if rng.random() < 0.35:
            off = rng.uniform(25, 90)
            if side < 0:
                gx = line_x(vp_x - half_top - 2, horizon, xl_bot - off, H, YY)
                grass = ground & (XX < gx)
            else:
                gx = line_x(vp_x + half_top + 2, horizon, xr_bot + off, H, YY)
                grass = ground & (XX >= gx)
            gcol = jitter(rng, (70, 120, 50), 30)
            gt = textured(rng, gcol, rng.uniform(5, 12), rng.uniform(15, 40), grid=(10, 14))
            paint(img, mask, grass, gt, VEG)
    # kerb: thin light band along the road edges (still sidewalk)
    kerb_w = 0.5 + 2.0 * depth
    kerb_col = jitter(rng, (200, 200, 195), 25)
    kerb = ground & ~road & (((XX < xl) & (XX >= xl - kerb_w)) | ((XX >= xr) & (XX < xr + kerb_w)))
    kerb &= (mask == SIDEWALK)
    paint(img, mask, kerb, kerb_col)
    # asphalt
    rcol = jitter(rng, (g, g, g + 3), 8)
    rt = textured(rng, rcol, rng.uniform(3, 10), rng.uniform(10, 35), grid=(8, 10))
    if rng.random() < 0.5:  # patches / cracks
        patch = smooth_noise(rng, 8, 10) > rng.uniform(0.6, 0.8)
        rt = rt + patch[..., None] * rng.uniform(-30, 25)
    if rng.random() < 0.25:  # wet road: brighter towards horizon
        rt = rt + ((1 - depth) ** 3)[..., None] * rng.uniform(20, 60)
    paint(img, mask, road, rt, ROAD)
    # markings
    mcol = jitter(rng, (235, 235, 230), 15) if rng.random() < 0.75 else jitter(rng, (230, 195, 60), 20)
    worn = smooth_noise(rng, 10, 14)
    marks = np.zeros((H, W), bool)
    if rng.random() < 0.85:  # dashed centre line
        c_frac = rng.uniform(0.35, 0.65)
        cx = xl + (xr - xl) * c_frac
        lw = 0.4 + rng.uniform(1.5, 3.5) * depth
        dash = (np.log(np.maximum(YY - horizon, 0.5)) * rng.uniform(3, 7) + rng.random()) % 1.0
        solid = rng.random() < 0.25
        marks |= road & (np.abs(XX - cx) < lw) & ((dash < rng.uniform(0.4, 0.6)) | solid)
    if rng.random() < 0.5:  # edge lines
        lw = 0.4 + rng.uniform(1.0, 2.5) * depth
        ins = rng.uniform(2, 8) * depth + 1
        marks |= road & (((XX - xl) > ins) & ((XX - xl) < ins + lw) | ((xr - XX) > ins) & ((xr - XX) < ins + lw))
    if rng.random() < 0.3:  # zebra crossing
        y0 = rng.uniform(horizon + 8, H - 8)
        h = 2 + (y0 - horizon) / (H - horizon) * rng.uniform(6, 16)
        period = 0.3 + rng.uniform(0.6, 1.2) * (y0 - horizon) / (H - horizon) * 6
        stripes = ((XX - vp_x) / (period * 2)) % 1.0 < 0.5
        marks |= road & (YY >= y0) & (YY < y0 + h) & stripes
    marks &= worn > rng.uniform(0.0, 0.25)
    mt = mcol + grain(rng, 6)
    paint(img, mask, marks, mt, MARKING)
    return dict(xl=xl, xr=xr, xl_bot=xl_bot, xr_bot=xr_bot, half_top=half_top)


def ellipse(cx, cy, rx, ry):
    return ((XX - cx) / max(rx, 0.5)) ** 2 + ((YY - cy) / max(ry, 0.5)) ** 2 <= 1.0


def rect(x0, y0, x1, y1):
    return (XX >= x0) & (XX < x1) & (YY >= y0) & (YY < y1)


CAR_COLORS = [(200, 30, 30), (30, 60, 160), (230, 230, 230), (20, 20, 25), (120, 120, 125),
              (170, 170, 175), (90, 90, 95), (30, 110, 60), (230, 200, 40), (140, 30, 40),
              (60, 130, 190), (200, 110, 40), (80, 60, 50)]


def draw_car(rng, img, mask, cx, yb, scale, view):
    """Car with bottom at row yb centred at cx. view: 'rear' (seen from behind) or 'side'."""
    if view == "side":
        w = scale * rng.uniform(55, 80)
        h = w * rng.uniform(0.32, 0.42)
    else:
        w = scale * rng.uniform(34, 46)
        h = w * rng.uniform(0.65, 0.85)
    x0, x1 = cx - w / 2, cx + w / 2
    y_top = yb - h
    body_top = yb - h * rng.uniform(0.45, 0.6)
    col = jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 20)
    body_tex = col + (smooth_noise(rng, 3, 4) - 0.5)[..., None] * 20 + grain(rng, 3)
    # vertical shading on the body
    shade = np.clip((YY - y_top) / max(h, 1), 0, 1)[..., None]
    body_tex = body_tex * (1.1 - 0.35 * shade)
    region = np.zeros((H, W), bool)
    wheel_h = h * 0.18
    body = rect(x0, body_top, x1, yb - wheel_h * 0.5)
    # rounded ends
    body |= ellipse(x0 + w * 0.08, (body_top + yb - wheel_h * 0.5) / 2, w * 0.08, (yb - body_top) * 0.4)
    body |= ellipse(x1 - w * 0.08, (body_top + yb - wheel_h * 0.5) / 2, w * 0.08, (yb - body_top) * 0.4)
    body &= rect(x0, body_top, x1, yb)
    if view == "side":
        c0 = x0 + w * rng.uniform(0.15, 0.3)
        c1 = x1 - w * rng.uniform(0.1, 0.3)
    else:
        c0 = x0 + w * rng.uniform(0.08, 0.15)
        c1 = x1 - w * rng.uniform(0.08, 0.15)
    # cabin: trapezoid narrowing upwards
    t = np.clip((body_top - YY) / max(body_top - y_top, 1), 0, 1)
    inset = t * w * rng.uniform(0.05, 0.12)
    cabin = (YY >= y_top) & (YY < body_top + 1) & (XX >= c0 + inset) & (XX < c1 - inset)
    region = body | cabin
    paint(img, mask, region, body_tex, CAR)
    # windows
    glass = cabin & (YY >= y_top + (body_top - y_top) * 0.15) & (YY < body_top - (body_top - y_top) * 0.05)
    glass &= (XX >= c0 + inset + w * 0.03) & (XX < c1 - inset - w * 0.03)
    if view == "side":
        pillar = np.abs(XX - (c0 + c1) / 2) < max(w * 0.015, 0.6)
        glass &= ~pillar
    gcol = jitter(rng, (50, 65, 85), 25)
    gtex = gcol + (YY - y_top)[..., None] * rng.uniform(-1.5, 1.5) + grain(rng, 4)
    paint(img, mask, glass, gtex)
    # wheels / lights
    wcol = jitter(rng, (25, 25, 25), 10)
    if view == "side":
        for wx in (x0 + w * 0.2, x1 - w * 0.2):
            wr = wheel_h * 1.1
            wh = ellipse(wx, yb - wr, wr, wr)
            paint(img, mask, wh, wcol, CAR)
            paint(img, mask, ellipse(wx, yb - wr, wr * 0.5, wr * 0.5) & wh, jitter(rng, (150, 150, 150), 30))
    else:
        for wx in (x0 + w * 0.15, x1 - w * 0.15):
            wh = rect(wx - w * 0.09, yb - wheel_h, wx + w * 0.09, yb)
            paint(img, mask, wh, wcol, CAR)
        lcol = jitter(rng, (220, 40, 30), 30)
        ly = body_top + (yb - body_top) * 0.2
        for lx in (x0 + w * 0.1, x1 - w * 0.1):
            paint(img, mask, rect(lx - w * 0.06, ly, lx + w * 0.06, ly + max(h * 0.08, 1)) & body, lcol)
        # plate
        paint(img, mask, rect(cx - w * 0.1, ly + h * 0.12, cx + w * 0.1, ly + h * 0.12 + max(h * 0.07, 1)) & body,
              jitter(rng, (225, 225, 215), 20))
    # shadow under the car (not the car's class: darkens what is below)
    sh = rect(x0, yb - 0.5, x1, yb + max(1.0, h * 0.08)) & (mask != CAR)
    img[sh] *= rng.uniform(0.4, 0.7)


SKIN = [(240, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 40), (225, 180, 140)]


def draw_person(rng, img, mask, cx, yb, scale):
    h = scale * rng.uniform(30, 46)
    w = h * rng.uniform(0.22, 0.3)
    head_r = h * 0.085
    skin = jitter(rng, SKIN[rng.integers(len(SKIN))], 15)
    top_col = rng.uniform(0, 255, 3).astype(np.float32)
    leg_col = jitter(rng, [(40, 50, 90), (30, 30, 30), (120, 110, 90), (80, 80, 85)][rng.integers(4)], 25)
    y_head = yb - h + head_r
    y_sh = yb - h + 2 * head_r + h * 0.02
    y_hip = yb - h * 0.47
    region = ellipse(cx, y_head, head_r * 0.9, head_r)
    paint(img, mask, region, skin, PERSON)
    if rng.random() < 0.5:  # hair / hat
        paint(img, mask, ellipse(cx, y_head - head_r * 0.4, head_r, head_r * 0.6),
              jitter(rng, (50, 35, 25), 30), PERSON)
    torso = rect(cx - w / 2, y_sh, cx + w / 2, y_hip + h * 0.04)
    torso |= ellipse(cx, y_sh + h * 0.02, w / 2, h * 0.03)
    ttex = top_col + grain(rng, 5) + (smooth_noise(rng, 4, 4) - 0.5)[..., None] * 25
    paint(img, mask, torso, ttex, PERSON)
    # arms
    swing = rng.uniform(-0.4, 0.4)
    for s in (-1, 1):
        ax = cx + s * (w / 2 + max(w * 0.12, 0.5))
        arm = (np.abs(XX - (ax + (YY - y_sh) * swing * s)) < max(w * 0.13, 0.6)) & (YY >= y_sh) & (YY < y_hip + h * 0.05)
        paint(img, mask, arm, ttex * 0.9, PERSON)
    # legs (walking stance)
    stride = rng.uniform(0, 0.35)
    for s in (-1, 1):
        lx = cx + s * w * 0.22
        leg = (np.abs(XX - (lx + (YY - y_hip) * stride * s)) < max(w * 0.17, 0.6)) & (YY >= y_hip) & (YY < yb)
        paint(img, mask, leg, leg_col + grain(rng, 4), PERSON)
    if rng.random() < 0.3:  # bag
        bx = cx + rng.choice([-1, 1]) * w * 0.7
        paint(img, mask, rect(bx - w * 0.25, y_hip - h * 0.1, bx + w * 0.25, y_hip + h * 0.05),
              jitter(rng, (90, 60, 40), 40), PERSON)


def draw_tree(rng, img, mask, cx, yb, scale):
    h = scale * rng.uniform(40, 85)
    trunk_w = max(h * rng.uniform(0.04, 0.08), 0.8)
    trunk_top = yb - h * rng.uniform(0.35, 0.55)
    trunk = rect(cx - trunk_w / 2, trunk_top, cx + trunk_w / 2, yb)
    paint(img, mask, trunk, jitter(rng, (90, 65, 45), 25) + grain(rng, 5), VEG)
    canopy = np.zeros((H, W), bool)
    r = h * rng.uniform(0.22, 0.35)
    ccy = trunk_top - r * 0.5
    for _ in range(rng.integers(2, 6)):
        canopy |= ellipse(cx + rng.normal(0, r * 0.5), ccy + rng.normal(0, r * 0.4),
                          r * rng.uniform(0.5, 1.0), r * rng.uniform(0.45, 0.9))
    gcol = jitter(rng, [(60, 110, 45), (40, 80, 35), (100, 130, 50), (85, 120, 40), (70, 95, 60)][rng.integers(5)], 20)
    leaves = smooth_noise(rng, 16, 20)
    tex = gcol + (leaves - 0.5)[..., None] * rng.uniform(40, 80) + grain(rng, 8)
    paint(img, mask, canopy, tex, VEG)


def draw_hedge(rng, img, mask, x0, x1, yb, scale):
    hh = scale * rng.uniform(6, 14)
    top = yb - hh + (smooth_noise(rng, 2, 12) - 0.5) * hh * 0.5
    region = (XX >= x0) & (XX < x1) & (YY >= top) & (YY < yb)
    gcol = jitter(rng, (55, 100, 45), 20)
    tex = gcol + (smooth_noise(rng, 16, 20) - 0.5)[..., None] * 60 + grain(rng, 8)
    paint(img, mask, region, tex, VEG)


def make_scene(seed, index, extra=()):
    """Returns (uint8 HxWx3 image, uint8 HxW class map).

    extra: additional objects (kind, bottom row, centre x) with kind "car", "person" or
    "tree", drawn with the others (far to near) before lighting and sensor effects; for
    train_image_classifier.py.  Empty (the default) draws exactly the scenes unet.mar uses."""
    rng = np.random.default_rng([seed, index])
    img = np.zeros((H, W, 3), np.float32)
    mask = np.zeros((H, W), np.uint8)
    horizon = float(rng.uniform(28, 60))
    vp_x = float(rng.uniform(30, 98))
    dark = rng.random() < 0.12
    draw_sky(rng, img, mask, horizon)
    draw_buildings(rng, img, mask, horizon, vp_x, dark)
    geo = draw_ground(rng, img, mask, horizon, vp_x)
    xl_at = lambda y: line_x(vp_x - geo["half_top"], horizon, geo["xl_bot"], H, y)
    xr_at = lambda y: line_x(vp_x + geo["half_top"], horizon, geo["xr_bot"], H, y)

    # objects, drawn far to near for occlusion
    objs = []
    for _ in range(rng.integers(0, 5)):  # cars on the road
        yb = rng.uniform(horizon + 4, H + 12)
        x0, x1 = xl_at(yb), xr_at(yb)
        cx = rng.uniform(x0 + 4, x1 - 4) if x1 - x0 > 10 else (x0 + x1) / 2
        objs.append(("car", yb, cx))
    for _ in range(rng.integers(0, 3)):  # parked cars at the road edge
        yb = rng.uniform(horizon + 6, H + 8)
        cx = xl_at(yb) if rng.random() < 0.5 else xr_at(yb)
        objs.append(("car", yb, cx + rng.normal(0, 3)))
    for _ in range(rng.integers(0, 5)):  # people on the sidewalks
        yb = rng.uniform(horizon + 8, H + 4)
        if rng.random() < 0.5:
            cx = xl_at(yb) - rng.uniform(2, 25)
        else:
            cx = xr_at(yb) + rng.uniform(2, 25)
        objs.append(("person", yb, cx))
    if rng.random() < 0.25:  # someone crossing
        yb = rng.uniform(horizon + 8, H)
        objs.append(("person", yb, rng.uniform(xl_at(yb), xr_at(yb))))
    for _ in range(rng.integers(0, 4)):  # trees along the kerb
        yb = rng.uniform(horizon + 2, H + 20)
        cx = xl_at(yb) - rng.uniform(3, 20) if rng.random() < 0.5 else xr_at(yb) + rng.uniform(3, 20)
        objs.append(("tree", yb, cx))
    if rng.random() < 0.3:
        yb = horizon + rng.uniform(0, 6)
        x0 = rng.uniform(-10, W - 20)
        objs.append(("hedge", yb, x0))
    objs.extend(extra)
    objs.sort(key=lambda o: o[1])
    for kind, yb, cx in objs:
        scale = max((yb - horizon) / (H - horizon), 0.04) * 1.4
        if kind == "car":
            draw_car(rng, img, mask, cx, yb, scale, "side" if rng.random() < 0.3 else "rear")
        elif kind == "person":
            draw_person(rng, img, mask, cx, yb, scale)
        elif kind == "tree":
            draw_tree(rng, img, mask, cx, yb, scale)
        else:
            draw_hedge(rng, img, mask, cx, cx + rng.uniform(20, 70), yb, scale)

    # lighting: soft shadows, global gain, tint, gradient
    if rng.random() < 0.5:
        sh = (smooth_noise(rng, 3, 4) > rng.uniform(0.55, 0.75)) & (mask != SKY)
        img[sh] *= rng.uniform(0.6, 0.85)
    gain = rng.uniform(0.75, 1.2) * (0.7 if dark else 1.0)
    tint = rng.uniform(0.88, 1.12, 3).astype(np.float32)
    gx = 1 + (XX / W - 0.5)[..., None] * rng.uniform(-0.3, 0.3)
    img = img * gain * tint * gx + rng.uniform(-10, 10)
    # sensor: optional blur, gaussian noise, quantisation
    if rng.random() < 0.25:
        k = rng.uniform(0.05, 0.15)
        img = (1 - 4 * k) * img + k * (np.roll(img, 1, 0) + np.roll(img, -1, 0) + np.roll(img, 1, 1) + np.roll(img, -1, 1))
    img = img + grain(rng, rng.uniform(0, 6), 3)
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    if rng.random() < 0.2:  # JPEG artefacts
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(65, 96)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()
    return out, mask


def make_set(seed, n):
    imgs = np.empty((n, H, W, 3), np.uint8)
    masks = np.empty((n, H, W), np.uint8)
    for i in range(n):
        imgs[i], masks[i] = make_scene(seed, i)
    return imgs, masks


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net: double 3x3 conv + BatchNorm + ReLU blocks, max-pool down, transposed-conv up,
    skip connections by concatenation, 1x1 head -> (N, C, H, W) logits.  One level per
    entry of widths (five levels: 96x128 down to 6x8)."""

    def __init__(self, classes, widths=(16, 24, 48, 96, 128)):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 3
        for w in widths:
            self.enc.append(block(cin, w))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for deep, shallow in zip(widths[:0:-1], widths[-2::-1]):
            self.up.append(nn.ConvTranspose2d(deep, shallow, 2, stride=2))
            self.dec.append(block(2 * shallow, shallow))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


MEAN_T = torch.tensor(MEAN).view(1, 3, 1, 1)
STD_T = torch.tensor(STD).view(1, 3, 1, 1)


def to_input(imgs_u8):
    """uint8 (N, H, W, 3) tensor -> normalised float (N, 3, H, W): ToTensor then Normalize."""
    x = imgs_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - MEAN_T) / STD_T


# The real inference pipeline (what the server reproduces in Swift).
PIPELINE = transforms.Compose([
    transforms.Resize((H, W)),
    transforms.ToTensor(),
    transforms.Normalize(mean=MEAN, std=STD),
])


def pipeline_input(path):
    with Image.open(path) as im:
        return PIPELINE(im.convert("RGB"))


def boundary(y):
    """(N, H, W) bool: pixels whose 4-neighbourhood holds another class."""
    b = torch.zeros_like(y, dtype=torch.bool)
    d = y[:, 1:] != y[:, :-1]
    b[:, 1:] |= d
    b[:, :-1] |= d
    d = y[:, :, 1:] != y[:, :, :-1]
    b[:, :, 1:] |= d
    b[:, :, :-1] |= d
    return b


def confusion(pred, gt, n):
    return np.bincount(gt.astype(np.int64).ravel() * n + pred.astype(np.int64).ravel(),
                       minlength=n * n).reshape(n, n)


def scores(conf):
    acc = float(np.trace(conf) / conf.sum())
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = {CLASSES[i]: (float(inter[i] / union[i]) if union[i] > 0 else None) for i in range(len(CLASSES))}
    valid = [v for v in iou.values() if v is not None]
    return acc, iou, float(np.mean(valid))


def evaluate_files(model, paths, masks, batch=32):
    """Forward PNG/JPEG files through the real pipeline; returns confusion matrix and
    per-image predictions."""
    n = len(CLASSES)
    conf = np.zeros((n, n), np.int64)
    preds = []
    with torch.no_grad():
        for s in range(0, len(paths), batch):
            x = torch.stack([pipeline_input(p) for p in paths[s:s + batch]])
            out = model(x).argmax(1).numpy().astype(np.uint8)
            for k, p in enumerate(out):
                conf += confusion(p, masks[s + k], n)
                preds.append(p)
    return conf, preds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-scenes", type=int, default=2400)
    ap.add_argument("--eval-scenes", type=int, default=300)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--widths", default="16,24,48,96,128", help="channels per level")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--class-weight-power", type=float, default=0.25,
                    help="loss weight of a class = frequency ** -power (0: plain cross-entropy)")
    ap.add_argument("--boundary-weight", type=float, default=2.0,
                    help="extra loss weight on pixels next to a class boundary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default="/tmp/unet-samples")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(TORCH_SEED)
    np.random.seed(TORCH_SEED)
    t_all = time.time()

    t0 = time.time()
    imgs, masks = make_set(TRAIN_SEED, args.train_scenes)
    t_gen = time.time() - t0
    print(f"generated {args.train_scenes} training scenes in {t_gen:.1f}s", flush=True)
    imgs_t = torch.from_numpy(imgs)
    masks_t = torch.from_numpy(masks).long()

    widths = tuple(int(v) for v in args.widths.split(","))
    model = UNet(len(CLASSES), widths)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"U-Net widths {widths}: {n_params} parameters", flush=True)
    freq = torch.bincount(masks_t.view(-1), minlength=len(CLASSES)).double()
    freq = freq / freq.sum()
    cw = freq.clamp_min(1e-4).pow(-args.class_weight_power)
    cw = (cw / (cw * freq).sum()).float()  # weighted mean weight per pixel is 1
    print("class weights " + ", ".join(f"{n} {w:.2f}" for n, w in zip(CLASSES, cw.tolist())), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    g = torch.Generator().manual_seed(TORCH_SEED)

    model.train()
    t0 = time.time()
    c0 = time.process_time()
    perm = torch.randperm(len(imgs_t), generator=g)
    pos = 0
    run_loss = run_acc = 0.0
    for step in range(1, args.steps + 1):
        if pos + args.batch > len(perm):
            perm = torch.randperm(len(imgs_t), generator=g)
            pos = 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        x = to_input(imgs_t[idx])
        y = masks_t[idx]
        flip = torch.rand(len(idx), generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        y[flip] = y[flip].flip(-1)
        logits = model(x)
        pw = cw[y] * (1 + args.boundary_weight * boundary(y).float())
        loss = (F.cross_entropy(logits, y, reduction="none") * pw).sum() / pw.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run_loss = 0.9 * run_loss + 0.1 * loss.item() if step > 1 else loss.item()
        if step % 10 == 0 or step == 1:
            acc = (logits.argmax(1) == y).float().mean().item()
            run_acc = 0.7 * run_acc + 0.3 * acc if step > 1 else acc
        if step % 50 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}  loss {run_loss:.4f}  train acc {run_acc:.4f}  "
                  f"{time.time() - t0:.0f}s", flush=True)
    t_train = time.time() - t0
    cpu_train = time.process_time() - c0
    print(f"trained in {t_train:.1f}s", flush=True)
    del imgs_t, masks_t, imgs, masks

    # ---- export -------------------------------------------------------------------
    model.eval()
    example = torch.zeros(1, 3, H, W)
    traced = torch.jit.trace(model, example)
    os.makedirs(BUILD_DIR, exist_ok=True)
    pt_path = os.path.join(BUILD_DIR, "unet.pt")
    traced.save(pt_path)
    loaded = torch.jit.load(pt_path)
    check = torch.randn(4, 3, H, W, generator=g)
    with torch.no_grad():
        eager_out = model(check)
        traced_out = loaded(check)
    max_diff = float((eager_out - traced_out).abs().max())
    same_argmax = bool(torch.equal(eager_out.argmax(1), traced_out.argmax(1)))
    print(f"traced vs eager: max |diff| {max_diff:.3g}, argmax equal {same_argmax}", flush=True)
    if max_diff > 1e-4 or not same_argmax:
        sys.exit("traced module differs from the eager model")

    # ---- held-out evaluation through the real pipeline --------------------------------
    os.makedirs(args.tmp, exist_ok=True)
    t0 = time.time()
    paths, gts = [], []
    for i in range(args.eval_scenes):
        im, m = make_scene(EVAL_SEED, i)
        p = os.path.join(args.tmp, f"eval_{i}.png")
        Image.fromarray(im).save(p)
        paths.append(p)
        gts.append(m)
    conf, _ = evaluate_files(loaded, paths, gts)
    acc, iou, miou = scores(conf)
    # the same scenes as JPEG (quality 90), for information
    jpaths = []
    for i, p in enumerate(paths):
        jp = p[:-4] + ".jpg"
        Image.open(p).save(jp, quality=90)
        jpaths.append(jp)
    jconf, _ = evaluate_files(loaded, jpaths, gts)
    jacc, _, jmiou = scores(jconf)
    print(f"held-out ({args.eval_scenes} scenes, seed {EVAL_SEED}) in {time.time() - t0:.0f}s: "
          f"pixel accuracy {acc:.4f}, mean IoU {miou:.4f}; as JPEG q90: {jacc:.4f} / {jmiou:.4f}")
    for name, v in iou.items():
        print(f"  IoU {name:<10} {v:.4f}")

    # ---- committed samples ----------------------------------------------------------
    # The first scenes of SAMPLE_SEED that show at least one car and one person
    # (chosen by content, not by how well the model does on them).
    os.makedirs(SAMPLES_DIR, exist_ok=True)
    sample_info = []
    i = 0
    while len(sample_info) < 4:
        im, m = make_scene(SAMPLE_SEED, i)
        i += 1
        if (m == CAR).sum() < 50 or (m == PERSON).sum() < 20:
            continue
        k = len(sample_info)
        png = os.path.join(SAMPLES_DIR, f"scene_{k}.png")
        Image.fromarray(im).save(png, optimize=True)
        Image.fromarray(m, mode="L").save(os.path.join(SAMPLES_DIR, f"scene_{k}.mask.png"), optimize=True)
        files = [png]
        if k == 0:
            jpg = os.path.join(SAMPLES_DIR, "scene_0.jpg")
            Image.fromarray(im).save(jpg, quality=90)
            files.append(jpg)
        for f in files:
            c, _ = evaluate_files(loaded, [f], [m])
            entry = {"file": os.path.relpath(f, REPO), "scene": [SAMPLE_SEED, i - 1],
                     "bytes": os.path.getsize(f), "pixel_accuracy": round(float(np.trace(c) / c.sum()), 4)}
            print(f"  sample {entry}")
            if f.endswith(".png"):
                sample_info.append(entry)
            else:
                jpeg_entry = entry

    with open(os.path.join(BUILD_DIR, "index_to_name.json"), "w") as f:
        json.dump({str(i): n for i, n in enumerate(CLASSES)}, f, indent=2)
        f.write("\n")
    with open(os.path.join(BUILD_DIR, "model-config.yaml"), "w") as f:
        f.write(f"""minWorkers: 1
maxWorkers: 1
batchSize: 1
maxBatchDelay: 10
responseTimeout: 120
handler:
  kind: image_segmenter
  inputSize: [{H}, {W}]
  resize: bilinear
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  numClasses: {len(CLASSES)}
  labels: index_to_name.json
  output: base64
""")
    metrics = {
        "model": "unet",
        "classes": CLASSES,
        "input": [1, 3, H, W],
        "heldout": {
            "seed": EVAL_SEED, "scenes": args.eval_scenes,
            "pipeline": "PNG -> PIL -> Resize((96, 128)) -> ToTensor -> Normalize -> traced model -> argmax",
            "pixel_accuracy": round(acc, 4), "mean_iou": round(miou, 4),
            "iou": {k: (round(v, 4) if v is not None else None) for k, v in iou.items()},
            "jpeg_q90_pixel_accuracy": round(jacc, 4), "jpeg_q90_mean_iou": round(jmiou, 4),
        },
        "samples": sample_info + [jpeg_entry],
        "samples_rule": f"first scenes of seed {SAMPLE_SEED} with a car (>= 50 px) and a person (>= 20 px)",
        "parameters": n_params,
        "widths": list(widths),
        "torchscript_bytes": os.path.getsize(pt_path),
        "training": {
            "seed": TRAIN_SEED, "scenes": args.train_scenes, "steps": args.steps, "batch": args.batch,
            "optimizer": "AdamW + OneCycle", "max_lr": args.lr, "threads": args.threads,
            "class_weights": [round(v, 3) for v in cw.tolist()],
            "boundary_weight": args.boundary_weight,
            "hflip": True, "generation_seconds": round(t_gen, 1), "training_seconds": round(t_train, 1),
            "training_cpu_seconds": round(cpu_train, 1),
        },
        "sample_seed": SAMPLE_SEED, "torch_seed": TORCH_SEED,
        "traced_vs_eager_max_abs_diff": max_diff,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "total_seconds": round(time.time() - t_all, 1),
    }
    with open(os.path.join(BUILD_DIR, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics, indent=2))
    if acc < 0.95:
        sys.exit(f"held-out pixel accuracy {acc:.4f} is below 0.95")


if __name__ == "__main__":
    main()
