#!/usr/bin/env bash
# Re-makes the sample archives in model_store/ from scratch: trains the models with Debian's
# python3-torch (CPU, several minutes on 2 cores) and packs them with our archiver.
#   unet.mar      scripts/samples/train_unet.py             (synthetic street scenes, 8 classes)
#   fortunes.mar  scripts/samples/train_text_classifier.py  (Debian fortunes, 6 categories)
#   scenes.mar    scripts/samples/train_image_classifier.py (dominant object in the same scenes)
#   detector.mar  scripts/samples/train_detector.py         (cars and people in the same scenes, boxes)
#   qa.mar        scripts/samples/train_qa.py               (extractive QA on generated self-descriptions)
# The committed archives were made by this script; serving and tests never run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup --fixtures
swift build -c release --product archiver
ARCHIVER=.build/release/archiver
BUILD=scripts/samples/build

/usr/bin/python3 scripts/samples/train_unet.py
(cd "$BUILD/unet" && "../../../../$ARCHIVER" --model-name unet --version 1.0 --serialized-file unet.pt \
    --handler image_segmenter --config-file model-config.yaml --extra-files index_to_name.json \
    --export-path ../../../../model_store -f)

/usr/bin/python3 scripts/samples/train_image_classifier.py
(cd "$BUILD/scenes" && "../../../../$ARCHIVER" --model-name scenes --version 1.0 --serialized-file scenes.pt \
    --handler image_classifier --config-file model-config.yaml --extra-files index_to_name.json \
    --export-path ../../../../model_store -f)

/usr/bin/python3 scripts/samples/train_detector.py
(cd "$BUILD/detector" && "../../../../$ARCHIVER" --model-name detector --version 1.0 --serialized-file detector.pt \
    --handler object_detector --config-file model-config.yaml --extra-files index_to_name.json \
    --export-path ../../../../model_store -f)

/usr/bin/python3 scripts/samples/train_text_classifier.py --encoder small
(cd "$BUILD/text-small" && "../../../../$ARCHIVER" --model-name fortunes --version 1.0 --serialized-file model.pt \
    --handler text_classifier --config-file model-config.yaml --extra-files vocab.txt,index_to_name.json \
    --export-path ../../../../model_store -f)

# decoding: argmax is the MLflow write-up's own decoding, so the sample answers its questions as it shows.
/usr/bin/python3 scripts/samples/train_qa.py --decoding argmax
(cd "$BUILD/qa" && "../../../../$ARCHIVER" --model-name qa --version 1.0 --serialized-file qa.pt \
    --handler question_answering --config-file model-config.yaml --extra-files vocab.txt \
    --export-path ../../../../model_store -f)
ls -l model_store
