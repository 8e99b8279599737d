//! The zoom's entities: each picture (an overview, a tile) is a quad with its
//! own texture (nearest-neighbour sampled: one texel is one block of
//! elements, sharp at any distance) and an unlit material, a child of the
//! zoom's root, placed by `weights::zoom` beside the model. Also the
//! camera's glide to a newly opened plane and the choice of tiles from the
//! view.

use bevy::asset::RenderAssetUsages;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::ecs::system::SystemParam;
use bevy::image::ImageSampler;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_panorbit_camera::PanOrbitCamera;

use super::{Built, Tile, Zoom, Zoomed};
use crate::camera::{GlideTo, MainCamera};
use crate::layout::Bounds;
use crate::model::CurrentModel;
use crate::weights::plane::{self, MAX_RESIDENT_TILES, PlaneShape};
use crate::weights::zoom::{self, Placement};

/// What a quad shows: which plane, which part of it (see
/// `zoom::texel_rect`), how far in front of the plane (finer levels nearer).
#[derive(Component, Debug, Clone, Copy)]
pub struct ZoomQuad {
    pub plane: usize,
    pub part: [f64; 4],
    pub lift: i32,
}

/// Marks a tile's quad (the overviews are always shown).
#[derive(Component)]
pub struct ZoomTile {
    pub level: u32,
    pub at: (u64, u64),
}

/// The assets a quad needs.
#[derive(SystemParam)]
pub(super) struct Assets3d<'w, 's> {
    meshes: ResMut<'w, Assets<Mesh>>,
    materials: ResMut<'w, Assets<StandardMaterial>>,
    images: ResMut<'w, Assets<Image>>,
    quad: Local<'s, Option<Handle<Mesh>>>,
}

impl Assets3d<'_, '_> {
    /// Spawns the quad of `built` on plane `plane`, `lift` steps in front of it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn quad(
        &mut self,
        commands: &mut Commands,
        root: Entity,
        built: &Built,
        shape: PlaneShape,
        placement: &Placement,
        plane: usize,
        lift: i32,
    ) -> Entity {
        let mut image = Image::new(
            Extent3d {
                width: built.width.max(1) as u32,
                height: built.height.max(1) as u32,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            built.rgba.clone(),
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD,
        );
        image.sampler = ImageSampler::nearest();
        let material = self.materials.add(StandardMaterial {
            base_color_texture: Some(self.images.add(image)),
            unlit: true,
            cull_mode: None,
            ..default()
        });
        let mesh = self
            .quad
            .get_or_insert_with(|| self.meshes.add(Rectangle::new(1.0, 1.0)))
            .clone();
        let (tx, ty) = (built.x0 / plane::TILE, built.y0 / plane::TILE);
        let quad = ZoomQuad {
            plane,
            part: zoom::texel_rect(shape, built.level, built.x0, built.y0, built.width, built.height),
            lift,
        };
        let mut entity = commands.spawn((
            Name::new(format!("weights level {} at {tx},{ty}", built.level)),
            Mesh3d(mesh),
            MeshMaterial3d(material),
            transform(&quad, placement),
            quad,
            ChildOf(root),
        ));
        if lift > 0 {
            entity.insert(ZoomTile {
                level: built.level,
                at: (tx, ty),
            });
        }
        entity.id()
    }
}

/// The frame behind the selected plane: a light border, one part in fifty of
/// its height, a step behind it.
pub(super) fn frame(assets: &mut Assets3d, commands: &mut Commands, root: Entity, placement: &Placement, plane: usize) {
    let m = 0.02 * placement.size[1] / placement.size[0].max(1e-6);
    let quad = ZoomQuad {
        plane,
        part: [-m as f64, -0.02, 1.0 + m as f64, 1.02],
        lift: -1,
    };
    let mesh = assets
        .quad
        .get_or_insert_with(|| assets.meshes.add(Rectangle::new(1.0, 1.0)))
        .clone();
    let material = assets.materials.add(StandardMaterial {
        base_color: Color::srgb(1.0, 0.85, 0.35),
        unlit: true,
        cull_mode: None,
        ..default()
    });
    commands.spawn((
        Name::new("weights frame"),
        Mesh3d(mesh),
        MeshMaterial3d(material),
        transform(&quad, placement),
        quad,
        ChildOf(root),
    ));
}

/// Where the stack stands for the current layout.
pub(super) fn placement(z: &Zoomed, bounds: &Bounds) -> Placement {
    let shape = z.selected_plane().map_or(PlaneShape { rows: 1, cols: 1 }, |p| p.shape);
    zoom::place(shape, z.planes.len(), bounds)
}

