//! The city's animation clock (pure): a playhead measured in floors. Live, it
//! climbs towards the highest floor that has arrived at `speed` floors per
//! second, so a pulse visibly travels up every token column layer by layer
//! even when the model computes faster than the eye; paused, it stays; the
//! slider and the step buttons move it by hand through the finished pass.

/// Where the animation is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Playback {
    /// Playhead in floors: floor `f` is shown once `position >= f`.
    pub position: f32,
    pub playing: bool,
    /// Floors per second while playing.
    pub speed: f32,
}

impl Default for Playback {
    fn default() -> Self {
        Playback {
            position: 0.0,
            playing: true,
            speed: 4.0,
        }
    }
}

impl Playback {
    /// Advances by `dt` seconds towards `available` (the highest floor that has arrived).
    pub fn tick(&mut self, dt: f32, available: f32) {
        if self.playing {
            self.position = (self.position + self.speed * dt).min(available);
        }
        self.position = self.position.clamp(0.0, available.max(0.0));
    }

    /// A new pass starts at the bottom.
    pub fn restart(&mut self) {
        self.position = 0.0;
    }

    /// One floor up (or down), paused, snapped to whole floors.
    pub fn step(&mut self, floors: i32, available: f32) {
        self.playing = false;
        self.position = (self.position.floor() + floors as f32).clamp(0.0, available.max(0.0));
    }

    /// Whether floor `f` is shown.
    pub fn shows_floor(&self, f: usize) -> bool {
        self.position + 1e-4 >= f as f32
    }

    /// Whether block `b`'s arcs are shown (once its output floor `b + 1` is).
    pub fn shows_block(&self, b: usize) -> bool {
        self.shows_floor(b + 1)
    }

    /// The pulse: the fractional height between two floors while climbing
    /// (`None` when resting on a floor).
    pub fn pulse(&self) -> Option<(usize, f32)> {
        let below = self.position.floor();
        let frac = self.position - below;
        (frac > 1e-3).then_some((below as usize, frac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playhead_climbs_to_what_has_arrived_and_steps_by_hand() {
        let mut p = Playback::default();
        p.tick(0.1, 6.0);
        assert!((p.position - 0.4).abs() < 1e-6);
        assert_eq!(p.pulse().map(|(f, _)| f), Some(0));
        assert!(p.shows_floor(0) && !p.shows_floor(1));
        p.tick(10.0, 2.0);
        assert_eq!(p.position, 2.0, "never past the floors that have arrived");
        assert!(p.shows_block(1) && !p.shows_block(2));
        p.step(1, 6.0);
        assert!(!p.playing);
        assert_eq!(p.position, 3.0);
        p.tick(1.0, 6.0);
        assert_eq!(p.position, 3.0, "paused");
        p.step(-5, 6.0);
        assert_eq!(p.position, 0.0);
    }
}
