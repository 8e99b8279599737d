//! Inference stage: the current model's weight statistics, computed on a task
//! the first time the trunk is coloured by a statistic (they read every
//! weight; see `weights`), and its difference from the checkpoint of
//! `view A --diff B` when coloured by that; both kept until another model is
//! opened. Render colours the cubes from them; the panels show the colour bar
//! and the tooltip the hovered tensor's numbers and histogram.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, futures_lite::future};

use crate::AppSystems;
use crate::arch::ModelRef;
use crate::view::ViewSettings;
use crate::weights::color::ColorBy;
use crate::weights::diff::TensorDiff;
use crate::weights::stats::TensorStats;

/// Statistics by tensor name.
pub type StatsByName = Arc<HashMap<String, TensorStats>>;

/// The checkpoint B the current model is compared with (`view A --diff B`).
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct DiffTarget(pub ModelRef);

/// The current model's difference from the [`DiffTarget`], by tensor name;
/// the names only in A, only in B or of another shape.
#[derive(Debug, Default)]
pub struct DiffByName {
    pub tensors: HashMap<String, TensorDiff>,
    pub unmatched: usize,
}

#[derive(Resource, Default)]
pub enum WeightDiff {
    #[default]
    Idle,
    Computing {
        model: ModelRef,
        task: Task<Result<Arc<DiffByName>, String>>,
    },
    Ready {
        model: ModelRef,
        diff: Arc<DiffByName>,
    },
    Failed {
        model: ModelRef,
        message: String,
    },
}

impl WeightDiff {
    fn model(&self) -> Option<&ModelRef> {
        match self {
            WeightDiff::Idle => None,
            WeightDiff::Computing { model, .. }
            | WeightDiff::Ready { model, .. }
            | WeightDiff::Failed { model, .. } => Some(model),
        }
    }

    pub fn ready(&self) -> Option<&Arc<DiffByName>> {
        match self {
            WeightDiff::Ready { diff, .. } => Some(diff),
            _ => None,
        }
    }
}

#[derive(Resource, Default)]
pub enum WeightStats {
    /// Not asked for yet (the trunk is coloured by kind).
    #[default]
    Idle,
    Computing {
        model: ModelRef,
        task: Task<Result<(StatsByName, Routers), String>>,
    },
    Ready {
        model: ModelRef,
        stats: StatsByName,
        /// Each MoE router's per-expert (per-row) statistics, by layer.
        routers: Routers,
    },
    Failed {
        model: ModelRef,
        message: String,
    },
}

/// Router rows' statistics by layer (the expert map's router grid).
pub type Routers = Arc<std::collections::BTreeMap<u32, Vec<TensorStats>>>;

impl WeightStats {
    fn model(&self) -> Option<&ModelRef> {
        match self {
            WeightStats::Idle => None,
            WeightStats::Computing { model, .. }
            | WeightStats::Ready { model, .. }
            | WeightStats::Failed { model, .. } => Some(model),
        }
    }

    pub fn ready(&self) -> Option<&StatsByName> {
        match self {
            WeightStats::Ready { stats, .. } => Some(stats),
            _ => None,
        }
    }

    pub fn routers(&self) -> Option<&Routers> {
        match self {
            WeightStats::Ready { routers, .. } => Some(routers),
            _ => None,
        }
    }
}

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<WeightStats>()
        .init_resource::<WeightDiff>()
        .add_systems(
            Update,
            (compute_stats, compute_diff).chain().in_set(AppSystems::Inference),
        );
}

#[cfg(not(target_arch = "wasm32"))]
fn statistics(model: ModelRef) -> Result<(StatsByName, Routers), String> {
    use crate::weights::moe::router_of;
    let tensors = crate::weights::source::open_model(&model).map_err(|e| e.to_string())?;
    let stats = crate::weights::statistics(&tensors);
    let routers = tensors
        .iter()
        .filter_map(|t| Some((router_of(&t.name)?, crate::weights::row_statistics(t).ok()?)))
        .collect();
    Ok((
        Arc::new(stats.into_iter().map(|s| (s.name.clone(), s)).collect()),
        Arc::new(routers),
    ))
}

