//! Recording and screenshots from the running viewer: F9 (or the ⏺ button)
//! records the window to an MP4 at true speed (30 fps; frames repeat when the
//! app draws slower, so the clip keeps wall-clock time), with a red indicator;
//! F12 (or 📷) saves a PNG at the window's resolution or 2x / 4x larger
//! (rendered offscreen from the same camera). Files land in the current folder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use super::encode::{FrameSink, Mp4Sink, check_ffmpeg};
use crate::camera::{MainCamera, UiFocus};

/// Frames per second of in-app recordings.
pub const LIVE_FPS: u32 = 30;

pub struct LiveCapturePlugin;

impl Plugin for LiveCapturePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<LiveCapture>()
            .add_message::<ToggleRecording>()
            .add_message::<TakeScreenshot>()
            .add_systems(Update, hotkeys.in_set(crate::AppSystems::Input))
            .add_systems(
                Update,
                (start_captures, feed_recording, finish_big_shot)
                    .chain()
                    .in_set(crate::AppSystems::Render),
            )
            .add_systems(
                EguiPrimaryContextPass,
                capture_ui.in_set(crate::ui::UiSystems::Overlays),
            );
    }
}

/// Start recording the window, or stop and save the recording (F9, ⏺, the `record` script command).
#[derive(Message, Debug, Clone, Copy)]
pub struct ToggleRecording;

/// Save a PNG of the window at `scale` times its size (1, 2 or 4; F12, 📷, the `shot` script command).
#[derive(Message, Debug, Clone, Copy)]
pub struct TakeScreenshot {
    pub scale: u32,
}

/// In-app capture state.
#[derive(Resource, Default)]
pub struct LiveCapture {
    recording: Option<Recording>,
    /// Screenshot size as a multiple of the window (1, 2 or 4; the panel's choice).
    pub shot_scale: u32,
    /// A larger-than-window screenshot being rendered: (camera, target, frames waited).
    big_shot: Option<(Entity, Handle<Image>, u32, String)>,
    /// The last thing to tell the user, and until when.
    message: Option<(String, Instant)>,
}

/// To the writer thread: a frame captured at a time since the start, or the end.
enum ToWriter {
    Frame(Duration, u32, u32, Vec<u8>),
    Stop,
}

struct Recording {
    tx: Option<SyncSender<ToWriter>>,
    writer: Option<JoinHandle<Result<u64, String>>>,
    started: Instant,
    path: String,
    in_flight: Arc<AtomicUsize>,
}

/// Closing the window (or `exit`) while recording saves the clip so far: the
/// app drops its resources on the way out, and the writer is told to stop and
/// waited for, so ffmpeg writes the trailer and the file gets its name.
impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(ToWriter::Stop);
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("tensorcity-{secs}")
}

/// Frames the writer must have written after a frame captured at `t`:
/// one per 1/fps of wall time, so slow frames are repeated.
pub fn frames_due(t: Duration, fps: u32) -> u64 {
    (t.as_secs_f64() * fps as f64).floor() as u64 + 1
}

/// Encodes frames on its own thread (ffmpeg's pipe may block).
fn writer(path: String, rx: Receiver<ToWriter>) -> Result<u64, String> {
    let mut sink: Option<(Mp4Sink, (u32, u32))> = None;
    let mut written = 0u64;
    // Screenshots still in flight hold senders: stop on the explicit message, not on hang-up.
    while let Ok(ToWriter::Frame(t, w, h, rgb)) = rx.recv() {
        let (mp4, size) = match &mut sink {
            Some(s) => s,
            None => {
                let mp4 =
                    Mp4Sink::spawn(std::path::Path::new(&path), (w, h), LIVE_FPS).map_err(|e| format!("{e:#}"))?;
                sink.insert((mp4, (w, h)))
            }
        };
        if *size != (w, h) {
            return Err(format!(
                "the window was resized while recording; {path} stops at {written} frames"
            ));
        }
        let due = frames_due(t, LIVE_FPS).max(written + 1);
        while written < due {
            mp4.push(&rgb).map_err(|e| format!("{e:#}"))?;
            written += 1;
        }
    }
    if let Some((mp4, _)) = sink {
        Box::new(mp4).finish().map_err(|e| format!("{e:#}"))?;
    }
    Ok(written)
}

