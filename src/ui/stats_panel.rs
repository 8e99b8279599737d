//! The weights lens in the panels: what the cubes are coloured by (kind or a
//! weight statistic), the statistic's colour bar with its range, and a
//! tensor's statistics and histogram in the hover tooltip.

use bevy_egui::egui;
use egui_plot::{Bar, BarChart, Plot};

use crate::view::ViewSettings;
use crate::weight_stats::{DiffTarget, WeightDiff, WeightStats};
use crate::weights::color::{ColorBy, Scale, Stat, viridis};
use crate::weights::diff::TensorDiff;
use crate::weights::stats::TensorStats;

fn color32(srgb: [f32; 3]) -> egui::Color32 {
    let [r, g, b] = srgb.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8);
    egui::Color32::from_rgb(r, g, b)
}

fn format_value(color: ColorBy, v: f64) -> String {
    match color {
        ColorBy::Stat(Stat::Sparsity | Stat::Outliers) => format!("{:.3}%", 100.0 * v),
        _ => format!("{v:.3e}"),
    }
}

/// What the panels need to know of the weights lens.
pub(super) struct Lens<'a> {
    pub stats: &'a WeightStats,
    pub diff: &'a WeightDiff,
    pub target: Option<&'a DiffTarget>,
}

/// The colour-by picker and, for a statistic or the difference, its state
/// and colour bar. `tensors`: the tensors on screen, whether each is a
/// matrix (the bar's range is over the matrices).
pub(super) fn color_by<'a>(
    ui: &mut egui::Ui,
    settings: &mut ViewSettings,
    lens: &Lens,
    tensors: impl Iterator<Item = (&'a str, bool)>,
) {
    let mut color = settings.color;
    ui.horizontal(|ui| {
        ui.label("colour by");
        egui::ComboBox::from_id_salt("color_by")
            .selected_text(color.label())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut color, ColorBy::Kind, ColorBy::Kind.label());
                for s in Stat::ALL {
                    ui.selectable_value(&mut color, ColorBy::Stat(s), s.label());
                }
                if lens.target.is_some() {
                    ui.selectable_value(&mut color, ColorBy::Delta, ColorBy::Delta.label());
                }
            });
    });
    if color != settings.color {
        settings.color = color;
    }
    let values: Vec<(f64, bool)> = match color {
        ColorBy::Kind => return,
        ColorBy::Stat(stat) => match lens.stats {
            WeightStats::Ready { stats, .. } => tensors
                .filter_map(|(n, m)| Some((stat.value(stats.get(n)?)?, m)))
                .collect(),
            WeightStats::Failed { message, .. } => return failed(ui, message),
            _ => return computing(ui, "reading every weight for the statistics…"),
        },
        ColorBy::Delta => match lens.diff {
            WeightDiff::Ready { diff, .. } => {
                if diff.unmatched > 0 {
                    ui.small(format!(
                        "{} tensors only in one model or of another shape (grey)",
                        diff.unmatched
                    ));
                }
                tensors
                    .filter_map(|(n, m)| Some((diff.tensors.get(n)?.rel_delta, m)))
                    .collect()
            }
            WeightDiff::Failed { message, .. } => return failed(ui, message),
            _ => return computing(ui, "comparing every weight with the other checkpoint…"),
        },
    };
    let Some(scale) = Scale::for_tensors(values, color.logarithmic()) else {
        ui.small("no tensor has this value");
        return;
    };
    color_bar(ui, color, &scale);
}

fn computing(ui: &mut egui::Ui, what: &str) {
    ui.horizontal(|ui| {
        ui.spinner();
        ui.small(what);
    });
}

fn failed(ui: &mut egui::Ui, message: &str) {
    ui.colored_label(egui::Color32::from_rgb(255, 150, 120), message);
}

/// The viridis bar, low to high, with the range's ends (log scale noted).
fn color_bar(ui: &mut egui::Ui, color: ColorBy, scale: &Scale) {
    let width = ui.available_width().min(230.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 14.0), egui::Sense::hover());
    let steps = 48;
    for i in 0..steps {
        let t = i as f32 / (steps - 1) as f32;
        let x0 = rect.left() + rect.width() * i as f32 / steps as f32;
        let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32 + 0.5;
        let r = egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom()));
        ui.painter().rect_filled(r, 0.0, color32(viridis(t)));
    }
    ui.horizontal(|ui| {
        ui.small(format_value(color, scale.lo));
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.small(format_value(color, scale.hi));
        });
    });
    ui.small(format!(
        "{}{} over the matrices (vectors beyond it at the ends); grey: no value",
        color.label(),
        if scale.log { ", log scale" } else { "" }
    ));
}

