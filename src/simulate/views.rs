//! What each trigger's source would report about the simulated queue: the same value a source of
//! its kind reads in a cluster (and that KEDA would read), and the load behind it.

use crate::policy::{Load, Sample};
use crate::source::Kind;

/// The simulated queue at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct World {
    /// Tasks waiting for a slot.
    pub waiting: u64,
    /// Tasks running.
    pub running: u64,
    /// Tasks that have arrived, and finished, since the start.
    pub arrived: u64,
    pub completed: u64,
}

/// How a source kind sees the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Celery on Redis: the waiting messages, plus those reserved or running when
    /// `include_unacked` is set (the `unacked` hash).
    Celery { unacked: bool },
    /// Celery with `events = true`: the waiting messages, the workers' running tasks (heartbeats
    /// and task events), and counted arrivals and completions; the value as without events.
    CeleryEvents { unacked: bool },
    /// Airflow: queued + running task instances, completions counted as they leave `running`.
    Airflow,
    /// Kafka: the lag, which counts messages being processed (not committed yet), with the end
    /// and committed offsets; what is in flight is not observable apart.
    Kafka,
}

impl View {
    /// The view of a source kind (`include_unacked` matters for Celery only).
    pub fn of(kind: Kind, include_unacked: bool) -> View {
        match kind {
            Kind::Celery => View::Celery { unacked: include_unacked },
            Kind::Airflow => View::Airflow,
            Kind::Kafka => View::Kafka,
        }
    }

    /// What the source reports.
    pub fn sample(self, world: &World) -> Sample {
        let (waiting, running) = (world.waiting as f64, world.running as f64);
        let load = match self {
            View::Celery { unacked: false } => Load { waiting, ..Load::default() },
            View::Celery { unacked: true } => Load { waiting, in_flight: Some(running), ..Load::default() },
            View::CeleryEvents { .. } => Load {
                waiting,
                in_flight: Some(running),
                arrived: Some(world.arrived),
                completed: Some(world.completed),
                ..Load::default()
            },
            View::Airflow => {
                Load { waiting, in_flight: Some(running), completed: Some(world.completed), ..Load::default() }
            }
            View::Kafka => Load {
                waiting: waiting + running,
                arrived: Some(world.arrived),
                completed: Some(world.completed),
                ..Load::default()
            },
        };
        // The value is what the source's poll reads: the queues (and `unacked`), not the events.
        let value = match self {
            View::CeleryEvents { unacked } => waiting + if unacked { running } else { 0.0 },
            _ => load.waiting + load.in_flight.unwrap_or(0.0),
        };
        Sample { value, cap: None, even: false, load }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reports_what_it_can_see() {
        let world = World { waiting: 40, running: 31, arrived: 900, completed: 829 };
        let celery = View::Celery { unacked: false }.sample(&world);
        assert_eq!((celery.value, celery.load.in_flight), (40.0, None));
        let unacked = View::Celery { unacked: true }.sample(&world);
        assert_eq!((unacked.value, unacked.load.in_flight), (71.0, Some(31.0)));
        let airflow = View::Airflow.sample(&world);
        assert_eq!((airflow.value, airflow.load.waiting, airflow.load.completed), (71.0, 40.0, Some(829)));
        let events = View::CeleryEvents { unacked: false }.sample(&world);
        assert_eq!((events.value, events.load.in_flight, events.load.arrived), (40.0, Some(31.0), Some(900)));
        let kafka = View::Kafka.sample(&world);
        assert_eq!((kafka.value, kafka.load.in_flight, kafka.load.arrived), (71.0, None, Some(900)));
    }
}
