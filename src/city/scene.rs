//! The one city scene: everything the city derives from the current run,
//! computed once when its inputs change and read by drawing, picking, the
//! hidden-vector strips, the entities and every panel. Pure (no Bevy types):
//! `ingest` takes a pass's tensors as they arrive, `refilter` applies the
//! filters and the playhead.

use std::collections::BTreeMap;

use super::playback::Playback;
use super::view::{self, Cell, CityFilter, Edge, HeadFilter};
use crate::activations::RunState;

/// What the city shows of the current pass.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// The run and the tokens of the pass the numbers belong to.
    pub run: u64,
    pub tokens: Vec<u32>,
    /// Display text of each token.
    pub texts: Vec<String>,
    /// Residual norm of each token, per hidden state that has arrived.
    pub norms: BTreeMap<usize, Vec<f32>>,
    /// Each token's hidden vector, per hidden state (the strips draw them).
    pub rows: BTreeMap<usize, Vec<Vec<f32>>>,
    /// Every attention weight of at least [`view::MIN_EDGE`], per block.
    pub edges: BTreeMap<usize, Vec<Edge>>,
    /// Heads per block.
    pub heads: usize,
    /// Cells shown (after the playhead and the token step).
    pub cells: Vec<Cell>,
    /// Arcs drawn (heads combined, filtered, after the playhead).
    pub arcs: Vec<Edge>,
    /// The city window's attention heatmap: the block and head filter it is
    /// of, and its `[query][key]` weights.
    pub attention: Option<(usize, HeadFilter, Vec<Vec<f32>>)>,
    /// Bumped whenever `cells` or `arcs` change (drawing rebuilds then).
    pub generation: u64,
}