fn transform(quad: &ZoomQuad, placement: &Placement) -> Transform {
    let center = placement.centers.get(quad.plane).copied().unwrap_or_default();
    let (c, size) = zoom::world_rect(center, placement.size, quad.part);
    // A thousandth of the plane's height per level: enough to win the depth test.
    let lift = placement.size[1] * 1e-3 * quad.lift as f32;
    Transform::from_xyz(c[0], c[1], c[2] + lift).with_scale(Vec3::new(size[0], size[1], 1.0))
}

/// Moves the quads when the model's layout changes (the stack stands beside it).
pub(super) fn replace(
    zoom: Res<Zoom>,
    current: Option<Res<CurrentModel>>,
    mut quads: Query<(&ZoomQuad, &mut Transform)>,
) {
    let (Some(z), Some(current)) = (&zoom.0, current) else {
        return;
    };
    if !current.is_changed() {
        return;
    }
    let placement = placement(z, &current.layout.bounds);
    for (quad, mut t) in &mut quads {
        *t = transform(quad, &placement);
    }
}

/// Despawns the tiles that are ready but not wanted, least recently wanted
/// first, while more than [`MAX_RESIDENT_TILES`] are resident.
pub(super) fn evict(commands: &mut Commands, z: &mut Zoomed) {
    let mut resident: Vec<((u32, u64, u64), u64)> = z
        .tiles
        .iter()
        .filter_map(|(&k, t)| match t {
            Tile::Ready { used, .. } => Some((k, *used)),
            _ => None,
        })
        .collect();
    if resident.len() <= MAX_RESIDENT_TILES {
        return;
    }
    let wanted = |k: &(u32, u64, u64)| k.0 == z.level && z.wanted.contains(&(k.1, k.2));
    resident.retain(|(k, _)| !wanted(k));
    resident.sort_by_key(|&(_, used)| used);
    let excess = (resident.len() + z.wanted.len()).saturating_sub(MAX_RESIDENT_TILES);
    for (k, _) in resident.into_iter().take(excess) {
        if let Some(Tile::Ready { entity, .. }) = z.tiles.remove(&k) {
            commands.entity(entity).despawn();
        }
    }
}

/// Glides the camera to look straight at the selected plane once the stack is known.
pub(super) fn frame_opened(
    mut zoom: ResMut<Zoom>,
    current: Option<Res<CurrentModel>>,
    cameras: Query<&Camera, With<MainCamera>>,
    mut glide: MessageWriter<GlideTo>,
) {
    let (Some(z), Some(current)) = (zoom.0.as_mut(), current) else {
        return;
    };
    if z.framed || z.planes.is_empty() {
        return;
    }
    z.framed = true;
    let placement = placement(z, &current.layout.bounds);
    let c = placement.centers.get(z.selected).copied().unwrap_or_default();
    let [w, h] = placement.size;
    // Room on the left for the layer labels, and a little around.
    let bounds = Bounds {
        min: [c[0] - 0.62 * w, c[1] - 0.56 * h, c[2]],
        max: [c[0] + 0.52 * w, c[1] + 0.56 * h, c[2]],
    };
    let aspect = cameras
        .single()
        .ok()
        .and_then(Camera::logical_viewport_size)
        .map_or(16.0 / 9.0, |s| s.x / s.y.max(1.0));
    glide.write(GlideTo(crate::camera::math::frame_bounds_at(&bounds, aspect, 0.0, 0.0)));
}

