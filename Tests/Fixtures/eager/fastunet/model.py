# A fastai DynamicUnet moved into plain PyTorch, as the reference deployment in USE-CASES.md does
# (`unet_learner(dls, resnet50)` on CamVid-tiny, images 96x128), made small for the tests: a
# three-stage encoder, fastai's UnetBlock (PixelShuffle upsampling, the encoder's feature map
# batch-normed and concatenated), 5 classes. The decoder blocks are looked up by name in
# forward(), as code ported from fastai's hooks often does: torch.jit.script refuses that, so
# archiver falls back to torch.jit.trace.
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_layer(ni, nf, stride=1):
    return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(nf),
                         nn.ReLU(inplace=True))


class UnetBlock(nn.Module):
    def __init__(self, up_in_c, x_in_c, out_c):
        super().__init__()
        self.shuf = nn.Sequential(nn.Conv2d(up_in_c, up_in_c * 2, 1), nn.PixelShuffle(2))
        self.bn = nn.BatchNorm2d(x_in_c)
        self.conv1 = conv_layer(up_in_c // 2 + x_in_c, out_c)
        self.conv2 = conv_layer(out_c, out_c)

    def forward(self, up_in, s):
        up_out = self.shuf(up_in)
        if up_out.shape[-2:] != s.shape[-2:]:
            up_out = F.interpolate(up_out, s.shape[-2:], mode="nearest")
        return self.conv2(self.conv1(torch.cat([up_out, F.relu(self.bn(s))], dim=1)))


class FastUnet(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.encoder = nn.ModuleList([conv_layer(3, 16, 2), conv_layer(16, 24, 2), conv_layer(24, 32, 2)])
        self.middle = nn.Sequential(conv_layer(32, 48), conv_layer(48, 32))
        self.n_blocks = 2
        self.up0 = UnetBlock(32, 24, 24)
        self.up1 = UnetBlock(24, 16, 16)
        self.head = nn.Sequential(conv_layer(16 + 3, 16), nn.Conv2d(16, n_classes, 1))

    def forward(self, x):
        features = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            features.append(h)
        h = self.middle(h)
        for i in range(self.n_blocks):
            h = getattr(self, f"up{i}")(h, features[-i - 2])
        h = F.interpolate(h, x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([h, x], dim=1))
