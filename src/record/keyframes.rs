//! RON camera-path files (`record --path FILE`), parsed and checked (pure, no
//! Bevy): the file comes from a user, so every number must be finite and times
//! increasing before a frame is rendered.

use serde::Deserialize;

use crate::layout::LayoutKind;

/// A keyframe of a RON camera path.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Keyframe {
    /// Seconds from the start of the clip.
    pub time: f32,
    pub position: (f32, f32, f32),
    pub look_at: (f32, f32, f32),
    /// Switch the arrangement when this keyframe is reached.
    #[serde(default)]
    pub layout: Option<LayoutKind>,
    /// Select this token (city panels and glow) when this keyframe is reached.
    #[serde(default)]
    pub select: Option<usize>,
}

/// A RON camera path file: `(keyframes: [(time: 0.0, position: (..), look_at: (..)), ...])`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyframeFile {
    pub keyframes: Vec<Keyframe>,
}

impl KeyframeFile {
    /// Parses and checks a path: at least one keyframe, finite numbers, times
    /// increasing from >= 0, eye and target apart.
    pub fn parse(text: &str) -> Result<KeyframeFile, String> {
        let file: KeyframeFile = ron::from_str(text).map_err(|e| {
            format!(
                "not a camera path (RON) at {e}; expected `(keyframes: [(time: 0.0, position: (x, y, z), look_at: (x, y, z)), ...])`"
            )
        })?;
        if file.keyframes.is_empty() {
            return Err("the camera path has no keyframes".into());
        }
        for (i, k) in file.keyframes.iter().enumerate() {
            let numbers = [
                k.time,
                k.position.0,
                k.position.1,
                k.position.2,
                k.look_at.0,
                k.look_at.1,
                k.look_at.2,
            ];
            if numbers.iter().any(|v| !v.is_finite()) || k.time < 0.0 {
                return Err(format!("keyframe {i}: times must be >= 0 and every number finite"));
            }
            if i > 0 && k.time <= file.keyframes[i - 1].time {
                return Err(format!(
                    "keyframe {i}: time {} is not after the previous keyframe's",
                    k.time
                ));
            }
            let apart = [
                k.position.0 - k.look_at.0,
                k.position.1 - k.look_at.1,
                k.position.2 - k.look_at.2,
            ];
            if apart.iter().map(|d| d * d).sum::<f32>().sqrt() < 1e-4 {
                return Err(format!("keyframe {i}: position and look_at are the same point"));
            }
        }
        Ok(file)
    }
}
