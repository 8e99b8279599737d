//! The `Layout` and `Spawn` stages: recomputes the current model's layout when
//! the view settings ask for another one, and turns it into entities — a
//! `ModelRoot`, one [`Layer`] per group (embeddings, each block, the head) with
//! [`Tensor`] children. Every per-model entity hangs under the root, so
//! replacing a model is one despawn.

use bevy::prelude::*;

use crate::AppSystems;
use crate::arch::{Architecture, TensorKind};
use crate::layout::{Layout, Tower};
use crate::model::CurrentModel;
use crate::view::ViewSettings;

pub(crate) fn plugin(app: &mut App) {
    app.add_systems(Update, relayout.in_set(AppSystems::Layout))
        .add_systems(Update, respawn_model.in_set(AppSystems::Spawn));
}

/// Parent of every per-model entity.
#[derive(Component, Debug)]
pub struct ModelRoot;

/// One layer of a tower: a transformer block, or the embeddings or head group.
#[derive(Component, Debug, Clone)]
pub struct Layer {
    /// Index into `Layout::groups`.
    pub group: usize,
    pub label: String,
    pub tower: Tower,
    pub layer: Option<u32>,
    pub center: Vec3,
    /// Edge of the collapsed block.
    pub block_size: f32,
    pub params: u64,
}

/// One tensor of the checkpoint.
#[derive(Component, Debug, Clone)]
pub struct Tensor {
    /// Index into `Architecture::tensors`.
    pub index: usize,
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    pub params: u64,
    pub kind: TensorKind,
    pub layer: Option<u32>,
    pub buffer: bool,
}

/// Where a tensor's cube is drawn.
#[derive(Component, Debug, Clone, Copy)]
pub struct Cube {
    pub center: Vec3,
    pub size: f32,
    /// Index into `Layout::cubes`.
    pub slot: usize,
}

/// Recomputes the layout when the arrangement or the size scale changes.
fn relayout(settings: Res<ViewSettings>, current: Option<ResMut<CurrentModel>>) {
    let Some(mut current) = current else { return };
    if settings.is_changed() && current.needs_layout(&settings) {
        current.relayout(&settings);
    }
}

/// Despawns the old model's entities and spawns the new ones whenever
/// [`CurrentModel`] changes (new model or new layout).
fn respawn_model(mut commands: Commands, current: Option<Res<CurrentModel>>, roots: Query<Entity, With<ModelRoot>>) {
    let Some(current) = current else { return };
    if !current.is_changed() {
        return;
    }
    for root in &roots {
        commands.entity(root).despawn();
    }
    spawn_model(&mut commands, &current.arch, &current.layout);
}

/// Spawns a model's entities; returns the root.
pub fn spawn_model(commands: &mut Commands, arch: &Architecture, layout: &Layout) -> Entity {
    let root = commands
        .spawn((
            ModelRoot,
            Name::new(format!("model {}", arch.name)),
            Transform::default(),
            Visibility::default(),
        ))
        .id();
    for (gi, group) in layout.groups.iter().enumerate() {
        let params = group
            .cubes
            .iter()
            .map(|&c| &arch.tensors[layout.cubes[c].tensor])
            .filter(|t| !t.buffer)
            .map(|t| t.params)
            .sum();
        let layer = commands
            .spawn((
                Layer {
                    group: gi,
                    label: group.label.clone(),
                    tower: group.tower,
                    layer: group.layer,
                    center: Vec3::from(group.center),
                    block_size: group.block_size,
                    params,
                },
                Name::new(group.label.clone()),
                ChildOf(root),
            ))
            .id();
        let tensors: Vec<_> = group
            .cubes
            .iter()
            .map(|&c| {
                let slot = layout.cubes[c];
                let t = &arch.tensors[slot.tensor];
                (
                    Tensor {
                        index: slot.tensor,
                        name: t.name.clone(),
                        shape: t.shape.clone(),
                        dtype: t.dtype.clone(),
                        params: t.params,
                        kind: t.kind,
                        layer: t.layer,
                        buffer: t.buffer,
                    },
                    Cube {
                        center: Vec3::from(slot.center),
                        size: slot.size,
                        slot: c,
                    },
                    Name::new(t.name.clone()),
                    ChildOf(layer),
                )
            })
            .collect();
        commands.spawn_batch(tensors);
    }
    root
}
