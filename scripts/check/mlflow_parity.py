#!/usr/bin/python3
"""MLflow parity check: the same model behind MLflow's own scoring server and behind `serve`.

How to run (from the repository root):

    scripts/check/mlflow                                     # .build/release/serve, else .build/debug/serve
    /usr/bin/python3 scripts/check/mlflow_parity.py --serve PATH [--keep]

On first use it creates a virtual environment under scripts/.cache/mlflow-venv with
`/usr/bin/python3 -m venv --system-site-packages` (so Debian's python3-torch 1.13 is importable:
MLflow's pyfunc flavour needs no torch of its own) and installs `mlflow` (with `numpy<2`, the numpy
Debian's torch is built against) and `tokenizers` from PyPI into it, then re-runs itself there.

It unpacks model_store/fortunes.mar and wraps it in an MLflow `PythonModel` whose `predict` takes a
DataFrame with a `text` column and runs the archive's TorchScript module as the handler spec says:
the archive's vocabulary, WordPiece as scripts/samples/train_text_classifier.py tokenises for
training (HuggingFace's BertWordPieceTokenizer), padded to the spec's maxLength, softmax, the
labels file; one dict of label -> probability per row, most probable first. When
model_store/qa.mar exists it does the same for it with the MLflow write-up's pyfunc (columns
`question` and `text`; `tokenizer(question, text)` with `tokenizers`' BertWordPieceTokenizer on
the archive's vocabulary, argmax of the start and of the end logits, the tokens between joined by
`convert_tokens_to_string`), and serves qa.mar here with `decoding: argmax`, the decoding that
pyfunc does. Each model is logged with a signature naming its columns (string), as such a model
would be, and served by `mlflow models serve --env-manager local` on a free loopback port.

`serve --start` runs in a fresh temporary folder with the same archives (token authorization off,
as on SageMaker). Both servers get the same `POST /invocations` requests: dataframe_split (as
MLflow's client writes it, and by hand), dataframe_records, instances and inputs (values, records,
columns), text/csv (pandas' to_csv, with and without the index), params beside the input, no rows,
and malformed bodies and content types. Answers must agree: the same status; for 200 the same
predictions (probabilities within 1e-5, strings equal); for errors the same `error_code` (MLflow's
messages name pandas internals, so the texts differ) or, for 415, both plain text.

One line per check (PASS/FAIL), then a summary; exit status 0 only when every check passed. The
servers started here are always stopped. Only 127.0.0.1 is contacted (and PyPI, on first use).
"""

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(REPO, "scripts", ".cache", "mlflow-venv")
PYTHON = os.path.join(VENV, "bin", "python")
SAMPLES = os.path.join(REPO, "scripts", "samples")
# The pyfunc tokenises with the sample trainer's WordPiece, so the module must be importable
# wherever MLflow loads the model: it travels with it as code (code_paths).
TRAINER = os.path.join(SAMPLES, "train_text_classifier.py")
REQUIREMENTS = {"mlflow": ["mlflow", "numpy<2"], "tokenizers": ["tokenizers"]}
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkutil import HOST, free_port, short, wait_for  # noqa: E402  scripts/check/checkutil.py

TEXTS = ["The compiler crashed and the kernel panicked", "The senator voted against the bill",
         "Add two cups of flour, then stir \"gently\"", "The striker scored twice in the final\nand the crowd sang",
         "Café crème brûlée, naïve résumé"]
QA_CONTEXT = "My name is Alex, I am 32 and live in Copenhagen."
QA_QUESTIONS = ["What is my name?", "How old am I?", "Where do I live?"]


