//! Loading models on a background task: a [`LoadModel`] message starts one
//! (reading headers and `config.json` into an [`Architecture`]); when it
//! finishes — or when the page hands over an architecture it parsed itself
//! ([`ShowArchitecture`]) — [`install`] puts it in [`CurrentModel`], laid out
//! for the current [`ViewSettings`]. Failures land in [`LoadError`] and
//! `AppState::Error`; the app keeps running and keeps its model.

use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, BoxedFuture, Task, block_on, futures_lite::future};

use crate::arch::{ArchError, Architecture, LoadOptions, ModelRef, load_model};
use crate::layout::Layout;
use crate::view::ViewSettings;
use crate::{AppState, AppSystems};

pub(crate) fn plugin(app: &mut App) {
    app.add_message::<LoadModel>()
        .add_message::<ModelLoaded>()
        .add_message::<ShowArchitecture>()
        .add_message::<ShowLoadError>()
        .init_resource::<RecentModels>()
        .init_resource::<EngineLoader>()
        .add_systems(
            Update,
            (start_loading, finish_loading, show_parsed)
                .chain()
                .in_set(AppSystems::Load),
        );
}

/// Ask for a model to be loaded (replacing the current one when it succeeds).
#[derive(Message, Debug, Clone)]
pub struct LoadModel {
    pub model: ModelRef,
    pub options: LoadOptions,
}

/// Show an architecture read elsewhere (the browser's file picker and
/// drag-and-drop, the page's Hub fetch) under `request`'s name.
#[derive(Message, Debug, Clone)]
pub struct ShowArchitecture {
    pub arch: Architecture,
    pub request: ModelRef,
}

/// A load that failed elsewhere (the page): the error panel shows it, the app keeps running.
#[derive(Message, Debug, Clone)]
pub struct ShowLoadError(pub String);

/// Sent once a new model is in [`CurrentModel`].
#[derive(Message, Debug, Clone)]
pub struct ModelLoaded;

/// Why a model could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or validating the model's files, headers or config.
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// The browser page could not open it (network, CORS, not a safetensors file).
    #[error("{0}")]
    Page(String),
}

/// The model on screen and its layout.
#[derive(Resource, Clone)]
pub struct CurrentModel {
    pub arch: Arc<Architecture>,
    /// Computed by [`CurrentModel::new`] and [`CurrentModel::relayout`] only.
    pub layout: Arc<Layout>,
    /// Totals and the by-kind breakdown, computed once per model (the panels
    /// read them every frame).
    pub summary: Arc<crate::arch::Summary>,
    /// What was asked for (for the recent list and reloads).
    pub request: ModelRef,
}

impl CurrentModel {
    /// `arch` laid out as `settings` say.
    pub fn new(arch: Architecture, request: ModelRef, settings: &ViewSettings) -> Self {
        let layout = Arc::new(Layout::compute(&arch, settings.layout, settings.scale));
        CurrentModel {
            summary: Arc::new(arch.summary()),
            arch: Arc::new(arch),
            layout,
            request,
        }
    }

    /// Loads `model` and lays it out (the command-line paths: render, record).
    pub fn load(model: &ModelRef, options: &LoadOptions, settings: &ViewSettings) -> Result<Self, ArchError> {
        Ok(CurrentModel::new(
            load_architecture(model, options)?,
            model.clone(),
            settings,
        ))
    }

    /// Whether the layout is not the one `settings` ask for.
    pub fn needs_layout(&self, settings: &ViewSettings) -> bool {
        self.layout.kind != settings.layout || self.layout.scale != settings.scale
    }

    /// Lays the model out again for `settings`.
    pub fn relayout(&mut self, settings: &ViewSettings) {
        self.layout = Arc::new(Layout::compute(&self.arch, settings.layout, settings.scale));
    }
}

/// The last load's failure, shown by the error panel until dismissed.
#[derive(Resource, Debug, Clone)]
pub struct LoadError(pub Arc<ModelError>);

/// What the current background load is doing (for the loading overlay).
#[derive(Resource)]
pub struct Loading {
    pub what: String,
    pub started: bevy::platform::time::Instant,
    task: Task<Result<Architecture, ArchError>>,
    request: ModelRef,
}

/// Models opened this session, newest first.
#[derive(Resource, Debug, Clone, Default)]
pub struct RecentModels(pub Vec<String>);

