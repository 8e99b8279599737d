//! The instanced pipeline: one vertex buffer of per-instance data drawn with
//! one mesh in a single `draw_indexed`. Two shapes share it: cubes (the unit
//! cube; position, size, colour, highlight; `shaders/cubes.wgsl`) and beams
//! (a ribbon strip bent into an arc in the vertex shader, blended additively
//! as light; `shaders/beams.wgsl`). Vertex-buffer instancing, no storage
//! buffers, so it runs on WebGL2 too. Adapted from Bevy's
//! `custom_shader_instancing` example; the instance buffer is re-uploaded only
//! when the data's generation changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bevy::core_pipeline::core_3d::{Transparent3d, TransparentSortingInfo3d};
use bevy::ecs::system::{SystemParamItem, lifetimeless::*};
use bevy::mesh::{MeshVertexBufferLayoutRef, VertexBufferLayout};
use bevy::pbr::{
    MeshPipeline, MeshPipelineKey, MeshPipelineSystems, RenderMeshInstances, SetMeshBindGroup, SetMeshViewBindGroup,
    SetMeshViewBindingArrayBindGroup, ViewKeyCache,
};
use bevy::prelude::*;
use bevy::render::{
    Render, RenderApp, RenderStartup, RenderSystems,
    extract_component::{ExtractComponent, ExtractComponentPlugin},
    mesh::{RenderMesh, RenderMeshBufferInfo, allocator::MeshAllocator},
    render_asset::RenderAssets,
    render_phase::{
        AddRenderCommand, DrawFunctions, PhaseItem, PhaseItemExtraIndex, RenderCommand, RenderCommandResult,
        SetItemPipeline, TrackedRenderPass, ViewSortedRenderPhases,
    },
    render_resource::*,
    renderer::RenderDevice,
    sync_component::SyncComponent,
    sync_world::MainEntity,
    view::ExtractedView,
};
use bytemuck::{Pod, Zeroable};

/// How many instanced cube draws the GPU has actually been given (the draw is
/// skipped while the pipeline is still compiling). One counter shared by the
/// main world and the render world of an app; frame scripts and offscreen
/// captures wait on it so they never save an empty frame.
#[derive(Resource, Clone, Default, Debug)]
pub struct CubeDraws(Arc<AtomicU64>);

impl CubeDraws {
    /// Draws so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The cube shader, compiled into the binary (no asset folder needed at run
/// time, natively or on the web).
pub const CUBE_SHADER: Handle<Shader> = bevy::asset::uuid_handle!("6f1d2c3a-8a4e-4b8e-9a55-2c1e7d0b3f11");
/// The beam shader, likewise.
pub const BEAM_SHADER: Handle<Shader> = bevy::asset::uuid_handle!("0b7c9e52-3d14-4f6a-8c2b-5e9a1f4d7c30");

/// What the instances of a batch are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Lit cubes (see [`CubeInstance`]).
    Cubes,
    /// Ribbons of light (see [`BeamInstance`]).
    Beams,
}

/// One instance of a batch, as the GPU reads it (one vec4 per field).
pub trait Instance: Pod + Send + Sync + 'static {
    const SHAPE: Shape;
}

/// One cube: `pos_size` = centre xyz + edge length; `color` = linear RGB +
/// highlight (0 plain, 0.5 hovered, 1 selected). RGB is radiance and may
/// exceed 1: the part above the surface colour (`rgb / max(1, max(rgb))`)
/// glows, unlit, and blooms.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct CubeInstance {
    pub pos_size: [f32; 4],
    pub color: [f32; 4],
}

/// One beam: a ribbon of light from `start` to `end` (xyz + width at the
/// start), curving `end.w` towards +z at its middle (0: straight), of
/// radiance `color.rgb`; `color.a` is how far along it the light has come
/// (0..1; the front of the flow is brightest).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BeamInstance {
    pub start: [f32; 4],
    pub end: [f32; 4],
    pub color: [f32; 4],
}

impl Instance for CubeInstance {
    const SHAPE: Shape = Shape::Cubes;
}

impl Instance for BeamInstance {
    const SHAPE: Shape = Shape::Beams;
}

/// All instances drawn by one entity. Cheap to extract (an `Arc`); the GPU
/// buffer is rebuilt only when `generation` changes.
#[derive(Component, Clone)]
pub struct Instances<T: Instance> {
    data: Arc<Vec<T>>,
    generation: u64,
}

/// The cubes of one batch.
pub type CubeInstances = Instances<CubeInstance>;
/// The beams of one batch.
pub type BeamInstances = Instances<BeamInstance>;

impl<T: Instance> Default for Instances<T> {
    fn default() -> Self {
        Instances {
            data: Arc::default(),
            generation: 0,
        }
    }
}

impl<T: Instance> Instances<T> {
    pub fn set(&mut self, data: Vec<T>) {
        self.data = Arc::new(data);
        self.generation += 1;
    }

    pub fn data(&self) -> &[T] {
        &self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.data)
    }
}

impl<T: Instance> SyncComponent for Instances<T> {
    type Target = Self;
}

