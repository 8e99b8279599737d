//! Streaming activations to the viewer: an [`ActivationSource`] produces
//! [`ActivationFrame`]s — from the candle runner on a worker thread (natively),
//! or from a saved capture file (replay). The channel is bounded, so a slow
//! consumer pauses the producer instead of letting memory grow; a new request
//! cancels the one still running.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;

use super::{InferenceError, Model, Tap};

/// Frames buffered between producer and consumer.
pub const CHANNEL_CAPACITY: usize = 64;

/// What a frame carries.
#[derive(Debug, Clone)]
pub enum FrameData {
    /// The run's tokens so far (sent first, and again after each generated token).
    Tokens(Vec<u32>),
    /// One tapped tensor: its rows are positions `from..` of the sequence —
    /// 0 for a forward pass over `tokens`, the cached length for a cached
    /// generation step (one new row; attention `[heads, 1, T]`), to append.
    Activation { tap: Tap, from: usize, tensor: Tensor },
    /// Next-token predictions (`top[i]` = (id, probability) best first, for
    /// position `from + i`) at the last position, sent after the logits: from
    /// the final logits (`layer: None`), then the logit lens of each block
    /// `layer`'s output (`hidden_states[layer + 1]` through the final norm and
    /// head). Other positions cost a vocabulary-sized row each, so the app
    /// computes them on demand from the logits and hidden states it keeps.
    TopK {
        layer: Option<usize>,
        from: usize,
        top: Vec<Vec<(u32, f32)>>,
    },
    /// Generation produced this token (already appended to the sequence).
    Generated { id: u32, probability: f32 },
    /// The sequence outgrew the context: only the last `kept` tokens were run.
    Truncated { kept: usize, dropped: usize },
    /// The run is over.
    Done,
    /// The run failed; the message is for the user.
    Failed(String),
}

/// One message of a run.
#[derive(Debug, Clone)]
pub struct ActivationFrame {
    /// Which request this belongs to; frames of cancelled runs are stale.
    pub run: u64,
    pub data: FrameData,
}

pub use super::sample::Decoding;

/// A request: run these tokens, then optionally generate `new_tokens` more.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub tokens: Vec<u32>,
    pub new_tokens: usize,
    pub decoding: Decoding,
    /// Text for an engine that tokenizes it itself (a remote engine; then
    /// `tokens` is empty). The built-in engine runs `tokens` only.
    pub text: Option<String>,
}

/// Produces frames for requests.
pub trait ActivationSource: Send {
    /// Runs `request` as run `run`, sending frames through `send`; stops early
    /// when `send` returns false (cancelled or consumer gone).
    fn run(&mut self, run: u64, request: &RunRequest, send: &mut dyn FnMut(ActivationFrame) -> bool);
}

/// Entries per position in [`FrameData::TopK`].
pub const TOP_K: usize = 5;

/// The candle runner: forward passes with taps, then generation.
pub struct LocalRunner {
    pub model: Arc<Model>,
    /// Turns non-finite activations into a message naming the corrupt weights.
    pub files: Option<std::sync::Arc<super::ModelFiles>>,
}

impl LocalRunner {
    fn message(&self, e: InferenceError) -> String {
        match &self.files {
            Some(files) => files.diagnose(e),
            None => e.to_string(),
        }
    }

    /// The next-token top-k at the last position (`last`, in the sequence)
    /// from the final logits, then the logit lens of every block output there
    /// (`lens`: `[blocks - 1, vocab]`, computed by the model in the same
    /// product as the logits).
    fn top_k_frames(
        &self,
        logits: &Tensor,
        lens: Option<&Tensor>,
        last: usize,
    ) -> Result<Vec<FrameData>, InferenceError> {
        let mut frames = vec![FrameData::TopK {
            layer: None,
            from: last,
            top: vec![super::top_k(&logits.get(logits.dim(0)?.saturating_sub(1))?, TOP_K)?],
        }];
        if let Some(lens) = lens {
            for layer in 0..lens.dim(0)? {
                frames.push(FrameData::TopK {
                    layer: Some(layer),
                    from: last,
                    top: vec![super::top_k(&lens.get(layer)?, TOP_K)?],
                });
            }
        }
        Ok(frames)
    }
}

