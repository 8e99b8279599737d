//! `tensorcity view`: the windowed app. Validates the request, opens the
//! window and asks the model plugin to load the model (the window shows a
//! loading overlay meanwhile; errors show in a panel, the app keeps running).

use bevy::prelude::*;

use crate::arch::{LoadOptions, ModelRef};
use crate::layout::LayoutKind;
use crate::model::LoadModel;
use crate::view::ViewSettings;

/// winit panics without a display server; say what to do instead.
#[cfg(not(target_arch = "wasm32"))]
fn check_display() -> anyhow::Result<()> {
    let has = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    if cfg!(target_os = "linux") && !has("DISPLAY") && !has("WAYLAND_DISPLAY") {
        anyhow::bail!(
            "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set); run the viewer in a desktop session or under `xvfb-run`, or draw a picture with `tensorcity render MODEL --out shot.png`"
        );
    }
    Ok(())
}

/// What `tensorcity view` opens.
#[derive(Debug, Clone)]
pub struct ViewJob {
    pub model: ModelRef,
    pub options: LoadOptions,
    pub layout: LayoutKind,
    /// Window size in logical pixels.
    pub size: (u32, u32),
    /// A frame script to run (demos, tests).
    pub script: Option<std::path::PathBuf>,
    /// A checkpoint to compare the model's weights with (`--diff B`): the
    /// trunk is coloured by the difference.
    pub diff: Option<ModelRef>,
    /// HDR, bloom and fog (`--glow`), flat colours (`--flat`), or by the
    /// adapter (`None`: flat on a software rasteriser, see `render::look`).
    pub glow: Option<bool>,
}

#[cfg(not(target_arch = "wasm32"))]
pub fn run(job: ViewJob) -> anyhow::Result<()> {
    let script = match &job.script {
        Some(path) => Some(crate::script::Script::load(path)?),
        None => None,
    };
    check_display()?;
    crate::offscreen::check_gpu()?;
    let model = job.model;
    let window = Window {
        title: format!("tensorcity — {}", crate::model::describe(&model)),
        resolution: bevy::window::WindowResolution::new(job.size.0, job.size.1),
        ..default()
    };
    // A frame script's screenshots show what is asked of them: each pipeline
    // compiles in the frame that needs it (asynchronously, a busy machine
    // once screenshotted the error panel before egui's pipeline was ready).
    let compile = if script.is_some() {
        Compile::InFrame
    } else {
        Compile::Background
    };
    let mut app = app(window, model, job.options, job.layout, compile);
    match job.glow {
        Some(glow) => app.world_mut().resource_mut::<ViewSettings>().glow = glow,
        None => {
            app.add_systems(Startup, crate::render::look::glow_by_adapter);
        }
    }
    if let Some(b) = job.diff {
        app.insert_resource(crate::weight_stats::DiffTarget(b));
        app.world_mut().resource_mut::<ViewSettings>().color = crate::weights::color::ColorBy::Delta;
    }
    if let Some(script) = script {
        app.add_plugins(crate::script::plugin).insert_resource(script);
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => anyhow::bail!("the viewer exited with code {code}"),
    }
}

/// When render pipelines compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compile {
    /// In the background: frames keep coming, drawn without what is not ready yet.
    Background,
    /// In the frame that asks for them: every frame is drawn whole.
    InFrame,
}

/// The viewer app in `window`, asked to load `model` (natively and in the browser).
pub fn app(window: Window, model: ModelRef, options: LoadOptions, layout: LayoutKind, compile: Compile) -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(crate::log_plugin())
            .set(WindowPlugin {
                primary_window: Some(window),
                ..default()
            })
            .set(bevy::render::RenderPlugin {
                synchronous_pipeline_compilation: compile == Compile::InFrame,
                ..default()
            }),
    )
    .add_plugins(crate::ViewerPlugin)
    .insert_resource(ViewSettings { layout, ..default() });
    app.world_mut().write_message(LoadModel { model, options });
    app
}