/// Works out the level and tiles of the selected plane that this frame's
/// view needs, marks them used and shows only them (over the overview).
pub(super) fn want_tiles(
    mut zoom: ResMut<Zoom>,
    current: Option<Res<CurrentModel>>,
    cameras: Query<(&Camera, &GlobalTransform, &Projection), With<MainCamera>>,
    mut tiles: Query<(&ZoomTile, &mut Visibility)>,
) {
    let (Some(z), Some(current), Ok((camera, at, projection))) = (zoom.0.as_mut(), current, cameras.single()) else {
        return;
    };
    let Some((coarsest, _)) = z.overview_level() else {
        return;
    };
    let Some(shape) = z.selected_plane().map(|p| p.shape) else {
        return;
    };
    let placement = placement(z, &current.layout.bounds);
    let center = placement.centers.get(z.selected).copied().unwrap_or_default();
    let (Some(rect), Some(pixels)) = (camera.logical_viewport_rect(), camera.physical_viewport_size()) else {
        return;
    };
    // Viewport positions are window positions (the viewport's offset included).
    let (a, b) = (rect.min, rect.max);
    let corners: Vec<([f32; 3], [f32; 3])> = [a, Vec2::new(b.x, a.y), Vec2::new(a.x, b.y), b]
        .into_iter()
        .filter_map(|p| camera.viewport_to_world(at, p).ok())
        .map(|ray| (ray.origin.to_array(), ray.direction.as_vec3().to_array()))
        .collect();
    let fov = match projection {
        Projection::Perspective(p) => p.fov,
        _ => crate::camera::math::FOV_Y,
    };
    let distance = at.translation().z - center[2];
    let world_per_pixel = 2.0 * distance * (fov / 2.0).tan() / pixels.y.max(1) as f32;
    let part = zoom::visible_part(center, placement.size, &corners);
    let (level, wanted) = match part {
        Some(part) if distance > 0.0 && corners.len() == 4 => {
            let level = zoom::wanted_level(shape, placement.size, world_per_pixel, coarsest);
            let wanted = if level < coarsest {
                plane::visible_tiles(shape, level, zoom::part_in_texels(shape, level, part))
            } else {
                Vec::new()
            };
            (level, wanted)
        }
        _ => (coarsest, Vec::new()),
    };
    z.clock += 1;
    z.level = level;
    for &(x, y) in &wanted {
        if let Some(Tile::Ready { used, .. }) = z.tiles.get_mut(&(level, x, y)) {
            *used = z.clock;
        }
    }
    z.wanted = wanted;
    for (tile, mut visibility) in &mut tiles {
        let show = tile.level == z.level && z.wanted.contains(&tile.at);
        visibility.set_if_neq(if show {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        });
    }
}

/// The main camera's settings a zoom changes, to give back when it closes.
#[derive(Clone, Copy)]
pub(super) struct Saved {
    tonemapping: Tonemapping,
    near: f32,
    zoom_lower_limit: f32,
}

/// While a zoom is open: no tonemapping, bloom or fog, so the planes show
/// exactly the legend's colours (TonyMcMapface would pale them); the near plane follows
/// the orbit radius and the orbit may come as close as a few elements, so
/// one element can fill the view however many rows the plane packs into the
/// model's height. Everything comes back when it closes.
pub(super) fn camera_while_zoomed(
    zoom: Res<Zoom>,
    current: Option<Res<CurrentModel>>,
    mut saved: Local<Option<Saved>>,
    mut commands: Commands,
    mut cameras: Query<(Entity, &mut Tonemapping, &mut Projection, &mut PanOrbitCamera), With<MainCamera>>,
) {
    use crate::render::look::OwnLook;
    for (entity, mut tonemapping, mut projection, mut cam) in &mut cameras {
        let Projection::Perspective(perspective) = &mut *projection else {
            continue;
        };
        match (&zoom.0, *saved) {
            (Some(z), before) => {
                let before = before.unwrap_or(Saved {
                    tonemapping: *tonemapping,
                    near: perspective.near,
                    zoom_lower_limit: cam.zoom_lower_limit,
                });
                if saved.is_none() {
                    // No bloom or fog either: the planes show the legend's exact colours.
                    commands.entity(entity).insert(OwnLook).remove::<(
                        bevy::camera::Hdr,
                        bevy::post_process::bloom::Bloom,
                        bevy::pbr::DistanceFog,
                    )>();
                }
                *saved = Some(before);
                tonemapping.set_if_neq(Tonemapping::None);
                let radius = cam.radius.unwrap_or(1.0);
                let near = (radius * 5e-3).clamp(1e-6, before.near);
                if perspective.near != near {
                    perspective.near = near;
                }
                let element = match (z.selected_plane(), &current) {
                    (Some(p), Some(c)) => placement(z, &c.layout.bounds).size[1] / p.shape.rows.max(1) as f32,
                    _ => before.zoom_lower_limit,
                };
                let limit = (element * 4.0).clamp(1e-5, before.zoom_lower_limit);
                if cam.zoom_lower_limit != limit {
                    cam.zoom_lower_limit = limit;
                }
            }
            (None, Some(before)) => {
                // The scene's look comes back with the tonemapping (render::look).
                commands.entity(entity).remove::<OwnLook>();
                *tonemapping = before.tonemapping;
                perspective.near = before.near;
                cam.zoom_lower_limit = before.zoom_lower_limit;
                *saved = None;
            }
            (None, None) => {}
        }
    }
}
