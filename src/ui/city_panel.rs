//! The city window: arc filters (block, head or mean/max, threshold, only the
//! selected token), the attention heatmap of one block and head (row = query,
//! column = key, exactly `attn.{i}[head]` of a capture) and the tokens x
//! layers heatmap of residual norms. Hover shows numbers; a click selects a token.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui;

use crate::activations::{CurrentRun, ExpertRouting};
use crate::city::view::heat;
use crate::city::{CityHover, CityPlayback, CityScene, CityStats, CityView, HeadFilter, Hovered};

#[derive(SystemParam)]
pub(super) struct CityParams<'w> {
    run: Res<'w, CurrentRun>,
    pub(super) city: Res<'w, CityScene>,
    view: ResMut<'w, CityView>,
    stats: Res<'w, CityStats>,
    hover: Res<'w, CityHover>,
    playback: ResMut<'w, CityPlayback>,
    pca: ResMut<'w, crate::city::pca3d::PcaScene>,
    routing: Res<'w, ExpertRouting>,
}

/// The city window's title (also its egui id).
const WINDOW: &str = "Neural city";

/// Narrower windows than this open the city window collapsed to its title
/// bar: opened, its 300 px would cover a fifth or more of the 3D view (at
/// 1280x720 the right third of the city and the prompt panel's Run button).
const OPEN_FROM_WIDTH: f32 = 1600.0;

/// Whether the city window first shows opened in a viewport `width` wide.
fn starts_open(width: f32) -> bool {
    width >= OPEN_FROM_WIDTH
}

/// The city window, with its tooltips; a `fold` request (open, or collapsed
/// to its title bar) is taken once the window shows.
pub(super) fn show(ctx: &egui::Context, p: &mut CityParams, fold: &mut Option<bool>) -> Option<usize> {
    if p.run.attn.is_empty() && p.run.hidden.is_empty() {
        return None;
    }
    if let Some(hovered) = &p.hover.0 {
        egui::Tooltip::always_open(
            ctx.clone(),
            egui::LayerId::background(),
            egui::Id::new("city_cell"),
            egui::PopupAnchor::Pointer,
        )
        .show(|ui| match hovered {
            Hovered::Cell(cell, text) => {
                ui.strong(format!("token {} `{}`", cell.token, text.replace('\n', "\\n")));
                ui.label(match cell.floor {
                    0 => "hidden state 0 (embeddings output)".to_string(),
                    f => format!("hidden state {f} (output of block {})", f - 1),
                });
                ui.label(format!("residual norm {:.3}", cell.norm));
                // The block below this floor routed the token to these experts.
                if let Some(route) = cell
                    .floor
                    .checked_sub(1)
                    .and_then(|block| p.routing.blocks.get(&block))
                    .and_then(|r| r.routes.get(cell.token))
                {
                    let experts: Vec<String> = route.iter().map(|(e, w)| format!("{e} ({w:.2})")).collect();
                    ui.label(format!("experts of block {}: {}", cell.floor - 1, experts.join(", ")));
                }
            }
            Hovered::Arc { edge, from, to } => {
                ui.strong(format!(
                    "token {} `{}` attends to token {} `{}`",
                    edge.to,
                    to.replace('\n', "\\n"),
                    edge.from,
                    from.replace('\n', "\\n")
                ));
                let head = match p.view.heads {
                    HeadFilter::Head(h) => format!("head {h}"),
                    HeadFilter::Mean => "mean over heads".to_string(),
                    HeadFilter::Max => "max over heads".to_string(),
                };
                ui.label(format!("block {}, {head}", edge.layer));
                ui.label(format!("attention weight {:.4}", edge.weight));
            }
        });
    }
    // The PCA section sets it again while it is open.
    if p.pca.wanted {
        p.pca.wanted = false;
    }
    let mut clicked = None;
    // Over the layer tree (the least needed panel while a prompt runs), out of the 3D view.
    let collapsing = egui::Id::new(WINDOW).with("collapsing");
    let width = ctx.viewport_rect().width();
    let default_open = starts_open(width);
    let mut state = egui::collapsing_header::CollapsingState::load_with_default_open(ctx, collapsing, default_open);
    if let Some(open) = fold.take() {
        state.set_open(open);
        state.store(ctx);
    }
    egui::Window::new(WINDOW)
        .default_pos([width - 312.0, 36.0])
        .default_width(300.0)
        .default_open(default_open)
        .resizable(false)
        .show(ctx, |ui| {
            playback(ui, p);
            ui.separator();
            filters(ui, p);
            ui.separator();
            clicked = attention_heatmap(ui, p);
            ui.separator();
            clicked = norm_heatmap(ui, p).or(clicked);
            ui.separator();
            egui::CollapsingHeader::new("PCA of the residual stream").show(ui, |ui| pca_plot(ui, p));
        });
    clicked
}