def ensure_venv():
    """Re-runs this script inside the venv, creating it first if needed; installs what is missing."""
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        if not os.path.exists(PYTHON):
            print(f"creating {VENV}", file=sys.stderr, flush=True)
            subprocess.check_call(["/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV])
        os.execv(PYTHON, [PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    missing = [package for module, packages in REQUIREMENTS.items() if importlib.util.find_spec(module) is None
               for package in packages]
    if missing:
        print(f"installing {' '.join(missing)} from PyPI into {VENV}", file=sys.stderr, flush=True)
        subprocess.check_call([PYTHON, "-m", "pip", "install", "-q", *missing])
        importlib.invalidate_caches()


class Report:
    def __init__(self):
        self.passed, self.failures = 0, []

    def check(self, name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failures.append(name)
        return ok


# ---------------------------------------------------------------------------------------------
# The reference: MLflow pyfuncs over the archives' TorchScript modules


def serialized_file(folder):
    """The TorchScript file the archive's manifest names."""
    with open(os.path.join(folder, "MAR-INF", "MANIFEST.json"), encoding="utf-8") as handle:
        return os.path.join(folder, json.load(handle)["model"]["serializedFile"])


def handler_spec(folder):
    import yaml
    with open(os.path.join(folder, "model-config.yaml"), encoding="utf-8") as handle:
        return (yaml.safe_load(handle) or {}).get("handler", {})


def pyfunc_classes():
    """The PythonModel classes, defined once mlflow is importable (in the venv)."""
    import mlflow.pyfunc

    class TextClassifierModel(mlflow.pyfunc.PythonModel):
        """fortunes.mar as a pyfunc: a DataFrame with `text` in, one {label: probability} per row out."""

        def load_context(self, context):
            import torch
            from train_text_classifier import WordPiece
            folder = context.artifacts["archive"]
            spec = handler_spec(folder)
            if spec.get("tokenizer", "wordpiece") != "wordpiece" or not spec.get("lowercase", True):
                raise ValueError("this pyfunc tokenises as lowercase WordPiece only")
            self.max_length = spec.get("maxLength", 128)
            self.inputs = spec.get("modelInputs", ["input_ids", "attention_mask", "token_type_ids"])
            with open(os.path.join(folder, spec.get("vocab", "vocab.txt")), encoding="utf-8") as handle:
                self.tokenizer = WordPiece(handle.read().splitlines())
            labels = os.path.join(folder, spec.get("labels", "index_to_name.json"))
            self.labels = {}
            if os.path.exists(labels):
                with open(labels, encoding="utf-8") as handle:
                    self.labels = json.load(handle)
            self.module = torch.jit.load(serialized_file(folder), map_location="cpu").eval()

        def predict(self, context, model_input, params=None):
            import torch
            texts = [str(text) for text in model_input["text"]]
            if not texts:
                return []
            ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
            mask = torch.zeros(len(texts), self.max_length, dtype=torch.long)
            for row, text in enumerate(texts):
                sequence = self.tokenizer.encode(text, self.max_length)
                ids[row, :len(sequence)] = torch.tensor(sequence)
                mask[row, :len(sequence)] = 1
            tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
            with torch.no_grad():
                logits = self.module(*[tensors[name] for name in self.inputs])
            if isinstance(logits, dict):
                logits = logits["logits"]
            elif isinstance(logits, (tuple, list)):
                logits = logits[0]
            probabilities = torch.softmax(logits.float(), dim=1).tolist()
            predictions = []
            for row in probabilities:
                order = sorted(range(len(row)), key=lambda index: (-row[index], index))
                predictions.append({self.labels.get(str(index), str(index)): row[index] for index in order})
            return predictions

    class QuestionAnsweringModel(mlflow.pyfunc.PythonModel):
        """The MLflow write-up's pyfunc over qa.mar: `question` and `text` in, the answer string per row out."""

        def load_context(self, context):
            import torch
            from tokenizers import BertWordPieceTokenizer
            folder = context.artifacts["archive"]
            spec = handler_spec(folder)
            lowercase = spec.get("lowercase", True)
            self.tokenizer = BertWordPieceTokenizer(os.path.join(folder, spec.get("vocab", "vocab.txt")), lowercase=lowercase,
                                                    strip_accents=spec.get("stripAccents", lowercase))
            self.tokenizer.enable_truncation(spec.get("maxLength", 384), strategy="only_second")
            self.inputs = spec.get("modelInputs", ["input_ids", "attention_mask", "token_type_ids"])
            self.module = torch.jit.load(serialized_file(folder), map_location="cpu").eval()

        def predict(self, context, model_input, params=None):
            import torch
            answers = []
            for question, text in zip(model_input["question"], model_input["text"]):
                encoding = self.tokenizer.encode(str(question), str(text))
                tensors = {"input_ids": torch.tensor([encoding.ids]), "attention_mask": torch.tensor([encoding.attention_mask]),
                           "token_type_ids": torch.tensor([encoding.type_ids])}
                with torch.no_grad():
                    output = self.module(*[tensors[name] for name in self.inputs])
                start, end = (output["start_logits"], output["end_logits"]) if isinstance(output, dict) else output[:2]
                first, last = int(start[0].argmax()), int(end[0].argmax())
                # The write-up's convert_tokens_to_string: a fast BERT tokenizer's is its WordPiece decoder's.
                answers.append(self.tokenizer.decoder.decode(encoding.tokens[first:last + 1]) if first <= last else "")
            return answers

    return TextClassifierModel, QuestionAnsweringModel


def save_pyfunc(path, model, archive_folder, columns):
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    mlflow.pyfunc.save_model(path, python_model=model, artifacts={"archive": archive_folder}, code_paths=[TRAINER],
                             signature=ModelSignature(inputs=Schema([ColSpec("string", name) for name in columns])),
                             pip_requirements=["mlflow"])


def unpack(archive, folder, decoding=None):
    """Unpacks a .mar; with `decoding`, sets the handler's decoding in its model-config.yaml."""
    with zipfile.ZipFile(archive) as mar:
        mar.extractall(folder)
    if decoding:
        import yaml
        path = os.path.join(folder, "model-config.yaml")
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        config.setdefault("handler", {})["decoding"] = decoding
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)


def pack(folder, archive):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as mar:
        for root, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                mar.write(path, os.path.relpath(path, folder))


# ---------------------------------------------------------------------------------------------
# Requests


def post(url, body, content_type):
    """(status, content type, body text) of a POST."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode("utf-8", "replace")


def same(got, want):
    """Equal JSON, numbers within 1e-5."""
    if isinstance(want, bool) or isinstance(got, bool):
        return got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return abs(got - want) <= 1e-5
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(same(got[key], want[key]) for key in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    return got == want


def compare(R, name, ours, theirs):
    """Checks that two (status, content type, body) answers agree as the docstring says."""
    (status, kind, text), (want_status, want_kind, want_text) = ours, theirs
    if status != want_status:
        return R.check(name, False, f"status {status} here, {want_status} from MLflow: {short(text, 200)} | {short(want_text, 200)}")
    if want_status == 200:
        got, want = json.loads(text).get("predictions"), json.loads(want_text).get("predictions")
        return R.check(f"{name}: 200, {len(want)} equal predictions", same(got, want), f"{short(got, 300)} vs {short(want, 300)}")
    if want_kind.startswith("application/json"):
        got = json.loads(text) if kind.startswith("application/json") else {}
        want = json.loads(want_text)
        return R.check(f"{name}: {status} {want.get('error_code')}", got.get("error_code") == want.get("error_code")
                       and isinstance(got.get("message"), str), f"{short(text, 200)} vs {short(want_text, 200)}")
    return R.check(f"{name}: {status} plain text", kind.startswith("text/plain") and want_kind.startswith("text/plain"),
                   f"{kind}: {short(text)} vs {want_kind}: {short(want_text)}")


def text_requests():
    """(name, content type, body) for the text classifier: every form, then malformed ones."""
    import pandas as pd
    from mlflow.utils.proto_json_utils import dump_input_data
    frame = pd.DataFrame({"text": TEXTS})
    J = "application/json"

    def js(value):
        return json.dumps(value).encode()

    return [
        ("dataframe_split as MLflow's client writes it", J, dump_input_data(frame).encode()),
        ("dataframe_split with an id column", J, js({"dataframe_split": {"columns": ["id", "text"], "data": [[i, t] for i, t in enumerate(TEXTS)]}})),
        ("dataframe_records", J, js({"dataframe_records": frame.to_dict(orient="records")})),
        ("instances of values", J, js({"instances": TEXTS})),
        ("instances of records", J, js({"instances": [{"text": t} for t in TEXTS]})),
        ("instances of columns", J, js({"instances": {"text": TEXTS}})),
        ("inputs of values", J, js({"inputs": TEXTS})),
        ("inputs of records", J, js({"inputs": [{"text": t} for t in TEXTS]})),
        ("inputs of columns", J, js({"inputs": {"text": TEXTS}})),
        ("inputs of one value", J, js({"inputs": {"text": TEXTS[0]}})),
        ("inputs with params", J, js({"inputs": TEXTS[:2], "params": {"top_k": 1}})),
        ("charset=utf-8", "application/json; charset=utf-8", js({"inputs": TEXTS[:2]})),
        ("no rows", J, js({"instances": []})),
        ("text/csv from to_csv()", "text/csv", frame.to_csv().encode()),
        ("text/csv from to_csv(index=False)", "text/csv", frame.to_csv(index=False).encode()),
        ("text/csv with CRLF", "text/csv", frame.to_csv(index=False, lineterminator="\r\n").encode()),
        ("text/csv header only", "text/csv", b"text\n"),
        # Malformed
        ("not JSON", J, b"{\"inputs\": ["),
        ("an empty JSON body", J, b""),
        ("a JSON list", J, js(TEXTS)),
        ("two input fields", J, js({"inputs": TEXTS, "instances": TEXTS})),
        ("dataframe_split without data", J, js({"dataframe_split": {"columns": ["text"]}})),
        ("dataframe_split with another key", J, js({"dataframe_split": {"columns": ["text"], "data": [[TEXTS[0]]], "rows": 1}})),
        ("dataframe_split as a list", J, js({"dataframe_split": [[TEXTS[0]]]})),
        ("dataframe_split rows wider than its columns", J, js({"dataframe_split": {"columns": ["text"], "data": [[TEXTS[0], 1]]}})),
        ("dataframe_split without columns", J, js({"dataframe_split": {"data": [[TEXTS[0]]]}})),
        ("dataframe_records as an object", J, js({"dataframe_records": {"text": TEXTS[0]}})),
        ("dataframe_records without text", J, js({"dataframe_records": [{"txt": TEXTS[0]}]})),
        ("dataframe_records empty", J, js({"dataframe_records": []})),
        ("instances columns of different lengths", J, js({"instances": {"text": TEXTS, "id": [1]}})),
        ("inputs columns of different lengths", J, js({"inputs": {"text": TEXTS, "id": [1]}})),
        ("inputs a bare string", J, js({"inputs": TEXTS[0]})),
        ("text/plain", "text/plain", js({"inputs": TEXTS})),
        ("charset=latin-1", "application/json; charset=latin-1", js({"inputs": TEXTS})),
        ("an unknown content type parameter", "application/json; format=pandas-split", js({"inputs": TEXTS})),
        ("text/csv with a header parameter", "text/csv; header=present", b"text\nabc\n"),
        ("text/csv empty", "text/csv", b""),
        ("text/csv with an unterminated quote", "text/csv", b"text\n\"abc\n"),
        ("text/csv with more fields than the header", "text/csv", b"text,id\nabc,1\ndef,2,3\n"),
        ("text/csv without text", "text/csv", b"id\n1\n"),
    ]


def qa_requests():
    import pandas as pd
    from mlflow.utils.proto_json_utils import dump_input_data
    frame = pd.DataFrame({"question": QA_QUESTIONS, "text": [QA_CONTEXT] * len(QA_QUESTIONS)})
    J = "application/json"

    def js(value):
        return json.dumps(value).encode()

    return [
        ("qa: dataframe_split as MLflow's client writes it", J, dump_input_data(frame).encode()),
        ("qa: dataframe_records", J, js({"dataframe_records": frame.to_dict(orient="records")})),
        ("qa: instances of records", J, js({"instances": frame.to_dict(orient="records")})),
        ("qa: inputs of columns", J, js({"inputs": {"question": QA_QUESTIONS, "text": [QA_CONTEXT] * len(QA_QUESTIONS)}})),
        ("qa: text/csv", "text/csv", frame.to_csv(index=False).encode()),
        ("qa: without text", J, js({"dataframe_records": [{"question": QA_QUESTIONS[0]}]})),
        ("qa: without question", J, js({"dataframe_records": [{"text": QA_CONTEXT}]})),
    ]


# ---------------------------------------------------------------------------------------------
# Servers


def start_mlflow(model_path, port, log):
    """`mlflow models serve` in a session of its own (uvicorn is its child)."""
    # It runs `uvicorn` by name: the venv's bin goes first on PATH.
    environment = dict(os.environ, PATH=os.path.join(VENV, "bin") + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.Popen([os.path.join(VENV, "bin", "mlflow"), "models", "serve", "-m", model_path, "--env-manager", "local",
                             "-h", HOST, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment)


def stop_mlflow(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def answers_ping(url):
    with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
        return response.status == 200


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", required=True, help="the serve binary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--qa-archive", default=os.path.join(REPO, "model_store", "qa.mar"),
                        help="the question_answering archive to compare, if it exists (default: model_store/qa.mar)")
    args = parser.parse_args()
    args.serve = os.path.abspath(args.serve)
    ensure_venv()
    import mlflow
    sys.path.insert(0, SAMPLES)
    TextClassifierModel, QuestionAnsweringModel = pyfunc_classes()

    R = Report()
    work = tempfile.mkdtemp(prefix="mlflow-parity-")
    store = os.path.join(work, "model_store")
    os.makedirs(store)
    qa_archive = os.path.abspath(args.qa_archive)
    has_qa = os.path.exists(qa_archive)
    print(f"mlflow {mlflow.__version__}, serve {args.serve}, {qa_archive if has_qa else 'no qa.mar: text classifier only'}",
          flush=True)
    models = {}  # name -> (pyfunc folder, requests)
    unpack(os.path.join(REPO, "model_store", "fortunes.mar"), os.path.join(work, "fortunes"))
    shutil.copy(os.path.join(REPO, "model_store", "fortunes.mar"), store)
    save_pyfunc(os.path.join(work, "pyfunc-fortunes"), TextClassifierModel(), os.path.join(work, "fortunes"), ["text"])
    models["fortunes"] = text_requests()
    if has_qa:
        # Both sides decode as the write-up's pyfunc does: argmax, whatever qa.mar's spec says.
        unpack(qa_archive, os.path.join(work, "qa"), decoding="argmax")
        pack(os.path.join(work, "qa"), os.path.join(store, "qa.mar"))
        save_pyfunc(os.path.join(work, "pyfunc-qa"), QuestionAnsweringModel(), os.path.join(work, "qa"), ["question", "text"])
        models["qa"] = qa_requests()

    ports = {name: free_port() for name in ["inference", "management", "metrics", *models]}
    while len(set(ports.values())) < len(ports):
        ports = {name: free_port() for name in ports}
    config = os.path.join(work, "config.properties")
    with open(config, "w") as handle:
        handle.write(f"# written by scripts/check/mlflow_parity.py\ninference_address=http://{HOST}:{ports['inference']}\n"
                     f"management_address=http://{HOST}:{ports['management']}\nmetrics_address=http://{HOST}:{ports['metrics']}\n"
                     f"model_store={store}\ndisable_token_authorization=true\ninvocations_model=fortunes\nenable_grpc=false\n")

    def serve(*flags):
        done = subprocess.run([args.serve, *flags], cwd=work, capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr

    servers, started = {}, False
    log = open(os.path.join(work, "mlflow.log"), "w")
    try:
        for name in models:
            servers[name] = start_mlflow(os.path.join(work, f"pyfunc-{name}"), ports[name], log)
        rc, out = serve("--start", "--ts-config", config, "--model-store", store, "--models", "all")
        started = R.check("serve --start --models all", rc == 0, f"rc {rc}: {short(out)}")
        ready = started
        for name, process in servers.items():
            url = f"http://{HOST}:{ports[name]}"
            wait_for(lambda: process.poll() is not None or answers_ping(url), 180)
            ready = R.check(f"mlflow models serve ({name}) answers /ping", process.poll() is None and wait_for(lambda: answers_ping(url), 1),
                            "it ended or did not answer in 180 s; see mlflow.log (--keep)") and ready
        if ready:
            ours = f"http://{HOST}:{ports['inference']}/invocations"
            for name, requests in models.items():
                theirs = f"http://{HOST}:{ports[name]}/invocations"
                for label, content_type, body in requests:
                    compare(R, label, post(f"{ours}?model_name={name}", body, content_type), post(theirs, body, content_type))
            # The write-up's example: the answers it names.
            if has_qa:
                status, _, text = post(f"{ours}?model_name=qa", json.dumps({"dataframe_split": {
                    "columns": ["question", "text"], "data": [[q, QA_CONTEXT] for q in QA_QUESTIONS]}}).encode(), "application/json")
                print(f"  qa predictions here: {short(text, 200)}", flush=True)
    except Exception as error:  # a crash of the check is a failure, and the servers are still stopped
        R.check("the check ran to the end", False, f"{type(error).__name__}: {short(str(error))}")
    finally:
        for process in servers.values():
            stop_mlflow(process)
        log.close()
        if started:
            rc, out = serve("--stop")
            R.check("serve --stop", rc == 0, f"rc {rc}: {short(out)}")
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nSUMMARY: {R.passed + len(R.failures)} checks, {R.passed} passed, {len(R.failures)} failed")
    for name in R.failures:
        print(f"FAILED {name}")
    return 0 if not R.failures else 1


if __name__ == "__main__":
    sys.exit(main())
