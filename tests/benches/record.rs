//! Recording benchmark (`cargo bench --bench record`): frames per second of
//! `tensorcity record` headless on whatever adapter wgpu finds (Mesa's
//! llvmpipe here), and the share of wall time spent rendering (stepping the
//! app until the frame is read back) vs encoding, for each output kind.
//!
//! Default: the Llama-3.1-405B catalogue model, flythrough, 1280x720, 3 s at
//! 30 fps (90 frames) to MP4, GIF and PNG frames; then the embedded model's
//! city with a prompt (orbit) to MP4.
//!
//! Usage: `cargo bench --bench record [-- --size 1280x720 --duration 3 --fps 30]`.

use tensorcity::arch::{CubeScale, LoadOptions, ModelRef};
use tensorcity::city::HeadFilter;
use tensorcity::headless::Picture;
use tensorcity::layout::LayoutKind;
use tensorcity::record::{CameraChoice, RecordJob, record};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let size = flag("--size")
        .and_then(|s| tensorcity::offscreen::parse_any_size(&s).ok())
        .unwrap_or((1280, 720));
    let duration: f32 = flag("--duration").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let fps: u32 = flag("--fps").and_then(|s| s.parse().ok()).unwrap_or(30);
    let tmp = std::env::temp_dir().join(format!("tensorcity-record-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let llama = (
        ModelRef::Id("meta-llama/Llama-3.1-405B".into()),
        LoadOptions {
            catalogue_only: true,
            ..Default::default()
        },
    );
    println!(
        "{:<34} {:>7} {:>9} {:>10} {:>10} {:>10}",
        "scenario", "frames", "seconds", "frames/s", "rendering", "encoding"
    );
    let runs = [
        (
            "405B flythrough -> mp4",
            &llama,
            "clip.mp4",
            CameraChoice::Flythrough,
            LayoutKind::Floors,
            None,
        ),
        (
            "405B flythrough -> gif",
            &llama,
            "clip.gif",
            CameraChoice::Flythrough,
            LayoutKind::Floors,
            None,
        ),
        (
            "405B flythrough -> png frames",
            &llama,
            "frames",
            CameraChoice::Flythrough,
            LayoutKind::Floors,
            None,
        ),
        (
            "embedded city + prompt -> mp4",
            &(ModelRef::Embedded, LoadOptions::default()),
            "city.mp4",
            CameraChoice::Orbit,
            LayoutKind::City,
            Some("ROMEO: But soft, what light through yonder window breaks?".to_string()),
        ),
    ];
    for (name, (model, options), out, camera, layout, prompt) in runs {
        let job = RecordJob {
            model: model.clone(),
            options: options.clone(),
            out: tmp.join(out),
            duration,
            fps,
            size,
            camera,
            picture: Picture {
                layout,
                scale: CubeScale::Relative,
                prompt,
                heads: HeadFilter::Mean,
                select: None,
                glow: true,
                title: None,
                clean: false,
            },
            quiet: true,
        };
        match record(job) {
            Ok(s) => println!(
                "{name:<34} {:>7} {:>9.1} {:>10.2} {:>9.0}% {:>9.0}%",
                s.frames,
                s.seconds,
                s.frames as f64 / s.seconds,
                100.0 * s.render / s.seconds,
                100.0 * s.encode / s.seconds
            ),
            Err(e) => println!("{name:<34} failed: {e:#}"),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
