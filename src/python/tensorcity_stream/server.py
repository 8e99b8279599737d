"""The WebSocket server: one thread per viewer connection reads its requests,
one run at a time executes on the engine (runs of all connections share one
lock), and frames are sent from inside the forward pass as each block
finishes. A send blocks while the viewer is behind (the socket's buffers are
the bounded queue), so the forward waits for the viewer; a newer request or a
cancel stops the run at the next tap.
"""
import os
import queue
import struct
import sys
import threading
import time
import traceback

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve as ws_serve

from . import protocol as P


class Cancelled(Exception):
    """The viewer asked for something else; the run stops at the next tap."""


class Run:
    """One request being served: the frames go to `send`; `cancelled` stops it."""

    def __init__(self, connection, request, engine):
        self.connection = connection
        self.id = request["run"]
        self.want = request["want"]
        self.request = request
        self.engine = engine
        self.cancelled = threading.Event()
        self.sent_texts = connection.sent_texts

    def send(self, message):
        if self.cancelled.is_set():
            raise Cancelled()
        self.connection.send(message)

    def wants_block(self, block):
        layers = self.want.get("layers")
        return layers is None or block in layers

    def emit(self, tap, index, start, array):
        """A tapped tensor (numpy or torch, batch dimension removed), reduced as the request asks."""
        want = self.want
        name = {P.HIDDEN: "hidden", P.ATTENTION: "attention", P.MLP: "mlp", P.LOGITS: "logits", P.ROUTER: "router"}[tap]
        if not want.get(name, True):
            if self.cancelled.is_set():
                raise Cancelled()
            return
        block = index - 1 if tap == P.HIDDEN else index
        if tap != P.LOGITS and block >= 0 and not self.wants_block(block):
            return
        if tap == P.ATTENTION and want.get("heads") is not None:
            array = array[list(want["heads"])]
        self.send(list(P.tensor_parts(self.id, tap, index, start, to_numpy(array, want["dtype"]), want["dtype"])))

    def name_tokens(self, ids):
        new = [i for i in dict.fromkeys(int(i) for i in ids) if i not in self.sent_texts]
        if new and self.engine.has_tokenizer:
            self.send(P.texts(self.id, [(i, self.engine.token_text(i)) for i in new]))
            self.sent_texts.update(new)


def to_numpy(x, dtype="f32"):
    """A tensor as numpy in the transport dtype (converted by torch where it lives: vectorised, and
    on a GPU before the copy to the host)."""
    if isinstance(x, np.ndarray):
        return x
    import torch
    return x.detach().to(torch.float16 if dtype == "f16" else torch.float32).cpu().numpy()


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def top_rows(logits, k):
    """Per row of `logits` ([rows, vocab], torch or numpy): [(id, probability), ...], best first."""
    if hasattr(logits, "topk"):  # torch: softmax and top-k where the tensor lives
        import torch
        values, ids = torch.softmax(logits.float(), dim=-1).topk(min(k, logits.shape[-1]), dim=-1)
        return [list(zip(r_ids, r_values)) for r_ids, r_values in zip(ids.tolist(), values.tolist())]
    rows = []
    for row in np.atleast_2d(np.asarray(logits)):
        p = softmax(row)
        kk = min(k, p.size)
        best = np.argpartition(-p, kk - 1)[:kk]
        best = best[np.lexsort((best, -p[best]))]
        rows.append([(int(i), float(p[i])) for i in best])
    return rows


def pick(logits, decoding, rng):
    p = softmax(logits)
    if decoding == "greedy":
        i = int(np.argmax(p))
        return i, float(p[i])
    k = max(1, int(decoding.get("top_k", 50)))
    t = max(1e-3, float(decoding.get("temperature", 1.0)))
    z = np.asarray(logits, dtype=np.float64) / t
    best = np.argsort(-z, kind="stable")[:k]
    q = np.exp(z[best] - z[best].max())
    q /= q.sum()
    i = int(best[rng.choice(len(best), p=q)])
    return i, float(p[i])


def execute(run):
    """Runs one request to its end on `run.engine`, sending every frame."""
    engine, request, want = run.engine, run.request, run.want
    ids = request.get("tokens")
    if ids is None:
        if not engine.has_tokenizer:
            raise ValueError("this engine has no tokenizer; send token ids")
        ids = engine.tokenize(request["text"])
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError("no tokens to run")
    bad = [i for i in ids if not 0 <= i < engine.dims["vocab"]]
    if bad:
        raise ValueError(f"token id {bad[0]} is outside the vocabulary (size {engine.dims['vocab']})")
    context = engine.dims["context"]
    if len(ids) > context:
        raise ValueError(f"{len(ids)} tokens exceed the model's context of {context}; shorten the prompt")
    generate = request["generate"]
    if generate and not engine.dims["causal"]:
        raise ValueError("this model has no language-model head to generate with")
    decoding = request["decoding"]
    rng = np.random.default_rng(decoding.get("seed", 0) if isinstance(decoding, dict) else 0)
    state = None
    start = 0
    for step in range(generate + 1):
        window = ids
        if len(ids) > context:
            # Past the context the model sees the latest window, without a cache.
            window, state, start = ids[-context:], None, 0
            run.send(P.truncated(run.id, context, len(ids) - context))
        run.name_tokens(window)
        run.send(P.tokens(run.id, window))
        began = time.perf_counter()
        logits, lens, state = engine.forward(window[start:], start, state, run)
        if TIMING:
            print(f"tensorcity_stream: run {run.id} pass {step}: forward {1000 * (time.perf_counter() - began):.1f} ms",
                  file=sys.stderr, flush=True)
        position = len(window) - 1
        k = want.get("top_k", 0)
        if logits is not None and k:
            every = want.get("top_k_rows", "last") == "all"
            rows = top_rows(logits if every else logits[-1:], k)
            run.name_tokens([i for row in rows for i, _ in row])
            run.send(P.top_k(run.id, None, start if every else position, rows))
            for layer, entries in enumerate(top_rows(lens, k) if lens is not None else []):
                run.name_tokens([i for i, _ in entries])
                run.send(P.top_k(run.id, layer, position, [entries]))
        if step == generate:
            break
        token, probability = pick(to_numpy(logits[-1]), decoding, rng)
        ids = ids + [token]
        start = len(window) if state is not None else 0
        run.send(P.generated(run.id, token, probability))
    run.send(P.done(run.id))


