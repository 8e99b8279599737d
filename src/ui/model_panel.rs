//! Left panel: open a model (id or path, catalogue, recent), its facts, a bar
//! chart of parameters by kind, the colour legend (click a kind to hide or show
//! it) and view settings.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui;
use egui_plot::{Bar, BarChart, Plot};

use super::{UiState, kind_color32};
use crate::arch::{self, CubeScale, LoadOptions, ModelRef, group_digits, human};
use crate::camera::FlyMode;
use crate::layout::LayoutKind;
use crate::model::{CurrentModel, LoadModel, RecentModels};
use crate::view::ViewSettings;

#[derive(SystemParam)]
pub(super) struct PanelParams<'w> {
    pub(super) current: Option<Res<'w, CurrentModel>>,
    pub(super) settings: ResMut<'w, ViewSettings>,
    recent: Res<'w, RecentModels>,
    fly: Res<'w, FlyMode>,
    load: MessageWriter<'w, LoadModel>,
    weight_stats: Res<'w, crate::weight_stats::WeightStats>,
    weight_diff: Res<'w, crate::weight_stats::WeightDiff>,
    diff_target: Option<Res<'w, crate::weight_stats::DiffTarget>>,
    software: Option<Res<'w, crate::render::look::SoftwareRenderer>>,
}

pub(super) fn show(ui: &mut egui::Ui, state: &mut UiState, p: &mut PanelParams) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("tensorcity");
        picker(ui, state, p);
        ui.separator();
        if let Some(current) = &p.current {
            facts(ui, &current.summary, &current.arch.notices);
            ui.separator();
            params_chart(ui, &current.summary);
            ui.separator();
            let lens = super::stats_panel::Lens {
                stats: &p.weight_stats,
                diff: &p.weight_diff,
                target: p.diff_target.as_deref(),
            };
            super::stats_panel::color_by(
                ui,
                &mut p.settings,
                &lens,
                current
                    .arch
                    .tensors
                    .iter()
                    .map(|t| (t.name.as_str(), t.shape.len() >= 2)),
            );
            super::stats_panel::expert_map(ui, &p.settings, &lens);
            legend(ui, &current.summary, &mut p.settings);
        }
        ui.separator();
        view_settings(ui, p);
    });
}

fn picker(ui: &mut egui::Ui, state: &mut UiState, p: &mut PanelParams) {
    ui.label("Open a model: Hugging Face id, .safetensors file or folder");
    let mut open = None;
    ui.horizontal(|ui| {
        let edit = ui.add(
            egui::TextEdit::singleline(&mut state.model_input)
                .hint_text("gpt2, ~/models/x, ...")
                .desired_width(180.0),
        );
        let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.button("Open").clicked() || enter) && !state.model_input.trim().is_empty() {
            open = Some(state.model_input.trim().to_string());
        }
    });
    // A remote engine (python -m tensorcity_stream serve MODEL): connecting again reconnects.
    ui.horizontal(|ui| {
        ui.label("Engine");
        let edit = ui.add(
            egui::TextEdit::singleline(&mut state.engine_input)
                .hint_text("ws://127.0.0.1:7878")
                .desired_width(150.0),
        );
        let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let url = state.engine_input.trim();
        if (ui.button("Connect").clicked() || enter) && !url.is_empty() {
            let url = if url.contains("://") {
                url.to_string()
            } else {
                format!("ws://{url}")
            };
            p.load.write(LoadModel {
                model: ModelRef::Engine(url),
                options: LoadOptions::default(),
            });
        }
    });
    egui::ComboBox::from_id_salt("catalogue")
        .selected_text("Catalogue…")
        .width(260.0)
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(false, format!("{} (embedded)", arch::EMBEDDED_NAME))
                .clicked()
            {
                p.load.write(LoadModel {
                    model: ModelRef::Embedded,
                    options: LoadOptions::default(),
                });
            }
            for entry in arch::catalogue() {
                if ui
                    .selectable_label(false, format!("{} — {}", entry.id, entry.description))
                    .clicked()
                {
                    p.load.write(LoadModel {
                        model: ModelRef::Id(entry.id.to_string()),
                        options: LoadOptions {
                            catalogue_only: true,
                            ..Default::default()
                        },
                    });
                }
            }
        });
    if !p.recent.0.is_empty() {
        ui.collapsing("Recent", |ui| {
            for r in p.recent.0.clone() {
                if ui.link(&r).clicked() {
                    open = Some(r);
                }
            }
        });
    }
    if let Some(text) = open {
        let model = if text == arch::EMBEDDED_NAME {
            ModelRef::Embedded
        } else {
            ModelRef::parse(&text)
        };
        p.load.write(LoadModel {
            model,
            options: LoadOptions::default(),
        });
    }
}