impl<T: Instance> ExtractComponent for Instances<T> {
    type QueryData = &'static Self;
    type QueryFilter = ();
    type Out = Self;

    fn extract_component(item: bevy::ecs::query::QueryItem<'_, '_, Self::QueryData>) -> Option<Self> {
        Some(item.clone())
    }
}

pub struct CubeInstancingPlugin;

impl Plugin for CubeInstancingPlugin {
    fn build(&self, app: &mut App) {
        if let Some(mut shaders) = app.world_mut().get_resource_mut::<Assets<Shader>>() {
            let shader = Shader::from_wgsl(include_str!("../../shaders/cubes.wgsl"), "shaders/cubes.wgsl");
            if let Err(e) = shaders.insert(CUBE_SHADER.id(), shader) {
                error!("cube shader: {e}");
            }
            let shader = Shader::from_wgsl(include_str!("../../shaders/beams.wgsl"), "shaders/beams.wgsl");
            if let Err(e) = shaders.insert(BEAM_SHADER.id(), shader) {
                error!("beam shader: {e}");
            }
        }
        let draws = CubeDraws::default();
        app.add_plugins((
            ExtractComponentPlugin::<CubeInstances>::default(),
            ExtractComponentPlugin::<BeamInstances>::default(),
        ))
        .insert_resource(draws.clone());
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .insert_resource(draws)
            .add_render_command::<Transparent3d, DrawCubes>()
            .init_resource::<SpecializedMeshPipelines<CubePipeline>>()
            .add_systems(RenderStartup, init_pipeline.after(MeshPipelineSystems))
            .add_systems(
                Render,
                (
                    (queue::<CubeInstance>, queue::<BeamInstance>).in_set(RenderSystems::QueueMeshes),
                    (prepare::<CubeInstance>, prepare::<BeamInstance>).in_set(RenderSystems::PrepareResources),
                ),
            );
    }
}

fn queue<T: Instance>(
    draw_functions: Res<DrawFunctions<Transparent3d>>,
    pipeline: Res<CubePipeline>,
    mut pipelines: ResMut<SpecializedMeshPipelines<CubePipeline>>,
    pipeline_cache: Res<PipelineCache>,
    meshes: Res<RenderAssets<RenderMesh>>,
    render_mesh_instances: Res<RenderMeshInstances>,
    batches: Query<(Entity, &MainEntity, &Instances<T>)>,
    mut phases: ResMut<ViewSortedRenderPhases<Transparent3d>>,
    views: Query<&ExtractedView>,
    view_key_cache: Res<ViewKeyCache>,
) {
    let draw = draw_functions.read().id::<DrawCubes>();
    for view in &views {
        let Some(phase) = phases.get_mut(&view.retained_view_entity) else {
            continue;
        };
        let Some(&view_key) = view_key_cache.get(&view.retained_view_entity) else {
            continue;
        };
        for (entity, main_entity, instances) in &batches {
            if instances.is_empty() {
                continue;
            }
            let Some(mesh_instance) = render_mesh_instances.render_mesh_queue_data(*main_entity) else {
                continue;
            };
            let Some(mesh) = meshes.get(mesh_instance.mesh_asset_id()) else {
                continue;
            };
            let key = InstancedKey {
                mesh: view_key
                    | MeshPipelineKey::from_primitive_topology_and_strip_index(
                        mesh.primitive_topology(),
                        mesh.index_format(),
                    ),
                shape: T::SHAPE,
            };
            let Ok(pipeline_id) = pipelines.specialize(&pipeline_cache, &pipeline, key, &mesh.layout) else {
                continue;
            };
            // Beams are light added over what is behind them: drawn after every cube.
            let depth_bias = match T::SHAPE {
                Shape::Cubes => 0.0,
                Shape::Beams => 1e30,
            };
            phase.add_retained(Transparent3d {
                sorting_info: TransparentSortingInfo3d::Sorted {
                    mesh_center: Vec3::ZERO,
                    depth_bias,
                },
                entity: (entity, *main_entity),
                pipeline: pipeline_id,
                draw_function: draw,
                distance: 0.0,
                batch_range: 0..1,
                extra_index: PhaseItemExtraIndex::None,
                indexed: true,
            });
        }
    }
}

/// The GPU copy of a [`CubeInstances`].
#[derive(Component)]
struct InstanceBuffer {
    buffer: Buffer,
    length: usize,
    generation: u64,
}

fn prepare<T: Instance>(
    mut commands: Commands,
    query: Query<(Entity, &Instances<T>, Option<&InstanceBuffer>)>,
    render_device: Res<RenderDevice>,
) {
    for (entity, instances, existing) in &query {
        if existing.is_some_and(|b| b.generation == instances.generation) || instances.is_empty() {
            continue;
        }
        let buffer = render_device.create_buffer_with_data(&BufferInitDescriptor {
            label: Some("instance buffer"),
            contents: instances.bytes(),
            usage: BufferUsages::VERTEX | BufferUsages::COPY_DST,
        });
        commands.entity(entity).insert(InstanceBuffer {
            buffer,
            length: instances.len(),
            generation: instances.generation,
        });
    }
}