impl Scene {
    /// Takes what is new in `run`: a new run or pass starts over (true when it
    /// did); new hidden states and attention maps add norms, rows and edges.
    /// Returns (started over, anything added).
    pub fn ingest(&mut self, run: &RunState) -> (bool, bool) {
        let fresh = self.run != run.run || self.tokens != run.tokens;
        if fresh {
            *self = Scene {
                run: run.run,
                tokens: run.tokens.clone(),
                generation: self.generation + 1,
                ..Default::default()
            };
        }
        let mut added = fresh;
        if self.texts.len() != run.tokens.len() || self.texts.iter().zip(&run.texts).any(|(a, b)| a != b) {
            self.texts = (0..run.tokens.len())
                .map(|i| {
                    run.texts
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("#{}", run.tokens[i]))
                })
                .collect();
        }
        for (&floor, hidden) in &run.hidden {
            if self.norms.contains_key(&floor) {
                continue;
            }
            let Ok(norms) = view::row_norms(hidden) else { continue };
            let rows = hidden
                .to_dtype(candle_core::DType::F32)
                .and_then(|h| h.to_vec2::<f32>())
                .unwrap_or_default();
            self.norms.insert(floor, norms);
            self.rows.insert(floor, rows);
            added = true;
        }
        for (&layer, attn) in &run.attn {
            if self.edges.contains_key(&layer) {
                continue;
            }
            let Ok(edges) = view::edges_of(layer, attn, view::MIN_EDGE) else {
                continue;
            };
            self.heads = attn.dim(0).unwrap_or(1);
            self.edges.insert(layer, edges);
            added = true;
        }
        (fresh, added)
    }

    /// The highest hidden state that has arrived (the playhead climbs to it).
    pub fn top_floor(&self) -> usize {
        self.norms.keys().max().copied().unwrap_or(0)
    }

    /// Recomputes the shown cells and drawn arcs.
    pub fn refilter(&mut self, filter: &CityFilter, playback: &Playback, selected: Option<usize>) {
        self.cells = self
            .norms
            .iter()
            .filter(|(floor, _)| playback.shows_floor(**floor))
            .flat_map(|(&floor, norms)| {
                norms
                    .iter()
                    .enumerate()
                    .filter(|(token, _)| playback.shows_token(*token))
                    .map(move |(token, &norm)| Cell { token, floor, norm })
            })
            .collect();
        let candidates: Vec<Edge> = self
            .edges
            .iter()
            .filter(|(layer, _)| playback.shows_block(**layer) && filter.layer.is_none_or(|l| l == **layer))
            .flat_map(|(_, edges)| edges.iter())
            .filter(|e| playback.shows_token(e.from) && playback.shows_token(e.to))
            .copied()
            .collect();
        self.arcs = view::visible_arcs(&candidates, self.heads, filter, selected);
        self.generation += 1;
    }

    /// Computes the attention heatmap for `filter` when it is of another
    /// block or head than the one held, or not computed yet in this pass (a
    /// new pass starts without one).
    pub fn update_heatmap(&mut self, run: &RunState, filter: &CityFilter) {
        let layer = filter.layer.unwrap_or(0);
        let same = self
            .attention
            .as_ref()
            .is_some_and(|(l, h, _)| *l == layer && *h == filter.heads);
        if same {
            return;
        }
        self.attention = run
            .attn
            .get(&layer)
            .and_then(|a| view::attention_grid(a, filter.heads).ok())
            .map(|grid| (layer, filter.heads, grid));
    }

    /// Residual norms as `[token][hidden state]`, and each hidden state's
    /// (min, max) over the tokens (the norm heatmap scales each column to it).
    pub fn norm_grid(&self) -> (Vec<Vec<f32>>, Vec<(f32, f32)>) {
        let tokens = self.norms.values().map(Vec::len).max().unwrap_or(0);
        let grid = (0..tokens)
            .map(|t| self.norms.values().map(|f| f.get(t).copied().unwrap_or(0.0)).collect())
            .collect();
        let ranges = self
            .norms
            .values()
            .map(|f| {
                f.iter()
                    .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
            })
            .collect();
        (grid, ranges)
    }

    /// The text of token `t` (its id when the tokenizer has none).
    pub fn text(&self, t: usize) -> String {
        self.texts.get(t).cloned().unwrap_or_else(|| format!("#{t}"))
    }

    /// The shown cell of (`token`, `floor`).
    pub fn cell(&self, token: usize, floor: usize) -> Option<Cell> {
        self.cells
            .iter()
            .find(|c| c.token == token && c.floor == floor)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn run(tokens: usize) -> RunState {
        let mut run = RunState {
            run: 1,
            tokens: (0..tokens as u32).collect(),
            ..Default::default()
        };
        let hidden = Tensor::ones((tokens, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        run.hidden.insert(0, hidden.clone());
        run.hidden.insert(1, (hidden * 2.0).unwrap());
        // One head: every query reads every key equally (causal: up to itself).
        let mut probs = vec![vec![0.0f32; tokens]; tokens];
        for (q, row) in probs.iter_mut().enumerate() {
            for w in row.iter_mut().take(q + 1) {
                *w = 1.0 / (q + 1) as f32;
            }
        }
        let flat: Vec<f32> = probs.into_iter().flatten().collect();
        run.attn
            .insert(0, Tensor::from_vec(flat, (1, tokens, tokens), &Device::Cpu).unwrap());
        run
    }

    #[test]
    fn a_pass_is_ingested_once_and_filtered_by_the_playhead() {
        let mut scene = Scene::default();
        let r = run(4);
        assert_eq!(scene.ingest(&r), (true, true));
        assert_eq!(scene.ingest(&r), (false, false), "nothing new");
        assert_eq!(scene.norms[&1], vec![4.0; 4]);
        assert_eq!(scene.rows[&0].len(), 4);
        assert_eq!(scene.top_floor(), 1);
        let filter = CityFilter {
            threshold: 0.0,
            ..Default::default()
        };
        let all = Playback {
            position: 1.0,
            ..Default::default()
        };
        scene.refilter(&filter, &all, None);
        assert_eq!(scene.cells.len(), 8);
        // 4 tokens, causal, no self-arcs: 0+1+2+3 arcs.
        assert_eq!(scene.arcs.len(), 6);
        let first_two = Playback {
            tokens: Some(2),
            position: 0.0,
            ..Default::default()
        };
        scene.refilter(&filter, &first_two, None);
        assert_eq!(scene.cells.len(), 2, "floor 0 of two columns");
        assert!(scene.arcs.iter().all(|e| e.from < 2 && e.to < 2));
        let (grid, ranges) = scene.norm_grid();
        assert_eq!(grid, vec![vec![2.0, 4.0]; 4]);
        assert_eq!(ranges, vec![(2.0, 2.0), (4.0, 4.0)]);
        scene.update_heatmap(&r, &filter);
        assert_eq!(scene.attention.as_ref().map(|a| a.2[3][0]), Some(0.25));
        // A new pass starts over.
        assert_eq!(scene.ingest(&run(2)), (true, true));
        assert_eq!(scene.norms[&0].len(), 2);
    }
}
