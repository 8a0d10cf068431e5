extension EagerConversion {
    /// The conversion program, written to a temporary file and run with Python at pack time, so
    /// that an installed `archiver` needs no checkout beside it. It reads a job (JSON) and writes
    /// its outcome (JSON); ``run(output:scratch:)`` turns that into notes or a ``ConversionError``.
    static let program = #"""
    """Converts an eager-mode PyTorch model (model.py + a state_dict) to TorchScript, for `archiver`.

    archiver writes this program to a temporary file and runs it as `python3 convert_eager.py JOB.json`.
    JOB.json: {"modelFile", "weights", "output", "result": paths; "modelClass": a name or null;
    "inputs": [{"name", "kind": float|ids|ones|zeros|offsets, "shape": [...]}]; "trials": n;
    "tolerance": t}. The outcome goes to job["result"] as JSON, {"ok": true, ...} or
    {"ok": false, "error": CODE, ...}; the exit status is 0 whenever that file was written.
    """

    import importlib.util
    import inspect
    import json
    import os
    import re
    import sys
    import traceback
    import warnings


    class Failure(Exception):
        """A conversion step failed; `code` tells archiver which, `details` what it needs to say."""

        def __init__(self, code, **details):
            super().__init__(code)
            self.code = code
            self.details = details


    def describe(error, limit=1500):
        """`Type: message`, cut to `limit` characters."""
        text = f"{type(error).__name__}: {error}".strip()
        return text if len(text) <= limit else text[:limit] + " ..."


    def summary(error):
        """The first line of an error's message, with the model file's line it points at when it names one."""
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        first = lines[0].rstrip(":") if lines else type(error).__name__
        for line in lines:
            match = re.match(r'File "(.*)", line (\d+)', line)
            if match:
                return f"{first} ({os.path.basename(match.group(1))}, line {match.group(2)})"
        return first


    def traceback_tail(frames=6):
        """The traceback of the exception being handled, from the model's code only (not this program's)."""
        kind, error, tb = sys.exc_info()
        own = [frame for frame in traceback.extract_tb(tb)
               if frame.filename != os.path.abspath(__file__) and not frame.filename.startswith("<frozen")]
        text = "".join(traceback.format_list(own[-frames:])) + "".join(traceback.format_exception_only(kind, error))
        return text.strip()


    def key_report(error):
        """load_state_dict's message with each key list cut to its first keys and its count."""
        lines = []
        for line in str(error).splitlines():
            match = re.match(r"\s*(Missing key\(s\)|Unexpected key\(s\)) in state_dict: (.*)", line)
            if match:
                keys = re.findall(r'"([^"]*)"', match.group(2))
                shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")
                lines.append(f"{match.group(1)}: {shown}")
            elif line.strip():
                lines.append(line.strip()[:300])
        return "\n".join(lines[:12])


    def load_module(path):
        """Imports model.py as TorchServe does: its folder first on sys.path, the file's stem as its name."""
        folder = os.path.dirname(os.path.abspath(path))
        sys.path.insert(0, folder)
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise Failure("import", detail=f"{path} cannot be imported as a Python module", trace="")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as error:  # SystemExit and the like from a model file count too
            raise Failure("import", detail=describe(error), trace=traceback_tail())
        return module


    def needs_no_arguments(cls):
        try:
            parameters = inspect.signature(cls).parameters.values()
        except (TypeError, ValueError):
            return False
        return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   for p in parameters)


    def choose_class(module, requested, torch):
        """The model class: `requested`, else the one torch.nn.Module subclass defined in the file (or,
        when it defines none, the one it imports). Among several, classes that others there extend are
        set aside, then those that need constructor arguments; exactly one must remain."""
        members = [(name, value) for name, value in inspect.getmembers(module, inspect.isclass)
                   if issubclass(value, torch.nn.Module) and value is not torch.nn.Module]
        if requested:
            for name, value in members:
                if name == requested:
                    return value, None
            raise Failure("classNotFound", requested=requested, classes=[name for name, _ in members])
        local = [(name, value) for name, value in members if value.__module__ == module.__name__]
        pool = local or members
        if not pool:
            raise Failure("classNotFound", requested=None, classes=[])
        if len(pool) == 1:
            return pool[0][1], None
        bases = {base for _, value in pool for base in value.__mro__[1:]}
        outermost = [(name, value) for name, value in pool if value not in bases]
        buildable = [(name, value) for name, value in outermost if needs_no_arguments(value)]
        if len(buildable) == 1:
            return buildable[0][1], (f"chosen among {', '.join(n for n, _ in pool)} as the only one built with no "
                                     f"arguments that no other class there extends; --model-class picks another")
        raise Failure("ambiguousClass", classes=[name for name, _ in pool], buildable=[name for name, _ in buildable])


    def flatten(output, torch):
        """The tensors of a forward's output, in a fixed order (dicts by key)."""
        if isinstance(output, torch.Tensor):
            return [output]
        if isinstance(output, dict):
            return [t for key in sorted(output, key=str) for t in flatten(output[key], torch)]
        if isinstance(output, (list, tuple)):
            return [t for item in output for t in flatten(item, torch)]
        return []


    def vocabulary_size(model, torch):
        for module in model.modules():
            if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
                return module.num_embeddings
        return 100


    def make_inputs(specs, batch, vocab, torch):
        """Random inputs of the job's shapes; `batch` replaces the first dimension of batchable ones."""
        inputs = []
        for spec in specs:
            shape = list(spec["shape"])
            kind = spec["kind"]
            if batch is not None and kind in ("float", "ids", "ones", "zeros"):
                shape[0] = batch
            if kind == "float":
                inputs.append(torch.randn(shape))
            elif kind == "ids":
                inputs.append(torch.randint(0, vocab, shape, dtype=torch.long))
            elif kind == "ones":
                inputs.append(torch.ones(shape, dtype=torch.long))
            elif kind == "zeros":
                inputs.append(torch.zeros(shape, dtype=torch.long))
            elif kind == "offsets":
                inputs.append(torch.zeros([1], dtype=torch.long))
            elif kind == "imageList":
                channels, height, width = shape
                inputs.append([torch.rand([channels, height, width]),
                               torch.rand([channels, max(1, height * 3 // 4), max(1, width * 2 // 3)])])
            else:
                raise Failure("job", detail=f"unknown input kind {kind!r}")
        return inputs


    def run(module, inputs):
        """module(*inputs) without gradients, on copies (an in-place first layer must not change the inputs)."""
        import torch
        with torch.no_grad():
            return module(*[[t.clone() for t in item] if isinstance(item, list) else item.clone() for item in inputs])


    def shapes(tensors):
        """Each tensor's shape; the images of a list argument one after another."""
        return [list(t.shape) for item in tensors for t in (item if isinstance(item, list) else [item])]


    def difference(want, got, torch):
        """(max |want - got|, max |want|) over matching tensors; NaN where both are NaN counts as equal."""
        worst, scale = 0.0, 0.0
        for w, g in zip(want, got):
            w, g = w.detach().double(), g.detach().double()
            both_nan = torch.isnan(w) & torch.isnan(g)
            delta = torch.where(both_nan, torch.zeros_like(w), (w - g).abs())
            if delta.numel():
                worst = max(worst, float(torch.nan_to_num(delta, nan=float("inf")).max()))
                scale = max(scale, float(torch.nan_to_num(w.abs(), nan=0.0).max()))
        return worst, scale


    def agrees(diff, scale, tolerance):
        return diff == 0 or diff <= tolerance * scale


    def recorded(caught):
        messages = []
        for warning in caught:
            text = str(warning.message).strip().splitlines()[0] if str(warning.message).strip() else ""
            if text and text not in messages:
                messages.append(text[:300])
        return messages[:5]


    def convert(job):
        try:
            import torch
        except BaseException as error:
            raise Failure("torch", detail=describe(error))
        torch.manual_seed(0)
        module = load_module(job["modelFile"])
        cls, class_note = choose_class(module, job.get("modelClass"), torch)
        job["chosenClass"] = cls.__name__
        try:
            model = cls()
        except BaseException as error:
            raise Failure("construct", modelClass=cls.__name__, detail=describe(error), trace=traceback_tail())

        try:
            state = torch.load(job["weights"], map_location="cpu")
        except BaseException as error:
            raise Failure("weights", detail=describe(error))
        if isinstance(state, torch.nn.Module):
            raise Failure("wholeModel", type=type(state).__name__)
        if not isinstance(state, dict):
            raise Failure("notStateDict", type=type(state).__name__)
        try:
            model.load_state_dict(state)
        except BaseException as error:
            raise Failure("stateDict", modelClass=cls.__name__, detail=key_report(error),
                          keys=[str(key) for key in list(state.keys())[:5]])
        model.eval()

        vocab = vocabulary_size(model, torch)
        example = make_inputs(job["inputs"], None, vocab, torch)
        example_shapes = shapes(example)
        try:
            first = flatten(run(model, example), torch)
            again = flatten(run(model, example), torch)
        except BaseException as error:
            raise Failure("forward", modelClass=cls.__name__, shapes=example_shapes, detail=describe(error),
                          trace=traceback_tail())
        if not first:
            kind = type(run(model, example)).__name__
            raise Failure("noTensorOutput", type=kind)
        diff, scale = difference(first, again, torch)
        if not agrees(diff, scale, job["tolerance"]):
            raise Failure("nondeterministic", difference=diff, scale=scale)

        tolerance, trials = job["tolerance"], max(1, int(job["trials"]))
        trial_inputs = [example] + [make_inputs(job["inputs"], None, vocab, torch) for _ in range(trials - 1)]

        def save_and_compare(exported):
            exported.save(job["output"])
            loaded = torch.jit.load(job["output"], map_location="cpu")
            loaded.eval()
            worst, at_scale = 0.0, 0.0
            for index, inputs in enumerate(trial_inputs):
                want = flatten(run(model, inputs), torch)
                got = flatten(run(loaded, inputs), torch)
                if shapes(want) != shapes(got):
                    raise Failure("outputsDiffer", trial=index, shapes=shapes(inputs), detail=(
                        f"the eager output has shapes {shapes(want)}, the TorchScript output {shapes(got)}"),
                        difference=None, scale=None)
                diff, scale = difference(want, got, torch)
                if not agrees(diff, scale, tolerance):
                    raise Failure("outputsDiffer", trial=index, shapes=shapes(inputs), detail="",
                                  difference=diff, scale=scale)
                if diff >= worst:
                    worst, at_scale = diff, scale
            return loaded, worst, at_scale

        result = {"ok": True, "torch": torch.__version__, "modelClass": cls.__name__, "classNote": class_note,
                  "inputShapes": example_shapes, "outputShapes": shapes(first), "trials": len(trial_inputs),
                  "scriptError": None, "warnings": []}
        loaded = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scripted = torch.jit.script(model)
        except BaseException as error:
            result["scriptError"] = describe(error)
            result["scriptSummary"] = summary(error)
        else:
            try:
                loaded, worst, at_scale = save_and_compare(scripted)
                result["method"] = "script"
                result["warnings"] = recorded(caught)
            except Failure as failure:
                failure.details["method"] = "script"
                raise
            except BaseException as error:  # scripted, but the scripted module fails when run
                result["scriptError"] = "the scripted module fails when run: " + describe(error)
                result["scriptSummary"] = "the scripted module fails when run: " + summary(error)

        if loaded is None:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    traced = torch.jit.trace(model, tuple(example), check_trace=False)
            except BaseException as error:
                raise Failure("export", scriptError=result["scriptError"], traceError=describe(error), shapes=example_shapes)
            try:
                loaded, worst, at_scale = save_and_compare(traced)
            except Failure as failure:
                failure.details["method"] = "trace"
                failure.details["scriptError"] = result["scriptError"]
                failure.details["warnings"] = recorded(caught)
                raise
            except BaseException as error:
                raise Failure("export", scriptError=result["scriptError"],
                              traceError="the traced module fails when run: " + describe(error), shapes=example_shapes)
            result["method"] = "trace"
            result["warnings"] = recorded(caught)
        result["difference"], result["scale"] = worst, at_scale

        # The server stacks requests into batches; say so when a batch of two does not work.
        if all(spec["kind"] != "offsets" and spec["shape"] and spec["shape"][0] == 1 for spec in job["inputs"]):
            pair = make_inputs(job["inputs"], 2, vocab, torch)
            try:
                diff, scale = difference(flatten(run(model, pair), torch), flatten(run(loaded, pair), torch), torch)
                if not agrees(diff, scale, tolerance):
                    result["batchProblem"] = (f"for a batch of 2 inputs the TorchScript output differs from the eager "
                                              f"one (max difference {diff:.3g} at output scale {scale:.3g})")
            except BaseException as error:
                result["batchProblem"] = "a batch of 2 inputs fails: " + summary(error)
        return result


    def main():
        with open(sys.argv[1]) as handle:
            job = json.load(handle)
        try:
            result = convert(job)
        except Failure as failure:
            result = dict(failure.details, ok=False, error=failure.code)
            result.setdefault("modelClass", job.get("chosenClass"))
        with open(job["result"], "w") as handle:
            json.dump(result, handle)


    if __name__ == "__main__":
        main()
    """#
}
