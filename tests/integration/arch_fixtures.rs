//! The catalogue against transformers: every name and shape of every catalogue
//! model equals what transformers builds for the same config (fixtures made by
//! `tests/fixtures/gen_arch_fixtures.py` on the `meta` device), and totals equal
//! `num_parameters()`.

use tensorcity::arch::{self, Architecture, parse_header, parse_header_prefix};

use crate::support::fixtures;

#[derive(serde::Deserialize)]
struct Fixture {
    num_parameters: u64,
    tensors: Vec<(String, Vec<u64>)>,
}

/// Mixtral's published files keep one tensor per expert; transformers >= 5
/// fuses them on load (`mlp.experts.gate_up_proj` = w1 and w3 stacked,
/// `mlp.experts.down_proj` = w2 stacked, `mlp.gate` = `block_sparse_moe.gate`).
/// Fuse ours the same way to compare.
fn fuse_experts(rows: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for (name, shape) in rows {
        let Some((prefix, rest)) = name.split_once(".block_sparse_moe.") else {
            out.push((name, shape));
            continue;
        };
        if rest == "gate.weight" {
            out.push((format!("{prefix}.mlp.gate.weight"), shape));
            continue;
        }
        let parts: Vec<&str> = rest.split('.').collect();
        let (expert, which) = (parts[1], parts[2]);
        let fused = if which == "w2" { "down_proj" } else { "gate_up_proj" };
        let key = format!("{prefix}.mlp.experts.{fused}");
        let i = match out.iter().position(|(n, _)| *n == key) {
            Some(i) => i,
            None => {
                out.push((key, vec![0, 0, 0]));
                out.len() - 1
            }
        };
        let s = &mut out[i].1;
        match which {
            // gate_up_proj: [experts, w1 rows + w3 rows, hidden]
            "w1" => {
                s[0] += 1;
                if expert == "0" {
                    s[1] += shape[0];
                    s[2] = shape[1];
                }
            }
            "w3" if expert == "0" => s[1] += shape[0],
            "w3" => {}
            // down_proj: [experts, hidden, intermediate]
            _ => *s = vec![s[0] + 1, shape[0], shape[1]],
        }
    }
    out
}

#[test]
fn catalogue_matches_transformers_names_shapes_and_totals() {
    for entry in arch::catalogue() {
        let file = format!("{}.json", entry.id.replace('/', "--"));
        let text = std::fs::read_to_string(fixtures().join("arch").join(&file)).expect(&file);
        let fixture: Fixture = serde_json::from_str(&text).unwrap();
        let arch = entry.architecture().unwrap();
        assert_eq!(arch.total_params(), fixture.num_parameters, "{} total", entry.id);

        // Buffers are in the published GPT-2 files but not in transformers' state_dict.
        let ours: Vec<(String, Vec<u64>)> = arch
            .tensors
            .iter()
            .filter(|t| !t.buffer)
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        // transformers 5 keeps Mixtral's experts fused and calls GPT-NeoX's head
        // `lm_head` in memory; the published files (and `save_pretrained`) do not.
        let ours = match arch.family.model_type() {
            "mixtral" => fuse_experts(ours),
            "gpt_neox" => ours
                .into_iter()
                .map(|(n, s)| {
                    (
                        if n == "embed_out.weight" {
                            "lm_head.weight".into()
                        } else {
                            n
                        },
                        s,
                    )
                })
                .collect(),
            _ => ours,
        };
        assert_eq!(ours.len(), fixture.tensors.len(), "{} tensor count", entry.id);
        for (a, b) in ours.iter().zip(&fixture.tensors) {
            assert_eq!(a, b, "{}", entry.id);
        }
        let buffers: Vec<&str> = arch
            .tensors
            .iter()
            .filter(|t| t.buffer)
            .map(|t| t.clean_name.as_str())
            .collect();
        assert!(
            buffers.iter().all(|b| *b == "h.attn.bias"),
            "{}: unexpected buffers {buffers:?}",
            entry.id
        );
    }
}

