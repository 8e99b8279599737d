//! `tensorcity record`: a deterministic video of a model, rendered offscreen
//! (no window, no display server) on a fixed virtual time step — one frame per
//! step whatever the machine's speed — so the clip plays at true speed and two
//! runs give the same frames. The camera follows a [`path::CameraPath`]; with
//! a prompt the neural city's animation plays on the same clock.

#[cfg(feature = "app")]
pub mod encode;
pub mod keyframes;
#[cfg(feature = "app")]
pub mod live;
#[cfg(feature = "app")]
pub mod overlay;
#[cfg(feature = "app")]
pub mod path;
#[cfg(feature = "app")]
mod run;
#[cfg(feature = "app")]
pub use run::*;
