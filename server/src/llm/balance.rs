//! Choosing a deployment among those serving one model: a smooth weighted
//! round-robin (nginx's) whose weights shrink with the requests a deployment
//! has in flight. Sequential traffic, where nothing is in flight, splits
//! exactly by weight; under load, the least busy per unit of weight is
//! preferred. Deployments whose breaker is open are passed over.

use super::deployment::{Deployment, Ticket};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;

/// Effective weights are scaled by this before dividing by the load, so
/// integer division keeps their proportions.
const SCALE: i64 = 1 << 20;

/// The deployments of one model.
#[derive(Debug)]
pub struct Group {
    deployments: Vec<Arc<Deployment>>,
    /// The round-robin's running scores, one per deployment.
    rotation: Mutex<Vec<i64>>,
}

/// Why no deployment was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPick {
    /// Every deployment not yet tried is skipping; the earliest may take
    /// requests again at this time.
    AllSkipping(Instant),
    /// Every deployment was tried already.
    AllTried,
}

impl Group {
    pub fn new(deployments: Vec<Arc<Deployment>>) -> Self {
        let rotation = Mutex::new(vec![0; deployments.len()]);
        Self {
            deployments,
            rotation,
        }
    }

    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    /// A ticket at the best deployment not in `tried`.
    pub fn pick(&self, tried: &[Arc<Deployment>], now: Instant) -> Result<Ticket, NoPick> {
        let untried = |d: &Arc<Deployment>| !tried.iter().any(|t| Arc::ptr_eq(t, d));
        let mut rotation = self.rotation.lock();
        loop {
            let open: Vec<usize> = (0..self.deployments.len())
                .filter(|&i| {
                    untried(&self.deployments[i]) && self.deployments[i].breaker.available(now)
                })
                .collect();
            let Some(&first) = open.first() else {
                let earliest = self
                    .deployments
                    .iter()
                    .filter(|d| untried(d))
                    .filter_map(|d| d.breaker.skipping_until(now))
                    .min();
                return Err(earliest.map_or(NoPick::AllTried, NoPick::AllSkipping));
            };
            // A smooth weighted round-robin over effective weights, each
            // deployment's weight divided by its requests in flight plus one
            // (Envoy's "weighted least request"): idle deployments share by
            // weight, and a busy one is chosen less the busier it is.
            let effective: Vec<i64> = open
                .iter()
                .map(|&i| {
                    let d = &self.deployments[i];
                    i64::from(d.weight) * SCALE / (d.in_flight() as i64 + 1)
                })
                .collect();
            let total: i64 = effective.iter().sum();
            let mut chosen = first;
            for (&i, &weight) in open.iter().zip(&effective) {
                rotation[i] += weight;
                if rotation[i] > rotation[chosen] {
                    chosen = i;
                }
            }
            rotation[chosen] -= total;
            match self.deployments[chosen].ticket(now) {
                Ok(ticket) => return Ok(ticket),
                // Another request took its probe between the look and the
                // choice: look again (it is no longer available).
                Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::breaker::{Breaker, BreakerSettings};
    use crate::llm::queue::ProviderQueue;
    use crate::llm::sim::SimModel;
    use crate::llm::Provider;
    use std::num::NonZeroUsize;
    use std::time::Duration;

    fn deployment(name: &str, weight: u32) -> Arc<Deployment> {
        Arc::new(Deployment::new(
            name.into(),
            Some("m".into()),
            None,
            Provider::Sim(SimModel {
                ttft: Duration::ZERO,
                tokens_per_sec: 1.0,
                tokens: 1,
            }),
            ProviderQueue::new(NonZeroUsize::MIN, 1),
            weight,
            Breaker::new(BreakerSettings::default()),
        ))
    }

    fn share(group: &Group, rounds: usize) -> Vec<usize> {
        let mut counts = vec![0; group.deployments().len()];
        for _ in 0..rounds {
            let ticket = group.pick(&[], Instant::now()).ok();
            let name = ticket.as_ref().map(|t| t.deployment().name.clone());
            let i = group
                .deployments()
                .iter()
                .position(|d| Some(&d.name) == name.as_ref());
            if let Some(i) = i {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn sequential_requests_split_by_weight() {
        let even = Group::new(vec![deployment("a", 1), deployment("b", 1)]);
        assert_eq!(share(&even, 100), vec![50, 50]);
        let skewed = Group::new(vec![deployment("a", 3), deployment("b", 1)]);
        assert_eq!(share(&skewed, 100), vec![75, 25]);
    }

    #[test]
    fn a_busy_deployment_gets_less_the_busier_it_is() {
        let (a, b) = (deployment("a", 1), deployment("b", 1));
        let group = Group::new(vec![a.clone(), b.clone()]);
        let held: Vec<Ticket> = (0..3)
            .filter_map(|_| group.pick(std::slice::from_ref(&b), Instant::now()).ok())
            .collect();
        assert_eq!(a.in_flight(), 3);
        // a counts 1/(3+1) of b's weight now: b takes 4 in 5.
        let to_b = (0..100)
            .filter_map(|_| group.pick(&[], Instant::now()).ok())
            .filter(|t| t.deployment().name == "b")
            .count();
        assert_eq!(to_b, 80);
        drop(held);
        assert!(group.deployments().iter().all(|d| d.in_flight() == 0));
    }

    #[test]
    fn open_and_tried_deployments_are_passed_over() {
        let (a, b) = (deployment("a", 1), deployment("b", 1));
        let group = Group::new(vec![a.clone(), b.clone()]);
        let now = Instant::now();
        a.breaker.trip(now, "down");
        for _ in 0..5 {
            let name = group.pick(&[], now).map(|t| t.deployment().name.clone());
            assert_eq!(name.as_deref(), Ok("b"));
        }
        assert!(matches!(
            group.pick(std::slice::from_ref(&b), now),
            Err(NoPick::AllSkipping(_))
        ));
        assert_eq!(group.pick(&[a, b], now).err(), Some(NoPick::AllTried));
    }
}
