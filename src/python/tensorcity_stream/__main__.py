"""python -m tensorcity_stream serve MODEL_DIR_OR_ID [--port 7878] [--host 127.0.0.1] [--device cpu]"""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tensorcity_stream",
                                     description="Stream a model's activations to tensorcity (ws://HOST:PORT).")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve a transformers model folder or Hugging Face id")
    s.add_argument("model", help="a model folder (config.json + weights) or a Hugging Face id")
    s.add_argument("--port", type=int, default=7878, help="0 picks a free port (printed)")
    s.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    s.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: the checkpoint's)")
    s.add_argument("--adapter", choices=["transformers", "lens"], default="transformers",
                   help="lens: through TransformerLens (its hook points)")
    args = parser.parse_args(argv)
    looks_local = args.model.startswith((".", "/", "~")) or args.model.count("/") > 1
    if looks_local and not os.path.isdir(os.path.expanduser(args.model)):
        print(f"tensorcity_stream: {args.model}: no such model folder (a folder with config.json and weights, "
              "or a Hugging Face id like gpt2)", file=sys.stderr)
        return 2
    try:
        if args.adapter == "lens":
            from .lens import load
        else:
            from .hf import load
        engine = load(args.model, device=args.device, dtype=args.dtype)
    except (OSError, ValueError, ImportError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"tensorcity_stream: cannot serve {args.model}: {first}", file=sys.stderr)
        return 2
    from .server import serve
    try:
        serve(engine, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"tensorcity_stream: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
