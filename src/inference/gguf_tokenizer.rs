//! A GGUF's own tokenizer, built from its `tokenizer.ggml.*` metadata as a
//! Hugging Face `tokenizers` byte-level BPE (the vocabulary llama.cpp's
//! converter writes for `tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen 2/3,
//! GPT-NeoX/Pythia, GPT-2, …): the tokens, the merges, control tokens kept
//! whole, the pre-tokenizer of `tokenizer.ggml.pre` (GPT-2's, Llama 3's or
//! Qwen 2's split), a BOS token when `add_bos_token` says so. SentencePiece
//! vocabularies (`"llama"`: Llama 2, Mistral, Gemma) are not built here.

use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::arch::gguf::{GgufArray, GgufHeader};

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token type of control tokens (`<|begin_of_text|>`, …).
const CONTROL: f64 = 3.0;
const USER_DEFINED: f64 = 4.0;

/// The tokenizer of `header`: `Ok(None)` when it has none, or one of a kind
/// not built here (the reason in `Err` is for a notice).
pub fn tokenizer(header: &GgufHeader) -> Result<Option<Tokenizer>, String> {
    let m = &header.metadata;
    let Some(model) = m.get("tokenizer.ggml.model").and_then(Value::as_str) else {
        return Ok(None);
    };
    if model != "gpt2" {
        return Err(format!(
            "its `{model}` (SentencePiece) vocabulary is not built into a tokenizer yet; put the model's tokenizer.json beside the file, or type token ids"
        ));
    }
    let strings = |key: &str| match header.tokenizer.get(key) {
        Some(GgufArray::Strings(s)) => Some(s),
        _ => None,
    };
    let tokens = strings("tokenizer.ggml.tokens").ok_or("no `tokenizer.ggml.tokens`")?;
    let merges = strings("tokenizer.ggml.merges").ok_or("no `tokenizer.ggml.merges`")?;
    let types = match header.tokenizer.get("tokenizer.ggml.token_type") {
        Some(GgufArray::Numbers(t)) => t.clone(),
        _ => Vec::new(),
    };
    let pre = m.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let split = match pre {
        "llama-bpe" | "llama3" | "smaug-bpe" => Some(LLAMA3_SPLIT),
        "qwen2" | "deepseek-r1-qwen" => Some(QWEN2_SPLIT),
        _ => None,
    };
    let pre_tokenizer = match split {
        Some(regex) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]}),
        None => json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}),
    };
    let vocab: serde_json::Map<String, Value> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Value> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == CONTROL || **t == USER_DEFINED)
        .filter_map(|(i, t)| {
            Some(
                json!({"id": i, "content": tokens.get(i)?, "single_word": false, "lstrip": false,
                        "rstrip": false, "normalized": false, "special": *t == CONTROL}),
            )
        })
        .collect();
    let id = |key: &str| {
        m.get(key)
            .and_then(Value::as_u64)
            .filter(|&i| (i as usize) < tokens.len())
    };
    let bos = id("tokenizer.ggml.bos_token_id").filter(|_| {
        m.get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    });
    let post = bos.map(|b| {
        let t = &tokens[b as usize];
        json!({"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "pair": [{"SpecialToken": {"id": t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                        {"Sequence": {"id": "B", "type_id": 1}}],
               "special_tokens": {t.as_str(): {"id": t, "ids": [b], "tokens": [t]}}})
    });
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": split == Some(LLAMA3_SPLIT), "vocab": vocab, "merges": merges},
    });
    let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    Tokenizer::from_bytes(bytes)
        .map(Some)
        .map_err(|e| format!("its vocabulary does not make a tokenizer ({e})"))
}
