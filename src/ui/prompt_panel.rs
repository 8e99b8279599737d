//! Bottom panel: type a prompt, run it (or generate), watch the run's progress,
//! click a token to see what the model predicts after it — the final top-k and
//! the logit lens (each layer's best guess).

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui;

use crate::activations::{Analyses, CurrentRun, Prompt, RequestSaliency, RunStatus, Runner, SelectedToken};
use crate::inference::stream::Decoding;

/// The prompt panel's own fields.
#[derive(Resource, Debug, Clone)]
pub struct PromptUi {
    pub text: String,
    pub new_tokens: usize,
    pub sample: bool,
    pub top_k: usize,
    pub temperature: f64,
}

impl Default for PromptUi {
    fn default() -> Self {
        PromptUi {
            text: "ROMEO:\nBut soft, what light".into(),
            new_tokens: 20,
            sample: false,
            top_k: 20,
            temperature: 0.8,
        }
    }
}

#[derive(SystemParam)]
pub(super) struct PromptParams<'w> {
    ui: ResMut<'w, PromptUi>,
    runner: Res<'w, Runner>,
    run: Res<'w, CurrentRun>,
    pub(super) selected: ResMut<'w, SelectedToken>,
    prompts: MessageWriter<'w, Prompt>,
    analyses: Res<'w, Analyses>,
    saliency: MessageWriter<'w, RequestSaliency>,
}

const RED: egui::Color32 = egui::Color32::from_rgb(235, 90, 80);
const GENERATED: egui::Color32 = egui::Color32::from_rgb(120, 200, 255);

pub(super) fn show(ui: &mut egui::Ui, p: &mut PromptParams) {
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| body(ui, p));
}

fn body(ui: &mut egui::Ui, p: &mut PromptParams) {
    let files = match &*p.runner {
        Runner::Ready(files, _) => Some(files.clone()),
        _ => None,
    };
    ui.horizontal(|ui| {
        ui.strong("Prompt");
        match &*p.runner {
            Runner::None => ui.label("no model"),
            Runner::Preparing(_) => ui.label("loading weights…"),
            Runner::Ready(f, _) if cfg!(target_arch = "wasm32") => ui.weak(format!(
                "{} runs in your browser (candle on wasm, in a Web Worker)",
                f.what
            )),
            Runner::Ready(f, _) => ui.weak(format!("{} runs on the CPU (candle)", f.what)),
            Runner::Unavailable(why) => ui.colored_label(RED, format!("cannot run this model: {why}")),
            Runner::Connecting(_) => ui.label("connecting to the engine…"),
            Runner::Remote { engine, .. } => ui.weak(format!("runs on the engine: {engine}")),
        };
    });
    let ready = p.runner.can_run();
    ui.horizontal(|ui| {
        ui.add_enabled(
            ready,
            egui::TextEdit::multiline(&mut p.ui.text)
                .desired_rows(2)
                .desired_width(ui.available_width() - 330.0)
                .hint_text("type a prompt"),
        );
        ui.vertical(|ui| {
            ui.horizontal(|ui| {
                if ui.add_enabled(ready, egui::Button::new("Run")).clicked() {
                    submit(p, 0);
                }
                let n = p.ui.new_tokens;
                if ui.add_enabled(ready, egui::Button::new("Generate")).clicked() {
                    submit(p, n);
                }
                ui.add(
                    egui::DragValue::new(&mut p.ui.new_tokens)
                        .range(1..=256)
                        .suffix(" tokens"),
                );
            });
            ui.horizontal(|ui| {
                ui.checkbox(&mut p.ui.sample, "sample");
                ui.add_enabled(
                    p.ui.sample,
                    egui::DragValue::new(&mut p.ui.top_k).range(1..=200).prefix("top-k "),
                );
                ui.add_enabled(
                    p.ui.sample,
                    egui::DragValue::new(&mut p.ui.temperature)
                        .range(0.05..=2.0)
                        .speed(0.01)
                        .prefix("T "),
                );
            });
        });
    });
    status(ui, &p.run);
    if p.run.tokens.is_empty() {
        return;
    }
    let texts = &p.run.texts;
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 2.0;
        let selected = p.selected.position(p.run.tokens.len());
        for (i, text) in texts.iter().enumerate() {
            let label = egui::RichText::new(visible(text)).monospace();
            let label = if i >= p.run.prompt_len {
                label.color(GENERATED)
            } else {
                label
            };
            if ui.selectable_label(Some(i) == selected, label).clicked() {
                p.selected.0 = Some(i);
            }
        }
    });
    predictions(ui, p);
    // Saliency needs a backward pass through a local model.
    if let Some(files) = files {
        saliency(ui, p, &files);
    }
}

