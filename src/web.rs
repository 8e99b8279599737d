//! The browser entry point (wasm32 only): the viewer in the page's
//! `#tensorcity` canvas, its state read from the URL
//! (`?model=gpt2&layout=city&prompt=...`).

use bevy::prelude::*;

use crate::activations::{Prompt, Runner};
use crate::arch::{LoadOptions, ModelRef};
use crate::layout::LayoutKind;

/// What the page's URL asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UrlState {
    pub model: Option<String>,
    pub layout: Option<LayoutKind>,
    pub prompt: Option<String>,
}

impl UrlState {
    /// Reads `?model=..&layout=..&prompt=..` (unknown keys and bad layouts are ignored).
    pub fn parse(search: &str) -> UrlState {
        let mut state = UrlState::default();
        let Ok(params) = web_sys::UrlSearchParams::new_with_str(search) else {
            return state;
        };
        state.model = params.get("model").filter(|m| !m.is_empty());
        state.prompt = params.get("prompt").filter(|p| !p.is_empty());
        state.layout = params.get("layout").and_then(|l| match l.as_str() {
            "trunk" => Some(LayoutKind::Trunk),
            "floors" => Some(LayoutKind::Floors),
            "city" => Some(LayoutKind::City),
            _ => None,
        });
        state
    }
}

/// A prompt from the URL, sent once the model's weights are ready.
#[derive(Resource)]
struct PendingPrompt(String);

fn send_pending_prompt(
    mut commands: Commands,
    pending: Option<Res<PendingPrompt>>,
    runner: Res<Runner>,
    mut prompts: MessageWriter<Prompt>,
) {
    let Some(pending) = pending else { return };
    match *runner {
        Runner::Preparing(_) | Runner::None => {}
        _ => {
            prompts.write(Prompt {
                text: pending.0.clone(),
                new_tokens: 0,
                decoding: crate::inference::stream::Decoding::Greedy,
            });
            commands.remove_resource::<PendingPrompt>();
        }
    }
}

/// Tells the page (`window.tensorcityReady()`) once the app has drawn a few
/// frames, so it removes its loading screen.
fn announce_first_frame(mut frames: Local<u32>) {
    *frames += 1;
    if *frames != 3 {
        return;
    }
    let Some(window) = web_sys::window() else { return };
    if let Ok(ready) = js_sys::Reflect::get(&window, &"tensorcityReady".into())
        && let Ok(ready) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(ready)
    {
        let _ = ready.call0(&window);
    }
}

/// The page's title names the model on screen (and tells tests which one loaded).
fn title_follows_model(current: Option<Res<crate::model::CurrentModel>>) {
    let Some(current) = current.filter(|c| c.is_changed()) else {
        return;
    };
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        document.set_title(&format!("tensorcity — {}", current.arch.name));
    }
}

/// Starts the app in the page.
pub fn run() {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let url = UrlState::parse(&search);
    let model = url.model.as_deref().map_or(ModelRef::Embedded, ModelRef::parse);
    let window = Window {
        title: "tensorcity".into(),
        canvas: Some("#tensorcity".into()),
        fit_canvas_to_parent: true,
        prevent_default_event_handling: true,
        ..default()
    };
    let mut app = crate::viewer::app(window, model, LoadOptions::default(), url.layout.unwrap_or_default());
    if let Some(prompt) = url.prompt {
        app.insert_resource(PendingPrompt(prompt));
    }
    app.add_systems(
        Update,
        (
            send_pending_prompt.in_set(crate::AppSystems::Input),
            announce_first_frame,
            title_follows_model,
        ),
    );
    app.run();
}
