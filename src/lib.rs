//! tensorcity: see transformer models. The architecture as a 3D trunk of tensor
//! cubes, and (as the viewer grows) live activations flowing through it.
//!
//! Data flow: model source -> [`arch::Architecture`] -> layout -> entities -> pixels.

pub mod arch;
pub mod cli;
