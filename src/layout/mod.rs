//! Pure geometry: an [`Architecture`] becomes cube positions and sizes, grouped
//! per layer (and per tower for multimodal models); the city's grid; ray
//! picking. No Bevy types here; the `spawn` module turns a [`Layout`] into entities.

pub mod city;
mod floors;
pub mod labels;
pub mod pick;
mod trunk;
mod wrap;

use serde::{Deserialize, Serialize};

use crate::arch::{Architecture, CubeScale, TensorKind};

/// Which arrangement to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// trunkplot's vertical column, model order bottom to top, wrapped into
    /// side-by-side columns when one would be too tall for the frame.
    #[default]
    Trunk,
    /// One floor per layer with its tensors around the axis; experts in a grid.
    Floors,
    /// The trunk with the neural city beside it: token columns through layer
    /// floors, attention arcs between them (once a prompt has run).
    City,
}

/// A model part with its own trunk: multimodal models put a vision or audio
/// encoder beside the text decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tower {
    Text,
    Vision,
    Audio,
}

impl Tower {
    pub fn of(name: &str) -> Tower {
        if ["vision", "visual", "image_encoder", "img_"]
            .iter()
            .any(|m| name.contains(m))
        {
            Tower::Vision
        } else if ["audio", "speech", "whisper_encoder"].iter().any(|m| name.contains(m)) {
            Tower::Audio
        } else {
            Tower::Text
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tower::Text => "text",
            Tower::Vision => "vision",
            Tower::Audio => "audio",
        }
    }
}

/// Where one tensor's cube goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CubeSlot {
    /// Index into `Architecture::tensors`.
    pub tensor: usize,
    pub center: [f32; 3],
    /// Edge length.
    pub size: f32,
    /// Index into `Layout::groups`.
    pub group: usize,
}

/// One layer (or the embeddings, or the head) of one tower.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSlot {
    pub label: String,
    pub tower: Tower,
    pub layer: Option<u32>,
    /// Indices into `Layout::cubes`, in model order.
    pub cubes: Vec<usize>,
    pub center: [f32; 3],
    /// Edge of the single block drawn when the group is collapsed: its volume is
    /// the sum of its cubes' volumes.
    pub block_size: f32,
    pub bounds: Bounds,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: [f32; 3],
    pub max: [f32; 3],
}

impl Bounds {
    pub const EMPTY: Bounds = Bounds {
        min: [f32::MAX; 3],
        max: [f32::MIN; 3],
    };

    pub fn around(center: [f32; 3], size: f32) -> Bounds {
        let h = size / 2.0;
        Bounds {
            min: [center[0] - h, center[1] - h, center[2] - h],
            max: [center[0] + h, center[1] + h, center[2] + h],
        }
    }

    pub fn union(self, other: Bounds) -> Bounds {
        Bounds {
            min: std::array::from_fn(|i| self.min[i].min(other.min[i])),
            max: std::array::from_fn(|i| self.max[i].max(other.max[i])),
        }
    }

    pub fn center(&self) -> [f32; 3] {
        std::array::from_fn(|i| (self.min[i] + self.max[i]) / 2.0)
    }

    /// Length of the diagonal (0 for an empty box).
    pub fn extent(&self) -> f32 {
        if self.min[0] > self.max[0] {
            return 0.0;
        }
        (0..3).map(|i| (self.max[i] - self.min[i]).powi(2)).sum::<f32>().sqrt()
    }
}

/// A whole model's geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub kind: LayoutKind,
    pub scale: CubeScale,
    /// One per tensor, in model order.
    pub cubes: Vec<CubeSlot>,
    pub groups: Vec<GroupSlot>,
    pub bounds: Bounds,
}

impl Layout {
    /// Lays a model out. Pure: same architecture, same numbers.
    pub fn compute(arch: &Architecture, kind: LayoutKind, scale: CubeScale) -> Layout {
        let order = arch.model_order();
        let params: Vec<u64> = arch.tensors.iter().map(|t| t.params).collect();
        let sizes = scale.sizes(&params);
        let groups = group_tensors(arch, &order);
        let mut placed = match kind {
            LayoutKind::Trunk | LayoutKind::City => trunk::place(&groups, &sizes),
            LayoutKind::Floors => floors::place(arch, &groups, &sizes),
        };
        // The city's floors line up with one trunk column; the others wrap to fill the frame.
        if kind != LayoutKind::City {
            wrap::wrap(&groups, &mut placed, &sizes);
        }
        finish(kind, scale, arch, groups, placed, &sizes)
    }
}