impl PromptParams<'_> {
    /// Selects a token position (clicked elsewhere, e.g. in a heatmap).
    pub(super) fn select(&mut self, position: usize) {
        self.selected.0 = Some(position);
    }
}

fn submit(p: &mut PromptParams, new_tokens: usize) {
    let decoding = if p.ui.sample {
        Decoding::TopK {
            k: p.ui.top_k,
            temperature: p.ui.temperature,
            seed: 0x7e45,
        }
    } else {
        Decoding::Greedy
    };
    p.selected.0 = None;
    p.prompts.write(Prompt {
        text: p.ui.text.clone(),
        new_tokens,
        decoding,
    });
}

fn status(ui: &mut egui::Ui, run: &CurrentRun) {
    match &run.status {
        RunStatus::Idle => {}
        RunStatus::Running => {
            let layers = run.hidden.len().saturating_sub(1);
            ui.label(format!(
                "running… {} tokens, {layers} layers done, {} generated",
                run.tokens.len(),
                run.generated.len()
            ));
        }
        RunStatus::Done => {
            ui.label(format!(
                "done: {} tokens ({} generated)",
                run.tokens.len(),
                run.generated.len()
            ));
        }
        RunStatus::Failed(message) => {
            ui.colored_label(RED, message);
        }
    }
    if let Some(notice) = &run.notice {
        ui.colored_label(egui::Color32::YELLOW, notice);
    }
}

/// What the model predicts after the selected token: final top-k and the logit lens.
fn predictions(ui: &mut egui::Ui, p: &PromptParams) {
    let Some(pos) = p.selected.position(p.run.tokens.len()) else {
        return;
    };
    let text = |id: u32| visible(&p.runner.token_text(id));
    ui.horizontal_top(|ui| {
        if let Some(top) = p.run.top.get(&pos) {
            ui.vertical(|ui| {
                ui.strong(format!(
                    "next after `{}`",
                    visible(p.run.texts.get(pos).map_or("", |s| s))
                ));
                for (id, prob) in top {
                    ui.monospace(format!("{:>6.1}%  {}", prob * 100.0, text(*id)));
                }
            });
            // (A vertical separator here would grow with the panel, frame after frame.)
            ui.add_space(24.0);
        }
        if !p.run.lens.is_empty() {
            ui.vertical(|ui| {
                ui.strong("logit lens (top-1 per layer)");
                egui::Grid::new("lens")
                    .num_columns(2)
                    .spacing([12.0, 0.0])
                    .show(ui, |ui| {
                        for (layer, tops) in &p.run.lens {
                            if let Some((id, prob)) = tops.get(&pos).and_then(|t| t.first()) {
                                ui.monospace(format!("layer {layer}"));
                                ui.monospace(format!("{} ({:.0}%)", text(*id), prob * 100.0));
                                ui.end_row();
                            }
                        }
                    });
            });
        }
    });
}

/// Gradient x input of each token up to the selected one, for the token the
/// model predicts after it (computed on demand: one backward pass on a task).
fn saliency(ui: &mut egui::Ui, p: &mut PromptParams, files: &crate::inference::ModelFiles) {
    let Some(pos) = p.selected.position(p.run.tokens.len()) else {
        return;
    };
    let key = (p.run.run, pos);
    if p.analyses.saliency.running(&key) {
        ui.weak("saliency: computing…");
        return;
    }
    let Some(result) = p.analyses.saliency.result(&key) else {
        if ui
            .button("Saliency")
            .on_hover_text("gradient x input: which tokens push the predicted next token")
            .clicked()
        {
            p.saliency.write(RequestSaliency { position: pos });
        }
        return;
    };
    match result {
        Err(e) => {
            ui.colored_label(RED, format!("saliency: {e}"));
        }
        Ok((target, scores)) => {
            let max = scores.iter().fold(1e-12f32, |m, s| m.max(s.abs()));
            ui.horizontal_wrapped(|ui| {
                ui.strong(format!(
                    "saliency for `{}`:",
                    visible(&files.token_texts(&[*target]).concat())
                ));
                ui.spacing_mut().item_spacing.x = 2.0;
                for (i, s) in scores.iter().enumerate() {
                    let v = s / max;
                    // Red pushes towards the prediction, blue away from it.
                    let bg = if v >= 0.0 {
                        egui::Color32::from_rgb(60 + (180.0 * v) as u8, 40, 40)
                    } else {
                        egui::Color32::from_rgb(40, 40, 60 + (180.0 * -v) as u8)
                    };
                    let text = visible(p.run.texts.get(i).map_or("", |t| t));
                    ui.label(egui::RichText::new(text).monospace().background_color(bg))
                        .on_hover_text(format!("{s:+.4}"));
                }
            });
        }
    }
}

/// Token text with whitespace made visible.
fn visible(text: &str) -> String {
    text.replace("\n", "\\n").replace(' ', "·")
}