#[cfg(not(target_arch = "wasm32"))]
fn difference(a: ModelRef, b: ModelRef) -> Result<Arc<DiffByName>, String> {
    use crate::weights::source::open_model;
    let report = crate::weights::diff::diff(
        &open_model(&a).map_err(|e| e.to_string())?,
        &open_model(&b).map_err(|e| format!("the checkpoint to compare with: {e}"))?,
    );
    let unmatched = report.only_in_a.len() + report.only_in_b.len() + report.shape_mismatch.len();
    Ok(Arc::new(DiffByName {
        tensors: report.tensors.into_iter().map(|d| (d.name.clone(), d)).collect(),
        unmatched,
    }))
}

#[cfg(target_arch = "wasm32")]
fn difference(_: ModelRef, _: ModelRef) -> Result<Arc<DiffByName>, String> {
    Err("the browser reads only a model's headers, not its weights; use the desktop app (`tensorcity diff`)".into())
}

#[cfg(target_arch = "wasm32")]
fn statistics(_: ModelRef) -> Result<(StatsByName, Routers), String> {
    Err("the browser reads only a model's headers, not its weights; use the desktop app (`tensorcity stats`)".into())
}

fn compute_stats(
    settings: Res<ViewSettings>,
    current: Option<Res<crate::model::CurrentModel>>,
    mut stats: ResMut<WeightStats>,
) {
    let Some(current) = current else { return };
    let wanted = matches!(settings.color, ColorBy::Stat(_));
    let stale = stats.model().is_some_and(|m| *m != current.request);
    if stale {
        *stats = WeightStats::Idle;
    }
    if let WeightStats::Computing { model, task } = &mut *stats {
        if let Some(result) = block_on(future::poll_once(task)) {
            let model = model.clone();
            *stats = match result {
                Ok((stats, routers)) => WeightStats::Ready { model, stats, routers },
                Err(message) => WeightStats::Failed { model, message },
            };
        }
        return;
    }
    if wanted && matches!(*stats, WeightStats::Idle) {
        let model = current.request.clone();
        if current.arch.source == "catalogue" {
            // Drawn from the built-in catalogue: shapes only, nowhere to read values from.
            *stats = WeightStats::Failed {
                model,
                message: format!(
                    "`{}` is drawn from the built-in catalogue (shapes, no values): open it with the Hub reachable to sample its weights, or download it and open the folder",
                    current.arch.name
                ),
            };
            return;
        }
        let m = model.clone();
        let task = AsyncComputeTaskPool::get().spawn(async move { statistics(m) });
        *stats = WeightStats::Computing { model, task };
    }
}

fn compute_diff(
    settings: Res<ViewSettings>,
    current: Option<Res<crate::model::CurrentModel>>,
    target: Option<Res<DiffTarget>>,
    mut diff: ResMut<WeightDiff>,
) {
    let (Some(current), Some(target)) = (current, target) else {
        return;
    };
    if diff.model().is_some_and(|m| *m != current.request) {
        *diff = WeightDiff::Idle;
    }
    if let WeightDiff::Computing { model, task } = &mut *diff {
        if let Some(result) = block_on(future::poll_once(task)) {
            let model = model.clone();
            *diff = match result {
                Ok(diff) => WeightDiff::Ready { model, diff },
                Err(message) => WeightDiff::Failed { model, message },
            };
        }
        return;
    }
    if settings.color == ColorBy::Delta && matches!(*diff, WeightDiff::Idle) {
        let model = current.request.clone();
        let (a, b) = (model.clone(), target.0.clone());
        let task = AsyncComputeTaskPool::get().spawn(async move { difference(a, b) });
        *diff = WeightDiff::Computing { model, task };
    }
}
