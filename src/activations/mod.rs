//! The Bevy side of inference. When a model loads, a background task opens
//! its weights and tokenizer and starts a worker thread ([`Runner`]); a
//! [`Prompt`] is tokenized into a [`RunPrompt`], which starts a run on the
//! worker (cancelling the previous one); each update, up to
//! [`MAX_FRAMES_PER_UPDATE`] ready frames are drained from the bounded channel
//! into [`ActivationMessage`]s and folded into [`CurrentRun`]. The model code
//! itself lives in `inference` and has no Bevy types.

pub mod run;

use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, futures_lite::future};

pub use run::{RunState, RunStatus};

use crate::AppSystems;
use crate::arch::ModelRef;
use crate::inference::ModelFiles;
use crate::inference::stream::{ActivationFrame, Decoding, FrameData, LocalRunner, RunRequest, Worker};
use crate::model::{CurrentModel, ModelLoaded};

/// Frames handed to the app per update; the rest wait in the bounded channel
/// (which in turn pauses the worker), so a slow renderer never grows memory.
/// In the browser the Web Worker cannot be paused, so each update takes all
/// that has arrived (folding is cheap; drawing is what costs): a run then
/// ends when the worker ends, not 32 frames per drawn frame later.
#[cfg(not(target_arch = "wasm32"))]
pub const MAX_FRAMES_PER_UPDATE: usize = 32;
#[cfg(target_arch = "wasm32")]
pub const MAX_FRAMES_PER_UPDATE: usize = usize::MAX;

pub struct ActivationsPlugin;

impl Plugin for ActivationsPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<Prompt>()
            .add_message::<RunPrompt>()
            .add_message::<ActivationMessage>()
            .init_resource::<CurrentRun>()
            .init_resource::<Runner>()
            .init_resource::<SelectedToken>()
            .add_systems(
                Update,
                (
                    prepare_runner.run_if(on_message::<ModelLoaded>),
                    finish_runner,
                    submit_prompts,
                    start_runs,
                    drain_frames,
                    apply_frames,
                    fill_lens,
                )
                    .chain()
                    .in_set(AppSystems::Model),
            );
    }
}

/// The worker running the current model. (`Mutex` because the channel
/// receiver is `Send` but not `Sync`.)
#[derive(Resource)]
pub struct InferenceWorker(Mutex<Worker>);

impl InferenceWorker {
    #[cfg(not(target_arch = "wasm32"))]
    pub fn spawn(source: Box<dyn crate::inference::stream::ActivationSource>) -> Self {
        InferenceWorker(Mutex::new(Worker::spawn(source)))
    }
}

/// Whether the current model can run, and its tokenizer when it can.
#[derive(Resource, Default)]
pub enum Runner {
    /// No model yet.
    #[default]
    None,
    /// Weights are being opened.
    Preparing(Task<Result<(Arc<ModelFiles>, crate::inference::Model), String>>),
    /// The files (tokenizer) and the model the worker runs (shared: the app
    /// computes the logit lens of a selected token with it).
    Ready(Arc<ModelFiles>, Arc<crate::inference::Model>),
    /// Why prompts cannot run on this model (the architecture view is unaffected).
    Unavailable(String),
}

/// Run a text prompt on the current model (tokenized with its tokenizer).
#[derive(Message, Debug, Clone)]
pub struct Prompt {
    pub text: String,
    /// Tokens to generate after the prompt (0: one forward pass).
    pub new_tokens: usize,
    pub decoding: Decoding,
}

/// Run token ids (and optionally generate) on the current model.
#[derive(Message, Debug, Clone)]
pub struct RunPrompt(pub RunRequest);

/// One streamed frame of the current run.
#[derive(Message, Debug, Clone)]
pub struct ActivationMessage(pub ActivationFrame);

/// The token position the user selected (`None`: the last one).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectedToken(pub Option<usize>);

impl SelectedToken {
    /// The selected position within a run of `len` tokens.
    pub fn position(&self, len: usize) -> Option<usize> {
        let last = len.checked_sub(1)?;
        Some(self.0.map_or(last, |p| p.min(last)))
    }
}

/// The current run, folded from the frames.
#[derive(Resource, Debug, Clone, Default, Deref, DerefMut)]
pub struct CurrentRun(pub RunState);

/// Opens the weights of the newly loaded model off the main thread.
fn prepare_runner(
    mut commands: Commands,
    current: Option<Res<CurrentModel>>,
    mut runner: ResMut<Runner>,
    mut run: ResMut<CurrentRun>,
) {
    let Some(current) = current else { return };
    // The old model's worker goes (its thread ends when its channel closes).
    commands.remove_resource::<InferenceWorker>();
    #[cfg(target_arch = "wasm32")]
    crate::web::worker::stop();
    *run = CurrentRun::default();
    let request = current.request.clone();
    #[cfg(not(target_arch = "wasm32"))]
    let task = AsyncComputeTaskPool::get().spawn(async move { open_runner(&request) });
    // The browser fetches the embedded model's weights first.
    #[cfg(target_arch = "wasm32")]
    let task = AsyncComputeTaskPool::get().spawn(crate::web::embedded::open_runner(request));
    *runner = Runner::Preparing(task);
}

