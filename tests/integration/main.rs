//! The one integration-test crate (one binary to link): modules per area.

mod arch_fixtures;
mod bad_inputs;
mod cli;
mod ecs;
mod engine;
mod fuzz_corpus;
mod hub;
mod inference;
mod local_sources;
mod record;
mod rendering;
mod sampled_hub;
mod support;
mod web;
mod weights;
