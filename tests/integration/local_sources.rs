//! Local files and folders: single file, sharded folder, config-only folder,
//! bare files without a config, unknown families.

use tensorcity::arch::{self, Family, LoadOptions, ModelRef, TensorKind};

use crate::support::{tiny_gpt2_tensors, write_safetensors, write_tiny_gpt2};

#[test]
fn single_file_sharded_folder_and_file_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    let three = tmp.path().join("three");
    write_tiny_gpt2(&one, 1);
    write_tiny_gpt2(&three, 3);
    let a = arch::load_folder(&one).unwrap();
    let b = arch::load_folder(&three).unwrap();
    let c = arch::load_safetensors_file(&one.join("model.safetensors")).unwrap();
    let names = |x: &arch::Architecture| {
        let mut v: Vec<_> = x.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(names(&a), names(&b));
    assert_eq!(names(&a), names(&c));
    assert_eq!(a.family, Family::from_model_type("gpt2"));
    assert!(c.config.is_some(), "config.json beside the file is used");
    // 2 layers of hidden 8, vocab 32, 16 positions; the 2 causal masks are buffers.
    let expected: u64 = tiny_gpt2_tensors()
        .iter()
        .filter(|(n, _, _)| !n.ends_with(".attn.bias"))
        .map(|(_, _, s)| s.iter().product::<u64>())
        .sum();
    assert_eq!(a.total_params(), expected);
    assert_eq!(a.tensors.iter().filter(|t| t.buffer).count(), 2);
    assert_eq!(a.num_layers(), 2);
    let qkv = a.tensors.iter().find(|t| t.name == "h.1.attn.c_attn.weight").unwrap();
    assert_eq!(
        (qkv.kind, qkv.layer, qkv.clean_name.as_str()),
        (TensorKind::AttentionQkv, Some(1), "h.attn.c_attn.weight")
    );
}

#[test]
fn bare_file_infers_family_from_names() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("moe.safetensors");
    write_safetensors(
        &path,
        &[
            ("model.embed_tokens.weight", "BF16", &[16, 4]),
            ("model.layers.0.self_attn.q_proj.weight", "BF16", &[4, 4]),
            ("model.layers.0.block_sparse_moe.gate.weight", "BF16", &[2, 4]),
            ("model.layers.0.block_sparse_moe.experts.0.w1.weight", "BF16", &[8, 4]),
            ("model.layers.0.block_sparse_moe.experts.1.w1.weight", "BF16", &[8, 4]),
            ("model.layers.0.self_attn.rotary_emb.inv_freq", "F32", &[2]),
        ],
    );
    let a = arch::load_model(&ModelRef::parse(path.to_str().unwrap()), &LoadOptions::default()).unwrap();
    assert_eq!(a.family, Family::from_model_type("mixtral"));
    let e1 = a.tensors.iter().find(|t| t.name.contains("experts.1.")).unwrap();
    assert_eq!((e1.kind, e1.layer, e1.expert), (TensorKind::Expert, Some(0), Some(1)));
    let router = a.tensors.iter().find(|t| t.name.contains("gate.weight")).unwrap();
    assert_eq!(router.kind, TensorKind::Router);
    assert!(a.tensors.iter().find(|t| t.name.ends_with("inv_freq")).unwrap().buffer);
    assert_eq!(a.total_params(), 64 + 16 + 8 + 32 + 32);
}

#[test]
fn config_only_folder_is_laid_out_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        arch::catalogue_entry("gpt2").unwrap().config_json,
    )
    .unwrap();
    let a = arch::load_folder(tmp.path()).unwrap();
    assert_eq!(a.total_params(), 124_439_808);
    assert!(a.notices.iter().any(|n| n.contains("config.json")));
}

#[test]
fn unknown_model_type_still_shows_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model_type":"falcon","num_hidden_layers":1}"#,
    )
    .unwrap();
    write_safetensors(
        &tmp.path().join("model.safetensors"),
        &[
            ("model.embed_tokens.weight", "F16", &[10, 4]),
            ("model.layers.0.self_attn.qkv_proj.weight", "F16", &[12, 4]),
            ("model.layers.0.mlp.up_proj.weight", "F16", &[16, 4]),
            ("model.norm.weight", "F16", &[4]),
        ],
    );
    let a = arch::load_folder(tmp.path()).unwrap();
    assert!(matches!(&a.family, Family::Unknown(t) if t == "falcon"));
    assert!(a.notices.iter().any(|n| n.contains("falcon")));
    let kinds: Vec<TensorKind> = a.tensors.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [
            TensorKind::Embedding,
            TensorKind::AttentionQkv,
            TensorKind::MlpUp,
            TensorKind::Norm
        ]
    );
}

