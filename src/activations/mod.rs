//! The Bevy side of inference. When a model loads, the [`InferenceBackend`]
//! opens its weights and tokenizer on a task and starts its worker ([`Runner`]);
//! a [`Prompt`] is tokenized into a [`RunPrompt`], which starts a run on the
//! worker (cancelling the previous one); each update, up to
//! [`MAX_FRAMES_PER_UPDATE`] ready frames are drained from the bounded channel
//! into [`ActivationMessage`]s and folded into [`CurrentRun`]; heavier
//! analyses of the run (lens of other positions, saliency, PCA) run on tasks
//! ([`Analyses`]). The model code itself lives in `inference` and has no Bevy types.

pub mod analysis;
pub mod experts;
pub mod run;

use std::sync::{Arc, Mutex};

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, BoxedFuture, Task, block_on, futures_lite::future};

pub use analysis::Analysis;
pub use run::{RunState, RunStatus};

use crate::AppSystems;
use crate::arch::ModelRef;
use crate::inference::stream::{ActivationFrame, Decoding, FrameData, RunRequest, Worker};
use crate::inference::{InferenceError, Model, ModelFiles};
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
            .add_message::<RequestSaliency>()
            .init_resource::<CurrentRun>()
            .init_resource::<Runner>()
            .init_resource::<SelectedToken>()
            .init_resource::<Analyses>()
            .init_resource::<InferenceBackend>()
            .init_resource::<ExpertRouting>()
            .add_systems(
                Update,
                (
                    prepare_runner.run_if(on_message::<ModelLoaded>),
                    finish_runner,
                    submit_prompts,
                    start_runs,
                    show_city_for_runs,
                    drain_frames,
                    apply_frames,
                    route_experts,
                    analyse,
                )
                    .chain()
                    .in_set(AppSystems::Inference),
            );
    }
}

/// A model's files and its loaded weights, ready to run.
pub type Opened = (Arc<ModelFiles>, Model);

/// How this build runs models. Natively: a task opens the files, a thread
/// runs them. The browser's `web` module installs its own (it fetches the
/// embedded model's weights and runs them in a Web Worker), so this module
/// depends on nothing above it.
#[derive(Resource, Clone, Copy)]
pub struct InferenceBackend {
    /// Opens a loaded model's weights and tokenizer (run on a task).
    pub open: fn(ModelRef) -> BoxedFuture<'static, Result<Opened, InferenceError>>,
    /// Starts the worker that runs them.
    pub start: fn(&Arc<ModelFiles>, &Arc<Model>) -> Worker,
    /// Ends the previous model's worker where dropping its handle does not.
    pub stop: fn(),
    /// Connects to a remote engine (`ws://…`) and starts its worker.
    pub connect: fn(String) -> BoxedFuture<'static, Result<Connected, crate::engine::EngineError>>,
}

impl Default for InferenceBackend {
    fn default() -> Self {
        InferenceBackend {
            open: |request| Box::pin(async move { open_runner(&request) }),
            start: local_worker,
            stop: || {},
            #[cfg(not(target_arch = "wasm32"))]
            connect: |url| Box::pin(async move { connect_engine(&url) }),
            #[cfg(target_arch = "wasm32")]
            connect: |url| {
                Box::pin(async move {
                    Err(crate::engine::EngineError::Connect {
                        url,
                        detail: "this build has no engine client".into(),
                    })
                })
            },
        }
    }
}

/// The built-in engine on its own thread (the browser: on the page's thread).
pub fn local_worker(files: &Arc<ModelFiles>, model: &Arc<Model>) -> Worker {
    let source = Box::new(crate::inference::stream::LocalRunner {
        model: model.clone(),
        files: Some(files.clone()),
    });
    #[cfg(not(target_arch = "wasm32"))]
    return Worker::spawn(source);
    #[cfg(target_arch = "wasm32")]
    return Worker::inline(source);
}

/// The worker running the current model. (`Mutex` because the channel
/// receiver is `Send` but not `Sync`.)
#[derive(Resource)]
pub struct InferenceWorker(Mutex<Worker>);

impl InferenceWorker {
    pub fn new(worker: Worker) -> Self {
        InferenceWorker(Mutex::new(worker))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn spawn(source: Box<dyn crate::inference::stream::ActivationSource>) -> Self {
        InferenceWorker::new(Worker::spawn(source))
    }
}

/// Whether the current model can run, and its tokenizer when it can.
#[derive(Resource, Default)]
pub enum Runner {
    /// No model yet.
    #[default]
    None,
    /// Weights are being opened.
    Preparing(Task<Result<Opened, InferenceError>>),
    /// The files (tokenizer) and the model the worker runs (shared: the
    /// analyses compute the logit lens and saliency with it).
    Ready(Arc<ModelFiles>, Arc<Model>),
    /// Why prompts cannot run on this model (the architecture view is unaffected).
    Unavailable(Arc<InferenceError>),
    /// Connecting to a remote engine (natively).
    Connecting(Task<Result<Connected, crate::engine::EngineError>>),
    /// A remote engine runs the prompts: it tokenizes them and names the
    /// tokens it sends (`texts`); there is no local model for analyses.
    Remote {
        texts: Arc<crate::engine::TokenTexts>,
        engine: String,
    },
}

impl Runner {
    /// Whether prompts can be submitted now.
    pub fn can_run(&self) -> bool {
        matches!(self, Runner::Ready(..) | Runner::Remote { .. })
    }