/// Groups in drawing order: per tower, embeddings, each block, then the head.
pub(crate) struct Group {
    pub tower: Tower,
    pub layer: Option<u32>,
    pub label: String,
    /// Tensor indices in model order.
    pub tensors: Vec<usize>,
}

fn group_tensors(arch: &Architecture, order: &[usize]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut seen_block = std::collections::HashSet::new();
    for &i in order {
        let t = &arch.tensors[i];
        let tower = Tower::of(&t.name);
        let stage = match t.layer {
            Some(l) => {
                seen_block.insert(tower);
                format!("layer {l}")
            }
            None if !seen_block.contains(&tower) => "embeddings".to_string(),
            None => "head".to_string(),
        };
        let label = if tower == Tower::Text {
            stage
        } else {
            format!("{} {stage}", tower.label())
        };
        match groups.iter_mut().rev().find(|g| g.tower == tower && g.label == label) {
            Some(g) => g.tensors.push(i),
            None => groups.push(Group {
                tower,
                layer: t.layer,
                label,
                tensors: vec![i],
            }),
        }
    }
    // Towers side by side, each in its own model order.
    groups.sort_by_key(|g| g.tower);
    groups
}

fn finish(
    kind: LayoutKind,
    scale: CubeScale,
    arch: &Architecture,
    groups: Vec<Group>,
    centers: Vec<[f32; 3]>,
    sizes: &[f32],
) -> Layout {
    let mut cubes = Vec::with_capacity(arch.tensors.len());
    let mut slots = Vec::with_capacity(groups.len());
    let mut bounds = Bounds::EMPTY;
    let mut k = 0;
    for (gi, g) in groups.into_iter().enumerate() {
        let mut gb = Bounds::EMPTY;
        let mut volume = 0.0f32;
        let mut members = Vec::with_capacity(g.tensors.len());
        for &t in &g.tensors {
            let center = centers[k];
            k += 1;
            gb = gb.union(Bounds::around(center, sizes[t]));
            volume += sizes[t].powi(3);
            members.push(cubes.len());
            cubes.push(CubeSlot {
                tensor: t,
                center,
                size: sizes[t],
                group: gi,
            });
        }
        bounds = bounds.union(gb);
        slots.push(GroupSlot {
            label: g.label,
            tower: g.tower,
            layer: g.layer,
            cubes: members,
            center: gb.center(),
            block_size: volume.cbrt(),
            bounds: gb,
        });
    }
    Layout {
        kind,
        scale,
        cubes,
        groups: slots,
        bounds,
    }
}

