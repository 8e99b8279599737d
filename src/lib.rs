//! tensorcity: see transformer models. The architecture as a 3D trunk of tensor
//! cubes that you can fly through.
//!
//! Data flow: model source -> [`arch::Architecture`] -> [`layout::Layout`]
//! (positions, sizes) -> entities (`Layer`, `Tensor`) -> instance buffer -> pixels.
//!
//! The app is one plugin per concern, ordered each frame by `AppSystems`.
//!
//! Features: `app` (default) is the viewer, renderer, recorder and command line.
//! Without it the crate is the core that reads outside bytes and runs models, with
//! no Bevy: `arch` (model formats), `inference`, `engine` (the stream protocol),
//! `weights`, `layout`, the frame-script, camera-path and page-URL parsers.

#[cfg(feature = "app")]
pub mod activations;
#[cfg(feature = "app")]
mod app;
pub mod arch;
#[cfg(feature = "app")]
pub mod camera;
#[cfg(feature = "app")]
pub mod city;
#[cfg(all(not(target_arch = "wasm32"), feature = "app"))]
pub mod cli;
pub mod engine;
#[cfg(all(not(target_arch = "wasm32"), feature = "app"))]
pub mod headless;
pub mod inference;
pub mod layout;
#[cfg(feature = "app")]
pub mod lod;
#[cfg(feature = "app")]
pub mod model;
#[cfg(all(not(target_arch = "wasm32"), feature = "app"))]
pub mod offscreen;
#[cfg(not(target_arch = "wasm32"))]
pub mod output;
pub mod page_url;
#[cfg(feature = "app")]
pub mod pick;
#[cfg(not(target_arch = "wasm32"))]
pub mod record;
#[cfg(feature = "app")]
pub mod render;
#[cfg(not(target_arch = "wasm32"))]
pub mod script;
#[cfg(feature = "app")]
pub mod spawn;
#[cfg(feature = "app")]
pub mod ui;
#[cfg(feature = "app")]
pub mod view;
#[cfg(feature = "app")]
pub mod viewer;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
pub mod web;
#[cfg(feature = "app")]
pub mod weight_stats;
pub mod weights;
#[cfg(all(not(target_arch = "wasm32"), feature = "app"))]
pub mod zoom;
#[cfg(feature = "app")]
pub use app::*;
