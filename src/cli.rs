//! The command line: `view` (the default), `info`, `render`, `record` and
//! `capture`. Parsing lives here and becomes each command's job struct
//! (`viewer::ViewJob`, `headless::RenderJob`, `record::RecordJob`); `main.rs`
//! only reports errors.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::arch::{self, Architecture, CubeScale, LoadOptions, ModelRef, group_digits, human};
use crate::headless::{CameraSpec, RenderJob};
use crate::layout::LayoutKind;
use crate::offscreen::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "tensorcity",
    version,
    about = "See transformer models: architecture trunks and live activations in 3D"
)]
pub struct Cli {
    /// Without a command: open the viewer on the embedded default model.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Also print Bevy's and wgpu's INFO log lines (adapter, features).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the 3D viewer: the model as a trunk of cubes you can fly through.
    View(ViewArgs),
    /// Draw one frame offscreen (no window or display needed) into a PNG.
    Render(RenderArgs),
    /// Record a video (MP4, GIF or PNG frames) offscreen on a fixed time step:
    /// an orbit, a flythrough or a keyframed camera path, optionally with a prompt's activations.
    Record(RecordArgs),
    /// Print what is inside a model: totals, sizes, parameters by kind (headers only, no weights).
    Info(InfoArgs),
    /// Run a local model on a prompt and save every activation (hidden states,
    /// attention probabilities, logits) as safetensors.
    Capture(CaptureArgs),
    /// Statistics of every weight tensor: RMS, mean |x|, max |x|, std,
    /// sparsity, outliers, NaN/Inf, a 64-bin histogram (reads every weight).
    Stats(StatsArgs),
    /// Compare two checkpoints tensor by tensor (a finetune against its base,
    /// a GGUF against its safetensors original).
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A .safetensors or .gguf file, a model folder, or a Hugging Face id (its
    /// values sampled by Range requests). Default: the embedded model.
    pub model: Option<String>,
    /// Read PCT percent of each tensor, in evenly spread chunks, and report the
    /// estimates' standard errors. Default for a Hugging Face id: 1; local
    /// files are read whole unless this is given.
    #[arg(long, value_name = "PCT", value_parser = parse_percent, conflicts_with = "full")]
    pub sample: Option<f64>,
    /// For a Hugging Face id: download every byte of its safetensors shards
    /// (into the Hugging Face cache, with a progress bar) and read them whole.
    #[arg(long)]
    pub full: bool,
    /// Hub revision (branch, tag or commit) for an id.
    #[arg(long)]
    pub revision: Option<String>,
    /// Write JSON (`tensors[]` with name, rms, mean_abs, max_abs, std, sparsity,
    /// outliers, histogram, sampled_fraction, …) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// For a mixture-of-experts model: the layers x experts map of a statistic
    /// per expert weight and the router (dead or outlier experts marked).
    #[arg(long)]
    pub moe: bool,
    /// The statistic of the --moe map: rms, mean-abs, max-abs, std, sparsity, outliers.
    #[arg(long, default_value = "rms", value_parser = parse_stat)]
    pub stat: crate::weights::color::Stat,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p / 100.0),
        _ => Err(format!("`{s}`: a percentage above 0 and at most 100, e.g. 1 or 0.5")),
    }
}

fn parse_stat(s: &str) -> Result<crate::weights::color::Stat, String> {
    crate::weights::color::Stat::parse(s)
        .ok_or_else(|| format!("`{s}`: expected rms, mean-abs, max-abs, std, sparsity or outliers"))
}

/// What `diff` sorts by and shows first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffMetric {
    /// ‖B − A‖ / ‖A‖.
    Rms,
    /// log10 of the largest |B − A|.
    AbsLog,
    /// The fraction of elements that changed at all.
    Exact,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub a: std::path::PathBuf,
    pub b: std::path::PathBuf,
    #[arg(long, value_enum, default_value_t = DiffMetric::Rms)]
    pub metric: DiffMetric,
    /// Write JSON (`tensors[]` with name, rel_delta, max_abs_delta,
    /// changed_fraction; `only_in_a`, `only_in_b`, `shape_mismatch`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "token_ids"])))]