/// Play/pause, step a layer down/up, scrub, speed.
fn playback(ui: &mut egui::Ui, p: &mut CityParams) {
    let available = p.run.hidden.keys().max().map_or(0.0, |&f| f as f32);
    let mut pb = p.playback.0;
    ui.horizontal(|ui| {
        if ui
            .button(if pb.playing { "⏸" } else { "▶" })
            .on_hover_text("play / pause")
            .clicked()
        {
            pb.playing = !pb.playing;
            if pb.playing && pb.position >= available {
                pb.restart();
            }
        }
        if ui.button("◀").on_hover_text("one layer down").clicked() {
            pb.step(-1, available);
        }
        if ui.button("▶|").on_hover_text("one layer up").clicked() {
            pb.step(1, available);
        }
        ui.add(
            egui::DragValue::new(&mut pb.speed)
                .range(0.25..=50.0)
                .speed(0.1)
                .suffix(" layers/s"),
        );
    });
    let total = p.run.tokens.len();
    ui.horizontal(|ui| {
        if ui.button("◀ token").on_hover_text("one token column fewer").clicked() {
            pb.step_token(-1, total);
        }
        if ui.button("token ▶").on_hover_text("one token column more").clicked() {
            pb.step_token(1, total);
        }
        let mut shown = pb.tokens.unwrap_or(total).min(total);
        let slider = ui.add(egui::Slider::new(&mut shown, 1.min(total)..=total).text("tokens"));
        if slider.changed() {
            pb.playing = false;
            pb.tokens = (shown < total).then_some(shown);
        }
    });
    let mut position = pb.position;
    let slider = ui.add(egui::Slider::new(&mut position, 0.0..=available.max(0.0)).text("hidden state"));
    if slider.changed() {
        pb.playing = false;
        pb.position = position;
    }
    if pb != p.playback.0 {
        p.playback.0 = pb;
    }
}

fn filters(ui: &mut egui::Ui, p: &mut CityParams) {
    let blocks = p.run.attn.keys().max().map_or(0, |m| m + 1);
    let heads = p.stats.heads.max(1);
    let mut f = p.view.0.clone();
    egui::Grid::new("city_filters").num_columns(2).show(ui, |ui| {
        ui.label("block");
        egui::ComboBox::from_id_salt("city_layer")
            .selected_text(f.layer.map_or("all".to_string(), |l| l.to_string()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut f.layer, None, "all");
                for l in 0..blocks {
                    ui.selectable_value(&mut f.layer, Some(l), l.to_string());
                }
            });
        ui.end_row();
        ui.label("heads");
        egui::ComboBox::from_id_salt("city_heads")
            .selected_text(match f.heads {
                HeadFilter::Mean => "mean".to_string(),
                HeadFilter::Max => "max".to_string(),
                HeadFilter::Head(h) => format!("head {h}"),
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut f.heads, HeadFilter::Mean, "mean");
                ui.selectable_value(&mut f.heads, HeadFilter::Max, "max");
                for h in 0..heads {
                    ui.selectable_value(&mut f.heads, HeadFilter::Head(h), format!("head {h}"));
                }
            });
        ui.end_row();
        ui.label("threshold");
        ui.add(egui::Slider::new(&mut f.threshold, crate::city::view::MIN_EDGE..=1.0).logarithmic(true));
        ui.end_row();
    });
    ui.checkbox(&mut f.only_selected, "only arcs of the selected token");
    ui.weak(format!("{} arcs drawn", p.stats.arcs));
    if f != p.view.0 {
        p.view.0 = f;
    }
}

fn token_text(p: &CityParams, i: usize) -> String {
    p.city.scene.text(i).replace('\n', "\\n")
}

fn attention_heatmap(ui: &mut egui::Ui, p: &CityParams) -> Option<usize> {
    let layer = p.view.layer.unwrap_or(0);
    let head = match p.view.heads {
        HeadFilter::Mean => "mean over heads".to_string(),
        HeadFilter::Max => "max over heads".to_string(),
        HeadFilter::Head(h) => format!("head {h}"),
    };
    ui.strong(format!("attention, block {layer}, {head}"));
    let Some((_, _, grid)) = p
        .city
        .scene
        .attention
        .as_ref()
        .filter(|(l, h, _)| *l == layer && *h == p.view.heads)
    else {
        ui.weak("not computed yet");
        return None;
    };
    let hovered = heatmap(ui, grid);
    if let Some((q, k, clicked)) = hovered {
        let tip = format!(
            "query {q} `{}` reads key {k} `{}`: {:.4}",
            token_text(p, q),
            token_text(p, k),
            grid[q][k]
        );
        ui.label(tip);
        clicked.then_some(q)
    } else {
        ui.weak("rows: query token, columns: key token");
        None
    }
}

