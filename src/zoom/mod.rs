//! The zoom into the weights, in the viewer: `Z` on the selected (or hovered)
//! tensor, or the script's `weights NAME`, opens the tensor as a textured
//! plane at its 2-D shape beside the model, with the same sub-tensor of every
//! other layer stacked above and below it (`weights::zoom`); `Z` again or
//! `Esc` closes it. Colours diverge around zero, scaled to each tensor's
//! max |x| (in `--diff` mode coloured by delta, the planes show B − A).
//!
//! Pictures are built on the async compute pool from the weights (memory
//! mapped, or Range reads for a Hub model): first the selected plane's
//! overview (at most 2048 texels a side), then the others' (at most 2^18
//! texels),
//! nearest layer first; where the camera comes close, the selected plane's
//! tiles of the level it needs (`weights::plane`), at most
//! [`MAX_RESIDENT_TILES`] kept. Texture budget: 16 MiB of overview + 16 MiB
//! of tiles for the selected plane, 1 MiB per stacked plane.
//!
//! Stages: `Input` turns keys into [`ZoomRequest`]s; `Inference` opens and
//! closes, collects finished pictures into entities and starts new ones;
//! `Interact` asks the camera to glide to a newly opened plane and works out
//! the tiles the camera needs from this frame's view. Desktop only (the
//! browser reads only a model's headers).

mod draw;
pub use draw::ZoomQuad;
mod legend;

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, futures_lite::future};

use crate::AppSystems;
use crate::arch::ModelRef;
use crate::camera::UiFocus;
use crate::model::CurrentModel;
use crate::weights::plane::{self, MAX_RESIDENT_TILES, PlaneShape, Values};
use crate::weights::zoom;

pub fn plugin(app: &mut App) {
    app.add_message::<ZoomRequest>()
        .init_resource::<Zoom>()
        .add_systems(Update, keys.in_set(AppSystems::Input))
        .add_systems(
            Update,
            (open_or_close, collect, draw::replace, start_pictures)
                .chain()
                .in_set(AppSystems::Inference),
        )
        .add_systems(
            Update,
            (draw::frame_opened, draw::want_tiles, draw::camera_while_zoomed)
                .chain()
                .in_set(AppSystems::Interact)
                .after(crate::lod::update_lod),
        )
        .add_systems(
            bevy_egui::EguiPrimaryContextPass,
            legend::legend
                .in_set(crate::ui::UiSystems::Overlays)
                .after(crate::record::live::capture_ui),
        );
}

/// Opens the zoom on a tensor (by name) or closes it.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum ZoomRequest {
    Open(String),
    Close,
}

/// The zoom, when one is open.
#[derive(Resource, Default)]
pub struct Zoom(pub Option<Zoomed>);

/// Pictures built at once (the machine's cores are shared with the frame).
const IN_FLIGHT: usize = 2;

/// One open zoom: the selected tensor's stack.
pub struct Zoomed {
    /// The selected tensor.
    pub name: String,
    model: ModelRef,
    /// Planes show B − A (coloured by delta with a checkpoint to compare).
    pub delta: bool,
    opening: Option<Task<Result<Opened, String>>>,
    /// Why nothing can be drawn (the weights cannot be opened, no such tensor).
    pub error: Option<String>,
    /// In stack order (layer order, bottom to top).
    pub planes: Vec<Plane>,
    /// Index of the selected tensor's plane.
    pub selected: usize,
    /// The level of the selected plane the camera wants now, and its tiles.
    pub level: u32,
    wanted: Vec<(u64, u64)>,
    tiles: HashMap<(u32, u64, u64), Tile>,
    /// Bumped each frame tiles are wanted; a tile's `used` says when it last was.
    clock: u64,
    root: Option<Entity>,
    framed: bool,
}

/// One plane of the stack.
pub struct Plane {
    pub name: String,
    pub shape: PlaneShape,
    values: Result<Arc<dyn Values>, String>,
    pub picture: Picture,
}

