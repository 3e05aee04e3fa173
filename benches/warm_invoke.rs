//! Warm invoke: the round trip of one echo invocation on a live environment, in a KVM
//! micro-VM, against the same program as a child process with a real localhost Runtime API
//! (the development backend).
//!
//! Two runtimes: `runtime-loop` (std only, blocking sockets: the fewest syscalls a Runtime
//! API client can make) and `runtime-rust` (the official `lambda_runtime` crate on tokio's
//! default multi-thread runtime, as `cargo lambda new` writes a function: a worker thread per
//! CPU, here one, besides the main thread).
//!
//! Each side is sampled in a stretch of its own; the other sides' environments exist but are
//! parked in their `next`, doing nothing. Nothing is torn down inside a window on any side.
//! The micro-VM is measured three times: with the vDSO (clocks read in the guest), without it
//! (`MicroVmBackend::without_vdso`: every clock reading a syscall, hence an exit), and
//! restored from a snapshot taken after Init (`MicroVmBackend::snapshot` and
//! `restore_runtime_api`, as SnapStart makes environments: its memory is the snapshot's file,
//! mapped copy-on-write). When the
//! VM host program was built beside the bench (`cargo build --release -p lambda-vmm --bin
//! lambda-vmm-host`), a third time in a VM host process (`HostProcessBackend`), which adds a
//! pipe's round trip to each invocation.
//!
//! Last, `runtime-loop` echoes an event of a MiB on the child process, the micro-VM and (when
//! built) the micro-VM in a VM host process, whose pipes then carry a MiB each way.
//!
//! `cargo bench --bench warm_invoke` prints criterion's figures, then the summary: medians and
//! p90 of each side alone, the ratios, the VM exits per warm invocation, and, as a secondary
//! figure, interleaved medians.

mod measure;

use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{Backend, CodeLocation, ExecutionEnvironment, FunctionConfig, Invocation};
use lambda::vmm::host_process::HostOptions;
use lambda::vmm::{
    HostProcessBackend, HostProcessError, MicroVmBackend, ProcessBackend, RuntimeApiEnvironment,
};
use measure::{Cost, print_table, sample, timed};

const EVENT: &str = r#"{"action":"echo","payload":"warm"}"#;
const RUNS: usize = 2000;
const WARMUP: usize = 100;

fn config(program: &str) -> FunctionConfig {
    let path = std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join(program);
    FunctionConfig::new(program, CodeLocation::Executable(path))
}

/// What `program` answers to `EVENT`.
fn expected(program: &str) -> &'static str {
    match program {
        "runtime-rust" => r#"{"count":"#,
        _ => EVENT,
    }
}

fn micro_vm(environment: &mut RuntimeApiEnvironment, program: &str) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| environment.run(Invocation::new(EVENT)).expect("invoke"));
    let response = result.outcome.response().expect("a response");
    assert!(response.starts_with(expected(program).as_bytes()));
    (took, Some(Cost::of(environment.last_stats())))
}

/// One invocation through the lifecycle trait: the child process, or a micro-VM in a VM host
/// process (neither reports VM exits).
fn through_trait(
    environment: &mut dyn ExecutionEnvironment,
    program: &str,
) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| environment.invoke(Invocation::new(EVENT)).expect("invoke"));
    let response = result.outcome.response().expect("a response");
    assert!(response.starts_with(expected(program).as_bytes()));
    (took, None)
}

