//! Frame scripts for the windowed viewer (`tensorcity view --script FILE`):
//! reproducible demos and end-to-end tests under Xvfb. One command per line,
//! `#` starts a comment:
//!
//! ```text
//! wait-ready              # model loaded and cubes actually drawn (or the load failed)
//! frames 30               # let 30 frames pass
//! orbit 120 25            # glide to yaw 120°, pitch 25°
//! zoom 0.5                # half the current distance
//! focus h.5.mlp.c_fc.weight   # select a tensor and glide to it
//! layout floors           # switch arrangement
//! hide norm               # hide a kind (legend label)
//! prompt ROMEO:\nBut soft  # run a prompt (`\n` is a newline)
//! generate 20 ROMEO:      # run a prompt and generate 20 tokens (greedy)
//! wait-run                # until the run is done (or failed)
//! select 3                # select token 3 (logit lens, panels)
//! speed 0.5               # city animation: layers per second
//! playhead 2.5            # pause the city at hidden state 2.5 (a pulse half way up)
//! tokens 4                # show the first 4 token columns (`tokens all`: every one)
//! arcs-layer 3            # arcs of block 3 only (`arcs-layer all`: every block)
//! threshold 0.3           # hide arcs below this weight
//! pca3d 4                 # tokens on PC1-3 of hidden state 4 in the scene (`pca3d off`)
//! record                  # start / stop recording the window (as F9)
//! shot 2                  # a PNG screenshot at 1, 2 or 4 times the view (as F12)
//! screenshot shot.png     # save the window; waits until written
//! exit
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy_panorbit_camera::PanOrbitCamera;

use crate::activations::{CurrentRun, Prompt, RunStatus, Runner, SelectedToken};
use crate::arch::TensorKind;
use crate::camera::{FocusOn, MainCamera};
use crate::layout::LayoutKind;
use crate::render::{CubeDraws, Highlight};
use crate::spawn::{Cube, Tensor};
use crate::view::ViewSettings;
use crate::{AppState, AppSystems};

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    WaitReady,
    Frames(u32),
    Orbit {
        yaw: f32,
        pitch: f32,
    },
    Zoom(f32),
    Focus(String),
    Layout(LayoutKind),
    /// `color kind|rms|mean-abs|max-abs|std|sparsity|outliers`.
    Color(crate::weights::color::ColorBy),
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
    Threshold(f32),
    Pca3d(Option<usize>),
    Record,
    Shot(u32),
    Exit,
}

/// What the script touches of the inference side.
#[derive(bevy::ecs::system::SystemParam)]
pub(crate) struct RunParams<'w> {
    prompts: MessageWriter<'w, Prompt>,
    run: Res<'w, CurrentRun>,
    runner: Res<'w, Runner>,
    selected: ResMut<'w, SelectedToken>,
    playback: ResMut<'w, crate::city::CityPlayback>,
    city: ResMut<'w, crate::city::CityView>,
    pca: ResMut<'w, crate::city::pca3d::PcaScene>,
    toggles: MessageWriter<'w, crate::record::live::ToggleRecording>,
    shots: MessageWriter<'w, crate::record::live::TakeScreenshot>,
    weight_stats: Res<'w, crate::weight_stats::WeightStats>,
    weight_diff: Res<'w, crate::weight_stats::WeightDiff>,
}

#[derive(Resource, Debug)]
pub struct Script {
    steps: Vec<Step>,
    next: usize,
    frames_left: u32,
    draws_at_ready: Option<u64>,
    saved: Option<Arc<AtomicBool>>,
}

impl Script {
    pub fn load(path: &Path) -> anyhow::Result<Script> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let steps = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Script {
            steps,
            next: 0,
            frames_left: 0,
            draws_at_ready: None,
            saved: None,
        })
    }
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
        let num = |s: &str| s.parse::<f32>().map_err(|_| err("expected a number"));
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
            "speed" => Step::Speed(num(rest)?.max(0.01)),
            "select" => Step::Select(rest.parse().map_err(|_| err("expected a token position"))?),
            "playhead" => Step::Playhead(num(rest)?.max(0.0)),
            "tokens" => Step::Tokens(all_or(rest).map_err(|_| err("expected a token count or `all`"))?),
            "arcs-layer" => Step::ArcsLayer(all_or(rest).map_err(|_| err("expected a block or `all`"))?),
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

pub(crate) fn plugin(app: &mut App) {
    app.add_systems(Update, run_script.in_set(AppSystems::Input));
}

fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    state: Res<State<AppState>>,
    mut settings: ResMut<ViewSettings>,
    mut highlight: ResMut<Highlight>,
    tensors: Query<(Entity, &Tensor, &Cube)>,
    mut cameras: Query<&mut PanOrbitCamera, With<MainCamera>>,
    mut focus: MessageWriter<FocusOn>,
    mut exit: MessageWriter<AppExit>,
    mut inference: RunParams,
    draws: Res<CubeDraws>,
) {
    if script.frames_left > 0 {
        script.frames_left -= 1;
        return;
    }
    if let Some(saved) = &script.saved {
        if !saved.load(Ordering::SeqCst) {
            return;
        }
        script.saved = None;
    }
    let Some(step) = script.steps.get(script.next).cloned() else {
        exit.write(AppExit::Success);
        return;
    };
    match step {
        Step::WaitReady => {
            match state.get() {
                AppState::Loading => return,
                // A failed load shows the error panel; let the script go on (and screenshot it).
                AppState::Error => {
                    script.frames_left = 10;
                    script.next += 1;
                    return;
                }
                AppState::Ready => {}
            }
            // Ready means loaded; wait until the cubes have really been drawn a few times.
            let base = *script.draws_at_ready.get_or_insert(draws.count());
            if draws.count() < base + 3 {
                return;
            }
            script.frames_left = 10;
        }
        Step::Frames(n) => script.frames_left = n,
        Step::Orbit { yaw, pitch } => {
            for mut cam in &mut cameras {
                cam.target_yaw = yaw.to_radians();
                cam.target_pitch = pitch.to_radians();
            }
        }
        Step::Zoom(f) => {
            for mut cam in &mut cameras {
                cam.target_radius *= f.max(0.01);
            }
        }
        Step::Focus(name) => match tensors.iter().find(|(_, t, _)| t.name == name) {
            Some((e, _, cube)) => {
                highlight.selected = Some(e);
                focus.write(FocusOn {
                    center: cube.center,
                    size: cube.size,
                });
            }
            None => {
                error!("script: no tensor named `{name}`");
                exit.write(AppExit::error());
                return;
            }
        },
        Step::Layout(kind) => settings.layout = kind,
        Step::Color(color) => settings.color = color,
        Step::WaitStats => {
            use crate::weight_stats::{WeightDiff, WeightStats};
            let waiting = match settings.color {
                crate::weights::color::ColorBy::Delta => {
                    matches!(*inference.weight_diff, WeightDiff::Idle | WeightDiff::Computing { .. })
                }
                _ => matches!(
                    *inference.weight_stats,
                    WeightStats::Idle | WeightStats::Computing { .. }
                ),
            };
            if waiting {
                return;
            }
        }
        Step::Hide(kind) => {
            settings.hidden_kinds.insert(kind);
        }
        Step::Screenshot(path) => {
            let done = Arc::new(AtomicBool::new(false));
            let flag = done.clone();
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(path))
                .observe(move |_: On<bevy::render::view::screenshot::ScreenshotCaptured>| {
                    flag.store(true, Ordering::SeqCst)
                });
            script.saved = Some(done);
        }
        Step::Prompt { text, new_tokens } => {
            // The model's weights load after its architecture: wait for them.
            if matches!(
                *inference.runner,
                Runner::Preparing(_) | Runner::Connecting(_) | Runner::None
            ) {
                return;
            }
            inference.prompts.write(Prompt {
                text,
                new_tokens,
                decoding: crate::inference::stream::Decoding::Greedy,
            });
            script.frames_left = 2;
        }
        Step::WaitRun => {
            if inference.run.status == RunStatus::Running {
                return;
            }
        }
        Step::Select(position) => inference.selected.0 = Some(position),
        Step::Speed(speed) => inference.playback.speed = speed,
        Step::Playhead(position) => {
            inference.playback.playing = false;
            inference.playback.position = position;
        }
        Step::Tokens(tokens) => {
            inference.playback.playing = false;
            inference.playback.tokens = tokens.map(|n| n.max(1));
        }
        Step::ArcsLayer(layer) => inference.city.layer = layer,
        Step::Threshold(t) => inference.city.threshold = t,
        Step::Record => {
            inference.toggles.write(crate::record::live::ToggleRecording);
        }
        Step::Shot(scale) => {
            inference.shots.write(crate::record::live::TakeScreenshot { scale });
            script.frames_left = 8;
        }
        Step::Pca3d(floor) => {
            inference.pca.show_3d = floor.is_some();
            inference.pca.floor = floor;
        }
        Step::Exit => {
            exit.write(AppExit::Success);
            return;
        }
    }
    script.next += 1;
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
        let city = parse("playhead 2.5\ntokens 4\ntokens all\narcs-layer 3\narcs-layer all\nthreshold 0.3").unwrap();
        assert_eq!(
            city,
            [
                Step::Playhead(2.5),
                Step::Tokens(Some(4)),
                Step::Tokens(None),
                Step::ArcsLayer(Some(3)),
                Step::ArcsLayer(None),
                Step::Threshold(0.3)
            ]
        );
        assert!(parse("tokens many").unwrap_err().contains("`all`"));
        assert!(parse("\n\nzoom x").unwrap_err().starts_with("line 3"));
    }
}
