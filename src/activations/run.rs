//! What the app knows about the current run, folded from streamed frames.
//! Pure: no Bevy types, so a scripted frame sequence can be tested directly.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::inference::stream::{ActivationFrame, FrameData};
use crate::inference::{Tap, extend_rows};

/// Where the run is.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RunStatus {
    /// Nothing run yet for this model.
    #[default]
    Idle,
    /// Frames are arriving.
    Running,
    Done,
    /// The run (or the model) failed; the message is for the user.
    Failed(String),
}

/// The current run: its tokens and the latest forward pass's activations.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// The run these frames belong to.
    pub run: u64,
    pub status: RunStatus,
    /// Token ids the latest forward pass ran on.
    pub tokens: Vec<u32>,
    /// Display text of each token (filled in by whoever has the tokenizer).
    pub texts: Vec<String>,
    /// How many of `tokens` the user typed (the rest were generated).
    pub prompt_len: usize,
    /// Generated tokens with the probability they were sampled at.
    pub generated: Vec<(u32, f32)>,
    /// `hidden_states[i]` (`[T, hidden]`) of the latest pass.
    pub hidden: BTreeMap<usize, Tensor>,
    /// Block `i`'s attention probabilities (`[heads, T, T]`).
    pub attn: BTreeMap<usize, Tensor>,
    /// Block `i`'s MLP activations (`[T, intermediate]`).
    pub mlp: BTreeMap<usize, Tensor>,
    /// Block `i`'s router logits (`[T, experts]`, mixture-of-experts models).
    pub router: BTreeMap<usize, Tensor>,
    /// `[T, vocab]` logits of the latest pass (causal models).
    pub logits: Option<Tensor>,
    /// Next-token top-k from the final logits: position -> top-k.
    pub top: BTreeMap<usize, Vec<(u32, f32)>>,
    /// Logit lens: block -> position -> top-k.
    pub lens: BTreeMap<usize, BTreeMap<usize, Vec<(u32, f32)>>>,
    /// Something the user should know (the context was exceeded, ...).
    pub notice: Option<String>,
}

impl RunState {
    /// A finished single pass from a capture (headless rendering, replays).
    pub fn from_capture(capture: &crate::inference::Capture, texts: Vec<String>) -> RunState {
        RunState {
            run: 0,
            status: RunStatus::Done,
            tokens: capture.tokens.clone(),
            texts,
            prompt_len: capture.tokens.len(),
            hidden: capture.hidden.iter().cloned().enumerate().collect(),
            attn: capture.attn.iter().cloned().enumerate().collect(),
            mlp: capture.mlp.iter().cloned().enumerate().collect(),
            router: capture.router.iter().cloned().enumerate().collect(),
            ..Default::default()
        }
    }

    /// A new run of `prompt_len` prompt tokens starts (clears the old one).
    pub fn start(&mut self, run: u64, prompt_len: usize) {
        *self = RunState {
            run,
            status: RunStatus::Running,
            prompt_len,
            ..Default::default()
        };
    }

