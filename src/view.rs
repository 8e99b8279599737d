//! How the scene is drawn: [`ViewSettings`] (arrangement, cube scale, hidden
//! kinds, level of detail). The panels, frame scripts, camera paths and the
//! command line change it; the layout, spawning, level of detail, drawing,
//! picking and the city read it.

use std::collections::HashSet;

use bevy::prelude::*;

use crate::arch::{CubeScale, TensorKind};
use crate::layout::LayoutKind;

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<ViewSettings>();
}

/// How the model is drawn.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ViewSettings {
    /// The arrangement (default `trunk`).
    pub layout: LayoutKind,
    /// Cube sizes relative to this model or on the absolute scale (default relative).
    pub scale: CubeScale,
    /// Kinds hidden from the scene (legend toggles; default none).
    pub hidden_kinds: HashSet<TensorKind>,
    /// Collapse far layers into blocks (default on).
    pub lod: bool,
    /// Cube colours: the component kind (default) or a weight statistic.
    pub color: crate::weights::color::ColorBy,
    /// Light: HDR, bloom and fog (default on), or flat exact colours (`--flat`).
    pub glow: bool,
}

impl Default for ViewSettings {
    fn default() -> Self {
        ViewSettings {
            layout: LayoutKind::Trunk,
            scale: CubeScale::Relative,
            hidden_kinds: HashSet::new(),
            lod: true,
            color: Default::default(),
            glow: true,
        }
    }
}