pub struct CaptureArgs {
    /// A model folder with config.json, safetensors weights and (for --prompt)
    /// tokenizer.json, or a Hugging Face id (downloaded, weights included, into
    /// the Hugging Face cache). Default: the embedded model.
    pub model: Option<String>,
    /// Hub revision (branch, tag or commit) for an id.
    #[arg(long)]
    pub revision: Option<String>,
    /// Text to run, tokenized with the model's tokenizer.json (special tokens added as transformers does).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Token ids to run instead of a prompt, e.g. 464,2068,7586.
    #[arg(long, value_delimiter = ',')]
    pub token_ids: Option<Vec<u32>>,
    /// Generate this many tokens after the input (with the key/value cache);
    /// the file then holds the whole sequence, laid out as one forward pass over it.
    #[arg(long, default_value_t = 0)]
    pub generate: usize,
    /// Sample from the K most likely tokens instead of taking the best (greedy).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sampling temperature (with --top-k; default 1).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Seed of the sampler (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run on an engine streaming over the activation-stream protocol
    /// (`ws://HOST:PORT`) instead of the built-in one; `--prompt` is then
    /// tokenized by the engine.
    #[arg(long, conflicts_with = "model", value_name = "URL")]
    pub engine: Option<String>,
    /// With --engine: fail when a run sends nothing for this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub stall_timeout: u64,
    /// Where to write the capture.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// `--layout` (the layout module itself knows nothing of clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// trunkplot's single column, model order bottom to top.
    Trunk,
    /// One floor per layer, tensors on a ring; experts on a grid.
    Floors,
    /// The trunk with the neural city beside it (after a prompt).
    City,
}

