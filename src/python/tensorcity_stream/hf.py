"""The adapter for any Hugging Face transformers model (causal LM or encoder).

Activations are taken with forward hooks on the modules transformers itself
records `output_hidden_states` / `output_attentions` from (the model's
`_can_record_outputs`), so every frame equals transformers' own outputs;
each is sent as its block finishes. Generation uses transformers' KV cache:
each step sends one new row (attention `[heads, 1, T]`).
"""
import json
import os

import torch

from . import protocol as P

# Per block, the module whose output (or, for down projections, input) is the
# MLP activation after the nonlinearity — as tensorcity's built-in engine taps it.
MLP_TAPS = [("mlp.act", "out"), ("intermediate", "out"), ("mlp.down_proj", "in"), ("mlp.fc2", "in"),
            ("mlp.c_proj", "in"), ("mlp.dense_4h_to_h", "in")]
FINAL_NORMS = ["norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f"]

SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                      torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.int8: "I8", torch.bool: "BOOL"}


def _specs(model, key):
    """(class, layer_name, index) of what transformers records for `key`."""
    from transformers.utils.output_capturing import OutputRecorder
    table = {}
    for m in model.modules():
        table.update(getattr(m, "_can_record_outputs", None) or {})
    specs = table.get(key)
    if specs is None:
        return []
    specs = specs if isinstance(specs, list) else [specs]
    out = []
    for s in specs:
        if isinstance(s, OutputRecorder):
            out.append((s.target_class, s.class_name, s.layer_name, s.index))
        elif isinstance(s, str):
            out.append((None, s, None, 0 if "hidden" in key else 1))
        else:
            out.append((s, None, None, 0 if "hidden" in key else 1))
    return out


def _modules(model, key):
    """Modules matching transformers' recorder specs for `key`, in forward order, with their output index."""
    found = []
    for target, class_name, layer_name, index in _specs(model, key):
        for name, module in model.named_modules():
            if target is not None and not isinstance(module, target):
                continue
            if class_name is not None and not name.endswith(class_name):
                continue
            if layer_name is not None and "." + layer_name.strip(".") + "." not in name + ".":
                continue
            found.append((module, index))
    return found


def _output(out, index):
    from transformers.utils import ModelOutput
    return out[index] if isinstance(out, (tuple, list, ModelOutput)) else out


def _checkpoint_tensors(model, folder):
    """Tensor names/shapes/dtypes as in the checkpoint (its safetensors headers when the folder has them)."""
    rows = []
    if folder and os.path.isdir(folder):
        from safetensors import safe_open
        for f in sorted(os.listdir(folder)):
            if f.endswith(".safetensors"):
                with safe_open(os.path.join(folder, f), "pt") as st:
                    for name in st.keys():
                        sl = st.get_slice(name)
                        rows.append({"name": name, "shape": list(sl.get_shape()), "dtype": sl.get_dtype()})
    if rows:
        return rows
    seen = set()
    for name, t in model.state_dict(keep_vars=True).items():
        if t.data_ptr() in seen:  # tied weights are stored once
            continue
        seen.add(t.data_ptr())
        rows.append({"name": name, "shape": list(t.shape), "dtype": SAFETENSORS_DTYPES.get(t.dtype, "F32")})
    return rows