#[test]
fn must_show_totals() {
    let total = |id: &str| {
        arch::catalogue_entry(id)
            .unwrap()
            .architecture()
            .unwrap()
            .total_params()
    };
    assert_eq!(total("gpt2"), 124_439_808);
    assert_eq!(total("bert-base-uncased"), 109_482_240);
    assert_eq!(total("meta-llama/Llama-3.2-1B"), 1_235_814_400);
    assert_eq!(total("mistralai/Mistral-7B-v0.1"), 7_241_732_096);
    assert_eq!(total("mistralai/Mixtral-8x7B-v0.1"), 46_702_792_704);
    assert_eq!(total("EleutherAI/pythia-160m"), 162_322_944);
    assert_eq!(total("google/gemma-2-2b"), 2_614_341_888);
    assert_eq!(total("Qwen/Qwen3-0.6B"), 596_049_920);
    assert_eq!(total("microsoft/Phi-3-mini-4k-instruct"), 3_821_079_552);
}

#[derive(serde::Deserialize)]
struct RealHeader {
    file_len: u64,
    num_parameters: u64,
}

#[test]
fn real_minilm_header_total_and_buffers() {
    let dir = fixtures().join("arch");
    let bytes = std::fs::read(dir.join("all-MiniLM-L6-v2.header")).unwrap();
    let meta: RealHeader =
        serde_json::from_str(&std::fs::read_to_string(dir.join("all-MiniLM-L6-v2.json")).unwrap()).unwrap();
    let n = parse_header_prefix(&bytes, Some(meta.file_len), "minilm").unwrap();
    let rows = parse_header(&bytes[8..8 + n as usize], Some(meta.file_len), "minilm").unwrap();
    let config = arch::catalogue_entry("sentence-transformers/all-MiniLM-L6-v2")
        .unwrap()
        .config()
        .unwrap();
    let arch = Architecture::from_rows("all-MiniLM-L6-v2", "file", Some(config), rows);
    assert_eq!(arch.total_params(), 22_713_216);
    assert_eq!(arch.total_params(), meta.num_parameters);
    let buffers: Vec<_> = arch
        .tensors
        .iter()
        .filter(|t| t.buffer)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(buffers, ["embeddings.position_ids"]);
    // The real file and the catalogue agree on every parameter.
    let cat = arch::catalogue_entry("sentence-transformers/all-MiniLM-L6-v2")
        .unwrap()
        .architecture()
        .unwrap();
    let mut a: Vec<_> = arch
        .tensors
        .iter()
        .filter(|t| !t.buffer)
        .map(|t| (&t.name, &t.shape))
        .collect();
    let mut b: Vec<_> = cat.tensors.iter().map(|t| (&t.name, &t.shape)).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn model_order_puts_blocks_in_numeric_forward_order() {
    let arch = arch::catalogue_entry("gpt2").unwrap().architecture().unwrap();
    // Shuffle into the alphabetical order a published file uses.
    let mut shuffled = arch.clone();
    shuffled.tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = shuffled
        .model_order()
        .iter()
        .map(|&i| shuffled.tensors[i].name.as_str())
        .collect();
    assert_eq!(&names[..3], ["wte.weight", "wpe.weight", "h.0.ln_1.weight"]);
    assert_eq!(names[names.len() - 1], "ln_f.bias");
    let layers: Vec<u32> = shuffled
        .model_order()
        .iter()
        .filter_map(|&i| shuffled.tensors[i].layer)
        .collect();
    assert!(layers.windows(2).all(|w| w[0] <= w[1]));
    let block: Vec<&str> = names.iter().copied().filter(|n| n.starts_with("h.0.")).collect();
    assert_eq!(block[0], "h.0.ln_1.weight");
    assert_eq!(block.last().copied(), Some("h.0.mlp.c_proj.bias"));
    let q = block.iter().position(|n| n.contains("c_attn.weight")).unwrap();
    let ln2 = block.iter().position(|n| n.contains("ln_2.weight")).unwrap();
    assert!(q < ln2);
}
