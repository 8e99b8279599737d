//! Labels in the scene (pure, no Bevy): which of the candidate labels —
//! layer names beside the trunk and floors, token texts at the foot of the
//! city's columns — are drawn this frame. Each candidate is one or more
//! screen rectangles (where it would rather stand first) with a priority; the
//! most important are placed first, each at its first rectangle that stays in
//! the view, clear of every label placed before it and off every cube but its
//! own layer's. So no two drawn labels overlap and none covers the model
//! however far out the camera is (at a distance most layer names give way to
//! every fourth, then to the ends; in a wrapped trunk, where a layer's left
//! side is the column before it, a column is named above its top and below
//! its foot).

mod obstacles;

pub use obstacles::{Obstacle, Obstacles};

/// One label that could be drawn: the screen rectangles `[left, top, right,
/// bottom]` (pixels) it could take, best first, how much it matters (higher
/// first), and the group whose cubes it may touch.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub rects: Vec<[f32; 4]>,
    pub priority: f32,
    pub owner: Option<usize>,
}

/// Where a label may stand: a screen point and how the text sits on it —
/// `align[0]` 0 puts the point on the text's left edge, 0.5 its centre, 1 its
/// right edge; `align[1]` likewise top, middle, bottom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub at: [f32; 2],
    pub align: [f32; 2],
}

impl Anchor {
    /// The rectangle of text `size` (width, height) standing here.
    pub fn rect(&self, size: [f32; 2]) -> [f32; 4] {
        let left = self.at[0] - size[0] * self.align[0].clamp(0.0, 1.0);
        let top = self.at[1] - size[1] * self.align[1].clamp(0.0, 1.0);
        [left, top, left + size[0], top + size[1]]
    }
}

impl Candidate {
    /// Text `size` (width, height) at `anchor`, vertically centred on it,
    /// `align` across as in [`Anchor`]; touching no group's cubes.
    pub fn at(anchor: [f32; 2], size: [f32; 2], align: f32, priority: f32) -> Candidate {
        Candidate {
            rects: vec![
                Anchor {
                    at: anchor,
                    align: [align, 0.5],
                }
                .rect(size),
            ],
            priority,
            owner: None,
        }
    }
}

/// Labels at most per frame (the rest would not fit anyway).
pub const MAX_LABELS: usize = 160;

/// Pixels kept free around every label.
pub const PADDING: f32 = 3.0;

/// Above and below, a label keeps this many of its own heights free (a
/// tower of layer names reads as every second or fourth layer, with air
/// between them, instead of a wall of text over the cubes).
pub const LINE_GAP: f32 = 1.0;

/// Each drawn label sits on a dark plate this many pixels larger than its
/// text on every side, of this opacity (0..255), so it reads over cubes.
pub const PLATE_GROW: f32 = 2.0;
pub const PLATE_ALPHA: u8 = 120;

/// The candidates drawn, by index, in the order placed, each with the
/// rectangle it took: highest priority first (ties: the earlier candidate),
/// at the first of its rectangles wholly inside `view`, clear of every label
/// placed before it by [`PADDING`] across and [`LINE_GAP`] heights up and
/// down, and over no cube in `obstacles` but its owner's. At most `max` labels.
pub fn place(candidates: &[Candidate], obstacles: &Obstacles, view: [f32; 4], max: usize) -> Vec<(usize, [f32; 4])> {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].priority.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        candidates[b]
            .priority
            .total_cmp(&candidates[a].priority)
            .then(a.cmp(&b))
    });
    let mut placed: Vec<(usize, [f32; 4])> = Vec::new();
    for i in order {
        if placed.len() >= max {
            break;
        }
        let c = &candidates[i];
        let free = |r: &[f32; 4]| {
            r.iter().all(|v| v.is_finite())
                && r[0] >= view[0]
                && r[1] >= view[1]
                && r[2] <= view[2]
                && r[3] <= view[3]
                && placed.iter().all(|(_, p)| !touches(*r, *p))
                && !obstacles.blocks(*r, c.owner)
        };
        if let Some(r) = c.rects.iter().find(|r| free(r)) {
            placed.push((i, *r));
        }
    }
    placed
}

/// Whether two rectangles come within [`PADDING`] of each other side by
/// side, or within [`LINE_GAP`] of the taller one's height above or below.
fn touches(a: [f32; 4], b: [f32; 4]) -> bool {
    let gap = PADDING.max(LINE_GAP * (a[3] - a[1]).max(b[3] - b[1]));
    a[0] < b[2] + PADDING && b[0] < a[2] + PADDING && a[1] < b[3] + gap && b[1] < a[3] + gap
}

