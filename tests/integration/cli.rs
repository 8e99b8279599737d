//! The `tensorcity info` command end to end: output and JSON (bad input: the
//! table in `bad_inputs`).

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
