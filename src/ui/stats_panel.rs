//! The weights lens in the panels: what the cubes are coloured by (kind or a
//! weight statistic), the statistic's colour bar with its range, and a
//! tensor's statistics and histogram in the hover tooltip.

use bevy_egui::egui;
use egui_plot::{Bar, BarChart, Plot};

use crate::view::ViewSettings;
use crate::weight_stats::WeightStats;
use crate::weights::color::{ColorBy, Scale, Stat, viridis};
use crate::weights::stats::TensorStats;

fn color32(srgb: [f32; 3]) -> egui::Color32 {
    let [r, g, b] = srgb.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8);
    egui::Color32::from_rgb(r, g, b)
}

fn label(c: ColorBy) -> &'static str {
    match c {
        ColorBy::Kind => "component kind",
        ColorBy::Stat(s) => s.label(),
    }
}

fn format_value(stat: Stat, v: f64) -> String {
    match stat {
        Stat::Sparsity | Stat::Outliers => format!("{:.3}%", 100.0 * v),
        _ => format!("{v:.3e}"),
    }
}

/// The colour-by picker and, for a statistic, its state and colour bar.
/// `names`: the tensors on screen (the bar's range is over them).
pub(super) fn color_by<'a>(
    ui: &mut egui::Ui,
    settings: &mut ViewSettings,
    stats: &WeightStats,
    tensors: impl Iterator<Item = (&'a str, bool)>,
) {
    let mut color = settings.color;
    ui.horizontal(|ui| {
        ui.label("colour by");
        egui::ComboBox::from_id_salt("color_by")
            .selected_text(label(color))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut color, ColorBy::Kind, label(ColorBy::Kind));
                for s in Stat::ALL {
                    ui.selectable_value(&mut color, ColorBy::Stat(s), s.label());
                }
            });
    });
    if color != settings.color {
        settings.color = color;
    }
    let ColorBy::Stat(stat) = color else { return };
    match stats {
        WeightStats::Idle | WeightStats::Computing { .. } => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.small("reading every weight for the statistics…");
            });
        }
        WeightStats::Failed { message, .. } => {
            ui.colored_label(egui::Color32::from_rgb(255, 150, 120), message);
        }
        WeightStats::Ready { stats, .. } => {
            let scale = Scale::for_tensors(
                tensors.filter_map(|(n, matrix)| Some((stats.get(n).and_then(|s| stat.value(s))?, matrix))),
                stat.logarithmic(),
            );
            let Some(scale) = scale else {
                ui.small("no tensor has this statistic");
                return;
            };
            color_bar(ui, stat, &scale);
        }
    }
}

/// The viridis bar, low to high, with the range's ends (log scale noted).
fn color_bar(ui: &mut egui::Ui, stat: Stat, scale: &Scale) {
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
        ui.small(format_value(stat, scale.lo));
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.small(format_value(stat, scale.hi));
        });
    });
    ui.small(format!(
        "{}{} over the matrices (vectors beyond it at the ends); grey: not computed",
        stat.label(),
        if scale.log { ", log scale" } else { "" }
    ));
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