    /// Display texts of tokens, from the tokenizer or the engine (`None`: no model to name them).
    pub fn token_texts(&self, ids: &[u32]) -> Option<Vec<String>> {
        match self {
            Runner::Ready(files, _) => Some(files.token_texts(ids)),
            Runner::Remote { texts, .. } => Some(texts.texts(ids)),
            _ => None,
        }
    }

    /// A token's display text (`#id` when it has none).
    pub fn token_text(&self, id: u32) -> String {
        self.token_texts(&[id]).map_or_else(|| format!("#{id}"), |t| t.concat())
    }
}

/// A remote engine's worker, its token strings and its name.
pub type Connected = (Worker, Arc<crate::engine::TokenTexts>, String);

/// Connects to the engine at `url` and starts its connection thread.
#[cfg(not(target_arch = "wasm32"))]
fn connect_engine(url: &str) -> Result<Connected, crate::engine::EngineError> {
    use crate::engine::client;
    let connection = client::connect(url)?;
    let engine = connection.hello.engine.clone();
    let want = client::viewer_wants(&connection.hello);
    let (worker, texts) = client::spawn(connection, want, client::DEFAULT_STALL);
    Ok((worker, texts, engine))
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

/// Compute the saliency of the tokens up to `position` for the token the
/// model predicts after it (one backward pass, on a task).
#[derive(Message, Debug, Clone, Copy)]
pub struct RequestSaliency {
    pub position: usize,
}

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

/// Saliency of a run's tokens up to a position: the predicted token and one
/// score per token, or why it failed.
pub type Saliency = Result<(u32, Vec<f32>), String>;

/// Background analyses of the current run; panels read the results.
#[derive(Resource, Default)]
pub struct Analyses {
    /// Keyed by (run, tokens in the pass, position, tensors arrived).
    pub lens: Analysis<(u64, usize, usize, usize), Result<run::LensAt, String>>,
    /// Keyed by (run, position).
    pub saliency: Analysis<(u64, usize), Saliency>,
    /// PCA of one hidden state: keyed by (run, tokens, floor); per token its
    /// coordinates on PC1..PC3, and each component's share of the variance.
    pub pca: Analysis<(u64, usize, usize), (Vec<Vec<f32>>, Vec<f32>)>,
}

/// Opens the weights of the newly loaded model off the main thread.
fn prepare_runner(
    mut commands: Commands,
    current: Option<Res<CurrentModel>>,
    backend: Res<InferenceBackend>,
    mut runner: ResMut<Runner>,
    mut run: ResMut<CurrentRun>,
    mut analyses: ResMut<Analyses>,
) {
    let Some(current) = current else { return };
    // The old model's worker goes (its thread ends when its channel closes).
    commands.remove_resource::<InferenceWorker>();
    (backend.stop)();
    *run = CurrentRun::default();
    *analyses = Analyses::default();
    if let ModelRef::Engine(url) = &current.request {
        *runner = Runner::Connecting(AsyncComputeTaskPool::get().spawn((backend.connect)(url.clone())));
        return;
    }
    let task = AsyncComputeTaskPool::get().spawn((backend.open)(current.request.clone()));
    *runner = Runner::Preparing(task);
}

/// The native part of preparing: files, then weights.
pub fn open_runner(request: &ModelRef) -> Result<Opened, InferenceError> {
    let files = ModelFiles::open(request)?;
    let model = files.load()?;
    Ok((Arc::new(files), model))
}

fn finish_runner(mut commands: Commands, backend: Res<InferenceBackend>, mut runner: ResMut<Runner>) {
    if let Runner::Connecting(task) = &mut *runner {
        let Some(result) = block_on(future::poll_once(task)) else {
            return;
        };
        *runner = match result {
            Ok((worker, texts, engine)) => {
                commands.insert_resource(InferenceWorker::new(worker));
                Runner::Remote { texts, engine }
            }
            Err(e) => Runner::Unavailable(Arc::new(InferenceError::Arch(e.into()))),
        };
        return;
    }
    let Runner::Preparing(task) = &mut *runner else { return };
    let Some(result) = block_on(future::poll_once(task)) else {
        return;
    };
    *runner = match result {
        Ok((files, model)) => {
            let model = Arc::new(model);
            commands.insert_resource(InferenceWorker::new((backend.start)(&files, &model)));
            Runner::Ready(files, model)
        }
        Err(e) => Runner::Unavailable(Arc::new(e)),
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
                    text: None,
                }));
            }
            Err(e) => fail(&mut run, e.to_string()),
        },
        Runner::Remote { .. } => {
            if prompt.text.trim().is_empty() {
                fail(&mut run, "the prompt is empty".into());
            } else {
                out.write(RunPrompt(RunRequest {
                    tokens: Vec::new(),
                    new_tokens: prompt.new_tokens,
                    decoding: prompt.decoding,
                    text: Some(prompt.text),
                }));
            }
        }
        Runner::Preparing(_) => fail(
            &mut run,
            "the model's weights are still loading; try again in a moment".into(),
        ),
        Runner::Connecting(_) => fail(&mut run, "still connecting to the engine; try again in a moment".into()),
        Runner::Unavailable(why) => fail(&mut run, why.to_string()),
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

