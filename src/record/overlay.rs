//! Text painted onto headless stills and clips, where there is no egui: the
//! presentation overlay the viewer's `P` shows — the model and the prompt
//! top left, the colour legend bottom left — and an optional title card
//! (`record --title`) across the lower third for the first seconds, fading
//! out. Glyphs come from egui's own font (Ubuntu Light) through ab_glyph;
//! sizes follow the frame's height, so 1280x720 and 1920x1080 read alike.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

use crate::layout::labels::{self, SceneLabels};
use crate::render::legend::Entry;

/// Seconds the title card is fully shown, then seconds it takes to fade.
const TITLE_HOLD: f32 = 3.0;
const TITLE_FADE: f32 = 0.8;

/// What is painted over the scene.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Top left: the model.
    pub caption: Option<String>,
    /// Under it: the prompt.
    pub subtitle: Option<String>,
    /// Bottom left: what the colours mean.
    pub legend: Vec<Entry>,
    /// A title card over the first seconds (`--title`).
    pub title: Option<String>,
    /// Layer names and token texts at their places in this frame (see
    /// `layout::labels`), sized for 720 lines.
    pub labels: SceneLabels,
}

/// Paints text onto RGBA8 frames.
pub struct Painter {
    font: FontRef<'static>,
}

impl Painter {
    pub fn new() -> anyhow::Result<Painter> {
        let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
            .map_err(|e| anyhow::anyhow!("the overlay font did not load ({e})"))?;
        Ok(Painter { font })
    }

    /// Width in pixels of `text` at `size` px.
    fn width(&self, text: &str, size: f32) -> f32 {
        let scaled = self.font.as_scaled(PxScale::from(size));
        let mut width = 0.0;
        let mut last = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(prev) = last {
                width += scaled.kern(prev, id);
            }
            width += scaled.h_advance(id);
            last = Some(id);
        }
        width
    }

    /// Draws `text` with its top-left at (x, y), `alpha` 0..1, with a soft shadow.
    fn text(&self, frame: &mut Frame, (x, y): (f32, f32), text: &str, size: f32, rgb: [u8; 3], alpha: f32) {
        let shadow = (size / 14.0).max(1.0);
        self.glyphs(frame, (x + shadow, y + shadow), text, size, [0, 0, 0], alpha * 0.8);
        self.glyphs(frame, (x, y), text, size, rgb, alpha);
    }

    fn glyphs(&self, frame: &mut Frame, (x, y): (f32, f32), text: &str, size: f32, rgb: [u8; 3], alpha: f32) {
        let scale = PxScale::from(size);
        let scaled = self.font.as_scaled(scale);
        let baseline = y + scaled.ascent();
        let mut caret = x;
        let mut last = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(prev) = last {
                caret += scaled.kern(prev, id);
            }
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += scaled.h_advance(id);
            last = Some(id);
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + gx as i64;
                let py = bounds.min.y as i64 + gy as i64;
                frame.blend(px, py, rgb, coverage * alpha);
            });
        }
    }

    /// Paints `overlay` onto `rgba` (`size` pixels) as it looks `t` seconds into a clip.
    pub fn paint(&self, overlay: &Overlay, rgba: &mut [u8], size: (u32, u32), t: f32) {
        let mut frame = Frame { rgba, size };
        let unit = size.1 as f32 / 720.0;
        let line_height = |size: f32| {
            let scaled = self.font.as_scaled(PxScale::from(size));
            scaled.ascent() - scaled.descent()
        };
        let mut measure = |text: &str, s: f32| [self.width(text, s), line_height(s)];
        let view = [0.0, 0.0, size.0 as f32, size.1 as f32];
        // Where the caption, the prompt and the legend go (the labels keep clear of them).
        let margin = 18.0 * unit;
        let (caption_size, subtitle_size, line) = (22.0 * unit, 17.0 * unit, 16.0 * unit);
        let caption_at = 14.0 * unit;
        let subtitle_at = caption_at
            + if overlay.caption.is_some() {
                caption_size * 1.25
            } else {
                0.0
            };
        let legend_at = size.1 as f32 - margin - line * overlay.legend.len() as f32 * 1.3;
        let swatch = line * 0.7;
        let mut clear = Vec::new();
        let mut text_rect = |(x, y): (f32, f32), lead: f32, text: &str, s: f32| {
            let [w, h] = measure(text, s);
            clear.push([x, y, x + lead + w, y + h]);
        };
        if let Some(caption) = &overlay.caption {
            text_rect((margin, caption_at), 0.0, caption, caption_size);
        }
        if let Some(sub) = &overlay.subtitle {
            text_rect((margin, subtitle_at), 0.0, sub, subtitle_size);
        }
        let captions = usize::from(overlay.caption.is_some()) + usize::from(overlay.subtitle.is_some());
        for (k, (_, label)) in overlay.legend.iter().enumerate() {
            text_rect((margin, legend_at + k as f32 * line * 1.3), swatch * 1.7, label, line);
        }
        // The caption and the legend each on a plate, as the labels are: a
        // close-up's beams and cubes pass behind them.
        let plates = [union(&clear[..captions]), union(&clear[captions..])];
        let plate = f32::from(labels::PLATE_ALPHA) / 255.0;
        for (i, r) in labels::placed(&overlay.labels, &mut measure, view, &clear, labels::MAX_LABELS) {
            let l = &overlay.labels.labels[i];
            let [red, green, blue, alpha] = l.rgba;
            frame.fill(
                (r[0], r[1]),
                (r[2] - r[0], r[3] - r[1]),
                [0, 0, 0],
                plate,
                labels::PLATE_GROW * unit,
            );
            self.text(
                &mut frame,
                (r[0], r[1]),
                &l.text,
                l.size,
                [red, green, blue],
                alpha as f32 / 255.0,
            );
        }
        for r in plates.into_iter().flatten() {
            frame.fill((r[0], r[1]), (r[2] - r[0], r[3] - r[1]), [0, 0, 0], plate, 6.0 * unit);
        }
        if let Some(caption) = &overlay.caption {
            self.text(
                &mut frame,
                (margin, caption_at),
                caption,
                caption_size,
                [255, 255, 255],
                1.0,
            );
        }
        if let Some(sub) = &overlay.subtitle {
            self.text(
                &mut frame,
                (margin, subtitle_at),
                sub,
                subtitle_size,
                [220, 220, 220],
                1.0,
            );
        }
        let mut y = legend_at;
        for (rgb, label) in &overlay.legend {
            let top = y + (line - swatch) * 0.55;
            frame.fill((margin, top), (swatch, swatch), [0, 0, 0], 0.6, 1.0 * unit);
            frame.fill((margin, top), (swatch, swatch), *rgb, 1.0, 0.0);
            self.text(
                &mut frame,
                (margin + swatch * 1.7, y),
                label,
                line,
                [230, 230, 230],
                1.0,
            );
            y += line * 1.3;
        }
        if let Some(title) = &overlay.title {
            let alpha = 1.0 - ((t - TITLE_HOLD) / TITLE_FADE).clamp(0.0, 1.0);
            if alpha > 0.0 {
                let s = 44.0 * unit;
                let width = self.width(title, s);
                let band = (0.0, size.1 as f32 * 0.66 - s * 0.6);
                frame.fill(band, (size.0 as f32, s * 2.2), [0, 0, 0], 0.5 * alpha, 0.0);
                let x = ((size.0 as f32 - width) / 2.0).max(margin);
                self.text(&mut frame, (x, band.1 + s * 0.5), title, s, [255, 255, 255], alpha);
            }
        }
    }
}