impl From<LayoutArg> for LayoutKind {
    fn from(arg: LayoutArg) -> LayoutKind {
        match arg {
            LayoutArg::Trunk => LayoutKind::Trunk,
            LayoutArg::Floors => LayoutKind::Floors,
            LayoutArg::City => LayoutKind::City,
        }
    }
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Arrangement of the cubes.
    #[arg(long, value_enum, default_value_t = LayoutArg::Trunk)]
    pub layout: LayoutArg,
    /// Window size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1600x900", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Run a frame script (one command per line: wait, orbit, zoom, focus, layout,
    /// hide, screenshot, exit) — for demos and tests; see README.
    #[arg(long)]
    pub script: Option<std::path::PathBuf>,
    /// Colour the trunk by each tensor's difference from this checkpoint
    /// (a .safetensors/.gguf file or folder): ‖B − A‖ / ‖A‖, matched by name.
    #[arg(long, value_name = "B")]
    pub diff: Option<std::path::PathBuf>,
    /// Flat, exact colours: no glow (HDR, bloom) and no fog. (The default on
    /// a software renderer, where the glow about doubles the frame time.)
    #[arg(long, conflicts_with = "glow")]
    pub flat: bool,
    /// Glow (HDR, bloom, fog) even on a software renderer.
    #[arg(long)]
    pub glow: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where to write the PNG.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Camera: iso, front, side, top, base, or YAW,PITCH[,ZOOM[,HEIGHT]] in degrees.
    #[arg(long, default_value = "iso")]
    pub camera: CameraSpec,
    #[command(flatten)]
    pub picture: PictureArgs,
    /// The city part way up, as it is mid-run: the playhead in hidden states
    /// (2.5 = a pulse half way from hidden state 2 to 3); default the finished pass.
    #[arg(long, value_name = "FLOORS", requires = "prompt")]
    pub at: Option<f32>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// clip.mp4 (H.264 through ffmpeg), clip.gif, or a folder for PNG frames (frames/).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Length of the clip in seconds.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub duration: f32,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Frame size, WIDTHxHEIGHT (up to the GPU's texture limit).
    #[arg(long, default_value = "1920x1080", value_parser = crate::offscreen::parse_any_size)]
    pub size: (u32, u32),
    /// orbit (one turn around the model), flythrough (embeddings to head), or a keyframe file PATH.ron.
    #[arg(long, default_value = "orbit")]
    pub camera: crate::record::CameraChoice,
    #[command(flatten)]
    pub picture: PictureArgs,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a still (`render`) and a clip (`record`) draw besides the model and the camera.
#[derive(Debug, Args)]
pub struct PictureArgs {
    /// Run this prompt and show its neural city (a clip plays it; a still shows the finished pass, or --at).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Arrangement of the cubes (default: city with --prompt, else trunk).
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Size cubes on a fixed log scale (compare models) instead of per model.
    #[arg(long)]
    pub absolute: bool,
    /// Attention beams: the mean over heads, the strongest head (max), or head N alone in its own colour.
    #[arg(long, default_value = "mean", requires = "prompt")]
    pub heads: crate::script::Heads,
    /// Select token N (from 0): its column lit, the attention into it, and the
    /// camera centred on its column (with --camera's zoom, a close-up).
    #[arg(long, value_name = "N", requires = "prompt")]
    pub select: Option<usize>,
    /// Flat, exact colours: no glow (HDR, bloom) and no fog.
    #[arg(long)]
    pub flat: bool,
    /// A title across the lower third (a clip shows it for the first seconds).
    #[arg(long)]
    pub title: Option<String>,
    /// The scene alone: no model name, prompt or legend painted over it.
    #[arg(long)]
    pub clean: bool,
}

impl PictureArgs {
    fn picture(self) -> crate::headless::Picture {
        crate::headless::Picture {
            layout: scene_layout(self.layout, self.prompt.as_deref()),
            scale: if self.absolute {
                CubeScale::Absolute
            } else {
                CubeScale::Relative
            },
            prompt: self.prompt,
            heads: self.heads.into(),
            select: self.select,
            glow: !self.flat,
            title: self.title,
            clean: self.clean,
        }
    }
}

/// The layout a still or a clip draws: the one asked for, else the city when
/// a prompt runs (that is what a prompt is for), else the trunk.
fn scene_layout(asked: Option<LayoutArg>, prompt: Option<&str>) -> LayoutKind {
    match (asked, prompt) {
        (Some(layout), _) => layout.into(),
        (None, Some(_)) => LayoutKind::City,
        (None, None) => LayoutKind::Trunk,
    }
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
    /// Connect to an engine streaming over the activation-stream protocol
    /// (`ws://HOST:PORT`, e.g. `python -m tensorcity_stream serve gpt2`): the
    /// architecture comes from its handshake and prompts run there.
    #[arg(long, conflicts_with = "model", value_name = "URL")]
    pub engine: Option<String>,
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
        match (&self.engine, &self.model) {
            (Some(url), _) => ModelRef::Engine(url.clone()),
            (None, model) => model.as_deref().map_or(ModelRef::Embedded, ModelRef::parse),
        }
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
        let arch = crate::model::load_architecture(&self.model_ref(), &self.load_options())?;
        for notice in &arch.notices {
            eprintln!("note: {notice}");
        }
        Ok(arch)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    crate::set_verbose(cli.verbose);
    match cli.command {
        None => crate::viewer::run(crate::viewer::ViewJob {
            model: ModelRef::Embedded,
            options: LoadOptions::default(),
            layout: LayoutKind::Trunk,
            size: (1600, 900),
            script: None,
            diff: None,
            glow: None,
        }),
        Some(Command::View(args)) => crate::viewer::run(crate::viewer::ViewJob {
            model: args.model.model_ref(),
            options: args.model.load_options(),
            layout: args.layout.into(),
            size: args.size,
            script: args.script,
            diff: args.diff.map(ModelRef::Path),
            glow: match (args.glow, args.flat) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        }),
        Some(Command::Render(args)) => crate::headless::render(RenderJob {
            model: args.model.model_ref(),
            options: args.model.load_options(),
            out: args.out,
            size: args.size,
            camera: args.camera,
            picture: args.picture.picture(),
            at: args.at,
        }),
        Some(Command::Record(args)) => crate::record::record(crate::record::RecordJob {
            model: args.model.model_ref(),
            options: args.model.load_options(),
            out: args.out,
            duration: args.duration,
            fps: args.fps,
            size: args.size,
            camera: args.camera,
            picture: args.picture.picture(),
            quiet: args.quiet,
        })
        .map(|_| ()),
        Some(Command::Info(args)) => info(args),
        Some(Command::Capture(args)) => capture(args),
        Some(Command::Stats(args)) => stats(args),
        Some(Command::Diff(args)) => diff(args),
    }
}

/// Writes a command's whole output; a closed pipe (`| head`) ends it quietly.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A progress bar on stderr for reading a Hub model's values (hidden for local files and pipes).
fn read_bar(tensors: &[crate::weights::source::Tensor], total: u64) -> indicatif::ProgressBar {
    if !tensors.iter().any(|t| t.is_remote()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "reading {bytes}/{total_bytes} of the weights by Range requests {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// hf-hub's download events as a progress bar over every file's bytes.
struct DownloadBar {
    bar: indicatif::ProgressBar,
    files: std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>,
}

impl hf_hub::progress::ProgressHandler for DownloadBar {
    fn on_progress(&self, event: &hf_hub::progress::ProgressEvent) {
        use hf_hub::progress::{DownloadEvent, ProgressEvent};
        let ProgressEvent::Download(DownloadEvent::Progress { files }) = event else {
            return;
        };
        let Ok(mut known) = self.files.lock() else { return };
        for f in files {
            known.insert(f.filename.clone(), (f.bytes_completed, f.total_bytes));
        }
        let (done, total) = known.values().fold((0, 0), |(d, t), &(a, b)| (d + a, t + b));
        self.bar.set_length(total.max(done));
        self.bar.set_position(done);
    }
}

fn download_bar(id: &str) -> hf_hub::progress::Progress {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "downloading {id} {{bytes}}/{{total_bytes}} {{wide_bar}} {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    DownloadBar {
        bar,
        files: Default::default(),
    }
    .into()
}

fn stats(args: StatsArgs) -> anyhow::Result<()> {
    use std::fmt::Write;
    let model = args.model.as_deref().map_or(ModelRef::Embedded, ModelRef::parse);
    let name = args
        .model
        .clone()
        .unwrap_or_else(|| crate::arch::EMBEDDED_NAME.to_string());
    let tensors = match &model {
        ModelRef::Id(id) => {
            let hub = crate::arch::hub::HubOptions::from_env(args.revision.clone(), false);
            if args.full {
                let weights = crate::arch::hub::RemoteWeights::open(id, &hub)?;
                let folder = weights.download(download_bar(id))?;
                crate::weights::source::open(&folder)?
            } else {
                crate::weights::source::open_hub(id, &hub)?
            }
        }
        other => {
            if args.full {
                anyhow::bail!("{name}: --full is for Hugging Face ids; local files are always read whole");
            }
            crate::weights::source::open_model(other)?
        }
    };
    let sample = args.sample;
    let total = crate::weights::planned_bytes(&tensors, sample);
    let bar = read_bar(&tensors, total);
    let stats = crate::weights::statistics_with(&tensors, sample, &|n| bar.inc(n));
    bar.finish_and_clear();
    if args.moe {
        let map = crate::weights::expert_map(&tensors, &stats, args.stat)
            .ok_or_else(|| anyhow::anyhow!("{name}: not a mixture-of-experts model (no `experts.N` tensors)"))?;
        if args.json {
            let doc = serde_json::json!({ "model": name, "moe": map });
            return emit(&(serde_json::to_string_pretty(&doc)? + "\n"));
        }
        return emit(&moe_table(&map));
    }
    if args.json {
        let doc = serde_json::json!({ "model": name, "tensors": stats });
        return emit(&(serde_json::to_string_pretty(&doc)? + "\n"));
    }
    let mut text = String::new();
    writeln!(
        text,
        "{:<56} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "tensor", "rms", "mean |x|", "max |x|", "std", "sparsity", "outliers"
    )?;
    for s in &stats {
        match &s.missing {
            Some(why) => writeln!(text, "{:<56} not computed: {why}", s.name)?,
            None => writeln!(
                text,
                "{:<56} {:>10.4e} {:>10.4e} {:>10.4e} {:>10.4e} {:>8.3}% {:>8.4}%{}",
                s.name,
                s.rms,
                s.mean_abs,
                s.max_abs,
                s.std,
                100.0 * s.sparsity,
                100.0 * s.outliers,
                match (s.nan + s.inf, s.standard_error) {
                    (0, None) => String::new(),
                    (0, Some(se)) => format!("  rms ±{:.1e} ({:.2}% read)", se.rms, 100.0 * s.sampled_fraction),
                    _ => format!("  {} NaN, {} Inf", s.nan, s.inf),
                }
            )?,
        }
    }
    let sampled = stats.iter().filter(|s| s.standard_error.is_some()).count();
    if sampled > 0 {
        let read: u64 = total;
        writeln!(
            text,
            "{sampled} of {} tensors sampled ({:.1} MB read; ± is one standard error; --full reads everything)",
            stats.len(),
            read as f64 / 1e6
        )?;
    }
    emit(&text)
}

/// The expert map as text: one grid per part, `*` on far-off cells.
fn moe_table(map: &crate::weights::moe::ExpertMap) -> String {
    use std::fmt::Write;
    let mut text = format!(
        "{} per expert ({} experts); * = under a quarter or over four times the part's median\n",
        map.stat, map.experts
    );
    for grid in &map.grids {
        let far = grid.outliers();
        let _ = write!(text, "\n{:<8}", grid.part);
        for e in 0..map.experts {
            let _ = write!(text, "{:>11}", format!("e{e}"));
        }
        text.push('\n');
        for (li, row) in grid.cells.iter().enumerate() {
            let layer = grid.layers[li];
            let _ = write!(text, "{:<8}", format!("layer {layer}"));
            for (e, v) in row.iter().enumerate() {
                let mark = if far.contains(&(layer, e)) { "*" } else { " " };
                let cell = v.map_or("-".to_string(), |v| format!("{v:.3e}{mark}"));
                let _ = write!(text, "{cell:>11}");
            }
            text.push('\n');
        }
    }
    text
}

fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let a = crate::weights::source::open(&args.a)?;
    let b = crate::weights::source::open(&args.b)?;
    let mut report = crate::weights::diff::diff(&a, &b);
    let key = |d: &crate::weights::diff::TensorDiff| match args.metric {
        DiffMetric::Rms => d.rel_delta,
        DiffMetric::AbsLog => d.max_abs_delta.log10(),
        DiffMetric::Exact => d.changed_fraction,
    };
    report
        .tensors
        .sort_by(|x, y| key(y).total_cmp(&key(x)).then_with(|| x.name.cmp(&y.name)));
    if args.json {
        return emit(&(serde_json::to_string_pretty(&report)? + "\n"));
    }
    use std::fmt::Write;
    let mut text = String::new();
    let changed = report.tensors.iter().filter(|d| d.changed_fraction > 0.0).count();
    writeln!(
        text,
        "{} tensors compared, {changed} changed; {} only in A, {} only in B, {} with different shapes",
        report.tensors.len(),
        report.only_in_a.len(),
        report.only_in_b.len(),
        report.shape_mismatch.len()
    )?;
    writeln!(
        text,
        "{:<56} {:>12} {:>12} {:>9}",
        "tensor", "‖B−A‖/‖A‖", "max |B−A|", "changed"
    )?;
    for d in &report.tensors {
        match &d.missing {
            Some(why) => writeln!(text, "{:<56} not compared: {why}", d.name)?,
            None => writeln!(
                text,
                "{:<56} {:>12.4e} {:>12.4e} {:>8.3}%",
                d.name,
                d.rel_delta,
                d.max_abs_delta,
                100.0 * d.changed_fraction
            )?,
        }
    }
    for name in &report.only_in_a {
        writeln!(text, "only in A: {name}")?;
    }
    for name in &report.only_in_b {
        writeln!(text, "only in B: {name}")?;
    }
    for m in &report.shape_mismatch {
        writeln!(text, "different shapes: {} {:?} vs {:?}", m.name, m.a, m.b)?;
    }
    emit(&text)
}

fn capture(args: CaptureArgs) -> anyhow::Result<()> {
    use crate::inference::ModelFiles;
    crate::offscreen::check_output(&args.out, &["safetensors"])?;
    let decoding = decoding(&args)?;
    if let Some(url) = &args.engine {
        let request = crate::inference::stream::RunRequest {
            tokens: args.token_ids.clone().unwrap_or_default(),
            new_tokens: args.generate,
            decoding,
            text: args.token_ids.is_none().then(|| args.prompt.clone()).flatten(),
        };
        let stall = std::time::Duration::from_secs(args.stall_timeout.max(1));
        let (capture, _, hello) = crate::engine::capture(url, request, stall)?;
        return write_capture(&capture, &args.out, &format!(" from {}", hello.model.name));
    }
    let model_ref = args.model.as_deref().map_or(ModelRef::Embedded, ModelRef::parse);
    let files = match &model_ref {
        #[cfg(not(target_arch = "wasm32"))]
        ModelRef::Id(id) => {
            let opts = crate::arch::hub::HubOptions::from_env(args.revision.clone(), false);
            ModelFiles::from_dir(&crate::arch::hub::download_model(id, &opts)?)?
        }
        ModelRef::Path(p) if !p.exists() => anyhow::bail!("{}: no such file or folder", p.display()),
        other => ModelFiles::open(other)?,
    };
    let tokens = match (&args.token_ids, &args.prompt) {
        (Some(ids), _) => ids.clone(),
        (None, Some(prompt)) => files.tokenize(prompt)?,
        (None, None) => anyhow::bail!("give --prompt TEXT or --token-ids 1,2,3"),
    };
    let model = files.load()?;
    let capture = if args.generate > 0 {
        model.generate(&tokens, args.generate, decoding)
    } else {
        model.capture(&tokens)
    }
    .map_err(|e| anyhow::anyhow!(files.diagnose(e)))?;
    write_capture(&capture, &args.out, "")
}

fn decoding(args: &CaptureArgs) -> anyhow::Result<crate::inference::sample::Decoding> {
    if let Some(t) = args.temperature
        && !(t.is_finite() && t > 0.0)
    {
        anyhow::bail!("--temperature must be a positive number, got {t}");
    }
    Ok(match (args.top_k, args.temperature, args.seed) {
        (None, None, None) => crate::inference::sample::Decoding::Greedy,
        (k, temperature, seed) => crate::inference::sample::Decoding::TopK {
            k: k.unwrap_or(50),
            temperature: temperature.unwrap_or(1.0),
            seed: seed.unwrap_or(0),
        },
    })
}

fn write_capture(capture: &crate::inference::Capture, out: &std::path::Path, from: &str) -> anyhow::Result<()> {
    capture.save(out)?;
    eprintln!(
        "wrote {} ({} tokens, {} hidden states, {} attention maps{from})",
        out.display(),
        capture.tokens.len(),
        capture.hidden.len(),
        capture.attn.len()
    );
    Ok(())
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
        "\n  {:>5}  {:<60} {:<22} {:<20} {:>14} {:>5}  dtype",
        "layer", "name", "shape", "kind", "params", "size"
    )?;
    for (&i, size) in order.iter().zip(sizes) {
        let t = &arch.tensors[i];
        let layer = t.layer.map_or("-".to_string(), |l| l.to_string());
        let kind = if t.buffer { "buffer" } else { t.kind.label() };
        writeln!(
            out,
            "  {:>5}  {:<60} {:<22} {:<20} {:>14} {:>5.2}  {}",
            layer,
            t.name,
            format!("{:?}", t.shape),
            kind,
            group_digits(t.params),
            size,
            crate::arch::gguf::dtype_label(&t.dtype)
        )?;
    }
    Ok(())
}
