//! The neural city: the current run as entities — a [`Token`] per position, a
//! [`CityCell`] per (token, hidden state) with its residual norm, an
//! [`AttentionEdge`] per (block, head, query, key) weight above
//! [`view::MIN_EDGE`] — all under one [`CityRoot`], rebuilt when a new run or
//! forward pass starts and filled in as frames arrive. In the `city` layout
//! they are drawn as one extra instanced batch beside the trunk.

pub mod pca;
pub mod pca3d;
pub mod playback;
pub mod view;

use std::collections::BTreeSet;

use bevy::prelude::*;

pub use playback::Playback;
pub use view::Edge;
pub use view::{CityFilter, HeadFilter};

use crate::AppSystems;
use crate::activations::{CurrentRun, SelectedToken};
use crate::layout::LayoutKind;
use crate::layout::city::CityGrid;
use crate::model::{CurrentModel, ViewSettings};
use crate::render::CubeInstances;

pub struct CityPlugin;

impl Plugin for CityPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<crate::camera::FocusOn>()
            .init_resource::<CityView>()
            .init_resource::<CitySync>()
            .init_resource::<CityStats>()
            .init_resource::<CityHover>()
            .init_resource::<CityArcs>()
            .init_resource::<pca3d::PcaScene>()
            .init_resource::<CityPlayback>()
            .init_resource::<SelectedToken>()
            .add_systems(Startup, spawn_city_batch)
            .add_systems(
                Update,
                (sync_city, advance_playback, pca3d::update_pca, pca3d::focus_pca)
                    .chain()
                    .in_set(AppSystems::Model),
            )
            .add_systems(Update, hover_cells.in_set(AppSystems::Interact))
            .add_systems(
                Update,
                (
                    draw_city,
                    pca3d::draw_pca.run_if(resource_exists::<bevy::gizmos::config::GizmoConfigStore>),
                )
                    .in_set(AppSystems::Render),
            );
    }
}

/// Parent of every city entity of the current pass.
#[derive(Component, Debug)]
pub struct CityRoot;

/// One token of the run.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Token {
    pub index: usize,
    pub id: u32,
    pub text: String,
}

/// Token `token`'s residual stream at hidden state `floor` (its L2 norm).
#[derive(Component, Debug, Clone, Copy, PartialEq, Deref)]
pub struct CityCell(pub view::Cell);

/// One attention weight: in block `layer`, head `head`, query `to` reads key `from`.
#[derive(Component, Debug, Clone, Copy, PartialEq, Deref)]
pub struct AttentionEdge(pub view::Edge);

/// The city's filters (panels change them).
#[derive(Resource, Debug, Clone, PartialEq, Default, Deref, DerefMut)]
pub struct CityView(pub CityFilter);

/// What has been turned into entities so far.
#[derive(Resource, Debug, Default)]
struct CitySync {
    root: Option<Entity>,
    run: u64,
    tokens: Vec<u32>,
    floors: BTreeSet<usize>,
    blocks: BTreeSet<usize>,
    heads: usize,
    /// The finished run has been framed.
    framed_done: bool,
    /// The layout seen last frame (to notice switching to the city).
    layout: Option<LayoutKind>,
}

/// What the city drew last (for panels and tests).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq)]
pub struct CityStats {
    pub cells: usize,
    pub arcs: usize,
    pub heads: usize,
    /// Cells open into their hidden-vector strip (camera close enough).
    pub strips: usize,
}

/// The animation clock (the city window's play/pause, step and slider).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Default, Deref, DerefMut)]
pub struct CityPlayback(pub Playback);

/// What is under the pointer in the city, with its numbers (for the tooltip).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct CityHover(pub Option<Hovered>);

/// A cell (with its token's text) or an attention arc (with its key's and query's texts).
#[derive(Debug, Clone, PartialEq)]
pub enum Hovered {
    Cell(CityCell, String),
    Arc { edge: view::Edge, from: String, to: String },
}

