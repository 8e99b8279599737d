//! The egui panels: model panel (picker, facts, parameters by kind, legend,
//! view settings) on the left, the searchable layer/tensor tree on the right,
//! prompt panel at the bottom, hover tooltip, loading overlay and error panel.
//! The 3D view gets the space between the panels.

mod chrome;
mod city_panel;
mod fold;
mod labels;
mod model_panel;
mod overlays;
mod prompt_panel;
mod stats_panel;
mod tree;

pub use chrome::Chrome;
pub use fold::Folds;
pub use prompt_panel::PromptUi;

use bevy::camera::visibility::RenderLayers;
use bevy::camera::{CameraOutputMode, Viewport};
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::window::PrimaryWindow;
use bevy_egui::{EguiContexts, EguiGlobalSettings, EguiPlugin, EguiPrimaryContextPass, PrimaryEguiContext, egui};

use crate::camera::{MainCamera, UiFocus};

pub(crate) fn plugin(app: &mut App) {
    if !app.is_plugin_added::<EguiPlugin>() {
        app.add_plugins(EguiPlugin::default());
    }
    app.init_resource::<UiState>()
        .init_resource::<PromptUi>()
        .init_resource::<Chrome>()
        .init_resource::<Folds>()
        .add_systems(Update, chrome::keys.in_set(crate::AppSystems::Input))
        .add_systems(Startup, spawn_ui_camera)
        .configure_sets(EguiPrimaryContextPass, (UiSystems::Panels, UiSystems::Overlays).chain())
        .add_systems(EguiPrimaryContextPass, draw_ui.in_set(UiSystems::Panels));
}

/// egui draws through its own camera over the whole window, so the 3D camera's
/// viewport can shrink to the space between the panels.
fn spawn_ui_camera(mut commands: Commands, mut egui_settings: ResMut<EguiGlobalSettings>) {
    egui_settings.auto_create_primary_context = false;
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        Name::new("ui camera"),
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
}

/// Text fields and toggles of the panels.
#[derive(Resource, Debug, Default)]
pub struct UiState {
    pub model_input: String,
    /// The model panel's engine address (`ws://HOST:PORT`).
    pub engine_input: String,
    pub search: String,
    pub show_buffers: bool,
}

/// The egui pass, in order (schedule `EguiPrimaryContextPass`, after `Update`).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UiSystems {
    /// The panels, windows and tooltips; fits the 3D camera's viewport between the panels.
    Panels,
    /// Controls drawn over the 3D view (the capture buttons), after the panels.
    Overlays,
}

/// Draws every panel and fits the 3D camera's viewport between them.
fn draw_ui(
    mut contexts: EguiContexts,
    mut state: ResMut<UiState>,
    mut panel: model_panel::PanelParams,
    mut tree: tree::TreeParams,
    mut overlay: overlays::OverlayParams,
    mut prompt: prompt_panel::PromptParams,
    mut city: city_panel::CityParams,
    mut focus: ResMut<UiFocus>,
    mut camera: Query<(&mut Camera, &GlobalTransform), With<MainCamera>>,
    window: Query<&Window, With<PrimaryWindow>>,
    (chrome, mut folds): (Res<Chrome>, ResMut<Folds>),
    run: Res<crate::activations::CurrentRun>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "viewport".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let (mut left, mut right, mut bottom) = (0.0, 0.0, 0.0);
    if chrome.panels() {
        let mut f = *folds;
        left = fold::show(&mut root, &fold::MODEL, &mut f.model, |ui| {
            model_panel::show(ui, &mut state, &mut panel)
        });
        right = fold::show(&mut root, &fold::TREE, &mut f.tree, |ui| {
            tree::show(ui, &mut state, &mut tree)
        });
        bottom = fold::show(&mut root, &fold::PROMPT, &mut f.prompt, |ui| {
            prompt_panel::show(ui, &mut prompt)
        });
        if let Some(token) = city_panel::show(&ctx, &mut city, &mut f.city) {
            prompt.select(token);
        }
        folds.set_if_neq(f);
    }
    let mut clear = Vec::new();
    if *chrome == Chrome::Presentation
        && let Some(current) = &panel.current
    {
        use crate::render::legend;
        let subtitle = (!run.0.texts.is_empty()).then(|| legend::prompt_line(&run.0.texts));
        let city = panel.settings.layout == crate::layout::LayoutKind::City && !run.0.hidden.is_empty();
        let entries: Vec<_> = legend::entries(&current.summary, &panel.settings, city)
            .into_iter()
            .map(|([r, g, b], label)| (egui::Color32::from_rgb(r, g, b), label))
            .collect();
        clear = chrome::presentation(&ctx, &current.arch.name, subtitle.as_deref(), &entries);
    }
    if let (Some(current), Ok((cam, at))) = (&panel.current, camera.single()) {
        let scene = crate::layout::labels::LabelScene {
            layout: &current.layout,
            grid: city.city.grid.as_ref(),
            texts: &city.city.scene.texts,
            selected: prompt.selected.0,
            up: Vec3::from(at.up()).to_array(),
        };
        labels::show(&ctx, cam, at, &scene, &clear);
    }
    // The presentation mode shows no tooltip; loading and errors always show.
    let hovered = tree.highlight.hovered.filter(|_| *chrome != Chrome::Presentation);
    overlays::show(&ctx, &mut overlay, hovered);

    focus.pointer = ctx.is_pointer_over_egui() || ctx.egui_wants_pointer_input();
    focus.keyboard = ctx.egui_wants_keyboard_input();

    // The 3D view fills the space between the panels.
    if let (Ok(window), Ok((mut camera, _))) = (window.single(), camera.single_mut()) {
        let scale = window.scale_factor();
        let (w, h) = (window.physical_width(), window.physical_height());
        let x = ((left * scale) as u32).min(w.saturating_sub(1));
        let width = w.saturating_sub(x + (right * scale) as u32).max(1);
        let height = h.saturating_sub((bottom * scale) as u32).max(1);
        let viewport = Viewport {
            physical_position: UVec2::new(x, 0),
            physical_size: UVec2::new(width, height),
            ..default()
        };
        if camera.viewport.as_ref().is_none_or(|v| {
            v.physical_position != viewport.physical_position || v.physical_size != viewport.physical_size
        }) {
            camera.viewport = Some(viewport);
        }
    }
    Ok(())
}

/// An egui colour swatch of a kind's palette colour.
pub(crate) fn kind_color32(kind: crate::arch::TensorKind) -> egui::Color32 {
    let hex = crate::arch::kind_color(kind);
    egui::Color32::from_rgb((hex >> 16) as u8, (hex >> 8) as u8, hex as u8)
}