fn norm_heatmap(ui: &mut egui::Ui, p: &CityParams) -> Option<usize> {
    ui.strong("residual norm, tokens (rows) x hidden states (columns)");
    // [token][floor], each floor scaled to its own range.
    let (grid, ranges) = p.city.scene.norm_grid();
    let scaled: Vec<Vec<f32>> = grid
        .iter()
        .map(|row| {
            row.iter()
                .zip(&ranges)
                .map(|(&v, &(lo, hi))| if hi > lo { (v - lo) / (hi - lo) } else { 1.0 })
                .collect()
        })
        .collect();
    let (tok, floor, clicked) = heatmap(ui, &scaled)?;
    ui.label(format!(
        "token {tok} `{}`, hidden state {floor}: norm {:.3}",
        token_text(p, tok),
        grid[tok][floor]
    ));
    clicked.then_some(tok)
}

/// Paints `grid` (rows x columns, values 0..1) as coloured cells;
/// returns the hovered (row, column) and whether it was clicked.
fn heatmap(ui: &mut egui::Ui, grid: &[Vec<f32>]) -> Option<(usize, usize, bool)> {
    let rows = grid.len();
    let cols = grid.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return None;
    }
    let side = 200.0f32;
    let (cw, ch) = (
        (side / cols as f32).clamp(2.0, 24.0),
        (side / rows as f32).clamp(2.0, 24.0),
    );
    let size = egui::vec2(cw * cols as f32, ch * rows as f32);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click().union(egui::Sense::hover()));
    let painter = ui.painter_at(rect);
    for (r, row) in grid.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let [red, green, blue] = heat(v).map(|x| (x.clamp(0.0, 1.0).powf(1.0 / 2.2) * 255.0) as u8);
            let min = rect.min + egui::vec2(c as f32 * cw, r as f32 * ch);
            painter.rect_filled(
                egui::Rect::from_min_size(min, egui::vec2(cw, ch)),
                0.0,
                egui::Color32::from_rgb(red, green, blue),
            );
        }
    }
    let pos = response.hover_pos()?;
    let (c, r) = (
        ((pos.x - rect.min.x) / cw) as usize,
        ((pos.y - rect.min.y) / ch) as usize,
    );
    (r < rows && c < cols).then(|| {
        painter.rect_stroke(
            egui::Rect::from_min_size(rect.min + egui::vec2(c as f32 * cw, r as f32 * ch), egui::vec2(cw, ch)),
            0.0,
            egui::Stroke::new(1.5, egui::Color32::WHITE),
            egui::StrokeKind::Inside,
        );
        (r, c, response.clicked())
    })
}

/// Tokens on the top two principal components of one hidden state (and the
/// switch that draws the top three in the scene).
fn pca_plot(ui: &mut egui::Ui, p: &mut CityParams) {
    use egui_plot::{Plot, PlotPoints, Points, Text};
    p.pca.wanted = true;
    let floors = p.run.hidden.keys().max().map_or(0, |&f| f + 1);
    let mut floor = p
        .pca
        .key
        .map_or(floors.saturating_sub(1), |k| k.2)
        .min(floors.saturating_sub(1));
    // Follows the newest hidden state until the user picks one.
    if ui
        .add(egui::Slider::new(&mut floor, 0..=floors.saturating_sub(1)).text("hidden state"))
        .changed()
    {
        p.pca.floor = Some(floor);
    }
    let mut show_3d = p.pca.show_3d;
    if ui
        .checkbox(&mut show_3d, "3D (PC1-3) in the scene, beside the city")
        .changed()
    {
        p.pca.show_3d = show_3d;
    }
    let (coords, shares) = (&p.pca.coords, &p.pca.shares);
    if coords.is_empty() {
        return;
    }
    let share = |i: usize| shares.get(i).unwrap_or(&0.0) * 100.0;
    ui.weak(format!(
        "PC1 {:.0}% / PC2 {:.0}% / PC3 {:.0}% of the variance",
        share(0),
        share(1),
        share(2)
    ));
    let xy: Vec<[f64; 2]> = coords
        .iter()
        .map(|c| {
            [
                c.first().copied().unwrap_or(0.0) as f64,
                c.get(1).copied().unwrap_or(0.0) as f64,
            ]
        })
        .collect();
    let texts: Vec<String> = (0..xy.len()).map(|i| token_text(p, i)).collect();
    Plot::new("pca").height(200.0).data_aspect(1.0).show(ui, |plot| {
        plot.points(Points::new("tokens", PlotPoints::from(xy.clone())).radius(3.0));
        for (point, text) in xy.iter().zip(&texts) {
            plot.text(Text::new(text.as_str(), (*point).into(), text.as_str()).anchor(egui::Align2::LEFT_BOTTOM));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::starts_open;

    #[test]
    fn the_city_window_starts_collapsed_on_narrow_windows() {
        assert!(!starts_open(960.0));
        assert!(!starts_open(1280.0));
        assert!(starts_open(1600.0));
        assert!(starts_open(1920.0));
    }
}
