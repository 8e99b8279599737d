//! Deep models wrapped into columns, as text wraps into lines: the groups of
//! a tower (embeddings, each layer, the head) keep their model order, bottom
//! to top, and once a column is as tall as the tower's share of the frame the
//! next group starts a new column to the right. The number of columns is the
//! one whose width : height comes closest to a widescreen frame, so a 126-layer
//! model fills the view instead of standing as a hairline, and a small model
//! whose single column already fits stays one column.

use super::{Group, Tower};

/// Width : height that wrapped towers aim for: a 16:9 view seen from the
/// default three-quarter angle, which foreshortens x by about cos 0.6.
pub(super) const TARGET_ASPECT: f32 = 1.9;
/// Room between neighbouring columns, relative to the wider of the two.
const COLUMN_GAP: f32 = 0.5;
/// More columns than this are never useful (a column would hold one layer).
const MAX_COLUMNS: usize = 24;

/// Extent of one group as the placer left it.
#[derive(Debug, Clone, Copy)]
struct Extent {
    x: (f32, f32),
    y: (f32, f32),
}

/// Moves whole groups of each tower into side-by-side columns (see the module
/// doc). `centers` holds one centre per tensor in group order, as the placers
/// return them; towers that grow wider push the towers after them right.
pub(super) fn wrap(groups: &[Group], centers: &mut [[f32; 3]], sizes: &[f32]) {
    let mut extents = Vec::with_capacity(groups.len());
    let mut k = 0;
    for g in groups {
        let mut e = Extent {
            x: (f32::MAX, f32::MIN),
            y: (f32::MAX, f32::MIN),
        };
        for &t in &g.tensors {
            let (c, h) = (centers[k], sizes[t] / 2.0);
            e.x = (e.x.0.min(c[0] - h), e.x.1.max(c[0] + h));
            e.y = (e.y.0.min(c[1] - h), e.y.1.max(c[1] + h));
            k += 1;
        }
        extents.push(e);
    }
    let mut shift = 0.0f32;
    let mut start = 0;
    let mut first_tensor = 0;
    while start < groups.len() {
        let tower: Tower = groups[start].tower;
        let end = groups[start..]
            .iter()
            .position(|g| g.tower != tower)
            .map_or(groups.len(), |n| start + n);
        let tower_extents = &extents[start..end];
        let plan = best_plan(tower_extents);
        let tensors: usize = groups[start..end].iter().map(|g| g.tensors.len()).sum();
        let mut k = first_tensor;
        for (g, (dx, dy)) in groups[start..end].iter().zip(&plan.moves) {
            for _ in &g.tensors {
                centers[k][0] += dx + shift;
                centers[k][1] += dy;
                k += 1;
            }
        }
        shift += plan.extra_width;
        first_tensor += tensors;
        start = end;
    }
}

/// Where each group of one tower moves, and how much wider the tower became.
struct Plan {
    moves: Vec<(f32, f32)>,
    extra_width: f32,
}

/// The column count whose aspect comes closest to [`TARGET_ASPECT`].
fn best_plan(extents: &[Extent]) -> Plan {
    let mut best: Option<(f32, Plan)> = None;
    for columns in 1..=extents.len().clamp(1, MAX_COLUMNS) {
        let (plan, aspect) = plan(extents, columns);
        let miss = (aspect.max(1e-6) / TARGET_ASPECT).ln().abs();
        if best.as_ref().is_none_or(|(m, _)| miss < *m) {
            best = Some((miss, plan));
        }
    }
    best.map_or(
        Plan {
            moves: vec![(0.0, 0.0); extents.len()],
            extra_width: 0.0,
        },
        |(_, p)| p,
    )
}

/// Splits the groups into `columns` columns of about equal height (by each
/// group's middle) and lays the columns left to right; returns the moves and
/// the resulting width : height.
fn plan(extents: &[Extent], columns: usize) -> (Plan, f32) {
    let bottom = extents.iter().map(|e| e.y.0).fold(f32::MAX, f32::min);
    let top = extents.iter().map(|e| e.y.1).fold(f32::MIN, f32::max);
    let share = ((top - bottom) / columns as f32).max(f32::MIN_POSITIVE);
    let column_of: Vec<usize> = extents
        .iter()
        .map(|e| ((((e.y.0 + e.y.1) / 2.0 - bottom) / share) as usize).min(columns - 1))
        .collect();
    // Per column: its groups' x range and where its first group starts.
    let mut x_range = vec![(f32::MAX, f32::MIN); columns];
    let mut y_start = vec![f32::MAX; columns];
    let mut y_end = vec![f32::MIN; columns];
    for (e, &c) in extents.iter().zip(&column_of) {
        x_range[c] = (x_range[c].0.min(e.x.0), x_range[c].1.max(e.x.1));
        y_start[c] = y_start[c].min(e.y.0);
        y_end[c] = y_end[c].max(e.y.1);
    }
    // Column c's left edge: the previous column's right edge plus a gap.
    let mut offsets = vec![0.0f32; columns];
    let mut right = f32::MIN;
    let mut previous_width = 0.0f32;
    let left_edge = x_range
        .iter()
        .filter(|r| r.0 <= r.1)
        .map(|r| r.0)
        .fold(f32::MAX, f32::min);
    for c in 0..columns {
        let (lo, hi) = x_range[c];
        if lo > hi {
            continue;
        }
        let width = hi - lo;
        offsets[c] = if right == f32::MIN {
            0.0
        } else {
            right + COLUMN_GAP * width.max(previous_width) - lo
        };
        right = hi + offsets[c];
        previous_width = width;
    }
    let height = (0..columns)
        .filter(|&c| y_start[c] <= y_end[c])
        .map(|c| y_end[c] - y_start[c])
        .fold(0.0, f32::max);
    let original_width = x_range.iter().map(|r| r.1).fold(f32::MIN, f32::max) - left_edge;
    let width = right - left_edge;
    let moves = column_of.iter().map(|&c| (offsets[c], bottom - y_start[c])).collect();
    let plan = Plan {
        moves,
        extra_width: (width - original_width).max(0.0),
    };
    (plan, width / height.max(f32::MIN_POSITIVE))
}