/// One label of the scene before placing: its text, colour (sRGBA), size in
/// logical pixels, where it may stand (best first), priority, and the group
/// whose cubes it may touch (see [`Candidate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SceneLabel {
    pub text: String,
    pub rgba: [u8; 4],
    pub size: f32,
    pub anchors: Vec<Anchor>,
    pub priority: f32,
    pub owner: Option<usize>,
}

/// A frame's labels and the cubes they must not cover.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneLabels {
    pub labels: Vec<SceneLabel>,
    pub obstacles: Vec<Obstacle>,
}

/// What the labels are read from.
pub struct LabelScene<'a> {
    pub layout: &'a super::Layout,
    pub grid: Option<&'a super::city::CityGrid>,
    /// The tokens' texts (the city's columns).
    pub texts: &'a [String],
    pub selected: Option<usize>,
    /// The camera's up direction in the world (cubes are measured along it).
    pub up: [f32; 3],
}

/// Text size of layer names and of token texts (logical pixels at 720 lines).
pub const LAYER_TEXT: f32 = 12.0;
pub const TOKEN_TEXT: f32 = 13.0;

/// Half a cube's screen extent as a share of its edge's projected length (a
/// cube seen at an angle is wider than its edge: up to √3/2).
const CUBE_HALF: f32 = 0.6;

/// Every label the scene could show: each group's name left of it at its
/// middle height (else above its top, else below its foot), each token's text
/// under the foot of its column (the selected one in gold); and every cube's
/// screen rectangle. `project` maps a world point to the screen (None behind
/// the camera); `scale` multiplies the text sizes.
pub fn scene_labels(scene: &LabelScene, project: &dyn Fn([f32; 3]) -> Option<[f32; 2]>, scale: f32) -> SceneLabels {
    let mut labels = Vec::new();
    for (index, group) in scene.layout.groups.iter().enumerate() {
        let b = group.bounds;
        let gap = (b.max[1] - b.min[1]).max(1e-3) * 0.2;
        let (cx, cy, cz) = (
            (b.min[0] + b.max[0]) / 2.0,
            (b.min[1] + b.max[1]) / 2.0,
            (b.min[2] + b.max[2]) / 2.0,
        );
        let beside = project([b.min[0] - gap, cy, cz]).map(|[x, y]| Anchor {
            at: [x - 6.0 * scale, y],
            align: [1.0, 0.5],
        });
        let above = project([cx, b.max[1], cz]).map(|[x, y]| Anchor {
            at: [x, y - 4.0 * scale],
            align: [0.5, 1.0],
        });
        let below = project([cx, b.min[1], cz]).map(|[x, y]| Anchor {
            at: [x, y + 4.0 * scale],
            align: [0.5, 0.0],
        });
        let anchors: Vec<Anchor> = [beside, above, below].into_iter().flatten().collect();
        if !anchors.is_empty() {
            labels.push(SceneLabel {
                text: group.label.clone(),
                rgba: [200, 205, 215, 200],
                size: LAYER_TEXT * scale,
                anchors,
                priority: layer_priority(group.layer),
                owner: Some(index),
            });
        }
    }
    if let Some(grid) = scene.grid {
        for (t, text) in scene.texts.iter().enumerate() {
            let [x, y, z] = grid.cell_center(t, 0);
            let Some(at) = project([x, y - grid.cell * 1.1, z]) else {
                continue;
            };
            let selected = scene.selected == Some(t);
            labels.push(SceneLabel {
                text: token_label(text),
                rgba: if selected {
                    [255, 230, 140, 255]
                } else {
                    [235, 235, 235, 255]
                },
                size: TOKEN_TEXT * scale,
                anchors: vec![Anchor { at, align: [0.5, 0.5] }],
                priority: if selected { 5.0 } else { 2.5 },
                owner: None,
            });
        }
    }
    let up = scene.up;
    let obstacles = scene
        .layout
        .cubes
        .iter()
        .filter_map(|cube| {
            let [x, y] = project(cube.center)?;
            let c = cube.center;
            let s = cube.size;
            let [ux, uy] = project([c[0] + up[0] * s, c[1] + up[1] * s, c[2] + up[2] * s])?;
            let half = CUBE_HALF * (ux - x).hypot(uy - y);
            Some(Obstacle {
                rect: [x - half, y - half, x + half, y + half],
                owner: Some(cube.group),
            })
        })
        .collect();
    SceneLabels { labels, obstacles }
}

