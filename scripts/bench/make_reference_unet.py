#!/usr/bin/python3
"""The reference-size model of the benchmark: a U-Net with a ResNet-50 encoder, as fastai's
unet_learner(dls, resnet50) builds for the reference deployment (32 classes, 96x128 input).
Random weights (no download); traced to TorchScript. Written to the path given; never committed."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class UpBlock(nn.Module):
    def __init__(self, cin, skip, cout):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin + skip, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.conv2(self.conv1(torch.cat([x, skip], dim=1)))


class ResNet50UNet(nn.Module):
    def __init__(self, classes=32):
        super().__init__()
        r = torchvision.models.resnet50(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu)      # 64, /2
        self.pool = r.maxpool                                   # /4
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        self.up4 = UpBlock(2048, 1024, 512)
        self.up3 = UpBlock(512, 512, 256)
        self.up2 = UpBlock(256, 256, 128)
        self.up1 = UpBlock(128, 64, 64)
        self.head = nn.Conv2d(64 + 3, classes, 1)

    def forward(self, x):
        s0 = self.stem(x)
        s1 = self.layer1(self.pool(s0))
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        s4 = self.layer4(s3)
        y = self.up1(self.up2(self.up3(self.up4(s4, s3), s2), s1), s0)
        y = F.interpolate(y, size=x.shape[-2:], mode="nearest")
        return self.head(torch.cat([y, x], dim=1))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = ResNet50UNet().eval()
    example = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    traced.save(sys.argv[1])
    print(f"{sys.argv[1]}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
