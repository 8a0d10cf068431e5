#!/usr/bin/python3
"""Regenerates every committed test fixture under Tests/Fixtures, in dependency order.

Needs Debian's python3-torch, python3-torchvision and python3-pil (scripts/setup --fixtures),
and for the archive and tokenizer fixtures torch-model-archiver and tokenizers from PyPI,
which their scripts install. Tests never run this: they read the committed files.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = [
    ["/usr/bin/python3", os.path.join(HERE, "fixtures", "make_image_fixtures.py")],
    # The masks need the images above and the tiny U-Net this step trains.
    ["/usr/bin/python3", os.path.join(HERE, "fixtures", "make_model_fixtures.py")],
    ["bash", os.path.join(HERE, "fixtures", "make_archive_fixtures.sh")],
    ["/usr/bin/python3", os.path.join(HERE, "fixtures", "make_tokenizer_fixtures.py")],
]

for step in STEPS:
    if not os.path.exists(step[-1]):
        print(f"skipping missing {step[-1]}", file=sys.stderr)
        continue
    print("==>", " ".join(step), flush=True)
    subprocess.run(step, check=True)
