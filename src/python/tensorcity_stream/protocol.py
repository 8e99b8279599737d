"""The activation-stream protocol, version 1 (see PROTOCOL.md beside this package).

Every WebSocket message is binary; its first byte says what it is. Control
messages are UTF-8 JSON after that byte, frames a little-endian header plus raw
tensor bytes. Only numpy here: engines build their frames with these functions.
"""
import json
import struct

import numpy as np

VERSION = 1

HELLO = 0x01
FRAME = 0x02
RUN = 0x10
CANCEL = 0x11

# Frame kinds.
TOKENS, TENSOR, TOP_K, GENERATED, TRUNCATED, DONE, FAILED, TEXTS = range(8)
# Tap kinds of tensor frames.
HIDDEN, ATTENTION, MLP, LOGITS, ROUTER = range(5)
TAP_NAMES = {"hidden": HIDDEN, "attention": ATTENTION, "mlp": MLP, "logits": LOGITS, "router": ROUTER}

DTYPES = {"f32": (0, np.dtype("<f4")), "f16": (1, np.dtype("<f2"))}

# What a viewer asks for when a request says nothing.
DEFAULT_WANT = {
    "hidden": True, "attention": True, "mlp": True, "router": True, "logits": True,
    "top_k": 5, "top_k_rows": "last", "lens": True, "layers": None, "heads": None, "dtype": "f32",
}


class ProtocolError(ValueError):
    """A request that breaks the protocol; `run` is its id when it had one."""

    def __init__(self, message, run=0):
        super().__init__(message)
        self.run = run


def hello(engine, model, dims, can):
    body = {"protocol": VERSION, "engine": engine, "model": model, "dims": dims, "can": can}
    return bytes([HELLO]) + json.dumps(body).encode()


def _head(run, kind):
    return struct.pack("<BQB", FRAME, run, kind)


def tokens(run, ids):
    ids = np.asarray(ids, dtype="<u4")
    return _head(run, TOKENS) + struct.pack("<I", ids.size) + ids.tobytes()


def tensor_parts(run, tap, index, start, array, dtype="f32"):
    """A tapped tensor whose rows are positions start.. of the sequence, as
    (header bytes, the values' buffer): sent as two fragments of one message,
    the values are not copied into a joined message first."""
    code, np_dtype = DTYPES[dtype]
    array = np.ascontiguousarray(array, dtype=np_dtype)
    head = _head(run, TENSOR) + struct.pack(f"<BIQBB{array.ndim}I", tap, index, start, code, array.ndim, *array.shape)
    return head, memoryview(array).cast("B")


def tensor(run, tap, index, start, array, dtype="f32"):
    """The same tensor frame as one bytes object."""
    return b"".join(tensor_parts(run, tap, index, start, array, dtype))


def top_k(run, layer, start, rows):
    """rows[i] = [(id, probability), ...] for position start + i; layer None = final logits."""
    parts = [_head(run, TOP_K), struct.pack("<QQI", 2**64 - 1 if layer is None else layer, start, len(rows))]
    for row in rows:
        parts.append(struct.pack("<I", len(row)))
        parts.extend(struct.pack("<If", int(i), float(p)) for i, p in row)
    return b"".join(parts)


def generated(run, token, probability):
    return _head(run, GENERATED) + struct.pack("<If", token, probability)


def truncated(run, kept, dropped):
    return _head(run, TRUNCATED) + struct.pack("<QQ", kept, dropped)


def done(run):
    return _head(run, DONE)


def failed(run, message):
    text = message.encode()
    return _head(run, FAILED) + struct.pack("<I", len(text)) + text


def texts(run, pairs):
    """Display strings of token ids: [(id, text), ...]."""
    parts = [_head(run, TEXTS), struct.pack("<I", len(pairs))]
    for i, text in pairs:
        raw = text.encode()[:1024]
        parts.append(struct.pack("<II", i, len(raw)) + raw)
    return b"".join(parts)


def parse_request(message):
    """A viewer message -> ("run", dict) or ("cancel", run id)."""
    if isinstance(message, str) or not message:
        raise ProtocolError("messages are binary, the first byte their type")
    try:
        body = json.loads(bytes(message[1:]).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"a malformed request ({e})") from None
    if not isinstance(body, dict) or not isinstance(body.get("run"), int):
        raise ProtocolError("a request without a numeric `run` id")
    run = body["run"]
    if message[0] == CANCEL:
        return "cancel", run
    if message[0] != RUN:
        raise ProtocolError(f"an unknown request type 0x{message[0]:02x}", run)
    want = dict(DEFAULT_WANT)
    want.update(body.get("want") or {})
    if want["dtype"] not in DTYPES:
        raise ProtocolError(f"transport dtype `{want['dtype']}` (f32 or f16)", run)
    body["want"] = want
    if body.get("tokens") is None and body.get("text") is None:
        raise ProtocolError("a run request needs `tokens` or `text`", run)
    decoding = body.get("decoding", "greedy")
    if decoding != "greedy" and not (isinstance(decoding, dict) and "top_k" in decoding):
        raise ProtocolError(f"decoding {decoding!r} (\"greedy\" or {{\"top_k\", \"temperature\", \"seed\"}})", run)
    body["decoding"] = decoding
    body["generate"] = int(body.get("generate") or 0)
    return "run", body
