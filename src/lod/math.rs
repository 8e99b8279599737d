//! Level of detail: a layer far from the camera collapses into one block (its
//! volume the sum of its tensors'), a near one shows every tensor. Decisions use
//! the block's apparent size with hysteresis, and the switch is blended over a
//! short time, so nothing pops.

/// On-screen size (pixels) of a layer's block below which the layer collapses.
pub const COLLAPSE_BELOW: f32 = 5.0;
/// On-screen size above which a collapsed layer opens again (hysteresis band).
pub const EXPAND_ABOVE: f32 = 7.0;

/// Height in pixels of an object of edge `size` at `distance`, in a viewport
/// `viewport_height` pixels tall with vertical field of view `fov_y`.
pub fn apparent_pixels(size: f32, distance: f32, viewport_height: f32, fov_y: f32) -> f32 {
    size / distance.max(1e-3) * viewport_height / (2.0 * (fov_y / 2.0).tan())
}
/// Blend speed: a full switch takes 1 / BLEND_RATE seconds.
pub const BLEND_RATE: f32 = 4.0;

/// Per-layer LOD state: `blend` is 0 when every tensor shows, 1 when only the block does.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LodState {
    pub collapsed: bool,
    pub blend: f32,
}

impl LodState {
    /// Updates the target from the block's on-screen size in pixels (with
    /// hysteresis) and moves the blend towards it by `dt` seconds. Returns true
    /// when anything changed.
    pub fn update(&mut self, apparent: f32, dt: f32, enabled: bool) -> bool {
        let collapsed = enabled
            && if self.collapsed {
                apparent < EXPAND_ABOVE
            } else {
                apparent < COLLAPSE_BELOW
            };
        let target = if collapsed { 1.0 } else { 0.0 };
        let step = BLEND_RATE * dt.max(0.0);
        let blend = if self.blend < target {
            (self.blend + step).min(target)
        } else {
            (self.blend - step).max(target)
        };
        let changed = collapsed != self.collapsed || blend != self.blend;
        self.collapsed = collapsed;
        self.blend = blend;
        changed
    }

    /// Scale of the layer's tensor cubes (shrinking away as the block grows).
    pub fn tensor_scale(&self) -> f32 {
        smooth(1.0 - self.blend)
    }

    /// Scale of the layer's block.
    pub fn block_scale(&self) -> f32 {
        smooth(self.blend)
    }
}

fn smooth(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_keeps_state_inside_the_band() {
        let mut s = LodState::default();
        // 6 px is inside the band: a detailed layer stays detailed...
        s.update(6.0, 0.1, true);
        assert!(!s.collapsed);
        // ...until it gets small enough.
        s.update(4.0, 0.1, true);
        assert!(s.collapsed);
        // Back to 6 px: a collapsed layer stays collapsed.
        s.update(6.0, 0.1, true);
        assert!(s.collapsed);
        s.update(8.0, 0.1, true);
        assert!(!s.collapsed);
        let px = apparent_pixels(1.0, 10.0, 1000.0, std::f32::consts::FRAC_PI_2);
        assert!((px - 50.0).abs() < 1e-3);
    }

    #[test]
    fn blend_moves_smoothly_and_settles() {
        let mut s = LodState::default();
        assert!(s.update(1.0, 0.1, true));
        assert!((s.blend - 0.4).abs() < 1e-6);
        assert!(s.tensor_scale() > 0.0 && s.block_scale() > 0.0);
        for _ in 0..10 {
            s.update(1.0, 0.1, true);
        }
        assert_eq!((s.blend, s.tensor_scale(), s.block_scale()), (1.0, 0.0, 1.0));
        assert!(!s.update(1.0, 0.1, true), "settled: nothing changes");
        // Disabled LOD opens everything.
        s.update(1.0, 1.0, false);
        assert_eq!(s.blend, 0.0);
    }
}
