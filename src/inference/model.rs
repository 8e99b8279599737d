//! The registry of runnable families ([`FAMILIES`]: a family module
//! implements `family::Transformer` and adds one line here) and [`Model`],
//! which wraps whichever loaded and adds what is the same for all of them
//! (input checks, non-finite detection, the head and the lens, cached
//! generation steps, saliency).

use super::vb::VarBuilder;
use candle_core::{D, Tensor};

use super::cache::Cache;
pub use super::family::{Emit, Transformer};
use super::layers::{Ops, Pass};
use super::{Capture, InferenceError, Tap};
use crate::arch::ModelConfig;

type Loader = fn(&ModelConfig, VarBuilder, &str) -> Result<Box<dyn Transformer>, InferenceError>;

/// Every family that runs, by `config.json`'s `model_type`.
pub const FAMILIES: &[(&str, Loader)] = &[
    ("gpt2", super::gpt2::load),
    ("llama", super::llama::load),
    ("mistral", super::llama::load),
    ("qwen2", super::llama::load),
    ("qwen3", super::qwen3::load),
    ("phi3", super::phi3::load),
    ("gemma2", super::gemma2::load),
    ("gpt_neox", super::gpt_neox::load),
    ("mixtral", super::mixtral::load),
    ("bert", super::bert::load),
];

/// The `model_type`s that run, for messages.
pub fn runnable_families() -> String {
    FAMILIES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
}

/// A loaded model that can run.
pub struct Model {
    inner: Box<dyn Transformer>,
}

impl Model {
    /// Loads a model folder (`config.json` + safetensors weights).
    pub fn load(dir: &std::path::Path) -> Result<Model, InferenceError> {
        super::ModelFiles::from_dir(dir)?.load()
    }

