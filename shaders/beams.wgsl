// Beams of light: attention arcs between city columns and the residual
// stream up each column. The mesh is a strip: position.x runs 0..1 along the
// beam, position.y is -1 or +1 across it. Each instance bends it from `start`
// to `end`, curving `end.w` towards +z at the middle, and turns it to face
// the camera; at least ~1.5 pixels wide (dimmed to keep its light when
// widened). Drawn additively after the cubes, without writing depth.
// Vertex-buffer instancing only: runs on WebGL2.

#import bevy_pbr::view_transformations::position_world_to_clip
#import bevy_pbr::mesh_view_bindings::view
#ifdef DISTANCE_FOG
#import bevy_pbr::mesh_view_bindings::fog
#import bevy_pbr::mesh_view_types::FOG_MODE_LINEAR
#endif

struct Vertex {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) uv: vec2<f32>,
    @location(3) i_start: vec4<f32>,
    @location(4) i_end: vec4<f32>,
    @location(5) i_color: vec4<f32>,
};

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    @location(0) color: vec3<f32>,
    // x: along the beam 0..1, y: across -1..1, z: how far the light has come, w: distance to the eye.
    @location(1) coords: vec4<f32>,
};

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    let s = vertex.position.x;
    let a = vertex.i_start.xyz;
    let b = vertex.i_end.xyz;
    let bulge = vertex.i_end.w;
    let p = mix(a, b, s) + vec3<f32>(0.0, 0.0, 4.0 * bulge * s * (1.0 - s));
    var tangent = (b - a) + vec3<f32>(0.0, 0.0, 4.0 * bulge * (1.0 - 2.0 * s));
    if (length(tangent) < 1e-6) {
        tangent = vec3<f32>(1.0, 0.0, 0.0);
    }
    let eye = view.world_position - p;
    var across = cross(tangent, eye);
    if (length(across) < 1e-6) {
        across = vec3<f32>(0.0, 1.0, 0.0);
    }
    across = normalize(across);

    // World units per pixel at this distance: keep the beam at least 1.5 px wide.
    // Instances are in world space: projected by the view alone.
    let centre = position_world_to_clip(p);
    let pixels_per_unit = view.clip_from_view[1][1] * view.viewport.w * 0.5 / max(centre.w, 1e-6);
    let wanted = vertex.i_start.w;
    let width = max(wanted, 1.5 / max(pixels_per_unit, 1e-6));
    let dim = wanted / width;

    let world = p + across * width * 0.5 * vertex.position.y;
    var out: VertexOutput;
    out.clip_position = position_world_to_clip(world);
    out.color = vertex.i_color.rgb * dim;
    out.coords = vec4<f32>(s, vertex.position.y, vertex.i_color.a, length(eye));
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let s = in.coords.x;
    let flow = in.coords.z;
    if (s > flow) {
        discard;
    }
    // Bright core, soft edges; the front of the flow glows brighter.
    let core = 1.0 - abs(in.coords.y);
    var light = core * core * (3.0 - 2.0 * core);
    // (Branching on the instance's flow: the grid and the residual lines, whole,
    // skip the exp on a software rasteriser's pixels.)
    if (flow <= 0.999) {
        light = light * (1.0 + 2.5 * exp(-max(flow - s, 0.0) * 12.0));
    }
    var rgb = in.color * light;
#ifdef DISTANCE_FOG
    if (fog.mode == FOG_MODE_LINEAR) {
        let start = fog.be.x;
        let end = fog.be.y;
        rgb = rgb * clamp((end - in.coords.w) / max(end - start, 1e-6), 0.0, 1.0);
    }
#endif
    return vec4<f32>(rgb, 1.0);
}