/// F9 and F12 (unless a text field has the keyboard).
fn hotkeys(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    ui: Option<Res<UiFocus>>,
    live: Res<LiveCapture>,
    mut toggles: MessageWriter<ToggleRecording>,
    mut shots: MessageWriter<TakeScreenshot>,
) {
    let typing = ui.is_some_and(|u| u.keyboard);
    let pressed = |k| !typing && keys.as_ref().is_some_and(|keys| keys.just_pressed(k));
    if pressed(KeyCode::F9) {
        toggles.write(ToggleRecording);
    }
    if pressed(KeyCode::F12) {
        shots.write(TakeScreenshot {
            scale: live.shot_scale.max(1),
        });
    }
}

fn start_captures(
    mut toggles: MessageReader<ToggleRecording>,
    mut shots: MessageReader<TakeScreenshot>,
    mut live: ResMut<LiveCapture>,
    mut commands: Commands,
    windows: Query<&Window>,
    cameras: Query<(&Camera, &Transform, &Projection), With<MainCamera>>,
    mut images: ResMut<Assets<Image>>,
) {
    // Two toggles in one frame cancel out.
    if toggles.read().count() % 2 == 1 {
        toggle_recording(&mut live);
    }
    if let Some(shot) = shots.read().last().copied() {
        let name = format!("{}.png", stamp());
        let scale = shot.scale.clamp(1, 4);
        if scale == 1 {
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(name.clone()));
            live.message = Some((format!("saved {name}"), Instant::now() + Duration::from_secs(4)));
        } else if live.big_shot.is_none() {
            // The same view, rendered offscreen at `scale` times the 3D viewport's size.
            let Ok((camera, transform, projection)) = cameras.single() else {
                return;
            };
            let size = camera
                .physical_viewport_size()
                .or_else(|| {
                    windows
                        .iter()
                        .next()
                        .map(|w| UVec2::new(w.physical_width(), w.physical_height()))
                })
                .unwrap_or(UVec2::new(1280, 720))
                * scale;
            let max = crate::offscreen::MAX_EDGE;
            let size = if size.max_element() > max {
                size * max / size.max_element()
            } else {
                size
            };
            let (bundle, handle) = crate::offscreen::camera_bundle(&mut images, (size.x, size.y), *transform);
            let entity = commands
                .spawn((
                    bundle,
                    Camera { order: -1, ..default() },
                    projection.clone(),
                    Name::new("screenshot camera"),
                ))
                .id();
            live.big_shot = Some((entity, handle, 0, name));
        }
    }
}

fn toggle_recording(live: &mut LiveCapture) {
    if let Some(mut rec) = live.recording.take() {
        if let Some(tx) = rec.tx.take() {
            let _ = tx.send(ToWriter::Stop);
        }
        let result = rec.writer.take().map(|w| w.join());
        let text = match result {
            Some(Ok(Ok(frames))) => format!(
                "saved {} ({frames} frames, {:.1} s)",
                rec.path,
                frames as f64 / LIVE_FPS as f64
            ),
            Some(Ok(Err(e))) => format!("recording failed: {e}"),
            _ => "recording failed: the encoder stopped".to_string(),
        };
        live.message = Some((text, Instant::now() + Duration::from_secs(6)));
        return;
    }
    if let Err(e) = check_ffmpeg() {
        live.message = Some((format!("{e:#}"), Instant::now() + Duration::from_secs(10)));
        return;
    }
    let path = format!("{}.mp4", stamp());
    let (tx, rx) = sync_channel(8);
    let for_writer = path.clone();
    let writer = std::thread::spawn(move || writer(for_writer, rx));
    live.recording = Some(Recording {
        tx: Some(tx),
        writer: Some(writer),
        started: Instant::now(),
        path,
        in_flight: Arc::default(),
    });
}