/// The labels drawn and where: [`place`] over `scene`'s labels, each
/// measured by `measure(text, size) -> [width, height]`, kept off the cubes
/// and off the `clear` rectangles (the overlay's own text); (index into
/// `scene.labels`, rectangle).
pub fn placed(
    scene: &SceneLabels,
    measure: &mut dyn FnMut(&str, f32) -> [f32; 2],
    view: [f32; 4],
    clear: &[[f32; 4]],
    max: usize,
) -> Vec<(usize, [f32; 4])> {
    let candidates: Vec<Candidate> = scene
        .labels
        .iter()
        .map(|l| {
            let size = measure(&l.text, l.size);
            Candidate {
                rects: l.anchors.iter().map(|a| a.rect(size)).collect(),
                priority: l.priority,
                owner: l.owner,
            }
        })
        .collect();
    let kept = clear.iter().map(|&rect| Obstacle { rect, owner: None });
    let obstacles = Obstacles::new(scene.obstacles.iter().copied().chain(kept), view);
    place(&candidates, &obstacles, view, max)
}

/// A layer label's priority: the ends (embeddings, head) first, then every
/// fourth layer, then every second, then the rest — so culling thins them
/// evenly instead of keeping a crowded run at one end.
pub fn layer_priority(layer: Option<u32>) -> f32 {
    match layer {
        None => 4.0,
        Some(l) if l % 4 == 0 => 3.0,
        Some(l) if l % 2 == 0 => 2.0,
        Some(_) => 1.0,
    }
}

