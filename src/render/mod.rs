//! Drawing: every visible tensor (and every collapsed layer block) becomes one
//! instance in a single instanced draw of a unit cube (see `instancing`), with
//! per-instance position, size, colour and highlight.

mod instancing;
pub mod legend;
pub mod look;

use bevy::camera::visibility::NoFrustumCulling;
use bevy::prelude::*;

pub use instancing::{BeamInstance, BeamInstances, CubeDraws, CubeInstance, CubeInstances};

use crate::AppSystems;
use crate::arch::{TensorKind, hex_to_rgb, kind_color};
use crate::lod::{LayerLod, LodState};
use crate::spawn::{Cube, Layer, Tensor};
use crate::view::ViewSettings;

/// Cube drawing on its own (the batch entity, instance rebuilds, the pipeline),
/// for benchmarks and tools that place instances themselves.
pub struct CubeRenderPlugin;

impl Plugin for CubeRenderPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(instancing::CubeInstancingPlugin)
            .insert_resource(ClearColor(BACKGROUND))
            .add_systems(Startup, spawn_batch);
    }
}

pub(crate) fn plugin(app: &mut App) {
    app.add_plugins((CubeRenderPlugin, look::plugin))
        .init_resource::<Highlight>()
        .add_systems(Update, rebuild_instances.in_set(AppSystems::Render));
}

/// Scene background: a dark blue-grey that every kind colour stands out from.
pub const BACKGROUND: Color = Color::srgb(0.075, 0.08, 0.1);

/// The tensor under the pointer and the selected one (drawn brighter, outlined).
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct Highlight {
    pub hovered: Option<Entity>,
    pub selected: Option<Entity>,
}

/// The entity that carries all cube instances.
#[derive(Component)]
pub struct CubeBatch;

fn spawn_batch(commands: Commands, mut meshes: Option<ResMut<Assets<Mesh>>>) {
    spawn_cube_batch(
        commands,
        meshes.as_deref_mut(),
        (CubeBatch, Name::new("cube instances")),
    );
}

/// Spawns an entity that draws its own [`CubeInstances`] with the instanced
/// cube pipeline (`marker` tells the batches apart).
pub fn spawn_cube_batch(mut commands: Commands, meshes: Option<&mut Assets<Mesh>>, marker: impl Bundle) {
    let mut batch = commands.spawn((
        marker,
        CubeInstances::default(),
        Transform::default(),
        // Instances are placed in the shader; the mesh's own bounds say nothing about them.
        NoFrustumCulling,
    ));
    // Without a renderer (ECS tests) there are no mesh assets; the instances are still built.
    if let Some(meshes) = meshes {
        batch.insert(Mesh3d(meshes.add(Cuboid::new(1.0, 1.0, 1.0))));
    }
}

/// Spawns an entity that draws its own [`BeamInstances`] (a ribbon strip,
/// bent and lit per instance in the beam shader).
pub fn spawn_beam_batch(mut commands: Commands, meshes: Option<&mut Assets<Mesh>>, marker: impl Bundle) {
    let mut batch = commands.spawn((marker, BeamInstances::default(), Transform::default(), NoFrustumCulling));
    if let Some(meshes) = meshes {
        batch.insert(Mesh3d(meshes.add(ribbon(BEAM_SEGMENTS))));
    }
}

/// Segments along a beam: enough that the longest arcs stay smooth (a chord
/// of a parabola bulging `b` strays `b / 576` from it: under a pixel for a
/// 64-token city's longest arc seen whole). Every segment is two triangles
/// for a software rasteriser to set up, in every beam, straight or not.
const BEAM_SEGMENTS: u32 = 24;

/// A strip of `segments` quads: x runs 0..1 along it, y is -1 or +1 across.
fn ribbon(segments: u32) -> Mesh {
    use bevy::asset::RenderAssetUsages;
    use bevy::mesh::{Indices, PrimitiveTopology};
    let n = segments.max(1);
    let mut positions = Vec::with_capacity(2 * (n as usize + 1));
    let mut uvs = Vec::with_capacity(positions.capacity());
    for i in 0..=n {
        let s = i as f32 / n as f32;
        for side in [-1.0f32, 1.0] {
            positions.push([s, side, 0.0]);
            uvs.push([s, side * 0.5 + 0.5]);
        }
    }
    let normals = vec![[0.0, 0.0, 1.0]; positions.len()];
    let indices: Vec<u32> = (0..n)
        .flat_map(|i| {
            let k = 2 * i;
            [k, k + 1, k + 2, k + 1, k + 3, k + 2]
        })
        .collect();
    Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
        .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals)
        .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, uvs)
        .with_inserted_indices(Indices::U32(indices))
}

