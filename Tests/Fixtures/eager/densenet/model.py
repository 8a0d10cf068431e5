# A small DenseNet laid out as TorchServe's examples/image_classifier/densenet_161/model.py:
# one class in the file, subclassing torchvision's DenseNet, built with no arguments, whose
# load_state_dict renames the old checkpoints' "norm.1"-style keys. Made small for the tests
# (growth rate 8, two blocks of two layers, 5 classes); scripts/fixtures/make_eager_fixtures.py
# writes its weights with those old key names.
import re

from torchvision.models.densenet import DenseNet


class ImageClassifier(DenseNet):
    def __init__(self):
        super(ImageClassifier, self).__init__(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                              bn_size=2, num_classes=5)

    def load_state_dict(self, state_dict, strict=True):
        # '.'s are no longer allowed in module names, but previous _DenseLayer
        # has keys 'norm.1', 'relu.1', 'conv.1', 'norm.2', 'relu.2', 'conv.2'.
        # They are also in the checkpoints in model_urls. This pattern is used
        # to find such keys.
        pattern = re.compile(
            r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        for key in list(state_dict.keys()):
            res = pattern.match(key)
            if res:
                new_key = res.group(1) + res.group(2)
                state_dict[new_key] = state_dict[key]
                del state_dict[key]
        return super(ImageClassifier, self).load_state_dict(state_dict, strict)
