//! In-memory queue benchmark: claim+complete throughput and enqueue-to-wake latency with
//! 1,000 idle long-polls. Run with `cargo bench -p phoenix-core --bench queue` (or
//! `scripts/bench`); it rewrites its generated block of docs/benchmarks.md
//! (`PHOENIX_BENCH_REPS` rounds, 5 by default).

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use phoenix_bench::{Bound, Machine, Report, Target, write_generated};
use phoenix_core::clock::SystemClock;
use phoenix_core::ids::AgentId;
use phoenix_core::task::{LeaseRef, NewTask, TaskPayload};
use phoenix_core::{MemoryStore, Phoenix, PhoenixConfig};

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "index of a percentile"
    )]
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn throughput(workers: usize, batch: usize, tasks: usize) -> f64 {
    let store = MemoryStore::new();
    let stores = store.stores();
    let agents: Vec<AgentId> = (0..workers).map(|_| AgentId::new()).collect();
    for chunk in 0..tasks / 1_000 {
        let batch_tasks: Vec<NewTask> = (0..1_000)
            .map(|i| {
                NewTask::new(
                    agents[(chunk + i) % workers],
                    TaskPayload::CollectSnapshot {},
                    0,
                )
            })
            .collect();
        stores.queue.enqueue(&batch_tasks).await.unwrap();
    }
    let start = Instant::now();
    let handles: Vec<_> = agents
        .iter()
        .map(|agent| {
            let queue = stores.queue.clone();
            let agent = *agent;
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let claimed = queue
                        .claim(agent, batch, Duration::seconds(30))
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        return done;
                    }
                    for leased in claimed {
                        let lease = LeaseRef {
                            task_id: leased.task.id,
                            token: leased.lease_token,
                        };
                        queue.complete(&lease, None).await.unwrap();
                        done += 1;
                    }
                }
            })
        })
        .collect();
    let mut done = 0;
    for h in handles {
        done += h.await.unwrap();
    }
    assert_eq!(done, tasks);
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = done as f64 / start.elapsed().as_secs_f64();
    rate
}

async fn wake_latency(waiters: usize, samples: usize) -> (StdDuration, StdDuration, StdDuration) {
    let store = MemoryStore::new();
    let config = PhoenixConfig {
        safety_poll: chrono::Duration::seconds(3600),
        ..PhoenixConfig::default()
    };
    let phoenix = Phoenix::new(store.stores(), Arc::new(SystemClock), config);
    let agents: Vec<AgentId> = (0..waiters).map(|_| AgentId::new()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    for (i, agent) in agents.iter().enumerate() {
        let phoenix = phoenix.clone();
        let tx = tx.clone();
        let agent = *agent;
        tokio::spawn(async move {
            loop {
                let got = phoenix
                    .wait_for_tasks(agent, 1, StdDuration::from_secs(3600))
                    .await
                    .unwrap();
                let now = Instant::now();
                for leased in got {
                    let lease = LeaseRef {
                        task_id: leased.task.id,
                        token: leased.lease_token,
                    };
                    phoenix.stores().queue.complete(&lease, None).await.unwrap();
                }
                if tx.send((i, now)).is_err() {
                    return;
                }
            }
        });
    }
    while phoenix.waiting_agents() < waiters {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    let mut latencies = Vec::with_capacity(samples);
    for s in 0..samples {
        let target = (s * 7919) % waiters;
        // Let the previous waiter re-register.
        while phoenix.waiting_agents() < waiters {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        phoenix
            .stores()
            .queue
            .enqueue(&[NewTask::new(
                agents[target],
                TaskPayload::CollectSnapshot {},
                0,
            )])
            .await
            .unwrap();
        let (who, woke) = rx.recv().await.unwrap();
        assert_eq!(who, target);
        latencies.push(woke - start);
    }
    latencies.sort();
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    )
}

/// The targets this benchmark checks (design section 6); verdicts are computed from the
/// medians, never written.
static TARGETS: [Target; 2] = [
    Target {
        id: "wake-p99",
        bound: Bound::AtMost(5_000.0),
        text: "p99 <= 5 ms in memory with 1,000 idle long-polls, design 6",
    },
    Target {
        id: "wake-p99-second-wave",
        bound: Bound::AtMost(1_000.0),
        text: "p99 <= 1 ms in memory, design 6.1",
    },
];

const COMMAND: &str = "cargo bench -p phoenix-core --bench queue";

fn main() {
    // `cargo bench` passes `--bench` and measures; `cargo test` runs a small smoke version
    // (unoptimised: its figures mean nothing, and the documentation is not touched).
    let measure = phoenix_bench::measuring();
    let (tasks, samples, reps) = if measure {
        (
            200_000,
            2_000,
            phoenix_bench::env_or("PHOENIX_BENCH_REPS", 5),
        )
    } else {
        (2_000, 50, 1)
    };
    let mut machine = Machine::read();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let configs = [(1, 1), (4, 1), (4, 16), (16, 16)];
    let mut rates = vec![Vec::new(); configs.len()];
    let (mut p50s, mut p99s, mut maxes) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        // Repetitions are interleaved: every scenario runs once per round.
        for round in 0..reps {
            for (i, (workers, batch)) in configs.iter().enumerate() {
                let rate = throughput(*workers, *batch, tasks).await;
                println!("round {round}: {workers} workers, batch {batch}: {rate:.0} tasks/s");
                rates[i].push(rate);
            }
            let (p50, p99, max) = wake_latency(1_000, samples).await;
            println!("round {round}: enqueue-to-wake p50 {p50:?} p99 {p99:?} max {max:?}");
            p50s.push(p50.as_secs_f64() * 1e6);
            p99s.push(p99.as_secs_f64() * 1e6);
            maxes.push(max.as_secs_f64() * 1e6);
        }
    });
    machine.finish();
    let mut report = Report::new();
    for ((workers, batch), values) in configs.iter().zip(rates) {
        report.row(
            format!(
                "claim+complete of {tasks} tasks, workers: {workers}, claim batch {batch} (tasks/s)"
            ),
            values,
            0,
            &[],
        );
    }
    report
        .row(
            format!("enqueue-to-wake p50, 1,000 idle long-polls, {samples} samples (us)"),
            p50s,
            1,
            &[],
        )
        .row(
            format!("enqueue-to-wake p99, 1,000 idle long-polls, {samples} samples (us)"),
            p99s,
            1,
            &[
                Target::find(&TARGETS, "wake-p99"),
                Target::find(&TARGETS, "wake-p99-second-wave"),
            ],
        )
        .row(
            format!("enqueue-to-wake max, 1,000 idle long-polls, {samples} samples (us)"),
            maxes,
            1,
            &[],
        );
    let body = format!(
        "{}\n\nConfiguration: tokio multi-thread runtime, 2 worker threads; `MemoryStore` on \
the wall clock; tasks spread evenly over the workers' agents; {reps} rounds, every scenario \
once per round.\n\n{}",
        machine.describe(),
        report.render()
    );
    println!("{body}");
    if measure {
        write_generated("core-queue", COMMAND, &body);
    }
}