#[derive(Resource)]
struct CubePipeline {
    mesh_pipeline: MeshPipeline,
}

fn init_pipeline(mut commands: Commands, mesh_pipeline: Res<MeshPipeline>) {
    commands.insert_resource(CubePipeline {
        mesh_pipeline: mesh_pipeline.clone(),
    });
}

/// The mesh pipeline's key and the batch's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct InstancedKey {
    mesh: MeshPipelineKey,
    shape: Shape,
}

impl SpecializedMeshPipeline for CubePipeline {
    type Key = InstancedKey;

    fn specialize(
        &self,
        key: Self::Key,
        layout: &MeshVertexBufferLayoutRef,
    ) -> Result<RenderPipelineDescriptor, SpecializedMeshPipelineError> {
        let mut descriptor = self.mesh_pipeline.specialize(key.mesh, layout)?;
        let shader = match key.shape {
            Shape::Cubes => CUBE_SHADER,
            Shape::Beams => BEAM_SHADER,
        };
        descriptor.vertex.shader = shader.clone();
        // Locations 0-2 are the mesh's position, normal and uv; then one vec4 per field.
        let (stride, fields) = match key.shape {
            Shape::Cubes => (size_of::<CubeInstance>(), 2),
            Shape::Beams => (size_of::<BeamInstance>(), 3),
        };
        descriptor.vertex.buffers.push(VertexBufferLayout {
            array_stride: stride as u64,
            step_mode: VertexStepMode::Instance,
            attributes: (0..fields)
                .map(|i| VertexAttribute {
                    format: VertexFormat::Float32x4,
                    offset: i * VertexFormat::Float32x4.size(),
                    shader_location: 3 + i as u32,
                })
                .collect(),
        });
        if let Some(fragment) = descriptor.fragment.as_mut() {
            fragment.shader = shader;
            if key.shape == Shape::Beams {
                // Light adds up where beams cross; they never hide what is behind them.
                let additive = BlendComponent {
                    src_factor: BlendFactor::One,
                    dst_factor: BlendFactor::One,
                    operation: BlendOperation::Add,
                };
                for target in fragment.targets.iter_mut().flatten() {
                    target.blend = Some(BlendState {
                        color: additive,
                        alpha: additive,
                    });
                }
            }
        }
        if key.shape == Shape::Beams {
            descriptor.primitive.cull_mode = None;
            if let Some(depth) = descriptor.depth_stencil.as_mut() {
                depth.depth_write_enabled = Some(false);
            }
        }
        Ok(descriptor)
    }
}

type DrawCubes = (
    SetItemPipeline,
    SetMeshViewBindGroup<0>,
    SetMeshViewBindingArrayBindGroup<1>,
    SetMeshBindGroup<2>,
    DrawInstanced,
);

struct DrawInstanced;

impl<P: PhaseItem> RenderCommand<P> for DrawInstanced {
    type Param = (
        SRes<RenderAssets<RenderMesh>>,
        SRes<RenderMeshInstances>,
        SRes<MeshAllocator>,
        SRes<CubeDraws>,
    );
    type ViewQuery = ();
    type ItemQuery = Read<InstanceBuffer>;

    #[inline]
    fn render<'w>(
        item: &P,
        _view: (),
        instance_buffer: Option<&'w InstanceBuffer>,
        (meshes, render_mesh_instances, mesh_allocator, draws): SystemParamItem<'w, '_, Self::Param>,
        pass: &mut TrackedRenderPass<'w>,
    ) -> RenderCommandResult {
        let mesh_allocator = mesh_allocator.into_inner();
        let Some(mesh_instance) = render_mesh_instances.render_mesh_queue_data(item.main_entity()) else {
            return RenderCommandResult::Skip;
        };
        let Some(gpu_mesh) = meshes.into_inner().get(mesh_instance.mesh_asset_id()) else {
            return RenderCommandResult::Skip;
        };
        let Some(instance_buffer) = instance_buffer else {
            return RenderCommandResult::Skip;
        };
        let Some(vertex_slice) = mesh_allocator.mesh_vertex_slice(&mesh_instance.mesh_asset_id()) else {
            return RenderCommandResult::Skip;
        };
        pass.set_vertex_buffer(0, vertex_slice.buffer.slice(..));
        pass.set_vertex_buffer(1, instance_buffer.buffer.slice(..));
        let instances = 0..instance_buffer.length as u32;
        match &gpu_mesh.buffer_info {
            RenderMeshBufferInfo::Indexed { index_format, count } => {
                let Some(index_slice) = mesh_allocator.mesh_index_slice(&mesh_instance.mesh_asset_id()) else {
                    return RenderCommandResult::Skip;
                };
                pass.set_index_buffer(index_slice.buffer.slice(..), *index_format);
                pass.draw_indexed(
                    index_slice.range.start..(index_slice.range.start + count),
                    vertex_slice.range.start as i32,
                    instances,
                );
            }
            RenderMeshBufferInfo::NonIndexed => pass.draw(vertex_slice.range, instances),
        }
        draws.add();
        RenderCommandResult::Success
    }
}
