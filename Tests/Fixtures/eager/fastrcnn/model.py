# Laid out as TorchServe's examples/object_detector/fast-rcnn/model.py: a FasterRCNN subclass
# built with no arguments. The backbone is a small convolution stack instead of ResNet-50 + FPN,
# so that the fixture's weights are made in a second.
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FasterRCNN
from torchvision.ops import MultiScaleRoIAlign


def small_backbone():
    backbone = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU())
    backbone.out_channels = 16
    return backbone


class FRCNNObjectDetector(FasterRCNN):
    def __init__(self, num_classes=3, **kwargs):
        super(FRCNNObjectDetector, self).__init__(
            small_backbone(), num_classes, min_size=96, max_size=128,
            rpn_anchor_generator=AnchorGenerator(((16, 32),), ((0.5, 1.0, 2.0),)),
            box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), box_score_thresh=0.0, **kwargs)