/// True for tensors laid out in an expert grid rather than on the ring.
pub(crate) fn is_expert(arch: &Architecture, tensor: usize) -> bool {
    let t = &arch.tensors[tensor];
    t.kind == TensorKind::Expert && t.expert.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::catalogue_entry;

    fn layout(id: &str, kind: LayoutKind) -> (Architecture, Layout) {
        let arch = catalogue_entry(id).unwrap().architecture().unwrap();
        let l = Layout::compute(&arch, kind, CubeScale::Relative);
        (arch, l)
    }

    #[test]
    fn trunk_is_one_column_in_model_order_with_proportional_gaps() {
        // The city's trunk is never wrapped: its floors line up with it.
        let (arch, l) = layout("gpt2", LayoutKind::City);
        assert_eq!(l.cubes.len(), arch.tensors.len());
        assert_eq!(arch.tensors[l.cubes[0].tensor].name, "wte.weight");
        assert_eq!(arch.tensors[l.cubes.last().unwrap().tensor].name, "ln_f.bias");
        for w in l.cubes.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert_eq!((a.center[0], a.center[2]), (0.0, 0.0));
            // bottom of b = bottom of a + 1.2 x size of a
            let bottom = |c: CubeSlot| c.center[1] - c.size / 2.0;
            assert!((bottom(b) - bottom(a) - 1.2 * a.size).abs() < 1e-3);
        }
        assert_eq!(l.groups.len(), 12 + 2);
        assert_eq!(l.groups[0].label, "embeddings");
        assert_eq!(l.groups[13].label, "head");
    }

    /// Columns of whole groups, left to right, each bottom to top in model
    /// order; returns how many columns there are.
    fn wrapped_columns(l: &Layout) -> usize {
        let (mut columns, mut last_bottom) = (0, f32::MIN);
        // Right edge of the columns before this one, and of this one so far.
        let (mut before, mut this) = (f32::MIN, f32::MIN);
        for g in &l.groups {
            if columns == 0 || g.bounds.min[1] <= last_bottom {
                before = this;
                columns += 1;
            }
            assert!(g.bounds.min[0] > before, "{} reaches into the column before", g.label);
            this = this.max(g.bounds.max[0]);
            last_bottom = g.bounds.min[1];
        }
        columns
    }

    #[test]
    fn deep_models_wrap_into_columns_that_fill_a_wide_frame() {
        for (id, kind) in [
            ("gpt2", LayoutKind::Trunk),
            ("meta-llama/Llama-3.1-405B", LayoutKind::Trunk),
            ("meta-llama/Llama-3.1-405B", LayoutKind::Floors),
            ("mistralai/Mixtral-8x7B-v0.1", LayoutKind::Floors),
        ] {
            let (arch, l) = layout(id, kind);
            assert_eq!(l.cubes.len(), arch.tensors.len());
            let b = l.bounds;
            let aspect = (b.max[0] - b.min[0]) / (b.max[1] - b.min[1]);
            assert!((0.5..4.0).contains(&aspect), "{id} {kind:?}: width : height {aspect}");
            let columns = wrapped_columns(&l);
            // Groups never overlap one another.
            for (i, a) in l.groups.iter().enumerate() {
                for other in &l.groups[i + 1..] {
                    let overlap = (0..2).all(|k| {
                        a.bounds.min[k] < other.bounds.max[k] - 1e-3 && other.bounds.min[k] < a.bounds.max[k] - 1e-3
                    });
                    assert!(!overlap, "{id}: {} overlaps {}", a.label, other.label);
                }
            }
            // gpt2's trunk becomes several columns; the 405B's floors a skyline of towers.
            let least = if id.contains("405B") && kind == LayoutKind::Floors {
                6
            } else {
                2
            };
            assert!(columns >= least, "{id} {kind:?}: {columns} columns");
        }
        // A model whose one column already fits stays one column.
        let mut arch = catalogue_entry("gpt2").unwrap().architecture().unwrap();
        arch.tensors.retain(|t| t.layer.is_none_or(|l| l < 1));
        assert_eq!(
            wrapped_columns(&Layout::compute(&arch, LayoutKind::Floors, CubeScale::Relative)),
            1
        );
    }

    #[test]
    fn floors_stack_layers_and_put_experts_in_a_grid() {
        let (arch, l) = layout("mistralai/Mixtral-8x7B-v0.1", LayoutKind::Floors);
        assert_eq!(l.groups.len(), 32 + 2);
        // Floors go up with the layer index, within each column.
        // (wrapped into columns, each going up in layer order)
        assert!(wrapped_columns(&l) >= 1);
        // No two cubes of a floor overlap.
        for g in &l.groups {
            for (i, &a) in g.cubes.iter().enumerate() {
                for &b in &g.cubes[i + 1..] {
                    let (ca, cb) = (l.cubes[a], l.cubes[b]);
                    let gap = (0..3).map(|k| (ca.center[k] - cb.center[k]).abs()).fold(0.0, f32::max);
                    assert!(gap >= (ca.size + cb.size) / 2.0 - 1e-4, "{} overlaps", g.label);
                }
            }
        }
        // Experts of one layer sit on a grid: 8 experts x 3 tensors, 8 distinct (x, z) cells.
        let layer0 = &l.groups[1];
        let experts: Vec<_> = layer0
            .cubes
            .iter()
            .filter(|&&c| is_expert(&arch, l.cubes[c].tensor))
            .collect();
        assert_eq!(experts.len(), 24);
    }

    #[test]
    fn block_volume_is_sum_of_cube_volumes() {
        let (_, l) = layout("gpt2", LayoutKind::Floors);
        for g in &l.groups {
            let v: f32 = g.cubes.iter().map(|&c| l.cubes[c].size.powi(3)).sum();
            assert!((g.block_size.powi(3) - v).abs() / v < 1e-4);
        }
    }

    #[test]
    fn towers_are_side_by_side() {
        let mut arch = catalogue_entry("gpt2").unwrap().architecture().unwrap();
        let mut vision = arch.tensors[..10].to_vec();
        for t in &mut vision {
            t.name = format!("vision_model.{}", t.name);
        }
        arch.tensors.extend(vision);
        let l = Layout::compute(&arch, LayoutKind::City, CubeScale::Relative);
        let xs: std::collections::BTreeSet<i32> = l.cubes.iter().map(|c| c.center[0] as i32).collect();
        assert_eq!(xs.len(), 2);
        assert!(l.groups.iter().any(|g| g.tower == Tower::Vision));
    }
}