/// The smallest rectangle holding `rects` (none for none).
fn union(rects: &[[f32; 4]]) -> Option<[f32; 4]> {
    rects
        .iter()
        .copied()
        .reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])
}

/// An RGBA8 frame being painted.
struct Frame<'a> {
    rgba: &'a mut [u8],
    size: (u32, u32),
}

impl Frame<'_> {
    /// Blends `rgb` at `alpha` over pixel (x, y) (outside the frame: nothing).
    fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.size.0 as i64 || y >= self.size.1 as i64 {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let i = (y as usize * self.size.0 as usize + x as usize) * 4;
        if let Some(px) = self.rgba.get_mut(i..i + 3) {
            for (p, c) in px.iter_mut().zip(rgb) {
                *p = (*p as f32 * (1.0 - a) + c as f32 * a).round() as u8;
            }
        }
    }

    /// A rectangle at `(x, y)` of `(w, h)`, grown by `grow` on every side.
    fn fill(&mut self, (x, y): (f32, f32), (w, h): (f32, f32), rgb: [u8; 3], alpha: f32, grow: f32) {
        let (x0, y0) = ((x - grow).floor() as i64, (y - grow).floor() as i64);
        let (x1, y1) = ((x + w + grow).ceil() as i64, (y + h + grow).ceil() as i64);
        for py in y0.max(0)..y1.min(self.size.1 as i64) {
            for px in x0.max(0)..x1.min(self.size.0 as i64) {
                self.blend(px, py, rgb, alpha);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dark(size: (u32, u32)) -> Vec<u8> {
        [20u8, 20, 25, 255].repeat((size.0 * size.1) as usize)
    }

    fn lit(rgba: &[u8], size: (u32, u32), rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..size.0).map(move |x| (y * size.0 + x) as usize * 4))
            .filter(|&i| rgba[i] > 150 && rgba[i + 1] > 150)
            .count()
    }

    #[test]
    fn the_caption_legend_and_title_land_where_they_belong_and_the_title_fades() {
        let size = (640, 360);
        let painter = Painter::new().unwrap();
        let overlay = Overlay {
            caption: Some("gpt2".into()),
            subtitle: Some("“ROMEO:”".into()),
            legend: vec![([255, 200, 40], "attention".into())],
            title: Some("How GPT-2 reads a line".into()),
            labels: Default::default(),
        };
        let mut early = dark(size);
        painter.paint(&overlay, &mut early, size, 0.5);
        // Caption top left, title across the lower third, legend bottom left.
        assert!(lit(&early, size, 0..40) > 20);
        assert!(lit(&early, size, 200..260) > 100);
        assert!(lit(&early, size, 320..360) > 20);
        let mut late = dark(size);
        painter.paint(&overlay, &mut late, size, TITLE_HOLD + TITLE_FADE + 0.1);
        assert_eq!(lit(&late, size, 200..260), 0, "the title has faded");
        assert!(painter.width("wide text", 20.0) > painter.width("wide", 20.0));
    }
}