class TransformersEngine:
    """Serves a transformers `PreTrainedModel` (eager attention) with its tokenizer (optional)."""

    def __init__(self, model, tokenizer=None, name=None, folder=None):
        import transformers
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.has_tokenizer = tokenizer is not None
        cfg = model.config
        self.name = name or getattr(cfg, "_name_or_path", None) or type(model).__name__
        if getattr(cfg, "_attn_implementation", "eager") != "eager":
            raise ValueError("load the model with attn_implementation=\"eager\": other kernels do not return attention "
                             "probabilities")
        self.blocks = [m for m, _ in _modules(model, "hidden_states")]
        self.attention = _modules(model, "attentions")
        self.router = _modules(model, "router_logits")
        if not self.blocks:
            raise ValueError(f"{type(model).__name__}: transformers records no hidden states for it")
        self.base = model.base_model
        self.causal = model.get_output_embeddings() is not None
        self.mlp = self._mlp_modules()
        self.final_norm = next((getattr(self.base, n) for n in FINAL_NORMS if hasattr(self.base, n)), None)
        heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head")
        context = (getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
                   or getattr(cfg, "n_ctx", None) or 2048)
        self.dims = {"blocks": len(self.blocks), "heads": int(heads), "hidden": int(cfg.hidden_size),
                     "vocab": int(cfg.vocab_size), "context": int(context), "causal": self.causal}
        taps = ["hidden", "attention"] + (["mlp"] if self.mlp else []) + (["router"] if self.router else [])
        taps += ["logits"] + (["lens"] if self.final_norm is not None else []) if self.causal else []
        self.can = {"text": self.has_tokenizer, "generate": self.causal, "taps": taps, "dtypes": ["f32", "f16"]}
        self.engine = f"tensorcity_stream (transformers {transformers.__version__}, torch {torch.__version__}, " \
                      f"{next(model.parameters()).device})"
        self.folder = folder

    def _mlp_modules(self):
        out = []
        for block in self.blocks:
            for path, where in MLP_TAPS:
                module = block
                for part in path.split("."):
                    module = getattr(module, part, None)
                if module is not None:
                    out.append((module, where))
                    break
        return out if len(out) == len(self.blocks) else []

    def hello(self):
        config = json.loads(self.model.config.to_json_string(use_diff=False))
        model = {"name": self.name, "revision": getattr(self.model.config, "_commit_hash", None), "config": config,
                 "tensors": _checkpoint_tensors(self.model, self.folder)}
        return P.hello(self.engine, model, self.dims, self.can)

    def tokenize(self, text):
        return self.tokenizer(text)["input_ids"]

    def token_text(self, i):
        return self.tokenizer.decode([i], skip_special_tokens=False)

    def forward(self, ids, start, cache, run):
        """Runs `ids` (positions start..), streaming taps; returns (the pass's logits, lens rows, cache)."""
        n = len(self.blocks)
        hooks = []
        kept = {}

        def on(module, fn, pre=False):
            hooks.append(module.register_forward_pre_hook(fn, with_kwargs=True) if pre
                         else module.register_forward_hook(fn))

        def first_input(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            run.emit(P.HIDDEN, 0, start, x[0])

        on(self.blocks[0], first_input, pre=True)
        for i, block in enumerate(self.blocks[:-1]):
            def block_out(module, args, out, i=i):
                h = _output(out, 0)[0]
                kept[i + 1] = h[-1]
                run.emit(P.HIDDEN, i + 1, start, h)
            on(block, block_out)
        for i, (module, index) in enumerate(self.attention):
            on(module, lambda m, a, out, i=i, index=index: run.emit(P.ATTENTION, i, start, _output(out, index)[0]))
        for i, (module, where) in enumerate(self.mlp):
            if where == "out":
                on(module, lambda m, a, out, i=i: run.emit(P.MLP, i, start, _output(out, 0)[0]))
            else:
                on(module, lambda m, a, kw, i=i: run.emit(P.MLP, i, start, (a[0] if a else kw["hidden_states"])[0]),
                   pre=True)
        for i, (module, index) in enumerate(self.router):
            on(module, lambda m, a, out, i=i, index=index:
               run.emit(P.ROUTER, i, start, _output(out, index).reshape(len(ids), -1)))
        on(self.base, lambda m, a, out: run.emit(P.HIDDEN, n, start, _output(out, 0)[0]))
        # The logit lens rides in the head's own product: each block's last row,
        # through the final norm, appended to the head's input and split off its
        # output (the head's weights are read once, not twice).
        lens = {}
        head = self.model.get_output_embeddings() if self.causal else None
        if run.want.get("lens") and self.final_norm is not None and head is not None and n > 1:
            def head_in(module, args, kwargs):
                x = args[0] if args else kwargs["input"]
                rows = self.final_norm(torch.stack([kept[b] for b in sorted(kept)])).to(x.dtype)
                lens["rows"] = rows.shape[0]
                x = torch.cat([x, rows.unsqueeze(0)], dim=1)
                return ((x,) + tuple(args[1:]), kwargs) if args else (args, dict(kwargs, input=x))

            def head_out(module, args, out):
                k = lens.pop("rows")
                lens["out"] = out[0, -k:]
                return out[:, :-k]
            on(head, head_in, pre=True)
            on(head, head_out)
        try:
            with torch.no_grad():
                device = next(self.model.parameters()).device
                x = torch.tensor([ids], device=device)
                if self.causal:
                    out = self.model(input_ids=x, past_key_values=cache, use_cache=True)
                else:
                    out = self.model(input_ids=x)
        finally:
            for h in hooks:
                h.remove()
        if not self.causal:
            return None, None, None
        logits = out.logits[0]
        run.emit(P.LOGITS, 0, start, logits)
        lens = lens.get("out")
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if lens is not None and cap:
            lens = torch.tanh(lens / cap) * cap
        return logits, lens, out.past_key_values


def load(path_or_id, device="cpu", dtype=None):
    """A transformers model folder or Hub id -> engine (eager attention, tokenizer when present)."""
    import transformers
    config = transformers.AutoConfig.from_pretrained(path_or_id)
    archs = getattr(config, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(config, "is_decoder", False)
    cls = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    kwargs = {"attn_implementation": "eager"}
    if dtype:
        kwargs["dtype"] = getattr(torch, dtype)
    model = cls.from_pretrained(path_or_id, **kwargs).to(device)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path_or_id)
    except (OSError, ValueError, TypeError):
        tokenizer = None
    folder = path_or_id if os.path.isdir(path_or_id) else None
    return TransformersEngine(model, tokenizer, name=os.path.basename(os.path.normpath(path_or_id)) if folder
                              else path_or_id, folder=folder)