/// The pure part of preparing: files, then weights.
pub fn open_runner(request: &ModelRef) -> Result<(Arc<ModelFiles>, crate::inference::Model), String> {
    let files = ModelFiles::open(request).map_err(|e| e.to_string())?;
    let model = files.load().map_err(|e| e.to_string())?;
    Ok((Arc::new(files), model))
}

fn finish_runner(mut commands: Commands, mut runner: ResMut<Runner>) {
    let Runner::Preparing(task) = &mut *runner else { return };
    let Some(result) = block_on(future::poll_once(task)) else {
        return;
    };
    *runner = match result {
        Ok((files, model)) => {
            let model = Arc::new(model);
            #[cfg(not(target_arch = "wasm32"))]
            commands.insert_resource(InferenceWorker::spawn(Box::new(LocalRunner {
                model: model.clone(),
                files: Some(files.clone()),
            })));
            // In the browser: a Web Worker, or the page's own thread if it has none.
            #[cfg(target_arch = "wasm32")]
            commands.insert_resource(InferenceWorker(Mutex::new(
                crate::web::worker::spawn(&files).unwrap_or_else(|| {
                    Worker::inline(Box::new(LocalRunner {
                        model: model.clone(),
                        files: Some(files.clone()),
                    }))
                }),
            )));
            Runner::Ready(files, model)
        }
        Err(e) => Runner::Unavailable(e),
    };
}

/// Tokenizes prompts; problems land in the run status for the panel to show.
fn submit_prompts(
    mut prompts: MessageReader<Prompt>,
    runner: Res<Runner>,
    mut run: ResMut<CurrentRun>,
    mut out: MessageWriter<RunPrompt>,
) {
    let Some(prompt) = prompts.read().last().cloned() else {
        return;
    };
    let fail = |run: &mut CurrentRun, message: String| {
        run.0 = RunState {
            status: RunStatus::Failed(message),
            ..Default::default()
        };
    };
    match &*runner {
        Runner::Ready(files, _) => match files.tokenize(&prompt.text) {
            Ok(tokens) if tokens.is_empty() => fail(&mut run, "the prompt is empty".into()),
            Ok(tokens) => {
                out.write(RunPrompt(RunRequest {
                    tokens,
                    new_tokens: prompt.new_tokens,
                    decoding: prompt.decoding,
                }));
            }
            Err(e) => fail(&mut run, e.to_string()),
        },
        Runner::Preparing(_) => fail(
            &mut run,
            "the model's weights are still loading; try again in a moment".into(),
        ),
        Runner::Unavailable(why) => fail(&mut run, why.clone()),
        Runner::None => fail(&mut run, "no model is loaded".into()),
    }
}

fn start_runs(
    mut requests: MessageReader<RunPrompt>,
    worker: Option<Res<InferenceWorker>>,
    mut run: ResMut<CurrentRun>,
) {
    let Some(request) = requests.read().last().cloned() else {
        return;
    };
    let Some(worker) = worker else {
        run.status = RunStatus::Failed("this model cannot run (see the prompt panel)".into());
        return;
    };
    if let Ok(mut w) = worker.0.lock() {
        let prompt_len = request.0.tokens.len();
        let id = w.request(request.0);
        run.start(id, prompt_len);
    }
}

fn drain_frames(worker: Option<Res<InferenceWorker>>, mut out: MessageWriter<ActivationMessage>) {
    let Some(worker) = worker else { return };
    let Ok(mut w) = worker.0.lock() else { return };
    out.write_batch(w.drain(MAX_FRAMES_PER_UPDATE).into_iter().map(ActivationMessage));
}

fn apply_frames(mut frames: MessageReader<ActivationMessage>, mut run: ResMut<CurrentRun>, runner: Res<Runner>) {
    let mut retokenized = false;
    for frame in frames.read() {
        retokenized |= run.apply(&frame.0) && matches!(frame.0.data, FrameData::Tokens(_));
    }
    if retokenized && let Runner::Ready(files, _) = &*runner {
        run.texts = files.token_texts(&run.tokens);
    }
}

/// The logit lens of the selected token, computed on demand (the worker
/// streams it for the last position only).
fn fill_lens(mut run: ResMut<CurrentRun>, runner: Res<Runner>, selected: Res<SelectedToken>) {
    let Runner::Ready(_, model) = &*runner else { return };
    let Some(position) = selected.position(run.tokens.len()) else {
        return;
    };
    if !run.lens_missing(position, model.num_layers()) {
        return;
    }
    if let Err(e) = run.fill_lens(model, position) {
        run.notice = Some(format!("logit lens: {e}"));
    }
}
