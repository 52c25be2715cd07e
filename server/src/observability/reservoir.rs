//! A uniform random sample of at most `capacity` items from a stream of any
//! length (reservoir sampling, Vitter's algorithm R). `calos load` keeps a
//! long run's requests in it, and Mission Control keeps each minute's: memory
//! is fixed however many requests come, and every one of them, early or late
//! in the run or the minute, had the same chance to be kept.

#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    kept: Vec<T>,
    seen: u64,
    capacity: usize,
}

impl<T> Reservoir<T> {
    /// Empty; it allocates as items come, up to `capacity`.
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: Vec::new(),
            seen: 0,
            capacity,
        }
    }

    pub fn offer(&mut self, item: T) {
        use rand::Rng;
        self.seen += 1;
        if self.kept.len() < self.capacity {
            self.kept.push(item);
            return;
        }
        let slot = rand::thread_rng().gen_range(0..self.seen);
        if let Some(kept) = usize::try_from(slot)
            .ok()
            .and_then(|slot| self.kept.get_mut(slot))
        {
            *kept = item;
        }
    }

    /// The sample.
    pub fn runs(&self) -> &[T] {
        &self.kept
    }

    /// How many were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reservoir_holds_a_fixed_number_drawn_from_the_whole_run() {
        let mut sample = Reservoir::new(1_000);
        for i in 0..100_000 {
            sample.offer(i);
        }
        assert_eq!(sample.runs().len(), 1_000);
        assert_eq!(sample.seen(), 100_000);
        // Uniform over the run: about half the kept items come from its
        // second half (a binomial's 6 standard deviations either side).
        let late = sample.runs().iter().filter(|&&i| i >= 50_000).count();
        assert!(
            (405..=595).contains(&late),
            "{late} of 1000 from the second half"
        );
    }
}