/// A tensor's difference from the other checkpoint, in the tooltip.
pub(super) fn tensor_diff(ui: &mut egui::Ui, d: &TensorDiff) {
    ui.separator();
    match &d.missing {
        Some(why) => ui.small(format!("not compared: {why}")),
        None => ui.label(format!(
            "vs B: |B-A| / |A| {:.3e} · max |B-A| {:.3e} · {:.3}% changed",
            d.rel_delta,
            d.max_abs_delta,
            100.0 * d.changed_fraction
        )),
    };
}

/// A tensor's statistics in the tooltip, with its histogram.
pub(super) fn tensor_stats(ui: &mut egui::Ui, s: &TensorStats) {
    ui.separator();
    if let Some(why) = &s.missing {
        ui.small(format!("no statistics: {why}"));
        return;
    }
    ui.label(format!(
        "RMS {:.3e} · mean |x| {:.3e} · max |x| {:.3e}",
        s.rms, s.mean_abs, s.max_abs
    ));
    ui.label(format!(
        "std {:.3e} · sparsity {:.3}% · outliers {:.4}%",
        s.std,
        100.0 * s.sparsity,
        100.0 * s.outliers
    ));
    if s.nan + s.inf > 0 {
        ui.colored_label(
            egui::Color32::from_rgb(255, 120, 110),
            format!("{} NaN, {} ±Inf values", s.nan, s.inf),
        );
    }
    let (lo, hi) = s.histogram_range;
    let width = (hi - lo) / s.histogram.len().max(1) as f64;
    let bars: Vec<Bar> = s
        .histogram
        .iter()
        .enumerate()
        .map(|(i, &c)| Bar::new(lo + (i as f64 + 0.5) * width, c as f64).width(width))
        .collect();
    Plot::new(("weight_histogram", s.name.as_str()))
        .height(70.0)
        .width(240.0)
        .show_axes([true, false])
        .show_grid(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("values", bars).color(egui::Color32::from_rgb(120, 170, 230)))
        });
}

/// The mixture-of-experts map (coloured by a statistic, for a model with
/// experts): per expert weight and the router, experts (rows) x layers
/// (columns) in viridis over that part's cells; far-off cells outlined red;
/// hover a cell for its value.
pub(super) fn expert_map(ui: &mut egui::Ui, settings: &ViewSettings, lens: &Lens) {
    let ColorBy::Stat(stat) = settings.color else { return };
    let (Some(stats), Some(routers)) = (lens.stats.ready(), lens.stats.routers()) else {
        return;
    };
    let Some(map) = crate::weights::moe::map(stats.values(), routers, stat) else {
        return;
    };
    egui::CollapsingHeader::new(format!("Experts: {} per expert", stat.label()))
        .default_open(true)
        .show(ui, |ui| {
            for grid in &map.grids {
                let values: Vec<f64> = grid.cells.iter().flatten().flatten().copied().collect();
                let Some(scale) = Scale::over(values, stat.logarithmic()) else {
                    continue;
                };
                let far = grid.outliers();
                ui.small(format!(
                    "{} · {} … {}",
                    grid.part,
                    format_value(ColorBy::Stat(stat), scale.lo),
                    format_value(ColorBy::Stat(stat), scale.hi)
                ));
                let columns = grid.layers.len().max(1);
                let cell = (ui.available_width().min(240.0) / columns as f32).clamp(3.0, 14.0);
                let size = egui::vec2(cell * columns as f32, cell * map.experts as f32);
                let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
                for (li, row) in grid.cells.iter().enumerate() {
                    for (e, v) in row.iter().enumerate() {
                        let min = rect.min + egui::vec2(li as f32 * cell, e as f32 * cell);
                        let r = egui::Rect::from_min_size(min, egui::vec2(cell - 1.0, cell - 1.0));
                        let fill = v.map_or(egui::Color32::from_gray(70), |v| color32(viridis(scale.position(v))));
                        ui.painter().rect_filled(r, 0.0, fill);
                        if far.contains(&(grid.layers[li], e)) {
                            ui.painter().rect_stroke(
                                r,
                                0.0,
                                egui::Stroke::new(1.5, egui::Color32::from_rgb(255, 90, 80)),
                                egui::StrokeKind::Inside,
                            );
                        }
                    }
                }
                if let Some(pos) = response.hover_pos() {
                    let li = ((pos.x - rect.left()) / cell) as usize;
                    let e = ((pos.y - rect.top()) / cell) as usize;
                    if let (Some(layer), Some(Some(v))) =
                        (grid.layers.get(li), grid.cells.get(li).and_then(|r| r.get(e)))
                    {
                        response.on_hover_text(format!(
                            "{} · layer {layer} · expert {e}: {}",
                            grid.part,
                            format_value(ColorBy::Stat(stat), *v)
                        ));
                    }
                }
            }
            ui.small("rows: experts, columns: layers; red: under 1/4 or over 4x the part's median");
        });
}
