#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench inference`: a random GPT-2-small-sized
model (transformers, eager attention), one forward pass over a 128-token prompt
with output_hidden_states and output_attentions, on THREADS threads. Prints
`seconds <median>` for the bench to read.

  python3 tests/benches/torch_gpt2.py [THREADS] [TOKENS] [RUNS]
"""
import statistics
import sys
import time

import torch
import transformers

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 128
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
torch.set_num_threads(threads)
torch.manual_seed(0)
config = transformers.GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257,
                                 attn_implementation="eager")
model = transformers.GPT2LMHeadModel(config).eval()
ids = torch.randint(0, config.vocab_size, (1, tokens))
times = []
with torch.no_grad():
    model(ids, output_hidden_states=True, output_attentions=True)  # warm-up
    for _ in range(runs):
        start = time.perf_counter()
        out = model(ids, output_hidden_states=True, output_attentions=True)
        times.append(time.perf_counter() - start)
print(f"torch {torch.__version__} transformers {transformers.__version__} threads {torch.get_num_threads()}")
print(f"seconds {statistics.median(times)}")