/// The arcs drawn last (after filters and the playhead), for picking.
#[derive(Resource, Debug, Clone, Default)]
pub struct CityArcs(pub Vec<view::Edge>);

/// The entity carrying the city's instances (a second batch beside the trunk's).
#[derive(Component)]
pub struct CityBatch;

fn spawn_city_batch(commands: Commands, meshes: Option<ResMut<Assets<Mesh>>>) {
    crate::render::spawn_cube_batch(commands, meshes, (CityBatch, Name::new("city instances")));
}

/// Mirrors the run into entities: a new run or pass replaces them all; new
/// hidden states and attention maps add cells and edges.
fn sync_city(
    mut commands: Commands,
    run: Res<CurrentRun>,
    mut sync: ResMut<CitySync>,
    roots: Query<Entity, With<CityRoot>>,
    current: Option<Res<CurrentModel>>,
    settings: Res<ViewSettings>,
    mut focus: MessageWriter<crate::camera::FocusOn>,
    mut playback: ResMut<CityPlayback>,
) {
    // Switching to the city layout with a run on screen frames trunk and city together.
    let entering = settings.layout == LayoutKind::City && sync.layout != Some(LayoutKind::City);
    sync.layout = Some(settings.layout);
    let entering = entering && !sync.tokens.is_empty();
    if entering && let Some(current) = &current {
        focus.write(frame_city(current, sync.tokens.len()));
    }
    if !run.is_changed() {
        return;
    }
    // A finished run (generation adds columns) is framed whole.
    if run.status == crate::activations::RunStatus::Done
        && !sync.framed_done
        && settings.layout == LayoutKind::City
        && let Some(current) = &current
    {
        sync.framed_done = true;
        focus.write(frame_city(current, run.tokens.len()));
    }
    let fresh = sync.run != run.run || sync.tokens != run.tokens;
    let new_run = sync.run != run.run;
    if fresh {
        for root in &roots {
            commands.entity(root).despawn();
        }
        *sync = CitySync {
            run: run.run,
            tokens: run.tokens.clone(),
            framed_done: sync.framed_done && !new_run,
            layout: sync.layout,
            ..Default::default()
        };
        playback.restart();
        if run.tokens.is_empty() {
            return;
        }
        let root = commands.spawn((CityRoot, Name::new("city"), Transform::default())).id();
        sync.root = Some(root);
        if new_run
            && settings.layout == LayoutKind::City
            && let Some(current) = &current
        {
            focus.write(frame_city(current, run.tokens.len()));
        }
        let tokens: Vec<_> = run
            .tokens
            .iter()
            .enumerate()
            .map(|(index, &id)| {
                let text = run.texts.get(index).cloned().unwrap_or_else(|| format!("#{id}"));
                (
                    Token { index, id, text },
                    Name::new(format!("token {index}")),
                    ChildOf(root),
                )
            })
            .collect();
        commands.spawn_batch(tokens);
    }
    let Some(root) = sync.root else { return };
    for (&floor, hidden) in &run.hidden {
        if sync.floors.contains(&floor) {
            continue;
        }
        let Ok(norms) = view::row_norms(hidden) else { continue };
        sync.floors.insert(floor);
        let cells: Vec<_> = norms
            .into_iter()
            .enumerate()
            .map(|(token, norm)| (CityCell(view::Cell { token, floor, norm }), ChildOf(root)))
            .collect();
        commands.spawn_batch(cells);
    }
    for (&layer, attn) in &run.attn {
        if sync.blocks.contains(&layer) {
            continue;
        }
        let Ok(edges) = view::edges_of(layer, attn, view::MIN_EDGE) else {
            continue;
        };
        sync.blocks.insert(layer);
        sync.heads = attn.dim(0).unwrap_or(1);
        let edges: Vec<_> = edges.into_iter().map(|e| (AttentionEdge(e), ChildOf(root))).collect();
        commands.spawn_batch(edges);
    }
}