/// A plane's overview.
pub enum Picture {
    Waiting,
    Building(Task<Result<Built, String>>),
    Ready { level: u32, max_abs: f32, entity: Entity },
    Failed(String),
}

enum Tile {
    Building(Task<Result<Built, String>>),
    Ready { entity: Entity, used: u64 },
    Failed,
}

/// A picture made on a task: texels coloured as RGBA8.
pub struct Built {
    level: u32,
    x0: u64,
    y0: u64,
    width: u64,
    height: u64,
    rgba: Vec<u8>,
    max_abs: f32,
}

/// The stack the open task found: each plane's name, shape and values.
type Opened = (Vec<(String, PlaneShape, Result<Arc<dyn Values>, String>)>, usize);

impl Zoomed {
    /// Whether everything the view needs is drawn or has failed: the planes'
    /// overviews and the selected plane's wanted tiles (`wait-weights`).
    pub fn settled(&self) -> bool {
        self.opening.is_none()
            && self
                .planes
                .iter()
                .all(|p| matches!(p.picture, Picture::Ready { .. } | Picture::Failed(_)))
            && self.wanted.iter().all(|&(x, y)| {
                matches!(
                    self.tiles.get(&(self.level, x, y)),
                    Some(Tile::Ready { .. } | Tile::Failed)
                )
            })
    }

    /// The selected plane, once known.
    pub fn selected_plane(&self) -> Option<&Plane> {
        self.planes.get(self.selected)
    }

    /// The level of the selected plane's overview, once built.
    pub fn overview_level(&self) -> Option<(u32, f32)> {
        match self.selected_plane()?.picture {
            Picture::Ready { level, max_abs, .. } => Some((level, max_abs)),
            _ => None,
        }
    }

    fn in_flight(&self) -> usize {
        let planes = self.planes.iter().filter(|p| matches!(p.picture, Picture::Building(_)));
        let tiles = self.tiles.values().filter(|t| matches!(t, Tile::Building(_)));
        planes.count() + tiles.count()
    }
}

/// `Z` toggles the zoom on the selected (else hovered) tensor; `Esc` closes it.
fn keys(
    keys: Res<ButtonInput<KeyCode>>,
    ui: Res<UiFocus>,
    highlight: Res<crate::render::Highlight>,
    tensors: Query<&crate::spawn::Tensor>,
    zoom: Res<Zoom>,
    mut requests: MessageWriter<ZoomRequest>,
) {
    if ui.keyboard {
        return;
    }
    if keys.just_pressed(KeyCode::Escape) && zoom.0.is_some() {
        requests.write(ZoomRequest::Close);
    }
    if keys.just_pressed(KeyCode::KeyZ) {
        let target = highlight.selected.or(highlight.hovered);
        let name = target.and_then(|e| tensors.get(e).ok()).map(|t| t.name.clone());
        match (name, &zoom.0) {
            (Some(name), Some(z)) if z.name != name => requests.write(ZoomRequest::Open(name)),
            (_, Some(_)) => requests.write(ZoomRequest::Close),
            (Some(name), None) => requests.write(ZoomRequest::Open(name)),
            (None, None) => return,
        };
    }
}