/// Linear RGB of a kind's sRGB palette colour.
pub fn kind_linear(kind: TensorKind) -> [f32; 3] {
    let c = LinearRgba::from(Color::srgb_from_array(hex_to_rgb(kind_color(kind))));
    [c.red, c.green, c.blue]
}

/// One tensor's contribution to the instance list.
pub struct TensorDraw {
    pub center: Vec3,
    pub size: f32,
    pub kind: TensorKind,
    pub params: u64,
    pub group: Entity,
    pub highlight: f32,
    /// A routed expert's use in the current run (0..1 relative to its block's
    /// busiest expert: share of tokens, or its weight for the selected
    /// token): drawn from dim to glowing, the busiest with a bright edge.
    pub glow: Option<f32>,
    /// A colour that replaces the kind's (linear RGB): the weight statistic
    /// the trunk is coloured by.
    pub color: Option<[f32; 3]>,
}

/// One layer's block.
#[derive(Clone, Copy)]
pub struct BlockDraw {
    pub entity: Entity,
    pub center: Vec3,
    pub size: f32,
    pub lod: LodState,
}

/// Builds the instance list: tensors scaled by their layer's LOD blend; a
/// collapsed layer's block takes the colour of its largest visible kind
/// (by parameters), slightly darkened so blocks read as summaries.
pub fn build_instances(
    tensors: &[TensorDraw],
    blocks: &[BlockDraw],
    hidden: &std::collections::HashSet<TensorKind>,
) -> Vec<CubeInstance> {
    let lod_of: std::collections::HashMap<Entity, LodState> = blocks.iter().map(|b| (b.entity, b.lod)).collect();
    // Per layer: parameters of each visible kind.
    let mut mix: std::collections::HashMap<Entity, std::collections::HashMap<TensorKind, u64>> = Default::default();
    // Coloured by a statistic: a block takes its largest tensor's colour.
    let mut largest: std::collections::HashMap<Entity, (u64, [f32; 3])> = Default::default();
    let mut out = Vec::with_capacity(tensors.len() + blocks.len());
    for t in tensors.iter().filter(|t| !hidden.contains(&t.kind)) {
        let base = t.color.unwrap_or_else(|| kind_linear(t.kind));
        let (color, highlight) = match t.glow {
            Some(g) => (base.map(|c| c * (0.2 + 1.6 * g)), t.highlight.max(0.45 * g * g)),
            None => (base, t.highlight),
        };
        *mix.entry(t.group).or_default().entry(t.kind).or_default() += t.params.max(1);
        if let Some(c) = t.color {
            let entry = largest.entry(t.group).or_insert((0, c));
            if t.params >= entry.0 {
                *entry = (t.params, c);
            }
        }
        let scale = lod_of.get(&t.group).map_or(1.0, LodState::tensor_scale);
        if scale <= 1e-3 {
            continue;
        }
        out.push(CubeInstance {
            pos_size: [t.center.x, t.center.y, t.center.z, t.size * scale],
            color: [color[0], color[1], color[2], highlight],
        });
    }
    for b in blocks {
        let scale = b.lod.block_scale();
        let dominant = mix
            .get(&b.entity)
            .and_then(|kinds| kinds.iter().max_by_key(|&(k, p)| (*p, *k)).map(|(k, _)| *k));
        let Some(kind) = dominant else { continue };
        if scale <= 1e-3 {
            continue;
        }
        let c = largest
            .get(&b.entity)
            .map_or_else(|| kind_linear(kind), |(_, c)| *c)
            .map(|v| v * 0.8);
        out.push(CubeInstance {
            pos_size: [b.center.x, b.center.y, b.center.z, b.size * scale],
            color: [c[0], c[1], c[2], 0.0],
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn rebuild_instances(
    settings: Res<ViewSettings>,
    highlight: Res<Highlight>,
    routing: Option<Res<crate::activations::ExpertRouting>>,
    selected: Option<Res<crate::activations::SelectedToken>>,
    current: Option<Res<crate::model::CurrentModel>>,
    weight_stats: Res<crate::weight_stats::WeightStats>,
    weight_diff: Res<crate::weight_stats::WeightDiff>,
    tensors: Query<(Entity, &Tensor, &Cube, &ChildOf)>,
    layers: Query<(Entity, &Layer, &LayerLod)>,
    changed: Query<(), Or<(Changed<LayerLod>, Added<Cube>)>>,
    removed: RemovedComponents<Cube>,
    mut batch: Query<&mut CubeInstances, With<CubeBatch>>,
) {
    let routing_changed = routing.as_ref().is_some_and(|r| r.is_changed())
        || selected
            .as_ref()
            .is_some_and(|s| s.is_changed() && routing.as_ref().is_some_and(|r| !r.blocks.is_empty()));
    let dirty = settings.is_changed()
        || weight_stats.is_changed()
        || weight_diff.is_changed()
        || highlight.is_changed()
        || routing_changed
        || !changed.is_empty()
        || !removed.is_empty();
    if !dirty {
        return;
    }
    let Ok(mut instances) = batch.single_mut() else { return };
    let colors = stat_colors(
        &settings,
        &weight_stats,
        &weight_diff,
        tensors.iter().map(|(_, t, _, _)| t),
    );
    let draws: Vec<TensorDraw> = tensors
        .iter()
        .map(|(e, t, c, parent)| TensorDraw {
            color: colors.as_ref().map(|f| f(t)),
            glow: expert_glow(t, routing.as_deref(), selected.as_deref(), current.as_deref()),
            center: c.center,
            size: c.size,
            kind: t.kind,
            params: t.params,
            group: parent.parent(),
            highlight: if highlight.selected == Some(e) {
                1.0
            } else if highlight.hovered == Some(e) {
                0.5
            } else {
                0.0
            },
        })
        .collect();
    let blocks: Vec<BlockDraw> = layers
        .iter()
        .map(|(e, l, lod)| BlockDraw {
            entity: e,
            center: l.center,
            size: l.block_size,
            lod: lod.0,
        })
        .collect();
    instances.set(build_instances(&draws, &blocks, &settings.hidden_kinds));
}

/// The colour of each tensor under the statistic (or the difference) the
/// trunk is coloured by (`None` while colouring by kind or before the numbers
/// are ready): its place on the scale over the model's matrices, in viridis.
fn stat_colors<'a>(
    settings: &ViewSettings,
    weights: &crate::weight_stats::WeightStats,
    diff: &crate::weight_stats::WeightDiff,
    tensors: impl Iterator<Item = &'a Tensor>,
) -> Option<impl Fn(&Tensor) -> [f32; 3]> {
    use crate::weights::color::{ColorBy, NO_VALUE, Scale, viridis};
    let values: std::collections::HashMap<String, f64> = match settings.color {
        ColorBy::Kind => return None,
        ColorBy::Stat(stat) => weights
            .ready()?
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), stat.value(s)?)))
            .collect(),
        ColorBy::Delta => diff
            .ready()?
            .tensors
            .iter()
            .filter(|(_, d)| d.missing.is_none() && d.rel_delta.is_finite())
            .map(|(n, d)| (n.clone(), d.rel_delta))
            .collect(),
    };
    let scale = Scale::for_tensors(
        tensors.filter_map(|t| Some((*values.get(&t.name)?, t.shape.len() >= 2))),
        settings.color.logarithmic(),
    );
    let linear = |srgb: [f32; 3]| {
        let c = LinearRgba::from(Color::srgb_from_array(srgb));
        [c.red, c.green, c.blue]
    };
    Some(move |t: &Tensor| match (values.get(&t.name), scale) {
        (Some(&v), Some(scale)) => linear(viridis(scale.position(v))),
        _ => linear(NO_VALUE),
    })
}