/// A token's text as a label: whitespace made visible (a leading space as
/// `·`, newlines as `\n`), at most 12 characters.
pub fn token_label(text: &str) -> String {
    let shown: String = text
        .chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\t' => "\\t".to_string(),
            ' ' => "·".to_string(),
            c if c.is_control() => "?".to_string(),
            c => c.to_string(),
        })
        .collect();
    let chars: Vec<char> = shown.chars().collect();
    if chars.len() > 12 {
        chars[..11].iter().collect::<String>() + "…"
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: [f32; 4], b: [f32; 4]) -> bool {
        a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
    }

    #[test]
    fn no_two_placed_labels_overlap_and_the_important_ones_win() {
        // 200 layer labels down a column, 3 px apart: far too dense to show all.
        let candidates: Vec<Candidate> = (0..200)
            .map(|i| {
                Candidate::at(
                    [100.0, 10.0 + 3.0 * i as f32],
                    [50.0, 14.0],
                    0.0,
                    layer_priority(Some(i)),
                )
            })
            .collect();
        let view = [0.0, 0.0, 800.0, 620.0];
        let placed: Vec<usize> = place(&candidates, &Obstacles::none(), view, 1000)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert!(placed.len() > 10 && placed.len() < 200, "{} placed", placed.len());
        for (k, &a) in placed.iter().enumerate() {
            for &b in &placed[k + 1..] {
                let (ra, rb) = (candidates[a].rects[0], candidates[b].rects[0]);
                assert!(!overlap(ra, rb), "{a} and {b} overlap");
                // A line's height of air between labels stacked in a column.
                let air = (rb[1] - ra[3]).max(ra[1] - rb[3]);
                assert!(air >= LINE_GAP * 14.0, "{a} and {b}: {air} px apart");
            }
            let r = candidates[a].rects[0];
            assert!(
                r[0] >= 0.0 && r[1] >= 0.0 && r[2] <= 800.0 && r[3] <= 620.0,
                "inside the view"
            );
        }
        // Placed first: layer 0; then every fourth layer as room allows (36 px
        // apart — 14 px of text and 14 px of air above and below — so layers
        // 0, 12, 24, …), a lesser one only in a gap left at the end.
        assert_eq!(placed[0], 0);
        let fourths = placed.iter().filter(|&&i| i % 4 == 0).count();
        assert!(fourths + 1 >= placed.len(), "{placed:?}");
        assert!(placed[..fourths].iter().all(|&i| i % 12 == 0), "{placed:?}");
        // Off-view and non-finite candidates are never placed; `max` caps.
        let odd = [
            Candidate::at([-50.0, 10.0], [40.0, 10.0], 0.0, 9.0),
            Candidate::at([f32::NAN, 10.0], [40.0, 10.0], 0.0, 9.0),
            Candidate::at([400.0, 300.0], [40.0, 10.0], 0.5, f32::INFINITY),
            Candidate::at([200.0, 300.0], [40.0, 10.0], 0.5, 1.0),
        ];
        assert_eq!(place(&odd, &Obstacles::none(), view, 10), [(3, odd[3].rects[0])]);
        assert_eq!(place(&candidates, &Obstacles::none(), view, 5).len(), 5);
    }

    #[test]
    fn anchors_align_and_tokens_read() {
        let c = Candidate::at([100.0, 50.0], [40.0, 10.0], 1.0, 1.0);
        assert_eq!(c.rects, [[60.0, 45.0, 100.0, 55.0]]);
        assert_eq!(
            Candidate::at([100.0, 50.0], [40.0, 10.0], 0.5, 1.0).rects,
            [[80.0, 45.0, 120.0, 55.0]]
        );
        let above = Anchor {
            at: [100.0, 50.0],
            align: [0.5, 1.0],
        };
        assert_eq!(above.rect([40.0, 10.0]), [80.0, 40.0, 120.0, 50.0]);
        assert_eq!(token_label(" the"), "·the");
        assert_eq!(token_label("\n"), "\\n");
        assert_eq!(token_label("abcdefghijklmnop"), "abcdefghijk…");
        assert_eq!(layer_priority(None), 4.0);
        assert_eq!(layer_priority(Some(8)), 3.0);
        assert_eq!(layer_priority(Some(6)), 2.0);
        assert_eq!(layer_priority(Some(7)), 1.0);
    }

    #[test]
    fn labels_keep_off_other_layers_cubes_and_try_their_other_places() {
        // A cube of layer 1 stands where layer 0's label would go beside it;
        // above it the label is free.
        let candidate = Candidate {
            rects: vec![[50.0, 95.0, 90.0, 105.0], [100.0, 70.0, 140.0, 80.0]],
            priority: 1.0,
            owner: Some(0),
        };
        let cube = |owner| Obstacle {
            rect: [40.0, 90.0, 60.0, 110.0],
            owner: Some(owner),
        };
        let view = [0.0, 0.0, 640.0, 360.0];
        let placed = place(
            std::slice::from_ref(&candidate),
            &Obstacles::new([cube(1)], view),
            view,
            10,
        );
        assert_eq!(placed, [(0, candidate.rects[1])]);
        // Its own layer's cube does not push it away.
        let placed = place(
            std::slice::from_ref(&candidate),
            &Obstacles::new([cube(0)], view),
            view,
            10,
        );
        assert_eq!(placed, [(0, candidate.rects[0])]);
        // Nowhere free: not drawn.
        let everywhere = Obstacle {
            rect: [0.0, 0.0, 640.0, 360.0],
            owner: None,
        };
        assert!(place(&[candidate], &Obstacles::new([everywhere], view), view, 10).is_empty());
    }

    #[test]
    fn no_layer_name_covers_a_cube_of_a_wrapped_trunk() {
        use crate::arch::catalogue_entry;
        use crate::layout::{CubeScale, Layout, LayoutKind};
        let arch = catalogue_entry("meta-llama/Llama-3.1-405B")
            .unwrap()
            .architecture()
            .unwrap();
        let layout = Layout::compute(&arch, LayoutKind::Trunk, CubeScale::Relative);
        // Straight on, the whole model filling 1280x720 (y down on screen).
        let b = layout.bounds;
        let scale = 680.0 / (b.max[1] - b.min[1]).max((b.max[0] - b.min[0]) * 720.0 / 1280.0);
        let project = |p: [f32; 3]| {
            Some([
                640.0 + (p[0] - b.center()[0]) * scale,
                360.0 - (p[1] - b.center()[1]) * scale,
            ])
        };
        let scene = LabelScene {
            layout: &layout,
            grid: None,
            texts: &[],
            selected: None,
            up: [0.0, 1.0, 0.0],
        };
        let labels = scene_labels(&scene, &project, 1.0);
        assert_eq!(labels.obstacles.len(), layout.cubes.len());
        let mut measure = |text: &str, size: f32| [0.55 * size * text.chars().count() as f32, size];
        let view = [0.0, 0.0, 1280.0, 720.0];
        let placed = placed(&labels, &mut measure, view, &[], MAX_LABELS);
        let column = |g: usize| (layout.groups[g].center[0] * 100.0).round() as i64;
        let columns: std::collections::BTreeSet<i64> = (0..layout.groups.len()).map(column).collect();
        assert!(columns.len() > 2, "the trunk wraps: {} columns", columns.len());
        // Most columns are named (above their top or below their foot), the
        // first one at several layers.
        let named: std::collections::BTreeSet<i64> = placed
            .iter()
            .filter_map(|(i, _)| labels.labels[*i].owner.map(column))
            .collect();
        assert!(2 * named.len() >= columns.len(), "{named:?} of {columns:?}");
        let first = columns.first().copied();
        let on_first = placed
            .iter()
            .filter(|(i, _)| labels.labels[*i].owner.map(column) == first)
            .count();
        assert!(on_first >= 4, "{on_first} labels on the first column");
        for (i, r) in &placed {
            let owner = labels.labels[*i].owner;
            for o in labels.obstacles.iter().filter(|o| o.owner != owner) {
                let q = o.rect;
                let over = q[0] < r[2] && r[0] < q[2] && q[1] < r[3] && r[1] < q[3];
                assert!(!over, "{} covers a cube of another layer", labels.labels[*i].text);
            }
        }
    }
}