    /// Folds one frame in; frames of other runs are ignored. Returns whether it applied.
    pub fn apply(&mut self, frame: &ActivationFrame) -> bool {
        if frame.run != self.run {
            return false;
        }
        match &frame.data {
            FrameData::Tokens(tokens) => {
                // The same sequence grown by generated tokens keeps its rows
                // (a cached step appends the new positions'); anything else
                // is a new forward pass.
                let extends = tokens.len() > self.tokens.len() && tokens.starts_with(&self.tokens);
                // A remote engine tokenizes text prompts: its first tokens are the prompt.
                if self.tokens.is_empty() && self.prompt_len == 0 {
                    self.prompt_len = tokens.len();
                }
                self.tokens = tokens.clone();
                if !extends {
                    self.hidden.clear();
                    self.attn.clear();
                    self.mlp.clear();
                    self.router.clear();
                    self.lens.clear();
                    self.top.clear();
                    self.logits = None;
                }
            }
            FrameData::Activation { tap, from, tensor } => {
                let slot = match tap {
                    Tap::Hidden(i) => self.hidden.entry(*i),
                    Tap::Attention(i) => self.attn.entry(*i),
                    Tap::Mlp(i) => self.mlp.entry(*i),
                    Tap::Router(i) => self.router.entry(*i),
                    Tap::Lens => return true,
                    Tap::Logits => {
                        self.logits = match (self.logits.take(), *from) {
                            (Some(old), f) if f > 0 => extend_rows(*tap, &old, tensor, f).ok(),
                            _ => Some(tensor.clone()),
                        };
                        return true;
                    }
                };
                match (slot, *from) {
                    (std::collections::btree_map::Entry::Occupied(mut old), f) if f > 0 => {
                        match extend_rows(*tap, old.get(), tensor, f) {
                            Ok(grown) => {
                                old.insert(grown);
                            }
                            // Rows that do not continue what is here: keep the step's own.
                            Err(_) => {
                                old.insert(tensor.clone());
                            }
                        }
                    }
                    (std::collections::btree_map::Entry::Occupied(mut old), _) => {
                        old.insert(tensor.clone());
                    }
                    (std::collections::btree_map::Entry::Vacant(slot), _) => {
                        slot.insert(tensor.clone());
                    }
                }
            }
            FrameData::TopK { layer: None, from, top } => {
                self.top
                    .extend(top.iter().cloned().enumerate().map(|(i, t)| (from + i, t)));
            }
            FrameData::TopK {
                layer: Some(l),
                from,
                top,
            } => {
                let per_position = self.lens.entry(*l).or_default();
                per_position.extend(top.iter().cloned().enumerate().map(|(i, t)| (from + i, t)));
            }
            FrameData::Generated { id, probability } => self.generated.push((*id, *probability)),
            FrameData::Truncated { kept, dropped } => {
                self.prompt_len = self.prompt_len.saturating_sub(*dropped);
                self.notice = Some(format!(
                    "the sequence outgrew the model's context: running the last {kept} tokens ({dropped} dropped)"
                ));
            }
            FrameData::Done => self.status = RunStatus::Done,
            FrameData::Failed(message) => self.status = RunStatus::Failed(message.clone()),
        }
        true
    }

    /// Blocks whose attention has arrived in the latest pass (for progress):
    /// maps with a row for every token.
    pub fn layers_done(&self) -> usize {
        let rows = self.tokens.len();
        self.attn.values().filter(|a| a.dim(1).is_ok_and(|r| r == rows)).count()
    }

    /// Whether the final top-k or the logit lens at `position` is still missing
    /// for what has arrived.
    pub fn lens_missing(&self, position: usize, layers: usize) -> bool {
        if self.logits.is_some() && !self.top.contains_key(&position) {
            return true;
        }
        (1..layers).any(|i| {
            self.hidden.contains_key(&i) && !self.lens.get(&(i - 1)).is_some_and(|m| m.contains_key(&position))
        })
    }

    /// What [`lens_at`] needs to compute the lens at `position` (cheap: the
    /// tensors are shared, not copied), to hand to a background task.
    pub fn lens_inputs(&self) -> LensInputs {
        LensInputs {
            hidden: self.hidden.clone(),
            logits: self.logits.clone(),
        }
    }

    /// Puts a computed lens in place.
    pub fn merge_lens(&mut self, position: usize, lens: LensAt) {
        if let Some(top) = lens.top {
            self.top.insert(position, top);
        }
        for (block, top) in lens.blocks {
            self.lens.entry(block).or_default().insert(position, top);
        }
    }
}

/// The hidden states and logits a lens is computed from.
#[derive(Debug, Clone)]
pub struct LensInputs {
    hidden: BTreeMap<usize, Tensor>,
    logits: Option<Tensor>,
}

/// The final top-k and the logit lens (block -> top-k) at one position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LensAt {
    pub top: Option<Vec<(u32, f32)>>,
    pub blocks: BTreeMap<usize, Vec<(u32, f32)>>,
}

/// Computes the final top-k and the logit lens at `position` for every block
/// output in `inputs` (one vocabulary-sized matmul each) with `model`, the one
/// that ran.
pub fn lens_at(
    model: &crate::inference::Model,
    inputs: &LensInputs,
    position: usize,
) -> Result<LensAt, crate::inference::InferenceError> {
    use crate::inference::{stream::TOP_K, top_k};
    let mut out = LensAt::default();
    if let Some(logits) = &inputs.logits
        && position < logits.dim(0)?
    {
        out.top = Some(top_k(&logits.get(position)?, TOP_K)?);
    }
    for i in 1..model.num_layers() {
        let Some(hidden) = inputs.hidden.get(&i) else { continue };
        if position >= hidden.dim(0)? {
            continue;
        }
        let Some(logits) = model.lens(&hidden.narrow(0, position, 1)?, false) else {
            break;
        };
        out.blocks.insert(i - 1, top_k(&logits?.get(0)?, TOP_K)?);
    }
    Ok(out)
}