fn facts(ui: &mut egui::Ui, s: &arch::Summary, notices: &[String]) {
    ui.strong(&s.name);
    egui::Grid::new("facts").num_columns(2).striped(true).show(ui, |ui| {
        let opt = |v: Option<u64>| v.map_or("—".to_string(), group_digits);
        let rows = [
            ("family", s.family.clone()),
            ("source", s.source.clone()),
            ("layers", s.layers.to_string()),
            ("hidden size", opt(s.hidden_size)),
            (
                "heads / kv heads",
                format!("{} / {}", opt(s.num_heads), opt(s.num_kv_heads)),
            ),
            ("vocab", opt(s.vocab_size)),
            (
                "parameters",
                format!("{} ({})", group_digits(s.total_params), human(s.total_params)),
            ),
            ("tensors", s.tensor_count.to_string()),
        ];
        for (k, v) in rows {
            ui.label(k);
            ui.label(v);
            ui.end_row();
        }
        if let Some(e) = s.num_experts {
            ui.label("experts");
            ui.label(format!("{e} per layer"));
            ui.end_row();
        }
    });
    for notice in notices {
        ui.colored_label(egui::Color32::from_rgb(230, 190, 90), notice);
    }
}

fn params_chart(ui: &mut egui::Ui, summary: &arch::Summary) {
    ui.label("Parameters by kind (%)");
    let bars: Vec<Bar> = summary
        .by_kind
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Bar::new(i as f64, k.percent)
                .name(format!("{}: {} ({:.2}%)", k.kind.label(), human(k.params), k.percent))
                .fill(kind_color32(k.kind))
                .width(0.8)
        })
        .collect();
    Plot::new("params_by_kind")
        .height(110.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show_axes([false, true])
        .show(ui, |plot| plot.bar_chart(BarChart::new("params", bars)));
}

fn legend(ui: &mut egui::Ui, summary: &arch::Summary, settings: &mut ViewSettings) {
    ui.label("Legend (click to hide / show)");
    // Kinds the model has, in legend order (buffers are drawn as `other`).
    let present = summary.drawn_kinds();
    for kind in present {
        let hidden = settings.hidden_kinds.contains(&kind);
        ui.horizontal(|ui| {
            let (rect, response) = ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::click());
            let color = if hidden {
                egui::Color32::from_gray(60)
            } else {
                kind_color32(kind)
            };
            ui.painter().rect_filled(rect, 2.0, color);
            let text = if hidden {
                egui::RichText::new(kind.label()).strikethrough().weak()
            } else {
                egui::RichText::new(kind.label())
            };
            if response.clicked() || ui.add(egui::Label::new(text).sense(egui::Sense::click())).clicked() {
                if hidden {
                    settings.hidden_kinds.remove(&kind);
                } else {
                    settings.hidden_kinds.insert(kind);
                }
            }
        });
    }
}

fn view_settings(ui: &mut egui::Ui, p: &mut PanelParams) {
    ui.label("View");
    let mut layout = p.settings.layout;
    let mut scale = p.settings.scale;
    let mut lod = p.settings.lod;
    let mut glow = p.settings.glow;
    ui.horizontal(|ui| {
        ui.selectable_value(&mut layout, LayoutKind::Trunk, "trunk");
        ui.selectable_value(&mut layout, LayoutKind::Floors, "floors");
        ui.selectable_value(&mut layout, LayoutKind::City, "city");
    });
    ui.horizontal(|ui| {
        ui.selectable_value(&mut scale, CubeScale::Relative, "relative size");
        ui.selectable_value(&mut scale, CubeScale::Absolute, "absolute size");
    });
    ui.horizontal(|ui| {
        ui.checkbox(&mut lod, "collapse far layers");
        ui.checkbox(&mut glow, "glow").on_hover_text(
            "Busy cells, pulses and beams glow (HDR, bloom) and far things fade; off: flat, exact colours",
        );
    });
    if let Some(software) = &p.software
        && !glow
    {
        ui.small(format!(
            "Glow starts off on a software renderer ({}): it about doubles the frame time. Tick it (or --glow) to see it.",
            software.0
        ));
    }
    // Write only real changes so change detection stays meaningful.
    if layout != p.settings.layout {
        p.settings.layout = layout;
    }
    if scale != p.settings.scale {
        p.settings.scale = scale;
    }
    if lod != p.settings.lod {
        p.settings.lod = lod;
    }
    if glow != p.settings.glow {
        p.settings.glow = glow;
    }
    ui.small(if p.fly.active {
        format!(
            "Fly mode (F to leave): WASD move, Q/E down/up, drag to look, wheel speed ({:.1}/s)",
            p.fly.speed
        )
    } else {
        "Orbit: drag, right-drag pans, wheel zooms. F fly mode, Home frames all, double-click a cube to glide there."
            .to_string()
    });
}
