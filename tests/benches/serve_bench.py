#!/usr/bin/env python3
"""Engines for `cargo bench --bench engine`: a random GPT-2-small-sized model
(12 blocks, 768 wide, 50257 vocabulary; eager attention, 2 torch threads)
served by tensorcity_stream, or `transport`: an engine that sends the same
shapes from memory (no model), to time the transport alone. Before serving,
the gpt2 engine prints the plain forward time of 128 tokens (no hooks, no
outputs kept; median of 5) as `plain forward: N ms`, and before each streamed
pass the same plain forward again (`paired plain forward N ms`).

  python serve_bench.py gpt2|transport PORT [TORCH_THREADS (default 2)]
"""
import sys
import time

import numpy as np
import torch

import tensorcity_stream
from tensorcity_stream import protocol as P
from tensorcity_stream.server import serve

mode, port = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
import transformers  # noqa: E402

config = transformers.GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257,
                                 attn_implementation="eager")
torch.manual_seed(0)
model = transformers.GPT2LMHeadModel(config).eval()
if mode == "gpt2":
    ids = torch.randint(0, 50257, (1, 128))
    with torch.no_grad():
        model(ids)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - t)
    print(f"plain forward: {1000 * sorted(times)[2]:.1f} ms", file=sys.stderr, flush=True)
    from tensorcity_stream.hf import TransformersEngine

    class Paired(TransformersEngine):
        """Each streamed pass right after a plain forward of the same tokens,
        so the two are compared over the same second of a VM whose speed
        drifts (a plain forward once at the start moved 337-458 ms between
        runs of this bench)."""

        def forward(self, ids, start, cache, run):
            if cache is None:
                with torch.no_grad():
                    t = time.perf_counter()
                    model(torch.tensor([ids]))
                    print(f"paired plain forward {1000 * (time.perf_counter() - t):.1f} ms", file=sys.stderr,
                          flush=True)
            return super().forward(ids, start, cache, run)

    serve(Paired(model, None, name="random gpt2-small"), port=port)
else:
    from tensorcity_stream.hf import TransformersEngine

    rng = np.random.default_rng(0)
    shapes = {"hidden": (128, 768), "attn": (12, 128, 128), "mlp": (128, 3072), "logits": (128, 50257)}
    arrays = {k: rng.standard_normal(v, dtype=np.float32) for k, v in shapes.items()}

    class Transport(TransformersEngine):
        """GPT-2-small's hello and shapes; tensors from memory."""

        arrays = arrays

        def forward(self, ids, start, state, run):
            t = len(ids)
            a = self.arrays
            hidden, attn, mlp, logits = a["hidden"][:t], a["attn"][:, :t, :t], a["mlp"][:t], a["logits"][:t]
            run.emit(P.HIDDEN, 0, start, hidden)
            for i in range(12):
                run.emit(P.ATTENTION, i, start, attn)
                run.emit(P.MLP, i, start, mlp)
                run.emit(P.HIDDEN, i + 1, start, hidden)
            run.emit(P.LOGITS, 0, start, logits)
            # As a torch tensor (no copy), so the top-k runs in torch as it
            # does for a model's logits: the numpy path's per-row argpartition
            # took ~13 % of this bench's samples, none of them transport.
            return torch.from_numpy(logits), None, None

    serve(Transport(model, None, name="transport"), port=port)