/// Opens (on a task) or closes on requests; closes when another model opens.
fn open_or_close(
    mut commands: Commands,
    mut requests: MessageReader<ZoomRequest>,
    current: Option<Res<CurrentModel>>,
    settings: Res<crate::view::ViewSettings>,
    target: Option<Res<crate::weight_stats::DiffTarget>>,
    mut zoom: ResMut<Zoom>,
) {
    let stale = match (&zoom.0, &current) {
        (Some(z), Some(c)) => z.model != c.request,
        (Some(_), None) => true,
        _ => false,
    };
    let mut next = None;
    for request in requests.read() {
        next = Some(request.clone());
    }
    if (stale || next.is_some())
        && let Some(root) = zoom.0.take().and_then(|z| z.root)
    {
        commands.entity(root).despawn();
    }
    let (Some(ZoomRequest::Open(name)), Some(current)) = (next, current) else {
        return;
    };
    let model = current.request.clone();
    let other = target
        .filter(|_| settings.color == crate::weights::color::ColorBy::Delta)
        .map(|t| t.0.clone());
    let names: Vec<String> = current.arch.tensors.iter().map(|t| t.name.clone()).collect();
    let (m, n) = (model.clone(), name.clone());
    let delta = other.is_some();
    let opening = (current.arch.source != "catalogue")
        .then(|| AsyncComputeTaskPool::get().spawn(async move { open_stack(&m, other.as_ref(), &names, &n) }));
    let error = opening.is_none().then(|| {
        format!(
            "`{}` is drawn from the built-in catalogue (shapes, no values): download it and open the folder to see its weights",
            current.arch.name
        )
    });
    zoom.0 = Some(Zoomed {
        name,
        model,
        delta,
        opening,
        error,
        planes: Vec::new(),
        selected: 0,
        level: 0,
        wanted: Vec::new(),
        tiles: HashMap::new(),
        clock: 0,
        root: None,
        framed: false,
    });
}

/// Opens the model's weights (and the compared checkpoint's) and finds the
/// stack of `name` among the architecture's tensor names.
fn open_stack(model: &ModelRef, other: Option<&ModelRef>, names: &[String], name: &str) -> Result<Opened, String> {
    use crate::weights::source::{Tensor, open_model};
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let stack = zoom::stack_of(&refs, name);
    if stack.is_empty() {
        return Err(format!("the model has no tensor named `{name}`"));
    }
    let tensors = open_model(model).map_err(|e| e.to_string())?;
    let others = match other {
        Some(b) => Some(open_model(b).map_err(|e| format!("the checkpoint to compare with: {e}"))?),
        None => None,
    };
    let find = |list: &[Tensor], n: &str| list.iter().find(|t| t.name == n).cloned();
    let planes = stack
        .iter()
        .map(|&i| {
            let n = refs[i];
            let shape = PlaneShape::of(&current_shape(&tensors, n));
            let values: Result<Arc<dyn Values>, String> = match (find(&tensors, n), &others) {
                (None, _) => Err(format!("`{n}` is not among the weights read from the files")),
                (Some(a), _) if a.missing().is_some() => Err(a.missing().unwrap_or_default().to_string()),
                (Some(a), None) => Ok(Arc::new(a)),
                (Some(a), Some(others)) => match find(others, n) {
                    Some(b) => plane::Delta::new(a, b).map(|d| Arc::new(d) as Arc<dyn Values>),
                    None => Err(format!("`{n}` is not in the checkpoint compared with")),
                },
            };
            (n.to_string(), shape, values)
        })
        .collect();
    let selected = stack.iter().position(|&i| refs[i] == name).unwrap_or(0);
    Ok((planes, selected))
}

fn current_shape(tensors: &[crate::weights::source::Tensor], name: &str) -> Vec<u64> {
    tensors
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.shape.clone())
        .unwrap_or_default()
}

