//! The README's bad-input table, row by row: each hostile or broken input run
//! through the command line, and the exact line tensorcity prints for it
//! (exit code 1, that one line on stderr, nothing else, no panic, within a
//! timeout). Rows whose input needs a browser, an engine or the app are
//! checked by the tests the README names beside them. Every message here must
//! also appear in the README's table (`the_readme_table_shows_these_messages`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{fixtures, write_tiny_gpt2};

/// One row: the input (what the README says), the files it needs, the command,
/// and the message with `{dir}` for the row's folder and `{hub}` for the hostile Hub's URL.
struct Row {
    input: &'static str,
    setup: Box<dyn Fn(&Path)>,
    args: &'static [&'static str],
    message: &'static str,
}

fn row(
    input: &'static str,
    setup: impl Fn(&Path) + 'static,
    args: &'static [&'static str],
    message: &'static str,
) -> Row {
    Row {
        input,
        setup: Box::new(setup),
        args,
        message,
    }
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// A safetensors file of this JSON header and `data` zero bytes.
fn st(header: &str, data: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.resize(v.len() + data, 0);
    v
}

/// A GGUF v3 file's first bytes: magic, version, tensor and metadata counts.
fn gguf_start(tensors: u64, keys: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(tensors.to_le_bytes());
    b.extend(keys.to_le_bytes());
    b
}

/// The tiny GPT-2 fixture's config and weights (no tokenizer).
fn tiny_gpt2(dir: &Path) {
    for f in ["config.json", "model.safetensors"] {
        copy(&format!("inference/gpt2-tiny/{f}"), dir, f);
    }
}

fn copy(from: &str, dir: &Path, to: &str) {
    write(dir, to, std::fs::read(fixtures().join(from)).unwrap());
}

/// Every row of the command-line part of the table.
fn rows() -> Vec<Row> {
    vec![
        // Safetensors files.
        row(
            "empty `.safetensors` file",
            |d| write(d, "x.safetensors", b""),
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: the file is empty; expected a safetensors file (8-byte header length, JSON header, tensor data)"#,
        ),
        row(
            "3-byte file",
            |d| write(d, "x.safetensors", b"abc"),
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: only 3 bytes, too short for a safetensors header (needs 8 or more); the file is truncated or not safetensors"#,
        ),
        row(
            "header length past the end of the file",
            |d| {
                let mut b = 500u64.to_le_bytes().to_vec();
                b.extend_from_slice(b"{}");
                write(d, "x.safetensors", b)
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: header claims 500 bytes but only 2 follow the length prefix; the file is truncated (download it again)"#,
        ),
        row(
            "header length of 200 MB",
            |d| {
                let mut b = 200_000_000u64.to_le_bytes().to_vec();
                b.extend_from_slice(&[b' '; 64]);
                write(d, "x.safetensors", b)
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: header claims 200000000 bytes, over the 100 MB limit; the file is corrupt or not safetensors"#,
        ),
        row(
            "header that is not JSON",
            |d| write(d, "x.safetensors", st("{\"a\": nope}", 0)),
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: the header is not valid safetensors JSON (tensor `a`: expected ident at line 1 column 8); the file is corrupt or not safetensors"#,
        ),
        row(
            "header that is not UTF-8",
            |d| {
                write(d, "x.safetensors", {
                    let mut b = st(r#"{"w\u{0}":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 4);
                    let at = b.iter().position(|&x| x == b'w').unwrap() + 1;
                    b[at] = 0xff;
                    b
                })
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: the header is not valid safetensors JSON (invalid unicode code point at line 1 column 4); the file is corrupt or not safetensors"#,
        ),
        row(
            "unknown dtype",
            |d| {
                write(
                    d,
                    "x.safetensors",
                    st(r#"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#, 1),
                )
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: tensor `w` has unknown dtype `Q4`; supported: BOOL, U8, I8, F8_*, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64, F4, F6_*"#,
        ),
        row(
            "overlapping tensors",
            |d| {
                write(
                    d,
                    "x.safetensors",
                    st(
                        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                        12,
                    ),
                )
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: tensor `b` has bad data offsets: starts at 4, overlaps the previous tensor (expected 8); the file is corrupt"#,
        ),
        row(
            "tensor past the end of the data",
            |d| {
                write(
                    d,
                    "x.safetensors",
                    st(r#"{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#, 16),
                )
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: tensor data ends at byte 4068 but the file has 84 bytes; the file is truncated (download it again)"#,
        ),
        row(
            "shape that disagrees with its byte range",
            |d| {
                write(
                    d,
                    "x.safetensors",
                    st(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8),
                )
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: tensor `a` has bad data offsets: holds 8 bytes but shape [3] x F32 needs 12; the file is corrupt"#,
        ),
        row(
            "shape whose element count overflows 64 bits",
            |d| {
                write(
                    d,
                    "x.safetensors",
                    st(
                        r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
                        8,
                    ),
                )
            },
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: tensor `a` has bad data offsets: shape [4294967296, 4294967296, 16] overflows; the file is corrupt"#,
        ),
        row(
            "zip bytes named `.safetensors`",
            |d| write(d, "x.safetensors", b"PK\x03\x04\x14\x00\x00\x00junk"),
            &["info", "{dir}/x.safetensors"],
            r#"{dir}/x.safetensors: not a readable PyTorch checkpoint: not a zip archive (invalid Zip archive: Could not find EOCD); PyTorch checkpoints since 1.6 are zip files — re-save it with a current torch"#,
        ),
        row(
            "file that does not exist",
            |_| {},
            &["info", "{dir}/nope/model.safetensors"],
            r#"{dir}/nope/model.safetensors: no such file or folder; give a .safetensors file, a model folder, a Hugging Face id or a catalogue name (see `tensorcity info --list`)"#,
        ),
        // GGUF files.
        row(
            "`.gguf` without the GGUF magic",
            |d| write(d, "x.gguf", b"GGML\x03\0\0\0"),
            &["info", "{dir}/x.gguf"],
            r#"{dir}/x.gguf: not a readable GGUF header: not a GGUF file (it does not start with `GGUF`)"#,
        ),
        row(
            "GGUF version 1",
            |d| {
                let src = std::fs::read(fixtures().join("gguf/llama-tiny.gguf")).unwrap();
                write(d, "x.gguf", [&src[..4], &1u32.to_le_bytes()[..], &src[8..]].concat())
            },
            &["info", "{dir}/x.gguf"],
            r#"{dir}/x.gguf: not a readable GGUF header: GGUF version 1; tensorcity reads versions 2 and 3"#,
        ),
        row(
            "GGUF cut inside its header",
            |d| {
                let src = std::fs::read(fixtures().join("gguf/llama-tiny.gguf")).unwrap();
                write(d, "x.gguf", &src[..100])
            },
            &["info", "{dir}/x.gguf"],
            r#"{dir}/x.gguf: not a readable GGUF header: the file ends inside its GGUF header; it is truncated"#,
        ),
        row(
            "GGUF claiming 10^12 tensors",
            |d| write(d, "x.gguf", gguf_start(1_000_000_000_000, 0)),
            &["info", "{dir}/x.gguf"],
            r#"{dir}/x.gguf: not a readable GGUF header: 1000000000000 tensors and 0 metadata keys, over the limits (1048576, 65536)"#,
        ),
        row(
            "GGUF string claiming 2^60 bytes",
            |d| {
                let mut b = gguf_start(0, 1);
                b.extend((1u64 << 60).to_le_bytes());
                b.extend(b"general.architecture");
                write(d, "x.gguf", b)
            },
            &["info", "{dir}/x.gguf"],
            r#"{dir}/x.gguf: not a readable GGUF header: a string of 1152921504606846976 bytes, beyond the file or the 16 MB limit"#,
        ),
        // PyTorch checkpoints.
        row(
            "pickle that calls `os.system`",
            |d| copy("torch/evil.bin", d, "pytorch_model.bin"),
            &["info", "{dir}/pytorch_model.bin"],
            r#"{dir}/pytorch_model.bin: refused: its pickle names the global `os.system`, which is not a tensor; a checkpoint that asks for it wants to run code when loaded — nothing was run; do not torch.load it either"#,
        ),
        row(
            "pre-1.6 (non-zip) `torch.save` file",
            |d| copy("torch/legacy.bin", d, "pytorch_model.bin"),
            &["info", "{dir}/pytorch_model.bin"],
            r#"{dir}/pytorch_model.bin: a PyTorch checkpoint in the pre-1.6 format (bare pickles, no zip); re-save it with a current torch: `python -c "import torch; torch.save(torch.load('pytorch_model.bin', weights_only=True), 'pytorch_model.bin')"`, or convert it to safetensors"#,
        ),
        row(
            "zip without `data.pkl`",
            |d| copy("torch/no-pickle.bin", d, "pytorch_model.bin"),
            &["info", "{dir}/pytorch_model.bin"],
            r#"{dir}/pytorch_model.bin: not a readable PyTorch checkpoint: a zip archive without `data.pkl`; not a torch.save checkpoint"#,
        ),
        row(
            "`pytorch_model.bin` of junk",
            |d| write(d, "pytorch_model.bin", b"PK\x03\x04junkjunk"),
            &["info", "{dir}/pytorch_model.bin"],
            r#"{dir}/pytorch_model.bin: not a readable PyTorch checkpoint: not a zip archive (invalid Zip archive: Could not find EOCD); PyTorch checkpoints since 1.6 are zip files — re-save it with a current torch"#,
        ),
        // Folders, indexes, configs.
        row(
            "sharded folder missing a shard",
            |d| {
                write_tiny_gpt2(d, 3);
                std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).unwrap();
            },
            &["info", "{dir}"],
            r#"{dir}/model.safetensors.index.json: shard `model-00002-of-00003.safetensors` is named in the index but missing; download it next to the index or fix the index"#,
        ),
        row(
            "shard index naming `../../etc/passwd`",
            |d| {
                write(
                    d,
                    "config.json",
                    std::fs::read(fixtures().join("inference/gpt2-tiny/config.json")).unwrap(),
                );
                write(
                    d,
                    "model.safetensors.index.json",
                    r#"{"weight_map": {"wte.weight": "../../etc/passwd"}}"#,
                );
            },
            &["info", "{dir}"],
            r#"{dir}/model.safetensors.index.json: invalid shard index (shard path `../../etc/passwd` leaves the model folder); expected model.safetensors.index.json with a `weight_map` object"#,
        ),
        row(
            "shard index that is not JSON",
            |d| write(d, "model.safetensors.index.json", "{ weight_map"),
            &["info", "{dir}"],
            r#"{dir}/model.safetensors.index.json: invalid shard index (key must be a string at line 1 column 3); expected model.safetensors.index.json with a `weight_map` object"#,
        ),
        row(
            "config.json with 10^12 layers",
            |d| {
                write(
                    d,
                    "config.json",
                    r#"{"model_type":"gpt2","n_layer":1000000000000,"n_embd":8,"n_head":2,"n_positions":8,"vocab_size":8}"#,
                )
            },
            &["info", "{dir}"],
            r#"{dir}/config.json: 1000000000000 layers of 13 tensors would be over 100000 tensors; the config is not a real model"#,
        ),
        row(
            "config.json that is not JSON",
            |d| write(d, "config.json", "{ nope"),
            &["info", "{dir}"],
            r#"{dir}/config.json: invalid config.json (key must be a string at line 1 column 3); it must be a JSON object as written by transformers"#,
        ),
        row(
            "config.json of an unknown architecture, no weights",
            |d| write(d, "config.json", r#"{"model_type":"mamba2","hidden_size":8}"#),
            &["info", "{dir}"],
            r#"{dir}/config.json: model_type `mamba2` is not one the catalogue can lay out from config.json alone (gpt2, bert, gpt_neox, gemma2, mixtral, qwen3, phi3, qwen2, mistral, llama); open its .safetensors file or folder instead"#,
        ),
        row(
            "folder with nothing tensorcity reads",
            |d| write(d, "README.md", "hi"),
            &["info", "{dir}"],
            r#"{dir}: no model.safetensors, model.safetensors.index.json or config.json in this folder; point at a Hugging Face model folder or a .safetensors file"#,
        ),
        // Running a model.
        row(
            "prompt text for a model without a tokenizer",
            tiny_gpt2,
            &["capture", "{dir}", "--prompt", "hello", "--out", "{dir}/c.safetensors"],
            r#"{dir}: no tokenizer.json, so text cannot be tokenized; type token ids (`5, 17, 42`), pass --token-ids, or put the model's tokenizer.json beside it"#,
        ),
        row(
            "token id past the vocabulary",
            tiny_gpt2,
            &[
                "capture",
                "{dir}",
                "--token-ids",
                "1,5000",
                "--out",
                "{dir}/c.safetensors",
            ],
            r#"token id 5000 is outside the vocabulary of 101 tokens (ids 0 to 100)"#,
        ),
        row(
            "token ids that are not numbers",
            tiny_gpt2,
            &[
                "capture",
                "{dir}",
                "--token-ids",
                "1,two",
                "--out",
                "{dir}/c.safetensors",
            ],
            r#"invalid value 'two' for '--token-ids <TOKEN_IDS>': invalid digit found in string (see --help)"#,
        ),
        row(
            "weights with NaN",
            |d| {
                copy("inference/gpt2-tiny/config.json", d, "config.json");
                let mut b = std::fs::read(fixtures().join("inference/gpt2-tiny/model.safetensors")).unwrap();
                let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
                for x in b[8 + n..].chunks_exact_mut(4) {
                    x.copy_from_slice(&f32::NAN.to_le_bytes());
                }
                write(d, "model.safetensors", b)
            },
            &["capture", "{dir}", "--token-ids", "1,2", "--out", "{dir}/c.safetensors"],
            r#"{dir}: the weights contain NaN or infinite values (transformer.h.0.attn.c_attn.bias, transformer.h.0.attn.c_attn.weight, transformer.h.0.attn.c_proj.bias and 25 more tensors), so hidden state 0 is not finite; the checkpoint is corrupt: download or export it again"#,
        ),
        row(
            "known family, config missing a field it needs",
            |d| {
                copy("inference/llama-tiny/model.safetensors", d, "model.safetensors");
                write(
                    d,
                    "config.json",
                    r#"{"model_type":"llama","hidden_size":32,"num_hidden_layers":2,"vocab_size":101}"#,
                );
            },
            &["capture", "{dir}", "--token-ids", "1,2", "--out", "{dir}/c.safetensors"],
            r#"{dir} config.json: missing field `intermediate_size`; expected a `llama` config.json as transformers writes it"#,
        ),
        // Command-line arguments.
        row(
            "model id not on the Hub nor in the catalogue, offline",
            |_| {},
            &["info", "--offline", "totally-unknown-model-xyz"],
            r#"`totally-unknown-model-xyz`: offline and not in the Hugging Face cache; not in the local cache and not in the built-in catalogue; see `tensorcity info --list`"#,
        ),
        row(
            "model id one digit off a catalogue entry, Hub unreachable",
            |_| {},
            &["info", "meta-llama/Llama-3.1-70B"],
            r#"`meta-llama/Llama-3.1-70B`: the Hugging Face Hub is unreachable; not in the local cache and not in the built-in catalogue; close catalogue names: meta-llama/Llama-3.1-405B, meta-llama/Llama-3.1-8B, meta-llama/Llama-3.2-1B"#,
        ),
        row(
            "`--size 0x0`",
            |_| {},
            &["render", "gpt2", "--offline", "--size", "0x0", "--out", "{dir}/x.png"],
            r#"invalid value '0x0' for '--size <SIZE>': size `0x0`: use WIDTHxHEIGHT, e.g. 1280x720, each 16..=8192 (see --help)"#,
        ),
        row(
            "`--size 100000x100000`",
            |_| {},
            &[
                "render",
                "gpt2",
                "--offline",
                "--size",
                "100000x100000",
                "--out",
                "{dir}/x.png",
            ],
            r#"invalid value '100000x100000' for '--size <SIZE>': size `100000x100000`: use WIDTHxHEIGHT, e.g. 1280x720, each 16..=8192 (see --help)"#,
        ),
        row(
            "`--out` with an unknown extension",
            |_| {},
            &["record", "gpt2", "--offline", "--out", "{dir}/x.avi"],
            r#"{dir}/x.avi: unsupported output type `.avi`; use .mp4, .gif or a folder for PNG frames (e.g. frames/)"#,
        ),
        row(
            "`--duration` of a year",
            |_| {},
            &[
                "record",
                "gpt2",
                "--offline",
                "--duration",
                "31536000",
                "--out",
                "{dir}/x.gif",
            ],
            r#"31536000 s at 30 fps is over 100,000 frames; shorten --duration or lower --fps"#,
        ),
        row(
            "camera path that is not RON",
            |d| write(d, "p.ron", "(keyframes: [(time: oops"),
            &[
                "record",
                "gpt2",
                "--offline",
                "--camera",
                "{dir}/p.ron",
                "--out",
                "{dir}/x.gif",
            ],
            r#"{dir}/p.ron: not a camera path (RON) at 1:20-1:21: Expected float; expected `(keyframes: [(time: 0.0, position: (x, y, z), look_at: (x, y, z)), ...])`"#,
        ),
        row(
            "camera path with times going backwards",
            |d| {
                write(
                    d,
                    "p.ron",
                    "(keyframes: [(time: 1.0, position: (0.0, 0.0, 5.0), look_at: (0.0, 0.0, 0.0)), (time: 0.5, position: (1.0, 0.0, 5.0), look_at: (0.0, 0.0, 0.0))])",
                )
            },
            &[
                "record",
                "gpt2",
                "--offline",
                "--camera",
                "{dir}/p.ron",
                "--out",
                "{dir}/x.gif",
            ],
            r#"{dir}/p.ron: keyframe 1: time 0.5 is not after the previous keyframe's"#,
        ),
        row(
            "frame script with an unknown command",
            |d| write(d, "s.txt", "wait-ready\nfly away\n"),
            &["view", "gpt2", "--offline", "--script", "{dir}/s.txt"],
            r#"{dir}/s.txt: line 2: unknown command (`fly away`)"#,
        ),
        row(
            "`--select` past the prompt's last token",
            |_| {},
            &["render", "--prompt", "ROMEO:", "--select", "99", "--out", "{dir}/x.png"],
            r#"--select 99: the prompt ran as 2 tokens; choose 0 to 1"#,
        ),
        row(
            "`--heads` past the model's last head",
            |_| {},
            &["render", "--prompt", "ROMEO:", "--heads", "6", "--out", "{dir}/x.png"],
            r#"--heads 6: the model has 6 attention heads; choose 0 to 5, mean or max"#,
        ),
        row(
            "`--at` above the top floor",
            |_| {},
            &["render", "--prompt", "ROMEO:", "--at", "9", "--out", "{dir}/x.png"],
            r#"--at 9: the playhead is in hidden states, from 0 to 6 for this model; choose one in that range"#,
        ),
        row(
            "`diff` against a file that does not exist",
            |d| copy("inference/gpt2-tiny/model.safetensors", d, "a.safetensors"),
            &["diff", "{dir}/a.safetensors", "{dir}/b.safetensors"],
            r#"{dir}/b.safetensors: no such file or folder; give a .safetensors file, a model folder, a Hugging Face id or a catalogue name (see `tensorcity info --list`)"#,
        ),
        row(
            "`--generate` of a million tokens",
            tiny_gpt2,
            &[
                "capture",
                "{dir}",
                "--token-ids",
                "1",
                "--generate",
                "1000000",
                "--out",
                "{dir}/c.safetensors",
            ],
            r#"generation: 1 prompt + 1000000 new tokens exceed the model's context of 64; generate fewer tokens or shorten the prompt"#,
        ),
    ]
}

/// A process gets this long before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Outcome {
    code: Option<i32>,
    stderr: String,
    stdout: String,
}

fn run(args: &[String], home: &Path, env: &[(&str, &str)]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args(args)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{args:?} hung for {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn fill(s: &str, dir: &Path, hub: &str) -> String {
    s.replace("{dir}", &dir.display().to_string()).replace("{hub}", hub)
}

/// Runs rows; returns the problems (empty when every row printed its message).
fn check(rows: Vec<Row>, hub: &str, env: &[(&str, &str)]) -> Vec<String> {
    let print = std::env::var_os("TENSORCITY_PRINT_BAD_INPUTS").is_some();
    let mut problems = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(format!("row{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        (row.setup)(&dir);
        let args: Vec<String> = row.args.iter().map(|a| fill(a, &dir, hub)).collect();
        let out = run(&args, &tmp.path().join("home"), env);
        let line = out
            .stderr
            .trim_end()
            .replace(&dir.display().to_string(), "{dir}")
            .replace(hub, "{hub}");
        if print {
            println!("ROW {} || {line}", row.input);
            continue;
        }
        let expected = format!("error: {}", row.message);
        // Usage errors (clap's, one line) exit 2, every other error 1.
        let code = if row.message.ends_with("(see --help)") { 2 } else { 1 };
        if out.code != Some(code) || line != expected || !out.stdout.is_empty() {
            problems.push(format!(
                "{}: exit {:?}, stderr `{line}`, stdout `{}`; expected `{expected}`",
                row.input,
                out.code,
                out.stdout.trim()
            ));
        }
        if !args.iter().any(|a| a.ends_with(".safetensors") && a.contains("/c.")) {
            continue;
        }
        let leftovers: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("c.")))
            .collect();
        if !leftovers.is_empty() {
            problems.push(format!("{}: left {leftovers:?} behind", row.input));
        }
    }
    problems
}

#[test]
fn every_bad_command_line_input_prints_its_one_line() {
    let problems = check(rows(), "http://127.0.0.1:9", &[]);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A Hub that misbehaves per repository (`hostile/NAME`): it answers the repo
/// info, `config.json` and HEAD requests as the Hub does, and then, for the
/// weights' Range requests, hangs (`hang`), trickles a byte every few seconds
/// (`slow`), redirects to itself (`loop`), sends other bytes than the
/// `Content-Range` it names (`range`), claims a 90 MB header (`huge`), 404s
/// the second shard (`shard404`), or refuses everything with 401 (`gated`).
struct HostileHub {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HostileHub {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

impl HostileHub {
    fn start() -> HostileHub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let model =
            std::sync::Arc::new(std::fs::read(fixtures().join("inference/gpt2-tiny/model.safetensors")).unwrap());
        let config = std::sync::Arc::new(std::fs::read(fixtures().join("inference/gpt2-tiny/config.json")).unwrap());
        let flag = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (model, config, stop) = (model.clone(), config.clone(), flag.clone());
                std::thread::spawn(move || serve(stream, &model, &config, &stop));
            }
        });
        HostileHub { url, stop }
    }
}

fn serve(mut stream: std::net::TcpStream, model: &[u8], config: &[u8], stop: &std::sync::atomic::AtomicBool) {
    use std::io::{BufReader, Write};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let Some((method, path, range)) = crate::support::read_request(&mut reader) else {
            return;
        };
        let (method, path) = (method.as_str(), path.as_str());
        let range = range.map(|(a, b)| (a as usize, b as usize));
        let repo = path
            .trim_start_matches("/api/models/")
            .trim_start_matches('/')
            .strip_prefix("hostile/")
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        let file = path.rsplit('/').next().unwrap_or("");
        let respond = |stream: &mut std::net::TcpStream,
                       status: &str,
                       headers: &[(&str, String)],
                       body: &[u8],
                       send_body: bool| {
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Repo-Commit: {COMMIT}\r\nETag: \"e{}\"\r\n",
                body.len(),
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            if send_body {
                let _ = stream.write_all(body);
            }
        };
        let not_found = |stream: &mut std::net::TcpStream| {
            respond(
                stream,
                "404 Not Found",
                &[("X-Error-Code", "EntryNotFound".into())],
                b"not found",
                true,
            )
        };
        if repo == "gated" {
            respond(&mut stream, "401 Unauthorized", &[], b"gated", true);
            continue;
        }
        if path.starts_with("/api/models/") {
            let mut siblings = vec!["config.json", "model.safetensors"];
            if repo == "shard404" {
                siblings = vec![
                    "config.json",
                    "model.safetensors.index.json",
                    "model-00001-of-00002.safetensors",
                    "model-00002-of-00002.safetensors",
                ];
            }
            let body = serde_json::json!({"id": format!("hostile/{repo}"), "sha": COMMIT,
                "siblings": siblings.iter().map(|f| serde_json::json!({"rfilename": f})).collect::<Vec<_>>()});
            respond(
                &mut stream,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                body.to_string().as_bytes(),
                true,
            );
            continue;
        }
        let body: Vec<u8> = match (repo.as_str(), file) {
            (_, "config.json") => config.to_vec(),
            ("shard404", "model.safetensors.index.json") => serde_json::json!({"weight_map": {
                "wte.weight": "model-00001-of-00002.safetensors", "wpe.weight": "model-00002-of-00002.safetensors"}})
            .to_string()
            .into_bytes(),
            ("shard404", "model-00001-of-00002.safetensors") => model.to_vec(),
            ("shard404", _) => {
                not_found(&mut stream);
                continue;
            }
            (_, "model.safetensors") if repo == "huge" => {
                let mut fake = 90_000_000u64.to_le_bytes().to_vec();
                fake.resize(200_000_000, b' ');
                fake
            }
            (_, "model.safetensors") => model.to_vec(),
            _ => {
                not_found(&mut stream);
                continue;
            }
        };
        let size = [
            ("X-Linked-Size", body.len().to_string()),
            ("Accept-Ranges", "bytes".into()),
        ];
        if method == "HEAD" {
            respond(&mut stream, "200 OK", &size, &body, false);
            continue;
        }
        let is_weights = file.ends_with(".safetensors");
        let Some((a, b)) = range.filter(|_| is_weights) else {
            respond(&mut stream, "200 OK", &size, &body, true);
            continue;
        };
        let b = b.min(body.len().saturating_sub(1));
        match repo.as_str() {
            "hang" => {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
            "slow" => {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                    b + 1 - a,
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                for byte in &body[a..=b] {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
                        return;
                    }
                    let _ = stream.flush();
                    std::thread::sleep(Duration::from_secs(3));
                }
            }
            "loop" => respond(&mut stream, "302 Found", &[("Location", path.to_string())], b"", true),
            "range" => {
                // Names the bytes asked for, sends bytes from 64 further on.
                let (x, y) = ((a + 64).min(body.len() - 1), (b + 64).min(body.len() - 1));
                let cr = format!("bytes {a}-{b}/{}", body.len());
                respond(
                    &mut stream,
                    "206 Partial Content",
                    &[("Content-Range", cr)],
                    &body[x..=y],
                    true,
                );
            }
            _ => {
                let cr = format!("bytes {a}-{b}/{}", body.len());
                respond(
                    &mut stream,
                    "206 Partial Content",
                    &[("Content-Range", cr)],
                    &body[a..=b],
                    true,
                );
            }
        }
    }
}

fn hub_rows() -> Vec<Row> {
    let none = |_: &Path| {};
    vec![
        row(
            "Hub: a server that accepts and never answers",
            none,
            &["info", "hostile/hang"],
            r#"`hostile/hang`: the Hub did not answer within 2 s (a slow link: set TENSORCITY_HUB_TIMEOUT=SECS); not in the local cache and not in the built-in catalogue; see `tensorcity info --list`"#,
        ),
        row(
            "Hub: a server that sends a byte every 3 s",
            none,
            &["info", "hostile/slow"],
            r#"`hostile/slow`: the Hub did not answer within 2 s (a slow link: set TENSORCITY_HUB_TIMEOUT=SECS); not in the local cache and not in the built-in catalogue; see `tensorcity info --list`"#,
        ),
        row(
            "Hub: a redirect loop",
            none,
            &["info", "hostile/loop"],
            r#"`hostile/loop`: the Hub's answer redirected too many times (a redirect loop); not in the local cache and not in the built-in catalogue; see `tensorcity info --list`"#,
        ),
        row(
            "Hub: a `Content-Range` naming other bytes than those sent",
            none,
            &["info", "hostile/range"],
            r#"hostile/range/model.safetensors: header claims 7019249445794772065 bytes, over the 100 MB limit; the file is corrupt or not safetensors"#,
        ),
        row(
            "Hub: a safetensors header length claiming 90 MB",
            none,
            &["info", "hostile/huge"],
            r#"`hostile/huge`: `model.safetensors` claims a 90 MB header; real headers are far under 16 MB, so it is not downloaded (the file is corrupt)"#,
        ),
        row(
            "Hub: 404 on a shard the index names",
            none,
            &["info", "hostile/shard404"],
            r#"`hostile/shard404`: shard `model-00002-of-00002.safetensors` named in model.safetensors.index.json is missing from the repo"#,
        ),
        row(
            "Hub: 401 (gated or private), not in the catalogue",
            none,
            &["info", "hostile/gated"],
            r#"`hostile/gated`: the Hub refused access: the repository does not exist, or is gated or private (accept its licence on huggingface.co and set HF_TOKEN); not in the local cache and not in the built-in catalogue; close catalogue names: gpt2-medium"#,
        ),
    ]
}

#[test]
fn every_hostile_hub_gets_its_one_line_within_the_timeout() {
    let hub = HostileHub::start();
    let problems = check(
        hub_rows(),
        &hub.url,
        &[("HF_ENDPOINT", &hub.url), ("TENSORCITY_HUB_TIMEOUT", "2")],
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README's bad-input table shows every row's exact line.
#[test]
fn the_readme_table_shows_these_messages() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let missing: Vec<String> = rows()
        .into_iter()
        .chain(hub_rows())
        .map(|r| {
            format!(
                "`` error: {} ``",
                r.message.replace("{dir}", "DIR").replace("{hub}", "HUB")
            )
        })
        .filter(|m| !readme.contains(m.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in the README's table:\n{}", missing.join("\n"));
}
