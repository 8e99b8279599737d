"""Stream a transformer's activations into tensorcity's 3D city.

    import tensorcity_stream
    tensorcity_stream.serve(model, tokenizer, port=7878)   # any transformers model

then `tensorcity view --engine ws://127.0.0.1:7878`. Adapters: `serve_lens`
for TransformerLens, `serve_nnsight` for nnsight's LanguageModel. The
protocol is specified in PROTOCOL.md beside this package.
"""
from .protocol import VERSION as PROTOCOL_VERSION
from .server import serve as serve_engine

__version__ = "0.1.0"


def serve(model, tokenizer=None, host="127.0.0.1", port=7878, name=None, ready=None):
    """Serves a Hugging Face transformers model (loaded with attn_implementation="eager")."""
    from .hf import TransformersEngine
    serve_engine(TransformersEngine(model, tokenizer, name=name), host=host, port=port, ready=ready)


def serve_lens(model, host="127.0.0.1", port=7878, name=None, ready=None):
    """Serves a TransformerLens model (a HookedTransformer, or a 4.x TransformerBridge)."""
    from .lens import LensEngine
    serve_engine(LensEngine(model, name=name), host=host, port=port, ready=ready)


def serve_nnsight(model, host="127.0.0.1", port=7878, remote=False, name=None, ready=None):
    """Serves an nnsight LanguageModel (remote=True runs each pass on NDIF)."""
    from .nnsight_engine import NnsightEngine
    serve_engine(NnsightEngine(model, remote=remote, name=name), host=host, port=port, ready=ready)
