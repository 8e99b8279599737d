//! Panels that fold to slim bars: the model panel (left), the tensor tree
//! (right) and the prompt panel (bottom) each have a close button that folds
//! it to a 30-px bar along its edge, and the bar a button that opens it again
//! (animated); the floating Neural city window collapses to its title bar.
//! The tree starts folded, so the 3D view gets the room; the model and
//! prompt panels start open, and the city window too on windows 1600 px
//! wide or more (narrower, it starts as its title bar). Frame script: `panels bars`
//! folds them all, `panels show` opens all but the tree.

use bevy::prelude::*;
use bevy_egui::egui;

/// Width (or, at the bottom, height) of a folded panel's bar.
pub(super) const BAR: f32 = 30.0;

/// Which panels are open (the rest are slim bars).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folds {
    pub model: bool,
    pub tree: bool,
    pub prompt: bool,
    /// A request for the floating Neural city window: open (`Some(true)`) or
    /// collapsed to its title bar, applied once the window shows (its own ▼
    /// button folds it too; egui keeps that state).
    pub city: Option<bool>,
}

impl Default for Folds {
    fn default() -> Self {
        Folds {
            model: true,
            tree: false,
            prompt: true,
            city: None,
        }
    }
}

impl Folds {
    /// Every panel folded to its bar.
    pub const BARS: Folds = Folds {
        model: false,
        tree: false,
        prompt: false,
        city: Some(false),
    };
}

/// The window edge a panel sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Edge {
    Left,
    Right,
    Bottom,
}

impl Edge {
    /// The arrow that opens a panel on this edge, and the one that folds it.
    fn arrows(self) -> (&'static str, &'static str) {
        match self {
            Edge::Left => ("›", "‹"),
            Edge::Right => ("‹", "›"),
            Edge::Bottom => ("⏶", "⏷"),
        }
    }

    fn panel(self, id: String) -> egui::Panel {
        match self {
            Edge::Left => egui::Panel::left(id),
            Edge::Right => egui::Panel::right(id),
            Edge::Bottom => egui::Panel::bottom(id),
        }
    }
}

/// One foldable panel: its edge, id, name (in its buttons' hover text), the
/// word on its bar, and its default open size.
pub(super) struct Fold {
    pub edge: Edge,
    pub id: &'static str,
    pub name: &'static str,
    pub bar: &'static str,
    pub size: f32,
}

/// The model panel.
pub(super) const MODEL: Fold = Fold {
    edge: Edge::Left,
    id: "model_panel",
    name: "model panel",
    bar: "model",
    size: 300.0,
};

/// The tensor tree.
pub(super) const TREE: Fold = Fold {
    edge: Edge::Right,
    id: "tree_panel",
    name: "tensor tree (search every layer and tensor)",
    bar: "tensors",
    size: 280.0,
};

/// The prompt panel.
pub(super) const PROMPT: Fold = Fold {
    edge: Edge::Bottom,
    id: "prompt_panel",
    name: "prompt panel",
    bar: "prompt",
    size: 190.0,
};

/// Shows the panel open (with a fold button above `content`) or as its bar,
/// animating between the two; returns the size it takes along its axis.
pub(super) fn show(root: &mut egui::Ui, fold: &Fold, open: &mut bool, content: impl FnOnce(&mut egui::Ui)) -> f32 {
    let id = fold.id.to_string();
    let bar = fold.edge.panel(format!("{id}_bar")).resizable(false).exact_size(BAR);
    let full = fold.edge.panel(id).resizable(true).default_size(fold.size);
    let (open_arrow, fold_arrow) = fold.edge.arrows();
    let rect = egui::Panel::show_animated_between_inside(root, *open, bar, full, |ui, expanded| {
        if expanded < 1.0 {
            bar_contents(ui, fold, open_arrow, open);
            return;
        }
        let hover = format!("Fold the {} to a slim bar", fold.name);
        if ui
            .small_button(format!("{fold_arrow}  fold"))
            .on_hover_text(hover)
            .clicked()
        {
            *open = false;
        }
        content(ui);
    })
    .response
    .rect;
    match fold.edge {
        Edge::Left | Edge::Right => rect.width(),
        Edge::Bottom => rect.height(),
    }
}

/// A folded panel: the button that opens it and its name, along the bar.
fn bar_contents(ui: &mut egui::Ui, fold: &Fold, arrow: &str, open: &mut bool) {
    let hover = format!("Open the {}", fold.name);
    let name = egui::RichText::new(fold.bar).weak();
    let clicked = if fold.edge == Edge::Bottom {
        ui.horizontal_centered(|ui| {
            let clicked = ui
                .add(egui::Button::new(arrow).min_size(egui::vec2(40.0, BAR - 10.0)))
                .on_hover_text(&hover)
                .clicked();
            ui.add(egui::Label::new(name).selectable(false));
            clicked
        })
        .inner
    } else {
        let clicked = ui
            .add(egui::Button::new(arrow).min_size(egui::vec2(BAR - 10.0, 40.0)))
            .on_hover_text(&hover)
            .clicked();
        ui.add(egui::Label::new(vertical(fold.bar)).selectable(false));
        clicked
    };
    if clicked {
        *open = true;
    }
}

/// `name` written one letter per line (down a side bar), weak.
fn vertical(name: &str) -> egui::RichText {
    let letters: Vec<String> = name.chars().filter(|c| !c.is_whitespace()).map(String::from).collect();
    egui::RichText::new(letters.join("\n")).weak()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_starts_folded_and_bars_fold_everything() {
        let f = Folds::default();
        assert!(f.model && f.prompt && !f.tree);
        assert_ne!(Folds::BARS, f);
        assert_eq!(vertical("model panel").text(), "m\no\nd\ne\nl\np\na\nn\ne\nl");
    }

    #[test]
    fn every_arrow_is_in_the_default_fonts() {
        // A missing glyph draws as an empty box (it did for ˄ ˅).
        let ctx = egui::Context::default();
        let _ = ctx.run_ui(egui::RawInput::default(), |_| {});
        let font = egui::FontId::proportional(14.0);
        for edge in [Edge::Left, Edge::Right, Edge::Bottom] {
            let (open, fold) = edge.arrows();
            ctx.fonts_mut(|f| assert!(f.has_glyphs(&font, open) && f.has_glyphs(&font, fold), "{edge:?}"));
        }
    }
}
