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
