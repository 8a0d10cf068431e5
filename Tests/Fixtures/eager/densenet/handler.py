# A custom TorchServe handler, as eager-mode archives often carry. archiver convert never
# carries it over: the built-in image_classifier handler replaces it.
from ts.torch_handler.image_classifier import ImageClassifier


class DenseNetHandler(ImageClassifier):
    topk = 3
