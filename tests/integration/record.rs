//! `tensorcity record` end to end: MP4 through ffmpeg (checked with ffprobe),
//! GIF, PNG frames, determinism, keyframed camera paths, and bad input
//! refused before any rendering.

use std::path::Path;
use std::process::{Command, Output};

fn record(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .arg("record")
        .args(args)
        .args(["--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

const SMALL: [&str; 6] = ["--duration", "2", "--fps", "10", "--size", "320x240"];

#[test]
#[ignore = "needs ffmpeg/ffprobe; .ci/test runs it"]
fn a_two_second_mp4_and_gif_have_twenty_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let mp4 = tmp.path().join("clip.mp4");
    ok(&record(&SMALL, &mp4));
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,pix_fmt,nb_read_frames:format=duration",
        ])
        .args(["-of", "default=nw=1"])
        .arg(&mp4)
        .output()
        .expect("ffprobe (Debian: ffmpeg) is installed by .ci/setup");
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(text.contains("codec_name=h264"), "{text}");
    assert!(text.contains("pix_fmt=yuv420p"), "{text}");
    assert!(text.contains("nb_read_frames=20"), "{text}");
    assert!(text.contains("duration=2.000000"), "{text}");

    let gif_path = tmp.path().join("clip.gif");
    ok(&record(&SMALL, &gif_path));
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(std::fs::File::open(&gif_path).unwrap()).unwrap();
    assert_eq!((decoder.width(), decoder.height()), (320, 240));
    let mut frames = 0;
    let mut centiseconds = 0u32;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        frames += 1;
        centiseconds += frame.delay as u32;
    }
    assert_eq!(frames, 20);
    assert_eq!(centiseconds, 200, "plays in 2.0 s");
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["clip.gif", "clip.mp4"], "no temporary file is left");
}

/// A recording stopped half-way (the process killed, as closing a terminal
/// does) leaves no clip under the asked-for name: frames go to a temporary
/// name that is renamed only when the clip is complete.
#[test]
fn a_recording_killed_half_way_leaves_no_clip() {
    let tmp = tempfile::tempdir().unwrap();
    let gif = tmp.path().join("clip.gif");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args([
            "record",
            "--duration",
            "60",
            "--fps",
            "10",
            "--size",
            "160x120",
            "--quiet",
            "--out",
        ])
        .arg(&gif)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial_grows = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().contains(".partial") && e.metadata().is_ok_and(|m| m.len() > 1000))
    };
    let started = std::time::Instant::now();
    while !partial_grows() {
        assert!(child.try_wait().unwrap().is_none(), "record ended before it was killed");
        assert!(started.elapsed().as_secs() < 120, "no frames written after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!gif.exists(), "a half-written clip.gif was left");
}

fn frames_of(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8().into_raw())
        .collect()
}

/// Two runs of the same command give bit-identical frames (fixed time step;
/// llvmpipe rasterises deterministically), also with a prompt's animation.
#[test]
fn two_runs_give_identical_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--duration",
        "1",
        "--fps",
        "6",
        "--size",
        "160x120",
        "--layout",
        "city",
        "--prompt",
        "ROMEO: But soft",
    ];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&record(&args, &a));
    ok(&record(&args, &b));
    let (fa, fb) = (frames_of(&a), frames_of(&b));
    assert_eq!(fa.len(), 6);
    for (i, (x, y)) in fa.iter().zip(&fb).enumerate() {
        assert!(x == y, "frame {i} differs between runs");
    }
    assert!(fa.windows(2).any(|w| w[0] != w[1]), "the clip moves");
}

/// A keyframe path puts the camera at its first keyframe in the first frame
/// and at its last in the last: those frames equal still recordings from
/// exactly those poses.
#[test]
fn a_keyframe_path_starts_and_ends_where_the_file_says() {
    let tmp = tempfile::tempdir().unwrap();
    let key = |t: f32, eye: (f32, f32, f32), at: (f32, f32, f32)| {
        format!(
            "(time: {t:.1}, position: ({:.1}, {:.1}, {:.1}), look_at: ({:.1}, {:.1}, {:.1}))",
            eye.0, eye.1, eye.2, at.0, at.1, at.2
        )
    };
    let (a, a_at) = ((30.0, 20.0, 60.0), (0.0, 15.0, 0.0));
    let (b, b_at) = ((-40.0, 60.0, 10.0), (0.0, 30.0, 0.0));
    let write = |name: &str, keys: &[String]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, format!("(keyframes: [{}])", keys.join(", "))).unwrap();
        p
    };
    let both = write("ab.ron", &[key(0.0, a, a_at), key(1.0, b, b_at)]);
    let only_a = write("a.ron", &[key(0.0, a, a_at)]);
    let only_b = write("b.ron", &[key(0.0, b, b_at)]);
    let run = |path: &Path, out: &str| {
        let dir = tmp.path().join(out);
        let camera = path.to_str().unwrap();
        ok(&record(
            &["--duration", "1", "--fps", "4", "--size", "160x120", "--camera", camera],
            &dir,
        ));
        frames_of(&dir)
    };
    let (ab, fa, fb) = (run(&both, "ab"), run(&only_a, "fa"), run(&only_b, "fb"));
    assert_eq!(ab.len(), 4);
    assert!(ab[0] == fa[0], "first frame: the camera at the first keyframe");
    assert!(ab[3] == fb[3], "last frame: the camera at the last keyframe");
    assert!(ab[0] != ab[3] && ab[1] != ab[0], "it moves in between");
}

/// Each bad request: exit 1, one `error:` line naming the problem, nothing written.
#[test]
#[ignore = "needs ffmpeg/ffprobe; .ci/test runs it"]
fn bad_requests_fail_before_rendering() {
    let tmp = tempfile::tempdir().unwrap();
    let fails = |args: &[&str], out: &Path, needle: &str, path: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tensorcity"));
        cmd.arg("record").args(args).args(["--quiet", "--out"]).arg(out);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or("");
        assert!(
            last.starts_with("error: ") && last.contains(needle),
            "{args:?}: expected `{needle}` in {err}"
        );
        assert!(!out.exists() || out.is_dir(), "{} written", out.display());
    };
    let clip = tmp.path().join("clip.mp4");
    fails(
        &[],
        &tmp.path().join("clip.avi"),
        "unsupported output type `.avi`",
        None,
    );
    fails(&[], &tmp.path().join("missing/clip.gif"), "does not exist", None);
    fails(&["--duration", "0"], &clip, "--duration must be a positive", None);
    fails(&["--duration", "-3"], &clip, "--duration must be a positive", None);
    fails(&["--fps", "0"], &clip, "--fps must be between 1 and 240", None);
    fails(
        &["--size", "40000x100"],
        &tmp.path().join("big.gif"),
        "texture limit",
        None,
    );
    fails(
        &["--camera", "nowhere.ron"],
        &tmp.path().join("c.gif"),
        "nowhere.ron",
        None,
    );
    fails(&[], &clip, "apt-get install ffmpeg", Some("/nonexistent"));
    // Not writable even for root.
    fails(&[], Path::new("/proc/clip.gif"), "cannot write", None);
}
