//! The scene as ECS, without a renderer: `MinimalPlugins` + the scene plugin.
//! Entity counts equal tensor counts, switching models leaves no orphans, a
//! failed load keeps the app (and the old model) alive, hidden kinds leave the
//! instance buffer.

use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use tensorcity::arch::{LoadOptions, ModelRef, TensorKind, catalogue_entry};
use tensorcity::layout::spawn::{Layer, ModelRoot, Tensor};
use tensorcity::model::{CurrentModel, LoadError, LoadModel, Loading, ViewSettings};
use tensorcity::render::{CubeBatch, CubeInstances};
use tensorcity::{AppState, ScenePlugin};

fn app() -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, StatesPlugin, ScenePlugin));
    app
}

/// Sends a load request and runs frames until it has finished (loaded or failed).
fn load(app: &mut App, id: &str) {
    let model = if id.starts_with('/') {
        ModelRef::parse(id)
    } else {
        ModelRef::Id(id.to_string())
    };
    app.world_mut().remove_resource::<LoadError>();
    let options = LoadOptions {
        catalogue_only: true,
        ..Default::default()
    };
    app.world_mut().write_message(LoadModel {
        model: model.clone(),
        options,
    });
    for _ in 0..5000 {
        app.update();
        let world = app.world();
        let finished = world.contains_resource::<LoadError>()
            || world.get_resource::<CurrentModel>().is_some_and(|c| c.request == model);
        if finished && !world.contains_resource::<Loading>() {
            // Let the state transition and the spawn commands apply.
            app.update();
            app.update();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("load of {id} did not finish");
}

fn count<C: Component>(app: &mut App) -> usize {
    app.world_mut().query::<&C>().iter(app.world()).count()
}

/// Every tensor hangs under a layer, every layer under the one root.
fn assert_no_orphans(app: &mut App) {
    let world = app.world_mut();
    let roots: Vec<Entity> = world.query_filtered::<Entity, With<ModelRoot>>().iter(world).collect();
    assert_eq!(roots.len(), 1);
    let layers: Vec<(Entity, Entity)> = world
        .query_filtered::<(Entity, &ChildOf), With<Layer>>()
        .iter(world)
        .map(|(e, c)| (e, c.parent()))
        .collect();
    assert!(layers.iter().all(|(_, p)| *p == roots[0]));
    let layer_ids: std::collections::HashSet<Entity> = layers.iter().map(|(e, _)| *e).collect();
    let tensor_parents: Vec<Entity> = world
        .query_filtered::<&ChildOf, With<Tensor>>()
        .iter(world)
        .map(|c| c.parent())
        .collect();
    assert!(tensor_parents.iter().all(|p| layer_ids.contains(p)));
    // Nothing else is left besides root, layers, tensors and the persistent cube batch.
    let names = world.query::<&Name>().iter(world).count();
    assert_eq!(names, 1 + layers.len() + tensor_parents.len() + 1);
}

#[test]
fn entity_counts_equal_tensor_counts_and_switching_leaves_no_orphans() {
    let mut app = app();
    load(&mut app, "gpt2");
    let gpt2 = catalogue_entry("gpt2").unwrap().architecture().unwrap();
    assert_eq!(count::<Tensor>(&mut app), gpt2.tensors.len());
    assert_eq!(count::<Layer>(&mut app), 12 + 2);
    assert_no_orphans(&mut app);

    load(&mut app, "mistralai/Mixtral-8x7B-v0.1");
    let mixtral = catalogue_entry("mistralai/Mixtral-8x7B-v0.1")
        .unwrap()
        .architecture()
        .unwrap();
    assert_eq!(count::<Tensor>(&mut app), mixtral.tensors.len());
    assert_eq!(count::<Layer>(&mut app), 32 + 2);
    assert_no_orphans(&mut app);
    assert!(
        app.world_mut()
            .query::<&Tensor>()
            .iter(app.world())
            .all(|t| !t.name.starts_with("h."))
    );

    // Switching layout respawns in place.
    app.world_mut().resource_mut::<ViewSettings>().layout = tensorcity::layout::LayoutKind::Floors;
    app.update();
    app.update();
    assert_eq!(count::<Tensor>(&mut app), mixtral.tensors.len());
    assert_no_orphans(&mut app);
}

#[test]
fn a_failed_load_keeps_the_app_and_the_old_model() {
    let mut app = app();
    load(&mut app, "gpt2");
    load(&mut app, "/definitely/not/here/model.safetensors");
    assert_eq!(*app.world().resource::<State<AppState>>().get(), AppState::Error);
    let error = app.world().resource::<LoadError>().0.clone();
    assert!(error.contains("no such file"), "{error}");
    assert_eq!(app.world().resource::<CurrentModel>().arch.name, "gpt2");
    assert_eq!(count::<Tensor>(&mut app), 160);
    // And a good load afterwards recovers.
    load(&mut app, "bert-base-uncased");
    assert_eq!(*app.world().resource::<State<AppState>>().get(), AppState::Ready);
    assert!(!app.world().contains_resource::<LoadError>());
}

#[test]
fn instance_buffer_follows_visibility() {
    let mut app = app();
    load(&mut app, "gpt2");
    app.update();
    let drawn = |app: &mut App| {
        app.world_mut()
            .query_filtered::<&CubeInstances, With<CubeBatch>>()
            .single(app.world())
            .unwrap()
            .len()
    };
    // No camera: every layer stays detailed, one instance per tensor.
    assert_eq!(drawn(&mut app), 160);
    app.world_mut()
        .resource_mut::<ViewSettings>()
        .hidden_kinds
        .insert(TensorKind::Norm);
    app.update();
    assert_eq!(drawn(&mut app), 160 - 50);
}

mod activations {
    use bevy::prelude::*;
    use tensorcity::activations::{
        ActivationMessage, ActivationsPlugin, InferenceWorker, MAX_FRAMES_PER_UPDATE, RunPrompt,
    };
    use tensorcity::inference::stream::{Decoding, FrameData, LocalRunner, RunRequest};
    use tensorcity::inference::{Model, Tap};

    #[derive(Resource, Default)]
    struct Seen(Vec<(u64, String)>, usize);

    fn record(mut seen: ResMut<Seen>, mut frames: MessageReader<ActivationMessage>) {
        let batch: Vec<_> = frames.read().collect();
        seen.1 = seen.1.max(batch.len());
        for f in batch {
            let what = match &f.0.data {
                FrameData::Tokens(_) => "tokens".to_string(),
                FrameData::Activation {
                    tap: Tap::Hidden(i), ..
                } => format!("hidden.{i}"),
                FrameData::Activation {
                    tap: Tap::Attention(i), ..
                } => format!("attn.{i}"),
                FrameData::Activation { tap: Tap::Mlp(i), .. } => format!("mlp.{i}"),
                FrameData::Activation { tap: Tap::Logits, .. } => "logits".into(),
                FrameData::TopK { layer, .. } => format!("top {layer:?}"),
                FrameData::Truncated { .. } => "truncated".into(),
                FrameData::Generated { .. } => "generated".into(),
                FrameData::Done => "done".into(),
                FrameData::Failed(e) => format!("failed: {e}"),
            };
            seen.0.push((f.0.run, what));
        }
    }

    #[test]
    fn prompts_stream_into_messages_and_a_new_prompt_replaces_the_old() {
        let dir = crate::support::fixtures().join("inference/gpt2-tiny");
        let mut app = App::new();
        app.add_plugins((
            MinimalPlugins,
            bevy::state::app::StatesPlugin,
            tensorcity::ScenePlugin,
            ActivationsPlugin,
        ))
        .init_resource::<Seen>()
        .insert_resource(InferenceWorker::spawn(Box::new(LocalRunner {
            model: std::sync::Arc::new(Model::load(&dir).unwrap()),
            files: None,
        })))
        .add_systems(Update, record.after(tensorcity::AppSystems::Model));
        let request = |n| {
            RunPrompt(RunRequest {
                tokens: vec![1, 2, 3],
                new_tokens: n,
                decoding: Decoding::Greedy,
            })
        };
        app.world_mut().write_message(request(30));
        app.update();
        app.world_mut().write_message(request(2));
        for _ in 0..2000 {
            app.update();
            if app
                .world()
                .resource::<Seen>()
                .0
                .last()
                .is_some_and(|(_, w)| w == "done")
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let seen = app.world().resource::<Seen>();
        assert!(
            seen.1 <= MAX_FRAMES_PER_UPDATE,
            "at most {MAX_FRAMES_PER_UPDATE} frames per update"
        );
        let last_run = seen.0.last().unwrap().0;
        let of_last: Vec<&str> = seen
            .0
            .iter()
            .filter(|(r, _)| *r == last_run)
            .map(|(_, w)| w.as_str())
            .collect();
        assert_eq!(
            &of_last[..6],
            ["tokens", "hidden.0", "attn.0", "mlp.0", "hidden.1", "top Some(0)"]
        );
        assert_eq!(of_last.iter().filter(|w| **w == "generated").count(), 2);
        assert_eq!(*of_last.last().unwrap(), "done");
        assert!(
            !seen.0.iter().any(|(r, w)| *r != last_run && w == "done"),
            "the first run was cancelled"
        );
    }
}
