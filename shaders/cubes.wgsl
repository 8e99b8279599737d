// Instanced tensor cubes: flat-shaded from two fixed lights, with a thin dark
// outline along every face edge so neighbouring cubes read apart. Highlighted
// cubes (hover 0.5, selection 1.0) brighten and get a light outline. An
// instance's colour is radiance: the part above its surface colour
// (rgb / max(1, max(rgb))) glows unlit, and blooms on an HDR camera. With the
// camera's linear fog on, cubes fade into the fog colour with distance.
// Vertex-buffer instancing only (no storage buffers): runs on WebGL2.

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
    // Per instance: centre xyz + edge length; linear rgb + highlight.
    @location(3) i_pos_size: vec4<f32>,
    @location(4) i_color: vec4<f32>,
};

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    @location(0) color: vec4<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) uv: vec2<f32>,
    @location(3) distance: f32,
};

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    let position = vertex.position * vertex.i_pos_size.w + vertex.i_pos_size.xyz;
    var out: VertexOutput;
    // Instances are in world space: projected by the view alone (no mesh
    // uniform, whose slot 0 belongs to whichever mesh Bevy batched first).
    out.clip_position = position_world_to_clip(position);
    out.color = vertex.i_color;
    out.normal = vertex.normal;
    out.uv = vertex.uv;
    out.distance = length(view.world_position - position);
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let n = normalize(in.normal);
    // Key light from the upper front right, fill from the left: every face gets its own shade.
    let key = max(dot(n, normalize(vec3<f32>(0.45, 0.8, 0.6))), 0.0);
    let fill = max(dot(n, normalize(vec3<f32>(-0.7, 0.25, -0.3))), 0.0);
    let light = 0.38 + 0.55 * key + 0.2 * fill;
    let highlight = in.color.a;
    let peak = max(max(in.color.r, in.color.g), max(in.color.b, 1.0));
    let surface = in.color.rgb / peak;
    let glow = in.color.rgb - surface;
    var rgb = surface * light;
    rgb = mix(rgb, vec3<f32>(1.0, 1.0, 1.0), 0.3 * highlight);

    // Distance to the nearest face edge in uv units, widened by the screen-space
    // derivative so the outline stays about one pixel wide at any distance.
    let edge = min(min(in.uv.x, 1.0 - in.uv.x), min(in.uv.y, 1.0 - in.uv.y));
    let width = fwidth(edge) * (1.2 + 1.5 * highlight);
    let outline = 1.0 - smoothstep(0.0, max(width, 1e-4), edge);
    let edge_color = mix(rgb * 0.35, vec3<f32>(1.0, 0.95, 0.7), step(0.25, highlight));
    rgb = mix(rgb, edge_color, outline) + glow;
#ifdef DISTANCE_FOG
    if (fog.mode == FOG_MODE_LINEAR) {
        let start = fog.be.x;
        let end = fog.be.y;
        let amount = 1.0 - clamp((end - in.distance) / max(end - start, 1e-6), 0.0, 1.0);
        rgb = mix(rgb, fog.base_color.rgb, amount * fog.base_color.a);
    }
#endif
    return vec4<f32>(rgb, 1.0);
}
