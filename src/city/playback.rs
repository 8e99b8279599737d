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
    /// Token columns shown (`None`: every column): stepping token by token
    /// replays how the city grew, one position at a time.
    pub tokens: Option<usize>,
    /// Placed by hand for a still (`render --at`): a new pass does not move
    /// the playhead back to the bottom.
    pub held: bool,
}

impl Default for Playback {
    fn default() -> Self {
        Playback {
            position: 0.0,
            playing: true,
            speed: 4.0,
            tokens: None,
            held: false,
        }
    }
}

/// How long a pulse takes to climb a whole model, live in the viewer.
pub const CLIMB_SECONDS: f32 = 1.5;

impl Playback {
    /// The live speed for a model of `floors` hidden states above the
    /// embeddings: the pulse reaches the top in [`CLIMB_SECONDS`] (a deep
    /// model climbs faster), between 2 and 50 floors a second.
    pub fn pace(floors: usize) -> f32 {
        (floors as f32 / CLIMB_SECONDS).clamp(2.0, 50.0)
    }

    /// Advances by `dt` seconds towards `available` (the highest floor that has arrived).
    pub fn tick(&mut self, dt: f32, available: f32) {
        if self.playing {
            self.position = (self.position + self.speed * dt).min(available);
        }
        self.position = self.position.clamp(0.0, available.max(0.0));
    }

    /// A new pass starts at the bottom (unless the playhead is held).
    pub fn restart(&mut self) {
        if !self.held {
            self.position = 0.0;
        }
    }

    /// One floor up (or down), paused, snapped to whole floors.
    pub fn step(&mut self, floors: i32, available: f32) {
        self.playing = false;
        self.position = (self.position.floor() + floors as f32).clamp(0.0, available.max(0.0));
    }

    /// One token column more (or fewer) of `total`, paused; showing all of
    /// them again returns to following the run.
    pub fn step_token(&mut self, tokens: i32, total: usize) {
        self.playing = false;
        let now = self.tokens.unwrap_or(total).min(total) as i64;
        let next = (now + tokens as i64).clamp(1.min(total as i64), total as i64) as usize;
        self.tokens = (next < total).then_some(next);
    }

    /// Whether token column `t` is shown.
    pub fn shows_token(&self, t: usize) -> bool {
        self.tokens.is_none_or(|n| t < n)
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
    fn a_pulse_climbs_any_model_in_a_second_or_two() {
        for floors in [2usize, 6, 12, 32, 80, 126] {
            let seconds = floors as f32 / Playback::pace(floors);
            assert!((0.9..=2.6).contains(&seconds), "{floors} floors: {seconds} s");
        }
        assert_eq!(Playback::pace(6), Playback::default().speed);
    }

    #[test]
    fn a_held_playhead_stays_where_it_was_placed_when_a_pass_starts() {
        let mut free = Playback {
            position: 3.5,
            ..Playback::default()
        };
        free.restart();
        assert_eq!(free.position, 0.0);
        let mut held = Playback {
            position: 3.5,
            playing: false,
            held: true,
            ..Playback::default()
        };
        held.restart();
        held.tick(0.1, 6.0);
        assert_eq!(held.position, 3.5);
    }

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

    #[test]
    fn token_steps_reveal_columns_one_at_a_time_and_back_to_all() {
        let mut p = Playback::default();
        assert!(p.shows_token(99));
        p.step_token(-1, 5);
        assert_eq!(p.tokens, Some(4));
        assert!(p.shows_token(3) && !p.shows_token(4) && !p.playing);
        p.step_token(-10, 5);
        assert_eq!(p.tokens, Some(1), "at least one column stays");
        p.step_token(2, 5);
        assert_eq!(p.tokens, Some(3));
        p.step_token(5, 5);
        assert_eq!(p.tokens, None, "all columns again: follows generation");
    }
}