/// Asks for a window screenshot each frame (at most two in flight) and hands it to the writer.
fn feed_recording(mut commands: Commands, mut live: ResMut<LiveCapture>) {
    let Some(rec) = &live.recording else { return };
    if rec.writer.as_ref().is_some_and(|w| w.is_finished()) {
        // The writer ended early (window resized, ffmpeg failed): stop and say why.
        toggle_recording(&mut live);
        return;
    }
    if rec.in_flight.load(Ordering::SeqCst) >= 2 {
        return;
    }
    let Some(tx) = rec.tx.clone() else { return };
    let t = rec.started.elapsed();
    let in_flight = rec.in_flight.clone();
    in_flight.fetch_add(1, Ordering::SeqCst);
    commands
        .spawn(Screenshot::primary_window())
        .observe(move |captured: On<ScreenshotCaptured>| {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let (w, h) = (captured.image.width(), captured.image.height());
            if let Ok(img) = captured.image.clone().try_into_dynamic() {
                // try_send: a frame arriving after the stop (or while the writer is
                // busy) is dropped rather than blocking the app.
                let _ = tx.try_send(ToWriter::Frame(t, w, h, img.to_rgb8().into_raw()));
            }
        });
}

/// Takes the larger screenshot once its camera has rendered a few frames, then removes the camera.
fn finish_big_shot(mut commands: Commands, mut live: ResMut<LiveCapture>) {
    let Some((camera, handle, waited, name)) = live.big_shot.as_mut() else {
        return;
    };
    *waited += 1;
    if *waited < 4 {
        return;
    }
    let (camera, path) = (*camera, name.clone());
    commands.spawn(Screenshot::image(handle.clone())).observe(
        move |captured: On<ScreenshotCaptured>, mut commands: Commands| {
            if let Ok(img) = captured.image.clone().try_into_dynamic()
                && let Err(e) = img.to_rgb8().save(&path)
            {
                error!("{path}: {e}");
            }
            commands.entity(camera).despawn();
        },
    );
    live.message = Some((format!("saved {name}"), Instant::now() + Duration::from_secs(4)));
    live.big_shot = None;
}

/// The ⏺ / 📷 buttons over the 3D view, the REC indicator and the last message.
pub(crate) fn capture_ui(
    mut contexts: EguiContexts,
    mut live: ResMut<LiveCapture>,
    mut toggles: MessageWriter<ToggleRecording>,
    mut shots: MessageWriter<TakeScreenshot>,
    chrome: Res<crate::ui::Chrome>,
) -> Result {
    // With the panels hidden (`Tab`, `P`) F9 and F12 still work, without buttons.
    if !chrome.panels() {
        return Ok(());
    }
    let ctx = contexts.ctx_mut()?.clone();
    let recording = live.recording.as_ref().map(|r| r.started.elapsed());
    egui::Area::new(egui::Id::new("capture_buttons"))
        .anchor(egui::Align2::CENTER_TOP, [0.0, 8.0])
        .show(&ctx, |ui| {
            ui.horizontal(|ui| {
                let record = match recording {
                    Some(t) => egui::RichText::new(format!("⏹ REC {:02}:{:02}", t.as_secs() / 60, t.as_secs() % 60))
                        .color(egui::Color32::from_rgb(255, 80, 80)),
                    None => egui::RichText::new("⏺ Record"),
                };
                if ui
                    .button(record)
                    .on_hover_text("record the window to MP4 (F9)")
                    .clicked()
                {
                    toggles.write(ToggleRecording);
                }
                if ui.button("📷").on_hover_text("save a PNG screenshot (F12)").clicked() {
                    shots.write(TakeScreenshot {
                        scale: live.shot_scale.max(1),
                    });
                }
                let mut scale = live.shot_scale.max(1);
                egui::ComboBox::from_id_salt("shot_scale")
                    .width(44.0)
                    .selected_text(format!("{scale}x"))
                    .show_ui(ui, |ui| {
                        for s in [1, 2, 4] {
                            ui.selectable_value(&mut scale, s, format!("{s}x"));
                        }
                    });
                if scale != live.shot_scale {
                    live.shot_scale = scale;
                }
            });
            if let Some((text, until)) = &live.message
                && Instant::now() < *until
            {
                ui.label(egui::RichText::new(text).small());
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_frames_are_repeated_to_keep_wall_clock_time() {
        assert_eq!(frames_due(Duration::ZERO, 30), 1);
        assert_eq!(frames_due(Duration::from_millis(100), 30), 4);
        assert_eq!(frames_due(Duration::from_secs(2), 30), 61);
    }
}
