//! The command line: `tensorcity info` (and, as they land, `view`, `render`,
//! `capture`, `record`). Parsing lives here; `main.rs` only reports errors.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::arch::{self, Architecture, CubeScale, LoadOptions, ModelRef, group_digits, human};

#[derive(Debug, Parser)]
#[command(
    name = "tensorcity",
    version,
    about = "See transformer models: architecture trunks and live activations in 3D"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what is inside a model: totals, sizes, parameters by kind (headers only, no weights).
    Info(InfoArgs),
}

/// Where a model comes from; shared by every command that opens one.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// A .safetensors file, a model folder, a Hugging Face id (`gpt2`,
    /// `meta-llama/Llama-3.2-1B`) or a catalogue name. Omit for the embedded default model.
    pub model: Option<String>,
    /// Hub revision (branch, tag or commit).
    #[arg(long)]
    pub revision: Option<String>,
    /// Never touch the network: use the Hugging Face cache and the catalogue
    /// (also on with HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Use the built-in catalogue only (no hub lookup).
    #[arg(long)]
    pub catalogue: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the whole architecture as JSON.
    #[arg(long, conflicts_with = "list")]
    pub json: bool,
    /// Also print every tensor in model order with its cube size.
    #[arg(long, conflicts_with_all = ["json", "list"])]
    pub tensors: bool,
    /// Print the built-in catalogue.
    #[arg(long)]
    pub list: bool,
}

impl ModelArgs {
    pub fn model_ref(&self) -> ModelRef {
        self.model.as_deref().map_or(ModelRef::Embedded, ModelRef::parse)
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            revision: self.revision.clone(),
            offline: self.offline,
            catalogue_only: self.catalogue,
            #[cfg(not(target_arch = "wasm32"))]
            hub: Default::default(),
        }
    }

    /// Loads the model, printing its notices to stderr.
    pub fn load(&self) -> anyhow::Result<Architecture> {
        let arch = arch::load_model(&self.model_ref(), &self.load_options())?;
        for notice in &arch.notices {
            eprintln!("note: {notice}");
        }
        Ok(arch)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info(args),
    }
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.list {
        return write_catalogue(&mut out);
    }
    let arch = args.model.load()?;
    if args.json {
        serde_json::to_writer_pretty(&mut out, &arch.to_json()).context("writing JSON")?;
        writeln!(out)?;
        return Ok(());
    }
    write!(out, "{}", arch.summary().to_text())?;
    if args.tensors {
        write_tensors(&mut out, &arch)?;
    }
    Ok(())
}

fn write_catalogue(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "{:<40} {:<14} {:>16}  description", "id", "family", "parameters")?;
    for entry in arch::catalogue() {
        let arch = entry.architecture()?;
        writeln!(
            out,
            "{:<40} {:<14} {:>16}  {}",
            entry.id,
            arch.family.to_string(),
            format!("{} ({})", human(arch.total_params()), arch.num_layers()),
            entry.description
        )?;
    }
    writeln!(
        out,
        "(parameters with layer count; any other Hugging Face id or local path works too)"
    )?;
    Ok(())
}

fn write_tensors(out: &mut impl Write, arch: &Architecture) -> anyhow::Result<()> {
    let order = arch.model_order();
    let params: Vec<u64> = order.iter().map(|&i| arch.tensors[i].params).collect();
    let sizes = CubeScale::Relative.sizes(&params);
    writeln!(
        out,
        "\n  {:>5}  {:<60} {:<22} {:<20} {:>14} {:>5}",
        "layer", "name", "shape", "kind", "params", "size"
    )?;
    for (&i, size) in order.iter().zip(sizes) {
        let t = &arch.tensors[i];
        let layer = t.layer.map_or("-".to_string(), |l| l.to_string());
        let kind = if t.buffer { "buffer" } else { t.kind.label() };
        writeln!(
            out,
            "  {:>5}  {:<60} {:<22} {:<20} {:>14} {:>5.2}",
            layer,
            t.name,
            format!("{:?}", t.shape),
            kind,
            group_digits(t.params),
            size
        )?;
    }
    Ok(())
}
