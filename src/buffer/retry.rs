//! Fluentd's retry state machine (`plugin_helper/retry_state.rb`): exponential backoff or
//! periodic waits, `retry_timeout` / `retry_max_times` limits, and the switch to `<secondary>`
//! after `retry_secondary_threshold` of the retry budget. Times are seconds since the epoch,
//! passed in so that the computation is deterministic under test.

/// Fluentd's fixed `randomize_width`.
const RANDOMIZE_WIDTH: f64 = 0.125;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryType {
    #[default]
    ExponentialBackoff,
    Periodic,
}

#[derive(Clone, Debug)]
pub struct RetryParams {
    pub retry_type: RetryType,
    pub wait: f64,
    pub timeout: f64,
    pub forever: bool,
    pub max_steps: Option<u64>,
    pub backoff_base: f64,
    pub max_interval: Option<f64>,
    pub randomize: bool,
    pub secondary: bool,
    pub secondary_threshold: f64,
}

#[derive(Clone, Debug)]
pub struct RetryState {
    p: RetryParams,
    pub start: f64,
    pub steps: u64,
    pub next_time: f64,
    pub timeout_at: f64,
    on_secondary: bool,
    secondary_transition_at: f64,
    secondary_transition_steps: u64,
}

impl RetryState {
    pub fn new(p: RetryParams, now: f64) -> RetryState {
        let mut s = RetryState {
            start: now,
            steps: 0,
            next_time: now + p.wait,
            timeout_at: now + p.timeout,
            on_secondary: false,
            secondary_transition_at: f64::INFINITY,
            secondary_transition_steps: 0,
            p,
        };
        if s.p.secondary {
            let mut max_retry_timeout = s.p.timeout;
            if let Some(m) = s.p.max_steps {
                let by_steps = s.calc_max_retry_timeout(m);
                if by_steps < max_retry_timeout {
                    max_retry_timeout = by_steps;
                }
            }
            s.secondary_transition_at = now + max_retry_timeout * s.p.secondary_threshold;
        }
        s
    }

    fn calc_max_retry_timeout(&self, max_steps: u64) -> f64 {
        match self.p.retry_type {
            RetryType::Periodic => self.p.wait * max_steps as f64,
            RetryType::ExponentialBackoff => {
                (0..max_steps).map(|i| self.calc_interval(i + 1)).sum()
            }
        }
    }

