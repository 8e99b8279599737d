"""The adapter for nnsight's `LanguageModel`, locally or on NDIF (`remote=True`).

The same modules as the transformers adapter are read (those transformers
records its outputs from), as `.output` / `.input` saved inside one
`model.trace(...)`; the frames are sent when the trace returns (with
`remote=True` the values come back from NDIF only then, so a run arrives
whole rather than block by block). Generation re-runs the sequence per token.
"""
import torch

from . import protocol as P
from .hf import TransformersEngine, _output


class NnsightEngine:
    def __init__(self, model, remote=False, name=None):
        import nnsight
        self.lm = model
        self.remote = remote
        hf = getattr(model, "_module", None) or model._model
        inner = TransformersEngine(hf, getattr(model, "tokenizer", None),
                                   name=name or getattr(hf.config, "_name_or_path", None))
        self.inner = inner
        self.tokenizer = inner.tokenizer
        self.has_tokenizer = inner.has_tokenizer
        self.name, self.dims = inner.name, inner.dims
        taps = [t for t in inner.can["taps"] if t != "lens"]
        self.can = dict(inner.can, taps=taps)
        where = "NDIF" if remote else str(next(hf.parameters()).device)
        self.engine = f"tensorcity_stream (nnsight {nnsight.__version__}, on {where})"
        names = {id(m): n for n, m in hf.named_modules()}
        n = len(inner.blocks)
        # (kind, index, module path, "out" | "in", output index), in the order the
        # forward runs them (nnsight reads values in execution order): per block
        # its input (block 0), attention, router, MLP, output; the model's output last.
        paths = [((0, 0), (P.HIDDEN, 0, names[id(inner.blocks[0])], "in", None))]
        paths += [((i, 4), (P.HIDDEN, i + 1, names[id(b)], "out", 0)) for i, b in enumerate(inner.blocks[:-1])]
        paths += [((n, 0), (P.HIDDEN, n, names[id(inner.base)], "out", 0))]
        paths += [((i, 1), (P.ATTENTION, i, names[id(m)], "out", k)) for i, (m, k) in enumerate(inner.attention)]
        paths += [((i, 2), (P.ROUTER, i, names[id(m)], "out", k)) for i, (m, k) in enumerate(inner.router)]
        paths += [((i, 3), (P.MLP, i, names[id(m)], w, 0)) for i, (m, w) in enumerate(inner.mlp)]
        self.paths = [p for _, p in sorted(paths, key=lambda e: e[0])]

    def hello(self):
        return self.inner.hello()

    def tokenize(self, text):
        return self.inner.tokenize(text)

    def token_text(self, i):
        return self.inner.token_text(i)

    def _envoy(self, path):
        envoy = self.lm
        for part in filter(None, path.split(".")):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        return envoy

    def forward(self, ids, start, state, run):
        saved = []
        with torch.no_grad(), self.lm.trace(torch.tensor([ids]), remote=self.remote):
            for kind, index, path, where, out_index in self.paths:
                envoy = self._envoy(path)
                value = envoy.output if where == "out" else envoy.input
                saved.append((kind, index, out_index, value.save()))
            logits = self.lm.output.save()
        for kind, index, out_index, value in saved:
            value = _output(value, out_index) if out_index is not None else value
            if kind == P.ROUTER:
                run.emit(kind, index, start, value.reshape(len(ids), -1))
            else:
                run.emit(kind, index, start, value[0])
        if not self.dims["causal"]:
            return None, None, None
        logits = _output(logits, 0)[0] if not hasattr(logits, "logits") else logits.logits[0]
        run.emit(P.LOGITS, 0, start, logits)
        return logits, None, None
