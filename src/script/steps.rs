//! The frame-script language (pure, no Bevy): text -> [`Step`]s, every error
//! naming its line. Scripts come from files a user passes, so nothing here
//! trusts them: numbers must be finite, counts whole.

use std::path::PathBuf;

use crate::arch::TensorKind;
use crate::layout::LayoutKind;

/// One command of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    WaitReady,
    Frames(u32),
    Orbit {
        yaw: f32,
        pitch: f32,
    },
    Zoom(f32),
    /// `pointer X Y`: moves the mouse pointer to that window position (logical pixels).
    Pointer(f32, f32),
    /// `panels show|bars|hide|presentation`.
    Panels(PanelsMode),
    /// `expect-hovered NAME|nothing`: the script fails unless the pointer is over that tensor.
    ExpectHovered(Option<String>),
    Focus(String),
    Layout(LayoutKind),
    /// `color kind|rms|mean-abs|max-abs|std|sparsity|outliers`.
    Color(crate::weights::color::ColorBy),
    /// `weights NAME`: opens the zoom into that tensor's weights (its stack of layers).
    Weights(String),
    /// `weights close`.
    CloseWeights,
    /// Until the zoom's planes and the tiles the camera needs are drawn (or failed).
    WaitWeights,
    /// Until the weight statistics (or, coloured by `delta`, the difference) are computed or failed.
    WaitStats,
    Hide(TensorKind),
    Screenshot(PathBuf),
    Prompt {
        text: String,
        new_tokens: usize,
    },
    WaitRun,
    Select(usize),
    Speed(f32),
    Playhead(f32),
    Tokens(Option<usize>),
    ArcsLayer(Option<usize>),
    /// `heads mean|max|N`: how the city's beams combine attention heads (N: that head alone).
    Heads(Heads),
    Threshold(f32),
    Pca3d(Option<usize>),
    Record,
    Shot(u32),
    Exit,
}

/// Which attention heads the city's beams show (`mean`, `max` or a head
/// number): the frame script's `heads` and `render`/`record --heads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heads {
    #[default]
    Mean,
    Max,
    One(usize),
}

impl std::str::FromStr for Heads {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mean" => Ok(Heads::Mean),
            "max" => Ok(Heads::Max),
            h => h
                .parse()
                .map(Heads::One)
                .map_err(|_| format!("heads `{h}`: expected `mean`, `max` or a head number")),
        }
    }
}

/// What the viewer's UI shows (`panels …`): the panels (model and prompt
/// panels open), the panels folded to bars, none, or the presentation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelsMode {
    Show,
    Bars,
    Hide,
    Presentation,
}

/// `all` (None) or a whole number.
fn all_or(s: &str) -> Result<Option<usize>, std::num::ParseIntError> {
    if s == "all" { Ok(None) } else { s.parse().map(Some) }
}

