//! The neural city: the current run as a scene and as entities. Each frame
//! (in `AppSystems::City`) [`CityScene`] takes what is new in [`CurrentRun`]
//! and, when the run, the layout, the filters ([`CityView`]), the playhead or
//! the selection change, recomputes the cells shown and the arcs drawn, once;
//! drawing, picking, the hidden-vector strips and the panels all read it. The
//! scene is mirrored into entities under one [`CityRoot`]: a [`Token`] per
//! position, a [`CityCell`] per (token, hidden state) and an
//! [`AttentionEdge`] per drawn arc. In the `city` layout they are drawn as one
//! extra instanced batch beside the trunk.

pub mod draw;
pub mod ground;
pub mod pca;
pub mod pca3d;
pub mod playback;
pub mod scene;
pub mod view;

use bevy::prelude::*;

pub use playback::Playback;
pub use scene::Scene;
pub use view::Edge;
pub use view::{CityFilter, HeadFilter};

use crate::AppSystems;
use crate::activations::{CurrentRun, SelectedToken};
use crate::layout::LayoutKind;
use crate::layout::city::CityGrid;
use crate::model::CurrentModel;
use crate::render::CubeInstances;
use crate::view::ViewSettings;

pub struct CityPlugin;

impl Plugin for CityPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<crate::camera::FocusOn>()
            .add_message::<crate::camera::FrameScene>()
            .init_resource::<CityView>()
            .init_resource::<CityScene>()
            .init_resource::<CityStats>()
            .init_resource::<CityHover>()
            .init_resource::<pca3d::PcaScene>()
            .init_resource::<CityPlayback>()
            .init_resource::<SelectedToken>()
            .init_resource::<crate::activations::Analyses>()
            .add_systems(Startup, spawn_city_batch)
            .add_systems(
                Update,
                (
                    pace_to_model.run_if(resource_exists::<LivePace>),
                    ingest_run,
                    advance_playback,
                    refilter_scene,
                    sync_entities,
                    frame_city_on_change,
                    pca3d::update_pca,
                    pca3d::focus_pca,
                )
                    .chain()
                    .in_set(AppSystems::City),
            )
            .add_systems(Update, hover_cells.in_set(AppSystems::Interact))
            .add_systems(
                Update,
                (
                    draw_city,
                    pca3d::draw_pca.run_if(resource_exists::<bevy::gizmos::config::GizmoConfigStore>),
                )
                    .chain()
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

/// One drawn attention arc: in block `layer`, query `to` reads key `from`
/// (`head` is the head, or `usize::MAX` when heads are combined).
#[derive(Component, Debug, Clone, Copy, PartialEq, Deref)]
pub struct AttentionEdge(pub view::Edge);

/// The city's filters (panels change them).
#[derive(Resource, Debug, Clone, PartialEq, Default, Deref, DerefMut)]
pub struct CityView(pub CityFilter);

/// The one scene the city's systems, drawing and panels read, and the grid
/// it stands on (`None` outside the city layout).
#[derive(Resource, Debug, Default)]
pub struct CityScene {
    pub scene: Scene,
    pub grid: Option<CityGrid>,
    /// The entities mirror this generation of the scene.
    synced: u64,
    root: Option<Entity>,
    /// The (run, tokens) the root was spawned for.
    root_pass: Option<(u64, Vec<u32>)>,
    /// The arcs mirrored as `AttentionEdge` entities.
    arcs_mirrored: Vec<Edge>,
    /// Hidden states already mirrored as cells.
    cell_floors: std::collections::BTreeSet<usize>,
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

/// The entity carrying the city's instances (a second batch beside the trunk's).
#[derive(Component)]
pub struct CityBatch;

/// The entity carrying the city's beams (attention and the residual lines).
#[derive(Component)]
pub struct CityBeams;

fn spawn_city_batch(mut commands: Commands, mut meshes: Option<ResMut<Assets<Mesh>>>) {
    crate::render::spawn_cube_batch(
        commands.reborrow(),
        meshes.as_deref_mut(),
        (CityBatch, Name::new("city instances")),
    );
    crate::render::spawn_beam_batch(commands, meshes.as_deref_mut(), (CityBeams, Name::new("city beams")));
}

/// The grid the city stands on in `current`'s layout.
pub fn grid_of(current: &CurrentModel) -> CityGrid {
    CityGrid::new(&current.layout, current.arch.num_layers() as usize + 1)
}

/// Present in the viewer: live runs are paced to the model's depth.
#[derive(Resource, Default)]
pub struct LivePace;

/// The viewer's pacing: a newly loaded model's pulse climbs it in a second
/// or two (the speed stays the user's to change until the next model).
fn pace_to_model(current: Option<Res<CurrentModel>>, mut playback: ResMut<CityPlayback>) {
    if let Some(current) = current.filter(|c| c.is_changed()) {
        playback.speed = Playback::pace(current.arch.num_layers() as usize);
    }
}

/// Takes what is new in the run into the scene; a new run or pass restarts the playhead.
fn ingest_run(run: Res<CurrentRun>, mut city: ResMut<CityScene>, mut playback: ResMut<CityPlayback>) {
    if !run.is_changed() {
        return;
    }
    // Marked changed only when something arrived: that is what `refilter_scene` reacts to.
    let (fresh, added) = city.bypass_change_detection().scene.ingest(&run);
    if fresh {
        playback.restart();
    }
    if added {
        city.set_changed();
    }
}

/// Moves the playhead towards the highest floor that has arrived.
fn advance_playback(time: Res<Time>, city: Res<CityScene>, mut playback: ResMut<CityPlayback>) {
    let mut next = *playback;
    next.tick(time.delta_secs(), city.scene.top_floor() as f32);
    playback.set_if_neq(next);
}

/// Recomputes the shown cells, drawn arcs, heatmap and grid when their inputs change.
#[allow(clippy::too_many_arguments)]
fn refilter_scene(
    run: Res<CurrentRun>,
    current: Option<Res<CurrentModel>>,
    settings: Res<ViewSettings>,
    filter: Res<CityView>,
    playback: Res<CityPlayback>,
    selected: Res<SelectedToken>,
    mut city: ResMut<CityScene>,
) {
    let model_changed = current.as_ref().is_some_and(|c| c.is_changed());
    let data_changed = city.is_changed();
    if !(data_changed
        || model_changed
        || settings.is_changed()
        || filter.is_changed()
        || playback.is_changed()
        || selected.is_changed())
    {
        return;
    }
    let city = city.as_mut();
    if model_changed || settings.is_changed() || city.grid.is_none() {
        city.grid = current
            .as_ref()
            .filter(|_| settings.layout == LayoutKind::City)
            .map(|c| grid_of(c));
    }
    let position = selected.position(city.scene.tokens.len());
    city.scene.refilter(&filter, &playback, position);
    city.scene.update_heatmap(&run, &filter);
}

/// Mirrors the scene into entities: a new pass replaces them all; new hidden
/// states add cells; the drawn arcs are replaced when they change.
fn sync_entities(
    mut commands: Commands,
    mut city: ResMut<CityScene>,
    roots: Query<Entity, With<CityRoot>>,
    edges: Query<Entity, With<AttentionEdge>>,
) {
    if !city.is_changed() || city.synced == city.scene.generation {
        return;
    }
    // Bookkeeping only: the scene itself is unchanged (drawing must not rebuild for it).
    let city = city.bypass_change_detection();
    city.synced = city.scene.generation;
    let scene = &city.scene;
    let pass = (scene.run, scene.tokens.clone());
    let rebuilt = city.root_pass.as_ref() != Some(&pass);
    if rebuilt {
        for root in &roots {
            commands.entity(root).despawn();
        }
        city.cell_floors.clear();
        city.root = None;
        city.root_pass = Some(pass);
        if !scene.tokens.is_empty() {
            let root = commands.spawn((CityRoot, Name::new("city"), Transform::default())).id();
            city.root = Some(root);
            let tokens: Vec<_> = scene
                .tokens
                .iter()
                .enumerate()
                .map(|(index, &id)| {
                    let text = scene.text(index);
                    (
                        Name::new(format!("token {index} {text:?}")),
                        Token { index, id, text },
                        ChildOf(root),
                    )
                })
                .collect();
            commands.spawn_batch(tokens);
        }
    }
    let Some(root) = city.root else { return };
    for (&floor, norms) in &scene.norms {
        if !city.cell_floors.insert(floor) {
            continue;
        }
        let cells: Vec<_> = norms
            .iter()
            .enumerate()
            .map(|(token, &norm)| {
                (
                    CityCell(view::Cell { token, floor, norm }),
                    Name::new(format!("cell token {token} hidden state {floor}")),
                    ChildOf(root),
                )
            })
            .collect();
        commands.spawn_batch(cells);
    }
    // The drawn arcs change with every filter and playhead step; the entities
    // follow only when the arcs really differ. (A replaced pass's edges went
    // with its root.)
    if city.arcs_mirrored.as_slice() == scene.arcs.as_slice() && !rebuilt {
        return;
    }
    for edge in &edges {
        commands.entity(edge).try_despawn();
    }
    city.arcs_mirrored = scene.arcs.clone();
    let arcs: Vec<_> = scene
        .arcs
        .iter()
        .map(|&e| {
            (
                AttentionEdge(e),
                Name::new(format!("arc block {} {} -> {}", e.layer, e.from, e.to)),
                ChildOf(root),
            )
        })
        .collect();
    commands.spawn_batch(arcs);
}

/// Frames trunk and city together when the city layout is entered with a
/// run on screen, when a new run starts in it, and when a run finishes
/// (generation adds columns).
fn frame_city_on_change(
    run: Res<CurrentRun>,
    current: Option<Res<CurrentModel>>,
    settings: Res<ViewSettings>,
    mut last: Local<(Option<LayoutKind>, u64, bool)>,
    mut focus: MessageWriter<crate::camera::FrameScene>,
) {
    let (layout, framed_run, framed_done) = &mut *last;
    let entering = settings.layout == LayoutKind::City && *layout != Some(LayoutKind::City);
    *layout = Some(settings.layout);
    let Some(current) = current.filter(|_| settings.layout == LayoutKind::City) else {
        return;
    };
    if run.tokens.is_empty() {
        return;
    }
    let new_run = *framed_run != run.run;
    let done = run.status == crate::activations::RunStatus::Done;
    if new_run {
        *framed_run = run.run;
        *framed_done = false;
    }
    if entering || new_run || (done && !*framed_done) {
        *framed_done |= done;
        focus.write(frame_city(&current, run.tokens.len()));
    }
}

/// A camera glide that shows the trunk and a city of `tokens` columns.
fn frame_city(current: &CurrentModel, tokens: usize) -> crate::camera::FrameScene {
    crate::camera::FrameScene(grid_of(current).bounds_with(&current.layout.bounds, tokens))
}

type CameraView = (&'static Camera, &'static GlobalTransform);
type WithMain = With<crate::camera::MainCamera>;
type MovedCamera = (WithMain, Or<(Changed<GlobalTransform>, Changed<Camera>)>);

/// Rebuilds the city batch when the scene changes, or when the camera moves
/// (which cells open into strips depends on it).
fn draw_city(
    city: Res<CityScene>,
    selected: Res<SelectedToken>,
    playback: Res<CityPlayback>,
    cameras: Query<CameraView, WithMain>,
    moved: Query<(), MovedCamera>,
    settings: Option<Res<crate::view::ViewSettings>>,
    mut stats: ResMut<CityStats>,
    // Disjoint from the trunk's batch (`render` fills that one).
    mut batch: Query<&mut CubeInstances, (With<CityBatch>, Without<crate::render::CubeBatch>)>,
    mut beams: Query<&mut crate::render::BeamInstances, With<CityBeams>>,
) {
    let glow = settings.as_ref().is_none_or(|s| s.glow);
    if !city.is_changed() && moved.is_empty() && !settings.is_some_and(|s| s.is_changed()) {
        return;
    }
    let Ok(mut instances) = batch.single_mut() else { return };
    let mut beams = beams.single_mut().ok();
    let (scene, Some(grid)) = (&city.scene, &city.grid) else {
        if !instances.is_empty() {
            instances.set(Vec::new());
        }
        if let Some(beams) = beams.as_mut().filter(|b| !b.data().is_empty()) {
            beams.set(Vec::new());
        }
        *stats = CityStats::default();
        return;
    };
    // Cells the camera is close to open into their full hidden vector.
    let mut opened = std::collections::HashSet::new();
    let mut strips = Vec::new();
    if let Ok((camera, transform)) = cameras.single() {
        let eye = transform.translation();
        let height = camera.logical_viewport_size().map_or(720.0, |s| s.y);
        for c in &scene.cells {
            let center = Vec3::from_array(grid.cell_center(c.token, c.floor));
            let pixels =
                crate::lod::apparent_pixels(grid.cell, eye.distance(center), height, crate::camera::math::FOV_Y);
            if pixels < draw::STRIP_PIXELS {
                continue;
            }
            if let Some(values) = scene.rows.get(&c.floor).and_then(|rows| rows.get(c.token)) {
                strips.extend(draw::strip_instances(grid, c.token, c.floor, values));
                opened.insert((c.token, c.floor));
            }
        }
    }
    let light = draw::Lighting {
        selected: selected.position(scene.tokens.len()),
        pulse: playback.pulse(),
        glow,
    };
    let mut out = draw::city_instances(grid, &scene.cells, &scene.arcs, light, &|c: &view::Cell| {
        opened.contains(&(c.token, c.floor))
    });
    out.cubes.extend(strips);
    *stats = CityStats {
        cells: scene.cells.len(),
        arcs: scene.arcs.len(),
        heads: scene.heads,
        strips: opened.len(),
    };
    instances.set(out.cubes);
    if let Some(mut beams) = beams {
        beams.set(out.beams);
    }
}

/// Hovering a cell or an arc shows its numbers; clicking a cell selects its
/// token, clicking an arc selects the query token that reads along it.
#[allow(clippy::too_many_arguments)]
fn hover_cells(
    ui: Option<Res<crate::camera::UiFocus>>,
    buttons: Option<Res<ButtonInput<MouseButton>>>,
    windows: Query<&Window, With<bevy::window::PrimaryWindow>>,
    cameras: Query<(&Camera, &GlobalTransform), With<crate::camera::MainCamera>>,
    city: Res<CityScene>,
    mut hover: ResMut<CityHover>,
    mut selected: ResMut<SelectedToken>,
) {
    let found = (|| {
        let (scene, grid) = (&city.scene, city.grid.as_ref()?);
        let (window, (camera, transform)) = (windows.single().ok()?, cameras.single().ok()?);
        let cursor = window
            .cursor_position()
            .filter(|_| !ui.as_ref().is_some_and(|u| u.pointer))?;
        // Viewport positions are window positions: Bevy subtracts the viewport's offset itself.
        let ray = camera.viewport_to_world(transform, cursor).ok()?;
        let (origin, dir) = (ray.origin.to_array(), ray.direction.to_array());
        let cell = grid
            .pick(origin, dir, scene.tokens.len())
            .and_then(|(t, f)| scene.cell(t, f));
        if let Some(cell) = cell {
            return Some(Hovered::Cell(CityCell(cell), scene.text(cell.token)));
        }
        let keys: Vec<_> = scene.arcs.iter().map(|e| (e.layer, e.from, e.to)).collect();
        let edge = *scene.arcs.get(grid.pick_arc(origin, dir, &keys)?)?;
        Some(Hovered::Arc {
            edge,
            from: scene.text(edge.from),
            to: scene.text(edge.to),
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