    /// Builds the family's forward from a config and weights.
    pub fn from_config(config: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Model, InferenceError> {
        let model_type = config.model_type.as_str();
        let (_, loader) = FAMILIES
            .iter()
            .find(|(t, _)| *t == model_type)
            .ok_or_else(|| InferenceError::Unsupported(model_type.to_string()))?;
        Ok(Model {
            inner: loader(config, vb, what)?,
        })
    }

    pub fn from_transformer(inner: Box<dyn Transformer>) -> Model {
        Model { inner }
    }

    pub fn context(&self) -> usize {
        self.inner.context()
    }

    pub fn num_layers(&self) -> usize {
        self.inner.blocks()
    }

    pub fn vocab(&self) -> usize {
        self.inner.vocab()
    }

    pub fn is_causal(&self) -> bool {
        self.inner.causal()
    }

    /// The logit lens (see [`Transformer::lens`]).
    pub fn lens(&self, hidden: &Tensor, normed: bool) -> Option<Result<Tensor, InferenceError>> {
        let x = if normed {
            hidden.clone()
        } else {
            match self.inner.final_norm(hidden, Ops::default())? {
                Ok(x) => x,
                Err(e) => return Some(Err(e.into())),
            }
        };
        self.inner.head(&x).map(|r| r.map_err(Into::into))
    }

    /// An empty key/value cache for [`Model::step`].
    pub fn new_cache(&self) -> Cache {
        Cache::new(self.inner.blocks(), self.inner.context())
    }

    /// One forward pass over `tokens`, handing each tap to `sink` as soon as it
    /// is computed (layer by layer). `sink` returning false cancels the pass.
    /// A hidden state with NaN/Inf stops it with [`InferenceError::NonFinite`].
    pub fn run(&self, tokens: &[u32], sink: &mut dyn FnMut(Tap, Tensor) -> bool) -> Result<(), InferenceError> {
        super::check_tokens(tokens, self.vocab(), self.context())?;
        self.pass(tokens, None, false, sink)
    }

    /// [`Model::run`] (no `cache`) or [`Model::step`] (with one) that also
    /// taps the logit lens at the last position as [`Tap::Lens`], computed in
    /// the same product as the logits (the head's weights are read once).
    pub fn run_with_lens(
        &self,
        tokens: &[u32],
        cache: Option<&mut Cache>,
        sink: &mut dyn FnMut(Tap, Tensor) -> bool,
    ) -> Result<(), InferenceError> {
        match cache {
            None => {
                super::check_tokens(tokens, self.vocab(), self.context())?;
                self.pass(tokens, None, true, sink)
            }
            Some(cache) => {
                self.check_step(tokens, cache)?;
                self.pass(tokens, Some(cache), true, sink)
            }
        }
    }

    /// Runs `tokens` at the positions after those `cache` holds, appending
    /// their keys and values: the first call runs the prompt, each later one
    /// the newly generated token(s). Taps hold only the new positions' rows
    /// (attention `[heads, new, cached + new]`); for causal models they equal
    /// those rows of one forward pass over the whole sequence.
    pub fn step(
        &self,
        tokens: &[u32],
        cache: &mut Cache,
        sink: &mut dyn FnMut(Tap, Tensor) -> bool,
    ) -> Result<(), InferenceError> {
        self.check_step(tokens, cache)?;
        self.pass(tokens, Some(cache), false, sink)
    }

    fn check_step(&self, tokens: &[u32], cache: &Cache) -> Result<(), InferenceError> {
        if !self.is_causal() {
            return Err(InferenceError::Model {
                what: "generation".into(),
                detail: "this model encodes (BERT); it does not predict next tokens".into(),
            });
        }
        let total = cache.len().saturating_add(tokens.len());
        if total > self.context() {
            return Err(InferenceError::TooLong {
                len: total,
                max: self.context(),
            });
        }
        super::check_tokens(tokens, self.vocab(), usize::MAX)
    }

    fn pass(
        &self,
        tokens: &[u32],
        cache: Option<&mut Cache>,
        lens: bool,
        sink: &mut dyn FnMut(Tap, Tensor) -> bool,
    ) -> Result<(), InferenceError> {
        let mut non_finite = None;
        let ids = Tensor::new(tokens, &candle_core::Device::Cpu)?.unsqueeze(0)?;
        let embeds = self.inner.embed(&ids)?;
        let mut pass = Pass::new(cache.as_ref().map_or(0, |c| c.len()), cache, Ops::default());
        // One sequence: the taps drop the batch dimension.
        let mut emit = |tap: Tap, t: Tensor| -> Result<(), InferenceError> {
            let t = t.squeeze(0)?;
            if let Tap::Hidden(layer) = tap
                && !super::all_finite(&t)
            {
                non_finite = Some(layer);
                return Err(InferenceError::Cancelled);
            }
            if sink(tap, t) {
                Ok(())
            } else {
                Err(InferenceError::Cancelled)
            }
        };
        let result = self.forward(&embeds, &mut pass, lens, &mut emit);
        match (result, non_finite) {
            (Err(InferenceError::Cancelled), Some(layer)) => Err(InferenceError::NonFinite { layer }),
            (result, _) => result,
        }
    }

    /// The family's forward and then its head: after the last hidden state
    /// (already normed) come the logits. With `lens`, the last row of every
    /// block output below the top goes through the final norm and then the
    /// head in the same product as the logits, and arrives first, as
    /// [`Tap::Lens`] `[b, blocks - 1, vocab]`.
    fn forward(&self, embeds: &Tensor, pass: &mut Pass, lens: bool, emit: &mut Emit) -> Result<(), InferenceError> {
        let blocks = self.inner.blocks();
        let ops = pass.ops;
        let mut rows: Vec<Tensor> = Vec::new();
        let mut with_head = |tap: Tap, t: Tensor| -> Result<(), InferenceError> {
            match tap {
                Tap::Hidden(i) if lens && (1..blocks).contains(&i) => {
                    let n = t.dim(1)?;
                    rows.push(t.narrow(1, n.saturating_sub(1), 1)?);
                    emit(tap, t)
                }
                Tap::Hidden(i) if i == blocks => {
                    let lens_rows = if rows.is_empty() {
                        None
                    } else {
                        self.inner.final_norm(&Tensor::cat(&rows, 1)?, ops).transpose()?
                    };
                    emit(tap, t.clone())?;
                    let Some(lens_rows) = lens_rows else {
                        return match self.inner.head(&t) {
                            Some(logits) => emit(Tap::Logits, logits?),
                            None => Ok(()),
                        };
                    };
                    let k = lens_rows.dim(1)?;
                    let Some(all) = self.inner.head(&Tensor::cat(&[&lens_rows, &t], 1)?) else {
                        return Ok(());
                    };
                    let all = all?;
                    emit(Tap::Lens, all.narrow(1, 0, k)?)?;
                    emit(Tap::Logits, all.narrow(1, k, all.dim(1)? - k)?)
                }
                _ => emit(tap, t),
            }
        };
        self.inner.forward(embeds, pass, &mut with_head)
    }

    /// One forward pass over `tokens` with every tap recorded.
    pub fn capture(&self, tokens: &[u32]) -> Result<Capture, InferenceError> {
        let mut capture = Capture::new(tokens);
        self.run(tokens, &mut |tap, tensor| capture.push(tap, tensor, 0).is_ok())?;
        Ok(capture)
    }

    /// `prompt` and then `new_tokens` generated ones (`decoding`), with the
    /// key/value cache: the prompt runs once, each new token as one position.
    /// The capture is laid out as one forward pass over the final sequence
    /// (which must fit the context).
    pub fn generate(
        &self,
        prompt: &[u32],
        new_tokens: usize,
        decoding: super::sample::Decoding,
    ) -> Result<Capture, InferenceError> {
        super::check_tokens(prompt, self.vocab(), self.context())?;
        let total = prompt.len().saturating_add(new_tokens);
        if total > self.context() {
            return Err(InferenceError::Model {
                what: "generation".into(),
                detail: format!(
                    "{} prompt + {new_tokens} new tokens exceed the model's context of {}; generate fewer tokens or shorten the prompt",
                    prompt.len(),
                    self.context()
                ),
            });
        }
        let mut cache = self.new_cache();
        let mut capture = Capture::new(prompt);
        let mut sampler = decoding.sampler();
        let mut next = prompt.to_vec();
        loop {
            let from = cache.len();
            let mut failed = None;
            let result = self.step(&next, &mut cache, &mut |tap, t| match capture.push(tap, t, from) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            result?;
            if capture.tokens.len() >= total {
                return Ok(capture);
            }
            let logits = capture.logits.as_ref().ok_or_else(|| InferenceError::Model {
                what: "generation".into(),
                detail: "the model produced no logits".into(),
            })?;
            let (id, _) = super::sample::next_token(logits, &mut sampler).map_err(|detail| InferenceError::Model {
                what: "generation".into(),
                detail,
            })?;
            capture.tokens.push(id);
            next = vec![id];
        }
    }

    /// `[B, T, vocab]` logits of a batch of `[B, T]` ids, no taps; `grad` runs
    /// ops candle can differentiate (training).
    pub fn batch_logits(&self, ids: &Tensor, grad: bool) -> Result<Tensor, InferenceError> {
        let embeds = self.inner.embed(ids)?;
        self.logits_from(&embeds, grad)
    }

    fn logits_from(&self, embeds: &Tensor, grad: bool) -> Result<Tensor, InferenceError> {
        let mut logits = None;
        let mut pass = Pass::new(0, None, Ops { grad });
        self.forward(embeds, &mut pass, false, &mut |tap, t| {
            if tap == Tap::Logits {
                logits = Some(t);
            }
            Ok(())
        })?;
        logits.ok_or_else(|| InferenceError::Model {
            what: "saliency".into(),
            detail: "this model has no language-model head (BERT encodes)".into(),
        })
    }

    /// Gradient x input saliency: how much each token's embedding moves the
    /// logit of `target` (default: the predicted next token) at the last
    /// position — the gradient of that logit with respect to each token
    /// embedding (candle backprop), dotted with the embedding. Returns the
    /// target and one score per token.
    pub fn saliency(&self, tokens: &[u32], target: Option<u32>) -> Result<(u32, Vec<f32>), InferenceError> {
        super::check_tokens(tokens, self.vocab(), self.context())?;
        let ids = Tensor::new(tokens, &candle_core::Device::Cpu)?.unsqueeze(0)?;
        let embedded = self.inner.embed(&ids)?;
        let input = candle_core::Var::from_tensor(&embedded)?;
        let logits = self.logits_from(input.as_tensor(), true)?;
        let last = logits.get(0)?.get(tokens.len() - 1)?;
        let target = match target {
            Some(t) if (t as usize) < self.vocab() => t,
            Some(id) => {
                return Err(InferenceError::TokenOutOfRange {
                    id,
                    vocab: self.vocab(),
                });
            }
            None => last.argmax(0)?.to_scalar::<u32>()?,
        };
        let grads = last.get(target as usize)?.backward()?;
        let grad = grads.get(input.as_tensor()).ok_or_else(|| InferenceError::Model {
            what: "saliency".into(),
            detail: "no gradient reached the embeddings".into(),
        })?;
        let scores = (grad * &embedded)?.sum(D::Minus1)?.squeeze(0)?.to_vec1::<f32>()?;
        Ok((target, scores))
    }

    /// The target logit at the last position when each token's embedding is
    /// scaled by `scale[i]` (for checking saliency by finite differences).
    pub fn logit_with_scaled_embeddings(
        &self,
        tokens: &[u32],
        scale: &[f32],
        target: u32,
    ) -> Result<f32, InferenceError> {
        let ids = Tensor::new(tokens, &candle_core::Device::Cpu)?.unsqueeze(0)?;
        let s = Tensor::from_vec(scale.to_vec(), (1, tokens.len(), 1), &candle_core::Device::Cpu)?;
        let embeds = self.inner.embed(&ids)?.broadcast_mul(&s)?;
        let logits = self.logits_from(&embeds, false)?;
        Ok(logits
            .get(0)?
            .get(tokens.len() - 1)?
            .get(target as usize)?
            .to_scalar::<f32>()?)
    }
}
