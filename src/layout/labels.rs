//! Labels in the scene (pure, no Bevy): which of the candidate labels —
//! layer names beside the trunk and floors, token texts at the foot of the
//! city's columns — are drawn this frame. Each candidate is a screen
//! rectangle with a priority; the most important are placed first and a label
//! that would touch one already placed, or leave the view, is culled, so no
//! two drawn labels overlap however far out the camera is (at a distance most
//! layer names give way to every fourth, then to the ends).

/// One label that could be drawn: its screen rectangle `[left, top, right,
/// bottom]` (pixels) and how much it matters (higher first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub rect: [f32; 4],
    pub priority: f32,
}

impl Candidate {
    /// The rectangle of text `size` (width, height) placed at `anchor`:
    /// `align` 0 puts the anchor on its left edge, 0.5 its centre, 1 its
    /// right edge (vertically it is centred).
    pub fn at(anchor: [f32; 2], size: [f32; 2], align: f32, priority: f32) -> Candidate {
        let left = anchor[0] - size[0] * align.clamp(0.0, 1.0);
        let top = anchor[1] - size[1] / 2.0;
        Candidate {
            rect: [left, top, left + size[0], top + size[1]],
            priority,
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

/// The candidates drawn, by index, in the order placed: highest priority
/// first (ties: the earlier candidate), each wholly inside `view` and clear
/// of every label placed before it by [`PADDING`] across and [`LINE_GAP`]
/// heights up and down. At most `max` labels.
pub fn place(candidates: &[Candidate], view: [f32; 4], max: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].rect.iter().all(|v| v.is_finite()) && candidates[i].priority.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        candidates[b]
            .priority
            .total_cmp(&candidates[a].priority)
            .then(a.cmp(&b))
    });
    let mut placed: Vec<usize> = Vec::new();
    for i in order {
        if placed.len() >= max {
            break;
        }
        let r = candidates[i].rect;
        let inside = r[0] >= view[0] && r[1] >= view[1] && r[2] <= view[2] && r[3] <= view[3];
        if inside && placed.iter().all(|&j| !touches(r, candidates[j].rect)) {
            placed.push(i);
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
/// logical pixels, anchor on screen, alignment and priority (see [`Candidate::at`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SceneLabel {
    pub text: String,
    pub rgba: [u8; 4],
    pub size: f32,
    pub anchor: [f32; 2],
    pub align: f32,
    pub priority: f32,
}

/// What the labels are read from.
pub struct LabelScene<'a> {
    pub layout: &'a super::Layout,
    pub grid: Option<&'a super::city::CityGrid>,
    /// The tokens' texts (the city's columns).
    pub texts: &'a [String],
    pub selected: Option<usize>,
}

/// Text size of layer names and of token texts (logical pixels at 720 lines).
pub const LAYER_TEXT: f32 = 12.0;
pub const TOKEN_TEXT: f32 = 13.0;

/// Every label the scene could show: each group's name left of it at its
/// middle height, each token's text under the foot of its column (the
/// selected one in gold). `project` maps a world point to the screen (None
/// behind the camera); `scale` multiplies the text sizes.
pub fn scene_labels(scene: &LabelScene, project: &dyn Fn([f32; 3]) -> Option<[f32; 2]>, scale: f32) -> Vec<SceneLabel> {
    let mut out = Vec::new();
    for group in &scene.layout.groups {
        let b = group.bounds;
        let gap = (b.max[1] - b.min[1]).max(1e-3) * 0.2;
        let anchor = [b.min[0] - gap, (b.min[1] + b.max[1]) / 2.0, (b.min[2] + b.max[2]) / 2.0];
        if let Some([x, y]) = project(anchor) {
            out.push(SceneLabel {
                text: group.label.clone(),
                rgba: [200, 205, 215, 200],
                size: LAYER_TEXT * scale,
                anchor: [x - 6.0 * scale, y],
                align: 1.0,
                priority: layer_priority(group.layer),
            });
        }
    }
    if let Some(grid) = scene.grid {
        for (t, text) in scene.texts.iter().enumerate() {
            let [x, y, z] = grid.cell_center(t, 0);
            let Some(anchor) = project([x, y - grid.cell * 1.1, z]) else {
                continue;
            };
            let selected = scene.selected == Some(t);
            out.push(SceneLabel {
                text: token_label(text),
                rgba: if selected {
                    [255, 230, 140, 255]
                } else {
                    [235, 235, 235, 255]
                },
                size: TOKEN_TEXT * scale,
                anchor,
                align: 0.5,
                priority: if selected { 5.0 } else { 2.5 },
            });
        }
    }
    out
}

/// The labels drawn and where: [`place`] over `labels`, each measured by
/// `measure(text, size) -> [width, height]`; (index into `labels`, rectangle).
pub fn placed(
    labels: &[SceneLabel],
    measure: &mut dyn FnMut(&str, f32) -> [f32; 2],
    view: [f32; 4],
    max: usize,
) -> Vec<(usize, [f32; 4])> {
    let candidates: Vec<Candidate> = labels
        .iter()
        .map(|l| Candidate::at(l.anchor, measure(&l.text, l.size), l.align, l.priority))
        .collect();
    place(&candidates, view, max)
        .into_iter()
        .map(|i| (i, candidates[i].rect))
        .collect()
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
        let placed = place(&candidates, view, 1000);
        assert!(placed.len() > 10 && placed.len() < 200, "{} placed", placed.len());
        for (k, &a) in placed.iter().enumerate() {
            for &b in &placed[k + 1..] {
                let (ra, rb) = (candidates[a].rect, candidates[b].rect);
                assert!(!overlap(ra, rb), "{a} and {b} overlap");
                // A line's height of air between labels stacked in a column.
                let air = (rb[1] - ra[3]).max(ra[1] - rb[3]);
                assert!(air >= LINE_GAP * 14.0, "{a} and {b}: {air} px apart");
            }
            let r = candidates[a].rect;
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
        assert_eq!(place(&odd, view, 10), [3]);
        assert_eq!(place(&candidates, view, 5).len(), 5);
    }

    #[test]
    fn anchors_align_and_tokens_read() {
        let c = Candidate::at([100.0, 50.0], [40.0, 10.0], 1.0, 1.0);
        assert_eq!(c.rect, [60.0, 45.0, 100.0, 55.0]);
        assert_eq!(
            Candidate::at([100.0, 50.0], [40.0, 10.0], 0.5, 1.0).rect,
            [80.0, 45.0, 120.0, 55.0]
        );
        assert_eq!(token_label(" the"), "·the");
        assert_eq!(token_label("\n"), "\\n");
        assert_eq!(token_label("abcdefghijklmnop"), "abcdefghijk…");
        assert_eq!(layer_priority(None), 4.0);
        assert_eq!(layer_priority(Some(8)), 3.0);
        assert_eq!(layer_priority(Some(6)), 2.0);
        assert_eq!(layer_priority(Some(7)), 1.0);
    }
}