/// A run in progress: the sequence so far, the key/value cache of the
/// positions already run, and the sampler. [`LocalRunner::step`] advances it
/// by one forward pass — the prompt, then one new position per generated
/// token — so a caller can yield between passes (the browser's worker does,
/// to notice a newer request).
pub struct Generation {
    run: u64,
    tokens: Vec<u32>,
    sampler: LogitsProcessor,
    new_tokens: usize,
    step: usize,
    /// Keys and values of `tokens[..cache.len()]`; dropped once the sequence
    /// outgrows the context (then each pass runs the latest window).
    cache: Option<super::Cache>,
}

impl Generation {
    pub fn run(&self) -> u64 {
        self.run
    }
}

impl LocalRunner {
    /// A run of `request` as run `run`, not started yet.
    pub fn start(&self, run: u64, request: &RunRequest) -> Generation {
        let sampler = request.decoding.sampler();
        Generation {
            run,
            tokens: request.tokens.clone(),
            sampler,
            new_tokens: request.new_tokens,
            step: 0,
            cache: None,
        }
    }

    /// One forward pass (its frames go to `send`): the prompt, or the newly
    /// generated token against the cache; then, while tokens remain to
    /// generate, the next token. Returns whether the run goes on.
    pub fn step(&self, generation: &mut Generation, send: &mut dyn FnMut(ActivationFrame) -> bool) -> bool {
        let run = generation.run;
        let frame = |data| ActivationFrame { run, data };
        if generation.step > generation.new_tokens {
            return false;
        }
        let context = self.model.context();
        let tokens = &mut generation.tokens;
        let cached = self.model.is_causal() && tokens.len() <= context;
        if !cached {
            generation.cache = None;
        }
        // Past the context, the model sees the most recent window.
        let start = tokens.len().saturating_sub(context);
        if start > 0
            && !send(frame(FrameData::Truncated {
                kept: context,
                dropped: start,
            }))
        {
            return false;
        }
        let window = &tokens[start..];
        if !send(frame(FrameData::Tokens(window.to_vec()))) {
            return false;
        }
        let from = generation.cache.as_ref().map_or(0, |c| c.len());
        let mut logits = None;
        let mut failed = None;
        let mut lens: Option<Tensor> = None;
        let mut sink = |tap: Tap, tensor: Tensor| {
            // The lens arrives just before the logits; it becomes top-k frames.
            if tap == Tap::Lens {
                lens = Some(tensor);
                return true;
            }
            let top = (tap == Tap::Logits).then(|| {
                let last = from + tensor.dim(0).unwrap_or(1).saturating_sub(1);
                self.top_k_frames(&tensor, lens.as_ref(), last)
            });
            if tap == Tap::Logits {
                logits = Some(tensor.clone());
            }
            if !send(frame(FrameData::Activation { tap, from, tensor })) {
                return false;
            }
            match top {
                Some(Ok(frames)) => frames.into_iter().all(|data| send(frame(data))),
                Some(Err(e)) => {
                    failed = Some(e);
                    false
                }
                None => true,
            }
        };
        let result = if cached {
            let cache = generation.cache.get_or_insert_with(|| self.model.new_cache());
            self.model.run_with_lens(&window[from..], Some(cache), &mut sink)
        } else {
            self.model.run_with_lens(window, None, &mut sink)
        };
        match (result, failed) {
            (_, Some(e)) | (Err(e @ (InferenceError::NonFinite { .. } | InferenceError::Candle(_))), None) => {
                send(frame(FrameData::Failed(self.message(e))));
                return false;
            }
            (Ok(()), None) => {}
            (Err(InferenceError::Cancelled), None) => return false,
            (Err(e), None) => {
                send(frame(FrameData::Failed(self.message(e))));
                return false;
            }
        }
        if generation.step == generation.new_tokens {
            generation.step += 1;
            send(frame(FrameData::Done));
            return false;
        }
        generation.step += 1;
        let Some(logits) = logits else {
            send(frame(FrameData::Failed(
                "this model has no language-model head to generate with (BERT encodes; it does not predict next tokens)"
                    .into(),
            )));
            return false;
        };
        match super::sample::next_token(&logits, &mut generation.sampler) {
            Ok((id, probability)) => {
                tokens.push(id);
                send(frame(FrameData::Generated { id, probability }))
            }
            Err(e) => {
                send(frame(FrameData::Failed(e)));
                false
            }
        }
    }
}

