//! The Bevy side of inference: a [`RunPrompt`] message starts a run on the
//! worker thread (cancelling the previous one); each frame, up to
//! [`MAX_FRAMES_PER_UPDATE`] ready activation frames are drained from the
//! bounded channel into [`ActivationMessage`]s. The model code itself lives in
//! `inference` and has no Bevy types.

use std::sync::Mutex;

use bevy::prelude::*;

use crate::AppSystems;
use crate::inference::stream::{ActivationFrame, ActivationSource, RunRequest, Worker};

/// Frames handed to the app per update; the rest wait in the bounded channel
/// (which in turn pauses the worker), so a slow renderer never grows memory.
pub const MAX_FRAMES_PER_UPDATE: usize = 32;

pub struct ActivationsPlugin;

impl Plugin for ActivationsPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<RunPrompt>()
            .add_message::<ActivationMessage>()
            .add_systems(Update, (start_runs, drain_frames).chain().in_set(AppSystems::Model));
    }
}

/// The worker running the current model. (`Mutex` because the channel
/// receiver is `Send` but not `Sync`.)
#[derive(Resource)]
pub struct InferenceWorker(Mutex<Worker>);

impl InferenceWorker {
    #[cfg(not(target_arch = "wasm32"))]
    pub fn spawn(source: Box<dyn ActivationSource>) -> Self {
        InferenceWorker(Mutex::new(Worker::spawn(source)))
    }
}

/// Run a prompt (and optionally generate) on the current model.
#[derive(Message, Debug, Clone)]
pub struct RunPrompt(pub RunRequest);

/// One streamed frame of the current run.
#[derive(Message, Debug, Clone)]
pub struct ActivationMessage(pub ActivationFrame);

fn start_runs(mut requests: MessageReader<RunPrompt>, worker: Option<Res<InferenceWorker>>) {
    let Some(request) = requests.read().last().cloned() else {
        return;
    };
    let Some(worker) = worker else {
        warn!("no model is loaded for inference; the prompt is ignored");
        return;
    };
    if let Ok(mut w) = worker.0.lock() {
        w.request(request.0);
    }
}

fn drain_frames(worker: Option<Res<InferenceWorker>>, mut out: MessageWriter<ActivationMessage>) {
    let Some(worker) = worker else { return };
    let Ok(w) = worker.0.lock() else { return };
    out.write_batch(w.drain(MAX_FRAMES_PER_UPDATE).into_iter().map(ActivationMessage));
}
