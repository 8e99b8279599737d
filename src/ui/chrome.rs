//! How much of the window the UI takes: every panel (the default), none
//! (`Tab`: the 3D view fills the window; tooltips, errors and the capture
//! buttons stay), or the presentation mode (`P`): the scene alone with a
//! small title — the model, and the prompt once one ran — and the colour
//! legend, for talks and screen recordings (`F9`). Frame script: `panels
//! show|bars|hide|presentation`.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::camera::UiFocus;

/// Which parts of the UI are drawn.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chrome {
    /// Model panel, tree, prompt panel, city window, capture buttons.
    #[default]
    Panels,
    /// No panels: the 3D view fills the window (`Tab`).
    Hidden,
    /// The scene with a title and the legend only (`P`).
    Presentation,
}

impl Chrome {
    /// What a key press makes of the current mode: `Tab` toggles the panels,
    /// `P` toggles the presentation mode (leaving it shows the panels again).
    pub fn after_key(self, tab: bool, p: bool) -> Chrome {
        match (self, tab, p) {
            (Chrome::Presentation, _, true) => Chrome::Panels,
            (_, _, true) => Chrome::Presentation,
            (Chrome::Panels, true, _) => Chrome::Hidden,
            (_, true, _) => Chrome::Panels,
            (mode, false, false) => mode,
        }
    }

    pub fn panels(self) -> bool {
        self == Chrome::Panels
    }
}

/// `Tab` and `P`, unless a text field has the keyboard.
pub(super) fn keys(keys: Res<ButtonInput<KeyCode>>, ui: Res<UiFocus>, mut chrome: ResMut<Chrome>) {
    if ui.keyboard {
        return;
    }
    let next = chrome.after_key(keys.just_pressed(KeyCode::Tab), keys.just_pressed(KeyCode::KeyP));
    chrome.set_if_neq(next);
}

/// The presentation overlay: the title top left, the legend bottom left,
/// each on a dark plate as stills and clips have them (`record/overlay.rs`),
/// so the scene passing behind never cuts through the text.
/// Paints the presentation overlay; returns the rectangles its text covers
/// (the scene's labels keep clear of them).
pub(super) fn presentation(
    ctx: &egui::Context,
    title: &str,
    subtitle: Option<&str>,
    legend: &[(egui::Color32, String)],
) -> Vec<egui::Rect> {
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Background,
        egui::Id::new("presentation"),
    ));
    let screen = ctx.viewport_rect();
    // The plates go under the text: their places are kept now, their size set below.
    let plates = [painter.add(egui::Shape::Noop), painter.add(egui::Shape::Noop)];
    let shadowed = |pos: egui::Pos2, align: egui::Align2, text: &str, size: f32, colour: egui::Color32| {
        let font = egui::FontId::proportional(size);
        painter.text(
            pos + egui::vec2(1.0, 1.0),
            align,
            text,
            font.clone(),
            egui::Color32::from_black_alpha(200),
        );
        painter.text(pos, align, text, font, colour)
    };
    let top = shadowed(
        screen.min + egui::vec2(16.0, 14.0),
        egui::Align2::LEFT_TOP,
        title,
        20.0,
        egui::Color32::WHITE,
    );
    let mut painted = vec![top];
    if let Some(sub) = subtitle {
        let line = shadowed(
            egui::pos2(top.left(), top.bottom() + 4.0),
            egui::Align2::LEFT_TOP,
            sub,
            15.0,
            egui::Color32::from_gray(215),
        );
        painted.push(line);
    }
    let captions = painted.len();
    let mut y = screen.bottom() - 14.0;
    for (colour, label) in legend.iter().rev() {
        let text = shadowed(
            egui::pos2(screen.left() + 34.0, y),
            egui::Align2::LEFT_BOTTOM,
            label,
            13.0,
            egui::Color32::from_gray(225),
        );
        let swatch = egui::Rect::from_center_size(
            egui::pos2(screen.left() + 22.0, text.center().y),
            egui::vec2(10.0, 10.0),
        );
        painter.rect_filled(swatch, 2.0, *colour);
        painted.push(text.union(swatch));
        y = text.top() - 3.0;
    }
    let plate = egui::Color32::from_black_alpha(crate::layout::labels::PLATE_ALPHA);
    for (at, group) in plates.into_iter().zip([&painted[..captions], &painted[captions..]]) {
        if let Some(r) = group.iter().copied().reduce(egui::Rect::union) {
            painter.set(at, egui::Shape::rect_filled(r.expand(6.0), 0.0, plate));
        }
    }
    painted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_toggles_the_panels_and_p_the_presentation() {
        use Chrome::*;
        assert_eq!(Panels.after_key(true, false), Hidden);
        assert_eq!(Hidden.after_key(true, false), Panels);
        assert_eq!(Panels.after_key(false, true), Presentation);
        assert_eq!(Hidden.after_key(false, true), Presentation);
        assert_eq!(Presentation.after_key(false, true), Panels);
        assert_eq!(Presentation.after_key(true, false), Panels);
        assert_eq!(Hidden.after_key(false, false), Hidden);
    }
}
