//! BERT encoders with taps: absolute positions, token type 0, post-LN blocks.
//! Tensor names with or without a `bert.` prefix, LayerNorm as `weight`/`bias`
//! or the old `gamma`/`beta`.

use candle_core::{Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde_json::Value;

use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

#[derive(Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    context: usize,
    vocab: usize,
    act: Activation,
}

fn linear(vb: VarBuilder, fan_in: usize, fan_out: usize) -> candle_core::Result<Linear> {
    Ok(Linear::new(
        vb.get((fan_out, fan_in), "weight")?,
        Some(vb.get(fan_out, "bias")?),
    ))
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    let (w, b) = if vb.contains_tensor("gamma") {
        ("gamma", "beta")
    } else {
        ("weight", "bias")
    };
    Ok(LayerNorm::new(vb.get(size, w)?, vb.get(size, b)?, eps))
}

impl Bert {
    pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Bert, InferenceError> {
        let need = |v: Option<u64>, key: &str| super::need(v, key, what);
        let hidden = need(cfg.hidden_size, "hidden_size")?;
        let heads = need(cfg.num_heads, "num_attention_heads")?;
        let layers = need(cfg.num_layers, "num_hidden_layers")?;
        let vocab = need(cfg.vocab_size, "vocab_size")?;
        let context = need(cfg.max_positions, "max_position_embeddings")?;
        let inner = need(cfg.intermediate_size, "intermediate_size")?;
        let types = cfg.type_vocab_size.unwrap_or(2) as usize;
        let eps = cfg.raw_field("layer_norm_eps").and_then(Value::as_f64).unwrap_or(1e-12);
        if heads == 0 || hidden % heads != 0 {
            return Err(InferenceError::Model {
                what: what.to_string(),
                detail: format!("hidden_size {hidden} is not divisible by {heads} heads"),
            });
        }
        let act = match cfg.raw_field("hidden_act").and_then(Value::as_str).unwrap_or("gelu") {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(InferenceError::Model {
                    what: what.to_string(),
                    detail: format!("hidden_act `{other}` is not supported (gelu, gelu_new, relu are)"),
                });
            }
        };
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let e = vb.pp("embeddings");
        let layers = (0..layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                Ok(Layer {
                    query: linear(l.pp("attention.self.query"), hidden, hidden)?,
                    key: linear(l.pp("attention.self.key"), hidden, hidden)?,
                    value: linear(l.pp("attention.self.value"), hidden, hidden)?,
                    attn_out: linear(l.pp("attention.output.dense"), hidden, hidden)?,
                    attn_norm: layer_norm(l.pp("attention.output.LayerNorm"), hidden, eps)?,
                    intermediate: linear(l.pp("intermediate.dense"), hidden, inner)?,
                    output: linear(l.pp("output.dense"), inner, hidden)?,
                    out_norm: layer_norm(l.pp("output.LayerNorm"), hidden, eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Bert {
            word: Embedding::new(e.get((vocab, hidden), "word_embeddings.weight")?, hidden),
            position: Embedding::new(e.get((context, hidden), "position_embeddings.weight")?, hidden),
            token_type: e.get((types, hidden), "token_type_embeddings.weight")?,
            embed_norm: layer_norm(e.pp("LayerNorm"), hidden, eps)?,
            layers,
            heads,
            hidden,
            context,
            vocab,
            act,
        })
    }

    /// Transformer blocks (hidden states are one more).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Longest sequence the model takes.
    pub fn context(&self) -> usize {
        self.context
    }

    pub fn run(&self, tokens: &[u32], sink: &mut dyn FnMut(Tap, Tensor) -> bool) -> Result<(), InferenceError> {
        let mut emit = super::emitter(sink);
        let t = tokens.len();
        super::check_tokens(tokens, self.vocab, self.context)?;
        let device = self.word.embeddings().device().clone();
        let ids = Tensor::new(tokens, &device)?;
        let positions = Tensor::arange(0u32, t as u32, &device)?;
        // Every token is segment 0, as `tokenizer(text)` gives for one sentence.
        let segment = self.token_type.get(0)?.unsqueeze(0)?;
        let embedded = (self.word.forward(&ids)? + self.position.forward(&positions)?)?.broadcast_add(&segment)?;
        let mut xs = self.embed_norm.forward(&embedded)?;
        let head_dim = self.hidden / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        emit(Tap::Hidden(0), xs.clone())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let split = |y: Tensor| -> candle_core::Result<Tensor> {
                y.reshape((t, self.heads, head_dim))?.transpose(0, 1)?.contiguous()
            };
            let q = split(layer.query.forward(&xs)?)?;
            let k = split(layer.key.forward(&xs)?)?;
            let v = split(layer.value.forward(&xs)?)?;
            // Bidirectional: no mask for a single unpadded sequence.
            let probs = candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t()?)? * scale)?)?;
            let context = probs.matmul(&v)?.transpose(0, 1)?.reshape((t, self.hidden))?;
            emit(Tap::Attention(i), probs)?;
            let after_attn = layer.attn_norm.forward(&(layer.attn_out.forward(&context)? + &xs)?)?;
            let inner = layer.intermediate.forward(&after_attn)?;
            let inner = match self.act {
                Activation::GeluErf => inner.gelu_erf()?,
                Activation::GeluTanh => inner.gelu()?,
                Activation::Relu => inner.relu()?,
            };
            emit(Tap::Mlp(i), inner.clone())?;
            xs = layer
                .out_norm
                .forward(&(layer.output.forward(&inner)? + &after_attn)?)?;
            emit(Tap::Hidden(i + 1), xs.clone())?;
        }
        Ok(())
    }
}
