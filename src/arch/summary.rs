//! What `tensorcity info` prints: totals, sizes from the config, and the
//! parameter breakdown by kind, as text or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Architecture, TensorInfo, TensorKind};

/// Parameters of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindShare {
    pub kind: TensorKind,
    pub tensors: usize,
    pub params: u64,
    /// Share of the model's total parameters, in percent.
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub source: String,
    pub family: String,
    pub layers: u32,
    pub hidden_size: Option<u64>,
    pub num_heads: Option<u64>,
    pub num_kv_heads: Option<u64>,
    pub vocab_size: Option<u64>,
    pub num_experts: Option<u64>,
    pub total_params: u64,
    pub buffer_params: u64,
    pub tensor_count: usize,
    pub by_kind: Vec<KindShare>,
}

impl Summary {
    /// The kinds its cubes are drawn in, in legend order: those with
    /// parameters, and `other` when there are buffers (drawn in its grey).
    pub fn drawn_kinds(&self) -> Vec<TensorKind> {
        let mut kinds: Vec<TensorKind> = self.by_kind.iter().map(|k| k.kind).collect();
        if self.buffer_params > 0 && !kinds.contains(&TensorKind::Other) {
            kinds.push(TensorKind::Other);
        }
        kinds.sort();
        kinds
    }

    pub fn of(arch: &Architecture) -> Summary {
        let total = arch.total_params();
        let cfg = arch.config.as_ref();
        Summary {
            name: arch.name.clone(),
            source: arch.source.clone(),
            family: arch.family.display_name(),
            layers: cfg
                .and_then(|c| c.num_layers)
                .map_or(arch.num_layers(), |n| n.min(u32::MAX as u64) as u32),
            hidden_size: cfg.and_then(|c| c.hidden_size),
            num_heads: cfg.and_then(|c| c.num_heads),
            num_kv_heads: cfg.and_then(|c| c.num_kv_heads),
            vocab_size: cfg.and_then(|c| c.vocab_size),
            num_experts: cfg.and_then(|c| c.num_experts),
            total_params: total,
            buffer_params: arch
                .tensors
                .iter()
                .filter(|t| t.buffer)
                .fold(0u64, |sum, t| sum.saturating_add(t.params)),
            tensor_count: arch.tensors.len(),
            by_kind: by_kind(&arch.tensors, total),
        }
    }

    /// The human-readable report of `tensorcity info`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), group_digits);
        let _ = writeln!(s, "{} ({}, from {})", self.name, self.family, self.source);
        let _ = writeln!(
            s,
            "  parameters   {} ({})",
            group_digits(self.total_params),
            human(self.total_params)
        );
        if self.buffer_params > 0 {
            let _ = writeln!(
                s,
                "  buffers      {} elements (masks, position ids; not counted)",
                group_digits(self.buffer_params)
            );
        }
        let _ = writeln!(s, "  tensors      {}", self.tensor_count);
        let _ = writeln!(s, "  layers       {}", self.layers);
        let _ = writeln!(s, "  hidden size  {}", opt(self.hidden_size));
        let _ = writeln!(
            s,
            "  heads        {} (kv heads {})",
            opt(self.num_heads),
            opt(self.num_kv_heads)
        );
        let _ = writeln!(s, "  vocab        {}", opt(self.vocab_size));
        if let Some(e) = self.num_experts {
            let _ = writeln!(s, "  experts      {e} per layer");
        }
        let _ = writeln!(s, "  by kind:");
        for k in &self.by_kind {
            let bar = "#".repeat((k.percent / 2.5).round() as usize);
            let _ = writeln!(
                s,
                "    {:<20} {:>16} {:>6.2}%  {:>5} tensors  {}",
                k.kind.label(),
                group_digits(k.params),
                k.percent,
                k.tensors,
                bar
            );
        }
        s
    }
}

/// Parameter totals per kind (buffers excluded), largest first.
pub fn by_kind(tensors: &[TensorInfo], total: u64) -> Vec<KindShare> {
    let mut shares: Vec<KindShare> = TensorKind::ALL
        .iter()
        .filter_map(|&kind| {
            let of_kind = tensors.iter().filter(|t| t.kind == kind && !t.buffer);
            let (count, params) = of_kind.fold((0, 0u64), |(c, p), t| (c + 1, p.saturating_add(t.params)));
            (count > 0).then(|| KindShare {
                kind,
                tensors: count,
                params,
                percent: if total == 0 {
                    0.0
                } else {
                    100.0 * params as f64 / total as f64
                },
            })
        })
        .collect();
    shares.sort_by(|a, b| b.params.cmp(&a.params).then(a.kind.cmp(&b.kind)));
    shares
}

/// `1234567` -> `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `124439808` -> `124.4M`.
pub fn human(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e12 => format!("{:.2}T", n / 1e12),
        _ if n >= 1e9 => format!("{:.2}B", n / 1e9),
        _ if n >= 1e6 => format!("{:.1}M", n / 1e6),
        _ if n >= 1e3 => format!("{:.1}K", n / 1e3),
        _ => format!("{n}"),
    }
}

/// The JSON document of `tensorcity info --json`.
#[derive(Serialize)]
pub struct ArchitectureJson<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub family: &'a super::Family,
    pub total_params: u64,
    pub buffer_params: u64,
    pub num_layers: u32,
    pub config: Option<&'a super::ModelConfig>,
    pub by_kind: Vec<KindShare>,
    pub tensors: &'a [TensorInfo],
    pub notices: &'a [String],
}

impl Architecture {
    pub fn to_json(&self) -> ArchitectureJson<'_> {
        let summary = self.summary();
        ArchitectureJson {
            name: &self.name,
            source: &self.source,
            family: &self.family,
            total_params: summary.total_params,
            buffer_params: summary.buffer_params,
            num_layers: summary.layers,
            config: self.config.as_ref(),
            by_kind: summary.by_kind,
            tensors: &self.tensors,
            notices: &self.notices,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting() {
        assert_eq!(group_digits(124_439_808), "124,439,808");
        assert_eq!(group_digits(7), "7");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(human(124_439_808), "124.4M");
        assert_eq!(human(405_853_388_800), "405.85B");
    }
}