/// Moves the playhead towards the highest floor that has arrived.
fn advance_playback(time: Res<Time>, sync: Res<CitySync>, mut playback: ResMut<CityPlayback>) {
    let available = sync.floors.iter().max().map_or(0.0, |&f| f as f32);
    let mut next = *playback;
    next.tick(time.delta_secs(), available);
    playback.set_if_neq(next);
}

/// A camera glide that shows the trunk and a city of `tokens` columns.
fn frame_city(current: &CurrentModel, tokens: usize) -> crate::camera::FocusOn {
    let b = &current.layout.bounds;
    let grid = CityGrid::new(&current.layout, current.arch.num_layers() as usize + 1);
    let (x0, x1) = (b.min[0], grid.x_end(tokens));
    let (y0, y1) = (b.min[1], b.max[1]);
    crate::camera::FocusOn {
        center: Vec3::new((x0 + x1) * 0.5, (y0 + y1) * 0.5, 0.0),
        // `FocusOn` backs off 5x its size; a whole scene needs about 1.7x its extent.
        size: (x1 - x0).max(y1 - y0) * 0.35,
    }
}

type CameraView = (&'static Camera, &'static GlobalTransform);
type WithMain = With<crate::camera::MainCamera>;
type MovedCamera = (WithMain, Or<(Changed<GlobalTransform>, Changed<Camera>)>);

/// Rebuilds the city batch when the city, its filters or the selection change.
#[allow(clippy::too_many_arguments)]
fn draw_city(
    settings: Res<ViewSettings>,
    current: Option<Res<CurrentModel>>,
    filter: Res<CityView>,
    selected: Res<SelectedToken>,
    cells: Query<&CityCell>,
    edges: Query<&AttentionEdge>,
    added: Query<(), Or<(Added<CityCell>, Added<AttentionEdge>)>>,
    removed: RemovedComponents<CityCell>,
    sync: Res<CitySync>,
    playback: Res<CityPlayback>,
    (run, cameras, moved): (Res<CurrentRun>, Query<CameraView, WithMain>, Query<(), MovedCamera>),
    mut stats: ResMut<CityStats>,
    mut batch: Query<&mut CubeInstances, With<CityBatch>>,
    mut arcs_cache: ResMut<CityArcs>,
) {
    // Camera motion only changes which cells open into strips: the arcs (a pass
    // over every edge entity) are recomputed when the city or its filters change.
    let scene_changed = settings.is_changed()
        || filter.is_changed()
        || selected.is_changed()
        || playback.is_changed()
        || current.as_ref().is_some_and(|c| c.is_changed())
        || !added.is_empty()
        || !removed.is_empty();
    if !scene_changed && moved.is_empty() {
        return;
    }
    let Ok(mut instances) = batch.single_mut() else { return };
    let Some(current) = current.filter(|_| settings.layout == LayoutKind::City) else {
        if !instances.is_empty() {
            instances.set(Vec::new());
        }
        *stats = CityStats::default();
        return;
    };
    let cells: Vec<view::Cell> = cells
        .iter()
        .map(|c| c.0)
        .filter(|c| playback.shows_floor(c.floor) && playback.shows_token(c.token))
        .collect();
    let floors = current.arch.num_layers() as usize + 1;
    let grid = CityGrid::new(&current.layout, floors);
    let position = selected.position(sync.tokens.len());
    if scene_changed {
        let all: Vec<view::Edge> = edges
            .iter()
            .map(|e| e.0)
            .filter(|e| playback.shows_block(e.layer) && playback.shows_token(e.from) && playback.shows_token(e.to))
            .collect();
        arcs_cache.0 = view::visible_arcs(&all, sync.heads, &filter, position);
    }
    let arcs = &arcs_cache.0;
    // Cells the camera is close to open into their full hidden vector.
    let mut opened = std::collections::HashSet::new();
    let mut strips = Vec::new();
    if let Ok((camera, transform)) = cameras.single() {
        let eye = transform.translation();
        let height = camera.logical_viewport_size().map_or(720.0, |s| s.y);
        let mut rows: std::collections::HashMap<usize, Vec<Vec<f32>>> = Default::default();
        for c in &cells {
            let center = Vec3::from_array(grid.cell_center(c.token, c.floor));
            let pixels = crate::layout::lod::apparent_pixels(
                grid.cell,
                eye.distance(center),
                height,
                crate::camera::math::FOV_Y,
            );
            if pixels < view::STRIP_PIXELS {
                continue;
            }
            let floor_rows = rows.entry(c.floor).or_insert_with(|| {
                run.hidden
                    .get(&c.floor)
                    .and_then(|h| {
                        h.to_dtype(candle_core::DType::F32)
                            .and_then(|h| h.to_vec2::<f32>())
                            .ok()
                    })
                    .unwrap_or_default()
            });
            if let Some(values) = floor_rows.get(c.token) {
                strips.extend(view::strip_instances(&grid, c.token, c.floor, values));
                opened.insert((c.token, c.floor));
            }
        }
    }
    let mut out = view::city_instances(&grid, &cells, arcs, position, playback.pulse(), &|c: &view::Cell| {
        opened.contains(&(c.token, c.floor))
    });
    out.extend(strips);
    let strips = opened.len();
    *stats = CityStats {
        cells: cells.len(),
        arcs: arcs.len(),
        heads: sync.heads,
        strips,
    };
    instances.set(out);
}

