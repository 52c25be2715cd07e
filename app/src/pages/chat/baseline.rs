//! One reply against a pinned one: per component, how many milliseconds it
//! moved, and which part grew the most when the total grew enough to notice.
//!
//! This is a glance, not the verdict of `verdict::change`: one request against
//! one request has no spread, so no rank test can say what is noise. The floor
//! below which a change is not named is the same shape as that verdict's
//! ([`Thresholds::min_change`]), lowered to 5 % because a person comparing two
//! replies by eye wants to see smaller moves; the page says plainly that
//! `calos perf --runs N --baseline FILE` is what gives a verdict.

use crate::verdict::{Component, Components, Thresholds};
use serde::{Deserialize, Serialize};

/// The smallest growth of the total that names a part: 2 ms, or 5 % of the
/// baseline's total, whichever is larger.
pub const FLOOR: Thresholds = Thresholds {
    alpha: 0.01,
    min_change_ms: 2.0,
    min_change_ratio: 0.05,
};

/// Which reply a pin belongs to. The turn's position in its conversation is
/// the same live and after a reload (stored turns are numbered by position,
/// new ones continue the count); the model's time tells a regenerated reply
/// at the same position from the one that was pinned. Not the server's
/// total: the stored reply's lacks the time spent storing it, which the
/// live one counts, so the two never match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinKey {
    pub conversation: Option<String>,
    pub turn: usize,
    /// [`Components::llm`]: connect, first token and generation.
    pub model_ms: f64,
}

impl PinKey {
    /// Whether `other` names the same reply (the times may differ in the
    /// last bits after a trip through JSON).
    pub fn same_reply(&self, other: &PinKey) -> bool {
        self.conversation == other.conversation
            && self.turn == other.turn
            && (self.model_ms - other.model_ms).abs() < 0.01
    }
}

/// A pinned reply, as kept in `localStorage` (`calos.timingBaseline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    pub components: Components,
    /// How the page names it: the model and the time it was pinned.
    pub label: String,
    pub key: PinKey,
}

/// One component, this reply against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delta {
    pub component: Component,
    /// This reply − the baseline, in ms.
    pub ms: f64,
}

/// What the total did, against the floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Grew beyond the floor; the part that grew the most, if any did.
    Slower(Option<Component>),
    /// Shrank beyond the floor.
    Faster,
    /// Within the floor either way.
    Within,
}

/// The comparison the page shows under a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every part, then the total ([`Component::ALL`]'s order).
    pub deltas: Vec<Delta>,
    pub outcome: Outcome,
    pub baseline_total: f64,
    pub current_total: f64,
    /// The floor for this baseline, in ms.
    pub floor: f64,
}

impl Comparison {
    /// The highlighted part, when the total grew enough to name one.
    pub fn named(&self) -> Option<Component> {
        match self.outcome {
            Outcome::Slower(named) => named,
            _ => None,
        }
    }

    /// One sentence for the page.
    pub fn summary(&self) -> String {
        let (before, after) = (self.baseline_total, self.current_total);
        let moved = signed_ms(after - before);
        match self.outcome {
            Outcome::Slower(Some(c)) => {
                let grew = self
                    .deltas
                    .iter()
                    .find(|d| d.component == c)
                    .map_or(0.0, |d| d.ms);
                format!(
                    "Total {moved} ({before:.1} → {after:.1} ms), more than 5 % / 2 ms over the baseline: {} grew the most ({}).",
                    c.label(),
                    signed_ms(grew)
                )
            }
            Outcome::Slower(None) => format!(
                "Total {moved} ({before:.1} → {after:.1} ms), more than 5 % / 2 ms over the baseline, with no single part growing."
            ),
            Outcome::Faster => format!(
                "Total {moved} ({before:.1} → {after:.1} ms): faster than the baseline by more than 5 % / 2 ms."
            ),
            Outcome::Within => format!(
                "Total within 5 % / 2 ms of the baseline ({before:.1} → {after:.1} ms, {moved})."
            ),
        }
    }
}

/// Compares `current` against `baseline`: every component's difference, and
/// the part that grew the most when the total grew by more than [`FLOOR`].
pub fn compare(baseline: &Components, current: &Components) -> Comparison {
    let deltas: Vec<Delta> = Component::ALL
        .iter()
        .map(|&component| Delta {
            component,
            ms: current.get(component) - baseline.get(component),
        })
        .collect();
    let floor = FLOOR.min_change(baseline.total);
    let total = current.total - baseline.total;
    let outcome = if total > floor {
        // The first of equals wins, so the choice does not depend on float
        // noise in the order the parts are visited.
        let grew_most = deltas
            .iter()
            .filter(|d| d.component != Component::Total && d.ms > 0.0)
            .fold(None::<Delta>, |best, d| match best {
                Some(b) if b.ms >= d.ms => Some(b),
                _ => Some(*d),
            });
        Outcome::Slower(grew_most.map(|d| d.component))
    } else if total < -floor {
        Outcome::Faster
    } else {
        Outcome::Within
    };
    Comparison {
        deltas,
        outcome,
        baseline_total: baseline.total,
        current_total: current.total,
        floor,
    }
}

