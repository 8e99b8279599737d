//! Floating UI: the hover tooltip for the cube under the pointer, the loading
//! overlay while a model is read, and the error panel (the app stays alive).

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui;

use crate::arch::{group_digits, human};
use crate::model::{CurrentModel, LoadError, Loading};
use crate::spawn::{Layer, Tensor};

#[derive(SystemParam)]
pub(super) struct OverlayParams<'w, 's> {
    tensors: Query<'w, 's, (&'static Tensor, &'static ChildOf)>,
    layers: Query<'w, 's, &'static Layer>,
    current: Option<Res<'w, CurrentModel>>,
    loading: Option<Res<'w, Loading>>,
    error: Option<Res<'w, LoadError>>,
    weight_stats: Res<'w, crate::weight_stats::WeightStats>,
    weight_diff: Res<'w, crate::weight_stats::WeightDiff>,
    commands: Commands<'w, 's>,
}

pub(super) fn show(ctx: &egui::Context, p: &mut OverlayParams, hovered: Option<Entity>) {
    if let (Some(hovered), Some(current)) = (hovered, &p.current)
        && let Ok((t, parent)) = p.tensors.get(hovered)
    {
        let total = current.arch.total_params().max(1);
        let layer = p
            .layers
            .get(parent.parent())
            .map(|l| l.label.clone())
            .unwrap_or_default();
        egui::Tooltip::always_open(
            ctx.clone(),
            egui::LayerId::background(),
            egui::Id::new("cube_tooltip"),
            egui::PopupAnchor::Pointer,
        )
        .show(|ui| {
            ui.strong(&t.name);
            ui.label(format!(
                "{layer} · {}",
                if t.buffer {
                    "buffer (not counted)"
                } else {
                    t.kind.label()
                }
            ));
            ui.label(format!(
                "shape {:?} · {}",
                t.shape,
                crate::arch::gguf::dtype_label(&t.dtype)
            ));
            ui.label(format!(
                "{} params ({}) · {:.3}% of the model",
                group_digits(t.params),
                human(t.params),
                100.0 * t.params as f64 / total as f64
            ));
            if let Some(s) = p.weight_stats.ready().and_then(|stats| stats.get(&t.name)) {
                super::stats_panel::tensor_stats(ui, s);
            }
            if let Some(d) = p.weight_diff.ready().and_then(|diff| diff.tensors.get(&t.name)) {
                super::stats_panel::tensor_diff(ui, d);
            }
            if cfg!(not(target_arch = "wasm32")) && !t.buffer {
                ui.small("Z: open its weights · double-click: fly to it");
            }
        });
    }
    if let Some(loading) = &p.loading {
        egui::Window::new("Loading")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, 0.0))
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!(
                        "Reading {} (headers and config only)… {:.1} s",
                        loading.what,
                        loading.started.elapsed().as_secs_f32()
                    ));
                });
            });
    }
    if let Some(error) = &p.error {
        let mut open = true;
        egui::Window::new("Could not open the model")
            .collapsible(false)
            .open(&mut open)
            .anchor(egui::Align2::CENTER_TOP, egui::vec2(0.0, 40.0))
            .show(ctx, |ui| {
                ui.colored_label(egui::Color32::from_rgb(255, 120, 110), error.0.to_string());
                ui.small("Fix the path or id and open it again from the model panel.");
            });
        if !open {
            p.commands.remove_resource::<LoadError>();
        }
    }
}
