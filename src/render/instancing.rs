//! The instanced cube pipeline: one vertex buffer of per-instance data
//! (position, size, colour, highlight) drawn with the unit cube in a single
//! `draw_indexed`. Vertex-buffer instancing, no storage buffers, so it runs on
//! WebGL2 too. Adapted from Bevy's `custom_shader_instancing` example; the
//! instance buffer is re-uploaded only when the data's generation changes.
//! Shader: `shaders/cubes.wgsl`.

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

/// One cube: `pos_size` = centre xyz + edge length; `color` = linear RGB +
/// highlight (0 plain, 0.5 hovered, 1 selected).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct CubeInstance {
    pub pos_size: [f32; 4],
    pub color: [f32; 4],
}

/// All instances drawn by one entity. Cheap to extract (an `Arc`); the GPU
/// buffer is rebuilt only when `generation` changes.
#[derive(Component, Clone, Default)]
pub struct CubeInstances {
    data: Arc<Vec<CubeInstance>>,
    generation: u64,
}

impl CubeInstances {
    pub fn set(&mut self, data: Vec<CubeInstance>) {
        self.data = Arc::new(data);
        self.generation += 1;
    }

    pub fn data(&self) -> &[CubeInstance] {
        &self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl SyncComponent for CubeInstances {
    type Target = Self;
}

impl ExtractComponent for CubeInstances {
    type QueryData = &'static CubeInstances;
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
        }
        let draws = CubeDraws::default();
        app.add_plugins(ExtractComponentPlugin::<CubeInstances>::default())
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
                    queue_cubes.in_set(RenderSystems::QueueMeshes),
                    prepare_instance_buffers.in_set(RenderSystems::PrepareResources),
                ),
            );
    }
}

fn queue_cubes(
    draw_functions: Res<DrawFunctions<Transparent3d>>,
    pipeline: Res<CubePipeline>,
    mut pipelines: ResMut<SpecializedMeshPipelines<CubePipeline>>,
    pipeline_cache: Res<PipelineCache>,
    meshes: Res<RenderAssets<RenderMesh>>,
    render_mesh_instances: Res<RenderMeshInstances>,
    batches: Query<(Entity, &MainEntity, &CubeInstances)>,
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
            let key = view_key
                | MeshPipelineKey::from_primitive_topology_and_strip_index(
                    mesh.primitive_topology(),
                    mesh.index_format(),
                );
            let Ok(pipeline_id) = pipelines.specialize(&pipeline_cache, &pipeline, key, &mesh.layout) else {
                continue;
            };
            phase.add_retained(Transparent3d {
                sorting_info: TransparentSortingInfo3d::Sorted {
                    mesh_center: Vec3::ZERO,
                    depth_bias: 0.0,
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

fn prepare_instance_buffers(
    mut commands: Commands,
    query: Query<(Entity, &CubeInstances, Option<&InstanceBuffer>)>,
    render_device: Res<RenderDevice>,
) {
    for (entity, instances, existing) in &query {
        if existing.is_some_and(|b| b.generation == instances.generation) || instances.is_empty() {
            continue;
        }
        let buffer = render_device.create_buffer_with_data(&BufferInitDescriptor {
            label: Some("cube instance buffer"),
            contents: bytemuck::cast_slice(instances.data()),
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
    shader: Handle<Shader>,
    mesh_pipeline: MeshPipeline,
}

fn init_pipeline(mut commands: Commands, mesh_pipeline: Res<MeshPipeline>) {
    commands.insert_resource(CubePipeline {
        shader: CUBE_SHADER,
        mesh_pipeline: mesh_pipeline.clone(),
    });
}

impl SpecializedMeshPipeline for CubePipeline {
    type Key = MeshPipelineKey;

    fn specialize(
        &self,
        key: Self::Key,
        layout: &MeshVertexBufferLayoutRef,
    ) -> Result<RenderPipelineDescriptor, SpecializedMeshPipelineError> {
        let mut descriptor = self.mesh_pipeline.specialize(key, layout)?;
        descriptor.vertex.shader = self.shader.clone();
        descriptor.vertex.buffers.push(VertexBufferLayout {
            array_stride: size_of::<CubeInstance>() as u64,
            step_mode: VertexStepMode::Instance,
            attributes: vec![
                // Locations 0-2 are the mesh's position, normal and uv.
                VertexAttribute {
                    format: VertexFormat::Float32x4,
                    offset: 0,
                    shader_location: 3,
                },
                VertexAttribute {
                    format: VertexFormat::Float32x4,
                    offset: VertexFormat::Float32x4.size(),
                    shader_location: 4,
                },
            ],
        });
        if let Some(fragment) = descriptor.fragment.as_mut() {
            fragment.shader = self.shader.clone();
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
