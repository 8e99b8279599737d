//! Trains tensorcity's embedded default model: a small GPT-2 (the shape in
//! `assets/models/shakespeare/config.json`) on Tiny Shakespeare, with a
//! byte-level BPE tokenizer trained by the `tokenizers` crate and AdamW from
//! candle-nn. Writes `tokenizer.json`, `model.safetensors` and `TRAINING.md`
//! (validation loss and a sample) into the output folder.
//!
//! `cargo run --bin train_default -- --data ../shared/data/tinyshakespeare.txt --minutes 20`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tensorcity::arch::ModelConfig;
use tensorcity::inference::Model;
use tensorcity::inference::Tap;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

#[derive(Parser)]
struct Args {
    /// Training text.
    #[arg(long, default_value = "../shared/data/tinyshakespeare.txt")]
    data: PathBuf,
    /// Model folder holding config.json; outputs are written next to it.
    #[arg(long, default_value = "assets/models/shakespeare")]
    out: PathBuf,
    /// Stop after this many optimiser steps...
    #[arg(long, default_value_t = 100_000)]
    steps: usize,
    /// ...or after this many minutes, whichever comes first.
    #[arg(long, default_value_t = 20.0)]
    minutes: f64,
    /// Tokens per training sequence.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Sequences per optimiser step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate (cosine decay to a tenth).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const END: &str = "<|endoftext|>";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let config_path = args.out.join("config.json");
    let config = ModelConfig::from_json(&std::fs::read(&config_path)?, &config_path.display().to_string())?;
    let vocab = config.vocab_size.context("config.json needs vocab_size")? as usize;

    let tokenizer = train_tokenizer(&args.data, vocab)?;
    tokenizer
        .save(args.out.join("tokenizer.json"), false)
        .map_err(anyhow::Error::msg)?;
    let ids: Vec<u32> = tokenizer
        .encode(text.as_str(), false)
        .map_err(anyhow::Error::msg)?
        .get_ids()
        .to_vec();
    let split = ids.len() * 9 / 10;
    let (train, val) = (&ids[..split], &ids[split..]);
    eprintln!(
        "tokenizer: {} tokens in vocab, corpus {} tokens ({} train / {} val)",
        tokenizer.get_vocab_size(true),
        ids.len(),
        train.len(),
        val.len()
    );
    if train.len() <= args.seq + 1 || val.len() <= args.seq + 1 {
        bail!("corpus too small for sequences of {}", args.seq);
    }

    let device = Device::Cpu;
    let varmap = VarMap::new();
    tensorcity::inference::random::init_weights(&varmap, &config, DType::F32, &device)?;
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = tensorcity::inference::gpt2::load_trainable(&config, vb.into(), "training")?;
    let params = ParamsAdamW {
        lr: args.lr,
        weight_decay: 0.05,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;

    let mut rng = StdRng::seed_from_u64(args.seed);
    let start = Instant::now();
    let budget = args.minutes * 60.0;
    let mut step = 0;
    let mut last_val = f32::NAN;
    while step < args.steps && start.elapsed().as_secs_f64() < budget {
        let progress = (start.elapsed().as_secs_f64() / budget)
            .min(step as f64 / args.steps as f64)
            .max(start.elapsed().as_secs_f64() / budget);
        let lr = args.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()));
        let warm = ((step + 1) as f64 / 100.0).min(1.0);
        opt.set_learning_rate(lr * warm);
        let windows: Vec<&[u32]> = (0..args.batch.max(1))
            .map(|_| {
                let s = rng.random_range(0..train.len() - args.seq - 1);
                &train[s..s + args.seq + 1]
            })
            .collect();
        let loss = batch_loss(&model, &windows, &device)?;
        opt.backward_step(&loss)?;
        step += 1;
        if step % 250 == 0 {
            last_val = validation_loss(&model, val, args.seq, &device)?;
            eprintln!(
                "step {step:>6}  {:>5.0}s  train {:.3}  val {last_val:.3}  lr {:.2e}",
                start.elapsed().as_secs_f64(),
                loss.to_scalar::<f32>()?,
                lr * warm
            );
        }
    }
    last_val = validation_loss(&model, val, args.seq, &device).unwrap_or(last_val);
    save_f16(&varmap, &args.out.join("model.safetensors"))?;
    let prompt = "ROMEO:\n";
    let sample = generate(&model, &tokenizer, prompt, 120, &mut rng)?;
    let report = format!(
        "# The embedded default model\n\nGPT-2 shape from `config.json`, trained by `src/bin/train_default.rs` on Tiny Shakespeare \
         ({} BPE tokens, 90/10 split): {step} AdamW steps of {} x {} tokens in {:.0} s on the CPU.\n\n\
         Validation loss (cross-entropy, nats per token): **{last_val:.3}**\n\n\
         Sample (prompt `ROMEO:`, top-k 20, temperature 0.8):\n\n```text\n{sample}\n```\n",
        ids.len(),
        args.batch,
        args.seq,
        start.elapsed().as_secs_f64()
    );
    std::fs::write(args.out.join("TRAINING.md"), &report)?;
    println!("{report}");
    Ok(())
}

