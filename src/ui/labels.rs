//! Labels painted into the 3D view at their projected positions: each
//! layer's name left of the trunk (or the floors' ring), and in the city each
//! token's text at the foot of its column (the selected token's first). Which
//! are drawn is `layout::labels::placed`: no two overlap (stacked ones keep
//! a line of air between them), the ends and every fourth layer win when
//! space is short; none covers a cube of another layer or the presentation
//! overlay's text; each sits on a dark plate. Clipped to the view, drawn in
//! every panel mode. Headless stills and clips paint the same labels
//! (`record::overlay`).

use bevy::prelude::*;
use bevy_egui::egui;

use crate::layout::labels::{self, LabelScene};

pub(super) fn show(
    ctx: &egui::Context,
    camera: &Camera,
    at: &GlobalTransform,
    scene: &LabelScene,
    clear: &[egui::Rect],
) {
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
    let Some(project) = crate::camera::projector(camera, at) else {
        return;
    };
    let all = labels::scene_labels(scene, &project, 1.0);
    let mut measure = |text: &str, size: f32| {
        let galley = painter.layout_no_wrap(text.to_string(), egui::FontId::proportional(size), egui::Color32::WHITE);
        galley.size().into()
    };
    let bounds = [view.min.x, view.min.y, view.max.x, view.max.y];
    let clear: Vec<[f32; 4]> = clear.iter().map(|r| [r.min.x, r.min.y, r.max.x, r.max.y]).collect();
    for (i, r) in labels::placed(&all, &mut measure, bounds, &clear, labels::MAX_LABELS) {
        let label = &all.labels[i];
        let [red, green, blue, alpha] = label.rgba;
        let colour = egui::Color32::from_rgba_unmultiplied(red, green, blue, alpha);
        let font = egui::FontId::proportional(label.size);
        // A dark plate keeps the text readable where it falls on bright cubes.
        let plate = egui::Rect::from_min_max(egui::pos2(r[0], r[1]), egui::pos2(r[2], r[3])).expand(labels::PLATE_GROW);
        painter.rect_filled(plate, 3.0, egui::Color32::from_black_alpha(labels::PLATE_ALPHA));
        let shadow = painter.layout_no_wrap(label.text.clone(), font.clone(), egui::Color32::from_black_alpha(190));
        painter.galley(egui::pos2(r[0] + 1.0, r[1] + 1.0), shadow, egui::Color32::BLACK);
        let galley = painter.layout_no_wrap(label.text.clone(), font, colour);
        painter.galley(egui::pos2(r[0], r[1]), galley, colour);
    }
}
