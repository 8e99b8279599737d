//! Which experts a mixture-of-experts run used, from the router logits it
//! tapped (`router.{i}`, `[T, experts]`): per token the `k` best experts by
//! router probability with their renormalised weights (as the model itself
//! routes), and per expert the share of tokens routed to it. Pure: no Bevy
//! types.

use std::collections::BTreeMap;

use candle_core::Tensor;

/// One MoE block's routing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockRouting {
    /// Per token: (expert, weight) best first, weights summing to 1.
    pub routes: Vec<Vec<(u32, f32)>>,
    /// Per expert: the fraction of tokens that went to it.
    pub share: Vec<f32>,
}

impl BlockRouting {
    /// From router logits `[T, experts]` and `k` experts per token.
    pub fn of(logits: &Tensor, k: usize) -> candle_core::Result<BlockRouting> {
        let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(candle_core::DType::F32)?)?.to_vec2::<f32>()?;
        let experts = probs.first().map_or(0, Vec::len);
        let k = k.clamp(1, experts.max(1));
        // The experts the model itself chose, their weights renormalised as it does.
        let routes: Vec<Vec<(u32, f32)>> = crate::inference::top_experts(&probs, k)
            .into_iter()
            .zip(&probs)
            .map(|(chosen, row)| {
                let sum: f32 = chosen.iter().map(|&e| row[e as usize]).sum();
                chosen
                    .into_iter()
                    .map(|e| (e, row[e as usize] / sum.max(f32::MIN_POSITIVE)))
                    .collect()
            })
            .collect();
        let mut share = vec![0.0f32; experts];
        for route in &routes {
            for &(e, _) in route {
                share[e as usize] += 1.0;
            }
        }
        let tokens = routes.len().max(1) as f32;
        share.iter_mut().for_each(|s| *s /= tokens);
        Ok(BlockRouting { routes, share })
    }

    /// How brightly expert `e` glows, 0..1 relative to the block's busiest
    /// expert: its share of the tokens, or, with a token selected, its weight
    /// for that token (0 if it was not chosen).
    pub fn intensity(&self, expert: u32, token: Option<usize>) -> f32 {
        let relative = |v: f32, max: f32| if max > 0.0 { v / max } else { 0.0 };
        match token.and_then(|t| self.routes.get(t)) {
            Some(route) => {
                let max = route.iter().map(|r| r.1).fold(0.0, f32::max);
                relative(route.iter().find(|(x, _)| *x == expert).map_or(0.0, |&(_, w)| w), max)
            }
            None => {
                let max = self.share.iter().copied().fold(0.0, f32::max);
                relative(self.share.get(expert as usize).copied().unwrap_or(0.0), max)
            }
        }
    }
}

/// Routing of every MoE block of a run, by block.
pub fn routing(router: &BTreeMap<usize, Tensor>, k: usize) -> BTreeMap<usize, BlockRouting> {
    router
        .iter()
        .filter_map(|(&block, logits)| BlockRouting::of(logits, k).ok().map(|r| (block, r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn routes_take_the_best_experts_and_shares_count_tokens() {
        // Two tokens, three experts: token 0 prefers 1 then 2; token 1 prefers 0 then 1.
        let logits = Tensor::new(&[[0.0f32, 3.0, 2.0], [5.0, 1.0, -1.0]], &Device::Cpu).unwrap();
        let r = BlockRouting::of(&logits, 2).unwrap();
        assert_eq!(r.routes[0].iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(r.routes[1].iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1]);
        assert!((r.routes[0].iter().map(|x| x.1).sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(r.share, [0.5, 1.0, 0.5]);
        assert_eq!(r.intensity(1, None), 1.0);
        assert_eq!(r.intensity(0, None), 0.5);
        assert_eq!(r.intensity(2, Some(1)), 0.0);
        assert_eq!(r.intensity(0, Some(1)), 1.0, "token 1's first expert is its brightest");
        assert!(r.intensity(1, Some(1)) < 0.1);
    }
}
