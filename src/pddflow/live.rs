//! Live-pipeline manners of `pddflow`, without GStreamer types: how long a frame takes (the
//! latency the element reports), when a new estimate is worth a latency message, and which
//! frames are late by the QoS events downstream sends (their flow is skipped).
//!
//! Times are nanoseconds of running time, as GStreamer's clock times are.

use std::collections::VecDeque;

/// How many recent frames the processing-time estimate looks at.
const WINDOW: usize = 64;

/// Recent per-frame processing times.
#[derive(Clone, Debug, Default)]
pub struct ProcessingTimes {
    recent: VecDeque<u64>,
}

impl ProcessingTimes {
    pub fn record(&mut self, nanoseconds: u64) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(nanoseconds);
    }

    /// The latency to report: the slowest of the recent frames, so that a sink that waits this
    /// long after a buffer's timestamp receives nearly every frame in time. `None` before the
    /// first frame.
    pub fn latency(&self) -> Option<u64> {
        self.recent.iter().copied().max()
    }

    pub fn clear(&mut self) {
        self.recent.clear();
    }
}

/// Decides when the latency the element reports has moved enough to ask the pipeline to query
/// it again (a latency message makes every sink re-synchronise, so not on every frame).
#[derive(Clone, Debug, Default)]
pub struct LatencyReport {
    reported: Option<u64>,
}

impl LatencyReport {
    /// What the last answer to a latency query said (`None`: not answered yet, or nothing known).
    pub fn reported(&self) -> Option<u64> {
        self.reported
    }

    /// Records the value given in an answer to a latency query.
    pub fn answered(&mut self, latency: Option<u64>) {
        self.reported = latency;
    }

    /// Whether `estimate` differs enough from the reported latency to post a latency message:
    /// more than a quarter above it (frames would arrive late) or below half of it (the
    /// pipeline waits for nothing).
    pub fn needs_update(&self, estimate: Option<u64>) -> bool {
        match (self.reported, estimate) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(reported), Some(estimate)) => {
                estimate > reported.saturating_add(reported / 4) || estimate < reported / 2
            }
        }
    }
}

/// Lateness as downstream reports it in QoS events.
#[derive(Clone, Debug, Default)]
pub struct Qos {
    /// Buffers whose running time is at or before this are already late.
    earliest: Option<u64>,
}

impl Qos {
    /// A QoS event: the buffer of running time `timestamp` reached the sink `jitter` ns late
    /// (negative: early). As GStreamer's video decoders do, a late report pushes the limit twice
    /// the jitter ahead, since the frames behind it queue up as well.
    pub fn observe(&mut self, timestamp: u64, jitter: i64) {
        let earliest = if jitter > 0 {
            timestamp.saturating_add(jitter.unsigned_abs().saturating_mul(2))
        } else {
            timestamp.saturating_sub(jitter.unsigned_abs())
        };
        self.earliest = Some(earliest);
    }

    /// Whether a buffer of running time `running_time` is already late.
    pub fn is_late(&self, running_time: u64) -> bool {
        self.earliest
            .is_some_and(|earliest| running_time <= earliest)
    }

    /// After a flush or a new segment the old reports say nothing about the new buffers.
    pub fn reset(&mut self) {
        self.earliest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn latency_is_the_slowest_recent_frame() {
        let mut times = ProcessingTimes::default();
        assert_eq!(times.latency(), None);
        for t in [10, 30, 20] {
            times.record(t * MS);
        }
        assert_eq!(times.latency(), Some(30 * MS));
        // a slow frame ages out of the window
        for _ in 0..WINDOW {
            times.record(12 * MS);
        }
        assert_eq!(times.latency(), Some(12 * MS));
        times.clear();
        assert_eq!(times.latency(), None);
    }

    #[test]
    fn latency_message_only_when_the_estimate_moved() {
        let mut report = LatencyReport::default();
        assert!(!report.needs_update(None));
        assert!(report.needs_update(Some(20 * MS)), "first estimate");
        report.answered(Some(20 * MS));
        assert!(!report.needs_update(Some(24 * MS)), "within a quarter");
        assert!(!report.needs_update(Some(11 * MS)), "above half");
        assert!(report.needs_update(Some(26 * MS)), "frames would be late");
        assert!(
            report.needs_update(Some(9 * MS)),
            "the pipeline waits for nothing"
        );
    }

    #[test]
    fn late_buffers_by_the_last_qos_report() {
        let mut qos = Qos::default();
        assert!(!qos.is_late(0), "no report: nothing is late");
        // the frame at 100 ms arrived 30 ms late: frames up to 160 ms are late too
        qos.observe(100 * MS, 30 * MS as i64);
        assert!(qos.is_late(133 * MS));
        assert!(qos.is_late(160 * MS));
        assert!(!qos.is_late(161 * MS));
        // an early report lifts the limit back
        qos.observe(200 * MS, -(5 * MS as i64));
        assert!(qos.is_late(195 * MS));
        assert!(!qos.is_late(196 * MS));
        qos.reset();
        assert!(!qos.is_late(0));
    }

    #[test]
    fn qos_saturates_instead_of_overflowing() {
        let mut qos = Qos::default();
        qos.observe(u64::MAX - 1, i64::MAX);
        assert!(qos.is_late(u64::MAX));
        qos.observe(0, i64::MIN);
        assert!(qos.is_late(0));
        assert!(!qos.is_late(1));
    }
}