/// Saves the weights as f16 (half the size; inference computes in f32).
fn save_f16(varmap: &VarMap, path: &std::path::Path) -> anyhow::Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("weights lock poisoned"))?;
    let tensors = data
        .iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().to_dtype(DType::F16)?)))
        .collect::<candle_core::Result<std::collections::HashMap<String, Tensor>>>()?;
    candle_core::safetensors::save(&tensors, path)?;
    Ok(())
}

/// Byte-level BPE as GPT-2 uses, trained on the corpus.
fn train_tokenizer(data: &std::path::Path, vocab: usize) -> anyhow::Result<Tokenizer> {
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab)
        .min_frequency(2)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from(END.to_string(), true)])
        .build();
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None::<tokenizers::NormalizerWrapper>)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::default()))
        .build()
        .map_err(anyhow::Error::msg)?;
    tokenizer
        .train_from_files(&mut trainer, vec![data.display().to_string()])
        .map_err(anyhow::Error::msg)?;
    Ok(tokenizer.into())
}

/// Mean next-token cross-entropy over equal-length windows (`w[..n]` predicts `w[1..]`).
fn batch_loss(model: &Model, windows: &[&[u32]], device: &Device) -> anyhow::Result<Tensor> {
    let n = windows.first().map_or(0, |w| w.len() - 1);
    let inputs: Vec<u32> = windows.iter().flat_map(|w| w[..n].iter().copied()).collect();
    let targets: Vec<u32> = windows.iter().flat_map(|w| w[1..].iter().copied()).collect();
    let ids = Tensor::from_vec(inputs, (windows.len(), n), device)?;
    let logits = model.batch_logits(&ids, true)?;
    let logits = logits.reshape((windows.len() * n, logits.dim(2)?))?;
    Ok(candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets, device)?)?)
}

/// `[T, vocab]` logits of one forward pass (the other taps are dropped).
fn logits(model: &Model, tokens: &[u32]) -> anyhow::Result<Tensor> {
    let mut logits = None;
    model.run(tokens, &mut |tap, t| {
        if tap == Tap::Logits {
            logits = Some(t);
        }
        true
    })?;
    logits.context("the model produced no logits")
}

/// Loss over evenly spaced validation windows.
fn validation_loss(model: &Model, val: &[u32], seq: usize, device: &Device) -> anyhow::Result<f32> {
    // Non-overlapping windows covering the whole validation split, 16 per batch.
    let windows: Vec<&[u32]> = (0..(val.len() - 1) / seq)
        .map(|w| &val[w * seq..w * seq + seq + 1])
        .collect();
    let mut total = 0.0;
    for chunk in windows.chunks(16) {
        total += batch_loss(model, chunk, device)?.to_scalar::<f32>()? * chunk.len() as f32;
    }
    Ok(total / windows.len() as f32)
}

fn generate(model: &Model, tokenizer: &Tokenizer, prompt: &str, n: usize, rng: &mut StdRng) -> anyhow::Result<String> {
    let mut ids = tokenizer
        .encode(prompt, false)
        .map_err(anyhow::Error::msg)?
        .get_ids()
        .to_vec();
    let mut sampler = candle_transformers::generation::LogitsProcessor::from_sampling(
        rng.random(),
        candle_transformers::generation::Sampling::TopK {
            k: 20,
            temperature: 0.8,
        },
    );
    for _ in 0..n {
        let context = &ids[ids.len().saturating_sub(model.context())..];
        let last = logits(model, context)?.get(context.len() - 1)?;
        ids.push(sampler.sample(&last)?);
    }
    tokenizer.decode(&ids, false).map_err(anyhow::Error::msg)
}
