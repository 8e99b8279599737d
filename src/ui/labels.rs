//! Labels painted into the 3D view at their projected positions: each
//! layer's name left of the trunk (or the floors' ring), and in the city each
//! token's text at the foot of its column (the selected token's first). Which
//! are drawn is `layout::labels::place`: no two overlap, the ends and every
//! fourth layer win when space is short. Clipped to the view, drawn in every
//! panel mode.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::layout::labels::{self, Candidate};

/// Labels at most per frame (the rest would not fit anyway).
const MAX_LABELS: usize = 160;

/// What the labels are read from.
pub(super) struct Scene<'a> {
    pub layout: &'a crate::layout::Layout,
    pub grid: Option<&'a crate::layout::city::CityGrid>,
    pub texts: &'a [String],
    pub selected: Option<usize>,
}

pub(super) fn show(ctx: &egui::Context, camera: &Camera, at: &GlobalTransform, scene: &Scene) {
    let Some(view) = camera.logical_viewport_rect() else {
        return;
    };
    let painter = ctx
        .layer_painter(egui::LayerId::new(
            egui::Order::Background,
            egui::Id::new("scene_labels"),
        ))
        .with_clip_rect(egui::Rect::from_min_max(
            egui::pos2(view.min.x, view.min.y),
            egui::pos2(view.max.x, view.max.y),
        ));
    let project = |p: [f32; 3]| camera.world_to_viewport(at, Vec3::from(p)).ok();
    let mut texts: Vec<(String, egui::Color32, f32)> = Vec::new();
    let mut candidates = Vec::new();
    let layer_font = egui::FontId::proportional(12.0);
    let token_font = egui::FontId::proportional(13.0);
    let mut add = |text: String, font: &egui::FontId, colour, anchor: Vec2, align: f32, priority: f32| {
        let galley = painter.layout_no_wrap(text.clone(), font.clone(), colour);
        let size = galley.size();
        candidates.push(Candidate::at(anchor.to_array(), [size.x, size.y], align, priority));
        texts.push((text, colour, font.size));
    };
    for group in &scene.layout.groups {
        let b = group.bounds;
        let gap = (b.max[1] - b.min[1]).max(1e-3) * 0.2;
        // Left of the group, at its middle height.
        let anchor = [b.min[0] - gap, (b.min[1] + b.max[1]) / 2.0, (b.min[2] + b.max[2]) / 2.0];
        if let Some(p) = project(anchor) {
            let colour = egui::Color32::from_rgba_unmultiplied(200, 205, 215, 200);
            add(
                group.label.clone(),
                &layer_font,
                colour,
                p - Vec2::new(6.0, 0.0),
                1.0,
                labels::layer_priority(group.layer),
            );
        }
    }
    if let Some(grid) = scene.grid {
        for (t, text) in scene.texts.iter().enumerate() {
            let [x, y, z] = grid.cell_center(t, 0);
            let Some(p) = project([x, y - grid.cell * 1.1, z]) else {
                continue;
            };
            let selected = scene.selected == Some(t);
            let colour = if selected {
                egui::Color32::from_rgb(255, 230, 140)
            } else {
                egui::Color32::from_rgb(235, 235, 235)
            };
            add(
                labels::token_label(text),
                &token_font,
                colour,
                p,
                0.5,
                if selected { 5.0 } else { 2.5 },
            );
        }
    }
    let bounds = [view.min.x, view.min.y, view.max.x, view.max.y];
    for i in labels::place(&candidates, bounds, MAX_LABELS) {
        let (text, colour, size) = &texts[i];
        let r = candidates[i].rect;
        let font = egui::FontId::proportional(*size);
        let shadow = painter.layout_no_wrap(text.clone(), font.clone(), egui::Color32::from_black_alpha(190));
        painter.galley(egui::pos2(r[0] + 1.0, r[1] + 1.0), shadow, egui::Color32::BLACK);
        let galley = painter.layout_no_wrap(text.clone(), font, *colour);
        painter.galley(egui::pos2(r[0], r[1]), galley, *colour);
    }
}
