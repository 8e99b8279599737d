//! The mixture-of-experts map: for each expert weight (Mixtral's `w1`/`w2`/
//! `w3`, Qwen-MoE's `gate_proj`/`up_proj`/`down_proj`) and the router, a
//! layers x experts grid of one statistic, so a dead expert (all zeros) or an
//! outlier one stands out. The router's cell for an expert is the statistic of
//! its row of the router matrix (`[experts, hidden]`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::color::Stat;
use super::stats::TensorStats;

/// Where an expert tensor sits: `(layer, expert, part)`, from a name like
/// `model.layers.3.block_sparse_moe.experts.5.w1.weight`.
pub fn expert_of(name: &str) -> Option<(u32, usize, String)> {
    let parts: Vec<&str> = name.split('.').collect();
    let layer = parts
        .windows(2)
        .find(|w| w[0] == "layers" || w[0] == "h" || w[0] == "blocks")
        .and_then(|w| w[1].parse().ok())?;
    let at = parts.iter().position(|p| *p == "experts")?;
    let expert = parts.get(at + 1)?.parse().ok()?;
    let part = parts.get(at + 2)?.to_string();
    Some((layer, expert, part))
}

/// Whether `name` is a layer's router (`…block_sparse_moe.gate.weight`,
/// `…mlp.gate.weight`): its layer.
pub fn router_of(name: &str) -> Option<u32> {
    let parts: Vec<&str> = name.split('.').collect();
    let n = parts.len();
    let is_router = n >= 3 && parts[n - 1] == "weight" && parts[n - 2] == "gate" && !name.contains(".experts.");
    if !is_router {
        return None;
    }
    parts
        .windows(2)
        .find(|w| w[0] == "layers")
        .and_then(|w| w[1].parse().ok())
}

/// One part's grid: `cells[layer index][expert]` (`None`: not computed).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Grid {
    pub part: String,
    pub layers: Vec<u32>,
    pub cells: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExpertMap {
    pub stat: &'static str,
    pub experts: usize,
    pub grids: Vec<Grid>,
}

/// The map of `stat` from per-tensor statistics and the routers' per-row
/// statistics (`router_rows[layer][expert]`); `None` for a model without experts.
pub fn map<'a>(
    stats: impl IntoIterator<Item = &'a TensorStats>,
    router_rows: &BTreeMap<u32, Vec<TensorStats>>,
    stat: Stat,
) -> Option<ExpertMap> {
    let mut parts: BTreeMap<String, BTreeMap<u32, BTreeMap<usize, Option<f64>>>> = BTreeMap::new();
    for s in stats {
        if let Some((layer, expert, part)) = expert_of(&s.name) {
            parts
                .entry(part)
                .or_default()
                .entry(layer)
                .or_default()
                .insert(expert, stat.value(s));
        }
    }
    if parts.is_empty() {
        return None;
    }
    for (layer, rows) in router_rows {
        let grid = parts.entry("router".into()).or_default().entry(*layer).or_default();
        for (e, row) in rows.iter().enumerate() {
            grid.insert(e, stat.value(row));
        }
    }
    let experts = parts
        .values()
        .flat_map(|layers| layers.values())
        .filter_map(|cells| cells.keys().max().map(|m| m + 1))
        .max()
        .unwrap_or(0);
    let grids = parts
        .into_iter()
        .map(|(part, layers)| Grid {
            part,
            layers: layers.keys().copied().collect(),
            cells: layers
                .values()
                .map(|cells| (0..experts).map(|e| cells.get(&e).copied().flatten()).collect())
                .collect(),
        })
        .collect();
    Some(ExpertMap {
        stat: stat.key(),
        experts,
        grids,
    })
}

impl Grid {
    /// Cells far from the part's median (below a quarter or above four
    /// times it), as `(layer, expert)`: dead or runaway experts.
    pub fn outliers(&self) -> Vec<(u32, usize)> {
        let mut values: Vec<f64> = self.cells.iter().flatten().flatten().copied().collect();
        if values.is_empty() {
            return Vec::new();
        }
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        let mut out = Vec::new();
        for (li, row) in self.cells.iter().enumerate() {
            for (e, v) in row.iter().enumerate() {
                if let Some(v) = v
                    && (*v < 0.25 * median || *v > 4.0 * median)
                {
                    out.push((self.layers[li], e));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_place_experts_and_routers() {
        assert_eq!(
            expert_of("model.layers.3.block_sparse_moe.experts.5.w1.weight"),
            Some((3, 5, "w1".into()))
        );
        assert_eq!(
            expert_of("model.layers.0.mlp.experts.12.down_proj.weight"),
            Some((0, 12, "down_proj".into()))
        );
        assert_eq!(expert_of("model.layers.0.mlp.up_proj.weight"), None);
        assert_eq!(router_of("model.layers.7.block_sparse_moe.gate.weight"), Some(7));
        assert_eq!(router_of("model.layers.7.mlp.gate_proj.weight"), None);
    }
}
