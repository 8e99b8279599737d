//! Inference stage: the current model's weight statistics, computed on a task
//! the first time the trunk is coloured by a statistic (they read every
//! weight; see `weights`), kept until another model is opened. Render colours
//! the cubes from them; the panels show the colour bar and the tooltip the
//! hovered tensor's numbers and histogram.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, futures_lite::future};

use crate::AppSystems;
use crate::arch::ModelRef;
use crate::view::ViewSettings;
use crate::weights::color::ColorBy;
use crate::weights::stats::TensorStats;

/// Statistics by tensor name.
pub type StatsByName = Arc<HashMap<String, TensorStats>>;

#[derive(Resource, Default)]
pub enum WeightStats {
    /// Not asked for yet (the trunk is coloured by kind).
    #[default]
    Idle,
    Computing {
        model: ModelRef,
        task: Task<Result<StatsByName, String>>,
    },
    Ready {
        model: ModelRef,
        stats: StatsByName,
    },
    Failed {
        model: ModelRef,
        message: String,
    },
}

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
}

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<WeightStats>()
        .add_systems(Update, compute_stats.in_set(AppSystems::Inference));
}

#[cfg(not(target_arch = "wasm32"))]
fn statistics(model: ModelRef) -> Result<StatsByName, String> {
    let tensors = crate::weights::source::open_model(&model).map_err(|e| e.to_string())?;
    let stats = crate::weights::statistics(&tensors);
    Ok(Arc::new(stats.into_iter().map(|s| (s.name.clone(), s)).collect()))
}

#[cfg(target_arch = "wasm32")]
fn statistics(_: ModelRef) -> Result<StatsByName, String> {
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
                Ok(stats) => WeightStats::Ready { model, stats },
                Err(message) => WeightStats::Failed { model, message },
            };
        }
        return;
    }
    if wanted && matches!(*stats, WeightStats::Idle) {
        let model = current.request.clone();
        let m = model.clone();
        let task = AsyncComputeTaskPool::get().spawn(async move { statistics(m) });
        *stats = WeightStats::Computing { model, task };
    }
}