/// How much a routed expert's cube glows in the current run (`None` for
/// every other tensor, and before any router logits arrive).
fn expert_glow(
    t: &Tensor,
    routing: Option<&crate::activations::ExpertRouting>,
    selected: Option<&crate::activations::SelectedToken>,
    current: Option<&crate::model::CurrentModel>,
) -> Option<f32> {
    if t.kind != TensorKind::Expert {
        return None;
    }
    let block = routing?.blocks.get(&(t.layer? as usize))?;
    let expert = current?.arch.tensors.get(t.index)?.expert?;
    let token = selected.and_then(|s| s.0).filter(|&p| p < block.routes.len());
    Some(block.intensity(expert, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_kinds_and_collapsed_layers_are_not_drawn_as_tensors() {
        let g = Entity::from_raw_u32(7).unwrap();
        let t = |kind| TensorDraw {
            center: Vec3::ZERO,
            size: 1.0,
            kind,
            params: 100,
            group: g,
            highlight: 0.0,
            glow: None,
            color: None,
        };
        let tensors = [t(TensorKind::Norm), t(TensorKind::MlpUp)];
        let open = BlockDraw {
            entity: g,
            center: Vec3::Y,
            size: 2.0,
            lod: LodState::default(),
        };
        let hidden = [TensorKind::Norm].into_iter().collect();
        assert_eq!(build_instances(&tensors, &[open], &hidden).len(), 1);
        let closed = BlockDraw {
            lod: LodState {
                collapsed: true,
                blend: 1.0,
            },
            ..open
        };
        let drawn = build_instances(&tensors, &[closed], &Default::default());
        assert_eq!(drawn.len(), 1, "only the block");
        assert_eq!(drawn[0].pos_size, [0.0, 1.0, 0.0, 2.0]);
    }
}