/// Hovering a cell or an arc shows its numbers; clicking a cell selects its
/// token, clicking an arc selects the query token that reads along it.
#[allow(clippy::too_many_arguments)]
fn hover_cells(
    ui: Option<Res<crate::camera::UiFocus>>,
    settings: Res<ViewSettings>,
    current: Option<Res<CurrentModel>>,
    buttons: Option<Res<ButtonInput<MouseButton>>>,
    windows: Query<&Window, With<bevy::window::PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform), With<crate::camera::MainCamera>>,
    cells: Query<&CityCell>,
    tokens: Query<&Token>,
    arcs: Res<CityArcs>,
    playback: Res<CityPlayback>,
    mut hover: ResMut<CityHover>,
    mut selected: ResMut<SelectedToken>,
) {
    let found = (|| {
        let current = current.as_ref().filter(|_| settings.layout == LayoutKind::City)?;
        let (window, (camera, transform)) = (windows.single().ok()?, cameras.single().ok()?);
        let cursor = window
            .cursor_position()
            .filter(|_| !ui.as_ref().is_some_and(|u| u.pointer))?;
        let offset = camera.logical_viewport_rect().map_or(Vec2::ZERO, |r| r.min);
        let ray = camera.viewport_to_world(transform, cursor - offset).ok()?;
        let grid = CityGrid::new(&current.layout, current.arch.num_layers() as usize + 1);
        let text = |t: usize| {
            tokens
                .iter()
                .find(|k| k.index == t)
                .map(|k| k.text.clone())
                .unwrap_or_default()
        };
        let (origin, dir) = (ray.origin.to_array(), ray.direction.to_array());
        let cell = grid
            .pick(origin, dir, tokens.iter().count())
            .and_then(|(t, f)| cells.iter().find(|c| c.token == t && c.floor == f))
            .filter(|c| playback.shows_floor(c.floor) && playback.shows_token(c.token));
        if let Some(cell) = cell {
            return Some(Hovered::Cell(*cell, text(cell.token)));
        }
        let keys: Vec<_> = arcs.0.iter().map(|e| (e.layer, e.from, e.to)).collect();
        let edge = *arcs.0.get(grid.pick_arc(origin, dir, &keys)?)?;
        Some(Hovered::Arc {
            edge,
            from: text(edge.from),
            to: text(edge.to),
        })
    })();
    if let (Some(hit), Some(buttons)) = (&found, &buttons)
        && buttons.just_pressed(MouseButton::Left)
    {
        selected.0 = Some(match hit {
            Hovered::Cell(cell, _) => cell.token,
            Hovered::Arc { edge, .. } => edge.to,
        });
    }
    if hover.0 != found {
        hover.0 = found;
    }
}
