"""The adapter for TransformerLens: a `HookedTransformer` (TransformerLens < 4)
or a `TransformerBridge` (4.x, with `enable_compatibility_mode`). Its hook
points map onto the frames:

    hidden 0        blocks.0.hook_resid_pre
    hidden i + 1    blocks.{i}.hook_resid_post      (i < n_layers - 1)
    hidden n_layers ln_final.hook_out (bridge) / ln_final.hook_normalized
    attention i     blocks.{i}.attn.hook_pattern
    mlp i           blocks.{i}.mlp.hook_post
    logits          the forward's output

so a run's frames equal `run_with_cache` at those names. Generation re-runs
the sequence per token (full rows each step; no KV cache through the hooks).
"""
import json

import torch

from . import protocol as P


class LensEngine:
    def __init__(self, model, name=None):
        import transformer_lens
        self.model = model.eval() if hasattr(model, "eval") else model
        cfg = model.cfg
        self.tokenizer = getattr(model, "tokenizer", None)
        self.has_tokenizer = self.tokenizer is not None
        self.n = int(cfg.n_layers)
        hooks = set(model.hook_dict)
        self.final = "ln_final.hook_out" if "ln_final.hook_out" in hooks else "ln_final.hook_normalized"
        if self.final not in hooks:
            raise ValueError("the model has no ln_final hook point")
        self.mlp = all(f"blocks.{i}.mlp.hook_post" in hooks for i in range(self.n))
        self.name = name or getattr(cfg, "model_name", None) or type(model).__name__
        self.dims = {"blocks": self.n, "heads": int(cfg.n_heads), "hidden": int(cfg.d_model),
                     "vocab": int(cfg.d_vocab), "context": int(cfg.n_ctx), "causal": True}
        taps = ["hidden", "attention", "logits"] + (["mlp"] if self.mlp else [])
        self.can = {"text": self.has_tokenizer, "generate": True, "taps": taps, "dtypes": ["f32", "f16"]}
        version = getattr(transformer_lens, "__version__", "")
        self.engine = f"tensorcity_stream (TransformerLens {version}, torch {torch.__version__})".replace(" ,", ",")

    def hello(self):
        hf = getattr(self.model, "original_model", None)
        if hf is not None and hasattr(hf, "config"):
            from .hf import _checkpoint_tensors
            config = json.loads(hf.config.to_json_string(use_diff=False))
            tensors = _checkpoint_tensors(hf, None)
        else:
            cfg = self.model.cfg
            config = {"model_type": "hooked_transformer", "num_hidden_layers": self.n, "hidden_size": cfg.d_model,
                      "num_attention_heads": cfg.n_heads, "vocab_size": cfg.d_vocab,
                      "max_position_embeddings": cfg.n_ctx, "intermediate_size": getattr(cfg, "d_mlp", None)}
            tensors = [{"name": k, "shape": list(v.shape), "dtype": "F32"} for k, v in self.model.state_dict().items()]
        model = {"name": self.name, "revision": None, "config": config, "tensors": tensors}
        return P.hello(self.engine, model, self.dims, self.can)

    def tokenize(self, text):
        return self.model.to_tokens(text)[0].tolist()

    def token_text(self, i):
        return self.tokenizer.decode([i])

    def forward(self, ids, start, state, run):
        n = self.n

        def tap(kind, index):
            return lambda t, hook: run.emit(kind, index, start, t[0])

        fwd = [("blocks.0.hook_resid_pre", tap(P.HIDDEN, 0)), (self.final, tap(P.HIDDEN, n))]
        fwd += [(f"blocks.{i}.hook_resid_post", tap(P.HIDDEN, i + 1)) for i in range(n - 1)]
        fwd += [(f"blocks.{i}.attn.hook_pattern", tap(P.ATTENTION, i)) for i in range(n)]
        if self.mlp:
            fwd += [(f"blocks.{i}.mlp.hook_post", tap(P.MLP, i)) for i in range(n)]
        with torch.no_grad():
            logits = self.model.run_with_hooks(torch.tensor([ids]), fwd_hooks=fwd)[0]
        run.emit(P.LOGITS, 0, start, logits)
        return logits, None, None


def load(path_or_id, device="cpu", dtype=None):
    """A model folder or id through TransformerLens 4's bridge (compatibility mode, weights unprocessed)."""
    from transformer_lens.model_bridge import TransformerBridge
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    bridge = TransformerBridge.boot_transformers(path_or_id, device=device, **kwargs)
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    return LensEngine(bridge, name=path_or_id.rstrip("/").rsplit("/", 1)[-1])