/// GGUF files written by llama.cpp's `gguf` package (tests/fixtures/gen_gguf_fixtures.py):
/// the architecture from the header alone, named and classified like the
/// Hugging Face checkpoint, fused experts drawn as experts, quant types kept.
#[test]
fn gguf_headers_become_the_architecture() {
    let dir = crate::support::fixtures().join("gguf");
    let open = |name: &str| {
        arch::load_model(
            &ModelRef::parse(dir.join(name).to_str().unwrap()),
            &LoadOptions::default(),
        )
        .unwrap()
    };
    let llama = open("llama-tiny.gguf");
    assert_eq!(llama.family, Family::from_model_type("llama"));
    assert_eq!((llama.num_layers(), llama.total_params()), (2, 86_976));
    let cfg = llama.config.as_ref().unwrap();
    assert_eq!(
        (cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size),
        (Some(64), Some(4), Some(2), Some(101))
    );
    let q = llama
        .tensors
        .iter()
        .find(|t| t.name == "model.layers.1.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(
        (q.kind, q.layer, q.dtype.as_str(), q.shape.as_slice()),
        (TensorKind::AttentionQuery, Some(1), "Q8_0", &[64, 64][..])
    );
    let o = llama
        .tensors
        .iter()
        .find(|t| t.name == "model.layers.0.self_attn.o_proj.weight")
        .unwrap();
    assert_eq!((o.kind, o.dtype.as_str()), (TensorKind::AttentionOutput, "Q4_0"));
    assert_eq!(arch::gguf::bytes_per_param("Q4_0"), Some(18.0 / 32.0));
    assert!(
        llama
            .tensors
            .iter()
            .any(|t| t.name == "lm_head.weight" && t.kind == TensorKind::LmHead)
    );
    assert!(
        llama
            .notices
            .iter()
            .any(|n| n.contains("GGUF v3") && n.contains("Q4_0")),
        "{:?}",
        llama.notices
    );
    let moe = open("mixtral-tiny.gguf");
    assert_eq!(moe.family, Family::from_model_type("mixtral"));
    let experts: Vec<_> = moe.tensors.iter().filter(|t| t.kind == TensorKind::Expert).collect();
    assert_eq!(
        experts.len(),
        2 * 4 * 3,
        "each fused expert tensor is one tensor per expert"
    );
    assert!(
        experts
            .iter()
            .all(|t| t.expert.is_some_and(|e| e < 4) && t.shape.len() == 2)
    );
    assert_eq!(moe.total_params(), 234_944);
    assert!(moe.tensors.iter().any(|t| t.kind == TensorKind::Router));
    // `info --tensors` lists each tensor's quant type with its bytes per parameter.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args(["info", "--tensors"])
        .arg(dir.join("llama-tiny.gguf"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let o_proj = text
        .lines()
        .find(|l| l.contains("layers.0.self_attn.o_proj"))
        .unwrap_or_default();
    assert!(
        out.status.success() && o_proj.ends_with("Q4_0 (0.5625 B/param)"),
        "{text}"
    );
}

#[test]
fn truncated_and_damaged_gguf_files_are_errors_not_panics() {
    let src = std::fs::read(crate::support::fixtures().join("gguf/llama-tiny.gguf")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.gguf");
    let open = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        arch::load_model(&ModelRef::Path(path.clone()), &LoadOptions::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(open(&src), Ok(()));
    // (The file ends in alignment padding: the last 40 bytes are inside its last tensor.)
    for cut in [0, 3, 4, 10, 24, 100, 1000, 3000, 3100, 20_000, src.len() - 40] {
        let e = open(&src[..cut]).unwrap_err();
        assert!(
            e.contains("truncated") || e.contains("empty") || e.contains("not a GGUF"),
            "cut {cut}: {e}"
        );
    }
    // From the command line: one line on stderr, exit code 1.
    for (bytes, expected) in [
        (b"GGML\x03\0\0\0".to_vec(), "not a GGUF"),
        (src[..100].to_vec(), "truncated"),
        ([&src[..4], &1u32.to_le_bytes()[..], &src[8..]].concat(), "version 1"),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
            .arg("info")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(1) && err.trim().lines().count() == 1 && err.contains(expected),
            "{expected}: {err}"
        );
    }
    // Every byte of the header flipped in turn: an error or a (different) architecture, never a panic.
    let header_len = 3168;
    for i in (0..header_len).step_by(7) {
        let mut bad = src.clone();
        bad[i] ^= 0xff;
        let _ = open(&bad);
    }
}

fn summary(a: &arch::Architecture) -> (Family, u32, u64, Vec<(String, Vec<u64>, TensorKind, Option<u32>)>) {
    let mut rows: Vec<_> = a
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.kind, t.layer))
        .collect();
    rows.sort_by(|x, y| x.0.cmp(&y.0));
    (a.family.clone(), a.num_layers(), a.total_params(), rows)
}

/// PyTorch checkpoints written by torch (tests/fixtures/gen_torch_fixtures.py):
/// `torch.save(state_dict)` and the sharded `pytorch_model-0000N-of-00002.bin`
/// layout give the same architecture as their safetensors twins; dtypes,
/// strided views, parameters and nested dicts are read from the pickle.
#[test]
fn pytorch_checkpoints_match_their_safetensors_twins() {
    let fx = crate::support::fixtures();
    let open = |p: std::path::PathBuf| {
        arch::load_model(&ModelRef::parse(p.to_str().unwrap()), &LoadOptions::default()).unwrap()
    };
    for (torch, twin) in [
        ("torch/llama-tiny", "inference/llama-tiny"),
        ("torch/llama-tiny/pytorch_model.bin", "inference/llama-tiny"),
        ("torch/gpt2-tiny-sharded", "inference/gpt2-tiny"),
        (
            "torch/gpt2-tiny-sharded/pytorch_model.bin.index.json",
            "inference/gpt2-tiny",
        ),
    ] {
        assert_eq!(summary(&open(fx.join(torch))), summary(&open(fx.join(twin))), "{torch}");
    }
    let sharded = open(fx.join("torch/gpt2-tiny-sharded"));
    assert!(
        sharded
            .tensors
            .iter()
            .any(|t| t.shard.as_deref() == Some("pytorch_model-00002-of-00002.bin"))
    );
    let mixed = open(fx.join("torch/bf16.pt"));
    let dtype = |n: &str| {
        let t = mixed.tensors.iter().find(|t| t.name == n).unwrap();
        (t.dtype.clone(), t.shape.clone())
    };
    assert_eq!(dtype("model.embed.weight"), ("BF16".into(), vec![10, 4]));
    assert_eq!(dtype("model.proj.weight"), ("F16".into(), vec![4, 8]));
    assert_eq!(dtype("model.proj.weight_t"), ("F32".into(), vec![4, 6]));
    assert_eq!(dtype("model.rows.tail"), ("F32".into(), vec![4, 4]));
    assert_eq!(dtype("model.steps"), ("I64".into(), vec![3]));
    assert_eq!(dtype("model.mask"), ("BOOL".into(), vec![2]));
    assert_eq!(mixed.tensors.len(), 6, "epoch, lr and notes are not tensors");
    let param = open(fx.join("torch/param.pt"));
    assert_eq!(summary(&param).3[0].1, vec![2, 3]);
}

/// A pickle that names `os.system` is refused by name and nothing runs; the
/// pre-1.6 format, a zip without data.pkl and damaged archives are one-line
/// errors (and exit 1 from the CLI), never panics.
#[test]
fn hostile_and_broken_pytorch_checkpoints_are_refused() {
    let fx = crate::support::fixtures().join("torch");
    let marker = std::path::Path::new("/tmp/tensorcity-pickle-ran");
    let _ = std::fs::remove_file(marker);
    let run = |path: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
            .arg("info")
            .arg(path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        (out.status.code(), err)
    };
    let (code, err) = run(&fx.join("evil.bin"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("`os.system`") && err.contains("nothing was run") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!marker.exists(), "the pickle's command ran");
    let (code, err) = run(&fx.join("no-pickle.bin"));
    assert!(code == Some(1) && err.contains("without `data.pkl`"), "{err}");
    let (code, err) = run(&fx.join("legacy.bin"));
    assert!(code == Some(1) && err.contains("pre-1.6 format"), "{err}");

    let src = std::fs::read(fx.join("llama-tiny/pytorch_model.bin")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.bin");
    let open = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        arch::load_model(&ModelRef::Path(path.clone()), &LoadOptions::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(open(&src), Ok(()));
    for cut in [0, 2, 4, 30, 100, 1000, src.len() / 2, src.len() - 30] {
        let e = open(&src[..cut]).unwrap_err();
        assert!(e.lines().count() == 1 && !e.is_empty(), "cut {cut}: {e}");
    }
    // Flipped bytes across the archive (the pickle sits at the front, the directory at the end).
    let tail = src.len().saturating_sub(3000);
    for i in (0..3000).step_by(3).chain((tail..src.len()).step_by(5)) {
        let mut bad = src.clone();
        bad[i] ^= 0xff;
        let _ = open(&bad);
    }
}

/// A Llama converted to GGUF as llama.cpp does, in four types: the same
/// kinds, layers, names, shapes and totals as its safetensors original, and
/// each file's quant type on its matrices.
#[test]
fn gguf_conversions_match_their_safetensors_twin() {
    let dir = crate::support::fixtures().join("gguf");
    let open = |p: std::path::PathBuf| {
        arch::load_model(&ModelRef::parse(p.to_str().unwrap()), &LoadOptions::default()).unwrap()
    };
    let twin = open(dir.join("llama64"));
    for qtype in ["F32", "F16", "Q8_0", "Q4_0"] {
        let gguf = open(dir.join(format!("llama64-{qtype}.gguf")));
        assert_eq!(summary(&gguf), summary(&twin), "{qtype}");
        let q = gguf
            .tensors
            .iter()
            .find(|t| t.name == "model.layers.0.mlp.up_proj.weight")
            .unwrap();
        assert_eq!(q.dtype, qtype);
    }
    for family in ["qwen2", "qwen3", "gemma2", "phi3", "gpt_neox", "mixtral"] {
        let gguf = open(dir.join(format!("families/{family}.gguf")));
        let twin = open(crate::support::fixtures().join(format!("inference/{family}-tiny")));
        assert_eq!(summary(&gguf), summary(&twin), "{family}");
    }
}
