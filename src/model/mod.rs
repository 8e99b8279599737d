//! Loading models on a background task: a [`LoadModel`] message starts one;
//! when it finishes the old per-model entities go and the new ones come (see
//! `layout::spawn`). Failures land in [`LoadError`] and `AppState::Error`; the
//! app keeps running.

use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, futures_lite::future};

use crate::arch::{Architecture, CubeScale, LoadOptions, ModelRef, load_model};
use crate::layout::{Layout, LayoutKind};
use crate::{AppState, AppSystems};

pub(crate) fn plugin(app: &mut App) {
    app.add_message::<LoadModel>()
        .add_message::<ModelLoaded>()
        .add_message::<ShowArchitecture>()
        .add_message::<ShowLoadError>()
        .init_resource::<ViewSettings>()
        .init_resource::<RecentModels>()
        .add_systems(
            Update,
            (start_loading, finish_loading, show_parsed)
                .chain()
                .in_set(AppSystems::Model),
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

/// A load that failed elsewhere: the error panel shows it, the app keeps running.
#[derive(Message, Debug, Clone)]
pub struct ShowLoadError(pub String);

/// Sent once a new model is in [`CurrentModel`].
#[derive(Message, Debug, Clone)]
pub struct ModelLoaded;

/// The model on screen and its layout.
#[derive(Resource, Clone)]
pub struct CurrentModel {
    pub arch: Arc<Architecture>,
    pub layout: Arc<Layout>,
    /// Totals and the by-kind breakdown, computed once per model (the panels
    /// read them every frame).
    pub summary: Arc<crate::arch::Summary>,
    /// What was asked for (for the recent list and reloads).
    pub request: ModelRef,
}

impl CurrentModel {
    pub fn new(arch: Architecture, layout: Layout, request: ModelRef) -> Self {
        let summary = Arc::new(arch.summary());
        CurrentModel {
            arch: Arc::new(arch),
            layout: Arc::new(layout),
            summary,
            request,
        }
    }
}

/// How the model is drawn.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ViewSettings {
    pub layout: LayoutKind,
    pub scale: CubeScale,
    /// Kinds hidden from the scene (legend toggles).
    pub hidden_kinds: std::collections::HashSet<crate::arch::TensorKind>,
    /// Collapse far layers into blocks.
    pub lod: bool,
}

impl Default for ViewSettings {
    fn default() -> Self {
        ViewSettings {
            layout: LayoutKind::Trunk,
            scale: CubeScale::Relative,
            hidden_kinds: Default::default(),
            lod: true,
        }
    }
}

/// The last load's failure, shown by the error panel until dismissed.
#[derive(Resource, Debug, Clone)]
pub struct LoadError(pub String);

/// What the current background load is doing (for the loading overlay).
#[derive(Resource)]
pub struct Loading {
    pub what: String,
    pub started: bevy::platform::time::Instant,
    task: Task<Result<(Architecture, Layout), String>>,
    request: ModelRef,
}

/// Models opened this session, newest first.
#[derive(Resource, Debug, Clone, Default)]
pub struct RecentModels(pub Vec<String>);

/// Describes a model request for panels and window titles.
pub fn describe(model: &ModelRef) -> String {
    match model {
        ModelRef::Embedded => crate::arch::EMBEDDED_NAME.to_string(),
        ModelRef::Path(p) => p.display().to_string(),
        ModelRef::Id(id) => id.clone(),
    }
}

/// Loads and lays out a model; the pure part of the background task.
pub fn load_and_layout(
    model: &ModelRef,
    options: &LoadOptions,
    kind: LayoutKind,
    scale: CubeScale,
) -> Result<(Architecture, Layout), String> {
    let arch = load_model(model, options).map_err(|e| e.to_string())?;
    let layout = Layout::compute(&arch, kind, scale);
    Ok((arch, layout))
}

fn start_loading(
    mut commands: Commands,
    mut requests: MessageReader<LoadModel>,
    settings: Res<ViewSettings>,
    mut next: ResMut<NextState<AppState>>,
) {
    // A newer request replaces an older one still running (its task is dropped, which cancels it).
    let Some(request) = requests.read().last().cloned() else {
        return;
    };
    let (kind, scale) = (settings.layout, settings.scale);
    let model = request.model.clone();
    let task = AsyncComputeTaskPool::get()
        .spawn(async move { load_and_layout(&request.model, &request.options, kind, scale) });
    commands.insert_resource(Loading {
        what: describe(&model),
        started: bevy::platform::time::Instant::now(),
        task,
        request: model,
    });
    next.set(AppState::Loading);
}

fn finish_loading(
    mut commands: Commands,
    loading: Option<ResMut<Loading>>,
    mut recent: ResMut<RecentModels>,
    mut loaded: MessageWriter<ModelLoaded>,
    mut next: ResMut<NextState<AppState>>,
) {
    let Some(mut loading) = loading else { return };
    let Some(result) = block_on(future::poll_once(&mut loading.task)) else {
        return;
    };
    commands.remove_resource::<Loading>();
    match result {
        Ok((arch, layout)) => {
            for notice in &arch.notices {
                info!("{notice}");
            }
            let name = describe(&loading.request);
            recent.0.retain(|r| *r != name);
            recent.0.insert(0, name);
            recent.0.truncate(10);
            commands.insert_resource(CurrentModel::new(arch, layout, loading.request.clone()));
            commands.remove_resource::<LoadError>();
            loaded.write(ModelLoaded);
            next.set(AppState::Ready);
        }
        Err(e) => {
            warn!("{e}");
            commands.insert_resource(LoadError(e));
            next.set(AppState::Error);
        }
    }
}

/// Lays out and shows architectures that arrive already parsed, and errors
/// from elsewhere.
fn show_parsed(
    mut commands: Commands,
    mut parsed: MessageReader<ShowArchitecture>,
    mut errors: MessageReader<ShowLoadError>,
    settings: Res<ViewSettings>,
    mut loaded: MessageWriter<ModelLoaded>,
    mut next: ResMut<NextState<AppState>>,
) {
    if let Some(e) = errors.read().last() {
        warn!("{}", e.0);
        commands.insert_resource(LoadError(e.0.clone()));
        next.set(AppState::Error);
    }
    let Some(show) = parsed.read().last().cloned() else {
        return;
    };
    let layout = Layout::compute(&show.arch, settings.layout, settings.scale);
    commands.remove_resource::<Loading>();
    commands.insert_resource(CurrentModel::new(show.arch, layout, show.request));
    commands.remove_resource::<LoadError>();
    loaded.write(ModelLoaded);
    next.set(AppState::Ready);
}
