//! Right panel: the layers and tensors as a searchable tree. Typing filters by
//! name (`mlp` keeps every MLP tensor); clicking selects and glides there.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::egui;

use super::{UiState, kind_color32};
use crate::arch::group_digits;
use crate::camera::FocusOn;
use crate::render::Highlight;
use crate::spawn::{Cube, Layer, Tensor};

#[derive(SystemParam)]
pub(super) struct TreeParams<'w, 's> {
    layers: Query<'w, 's, (Entity, &'static Layer, &'static Children)>,
    tensors: Query<'w, 's, (&'static Tensor, &'static Cube)>,
    pub(super) highlight: ResMut<'w, Highlight>,
    focus: MessageWriter<'w, FocusOn>,
}

/// Does a tensor name match the search text? Case-insensitive substring on the
/// full name; several words must all match.
pub fn matches(name: &str, search: &str) -> bool {
    let name = name.to_lowercase();
    search.split_whitespace().all(|w| name.contains(&w.to_lowercase()))
}

pub(super) fn show(ui: &mut egui::Ui, state: &mut UiState, p: &mut TreeParams) {
    ui.horizontal(|ui| {
        ui.label("Search");
        ui.add(
            egui::TextEdit::singleline(&mut state.search)
                .hint_text("mlp, layers.3, q_proj")
                .desired_width(170.0),
        );
    });
    let mut layers: Vec<_> = p.layers.iter().collect();
    layers.sort_by_key(|(_, l, _)| l.group);
    let search = state.search.trim().to_string();
    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
        for (entity, layer, children) in layers {
            let members: Vec<(Entity, &Tensor, &Cube)> = children
                .iter()
                .filter_map(|c| p.tensors.get(c).ok().map(|(t, cube)| (c, t, cube)))
                .filter(|(_, t, _)| search.is_empty() || matches(&t.name, &search))
                .collect();
            if members.is_empty() {
                continue;
            }
            let header = format!("{} · {} params", layer.label, group_digits(layer.params));
            let response = egui::CollapsingHeader::new(header)
                .id_salt(entity)
                .open(if search.is_empty() { None } else { Some(true) })
                .show(ui, |ui| {
                    for (e, t, cube) in members {
                        let selected = p.highlight.selected == Some(e);
                        ui.horizontal(|ui| {
                            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                            ui.painter().rect_filled(rect, 2.0, kind_color32(t.kind));
                            let label = ui.selectable_label(selected, &t.name).on_hover_text(format!(
                                "{:?} {} · {} params · {}",
                                t.shape,
                                crate::arch::gguf::dtype_label(&t.dtype),
                                group_digits(t.params),
                                t.kind.label()
                            ));
                            if label.clicked() {
                                p.highlight.selected = Some(e);
                                p.focus.write(FocusOn {
                                    center: cube.center,
                                    size: cube.size,
                                });
                            }
                        });
                    }
                });
            if response.header_response.double_clicked() {
                p.focus.write(FocusOn {
                    center: layer.center,
                    size: layer.block_size,
                });
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn search_is_case_insensitive_and_all_words() {
        assert!(matches("h.3.mlp.c_fc.weight", "mlp"));
        assert!(matches("h.3.mlp.c_fc.weight", "MLP weight"));
        assert!(!matches("h.3.attn.c_attn.weight", "mlp"));
        assert!(matches("anything", ""));
    }
}