/// Running a prompt shows the city: the layout switches to it (the model
/// panel switches back). The Layout stage lays it out next frame.
fn show_city_for_runs(mut runs: MessageReader<RunPrompt>, settings: Option<ResMut<crate::view::ViewSettings>>) {
    if runs.read().last().is_none() {
        return;
    }
    if let Some(mut settings) = settings
        && settings.layout != crate::layout::LayoutKind::City
    {
        settings.layout = crate::layout::LayoutKind::City;
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
    if retokenized && let Some(texts) = runner.token_texts(&run.tokens) {
        run.texts = texts;
    }
}

/// Which experts each mixture-of-experts block of the current run used (see
/// [`experts::BlockRouting`]), by block; empty for dense models.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct ExpertRouting {
    pub blocks: std::collections::BTreeMap<usize, experts::BlockRouting>,
    /// (run, tokens, router maps) the routing was computed for.
    key: (u64, usize, usize),
}

impl ExpertRouting {
    /// The routing of `run` with `k` experts per token.
    pub fn of(run: &RunState, k: usize) -> ExpertRouting {
        let rows = run.router.values().next().and_then(|t| t.dim(0).ok()).unwrap_or(0);
        ExpertRouting {
            blocks: experts::routing(&run.router, k),
            key: (run.run, rows, run.router.len()),
        }
    }
}

/// Experts per token of a model (`num_experts_per_tok`, 2 when unstated).
pub fn experts_per_token(current: Option<&CurrentModel>) -> usize {
    current
        .and_then(|c| c.arch.config.as_ref())
        .and_then(|c| c.experts_per_token)
        .unwrap_or(2) as usize
}

/// Recomputes [`ExpertRouting`] when router logits arrive.
fn route_experts(run: Res<CurrentRun>, current: Option<Res<CurrentModel>>, mut routing: ResMut<ExpertRouting>) {
    if !run.is_changed() {
        return;
    }
    let rows = run.router.values().next().and_then(|t| t.dim(0).ok()).unwrap_or(0);
    let key = (run.run, rows, run.router.len());
    if key == routing.key {
        return;
    }
    *routing = ExpertRouting::of(&run, experts_per_token(current.as_deref()));
}

/// Starts and collects the analyses: the logit lens of the selected token
/// (the worker streams it for the last position only) and saliency on request.
fn analyse(
    mut run: ResMut<CurrentRun>,
    runner: Res<Runner>,
    selected: Res<SelectedToken>,
    mut requests: MessageReader<RequestSaliency>,
    mut analyses: ResMut<Analyses>,
) {
    let Runner::Ready(_, model) = &*runner else { return };
    if analyses.lens.poll()
        && let Some(((id, tokens, position, _), result)) = analyses.lens.latest().cloned()
        && id == run.run
        && tokens == run.tokens.len()
    {
        match result {
            Ok(lens) => run.merge_lens(position, lens),
            Err(e) => run.notice = Some(format!("logit lens: {e}")),
        }
    }
    if let Some(position) = selected.position(run.tokens.len())
        && run.lens_missing(position, model.num_layers())
    {
        let (model, inputs) = (model.clone(), run.lens_inputs());
        let arrived = run.hidden.len() + usize::from(run.logits.is_some());
        analyses
            .lens
            .want((run.run, run.tokens.len(), position, arrived), move || {
                run::lens_at(&model, &inputs, position).map_err(|e| e.to_string())
            });
    }
    if let Some(request) = requests.read().last()
        && request.position < run.tokens.len()
    {
        let (model, tokens) = (model.clone(), run.tokens[..=request.position].to_vec());
        analyses.saliency.want((run.run, request.position), move || {
            model.saliency(&tokens, None).map_err(|e| e.to_string())
        });
    }
    analyses.saliency.poll();
}
