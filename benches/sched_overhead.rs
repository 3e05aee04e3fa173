//! The scheduler's own overhead per invocation, on the no-op fake backend (which answers at
//! once and runs nothing): resolve, count, take a warm environment, invoke, give it back,
//! metrics. Single-threaded, and with three more threads invoking the same function at the
//! same time (4 threads contending).
//!
//! `cargo bench --bench sched_overhead` prints criterion's figures, then a summary of
//! per-invocation latencies measured one by one (median and 99th percentile), against the
//! 5 us median target.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lambda::core::{CodeLocation, FunctionConfig};
use lambda::sched::fake::FakeBackend;
use lambda::sched::{InvokeRequest, Service, StartKind};

const FUNCTION: &str = "noop";
const CONTENDERS: usize = 3;

fn service() -> Arc<Service> {
    // Manual mode: no background thread competes with the measurement.
    let service = Service::builder(FakeBackend::noop())
        .manual()
        .build()
        .expect("service");
    service
        .create_function(FunctionConfig::new(
            FUNCTION,
            CodeLocation::Executable("/noop".into()),
        ))
        .expect("function");
    // Enough warm environments for every thread.
    std::thread::scope(|s| {
        for _ in 0..=CONTENDERS {
            s.spawn(|| invoke(&service));
        }
    });
    Arc::new(service)
}

fn invoke(service: &Service) -> Option<StartKind> {
    let response = service
        .invoke(InvokeRequest::new(FUNCTION, Vec::new()))
        .expect("invoke");
    response.start
}

/// Runs `body` while `CONTENDERS` threads invoke the same function in a loop.
fn with_contention<T>(service: &Arc<Service>, body: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let contenders: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let (service, stop) = (service.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    invoke(&service);
                }
            })
        })
        .collect();
    let result = body();
    stop.store(true, Ordering::Relaxed);
    for contender in contenders {
        contender.join().expect("contender");
    }
    result
}

fn bench(c: &mut Criterion) {
    let service = service();
    let mut group = c.benchmark_group("sched_overhead");
    group.bench_function("invoke_warm/1_thread", |b| b.iter(|| invoke(&service)));
    group.bench_function("invoke_warm/4_threads", |b| {
        b.iter_custom(|iters| {
            with_contention(&service, || {
                let start = Instant::now();
                for _ in 0..iters {
                    invoke(&service);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Median and 99th percentile of `n` invocations timed one by one.
fn latencies(service: &Service, n: usize) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let started = invoke(service);
            let elapsed = start.elapsed();
            // Under contention a new environment is occasionally needed (all busy at once).
            assert!(matches!(started, Some(StartKind::Warm | StartKind::Cold)));
            elapsed
        })
        .collect();
    samples.sort();
    (samples[n / 2], samples[n * 99 / 100])
}

fn summary() {
    let service = service();
    latencies(&service, 10_000);
    let (single_median, single_p99) = latencies(&service, 200_000);
    let (contended_median, contended_p99) =
        with_contention(&service, || latencies(&service, 200_000));
    let metrics = service.metrics();
    println!();
    println!("scheduler overhead per warm invocation (no-op fake backend, timed one by one)");
    println!("{:<28} {:>12} {:>12}", "", "median", "p99");
    println!(
        "{:<28} {:>12.2?} {:>12.2?}",
        "1 thread", single_median, single_p99
    );
    println!(
        "{:<28} {:>12.2?} {:>12.2?}",
        "4 threads contending", contended_median, contended_p99
    );
    println!(
        "target: median under 5 us -> {}",
        if single_median < Duration::from_micros(5) && contended_median < Duration::from_micros(5) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "(invocations {}, cold starts {}, throttles {})",
        metrics.invocations.invocations,
        metrics.invocations.cold_starts,
        metrics.invocations.throttles
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