/// Collects finished tasks: the stack (planes and their root entity), the
/// overviews and tiles (as textured quads).
fn collect(
    mut commands: Commands,
    mut zoom: ResMut<Zoom>,
    current: Option<Res<CurrentModel>>,
    mut assets: draw::Assets3d,
) {
    let (Some(z), Some(current)) = (zoom.0.as_mut(), current) else {
        return;
    };
    if let Some(task) = &mut z.opening
        && let Some(result) = block_on(future::poll_once(task))
    {
        z.opening = None;
        match result {
            Ok((planes, selected)) => {
                z.selected = selected;
                z.planes = planes
                    .into_iter()
                    .map(|(name, shape, values)| Plane {
                        name,
                        shape,
                        values,
                        picture: Picture::Waiting,
                    })
                    .collect();
                let root = commands
                    .spawn((Name::new("weights zoom"), Transform::default(), Visibility::default()))
                    .id();
                z.root = Some(root);
                let placement = draw::placement(z, &current.layout.bounds);
                draw::frame(&mut assets, &mut commands, root, &placement, z.selected);
            }
            Err(e) => z.error = Some(e),
        }
    }
    let Some(root) = z.root else { return };
    let placement = draw::placement(z, &current.layout.bounds);
    for (i, p) in z.planes.iter_mut().enumerate() {
        let Picture::Building(task) = &mut p.picture else {
            continue;
        };
        let Some(result) = block_on(future::poll_once(task)) else {
            continue;
        };
        p.picture = match result {
            Ok(built) => {
                let entity = assets.quad(&mut commands, root, &built, p.shape, &placement, i, 0);
                Picture::Ready {
                    level: built.level,
                    max_abs: built.max_abs,
                    entity,
                }
            }
            Err(e) => Picture::Failed(e),
        };
    }
    let (selected, clock) = (z.selected, z.clock);
    let shape = z.planes.get(selected).map(|p| p.shape);
    let coarsest = z.overview_level().map_or(0, |(l, _)| l);
    for tile in z.tiles.values_mut() {
        let Tile::Building(task) = tile else { continue };
        let Some(result) = block_on(future::poll_once(task)) else {
            continue;
        };
        *tile = match (result, shape) {
            (Ok(built), Some(shape)) => {
                // Finer levels lie nearer the camera than coarser ones.
                let lift = 1 + coarsest.saturating_sub(built.level) as i32;
                let entity = assets.quad(&mut commands, root, &built, shape, &placement, selected, lift);
                Tile::Ready { entity, used: clock }
            }
            _ => Tile::Failed,
        };
    }
    draw::evict(&mut commands, z);
}

/// Starts pictures while fewer than [`IN_FLIGHT`] are building: the
/// selected overview, the others' nearest first, then the wanted tiles.
fn start_pictures(mut zoom: ResMut<Zoom>) {
    let Some(z) = zoom.0.as_mut() else { return };
    if z.root.is_none() {
        return;
    }
    let mut free = IN_FLIGHT.saturating_sub(z.in_flight());
    let selected = z.selected;
    let mut order: Vec<usize> = (0..z.planes.len()).collect();
    order.sort_by_key(|&i| i.abs_diff(selected));
    for i in order {
        if free == 0 {
            return;
        }
        let p = &mut z.planes[i];
        if !matches!(p.picture, Picture::Waiting) {
            continue;
        }
        p.picture = match &p.values {
            Ok(values) => {
                let max = if i == selected {
                    plane::OVERVIEW_MAX * plane::OVERVIEW_MAX
                } else {
                    zoom::NEIGHBOUR_TEXELS
                };
                let values = values.clone();
                free -= 1;
                Picture::Building(AsyncComputeTaskPool::get().spawn(async move {
                    let (level, texels) = plane::overview_within(values.as_ref(), plane::OVERVIEW_MAX, max)?;
                    let max_abs = plane::max_abs(&texels);
                    Ok(built(level, 0, 0, &texels, max_abs))
                }))
            }
            Err(e) => Picture::Failed(e.clone()),
        };
    }
    let (Some((_, max_abs)), Some(Ok(values))) = (z.overview_level(), z.planes.get(selected).map(|p| p.values.clone()))
    else {
        return;
    };
    let level = z.level;
    for &(x, y) in &z.wanted {
        if free == 0 {
            return;
        }
        if z.tiles.contains_key(&(level, x, y)) || z.tiles.len() >= 2 * MAX_RESIDENT_TILES {
            continue;
        }
        let values = values.clone();
        free -= 1;
        let task = AsyncComputeTaskPool::get().spawn(async move {
            let texels = plane::tile(values.as_ref(), level, x, y)?;
            Ok(built(level, x * plane::TILE, y * plane::TILE, &texels, max_abs))
        });
        z.tiles.insert((level, x, y), Tile::Building(task));
    }
}

fn built(level: u32, x0: u64, y0: u64, texels: &plane::Texels, max_abs: f32) -> Built {
    Built {
        level,
        x0,
        y0,
        width: texels.width,
        height: texels.height,
        rgba: plane::rgba(texels, max_abs),
        max_abs,
    }
}
