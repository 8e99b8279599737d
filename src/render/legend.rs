//! What the colours mean, in one place: the viewer's presentation overlay
//! (egui) and the titles and legends painted into headless stills and clips
//! (`record::overlay`) both read it, so a legend always says what the
//! current encoding is.

use crate::arch::{Summary, TensorKind, kind_color};
use crate::view::ViewSettings;
use crate::weights::color::{ColorBy, viridis};

/// sRGB colour of a swatch and what it stands for.
pub type Entry = ([u8; 3], String);

/// The prompt as a title's second line: the tokens' text on one line, at
/// most 90 characters (the end kept: where the model is).
pub fn prompt_line(texts: &[String]) -> String {
    let line: String = texts.concat().split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= 90 {
        return format!("“{line}”");
    }
    let tail: String = chars[chars.len() - 89..].iter().collect();
    format!("“…{tail}”")
}

/// 8-bit sRGB of a linear colour.
fn srgb(linear: [f32; 3]) -> [u8; 3] {
    linear.map(|c| {
        let c = c.clamp(0.0, 1.0);
        let s = if c <= 0.003_130_8 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (s * 255.0).round() as u8
    })
}

/// A kind's palette colour.
pub fn kind_srgb(kind: TensorKind) -> [u8; 3] {
    let hex = kind_color(kind);
    [(hex >> 16) as u8, (hex >> 8) as u8, hex as u8]
}

/// The entries: in the city, what a cell's colour, a pulse and a beam mean;
/// then the kinds drawn, or the statistic the cubes are coloured by.
pub fn entries(summary: &Summary, settings: &ViewSettings, city: bool) -> Vec<Entry> {
    let mut entries = Vec::new();
    if city {
        use crate::city::view::heat;
        entries.push((
            srgb(heat(1.0)),
            "token's residual stream: strongest on its floor".to_string(),
        ));
        entries.push((
            srgb(heat(0.0)),
            "token's residual stream: weakest on its floor".to_string(),
        ));
        entries.push((
            srgb([1.0, 0.5, 0.12]),
            "attention: from key to query, brighter = more".to_string(),
        ));
    }
    if settings.color != ColorBy::Kind {
        let swatch = |t: f32| viridis(t).map(|c| (c * 255.0).round() as u8);
        entries.push((swatch(1.0), format!("weights: high {}", settings.color.label())));
        entries.push((swatch(0.0), format!("weights: low {}", settings.color.label())));
        return entries;
    }
    let mut kinds = summary.drawn_kinds();
    kinds.retain(|k| !settings.hidden_kinds.contains(k));
    entries.extend(kinds.into_iter().map(|k| {
        let label = if k == TensorKind::Other && summary.buffer_params > 0 {
            "other (buffers: masks, position ids)".to_string()
        } else {
            k.label().to_string()
        };
        (kind_srgb(k), label)
    }));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_prompts_keep_their_end_and_linear_colours_become_srgb() {
        let texts = vec!["word ".to_string(); 40];
        let line = prompt_line(&texts);
        assert!(line.starts_with("“…") && line.chars().count() == 92);
        assert_eq!(srgb([0.0, 1.0, 0.001]), [0, 255, 3]);
        assert_eq!(srgb([2.0, -1.0, 0.5]), [255, 0, 188]);
    }

    #[test]
    fn every_drawn_colour_has_an_entry_buffers_too() {
        // The gpt2 catalogue entry carries the causal-mask buffers `h.N.attn.bias`.
        let current = crate::model::CurrentModel::load(
            &crate::arch::ModelRef::Id("gpt2".into()),
            &crate::arch::LoadOptions {
                catalogue_only: true,
                ..Default::default()
            },
            &ViewSettings::default(),
        )
        .unwrap();
        let entries = entries(&current.summary, &ViewSettings::default(), false);
        let drawn: std::collections::BTreeSet<TensorKind> = current.arch.tensors.iter().map(|t| t.kind).collect();
        for kind in drawn {
            assert!(
                entries.iter().any(|(c, _)| *c == kind_srgb(kind)),
                "{kind:?} is drawn but not in the legend"
            );
        }
        assert!(entries.iter().any(|(_, l)| l.contains("buffers")));
    }
}
