//! The 3D PCA projection: tokens on the top three principal components of one
//! hidden state, drawn in the scene beside the city (gizmo spheres joined in
//! token order, coloured first -> last, the selected token larger) so it can
//! be flown around like the rest of the model.

use bevy::prelude::*;

use crate::activations::SelectedToken;
use crate::layout::LayoutKind;
use crate::layout::city::CityGrid;
use crate::model::CurrentModel;
use crate::view::ViewSettings;

/// The PCA of one hidden state of the current run: what to project (the city
/// window and scripts set `floor`, `show_3d`, `wanted`), and the result.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct PcaScene {
    /// The hidden state to project (`None`: the newest).
    pub floor: Option<usize>,
    /// Draw PC1-3 in the scene beside the city.
    pub show_3d: bool,
    /// The 2D plot is on screen (the window sets it each frame it draws it).
    pub wanted: bool,
    /// (run, tokens, floor) the coordinates belong to.
    pub key: Option<(u64, usize, usize)>,
    /// Per token: its coordinates on PC1..PC3.
    pub coords: Vec<Vec<f32>>,
    /// Share of the variance each component explains.
    pub shares: Vec<f32>,
}

/// Recomputes the projection (on a task) when it is shown and its hidden
/// state changed; takes the result when it is ready.
pub(super) fn update_pca(
    run: Res<crate::activations::CurrentRun>,
    mut analyses: ResMut<crate::activations::Analyses>,
    mut pca: ResMut<PcaScene>,
) {
    if analyses.pca.poll()
        && let Some((key, (coords, shares))) = analyses.pca.latest()
    {
        pca.key = Some(*key);
        pca.coords = coords.clone();
        pca.shares = shares.clone();
    }
    if !(pca.show_3d || pca.wanted) {
        return;
    }
    let newest = run.hidden.keys().max().copied();
    let Some(floor) = pca.floor.filter(|f| run.hidden.contains_key(f)).or(newest) else {
        return;
    };
    let key = (run.run, run.tokens.len(), floor);
    if pca.key == Some(key) {
        return;
    }
    let Some(hidden) = run.hidden.get(&floor).cloned() else {
        return;
    };
    analyses.pca.want(key, move || {
        let rows = hidden
            .to_dtype(candle_core::DType::F32)
            .and_then(|h| h.to_vec2::<f32>())
            .unwrap_or_default();
        super::pca::project(&rows, 3)
    });
}

/// Scales PCA coordinates (any number of components, missing ones = 0) into a
/// cube of edge `size` centred on `center`, keeping the axes' proportions.
pub fn fit(coords: &[Vec<f32>], center: [f32; 3], size: f32) -> Vec<[f32; 3]> {
    let at = |c: &Vec<f32>, i: usize| c.get(i).copied().filter(|v| v.is_finite()).unwrap_or(0.0);
    let extent = coords
        .iter()
        .flat_map(|c| (0..3).map(move |i| at(c, i).abs()))
        .fold(0.0f32, f32::max);
    let scale = if extent > 0.0 { size * 0.5 / extent } else { 0.0 };
    coords
        .iter()
        .map(|c| [0, 1, 2].map(|i| center[i] + at(c, i) * scale))
        .collect()
}

/// Where the projection stands: a cube (centre, edge) right of a city of
/// `tokens` columns, as tall as the city.
pub fn placement(grid: &CityGrid, tokens: usize) -> ([f32; 3], f32) {
    let (bottom, top) = (
        grid.floors.first().copied().unwrap_or(0.0),
        grid.floors.last().copied().unwrap_or(0.0),
    );
    let size = (top - bottom).max(grid.pitch * 4.0) * 0.8;
    let center = [
        grid.x_end(tokens) + size * 0.5 + grid.pitch * 2.0,
        (bottom + top) * 0.5,
        0.0,
    ];
    (center, size)
}

/// Turning the 3D projection on glides the camera to it.
pub(super) fn focus_pca(
    pca: Res<PcaScene>,
    current: Option<Res<CurrentModel>>,
    mut shown: Local<bool>,
    mut focus: MessageWriter<crate::camera::FocusOn>,
) {
    let now = pca.show_3d && !pca.coords.is_empty();
    if now == *shown {
        return;
    }
    *shown = now;
    if let (true, Some(current)) = (now, current) {
        let grid = super::grid_of(&current);
        let (center, size) = placement(&grid, pca.coords.len());
        focus.write(crate::camera::FocusOn {
            center: Vec3::from_array(center),
            size: size * 0.6,
        });
    }
}

pub(super) fn draw_pca(
    pca: Res<PcaScene>,
    settings: Res<ViewSettings>,
    current: Option<Res<CurrentModel>>,
    selected: Res<SelectedToken>,
    mut gizmos: Gizmos,
) {
    let Some(current) = current else { return };
    let coords = &pca.coords;
    if !pca.show_3d || settings.layout != LayoutKind::City || coords.is_empty() {
        return;
    }
    let floors = current.arch.num_layers() as usize + 1;
    let grid = CityGrid::new(&current.layout, floors);
    let (center, size) = placement(&grid, coords.len());
    let points = fit(coords, center, size);
    let c = Vec3::from_array(center);
    let half = size * 0.5;
    for (axis, color) in [
        (Vec3::X, Color::srgb(0.9, 0.3, 0.3)),
        (Vec3::Y, Color::srgb(0.3, 0.9, 0.3)),
        (Vec3::Z, Color::srgb(0.3, 0.5, 1.0)),
    ] {
        gizmos.line(c - axis * half, c + axis * half, color.with_alpha(0.5));
    }
    let selected = selected.position(points.len());
    let last = points.len().saturating_sub(1).max(1) as f32;
    let colour = |i: usize| {
        let [r, g, b] = super::view::heat(i as f32 / last);
        Color::linear_rgb(r, g, b)
    };
    for (i, w) in points.windows(2).enumerate() {
        gizmos.line(
            Vec3::from_array(w[0]),
            Vec3::from_array(w[1]),
            colour(i).with_alpha(0.4),
        );
    }
    for (i, p) in points.iter().enumerate() {
        let r = if selected == Some(i) {
            grid.cell * 0.5
        } else {
            grid.cell * 0.25
        };
        gizmos.sphere(Isometry3d::from_translation(Vec3::from_array(*p)), r, colour(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_proportions_inside_the_cube() {
        let coords = vec![vec![2.0, 0.0, -1.0], vec![-4.0, 1.0, 0.5], vec![0.0]];
        let p = fit(&coords, [10.0, 0.0, 0.0], 2.0);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], [9.0, 0.25, 0.125], "largest |value| 4 -> half the edge");
        assert_eq!(p[0], [10.5, 0.0, -0.25]);
        assert_eq!(p[2], [10.0, 0.0, 0.0], "missing components sit on the centre plane");
        assert_eq!(fit(&[vec![0.0, 0.0, 0.0]], [1.0, 2.0, 3.0], 5.0), vec![[1.0, 2.0, 3.0]]);
    }
}