/// Parses a script; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let err = |what: &str| format!("line {}: {what} (`{line}`)", n + 1);
        let num = |s: &str| {
            s.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err("expected a number"))
        };
        let step = match cmd {
            "wait-ready" => Step::WaitReady,
            "frames" => Step::Frames(rest.parse().map_err(|_| err("expected a frame count"))?),
            "orbit" => {
                let (a, b) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| err("expected YAW PITCH"))?;
                Step::Orbit {
                    yaw: num(a.trim())?,
                    pitch: num(b.trim())?,
                }
            }
            "zoom" => Step::Zoom(num(rest)?).clone(),
            "panels" => Step::Panels(match rest {
                "show" => PanelsMode::Show,
                "bars" => PanelsMode::Bars,
                "hide" => PanelsMode::Hide,
                "presentation" => PanelsMode::Presentation,
                _ => return Err(err("panels is show, bars, hide or presentation")),
            }),
            "expect-hovered" if !rest.is_empty() => Step::ExpectHovered((rest != "nothing").then(|| rest.to_string())),
            "pointer" => {
                let (x, y) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| err("expected X Y"))?;
                Step::Pointer(num(x.trim())?, num(y.trim())?)
            }
            "focus" if !rest.is_empty() => Step::Focus(rest.to_string()),
            "layout" => Step::Layout(match rest {
                "trunk" => LayoutKind::Trunk,
                "floors" => LayoutKind::Floors,
                "city" => LayoutKind::City,
                _ => return Err(err("layout is trunk, floors or city")),
            }),
            "hide" => Step::Hide(
                TensorKind::ALL
                    .into_iter()
                    .find(|k| k.label() == rest)
                    .ok_or_else(|| err("unknown kind"))?,
            ),
            "screenshot" if !rest.is_empty() => Step::Screenshot(PathBuf::from(rest)),
            "prompt" if !rest.is_empty() => Step::Prompt {
                text: rest.replace("\\n", "\n"),
                new_tokens: 0,
            },
            "generate" => {
                let (n, text) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| err("generate N TEXT"))?;
                Step::Prompt {
                    text: text.trim().replace("\\n", "\n"),
                    new_tokens: n.parse().map_err(|_| err("expected a token count"))?,
                }
            }
            "wait-run" => Step::WaitRun,
            "color" => Step::Color(match rest {
                "kind" => crate::weights::color::ColorBy::Kind,
                "delta" => crate::weights::color::ColorBy::Delta,
                other => {
                    crate::weights::color::ColorBy::Stat(crate::weights::color::Stat::parse(other).ok_or_else(
                        || err("expected kind, delta, rms, mean-abs, max-abs, std, sparsity or outliers"),
                    )?)
                }
            }),
            "wait-stats" => Step::WaitStats,
            "weights" if rest == "close" => Step::CloseWeights,
            "weights" if !rest.is_empty() => Step::Weights(rest.to_string()),
            "wait-weights" => Step::WaitWeights,
            "speed" => Step::Speed(num(rest)?.max(0.01)),
            "select" => Step::Select(rest.parse().map_err(|_| err("expected a token position"))?),
            "playhead" => Step::Playhead(num(rest)?.max(0.0)),
            "tokens" => Step::Tokens(all_or(rest).map_err(|_| err("expected a token count or `all`"))?),
            "arcs-layer" => Step::ArcsLayer(all_or(rest).map_err(|_| err("expected a block or `all`"))?),
            "heads" => Step::Heads(rest.parse().map_err(|e: String| err(&e))?),
            "threshold" => Step::Threshold(num(rest)?.clamp(0.0, 1.0)),
            "pca3d" => Step::Pca3d(match rest {
                "off" => None,
                f => Some(f.parse().map_err(|_| err("expected a hidden state or `off`"))?),
            }),
            "record" => Step::Record,
            "shot" => Step::Shot(match rest {
                "" | "1" => 1,
                "2" => 2,
                "4" => 4,
                _ => return Err(err("expected 1, 2 or 4")),
            }),
            "exit" => Step::Exit,
            _ => return Err(err("unknown command")),
        };
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_names_bad_lines() {
        let steps = parse("wait-ready\nframes 3 # comment\norbit 10 -5\nzoom 0.5\nfocus h.0.attn.c_attn.weight\nlayout floors\nhide norm\nscreenshot a.png\nexit\n").unwrap();
        assert_eq!(steps.len(), 9);
        assert_eq!(steps[2], Step::Orbit { yaw: 10.0, pitch: -5.0 });
        assert_eq!(steps[6], Step::Hide(TensorKind::Norm));
        assert!(parse("fly away").unwrap_err().starts_with("line 1"));
        let city = parse(
            "playhead 2.5\ntokens 4\ntokens all\narcs-layer 3\narcs-layer all\nthreshold 0.3\nheads 2\nheads mean",
        )
        .unwrap();
        assert_eq!(
            city,
            [
                Step::Playhead(2.5),
                Step::Tokens(Some(4)),
                Step::Tokens(None),
                Step::ArcsLayer(Some(3)),
                Step::ArcsLayer(None),
                Step::Threshold(0.3),
                Step::Heads(Heads::One(2)),
                Step::Heads(Heads::Mean)
            ]
        );
        let zoom = parse("weights h.0.attn.c_attn.weight\nwait-weights\nweights close").unwrap();
        assert_eq!(
            zoom,
            [
                Step::Weights("h.0.attn.c_attn.weight".into()),
                Step::WaitWeights,
                Step::CloseWeights
            ]
        );
        assert_eq!(parse("pointer 10 20.5").unwrap(), [Step::Pointer(10.0, 20.5)]);
        assert!(parse("pointer 10").is_err());
        assert_eq!(
            parse("panels presentation").unwrap(),
            [Step::Panels(PanelsMode::Presentation)]
        );
        assert_eq!(parse("panels bars").unwrap(), [Step::Panels(PanelsMode::Bars)]);
        assert!(
            parse("panels off")
                .unwrap_err()
                .contains("show, bars, hide or presentation")
        );
        assert_eq!(
            parse("expect-hovered wte.weight\nexpect-hovered nothing").unwrap(),
            [
                Step::ExpectHovered(Some("wte.weight".into())),
                Step::ExpectHovered(None)
            ]
        );
        assert!(parse("weights").unwrap_err().contains("unknown command"));
        assert!(parse("tokens many").unwrap_err().contains("`all`"));
        assert!(parse("\n\nzoom x").unwrap_err().starts_with("line 3"));
        assert!(parse("zoom NaN").is_err() && parse("orbit inf 0").is_err());
    }
}
