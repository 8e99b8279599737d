//! The zoom's legend, over the 3D view's bottom-right corner: which tensor, its
//! shape and stack, the diverging colour bar with its range, how many
//! elements a texel stands for at the level the camera sees, and how to close.

use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};

use super::{Picture, Zoom};
use crate::camera::MainCamera;
use crate::model::CurrentModel;
use crate::weights::plane::diverging;

pub(super) fn legend(
    mut contexts: EguiContexts,
    zoom: Res<Zoom>,
    current: Option<Res<CurrentModel>>,
    cameras: Query<(&Camera, &GlobalTransform), With<MainCamera>>,
) -> Result {
    let Some(z) = &zoom.0 else { return Ok(()) };
    let ctx = contexts.ctx_mut()?.clone();
    let view = cameras.single().ok().and_then(|(c, _)| c.logical_viewport_rect());
    if let (Ok((camera, at)), Some(current), Some(view)) = (cameras.single(), &current, view) {
        layer_labels(&ctx, z, camera, at, &current.layout.bounds, view);
    }
    let right_bottom = view.map_or(ctx.viewport_rect().right_bottom(), |r| egui::pos2(r.max.x, r.max.y));
    egui::Area::new(egui::Id::new("weights_legend"))
        .pivot(egui::Align2::RIGHT_BOTTOM)
        .fixed_pos(right_bottom + egui::vec2(-10.0, -10.0))
        .show(&ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.set_max_width(300.0);
                ui.strong(format!("Weights · {}", z.name));
                let tensor = current
                    .as_ref()
                    .and_then(|c| c.arch.tensors.iter().find(|t| t.name == z.name));
                if let Some(t) = tensor {
                    ui.label(format!(
                        "shape {:?} · {}",
                        t.shape,
                        crate::arch::gguf::dtype_label(&t.dtype)
                    ));
                }
                if let Some(e) = &z.error {
                    ui.colored_label(egui::Color32::from_rgb(255, 150, 120), e);
                    ui.small("Z or Esc closes");
                    return;
                }
                if z.planes.len() > 1 {
                    ui.label(format!(
                        "{} layers stacked, bottom to top; the one framed in gold is this one ({} of {})",
                        z.planes.len(),
                        z.selected + 1,
                        z.planes.len()
                    ));
                }
                match z.selected_plane().map(|p| &p.picture) {
                    Some(Picture::Ready { max_abs, .. }) => {
                        bar(ui, *max_abs);
                        ui.small(if z.delta {
                            "B - A (the checkpoint compared with, minus this one), scaled to its max |B - A|"
                        } else {
                            "blue negative, red positive, scaled to this tensor's max |x|; green: NaN/Inf"
                        });
                        let side = 1u64 << z.level.min(62);
                        ui.small(if side == 1 {
                            "1 texel = 1 element".to_string()
                        } else {
                            format!("1 texel = {side} x {side} elements (the one of largest |x|); come closer for more")
                        });
                    }
                    Some(Picture::Failed(e)) => {
                        ui.colored_label(egui::Color32::from_rgb(255, 150, 120), e);
                    }
                    _ => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("reading the weights…");
                        });
                    }
                }
                let failed = z
                    .planes
                    .iter()
                    .filter(|p| matches!(p.picture, Picture::Failed(_)))
                    .count();
                if failed > 0 && z.planes.len() > 1 {
                    ui.small(format!(
                        "{failed} of the stacked planes cannot be drawn (hover shows why in the tree)"
                    ));
                }
                ui.small("Z or Esc closes");
            });
        });
    Ok(())
}

/// "layer N" left of each stacked plane, where it projects into the view.
fn layer_labels(
    ctx: &egui::Context,
    z: &super::Zoomed,
    camera: &Camera,
    at: &GlobalTransform,
    bounds: &crate::layout::Bounds,
    view: Rect,
) {
    if z.planes.len() < 2 {
        return;
    }
    let placement = super::draw::placement(z, bounds);
    let clip = egui::Rect::from_min_max(egui::pos2(view.min.x, view.min.y), egui::pos2(view.max.x, view.max.y));
    let painter = ctx
        .layer_painter(egui::LayerId::new(
            egui::Order::Background,
            egui::Id::new("weights_layers"),
        ))
        .with_clip_rect(clip);
    for (i, (plane, c)) in z.planes.iter().zip(&placement.centers).enumerate() {
        let Some(layer) = crate::arch::numeric_segments(&plane.name).first().copied() else {
            continue;
        };
        let edge = Vec3::new(c[0] - placement.size[0] / 2.0, c[1], c[2]);
        let Ok(p) = camera.world_to_viewport(at, edge) else {
            continue;
        };
        let colour = if i == z.selected {
            egui::Color32::from_rgb(255, 217, 90)
        } else {
            egui::Color32::from_gray(200)
        };
        painter.text(
            // Viewport positions are window positions.
            egui::pos2(p.x - 8.0, p.y),
            egui::Align2::RIGHT_CENTER,
            format!("layer {layer}"),
            egui::FontId::proportional(13.0),
            colour,
        );
    }
}

/// The diverging bar from −max through 0 to +max.
fn bar(ui: &mut egui::Ui, max_abs: f32) {
    let width = ui.available_width().clamp(160.0, 260.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 12.0), egui::Sense::hover());
    let steps = 48;
    for i in 0..steps {
        let t = (i as f32 + 0.5) / steps as f32 * 2.0 - 1.0;
        let [r, g, b, _] = diverging(t * max_abs, max_abs);
        let x0 = rect.left() + rect.width() * i as f32 / steps as f32;
        let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32 + 0.5;
        let cell = egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom()));
        ui.painter().rect_filled(cell, 0.0, egui::Color32::from_rgb(r, g, b));
    }
    ui.horizontal(|ui| {
        ui.small(format!("{:+.3e}", -max_abs));
        ui.add_space((width / 2.0 - 70.0).max(0.0));
        ui.small("0");
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.small(format!("{:+.3e}", max_abs));
        });
    });
}
