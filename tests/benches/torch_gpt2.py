#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench inference`, on a random
GPT-2-small-sized model (transformers, eager attention) and THREADS threads:

  forward   one forward pass over a TOKENS-token prompt with
            output_hidden_states and output_attentions;
  generate  `generate` of TOKENS new tokens (greedy, KV cache) after a
            16-token prompt, returning every step's hidden states,
            attentions and logits.

Prints `seconds <median>` for the bench to read. With `serve` it runs one
forward per line read on standard input (after a warm-up; `ready` first) and
prints each one's `seconds`: the bench interleaves them with its own passes, so
both sides see the same machine (a VM's speed drifts within a run).

  python3 tests/benches/torch_gpt2.py [THREADS] [TOKENS] [RUNS] [forward|generate|serve]
"""
import statistics
import sys
import time

import torch
import transformers

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 128
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
mode = sys.argv[4] if len(sys.argv) > 4 else "forward"
torch.set_num_threads(threads)
torch.manual_seed(0)
config = transformers.GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257,
                                 attn_implementation="eager")
model = transformers.GPT2LMHeadModel(config).eval()


def forward():
    ids = torch.randint(0, config.vocab_size, (1, tokens))
    return lambda: model(ids, output_hidden_states=True, output_attentions=True)


def generate():
    ids = torch.randint(0, config.vocab_size, (1, 16))
    return lambda: model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                  output_hidden_states=True, output_attentions=True, output_logits=True,
                                  return_dict_in_generate=True, pad_token_id=0)


if mode == "serve":
    run = forward()
    with torch.no_grad():
        run()  # warm-up
        print(f"torch {torch.__version__} transformers {transformers.__version__} threads {torch.get_num_threads()} forward")
        print("ready", flush=True)
        for _ in sys.stdin:
            start = time.perf_counter()
            run()
            print(f"seconds {time.perf_counter() - start}", flush=True)
    sys.exit(0)

run = {"forward": forward, "generate": generate}[mode]()
times = []
with torch.no_grad():
    run()  # warm-up
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
print(f"torch {torch.__version__} transformers {transformers.__version__} threads {torch.get_num_threads()} {mode}")
print(f"seconds {statistics.median(times)}")
