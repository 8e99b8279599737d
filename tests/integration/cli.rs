//! The `tensorcity info` command end to end: output, JSON, and every kind of bad
//! input giving one clear line on stderr and a non-zero exit, never a panic.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::write_tiny_gpt2;

fn tensorcity(args: &[&str], hf_home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args(args)
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `info` on bad input: exit 1, exactly one line starting with `error:`
/// that contains `needle`.
fn fails_with(args: &[&str], needle: &str, tmp: &Path) {
    let out = tensorcity(args, tmp);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: expected `{needle}` in {err}"
    );
}

fn file_with(tmp: &Path, name: &str, bytes: &[u8]) -> String {
    let p = tmp.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

fn st(header: &str, data: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.resize(v.len() + data, 0);
    v
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fails_with(&["info", &file_with(t, "empty.safetensors", b"")], "empty", t);
    fails_with(&["info", &file_with(t, "three.safetensors", b"abc")], "too short", t);
    let mut claims_more = 500u64.to_le_bytes().to_vec();
    claims_more.extend_from_slice(b"{}");
    fails_with(
        &["info", &file_with(t, "short-header.safetensors", &claims_more)],
        "truncated",
        t,
    );
    let mut huge = 200_000_000u64.to_le_bytes().to_vec();
    huge.extend_from_slice(&[b' '; 64]);
    fails_with(&["info", &file_with(t, "huge.safetensors", &huge)], "100 MB", t);
    fails_with(
        &["info", &file_with(t, "json.safetensors", &st("{\"a\": nope}", 0))],
        "not valid safetensors JSON",
        t,
    );
    let dtype = st(r#"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#, 1);
    fails_with(
        &["info", &file_with(t, "dtype.safetensors", &dtype)],
        "unknown dtype `Q4`",
        t,
    );
    let overlap = st(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        12,
    );
    fails_with(&["info", &file_with(t, "overlap.safetensors", &overlap)], "overlaps", t);
    let outside = st(r#"{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#, 16);
    fails_with(
        &["info", &file_with(t, "outside.safetensors", &outside)],
        "truncated",
        t,
    );
    fails_with(
        &["info", &file_with(t, "pytorch_model.bin", b"PK\x03\x04junkjunk")],
        "not a readable PyTorch checkpoint: not a zip archive",
        t,
    );
    fails_with(
        &[
            "info",
            &file_with(t, "zip.safetensors", b"PK\x03\x04\x14\x00\x00\x00junk"),
        ],
        "not a readable PyTorch checkpoint",
        t,
    );
    fails_with(
        &["info", t.join("nope/model.safetensors").to_str().unwrap()],
        "no such file",
        t,
    );

    let sharded = t.join("sharded");
    write_tiny_gpt2(&sharded, 3);
    std::fs::remove_file(sharded.join("model-00002-of-00003.safetensors")).unwrap();
    fails_with(
        &["info", sharded.to_str().unwrap()],
        "model-00002-of-00003.safetensors",
        t,
    );

    let absurd = t.join("absurd");
    std::fs::create_dir_all(&absurd).unwrap();
    std::fs::write(
        absurd.join("config.json"),
        r#"{"model_type":"gpt2","n_layer":1000000000000,"n_embd":8,"n_head":2,"n_positions":8,"vocab_size":8}"#,
    )
    .unwrap();
    fails_with(&["info", absurd.to_str().unwrap()], "not a real model", t);
    let bad_config = t.join("bad-config");
    std::fs::create_dir_all(&bad_config).unwrap();
    std::fs::write(bad_config.join("config.json"), "{ nope").unwrap();
    fails_with(&["info", bad_config.to_str().unwrap()], "invalid config.json", t);

    fails_with(
        &["info", "meta-llama/Llama-3.1-70B"],
        "close catalogue names: meta-llama/Llama-3.1-405B, meta-llama/Llama-3.1-8B",
        t,
    );
    fails_with(
        &["info", "--offline", "totally-unknown-model-xyz"],
        "tensorcity info --list",
        t,
    );
}

#[test]
fn viewer_without_a_display_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: no display found") && err.contains("xvfb-run"),
        "{err}"
    );
}

#[test]
fn info_prints_summary_json_and_catalogue() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tensorcity(&["info", "gpt2", "--offline"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("124,439,808") && text.contains("attention fused qkv"),
        "{text}"
    );
    assert!(
        stderr(&out).starts_with("note: "),
        "offline fallback is announced: {}",
        stderr(&out)
    );

    let out = tensorcity(
        &["info", "mistralai/Mixtral-8x7B-v0.1", "--catalogue", "--json"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total_params"], 46_702_792_704u64);
    let tensors = json["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 1 + 32 * (4 + 1 + 24 + 2) + 2);
    let expert = tensors
        .iter()
        .find(|t| t["name"] == "model.layers.3.block_sparse_moe.experts.7.w2.weight")
        .unwrap();
    assert_eq!(expert["clean_name"], "model.layers.block_sparse_moe.experts.w2.weight");
    assert_eq!(expert["kind"], "expert");
    assert_eq!(expert["layer"], 3);
    assert_eq!(expert["shape"], serde_json::json!([4096, 14336]));
    assert!(
        json["by_kind"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "router")
    );

    let out = tensorcity(&["info", "--list"], tmp.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for entry in tensorcity::arch::catalogue() {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{} ", entry.id))),
            "{} missing from\n{text}",
            entry.id
        );
    }
    assert!(text.contains("405.85B"), "{text}");

    let out = tensorcity(&["info"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tensorcity/shakespeare"));

    let model = tmp.path().join("m");
    write_tiny_gpt2(&model, 2);
    let out = tensorcity(&["info", model.to_str().unwrap(), "--tensors"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().position(|l| l.contains("wte.weight")).unwrap();
    let last = text.lines().position(|l| l.contains("ln_f.bias")).unwrap();
    assert!(first < last);
}