/// Reads an engine's architecture from its handshake (a task). Natively a
/// short blocking connection; the browser's `web` module installs its own
/// (a WebSocket it keeps for the run that follows).
#[derive(Resource, Clone, Copy)]
pub struct EngineLoader(pub fn(String) -> BoxedFuture<'static, Result<Architecture, ArchError>>);

impl Default for EngineLoader {
    fn default() -> Self {
        EngineLoader(|url| Box::pin(async move { load_architecture(&ModelRef::Engine(url), &LoadOptions::default()) }))
    }
}

/// Describes a model request for panels and window titles.
pub fn describe(model: &ModelRef) -> String {
    match model {
        ModelRef::Embedded => crate::arch::EMBEDDED_NAME.to_string(),
        ModelRef::Path(p) => p.display().to_string(),
        ModelRef::Id(id) => id.clone(),
        ModelRef::Engine(url) => url.clone(),
    }
}

/// Any model's architecture: an engine's from its handshake (one short
/// connection), everything else from its files or the Hub.
pub fn load_architecture(model: &ModelRef, options: &LoadOptions) -> Result<Architecture, ArchError> {
    #[cfg(not(target_arch = "wasm32"))]
    if let ModelRef::Engine(url) = model {
        let connection = crate::engine::client::connect(url)?;
        return crate::engine::architecture(&connection.hello, url);
    }
    load_model(model, options)
}

fn start_loading(
    mut commands: Commands,
    mut requests: MessageReader<LoadModel>,
    mut next: ResMut<NextState<AppState>>,
    engines: Res<EngineLoader>,
) {
    // A newer request replaces an older one still running (its task is dropped, which cancels it).
    let Some(request) = requests.read().last().cloned() else {
        return;
    };
    let model = request.model.clone();
    let task = match &request.model {
        ModelRef::Engine(url) => AsyncComputeTaskPool::get().spawn((engines.0)(url.clone())),
        _ => AsyncComputeTaskPool::get().spawn(async move { load_architecture(&request.model, &request.options) }),
    };
    commands.insert_resource(Loading {
        what: describe(&model),
        started: bevy::platform::time::Instant::now(),
        task,
        request: model,
    });
    next.set(AppState::Loading);
}

/// What installing or failing needs (both message paths share it).
#[derive(bevy::ecs::system::SystemParam)]
struct Installer<'w, 's> {
    commands: Commands<'w, 's>,
    settings: Res<'w, ViewSettings>,
    recent: ResMut<'w, RecentModels>,
    loaded: MessageWriter<'w, ModelLoaded>,
    next: ResMut<'w, NextState<AppState>>,
}

impl Installer<'_, '_> {
    /// The one way a model gets on screen: laid out, on the recent list, announced.
    fn install(&mut self, arch: Architecture, request: ModelRef) {
        for notice in &arch.notices {
            info!("{notice}");
        }
        let name = describe(&request);
        self.recent.0.retain(|r| *r != name);
        self.recent.0.insert(0, name);
        self.recent.0.truncate(10);
        self.commands.remove_resource::<Loading>();
        self.commands
            .insert_resource(CurrentModel::new(arch, request, &self.settings));
        self.commands.remove_resource::<LoadError>();
        self.loaded.write(ModelLoaded);
        self.next.set(AppState::Ready);
    }

    fn fail(&mut self, error: ModelError) {
        warn!("{error}");
        self.commands.insert_resource(LoadError(Arc::new(error)));
        self.next.set(AppState::Error);
    }
}

fn finish_loading(loading: Option<ResMut<Loading>>, mut installer: Installer) {
    let Some(mut loading) = loading else { return };
    let Some(result) = block_on(future::poll_once(&mut loading.task)) else {
        return;
    };
    installer.commands.remove_resource::<Loading>();
    match result {
        Ok(arch) => installer.install(arch, loading.request.clone()),
        Err(e) => installer.fail(e.into()),
    }
}

/// Shows architectures and errors that arrive from the page.
fn show_parsed(
    mut parsed: MessageReader<ShowArchitecture>,
    mut errors: MessageReader<ShowLoadError>,
    mut installer: Installer,
) {
    if let Some(e) = errors.read().last() {
        installer.fail(ModelError::Page(e.0.clone()));
    }
    if let Some(show) = parsed.read().last().cloned() {
        installer.install(show.arch, show.request);
    }
}