/// A difference as the page prints it: `+50.2 ms`, `-3.1 ms`, `0.0 ms`
/// (never `-0.0`).
pub fn signed_ms(ms: f64) -> String {
    let tenths = (ms * 10.0).round() / 10.0;
    if tenths == 0.0 {
        "0.0 ms".into()
    } else {
        format!("{tenths:+.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(total_extra: &[(Component, f64)]) -> Components {
        let mut c = Components {
            network: 1.0,
            auth: 0.2,
            database: 2.0,
            queue: 0.0,
            cache: 0.1,
            connect: 1.0,
            first_token: 400.0,
            generation: 1_600.0,
            code: 0.7,
            total: 0.0,
        };
        for &(part, ms) in total_extra {
            c.set(part, c.get(part) + ms);
        }
        c.total = Component::PARTS.iter().map(|p| c.get(*p)).sum();
        c
    }

    #[test]
    fn every_component_and_the_total_get_a_difference() {
        let base = reply(&[]);
        let now = reply(&[(Component::Database, 50.2)]);
        let cmp = compare(&base, &now);
        assert_eq!(cmp.deltas.len(), Component::ALL.len());
        let ms = |c| cmp.deltas.iter().find(|d| d.component == c).map(|d| d.ms);
        assert!((ms(Component::Database).unwrap_or_default() - 50.2).abs() < 1e-9);
        assert!((ms(Component::Total).unwrap_or_default() - 50.2).abs() < 1e-9);
        assert_eq!(ms(Component::Network), Some(0.0));
    }

    #[test]
    fn a_total_grown_beyond_five_percent_names_the_part_that_grew_most() {
        let base = reply(&[]);
        // 5 % of ~2005 ms is ~100 ms; 150 ms is beyond it.
        let now = reply(&[(Component::Network, 40.0), (Component::FirstToken, 110.0)]);
        let cmp = compare(&base, &now);
        assert_eq!(cmp.outcome, Outcome::Slower(Some(Component::FirstToken)));
        assert_eq!(cmp.named(), Some(Component::FirstToken));
        assert!(cmp
            .summary()
            .contains("model's first token grew the most (+110.0 ms)"));
    }

    #[test]
    fn a_total_within_five_percent_names_nothing() {
        let base = reply(&[]);
        let now = reply(&[(Component::Generation, 90.0)]);
        let cmp = compare(&base, &now);
        assert_eq!(cmp.outcome, Outcome::Within);
        assert_eq!(cmp.named(), None);
        assert!(cmp.summary().starts_with("Total within 5 % / 2 ms"));
    }

    #[test]
    fn on_a_fast_baseline_the_floor_is_two_ms() {
        let base = Components {
            auth: 1.0,
            code: 1.0,
            total: 2.0,
            ..Default::default()
        };
        let mut now = base;
        now.code += 1.9;
        now.total += 1.9;
        assert_eq!(compare(&base, &now).outcome, Outcome::Within);
        now.code += 0.2;
        now.total += 0.2;
        assert_eq!(
            compare(&base, &now).outcome,
            Outcome::Slower(Some(Component::Code))
        );
        assert!((compare(&base, &now).floor - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_faster_reply_blames_nothing() {
        let base = reply(&[(Component::Queue, 300.0)]);
        let cmp = compare(&base, &reply(&[]));
        assert_eq!(cmp.outcome, Outcome::Faster);
        assert_eq!(cmp.named(), None);
    }

    #[test]
    fn differences_print_signed_to_a_tenth_and_never_minus_zero() {
        assert_eq!(signed_ms(50.23), "+50.2 ms");
        assert_eq!(signed_ms(-3.06), "-3.1 ms");
        assert_eq!(signed_ms(-0.01), "0.0 ms");
    }

    #[test]
    fn a_pin_survives_json_and_still_names_its_reply() {
        let pin = Pin {
            components: reply(&[]),
            label: "mock-llama, 14:03:05".into(),
            key: PinKey {
                conversation: Some("c1".into()),
                turn: 1,
                model_ms: 2_001.123_456_789,
            },
        };
        let json = serde_json::to_string(&pin).unwrap_or_default();
        assert!(json.contains("\"firstToken\""), "{json}");
        let back: Option<Pin> = serde_json::from_str(&json).ok();
        assert_eq!(back.as_ref(), Some(&pin));
        let regenerated = PinKey {
            model_ms: 1_990.0,
            ..pin.key.clone()
        };
        assert!(!pin.key.same_reply(&regenerated));
    }
}