fn warm_invoke(c: &mut Criterion) {
    let kvm = MicroVmBackend::new().unwrap_or_else(|error| {
        eprintln!("warm_invoke needs KVM: {error}");
        std::process::exit(2)
    });
    let kvm_without_vdso = kvm.clone().without_vdso();
    // The same micro-VM in a VM host process, when the host program was built beside this
    // bench (`cargo build --release -p lambda-vmm --bin lambda-vmm-host`).
    let host_processes =
        match HostProcessBackend::start_beside_current_exe(1, HostOptions::default()) {
            Ok(backend) => Some(backend),
            Err(error @ HostProcessError::NotFound { .. }) => {
                println!("\nthe micro-VM in a VM host process is not measured: {error}");
                None
            }
            Err(error) => panic!("a host process: {error}"),
        };
    for program in ["runtime-loop", "runtime-rust"] {
        let mut vm = kvm.create_runtime_api(&config(program)).expect("micro-VM");
        let snapshot = kvm.snapshot(&config(program)).expect("snapshot after Init");
        let mut restored = kvm.restore_runtime_api(&snapshot).expect("restore");
        let mut vm_without_vdso = kvm_without_vdso
            .create_runtime_api(&config(program))
            .expect("micro-VM without the vDSO");
        let mut in_host_process = host_processes.as_ref().map(|backend| {
            backend
                .create(&config(program))
                .expect("micro-VM in a host process")
        });
        let mut process = ProcessBackend::new()
            .with_all_host_cpus()
            .create(&config(program))
            .expect("child process");

        let mut group = c.benchmark_group(format!("warm_invoke/{program}"));
        group.bench_function("child_process", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| through_trait(&mut *process, program).0)
                    .sum()
            })
        });
        group.bench_function("micro_vm", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| micro_vm(&mut vm, program).0).sum())
        });
        group.finish();

        let child = sample(
            "child process + localhost Runtime API (dev backend)",
            WARMUP,
            RUNS,
            || through_trait(&mut *process, program),
            || {},
        );
        let micro = sample(
            "micro-VM",
            WARMUP,
            RUNS,
            || micro_vm(&mut vm, program),
            || {},
        );
        let micro_restored = sample(
            "micro-VM restored from a snapshot taken after Init",
            WARMUP,
            RUNS,
            || micro_vm(&mut restored, program),
            || {},
        );
        let micro_without_vdso = sample(
            "micro-VM without the vDSO",
            WARMUP,
            RUNS,
            || micro_vm(&mut vm_without_vdso, program),
            || {},
        );
        let remote = in_host_process.as_mut().map(|environment| {
            sample(
                "micro-VM in a VM host process (HostProcessBackend)",
                WARMUP,
                RUNS,
                || through_trait(&mut **environment, program),
                || {},
            )
        });
        let mut others = vec![&micro, &micro_restored, &micro_without_vdso];
        others.extend(remote.as_ref());
        print_table(
            &format!(
                "warm invoke, `{program}` echo round trip: {RUNS} invocations per side, each \
                 side alone"
            ),
            &child,
            &others,
        );

        // Secondary: the two sides alternately, as this bench used to measure them.
        let mut vm_samples = Vec::new();
        let mut child_samples = Vec::new();
        for _ in 0..RUNS {
            vm_samples.push(micro_vm(&mut vm, program).0);
            child_samples.push(through_trait(&mut *process, program).0);
        }
        let median = |mut samples: Vec<Duration>| {
            samples.sort();
            samples[samples.len() / 2]
        };
        let (vm_median, child_median) = (median(vm_samples), median(child_samples));
        println!(
            "\nsecondary, interleaved (samples alternate): micro-VM {:.1} us, child process \
             {:.1} us, ratio {:.2}x",
            vm_median.as_secs_f64() * 1e6,
            child_median.as_secs_f64() * 1e6,
            vm_median.as_secs_f64() / child_median.as_secs_f64()
        );
        Box::new(vm).shutdown();
        Box::new(vm_without_vdso).shutdown();
        Box::new(restored).shutdown();
        process.shutdown();
        if let Some(environment) = in_host_process {
            environment.shutdown();
        }
    }
    large_payloads(&kvm, host_processes.as_ref());
}

/// Bytes of the large payload's filler: a MiB, a sixth of Lambda's limit for a synchronous
/// payload and response.
const LARGE_BYTES: usize = 1 << 20;
const LARGE_RUNS: usize = 100;
const LARGE_WARMUP: usize = 10;

/// `runtime-loop` echoing an event of a MiB: the payload goes in and the response comes out
/// through the guest's Runtime API, through the child process's localhost socket, and through
/// a host process's pipes as well.
fn large_payloads(kvm: &MicroVmBackend, host_processes: Option<&HostProcessBackend>) {
    let event = format!(
        r#"{{"action":"echo","payload":"{}"}}"#,
        "x".repeat(LARGE_BYTES)
    );
    let config = config("runtime-loop");
    let echo = |environment: &mut dyn ExecutionEnvironment| {
        let (took, result) = timed(|| {
            environment
                .invoke(Invocation::new(event.as_bytes()))
                .expect("invoke")
        });
        assert_eq!(result.outcome.response(), Some(event.as_bytes()));
        (took, None)
    };
    let mut process = ProcessBackend::new()
        .with_all_host_cpus()
        .create(&config)
        .expect("child process");
    let mut vm = kvm.create(&config).expect("micro-VM");
    let mut in_host_process =
        host_processes.map(|backend| backend.create(&config).expect("micro-VM in a host process"));
    let child = sample(
        "child process + localhost Runtime API (dev backend)",
        LARGE_WARMUP,
        LARGE_RUNS,
        || echo(&mut *process),
        || {},
    );
    let micro = sample(
        "micro-VM",
        LARGE_WARMUP,
        LARGE_RUNS,
        || echo(&mut *vm),
        || {},
    );
    let remote = in_host_process.as_mut().map(|environment| {
        sample(
            "micro-VM in a VM host process (HostProcessBackend)",
            LARGE_WARMUP,
            LARGE_RUNS,
            || echo(&mut **environment),
            || {},
        )
    });
    let mut others = vec![&micro];
    others.extend(remote.as_ref());
    print_table(
        &format!(
            "warm invoke, `runtime-loop` echo of a {} KiB event: {LARGE_RUNS} invocations per \
             side, each side alone",
            event.len() / 1024
        ),
        &child,
        &others,
    );
    process.shutdown();
    vm.shutdown();
    if let Some(environment) = in_host_process {
        environment.shutdown();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = warm_invoke
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
