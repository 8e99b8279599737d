//! Pointer interaction with the cubes: hover (tooltip + highlight), click to
//! select, double-click to glide there.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use crate::AppSystems;
use crate::camera::{FocusOn, MainCamera, UiFocus};
use crate::layout::pick::nearest_hit;
use crate::lod::LayerLod;
use crate::render::Highlight;
use crate::spawn::{Cube, Tensor};
use crate::view::ViewSettings;

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<ClickTracker>().add_systems(
        Update,
        hover_and_click
            .in_set(AppSystems::Interact)
            // Picks against this frame's level of detail.
            .after(crate::lod::update_lod),
    );
}

/// Seconds between two clicks that make a double-click.
const DOUBLE_CLICK: f32 = 0.35;
/// Pixels the pointer may move between press and release for a click (not a drag).
const CLICK_SLOP: f32 = 4.0;

#[derive(Resource, Default)]
struct ClickTracker {
    pressed_at: Option<Vec2>,
    last_click: Option<(f32, Entity)>,
}

fn hover_and_click(
    time: Res<Time>,
    ui: Res<UiFocus>,
    settings: Res<ViewSettings>,
    buttons: Res<ButtonInput<MouseButton>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform), With<MainCamera>>,
    tensors: Query<(Entity, &Tensor, &Cube, &ChildOf)>,
    lods: Query<&LayerLod>,
    mut highlight: ResMut<Highlight>,
    mut clicks: ResMut<ClickTracker>,
    mut focus: MessageWriter<FocusOn>,
) {
    let (Ok(window), Ok((camera, camera_transform))) = (windows.single(), cameras.single()) else {
        return;
    };
    let cursor = window.cursor_position().filter(|_| !ui.pointer);
    // Viewport positions are window positions: Bevy subtracts the viewport's offset itself.
    let ray = cursor.and_then(|c| camera.viewport_to_world(camera_transform, c).ok());
    let hit = ray.and_then(|ray| {
        let candidates: Vec<(Entity, [f32; 3], f32)> = tensors
            .iter()
            .filter(|(_, t, _, _)| !settings.hidden_kinds.contains(&t.kind))
            .map(|(e, _, c, p)| {
                let scale = lods.get(p.parent()).map_or(1.0, |l| l.0.tensor_scale());
                (e, c.center.to_array(), c.size * scale)
            })
            .collect();
        let cubes = candidates.iter().enumerate().map(|(i, &(_, c, s))| (i, c, s));
        nearest_hit(ray.origin.to_array(), ray.direction.to_array(), cubes).map(|(i, _)| candidates[i].0)
    });
    if highlight.hovered != hit {
        highlight.hovered = hit;
    }
    if ui.pointer {
        return;
    }
    if buttons.just_pressed(MouseButton::Left) {
        clicks.pressed_at = cursor;
    }
    if buttons.just_released(MouseButton::Left) {
        let was_click = match (clicks.pressed_at.take(), cursor) {
            (Some(a), Some(b)) => a.distance(b) <= CLICK_SLOP,
            _ => false,
        };
        if !was_click {
            return;
        }
        let now = time.elapsed_secs();
        if let Some(entity) = hit {
            let double = clicks
                .last_click
                .is_some_and(|(t, e)| e == entity && now - t < DOUBLE_CLICK);
            highlight.selected = Some(entity);
            if double && let Ok((_, _, cube, _)) = tensors.get(entity) {
                focus.write(FocusOn {
                    center: cube.center,
                    size: cube.size,
                });
            }
            clicks.last_click = Some((now, entity));
        } else {
            highlight.selected = None;
            clicks.last_click = None;
        }
    }
}