impl ActivationSource for LocalRunner {
    fn run(&mut self, run: u64, request: &RunRequest, send: &mut dyn FnMut(ActivationFrame) -> bool) {
        let mut generation = self.start(run, request);
        while self.step(&mut generation, send) {}
    }
}

/// Replays a capture file written by `tensorcity capture` (or transformers via
/// the golden-fixture script) as if it were running: tokens, then each layer.
pub struct Replay {
    tokens: Vec<u32>,
    frames: Vec<(Tap, Tensor)>,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Replay, InferenceError> {
        let what = path.display().to_string();
        let bad = |detail: String| InferenceError::Model {
            what: what.clone(),
            detail,
        };
        let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
        let tokens = map
            .get("tokens")
            .ok_or_else(|| bad("not a capture: no `tokens` tensor".into()))?
            .to_dtype(candle_core::DType::I64)
            .and_then(|t| t.to_vec1::<i64>())
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .map(|t| t as u32)
            .collect();
        let mut frames = Vec::new();
        for i in 0.. {
            let (h, a, m, r) = (
                map.get(&format!("hidden.{i}")),
                map.get(&format!("attn.{i}")),
                map.get(&format!("mlp.{i}")),
                map.get(&format!("router.{i}")),
            );
            if h.is_none() && a.is_none() && m.is_none() && r.is_none() {
                break;
            }
            frames.extend(h.map(|t| (Tap::Hidden(i), t.clone())));
            frames.extend(a.map(|t| (Tap::Attention(i), t.clone())));
            frames.extend(m.map(|t| (Tap::Mlp(i), t.clone())));
            frames.extend(r.map(|t| (Tap::Router(i), t.clone())));
        }
        frames.extend(map.get("logits").map(|t| (Tap::Logits, t.clone())));
        Ok(Replay { tokens, frames })
    }
}

impl ActivationSource for Replay {
    fn run(&mut self, run: u64, _request: &RunRequest, send: &mut dyn FnMut(ActivationFrame) -> bool) {
        if !send(ActivationFrame {
            run,
            data: FrameData::Tokens(self.tokens.clone()),
        }) {
            return;
        }
        for (tap, tensor) in &self.frames {
            if !send(ActivationFrame {
                run,
                data: FrameData::Activation {
                    tap: *tap,
                    from: 0,
                    tensor: tensor.clone(),
                },
            }) {
                return;
            }
        }
        send(ActivationFrame {
            run,
            data: FrameData::Done,
        });
    }
}

/// Submits requests into a channel (a thread or `drain` takes them from there).
fn queue(requests: std::sync::mpsc::Sender<(u64, RunRequest)>) -> Submit {
    Box::new(move |run, request| {
        let _ = requests.send((run, request));
    })
}

/// A source run inside `drain` (the browser build's fallback).
#[cfg(target_arch = "wasm32")]
struct Inline {
    source: Box<dyn ActivationSource>,
    inbox: Receiver<(u64, RunRequest)>,
    tx: std::sync::mpsc::Sender<ActivationFrame>,
}

/// Hands a request (with its run id) to whatever runs the source.
type Submit = Box<dyn FnMut(u64, RunRequest) + Send>;

/// A source running elsewhere — its own thread natively, a Web Worker in the
/// browser. Requests go in through `submit`; frames come out of `frames`; a
/// newer request cancels the older run between layers (natively) or passes.
pub struct Worker {
    submit: Submit,
    frames: Receiver<ActivationFrame>,
    latest: Arc<AtomicU64>,
    next_run: u64,
    dead: bool,
    #[cfg(target_arch = "wasm32")]
    inline: Option<Inline>,
}