/// Runs `prompt` through `model` (one forward pass with every tap) into a
/// finished run: what `render --prompt` and `record --prompt` draw.
pub fn run_prompt(model: &crate::arch::ModelRef, prompt: &str) -> anyhow::Result<RunState> {
    #[cfg(not(target_arch = "wasm32"))]
    if let crate::arch::ModelRef::Engine(url) = model {
        let request = crate::inference::stream::RunRequest {
            tokens: Vec::new(),
            new_tokens: 0,
            decoding: crate::inference::stream::Decoding::Greedy,
            text: Some(prompt.to_string()),
        };
        let (capture, texts, _) = crate::engine::capture(url, request, crate::engine::client::DEFAULT_STALL)?;
        return Ok(RunState::from_capture(&capture, texts));
    }
    let files = crate::inference::ModelFiles::open(model)?;
    let tokens = files.tokenize(prompt)?;
    let capture = files
        .load()?
        .capture(&tokens)
        .map_err(|e| anyhow::anyhow!(files.diagnose(e)))?;
    Ok(RunState::from_capture(&capture, files.token_texts(&tokens)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn frame(run: u64, data: FrameData) -> ActivationFrame {
        ActivationFrame { run, data }
    }

    #[test]
    fn frames_fold_into_state_and_stale_runs_are_ignored() {
        let mut state = RunState::default();
        state.start(2, 3);
        let t = Tensor::zeros((2, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(!state.apply(&frame(1, FrameData::Tokens(vec![9]))));
        assert!(state.apply(&frame(2, FrameData::Tokens(vec![1, 2, 3]))));
        state.apply(&frame(
            2,
            FrameData::Activation {
                tap: Tap::Attention(0),
                from: 0,
                tensor: t.clone(),
            },
        ));
        state.apply(&frame(
            2,
            FrameData::TopK {
                layer: Some(0),
                from: 2,
                top: vec![vec![(5, 0.5)]],
            },
        ));
        assert_eq!(state.layers_done(), 1);
        assert_eq!(state.lens[&0][&2], vec![(5, 0.5)]);
        state.apply(&frame(
            2,
            FrameData::Generated {
                id: 7,
                probability: 0.25,
            },
        ));
        state.apply(&frame(2, FrameData::Tokens(vec![1, 2, 3, 7])));
        assert_eq!(state.layers_done(), 0, "block 0 has no row for the new token yet");
        assert_eq!(state.attn.len(), 1, "a grown sequence keeps the rows it has");
        let row = Tensor::ones((2, 1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        state.apply(&frame(
            2,
            FrameData::Activation {
                tap: Tap::Attention(0),
                from: 3,
                tensor: row,
            },
        ));
        assert_eq!(state.attn[&0].dims(), [2, 4, 4]);
        assert_eq!(state.layers_done(), 1);
        state.apply(&frame(2, FrameData::Tokens(vec![9, 9])));
        assert!(state.attn.is_empty(), "another sequence is a new pass");
        assert_eq!(state.generated, vec![(7, 0.25)]);
        state.apply(&frame(2, FrameData::Failed("boom".into())));
        assert_eq!(state.status, RunStatus::Failed("boom".into()));
        // A failure (an engine that broke off, say) keeps what arrived.
        assert_eq!((state.tokens.len(), state.generated.len()), (2, 1));
    }

    #[test]
    fn a_remote_runs_prompt_length_comes_from_its_first_tokens() {
        // A text prompt tokenized by a remote engine: the viewer learns its length from the first tokens frame.
        let mut state = RunState::default();
        state.start(1, 0);
        state.apply(&frame(1, FrameData::Tokens(vec![4, 5, 6])));
        state.apply(&frame(1, FrameData::Tokens(vec![4, 5, 6, 7])));
        assert_eq!(state.prompt_len, 3);
    }
}