# TENSORCITY_STREAM_TIMING=1 prints each pass's forward time (hooks and streaming included).
TIMING = bool(os.environ.get("TENSORCITY_STREAM_TIMING"))

def frame_header(length):
    """The header of one unmasked, final binary WebSocket frame (RFC 6455 5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x82, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


# Frames an engine may have encoded but not yet written to the socket.
QUEUE_FRAMES = 4


class Connection:
    """One viewer. Frames go through a small bounded queue to a sender thread,
    so the forward computes the next block while the last one is written; a
    full queue (the viewer is behind) blocks the forward."""

    def __init__(self, ws):
        self.ws = ws
        self.sent_texts = set()
        self.queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.error = None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            message = self.queue.get()
            if message is None:
                return
            if self.error is None:
                try:
                    if isinstance(message, list):
                        self._send_gathered(message)
                    else:
                        self.ws.send(message)
                except Exception as e:  # the viewer went away: the next send raises it
                    self.error = e

    def _send_gathered(self, parts):
        """One binary message from its parts, written with one gathering
        `sendmsg` (the frame header, then each part's buffer: no copy in user
        space, and one frame, so the viewer has no fragments to join either).
        It runs inside the connection's own lock and state check
        (`send_context`), so it never interleaves with a pong or a close;
        where this websockets version lacks those, the parts go as the
        fragments of one message instead."""
        ws = self.ws
        context = getattr(ws, "send_context", None)
        protocol = getattr(ws, "protocol", None)
        if context is None or not hasattr(ws, "send_data") or not hasattr(ws.socket, "sendmsg") \
                or getattr(protocol, "expect_continuation_frame", True):
            ws.send(parts)
            return
        views = [memoryview(p).cast("B") for p in parts]
        with context():
            ws.send_data()  # anything websockets queued goes first
            buffers = [memoryview(frame_header(sum(v.nbytes for v in views))), *views]
            while buffers:
                sent = ws.socket.sendmsg(buffers)
                while buffers and sent >= buffers[0].nbytes:
                    sent -= buffers.pop(0).nbytes
                if buffers:
                    buffers[0] = buffers[0][sent:]

    def send(self, message):
        """One message: bytes, or a list of parts sent as its fragments."""
        if self.error is not None:
            raise self.error
        self.queue.put(message)

    def close(self):
        self.queue.put(None)


def serve(engine, host="127.0.0.1", port=7878, ready=None):
    """Serves `engine` (see adapters) until interrupted. `port=0` picks a free
    port; the address is printed as `listening on ws://HOST:PORT`."""
    model_lock = threading.Lock()

    def handler(ws):
        conn = Connection(ws)
        conn.send(engine.hello())
        current = [None]
        worker = [None]

        def work(run):
            with model_lock:
                try:
                    execute(run)
                except Cancelled:
                    pass
                except ConnectionClosed:
                    pass
                except Exception as e:  # the viewer shows it; the server keeps serving
                    traceback.print_exc()
                    try:
                        conn.send(P.failed(run.id, f"the engine failed: {type(e).__name__}: {e}"))
                    except ConnectionClosed:
                        pass

        try:
            for message in ws:
                try:
                    kind, body = P.parse_request(message)
                except P.ProtocolError as e:
                    conn.send(P.failed(e.run, f"the engine could not read a request: {e}"))
                    continue
                if current[0] is not None:
                    current[0].cancelled.set()
                if kind == "cancel":
                    continue
                run = Run(conn, body, engine)
                current[0] = run
                if worker[0] is not None:
                    worker[0].join()
                worker[0] = threading.Thread(target=work, args=(run,), daemon=True)
                worker[0].start()
        except ConnectionClosed:
            pass
        finally:
            if current[0] is not None:
                current[0].cancelled.set()
            conn.close()

    with ws_serve(handler, host, port, max_size=2**24, compression=None) as server:
        real_port = server.socket.getsockname()[1]
        print(f"tensorcity_stream: {engine.name} listening on ws://{host}:{real_port}", file=sys.stderr, flush=True)
        if ready is not None:
            ready(server, real_port)
        server.serve_forever()