impl Worker {
    #[cfg(not(target_arch = "wasm32"))]
    pub fn spawn(mut source: Box<dyn ActivationSource>) -> Worker {
        let (requests, inbox) = std::sync::mpsc::channel::<(u64, RunRequest)>();
        let (tx, frames): (SyncSender<ActivationFrame>, _) = sync_channel(CHANNEL_CAPACITY);
        let latest = Arc::new(AtomicU64::new(0));
        let current = latest.clone();
        std::thread::Builder::new()
            .name("tensorcity-inference".into())
            .spawn(move || {
                while let Ok((mut run, mut request)) = inbox.recv() {
                    // Only the newest queued request matters.
                    while let Ok(newer) = inbox.try_recv() {
                        (run, request) = newer;
                    }
                    let mut send = |frame: ActivationFrame| {
                        // Block while the consumer is behind, but notice cancellation.
                        let mut frame = frame;
                        loop {
                            if current.load(Ordering::SeqCst) != run {
                                return false;
                            }
                            match tx.try_send(frame) {
                                Ok(()) => return true,
                                Err(TrySendError::Full(f)) => {
                                    frame = f;
                                    std::thread::sleep(std::time::Duration::from_millis(1));
                                }
                                Err(TrySendError::Disconnected(_)) => return false,
                            }
                        }
                    };
                    // A panicking model must not take the app down: report it and keep serving.
                    let outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.run(run, &request, &mut send)));
                    if let Err(panic) = outcome {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown cause".into());
                        send(ActivationFrame {
                            run,
                            data: FrameData::Failed(format!(
                                "the inference worker panicked ({what}); run again or report a bug"
                            )),
                        });
                    }
                }
            })
            .ok();
        Worker::with(queue(requests), frames, latest)
    }

    fn with(submit: Submit, frames: Receiver<ActivationFrame>, latest: Arc<AtomicU64>) -> Worker {
        Worker {
            submit,
            frames,
            latest,
            next_run: 0,
            dead: false,
            #[cfg(target_arch = "wasm32")]
            inline: None,
        }
    }

    /// The browser's fallback when it cannot start a Web Worker: the source
    /// runs inside `drain`, one whole request at a time, on the page's thread.
    #[cfg(target_arch = "wasm32")]
    pub fn inline(source: Box<dyn ActivationSource>) -> Worker {
        let (requests, inbox) = std::sync::mpsc::channel::<(u64, RunRequest)>();
        let (tx, frames) = std::sync::mpsc::channel::<ActivationFrame>();
        Worker {
            inline: Some(Inline { source, inbox, tx }),
            ..Worker::with(queue(requests), frames, Arc::new(AtomicU64::new(0)))
        }
    }

    /// A source elsewhere — a Web Worker, a remote engine's connection
    /// thread: `post` hands it each request (the newest cancels older ones
    /// there); its frames arrive through `frames`; `latest` is the newest run
    /// id, shared with whoever reads the source's frames.
    pub fn remote(post: Submit, frames: Receiver<ActivationFrame>, latest: Arc<AtomicU64>) -> Worker {
        Worker::with(post, frames, latest)
    }

    /// Starts a run (cancelling any older one); returns its id.
    pub fn request(&mut self, request: RunRequest) -> u64 {
        self.next_run += 1;
        let run = self.next_run;
        self.latest.store(run, Ordering::SeqCst);
        (self.submit)(run, request);
        run
    }

    /// The id of the run whose frames are current.
    pub fn current_run(&self) -> u64 {
        self.latest.load(Ordering::SeqCst)
    }

    /// Up to `max` frames ready now, stale runs' frames dropped. Never blocks.
    /// A worker thread that is gone yields one `Failed` frame for the current run.
    pub fn drain(&mut self, max: usize) -> Vec<ActivationFrame> {
        #[cfg(target_arch = "wasm32")]
        if let Some(inline) = &mut self.inline {
            let newest = std::iter::from_fn(|| inline.inbox.try_recv().ok()).last();
            if let Some((run, request)) = newest {
                let tx = inline.tx.clone();
                inline.source.run(run, &request, &mut |frame| tx.send(frame).is_ok());
            }
        }
        let current = self.current_run();
        let mut out = Vec::new();
        while out.len() < max {
            match self.frames.try_recv() {
                Ok(f) if f.run == current => out.push(f),
                Ok(_) => {}
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    if !self.dead {
                        self.dead = true;
                        out.push(ActivationFrame {
                            run: current,
                            data: FrameData::Failed("the inference worker stopped; reload the model".into()),
                        });
                    }
                    break;
                }
            }
        }
        out
    }
}