    fn raw_interval(&self, num: i64) -> f64 {
        self.p.wait
            * self
                .p
                .backoff_base
                .powi(num.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
    }

    /// The wait before retry number `num` (Fluentd's `calc_interval`).
    pub fn calc_interval(&self, num: u64) -> f64 {
        let mut num = num as i64;
        let mut interval = self.raw_interval(num - 1);
        if let Some(max) = self.p.max_interval {
            if interval > max {
                return max;
            }
        }
        while !interval.is_finite() && num > 0 {
            num -= 1;
            interval = self.raw_interval(num - 1);
        }
        interval
    }

    fn randomize(&self, interval: f64) -> f64 {
        if !self.p.randomize {
            return interval;
        }
        let r: f64 = rand::random();
        interval + interval * RANDOMIZE_WIDTH * (2.0 * r - 1.0)
    }

    fn naive_next_time(&self, now: f64, n: u64) -> f64 {
        let interval = match self.p.retry_type {
            RetryType::ExponentialBackoff => self.calc_interval(n),
            RetryType::Periodic => self.p.wait,
        };
        now + self.randomize(interval)
    }

    fn calc_next_time(&self, now: f64) -> f64 {
        if self.p.forever || !self.p.secondary {
            let naive = self.naive_next_time(now, self.steps);
            if self.p.forever || naive < self.timeout_at {
                naive
            } else {
                self.timeout_at
            }
        } else if !self.on_secondary {
            let naive = self.naive_next_time(now, self.steps);
            naive.min(self.secondary_transition_at)
        } else {
            let n = self.steps - self.secondary_transition_steps + 1;
            self.naive_next_time(now, n).min(self.timeout_at)
        }
    }

    /// Moves the next attempt to no sooner than `t` (a receiver's `Retry-After`), but never
    /// past the time the retries give up.
    pub fn not_before(&mut self, t: f64) {
        let latest = if self.p.forever {
            f64::INFINITY
        } else {
            self.timeout_at
        };
        self.next_time = self.next_time.max(t.min(latest));
    }

    /// Should the next attempt go to `<secondary>`?
    pub fn secondary(&self, now: f64) -> bool {
        !self.p.forever
            && self.p.secondary
            && (self.on_secondary || now >= self.secondary_transition_at)
    }

    /// One more failure.
    pub fn step(&mut self, now: f64) {
        self.steps += 1;
        if !self.p.forever
            && self.p.secondary
            && !self.on_secondary
            && now >= self.secondary_transition_at
        {
            self.on_secondary = true;
            self.secondary_transition_steps = self.steps;
        }
        self.next_time = self.calc_next_time(now);
    }

    pub fn recalc_next_time(&mut self, now: f64) {
        self.next_time = self.calc_next_time(now);
    }

    /// Retries are exhausted (`retry_timeout` or `retry_max_times`).
    pub fn limit(&self) -> bool {
        if self.p.forever {
            false
        } else {
            self.next_time >= self.timeout_at || self.p.max_steps.is_some_and(|m| self.steps >= m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: RetryType) -> RetryParams {
        RetryParams {
            retry_type: t,
            wait: 1.0,
            timeout: 72.0 * 3600.0,
            forever: false,
            max_steps: None,
            backoff_base: 2.0,
            max_interval: None,
            randomize: false,
            secondary: false,
            secondary_threshold: 0.8,
        }
    }

    #[test]
    fn exponential_backoff_intervals() {
        let mut r = RetryState::new(params(RetryType::ExponentialBackoff), 1000.0);
        assert_eq!(r.next_time, 1001.0);
        let mut waits = Vec::new();
        let mut now = r.next_time;
        for _ in 0..6 {
            r.step(now);
            waits.push(r.next_time - now);
            now = r.next_time;
        }
        assert_eq!(waits, vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        assert_eq!(r.steps, 6);
        assert!(!r.limit());
    }

    #[test]
    fn retry_after_delays_the_next_attempt_up_to_the_timeout() {
        let mut p = params(RetryType::ExponentialBackoff);
        p.timeout = 100.0;
        let mut r = RetryState::new(p.clone(), 1000.0);
        assert_eq!(r.next_time, 1001.0);
        r.not_before(1030.0);
        assert_eq!(r.next_time, 1030.0);
        // Sooner than the backoff: the backoff stands.
        r.not_before(1000.5);
        assert_eq!(r.next_time, 1030.0);
        // Past retry_timeout: the last attempt is at the timeout.
        r.not_before(5000.0);
        assert_eq!(r.next_time, 1100.0);
        p.forever = true;
        let mut r = RetryState::new(p, 1000.0);
        r.not_before(5000.0);
        assert_eq!(r.next_time, 5000.0);
    }

    #[test]
    fn max_interval_caps_and_max_times_limits() {
        let mut p = params(RetryType::ExponentialBackoff);
        p.max_interval = Some(5.0);
        p.max_steps = Some(4);
        let mut r = RetryState::new(p, 0.0);
        let mut now = r.next_time;
        let mut waits = Vec::new();
        while !r.limit() {
            r.step(now);
            waits.push(r.next_time - now);
            now = r.next_time;
        }
        assert_eq!(waits, vec![1.0, 2.0, 4.0, 5.0]);
    }

    #[test]
    fn periodic_and_timeout() {
        let mut p = params(RetryType::Periodic);
        p.wait = 3.0;
        p.timeout = 10.0;
        let mut r = RetryState::new(p, 0.0);
        assert_eq!(r.next_time, 3.0);
        r.step(3.0);
        assert_eq!(r.next_time, 6.0);
        r.step(6.0);
        assert_eq!(r.next_time, 9.0);
        assert!(!r.limit());
        r.step(9.0);
        assert_eq!(r.next_time, 10.0);
        assert!(r.limit());
    }

    #[test]
    fn switches_to_secondary_at_threshold() {
        let mut p = params(RetryType::Periodic);
        p.wait = 10.0;
        p.timeout = 100.0;
        p.secondary = true;
        let mut r = RetryState::new(p, 0.0);
        assert!(!r.secondary(50.0));
        assert!(r.secondary(80.0));
        r.step(80.0);
        assert!(r.secondary(80.0));
        assert_eq!(r.next_time, 90.0);
    }

    #[test]
    fn randomized_wait_stays_within_width() {
        let mut p = params(RetryType::Periodic);
        p.wait = 8.0;
        p.randomize = true;
        let mut r = RetryState::new(p, 0.0);
        r.step(0.0);
        assert!(r.next_time >= 7.0 && r.next_time <= 9.0);
    }
}
